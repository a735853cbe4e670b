//! Cuts a body into parts and sends them with bounded memory: a part goes out as soon as it
//! is full, at most [`PARTS_IN_FLIGHT`] at once, so a write holds about
//! `part × (PARTS_IN_FLIGHT + 1)` whatever the object's size.

use super::PARTS_IN_FLIGHT;
use crate::backend::ByteStream;
use crate::error::{BackendError, Result};
use bytes::Bytes;
use futures::stream::StreamExt;
use std::future::Future;
use tokio::task::JoinSet;

/// What [`send_parts`] sent.
#[derive(Debug)]
pub(super) struct Sent<T> {
    /// Each part's result, in part order (part 1 first).
    pub parts: Vec<T>,
    pub size: u64,
}

/// Sends `body` as parts 1..N of `part_size` bytes (the last may be shorter; an empty body is
/// one empty part) with `send(number, chunks, length)`, which runs as a task of its own: a
/// part makes progress while the body is read. More than `max_parts` parts is an error.
///
/// A body that fails is `Aborted`; the first part that fails ends the whole. Either way, and
/// when the returned future is dropped, the parts still in flight are cancelled: cleaning up
/// what was sent is the caller's job (abort the upload, delete the blob).
pub(super) async fn send_parts<T, F, Fut>(
    mut body: ByteStream,
    part_size: usize,
    max_parts: usize,
    send: F,
) -> Result<Sent<T>>
where
    T: Send + 'static,
    F: Fn(u32, Vec<Bytes>, usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut tasks: JoinSet<(u32, Result<T>)> = JoinSet::new();
    let mut results: Vec<Option<T>> = Vec::new();
    let mut buffer: Vec<Bytes> = Vec::new();
    let mut buffered = 0usize;
    let mut size = 0u64;
    let launch = |tasks: &mut JoinSet<(u32, Result<T>)>,
                  results: &mut Vec<Option<T>>,
                  chunks: Vec<Bytes>,
                  len: usize|
     -> Result<()> {
        if results.len() >= max_parts {
            return Err(BackendError::other(format!(
                "the body needs more than {max_parts} parts of {part_size} bytes"
            )));
        }
        results.push(None);
        let number =
            u32::try_from(results.len()).map_err(|_| BackendError::other("too many parts"))?;
        let part = send(number, chunks, len);
        tasks.spawn(async move { (number, part.await) });
        Ok(())
    };
    while let Some(chunk) = body.next().await {
        let Ok(mut chunk) = chunk else {
            return Err(BackendError::Aborted);
        };
        size += chunk.len() as u64;
        while !chunk.is_empty() {
            let room = part_size - buffered;
            if chunk.len() < room {
                buffered += chunk.len();
                buffer.push(chunk);
                break;
            }
            buffer.push(chunk.split_to(room));
            // Backpressure: the body waits while enough parts are on the wire.
            while tasks.len() >= PARTS_IN_FLIGHT {
                settle(&mut tasks, &mut results).await?;
            }
            launch(
                &mut tasks,
                &mut results,
                std::mem::take(&mut buffer),
                part_size,
            )?;
            buffered = 0;
        }
    }
    if buffered > 0 || results.is_empty() {
        launch(&mut tasks, &mut results, buffer, buffered)?;
    }
    while !tasks.is_empty() {
        settle(&mut tasks, &mut results).await?;
    }
    let parts = results
        .into_iter()
        .map(|r| r.ok_or_else(|| BackendError::other("a part's result is missing")))
        .collect::<Result<Vec<T>>>()?;
    Ok(Sent { parts, size })
}

/// Waits for one part to finish and records its result.
async fn settle<T: Send + 'static>(
    tasks: &mut JoinSet<(u32, Result<T>)>,
    results: &mut [Option<T>],
) -> Result<()> {
    match tasks.join_next().await {
        Some(Ok((number, result))) => {
            let slot = results
                .get_mut(number as usize - 1)
                .ok_or_else(|| BackendError::other("a part number out of range"))?;
            *slot = Some(result?);
            Ok(())
        }
        Some(Err(e)) => Err(BackendError::other(format!("a part's task failed: {e}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::{body, pattern};
    use futures::stream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    async fn run(data: &[u8], chunk: usize, part: usize) -> Result<Sent<(u32, Vec<u8>)>> {
        send_parts(body(data, chunk), part, 100, |n, chunks, len| async move {
            let bytes: Vec<u8> = chunks.concat();
            assert_eq!(bytes.len(), len);
            Ok((n, bytes))
        })
        .await
    }

    #[tokio::test]
    async fn parts_are_cut_at_the_part_size_and_kept_in_order() {
        let data = pattern(2500, 1);
        for chunk in [1, 7, 1000, 4096] {
            let sent = run(&data, chunk, 1000).await.expect("send");
            assert_eq!(sent.size, 2500);
            let lens: Vec<usize> = sent.parts.iter().map(|(_, b)| b.len()).collect();
            assert_eq!(lens, [1000, 1000, 500], "chunk {chunk}");
            let numbers: Vec<u32> = sent.parts.iter().map(|(n, _)| *n).collect();
            assert_eq!(numbers, [1, 2, 3]);
            let joined: Vec<u8> = sent.parts.into_iter().flat_map(|(_, b)| b).collect();
            assert!(joined == data);
        }
        let exact = run(&pattern(2000, 2), 300, 1000).await.expect("send");
        assert_eq!(exact.parts.len(), 2, "no empty third part");
        let empty = run(b"", 1, 1000).await.expect("send");
        assert_eq!(empty.parts.len(), 1);
        assert!(empty.parts[0].1.is_empty());
    }

    #[tokio::test]
    async fn too_many_parts_and_failing_bodies_are_errors() {
        let data = pattern(1000, 3);
        let many = send_parts(body(&data, 10), 100, 3, |n, _, _| async move { Ok(n) }).await;
        assert!(matches!(many, Err(BackendError::Other { .. })), "{many:?}");
        let failing = body(&data, 10)
            .chain(stream::once(async { Err(BackendError::Aborted) }))
            .boxed();
        let cut = send_parts(failing, 100, 100, |n, _, _| async move { Ok(n) }).await;
        assert!(matches!(cut, Err(BackendError::Aborted)), "{cut:?}");
        let refused = send_parts(body(&data, 10), 100, 100, |n, _, _| async move {
            if n == 2 {
                Err(BackendError::unavailable("no"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert!(matches!(refused, Err(BackendError::Unavailable { .. })));
    }

    #[tokio::test]
    async fn at_most_two_parts_are_in_flight() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let data = pattern(10_000, 4);
        let sent = send_parts(body(&data, 100), 1000, 100, |n, _, _| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(n)
            }
        })
        .await
        .expect("send");
        assert_eq!(sent.parts.len(), 10);
        assert_eq!(most.load(Ordering::SeqCst), PARTS_IN_FLIGHT);
    }
}
