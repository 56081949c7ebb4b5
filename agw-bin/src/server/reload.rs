//! Hot reload: the swappable configuration handle, and the watcher that installs a new
//! configuration on SIGHUP or when a watched file changes.
//!
//! Files are watched by polling (every second by default): each path is canonicalised (so a
//! Kubernetes ConfigMap's `..data` symlink swap shows as a new target) and its modification
//! time, size and inode compared. That is a handful of `stat` calls per interval, and needs no
//! inotify watch that a symlink swap would leave pointing at the old directory. A change is
//! loaded once it has held for a whole interval, so a file being written in place is not read
//! half-way (SIGHUP reloads at once).
//!
//! A new configuration is loaded and built off the request path and installed atomically;
//! requests and streams in flight keep the one they started with. A configuration that fails to
//! load is logged (`FILE:LINE:COLUMN: message`) and the old one keeps serving.

use super::dispatch::Runtime;
use super::tls::{TlsFiles, TlsHandle};
use crate::config::{ConfigError, Gateway};
use arc_swap::ArcSwap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The running configuration, swapped whole on reload. Cloning shares it.
#[derive(Clone, Debug)]
pub struct ConfigHandle(Arc<ArcSwap<Runtime>>);

impl ConfigHandle {
    pub(crate) fn new(runtime: Runtime) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(runtime)))
    }

    /// The current runtime, for the duration of a call (cheap: no reference count touched).
    pub fn load(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.0.load()
    }

    /// The current runtime, to keep.
    pub fn current(&self) -> Arc<Runtime> {
        self.0.load_full()
    }

    /// Builds `gateway` and installs it; requests already dispatched keep the old runtime.
    /// Upstream connection pools of backends whose upstream settings did not change are kept.
    /// The listen address is not changed by a reload.
    pub fn install(&self, gateway: Gateway) -> std::io::Result<()> {
        let old = self.current();
        let runtime = Runtime::build(gateway, Some(&old))?;
        self.0.store(Arc::new(runtime));
        Ok(())
    }
}

/// Reload counts by result and the time of the last good one, for metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    ok: AtomicU64,
    failed: AtomicU64,
    last_ok_unix_ms: AtomicU64,
}

impl ReloadStats {
    /// Reloads that installed a new configuration.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Reloads that failed (the old configuration kept serving).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// When the last good reload happened.
    pub fn last_ok(&self) -> Option<SystemTime> {
        match self.last_ok_unix_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    fn record(&self, ok: bool) {
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            self.last_ok_unix_ms.store(ms, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Loads the configuration from its source again (the same files and overrides as at start).
pub type Loader = Arc<dyn Fn() -> Result<Gateway, ConfigError> + Send + Sync>;

/// Reloads the configuration (and the listener's TLS certificate) on demand.
#[derive(Clone)]
pub struct Reloader {
    handle: ConfigHandle,
    loader: Loader,
    tls: Option<(TlsHandle, TlsFiles)>,
    stats: Arc<ReloadStats>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader installing what `loader` returns into `handle`.
    pub fn new(handle: ConfigHandle, loader: Loader) -> Self {
        Self {
            handle,
            loader,
            tls: None,
            stats: Arc::default(),
        }
    }

    /// Also reloads the listener's certificate and key.
    pub fn tls(mut self, handle: TlsHandle, files: TlsFiles) -> Self {
        self.tls = Some((handle, files));
        self
    }

    /// Records into `stats` (shared with metrics) instead of counts of its own.
    pub fn with_stats(mut self, stats: Arc<ReloadStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Reload counts, shared.
    pub fn stats(&self) -> Arc<ReloadStats> {
        self.stats.clone()
    }

    /// Loads, validates and installs the configuration (and certificate), all or nothing.
    /// On error the old configuration keeps serving; the error is one line for a person.
    pub fn reload(&self) -> Result<(), String> {
        let result = (|| {
            let gateway = (self.loader)().map_err(|e| e.to_string())?;
            let old = self.handle.current();
            if gateway.listen != old.gateway.listen {
                tracing::warn!(
                    target: "agw",
                    "the listen address changed to {}; it takes a restart",
                    gateway.listen
                );
            }
            let tls = match &self.tls {
                Some((_, files)) => Some(files.server_config()?),
                None => None,
            };
            self.handle
                .install(gateway)
                .map_err(|e| format!("cannot set up the upstream client: {e}"))?;
            if let (Some((handle, _)), Some(config)) = (&self.tls, tls) {
                handle.install(config);
            }
            Ok(())
        })();
        self.stats.record(result.is_ok());
        match &result {
            Ok(()) => tracing::info!(target: "agw", "configuration reloaded"),
            Err(e) => tracing::error!(
                target: "agw",
                "configuration reload failed, the previous one keeps serving: {e}"
            ),
        }
        result
    }

    /// Reloads on SIGHUP and whenever one of `files`, or a file the configuration in force
    /// reads ([`Gateway::files`]: provider key files), changes (checked every `interval`),
    /// until `stop` resolves. The loading runs on the blocking pool.
    pub async fn watch(
        self,
        files: Vec<PathBuf>,
        interval: Duration,
        stop: impl Future<Output = ()>,
    ) {
        let mut base = files;
        if let Some((_, tls)) = &self.tls {
            base.extend(tls.paths());
        }
        // The files of the configuration in force, not only of the one agw started with
        // (red-team rt4: a key file that a reload named was read once and never watched).
        let watch_list = |handle: &ConfigHandle| {
            let mut all = base.clone();
            for f in &handle.load().gateway.files {
                if !all.contains(f) {
                    all.push(f.clone());
                }
            }
            all
        };
        let mut files = watch_list(&self.handle);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut watched = Watched {
            seen: fingerprint(&files),
            settling: None,
        };
        tokio::pin!(stop);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let signalled = tokio::select! {
                () = &mut stop => return,
                () = hangup => true,
                () = tokio::time::sleep(interval) => false,
            };
            if !watched.settled(fingerprint(&files), signalled) {
                continue;
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
            let now = watch_list(&self.handle);
            if now != files {
                // A file watched before keeps the state it was loaded at (a change since then
                // still reloads); a new one is taken as the new configuration read it.
                let fresh = fingerprint(&now);
                let seen = now
                    .iter()
                    .zip(fresh)
                    .map(|(path, stamp)| match files.iter().position(|f| f == path) {
                        Some(i) => watched.seen[i].clone(),
                        None => stamp,
                    })
                    .collect();
                files = now;
                watched = Watched {
                    seen,
                    settling: None,
                };
            }
        }
    }
}

/// The watched files' last loaded state, and a change waiting to hold.
struct Watched<T> {
    seen: T,
    settling: Option<T>,
}

impl<T: PartialEq> Watched<T> {
    /// Whether to reload now, given the files' state `now`: on a signal at once; on a change
    /// once it has held for a whole interval. An editor or a script writing a file in place
    /// would otherwise be caught half-way, and a valid prefix of a configuration (everything
    /// before `guards:`) loaded, its guards dropped until the next poll (sixth review).
    fn settled(&mut self, now: T, signalled: bool) -> bool {
        if !signalled {
            if now == self.seen {
                self.settling = None;
                return false;
            }
            if self.settling.as_ref() != Some(&now) {
                self.settling = Some(now);
                return false;
            }
        }
        self.settling = None;
        self.seen = now;
        true
    }
}

/// What identifies a file's content cheaply: where it resolves to, and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    target: Option<PathBuf>,
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let inode = 0;
            Some(Stamp {
                target: std::fs::canonicalize(p).ok(),
                modified: meta.modified().ok(),
                len: meta.len(),
                inode,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Watched;

    #[test]
    fn a_change_is_loaded_once_it_holds_for_an_interval_and_a_signal_at_once() {
        let mut w = Watched {
            seen: 0,
            settling: None,
        };
        assert!(!w.settled(0, false), "nothing changed");
        // Written half (1), then the rest (2) before the next poll: neither half is loaded.
        assert!(!w.settled(1, false));
        assert!(!w.settled(2, false));
        assert!(w.settled(2, false), "held for an interval");
        assert!(!w.settled(2, false), "loaded already");
        // Changed and changed back before it held: nothing to load.
        assert!(!w.settled(3, false));
        assert!(!w.settled(2, false));
        assert!(!w.settled(2, false));
        // SIGHUP: at once, whatever the files did.
        assert!(w.settled(4, true));
        assert!(!w.settled(4, false));
    }
}
