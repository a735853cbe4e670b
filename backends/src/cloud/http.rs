//! The HTTP client of the cloud stores: object_store's own builds one with a 30-second timeout
//! over the *whole* request, body included, so a large or slow read is cut in the middle and
//! retried from the start. Hansa's client has no overall deadline; it bounds the connect phase
//! and the silence between two reads of the connection instead (reqwest's read timeout), so a
//! stalled provider fails fast while a long transfer that keeps moving is never cut.

use object_store::client::{HttpClient, HttpConnector};
use object_store::{ClientConfigKey, ClientOptions};
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct TimeoutConnector {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl TimeoutConnector {
    /// The client itself; also used directly for the requests Hansa signs itself (native
    /// multipart uploads), so they get the same timeouts.
    pub(crate) fn client(&self, allow_http: bool) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .user_agent(concat!("hansa/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            // Connections stay pooled a minute between requests, kept alive by TCP probes
            // (so that a NAT or load balancer on the way does not drop them silently), and
            // small requests go out at once rather than waiting for Nagle's algorithm.
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            // Compression would change Content-Length, which object_store reads as the size.
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            .https_only(!allow_http)
            .build()
    }
}

impl HttpConnector for TimeoutConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        // object_store asks for clients with different options (the instance metadata client
        // allows plain HTTP); honour that flag, everything else is Hansa's.
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let client = self
            .client(allow_http)
            .map_err(|e| object_store::Error::Generic {
                store: "http client",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(client))
    }
}
