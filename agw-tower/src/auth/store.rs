//! Where client keys live: the [`KeyStore`] trait and the file store.

use super::key::{KeyHash, KeyRecord};
use crate::hash::FastState;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A boxed, sendable future (the stores are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A key store failed (I/O, Redis, a corrupt file).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid key list.
    #[error("key file {path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An active key (neither revoked nor expired) has this name already.
    #[error("an active key named `{0}` exists already")]
    Exists(String),
    /// The backing service failed or timed out.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// Another process held the key file's lock for longer than a change waits.
    #[error(
        "key file lock {path}: held by another process for over {}s (a stuck `agw keys`?)",
        .waited.as_secs()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long the change waited.
        waited: Duration,
    },
}

/// Keys by hash. Implementations compare hashes in constant time and never see a key.
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
    /// The record whose hash is `hash`, valid or not.
    fn lookup(&self, hash: KeyHash) -> BoxFuture<'_, Result<Option<KeyRecord>, StoreError>>;
    /// Adds a record. A record of the same name is replaced if it is revoked or expired at
    /// `record.created`, and is refused ([`StoreError::Exists`]) if it is active: a name is an
    /// identity (access lists, limits, spend), so a developer whose key leaked gets a new key
    /// under the same name once the old one is revoked. The replaced record's key stays
    /// refused: its hash is no longer known to the store.
    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Every record, sorted by name.
    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>>;
    /// Marks the key named `name` revoked; `false` if there is none.
    fn revoke(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>>;
}

#[derive(Debug, Default)]
struct Index {
    /// By the first 8 bytes of the hash; the whole hash is then compared in constant time.
    /// The map holds only the file's keys (see [`FastState`]).
    by_prefix: HashMap<[u8; 8], Vec<(KeyHash, KeyRecord)>, FastState>,
    records: Vec<KeyRecord>,
}

impl Index {
    fn build(records: Vec<KeyRecord>) -> Result<Self, String> {
        let mut by_prefix: HashMap<[u8; 8], Vec<(KeyHash, KeyRecord)>, FastState> =
            HashMap::default();
        // Keys are named by their place in the list, not by a value: a file edited by hand may
        // hold anything there.
        let mut names = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let h = r
                .key_hash()
                .ok_or_else(|| format!("key {} of the list: `hash` is not 64 hex digits", i + 1))?;
            if let Some(first) = names.insert(r.name.clone(), i) {
                return Err(format!(
                    "keys {} and {} of the list have the same name",
                    first + 1,
                    i + 1
                ));
            }
            let mut p = [0; 8];
            p.copy_from_slice(&h.0[..8]);
            by_prefix.entry(p).or_default().push((h, r.clone()));
        }
        Ok(Self { by_prefix, records })
    }

    fn lookup(&self, hash: &KeyHash) -> Option<KeyRecord> {
        let mut p = [0; 8];
        p.copy_from_slice(&hash.0[..8]);
        self.by_prefix
            .get(&p)?
            .iter()
            .find(|(h, _)| h.ct_eq(hash))
            .map(|(_, r)| r.clone())
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    keys: Vec<KeyRecord>,
}

/// Keys in a JSON file (`{"keys":[...]}`), held in memory, rewritten atomically (temporary
/// file and rename) on every change. Changes from any number of processes are serialised by an
/// exclusive lock on a file next to it (`keys.json.lock`), under which the file is re-read, so
/// none is lost; a change waits at most five seconds for it. Readers take no lock: the rename
/// shows them the old file or the new one, never a partial one. A lookup notices a changed
/// file (its modification time, checked at most once a second) and re-reads it, so keys
/// created or revoked by `agw keys` take effect in a running agw within about a second;
/// [`FileKeyStore::reload`] re-reads at once. Without a path it is an in-memory store (tests,
/// one-off runs).
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: Option<PathBuf>,
    index: Arc<RwLock<Arc<Index>>>,
    /// Serialises this process's writers (the lock file serialises processes).
    write: Arc<std::sync::Mutex<()>>,
    /// When the file was last checked, and its modification time then.
    seen: Arc<std::sync::Mutex<(Option<std::time::Instant>, Option<std::time::SystemTime>)>>,
    /// A re-read of a changed file in progress, for a lookup that finds no key to wait on.
    rereading: Arc<Rereading>,
}

/// A re-read of the key file in progress: set (under `seen`'s lock) by the lookup that found
/// the file changed, cleared and announced when the new keys are in place.
#[derive(Debug, Default)]
struct Rereading {
    busy: AtomicBool,
    done: tokio::sync::Notify,
}

/// Ends a re-read when dropped (a panic in it included), waking the lookups that wait on it.
struct RereadDone<'a>(&'a Rereading);

impl Drop for RereadDone<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
        self.0.done.notify_waiters();
    }
}

/// The longest a lookup of an unknown key waits for a re-read of the key file in progress.
const REREAD_WAIT: Duration = Duration::from_secs(2);

impl FileKeyStore {
    /// An empty store in memory only.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            index: Arc::default(),
            write: Arc::default(),
            seen: Arc::default(),
            rereading: Arc::default(),
        }
    }

    /// Opens the key file; a missing file is an empty store (created on the first change).
    ///
    /// # Errors
    ///
    /// The file cannot be read or is not a valid key list.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let store = Self {
            path: Some(path.as_ref().to_owned()),
            index: Arc::default(),
            write: Arc::default(),
            seen: Arc::default(),
            rereading: Arc::default(),
        };
        store.reload()?;
        Ok(store)
    }

    /// Re-reads the file (after another process changed it); on error the old keys stay.
    ///
    /// # Errors
    ///
    /// As [`FileKeyStore::open`].
    pub fn reload(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let records = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<KeyFile>(&bytes)
                    .map_err(|e| StoreError::Format {
                        path: path.clone(),
                        message: json_error_without_values(&e),
                    })?
                    .keys
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.clone(),
                    source,
                });
            }
        };
        let index = Index::build(records).map_err(|message| StoreError::Format {
            path: path.clone(),
            message,
        })?;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) =
            (Some(std::time::Instant::now()), mtime);
        Ok(())
    }

    /// The key file, if the store has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file if it changed, checking at most once a second (`force`: whatever
    /// the time of the last check). A file that became unreadable keeps the last good keys; a
    /// file that was removed leaves no keys (as a missing file at start does), and says so
    /// once. `false` when another lookup is re-reading the file: its keys are not in place yet
    /// ([`FileKeyStore::wait_for_reread`]).
    fn refresh_if_changed(&self, force: bool) -> bool {
        let Some(path) = &self.path else { return true };
        let (was, now) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if self.rereading.busy.load(Ordering::Acquire) {
                return false;
            }
            if !force
                && seen
                    .0
                    .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
            {
                return true;
            }
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            seen.0 = Some(std::time::Instant::now());
            if mtime == seen.1 {
                return true;
            }
            self.rereading.busy.store(true, Ordering::Release);
            (seen.1, mtime)
        };
        let _done = RereadDone(&self.rereading);
        let reloaded = self.reload();
        if reloaded.is_ok() && was.is_some() && now.is_none() {
            // Every key now gets a 401. Said once: the next checks find the file still
            // missing, which is no change (a deleted key file went unnoticed; operations
            // review).
            tracing::warn!(
                target: "agw",
                "key file {} was removed: no client keys until it is created again",
                path.display()
            );
        }
        if let Err(e) = reloaded {
            // The keys loaded before keep serving, and the file is not read again until it
            // changes: said once per change (a broken hand edit — a revocation never applied
            // — went unnoticed; sixth review). The error names the file and the position,
            // never its content.
            tracing::warn!(
                target: "agw",
                "key file not reloaded, the keys loaded before stay in use: {e}"
            );
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.1 = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        }
        true
    }

    /// Waits until no re-read of the key file is in progress, at most until `deadline`;
    /// `false` when the deadline passed first.
    async fn wait_for_reread(&self, deadline: tokio::time::Instant) -> bool {
        let done = self.rereading.done.notified();
        tokio::pin!(done);
        // Registered before the flag is read: a re-read ending in between still wakes it.
        done.as_mut().enable();
        if !self.rereading.busy.load(Ordering::Acquire) {
            return true;
        }
        tokio::time::timeout_at(deadline, done).await.is_ok()
    }

    fn current(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn change(
        &self,
        f: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        // Held until the new file is in place; closing it (on return) releases it.
        let _lock = self.path.as_deref().map(lock_for_change).transpose()?;
        // Start from the file, not memory: another process may have changed it.
        self.reload()?;
        let mut records = self.current().records.clone();
        f(&mut records)?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        // Checked before anything is written: a change that breaks the list never reaches disk.
        let index = Index::build(records).map_err(StoreError::Unavailable)?;
        if let Some(path) = &self.path {
            let json = serde_json::to_vec_pretty(&KeyFile {
                keys: index.records.clone(),
            })
            .map_err(|e| StoreError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            replace(path, &json)?;
        }
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(())
    }
}

/// What is wrong with a key file or record, by its position and kind only. serde's own
/// message quotes what it found (`invalid type: string "sk-ant-…"`, `unknown field `…``),
/// and a key file edited by hand may hold a pasted secret (fourteenth review: a provider key
/// reached the log).
pub(crate) fn json_error_without_values(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "not valid JSON",
        Category::Eof => "JSON that ends early",
        Category::Data => {
            "JSON of the wrong shape (a value of the wrong type, or a field missing or unknown)"
        }
        Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// How long a change waits for another process's change to finish. A change holds the lock
/// for a read, a write and an fsync of a small file; one still holding it after this is stuck.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// `path` with `suffix` added to its file name (`keys.json` → `keys.json.lock`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the exclusive lock on `<path>.lock`, waiting at most [`LOCK_WAIT`]; the lock lasts as
/// long as the returned file is open, and ends with its process however that ends.
///
/// The key file itself cannot carry the lock: a change replaces it by rename, so a process
/// waiting on the old file would get its lock on a file nobody reads any more. For the same
/// reason the lock file is never deleted: a process that had it open would lock the deleted
/// inode while the next one created and locked a new file, and both would change at once.
fn lock_for_change(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = sidecar(path, ".lock");
    let file = private_options()
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|source| StoreError::Io {
            path: lock_path.clone(),
            source,
        })?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: lock_path,
                    waited: LOCK_WAIT,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source,
                });
            }
        }
    }
}

/// Replaces the file at `path` by one holding `bytes`: written and synced under a name of its
/// own (`keys.json.tmp.PID.N`), then renamed over it. Called with the change lock held.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    remove_stale_temporaries(path);
    let tmp = sidecar(
        path,
        &format!(
            ".tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ),
    );
    let written = write_private(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    })
}

/// Removes `<path>.tmp.*` files. Only a writer holding the change lock makes one, and the
/// lock ends with its process, so one found while holding the lock was left by a writer that
/// died between writing and renaming. Best effort: one that cannot be removed is left alone
/// (its name is never reused while its process lives).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_owned();
    prefix.push(".tmp.");
    let Some(prefix) = prefix.to_str() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Options for a file readable by its owner only (hashes are not secrets, but names are
/// private).
fn private_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Writes a new private file (never an existing one) and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = private_options().create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl KeyStore for FileKeyStore {
    fn lookup(&self, hash: KeyHash) -> BoxFuture<'_, Result<Option<KeyRecord>, StoreError>> {
        self.refresh_if_changed(false);
        let found = self.current().lookup(&hash);
        if found.is_some() || self.path.is_none() {
            return Box::pin(std::future::ready(Ok(found)));
        }
        // An unknown key may be one created a moment ago: decided on the file as it is now,
        // not as the last check (up to a second ago) found it, and after a re-read another
        // lookup is making (fourteenth review: a burst on a new key got 401s while one of its
        // requests re-read the file). A known key's lookup does neither: no file access but
        // the check once a second.
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + REREAD_WAIT;
            while !self.refresh_if_changed(true) {
                if !self.wait_for_reread(deadline).await {
                    break;
                }
            }
            Ok(self.current().lookup(&hash))
        })
    }

    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let r = self.change(|records| {
            if let Some(i) = records.iter().position(|r| r.name == record.name) {
                if records[i].is_valid_at(record.created) {
                    return Err(StoreError::Exists(record.name.to_string()));
                }
                // The file holds one record per name: the old one goes, and with it the only
                // trace of its hash, so its key is refused as unknown from now on.
                records.remove(i);
            }
            records.push(record);
            Ok(())
        });
        Box::pin(std::future::ready(r))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        let r = self.reload().map(|()| self.current().records.clone());
        Box::pin(std::future::ready(r))
    }

    fn revoke(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        let mut found = false;
        let r = self
            .change(|records| {
                for r in records.iter_mut().filter(|r| *r.name == *name) {
                    r.revoked = true;
                    found = true;
                }
                Ok(())
            })
            .map(|()| found);
        Box::pin(std::future::ready(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("agw-store-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(i: usize) -> KeyRecord {
        KeyRecord {
            name: format!("k{i}").into(),
            team: None,
            hash: format!("{i:064x}"),
            created: 0,
            expires: None,
            revoked: false,
        }
    }

    fn insert(store: &FileKeyStore, r: KeyRecord) -> Result<(), StoreError> {
        store.change(|records| {
            records.push(r);
            Ok(())
        })
    }

    /// Separately opened stores do not share the in-process mutex: only the lock file keeps
    /// their changes apart (as it does between processes).
    #[test]
    fn changes_through_separately_opened_stores_are_all_kept() {
        const N: usize = 8;
        let dir = Scratch::new("threads");
        let path = dir.0.join("keys.json");
        std::thread::scope(|s| {
            for i in 0..N {
                let store = FileKeyStore::open(&path).unwrap();
                s.spawn(move || insert(&store, record(i)).unwrap());
            }
        });
        let names: Vec<_> = FileKeyStore::open(&path)
            .unwrap()
            .current()
            .records
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, (0..N).map(|i| format!("k{i}")).collect::<Vec<_>>());
        assert!(dir.0.join("keys.json.lock").exists(), "the lock file stays");
    }

    #[test]
    fn a_temporary_left_by_a_dead_writer_is_removed_by_the_next_change() {
        let dir = Scratch::new("stale");
        let path = dir.0.join("keys.json");
        let stale = dir.0.join("keys.json.tmp.4194305.0");
        std::fs::write(&stale, b"{\"keys\":[").unwrap();
        let store = FileKeyStore::open(&path).unwrap();
        insert(&store, record(1)).unwrap();
        assert!(!stale.exists());
        let mut left: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["keys.json", "keys.json.lock"]);
    }

    fn lookup(store: &FileKeyStore, r: &KeyRecord) -> Option<KeyRecord> {
        store.current().lookup(&r.key_hash().unwrap())
    }

    /// A revoked or expired name can be issued again (operations review: a developer whose
    /// key leaked could never get a key under the same name); an active one cannot, and the
    /// replaced key stays refused.
    #[test]
    fn a_revoked_or_expired_name_is_issued_again_and_the_old_key_stays_refused() {
        let dir = Scratch::new("reissue");
        let store = FileKeyStore::open(dir.0.join("keys.json")).unwrap();
        let old = KeyRecord {
            name: "frank".into(),
            created: 100,
            ..record(1)
        };
        ready(store.insert(old.clone())).unwrap();
        let new = KeyRecord {
            name: "frank".into(),
            created: 200,
            ..record(2)
        };
        assert!(matches!(
            ready(store.insert(new.clone())),
            Err(StoreError::Exists(n)) if n == "frank"
        ));
        assert!(ready(store.revoke("frank".into())).unwrap());
        ready(store.insert(new.clone())).unwrap();
        assert_eq!(lookup(&store, &new).as_ref(), Some(&new));
        assert_eq!(
            lookup(&store, &old),
            None,
            "the revoked key does not come back"
        );
        let reopened = FileKeyStore::open(dir.0.join("keys.json")).unwrap();
        assert_eq!(reopened.current().records, vec![new.clone()]);

        // Expired at the new record's creation time: replaced too.
        let expiring = KeyRecord {
            name: "grace".into(),
            expires: Some(300),
            ..record(3)
        };
        ready(store.insert(expiring.clone())).unwrap();
        let early = KeyRecord {
            name: "grace".into(),
            created: 299,
            ..record(4)
        };
        assert!(ready(store.insert(early)).is_err(), "not expired yet");
        let late = KeyRecord {
            name: "grace".into(),
            created: 300,
            ..record(5)
        };
        ready(store.insert(late.clone())).unwrap();
        assert_eq!(lookup(&store, &expiring), None);
        assert_eq!(lookup(&store, &late), Some(late));
    }

    /// The file store's futures are ready at once.
    fn ready<T>(mut f: BoxFuture<'_, T>) -> T {
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the file store answers at once"),
        }
    }

    #[test]
    fn a_failed_change_writes_nothing_and_releases_the_lock() {
        let dir = Scratch::new("failed");
        let path = dir.0.join("keys.json");
        let store = FileKeyStore::open(&path).unwrap();
        insert(&store, record(1)).unwrap();
        let before = std::fs::read(&path).unwrap();
        let refused = store.change(|records| {
            records[0].revoked = true;
            Err(StoreError::Exists("k1".into()))
        });
        assert!(refused.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Not caught by `insert` here, but by the check before writing.
        assert!(insert(&store, record(1)).is_err(), "a duplicate name");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        insert(&store, record(2)).unwrap();
    }

    /// Fourteenth review: serde's messages quote what they found, so a secret pasted into the
    /// key file reached the log and `agw keys`' errors. The error names the file, the position
    /// and the kind of problem only.
    #[test]
    fn a_broken_key_file_is_described_without_its_values() {
        let dir = Scratch::new("leak");
        let path = dir.0.join("keys.json");
        let hash = "0".repeat(64);
        for (text, kind) in [
            (
                r#"{"keys": "sk-ant-api03-SECRET"}"#.to_owned(),
                "wrong shape (a value of the wrong type, or a field missing or unknown) at line 1 column 30",
            ),
            (
                format!(
                    r#"{{"keys":[{{"name":"a","hash":"{hash}","created":1,"revoked":"ghp_SECRET"}}]}}"#
                ),
                "wrong shape",
            ),
            (
                format!(r#"{{"keys":[{{"name":"a","hash":"{hash}","created":"AKIASECRET"}}]}}"#),
                "wrong shape",
            ),
            (
                r#"{"keys":[{"name":"sk-ant-SECRET","hash":"SECRET","created":1}]}"#.to_owned(),
                "key 1 of the list",
            ),
            (
                format!(
                    r#"{{"keys":[{{"name":"SECRET","hash":"{hash}","created":1}},{{"name":"SECRET","hash":"{hash}","created":1}}]}}"#
                ),
                "keys 1 and 2 of the list have the same name",
            ),
            (
                "garbage{SECRET".to_owned(),
                "not valid JSON at line 1 column 1",
            ),
            (r#"{"keys": [{"name": "SECRET"#.to_owned(), "ends early"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let e = FileKeyStore::open(&path).unwrap_err().to_string();
            assert!(!e.contains("SECRET"), "{text}: {e}");
            assert!(e.contains(&*path.to_string_lossy()), "{text}: {e}");
            assert!(e.contains(kind), "{text}: {e}");
        }
    }

    /// Fourteenth review: a burst of requests on a key created a moment ago got 401s while
    /// one of them re-read the file, or until the once-a-second check came round. An unknown
    /// key is decided on the file as it is, after a re-read in progress.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_key_waits_for_the_key_file_as_it_is_now() {
        let dir = Scratch::new("fresh");
        let path = dir.0.join("keys.json");
        let store = FileKeyStore::open(&path).unwrap();
        insert(&store, record(1)).unwrap();
        // Checked just now: the next check would not be due for a second.
        let reader = FileKeyStore::open(&path).unwrap();
        assert!(reader.refresh_if_changed(false));
        let fresh = record(2);
        insert(&store, fresh.clone()).unwrap();
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            reader.lookup(fresh.key_hash().unwrap()).await.unwrap(),
            Some(fresh)
        );

        // A re-read in progress (another lookup claimed it): an unknown key waits for it.
        let newer = record(3);
        insert(&store, newer.clone()).unwrap();
        reader.rereading.busy.store(true, Ordering::Release);
        let waiting = tokio::spawn({
            let reader = reader.clone();
            let hash = newer.key_hash().unwrap();
            async move { reader.lookup(hash).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "it waits for the re-read");
        // The re-read the other lookup was making.
        reader.reload().unwrap();
        drop(RereadDone(&reader.rereading));
        assert_eq!(waiting.await.unwrap(), Some(newer));
        // A key that is not in the file is still unknown, without waiting.
        assert_eq!(
            reader.lookup(record(9).key_hash().unwrap()).await.unwrap(),
            None
        );
    }
}
