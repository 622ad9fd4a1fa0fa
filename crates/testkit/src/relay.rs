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
    /// While true, bytes are held in both directions (a stopped process).
    frozen: watch::Sender<bool>,
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
        let (frozen, _) = watch::channel(false);
        let task = tokio::spawn({
            let up = up.clone();
            let generation = generation.clone();
            let frozen = frozen.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(relay(
                        client,
                        target,
                        generation.subscribe(),
                        frozen.subscribe(),
                    ));
                }
            }
        });
        TcpRelay {
            port,
            up,
            generation,
            frozen,
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

    /// Holds every byte in both directions, on open and new connections, until
    /// [`TcpRelay::thaw`]: the backend looks stopped (SIGSTOP), not gone.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Passes the held bytes on and relays again.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<u64>,
    frozen: watch::Receiver<bool>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        _ = pump(client_read, server_write, frozen.clone()) => {}
        _ = pump(server_read, client_write, frozen) => {}
        _ = cut.changed() => {}
    }
}

/// Copies `from` to `to`, holding what it read while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
