//! The gateway as a separate process, for the crash tests: a free port, a configuration file,
//! the `hansa` binary started with its output appended to a log file, kill -9 (or SIGTERM),
//! a guard that kills it when dropped, and the log read from an offset.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{hansa_binary, process_config_from, Options};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The gateway process; killed (SIGKILL) when dropped, so a failing assertion leaves no
/// process behind.
pub struct Gateway(Child);

impl Gateway {
    /// Waits (up to 20 s) until the gateway accepts connections on `addr`; kills it and
    /// panics if it does not.
    fn listening_on(mut self, addr: SocketAddr) -> Self {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() >= deadline {
                self.kill_9();
                panic!("gateway did not start listening");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill_9(&mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix
        let _ = self.0.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `signal` (e.g. `libc::SIGUSR1`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("pid");
        // SAFETY: kill(2) with the id of a child this value owns and has not reaped.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGTERM, then waits up to `limit` for the process to exit (SIGKILL after that);
    /// returns whether it exited on its own.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill_9();
                    return false;
                }
            }
        }
    }
}

impl Gateway {
    /// Waits up to `limit` for the process to exit on its own (after a signal) and returns
    /// its exit status; `None` when it did not (it is then killed).
    pub fn exit_status(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill_9();
                    return None;
                }
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Starts `hansa serve --config <config>`, its stdout and stderr appended to `log`, and waits
/// until it listens on `addr`.
pub fn spawn(config: &Path, log: &Path, addr: SocketAddr) -> Gateway {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let child = Command::new(hansa_binary())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start hansa");
    Gateway(child).listening_on(addr)
}

/// The test's directory, kept (and its path printed) when the test fails or
/// `HANSA_KEEP_TEST_DIR=1` is set, for the log.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    /// A new directory under [`crate::test_tmp_root`], its name starting with `prefix`.
    pub fn new(prefix: &str) -> TestDir {
        TestDir(Some(
            tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(crate::test_tmp_root())
                .expect("tempdir"),
        ))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("test directory").path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var("HANSA_KEEP_TEST_DIR").as_deref() == Ok("1") {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "test directory kept for inspection: {}",
                    dir.keep().display()
                );
            }
        }
    }
}

/// Writes the gateway's configuration for `dir` listening on `addr`: `extra_toml` appended,
/// `plan`'s lines added to the named local backends (`disk-a`, `disk-b`), `limits` in
/// `[limits]`.
pub fn write_config(
    config: &Path,
    dir: &Path,
    addr: SocketAddr,
    extra_toml: &str,
    plan: &[(&str, &str)],
    limits: &str,
) {
    let options = Options {
        extra_toml: extra_toml.to_string(),
        limits_toml: limits.to_string(),
        backend_toml: plan
            .iter()
            .map(|(id, lines)| (id.to_string(), lines.to_string()))
            .collect(),
        ..Default::default()
    };
    std::fs::write(config, process_config_from(dir, addr, &options)).expect("config");
}

/// The log's length now: where the next start's output begins.
pub fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The log from `from` (bytes), colour sequences removed.
pub fn log_since(log: &Path, from: u64) -> String {
    let bytes = std::fs::read(log).expect("read log");
    strip_ansi(&String::from_utf8_lossy(
        &bytes[(from as usize).min(bytes.len())..],
    ))
}

/// Removes terminal colour sequences (in case the subscriber writes them anyway).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `name=value` of a log line.
pub fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split_whitespace().next()
}

/// Every file under `dir` (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out
}

/// Starts `hansa <args> serve --config <config>` with `envs` set, its stdout and stderr each
/// written to its own file (stderr's log lines alone, e.g. to parse them as JSON), and waits
/// until it listens on `addr`. Unlike [`spawn`], NO_COLOR is not set: colours must stay off
/// because stderr is not a terminal.
pub fn spawn_split(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdout: &Path,
    stderr: &Path,
    addr: SocketAddr,
) -> Gateway {
    let child = Command::new(hansa_binary())
        .args(args)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("HANSA_LOG")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).expect("stdout file"))
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("start hansa");
    Gateway(child).listening_on(addr)
}

/// What a finished `hansa` command printed, and its exit code.
#[derive(Debug)]
pub struct Finished {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hansa <args>` to its end, killed (and the test failed) after `limit`.
pub fn run_hansa(args: &[&str], limit: Duration) -> Finished {
    let mut child = Command::new(hansa_binary())
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("HANSA_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hansa");
    // Drain both pipes on threads, so a chatty command never blocks on a full pipe.
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout pipe")));
    let err = read(Box::new(child.stderr.take().expect("stderr pipe")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait for hansa") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hansa {args:?} did not finish within {limit:?}");
            }
        }
    };
    Finished {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}
