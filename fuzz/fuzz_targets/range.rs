//! Range header → byte range of an object of a given size.
//!
//! Input: `<object size>\n<header value>` as text, or `!` and structured bytes for the model
//! check.
//!
//! Invariants: a served part lies inside the object and is never empty; headers built from
//! numbers mean exactly what RFC 9110 says (single ranges only, as S3).

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use hansa::s3::range::{parse, RangeRequest};
use libfuzzer_sys::fuzz_target;

/// A well-formed spec built from numbers, checked against a model.
#[derive(Arbitrary, Debug)]
struct Numbers {
    first: Option<u64>,
    last: Option<u64>,
    size: u64,
}

fn check_bounds(result: &RangeRequest, size: u64) {
    if let RangeRequest::Part(r) = result {
        assert!(r.start < r.end, "empty range {r:?} of {size}");
        assert!(r.end <= size, "range {r:?} beyond {size}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(structured) = data.strip_prefix(b"!") {
        if let Ok(Numbers { first, last, size }) =
            Numbers::arbitrary(&mut Unstructured::new(structured))
        {
            let spec = format!(
                "bytes={}-{}",
                first.map(|n| n.to_string()).unwrap_or_default(),
                last.map(|n| n.to_string()).unwrap_or_default()
            );
            let result = parse(Some(&spec), size);
            check_bounds(&result, size);
            let expected = match (first, last) {
                (None, None) => RangeRequest::Whole,
                (None, Some(0)) => RangeRequest::Unsatisfiable,
                (None, Some(_)) if size == 0 => RangeRequest::Unsatisfiable,
                (None, Some(n)) => RangeRequest::Part(size.saturating_sub(n)..size),
                (Some(f), Some(l)) if l < f => RangeRequest::Whole,
                (Some(f), _) if f >= size => RangeRequest::Unsatisfiable,
                (Some(f), None) => RangeRequest::Part(f..size),
                (Some(f), Some(l)) => RangeRequest::Part(f..l.saturating_add(1).min(size)),
            };
            assert_eq!(result, expected, "{spec} of {size}");
        }
        return;
    }
    // `<object size>\n<header value>`
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (size, header) = text.split_once('\n').unwrap_or(("0", text));
    let Ok(size) = size.trim().parse::<u64>() else {
        return;
    };
    let result = parse(Some(header), size);
    check_bounds(&result, size);
});
