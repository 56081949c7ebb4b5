//! The open-file limit. Every request in flight holds two sockets (the client's and the
//! upstream's), and a long-lived stream holds them for minutes; a soft limit of 1,024 — the
//! default on many desktops and hosts — stops a gateway at about 500 requests at once, and
//! the accept loop then backs off until sockets close. At start agw raises its soft limit to
//! the hard one, as Go's runtime and nginx's `worker_rlimit_nofile` do, and warns when even
//! that is low.

/// A soft limit below this after raising is warned about at start.
pub const LOW_OPEN_FILES: u64 = 4096;

/// Raises the process's soft limit on open files to its hard limit (on Linux an unlimited
/// hard limit means the kernel's `fs.nr_open`; on macOS `kern.maxfilesperproc`). Returns the
/// soft limit in effect afterwards, or why it could not be read or raised.
pub fn raise_open_files() -> Result<u64, std::io::Error> {
    rlimit::increase_nofile_limit(ceiling())
}

/// What to say at start about the open-file limit, if anything: one line naming the limit and
/// how to raise it.
pub fn open_files_warning(raised: &Result<u64, std::io::Error>) -> Option<String> {
    match raised {
        Ok(soft) if *soft < LOW_OPEN_FILES => Some(format!(
            "open files are limited to {soft} (the hard limit): agw can hold about {} requests \
             at once; raise it (ulimit -Hn, systemd LimitNOFILE=, docker run --ulimit nofile=)",
            soft / 2
        )),
        Ok(_) => None,
        Err(e) => Some(format!("cannot raise the open-file limit: {e}")),
    }
}

/// The most open files a process may ask for: `fs.nr_open` on Linux (an unlimited hard limit
/// cannot be the soft one there), no ceiling elsewhere.
fn ceiling() -> u64 {
    if cfg!(target_os = "linux") {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_limit_is_named_with_how_to_raise_it() {
        let low = open_files_warning(&Ok(1024)).unwrap();
        assert!(low.contains("limited to 1024"), "{low}");
        assert!(low.contains("about 512 requests"), "{low}");
        assert!(low.contains("LimitNOFILE"), "{low}");
        assert_eq!(open_files_warning(&Ok(LOW_OPEN_FILES)), None);
        assert_eq!(open_files_warning(&Ok(1 << 20)), None);
        let err = open_files_warning(&Err(std::io::Error::from_raw_os_error(1))).unwrap();
        assert!(err.starts_with("cannot raise the open-file limit"), "{err}");
    }

    #[test]
    fn the_ceiling_is_the_kernels_where_it_says_one() {
        let c = ceiling();
        if cfg!(target_os = "linux") {
            let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert_eq!(c, nr_open);
        } else {
            assert_eq!(c, u64::MAX);
        }
    }
}
