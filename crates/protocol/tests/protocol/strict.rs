//! proto2 strictness of `decode::decode`, and `wire::unknown_fields`.

use dbproxy_protocol::pb::im::{base_define, group, login, message, server};
use dbproxy_protocol::{decode::decode, decode::validate, wire, Error};
use prost::Message;

fn read_ack() -> Vec<u8> {
    vec![0x08, 0x01, 0x10, 0x02, 0x18, 0x09, 0x20, 0x01]
}

#[test]
fn missing_required_field() {
    // session_type (4) removed.
    let body = &read_ack()[..6];
    match decode::<message::ImMsgDataReadAck>(body) {
        Err(Error::MissingRequired { message, field }) => {
            assert_eq!(message, "IM.Message.IMMsgDataReadAck");
            assert_eq!(field, "session_type");
        }
        other => panic!("{other:?}"),
    }
    assert!(decode::<message::ImMsgDataReadAck>(&[]).is_err());
}

#[test]
fn undeclared_required_enum() {
    let mut body = read_ack();
    body[7] = 7; // SessionType 7 is not declared
    match decode::<message::ImMsgDataReadAck>(&body) {
        Err(Error::InvalidRequiredEnum { field, value, .. }) => {
            assert_eq!(field, "session_type");
            assert_eq!(value, 7);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn undeclared_optional_enum_reads_as_default() {
    let req = login::ImDeviceTokenReq {
        user_id: 5,
        device_token: "tok".into(),
        client_type: Some(0x12),
        attach_data: Some(vec![1, 2].into()),
    };
    let ok: login::ImDeviceTokenReq = decode(&req.encode_to_vec()).unwrap();
    assert_eq!(ok, req);

    let bad = login::ImDeviceTokenReq {
        client_type: Some(99),
        ..req.clone()
    };
    let got: login::ImDeviceTokenReq = decode(&bad.encode_to_vec()).unwrap();
    assert_eq!(got.client_type, None);
    assert_eq!(got.client_type(), base_define::ClientType::Windows);
    assert_eq!(got.user_id, 5);
    assert_eq!(got.device_token, "tok");
    assert_eq!(got.attach_data.as_deref(), Some(&[1u8, 2][..]));
}

fn user_info() -> base_define::UserInfo {
    base_define::UserInfo {
        user_id: 1,
        user_gender: 1,
        user_nick_name: "n".into(),
        avatar_url: "a".into(),
        department_id: 2,
        email: "e".into(),
        user_real_name: "r".into(),
        user_tel: "t".into(),
        user_domain: "d".into(),
        status: 0,
        sign_info: None,
    }
}

#[test]
fn nested_required_missing() {
    let rsp = server::ImValidateRsp {
        user_name: "u".into(),
        result_code: 0,
        result_string: None,
        user_info: Some(user_info()),
        attach_data: None,
    };
    let body = rsp.encode_to_vec();
    assert_eq!(decode::<server::ImValidateRsp>(&body).unwrap(), rsp);

    // Encode a UserInfo without user_tel (8) by hand: drop it from the nested bytes.
    let mut info = user_info().encode_to_vec();
    let pos = info.iter().position(|b| *b == 0x42).unwrap(); // tag of field 8, wire 2
    info.drain(pos..pos + 3);
    let mut body = vec![0x0a, 0x01, b'u', 0x10, 0x00, 0x22, info.len() as u8];
    body.extend(&info);
    match decode::<server::ImValidateRsp>(&body) {
        Err(Error::MissingRequired { message, field }) => {
            assert_eq!(message, "IM.BaseDefine.UserInfo");
            assert_eq!(field, "user_tel");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nested_optional_enum_stripped_inside_message() {
    // IMGroupInfoListRsp → GroupInfo has required group_type (enum): undeclared must fail.
    let gi = base_define::GroupInfo {
        group_id: 1,
        version: 1,
        group_name: "g".into(),
        group_avatar: "".into(),
        group_creator_id: 1,
        group_type: 99,
        shield_status: 0,
        group_member_list: vec![1],
    };
    let rsp = group::ImGroupInfoListRsp {
        user_id: 1,
        group_info_list: vec![gi],
        attach_data: None,
    };
    assert!(matches!(
        decode::<group::ImGroupInfoListRsp>(&rsp.encode_to_vec()),
        Err(Error::InvalidRequiredEnum { .. })
    ));
}

#[test]
fn packed_repeated_accepted() {
    // IMGroupCreateRsp user_id_list (5) packed: 2a 02 01 02
    let packed = [
        0x08, 0x01, 0x10, 0x00, 0x18, 0x03, 0x22, 0x01, 0x67, 0x2a, 0x02, 0x01, 0x02,
    ];
    let got: group::ImGroupCreateRsp = decode(&packed).unwrap();
    assert_eq!(got.user_id_list, vec![1, 2]);
    // Mixed packed + unpacked also accepted.
    let mut mixed = packed.to_vec();
    mixed.extend([0x28, 0x07]);
    let got: group::ImGroupCreateRsp = decode(&mixed).unwrap();
    assert_eq!(got.user_id_list, vec![1, 2, 7]);
}

#[test]
fn malformed_and_trailing_garbage() {
    let mut body = read_ack();
    body.push(0x80); // truncated varint key
    assert!(matches!(
        decode::<message::ImMsgDataReadAck>(&body),
        Err(Error::Malformed { .. })
    ));
    let mut body = read_ack();
    body.extend([0x00, 0x01]); // zero tag
    match decode::<message::ImMsgDataReadAck>(&body) {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("zero"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let mut body = read_ack();
    body.extend([0x2a, 0x05, 0x01]); // length beyond end
    assert!(matches!(
        decode::<message::ImMsgDataReadAck>(&body),
        Err(Error::Malformed { .. })
    ));
    let mut body = read_ack();
    body.extend([0x0f]); // wire type 7
    assert!(validate("IM.Message.IMMsgDataReadAck", &body).is_err());
    assert!(validate("IM.Message.IMMsgDataReadAck", &read_ack()).is_ok());
    assert!(matches!(
        validate("IM.Nope", &[]),
        Err(Error::UnknownMessageType(_))
    ));
}

#[test]
fn unknown_fields_skipped_and_wire_type_mismatch_is_unknown() {
    let mut body = read_ack();
    body.extend([0xf8, 0x01, 0x05]); // field 31 varint, unknown
    body.extend([0xfa, 0x01, 0x02, 0xaa, 0xbb]); // field 31 length-delimited
    let got: message::ImMsgDataReadAck = decode(&body).unwrap();
    assert_eq!(got.msg_id, 9);
    // user_id (1) sent as length-delimited: treated as unknown → required user_id missing.
    let mut body = vec![0x0a, 0x01, 0x05];
    body.extend(&read_ack()[2..]);
    assert!(matches!(
        decode::<message::ImMsgDataReadAck>(&body),
        Err(Error::MissingRequired { .. })
    ));
}

#[test]
fn unknown_fields_extracted_in_order() {
    let msg = message::ImMsgData {
        from_user_id: 1,
        to_session_id: 2,
        msg_id: 0,
        create_time: 3,
        msg_type: 1,
        msg_data: vec![0x41].into(),
        attach_data: Some(vec![9].into()),
    };
    let known = msg.encode_to_vec();
    let u1 = [0x38, 0x2a]; // field 7 varint 42
    let u2 = [0xfa, 0x01, 0x01, 0x55]; // field 31 bytes
    let mut body = Vec::new();
    body.extend(&known[..2]);
    body.extend(u1);
    body.extend(&known[2..]);
    body.extend(u2);
    let unknown = wire::unknown_fields("IM.Message.IMMsgData", &body).unwrap();
    let mut expected = u1.to_vec();
    expected.extend(u2);
    assert_eq!(unknown.to_vec(), expected);
    assert!(wire::unknown_fields("IM.Message.IMMsgData", &known)
        .unwrap()
        .is_empty());
    // The CID_MSG_DATA echo: decode, set msg_id, re-encode, append unknown.
    let mut echoed: message::ImMsgData = decode(&body).unwrap();
    echoed.msg_id = 77;
    let mut out = echoed.encode_to_vec();
    out.extend(&unknown);
    assert_eq!(
        wire::unknown_fields("IM.Message.IMMsgData", &out).unwrap(),
        unknown
    );
    assert!(wire::unknown_fields("IM.Message.IMMsgData", &[0x00]).is_err());
}
