//! Clients that send the unix socket's path as the HTTP/2 `:authority`
//! (Python grpcio does; grpc-go sends `localhost`) are refused by the HTTP/2
//! server with RST_STREAM before any handler runs: a path is not a valid URI
//! authority. Tools users script against the CSI socket should just work, so
//! the socket is fronted by a small relay that rewrites an unusable
//! `:authority` in each request's header block and passes every other byte
//! through unchanged. The server listens on a private abstract socket.
//!
//! The rewrite is done on the HPACK encoding itself, without decoding the
//! whole block: only the `:authority` field's value is replaced, by a valid
//! value no longer than the original, so the dynamic tables of the client's
//! encoder and the server's decoder stay consistent (an entry can only get
//! smaller, so the server never evicts an entry the client still refers to).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The smallest SETTINGS_MAX_FRAME_SIZE a peer may have (RFC 9113 §4.2).
const MAX_FRAME: usize = 16_384;
/// A header block larger than this is refused (the connection is closed).
const MAX_BLOCK: usize = 1 << 20;
const REPLACEMENT: &[u8] = b"localhost";

/// An abstract unix socket name (no file) private to this process.
pub fn inner_address(public: &std::path::Path) -> io::Result<SocketAddr> {
    let name = format!("rds-csi-{}-{}", std::process::id(), public.display());
    SocketAddr::from_abstract_name(name.as_bytes())
}

/// Binds the inner listener the gRPC server accepts on.
pub fn bind_inner(addr: &SocketAddr) -> io::Result<UnixListener> {
    let l = std::os::unix::net::UnixListener::bind_addr(addr)?;
    l.set_nonblocking(true)?;
    UnixListener::from_std(l)
}

/// Accepts on `public` and relays each connection to `inner`, until the
/// listener fails or the task is dropped.
pub async fn relay(public: UnixListener, inner: SocketAddr) {
    loop {
        let client = match public.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "CSI socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            if let Err(e) = relay_one(client, &inner).await {
                tracing::debug!(error = %e, "CSI socket connection ended");
            }
        });
    }
}

async fn relay_one(client: UnixStream, inner: &SocketAddr) -> io::Result<()> {
    let std_server = std::os::unix::net::UnixStream::connect_addr(inner)?;
    std_server.set_nonblocking(true)?;
    let server = UnixStream::from_std(std_server)?;
    let (mut cr, cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cw = cw;
    let up = async move {
        let r = pump_requests(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
        r
    };
    let down = async move {
        let r = tokio::io::copy(&mut sr, &mut cw).await.map(|_| ());
        let _ = cw.shutdown().await;
        r
    };
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// A header block being collected: (stream, flags of HEADERS, priority
/// fields, block so far).
type Pending = (u32, u8, Option<[u8; 5]>, Vec<u8>);

/// Client → server: frames pass through, header blocks get their
/// `:authority` fixed (HEADERS + CONTINUATION are joined, rewritten and
/// re-split).
async fn pump_requests<R, W>(r: &mut R, w: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut preface = [0u8; 24];
    r.read_exact(&mut preface).await?;
    w.write_all(&preface).await?;
    if &preface != PREFACE {
        // Not HTTP/2 prior knowledge: let the server answer it as it will.
        tokio::io::copy(r, w).await?;
        return Ok(());
    }
    let mut pending: Option<Pending> = None;
    loop {
        let mut head = [0u8; 9];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        match (kind, pending.as_mut()) {
            (HEADERS, None) => {
                let (prio, fragment) = headers_fragment(flags, &payload)?;
                pending = Some((stream, flags, prio, fragment.to_vec()));
            }
            (CONTINUATION, Some((s, f, _, block))) if *s == stream => {
                block.extend_from_slice(&payload);
                if block.len() > MAX_BLOCK {
                    return Err(bad("header block too large"));
                }
                // END_HEADERS here completes the block (checked below).
                *f |= flags & END_HEADERS;
            }
            (_, Some(_)) => return Err(bad("frame inside a header block")),
            _ => {
                w.write_all(&head).await?;
                w.write_all(&payload).await?;
                continue;
            }
        }
        let complete = pending
            .as_ref()
            .is_some_and(|(_, f, _, _)| f & END_HEADERS != 0);
        if complete && let Some((s, f, prio, block)) = pending.take() {
            let block = rewrite_block(&block).unwrap_or(block);
            write_headers(w, s, f & END_STREAM, prio, &block).await?;
        }
    }
}

/// The priority fields and the block fragment of a HEADERS payload.
fn headers_fragment(flags: u8, p: &[u8]) -> io::Result<(Option<[u8; 5]>, &[u8])> {
    let mut start = 0;
    let mut end = p.len();
    if flags & PADDED != 0 {
        let pad = usize::from(*p.first().ok_or_else(|| bad("empty padded frame"))?);
        start = 1;
        end = end
            .checked_sub(pad)
            .filter(|e| *e >= start)
            .ok_or_else(|| bad("bad padding"))?;
    }
    let mut prio = None;
    if flags & PRIORITY != 0 {
        let f = p
            .get(start..start + 5)
            .ok_or_else(|| bad("short priority"))?;
        let mut b = [0u8; 5];
        b.copy_from_slice(f);
        prio = Some(b);
        start += 5;
    }
    let frag = p.get(start..end).ok_or_else(|| bad("bad HEADERS frame"))?;
    Ok((prio, frag))
}

async fn write_headers<W: AsyncWrite + Unpin>(
    w: &mut W,
    stream: u32,
    end_stream: u8,
    prio: Option<[u8; 5]>,
    block: &[u8],
) -> io::Result<()> {
    let prio_len = prio.map_or(0, |_| 5);
    let first = block.len().min(MAX_FRAME - prio_len);
    let (head, mut rest) = block.split_at(first);
    let mut flags = end_stream | if prio.is_some() { PRIORITY } else { 0 };
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let mut payload = Vec::with_capacity(first + prio_len);
    if let Some(p) = prio {
        payload.extend_from_slice(&p);
    }
    payload.extend_from_slice(head);
    write_frame(w, HEADERS, flags, stream, &payload).await?;
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let (chunk, tail) = rest.split_at(n);
        let f = if tail.is_empty() { END_HEADERS } else { 0 };
        write_frame(w, CONTINUATION, f, stream, chunk).await?;
        rest = tail;
    }
    Ok(())
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) -> io::Result<()> {
    let len = payload.len();
    let mut head = [0u8; 9];
    head[0] = ((len >> 16) & 0xff) as u8;
    head[1] = ((len >> 8) & 0xff) as u8;
    head[2] = (len & 0xff) as u8;
    head[3] = kind;
    head[4] = flags;
    head[5..9].copy_from_slice(&stream.to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(payload).await
}

/// An HPACK integer with an `n`-bit prefix at `b[i..]`: (value, bytes used).
fn integer(b: &[u8], i: usize, n: u32) -> Option<(usize, usize)> {
    let mask = (1usize << n) - 1;
    let mut v = usize::from(*b.get(i)?) & mask;
    if v < mask {
        return Some((v, 1));
    }
    let mut shift = 0u32;
    let mut k = 1;
    loop {
        let byte = usize::from(*b.get(i + k)?);
        v = v.checked_add((byte & 0x7f).checked_shl(shift)?)?;
        k += 1;
        if byte & 0x80 == 0 {
            return Some((v, k));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// A string literal at `b[i..]`: (huffman, value range, bytes used).
fn string(b: &[u8], i: usize) -> Option<(bool, std::ops::Range<usize>, usize)> {
    let huffman = b.get(i)? & 0x80 != 0;
    let (len, n) = integer(b, i, 7)?;
    let start = i + n;
    let end = start.checked_add(len)?;
    (end <= b.len()).then_some((huffman, start..end, n + len))
}

/// The block with every unusable `:authority` value replaced; `None` when
/// nothing needed replacing or the block does not parse (sent unchanged:
/// the server reports what it finds).
pub fn rewrite_block(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let first = b[i];
        let prefix = if first & 0x80 != 0 {
            let (_, n) = integer(b, i, 7)?;
            out.extend_from_slice(&b[i..i + n]);
            i += n;
            continue;
        } else if first & 0xc0 == 0x40 {
            6
        } else if first & 0xe0 == 0x20 {
            let (_, n) = integer(b, i, 5)?;
            out.extend_from_slice(&b[i..i + n]);
            i += n;
            continue;
        } else {
            4
        };
        let start = i;
        let (name_idx, n) = integer(b, i, prefix)?;
        i += n;
        let is_authority = if name_idx == 0 {
            let (huff, range, used) = string(b, i)?;
            i += used;
            !huff && &b[range] == b":authority"
        } else {
            name_idx == 1
        };
        let (huff, range, used) = string(b, i)?;
        let value_at = i;
        i += used;
        match replacement(is_authority, huff, &b[range]) {
            Some(new) => {
                out.extend_from_slice(&b[start..value_at]);
                // Short, plain literal: a one-byte length (≤ 9 < 127).
                out.push(u8::try_from(new.len()).ok()?);
                out.extend_from_slice(new);
                changed = true;
            }
            None => out.extend_from_slice(&b[start..i]),
        }
    }
    changed.then_some(out)
}

/// The new value for an `:authority` that cannot be used, no longer than
/// the original's decoded length (a Huffman code is at most 30 bits per
/// octet, so `len * 8 / 30` octets is a safe lower bound).
fn replacement(is_authority: bool, huffman: bool, value: &[u8]) -> Option<&'static [u8]> {
    if !is_authority {
        return None;
    }
    if huffman {
        // Cannot tell a valid Huffman-coded value apart without decoding it;
        // any valid value serves this server, so replace it when it is
        // provably long enough.
        let at_least = value.len() * 8 / 30;
        return (at_least > 0).then(|| &REPLACEMENT[..at_least.min(REPLACEMENT.len())]);
    }
    if tonic::codegen::http::uri::Authority::try_from(value).is_ok() {
        return None;
    }
    Some(&REPLACEMENT[..value.len().clamp(1, REPLACEMENT.len())])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Literal with incremental indexing, indexed name 1 (`:authority`).
    fn authority_field(value: &[u8]) -> Vec<u8> {
        let mut v = vec![0x41, u8::try_from(value.len()).unwrap()];
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn a_path_authority_is_replaced_and_everything_else_kept() {
        // :method POST (indexed 3), :authority /run/csi.sock, a literal header.
        let mut block = vec![0x83];
        block.extend(authority_field(b"/run/csi/csi.sock"));
        block.extend([0x00, 0x01, b'x', 0x01, b'y']);
        let out = rewrite_block(&block).unwrap();
        let mut want = vec![0x83];
        want.extend(authority_field(b"localhost"));
        want.extend([0x00, 0x01, b'x', 0x01, b'y']);
        assert_eq!(out, want);
    }

    #[test]
    fn valid_authorities_and_other_fields_are_untouched() {
        let mut block = vec![0x83, 0x86];
        block.extend(authority_field(b"localhost"));
        assert_eq!(rewrite_block(&block), None);
        // A short invalid value is replaced by one no longer than it.
        let out = rewrite_block(&authority_field(b"/s")).unwrap();
        assert_eq!(out, authority_field(b"lo"));
        // Truncated input: unchanged.
        assert_eq!(rewrite_block(&[0x41, 0x05, b'/']), None);
    }

    #[tokio::test]
    async fn header_blocks_split_over_continuations_are_joined_and_fixed() {
        let mut block = vec![0x83];
        block.extend(authority_field(b"/tmp/x.sock"));
        let (a, b) = block.split_at(3);
        let mut input = PREFACE.to_vec();
        let frame = |kind: u8, flags: u8, p: &[u8]| {
            let mut f = vec![
                0,
                0,
                u8::try_from(p.len()).unwrap(),
                kind,
                flags,
                0,
                0,
                0,
                1,
            ];
            f.extend_from_slice(p);
            f
        };
        input.extend(frame(HEADERS, END_STREAM, a));
        input.extend(frame(CONTINUATION, END_HEADERS, b));
        input.extend(frame(0x0, END_STREAM, b"data"));
        let mut out = Vec::new();
        pump_requests(&mut input.as_slice(), &mut out)
            .await
            .unwrap();
        let mut fixed = vec![0x83];
        fixed.extend(authority_field(b"localhost"));
        let mut want = PREFACE.to_vec();
        want.extend(frame(HEADERS, END_STREAM | END_HEADERS, &fixed));
        want.extend(frame(0x0, END_STREAM, b"data"));
        assert_eq!(out, want);
    }
}
