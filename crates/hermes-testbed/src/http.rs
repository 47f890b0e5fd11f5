//! A tiny HTTP/1.1 client for tests: one request per connection (`Connection: close`), bounded
//! in time and size, chunked bodies decoded. It refuses any address that is neither loopback nor
//! private (RFC 1918 / unique local): tests talk only to this machine and to containers on
//! testbed networks, never to an outside address.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Default bound on one request (connect, send, read to the end).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted.
const MAX_RESPONSE: usize = 16 << 20;

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response body is not the JSON expected: {}", self.text()))
    }
}

/// Whether the testbed may contact `ip`: loopback, or a private address (Docker networks).
pub fn allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    }
}

/// `GET path` on `addr`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    request(addr, "GET", path, &[], None, TIMEOUT).await
}

/// `POST path` on `addr` with a JSON body.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Response> {
    let bytes = serde_json::to_vec(body).context("encoding a request body")?;
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(&bytes),
        TIMEOUT,
    )
    .await
}

/// One request: `method path` on `addr` with extra `headers` and an optional body, all of it
/// (connect, send, read to the end) bounded by `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<Response> {
    ensure!(
        allowed(addr.ip()),
        "refusing to contact {addr}: the testbed talks only to loopback and testbed networks"
    );
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        if let Some(b) = body {
            let _ = write!(head, "Content-Length: {}\r\n", b.len());
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some(b) = body {
            stream.write_all(b).await?;
        }
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .await?;
        ensure!(
            raw.len() <= MAX_RESPONSE,
            "response over {MAX_RESPONSE} bytes"
        );
        parse(&raw)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("{method} http://{addr}{path} took over {timeout:?}"))?
        .with_context(|| format!("{method} http://{addr}{path}"))
}

/// Parses a whole HTTP/1.x response read until the connection closed.
pub fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let end = find(raw, b"\r\n\r\n").context("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().context("bad Content-Length")?;
        ensure!(rest.len() >= len, "body shorter than its Content-Length");
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).context("bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size `{size_text}`"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("truncated chunk");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiEXTRA").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hi"));
        assert_eq!(r.header("x-a"), Some("b"));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.text(), "abcde");
        let r = parse(b"HTTP/1.0 404 Not Found\r\n\r\nclose-delimited").unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "close-delimited"));
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn only_loopback_and_private_addresses() {
        for ok in ["127.0.0.1", "172.18.0.2", "192.168.1.9", "10.1.2.3", "::1"] {
            assert!(allowed(ok.parse().unwrap()), "{ok}");
        }
        for no in ["8.8.8.8", "1.1.1.1", "151.101.2.132", "2001:4860::8888"] {
            assert!(!allowed(no.parse().unwrap()), "{no}");
        }
    }

    #[tokio::test]
    async fn refuses_outside_addresses_without_connecting() {
        let err = get("192.0.2.1:80".parse().unwrap(), "/").await.unwrap_err();
        assert!(err.to_string().contains("refusing"), "{err}");
    }
}
