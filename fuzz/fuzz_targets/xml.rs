//! The XML request documents: DeleteObjects (`Delete`, parsed by hand), CompleteMultipartUpload
//! and CreateBucketConfiguration (serde).
//!
//! Input, by its first byte:
//! - `!` and structured bytes: documents generated from them, serialised as SDKs write them,
//!   must parse back to what was written (keys byte for byte, whitespace included).
//! - `D`, `C`, `B` (or any other byte, modulo 3): the rest is that document's body.
//!
//! Invariants: parsing is total and deterministic; a parsed Delete has no empty key.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hansa::s3::xml::{
    escape, from_xml, CompleteMultipartUpload, CreateBucketConfiguration, Delete,
};
use libfuzzer_sys::fuzz_target;

fn raw(kind: u8, body: &[u8]) {
    match kind {
        b'D' => delete(body),
        b'C' => complete(body),
        b'B' => bucket(body),
        other => match other % 3 {
            0 => delete(body),
            1 => complete(body),
            _ => bucket(body),
        },
    }
}

fn delete(body: &[u8]) {
    let first = Delete::parse(body);
    let second = Delete::parse(body);
    assert_eq!(first.is_ok(), second.is_ok());
    if let Ok(doc) = first {
        assert!(doc.objects.iter().all(|o| !o.key.is_empty()));
    }
}

fn complete(body: &[u8]) {
    let first = from_xml::<CompleteMultipartUpload>("CompleteMultipartUpload", body);
    let second = from_xml::<CompleteMultipartUpload>("CompleteMultipartUpload", body);
    assert_eq!(first.is_ok(), second.is_ok());
    if let Ok(doc) = first {
        for part in &doc.parts {
            let _ = part.checksum();
        }
    }
}

fn bucket(body: &[u8]) {
    let _ = from_xml::<CreateBucketConfiguration>("CreateBucketConfiguration", body);
}

/// Characters XML 1.0 allows in text; keys with others cannot travel in an XML document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Text an SDK writes for a value with no meaningful edge whitespace (ETags, numbers, regions).
fn token(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.chars().all(|c| xml_char(c) && !c.is_whitespace())).then(|| t.to_owned())
}

/// (part number, ETag, optional (checksum algorithm, value)).
type Part<A> = (u32, String, Option<(A, String)>);

#[derive(Arbitrary, Debug)]
struct Generated {
    quiet: Option<bool>,
    objects: Vec<(String, Option<String>)>,
    parts: Vec<Part<u8>>,
    location: Option<String>,
    namespace: bool,
    whitespace: bool,
}

fn round_trips(input: &Generated) {
    let xmlns = if input.namespace {
        " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
    } else {
        ""
    };
    let gap = if input.whitespace { "\n  " } else { "" };

    // Delete: keys are kept exactly, whitespace included.
    let objects: Vec<(String, Option<String>)> = input
        .objects
        .iter()
        .filter(|(key, _)| !key.is_empty() && key.chars().all(xml_char))
        .map(|(key, version)| (key.clone(), version.as_deref().and_then(token)))
        .collect();
    let mut doc = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete{xmlns}>{gap}");
    if let Some(quiet) = input.quiet {
        doc.push_str(&format!("<Quiet>{quiet}</Quiet>{gap}"));
    }
    for (key, version) in &objects {
        doc.push_str(&format!("<Object><Key>{}</Key>", escape(key)));
        if let Some(version) = version {
            doc.push_str(&format!("<VersionId>{}</VersionId>", escape(version)));
        }
        doc.push_str(&format!("</Object>{gap}"));
    }
    doc.push_str("</Delete>");
    let parsed = Delete::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e:?}: {doc}"));
    assert_eq!(parsed.quiet, input.quiet.unwrap_or(false));
    let got: Vec<(String, Option<String>)> = parsed
        .objects
        .into_iter()
        .map(|o| (o.key, o.version_id))
        .collect();
    assert_eq!(got, objects, "{doc}");

    // CompleteMultipartUpload.
    const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"];
    let parts: Vec<Part<&str>> = input
        .parts
        .iter()
        .filter_map(|(number, etag, checksum)| {
            let checksum = checksum.as_ref().and_then(|(a, v)| {
                Some((ALGORITHMS[usize::from(*a) % ALGORITHMS.len()], token(v)?))
            });
            Some((*number, token(etag)?, checksum))
        })
        .collect();
    let mut doc = format!("<CompleteMultipartUpload{xmlns}>{gap}");
    for (number, etag, checksum) in &parts {
        doc.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag>",
            escape(etag)
        ));
        if let Some((algorithm, value)) = checksum {
            doc.push_str(&format!(
                "<Checksum{algorithm}>{}</Checksum{algorithm}>",
                escape(value)
            ));
        }
        doc.push_str(&format!("</Part>{gap}"));
    }
    doc.push_str("</CompleteMultipartUpload>");
    let parsed: CompleteMultipartUpload = from_xml("CompleteMultipartUpload", doc.as_bytes())
        .unwrap_or_else(|e| panic!("{e:?}: {doc}"));
    let got: Vec<Part<&str>> = parsed
        .parts
        .iter()
        .map(|p| {
            (
                p.part_number,
                p.etag.clone(),
                p.checksum().map(|(a, v)| (a, v.to_owned())),
            )
        })
        .collect();
    assert_eq!(got, parts, "{doc}");

    // CreateBucketConfiguration.
    let location = input.location.as_deref().and_then(token);
    let doc = match &location {
        Some(region) => format!(
            "<CreateBucketConfiguration{xmlns}>{gap}<LocationConstraint>{}</LocationConstraint>{gap}</CreateBucketConfiguration>",
            escape(region)
        ),
        None => format!("<CreateBucketConfiguration{xmlns}></CreateBucketConfiguration>"),
    };
    let parsed: CreateBucketConfiguration = from_xml("CreateBucketConfiguration", doc.as_bytes())
        .unwrap_or_else(|e| panic!("{e:?}: {doc}"));
    assert_eq!(parsed.location_constraint, location, "{doc}");
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b'!', rest)) => {
            if let Ok(input) = Generated::arbitrary(&mut Unstructured::new(rest)) {
                round_trips(&input);
            }
        }
        Some((&kind, body)) => raw(kind, body),
        None => {}
    }
});
