//! Keys in Redis: a key created on one replica works on all.

use super::key::{KeyHash, KeyRecord};
use super::store::{BoxFuture, KeyStore, StoreError};
use crate::limit::RedisConnection;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Adds a record if the name still maps to what the caller found (`ARGV[2]`: the old hash, or
/// empty for none), removing the old record: KEYS = names hash, new record key, old record key
/// (the new one again when there is none); ARGV = name, old hex, new hex, json. Returns 0 when
/// the name changed meanwhile.
const INSERT: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
if cur then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
return 1
";

/// How often `insert` looks again when the name changed between its read and its write.
const INSERT_ATTEMPTS: usize = 3;

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

    /// Runs `op` on the connection within the store's timeout, retried once if the
    /// connection was lost ([`RedisConnection::retrying`]).
    async fn timed<T, F>(
        &self,
        op: impl FnMut(redis::aio::ConnectionManager) -> F,
    ) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let con = self
            .con
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let r = match tokio::time::timeout(self.timeout, RedisConnection::retrying(&con, op)).await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                "redis: {}",
                crate::limit::describe_redis_error(&e)
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis: no answer within {:?}",
                self.timeout
            ))),
        };
        self.con.outcome(&r);
        r
    }

    /// The record stored under a key's hash (hex), if there is one.
    async fn record(&self, hex: &str) -> Result<Option<KeyRecord>, StoreError> {
        let key = self.record_key(hex);
        let json: Option<String> = self
            .timed(|mut con| {
                let key = key.clone();
                async move { con.get(key).await }
            })
            .await?;
        Self::parse(json)
    }

    fn parse(json: Option<String>) -> Result<Option<KeyRecord>, StoreError> {
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| {
                StoreError::Unavailable(format!(
                    "redis: corrupt key record: {}",
                    super::store::json_error_without_values(&e)
                ))
            })
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
            let key = self.record_key(&hash.to_hex());
            let fetched = self
                .timed(|mut con| {
                    let key = key.clone();
                    async move { con.get::<_, Option<String>>(key).await }
                })
                .await;
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
            let json = serde_json::to_string(&record)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let script = redis::Script::new(INSERT);
            for _ in 0..INSERT_ATTEMPTS {
                let names = self.names_key();
                let name = record.name.to_string();
                let old: Option<String> = self
                    .timed(|mut con| {
                        let (names, name) = (names.clone(), name.clone());
                        async move { con.hget(names, name).await }
                    })
                    .await?;
                if let Some(hex) = &old {
                    // A name whose record is gone (a hand edit) is free to take.
                    if self
                        .record(hex)
                        .await?
                        .is_some_and(|r| r.is_valid_at(record.created))
                    {
                        return Err(StoreError::Exists(record.name.to_string()));
                    }
                }
                let new_key = self.record_key(&record.hash);
                let old_key = old
                    .as_deref()
                    .map_or_else(|| new_key.clone(), |h| self.record_key(h));
                let added: i64 = self
                    .timed(|mut con| {
                        let mut inv = script.prepare_invoke();
                        inv.key(&names)
                            .key(&new_key)
                            .key(&old_key)
                            .arg(&name)
                            .arg(old.as_deref().unwrap_or(""))
                            .arg(&record.hash)
                            .arg(&json);
                        async move { inv.invoke_async(&mut con).await }
                    })
                    .await?;
                if added == 1 {
                    // This replica's cache may hold the replaced record: it stays refused
                    // (revoked or expired) until the cache entry ends, then is unknown.
                    return Ok(());
                }
            }
            Err(StoreError::Unavailable(format!(
                "redis: the key `{}` changed {INSERT_ATTEMPTS} times while it was being created",
                record.name
            )))
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>, StoreError>> {
        Box::pin(async move {
            let names_key = self.names_key();
            let names: HashMap<String, String> = self
                .timed(|mut con| {
                    let names_key = names_key.clone();
                    async move { con.hgetall(names_key).await }
                })
                .await?;
            let mut out = Vec::with_capacity(names.len());
            for hex in names.values() {
                if let Some(r) = self.record(hex).await? {
                    out.push(r);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn revoke(&self, name: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let names_key = self.names_key();
            let hex: Option<String> = self
                .timed(|mut con| {
                    let (names_key, name) = (names_key.clone(), name.clone());
                    async move { con.hget(names_key, name).await }
                })
                .await?;
            let Some(hex) = hex else { return Ok(false) };
            let key = self.record_key(&hex);
            let Some(mut rec) = self.record(&hex).await? else {
                return Ok(false);
            };
            rec.revoked = true;
            let json =
                serde_json::to_string(&rec).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let () = self
                .timed(|mut con| {
                    let (key, json) = (key.clone(), json.clone());
                    async move { con.set(key, json).await }
                })
                .await?;
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
