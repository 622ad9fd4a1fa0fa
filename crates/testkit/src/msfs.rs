//! A stand-in for TeamTalk's msfs file server, enough for db-proxy's two HTTP calls:
//! `POST /` with the multipart voice upload (answers msfs' JSON with a `url`) and
//! `GET /p/<n>` returning the stored payload with a Content-Length.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running stand-in; stops when dropped.
pub struct FakeMsfs {
    /// `127.0.0.1:<port>`, the value for `MsfsSite` / `StoreConfig::msfs_url`.
    pub site: String,
    uploads: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMsfs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMsfs {
    /// Starts the stand-in; with `fail` every upload answers `error_code: 1`.
    pub async fn start(fail: bool) -> FakeMsfs {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind msfs");
        let port = listener.local_addr().expect("addr").port();
        let uploads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let shared = uploads.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, port, fail, shared.clone()));
            }
        });
        FakeMsfs {
            site: format!("127.0.0.1:{port}"),
            uploads,
            task,
        }
    }

    /// The payloads uploaded so far, in order.
    pub fn uploads(&self) -> Vec<Vec<u8>> {
        self.uploads.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

async fn serve(mut sock: TcpStream, port: u16, fail: bool, uploads: Arc<Mutex<Vec<Vec<u8>>>>) {
    let Some((head, body)) = read_request(&mut sock).await else {
        return;
    };
    let (status, content_type, payload) = if head.starts_with("POST / ") {
        let json = match (fail, file_part(&body)) {
            (false, Some(data)) => {
                let mut all = uploads.lock().expect("uploads");
                all.push(data.to_vec());
                let n = all.len() - 1;
                format!(
                    r#"{{"error_code":0,"error_msg":"成功","path":"p/{n}","url":"http://127.0.0.1:{port}/p/{n}"}}"#
                )
            }
            _ => r#"{"error_code":1,"error_msg":"upload failed"}"#.to_owned(),
        };
        ("200 OK", "application/json", json.into_bytes())
    } else if let Some(rest) = head.strip_prefix("GET /p/") {
        let stored = rest
            .split(' ')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| uploads.lock().ok()?.get(n).cloned());
        match stored {
            Some(data) => ("200 OK", "application/octet-stream", data),
            None => ("404 Not Found", "text/plain", Vec::new()),
        }
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(&payload);
    let _ = sock.write_all(&out).await;
    let _ = sock.shutdown().await;
}

/// Reads one HTTP/1.1 request: (head text, body of Content-Length bytes).
async fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf[head_end..head_end + len].to_vec()))
}

/// The content of the multipart part (between the part's blank line and the closing
/// boundary line).
fn file_part(body: &[u8]) -> Option<&[u8]> {
    let start = body.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let end = body.windows(4).rposition(|w| w == b"\r\n--")?;
    (end >= start).then(|| &body[start..end])
}
