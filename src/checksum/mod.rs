//! The checksums S3 knows next to Content-MD5 (`x-amz-checksum-*`), and the arithmetic of
//! multipart ETags and checksums ([`composite`]). Used by the front end, the index and the
//! storage layer alike, so it belongs to none of them.
//!
//! S3 shows every checksum as the base64 of its big-endian digest bytes, so that is the form
//! stored in [`Checksum::value`] and compared against what clients send.

pub mod composite;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// A checksum value that is not the base64 of a digest of its algorithm's length.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("the {algorithm} checksum value is not valid base64 of the right length")]
pub struct InvalidChecksum {
    pub algorithm: ChecksumAlgorithm,
}

/// Every checksum algorithm S3 supports for `x-amz-checksum-*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    /// Parses the name S3 uses in `x-amz-sdk-checksum-algorithm` ("CRC32", "crc64nvme", …).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The upper-case name S3 uses in headers, XML and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The header (and aws-chunked trailer) carrying this checksum's value.
    pub fn header_name(&self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.header_name().eq_ignore_ascii_case(name.trim()))
    }

    /// Length of the raw digest; a base64 value decoding to another length is invalid.
    pub fn digest_len(&self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    pub fn hasher(&self) -> ChecksumHasher {
        let state = match self {
            ChecksumAlgorithm::Crc32 => HasherState::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => HasherState::Crc32c(0),
            ChecksumAlgorithm::Sha1 => HasherState::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Crc64Nvme => HasherState::Crc64Nvme(crc64fast_nvme::Digest::new()),
        };
        ChecksumHasher { state }
    }
}

impl std::fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Incremental hasher for one [`ChecksumAlgorithm`].
#[derive(Clone)]
pub struct ChecksumHasher {
    state: HasherState,
}

#[derive(Clone)]
enum HasherState {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Crc64Nvme(crc64fast_nvme::Digest),
}

impl ChecksumHasher {
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            HasherState::Crc32(_) => ChecksumAlgorithm::Crc32,
            HasherState::Crc32c(_) => ChecksumAlgorithm::Crc32c,
            HasherState::Sha1(_) => ChecksumAlgorithm::Sha1,
            HasherState::Sha256(_) => ChecksumAlgorithm::Sha256,
            HasherState::Crc64Nvme(_) => ChecksumAlgorithm::Crc64Nvme,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            HasherState::Crc32(h) => h.update(data),
            HasherState::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            HasherState::Sha1(h) => h.update(data),
            HasherState::Sha256(h) => h.update(data),
            HasherState::Crc64Nvme(h) => h.write(data),
        }
    }

    /// The raw digest, big-endian for the CRCs (as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self.state {
            HasherState::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            HasherState::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            HasherState::Sha1(h) => h.finalize().to_vec(),
            HasherState::Sha256(h) => h.finalize().to_vec(),
            HasherState::Crc64Nvme(h) => h.sum64().to_be_bytes().to_vec(),
        }
    }

    pub fn finish_checksum(self) -> Checksum {
        let algorithm = self.algorithm();
        Checksum {
            algorithm,
            value: BASE64.encode(self.finish()),
        }
    }
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChecksumHasher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A checksum as S3 shows it: the algorithm and the base64 of the digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
}

impl Checksum {
    /// Validates a client-sent value (base64 of exactly the digest length).
    pub fn parse(algorithm: ChecksumAlgorithm, value: &str) -> Result<Self, InvalidChecksum> {
        let value = value.trim();
        match BASE64.decode(value) {
            Ok(raw) if raw.len() == algorithm.digest_len() => Ok(Checksum {
                algorithm,
                // Re-encoding canonicalises the value so comparisons are plain string equality.
                value: BASE64.encode(raw),
            }),
            _ => Err(InvalidChecksum { algorithm }),
        }
    }

    /// The form a replica's stamp carries: `ALGORITHM:base64` (e.g. `CRC32:NhCmhg==`).
    pub fn to_stamp(&self) -> String {
        format!("{}:{}", self.algorithm.name(), self.value)
    }

    /// Reads [`Checksum::to_stamp`]'s form back; `None` for anything else.
    pub fn from_stamp(stamped: &str) -> Option<Self> {
        let (algorithm, value) = stamped.split_once(':')?;
        Checksum::parse(ChecksumAlgorithm::from_name(algorithm)?, value).ok()
    }

    /// Computes the checksum of a whole buffer (small bodies, tests).
    pub fn compute(algorithm: ChecksumAlgorithm, data: &[u8]) -> Self {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        hasher.finish_checksum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        hex::encode(hasher.finish())
    }

    #[test]
    fn known_values_of_hello_world() {
        let data = b"hello world";
        assert_eq!(hex_of(ChecksumAlgorithm::Crc32, data), "0d4a1185");
        assert_eq!(hex_of(ChecksumAlgorithm::Crc32c, data), "c99465aa");
        assert_eq!(
            hex_of(ChecksumAlgorithm::Sha1, data),
            "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
        );
        assert_eq!(
            hex_of(ChecksumAlgorithm::Sha256, data),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }

    #[test]
    fn known_check_values_of_123456789() {
        // The catalogue "check" values of each CRC.
        let data = b"123456789";
        assert_eq!(hex_of(ChecksumAlgorithm::Crc32, data), "cbf43926");
        assert_eq!(hex_of(ChecksumAlgorithm::Crc32c, data), "e3069283");
        assert_eq!(
            hex_of(ChecksumAlgorithm::Crc64Nvme, data),
            "ae8b14860a799888"
        );
    }

    #[test]
    fn base64_matches_what_s3_shows() {
        // From the AWS trailing-checksum example: CRC32C of 66560 'a' bytes.
        let data = vec![b'a'; 66560];
        let checksum = Checksum::compute(ChecksumAlgorithm::Crc32c, &data);
        assert_eq!(checksum.value, "sOO8/Q==");
        assert_eq!(
            Checksum::compute(ChecksumAlgorithm::Crc32, b"hello world").value,
            "DUoRhQ=="
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in ChecksumAlgorithm::ALL {
            let mut hasher = algorithm.hasher();
            for piece in data.chunks(7) {
                hasher.update(piece);
            }
            assert_eq!(
                hasher.finish_checksum(),
                Checksum::compute(algorithm, &data)
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(
                ChecksumAlgorithm::from_name(algorithm.name()),
                Some(algorithm)
            );
            assert_eq!(
                ChecksumAlgorithm::from_name(&algorithm.name().to_lowercase()),
                Some(algorithm)
            );
            assert_eq!(
                ChecksumAlgorithm::from_header_name(algorithm.header_name()),
                Some(algorithm)
            );
            assert_eq!(algorithm.hasher().finish().len(), algorithm.digest_len());
        }
        assert_eq!(ChecksumAlgorithm::from_name("MD5"), None);
        assert_eq!(
            ChecksumAlgorithm::from_header_name("x-amz-checksum-md5"),
            None
        );
    }

    #[test]
    fn stamp_form_round_trips() {
        let checksum = Checksum::compute(ChecksumAlgorithm::Crc32, b"hello");
        assert_eq!(checksum.to_stamp(), format!("CRC32:{}", checksum.value));
        assert_eq!(Checksum::from_stamp(&checksum.to_stamp()), Some(checksum));
        assert_eq!(Checksum::from_stamp("CRC32"), None);
        assert_eq!(Checksum::from_stamp("MD7:AAAA"), None);
        assert_eq!(Checksum::from_stamp("CRC32:not base64"), None);
    }

    #[test]
    fn serde_round_trip() {
        let checksum = Checksum::compute(ChecksumAlgorithm::Crc64Nvme, b"x");
        let json = serde_json::to_string(&checksum).unwrap();
        let back: Checksum = serde_json::from_str(&json).unwrap();
        assert_eq!(back, checksum);
    }
}
