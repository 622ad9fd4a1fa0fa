//! The byte vectors of docs/compatibility.md#byte-vectors, verbatim.

use bytes::BytesMut;
use dbproxy_protocol::pb::im::{group, message, server};
use dbproxy_protocol::{cid, decode, sid, Pdu, PduCodec};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .filter(|t| *t != "|" && *t != "+")
        .map(|t| u8::from_str_radix(t, 16).unwrap())
        .collect()
}

fn encode(pdu: Pdu) -> Vec<u8> {
    let mut buf = BytesMut::new();
    PduCodec::default().encode(pdu, &mut buf).unwrap();
    buf.to_vec()
}

fn decode_one(bytes: &[u8]) -> Pdu {
    let mut buf = BytesMut::from(bytes);
    let pdu = PduCodec::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    pdu
}

#[test]
fn heartbeat_bytes() {
    let expected = hex("00 00 00 10 | 00 01 | 00 00 | 00 07 | 07 01 | 00 00 | 00 00");
    assert_eq!(encode(Pdu::heartbeat()), expected);
    assert_eq!(Pdu::heartbeat().to_bytes().to_vec(), expected);
    assert_eq!(decode_one(&expected), Pdu::heartbeat());
}

#[test]
fn stop_notice_bytes() {
    let expected = hex("00 00 00 12 | 00 01 | 00 00 | 00 07 | 07 02 | 00 00 | 00 00 | 08 00");
    assert_eq!(encode(Pdu::stop_receive()), expected);
    let body = server::ImStopReceivePacket { result: 0 }.encode_to_vec();
    assert_eq!(body, vec![0x08, 0x00]);
    let pdu = decode_one(&expected);
    assert_eq!(pdu.command_id, cid::OTHER_STOP_RECV_PACKET);
    let m: server::ImStopReceivePacket = decode::decode(&pdu.body).unwrap();
    assert_eq!(m.result, 0);
}

const ATTACH: [u8; 12] = [0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0];

fn validate_request_bytes() -> Vec<u8> {
    let mut v = hex("00 00 00 48 00 01 00 00 00 07 07 03 00 07 00 00");
    v.extend(hex("0a 05 61 6c 69 63 65"));
    v.extend(hex("12 20"));
    v.extend(b"e10adc3949ba59abbe56e057f20f883e");
    v.extend(hex("a2 01 0c 00 00 00 01 00 00 00 05 00 00 00 00"));
    v
}

#[test]
fn validate_request_decodes() {
    let bytes = validate_request_bytes();
    let pdu = decode_one(&bytes);
    assert_eq!(pdu.service_id, sid::OTHER);
    assert_eq!(pdu.command_id, cid::OTHER_VALIDATE_REQ);
    assert_eq!(pdu.seq_num, 7);
    let req: server::ImValidateReq = decode::decode(&pdu.body).unwrap();
    assert_eq!(req.user_name, "alice");
    assert_eq!(req.password, "e10adc3949ba59abbe56e057f20f883e");
    assert_eq!(req.attach_data.as_deref(), Some(&ATTACH[..]));
    // And re-encoding gives the same bytes.
    let again = Pdu::new(sid::OTHER, cid::OTHER_VALIDATE_REQ, 7, req.encode_to_vec());
    assert_eq!(encode(again), bytes);
}

#[test]
fn validate_failure_reply_encodes() {
    let expected = hex("00 00 00 40 00 01 00 00 00 07 07 04 00 07 00 00 0a 05 61 6c 69 63 65 10 01 1a 16 e7 94 a8 e6 88 b7 e5 90 8d 2f e5 af 86 e7 a0 81 e9 94 99 e8 af af a2 01 0c 00 00 00 01 00 00 00 05 00 00 00 00");
    let rsp = server::ImValidateRsp {
        user_name: "alice".into(),
        result_code: 1,
        result_string: Some("用户名/密码错误".into()),
        user_info: None,
        attach_data: Some(ATTACH.to_vec().into()),
    };
    let pdu = Pdu::new(sid::OTHER, cid::OTHER_VALIDATE_RSP, 7, rsp.encode_to_vec());
    assert_eq!(encode(pdu), expected);
    let back: server::ImValidateRsp = decode::decode(&decode_one(&expected).body).unwrap();
    assert_eq!(back, rsp);
}

#[test]
fn read_ack_bytes() {
    let expected = hex("00 00 00 18 00 01 00 00 00 03 03 03 00 00 00 00 08 01 10 02 18 09 20 01");
    let pdu = decode_one(&expected);
    assert_eq!(pdu.command_id, cid::MSG_READ_ACK);
    assert_eq!(pdu.seq_num, 0);
    let ack: message::ImMsgDataReadAck = decode::decode(&pdu.body).unwrap();
    assert_eq!((ack.user_id, ack.session_id, ack.msg_id), (1, 2, 9));
    assert_eq!(ack.session_type, 1);
    let again = Pdu::new(sid::MSG, cid::MSG_READ_ACK, 0, ack.encode_to_vec());
    assert_eq!(encode(again), expected);
}

#[test]
fn group_create_reply_body() {
    let expected = hex("08 01 10 00 18 03 22 01 67 28 01 28 02 a2 01 00");
    let rsp = group::ImGroupCreateRsp {
        user_id: 1,
        result_code: 0,
        group_id: Some(3),
        group_name: "g".into(),
        user_id_list: vec![1, 2],
        attach_data: Some(Default::default()),
    };
    assert_eq!(rsp.encode_to_vec(), expected);
    let back: group::ImGroupCreateRsp = decode::decode(&expected).unwrap();
    assert_eq!(back, rsp);
}
