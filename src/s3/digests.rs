//! The digests of a request body — MD5 (the ETag), the signed payload's SHA-256 and the
//! requested `x-amz-checksum-*` — computed beside the write rather than in front of it.
//!
//! A large body's pieces are handed in batches (reference-counted, not copied) to blocking
//! threads, MD5 apart from the rest, so on a machine with a core to spare the hashing runs
//! while the body is still arriving and being written. A small body is hashed in line:
//! handing a few kilobytes to a thread costs more than hashing them.

use bytes::Bytes;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::task::JoinHandle;

use crate::checksum::ChecksumHasher;

/// Bodies at least this long (or of unknown length) are hashed beside the write.
const BESIDE_FROM: u64 = 1 << 20;
/// Bytes gathered before they are handed to a blocking thread to hash.
const BATCH: usize = 1 << 20;

/// What the digests came to.
pub(super) struct Digested {
    pub md5: [u8; 16],
    pub sha256: Option<[u8; 32]>,
    pub checksum: Option<ChecksumHasher>,
}

/// The hashers besides MD5.
struct Others {
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

pub(super) struct Digests {
    md5: Hashing<Md5>,
    others: Hashing<Others>,
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
        let beside = declared_len.is_none_or(|len| len >= BESIDE_FROM);
        // Nothing to hash besides MD5: nothing to hand over either.
        let others_beside = beside && !others.is_empty();
        Digests {
            md5: Hashing::new(Md5::new(), |md5, piece| md5.update(piece), beside),
            others: Hashing::new(others, Others::update, others_beside),
        }
    }

    /// Adds `piece` (the next bytes of the body).
    pub async fn update(&mut self, piece: &Bytes) {
        self.md5.update(piece).await;
        self.others.update(piece).await;
    }

    /// The digests over every piece; `None` if a hashing thread was lost.
    pub async fn finish(self) -> Option<Digested> {
        let md5 = self.md5.finish().await?;
        let others = self.others.finish().await?;
        Some(Digested {
            md5: md5.finalize().into(),
            sha256: others.sha256.map(|sha256| sha256.finalize().into()),
            checksum: others.checksum,
        })
    }
}

/// One hasher, fed in line or, `beside` the stream, in batches, each hashed on a blocking
/// thread while the next one arrives. No thread is held while the body is idle (a slow client
/// must not pin blocking threads), and at most two batches are held: the one being hashed and
/// the one being gathered.
struct Hashing<H> {
    update: fn(&mut H, &[u8]),
    beside: bool,
    /// The hasher, when no batch is being hashed.
    idle: Option<H>,
    hashing: Option<JoinHandle<H>>,
    batch: Vec<Bytes>,
    batch_len: usize,
    lost: bool,
}

impl<H: Send + 'static> Hashing<H> {
    fn new(hasher: H, update: fn(&mut H, &[u8]), beside: bool) -> Hashing<H> {
        Hashing {
            update,
            beside,
            idle: Some(hasher),
            hashing: None,
            batch: Vec::new(),
            batch_len: 0,
            lost: false,
        }
    }

    async fn update(&mut self, piece: &Bytes) {
        if !self.beside {
            if let Some(hasher) = self.idle.as_mut() {
                (self.update)(hasher, piece);
            }
            return;
        }
        self.batch_len += piece.len();
        self.batch.push(piece.clone());
        if self.batch_len >= BATCH {
            self.hand_over().await;
        }
    }

    /// Waits for the batch being hashed, then hands the gathered one to a blocking thread.
    async fn hand_over(&mut self) {
        let Some(mut hasher) = self.settle().await else {
            return;
        };
        let (batch, update) = (std::mem::take(&mut self.batch), self.update);
        self.batch_len = 0;
        self.hashing = Some(tokio::task::spawn_blocking(move || {
            for piece in &batch {
                update(&mut hasher, piece);
            }
            hasher
        }));
    }

    /// The hasher once the batch being hashed (if any) is done; `None` if it was lost.
    async fn settle(&mut self) -> Option<H> {
        if let Some(task) = self.hashing.take() {
            match task.await {
                Ok(hasher) => self.idle = Some(hasher),
                Err(_) => self.lost = true,
            }
        }
        if self.lost {
            return None;
        }
        self.idle.take()
    }

    async fn finish(mut self) -> Option<H> {
        if !self.batch.is_empty() {
            self.hand_over().await;
        }
        self.settle().await
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

    /// A body that stops arriving holds no blocking thread: with a single one in the pool,
    /// other blocking work still runs while two large bodies wait for their next bytes.
    #[test]
    fn an_idle_body_holds_no_blocking_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut waiting = Vec::new();
            for _ in 0..2 {
                let mut digests = Digests::new(None, true, None);
                digests.update(&Bytes::from(vec![7u8; BATCH + 1])).await;
                digests.update(&Bytes::from_static(b"more")).await;
                waiting.push(digests);
            }
            let other = tokio::task::spawn_blocking(|| 42);
            let answer = tokio::time::timeout(std::time::Duration::from_secs(5), other).await;
            assert_eq!(answer.ok().and_then(Result::ok), Some(42));
            for digests in waiting {
                assert!(digests.finish().await.is_some());
            }
        });
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
