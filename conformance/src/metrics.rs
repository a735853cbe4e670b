//! Scraping a gateway's `/metrics` in tests: the exposition parsed with a Prometheus text
//! parser (prometheus-parse), and samples looked up by name and labels.

use std::time::{Duration, Instant};

use prometheus_parse::Value;

/// One parsed scrape.
pub struct Scrape {
    pub text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels` (for histograms, name
    /// the `_count` or `_sum` series); `None` when there is no such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.parsed
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
    }

    /// [`Scrape::value`], 0 when the sample is absent (a counter not yet created).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The type the exposition declares for `name` (`counter`, `gauge`, `histogram`).
    pub fn declared_type(&self, name: &str) -> Option<String> {
        let head = format!("# TYPE {name} ");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&head))
            .map(str::to_string)
    }
}

/// `GET <endpoint>/metrics` (no token), which must answer 200 in the Prometheus text format,
/// parsed.
pub async fn scrape(endpoint: &str) -> Scrape {
    let response = crate::raw::reqwest_client()
        .get(format!("{endpoint}/metrics"))
        .send()
        .await
        .expect("scrape sent");
    assert_eq!(response.status().as_u16(), 200, "GET /metrics");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("scrape read");
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the exposition parses");
    Scrape { text, parsed }
}

/// Scrapes until `done` holds for a scrape, at most `limit`; returns that scrape, or panics
/// with `what` and the last one.
pub async fn scrape_until(
    endpoint: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let started = Instant::now();
    loop {
        let s = scrape(endpoint).await;
        if done(&s) {
            return s;
        }
        assert!(
            started.elapsed() < limit,
            "not within {limit:?}: {what}\n{}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
