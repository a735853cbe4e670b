//! Reads with failover: replicas are tried in read order; a failure before the first byte moves
//! to the next replica, and a failure mid-stream resumes from the next replica with a range
//! request for the bytes not yet sent. Each replica is asked for exactly the version the index
//! names (`if_match` on its backend ETag), so a copy that changed behind the index's back is
//! never served.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hansa_backends::{BackendError, ByteStream, PhysicalName};

use super::{Backends, ReplicationError};
use crate::meta::Replica;

/// An open read: the byte stream and which replica served its start.
pub struct ReplicaRead {
    pub first_backend: String,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

struct ReadState {
    backends: Backends,
    candidates: VecDeque<Replica>,
    current: Option<ByteStream>,
    pos: u64,
    end: u64,
    errors: Vec<String>,
}

/// Opens `range` of an object from the first replica that answers.
pub async fn open_replicas(
    backends: &Backends,
    replicas: Vec<Replica>,
    range: Range<u64>,
) -> Result<ReplicaRead, ReplicationError> {
    let mut state = ReadState {
        backends: backends.clone(),
        candidates: replicas.into(),
        current: None,
        pos: range.start,
        end: range.end,
        errors: Vec::new(),
    };
    let first_backend = if range.is_empty() {
        String::new()
    } else {
        state.open_next().await?
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    })
    .boxed();
    Ok(ReplicaRead {
        first_backend,
        body,
    })
}

impl ReadState {
    /// Opens the next candidate at the current position; returns its backend id.
    async fn open_next(&mut self) -> Result<String, ReplicationError> {
        while let Some(replica) = self.candidates.pop_front() {
            let Some(backend) = self.backends.get(&replica.backend) else {
                self.errors
                    .push(format!("{}: not configured", replica.backend));
                continue;
            };
            let name = match PhysicalName::parse(&replica.name) {
                Ok(n) => n,
                Err(e) => {
                    self.errors.push(format!("{}: {e:?}", replica.backend));
                    continue;
                }
            };
            match backend
                .get(&name, Some(self.pos..self.end), Some(&replica.etag))
                .await
            {
                Ok(got) => {
                    self.current = Some(got.body);
                    return Ok(replica.backend);
                }
                Err(e) => {
                    log_replica_failure(&replica, &e);
                    self.errors.push(format!("{}: {e}", replica.backend));
                }
            }
        }
        Err(ReplicationError::NoReplica {
            errors: self.errors.join("; "),
        })
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if self.pos >= self.end {
                return None;
            }
            if self.current.is_none() {
                if let Err(e) = self.open_next().await {
                    return Some(Err(std::io::Error::other(e.to_string())));
                }
            }
            let stream = self.current.as_mut()?;
            match stream.next().await {
                Some(Ok(data)) => {
                    let room = (self.end - self.pos).min(data.len() as u64) as usize;
                    self.pos += room as u64;
                    return Some(Ok(data.slice(..room)));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, pos = self.pos, "replica failed mid-stream; resuming from the next one");
                    self.errors.push(e.to_string());
                    self.current = None;
                }
                None => {
                    tracing::warn!(
                        pos = self.pos,
                        end = self.end,
                        "replica ended early; resuming from the next one"
                    );
                    self.errors.push("replica ended early".into());
                    self.current = None;
                }
            }
        }
    }
}

fn log_replica_failure(replica: &Replica, e: &BackendError) {
    match e {
        BackendError::PreconditionFailed { .. } => tracing::warn!(
            backend = %replica.backend, name = %replica.name,
            "replica differs from the indexed version; skipping it (needs repair)"
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
