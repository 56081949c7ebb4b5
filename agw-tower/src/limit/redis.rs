//! The Redis counter store: every replica against one Redis enforces one limit in total.

use super::store::{Acquired, Add, Check, LimitStore, LimitStoreError};
use crate::auth::BoxFuture;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// Checks all counters, then charges all of them: one atomic step in Redis.
/// ARGV holds (limit, add, ttl) per key. Returns {1, values...} or {0, index, current}.
const ACQUIRE: &str = r"
local vals = {}
for i = 1, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local limit = tonumber(ARGV[3 * i - 2])
  local add = tonumber(ARGV[3 * i - 1])
  if cur >= limit or (cur > 0 and cur + add > limit) then
    return {0, i - 1, cur}
  end
  vals[i] = cur
end
local out = {1}
for i = 1, #KEYS do
  local add = tonumber(ARGV[3 * i - 1])
  if add > 0 then
    vals[i] = redis.call('INCRBY', KEYS[i], add)
    if redis.call('TTL', KEYS[i]) < 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[3 * i])
    end
  end
  out[i + 1] = vals[i]
end
return out
";

/// ARGV holds (delta, ttl) per key; counters never go below zero.
const ADD: &str = r"
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  if v < 0 then
    redis.call('SET', KEYS[i], 0, 'KEEPTTL')
  end
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
  end
end
return 1
";

/// Connects to Redis (`redis://host:port/db`), failing after `timeout`; the connection
/// reconnects by itself afterwards, and every operation times out after `timeout`.
///
/// # Errors
///
/// A bad URL, or no connection within `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager, LimitStoreError> {
    let client = redis::Client::open(url).map_err(|e| LimitStoreError(e.to_string()))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout)
        .set_number_of_retries(1)
        .set_max_delay(1000);
    tokio::time::timeout(
        timeout * 4,
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| LimitStoreError(format!("redis: no connection within {:?}", timeout * 4)))?
    .map_err(|e| LimitStoreError(format!("redis: {e}")))
}

/// Counters in Redis, updated by Lua scripts (one round trip per operation). Counters are
/// plain integer keys under the limiter's prefix and expire with their window; day and month
/// totals persist for a week and a year. Not for Redis Cluster (a script touches keys of
/// several scopes).
#[derive(Clone)]
pub struct RedisStore {
    con: ConnectionManager,
    acquire: redis::Script,
    add: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store over a connection from [`connect`](super::redis_connect).
    pub fn new(con: ConnectionManager) -> Self {
        Self {
            con,
            acquire: redis::Script::new(ACQUIRE),
            add: redis::Script::new(ADD),
        }
    }

    /// The connection (to share with [`RedisKeyStore`](crate::auth::RedisKeyStore)).
    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }
}

fn err(e: redis::RedisError) -> LimitStoreError {
    LimitStoreError(format!("redis: {e}"))
}

impl LimitStore for RedisStore {
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
        let mut con = self.con.clone();
        Box::pin(async move {
            let mut inv = self.acquire.prepare_invoke();
            for c in &checks {
                inv.key(&c.key).arg(c.limit).arg(c.add).arg(c.ttl);
            }
            let out: Vec<i64> = inv.invoke_async(&mut con).await.map_err(err)?;
            match out.as_slice() {
                [1, values @ ..] if values.len() == checks.len() => Ok(Acquired::Admitted(
                    values.iter().map(|&v| v.max(0) as u64).collect(),
                )),
                [0, index, current] if (*index as usize) < checks.len() => Ok(Acquired::Refused {
                    index: *index as usize,
                    current: (*current).max(0) as u64,
                }),
                _ => Err(LimitStoreError("redis: unexpected script answer".into())),
            }
        })
    }

    fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        let mut con = self.con.clone();
        Box::pin(async move {
            let mut inv = self.add.prepare_invoke();
            for a in &adds {
                inv.key(&a.key).arg(a.delta).arg(a.ttl);
            }
            let _: i64 = inv.invoke_async(&mut con).await.map_err(err)?;
            Ok(())
        })
    }

    fn get(&self, keys: Vec<String>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
        let mut con = self.con.clone();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let v: Vec<Option<i64>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut con)
                .await
                .map_err(err)?;
            Ok(v.into_iter()
                .map(|v| v.unwrap_or(0).max(0) as u64)
                .collect())
        })
    }
}
