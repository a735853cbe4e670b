//! An HTTP body that counts the bytes of its data frames as they pass, never holding them.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

use super::ByteCounter;

/// `inner`, with every data frame's length added to a counter as it is polled: for a
/// request body, as the handler reads it; for a response body, as hyper sends it.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    counter: ByteCounter,
}

impl<B> CountedBody<B> {
    pub(super) fn new(inner: B, counter: ByteCounter) -> Self {
        CountedBody { inner, counter }
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.add(data.remaining() as u64);
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
