//! Group commit for small writes: one `syncfs` of the backend's file system makes every file
//! and directory entry written there before it started durable, so concurrent small writes
//! share one flush instead of paying three fsyncs each (file, staging directory, parent).
//!
//! A caller joins the next round: a round that has not started when the caller asks, so that
//! the caller's writes, made before it asked, are in it. The first caller to find no round
//! running leads the next one; the others wait for its result, which is theirs too — an error
//! fails every write of the round.
//!
//! `syncfs` flushes everything dirty on the file system, not only Hansa's small writes; large
//! writes start their writeback early (`sync_file_range`), which keeps what a round may find
//! dirty small. Since Linux 5.8 `syncfs` reports writeback errors of the file system.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::error::{BackendError, Result};

#[derive(Debug)]
pub(super) struct GroupSync {
    /// Any open file of the file system: `syncfs` needs one.
    root: File,
    state: Mutex<State>,
    finished: Condvar,
    /// Rounds run so far.
    rounds: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// The round new callers join: it starts once no round is running.
    next: Arc<Round>,
    running: bool,
}

#[derive(Debug, Default)]
struct Round {
    result: OnceLock<std::result::Result<(), String>>,
}

impl GroupSync {
    pub fn open(root: &Path) -> std::io::Result<GroupSync> {
        Ok(GroupSync {
            root: File::open(root)?,
            state: Mutex::default(),
            finished: Condvar::new(),
            rounds: AtomicU64::new(0),
        })
    }

    /// Blocks until everything written to the file system before the call is durable.
    pub fn sync(&self) -> Result<()> {
        let mut state = self.lock();
        let round = state.next.clone();
        loop {
            if let Some(result) = round.result.get() {
                return result.clone().map_err(|message| BackendError::Unavailable {
                    message: format!("syncfs: {message}"),
                });
            }
            if !state.running {
                // Our round has not started (it is still `next`): lead it.
                state.running = true;
                state.next = Arc::default();
                drop(state);
                self.rounds.fetch_add(1, Ordering::Relaxed);
                let _ = round.result.set(self.syncfs());
                state = self.lock();
                state.running = false;
                self.finished.notify_all();
                continue;
            }
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn syncfs(&self) -> std::result::Result<(), String> {
        // SAFETY: the descriptor belongs to `self.root`, open for the whole call; the call
        // reads no memory of ours.
        let rc = unsafe { libc::syncfs(self.root.as_raw_fd()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Callers that ask while a round runs all share the next one: eight writers, one syncfs.
    #[test]
    fn callers_waiting_on_a_round_share_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = Arc::new(GroupSync::open(dir.path()).expect("open"));
        // A round is running (as if led by someone else): callers must wait for the next.
        group.lock().running = true;
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let group = group.clone();
                let path = dir.path().join(format!("f{i}"));
                std::thread::spawn(move || {
                    std::fs::write(&path, b"x").expect("write");
                    group.sync()
                })
            })
            .collect();
        let asked = Instant::now();
        while Arc::strong_count(&group.lock().next) < 9 {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "writers did not ask"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(group.rounds.load(Ordering::Relaxed), 0, "a round ran early");
        group.lock().running = false;
        group.finished.notify_all();
        for writer in writers {
            writer.join().expect("writer").expect("sync");
        }
        assert_eq!(group.rounds.load(Ordering::Relaxed), 1);
        // A later caller gets a round of its own.
        group.sync().expect("sync");
        assert_eq!(group.rounds.load(Ordering::Relaxed), 2);
    }
}
