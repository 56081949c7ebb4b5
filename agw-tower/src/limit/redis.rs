//! The Redis counter store: every replica against one Redis enforces one limit in total.

use super::store::{Acquired, Add, Check, LimitStore, LimitStoreError};
use crate::auth::BoxFuture;
use redis::aio::ConnectionManager;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Acquires for a batch of requests, one after another, in one atomic step. For each request:
/// check all its counters, then charge all of them. ARGV: the number of requests, then per
/// request the number of its keys and (limit, add, ttl) per key. Returns, per request,
/// `1, values...` (admitted) or `0, index, current` (refused, nothing charged).
const ACQUIRE: &str = r"
local out = {}
local k = 0
local a = 2
for _ = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local vals = {}
  local refused = false
  for i = 1, n do
    local cur = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    local limit = tonumber(ARGV[a + 3 * i - 3])
    local add = tonumber(ARGV[a + 3 * i - 2])
    if cur >= limit or (cur > 0 and cur + add > limit) then
      out[#out + 1] = 0
      out[#out + 1] = i - 1
      out[#out + 1] = cur
      refused = true
      break
    end
    vals[i] = cur
  end
  if not refused then
    out[#out + 1] = 1
    for i = 1, n do
      local add = tonumber(ARGV[a + 3 * i - 2])
      if add > 0 then
        vals[i] = redis.call('INCRBY', KEYS[k + i], add)
        if vals[i] == add then
          redis.call('EXPIRE', KEYS[k + i], ARGV[a + 3 * i - 1])
        end
      end
      out[#out + 1] = vals[i]
    end
  end
  k = k + n
  a = a + 3 * n
end
return out
";

/// The most requests acquired in one script run (a long script holds Redis up).
const BATCH: usize = 128;

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
///
/// Acquires are batched as a group commit: a request that finds no acquire in flight runs
/// its own at once (an idle gateway waits for nothing), and the requests that arrive while
/// one is in flight go together in the next script run, so under load one round trip and one
/// script admit many requests, in arrival order.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    con: ConnectionManager,
    acquire: redis::Script,
    add: redis::Script,
    queue: Mutex<Queue>,
}

type Reply = oneshot::Sender<Result<Acquired, LimitStoreError>>;

/// Acquires waiting for the one in flight.
#[derive(Default)]
struct Queue {
    /// An acquire is in flight; a new one waits here.
    busy: bool,
    waiting: Vec<(Vec<Check>, Reply)>,
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
            inner: Arc::new(Inner {
                con,
                acquire: redis::Script::new(ACQUIRE),
                add: redis::Script::new(ADD),
                queue: Mutex::default(),
            }),
        }
    }

    /// The connection (to share with [`RedisKeyStore`](crate::auth::RedisKeyStore)).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.con.clone()
    }
}

fn err(e: redis::RedisError) -> LimitStoreError {
    LimitStoreError(format!("redis: {e}"))
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One script run acquiring for every request of `batch`, in order.
    async fn acquire<'a>(
        &self,
        batch: impl ExactSizeIterator<Item = &'a [Check]> + Clone,
    ) -> Result<Vec<Acquired>, LimitStoreError> {
        let mut inv = self.acquire.prepare_invoke();
        inv.arg(batch.len());
        for checks in batch.clone() {
            inv.arg(checks.len());
            for c in checks {
                inv.key(&c.key).arg(c.limit).arg(c.add).arg(c.ttl);
            }
        }
        let out: Vec<i64> = inv.invoke_async(&mut self.con.clone()).await.map_err(err)?;
        let bad = || LimitStoreError("redis: unexpected script answer".into());
        let mut out = out.into_iter();
        let mut next = || out.next().ok_or_else(bad);
        let mut acquired = Vec::with_capacity(batch.len());
        for checks in batch {
            acquired.push(match next()? {
                1 => Acquired::Admitted(
                    (0..checks.len())
                        .map(|_| next().map(|v| v.max(0) as u64))
                        .collect::<Result<_, _>>()?,
                ),
                0 => {
                    let index = usize::try_from(next()?).map_err(|_| bad())?;
                    let current = next()?.max(0) as u64;
                    if index >= checks.len() {
                        return Err(bad());
                    }
                    Acquired::Refused { index, current }
                }
                _ => return Err(bad()),
            });
        }
        Ok(acquired)
    }

    /// The acquire in flight has ended: the requests that queued meanwhile go next, on a task
    /// of their own, in batches until none waits.
    fn hand_on(self: &Arc<Self>) {
        let mut q = self.queue();
        if q.waiting.is_empty() {
            q.busy = false;
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to run them on (it is shutting down): nobody is left to wait.
            q.busy = false;
            q.waiting.clear();
            return;
        };
        drop(q);
        let inner = self.clone();
        rt.spawn(async move {
            let mut batch = Vec::new();
            loop {
                {
                    let mut q = inner.queue();
                    // A request that stopped waiting (its timeout passed) is not charged.
                    q.waiting.retain(|(_, reply)| !reply.is_closed());
                    if q.waiting.is_empty() {
                        q.busy = false;
                        return;
                    }
                    let n = q.waiting.len().min(BATCH);
                    batch.extend(q.waiting.drain(..n));
                }
                let result = inner
                    .acquire(batch.iter().map(|(checks, _)| checks.as_slice()))
                    .await;
                match result {
                    Ok(acquired) => {
                        for ((_, reply), a) in batch.drain(..).zip(acquired) {
                            let _ = reply.send(Ok(a));
                        }
                    }
                    Err(e) => {
                        for (_, reply) in batch.drain(..) {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
    }
}

/// The acquire in flight; dropped when it ends (or its caller stops waiting), handing on.
struct InFlight<'a>(&'a Arc<Inner>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.hand_on();
    }
}

impl LimitStore for RedisStore {
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
        Box::pin(async move {
            let waiting = {
                let mut q = self.inner.queue();
                if q.busy {
                    let (tx, rx) = oneshot::channel();
                    q.waiting.push((checks, tx));
                    Err(rx)
                } else {
                    q.busy = true;
                    Ok(checks)
                }
            };
            match waiting {
                Ok(checks) => {
                    let _in_flight = InFlight(&self.inner);
                    let mut acquired = self.inner.acquire(std::iter::once(&checks[..])).await?;
                    acquired
                        .pop()
                        .ok_or_else(|| LimitStoreError("redis: unexpected script answer".into()))
                }
                Err(rx) => rx
                    .await
                    .unwrap_or_else(|_| Err(LimitStoreError("redis: acquire abandoned".into()))),
            }
        })
    }

    fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        let mut con = self.inner.con.clone();
        Box::pin(async move {
            let mut inv = self.inner.add.prepare_invoke();
            for a in &adds {
                inv.key(&a.key).arg(a.delta).arg(a.ttl);
            }
            let _: i64 = inv.invoke_async(&mut con).await.map_err(err)?;
            Ok(())
        })
    }

    fn get(&self, keys: Vec<String>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
        let mut con = self.inner.con.clone();
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
