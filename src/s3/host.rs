//! Virtual-host addressing: the bucket a request's Host header names. Its own module because
//! both the router and SigV2's canonical resource need it, and neither should import the
//! other for it.

use http::{HeaderMap, Uri};

/// The bucket named by the Host header under one of the configured base domains.
pub fn virtual_host_bucket(
    headers: &HeaderMap,
    uri: &Uri,
    base_domains: &[String],
) -> Option<String> {
    if base_domains.is_empty() {
        return None;
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let host = strip_port(host).to_ascii_lowercase();
    base_domains.iter().find_map(|domain| {
        let domain = domain.to_ascii_lowercase();
        let bucket = host.strip_suffix(&domain)?.strip_suffix('.')?;
        (!bucket.is_empty()).then(|| bucket.to_string())
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}
