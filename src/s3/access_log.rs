//! What the request log line says beyond the route: the bytes a request body carried, and
//! where its object's replicas are. An operation handler notes the replicas on its response
//! ([`note_written`], [`note_served`]); the handler takes the note off before the response
//! leaves and writes it in the log line, so nothing below the S3 layer learns about logging.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::pace::RawBody;
use super::response::S3Response;
use crate::meta::{ObjectRecord, PartRecord, ReplicaState};

/// The `replicas` field of a request's log line: `"2/2"` for a write (replicas holding the new
/// version when the client was answered / the write's targets), the backend that served a
/// read, or nothing (logged as `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicas(pub String);

/// Notes how many of a new version's replicas are present when the write is answered.
pub fn note_written(response: &mut S3Response, record: &ObjectRecord) {
    let present = record
        .replicas
        .iter()
        .filter(|r| r.state == ReplicaState::Present)
        .count();
    note(response, format!("{present}/{}", record.replicas.len()));
}

/// Notes how many of an upload's targets hold a part when its upload is answered.
pub fn note_part_written(response: &mut S3Response, part: &PartRecord) {
    let present = part.receipts.iter().filter(|r| r.is_some()).count();
    note(response, format!("{present}/{}", part.receipts.len()));
}

/// Notes the backend a read's bytes come from (the first one, should the read fail over).
pub fn note_served(response: &mut S3Response, backend: Option<&str>) {
    if let Some(backend) = backend {
        note(response, backend.to_string());
    }
}

fn note(response: &mut S3Response, replicas: String) {
    response.extensions_mut().insert(Replicas(replicas));
}

/// Takes the note off a response (it is for the log, not for the client).
pub fn take_replicas(response: &mut S3Response) -> Option<Replicas> {
    response.extensions_mut().remove::<Replicas>()
}

/// A request body that counts the bytes read from the client into a shared counter.
pub struct CountedBody {
    inner: RawBody,
    received: Arc<AtomicU64>,
}

impl CountedBody {
    /// `body`, counting into the returned counter.
    pub fn wrap(body: RawBody) -> (CountedBody, Arc<AtomicU64>) {
        let received = Arc::new(AtomicU64::new(0));
        (
            CountedBody {
                inner: body,
                received: received.clone(),
            },
            received,
        )
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.received
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn counts_every_data_frame() {
        let chunks: Vec<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
        ];
        let raw: RawBody = StreamBody::new(futures::stream::iter(chunks)).boxed_unsync();
        let (body, received) = CountedBody::wrap(raw);
        let bytes = body.collect().await.expect("collect").to_bytes();
        assert_eq!(&bytes[..], b"hello world");
        assert_eq!(received.load(Ordering::Relaxed), 11);
    }

    #[tokio::test]
    async fn an_unread_body_counts_nothing() {
        let raw: RawBody = Full::new(Bytes::from_static(b"never read"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let (_body, received) = CountedBody::wrap(raw);
        assert_eq!(received.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn notes_are_taken_off_the_response() {
        let mut r = super::super::response::empty(http::StatusCode::OK);
        note_served(&mut r, Some("disk-a"));
        assert_eq!(take_replicas(&mut r), Some(Replicas("disk-a".into())));
        assert_eq!(take_replicas(&mut r), None);
    }
}
