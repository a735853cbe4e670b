//! The digests of a request body — MD5 (the ETag), the signed payload's SHA-256 and the
//! requested `x-amz-checksum-*` — computed beside the write rather than in front of it.
//!
//! A large body's pieces are handed (reference-counted, not copied) to two blocking threads,
//! one for MD5 and one for the rest, so on a machine with a core to spare the hashing runs
//! while the body is still arriving and being written. A small body is hashed in line:
//! handing a few kilobytes to a thread costs more than hashing them.

use bytes::Bytes;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checksum::ChecksumHasher;

/// Bodies at least this long (or of unknown length) are hashed beside the write.
const BESIDE_FROM: u64 = 1 << 20;
/// Pieces waiting for a hashing thread: bounded, so that a slow hasher holds back the body
/// rather than piling up its pieces.
const QUEUE: usize = 64;

/// What the digests came to.
pub(super) struct Digested {
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
    pub checksum: Option<ChecksumHasher>,
}

/// The hashers besides MD5.
pub(super) struct Others {
    sha256: Option<Sha256>,
    checksum: Option<ChecksumHasher>,
}

impl Others {
    fn update(&mut self, piece: &[u8]) {
        if let Some(sha256) = self.sha256.as_mut() {
            sha256.update(piece);
        }
        if let Some(checksum) = self.checksum.as_mut() {
            checksum.update(piece);
        }
    }

    fn is_empty(&self) -> bool {
        self.sha256.is_none() && self.checksum.is_none()
    }
}

pub(super) enum Digests {
    InLine(Box<(Md5, Others)>),
    Beside {
        md5: Worker<Md5>,
        others: Option<Worker<Others>>,
    },
}

impl Digests {
    /// Digests for a body of `declared_len` bytes (`None`: unknown), with SHA-256 when the
    /// payload is signed and the checksum hasher when one is sent or requested.
    pub fn new(
        declared_len: Option<u64>,
        sha256: bool,
        checksum: Option<ChecksumHasher>,
    ) -> Digests {
        let others = Others {
            sha256: sha256.then(Sha256::new),
            checksum,
        };
        if declared_len.is_some_and(|len| len < BESIDE_FROM) {
            return Digests::InLine(Box::new((Md5::new(), others)));
        }
        Digests::Beside {
            md5: Worker::spawn(Md5::new(), |md5, piece| md5.update(piece)),
            others: (!others.is_empty()).then(|| Worker::spawn(others, Others::update)),
        }
    }

    /// Adds `piece` (the next bytes of the body).
    pub async fn update(&mut self, piece: &Bytes) {
        match self {
            Digests::InLine(hashers) => {
                hashers.0.update(piece);
                hashers.1.update(piece);
            }
            Digests::Beside { md5, others } => {
                md5.update(piece.clone()).await;
                if let Some(others) = others.as_mut() {
                    others.update(piece.clone()).await;
                }
            }
        }
    }

    /// The digests over every piece; `None` if a hashing thread was lost.
    pub async fn finish(self) -> Option<Digested> {
        let (md5, others) = match self {
            Digests::InLine(hashers) => *hashers,
            Digests::Beside { md5, others } => {
                let md5 = md5.finish().await?;
                let others = match others {
                    Some(worker) => worker.finish().await?,
                    None => Others {
                        sha256: None,
                        checksum: None,
                    },
                };
                (md5, others)
            }
        };
        Some(Digested {
            md5: md5.finalize().into(),
            sha256: others.sha256.map(|sha256| sha256.finalize().into()),
            checksum: others.checksum,
        })
    }
}

/// A hasher on a blocking thread of its own, fed through a bounded queue.
pub(super) struct Worker<H> {
    queue: mpsc::Sender<Bytes>,
    task: JoinHandle<H>,
}

impl<H: Send + 'static> Worker<H> {
    fn spawn(mut hasher: H, update: fn(&mut H, &[u8])) -> Worker<H> {
        let (queue, mut pieces) = mpsc::channel::<Bytes>(QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(piece) = pieces.blocking_recv() {
                update(&mut hasher, &piece);
            }
            hasher
        });
        Worker { queue, task }
    }

    async fn update(&mut self, piece: Bytes) {
        // A closed queue means the thread is gone: `finish` reports it.
        let _ = self.queue.send(piece).await;
    }

    async fn finish(self) -> Option<H> {
        drop(self.queue);
        self.task.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::ChecksumAlgorithm;

    async fn digest(data: &[u8], declared: Option<u64>, piece: usize) -> Digested {
        let mut digests = Digests::new(declared, true, Some(ChecksumAlgorithm::Crc32.hasher()));
        for chunk in data.chunks(piece) {
            digests.update(&Bytes::copy_from_slice(chunk)).await;
        }
        digests.finish().await.expect("digests")
    }

    /// In line or beside, the digests are those of the whole body, in order.
    #[tokio::test]
    async fn beside_and_in_line_agree_with_one_pass() {
        let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let md5: [u8; 16] = Md5::digest(&data).into();
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        let crc = crate::checksum::Checksum::compute(ChecksumAlgorithm::Crc32, &data);
        for (declared, piece) in [
            (Some(data.len() as u64), 65_536),
            (None, 1_000),
            (Some(100), 4_096),
        ] {
            let got = digest(&data, declared, piece).await;
            assert_eq!(got.md5, md5, "{declared:?}");
            assert_eq!(got.sha256, Some(sha256), "{declared:?}");
            let checksum = got.checksum.expect("checksum").finish_checksum();
            assert_eq!(checksum.value, crc.value, "{declared:?}");
        }
    }
}
