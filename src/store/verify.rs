//! What an object's bytes must add up to, checked as they stream.
//!
//! Preferred: the record's integrity checksum (CRC64NVME, fast enough not to slow a read).
//! Records from before it existed: the MD5 ETag of a single PUT, or, for a multipart object,
//! the multipart ETag rebuilt from each part's MD5 (the part sizes are in the record).

use md5::{Digest, Md5};

use crate::checksum::composite::{multipart_etag, parse_etag_md5};
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumHasher};
use crate::meta::ObjectRecord;

/// What the whole object's bytes must give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expectation {
    Integrity(Checksum),
    Md5([u8; 16]),
    /// The multipart ETag, from parts of these sizes.
    Multipart {
        etag: String,
        part_sizes: Vec<u64>,
    },
}

impl Expectation {
    /// The check a whole-object read of `record` can make, if any.
    pub fn of(record: &ObjectRecord) -> Option<Expectation> {
        if let Some(c) = &record.integrity {
            return Some(Expectation::Integrity(c.clone()));
        }
        if record.parts.is_empty() {
            return parse_etag_md5(&record.etag)
                .filter(|_| !record.etag.contains('-'))
                .map(Expectation::Md5);
        }
        let count = record.etag.rsplit_once('-').map(|(_, n)| n);
        (count == Some(record.parts.len().to_string().as_str())).then(|| Expectation::Multipart {
            etag: record.etag.clone(),
            part_sizes: record.parts.iter().map(|p| p.size).collect(),
        })
    }

    pub fn verifier(&self) -> Verifier {
        let state = match self {
            Expectation::Integrity(c) => State::Checksum(c.algorithm.hasher()),
            Expectation::Md5(_) => State::Md5(Md5::new()),
            Expectation::Multipart { part_sizes, .. } => State::Parts {
                current: Md5::new(),
                left_in_part: part_sizes.first().copied().unwrap_or(0),
                next_part: 1,
                done: Vec::with_capacity(part_sizes.len()),
                excess: false,
            },
        };
        Verifier {
            expected: self.clone(),
            state,
        }
    }
}

enum State {
    Checksum(ChecksumHasher),
    Md5(Md5),
    Parts {
        current: Md5,
        left_in_part: u64,
        /// 1-based number of the part being hashed; beyond the count once all are done.
        next_part: usize,
        done: Vec<[u8; 16]>,
        /// Bytes came after the last part.
        excess: bool,
    },
}

/// Accumulates bytes; [`Verifier::matches`] tells whether they were the object's.
pub(crate) struct Verifier {
    expected: Expectation,
    state: State,
}

impl Verifier {
    pub fn update(&mut self, mut data: &[u8]) {
        match &mut self.state {
            State::Checksum(h) => h.update(data),
            State::Md5(h) => h.update(data),
            State::Parts {
                current,
                left_in_part,
                next_part,
                done,
                excess,
            } => {
                let Expectation::Multipart { part_sizes, .. } = &self.expected else {
                    return;
                };
                while !data.is_empty() {
                    if *next_part > part_sizes.len() {
                        *excess = true;
                        return;
                    }
                    let take = (*left_in_part).min(data.len() as u64) as usize;
                    current.update(&data[..take]);
                    data = &data[take..];
                    *left_in_part -= take as u64;
                    if *left_in_part == 0 {
                        done.push(std::mem::take(current).finalize().into());
                        *left_in_part = part_sizes.get(*next_part).copied().unwrap_or(0);
                        *next_part += 1;
                    }
                }
            }
        }
    }

    pub fn matches(self) -> bool {
        match (self.state, &self.expected) {
            (State::Checksum(h), Expectation::Integrity(c)) => h.finish_checksum() == *c,
            (State::Md5(h), Expectation::Md5(md5)) => <[u8; 16]>::from(h.finalize()) == *md5,
            (
                State::Parts {
                    mut done,
                    mut current,
                    mut left_in_part,
                    mut next_part,
                    excess,
                },
                Expectation::Multipart { etag, part_sizes },
            ) => {
                // Parts of no bytes (a zero-length last part) never saw one: close them.
                while next_part <= part_sizes.len() && left_in_part == 0 {
                    done.push(std::mem::take(&mut current).finalize().into());
                    left_in_part = part_sizes.get(next_part).copied().unwrap_or(0);
                    next_part += 1;
                }
                !excess
                    && next_part > part_sizes.len()
                    && done.len() == part_sizes.len()
                    && multipart_etag(&done) == *etag
            }
            _ => false,
        }
    }
}

/// Hansa's integrity checksum of `data` (tests, and composing it from parts elsewhere).
#[allow(dead_code)]
pub(crate) fn integrity_of(data: &[u8]) -> Checksum {
    Checksum::compute(ChecksumAlgorithm::Crc64Nvme, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::PartSummary;

    fn record(etag: String, parts: Vec<u64>, integrity: Option<Checksum>) -> ObjectRecord {
        ObjectRecord {
            size: parts.iter().sum(),
            etag,
            checksum: None,
            attributes: Default::default(),
            modified_ms: 0,
            version_id: "v".into(),
            owner: "o".into(),
            replicas: vec![],
            parts: parts
                .into_iter()
                .map(|size| PartSummary {
                    size,
                    checksum: None,
                })
                .collect(),
            checksum_type: None,
            integrity,
            acl: None,
            tags: vec![],
            lock: Default::default(),
            versioned: false,
        }
    }

    fn check(e: &Expectation, data: &[u8], split: usize) -> bool {
        let mut v = e.verifier();
        let split = split.min(data.len());
        v.update(&data[..split]);
        v.update(&data[split..]);
        v.matches()
    }

    #[test]
    fn integrity_md5_and_multipart_etags_accept_the_bytes_and_nothing_else() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut bad = data.clone();
        bad[5000] ^= 1;

        let e = Expectation::of(&record(String::new(), vec![], Some(integrity_of(&data))))
            .expect("integrity");
        assert!(check(&e, &data, 3333));
        assert!(!check(&e, &bad, 3333));
        assert!(!check(&e, &data[..9999], 3333));

        let md5 = hex::encode(Md5::digest(&data));
        let e = Expectation::of(&record(md5, vec![], None)).expect("md5");
        assert!(check(&e, &data, 1));
        assert!(!check(&e, &bad, 1));

        let sizes = [6000u64, 4000];
        let md5s: Vec<[u8; 16]> = vec![
            Md5::digest(&data[..6000]).into(),
            Md5::digest(&data[6000..]).into(),
        ];
        let e = Expectation::of(&record(multipart_etag(&md5s), sizes.to_vec(), None))
            .expect("multipart");
        for split in [0, 1, 5999, 6000, 6001, 10_000] {
            assert!(check(&e, &data, split), "split {split}");
        }
        assert!(!check(&e, &bad, 6000));
        // The same bytes cut at another part boundary give another ETag.
        let e = Expectation::of(&record(multipart_etag(&md5s), vec![5000, 5000], None))
            .expect("multipart");
        assert!(!check(&e, &data, 0));
        // Too many bytes, or too few.
        let md5s: Vec<[u8; 16]> = vec![
            Md5::digest(&data[..6000]).into(),
            Md5::digest(&data[6000..]).into(),
        ];
        let e = Expectation::of(&record(multipart_etag(&md5s), sizes.to_vec(), None))
            .expect("multipart");
        let mut longer = data.clone();
        longer.push(0);
        assert!(!check(&e, &longer, 10));
        assert!(!check(&e, &data[..9000], 10));
        // An empty last part.
        let md5s: Vec<[u8; 16]> = vec![Md5::digest(&data).into(), Md5::digest(b"").into()];
        let e = Expectation::of(&record(multipart_etag(&md5s), vec![10_000, 0], None))
            .expect("multipart");
        assert!(check(&e, &data, 77));
    }

    #[test]
    fn objects_without_a_known_digest_have_no_expectation() {
        assert_eq!(Expectation::of(&record("abc-2".into(), vec![], None)), None);
        assert_eq!(
            Expectation::of(&record("nothex".into(), vec![], None)),
            None
        );
        assert_eq!(
            Expectation::of(&record("abc-3".into(), vec![1, 2], None)),
            None
        );
    }
}
