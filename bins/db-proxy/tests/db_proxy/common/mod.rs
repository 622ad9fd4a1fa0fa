//! End-to-end harness: a real db-proxy server (transport + actions) on 127.0.0.1:0 over a
//! fresh MariaDB database and a private Redis, spoken to over TCP with the protocol
//! crate's `Client`.
#![allow(dead_code)]

pub mod binary;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use db_proxy::app::ActionHandler;
use dbproxy_action::{ActionSettings, Actions};
use dbproxy_model::user::{password_hash, NewUser};
use dbproxy_protocol::pb::im::base_define::MsgType;
use dbproxy_protocol::pb::im::message::ImMsgData;
use dbproxy_protocol::{Client, ClientOptions, Pdu};
use dbproxy_testkit::TestEnv;
use dbproxy_transport::{Server, ServerConfig};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// md5hex("123456"), what a client sends for the demo password.
pub const CLIENT_MD5_123456: &str = "e10adc3949ba59abbe56e057f20f883e";
/// A msg_server-style "handle" attach: type 1, handle 5, service type 0.
pub const ATTACH: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0];

pub fn attach() -> Option<Bytes> {
    Some(Bytes::from_static(ATTACH))
}

/// A running server and its backends.
pub struct TestServer {
    pub env: TestEnv,
    pub addr: SocketAddr,
    pub actions: Actions,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}, ActionSettings::default()).await
    }

    /// Starts with adjusted backend config (e.g. an msfs URL) and action settings.
    pub async fn start_with(
        adjust: impl FnOnce(&mut dbproxy_model::StoreConfig),
        settings: ActionSettings,
    ) -> TestServer {
        let env = TestEnv::with_config(adjust).await;
        let store = env.store.clone();
        Self::serve(env, store, settings).await
    }

    /// A server over `store` (which may reach `env`'s backends in another way, e.g. with a
    /// replica as its slave); `env` is cleaned up by [`TestServer::stop`].
    pub async fn serve(
        env: TestEnv,
        store: dbproxy_model::Store,
        settings: ActionSettings,
    ) -> TestServer {
        let actions = Actions::new(store, settings);
        let config = ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..ServerConfig::default()
        };
        let server = Server::bind(config, Arc::new(ActionHandler(actions.clone())))
            .await
            .expect("bind");
        let addr = server.local_addrs()[0];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        TestServer {
            env,
            addr,
            actions,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        client_at(self.addr).await
    }

    /// Stops the server (graceful) and drops the database and Redis.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.env.cleanup().await;
    }

    /// Creates an active user with password "123456" and the given salt; returns its id.
    pub async fn user(&self, name: &str) -> u32 {
        insert_user(&self.env, name).await
    }
}

/// A client of the server at `addr` (10 s request timeout).
pub async fn client_at(addr: SocketAddr) -> Client {
    Client::connect_with(
        addr,
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("connect")
}

/// Creates an active user `name` with password "123456" in `env`'s database; returns its id.
pub async fn insert_user(env: &TestEnv, name: &str) -> u32 {
    let salt = format!("{}", name.len() * 7 % 10000);
    env.store
        .users()
        .insert(
            &NewUser {
                name: name.into(),
                nick: format!("{name}-nick"),
                domain: name.into(),
                password: password_hash("123456", &salt),
                salt,
                sex: 1,
                phone: "13800000000".into(),
                email: format!("{name}@example.com"),
                avatar: String::new(),
                depart_id: 1,
                status: 0,
                sign_info: String::new(),
            },
            1000,
        )
        .await
        .expect("insert user")
}

/// A 1:1 text message (type 1) from `from` to `to` as a message server sends it: msg_id 0,
/// no attach.
pub fn single_text(from: u32, to: u32, create_time: u32, msg_data: Bytes) -> ImMsgData {
    ImMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time,
        msg_type: MsgType::SingleText as i32,
        msg_data,
        attach_data: None,
    }
}

/// Sends `req` as `cid` and decodes the reply as `R` (panics on timeout / no reply).
pub async fn call<R: Message + prost::Name + Default>(
    c: &Client,
    cid: u16,
    req: &impl Message,
) -> R {
    c.call_decode::<R>(cid, req).await.expect("reply")
}

/// Sends `req` and returns the raw reply PDU.
pub async fn call_pdu(c: &Client, cid: u16, req: &impl Message) -> Pdu {
    c.call(cid, req).await.expect("reply")
}

/// Asserts that a request which normally gets an answer gets none: a short-timeout call
/// times out, and the same connection then still answers a heartbeat-sized request.
pub async fn assert_no_reply(server: &TestServer, cid: u16, req: &impl Message) {
    let c = Client::connect_with(
        server.addr,
        ClientOptions {
            request_timeout: Duration::from_millis(600),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("connect");
    match c.call(cid, req).await {
        Err(dbproxy_protocol::Error::Timeout { .. }) => {}
        other => panic!("expected no reply for {cid:#06x}, got {other:?}"),
    }
    assert!(!c.is_closed(), "connection must stay open");
}

/// Polls `check` until it returns true or 3 s pass. Requests on one connection may run
/// concurrently (as in the original), so a fire-and-forget command's effect is awaited.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
