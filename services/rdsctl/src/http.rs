//! The HTTP client of the sim's local control endpoint and of `demo`'s
//! metrics read (JSON or text over loopback): hyper's HTTP/1.1 client on one
//! connection per request, a deadline on the whole exchange and a cap on the
//! reply body.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::error::{CtlError, Result};

/// Largest reply accepted (the control API answers small JSON documents).
const MAX_REPLY: usize = 8 << 20;

pub struct Reply {
    pub status: u16,
    pub body: String,
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    deadline: Duration,
) -> Result<Reply> {
    tokio::time::timeout(deadline, exchange(addr, method, path, body))
        .await
        .map_err(|_| {
            CtlError::SimControl(format!(
                "{method} {path}: no reply from {addr} within {deadline:?}"
            ))
        })?
}

/// Aborts the connection task when the exchange ends or is dropped (the
/// deadline fired), so no connection outlives its request.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Result<Reply> {
    let fail = |why: String| CtlError::SimControl(format!("{method} {path}: {why}"));
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| CtlError::Connect {
            endpoint: format!("http://{addr}"),
            why: e.to_string(),
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let verb = ::http::Method::from_bytes(method.as_bytes()).map_err(|e| fail(e.to_string()))?;
    let req = ::http::Request::builder()
        .method(verb)
        .uri(path)
        .header(::http::header::HOST, addr.to_string())
        .header(::http::header::CONNECTION, "close")
        .header(::http::header::ACCEPT, "application/json")
        .header(::http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .map_err(|e| fail(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = resp.status().as_u16();
    let bytes = Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                fail(format!("reply larger than {MAX_REPLY} bytes"))
            } else {
                fail(e.to_string())
            }
        })?
        .to_bytes();
    let body = String::from_utf8(bytes.to_vec()).map_err(|_| fail("body is not UTF-8".into()))?;
    Ok(Reply { status, body })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `reply` (raw bytes) and
    /// closes; hands back what it was sent.
    async fn canned(reply: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(reply).await.unwrap();
            s.shutdown().await.unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn replies_parse_with_length_or_chunks() {
        let t = Duration::from_secs(5);
        let (a, srv) = canned(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA").await;
        let r = request(a, "GET", "/faults", None, t).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let sent = srv.await.unwrap();
        assert!(sent.starts_with("GET /faults HTTP/1.1\r\n"), "{sent}");
        let (a, _srv) = canned(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").await;
        let r = request(a, "POST", "/faults", Some("{}"), t).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (400, "abcde"));
        let (a, _srv) = canned(b"garbage").await;
        assert!(request(a, "GET", "/", None, t).await.is_err());
        let (a, _srv) = canned(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").await;
        assert!(request(a, "GET", "/", None, t).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_deadline() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            // Keeps the connection open without answering.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let err = request(addr, "GET", "/", None, Duration::from_millis(200))
            .await
            .err()
            .expect("no reply");
        assert!(err.to_string().contains("no reply"), "{err}");
    }
}
