//! Reads with failover: replicas are tried in read order; a failure before the first byte moves
//! to the next replica, and a failure mid-stream (an error, or no bytes for the idle limit)
//! resumes from the next replica with a range request for the bytes not yet sent. Each
//! replica is asked for exactly the version the index names (`if_match` on its backend ETag),
//! so a copy that changed behind the index's back is never served.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hansa_backends::{BackendError, ByteStream, PhysicalName};

use super::{bounded, Backends};
use crate::meta::Replica;

/// An open read: the byte stream, and which replicas its bytes came from.
pub struct ReplicaRead {
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    /// Backends whose bytes the body carries, in order (more than one after a failover).
    pub sources: Arc<Mutex<Vec<String>>>,
}

/// Why no replica could be opened.
#[derive(Debug, Default)]
pub struct ReadFailure {
    /// Replicas that answered but hold another version than the index names.
    pub mismatched: Vec<Replica>,
    /// Every failure, as `backend: error`.
    pub errors: Vec<String>,
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors.join("; "))
    }
}

struct ReadState {
    backends: Backends,
    candidates: VecDeque<Replica>,
    current: Option<ByteStream>,
    pos: u64,
    end: u64,
    failure: ReadFailure,
    sources: Arc<Mutex<Vec<String>>>,
    /// How long opening a replica may take, and how long its stream may send nothing.
    limit: Duration,
}

/// Opens `range` of an object from the first replica that answers within `limit`.
pub async fn open_replicas(
    backends: &Backends,
    replicas: Vec<Replica>,
    range: Range<u64>,
    limit: Duration,
) -> Result<ReplicaRead, ReadFailure> {
    let sources = Arc::new(Mutex::new(Vec::new()));
    let mut state = ReadState {
        backends: backends.clone(),
        candidates: replicas.into(),
        current: None,
        pos: range.start,
        end: range.end,
        failure: ReadFailure::default(),
        sources: sources.clone(),
        limit,
    };
    if !range.is_empty() {
        state.open_next().await?;
    }
    let body = futures::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
    .boxed();
    Ok(ReplicaRead { body, sources })
}

impl ReadState {
    /// Opens the next candidate at the current position.
    async fn open_next(&mut self) -> Result<(), ReadFailure> {
        while let Some(replica) = self.candidates.pop_front() {
            let Some(backend) = self.backends.get(&replica.backend) else {
                self.failure
                    .errors
                    .push(format!("{}: not configured", replica.backend));
                continue;
            };
            let name = match PhysicalName::parse(&replica.name) {
                Ok(n) => n,
                Err(e) => {
                    self.failure
                        .errors
                        .push(format!("{}: {e:?}", replica.backend));
                    continue;
                }
            };
            let opened = bounded(
                self.limit,
                "open a read",
                backend.get(&name, Some(self.pos..self.end), Some(&replica.etag)),
            )
            .await;
            match opened {
                Ok(got) => {
                    self.current = Some(got.body);
                    self.sources
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(replica.backend.clone());
                    return Ok(());
                }
                Err(e) => {
                    log_replica_failure(&replica, &e);
                    self.failure
                        .errors
                        .push(format!("{}: {e}", replica.backend));
                    if matches!(e, BackendError::PreconditionFailed { .. }) {
                        self.failure.mismatched.push(replica);
                    }
                }
            }
        }
        Err(std::mem::take(&mut self.failure))
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.pos >= self.end {
                return None;
            }
            if self.current.is_none() {
                if let Err(e) = self.open_next().await {
                    return Some(Err(std::io::Error::other(format!(
                        "no replica can continue the read: {e}"
                    ))));
                }
            }
            let stream = self.current.as_mut()?;
            match tokio::time::timeout(self.limit, stream.next()).await {
                Ok(Some(Ok(data))) => {
                    let room = (self.end - self.pos).min(data.len() as u64) as usize;
                    self.pos += room as u64;
                    return Some(Ok(data.slice(..room)));
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, pos = self.pos, "replica failed mid-stream; resuming from the next one");
                    self.failure.errors.push(e.to_string());
                    self.current = None;
                }
                Ok(None) => {
                    tracing::warn!(
                        pos = self.pos,
                        end = self.end,
                        "replica ended early; resuming from the next one"
                    );
                    self.failure.errors.push("replica ended early".into());
                    self.current = None;
                }
                Err(_) => {
                    tracing::warn!(
                        pos = self.pos,
                        "replica sent nothing for {:?}; resuming from the next one",
                        self.limit
                    );
                    self.failure.errors.push("replica stalled".into());
                    self.current = None;
                }
            }
        }
    }
}

fn log_replica_failure(replica: &Replica, e: &BackendError) {
    match e {
        BackendError::PreconditionFailed { .. } => tracing::info!(
            backend = %replica.backend, name = %replica.name,
            "replica differs from the indexed version"
        ),
        BackendError::NotFound { .. } => tracing::warn!(
            backend = %replica.backend, name = %replica.name,
            "replica missing; skipping it (needs repair)"
        ),
        other => tracing::warn!(
            backend = %replica.backend, name = %replica.name, error = %other,
            "replica unreadable; trying the next one"
        ),
    }
}
