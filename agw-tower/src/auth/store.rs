//! Where client keys live: the [`KeyStore`] trait and the file store.

use super::key::{KeyHash, KeyRecord};
use crate::hash::FastState;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};

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
    /// A key with this name exists already.
    #[error("a key named `{0}` exists already")]
    Exists(String),
    /// The backing service failed or timed out.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

/// Keys by hash. Implementations compare hashes in constant time and never see a key.
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
    /// The record whose hash is `hash`, valid or not.
    fn lookup(&self, hash: KeyHash) -> BoxFuture<'_, Result<Option<KeyRecord>, StoreError>>;
    /// Adds a record; its name must be new.
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
        let mut names = std::collections::HashSet::new();
        for r in &records {
            let h = r
                .key_hash()
                .ok_or_else(|| format!("key `{}`: `hash` is not 64 hex digits", r.name))?;
            if !names.insert(r.name.clone()) {
                return Err(format!("duplicate key name `{}`", r.name));
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
/// file and rename) on every change. A lookup notices a changed file (its modification time,
/// checked at most once a second) and re-reads it, so keys created or revoked by `agw keys`
/// take effect in a running agw within about a second; [`FileKeyStore::reload`] re-reads at
/// once. Without a path it is an in-memory store (tests, one-off runs).
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: Option<PathBuf>,
    index: Arc<RwLock<Arc<Index>>>,
    /// Serialises writers so two changes never race on the file.
    write: Arc<std::sync::Mutex<()>>,
    /// When the file was last checked, and its modification time then.
    seen: Arc<std::sync::Mutex<(Option<std::time::Instant>, Option<std::time::SystemTime>)>>,
}

impl FileKeyStore {
    /// An empty store in memory only.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            index: Arc::default(),
            write: Arc::default(),
            seen: Arc::default(),
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
                        message: e.to_string(),
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

    /// Re-reads the file if it changed, checking at most once a second. A file that became
    /// unreadable keeps the last good keys.
    fn refresh_if_changed(&self) {
        let Some(path) = &self.path else { return };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .0
                .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
            {
                return;
            }
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            seen.0 = Some(std::time::Instant::now());
            if mtime == seen.1 {
                return;
            }
        }
        let _ = self.reload();
    }

    fn current(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn change(
        &self,
        f: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        // Start from the file, not memory: another process may have changed it.
        self.reload()?;
        let mut records = self.current().records.clone();
        f(&mut records)?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(path) = &self.path {
            let io = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            let json = serde_json::to_vec_pretty(&KeyFile {
                keys: records.clone(),
            })
            .map_err(|e| io(std::io::Error::other(e)))?;
            let tmp = path.with_extension("tmp");
            write_private(&tmp, &json).map_err(io)?;
            std::fs::rename(&tmp, path).map_err(io)?;
        }
        let index = Index::build(records).map_err(StoreError::Unavailable)?;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(())
    }
}

/// Writes a file readable by its owner only (hashes are not secrets, but names are private).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl KeyStore for FileKeyStore {
    fn lookup(&self, hash: KeyHash) -> BoxFuture<'_, Result<Option<KeyRecord>, StoreError>> {
        self.refresh_if_changed();
        let found = self.current().lookup(&hash);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        let r = self.change(|records| {
            if records.iter().any(|r| r.name == record.name) {
                return Err(StoreError::Exists(record.name.to_string()));
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
