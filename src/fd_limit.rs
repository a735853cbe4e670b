//! The process's open-file limit, and how many client connections fit under it.
//!
//! Every connection holds a descriptor, and so does every file a request opens on a local
//! disk, every socket to a provider, and the index. Running out makes writes fail with 503
//! for everyone, so the gateway raises its soft limit as far as it may and admits no more
//! connections than leave room for the rest.

/// The open-file limit before and after [`raise_nofile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub initial: u64,
    /// The soft limit in effect now.
    pub soft: u64,
    /// The hard limit (the most the soft limit may be raised to without privileges).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (on Linux, at most `fs.nr_open`, which
/// the kernel refuses to exceed even when the hard limit is "unlimited"). A refusal is not
/// fatal: the limit in effect is reported and connections are capped below it.
// `rlim_t` is not u64 on every platform.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile() -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let initial = lim.rlim_cur as u64;
    let hard = lim.rlim_max as u64;
    let mut target = hard;
    if lim.rlim_max == libc::RLIM_INFINITY {
        target = nr_open().unwrap_or(1 << 20);
    }
    if target <= initial {
        return Ok(FdLimit {
            initial,
            soft: initial,
            hard,
        });
    }
    let wanted = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(error = %e, soft = initial, hard, "cannot raise the open-file limit");
        return Ok(FdLimit {
            initial,
            soft: initial,
            hard,
        });
    }
    Ok(FdLimit {
        initial,
        soft: target,
        hard,
    })
}

#[cfg(target_os = "linux")]
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn nr_open() -> Option<u64> {
    None
}

/// Connections admitted under an open-file limit of `nofile`: at most `configured`, and no
/// more than fit what is left after a reserve (a quarter of the limit, between 64 and 1024) for
/// the index, logs and the like when each holds `per_connection` descriptors: a connection
/// with a request in flight also holds what that request opens, a staged file or a socket for
/// each target of a write, so `1 + backends` is the worst case.
pub fn connection_cap(configured: usize, nofile: u64, per_connection: u64) -> usize {
    let reserve = (nofile / 4).clamp(64, 1024);
    let derived = nofile.saturating_sub(reserve) / per_connection.max(1);
    let derived = usize::try_from(derived).unwrap_or(usize::MAX);
    configured.min(derived).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_leaves_a_reserve() {
        // Two backends: a write in flight holds its connection and a file on each.
        assert_eq!(connection_cap(4096, 1024, 3), 256);
        assert_eq!(connection_cap(4096, 256, 3), 64);
        assert_eq!(connection_cap(4096, 1 << 20, 3), 4096);
        assert_eq!(connection_cap(100, 1024, 3), 100);
        assert_eq!(connection_cap(4096, 10, 3), 1);
        assert_eq!(connection_cap(4096, 1024, 0), 768);
        // Every connection busy, plus the reserve, stays within the limit.
        for nofile in [128u64, 256, 1024, 4096, 65536] {
            for per in [2u64, 3, 5] {
                let cap = connection_cap(usize::MAX, nofile, per) as u64;
                assert!(
                    per * cap + (nofile / 4).clamp(64, 1024) <= nofile,
                    "{nofile} {per}"
                );
            }
        }
    }

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn raise_reaches_the_hard_limit() {
        let lim = raise_nofile().expect("getrlimit");
        assert!(lim.soft >= lim.initial);
        if lim.hard != libc::RLIM_INFINITY as u64 {
            assert_eq!(lim.soft, lim.hard);
        }
    }
}
