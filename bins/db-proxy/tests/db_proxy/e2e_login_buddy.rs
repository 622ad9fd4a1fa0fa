//! Login, push shield, user, department and signature commands end to end: a real server
//! over TCP, a real MariaDB database and a private Redis.

use crate::common::*;
use bytes::Bytes;
use dbproxy_model::user::password_hash;
use dbproxy_protocol::cid;
use dbproxy_protocol::pb::im::buddy::*;
use dbproxy_protocol::pb::im::login::*;
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use diesel_async::RunQueryDsl;
use prost::Message;

fn new_user(name: &str, salt: &str) -> dbproxy_model::user::NewUser {
    dbproxy_model::user::NewUser {
        name: name.into(),
        nick: format!("{name}-nick"),
        domain: name.into(),
        password: password_hash("123456", salt),
        salt: salt.into(),
        sex: 1,
        phone: "1380000".into(),
        email: format!("{name}@example.com"),
        avatar: "http://a/1.png".into(),
        depart_id: 1,
        status: 0,
        sign_info: "hi".into(),
    }
}

fn validate(name: &str, password: &str) -> ImValidateReq {
    ImValidateReq {
        user_name: name.into(),
        password: password.into(),
        attach_data: attach(),
    }
}

#[test]
fn password_scheme_matches_the_spec_example() {
    assert_eq!(
        password_hash("123456", "1234"),
        "b605e86d02eef8bfd0646f6a704c17c9"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_success_failure_lockout_and_hostile_names() {
    let srv = TestServer::start().await;
    let env = &srv.env;
    let a = srv.client().await;
    let id = env
        .store
        .users()
        .insert(&new_user("alice", "1234"), 100)
        .await
        .unwrap();

    let ok: ImValidateRsp = call(
        &a,
        cid::OTHER_VALIDATE_REQ,
        &validate("alice", CLIENT_MD5_123456),
    )
    .await;
    assert_eq!(ok.result_code, 0);
    assert_eq!(ok.result_string.as_deref(), Some("成功"));
    assert_eq!(ok.user_name, "alice");
    assert_eq!(ok.attach_data, attach());
    let info = ok.user_info.expect("user_info on success");
    assert_eq!(info.user_id, id);
    assert_eq!(info.user_real_name, "alice");
    assert_eq!(info.user_nick_name, "alice-nick");
    assert_eq!(info.email, "alice@example.com");
    assert_eq!(info.status, 0);
    assert_eq!(info.sign_info.as_deref(), Some("hi"));

    for name in [
        "nobody",
        "' OR 1=1 --",
        "alice' UNION SELECT 1 --",
        "🙂\\'\"",
    ] {
        let bad: ImValidateRsp = call(
            &a,
            cid::OTHER_VALIDATE_REQ,
            &validate(name, CLIENT_MD5_123456),
        )
        .await;
        assert_eq!(bad.result_code, 1, "{name}");
        assert_eq!(bad.result_string.as_deref(), Some("用户名/密码错误"));
        assert!(bad.user_info.is_none());
    }

    // Ten failures are tolerated, the eleventh locks, even the right password then.
    for _ in 0..11 {
        let r: ImValidateRsp = call(&a, cid::OTHER_VALIDATE_REQ, &validate("alice", "x")).await;
        assert_eq!(r.result_code, 1);
    }
    let locked: ImValidateRsp = call(
        &a,
        cid::OTHER_VALIDATE_REQ,
        &validate("alice", CLIENT_MD5_123456),
    )
    .await;
    assert_eq!(locked.result_code, 6);
    assert_eq!(
        locked.result_string.as_deref(),
        Some("用户名/密码错误次数太多")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_undecodable_and_database_outage() {
    let srv = TestServer::start().await;
    let env = &srv.env;
    let a = srv.client().await;

    // Missing required password: the one parse failure that gets a reply (code 2).
    let pdu = a
        .call_raw(
            7,
            cid::OTHER_VALIDATE_REQ,
            Bytes::from_static(&[0x0a, 0x01, b'a']),
        )
        .await
        .expect("code 2 reply");
    let r = ImValidateRsp::decode(pdu.body).unwrap();
    assert_eq!(r.result_code, 2);
    assert_eq!(r.result_string.as_deref(), Some("服务端内部错误"));
    assert!(r.attach_data.is_none());

    // A failing database answers 1 and is not counted towards the lockout (Q-L01).
    env.run_sql("RENAME TABLE IMUser TO IMUser_away").await;
    for _ in 0..12 {
        let r: ImValidateRsp = call(
            &a,
            cid::OTHER_VALIDATE_REQ,
            &validate("bob", CLIENT_MD5_123456),
        )
        .await;
        assert_eq!(r.result_code, 1);
    }
    env.run_sql("RENAME TABLE IMUser_away TO IMUser").await;
    env.store
        .users()
        .insert(&new_user("bob", "77"), 100)
        .await
        .unwrap();
    let r: ImValidateRsp = call(
        &a,
        cid::OTHER_VALIDATE_REQ,
        &validate("bob", CLIENT_MD5_123456),
    )
    .await;
    assert_eq!(
        r.result_code, 0,
        "outage failures must not lock the account"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_shield_set_and_query() {
    let srv = TestServer::start().await;
    let env = &srv.env;
    let a = srv.client().await;
    let id = env
        .store
        .users()
        .insert(&new_user("carol", "1"), 100)
        .await
        .unwrap();

    for _ in 0..2 {
        // The same value twice in one second still succeeds (Q-D05 fixed).
        let set: ImPushShieldRsp = call(
            &a,
            cid::LOGIN_REQ_PUSH_SHIELD,
            &ImPushShieldReq {
                user_id: id,
                shield_status: 1,
                attach_data: attach(),
            },
        )
        .await;
        assert_eq!(
            set,
            ImPushShieldRsp {
                user_id: id,
                result_code: 0,
                shield_status: Some(1),
                attach_data: attach(),
            }
        );
    }
    let q = call_pdu(
        &a,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        &ImQueryPushShieldReq {
            user_id: id,
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(
        (q.service_id, q.command_id),
        (1, cid::LOGIN_RES_QUERY_PUSH_SHIELD)
    );
    let q = q.body;
    let mut expected = vec![0x08, id as u8, 0x10, 0x00, 0x18, 0x01, 0xa2, 0x01, 12];
    expected.extend_from_slice(ATTACH);
    assert_eq!(&q[..], &expected[..], "exact reply bytes");

    let unknown: ImQueryPushShieldRsp = call(
        &a,
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
        &ImQueryPushShieldReq {
            user_id: 999_999,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(
        unknown,
        ImQueryPushShieldRsp {
            user_id: 999_999,
            result_code: 1,
            shield_status: None,
            attach_data: Some(Bytes::new()),
        }
    );
    let unknown_set: ImPushShieldRsp = call(
        &a,
        cid::LOGIN_REQ_PUSH_SHIELD,
        &ImPushShieldReq {
            user_id: 999_999,
            shield_status: 1,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(unknown_set.result_code, 1);
    assert_eq!(unknown_set.shield_status, None);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_info_changed_users_and_signature() {
    let srv = TestServer::start().await;
    let env = &srv.env;
    let a = srv.client().await;
    let users = env.store.users();
    let u1 = users.insert(&new_user("u1", "1"), 1000).await.unwrap();
    let u2 = users.insert(&new_user("u2", "2"), 2000).await.unwrap();
    let mut gone = new_user("u3", "3");
    gone.status = 3;
    let u3 = users.insert(&gone, 3000).await.unwrap();

    let info: ImUsersInfoRsp = call(
        &a,
        cid::BUDDY_LIST_USER_INFO_REQUEST,
        &ImUsersInfoReq {
            user_id: 7,
            user_id_list: vec![u3, 424242, u1, u1],
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(info.user_id, 7);
    let ids: Vec<u32> = info.user_info_list.iter().map(|u| u.user_id).collect();
    assert_eq!(
        ids,
        vec![u1, u3],
        "ascending, duplicates collapse, unknown ids vanish"
    );
    assert_eq!(
        info.user_info_list[1].status, 3,
        "list replies carry the real status"
    );

    let empty: ImUsersInfoRsp = call(
        &a,
        cid::BUDDY_LIST_USER_INFO_REQUEST,
        &ImUsersInfoReq {
            user_id: 7,
            user_id_list: vec![],
            attach_data: None,
        },
    )
    .await;
    assert!(empty.user_info_list.is_empty());
    assert_eq!(empty.attach_data, Some(Bytes::new()));

    // T = 0: everyone but resigned users; the newest `updated` comes back.
    let all: ImAllUserRsp = call(
        &a,
        cid::BUDDY_LIST_ALL_USER_REQUEST,
        &ImAllUserReq {
            user_id: u1,
            latest_update_time: 0,
            attach_data: None,
        },
    )
    .await;
    let ids: Vec<u32> = all.user_list.iter().map(|u| u.user_id).collect();
    assert_eq!(ids, vec![u1, u2]);
    assert_eq!(all.latest_update_time, 2000);

    // T != 0: `updated >= T`, any status (resigned users are delivered as updates). The
    // rows are older than this process, so this also proves the Q-Y02 gate fix.
    let since: ImAllUserRsp = call(
        &a,
        cid::BUDDY_LIST_ALL_USER_REQUEST,
        &ImAllUserReq {
            user_id: u1,
            latest_update_time: 2000,
            attach_data: None,
        },
    )
    .await;
    let ids: Vec<u32> = since.user_list.iter().map(|u| u.user_id).collect();
    assert_eq!(ids, vec![u2, u3]);
    assert_eq!(since.latest_update_time, 3000);

    // Signature: stored verbatim (hostile text), too long → 1, unknown user → 1.
    let hostile = "it's \\ \"quoted\" ' OR 1=1 -- 😀";
    let sign: ImChangeSignInfoRsp = call(
        &a,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
        &ImChangeSignInfoReq {
            user_id: u2,
            sign_info: hostile.into(),
            attach_data: attach(),
        },
    )
    .await;
    assert_eq!(
        sign,
        ImChangeSignInfoRsp {
            user_id: u2,
            result_code: 0,
            sign_info: Some(hostile.into()),
            attach_data: attach(),
        }
    );
    let back = users.by_ids(&[u1, u2]).await.unwrap();
    assert_eq!(back[1].sign_info, hostile);
    assert_eq!(back[0].sign_info, "hi", "no other row touched");
    let long: ImChangeSignInfoRsp = call(
        &a,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
        &ImChangeSignInfoReq {
            user_id: u2,
            sign_info: "x".repeat(129).into(),
            attach_data: None,
        },
    )
    .await;
    assert_eq!((long.result_code, long.sign_info), (1, None));
    let nobody: ImChangeSignInfoRsp = call(
        &a,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
        &ImChangeSignInfoReq {
            user_id: 999_999,
            sign_info: "x".into(),
            attach_data: None,
        },
    )
    .await;
    assert_eq!(nobody.result_code, 1);
    assert!(
        env.store
            .unread()
            .get("total_user_update")
            .await
            .unwrap()
            .is_some(),
        "total_user_update written for operators"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_since() {
    let srv = TestServer::start().await;
    let env = &srv.env;
    let a = srv.client().await;
    let d = env.store.departments();
    let d1 = d.insert("研发部", 0, 10, 100).await.unwrap();
    let d2 = d.insert("it's \"QA\"", d1, 5, 200).await.unwrap();
    let d3 = d.insert("odd", d1, 1, 300).await.unwrap();
    env.store
        .master(async move |c| {
            diesel::sql_query("UPDATE IMDepart SET status = 7 WHERE id = ?")
                .bind::<diesel::sql_types::Unsigned<diesel::sql_types::Integer>, _>(d3)
                .execute(c)
                .await
                .map_err(|e| dbproxy_model::Error::mysql("status", e))
        })
        .await
        .unwrap();

    let r: ImDepartmentRsp = call(
        &a,
        cid::BUDDY_LIST_DEPARTMENT_REQUEST,
        &ImDepartmentReq {
            user_id: 1,
            latest_update_time: 100,
            attach_data: None,
        },
    )
    .await;
    assert_eq!(
        r.latest_update_time, 300,
        "T raised by every row, even dropped ones"
    );
    assert_eq!(r.dept_list.len(), 1, "strictly greater; status 7 dropped");
    let dept = &r.dept_list[0];
    assert_eq!(
        (dept.dept_id, dept.parent_dept_id, dept.priority),
        (d2, d1, 5)
    );
    assert_eq!(dept.dept_name, "it's \"QA\"");

    let none: ImDepartmentRsp = call(
        &a,
        cid::BUDDY_LIST_DEPARTMENT_REQUEST,
        &ImDepartmentReq {
            user_id: 1,
            latest_update_time: 300,
            attach_data: None,
        },
    )
    .await;
    assert!(none.dept_list.is_empty());
    assert_eq!(none.latest_update_time, 300);
    srv.stop().await;
}
