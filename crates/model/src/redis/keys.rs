//! Every Redis key (and hash field) db-proxy reads or writes, one function each, with the
//! instance that holds it. These formats are the stored-data contract of the original:
//! existing deployments keep working only while they stay exactly as they are.

/// `msg_id_<relateId>` (instance `unread`): the msgId counter of a user pair.
pub fn single_counter_key(relate_id: u32) -> String {
    format!("msg_id_{relate_id}")
}

/// `group_msg_id_<G>` (instance `unread`): the msgId counter of a group.
pub fn group_counter_key(group_id: u32) -> String {
    format!("group_msg_id_{group_id}")
}

/// `unread_<U>` (instance `unread`): hash, field `<P>` → unread single messages from P to U.
pub fn single_unread_key(user: u32) -> String {
    format!("unread_{user}")
}

/// `<G>_im_group_msg` (instance `unread`): hash, field [`COUNT_FIELD`] → messages stored in G.
pub fn group_total_key(group: u32) -> String {
    format!("{group}_im_group_msg")
}

/// `<U>_<G>_im_user_group` (instance `unread`): hash, field [`COUNT_FIELD`] → G's total when
/// U last read or sent.
pub fn user_group_key(user: u32, group: u32) -> String {
    format!("{user}_{group}_im_user_group")
}

/// Field of the group counters [`group_total_key`] and [`user_group_key`].
pub const COUNT_FIELD: &str = "count";

/// `group_member_<G>` (instance `group_member`): hash, field `<U>` → join time.
pub fn member_key(group_id: u32) -> String {
    format!("group_member_{group_id}")
}

/// `group_set_<G>` (instance `group_set`): hash of the group push shield, fields
/// [`shield_field`].
pub fn shield_key(group_id: u32) -> String {
    format!("group_set_{group_id}")
}

/// `<U>_1`: the field of user U in [`shield_key`] → shield status (decimal).
pub fn shield_field(user_id: u32) -> String {
    format!("{user_id}_1")
}

/// `device_<suffix>` (instance `token`): `device_<U>` holds U's prefixed device token,
/// `device_<token>` the user id of a token (or `""` once superseded).
pub fn device_key(suffix: &str) -> String {
    format!("device_{suffix}")
}

/// `device_<U>` (instance `token`), see [`device_key`].
pub fn user_device_key(user_id: u32) -> String {
    device_key(&user_id.to_string())
}

/// `total_user_update` (instance `unread`): time of the last user-profile change.
pub const TOTAL_USER_UPDATE: &str = "total_user_update";

/// `last_update_group` (instance `unread`): time of the last group-session sync pass.
pub const LAST_UPDATE_GROUP: &str = "last_update_group";

/// `dbproxy_group_sync_lease` (instance `unread`, db-proxy's own; the original has no such
/// key): which instance runs the group-session sync, with a TTL.
pub const GROUP_SYNC_LEASE: &str = "dbproxy_group_sync_lease";

/// How a login name appears in db-proxy's lockout keys: lowercase md5 hex, so that any
/// string a client sends makes a short key or member.
pub fn login_digest(name: &str) -> String {
    format!("{:x}", md5::compute(name.as_bytes()))
}

/// `dbproxy_login_fail_<login_digest(name)>` (instance `unread`, db-proxy's own): list of a
/// login name's recent failure times, shared by every instance.
pub fn login_failures_key(name: &str) -> String {
    format!("dbproxy_login_fail_{}", login_digest(name))
}

/// `dbproxy_login_locked` (instance `unread`, db-proxy's own): zset of the locked names'
/// [`login_digest`]s, scored by the time each stays locked until.
pub const LOGIN_LOCKED: &str = "dbproxy_login_locked";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_of_the_original() {
        assert_eq!(single_counter_key(7), "msg_id_7");
        assert_eq!(group_counter_key(7), "group_msg_id_7");
        assert_eq!(single_unread_key(3), "unread_3");
        assert_eq!(group_total_key(5), "5_im_group_msg");
        assert_eq!(user_group_key(3, 5), "3_5_im_user_group");
        assert_eq!(member_key(5), "group_member_5");
        assert_eq!(shield_key(5), "group_set_5");
        assert_eq!(shield_field(3), "3_1");
        assert_eq!(device_key("tok"), "device_tok");
        assert_eq!(user_device_key(3), "device_3");
        assert_eq!(
            login_failures_key("bob"),
            "dbproxy_login_fail_9f9d51bc70ef21ca5c14f307980a29d8"
        );
    }
}
