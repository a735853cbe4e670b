//! Conditional requests (RFC 7232 as S3 applies it): If-Match, If-None-Match,
//! If-Modified-Since, If-Unmodified-Since, and the same four for copy sources.

/// What a set of conditions says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// 304 for GET/HEAD.
    NotModified,
    /// 412, naming the header that failed.
    PreconditionFailed(&'static str),
}

/// The four condition headers, as the client sent them.
#[derive(Default, Debug, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

impl<'a> Conditions<'a> {
    pub fn from_headers(headers: &'a http::HeaderMap, prefix: &str) -> Self {
        let get = |name: &str| {
            headers
                .get(format!("{prefix}{name}"))
                .and_then(|v| v.to_str().ok())
        };
        Conditions {
            if_match: get("if-match"),
            if_none_match: get("if-none-match"),
            if_modified_since: get("if-modified-since"),
            if_unmodified_since: get("if-unmodified-since"),
        }
    }

    /// Evaluated in RFC 7232's order: a passing If-Match overrides If-Unmodified-Since, and
    /// If-None-Match, when present, overrides If-Modified-Since.
    pub fn evaluate(&self, etag: &str, modified_ms: u64) -> Verdict {
        let modified_secs = modified_ms / 1000;
        match self.if_match {
            Some(list) if !etag_matches(list, etag) => {
                return Verdict::PreconditionFailed("If-Match")
            }
            Some(_) => {}
            None => {
                if let Some(since) = self.if_unmodified_since.and_then(parse_date) {
                    if modified_secs > since {
                        return Verdict::PreconditionFailed("If-Unmodified-Since");
                    }
                }
            }
        }
        match self.if_none_match {
            Some(list) if etag_matches(list, etag) => Verdict::NotModified,
            Some(_) => Verdict::Proceed,
            None => match self.if_modified_since.and_then(parse_date) {
                Some(since) if modified_secs <= since => Verdict::NotModified,
                _ => Verdict::Proceed,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }
}

/// True when `list` (`*`, or comma-separated, optionally quoted or weak etags) names `etag`.
pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.trim_start_matches("W/").trim_matches('"') == etag
    })
}

/// Seconds since the epoch; an unparsable date is ignored, as S3 does.
fn parse_date(s: &str) -> Option<u64> {
    httpdate::parse_http_date(s)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODIFIED: u64 = 1_700_000_000_500; // Tue, 14 Nov 2023 22:13:20 GMT
    const BEFORE: &str = "Tue, 14 Nov 2023 22:00:00 GMT";
    const AFTER: &str = "Tue, 14 Nov 2023 23:00:00 GMT";
    const SAME: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    fn eval(c: Conditions) -> Verdict {
        c.evaluate("abc", MODIFIED)
    }

    #[test]
    fn if_match() {
        assert_eq!(
            eval(Conditions {
                if_match: Some("\"abc\""),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_match: Some("x, \"abc\""),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_match: Some("*"),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_match: Some("\"zzz\""),
                ..Default::default()
            }),
            Verdict::PreconditionFailed("If-Match")
        );
    }

    #[test]
    fn if_none_match_and_dates() {
        assert_eq!(
            eval(Conditions {
                if_none_match: Some("\"abc\""),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_none_match: Some("\"x\""),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(AFTER),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(SAME),
                ..Default::default()
            }),
            Verdict::NotModified
        );
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some(BEFORE),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_modified_since: Some("garbage"),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        assert_eq!(
            eval(Conditions {
                if_unmodified_since: Some(BEFORE),
                ..Default::default()
            }),
            Verdict::PreconditionFailed("If-Unmodified-Since")
        );
        assert_eq!(
            eval(Conditions {
                if_unmodified_since: Some(AFTER),
                ..Default::default()
            }),
            Verdict::Proceed
        );
    }

    #[test]
    fn s3_precedence_rules() {
        // If-Match true + If-Unmodified-Since false → 200.
        assert_eq!(
            eval(Conditions {
                if_match: Some("abc"),
                if_unmodified_since: Some(BEFORE),
                ..Default::default()
            }),
            Verdict::Proceed
        );
        // If-None-Match false (no match) + If-Modified-Since false → 200: If-None-Match wins.
        assert_eq!(
            eval(Conditions {
                if_none_match: Some("x"),
                if_modified_since: Some(AFTER),
                ..Default::default()
            }),
            Verdict::Proceed
        );
    }
}
