//! `cargo xtask demo`: see the server work in one command. Sets up the local database and
//! demo data if needed, starts db-proxy in-process on a free port, then speaks the real
//! protocol: alice logs in, sends bob a message, bob lists it and reads his unread count.

use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use db_proxy::app::ActionHandler;
use dbproxy_action::{now, Actions};
use dbproxy_model::Store;
use dbproxy_protocol::pb::im::base_define::{MsgType, SessionType};
use dbproxy_protocol::pb::im::message::{
    ImGetMsgListReq, ImGetMsgListRsp, ImMsgData, ImMsgDataReadAck, ImUnreadMsgCntReq,
    ImUnreadMsgCntRsp,
};
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use dbproxy_protocol::{cid, Client};
use dbproxy_transport::Server;

use crate::common::{self, Result};
use crate::{db_setup, seed};

/// md5hex of the demo password `123456`, as a TeamTalk client sends it.
const CLIENT_PASSWORD: &str = "e10adc3949ba59abbe56e057f20f883e";

pub async fn run(args: &db_setup::Args) -> Result<ExitCode> {
    db_setup::setup(args.admin_url.as_deref()).await?;
    seed::seed().await?;

    let s = common::settings()?;
    let store = Store::connect(&s.store_config()).await?;
    let actions = Actions::new(store, s.action_settings());
    let mut config = s.server_config();
    config.listen = vec!["127.0.0.1:0".parse()?];
    let server = Server::bind(config, Arc::new(ActionHandler(actions))).await?;
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    println!("demo: db-proxy listening on {addr}");

    let outcome = talk(addr).await;
    let _ = stop.send(());
    running.await??;
    outcome?;
    Ok(ExitCode::SUCCESS)
}

async fn login(c: &Client, name: &str) -> Result<u32> {
    let rsp: ImValidateRsp = c
        .call_decode(
            cid::OTHER_VALIDATE_REQ,
            &ImValidateReq {
                user_name: name.into(),
                password: CLIENT_PASSWORD.into(),
                attach_data: None,
            },
        )
        .await?;
    let info = rsp.user_info.ok_or_else(|| {
        format!(
            "login of `{name}` failed: result {} {:?}",
            rsp.result_code, rsp.result_string
        )
    })?;
    println!(
        "login  `{name}` → result {} {:?}, user id {}",
        rsp.result_code,
        rsp.result_string.unwrap_or_default(),
        info.user_id
    );
    Ok(info.user_id)
}

async fn unread(c: &Client, user: u32) -> Result<ImUnreadMsgCntRsp> {
    Ok(c.call_decode(
        cid::MSG_UNREAD_CNT_REQUEST,
        &ImUnreadMsgCntReq {
            user_id: user,
            attach_data: None,
        },
    )
    .await?)
}

async fn talk(addr: std::net::SocketAddr) -> Result<()> {
    let c = Client::connect(addr).await?;
    let alice = login(&c, "alice").await?;
    let bob = login(&c, "bob").await?;

    let text = format!("hello bob, it is {}", now());
    let sent: ImMsgData = c
        .call_decode(
            cid::MSG_DATA,
            &ImMsgData {
                from_user_id: alice,
                to_session_id: bob,
                msg_id: 0,
                create_time: now(),
                msg_type: MsgType::SingleText as i32,
                msg_data: Bytes::from(text.clone()),
                attach_data: None,
            },
        )
        .await?;
    println!("send   alice → bob {text:?} → msg_id {}", sent.msg_id);

    let list: ImGetMsgListRsp = c
        .call_decode(
            cid::MSG_LIST_REQUEST,
            &ImGetMsgListReq {
                user_id: bob,
                session_type: SessionType::Single as i32,
                session_id: alice,
                msg_id_begin: 0,
                msg_cnt: 3,
                attach_data: None,
            },
        )
        .await?;
    println!(
        "list   bob's newest {} messages with alice:",
        list.msg_list.len()
    );
    for m in &list.msg_list {
        println!(
            "         #{} from {}: {}",
            m.msg_id,
            m.from_session_id,
            String::from_utf8_lossy(&m.msg_data)
        );
    }

    let before = unread(&c, bob).await?;
    println!("unread bob has {} unread message(s)", before.total_cnt);
    c.send(
        cid::MSG_READ_ACK,
        &ImMsgDataReadAck {
            user_id: bob,
            session_id: alice,
            msg_id: sent.msg_id,
            session_type: SessionType::Single as i32,
        },
    )
    .await?;
    // The read-ack has no reply; give it a moment before asking again.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    println!(
        "read   bob acknowledges → {} unread",
        unread(&c, bob).await?.total_cnt
    );
    Ok(())
}
