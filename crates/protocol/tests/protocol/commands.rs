//! The command table of docs/compatibility.md#command-table.

use dbproxy_protocol::commands::COMMANDS;
use dbproxy_protocol::pb::im::{buddy, file, group, login, message, server};
use dbproxy_protocol::{cid, lookup, sid};
use prost::Name;

#[test]
fn table_shape() {
    assert_eq!(COMMANDS.len(), 26);
    assert_eq!(COMMANDS.iter().filter(|c| c.response.is_none()).count(), 3);
    for c in &COMMANDS {
        assert_eq!(lookup(c.request_cid), Some(c));
        assert!(c.name.starts_with("CID_"));
        if let Some((s, _)) = c.response {
            assert_eq!(s, c.request_sid());
        }
    }
    assert!(lookup(cid::OTHER_HEARTBEAT).is_none());
    assert!(lookup(cid::BUDDY_LIST_CHANGE_AVATAR_REQUEST).is_none());
    assert!(lookup(0).is_none());
}

#[test]
fn selected_rows() {
    let v = lookup(0x0703).unwrap();
    assert_eq!(v.request_type(), server::ImValidateReq::full_name());
    assert_eq!(v.response, Some((sid::OTHER, 0x0704)));
    let m = lookup(cid::MSG_DATA).unwrap();
    assert_eq!(m.response, Some((sid::MSG, 0x0301)));
    assert_eq!(m.request_type(), message::ImMsgData::full_name());
    assert_eq!(lookup(0x0303).unwrap().response, None);
    assert_eq!(lookup(0x050b).unwrap().response, None);
    assert_eq!(lookup(0x050c).unwrap().response, None);
    assert_eq!(
        lookup(0x0405).unwrap().request_type(),
        group::ImGroupCreateReq::full_name()
    );
    assert_eq!(
        lookup(0x0108).unwrap().request_type(),
        login::ImDeviceTokenReq::full_name()
    );
    assert_eq!(
        lookup(0x0210).unwrap().response,
        Some((sid::BUDDY_LIST, 0x0211))
    );
    assert_eq!(
        lookup(0x0509).unwrap().request_type(),
        file::ImFileHasOfflineReq::full_name()
    );
    assert_eq!(lookup(0x0711).unwrap().response, Some((sid::OTHER, 0x0712)));
    assert_eq!(
        lookup(0x0201).unwrap().request_type(),
        buddy::ImRecentContactSessionReq::full_name()
    );
}

#[test]
fn every_request_type_is_known_to_the_decoder() {
    for c in &COMMANDS {
        // Empty body: either OK (no required fields) or MissingRequired, never UnknownMessageType.
        match dbproxy_protocol::decode::validate(&c.request_type(), &[]) {
            Ok(()) | Err(dbproxy_protocol::Error::MissingRequired { .. }) => {}
            Err(e) => panic!("{}: {e}", c.name),
        }
    }
}
