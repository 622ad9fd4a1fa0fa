//! The command list: every command db-proxy serves, written once (see
//! docs/compatibility.md#command-table).
//!
//! [`for_each_command!`] holds the list. This crate expands it into one marker type per
//! command in [`cmd`] (implementing [`Command`]) and into the [`COMMANDS`] table the transport
//! looks requests up in; the action crate expands the same list into its dispatch, so a
//! command cannot be in one place and missing in another. Ids come from the generated
//! `*CmdID` enums ([`sid`], [`cid`] are generated from the same .proto files).

pub use crate::ids::{cid, sid};

/// Calls `$callback!` with the list of dispatched commands (heartbeats are not in it: the
/// transport consumes them). Each entry is `Marker { request: <id>, <type>; <reply> }` where
/// `<reply>` is `reply: <sid>, <cid>, <type>`, `echo: ...` (the reply is the request
/// message with its unknown fields appended) or `no_reply`. Types are relative to
/// `pb::im`, ids to `pb::im::base_define`.
#[macro_export]
macro_rules! for_each_command {
    ($callback:ident) => {
        $callback! {
            Validate { request: OtherCmdId::CidOtherValidateReq, server::ImValidateReq;
                reply: SidOther, OtherCmdId::CidOtherValidateRsp, server::ImValidateRsp }
            SetPushShield { request: LoginCmdId::CidLoginReqPushShield, login::ImPushShieldReq;
                reply: SidLogin, LoginCmdId::CidLoginResPushShield, login::ImPushShieldRsp }
            QueryPushShield {
                request: LoginCmdId::CidLoginReqQueryPushShield, login::ImQueryPushShieldReq;
                reply: SidLogin, LoginCmdId::CidLoginResQueryPushShield,
                    login::ImQueryPushShieldRsp }
            RecentSessions {
                request: BuddyListCmdId::CidBuddyListRecentContactSessionRequest,
                    buddy::ImRecentContactSessionReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListRecentContactSessionResponse,
                    buddy::ImRecentContactSessionRsp }
            RemoveSession {
                request: BuddyListCmdId::CidBuddyListRemoveSessionReq, buddy::ImRemoveSessionReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListRemoveSessionRes,
                    buddy::ImRemoveSessionRsp }
            UsersInfo {
                request: BuddyListCmdId::CidBuddyListUserInfoRequest, buddy::ImUsersInfoReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListUserInfoResponse,
                    buddy::ImUsersInfoRsp }
            ChangedUsers {
                request: BuddyListCmdId::CidBuddyListAllUserRequest, buddy::ImAllUserReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListAllUserResponse,
                    buddy::ImAllUserRsp }
            Departments {
                request: BuddyListCmdId::CidBuddyListDepartmentRequest, buddy::ImDepartmentReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListDepartmentResponse,
                    buddy::ImDepartmentRsp }
            ChangeSignInfo {
                request: BuddyListCmdId::CidBuddyListChangeSignInfoRequest,
                    buddy::ImChangeSignInfoReq;
                reply: SidBuddyList, BuddyListCmdId::CidBuddyListChangeSignInfoResponse,
                    buddy::ImChangeSignInfoRsp }
            SendMessage { request: MessageCmdId::CidMsgData, message::ImMsgData;
                echo: SidMsg, MessageCmdId::CidMsgData, message::ImMsgData }
            ReadAck { request: MessageCmdId::CidMsgReadAck, message::ImMsgDataReadAck; no_reply }
            UnreadCounts {
                request: MessageCmdId::CidMsgUnreadCntRequest, message::ImUnreadMsgCntReq;
                reply: SidMsg, MessageCmdId::CidMsgUnreadCntResponse, message::ImUnreadMsgCntRsp }
            MessageList { request: MessageCmdId::CidMsgListRequest, message::ImGetMsgListReq;
                reply: SidMsg, MessageCmdId::CidMsgListResponse, message::ImGetMsgListRsp }
            LatestMsgId {
                request: MessageCmdId::CidMsgGetLatestMsgIdReq, message::ImGetLatestMsgIdReq;
                reply: SidMsg, MessageCmdId::CidMsgGetLatestMsgIdRsp,
                    message::ImGetLatestMsgIdRsp }
            MessagesById { request: MessageCmdId::CidMsgGetByMsgIdReq, message::ImGetMsgByIdReq;
                reply: SidMsg, MessageCmdId::CidMsgGetByMsgIdRes, message::ImGetMsgByIdRsp }
            SetDeviceToken { request: LoginCmdId::CidLoginReqDevicetoken, login::ImDeviceTokenReq;
                reply: SidLogin, LoginCmdId::CidLoginResDevicetoken, login::ImDeviceTokenRsp }
            GetDeviceTokens {
                request: OtherCmdId::CidOtherGetDeviceTokenReq, server::ImGetDeviceTokenReq;
                reply: SidOther, OtherCmdId::CidOtherGetDeviceTokenRsp,
                    server::ImGetDeviceTokenRsp }
            GroupSetShield {
                request: GroupCmdId::CidGroupShieldGroupRequest, group::ImGroupShieldReq;
                reply: SidGroup, GroupCmdId::CidGroupShieldGroupResponse, group::ImGroupShieldRsp }
            GroupGetShield { request: OtherCmdId::CidOtherGetShieldReq, server::ImGroupGetShieldReq;
                reply: SidOther, OtherCmdId::CidOtherGetShieldRsp, server::ImGroupGetShieldRsp }
            GroupList {
                request: GroupCmdId::CidGroupNormalListRequest, group::ImNormalGroupListReq;
                reply: SidGroup, GroupCmdId::CidGroupNormalListResponse,
                    group::ImNormalGroupListRsp }
            GroupInfo { request: GroupCmdId::CidGroupInfoRequest, group::ImGroupInfoListReq;
                reply: SidGroup, GroupCmdId::CidGroupInfoResponse, group::ImGroupInfoListRsp }
            GroupCreate { request: GroupCmdId::CidGroupCreateRequest, group::ImGroupCreateReq;
                reply: SidGroup, GroupCmdId::CidGroupCreateResponse, group::ImGroupCreateRsp }
            GroupChangeMembers {
                request: GroupCmdId::CidGroupChangeMemberRequest, group::ImGroupChangeMemberReq;
                reply: SidGroup, GroupCmdId::CidGroupChangeMemberResponse,
                    group::ImGroupChangeMemberRsp }
            HasOfflineFile { request: FileCmdId::CidFileHasOfflineReq, file::ImFileHasOfflineReq;
                reply: SidFile, FileCmdId::CidFileHasOfflineRes, file::ImFileHasOfflineRsp }
            AddOfflineFile { request: FileCmdId::CidFileAddOfflineReq, file::ImFileAddOfflineReq;
                no_reply }
            DelOfflineFile { request: FileCmdId::CidFileDelOfflineReq, file::ImFileDelOfflineReq;
                no_reply }
        }
    };
}

/// One command of the list, as a type: its ids, its request and response messages.
pub trait Command: 'static {
    /// Enum name of the request id, e.g. `CID_MSG_DATA` (logs, metrics).
    const NAME: &'static str;
    /// Request command id.
    const ID: u16;
    /// `(service id, command id)` of the reply header; `None`: the command is never answered.
    const REPLY: Option<(u16, u16)>;
    /// The reply echoes the request's unknown fields after its own (CID_MSG_DATA).
    const ECHO_UNKNOWN: bool;
    /// Request message.
    type Request: prost::Message + prost::Name + Default;
    /// Reply message (`()` for commands without a reply).
    type Response: prost::Message;
}

/// One row of [`COMMANDS`]: a [`Command`] as data, for lookups by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandInfo {
    /// See [`Command::NAME`].
    pub name: &'static str,
    /// See [`Command::ID`].
    pub request_cid: u16,
    /// See [`Command::REPLY`].
    pub response: Option<(u16, u16)>,
    /// See [`Command::ECHO_UNKNOWN`].
    pub echo_unknown: bool,
    request_package: &'static str,
    request_name: &'static str,
}

impl CommandInfo {
    /// The row of command `C`.
    pub const fn of<C: Command>() -> Self {
        CommandInfo {
            name: C::NAME,
            request_cid: C::ID,
            response: C::REPLY,
            echo_unknown: C::ECHO_UNKNOWN,
            request_package: <C::Request as prost::Name>::PACKAGE,
            request_name: <C::Request as prost::Name>::NAME,
        }
    }

    /// Full protobuf name of the request message, e.g. `IM.Server.IMValidateReq`.
    pub fn request_type(&self) -> String {
        format!("{}.{}", self.request_package, self.request_name)
    }

    /// The service id peers conventionally put in the request header.
    pub fn request_sid(&self) -> u16 {
        conventional_sid(self.request_cid)
    }
}

/// The service id conventionally used for a command id: its high byte.
pub fn conventional_sid(command_id: u16) -> u16 {
    command_id >> 8
}

/// Expands the list into the marker types and the table.
macro_rules! define_commands {
    ($( $marker:ident { request: $id:ident :: $variant:ident, $pkg:ident :: $req:ident;
        $($reply:tt)* } )*) => {
        /// One marker type per command of the list.
        pub mod cmd {
            $(
                #[doc = concat!("`", stringify!($variant), "`: `", stringify!($req), "`.")]
                #[derive(Debug, Clone, Copy)]
                pub struct $marker;
                define_commands!(@impl $marker, $id :: $variant, $pkg :: $req; $($reply)*);
            )*
        }

        /// Number of commands in the list.
        pub const COMMAND_COUNT: usize = [$(stringify!($marker)),*].len();

        /// Every command of the list as data, in list order.
        pub static COMMANDS: [CommandInfo; COMMAND_COUNT] =
            [$(CommandInfo::of::<cmd::$marker>()),*];
    };
    (@impl $marker:ident, $id:ident :: $variant:ident, $pkg:ident :: $req:ident; no_reply) => {
        define_commands!(@emit $marker, $id :: $variant, $pkg :: $req, None, false, ());
    };
    (@impl $marker:ident, $id:ident :: $variant:ident, $pkg:ident :: $req:ident;
        reply: $sid:ident, $rid:ident :: $rvariant:ident, $rpkg:ident :: $rsp:ident) => {
        define_commands!(@emit $marker, $id :: $variant, $pkg :: $req,
            Some((ServiceId::$sid as u16, $rid::$rvariant as u16)), false,
            crate::pb::im::$rpkg::$rsp);
    };
    (@impl $marker:ident, $id:ident :: $variant:ident, $pkg:ident :: $req:ident;
        echo: $sid:ident, $rid:ident :: $rvariant:ident, $rpkg:ident :: $rsp:ident) => {
        define_commands!(@emit $marker, $id :: $variant, $pkg :: $req,
            Some((ServiceId::$sid as u16, $rid::$rvariant as u16)), true,
            crate::pb::im::$rpkg::$rsp);
    };
    (@emit $marker:ident, $id:ident :: $variant:ident, $pkg:ident :: $req:ident,
        $reply:expr, $echo:expr, $rsp:ty) => {
        impl super::Command for $marker {
            const ID: u16 = crate::pb::im::base_define::$id::$variant as u16;
            const NAME: &'static str = crate::ids::cid::name(Self::ID);
            const REPLY: Option<(u16, u16)> = {
                #[allow(unused_imports)]
                use crate::pb::im::base_define::*;
                $reply
            };
            const ECHO_UNKNOWN: bool = $echo;
            type Request = crate::pb::im::$pkg::$req;
            type Response = $rsp;
        }
    };
}

for_each_command!(define_commands);

/// Looks up a dispatched command by its request command id (service id is never consulted).
pub fn lookup(command_id: u16) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.request_cid == command_id)
}

/// The body of `C`'s reply: `reply` encoded, then, for a command that echoes them
/// ([`Command::ECHO_UNKNOWN`]), the fields of `request` its message does not declare
/// (docs/compatibility.md#reply-construction-and-attach-data).
pub fn encode_reply<C: Command>(request: &[u8], reply: &C::Response) -> bytes::Bytes {
    let mut out = bytes::BytesMut::with_capacity(prost::Message::encoded_len(reply));
    // Encoding into a buffer sized for the message cannot run out of room.
    let _ = prost::Message::encode(reply, &mut out);
    if C::ECHO_UNKNOWN {
        let name = <C::Request as prost::Name>::full_name();
        // The request decoded already, so its fields parse; on an error nothing is echoed.
        if let Ok(extra) = crate::wire::unknown_fields(&name, request) {
            out.extend_from_slice(&extra);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::im::base_define::{MessageCmdId, OtherCmdId, ServiceId};

    #[test]
    fn generated_ids_are_the_enum_values() {
        assert_eq!(cid::MSG_DATA, MessageCmdId::CidMsgData as u16);
        assert_eq!(cid::OTHER_HEARTBEAT, 0x0701);
        assert_eq!(
            cid::OTHER_FILE_SERVER_IP_RSP,
            OtherCmdId::CidOtherFileServerIpRsp as u16
        );
        assert_eq!(sid::OTHER, ServiceId::SidOther as u16);
        assert_eq!(cid::name(cid::MSG_DATA), "CID_MSG_DATA");
        assert_eq!(cid::name(0x7fff), "");
        for c in &COMMANDS {
            assert_eq!(c.name, cid::name(c.request_cid));
            assert!(!c.name.is_empty());
        }
        assert_eq!(<cmd::SendMessage as Command>::NAME, "CID_MSG_DATA");
        const { assert!(<cmd::SendMessage as Command>::ECHO_UNKNOWN) };
        assert_eq!(COMMANDS.iter().filter(|c| c.echo_unknown).count(), 1);
    }

    #[test]
    fn only_an_echoing_command_appends_unknown_fields() {
        let reply = crate::pb::im::message::ImMsgData {
            msg_id: 7,
            ..Default::default()
        };
        // Field 99 (varint 1) is undeclared in IMMsgData.
        let mut request = prost::Message::encode_to_vec(&reply);
        request.extend_from_slice(&[0x98, 0x06, 0x01]);
        let plain = prost::Message::encode_to_vec(&reply);
        let echoed = encode_reply::<cmd::SendMessage>(&request, &reply);
        assert_eq!(&echoed[..plain.len()], &plain[..]);
        assert_eq!(&echoed[plain.len()..], &[0x98, 0x06, 0x01]);
        // A command that does not echo: the reply alone, whatever the request carried.
        let list = crate::pb::im::group::ImNormalGroupListRsp::default();
        let body = encode_reply::<cmd::GroupList>(&request, &list);
        assert_eq!(&body[..], &prost::Message::encode_to_vec(&list)[..]);
    }
}
