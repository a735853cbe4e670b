//! The bearer token check.

use subtle::ConstantTimeEq;

/// Whether an `Authorization` header value carries `token` as a bearer token. The comparison
/// takes the same time wherever the first difference is, so the token cannot be guessed a
/// byte at a time from response times (only its length may show).
pub fn token_matches(header: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(value) = header else {
        return false;
    };
    let Some(presented) = strip_bearer(value) else {
        return false;
    };
    presented.ct_eq(token).into()
}

/// The credentials after `Bearer ` (the scheme is case-insensitive, RFC 9110 §11.1).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() < SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(value[SCHEME.len()..].trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = b"s3cr3t-token";
        assert!(token_matches(Some(b"Bearer s3cr3t-token"), token));
        assert!(token_matches(Some(b"bearer s3cr3t-token"), token));
        assert!(token_matches(Some(b"Bearer  s3cr3t-token "), token));
        assert!(!token_matches(None, token));
        assert!(!token_matches(Some(b""), token));
        assert!(!token_matches(Some(b"Bearer"), token));
        assert!(!token_matches(Some(b"Bearer "), token));
        assert!(!token_matches(Some(b"Basic s3cr3t-token"), token));
        assert!(!token_matches(Some(b"s3cr3t-token"), token));
        assert!(!token_matches(Some(b"Bearer s3cr3t-tokeN"), token));
        assert!(!token_matches(Some(b"Bearer s3cr3t-token2"), token));
        assert!(!token_matches(Some(b"Bearer s3cr3t"), token));
        // An AWS signature is not a bearer token.
        assert!(!token_matches(
            Some(b"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request"),
            token
        ));
    }
}
