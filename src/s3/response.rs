//! Building responses: XML documents, empty replies, streamed bodies, error documents.

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};

use super::error::S3Error;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type S3Response = Response<Body>;

pub fn empty_body() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn full_body(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn stream_body<S>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    BodyExt::boxed_unsync(StreamBody::new(stream.map_ok(http_body::Frame::data)))
}

pub fn empty(status: StatusCode) -> S3Response {
    let mut r = Response::new(empty_body());
    *r.status_mut() = status;
    r
}

pub fn xml(status: StatusCode, doc: String) -> S3Response {
    let mut r = Response::new(full_body(doc));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

/// An S3 error reply. HEAD replies carry no body, as S3's don't.
pub fn error(e: &S3Error, resource: &str, request_id: &str, is_head: bool) -> S3Response {
    let mut r = if is_head {
        empty(e.status)
    } else {
        xml(e.status, e.to_xml(resource, request_id))
    };
    for (name, value) in &e.headers {
        set_header(&mut r, name, value);
    }
    r
}

/// Sets a header from a string that may come from client input; invalid values are dropped
/// rather than allowed to panic.
pub fn set_header(r: &mut S3Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// S3's timestamp format in XML documents: `2006-02-03T16:45:09.000Z`.
pub fn iso8601(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// HTTP date for Last-Modified: `Wed, 12 Oct 2009 17:50:00 GMT`.
pub fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(ms / 1000))
}

pub use crate::meta::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            http_date(1_700_000_000_123),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }
}
