//! Keys in Redis: a key created on one replica works on all.

use super::key::{KeyHash, KeyRecord};
use super::store::{BoxFuture, KeyStore, StoreError};
use crate::limit::RedisConnection;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Adds a record unless its name exists: KEYS = names hash, record key; ARGV = name, hex, json.
const INSERT: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1
";

/// Key records in Redis: `{prefix}:key:{sha256 hex}` holds a record's JSON, the hash
/// `{prefix}:keys` maps names to hashes. Lookups are cached in memory for `cache_ttl`
/// (default 5 s), so a revocation reaches every replica within that time; the cache holds at
/// most 10 000 entries. While Redis does not answer, a key looked up within the last hour
/// (`stale_ttl`) keeps its last answer, so an outage does not lock out every developer.
pub struct RedisKeyStore {
    con: RedisConnection,
    prefix: String,
    timeout: Duration,
    cache_ttl: Duration,
    stale_ttl: Duration,
    cache: Mutex<HashMap<KeyHash, (Option<KeyRecord>, Instant)>>,
}

impl std::fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

const CACHE_MAX: usize = 10_000;

/// How long the last answer Redis gave for a key stands while Redis does not answer.
pub const STALE_TTL: Duration = Duration::from_secs(3600);

impl RedisKeyStore {
    /// A store under `prefix` (e.g. `agw`) whose operations time out after `timeout`.
    pub fn new(con: RedisConnection, prefix: impl Into<String>, timeout: Duration) -> Self {
        Self {
            con,
            prefix: prefix.into(),
            timeout,
            cache_ttl: Duration::from_secs(5),
            stale_ttl: STALE_TTL,
            cache: Mutex::default(),
        }
    }

    /// How long a lookup is cached (0: never).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long a cached lookup still answers while Redis does not ([`STALE_TTL`] by
    /// default; 0: never, every lookup then fails with Redis).
    pub fn stale_ttl(mut self, ttl: Duration) -> Self {
        self.stale_ttl = ttl;
        self
    }

    fn record_key(&self, hex: &str) -> String {
        format!("{}:key:{hex}", self.prefix)
    }

    fn names_key(&self) -> String {
        format!("{}:keys", self.prefix)
    }

    fn connection(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        self.con
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let r = match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("redis: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis: no answer within {:?}",
                self.timeout
            ))),
        };
        self.con.outcome(&r);
        r
    }

    fn parse(json: Option<String>) -> Result<Option<KeyRecord>, StoreError> {
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| StoreError::Unavailable(format!("redis: corrupt key record: {e}")))
        })
        .transpose()
    }
}

impl KeyStore for RedisKeyStore {
    fn lookup(&self, hash: KeyHash) -> BoxFuture<'_, Result<Option<KeyRecord>, StoreError>> {
        Box::pin(async move {
            if let Some((rec, at)) = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&hash)
                && at.elapsed() < self.cache_ttl
            {
                return Ok(rec.clone());
            }
            let fetched = match self.connection() {
                Ok(mut con) => {
                    let key = self.record_key(&hash.to_hex());
                    self.timed(con.get::<_, Option<String>>(key)).await
                }
                Err(e) => Err(e),
            };
            let json = match fetched {
                Ok(json) => json,
                // Redis is down: the last answer it gave stands for a while (a revocation
                // made meanwhile waits for Redis to return, as it would anyway).
                Err(e) => {
                    let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    return match cache.get(&hash) {
                        Some((rec, at)) if at.elapsed() < self.stale_ttl => Ok(rec.clone()),
                        _ => Err(e),
                    };
                }
            };
            let rec = Self::parse(json)?;
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (rec.clone(), Instant::now()));
            Ok(rec)
        })
    }

    fn insert(&self, record: KeyRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut con = self.connection()?;
            let json = serde_json::to_string(&record)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let script = redis::Script::new(INSERT);
            let mut inv = script.prepare_invoke();
            inv.key(self.names_key())
                .key(self.record_key(&record.hash))
                .arg(&*record.name)
                .arg(&record.hash)
                .arg(json);
            let added: i64 = self.timed(inv.invoke_async(&mut con)).await?;
            if added == 0 {
                return Err(StoreError::Exists(record.name.to_string()));
            }
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        Box::pin(async move {
            let mut con = self.connection()?;
            let names: HashMap<String, String> = self.timed(con.hgetall(self.names_key())).await?;
            let mut out = Vec::with_capacity(names.len());
            for hex in names.values() {
                let json: Option<String> = self.timed(con.get(self.record_key(hex))).await?;
                if let Some(r) = Self::parse(json)? {
                    out.push(r);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn revoke(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut con = self.connection()?;
            let hex: Option<String> = self.timed(con.hget(self.names_key(), &name)).await?;
            let Some(hex) = hex else { return Ok(false) };
            let key = self.record_key(&hex);
            let json: Option<String> = self.timed(con.get(&key)).await?;
            let Some(mut rec) = Self::parse(json)? else {
                return Ok(false);
            };
            rec.revoked = true;
            let json =
                serde_json::to_string(&rec).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let () = self.timed(con.set(&key, json)).await?;
            if let Some(h) = KeyHash::from_hex(&hex) {
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&h);
            }
            Ok(true)
        })
    }
}
