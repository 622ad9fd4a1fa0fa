//! `db-proxy --doctor [--repair]` on a database the original damaged: db-proxy serves it
//! before the repair (reading the relation readers use), the dry run reports and changes
//! nothing (exit 1), the repair fixes it (exit 0) and a new check is clean (exit 0).

use std::process::Command;

use bytes::Bytes;
use dbproxy_protocol::pb::im::message::ImMsgData;
use dbproxy_protocol::{cid, Client};
use dbproxy_testkit::{free_port, TestEnv};

use crate::common::binary::{config_file, Binary};
use crate::common::{insert_user, single_text};

fn doctor(cfg: &std::path::Path, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_db-proxy"));
    cmd.arg("--config")
        .arg(cfg)
        .arg("--doctor")
        .env("RUST_LOG", "warn");
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_then_repairs_a_damaged_database() {
    let env = TestEnv::new().await;
    let (a, b) = (
        insert_user(&env, "doc_a").await,
        insert_user(&env, "doc_b").await,
    );
    assert_eq!((a, b), (1, 2), "fresh ids");
    // The original's race: two relations for users 1 and 2, a message under the lower one.
    env.run_sql(
        "INSERT INTO IMRelationShip (id, smallId, bigId, status, created, updated) \
         VALUES (1, 1, 2, 0, 1, 1), (2, 1, 2, 0, 2, 2)",
    )
    .await;
    env.run_sql(
        "INSERT INTO IMMessage_1 (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (1, 1, 2, 1, 'under the lower relation', 0, 1, 100, 100)",
    )
    .await;

    // db-proxy serves the damaged data: the send goes to the relation readers use (2).
    let proxy = Binary::start(&env, 1, "");
    let c = Client::connect(proxy.addr).await.unwrap();
    let r: ImMsgData = c
        .call_decode(
            cid::MSG_DATA,
            &single_text(a, b, 200, Bytes::from_static(b"sent before the repair")),
        )
        .await
        .unwrap();
    assert_eq!(r.msg_id, 1);
    drop(c);
    drop(proxy);
    let rows = env.single_messages().await;
    assert!(
        rows.contains(&(2, 1, b"sent before the repair".to_vec())),
        "{rows:?}"
    );

    let (_dir, cfg) = config_file(&env, free_port(), 1, "");
    let (code, out) = doctor(&cfg, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("found: duplicate relations: 1"), "{out}");
    assert!(out.contains("users 1 and 2"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        env.count_sql("SELECT COUNT(*) AS n FROM IMRelationShip WHERE status = 0")
            .await,
        2,
        "the dry run changed nothing"
    );

    let (code, out) = doctor(&cfg, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("changed: relation 1"), "{out}");
    assert!(out.contains("left: duplicate relations: 0"), "{out}");
    let rows = env.single_messages().await;
    assert!(
        rows.contains(&(2, 2, b"under the lower relation".to_vec())),
        "the hidden message moved after the kept relation's own: {rows:?}"
    );

    let (code, out) = doctor(&cfg, false);
    assert_eq!(code, 0, "{out}");
    env.cleanup().await;
}
