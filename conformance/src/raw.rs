//! HTTP at the byte level (raw TCP) and with reqwest, for hand-built requests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 error document.
    pub fn code(&self) -> Option<String> {
        crate::xml_text(&self.text(), "Code")
    }
}

/// The request line and headers of `req` as HTTP/1.1 bytes (no body). `Host` is taken from
/// the request's headers or its URI.
pub fn head_bytes(req: &http::Request<()>) -> Vec<u8> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method(), target);
    if !req.headers().contains_key(http::header::HOST) {
        let host = req.uri().authority().expect("absolute URI").as_str();
        out.push_str(&format!("host: {host}\r\n"));
    }
    for (k, v) in req.headers() {
        out.push_str(&format!("{}: {}\r\n", k, v.to_str().expect("ascii")));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Sends `bytes` on a new connection and reads the response until the server closes or a full
/// response (by Content-Length or chunked framing) has arrived. Times out after `limit`.
pub async fn send(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write request");
    read_response(&mut stream, limit)
        .await
        .expect("a complete response in time")
}

/// Reads one response from `stream` (the status line may be preceded by interim 1xx
/// responses, which are skipped). `None` when the connection closes first or time runs out.
pub async fn read_response(stream: &mut TcpStream, limit: Duration) -> Option<Response> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(resp) = parse(&buf, false) {
            if resp.status >= 200 {
                return Some(resp);
            }
            // Drop the interim response and keep reading.
            let end = find(&buf, b"\r\n\r\n").expect("parsed") + 4;
            buf.drain(..end);
            continue;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return parse(&buf, true),
        };
        if n == 0 {
            return parse(&buf, true);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads from `stream` until `needle` appears (returns everything read) or `limit` passes.
pub async fn read_until(stream: &mut TcpStream, needle: &[u8], limit: Duration) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if find(&buf, needle).is_some() {
            return Some(buf);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete response from `buf`; with `eof`, a body without framing ends at EOF.
fn parse(buf: &[u8], eof: bool) -> Option<Response> {
    let head_end = find(buf, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[head_end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if status < 200 || status == 204 || status == 304 {
        return Some(Response {
            status,
            headers,
            body: Vec::new(),
        });
    }
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let body = dechunk(rest)?;
        return Some(Response {
            status,
            headers,
            body,
        });
    }
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        // Responses to HEAD carry a Content-Length but no body; callers of raw HEAD are rare,
        // so only complete bodies count here.
        if rest.len() >= len {
            return Some(Response {
                status,
                headers,
                body: rest[..len].to_vec(),
            });
        }
        if eof {
            return Some(Response {
                status,
                headers,
                body: rest.to_vec(),
            });
        }
        return None;
    }
    if eof {
        return Some(Response {
            status,
            headers,
            body: rest.to_vec(),
        });
    }
    None
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_str = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A reqwest client for 127.0.0.1 (no proxies, bounded time).
pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// Sends `req` (signed or not) with `body` through reqwest and reads the whole response.
pub async fn send_reqwest(req: http::Request<()>, body: Vec<u8>) -> Response {
    let (parts, ()) = req.into_parts();
    let url = parts.uri.to_string();
    let mut rb = reqwest_client().request(parts.method, url);
    for (k, v) in parts.headers.iter() {
        rb = rb.header(k, v);
    }
    let resp = rb.body(body).send().await.expect("send request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.bytes().await.expect("read body").to_vec();
    Response {
        status,
        headers,
        body,
    }
}

/// A bare request to `url` with `method`, ready to be signed.
pub fn request(method: &str, url: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(url)
        .body(())
        .expect("request")
}

/// Sends the head `head` (which should say `Transfer-Encoding: chunked`) and then each of
/// `pieces` as its own HTTP/1.1 chunk, written and flushed one at a time as a streaming
/// client does, then the last chunk; reads the response. A response that comes before the
/// whole body was sent (the server refused it early) is read all the same.
pub async fn send_chunked(
    addr: SocketAddr,
    head: &[u8],
    pieces: &[&[u8]],
    limit: Duration,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head).await.expect("write head");
    for piece in pieces {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        if stream.write_all(&chunk).await.is_err() || stream.flush().await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    read_response(&mut stream, limit)
        .await
        .expect("a complete response in time")
}
