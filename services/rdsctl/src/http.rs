//! A tiny HTTP/1.1 client for the sim's local control endpoint (JSON over
//! loopback): one request per connection (`Connection: close`), a deadline
//! on the whole exchange, content-length or chunked bodies. Not a general
//! client; the workspace has no HTTP client crate and this needs no more.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

async fn exchange(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Result<Reply> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| CtlError::Connect {
            endpoint: format!("http://{addr}"),
            why: e.to_string(),
        })?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let io = |e: std::io::Error| CtlError::SimControl(format!("{method} {path}: {e}"));
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_REPLY as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(io)?;
    if raw.len() > MAX_REPLY {
        return Err(CtlError::SimControl(format!(
            "{method} {path}: reply larger than {MAX_REPLY} bytes"
        )));
    }
    parse_reply(&raw).map_err(|why| CtlError::SimControl(format!("{method} {path}: {why}")))
}

/// Parses a complete HTTP/1.1 response.
pub fn parse_reply(raw: &[u8]) -> std::result::Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty reply")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = Some(v.parse::<usize>().map_err(|_| "bad content-length")?);
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or("body shorter than content-length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(Reply {
        status,
        body: String::from_utf8(body).map_err(|_| "body is not UTF-8")?,
    })
}

fn dechunk(mut b: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = b.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        b = b.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn replies_parse_with_length_or_chunks() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_reply(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (400, "abcde"));
        assert!(parse_reply(b"garbage").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").is_err());
    }
}
