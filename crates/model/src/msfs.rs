//! msfs HTTP client: the voice payload store (docs/compatibility.md#voice-messages-and-the-aes-placeholder, Q-X01, Q-X02, Q-M10).
//!
//! Upload: `POST <MsfsSite>/` multipart/form-data exactly as the original (boundary
//! `WebKitFormBoundary8riBH6S4ZsoT69so`, part `file`, filename `1.audio`, part type
//! `image/jpg`); the JSON reply must have `error_code` 0 and its `url` is the stored path.
//! Download: `GET <path>` with the download timeout (2 s by default).
//! Both bounded by timeouts; no TLS support compiled in (msfs is plain HTTP). Behind a
//! circuit breaker ([`crate::breaker`]): while msfs does not answer (connect failures,
//! timeouts), voice messages get their failure reply at once instead of each waiting out
//! the upload timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::Breaker;
use crate::error::{Error, Result};

/// Multipart boundary used by the original.
pub const BOUNDARY: &str = "WebKitFormBoundary8riBH6S4ZsoT69so";

/// HTTP client for msfs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MsfsClient {
    client: reqwest::Client,
    upload_url: String,
    upload_timeout: Duration,
    download_timeout: Duration,
    breaker: Arc<Breaker>,
}

/// Normalise `MsfsSite`: `http://` when no scheme, exactly one trailing `/` (Q-X01).
pub fn upload_url(site: &str) -> String {
    let site = site.trim();
    let mut url = if site.contains("://") {
        site.to_string()
    } else {
        format!("http://{site}")
    };
    if !url.ends_with('/') {
        url.push('/');
    }
    url
}

/// The multipart body the original sends for `payload`.
pub fn multipart_body(payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 256);
    body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
    body.extend_from_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"1.audio\"\r\n",
    );
    body.extend_from_slice(b"Content-Type: image/jpg\r\n\r\n");
    body.extend_from_slice(payload);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Whether a call found msfs not answering (what the breaker counts): no connection or a
/// timeout, not an answer msfs gave.
fn not_answering<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::Http { source: Some(e), .. }) if e.is_connect() || e.is_timeout())
}

fn count_call(op: &'static str, failed: bool) {
    metrics::counter!(crate::metrics::MSFS_CALLS, "op" => op).increment(1);
    if failed {
        metrics::counter!(crate::metrics::MSFS_FAILURES, "op" => op).increment(1);
    }
}

fn http_err(context: &str, e: reqwest::Error) -> Error {
    Error::Http {
        context: context.to_string(),
        message: e.to_string(),
        source: Some(e),
    }
}

/// An msfs answer that is not what the protocol expects.
fn bad_reply(context: &str, message: impl std::fmt::Display) -> Error {
    Error::Http {
        context: context.to_string(),
        message: message.to_string(),
        source: None,
    }
}

impl MsfsClient {
    /// Client for `site` (`MsfsSite`) with the given timeouts.
    pub fn new(
        site: &str,
        connect: Duration,
        upload: Duration,
        download: Duration,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .no_proxy()
            .build()
            .map_err(|e| http_err("msfs client", e))?;
        for op in ["upload", "download"] {
            metrics::counter!(crate::metrics::MSFS_CALLS, "op" => op).increment(0);
            metrics::counter!(crate::metrics::MSFS_FAILURES, "op" => op).increment(0);
        }
        let upload_url = upload_url(site);
        let breaker = Breaker::new(
            // Not the URL: MsfsSite may carry credentials, and the name reaches logs and labels.
            "msfs",
            {
                let client = client.clone();
                let url = upload_url.clone();
                // Any HTTP answer means msfs is back.
                Arc::new(move || {
                    let (client, url) = (client.clone(), url.clone());
                    Box::pin(async move { client.get(&url).timeout(connect).send().await.is_ok() })
                })
            },
            connect + connect,
        );
        Ok(MsfsClient {
            client,
            upload_url,
            upload_timeout: upload,
            download_timeout: download,
            breaker,
        })
    }

    /// Upload a voice payload (without the 4-byte duration prefix); returns the `url`
    /// from msfs' JSON reply. Fails on HTTP/transport errors, timeout, non-JSON reply,
    /// `error_code` ≠ 0 or a missing/empty `url`.
    pub async fn upload(&self, payload: &[u8]) -> Result<String> {
        let started = std::time::Instant::now();
        let out = self
            .breaker
            .call(self.upload_unguarded(payload), not_answering)
            .await;
        count_call("upload", out.is_err());
        crate::stages::note("msfs", "upload", started.elapsed());
        out
    }

    async fn upload_unguarded(&self, payload: &[u8]) -> Result<String> {
        let ctx = "msfs upload";
        let resp = self
            .client
            .post(&self.upload_url)
            .timeout(self.upload_timeout)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(multipart_body(payload))
            .send()
            .await
            .map_err(|e| http_err(ctx, e))?;
        let bytes = resp.bytes().await.map_err(|e| http_err(ctx, e))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad_reply(ctx, e))?;
        let code_ok = match json.get("error_code") {
            Some(serde_json::Value::Number(n)) => n.as_i64() == Some(0),
            Some(serde_json::Value::String(s)) => s.trim() == "0",
            _ => false,
        };
        if !code_ok {
            return Err(bad_reply(ctx, format!("error reply: {json}")));
        }
        match json.get("url").and_then(|u| u.as_str()) {
            Some(u) if !u.is_empty() => Ok(u.to_string()),
            _ => Err(bad_reply(ctx, "reply without url")),
        }
    }

    /// Download `url`; returns the first `size` bytes only when the reported content
    /// length equals `size` (the original's rule), `None` otherwise.
    pub async fn download(&self, url: &str, size: u32) -> Result<Option<Vec<u8>>> {
        let started = std::time::Instant::now();
        let out = self
            .breaker
            .call(self.download_unguarded(url, size), not_answering)
            .await;
        count_call("download", out.is_err());
        crate::stages::note("msfs", "download", started.elapsed());
        out
    }

    async fn download_unguarded(&self, url: &str, size: u32) -> Result<Option<Vec<u8>>> {
        let ctx = "msfs download";
        let resp = self
            .client
            .get(url)
            .timeout(self.download_timeout)
            .send()
            .await
            .map_err(|e| http_err(ctx, e))?;
        if resp.content_length() != Some(u64::from(size)) {
            return Ok(None);
        }
        let mut bytes = resp.bytes().await.map_err(|e| http_err(ctx, e))?.to_vec();
        bytes.truncate(size as usize);
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_normalisation() {
        assert_eq!(upload_url("127.0.0.1"), "http://127.0.0.1/");
        assert_eq!(upload_url("http://h:8700/"), "http://h:8700/");
        assert_eq!(upload_url("http://h:8700"), "http://h:8700/");
    }

    #[test]
    fn body_shape() {
        let b = multipart_body(b"AB");
        let s = String::from_utf8(b).unwrap();
        assert_eq!(
            s,
            "--WebKitFormBoundary8riBH6S4ZsoT69so\r\nContent-Disposition: form-data; name=\"file\"; filename=\"1.audio\"\r\nContent-Type: image/jpg\r\n\r\nAB\r\n--WebKitFormBoundary8riBH6S4ZsoT69so--\r\n"
        );
    }
}
