//! The arithmetic of S3 multipart uploads: the object's ETag and its checksum, both derived from
//! what was recorded for each part, never from the object's bytes (which S3 does not re-read
//! when it completes an upload, and neither do we).
//!
//! * ETag: `hex(MD5(md5(part 1) ‖ … ‖ md5(part N)))-N`.
//! * COMPOSITE checksum: `base64(H(h(part 1) ‖ … ‖ h(part N)))-N`, a checksum of checksums.
//! * FULL_OBJECT checksum: the CRC of the whole object, which for a CRC can be computed from
//!   each part's CRC and length alone (the technique of zlib's `crc32_combine`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};

use super::{Checksum, ChecksumAlgorithm};

// ---------------------------------------------------------------------------------------------
// ETag

/// The ETag S3 gives an object completed from parts, without the surrounding quotes.
///
/// S3's rule: MD5 over the concatenation of the parts' *binary* MD5 digests (not their hex),
/// shown as hex and followed by `-N`, N being the number of parts. The suffix is what tells
/// clients that the ETag is not the MD5 of the object's bytes.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut md5 = Md5::new();
    for digest in part_md5s {
        md5.update(digest);
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_md5s.len())
}

/// The MD5 inside a single-part ETag: 32 hex digits (either case), bare or in double quotes as
/// clients echo them in `CompleteMultipartUpload`. Anything else, including a multipart ETag
/// (`…-N`) or a quote on one side only, is `None`.
pub fn parse_etag_md5(etag: &str) -> Option<[u8; 16]> {
    let inner = match etag.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => etag,
    };
    // Also rejects a lone trailing quote: it makes the text 33 characters long.
    if inner.len() != 32 {
        return None;
    }
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(inner, &mut md5).ok()?;
    Some(md5)
}

// ---------------------------------------------------------------------------------------------
// Checksum type

/// How the checksum of a multipart object is derived from its parts' (`x-amz-checksum-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    /// A checksum of the parts' checksums, shown with a `-N` suffix.
    Composite,
    /// The checksum of the whole object, as if it had been uploaded in one piece.
    FullObject,
}

impl ChecksumType {
    pub const ALL: [ChecksumType; 2] = [ChecksumType::Composite, ChecksumType::FullObject];

    /// The name S3 uses in `x-amz-checksum-type` and in `<ChecksumType>`.
    pub fn name(&self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }

    /// Parses a header value, ignoring case and surrounding whitespace like
    /// [`ChecksumAlgorithm::from_name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|ty| ty.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The type S3 uses when `CreateMultipartUpload` names an algorithm but no type:
    /// CRC64NVME can only be FULL_OBJECT; every other algorithm defaults to COMPOSITE.
    pub fn default_for(algorithm: ChecksumAlgorithm) -> ChecksumType {
        match algorithm {
            ChecksumAlgorithm::Crc64Nvme => ChecksumType::FullObject,
            ChecksumAlgorithm::Crc32
            | ChecksumAlgorithm::Crc32c
            | ChecksumAlgorithm::Sha1
            | ChecksumAlgorithm::Sha256 => ChecksumType::Composite,
        }
    }
}

impl std::fmt::Display for ChecksumType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether S3 accepts this algorithm/type pair for a multipart upload.
///
/// FULL_OBJECT needs a combinable checksum, which only the CRCs are (a SHA of the whole object
/// cannot be derived from the parts' SHAs). COMPOSITE is offered for CRC32, CRC32C, SHA1 and
/// SHA256, but S3 refuses it for CRC64NVME.
pub fn allowed(algorithm: ChecksumAlgorithm, ty: ChecksumType) -> bool {
    match ty {
        ChecksumType::FullObject => matches!(
            algorithm,
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc64Nvme
        ),
        ChecksumType::Composite => matches!(
            algorithm,
            ChecksumAlgorithm::Crc32
                | ChecksumAlgorithm::Crc32c
                | ChecksumAlgorithm::Sha1
                | ChecksumAlgorithm::Sha256
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// COMPOSITE

/// The COMPOSITE checksum S3 shows for a multipart object: the algorithm applied to the
/// concatenation of the parts' raw (base64-decoded, big-endian) digests, base64-encoded and
/// followed by `-N`, N being the number of parts.
///
/// `None` if the algorithm does not allow COMPOSITE (CRC64NVME), or a part's checksum is of
/// another algorithm or is not the base64 of a digest of the right length. With no parts the
/// result is the checksum of empty input with `-0`; S3 refuses to complete an upload without
/// parts, so callers reject that case before getting here.
pub fn composite_checksum(algorithm: ChecksumAlgorithm, parts: &[Checksum]) -> Option<String> {
    if !allowed(algorithm, ChecksumType::Composite) {
        return None;
    }
    let mut hasher = algorithm.hasher();
    for part in parts {
        hasher.update(&raw_digest(algorithm, part)?);
    }
    Some(format!(
        "{}-{}",
        BASE64.encode(hasher.finish()),
        parts.len()
    ))
}

/// The raw digest of a part's checksum, if it is one of `algorithm`'s.
fn raw_digest(algorithm: ChecksumAlgorithm, part: &Checksum) -> Option<Vec<u8>> {
    if part.algorithm != algorithm {
        return None;
    }
    BASE64
        .decode(&part.value)
        .ok()
        .filter(|raw| raw.len() == algorithm.digest_len())
}

// ---------------------------------------------------------------------------------------------
// FULL_OBJECT

/// The FULL_OBJECT checksum of a multipart object: the CRC of the whole object, combined from
/// each part's CRC and length (in bytes) in part order, in O(log length) per part.
///
/// `None` for the SHA algorithms (not combinable, so S3 does not offer FULL_OBJECT for them), or
/// if a part's checksum is of another algorithm or is not the base64 of a digest of the right
/// length. With no parts the result is the CRC of empty input. Zero-length parts are fine (and
/// change nothing: their CRC is that of empty input).
pub fn full_object_checksum(
    algorithm: ChecksumAlgorithm,
    parts: &[(Checksum, u64)],
) -> Option<Checksum> {
    let crc = ReflectedCrc::of(algorithm)?;
    // All three CRCs have init == xorout (all ones), so the CRC of empty input is 0, and
    // combining with a zero-length prefix is the identity: start from there.
    let mut whole = 0u64;
    for (part, len) in parts {
        let raw = raw_digest(algorithm, part)?;
        let part_crc = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        whole = crc.combine(whole, part_crc, *len);
    }
    let bytes = whole.to_be_bytes();
    let digest = bytes.get(bytes.len() - algorithm.digest_len()..)?;
    Some(Checksum {
        algorithm,
        value: BASE64.encode(digest),
    })
}

/// Number of precomputed powers `x^(2^k) mod P`: the byte length is turned into bits by
/// starting at k = 3, and a `u64` length has 64 bits, so k < 3 + 64.
const X2N_LEN: usize = 67;

/// A reflected (LSB-first) CRC of width 32 or 64, as polynomials over GF(2) modulo P.
///
/// In the reflected representation the most significant bit of the register is the coefficient
/// of x^0 and bit 0 is that of x^(width-1); shifting right multiplies by x.
struct ReflectedCrc {
    width: u32,
    /// P without its x^width term, reflected (e.g. 0xEDB88320 for CRC-32).
    poly: u64,
    /// `x2n[k] = x^(2^k) mod P`.
    x2n: [u64; X2N_LEN],
}

static CRC32: ReflectedCrc = ReflectedCrc::new(32, 0xEDB8_8320);
static CRC32C: ReflectedCrc = ReflectedCrc::new(32, 0x82F6_3B78);
static CRC64NVME: ReflectedCrc = ReflectedCrc::new(64, 0x9A6C_9329_AC4B_C9B5);

impl ReflectedCrc {
    const fn new(width: u32, poly: u64) -> Self {
        let mut crc = ReflectedCrc {
            width,
            poly,
            x2n: [0; X2N_LEN],
        };
        // x^1, then repeated squaring.
        let mut p = crc.one() >> 1;
        let mut k = 0;
        while k < X2N_LEN {
            crc.x2n[k] = p;
            p = crc.multiply(p, p);
            k += 1;
        }
        crc
    }

    /// The combinable CRC behind an algorithm; `None` for the SHAs.
    fn of(algorithm: ChecksumAlgorithm) -> Option<&'static ReflectedCrc> {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Some(&CRC32),
            ChecksumAlgorithm::Crc32c => Some(&CRC32C),
            ChecksumAlgorithm::Crc64Nvme => Some(&CRC64NVME),
            ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
        }
    }

    /// The polynomial 1 (x^0), the register's top bit.
    const fn one(&self) -> u64 {
        1 << (self.width - 1)
    }

    /// `a·b mod P` (zlib's `multmodp`): for each coefficient of `a` from x^0 upwards, add
    /// `b·x^i` where it is set, multiplying `b` by x (a reflected shift) at each step.
    const fn multiply(&self, a: u64, mut b: u64) -> u64 {
        let mut product = 0;
        let mut bit = self.one();
        while bit != 0 {
            if a & bit != 0 {
                product ^= b;
            }
            b = if b & 1 != 0 {
                (b >> 1) ^ self.poly
            } else {
                b >> 1
            };
            bit >>= 1;
        }
        product
    }

    /// `x^(8·len) mod P`: the operator that appends `len` zero bytes to a CRC register, built
    /// from the bits of `len` and the precomputed squares (zlib's `x2nmodp`), O(log len).
    fn x_pow_8n(&self, len: u64) -> u64 {
        let mut result = self.one();
        let mut n = len;
        let mut k = 3; // 8·len = len·2^3
        while n != 0 {
            if n & 1 != 0 {
                result = self.multiply(self.x2n[k], result);
            }
            n >>= 1;
            k += 1;
        }
        result
    }

    /// The CRC of `A ‖ B` from `crc(A)`, `crc(B)` and `len(B)`.
    ///
    /// The register update is linear: running `B` through a register holding `s` gives
    /// `s·x^(8·len B) ⊕ raw(B)`. With init = xorout = all ones, the init and xorout terms of the
    /// two CRCs cancel, leaving `crc(A ‖ B) = crc(A)·x^(8·len B) mod P ⊕ crc(B)`.
    fn combine(&self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        self.multiply(self.x_pow_8n(len_b), crc_a) ^ crc_b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CRCS: [ChecksumAlgorithm; 3] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
    ];
    const MIB: usize = 1024 * 1024;

    /// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn split<'a>(data: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
        let mut parts = Vec::new();
        let mut rest = data;
        for &len in lens {
            let (part, tail) = rest.split_at(len);
            parts.push(part);
            rest = tail;
        }
        parts.push(rest);
        parts
    }

    fn with_lengths(algorithm: ChecksumAlgorithm, parts: &[&[u8]]) -> Vec<(Checksum, u64)> {
        parts
            .iter()
            .map(|p| (Checksum::compute(algorithm, p), p.len() as u64))
            .collect()
    }

    fn full(algorithm: ChecksumAlgorithm, parts: &[&[u8]]) -> Checksum {
        full_object_checksum(algorithm, &with_lengths(algorithm, parts)).unwrap()
    }

    /// The composite checksum done by hand, independently of `composite_checksum`.
    fn manual_composite(algorithm: ChecksumAlgorithm, parts: &[&[u8]]) -> String {
        let mut concatenated = Vec::new();
        for part in parts {
            let mut hasher = algorithm.hasher();
            hasher.update(part);
            concatenated.extend(hasher.finish());
        }
        let outer = Checksum::compute(algorithm, &concatenated);
        format!("{}-{}", outer.value, parts.len())
    }

    fn composite(algorithm: ChecksumAlgorithm, parts: &[&[u8]]) -> Option<String> {
        let sums: Vec<Checksum> = parts
            .iter()
            .map(|p| Checksum::compute(algorithm, p))
            .collect();
        composite_checksum(algorithm, &sums)
    }

    // --- ETag --------------------------------------------------------------------------------

    #[test]
    fn multipart_etag_of_parts_a_and_b() {
        let md5_a: [u8; 16] = Md5::digest(b"a").into();
        let md5_b: [u8; 16] = Md5::digest(b"b").into();
        assert_eq!(hex::encode(md5_a), "0cc175b9c0f1b6a831c399e269772661");
        assert_eq!(hex::encode(md5_b), "92eb5ffee6ae2fec3ad71c777531578f");

        let mut both = Vec::new();
        both.extend_from_slice(&md5_a);
        both.extend_from_slice(&md5_b);
        let expected = format!("{}-2", hex::encode(Md5::digest(&both)));
        assert_eq!(multipart_etag(&[md5_a, md5_b]), expected);
        // Computed independently with Python's hashlib.
        assert_eq!(
            multipart_etag(&[md5_a, md5_b]),
            "96e024ba2074fe77e8e965ba43a704be-2"
        );
        // Order matters, and it is not the MD5 of the hex digests.
        assert_ne!(multipart_etag(&[md5_b, md5_a]), expected);
        let hex_concat = format!("{}{}", hex::encode(md5_a), hex::encode(md5_b));
        assert_ne!(
            multipart_etag(&[md5_a, md5_b]),
            format!("{}-2", hex::encode(Md5::digest(hex_concat.as_bytes())))
        );
    }

    #[test]
    fn multipart_etag_counts_parts() {
        let md5 = |data: &[u8]| -> [u8; 16] { Md5::digest(data).into() };
        let one = multipart_etag(&[md5(b"x")]);
        // Even a single part gets the suffix, and is not the part's own MD5.
        assert!(one.ends_with("-1"));
        assert_ne!(&one[..32], hex::encode(md5(b"x")));
        assert_eq!(&one[..32], hex::encode(md5(&md5(b"x"))));

        let parts: Vec<[u8; 16]> = (0..10_000u32).map(|i| md5(&i.to_be_bytes())).collect();
        let etag = multipart_etag(&parts);
        assert!(etag.ends_with("-10000"), "{etag}");
        assert_eq!(etag.len(), 32 + "-10000".len());
        assert!(etag[..32].bytes().all(|b| b.is_ascii_hexdigit()));

        assert_eq!(multipart_etag(&[]), format!("{}-0", hex::encode(md5(b""))));
    }

    #[test]
    fn parse_etag_md5_accepts_plain_md5_etags() {
        let md5: [u8; 16] = Md5::digest(b"hello").into();
        let hex = hex::encode(md5);
        assert_eq!(parse_etag_md5(&hex), Some(md5));
        assert_eq!(parse_etag_md5(&format!("\"{hex}\"")), Some(md5));
        assert_eq!(parse_etag_md5(&hex.to_uppercase()), Some(md5));
        assert_eq!(
            parse_etag_md5(&format!("\"{}\"", hex.to_uppercase())),
            Some(md5)
        );
    }

    #[test]
    fn parse_etag_md5_rejects_everything_else() {
        let hex = hex::encode(Md5::digest(b"hello"));
        for bad in [
            String::new(),
            "\"\"".to_string(),
            "\"".to_string(),
            format!("\"{hex}"),
            format!("{hex}\""),
            format!("\"\"{hex}\"\""),
            format!(" {hex}"),
            format!("W/\"{hex}\""),
            hex[..31].to_string(),
            format!("{hex}0"),
            format!("{}g", &hex[..31]),
            format!("{hex}-2"),
            multipart_etag(&[[0; 16]]),
            "é".repeat(16),
        ] {
            assert_eq!(parse_etag_md5(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parsed_etags_feed_multipart_etag() {
        let etags = [
            "\"0cc175b9c0f1b6a831c399e269772661\"",
            "92eb5ffee6ae2fec3ad71c777531578f",
        ];
        let md5s: Option<Vec<[u8; 16]>> = etags.iter().map(|e| parse_etag_md5(e)).collect();
        assert_eq!(
            multipart_etag(&md5s.unwrap()),
            "96e024ba2074fe77e8e965ba43a704be-2"
        );
    }

    // --- Checksum type -----------------------------------------------------------------------

    #[test]
    fn checksum_type_names() {
        assert_eq!(ChecksumType::Composite.name(), "COMPOSITE");
        assert_eq!(ChecksumType::FullObject.name(), "FULL_OBJECT");
        assert_eq!(ChecksumType::FullObject.to_string(), "FULL_OBJECT");
        for ty in ChecksumType::ALL {
            assert_eq!(ChecksumType::from_name(ty.name()), Some(ty));
            assert_eq!(ChecksumType::from_name(&ty.name().to_lowercase()), Some(ty));
        }
        assert_eq!(
            ChecksumType::from_name(" Full_Object "),
            Some(ChecksumType::FullObject)
        );
        for bad in ["", "FULLOBJECT", "FULL-OBJECT", "COMPOSITE-", "CRC32"] {
            assert_eq!(ChecksumType::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checksum_type_rules_follow_s3() {
        use ChecksumAlgorithm::*;
        use ChecksumType::*;
        assert_eq!(ChecksumType::default_for(Crc64Nvme), FullObject);
        for algorithm in [Crc32, Crc32c, Sha1, Sha256] {
            assert_eq!(ChecksumType::default_for(algorithm), Composite);
        }
        let table = [
            (Crc32, true, true),
            (Crc32c, true, true),
            (Sha1, true, false),
            (Sha256, true, false),
            (Crc64Nvme, false, true),
        ];
        for (algorithm, composite, full_object) in table {
            assert_eq!(allowed(algorithm, Composite), composite, "{algorithm}");
            assert_eq!(allowed(algorithm, FullObject), full_object, "{algorithm}");
            // The default is always an allowed combination.
            assert!(allowed(algorithm, ChecksumType::default_for(algorithm)));
        }
    }

    #[test]
    fn checksum_type_serde_round_trip() {
        for ty in ChecksumType::ALL {
            let json = serde_json::to_string(&ty).unwrap();
            assert_eq!(serde_json::from_str::<ChecksumType>(&json).unwrap(), ty);
        }
    }

    // --- COMPOSITE ---------------------------------------------------------------------------

    #[test]
    fn composite_matches_manual_computation() {
        let data = noise(100_000, 1);
        let splits: [&[usize]; 6] = [
            &[],
            &[0],
            &[1, 1, 1],
            &[50_000],
            &[0, 0, 99_999],
            &[7, 70, 700, 7000, 0, 70_000],
        ];
        for algorithm in ChecksumAlgorithm::ALL {
            if algorithm == ChecksumAlgorithm::Crc64Nvme {
                continue;
            }
            for lens in splits {
                let parts = split(&data, lens);
                let value = composite(algorithm, &parts).unwrap();
                assert_eq!(value, manual_composite(algorithm, &parts), "{algorithm}");
                assert!(value.ends_with(&format!("-{}", parts.len())), "{value}");
                // The part before the suffix is a well-formed digest of the algorithm.
                let (b64, _) = value.rsplit_once('-').unwrap();
                assert!(Checksum::parse(algorithm, b64).is_ok());
                // And it is not the full-object value.
                if parts.len() > 1 {
                    assert_ne!(b64, Checksum::compute(algorithm, &data).value);
                }
            }
        }
    }

    #[test]
    fn composite_known_values() {
        // Computed independently with Python's zlib and hashlib for the parts "hello " and
        // "world".
        let parts: [&[u8]; 2] = [b"hello ", b"world"];
        let cases = [
            (ChecksumAlgorithm::Crc32, "1Fu2mQ==-2"),
            (ChecksumAlgorithm::Sha1, "9oeo+kMlG3hL6irRRMB+8GuSWwc=-2"),
            (
                ChecksumAlgorithm::Sha256,
                "Zhie15keHg/OBlOZxcoF/BXCgYZaeimRvdZnwUZqkaQ=-2",
            ),
        ];
        for (algorithm, expected) in cases {
            assert_eq!(
                composite(algorithm, &parts).as_deref(),
                Some(expected),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn composite_rejects_what_it_cannot_combine() {
        use ChecksumAlgorithm::*;
        let data: [&[u8]; 2] = [b"one", b"two"];
        // CRC64NVME is FULL_OBJECT only.
        assert_eq!(composite(Crc64Nvme, &data), None);

        let good = Checksum::compute(Crc32, b"one");
        let other = Checksum::compute(Crc32c, b"two");
        assert_eq!(composite_checksum(Crc32, &[good.clone(), other]), None);
        for value in ["not base64!", "DUoRhQA=", "", "AAAA"] {
            let bad = Checksum {
                algorithm: Crc32,
                value: value.to_string(),
            };
            assert_eq!(
                composite_checksum(Crc32, &[good.clone(), bad]),
                None,
                "{value:?}"
            );
        }
        assert!(composite_checksum(Crc32, &[good]).is_some());
    }

    #[test]
    fn composite_of_no_parts() {
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Sha1,
            ChecksumAlgorithm::Sha256,
        ] {
            assert_eq!(
                composite_checksum(algorithm, &[]),
                Some(format!("{}-0", Checksum::compute(algorithm, b"").value))
            );
        }
    }

    // --- FULL_OBJECT -------------------------------------------------------------------------

    #[test]
    fn full_object_equals_crc_of_whole_at_every_split_point() {
        let data = noise(1500, 2);
        for algorithm in CRCS {
            let whole = Checksum::compute(algorithm, &data);
            for at in 0..=data.len() {
                let (a, b) = data.split_at(at);
                assert_eq!(full(algorithm, &[a, b]), whole, "{algorithm} split at {at}");
            }
        }
    }

    #[test]
    fn full_object_with_empty_and_one_byte_parts() {
        let data = noise(10_000, 3);
        let splits: [&[usize]; 7] = [
            &[0],
            &[0, 0, 0],
            &[1],
            &[1, 1, 1, 1, 1],
            &[9_999],
            &[0, 1, 0, 1, 0, 5000, 0],
            &[10_000, 0],
        ];
        for algorithm in CRCS {
            let whole = Checksum::compute(algorithm, &data);
            for lens in splits {
                let parts = split(&data, lens);
                assert_eq!(full(algorithm, &parts), whole, "{algorithm} {lens:?}");
            }
            // Every part one byte long.
            let bytes: Vec<&[u8]> = data[..2000].chunks(1).collect();
            assert_eq!(
                full(algorithm, &bytes),
                Checksum::compute(algorithm, &data[..2000]),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn full_object_with_five_mib_parts() {
        let data = noise(3 * 5 * MIB + 12_345, 4);
        let splits: [&[usize]; 3] = [
            &[5 * MIB, 5 * MIB, 5 * MIB],
            &[5 * MIB, 0, 1, 5 * MIB - 1, 5 * MIB],
            &[5 * MIB + 1, 5 * MIB - 2],
        ];
        for algorithm in CRCS {
            let whole = Checksum::compute(algorithm, &data);
            for lens in splits {
                let parts = split(&data, lens);
                assert_eq!(full(algorithm, &parts), whole, "{algorithm} {lens:?}");
            }
        }
    }

    #[test]
    fn full_object_of_no_parts_is_crc_of_empty_input() {
        for algorithm in CRCS {
            assert_eq!(
                full_object_checksum(algorithm, &[]),
                Some(Checksum::compute(algorithm, b""))
            );
            assert_eq!(full(algorithm, &[b""]), Checksum::compute(algorithm, b""));
        }
    }

    #[test]
    fn full_object_known_value() {
        // Python: zlib.crc32(b"hello world"), and "hello " / "world" as "7YH59g==" / "OncRQw==".
        let parts = [
            (
                Checksum::parse(ChecksumAlgorithm::Crc32, "7YH59g==").unwrap(),
                6,
            ),
            (
                Checksum::parse(ChecksumAlgorithm::Crc32, "OncRQw==").unwrap(),
                5,
            ),
        ];
        assert_eq!(
            full_object_checksum(ChecksumAlgorithm::Crc32, &parts).map(|c| c.value),
            Some("DUoRhQ==".to_string())
        );
        // The catalogue check values of "123456789", split as "1234" + "56789".
        for (algorithm, hex) in [
            (ChecksumAlgorithm::Crc32, "cbf43926"),
            (ChecksumAlgorithm::Crc32c, "e3069283"),
            (ChecksumAlgorithm::Crc64Nvme, "ae8b14860a799888"),
        ] {
            let value = full(algorithm, &[b"1234", b"56789"]).value;
            assert_eq!(
                hex::encode(BASE64.decode(value).unwrap()),
                hex,
                "{algorithm}"
            );
        }
    }

    #[test]
    fn full_object_rejects_what_it_cannot_combine() {
        use ChecksumAlgorithm::*;
        for algorithm in [Sha1, Sha256] {
            let parts = with_lengths(algorithm, &[b"a", b"b"]);
            assert_eq!(full_object_checksum(algorithm, &parts), None);
            assert_eq!(full_object_checksum(algorithm, &[]), None);
        }
        let mut parts = with_lengths(Crc32, &[b"a", b"b"]);
        parts[1].0 = Checksum::compute(Crc32c, b"b");
        assert_eq!(full_object_checksum(Crc32, &parts), None);
        // A CRC32 value where a CRC64NVME one is expected: right algorithm tag, wrong length.
        let mut parts = with_lengths(Crc64Nvme, &[b"a", b"b"]);
        parts[0].0.value = Checksum::compute(Crc32, b"a").value;
        assert_eq!(full_object_checksum(Crc64Nvme, &parts), None);
        parts[0].0.value = "@@@@".to_string();
        assert_eq!(full_object_checksum(Crc64Nvme, &parts), None);
    }

    #[test]
    fn full_object_depends_on_part_lengths() {
        // The same CRCs with lengths that do not match the data give another value: the
        // lengths are really used (a wrong size recorded for a part must not go unnoticed).
        for algorithm in CRCS {
            let mut parts = with_lengths(algorithm, &[b"abc", b"defgh"]);
            let right = full_object_checksum(algorithm, &parts).unwrap();
            parts[1].1 += 1;
            assert_ne!(full_object_checksum(algorithm, &parts).unwrap(), right);
        }
    }

    #[test]
    fn combine_is_logarithmic_in_length() {
        // Lengths near u64::MAX would take forever if the shift were done byte by byte.
        let start = std::time::Instant::now();
        for algorithm in CRCS {
            let parts = [
                (Checksum::compute(algorithm, b"x"), u64::MAX),
                (Checksum::compute(algorithm, b"y"), u64::MAX - 1),
                (Checksum::compute(algorithm, b"z"), 1 << 63),
            ];
            assert!(full_object_checksum(algorithm, &parts).is_some());
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    // --- The GF(2) arithmetic ----------------------------------------------------------------

    /// Bit-by-bit reflected CRC with init = xorout = all ones: the textbook definition, against
    /// which the polynomial constants and conventions are checked.
    fn reference_crc(width: u32, poly: u64, data: &[u8]) -> u64 {
        let mask = if width == 64 {
            u64::MAX
        } else {
            (1 << width) - 1
        };
        let mut register = mask;
        for &byte in data {
            register ^= u64::from(byte);
            for _ in 0..8 {
                register = if register & 1 != 0 {
                    (register >> 1) ^ poly
                } else {
                    register >> 1
                };
            }
        }
        register ^ mask
    }

    fn crc_as_u64(algorithm: ChecksumAlgorithm, data: &[u8]) -> u64 {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        hasher
            .finish()
            .iter()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }

    #[test]
    fn polynomials_match_the_crates() {
        // Confirms the reflected polynomials and the init/xorout convention the combine relies
        // on against crc32fast, crc32c and crc64fast-nvme.
        for (i, len) in [0usize, 1, 2, 3, 8, 9, 100, 1000].into_iter().enumerate() {
            let data = noise(len, 10 + i as u64);
            for algorithm in CRCS {
                let crc = ReflectedCrc::of(algorithm).unwrap();
                assert_eq!(
                    reference_crc(crc.width, crc.poly, &data),
                    crc_as_u64(algorithm, &data),
                    "{algorithm} len {len}"
                );
            }
        }
        assert_eq!(CRC32.width, 32);
        assert_eq!(CRC32C.width, 32);
        assert_eq!(CRC64NVME.width, 64);
    }

    #[test]
    fn crc_of_empty_input_is_zero() {
        // full_object_checksum starts from 0 for this reason.
        for algorithm in CRCS {
            assert_eq!(crc_as_u64(algorithm, b""), 0, "{algorithm}");
        }
    }

    #[test]
    fn x_pow_8n_matches_repeated_multiplication_by_x() {
        for crc in [&CRC32, &CRC32C, &CRC64NVME] {
            let x = crc.one() >> 1;
            let mut expected = crc.one();
            for len in 0..64u64 {
                assert_eq!(crc.x_pow_8n(len), expected, "len {len}");
                for _ in 0..8 {
                    expected = crc.multiply(expected, x);
                }
            }
        }
    }

    #[test]
    fn x_pow_8n_adds_exponents_for_huge_lengths() {
        for crc in [&CRC32, &CRC32C, &CRC64NVME] {
            for (m, n) in [
                (1u64 << 61, (1u64 << 61) + 12_345),
                (u64::MAX / 3, u64::MAX / 3),
                (5 * MIB as u64, 10_000 * 5 * MIB as u64),
                (0, u64::MAX),
            ] {
                // x^(8m)·x^(8n) = x^(8(m+n)), with m + n computed in plain integers.
                assert_eq!(
                    crc.multiply(crc.x_pow_8n(m), crc.x_pow_8n(n)),
                    crc.x_pow_8n(m + n),
                    "m {m} n {n}"
                );
            }
        }
    }

    #[test]
    fn multiply_is_commutative_with_one_as_identity() {
        for crc in [&CRC32, &CRC32C, &CRC64NVME] {
            let mask = if crc.width == 64 {
                u64::MAX
            } else {
                (1 << crc.width) - 1
            };
            let values = [crc.one(), 1, mask, 0x1234_5678_9ABC_DEF0 & mask, 0];
            for &a in &values {
                assert_eq!(crc.multiply(crc.one(), a), a);
                for &b in &values {
                    assert_eq!(crc.multiply(a, b), crc.multiply(b, a));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// FULL_OBJECT equals the CRC of the whole data for any split.
        #[test]
        fn full_object_over_arbitrary_splits(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..10),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut lens = Vec::new();
            let mut previous = 0;
            for point in points {
                lens.push(point - previous);
                previous = point;
            }
            let parts = split(&data, &lens);
            for algorithm in CRCS {
                prop_assert_eq!(full(algorithm, &parts), Checksum::compute(algorithm, &data));
            }
            for algorithm in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha256] {
                let value = composite(algorithm, &parts).unwrap();
                prop_assert_eq!(&value, &manual_composite(algorithm, &parts));
                let suffix = format!("-{}", parts.len());
                prop_assert!(value.ends_with(&suffix));
            }
        }

        /// Combining is associative: ((A, B), C) gives the same as (A, (B, C)).
        #[test]
        fn combine_is_associative(
            a in any::<u64>(), b in any::<u64>(), c in any::<u64>(),
            len_b in any::<u64>(), len_c in any::<u64>(),
        ) {
            for crc in [&CRC32, &CRC32C, &CRC64NVME] {
                let mask = if crc.width == 64 { u64::MAX } else { (1 << crc.width) - 1 };
                let (a, b, c) = (a & mask, b & mask, c & mask);
                let left = crc.combine(crc.combine(a, b, len_b), c, len_c);
                let right = crc.combine(a, crc.combine(b, c, len_c), len_b.wrapping_add(len_c));
                // Only meaningful when the total length does not overflow.
                if len_b.checked_add(len_c).is_some() {
                    prop_assert_eq!(left, right);
                }
            }
        }
    }
}
