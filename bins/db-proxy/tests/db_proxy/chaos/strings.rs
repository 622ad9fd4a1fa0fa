//! Hostile strings in every string and bytes field a request carries, against the real
//! binary: quotes, backslashes, SQL fragments, NUL bytes, 4-byte emoji, LIKE wildcards,
//! values at the maximum length of their column and one over, and text that is not UTF-8
//! (docs/compatibility.md#text-that-is-not-utf-8, #device-tokens, #signature-change,
//! #offline-files, Q-S01..Q-S03). Every table is fingerprinted before and after
//! (`CHECKSUM TABLE`, row counts, one digest per row of the tables that may change): the
//! requests change only their own rows, those rows hold exactly the bytes sent (read back
//! through the protocol), and every request that has a reply gets it.
//!
//! The binary runs with `max_in_flight_per_connection = 1`: a connection's requests are
//! then handled one after the other, so the reply to a request proves that every request
//! sent before it on that connection (also the ones never answered) has been handled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_protocol::pb::im::base_define::{
    GroupVersionInfo, MsgType, OfflineFileInfo, SessionType,
};
use dbproxy_protocol::pb::im::buddy::{
    ImChangeSignInfoReq, ImChangeSignInfoRsp, ImUsersInfoReq, ImUsersInfoRsp,
};
use dbproxy_protocol::pb::im::file::{
    ImFileAddOfflineReq, ImFileDelOfflineReq, ImFileHasOfflineReq, ImFileHasOfflineRsp,
};
use dbproxy_protocol::pb::im::group::{
    ImGroupCreateReq, ImGroupCreateRsp, ImGroupInfoListReq, ImGroupInfoListRsp,
};
use dbproxy_protocol::pb::im::login::{ImDeviceTokenReq, ImDeviceTokenRsp};
use dbproxy_protocol::pb::im::message::{
    ImGetMsgByIdReq, ImGetMsgByIdRsp, ImGetMsgListReq, ImGetMsgListRsp, ImMsgData,
};
use dbproxy_protocol::pb::im::server::{
    ImGetDeviceTokenReq, ImGetDeviceTokenRsp, ImValidateReq, ImValidateRsp,
};
use dbproxy_protocol::{cid, sid, Client};
use dbproxy_testkit::TestEnv;
use prost::Message;

use crate::common::binary::Binary;
use crate::common::{client_at, insert_user, CLIENT_MD5_123456};
use crate::raw::{body_of, frame, seq_of, Raw};

/// Text that must reach the database as bound data, never as SQL or a pattern.
fn hostile_texts() -> Vec<String> {
    [
        "'",
        "\"",
        "\\",
        "it's",
        "say \"hi\"",
        "back\\slash \\' \\\" \\\\ \\0 \\n",
        "'; DROP TABLE IMUser; --",
        "' OR '1'='1",
        "\" OR \"\"=\"",
        "' AND SLEEP(2) AND '1'='1",
        "a\0b",
        "\0",
        "😀🐉",
        "👨‍👩‍👧‍👦 zwj",
        "%",
        "_",
        "%_%",
        "x%y",
        "x_y",
        "\\%\\_",
        "/* c */ ; -- # ",
        "line\r\nbreak\ttab",
        "`backtick` $1 ?? :name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Bytes that are not UTF-8 (the last one: a UTF-16 surrogate, which MariaDB's utf8mb4
/// accepts although Rust's UTF-8 does not).
const NOT_UTF8: [&[u8]; 4] = [
    b"\xff\xfe",
    b"ok \xc3\x28 bad",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
];

/// attach_data values, echoed byte for byte and never stored.
fn attaches() -> Vec<Bytes> {
    vec![
        Bytes::new(),
        Bytes::from_static(b"\0\0\0\0"),
        Bytes::from_static(b"\xff\xfe\xfd\xfc"),
        Bytes::from_static(b"'; DROP TABLE IMUser; --"),
        Bytes::from_static(b"\\' \" %_ \xc3\x28"),
        Bytes::from(vec![0xab; 64 * 1024]),
    ]
}

/// A message field: `number`, length-delimited `value`.
fn put_bytes(out: &mut Vec<u8>, number: u32, value: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// A message field: `number`, varint `value`.
fn put_varint(out: &mut Vec<u8>, number: u32, value: u64) {
    prost::encoding::encode_key(number, prost::encoding::WireType::Varint, out);
    prost::encoding::encode_varint(value, out);
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The test's client: counts the requests it expects an answer to.
struct Peer {
    c: Client,
    attaches: Vec<Bytes>,
    answered: usize,
}

impl Peer {
    fn attach(&mut self) -> Option<Bytes> {
        let a = self.attaches[self.answered % self.attaches.len()].clone();
        Some(a)
    }

    async fn call<R: Message + prost::Name + Default>(
        &mut self,
        command: u16,
        req: &impl Message,
    ) -> R {
        let r = self
            .c
            .call_decode::<R>(command, req)
            .await
            .unwrap_or_else(|e| panic!("no answer to {command:#06x}: {e}"));
        self.answered += 1;
        r
    }

    async fn validate(&mut self, name: &str, password: &str) -> ImValidateRsp {
        let attach = self.attach();
        let r: ImValidateRsp = self
            .call(
                cid::OTHER_VALIDATE_REQ,
                &ImValidateReq {
                    user_name: name.into(),
                    password: password.into(),
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(r.user_name, name, "user name echoed");
        assert_eq!(r.attach_data, attach, "attach echoed");
        r
    }

    async fn send(&mut self, from: u32, to: u32, kind: MsgType, data: &[u8]) -> u32 {
        let req = ImMsgData {
            from_user_id: from,
            to_session_id: to,
            msg_id: 0,
            create_time: now(),
            msg_type: kind as i32,
            msg_data: Bytes::copy_from_slice(data),
            attach_data: self.attach(),
        };
        let r: ImMsgData = self.call(cid::MSG_DATA, &req).await;
        assert_eq!(
            r,
            ImMsgData {
                msg_id: r.msg_id,
                ..req
            },
            "the reply is the request with msg_id set"
        );
        r.msg_id
    }

    async fn sign(&mut self, user: u32, sign: &[u8]) -> ImChangeSignInfoRsp {
        let attach = self.attach();
        let r: ImChangeSignInfoRsp = self
            .call(
                cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
                &ImChangeSignInfoReq {
                    user_id: user,
                    sign_info: Bytes::copy_from_slice(sign),
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!((r.user_id, &r.attach_data), (user, &attach));
        r
    }

    async fn sign_of(&mut self, user: u32) -> String {
        let attach = self.attach();
        let r: ImUsersInfoRsp = self
            .call(
                cid::BUDDY_LIST_USER_INFO_REQUEST,
                &ImUsersInfoReq {
                    user_id: user,
                    user_id_list: vec![user],
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(r.attach_data, attach);
        assert_eq!(r.user_info_list.len(), 1);
        r.user_info_list[0].sign_info.clone().unwrap_or_default()
    }

    async fn create_group(
        &mut self,
        creator: u32,
        name: &[u8],
        avatar: &[u8],
        members: &[u32],
    ) -> ImGroupCreateRsp {
        let attach = self.attach();
        let r: ImGroupCreateRsp = self
            .call(
                cid::GROUP_CREATE_REQUEST,
                &ImGroupCreateReq {
                    user_id: creator,
                    group_type: 1,
                    group_name: Bytes::copy_from_slice(name),
                    group_avatar: Bytes::copy_from_slice(avatar),
                    member_id_list: members.to_vec(),
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(
            (r.user_id, &r.group_name[..], &r.attach_data),
            (creator, name, &attach),
            "group create echo"
        );
        r
    }

    async fn set_token(&mut self, user: u32, token: &str) {
        let attach = self.attach();
        let r: ImDeviceTokenRsp = self
            .call(
                cid::LOGIN_REQ_DEVICETOKEN,
                &ImDeviceTokenReq {
                    user_id: user,
                    device_token: token.into(),
                    client_type: Some(0x12),
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(
            r,
            ImDeviceTokenRsp {
                user_id: user,
                attach_data: attach
            }
        );
    }

    async fn files_of(&mut self, user: u32) -> Vec<OfflineFileInfo> {
        let attach = self.attach();
        let r: ImFileHasOfflineRsp = self
            .call(
                cid::FILE_HAS_OFFLINE_REQ,
                &ImFileHasOfflineReq {
                    user_id: user,
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!((r.user_id, &r.attach_data), (user, &attach));
        assert!(r.ip_addr_list.is_empty());
        r.offline_file_list
    }

    /// msg_id → msg_data of `user`'s history with `peer`, read by list and by ids.
    async fn history(&mut self, user: u32, peer: u32, kind: SessionType) -> BTreeMap<u32, Bytes> {
        let attach = self.attach();
        let list: ImGetMsgListRsp = self
            .call(
                cid::MSG_LIST_REQUEST,
                &ImGetMsgListReq {
                    user_id: user,
                    session_type: kind as i32,
                    session_id: peer,
                    msg_id_begin: 0,
                    msg_cnt: 1000,
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(list.attach_data, attach);
        let by_list: BTreeMap<u32, Bytes> = list
            .msg_list
            .iter()
            .map(|m| (m.msg_id, m.msg_data.clone()))
            .collect();
        assert_eq!(by_list.len(), list.msg_list.len(), "one row per msg_id");
        let ids: Vec<u32> = by_list.keys().copied().collect();
        assert!(ids.len() <= 100);
        let attach = self.attach();
        let by_id: ImGetMsgByIdRsp = self
            .call(
                cid::MSG_GET_BY_MSG_ID_REQ,
                &ImGetMsgByIdReq {
                    user_id: user,
                    session_type: kind as i32,
                    session_id: peer,
                    msg_id_list: ids,
                    attach_data: attach.clone(),
                },
            )
            .await;
        assert_eq!(by_id.attach_data, attach);
        let by_id: BTreeMap<u32, Bytes> = by_id
            .msg_list
            .iter()
            .map(|m| (m.msg_id, m.msg_data.clone()))
            .collect();
        assert_eq!(by_list, by_id, "list and by-id reads agree");
        by_list
    }
}

/// Every row of `before` is still there; those not in `may_change` unchanged; `added` new
/// rows.
fn assert_rows(
    table: &str,
    before: &BTreeMap<i64, String>,
    after: &BTreeMap<i64, String>,
    may_change: &BTreeSet<i64>,
    added: usize,
) {
    for (id, digest) in before {
        let now = after
            .get(id)
            .unwrap_or_else(|| panic!("{table}: row {id} disappeared"));
        if !may_change.contains(id) {
            assert_eq!(now, digest, "{table}: row {id} changed");
        }
    }
    let new: Vec<&i64> = after.keys().filter(|id| !before.contains_key(id)).collect();
    assert_eq!(new.len(), added, "{table}: new rows {new:?}");
}

/// A user with a name of exactly 32 characters (the IMUser.name column), hostile ones
/// among them.
const NAME_32: &str = "q'\"\\%_😀zzzzzzzzzzzzzzzzzzzzzzzzz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_in_every_string_field_change_only_their_own_rows() {
    let started = Instant::now();
    assert_eq!(NAME_32.chars().count(), 32);
    let env = TestEnv::new().await;
    let (alice, bob, carol, dave) = (
        insert_user(&env, "alice").await,
        insert_user(&env, "bob").await,
        insert_user(&env, "carol").await,
        insert_user(&env, "dave").await,
    );
    // Users whose names are hostile text: logins must find exactly them.
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    for n in [
        "it's",
        "say \"hi\"",
        "back\\slash",
        "😀🐉",
        "x%y",
        "x_y",
        "nul\0name",
    ] {
        names.insert(n.to_string(), insert_user(&env, n).await);
    }
    let long_user = env
        .store
        .users()
        .insert(
            &NewUser {
                name: NAME_32.into(),
                nick: "n".into(),
                domain: NAME_32.into(),
                password: password_hash("123456", "42"),
                salt: "42".into(),
                sex: 1,
                phone: "1".into(),
                email: "e@x".into(),
                avatar: String::new(),
                depart_id: 1,
                status: 0,
                sign_info: String::new(),
            },
            1000,
        )
        .await
        .unwrap();
    names.insert(NAME_32.to_string(), long_user);
    // One row in each table no request touches, so their checksums are not those of
    // empty tables.
    env.run_sql(
        "INSERT INTO IMAdmin (uname, pwd, status, created, updated) VALUES ('admin', 'x', 0, 1, 1)",
    )
    .await;
    env.run_sql("INSERT INTO IMDiscovery (itemName, itemUrl, itemPriority, status, created, updated) VALUES ('d', 'u', 1, 0, 1, 1)")
        .await;
    env.run_sql("INSERT INTO IMDepart (departName, priority, parentId, status, created, updated) VALUES ('dept', 0, 0, 0, 1, 1)")
        .await;
    env.run_sql("INSERT INTO IMAudio (fromId, toId, path, size, duration, created) VALUES (1, 2, 'p', 1, 1, 1)")
        .await;

    let bin = Binary::start(&env, 1, "max_in_flight_per_connection = 1");
    let c = client_at(bin.addr).await;
    let mut p = Peer {
        c,
        attaches: attaches(),
        answered: 0,
    };

    // Data the hostile requests must leave alone: a conversation and a group of carol and
    // dave, dave's signature, an offline file from dave to carol. And the seeds of what
    // they may change: alice and bob's conversation and group (both have sent, so both
    // have their sessions and the group sync has none to create).
    assert_ne!(
        p.send(carol, dave, MsgType::SingleText, b"bystander").await,
        0
    );
    assert_ne!(p.send(alice, bob, MsgType::SingleText, b"seed").await, 0);
    let g = p
        .create_group(alice, b"chat", b"av", &[alice, bob])
        .await
        .group_id
        .unwrap();
    let k = p
        .create_group(dave, b"keep", b"keep-av", &[dave, carol])
        .await
        .group_id
        .unwrap();
    assert_ne!(p.send(alice, g, MsgType::GroupText, b"group seed").await, 0);
    assert_ne!(p.send(bob, g, MsgType::GroupText, b"bob's seed").await, 0);
    assert_eq!(p.sign(dave, b"dave's own").await.result_code, 0);
    p.c.send(
        cid::FILE_ADD_OFFLINE_REQ,
        &ImFileAddOfflineReq {
            from_user_id: dave,
            to_user_id: carol,
            task_id: "keep-task".into(),
            file_name: "keep.bin".into(),
            file_size: 7,
        },
    )
    .await
    .unwrap();
    let keep_file = OfflineFileInfo {
        from_user_id: dave,
        task_id: "keep-task".into(),
        file_name: "keep.bin".into(),
        file_size: 7,
    };
    assert_eq!(p.files_of(carol).await, vec![keep_file.clone()]);
    let singles_before = p.history(bob, alice, SessionType::Single).await;
    let groups_before = p.history(alice, g, SessionType::Group).await;
    let bystander_before = p.history(dave, carol, SessionType::Single).await;

    let sums_before = env.checksums().await;
    let counts_before = env.row_counts().await;
    let digest_tables = [
        "IMUser",
        "IMGroup",
        "IMGroupMember",
        "IMRecentSession",
        "IMTransmitFile",
    ];
    let mut digests_before = BTreeMap::new();
    for t in digest_tables {
        digests_before.insert(t, env.row_digests(t).await);
    }
    // The shards holding alice and bob's messages.
    let single_shard = shard_with(&env, "IMMessage_", "seed").await;
    let group_shard = shard_with(&env, "IMGroupMessage_", "group seed").await;
    let shard_digests_before = (
        env.row_digests(&single_shard).await,
        env.row_digests(&group_shard).await,
    );

    // --- 1. Login: user_name and password (string fields). ---
    let mut probes = hostile_texts();
    probes.extend(
        [
            "x%", "x_", "%%", "_%", "xzy", "nul", "IT'S", "alice'--", "alice' #", "alice\0",
        ]
        .map(String::from),
    );
    probes.push(NAME_32.to_string());
    probes.push(format!("{NAME_32}z"));
    probes.push(NAME_32.replace('😀', "😁"));
    for name in names.keys() {
        probes.push(name.clone());
    }
    // The column's PAD SPACE collation ignores trailing spaces (Q-L06, kept).
    probes.extend(["alice ", "x_y  "].map(String::from));
    for (n, id) in [
        ("alice", alice),
        ("bob", bob),
        ("carol", carol),
        ("dave", dave),
    ] {
        names.insert(n.to_string(), id);
    }
    // The user a login name finds, as the column compares: (id, stored name).
    let finds = |probe: &str| {
        let stored = probe.trim_end_matches(' ');
        names.get(stored).map(|&id| (id, stored.to_string()))
    };
    let check = |name: &str, r: &ImValidateRsp| match finds(name) {
        Some((id, stored)) => {
            assert_eq!(r.result_code, 0, "login as {name:?}");
            let info = r.user_info.as_ref().expect("user info on success");
            assert_eq!(
                (info.user_id, info.user_real_name.as_str()),
                (id, stored.as_str())
            );
        }
        None => assert_eq!(
            (
                r.result_code,
                r.result_string.as_deref(),
                r.user_info.is_some()
            ),
            (1, Some("用户名/密码错误"), false),
            "login as {name:?}"
        ),
    };
    let mut logins = 0;
    for name in &probes {
        let r = p.validate(name, CLIENT_MD5_123456).await;
        logins += 1;
        check(name, &r);
    }
    // The same names all at once, one connection each: concurrent logins are answered from
    // batched lookups, with the same per-name result.
    let mut burst = tokio::task::JoinSet::new();
    for (i, name) in probes.iter().enumerate() {
        let (addr, name) = (bin.addr, name.clone());
        burst.spawn(async move {
            let c = Client::connect(addr).await.unwrap();
            let attach = Some(Bytes::from(format!("burst {i}")));
            let r: ImValidateRsp = c
                .call_decode(
                    cid::OTHER_VALIDATE_REQ,
                    &ImValidateReq {
                        user_name: name.clone(),
                        password: CLIENT_MD5_123456.into(),
                        attach_data: attach.clone(),
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("no answer to the login as {name:?}: {e}"));
            assert_eq!((&r.user_name, &r.attach_data), (&name, &attach));
            (name, r)
        });
    }
    while let Some(done) = burst.join_next().await {
        let (name, r) = done.unwrap();
        check(&name, &r);
        logins += 1;
        p.answered += 1;
    }
    let mut passwords = hostile_texts();
    passwords.push("e10adc3949ba59abbe56e057f20f883e' OR '1'='1".into());
    passwords.push("E10ADC3949BA59ABBE56E057F20F883E".into());
    passwords.push("x".repeat(64 * 1024));
    for pw in &passwords {
        let r = p.validate("alice", pw).await;
        assert_eq!(
            (r.result_code, r.user_info.is_some()),
            (1, false),
            "password {pw:?}"
        );
        // A success in between clears the failures: no lockout builds up.
        assert_eq!(p.validate("alice", CLIENT_MD5_123456).await.result_code, 0);
        logins += 2;
    }
    // Not UTF-8 in a string field: the body does not parse; validate answers result 2.
    let mut raw = Raw::connect(bin.addr).await;
    let mut seq = 1u16;
    for bad in NOT_UTF8 {
        for (name, pw) in [
            (bad, CLIENT_MD5_123456.as_bytes()),
            (b"alice".as_slice(), bad),
        ] {
            let mut body = Vec::new();
            put_bytes(&mut body, 1, name);
            put_bytes(&mut body, 2, pw);
            put_bytes(&mut body, 20, b"attach");
            let f = raw
                .call(&frame(sid::OTHER, cid::OTHER_VALIDATE_REQ, seq, &body))
                .await;
            seq += 1;
            let v = ImValidateRsp::decode(body_of(&f)).unwrap();
            assert_eq!(
                (
                    v.result_code,
                    v.result_string.as_deref(),
                    v.user_name.as_str(),
                    v.attach_data
                ),
                (2, Some("服务端内部错误"), "", None),
                "validate with {name:02x?} / {pw:02x?}"
            );
            logins += 1;
        }
    }

    // --- 2. Message content (bytes): stored exactly, or refused with msg_id 0. ---
    let mut contents: Vec<Vec<u8>> = hostile_texts()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let fits = [
        format!("'{}'", "x".repeat(4094)),
        "😀".repeat(4096),
        format!("{}😀", "x".repeat(4095)),
    ];
    contents.extend(fits.iter().map(|s| s.clone().into_bytes()));
    let too_long = [format!("{}'", "x".repeat(4096)), "😀".repeat(4097)];
    let mut expect_single = singles_before.clone();
    let mut expect_group = groups_before.clone();
    let mut refused = 0;
    let mut surrogate_stored = None;
    for (i, data) in contents.iter().enumerate() {
        let id = p.send(alice, bob, MsgType::SingleText, data).await;
        assert_ne!(id, 0, "message {i} ({} bytes) not stored", data.len());
        expect_single.insert(id, Bytes::copy_from_slice(data));
        if i % 3 == 0 || data.len() > 1000 {
            let id = p.send(alice, g, MsgType::GroupText, data).await;
            assert_ne!(id, 0, "group message {i} not stored");
            expect_group.insert(id, Bytes::copy_from_slice(data));
        }
    }
    for data in too_long.iter().map(|s| s.as_bytes()).chain(NOT_UTF8) {
        for (to, kind, expect) in [
            (bob, MsgType::SingleText, &mut expect_single),
            (g, MsgType::GroupText, &mut expect_group),
        ] {
            let id = p.send(alice, to, kind, data).await;
            if id == 0 {
                refused += 1;
            } else {
                // Only the surrogate may be stored (MariaDB's utf8mb4 takes it); then exactly.
                assert_eq!(data, b"\xed\xa0\x80", "{} bytes stored as {id}", data.len());
                surrogate_stored = Some(id);
                expect.insert(id, Bytes::copy_from_slice(data));
            }
        }
    }
    assert!(
        refused >= 2 * (too_long.len() + NOT_UTF8.len() - 1),
        "refused {refused}"
    );

    // --- 3. Signature (bytes; at most 128 bytes, UTF-8). ---
    let mut signs: Vec<(Vec<u8>, bool)> = hostile_texts()
        .into_iter()
        .map(|s| (s.into_bytes(), true))
        .collect();
    signs.push(("s".repeat(128).into_bytes(), true));
    signs.push(("😀".repeat(32).into_bytes(), true));
    signs.push(("s".repeat(129).into_bytes(), false));
    signs.push(("😀".repeat(33).into_bytes(), false));
    signs.extend(NOT_UTF8.iter().map(|b| (b.to_vec(), false)));
    let mut current = String::new();
    for (sign, ok) in &signs {
        let r = p.sign(alice, sign).await;
        if *ok {
            let text = String::from_utf8(sign.clone()).unwrap();
            assert_eq!(
                (r.result_code, r.sign_info.as_deref()),
                (0, Some(text.as_str()))
            );
            current = text;
        } else {
            assert_eq!(
                (r.result_code, r.sign_info),
                (1, None),
                "signature {sign:02x?}"
            );
        }
        assert_eq!(
            p.sign_of(alice).await,
            current,
            "alice's signature as stored"
        );
    }
    assert_eq!(p.sign_of(dave).await, "dave's own");

    // --- 4. Device tokens (string; at most 4096 bytes). Redis only. ---
    let mut tokens: Vec<(u32, String, bool)> = Vec::new();
    for (i, t) in hostile_texts().into_iter().enumerate() {
        tokens.push((5000 + i as u32, t, true));
    }
    tokens.push((5100, "t".repeat(4096), true));
    tokens.push((5101, "😀".repeat(1024), true));
    tokens.push((5102, "t".repeat(4097), false));
    tokens.push((5103, format!("{}😀", "t".repeat(4093)), false));
    for (user, token, _) in &tokens {
        p.set_token(*user, token).await;
    }
    // Not UTF-8: the body does not parse, no reply; the next request's reply comes first.
    for (i, bad) in NOT_UTF8.iter().enumerate() {
        let user = 5200 + i as u32;
        tokens.push((user, String::new(), false));
        let mut body = Vec::new();
        put_varint(&mut body, 1, user as u64);
        put_bytes(&mut body, 2, bad);
        put_varint(&mut body, 3, 0x12);
        raw.send(&frame(sid::LOGIN, cid::LOGIN_REQ_DEVICETOKEN, seq, &body))
            .await;
        let probe = ImGetDeviceTokenReq {
            user_id: vec![user],
            attach_data: None,
        };
        let f = raw
            .call(&frame(
                sid::OTHER,
                cid::OTHER_GET_DEVICE_TOKEN_REQ,
                seq + 1,
                &probe.encode_to_vec(),
            ))
            .await;
        assert_eq!(seq_of(&f), seq + 1);
        assert!(ImGetDeviceTokenRsp::decode(body_of(&f))
            .unwrap()
            .user_token_info
            .is_empty());
        seq += 2;
    }
    let attach = p.attach();
    let got: ImGetDeviceTokenRsp = p
        .call(
            cid::OTHER_GET_DEVICE_TOKEN_REQ,
            &ImGetDeviceTokenReq {
                user_id: tokens.iter().map(|t| t.0).collect(),
                attach_data: attach.clone(),
            },
        )
        .await;
    assert_eq!(got.attach_data, attach);
    let got: BTreeMap<u32, String> = got
        .user_token_info
        .iter()
        .map(|t| {
            assert_eq!((t.user_type, t.push_count, t.push_type), (0x12, 0, 1));
            (t.user_id, t.token.clone())
        })
        .collect();
    let want: BTreeMap<u32, String> = tokens
        .iter()
        .filter(|t| t.2)
        .map(|t| (t.0, t.1.clone()))
        .collect();
    assert_eq!(got, want, "stored device tokens");

    // --- 5. Group name and avatar (bytes; varchar(256), UTF-8). ---
    let mut groups: Vec<(Vec<u8>, Vec<u8>, bool)> = hostile_texts()
        .into_iter()
        .map(|s| (s.clone().into_bytes(), format!("av {s}").into_bytes(), true))
        .collect();
    groups.push((
        "n".repeat(256).into_bytes(),
        "😀".repeat(256).into_bytes(),
        true,
    ));
    groups.push((
        "😀".repeat(256).into_bytes(),
        "a".repeat(256).into_bytes(),
        true,
    ));
    groups.push(("n".repeat(257).into_bytes(), b"av".to_vec(), false));
    groups.push((b"g".to_vec(), "😀".repeat(257).into_bytes(), false));
    for bad in NOT_UTF8 {
        groups.push((bad.to_vec(), b"av".to_vec(), false));
        groups.push((b"g".to_vec(), bad.to_vec(), false));
    }
    let mut created: BTreeMap<u32, (String, String)> = BTreeMap::new();
    for (name, avatar, ok) in &groups {
        let r = p.create_group(alice, name, avatar, &[bob, alice]).await;
        assert_eq!(r.user_id_list, vec![alice, bob]);
        if *ok {
            assert_eq!(r.result_code, 0, "group {name:02x?}");
            let id = r.group_id.expect("group id on success");
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
            created.insert(id, (text(name), text(avatar)));
        } else {
            assert_eq!(
                (r.result_code, r.group_id),
                (1, None),
                "group {name:02x?} / {avatar:02x?}"
            );
        }
    }
    let attach = p.attach();
    let info: ImGroupInfoListRsp = p
        .call(
            cid::GROUP_INFO_REQUEST,
            &ImGroupInfoListReq {
                user_id: alice,
                group_version_list: created
                    .keys()
                    .map(|&group_id| GroupVersionInfo {
                        group_id,
                        version: 0,
                    })
                    .collect(),
                attach_data: attach.clone(),
            },
        )
        .await;
    assert_eq!(info.attach_data, attach);
    let read: BTreeMap<u32, (String, String)> = info
        .group_info_list
        .iter()
        .map(|gi| {
            assert_eq!((gi.group_creator_id, gi.version), (alice, 1));
            let mut members = gi.group_member_list.clone();
            members.sort_unstable();
            assert_eq!(members, vec![alice, bob]);
            (
                gi.group_id,
                (gi.group_name.clone(), gi.group_avatar.clone()),
            )
        })
        .collect();
    assert_eq!(read, created, "group names and avatars as stored");

    // --- 6. Offline files: task_id (varchar(64)) and file_name (varchar(255)), strings. ---
    let mut files: Vec<(String, String, bool)> = hostile_texts()
        .into_iter()
        .map(|s| (s.clone(), format!("{s}.bin"), true))
        .collect();
    files.push(("k".repeat(64), "f".repeat(255), true));
    files.push(("😀".repeat(64), "😀".repeat(255), true));
    files.push(("k".repeat(65), "ok.bin".into(), false));
    files.push(("ok-task".into(), "f".repeat(256), false));
    for (i, (task, name, _)) in files.iter().enumerate() {
        p.c.send(
            cid::FILE_ADD_OFFLINE_REQ,
            &ImFileAddOfflineReq {
                from_user_id: alice,
                to_user_id: carol,
                task_id: task.clone(),
                file_name: name.clone(),
                file_size: i as u32,
            },
        )
        .await
        .unwrap();
    }
    for bad in NOT_UTF8 {
        for (task, name) in [(bad, b"ok.bin".as_slice()), (b"ok-task".as_slice(), bad)] {
            let mut body = Vec::new();
            put_varint(&mut body, 1, alice as u64);
            put_varint(&mut body, 2, carol as u64);
            put_bytes(&mut body, 3, task);
            put_bytes(&mut body, 4, name);
            put_varint(&mut body, 5, 1);
            p.c.send_raw(frame(sid::FILE, cid::FILE_ADD_OFFLINE_REQ, 0, &body))
                .await
                .unwrap();
        }
    }
    // The answer to this comes after every add above was handled (one at a time).
    let mut want_files = vec![keep_file.clone()];
    want_files.extend(
        files
            .iter()
            .enumerate()
            .filter(|f| f.1 .2)
            .map(|(i, (task, name, _))| OfflineFileInfo {
                from_user_id: alice,
                task_id: task.clone(),
                file_name: name.clone(),
                file_size: i as u32,
            }),
    );
    assert_eq!(
        p.files_of(carol).await,
        want_files,
        "offline files as stored"
    );
    // Deletes by exact (from, to, task id): patterns and SQL delete nothing else.
    let deleted = ["%", "_", "' OR '1'='1", "'; DROP TABLE IMUser; --", "a\0b"];
    let no_match = [
        "%%",
        "t%",
        "_%",
        "' OR 1=1 --",
        "",
        "x%",
        "A\0B",
        "keep-task",
        "\\%",
    ];
    for task in no_match.iter().chain(deleted.iter()) {
        p.c.send(
            cid::FILE_DEL_OFFLINE_REQ,
            &ImFileDelOfflineReq {
                from_user_id: alice,
                to_user_id: carol,
                task_id: task.to_string(),
            },
        )
        .await
        .unwrap();
    }
    for task in ["%", "keep%", "_eep-task"] {
        p.c.send(
            cid::FILE_DEL_OFFLINE_REQ,
            &ImFileDelOfflineReq {
                from_user_id: dave,
                to_user_id: carol,
                task_id: task.into(),
            },
        )
        .await
        .unwrap();
    }
    want_files.retain(|f| !(f.from_user_id == alice && deleted.contains(&f.task_id.as_str())));
    assert_eq!(
        p.files_of(carol).await,
        want_files,
        "offline files after the deletes"
    );

    // --- Read back: messages hold exactly the bytes sent; nothing else moved. ---
    assert_eq!(
        p.history(bob, alice, SessionType::Single).await,
        expect_single,
        "single history"
    );
    assert_eq!(
        p.history(alice, bob, SessionType::Single).await,
        expect_single,
        "alice's view"
    );
    assert_eq!(
        p.history(bob, g, SessionType::Group).await,
        expect_group,
        "group history"
    );
    assert_eq!(
        p.history(dave, carol, SessionType::Single).await,
        bystander_before
    );
    assert!(p.history(dave, k, SessionType::Group).await.is_empty());

    let sums_after = env.checksums().await;
    let counts_after = env.row_counts().await;
    let stored_singles = expect_single.len() - singles_before.len();
    let stored_groups = expect_group.len() - groups_before.len();
    let kept_files = want_files.len() - 1;
    let mut want_counts = counts_before.clone();
    *want_counts.get_mut(single_shard.as_str()).unwrap() += stored_singles as i64;
    *want_counts.get_mut(group_shard.as_str()).unwrap() += stored_groups as i64;
    *want_counts.get_mut("IMGroup").unwrap() += created.len() as i64;
    *want_counts.get_mut("IMGroupMember").unwrap() += 2 * created.len() as i64;
    *want_counts.get_mut("IMTransmitFile").unwrap() += kept_files as i64;
    assert_eq!(counts_after, want_counts, "row counts of every table");
    let may_change: BTreeSet<&str> = BTreeSet::from([
        "IMUser",
        "IMGroup",
        "IMGroupMember",
        "IMRecentSession",
        "IMTransmitFile",
        single_shard.as_str(),
        group_shard.as_str(),
    ]);
    let mut unchanged = 0;
    for (table, sum) in &sums_before {
        if !may_change.contains(table.as_str()) {
            assert_eq!(sums_after.get(table), Some(sum), "checksum of {table}");
            unchanged += 1;
        }
    }
    assert_eq!(
        sums_after.len(),
        sums_before.len(),
        "tables: {:?}",
        sums_after.keys()
    );
    // IMAdmin, IMAudio, IMDepart, IMDiscovery, IMRelationShip and the 14 message shards
    // not written to.
    assert_eq!(unchanged, 19, "tables checked unchanged");
    // Row by row where a table may change.
    let after = |t: &'static str| {
        let env = &env;
        async move { env.row_digests(t).await }
    };
    assert_rows(
        "IMUser",
        &digests_before["IMUser"],
        &after("IMUser").await,
        &BTreeSet::from([alice as i64]),
        0,
    );
    assert_rows(
        "IMGroup",
        &digests_before["IMGroup"],
        &after("IMGroup").await,
        &BTreeSet::from([g as i64]),
        created.len(),
    );
    let new_groups: BTreeSet<i64> = after("IMGroup")
        .await
        .keys()
        .copied()
        .filter(|id| !digests_before["IMGroup"].contains_key(id))
        .collect();
    assert_eq!(
        new_groups,
        created.keys().map(|&id| id as i64).collect(),
        "new IMGroup rows"
    );
    assert_rows(
        "IMGroupMember",
        &digests_before["IMGroupMember"],
        &after("IMGroupMember").await,
        &BTreeSet::new(),
        2 * created.len(),
    );
    // Sessions: alice and bob's (single and group) are bumped, carol and dave's not.
    let bystanders = bystander_sessions(&env, carol, dave).await;
    let sessions_before = &digests_before["IMRecentSession"];
    let sessions_after = after("IMRecentSession").await;
    let bumped: BTreeSet<i64> = sessions_before
        .keys()
        .copied()
        .filter(|id| !bystanders.contains(id))
        .collect();
    assert_eq!(bystanders.len(), 2);
    assert_rows(
        "IMRecentSession",
        sessions_before,
        &sessions_after,
        &bumped,
        0,
    );
    let files_before = &digests_before["IMTransmitFile"];
    assert_eq!(files_before.len(), 1);
    assert_rows(
        "IMTransmitFile",
        files_before,
        &after("IMTransmitFile").await,
        &BTreeSet::new(),
        kept_files,
    );
    assert_rows(
        &single_shard,
        &shard_digests_before.0,
        &env.row_digests(&single_shard).await,
        &BTreeSet::new(),
        stored_singles,
    );
    assert_rows(
        &group_shard,
        &shard_digests_before.1,
        &env.row_digests(&group_shard).await,
        &BTreeSet::new(),
        stored_groups,
    );
    let users = env
        .count_sql("SELECT COUNT(*) AS n FROM IMUser WHERE sign_info <> ''")
        .await;
    assert_eq!(users, 2, "signatures: alice's and dave's");

    let log = bin.log_text();
    assert_eq!(log.matches("panicked").count(), 0);
    eprintln!(
        "strings: {} requests answered ({logins} logins, {} messages stored, {refused} refused{}, \
         {} signatures, {} tokens, {} groups created of {}, {} files kept of {}) in {:?}; \
         {unchanged} tables unchanged by checksum",
        p.answered,
        stored_singles + stored_groups,
        match surrogate_stored {
            Some(id) => format!(", the surrogate stored as msg {id}"),
            None => ", the surrogate refused".to_string(),
        },
        signs.len(),
        tokens.len(),
        created.len(),
        groups.len(),
        kept_files,
        files.len() + 2 * NOT_UTF8.len(),
        started.elapsed(),
    );
    drop(raw);
    drop(p);
    drop(bin);
    env.cleanup().await;
}

/// The message shard (`prefix` + 0..7) holding the one row whose content is `content`
/// (plain ASCII).
async fn shard_with(env: &TestEnv, prefix: &str, content: &str) -> String {
    assert!(content
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b' '));
    let mut found = Vec::new();
    for shard in 0..8 {
        let table = format!("{prefix}{shard}");
        let sql = format!("SELECT COUNT(*) AS n FROM `{table}` WHERE content = '{content}'");
        let n = env.query_i64s(&sql).await;
        if n == [1] {
            found.push(table);
        }
    }
    assert_eq!(found.len(), 1, "{content:?} in {found:?}");
    found.pop().unwrap()
}

/// IMRecentSession ids of carol's and dave's sessions.
async fn bystander_sessions(env: &TestEnv, carol: u32, dave: u32) -> BTreeSet<i64> {
    let sql = format!(
        "SELECT CAST(id AS SIGNED) AS n FROM IMRecentSession WHERE userId IN ({carol}, {dave})"
    );
    env.query_i64s(&sql).await.into_iter().collect()
}
