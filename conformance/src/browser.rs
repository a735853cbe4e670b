//! Headless Chromium for the browser tests: a test runs one Node script from
//! `conformance/browser/` that drives Debian's chromium through playwright-core (both installed
//! by `scripts/browser-setup.sh`) and prints one JSON document on its last stdout line, which
//! the test asserts on.
//!
//! Scripts are CommonJS (`*.cjs`, `require('playwright-core')`: `NODE_PATH` points at the
//! installed driver, and ES modules ignore it). A script gets its inputs as environment
//! variables and `HANSA_CHROMIUM` (the browser's path; launch it with `--no-sandbox`, the tests
//! run as root in CI); it must close the browser whatever happens. Pages of "another origin" are best served by
//! playwright's `page.route` (a made-up origin such as `http://app.test` answered from the
//! script), so that nothing but the gateway listens and nothing leaves 127.0.0.1.

use std::path::PathBuf;
use std::time::Duration;

/// Where the browser and its driver are.
pub struct Browser {
    chromium: PathBuf,
    node_modules: PathBuf,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Browser {
    /// The installed browser; `None` (the test is skipped, loudly) with
    /// `HANSA_SKIP_BROWSER_TESTS=1`; otherwise a missing browser fails the test with the hint.
    pub fn find() -> Option<Browser> {
        let chromium = std::env::var_os("HANSA_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        let dir = std::env::var_os("HANSA_BROWSER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/browser"));
        let node_modules = dir.join("node_modules");
        let ready = chromium.exists() && node_modules.join("playwright-core").exists();
        if ready {
            return Some(Browser {
                chromium,
                node_modules,
            });
        }
        if std::env::var("HANSA_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
            eprintln!("HANSA_SKIP_BROWSER_TESTS=1: no headless Chromium, browser test NOT run");
            return None;
        }
        panic!(
            "headless Chromium or playwright-core is missing ({} / {}): run \
             scripts/browser-setup.sh (scripts/test.sh does), or set HANSA_SKIP_BROWSER_TESTS=1 \
             to skip the browser tests knowingly",
            chromium.display(),
            node_modules.display()
        )
    }

    /// Runs `conformance/browser/<script>` with `env`, within `limit`, and returns the JSON
    /// document it printed last. Panics (failing the test) on a script error, with its output.
    pub async fn run(
        &self,
        script: &str,
        env: &[(&str, String)],
        limit: Duration,
    ) -> serde_json::Value {
        let path = repo_root().join("conformance/browser").join(script);
        let mut command = tokio::process::Command::new("node");
        command
            .arg(&path)
            .env("NODE_PATH", &self.node_modules)
            .env("HANSA_CHROMIUM", &self.chromium)
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
            .unwrap_or_else(|e| panic!("cannot run node {}: {e}", path.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
        last.and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{script} printed no JSON result:\n{stdout}\n{stderr}"))
    }
}
