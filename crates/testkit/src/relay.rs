//! A TCP relay a test can cut and restore, to make a backend "go away and come back"
//! (MariaDB restart, network drop) without touching the shared server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:<port>` to a target while up; when cut, drops every relayed
/// connection and refuses (accepts and closes) new ones. Stops when dropped.
pub struct TcpRelay {
    /// Local port to point a client at.
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TcpRelay {
    fn drop(&mut self) {
        self.task.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

impl TcpRelay {
    /// Starts relaying to `target` (up).
    pub async fn start(target: SocketAddr) -> TcpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let task = tokio::spawn({
            let up = up.clone();
            let generation = generation.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(relay(client, target, generation.subscribe()));
                }
            }
        });
        TcpRelay {
            port,
            up,
            generation,
            task,
        }
    }

    /// Cuts every relayed connection and refuses new ones until [`TcpRelay::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Accepts and relays again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}
