//! Service ids, command ids and the command table of protocol.md §7.

/// Service ids (`IM.BaseDefine.ServiceID`).
pub mod sid {
    /// SID_LOGIN
    pub const LOGIN: u16 = 1;
    /// SID_BUDDY_LIST
    pub const BUDDY_LIST: u16 = 2;
    /// SID_MSG
    pub const MSG: u16 = 3;
    /// SID_GROUP
    pub const GROUP: u16 = 4;
    /// SID_FILE
    pub const FILE: u16 = 5;
    /// SID_SWITCH_SERVICE
    pub const SWITCH_SERVICE: u16 = 6;
    /// SID_OTHER
    pub const OTHER: u16 = 7;
    /// SID_INTERNAL
    pub const INTERNAL: u16 = 8;
}

/// Command ids of every `*CmdID` enum in IM.BaseDefine, named without the `CID_` prefix.
#[allow(missing_docs)]
pub mod cid {

    // IM.BaseDefine.LoginCmdID
    pub const LOGIN_REQ_MSGSERVER: u16 = 0x0101;
    pub const LOGIN_RES_MSGSERVER: u16 = 0x0102;
    pub const LOGIN_REQ_USERLOGIN: u16 = 0x0103;
    pub const LOGIN_RES_USERLOGIN: u16 = 0x0104;
    pub const LOGIN_REQ_LOGINOUT: u16 = 0x0105;
    pub const LOGIN_RES_LOGINOUT: u16 = 0x0106;
    pub const LOGIN_KICK_USER: u16 = 0x0107;
    pub const LOGIN_REQ_DEVICETOKEN: u16 = 0x0108;
    pub const LOGIN_RES_DEVICETOKEN: u16 = 0x0109;
    pub const LOGIN_REQ_KICKPCCLIENT: u16 = 0x010a;
    pub const LOGIN_RES_KICKPCCLIENT: u16 = 0x010b;
    pub const LOGIN_REQ_PUSH_SHIELD: u16 = 0x010c;
    pub const LOGIN_RES_PUSH_SHIELD: u16 = 0x010d;
    pub const LOGIN_REQ_QUERY_PUSH_SHIELD: u16 = 0x010e;
    pub const LOGIN_RES_QUERY_PUSH_SHIELD: u16 = 0x010f;

    // IM.BaseDefine.BuddyListCmdID
    pub const BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST: u16 = 0x0201;
    pub const BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE: u16 = 0x0202;
    pub const BUDDY_LIST_STATUS_NOTIFY: u16 = 0x0203;
    pub const BUDDY_LIST_USER_INFO_REQUEST: u16 = 0x0204;
    pub const BUDDY_LIST_USER_INFO_RESPONSE: u16 = 0x0205;
    pub const BUDDY_LIST_REMOVE_SESSION_REQ: u16 = 0x0206;
    pub const BUDDY_LIST_REMOVE_SESSION_RES: u16 = 0x0207;
    pub const BUDDY_LIST_ALL_USER_REQUEST: u16 = 0x0208;
    pub const BUDDY_LIST_ALL_USER_RESPONSE: u16 = 0x0209;
    pub const BUDDY_LIST_USERS_STATUS_REQUEST: u16 = 0x020a;
    pub const BUDDY_LIST_USERS_STATUS_RESPONSE: u16 = 0x020b;
    pub const BUDDY_LIST_CHANGE_AVATAR_REQUEST: u16 = 0x020c;
    pub const BUDDY_LIST_CHANGE_AVATAR_RESPONSE: u16 = 0x020d;
    pub const BUDDY_LIST_PC_LOGIN_STATUS_NOTIFY: u16 = 0x020e;
    pub const BUDDY_LIST_REMOVE_SESSION_NOTIFY: u16 = 0x020f;
    pub const BUDDY_LIST_DEPARTMENT_REQUEST: u16 = 0x0210;
    pub const BUDDY_LIST_DEPARTMENT_RESPONSE: u16 = 0x0211;
    pub const BUDDY_LIST_AVATAR_CHANGED_NOTIFY: u16 = 0x0212;
    pub const BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST: u16 = 0x0213;
    pub const BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE: u16 = 0x0214;
    pub const BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY: u16 = 0x0215;

    // IM.BaseDefine.MessageCmdID
    pub const MSG_DATA: u16 = 0x0301;
    pub const MSG_DATA_ACK: u16 = 0x0302;
    pub const MSG_READ_ACK: u16 = 0x0303;
    pub const MSG_READ_NOTIFY: u16 = 0x0304;
    pub const MSG_TIME_REQUEST: u16 = 0x0305;
    pub const MSG_TIME_RESPONSE: u16 = 0x0306;
    pub const MSG_UNREAD_CNT_REQUEST: u16 = 0x0307;
    pub const MSG_UNREAD_CNT_RESPONSE: u16 = 0x0308;
    pub const MSG_LIST_REQUEST: u16 = 0x0309;
    pub const MSG_LIST_RESPONSE: u16 = 0x030a;
    pub const MSG_GET_LATEST_MSG_ID_REQ: u16 = 0x030b;
    pub const MSG_GET_LATEST_MSG_ID_RSP: u16 = 0x030c;
    pub const MSG_GET_BY_MSG_ID_REQ: u16 = 0x030d;
    pub const MSG_GET_BY_MSG_ID_RES: u16 = 0x030e;

    // IM.BaseDefine.GroupCmdID
    pub const GROUP_NORMAL_LIST_REQUEST: u16 = 0x0401;
    pub const GROUP_NORMAL_LIST_RESPONSE: u16 = 0x0402;
    pub const GROUP_INFO_REQUEST: u16 = 0x0403;
    pub const GROUP_INFO_RESPONSE: u16 = 0x0404;
    pub const GROUP_CREATE_REQUEST: u16 = 0x0405;
    pub const GROUP_CREATE_RESPONSE: u16 = 0x0406;
    pub const GROUP_CHANGE_MEMBER_REQUEST: u16 = 0x0407;
    pub const GROUP_CHANGE_MEMBER_RESPONSE: u16 = 0x0408;
    pub const GROUP_SHIELD_GROUP_REQUEST: u16 = 0x0409;
    pub const GROUP_SHIELD_GROUP_RESPONSE: u16 = 0x040a;
    pub const GROUP_CHANGE_MEMBER_NOTIFY: u16 = 0x040b;

    // IM.BaseDefine.FileCmdID
    pub const FILE_LOGIN_REQ: u16 = 0x0501;
    pub const FILE_LOGIN_RES: u16 = 0x0502;
    pub const FILE_STATE: u16 = 0x0503;
    pub const FILE_PULL_DATA_REQ: u16 = 0x0504;
    pub const FILE_PULL_DATA_RSP: u16 = 0x0505;
    pub const FILE_REQUEST: u16 = 0x0506;
    pub const FILE_RESPONSE: u16 = 0x0507;
    pub const FILE_NOTIFY: u16 = 0x0508;
    pub const FILE_HAS_OFFLINE_REQ: u16 = 0x0509;
    pub const FILE_HAS_OFFLINE_RES: u16 = 0x050a;
    pub const FILE_ADD_OFFLINE_REQ: u16 = 0x050b;
    pub const FILE_DEL_OFFLINE_REQ: u16 = 0x050c;

    // IM.BaseDefine.SwitchServiceCmdID
    pub const SWITCH_P2P_CMD: u16 = 0x0601;

    // IM.BaseDefine.OtherCmdID
    pub const OTHER_HEARTBEAT: u16 = 0x0701;
    pub const OTHER_STOP_RECV_PACKET: u16 = 0x0702;
    pub const OTHER_VALIDATE_REQ: u16 = 0x0703;
    pub const OTHER_VALIDATE_RSP: u16 = 0x0704;
    pub const OTHER_GET_DEVICE_TOKEN_REQ: u16 = 0x0705;
    pub const OTHER_GET_DEVICE_TOKEN_RSP: u16 = 0x0706;
    pub const OTHER_ROLE_SET: u16 = 0x0707;
    pub const OTHER_ONLINE_USER_INFO: u16 = 0x0708;
    pub const OTHER_MSG_SERV_INFO: u16 = 0x0709;
    pub const OTHER_USER_STATUS_UPDATE: u16 = 0x070a;
    pub const OTHER_USER_CNT_UPDATE: u16 = 0x070b;
    pub const OTHER_SERVER_KICK_USER: u16 = 0x070d;
    pub const OTHER_LOGIN_STATUS_NOTIFY: u16 = 0x070e;
    pub const OTHER_PUSH_TO_USER_REQ: u16 = 0x070f;
    pub const OTHER_PUSH_TO_USER_RSP: u16 = 0x0710;
    pub const OTHER_GET_SHIELD_REQ: u16 = 0x0711;
    pub const OTHER_GET_SHIELD_RSP: u16 = 0x0712;
    pub const OTHER_FILE_TRANSFER_REQ: u16 = 0x0731;
    pub const OTHER_FILE_TRANSFER_RSP: u16 = 0x0732;
    pub const OTHER_FILE_SERVER_IP_REQ: u16 = 0x0733;
    pub const OTHER_FILE_SERVER_IP_RSP: u16 = 0x0734;
}

/// One dispatched command (a row of protocol.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Enum name of the request command (e.g. `CID_OTHER_VALIDATE_REQ`).
    pub name: &'static str,
    /// Request command id.
    pub request_cid: u16,
    /// Full protobuf name of the request message (e.g. `IM.Server.IMValidateReq`).
    pub request_type: &'static str,
    /// `(service id, command id)` of the response, or `None` for fire-and-forget commands.
    pub response: Option<(u16, u16)>,
}

impl Command {
    /// The service id peers conventionally put in the request header.
    pub fn request_sid(&self) -> u16 {
        conventional_sid(self.request_cid)
    }
}

/// The service id conventionally used for a command id: its high byte.
pub fn conventional_sid(command_id: u16) -> u16 {
    command_id >> 8
}

const fn c(
    name: &'static str,
    request_cid: u16,
    request_type: &'static str,
    response: Option<(u16, u16)>,
) -> Command {
    Command {
        name,
        request_cid,
        request_type,
        response,
    }
}

/// The 26 commands the original dispatches (heartbeat excluded: the transport consumes it).
pub static COMMANDS: [Command; 26] = [
    c(
        "CID_OTHER_VALIDATE_REQ",
        cid::OTHER_VALIDATE_REQ,
        "IM.Server.IMValidateReq",
        Some((sid::OTHER, cid::OTHER_VALIDATE_RSP)),
    ),
    c(
        "CID_LOGIN_REQ_PUSH_SHIELD",
        cid::LOGIN_REQ_PUSH_SHIELD,
        "IM.Login.IMPushShieldReq",
        Some((sid::LOGIN, cid::LOGIN_RES_PUSH_SHIELD)),
    ),
    c(
        "CID_LOGIN_REQ_QUERY_PUSH_SHIELD",
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        "IM.Login.IMQueryPushShieldReq",
        Some((sid::LOGIN, cid::LOGIN_RES_QUERY_PUSH_SHIELD)),
    ),
    c(
        "CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST",
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST,
        "IM.Buddy.IMRecentContactSessionReq",
        Some((
            sid::BUDDY_LIST,
            cid::BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE,
        )),
    ),
    c(
        "CID_BUDDY_LIST_REMOVE_SESSION_REQ",
        cid::BUDDY_LIST_REMOVE_SESSION_REQ,
        "IM.Buddy.IMRemoveSessionReq",
        Some((sid::BUDDY_LIST, cid::BUDDY_LIST_REMOVE_SESSION_RES)),
    ),
    c(
        "CID_BUDDY_LIST_USER_INFO_REQUEST",
        cid::BUDDY_LIST_USER_INFO_REQUEST,
        "IM.Buddy.IMUsersInfoReq",
        Some((sid::BUDDY_LIST, cid::BUDDY_LIST_USER_INFO_RESPONSE)),
    ),
    c(
        "CID_BUDDY_LIST_ALL_USER_REQUEST",
        cid::BUDDY_LIST_ALL_USER_REQUEST,
        "IM.Buddy.IMAllUserReq",
        Some((sid::BUDDY_LIST, cid::BUDDY_LIST_ALL_USER_RESPONSE)),
    ),
    c(
        "CID_BUDDY_LIST_DEPARTMENT_REQUEST",
        cid::BUDDY_LIST_DEPARTMENT_REQUEST,
        "IM.Buddy.IMDepartmentReq",
        Some((sid::BUDDY_LIST, cid::BUDDY_LIST_DEPARTMENT_RESPONSE)),
    ),
    c(
        "CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST",
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
        "IM.Buddy.IMChangeSignInfoReq",
        Some((sid::BUDDY_LIST, cid::BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE)),
    ),
    c(
        "CID_MSG_DATA",
        cid::MSG_DATA,
        "IM.Message.IMMsgData",
        Some((sid::MSG, cid::MSG_DATA)),
    ),
    c(
        "CID_MSG_READ_ACK",
        cid::MSG_READ_ACK,
        "IM.Message.IMMsgDataReadAck",
        None,
    ),
    c(
        "CID_MSG_UNREAD_CNT_REQUEST",
        cid::MSG_UNREAD_CNT_REQUEST,
        "IM.Message.IMUnreadMsgCntReq",
        Some((sid::MSG, cid::MSG_UNREAD_CNT_RESPONSE)),
    ),
    c(
        "CID_MSG_LIST_REQUEST",
        cid::MSG_LIST_REQUEST,
        "IM.Message.IMGetMsgListReq",
        Some((sid::MSG, cid::MSG_LIST_RESPONSE)),
    ),
    c(
        "CID_MSG_GET_LATEST_MSG_ID_REQ",
        cid::MSG_GET_LATEST_MSG_ID_REQ,
        "IM.Message.IMGetLatestMsgIdReq",
        Some((sid::MSG, cid::MSG_GET_LATEST_MSG_ID_RSP)),
    ),
    c(
        "CID_MSG_GET_BY_MSG_ID_REQ",
        cid::MSG_GET_BY_MSG_ID_REQ,
        "IM.Message.IMGetMsgByIdReq",
        Some((sid::MSG, cid::MSG_GET_BY_MSG_ID_RES)),
    ),
    c(
        "CID_LOGIN_REQ_DEVICETOKEN",
        cid::LOGIN_REQ_DEVICETOKEN,
        "IM.Login.IMDeviceTokenReq",
        Some((sid::LOGIN, cid::LOGIN_RES_DEVICETOKEN)),
    ),
    c(
        "CID_OTHER_GET_DEVICE_TOKEN_REQ",
        cid::OTHER_GET_DEVICE_TOKEN_REQ,
        "IM.Server.IMGetDeviceTokenReq",
        Some((sid::OTHER, cid::OTHER_GET_DEVICE_TOKEN_RSP)),
    ),
    c(
        "CID_GROUP_SHIELD_GROUP_REQUEST",
        cid::GROUP_SHIELD_GROUP_REQUEST,
        "IM.Group.IMGroupShieldReq",
        Some((sid::GROUP, cid::GROUP_SHIELD_GROUP_RESPONSE)),
    ),
    c(
        "CID_OTHER_GET_SHIELD_REQ",
        cid::OTHER_GET_SHIELD_REQ,
        "IM.Server.IMGroupGetShieldReq",
        Some((sid::OTHER, cid::OTHER_GET_SHIELD_RSP)),
    ),
    c(
        "CID_GROUP_NORMAL_LIST_REQUEST",
        cid::GROUP_NORMAL_LIST_REQUEST,
        "IM.Group.IMNormalGroupListReq",
        Some((sid::GROUP, cid::GROUP_NORMAL_LIST_RESPONSE)),
    ),
    c(
        "CID_GROUP_INFO_REQUEST",
        cid::GROUP_INFO_REQUEST,
        "IM.Group.IMGroupInfoListReq",
        Some((sid::GROUP, cid::GROUP_INFO_RESPONSE)),
    ),
    c(
        "CID_GROUP_CREATE_REQUEST",
        cid::GROUP_CREATE_REQUEST,
        "IM.Group.IMGroupCreateReq",
        Some((sid::GROUP, cid::GROUP_CREATE_RESPONSE)),
    ),
    c(
        "CID_GROUP_CHANGE_MEMBER_REQUEST",
        cid::GROUP_CHANGE_MEMBER_REQUEST,
        "IM.Group.IMGroupChangeMemberReq",
        Some((sid::GROUP, cid::GROUP_CHANGE_MEMBER_RESPONSE)),
    ),
    c(
        "CID_FILE_HAS_OFFLINE_REQ",
        cid::FILE_HAS_OFFLINE_REQ,
        "IM.File.IMFileHasOfflineReq",
        Some((sid::FILE, cid::FILE_HAS_OFFLINE_RES)),
    ),
    c(
        "CID_FILE_ADD_OFFLINE_REQ",
        cid::FILE_ADD_OFFLINE_REQ,
        "IM.File.IMFileAddOfflineReq",
        None,
    ),
    c(
        "CID_FILE_DEL_OFFLINE_REQ",
        cid::FILE_DEL_OFFLINE_REQ,
        "IM.File.IMFileDelOfflineReq",
        None,
    ),
];

/// Looks up a dispatched command by its request command id (service id is never consulted).
pub fn lookup(command_id: u16) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.request_cid == command_id)
}
