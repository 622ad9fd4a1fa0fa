//! The client-ceiling stand-in: a dbproxy-transport server in this process whose handler
//! answers every request at once with a canned login reply (no backend work).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dbproxy_protocol::pb::im::server::ImValidateRsp;
use dbproxy_transport::{Handler, Request, Server, ServerConfig};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::workload::ATTACH;
use crate::common::Result;

struct Canned(Bytes);

impl Handler for Canned {
    fn handle(&self, _request: Request) -> impl std::future::Future<Output = Option<Bytes>> + Send {
        let body = self.0.clone();
        async move { Some(body) }
    }
}

/// A running trivial server.
pub struct TrivialServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TrivialServer {
    /// Listens on 127.0.0.1 (free port) on the current runtime.
    pub async fn start() -> Result<TrivialServer> {
        let reply = ImValidateRsp {
            user_name: "bench_0".into(),
            result_code: 0,
            result_string: Some(String::new()),
            user_info: None,
            attach_data: Some(Bytes::from_static(ATTACH)),
        };
        let config = ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            max_in_flight_per_connection: 4096,
            ..ServerConfig::default()
        };
        let server = Server::bind(config, Arc::new(Canned(reply.encode_to_vec().into()))).await?;
        let addr = *server
            .local_addrs()
            .first()
            .ok_or("trivial server has no address")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(TrivialServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), &mut self.task).await;
        self.task.abort();
    }
}
