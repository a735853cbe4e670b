//! The Range header: `bytes=first-last`, `bytes=first-`, `bytes=-suffix`.

use std::ops::Range;

#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole object with 200 (absent, malformed, or several ranges,
    /// which S3 does not serve either).
    Whole,
    /// Serve these bytes with 206.
    Part(Range<u64>),
    /// 416 InvalidRange.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    // All digits but beyond u64: larger than any object, so it saturates.
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if size == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(size.saturating_sub(n)..size),
            None => RangeRequest::Whole,
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return RangeRequest::Whole;
            };
            let end = if last.is_empty() {
                size
            } else {
                match number(last) {
                    Some(l) if l >= start => l.saturating_add(1).min(size),
                    _ => return RangeRequest::Whole,
                }
            };
            if start >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start..end)
            }
        }
        (true, true) => RangeRequest::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    #[test]
    fn forms() {
        assert_eq!(parse(Some("bytes=0-9"), 100), Part(0..10));
        assert_eq!(parse(Some("bytes=90-200"), 100), Part(90..100));
        assert_eq!(parse(Some("bytes=10-"), 100), Part(10..100));
        assert_eq!(parse(Some("bytes=-10"), 100), Part(90..100));
        assert_eq!(parse(Some("bytes=-500"), 100), Part(0..100));
        assert_eq!(parse(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse(None, 100), Whole);
        assert_eq!(parse(Some("bytes=5-1"), 100), Whole);
        assert_eq!(parse(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse(Some("items=0-1"), 100), Whole);
        assert_eq!(parse(Some("bytes=a-b"), 100), Whole);
        assert_eq!(
            parse(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        assert_eq!(
            parse(Some("bytes=5-99999999999999999999999"), 100),
            Part(5..100)
        );
        assert_eq!(
            parse(Some("bytes=-99999999999999999999999"), 100),
            Part(0..100)
        );
    }
}
