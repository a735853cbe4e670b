//! Hostile requests against a real in-process gateway, mostly over raw TCP: broken HTTP,
//! hostile Authorization headers, lying lengths and framings, bad digests, impossible keys and
//! bucket names, oversized and entity-laden XML, copy sources that try to escape, absurd ranges,
//! huge query strings, stalled and truncated clients.
//!
//! For each: the status, the S3 error code in the XML body (where S3 sends one), that every
//! request got a well-formed HTTP response, that nothing was stored (listing, GET, and the files
//! in the backend directories), that the gateway still serves normal requests afterwards, and
//! that no panic happened anywhere outside this test file (a process-wide panic hook records
//! them, so a panic in a connection task that only shows up as a dropped connection is caught).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use hansa_conformance::raw::{self, head_bytes, Response};
use hansa_conformance::sign::{Payload, Signer, STREAMING_SIGNED, STREAMING_UNSIGNED_TRAILER};
use hansa_conformance::{
    assert_s3_err, create_bucket, get, list_all_keys, md5_b64, put, Options, TestGateway, ADMIN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(15);
const BUCKET: &str = "hostile";
const EXISTING: &str = "existing";
const EXISTING_BODY: &[u8] = b"existing object";

// ---------------------------------------------------------------------------------------------
// Panic watch

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Records every panic raised outside the test harness code (this crate's `conformance/`
/// files): those come from the gateway or its dependencies.
fn watch_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_string());
            // Test-side code: this crate, and the client crates only the tests use.
            let test_side = file.as_deref().is_some_and(|f| {
                [
                    "conformance",
                    "aws-smithy",
                    "aws-sdk",
                    "aws-config",
                    "reqwest",
                ]
                .iter()
                .any(|part| f.contains(part))
            });
            if !test_side {
                PANICS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(info.to_string());
            }
            previous(info);
        }));
    });
}

fn assert_no_gateway_panic() {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(panics.is_empty(), "the gateway panicked: {panics:#?}");
}

/// (what, key, Authorization value, expected status, accepted codes)
type AuthCase<'a> = (&'a str, &'a str, Vec<u8>, u16, &'a [&'a str]);
/// (what, key, extra headers, expected status, accepted codes)
type HeaderCase<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, u16, &'a [&'a str]);

// ---------------------------------------------------------------------------------------------
// Fixture

struct Fixture {
    gw: TestGateway,
    s3: aws_sdk_s3::Client,
    backend_files: Vec<PathBuf>,
}

/// Files under the two backend directories (the index lives elsewhere).
fn backend_files(gw: &TestGateway) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = gw
        .all_files()
        .into_iter()
        .filter(|p| p.starts_with("a") || p.starts_with("b"))
        .collect();
    files.sort();
    files
}

async fn fixture_with(options: Options) -> Fixture {
    watch_panics();
    let gw = TestGateway::start_with(options).await;
    let s3 = gw.client();
    create_bucket(&s3, BUCKET).await;
    put(&s3, BUCKET, EXISTING, EXISTING_BODY).await;
    let backend_files = backend_files(&gw);
    Fixture {
        gw,
        s3,
        backend_files,
    }
}

async fn fixture() -> Fixture {
    fixture_with(Options::default()).await
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.gw.addr
    }

    /// A normal client still gets normal answers.
    async fn assert_healthy(&self, after: &str) {
        self.s3
            .list_buckets()
            .send()
            .await
            .unwrap_or_else(|e| panic!("after {after}: ListBuckets failed: {e:?}"));
        assert_eq!(
            get(&self.s3, BUCKET, EXISTING).await,
            EXISTING_BODY,
            "after {after}"
        );
        // And over a raw connection, which must get a complete response.
        let head = signed_head(
            self,
            "GET",
            &format!("{BUCKET}/{EXISTING}"),
            &[],
            Payload::Unsigned,
        );
        let resp = exchange(self.addr(), head, Vec::new()).await;
        let resp = resp.unwrap_or_else(|| panic!("after {after}: no response to a plain GET"));
        assert_eq!(resp.status, 200, "after {after}: {}", resp.text());
        assert_eq!(resp.body, EXISTING_BODY, "after {after}");
    }

    /// Nothing but the one object exists, and the backend directories hold what they held.
    async fn assert_unchanged(&self, after: &str) {
        assert_eq!(
            list_all_keys(&self.s3, BUCKET).await,
            vec![EXISTING.to_string()],
            "after {after}: the listing changed"
        );
        // Give a failed write a moment to clean up its temporary files.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = backend_files(&self.gw);
            if now == self.backend_files {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {after}: backend files changed: before {:?}, now {:?}",
                self.backend_files,
                now
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn assert_missing(&self, key: &str, after: &str) {
        let got = self.s3.get_object().bucket(BUCKET).key(key).send().await;
        match got {
            Ok(_) => panic!("after {after}: {key:?} was stored"),
            Err(e) => {
                let e = hansa_conformance::s3_err(&e);
                assert_eq!(
                    (e.status, e.code.as_deref()),
                    (404, Some("NoSuchKey")),
                    "after {after}"
                );
            }
        }
    }

    async fn finish(self) {
        self.assert_healthy("the whole test").await;
        self.assert_unchanged("the whole test").await;
        assert_no_gateway_panic();
        self.gw.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

fn with_headers(mut req: http::Request<()>, headers: &[(&str, String)]) -> http::Request<()> {
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    req
}

/// The head of `method path` (path without the leading slash) signed by the admin key.
fn signed_head(
    f: &Fixture,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: Payload,
) -> Vec<u8> {
    signed_head_with(f, &Signer::new(ADMIN), method, path, headers, payload).0
}

/// Like [`signed_head`], also returning the signature (the seed of aws-chunked bodies).
fn signed_head_with(
    f: &Fixture,
    signer: &Signer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    payload: Payload,
) -> (Vec<u8>, String) {
    let mut req = with_headers(raw::request(method, &f.gw.url(path)), headers);
    let signature = signer.sign(&mut req, &payload);
    (head_bytes(&req), signature)
}

/// Inserts raw header lines (anything, even invalid) before the end of `head`.
fn inject(head: &[u8], lines: &[&[u8]]) -> Vec<u8> {
    let mut out = head[..head.len() - 2].to_vec();
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Replaces the value of header `name` in `head` (first occurrence).
fn replace_header(head: &[u8], name: &str, value: &[u8]) -> Vec<u8> {
    let text = head;
    let needle = format!("\r\n{name}: ");
    let start = find(text, needle.as_bytes()).expect("header present") + needle.len();
    let end = start + find(&text[start..], b"\r\n").expect("line end");
    let mut out = text[..start].to_vec();
    out.extend_from_slice(value);
    out.extend_from_slice(&text[end..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `head` and `body` on a fresh connection while reading, so an early answer (and an
/// early close) is seen even when the gateway stops reading. Returns the first final response,
/// `None` when the connection ended without one.
async fn exchange(addr: SocketAddr, head: Vec<u8>, body: Vec<u8>) -> Option<Response> {
    exchange_with(addr, head, body, false, LIMIT).await
}

async fn exchange_with(
    addr: SocketAddr,
    head: Vec<u8>,
    body: Vec<u8>,
    close_after_write: bool,
    limit: Duration,
) -> Option<Response> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&head).await;
        for piece in body.chunks(64 * 1024) {
            if wr.write_all(piece).await.is_err() {
                break;
            }
        }
        if close_after_write {
            let _ = wr.shutdown().await;
        }
        // Keep the write half (and so the connection) open until the reader is done.
        wr
    });
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let resp = loop {
        if let Some(resp) = parse_response(&mut buf, false) {
            break Some(resp);
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break parse_response(&mut buf, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    writer.abort();
    resp
}

/// Parses one final response from `buf`, dropping interim (1xx) ones; with `eof`, a body
/// without framing ends where the bytes end.
fn parse_response(buf: &mut Vec<u8>, eof: bool) -> Option<Response> {
    loop {
        let head_end = find(buf, b"\r\n\r\n")?;
        let head = std::str::from_utf8(&buf[..head_end]).expect("response head is text");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        assert!(
            status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 "),
            "not an HTTP status line: {status_line:?}"
        );
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad response header line {l:?}"));
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        if status < 200 {
            buf.drain(..head_end + 4);
            continue;
        }
        let rest = &buf[head_end + 4..];
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            match dechunk(rest) {
                Some(body) => body,
                None if eof => panic!("response body cut short (chunked)"),
                None => return None,
            }
        } else if let Some(len) = get("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            if rest.len() >= len {
                rest[..len].to_vec()
            } else if eof {
                // HEAD: the length of the body that was not sent.
                rest.to_vec()
            } else {
                return None;
            }
        } else if eof {
            rest.to_vec()
        } else {
            return None;
        };
        return Some(Response {
            status,
            headers,
            body,
        });
    }
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

/// A response that must exist.
fn answered(resp: Option<Response>, what: &str) -> Response {
    let resp = resp.unwrap_or_else(|| panic!("{what}: the connection ended without a response"));
    // Shown with --nocapture: what the gateway answered to each hostile request.
    eprintln!(
        "{what}: {} {}",
        resp.status,
        resp.code().unwrap_or_else(|| "-".into())
    );
    resp
}

/// An S3 error: the status, one of `codes`, and the error document's shape (Code, Message,
/// RequestId; XML content type; the request id header).
fn assert_s3_error(resp: &Response, status: u16, codes: &[&str], what: &str) {
    let text = resp.text();
    assert_eq!(resp.status, status, "{what}: {text}");
    assert_error_shape(resp, what);
    let code = resp.code().unwrap_or_default();
    assert!(
        codes.contains(&code.as_str()),
        "{what}: code {code:?}, expected one of {codes:?}: {text}"
    );
}

fn assert_error_shape(resp: &Response, what: &str) {
    let text = resp.text();
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.contains("xml")),
        "{what}: content type {:?}",
        resp.header("content-type")
    );
    assert!(text.starts_with("<?xml"), "{what}: {text}");
    assert!(
        text.contains("<Error>") && text.ends_with("</Error>"),
        "{what}: {text}"
    );
    for tag in ["Code", "Message", "RequestId"] {
        assert!(
            hansa_conformance::xml_text(&text, tag).is_some_and(|v| !v.is_empty()),
            "{what}: no <{tag}>: {text}"
        );
    }
    assert!(
        resp.header("x-amz-request-id").is_some(),
        "{what}: no request id"
    );
}

/// Any 4xx with a well-formed S3 error document.
fn assert_4xx_s3_error(resp: &Response, what: &str) {
    assert!(
        (400..500).contains(&resp.status),
        "{what}: status {}: {}",
        resp.status,
        resp.text()
    );
    assert_error_shape(resp, what);
}

// ---------------------------------------------------------------------------------------------
// Broken HTTP: hyper answers before the S3 layer; the gateway must survive.

#[tokio::test]
async fn malformed_http_is_refused_and_the_gateway_survives() {
    let f = fixture().await;
    let put_head = |key: &str| {
        signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/{key}"),
            &[],
            Payload::Unsigned,
        )
    };
    let mut big_headers = b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..300 {
        big_headers.extend_from_slice(format!("x-filler-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
    }
    big_headers.extend_from_slice(b"\r\n");
    let mut many_headers = b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..500 {
        many_headers.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");

    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), vec![]),
        (
            "binary request line",
            b"\x00\x01\x02\xff / HTTP/1.1\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "three-word nonsense",
            b"HELLO THERE WORLD\r\nhost: x\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "unknown HTTP version",
            b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "space in target",
            b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nhost: x\r\nno-colon-here\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "obsolete line folding",
            b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  continued\r\n\r\n".to_vec(),
            vec![],
        ),
        (
            "NUL in a header value",
            b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n".to_vec(),
            vec![],
        ),
        ("300 KiB of headers", big_headers, vec![]),
        ("500 headers", many_headers, vec![]),
        (
            "Content-Length: -1",
            inject(&put_head("cl-negative"), &[b"content-length: -1"]),
            b"abc".to_vec(),
        ),
        (
            "Content-Length: 99999999999999999999",
            inject(
                &put_head("cl-huge"),
                &[b"content-length: 99999999999999999999"],
            ),
            b"abc".to_vec(),
        ),
        (
            "two different Content-Length headers",
            inject(
                &put_head("cl-two"),
                &[b"content-length: 3", b"content-length: 5"],
            ),
            b"abcde".to_vec(),
        ),
        (
            "Content-Length with a list",
            inject(&put_head("cl-list"), &[b"content-length: 3, 5"]),
            b"abcde".to_vec(),
        ),
        (
            "Content-Length: 0x10",
            inject(&put_head("cl-hex"), &[b"content-length: 0x10"]),
            vec![b'x'; 16],
        ),
        (
            "unknown Transfer-Encoding",
            inject(&put_head("te-gzip"), &[b"transfer-encoding: gzip"]),
            b"abc".to_vec(),
        ),
    ];
    for (what, head, body) in cases {
        let resp = answered(exchange(f.addr(), head, body).await, what);
        assert!(
            (400..=505).contains(&resp.status) && resp.status != 404,
            "{what}: status {} {}",
            resp.status,
            resp.text()
        );
        if what == "300 KiB of headers" || what == "500 headers" {
            assert!(
                matches!(resp.status, 400 | 431),
                "{what}: status {}",
                resp.status
            );
        }
        f.assert_healthy(what).await;
    }
    for key in [
        "cl-negative",
        "cl-huge",
        "cl-two",
        "cl-list",
        "cl-hex",
        "te-gzip",
    ] {
        f.assert_missing(key, key).await;
    }

    // Content-Length and Transfer-Encoding together: the chunked framing rules (or the request
    // is refused); nothing smuggled after it is ever answered as a second request.
    let head = inject(
        &put_head("cl-and-te"),
        &[b"content-length: 4", b"transfer-encoding: chunked"],
    );
    let smuggled = format!("0\r\n\r\nDELETE /{BUCKET}/{EXISTING} HTTP/1.1\r\nhost: x\r\n\r\n");
    let resp = answered(
        exchange(f.addr(), head, smuggled.into_bytes()).await,
        "CL + TE",
    );
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3; hyper drops the length), and a
    // plain chunked PUT is accepted as on S3: the object is the chunked body, here empty.
    // Refusing the request would be as good; serving the smuggled DELETE would not.
    if resp.status >= 400 {
        f.assert_missing("cl-and-te", "CL + TE").await;
    } else {
        assert_eq!(resp.status, 200, "CL + TE: {}", resp.text());
        assert_eq!(get(&f.s3, BUCKET, "cl-and-te").await, b"", "CL + TE");
        // Out of the way of the listing the health check compares.
        f.s3.delete_object()
            .bucket(BUCKET)
            .key("cl-and-te")
            .send()
            .await
            .expect("delete cl-and-te");
    }
    f.assert_healthy("CL + TE (the smuggled DELETE must not have run)")
        .await;
    f.finish().await;
}

/// Host headers are client-controlled input to virtual-host addressing.
#[tokio::test]
async fn hostile_host_headers() {
    let f = fixture().await;
    let long = format!("{}.s3.localhost", "b".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty host", b"host: ".to_vec()),
        ("dots only", b"host: ..s3.localhost".to_vec()),
        (
            "base domain with a trailing dot",
            b"host: hostile.s3.localhost.".to_vec(),
        ),
        ("non-UTF-8 host", b"host: \xff\xfe.s3.localhost".to_vec()),
        ("10 KB host", format!("host: {long}").into_bytes()),
        (
            "port garbage",
            b"host: hostile.s3.localhost:99999999999".to_vec(),
        ),
        ("IPv6 literal", b"host: [::1]:9000".to_vec()),
        ("upper case", b"host: HOSTILE.S3.LOCALHOST".to_vec()),
    ];
    for (what, host) in cases {
        let mut req = format!("GET /{EXISTING} HTTP/1.1\r\n").into_bytes();
        req.extend_from_slice(&host);
        req.extend_from_slice(b"\r\n\r\n");
        let resp = answered(exchange(f.addr(), req, Vec::new()).await, what);
        assert!(
            matches!(resp.status, 400 | 403),
            "{what}: {} {}",
            resp.status,
            resp.text()
        );
        if resp.status == 403 || !resp.body.is_empty() {
            assert_s3_error(&resp, resp.status, &["AccessDenied", "InvalidURI"], what);
        }
    }
    // Two different Host headers on an otherwise valid signed request.
    let head = signed_head(
        &f,
        "GET",
        &format!("{BUCKET}/{EXISTING}"),
        &[],
        Payload::Unsigned,
    );
    let head = inject(&head, &[b"host: other.s3.localhost"]);
    let resp = answered(
        exchange(f.addr(), head, Vec::new()).await,
        "two Host headers",
    );
    assert!(
        resp.status == 200 && resp.body == EXISTING_BODY || (400..500).contains(&resp.status),
        "two Host headers: {} {}",
        resp.status,
        resp.text()
    );
    f.finish().await;
}

/// `Expect: 100-continue` with a hostile length gets its final answer without a 100 and
/// without the gateway waiting for the body.
#[tokio::test]
async fn expect_continue_with_hostile_lengths() {
    let f = fixture().await;
    for (what, key, length, status, code) in [
        (
            "over 5 GiB",
            "continue-huge",
            (5u64 << 30) + 1,
            400,
            "EntityTooLarge",
        ),
        (
            "key too long",
            &*"k".repeat(1100),
            10,
            400,
            "KeyTooLongError",
        ),
    ] {
        let head = signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/{key}"),
            &[
                ("content-length", length.to_string()),
                ("expect", "100-continue".into()),
            ],
            Payload::Unsigned,
        );
        let started = Instant::now();
        let mut stream = TcpStream::connect(f.addr()).await.expect("connect");
        stream.write_all(&head).await.expect("head");
        let first = raw::read_until(&mut stream, b"\r\n", Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{what}: no answer within 5 s"));
        assert!(
            !first.starts_with(b"HTTP/1.1 100"),
            "{what}: 100 Continue for a request that will be refused"
        );
        let mut rest = first;
        let resp = loop {
            if let Some(resp) = parse_response(&mut rest, false) {
                break resp;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("response in time")
                .expect("read");
            assert!(n > 0, "{what}: closed mid-response");
            rest.extend_from_slice(&chunk[..n]);
        };
        assert_s3_error(&resp, status, &[code], what);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    f.assert_missing("continue-huge", "Expect: 100-continue")
        .await;
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Authorization

#[tokio::test]
async fn hostile_authorization_headers() {
    let f = fixture().await;
    let body = b"should never be stored".to_vec();
    let signed = |key: &str| {
        signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/{key}"),
            &[("content-length", body.len().to_string())],
            Payload::Unsigned,
        )
    };

    // (what, key, Authorization value, expected status, accepted codes)
    let huge_signature = "0".repeat(100_000);
    let cases: Vec<AuthCase> = vec![
        (
            "unknown scheme",
            "auth-bearer",
            b"Bearer abc.def.ghi".to_vec(),
            400,
            &["InvalidArgument"],
        ),
        // SigV2 is accepted (server.signature_v2): this one has no V2 date (x-amz-date is in
        // the V4 form) and a signature of the wrong length.
        (
            "SigV2",
            "auth-v2",
            format!("AWS {}:c2lnbmF0dXJl", ADMIN.access_key_id).into_bytes(),
            403,
            &["AccessDenied", "SignatureDoesNotMatch"],
        ),
        (
            "scheme only",
            "auth-scheme-only",
            b"AWS4-HMAC-SHA256".to_vec(),
            400,
            &["AuthorizationHeaderMalformed", "InvalidArgument"],
        ),
        (
            "empty value",
            "auth-empty",
            Vec::new(),
            400,
            &["InvalidArgument", "AuthorizationHeaderMalformed"],
        ),
        (
            "missing commas",
            "auth-no-commas",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/20240101/us-east-1/s3/aws4_request SignedHeaders=host Signature={}",
                ADMIN.access_key_id,
                "0".repeat(64)
            )
            .into_bytes(),
            400,
            &["AuthorizationHeaderMalformed"],
        ),
        (
            "non-UTF-8 bytes",
            "auth-binary",
            b"AWS4-HMAC-SHA256 Credential=\xff\xfe\xc0\xaf/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00".to_vec(),
            400,
            &["AuthorizationHeaderMalformed", "InvalidArgument"],
        ),
    ];
    for (what, key, value, status, codes) in cases {
        let head = replace_header(&signed(key), "authorization", &value);
        let resp = answered(exchange(f.addr(), head, body.clone()).await, what);
        assert_s3_error(&resp, status, codes, what);
        f.assert_missing(key, what).await;
    }

    // A real signature made 100 KB long, and a real header with the signature swapped.
    let head = signed("auth-huge-sig");
    let text = String::from_utf8(head.clone()).expect("ascii head");
    let value = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("authorization: "))
        .expect("authorization")
        .to_string();
    let (prefix, _) = value.split_once("Signature=").expect("signature");
    let huge = format!("{prefix}Signature={huge_signature}");
    let resp = answered(
        exchange(
            f.addr(),
            replace_header(&head, "authorization", huge.as_bytes()),
            body.clone(),
        )
        .await,
        "100 KB signature",
    );
    assert_s3_error(&resp, 403, &["SignatureDoesNotMatch"], "100 KB signature");
    f.assert_missing("auth-huge-sig", "100 KB signature").await;

    // 100 KB of credential scope.
    let huge = value.replacen(
        "Credential=",
        &format!("Credential={}", "A".repeat(100_000)),
        1,
    );
    let resp = answered(
        exchange(
            f.addr(),
            replace_header(&head, "authorization", huge.as_bytes()),
            body.clone(),
        )
        .await,
        "100 KB access key",
    );
    assert_s3_error(&resp, 403, &["InvalidAccessKeyId"], "100 KB access key");

    // Two Authorization headers.
    let twice = inject(&head, &[format!("authorization: {value}").as_bytes()]);
    let resp = answered(exchange(f.addr(), twice, body.clone()).await, "two headers");
    assert_4xx_s3_error(&resp, "two Authorization headers");
    f.assert_missing("auth-huge-sig", "two Authorization headers")
        .await;

    // A HEAD with a hostile header: status only, no body.
    let head = signed_head(
        &f,
        "HEAD",
        &format!("{BUCKET}/{EXISTING}"),
        &[],
        Payload::Unsigned,
    );
    let head = replace_header(&head, "authorization", b"Bearer x");
    let resp = answered(exchange(f.addr(), head, Vec::new()).await, "HEAD");
    assert_eq!(resp.status, 400, "HEAD with an unknown scheme");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Lengths and aws-chunked framing

/// A PUT whose body is aws-chunked with the given wire bytes.
fn chunked_put(
    f: &Fixture,
    key: &str,
    mode: &str,
    decoded_len: Option<u64>,
    wire_len: Option<usize>,
) -> (Vec<u8>, String) {
    let mut headers = vec![("content-encoding", "aws-chunked".to_string())];
    if let Some(n) = decoded_len {
        headers.push(("x-amz-decoded-content-length", n.to_string()));
    }
    if let Some(n) = wire_len {
        headers.push(("content-length", n.to_string()));
    }
    signed_head_with(
        f,
        &Signer::new(ADMIN),
        "PUT",
        &format!("{BUCKET}/{key}"),
        &headers,
        Payload::Literal(mode.to_string()),
    )
}

#[tokio::test]
async fn hostile_lengths_and_chunk_framing() {
    let f = fixture().await;

    // aws-chunked over Transfer-Encoding: chunked without x-amz-decoded-content-length:
    // MissingContentLength. (Plain chunked bodies are accepted: tests/corners.rs.)
    for (what, key, mode) in [(
        "aws-chunked over chunked",
        "te-aws",
        Some(STREAMING_UNSIGNED_TRAILER),
    )] {
        let mut headers = vec![("transfer-encoding", "chunked".to_string())];
        let payload = match mode {
            Some(m) => {
                headers.push(("content-encoding", "aws-chunked".to_string()));
                Payload::Literal(m.to_string())
            }
            None => Payload::Unsigned,
        };
        let head = signed_head(&f, "PUT", &format!("{BUCKET}/{key}"), &headers, payload);
        let inner: &[u8] = if mode.is_some() {
            b"5\r\nhello\r\n0\r\n\r\n"
        } else {
            b"hello"
        };
        let mut body = format!("{:x}\r\n", inner.len()).into_bytes();
        body.extend_from_slice(inner);
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let resp = answered(exchange(f.addr(), head, body).await, what);
        assert_s3_error(&resp, 411, &["MissingContentLength"], what);
        f.assert_missing(key, what).await;
    }

    // Unsigned aws-chunked bodies with broken framing.
    let unsigned_cases: Vec<(&str, &str, Vec<u8>, u64)> = vec![
        (
            "chunk size ffffffffffffffff",
            "chunk-max",
            b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "chunk size 10000000000000000 (overflows u64)",
            "chunk-overflow",
            b"10000000000000000\r\nhello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "negative chunk size",
            "chunk-negative",
            b"-5\r\nhello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "hex-garbage chunk size",
            "chunk-garbage",
            b"zz\r\nhello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "0x-prefixed chunk size",
            "chunk-0x",
            b"0x5\r\nhello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "chunk header without CRLF, 5 KB long",
            "chunk-long-line",
            vec![b'5'; 5000],
            5,
        ),
        (
            "declared chunk larger than the body",
            "chunk-short",
            b"400\r\nhello\r\n0\r\n\r\n".to_vec(),
            1024,
        ),
        (
            "declared chunk larger than the decoded length",
            "chunk-over-decoded",
            b"a\r\nhellohello\r\n0\r\n\r\n".to_vec(),
            5,
        ),
        (
            "decoded length larger than the chunks",
            "decoded-long",
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            10,
        ),
        (
            "decoded length smaller than the chunks",
            "decoded-short",
            b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            3,
        ),
        (
            "missing final chunk",
            "chunk-no-final",
            b"5\r\nhello\r\n".to_vec(),
            5,
        ),
        (
            "data after the final chunk",
            "chunk-trailing-data",
            b"5\r\nhello\r\n0\r\n\r\nEXTRA".to_vec(),
            5,
        ),
    ];
    for (what, key, wire, decoded) in unsigned_cases {
        let (head, _) = chunked_put(
            &f,
            key,
            STREAMING_UNSIGNED_TRAILER,
            Some(decoded),
            Some(wire.len()),
        );
        let resp = answered(exchange(f.addr(), head, wire).await, what);
        assert_s3_error(
            &resp,
            400,
            &[
                "InvalidRequest",
                "IncompleteBody",
                "InvalidArgument",
                "MalformedTrailerError",
            ],
            what,
        );
        f.assert_missing(key, what).await;
    }

    // Signed aws-chunked with a huge chunk size: refused at the chunk header.
    let signer = Signer::new(ADMIN);
    let probe = format!(
        "ffffffffffffffff;chunk-signature={}\r\nhello\r\n",
        "0".repeat(64)
    );
    let (head, seed) = signed_head_with(
        &f,
        &signer,
        "PUT",
        &format!("{BUCKET}/signed-chunk-max"),
        &[
            ("content-encoding", "aws-chunked".to_string()),
            ("x-amz-decoded-content-length", "5".to_string()),
            ("content-length", probe.len().to_string()),
        ],
        Payload::Literal(STREAMING_SIGNED.to_string()),
    );
    let sig = signer.chunk_signature(&seed, b"hello");
    let wire = format!("ffffffffffffffff;chunk-signature={sig}\r\nhello\r\n");
    assert_eq!(wire.len(), probe.len());
    let resp = answered(
        exchange(f.addr(), head, wire.into_bytes()).await,
        "signed chunk of 2^64-1 bytes",
    );
    assert_s3_error(
        &resp,
        400,
        &["InvalidRequest"],
        "signed chunk of 2^64-1 bytes",
    );
    f.assert_missing("signed-chunk-max", "signed huge chunk")
        .await;

    // x-amz-decoded-content-length that is not a number.
    for (what, value) in [
        ("negative decoded length", "-1"),
        ("huge decoded length", "99999999999999999999"),
        ("decoded length with a unit", "5 bytes"),
    ] {
        let wire = b"5\r\nhello\r\n0\r\n\r\n".to_vec();
        // Signed: an unsigned x-amz-* header is refused (403) before its value is parsed.
        let (head, _) = signed_head_with(
            &f,
            &Signer::new(ADMIN),
            "PUT",
            &format!("{BUCKET}/decoded-nan"),
            &[
                ("content-encoding", "aws-chunked".to_string()),
                ("x-amz-decoded-content-length", value.to_string()),
                ("content-length", wire.len().to_string()),
            ],
            Payload::Literal(STREAMING_UNSIGNED_TRAILER.to_string()),
        );
        let resp = answered(exchange(f.addr(), head, wire).await, what);
        assert_s3_error(&resp, 400, &["InvalidArgument", "InvalidRequest"], what);
        f.assert_missing("decoded-nan", what).await;
    }

    // A decoded length over 5 GiB: EntityTooLarge before any byte is read.
    let wire = b"5\r\nhello\r\n0\r\n\r\n".to_vec();
    let (head, _) = chunked_put(
        &f,
        "decoded-5g",
        STREAMING_UNSIGNED_TRAILER,
        Some((5u64 << 30) + 1),
        Some(wire.len()),
    );
    let resp = answered(exchange(f.addr(), head, wire).await, "decoded > 5 GiB");
    assert_s3_error(&resp, 400, &["EntityTooLarge"], "decoded > 5 GiB");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Digests and checksums

#[tokio::test]
async fn hostile_digests_and_checksums() {
    let f = fixture().await;
    let body = b"hello world".to_vec();
    let crc = hansa_conformance::sign::crc32_b64(&body);
    let sha256_b64 = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body))
    };
    // (what, key, headers, status, codes)
    let cases: Vec<HeaderCase> = vec![
        (
            "Content-MD5 not base64",
            "md5-garbage",
            vec![("content-md5", "not base64 at all!".into())],
            400,
            &["InvalidDigest"],
        ),
        (
            "Content-MD5 of the wrong length",
            "md5-short",
            vec![("content-md5", "AAAAAAA=".into())],
            400,
            &["InvalidDigest"],
        ),
        (
            "Content-MD5 of other data",
            "md5-other",
            vec![("content-md5", md5_b64(b"other data"))],
            400,
            &["BadDigest"],
        ),
        (
            "x-amz-checksum-crc32 not base64",
            "crc-garbage",
            vec![("x-amz-checksum-crc32", "@@@@".into())],
            400,
            &["InvalidRequest"],
        ),
        (
            "x-amz-checksum-crc32 of the wrong length",
            "crc-long",
            vec![("x-amz-checksum-crc32", "AAAAAAAAAAA=".into())],
            400,
            &["InvalidRequest"],
        ),
        (
            "x-amz-checksum-crc32 empty",
            "crc-empty",
            vec![("x-amz-checksum-crc32", "".into())],
            400,
            &["InvalidRequest"],
        ),
        (
            "two different checksum headers",
            "crc-and-sha",
            vec![
                ("x-amz-checksum-crc32", crc.clone()),
                ("x-amz-checksum-sha256", sha256_b64.clone()),
            ],
            400,
            &["InvalidRequest"],
        ),
        (
            "the same checksum header twice",
            "crc-twice",
            vec![
                ("x-amz-checksum-crc32", crc.clone()),
                ("x-amz-checksum-crc32", "AAAAAA==".into()),
            ],
            400,
            &["InvalidRequest"],
        ),
        (
            "checksum of other data",
            "crc-other",
            vec![("x-amz-checksum-crc32", "AAAAAA==".into())],
            400,
            &["BadDigest"],
        ),
        (
            "unknown checksum algorithm",
            "crc-md4",
            vec![("x-amz-sdk-checksum-algorithm", "MD4".into())],
            400,
            &["InvalidRequest"],
        ),
        (
            "algorithm conflicting with the header sent",
            "crc-conflict",
            vec![
                ("x-amz-sdk-checksum-algorithm", "SHA256".into()),
                ("x-amz-checksum-crc32", crc.clone()),
            ],
            400,
            &["InvalidRequest"],
        ),
        (
            "x-amz-trailer without a trailer payload",
            "trailer-unsigned",
            vec![("x-amz-trailer", "x-amz-checksum-crc32".into())],
            400,
            &["InvalidRequest"],
        ),
        (
            "3 KB of user metadata",
            "meta-large",
            vec![("x-amz-meta-big", "m".repeat(3000))],
            400,
            &["MetadataTooLarge"],
        ),
    ];
    for (what, key, mut headers, status, codes) in cases {
        headers.push(("content-length", body.len().to_string()));
        let head = signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/{key}"),
            &headers,
            Payload::Unsigned,
        );
        let resp = answered(exchange(f.addr(), head, body.clone()).await, what);
        assert_s3_error(&resp, status, codes, what);
        f.assert_missing(key, what).await;
    }
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Keys and bucket names

#[tokio::test]
async fn hostile_keys() {
    let f = fixture().await;
    let body = b"key body".to_vec();
    let put_raw = |path: String| {
        signed_head(
            &f,
            "PUT",
            &path,
            &[("content-length", body.len().to_string())],
            Payload::Unsigned,
        )
    };

    // Too long: 1025 and 2000 bytes.
    for n in [1025, 2000] {
        let key = "k".repeat(n);
        let resp = answered(
            exchange(f.addr(), put_raw(format!("{BUCKET}/{key}")), body.clone()).await,
            "long key",
        );
        assert_s3_error(&resp, 400, &["KeyTooLongError"], &format!("{n}-byte key"));
    }
    // 2000 bytes of multi-byte characters (S3 counts UTF-8 bytes).
    let key = "é".repeat(600);
    let resp = answered(
        exchange(
            f.addr(),
            put_raw(format!("{BUCKET}/{}", hansa_conformance::encode_key(&key))),
            body.clone(),
        )
        .await,
        "long unicode key",
    );
    assert_s3_error(&resp, 400, &["KeyTooLongError"], "1200-byte unicode key");

    // Invalid UTF-8 after decoding: InvalidURI, for PUT, GET and DELETE alike.
    for (what, encoded) in [
        ("overlong slash %C0%AF", "bad-%C0%AF"),
        ("lone %ff", "bad-%ff"),
        ("surrogate %ED%A0%80", "bad-%ED%A0%80"),
        ("truncated sequence %E2%82", "bad-%E2%82"),
    ] {
        for method in ["PUT", "GET", "DELETE"] {
            let path = format!("{BUCKET}/{encoded}");
            let head = if method == "PUT" {
                put_raw(path)
            } else {
                signed_head(&f, method, &path, &[], Payload::Unsigned)
            };
            let b = if method == "PUT" {
                body.clone()
            } else {
                Vec::new()
            };
            let resp = answered(exchange(f.addr(), head, b).await, what);
            assert_s3_error(&resp, 400, &["InvalidURI"], &format!("{method} {what}"));
        }
    }
    // HEAD: the status without a body.
    let head = signed_head(
        &f,
        "HEAD",
        &format!("{BUCKET}/bad-%C0%AF"),
        &[],
        Payload::Unsigned,
    );
    let resp = answered(exchange(f.addr(), head, Vec::new()).await, "HEAD bad UTF-8");
    assert_eq!(resp.status, 400);
    assert!(resp.body.is_empty(), "HEAD with a body");
    f.assert_unchanged("invalid keys").await;
    f.finish().await;
}

/// A key holding NUL (`%00`): S3 accepts any UTF-8; if the gateway stores it, it must read
/// back, list with `encoding-type=url`, delete, and keep unencoded listings answering.
#[tokio::test]
async fn nul_in_a_key() {
    let f = fixture().await;
    let body = b"nul".to_vec();
    let head = signed_head(
        &f,
        "PUT",
        &format!("{BUCKET}/a%00b"),
        &[("content-length", body.len().to_string())],
        Payload::Unsigned,
    );
    let resp = answered(exchange(f.addr(), head, body.clone()).await, "PUT a%00b");
    if resp.status == 200 {
        assert_eq!(get(&f.s3, BUCKET, "a\u{0}b").await, body);
        let listed =
            f.s3.list_objects_v2()
                .bucket(BUCKET)
                .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                .send()
                .await
                .expect("url-encoded listing");
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert!(keys.contains(&"a%00b"), "listed {keys:?}");
        // Without encoding-type the listing must still be answered (S3 itself sends keys XML
        // 1.0 cannot carry; clients are told to ask for encoding-type=url).
        let head = signed_head(
            &f,
            "GET",
            &format!("{BUCKET}?list-type=2"),
            &[],
            Payload::Unsigned,
        );
        let resp = answered(exchange(f.addr(), head, Vec::new()).await, "plain listing");
        assert_eq!(resp.status, 200, "{}", resp.text());
        f.s3.delete_object()
            .bucket(BUCKET)
            .key("a\u{0}b")
            .send()
            .await
            .expect("delete");
    } else {
        assert_4xx_s3_error(&resp, "PUT a%00b");
    }
    f.assert_missing("a\u{0}b", "NUL key").await;
    f.finish().await;
}

#[tokio::test]
async fn hostile_bucket_names() {
    let f = fixture().await;
    let long = "b".repeat(300);
    for name in [
        "..",
        ".",
        "a",
        "ab",
        long.as_str(),
        "UPPERCASE",
        "MixedCase",
        "-leading-dash",
        "trailing-dash-",
        "double..dot",
        "under_score",
        "192.168.0.1",
        "xn--punycode",
        "sthree-reserved",
        "ends-s3alias",
        "spa%20ce",
        "%2e%2e",
    ] {
        let head = signed_head(
            &f,
            "PUT",
            name,
            &[("content-length", "0".into())],
            Payload::Unsigned,
        );
        let resp = answered(exchange(f.addr(), head, Vec::new()).await, name);
        assert_s3_error(
            &resp,
            400,
            &["InvalidBucketName"],
            &format!("CreateBucket {name:?}"),
        );
    }
    // Invalid UTF-8 in a bucket name never reaches the naming rules.
    let head = signed_head(
        &f,
        "PUT",
        "b%C0%AFb",
        &[("content-length", "0".into())],
        Payload::Unsigned,
    );
    let resp = answered(
        exchange(f.addr(), head, Vec::new()).await,
        "bad UTF-8 bucket",
    );
    assert_s3_error(
        &resp,
        400,
        &["InvalidURI"],
        "CreateBucket with invalid UTF-8",
    );

    // Writes into a bucket that cannot exist.
    let head = signed_head(
        &f,
        "PUT",
        "../escape",
        &[("content-length", "1".into())],
        Payload::Unsigned,
    );
    let resp = answered(
        exchange(f.addr(), head, b"x".to_vec()).await,
        "PUT ../escape",
    );
    assert_s3_error(
        &resp,
        resp.status,
        &["NoSuchBucket", "InvalidBucketName"],
        "PutObject into bucket \"..\"",
    );
    assert!(matches!(resp.status, 400 | 404));

    let buckets = f.s3.list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec![BUCKET], "no bucket was created");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// XML bodies

fn billion_laughs(root: &str, inner: &str) -> String {
    let mut doc =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    doc.push_str("<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n");
    for i in 2..=9 {
        doc.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    doc.push_str(&format!("]>\n<{root}>{inner}</{root}>"));
    doc
}

fn delete_doc(keys: &[String]) -> String {
    let mut doc = String::from("<Delete>");
    for k in keys {
        doc.push_str(&format!("<Object><Key>{k}</Key></Object>"));
    }
    doc.push_str("</Delete>");
    doc
}

#[tokio::test]
async fn hostile_delete_objects() {
    let f = fixture().await;
    let post_with_md5 = |body: &[u8], md5: String| {
        signed_head(
            &f,
            "POST",
            &format!("{BUCKET}?delete"),
            &[
                ("content-length", body.len().to_string()),
                ("content-md5", md5),
            ],
            Payload::Unsigned,
        )
    };
    let post = |body: &[u8]| post_with_md5(body, md5_b64(body));

    // 1001 keys, one of which exists: refused as a whole.
    let mut keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    keys.push(EXISTING.to_string());
    let doc = delete_doc(&keys).into_bytes();
    let resp = answered(exchange(f.addr(), post(&doc), doc).await, "1001 keys");
    assert_s3_error(
        &resp,
        400,
        &["MalformedXML"],
        "DeleteObjects with 1001 keys",
    );
    f.assert_unchanged("1001 keys").await;

    // A 3 MiB document (over the XML limit).
    let mut keys: Vec<String> = vec![EXISTING.to_string()];
    keys.extend((0..1000).map(|i| format!("{i:03}-{}", "x".repeat(3200))));
    let doc = delete_doc(&keys).into_bytes();
    assert!(doc.len() > 3 << 20);
    let resp = answered(exchange(f.addr(), post(&doc), doc).await, "3 MiB body");
    assert_s3_error(
        &resp,
        400,
        &["MaxMessageLengthExceeded", "MalformedXML"],
        "DeleteObjects with a 3 MiB body",
    );
    f.assert_unchanged("3 MiB delete").await;

    // Billion laughs: rejected or taken literally, never expanded.
    let started = Instant::now();
    for inner in [
        format!("<Object><Key>&lol9;</Key></Object><Object><Key>{EXISTING}</Key></Object>"),
        format!("<Object><Key>{EXISTING}</Key></Object><Quiet>&lol9;</Quiet>"),
    ] {
        let doc = billion_laughs("Delete", &inner).into_bytes();
        let resp = answered(exchange(f.addr(), post(&doc), doc).await, "billion laughs");
        assert_s3_error(
            &resp,
            400,
            &["MalformedXML"],
            "DeleteObjects billion laughs",
        );
    }
    // External entities are not fetched either.
    let doc = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Delete><Object><Key>&x;</Key></Object><Object><Key>{EXISTING}</Key></Object></Delete>"
    )
    .into_bytes();
    let resp = answered(exchange(f.addr(), post(&doc), doc).await, "external entity");
    assert_s3_error(
        &resp,
        400,
        &["MalformedXML"],
        "DeleteObjects external entity",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "entity documents took too long"
    );

    // Invalid UTF-8, a wrong Content-MD5, a quiet flag that is not a boolean.
    for (what, doc, md5) in [
        (
            "invalid UTF-8",
            b"<Delete><Object><Key>\xff\xfe</Key></Object></Delete>".to_vec(),
            None,
        ),
        (
            "Quiet=maybe",
            format!("<Delete><Quiet>maybe</Quiet><Object><Key>{EXISTING}</Key></Object></Delete>")
                .into_bytes(),
            None,
        ),
        (
            "empty key",
            format!("<Delete><Object><Key></Key></Object><Object><Key>{EXISTING}</Key></Object></Delete>")
                .into_bytes(),
            None,
        ),
        (
            "wrong Content-MD5",
            delete_doc(&[EXISTING.to_string()]).into_bytes(),
            Some(md5_b64(b"something else")),
        ),
    ] {
        let md5 = md5.unwrap_or_else(|| md5_b64(&doc));
        let head = post_with_md5(&doc, md5);
        let resp = answered(exchange(f.addr(), head, doc).await, what);
        assert_s3_error(&resp, 400, &["MalformedXML", "BadDigest"], what);
    }
    f.finish().await;
}

#[tokio::test]
async fn hostile_create_bucket_bodies() {
    let f = fixture().await;
    let create = |name: &str, body: &[u8]| {
        signed_head(
            &f,
            "PUT",
            name,
            &[("content-length", body.len().to_string())],
            Payload::Unsigned,
        )
    };
    // 10 MB: refused on its declared length, before it is read.
    let body = {
        let mut b = b"<CreateBucketConfiguration><LocationConstraint>".to_vec();
        b.extend(std::iter::repeat_n(b'x', 10_000_000));
        b.extend_from_slice(b"</LocationConstraint></CreateBucketConfiguration>");
        b
    };
    let resp = answered(
        exchange(f.addr(), create("ten-megabytes", &body), body).await,
        "10 MB CreateBucket",
    );
    assert_s3_error(
        &resp,
        400,
        &["MaxMessageLengthExceeded", "MalformedXML"],
        "CreateBucket with 10 MB",
    );

    // The same size without a declared length (chunked transfer).
    let mut head = signed_head(
        &f,
        "PUT",
        "ten-megabytes-chunked",
        &[("transfer-encoding", "chunked".into())],
        Payload::Unsigned,
    );
    head = head.clone();
    let mut wire = Vec::new();
    for _ in 0..160 {
        wire.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        wire.extend(std::iter::repeat_n(b' ', 65536));
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let resp = answered(
        exchange(f.addr(), head, wire).await,
        "chunked 10 MB CreateBucket",
    );
    assert_4xx_s3_error(&resp, "CreateBucket with 10 MB chunked");

    let laughs = billion_laughs(
        "CreateBucketConfiguration",
        "<LocationConstraint>&lol9;</LocationConstraint>",
    )
    .into_bytes();
    let resp = answered(
        exchange(f.addr(), create("laughing", &laughs), laughs).await,
        "billion laughs CreateBucket",
    );
    assert_s3_error(&resp, 400, &["MalformedXML"], "CreateBucket billion laughs");

    for name in ["ten-megabytes", "ten-megabytes-chunked", "laughing"] {
        hansa_conformance::assert_s3_status!(f.s3.head_bucket().bucket(name).send().await, 404);
    }
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// CopyObject sources

#[tokio::test]
async fn hostile_copy_sources() {
    let f = fixture().await;
    // (what, x-amz-copy-source, status, codes)
    let cases: Vec<(&str, String, u16, &[&str])> = vec![
        (
            "relative path",
            "../../etc/passwd".into(),
            404,
            &["NoSuchBucket"],
        ),
        (
            "traversal inside the bucket",
            format!("/{BUCKET}/../../../../etc/passwd"),
            404,
            &["NoSuchKey"],
        ),
        (
            "absolute file path",
            "/etc/passwd".into(),
            404,
            &["NoSuchBucket"],
        ),
        ("empty key", format!("{BUCKET}/"), 400, &["InvalidArgument"]),
        ("bucket only", BUCKET.to_string(), 400, &["InvalidArgument"]),
        ("empty", String::new(), 400, &["InvalidArgument"]),
        ("slash", "/".into(), 400, &["InvalidArgument"]),
        (
            "invalid UTF-8",
            format!("{BUCKET}/%C0%AF"),
            400,
            &["InvalidArgument"],
        ),
        (
            "a version id",
            format!("{BUCKET}/{EXISTING}?versionId=3HL4kqtJlcpXroDTDmJ"),
            400,
            &["InvalidArgument"],
        ),
        (
            "invalid percent-encoding",
            format!("{BUCKET}/%ZZ%"),
            404,
            &["NoSuchKey"],
        ),
        (
            "encoded traversal",
            format!("{BUCKET}/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
            404,
            &["NoSuchKey"],
        ),
    ];
    for (what, source, status, codes) in cases {
        let head = signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/copy-target"),
            &[
                ("x-amz-copy-source", source.clone()),
                ("content-length", "0".into()),
            ],
            Payload::Unsigned,
        );
        let resp = answered(exchange(f.addr(), head, Vec::new()).await, what);
        assert_s3_error(
            &resp,
            status,
            codes,
            &format!("copy source {what} ({source:?})"),
        );
        f.assert_missing("copy-target", what).await;
    }
    // Non-UTF-8 bytes in the header itself.
    let head = signed_head(
        &f,
        "PUT",
        &format!("{BUCKET}/copy-target"),
        &[("content-length", "0".into())],
        Payload::Unsigned,
    );
    let head = inject(&head, &[b"x-amz-copy-source: hostile/\xff\xfe"]);
    let resp = answered(
        exchange(f.addr(), head, Vec::new()).await,
        "binary copy source",
    );
    assert_4xx_s3_error(&resp, "binary copy source");
    f.assert_missing("copy-target", "binary copy source").await;
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Ranges

#[tokio::test]
async fn hostile_ranges() {
    let f = fixture().await;
    let size = EXISTING_BODY.len();
    // (Range, accepted statuses, expected body for 2xx). Where RFC 9110 allows either
    // ignoring the header (200) or serving the whole representation as a range (206), both are
    // accepted; the body is the same.
    let whole: &[u16] = &[200];
    let whole_or_range: &[u16] = &[200, 206];
    let cases: Vec<(&str, &[u16], &[u8])> = vec![
        ("bytes=-", whole, EXISTING_BODY),
        ("bytes=5-1", whole, EXISTING_BODY),
        ("bytes=abc-def", whole, EXISTING_BODY),
        ("bytes=0-1,3-4", whole, EXISTING_BODY),
        ("bytes=--5", whole, EXISTING_BODY),
        ("bytes=1-2-3", whole, EXISTING_BODY),
        ("items=0-1", whole, EXISTING_BODY),
        (
            "bytes=0-18446744073709551615",
            whole_or_range,
            EXISTING_BODY,
        ),
        (
            "bytes=0-99999999999999999999",
            whole_or_range,
            EXISTING_BODY,
        ),
        ("bytes=-99999999999999999999", whole_or_range, EXISTING_BODY),
        ("bytes=-18446744073709551615", whole_or_range, EXISTING_BODY),
        ("bytes=2-4", &[206], &EXISTING_BODY[2..5]),
        ("bytes=15-", &[416], b""),
        ("bytes=18446744073709551615-", &[416], b""),
        ("bytes=-0", &[416], b""),
        // Unsatisfiable by RFC 9110; see range_start_beyond_u64_is_unsatisfiable.
        ("bytes=99999999999999999999-", &[200, 416], EXISTING_BODY),
    ];
    for (range, statuses, expected) in cases {
        let head = signed_head(
            &f,
            "GET",
            &format!("{BUCKET}/{EXISTING}"),
            &[("range", range.to_string())],
            Payload::Unsigned,
        );
        let resp = answered(exchange(f.addr(), head, Vec::new()).await, range);
        assert!(
            statuses.contains(&resp.status),
            "Range: {range}: {} {}",
            resp.status,
            resp.text()
        );
        if resp.status == 416 {
            assert_s3_error(&resp, 416, &["InvalidRange"], range);
            assert_eq!(
                hansa_conformance::xml_text(&resp.text(), "ActualObjectSize"),
                Some(size.to_string())
            );
        } else {
            assert_eq!(resp.body, expected, "Range: {range}");
        }
    }
    // HEAD with an unsatisfiable range: the status, no body.
    let head = signed_head(
        &f,
        "HEAD",
        &format!("{BUCKET}/{EXISTING}"),
        &[("range", "bytes=100-".to_string())],
        Payload::Unsigned,
    );
    let resp = answered(exchange(f.addr(), head, Vec::new()).await, "HEAD 416");
    assert_eq!(resp.status, 416);
    assert!(resp.body.is_empty());
    f.finish().await;
}

/// `bytes=99999999999999999999-` names a first byte beyond any object: RFC 9110 §14.1.2 makes
/// it unsatisfiable (416), however many digits it has.
#[tokio::test]
async fn range_start_beyond_u64_is_unsatisfiable() {
    let f = fixture().await;
    let head = signed_head(
        &f,
        "GET",
        &format!("{BUCKET}/{EXISTING}"),
        &[("range", "bytes=99999999999999999999-".into())],
        Payload::Unsigned,
    );
    let resp = answered(
        exchange(f.addr(), head, Vec::new()).await,
        "huge range start",
    );
    assert_s3_error(&resp, 416, &["InvalidRange"], "bytes=99999999999999999999-");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Query strings

#[tokio::test]
async fn ten_thousand_query_parameters() {
    let f = fixture().await;
    let params: Vec<String> = (0..10_000).map(|i| format!("{i:x}")).collect();
    let path = format!("{BUCKET}?list-type=2&{}", params.join("&"));
    assert!(path.len() < 65_000, "stays under http's URI limit");
    let started = Instant::now();
    let head = signed_head(&f, "GET", &path, &[], Payload::Unsigned);
    let resp = answered(
        exchange(f.addr(), head, Vec::new()).await,
        "10,000 parameters",
    );
    assert!(
        resp.status == 200 || (400..500).contains(&resp.status),
        "10,000 parameters: {} {}",
        resp.status,
        resp.text()
    );
    if resp.status == 200 {
        assert_eq!(
            hansa_conformance::xml_all(&resp.text(), "Key"),
            vec![EXISTING.to_string()]
        );
    } else {
        assert_4xx_s3_error(&resp, "10,000 parameters");
    }
    // The same parameter 10,000 times, unsigned: denied, quickly.
    let query = vec!["p"; 10_000].join("&");
    let req = format!(
        "GET /{BUCKET}?{query} HTTP/1.1\r\nhost: {}\r\n\r\n",
        f.addr()
    );
    let resp = answered(
        exchange(f.addr(), req.into_bytes(), Vec::new()).await,
        "10,000 repeated parameters",
    );
    assert_s3_error(&resp, 403, &["AccessDenied"], "anonymous 10,000 parameters");
    // Thousands of presigned-looking parameters.
    let query = vec!["X-Amz-Signature"; 3_000].join("&");
    let req = format!(
        "GET /{BUCKET}?{query} HTTP/1.1\r\nhost: {}\r\n\r\n",
        f.addr()
    );
    let resp = answered(
        exchange(f.addr(), req.into_bytes(), Vec::new()).await,
        "3,000 signatures",
    );
    assert_4xx_s3_error(&resp, "3,000 X-Amz-Signature parameters");
    // A URI over http's 64 KiB limit: refused by the HTTP layer.
    let query = (0..10_000)
        .map(|i| format!("param{i}=value{i}"))
        .collect::<Vec<_>>()
        .join("&");
    let req = format!(
        "GET /{BUCKET}?{query} HTTP/1.1\r\nhost: {}\r\n\r\n",
        f.addr()
    );
    let resp = answered(
        exchange(f.addr(), req.into_bytes(), Vec::new()).await,
        "150 KB URI",
    );
    assert!(
        matches!(resp.status, 400 | 403 | 414 | 431),
        "150 KB URI: {}",
        resp.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "query handling is slow"
    );
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Slow and broken clients

/// Reads until the peer closes; true when it did within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        loop {
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (closed, buf)
}

#[tokio::test]
async fn stalled_headers_are_cut_off() {
    let f = fixture_with(Options {
        header_timeout_secs: Some(2),
        ..Options::default()
    })
    .await;
    // Headers that never end.
    let mut stream = TcpStream::connect(f.addr()).await.expect("connect");
    stream
        .write_all(
            format!("PUT /{BUCKET}/stalled HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n")
                .as_bytes(),
        )
        .await
        .expect("partial head");
    let started = Instant::now();
    let (closed, buf) = closed_within(&mut stream, Duration::from_secs(8)).await;
    assert!(closed, "connection open 8 s into a 2 s header timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed too early"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        buf.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
        "unexpected answer: {text}"
    );

    // Headers dribbled a byte at a time: the timeout bounds the whole head, not each read.
    let mut stream = TcpStream::connect(f.addr()).await.expect("connect");
    let started = Instant::now();
    let dribble = async {
        for b in format!("GET /{BUCKET}/{EXISTING} HTTP/1.1\r\nhost: x\r\n")
            .bytes()
            .cycle()
            .take(10_000)
        {
            if stream.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() > Duration::from_secs(10) {
                return;
            }
        }
    };
    dribble.await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a client dribbling its headers was kept for {:?}",
        started.elapsed()
    );
    // One complete request, then an idle keep-alive connection: closed by the header timeout.
    let mut idle = TcpStream::connect(f.addr()).await.expect("connect");
    let head = signed_head(
        &f,
        "GET",
        &format!("{BUCKET}/{EXISTING}"),
        &[],
        Payload::Unsigned,
    );
    idle.write_all(&head).await.expect("request");
    let first = raw::read_response(&mut idle, LIMIT)
        .await
        .expect("response");
    assert_eq!(first.status, 200);
    let (idle_closed, _) = closed_within(&mut idle, Duration::from_secs(8)).await;
    assert!(
        idle_closed,
        "idle keep-alive connection open 8 s into a 2 s header timeout"
    );

    f.assert_missing("stalled", "stalled headers").await;
    f.finish().await;
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let f = fixture_with(Options {
        header_timeout_secs: Some(2),
        ..Options::default()
    })
    .await;
    let mut silent = TcpStream::connect(f.addr()).await.expect("connect");
    // The first bytes of the HTTP/2 preface, then nothing.
    let mut preface = TcpStream::connect(f.addr()).await.expect("connect");
    preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("partial preface");
    let (silent_closed, buf) = closed_within(&mut silent, Duration::from_secs(8)).await;
    assert!(buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"));
    let (preface_closed, _) = closed_within(&mut preface, Duration::from_secs(1)).await;
    assert!(
        silent_closed && preface_closed,
        "open 8 s into a 2 s header timeout: silent connection {}, partial HTTP/2 preface {}",
        !silent_closed,
        !preface_closed
    );
    f.finish().await;
}

#[tokio::test]
async fn truncated_upload_stores_nothing() {
    let f = fixture().await;
    let declared = 10u64 << 20;
    let sent = hansa_conformance::random_bytes(1 << 20);
    for round in 0..3 {
        let key = format!("truncated-{round}");
        let head = signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/{key}"),
            &[("content-length", declared.to_string())],
            Payload::Unsigned,
        );
        // 1 MiB of the 10 MiB, then the client closes its side.
        let resp = exchange_with(f.addr(), head, sent.clone(), true, Duration::from_secs(20)).await;
        if let Some(resp) = &resp {
            assert_ne!(resp.status, 200, "a truncated body was acknowledged");
            if resp.status != 408 {
                assert_4xx_s3_error(resp, "truncated upload");
            }
        }
        f.assert_missing(&key, "truncated upload").await;
    }
    // Several at once, dropped mid-body without a FIN first.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let addr = f.addr();
        let head = signed_head(
            &f,
            "PUT",
            &format!("{BUCKET}/dropped-{i}"),
            &[("content-length", declared.to_string())],
            Payload::Unsigned,
        );
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.write_all(&head).await.expect("head");
            let _ = stream.write_all(&sent).await;
            drop(stream);
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    for i in 0..4 {
        f.assert_missing(&format!("dropped-{i}"), "dropped uploads")
            .await;
    }
    f.assert_unchanged("truncated uploads").await;
    // The in-flight budget was given back: a normal 4 MiB upload works.
    let data = hansa_conformance::random_bytes(4 << 20);
    put(&f.s3, BUCKET, "after-truncation", &data).await;
    assert_eq!(get(&f.s3, BUCKET, "after-truncation").await, data);
    f.s3.delete_object()
        .bucket(BUCKET)
        .key("after-truncation")
        .send()
        .await
        .expect("delete");
    f.finish().await;
}

/// A body that stops arriving: RequestTimeout after `limits.body_idle_timeout_secs`, nothing
/// stored. The harness has no option for that limit, so this gateway is configured here.
#[tokio::test]
async fn stalled_body_times_out() {
    watch_panics();
    let dir = tempfile::Builder::new()
        .prefix("gw-hostile-")
        .tempdir_in(hansa_conformance::test_tmp_root())
        .expect("tempdir");
    let toml = hansa_conformance::process_config(dir.path(), "127.0.0.1:0".parse().expect("addr"))
        .replacen("[limits]\n", "[limits]\nbody_idle_timeout_secs = 2\n", 1);
    let config =
        hansa_conformance::hansa::config::Config::from_toml("hostile.toml", &toml).expect("config");
    let running = hansa_conformance::hansa::server::start(config)
        .await
        .expect("start");
    let addr = running.http_addrs[0];
    let endpoint = format!("http://{addr}");
    let s3 = hansa_conformance::client_at(&endpoint);
    create_bucket(&s3, BUCKET).await;

    let mut req = with_headers(
        raw::request("PUT", &format!("{endpoint}/{BUCKET}/stalled-body")),
        &[("content-length", "100".into())],
    );
    Signer::new(ADMIN).sign(&mut req, &Payload::Unsigned);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&head_bytes(&req)).await.expect("head");
    stream.write_all(b"0123456789").await.expect("some body");
    let started = Instant::now();
    let resp = raw::read_response(&mut stream, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "stalled body held for {waited:?}"
    );
    if let Some(resp) = resp {
        assert_s3_error(&resp, 400, &["RequestTimeout"], "stalled body");
    }
    assert_s3_err!(
        s3.get_object()
            .bucket(BUCKET)
            .key("stalled-body")
            .send()
            .await,
        404,
        "NoSuchKey"
    );
    s3.list_buckets().send().await.expect("still serving");
    assert_no_gateway_panic();
    running.shutdown(Duration::from_secs(5)).await;
}
