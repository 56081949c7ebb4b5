//! The Redis counter store: every replica against one Redis enforces one limit in total.

use super::lease::{Ask, Leases, Plan, Remote};
use super::limiter::MAX_AMOUNT;
use super::store::{Acquired, Add, Check, CounterKey, LimitStore, LimitStoreError};
use crate::auth::BoxFuture;
use redis::aio::ConnectionManager;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::oneshot;

/// One atomic step: first the adds (settlements), then the acquires of a batch of requests,
/// one after another (each checks all its counters, then charges all of them).
///
/// KEYS: the adds' counters, then every request's counters, in order. ARGV: the number of
/// adds and (delta, ttl) per add (a counter never goes below zero); then the number of
/// requests and, per request, the number of its counters and (limit, add, want, ttl) per
/// counter. `want` asks for a grant charged beyond `add` for the replica's next requests
/// ([`lease`](super::lease)): at most `want`, and at most a sixteenth of the room the limit
/// leaves after `add`. The last argument is a deadline (Unix milliseconds, 0: none): requests
/// that Redis reaches after it (a stall outlasting [`answer_wait`], whose callers gave up long
/// before) are charged nothing. Returns, per request, `1` and (value, grant) per counter
/// (admitted), `0, index, current` (refused, nothing charged) or `2` (past the deadline,
/// nothing charged).
const STEP: &str = r"
local deadline = tonumber(ARGV[#ARGV])
local t = redis.call('TIME')
local expired = deadline > 0 and tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline
local nadd = tonumber(ARGV[1])
for i = 1, nadd do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2 * i])
  if v < 0 then
    redis.call('SET', KEYS[i], 0, 'KEEPTTL')
  end
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
end
local out = {}
local k = nadd
local a = 2 * nadd + 3
for _ = 1, tonumber(ARGV[2 * nadd + 2]) do
  local n = tonumber(ARGV[a])
  a = a + 1
  local vals = {}
  local refused = false
  if expired then
    out[#out + 1] = 2
    refused = true
  end
  for i = 1, (expired and 0 or n) do
    local cur = tonumber(redis.call('GET', KEYS[k + i]) or '0')
    local limit = tonumber(ARGV[a + 4 * i - 4])
    local add = tonumber(ARGV[a + 4 * i - 3])
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
      local limit = tonumber(ARGV[a + 4 * i - 4])
      local add = tonumber(ARGV[a + 4 * i - 3])
      local want = tonumber(ARGV[a + 4 * i - 2])
      local grant = 0
      local room = limit - vals[i] - add
      if want > 0 and room >= 16 then
        grant = math.min(want, math.floor(room / 16))
      end
      local charge = add + grant
      if charge > 0 then
        vals[i] = redis.call('INCRBY', KEYS[k + i], charge)
        if vals[i] == charge then
          redis.call('EXPIRE', KEYS[k + i], ARGV[a + 4 * i - 1])
        end
      end
      out[#out + 1] = vals[i]
      out[#out + 1] = grant
    end
  end
  k = k + n
  a = a + 4 * n
end
return out
";

/// A timeout that comes back faster than this did not wait for Redis: see
/// [`RedisConnection::retrying`].
const STALE: Duration = Duration::from_millis(5);

/// The most requests acquired in one script run (a long script holds Redis up).
const BATCH: usize = 128;

/// One connection attempt per (re)connection, without the manager's own pauses: the attempt
/// after a failed one is made by the next command ([`RedisConnection::retrying`]) or by the
/// background loop of [`RedisConnection::open`], so no request waits out a back-off, and a
/// refusal such as a wrong password comes back at once instead of after the retries.
///
/// An answer is awaited longer than any caller waits ([`answer_wait`]): callers bound their
/// operations by `timeout` themselves, and an admission that Redis runs after its caller gave
/// up must still be answered, so that what it charged can be given back
/// ([`Inner::late`]).
fn manager_config(timeout: Duration) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(timeout)
        // Past the admissions' deadline, for the answer of one Redis ran just before it.
        .set_response_timeout(answer_wait(timeout) + DEADLINE_MARGIN)
        .set_number_of_retries(0)
}

/// This host's clock, in Unix milliseconds.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How much longer than an admission's deadline its answer is awaited (clocks of the two
/// hosts may differ by about this much before a late admission is charged and kept).
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// How long an operation's answer is awaited on the connection: fifty times the callers'
/// timeout, 5 to 60 s (a stall of Redis, a fork for a snapshot, a slow script). A connection
/// that answers nothing in that time is given up and made again.
fn answer_wait(timeout: Duration) -> Duration {
    (timeout * 50).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// A Redis error in one line, without the `redis:` prefix. An authentication failure says so
/// in words (redis-rs keeps none of the server's text for it); nothing here prints the URL or
/// its password.
pub(crate) fn describe(e: &redis::RedisError) -> String {
    match e.kind() {
        redis::ErrorKind::AuthenticationFailed => {
            "authentication failed (the server refused the user or password of redis.url)".into()
        }
        _ => e.to_string(),
    }
}

/// Whether `e` says the connection was lost, or a reconnection made after a loss failed: the
/// manager then starts a new connection, which a second try of the command waits for. A
/// timeout is not retried (the request's time is spent).
fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() && !e.is_timeout()
}

/// The schemes redis-rs connects with.
const SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

/// What is wrong with the query of a Redis URL, if anything: the client reads `protocol`
/// (`resp2`, `resp3`, `2`, `3`), and `db` on a Unix socket's URL, and ignores any other
/// parameter, which is then surely a mistake. Said without the values, and without a name
/// that is not a plain word (red-team rt4: a mangled URL's cause printed the value, a second
/// URL with its password).
fn query_problem(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let unix = url.split_once("://").is_some_and(|(s, _)| {
        s.eq_ignore_ascii_case("unix") || s.eq_ignore_ascii_case("redis+unix")
    });
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "protocol" if ["2", "3", "resp2", "resp3"].contains(&value) => {}
            "protocol" => return Some("the query's `protocol` is not resp2 or resp3".into()),
            "db" if unix => {}
            _ => {
                let plain = !name.is_empty()
                    && name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                return Some(if plain {
                    format!("the query parameter `{name}` is not one agw's Redis client reads")
                } else {
                    "the query has a parameter agw's Redis client does not read".into()
                });
            }
        }
    }
    None
}

/// A connection to Redis shared by the key store and the limit store: made in the background,
/// so that agw starts (and reports not ready) while Redis is down, and reconnecting by itself
/// once made. It also watches outages: the first failed operation logs a warning, a long
/// outage one line a minute, and the first success after failures says when Redis came back.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Connection>,
}

struct Connection {
    con: std::sync::OnceLock<ConnectionManager>,
    /// [`answer_wait`] of the operations' timeout: admissions Redis runs later are void.
    answer_wait: Duration,
    /// Redis's clock minus this host's, in milliseconds, read when the connection was made:
    /// admissions' deadlines are set in Redis's time, so hosts whose clocks disagree by more
    /// than the wait do not void every admission.
    clock_offset_ms: std::sync::atomic::AtomicI64,
    /// Why the last attempt at the first connection failed, and whether trying again cannot
    /// help (the server refused the credentials): for [`RedisConnection::wait`]'s error.
    refusal: Mutex<Option<(String, bool)>>,
    /// Where the connection goes (user-info redacted), for log lines.
    shown: String,
    /// Set while operations fail: the hot path reads only this.
    failing: std::sync::atomic::AtomicBool,
    outage: Mutex<Outage>,
}

#[derive(Default)]
struct Outage {
    since: Option<std::time::Instant>,
    failures: u64,
    logged: Option<std::time::Instant>,
}

/// How often a long outage is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);

/// `redis HOST:PORT` (never the password).
impl std::fmt::Display for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.shown)
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("url", &self.inner.shown)
            .field("connected", &self.inner.con.get().is_some())
            .finish()
    }
}

impl RedisConnection {
    /// Checks `url` as [`RedisConnection::open`] does, without connecting: a configuration
    /// check.
    ///
    /// # Errors
    ///
    /// As [`RedisConnection::open`].
    pub fn check_url(url: &str) -> Result<(), LimitStoreError> {
        Self::client(url, None).map(drop)
    }

    /// [`RedisConnection::check_url`] for a `rediss://` URL whose server certificate is checked
    /// against the CAs of the PEM bundle `ca` instead of the bundled Mozilla roots.
    ///
    /// # Errors
    ///
    /// As [`RedisConnection::open`]; a `ca` that holds no certificate, or a URL that is not
    /// `rediss://`.
    pub fn check_url_with_ca(url: &str, ca: &[u8]) -> Result<(), LimitStoreError> {
        Self::client(url, Some(ca)).map(drop)
    }

    /// The client for `url`, which is read but not connected to; `rediss://` checks the
    /// server's certificate against `ca` (PEM) when given, else the bundled Mozilla roots.
    fn client(url: &str, ca: Option<&[u8]>) -> Result<redis::Client, LimitStoreError> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !scheme.is_some_and(|s| SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(s))) {
            return Err(LimitStoreError(format!(
                "`{}` is not a redis:// or rediss:// URL",
                agw_core::provider::shown_url(url)
            )));
        }
        if let Some(why) = query_problem(url) {
            return Err(LimitStoreError(format!(
                "`{}` is not a valid Redis URL ({why}; the form is \
                 redis://[user:password@]host:port[/db][?protocol=resp3])",
                agw_core::provider::shown_url(url)
            )));
        }
        let invalid = |e: redis::RedisError| {
            LimitStoreError(format!(
                "`{}` is not a valid Redis URL ({}; the form is redis://[user:password@]host:port[/db])",
                agw_core::provider::shown_url(url),
                e.detail().unwrap_or("does not parse")
            ))
        };
        let Some(ca) = ca else {
            return redis::Client::open(url).map_err(invalid);
        };
        if !scheme.is_some_and(|s| s.eq_ignore_ascii_case("rediss")) {
            return Err(LimitStoreError(format!(
                "a CA file is for a TLS connection, and `{}` is no rediss:// URL",
                agw_core::provider::shown_url(url)
            )));
        }
        if !ca.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(LimitStoreError(
                "the CA file holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
            ));
        }
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(invalid)?;
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        };
        redis::Client::build_with_tls(info, certs).map_err(|e| {
            LimitStoreError(format!(
                "the CA file cannot be used: {}",
                e.detail().unwrap_or("its certificates do not parse")
            ))
        })
    }

    /// Checks `url` (`redis://host:port/db`) and starts connecting in the background, retrying
    /// with a growing pause (up to 5 s) until Redis answers; operations time out after
    /// `timeout`. Needs a tokio runtime.
    ///
    /// # Errors
    ///
    /// A URL that is not a Redis URL (the message shows it without its password).
    pub fn open(url: &str, timeout: Duration) -> Result<Self, LimitStoreError> {
        Self::open_client(Self::client(url, None)?, timeout)
    }

    /// [`RedisConnection::open`] for a `rediss://` URL whose server certificate is checked
    /// against the CAs of the PEM bundle `ca` (a private CA) instead of the bundled Mozilla
    /// roots.
    ///
    /// # Errors
    ///
    /// As [`RedisConnection::check_url_with_ca`].
    pub fn open_with_ca(url: &str, ca: &[u8], timeout: Duration) -> Result<Self, LimitStoreError> {
        Self::open_client(Self::client(url, Some(ca))?, timeout)
    }

    fn open_client(client: redis::Client, timeout: Duration) -> Result<Self, LimitStoreError> {
        let info = &client.get_connection_info().addr;
        let this = Self {
            inner: Arc::new(Connection {
                con: std::sync::OnceLock::new(),
                answer_wait: answer_wait(timeout),
                clock_offset_ms: Default::default(),
                refusal: Mutex::default(),
                shown: format!("redis {info}"),
                failing: Default::default(),
                outage: Mutex::default(),
            }),
        };
        let weak = Arc::downgrade(&this.inner);
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                let attempt = tokio::time::timeout(
                    timeout * 4,
                    client.get_connection_manager_with_config(manager_config(timeout)),
                )
                .await;
                let Some(inner) = weak.upgrade() else { return };
                let failure = match attempt {
                    Ok(Ok(con)) => {
                        let (mut probe, cmd) = (con.clone(), redis::cmd("TIME"));
                        let time = cmd.query_async::<(i64, i64)>(&mut probe);
                        if let Ok(Ok((secs, micros))) =
                            tokio::time::timeout(timeout * 4, time).await
                        {
                            let ours = unix_millis() as i64;
                            inner.clock_offset_ms.store(
                                secs * 1000 + micros / 1000 - ours,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                        }
                        let _ = inner.con.set(con);
                        inner.outcome(None);
                        return;
                    }
                    Ok(Err(e)) => {
                        let why = describe(&e);
                        let fatal = e.kind() == redis::ErrorKind::AuthenticationFailed;
                        *inner.refusal.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((why.clone(), fatal));
                        format!("redis: {why}")
                    }
                    Err(_) => format!("redis: no connection within {:?}", timeout * 4),
                };
                inner.outcome(Some(&failure));
                drop(inner);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
        Ok(this)
    }

    /// Opens `url` and waits until Redis answers, failing after four times `timeout`: for
    /// commands that need Redis now (`agw keys`).
    ///
    /// # Errors
    ///
    /// A bad URL, or no connection in time.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, LimitStoreError> {
        let this = Self::open(url, timeout)?;
        this.wait(timeout * 4).await?;
        Ok(this)
    }

    /// Waits up to `within` for the first connection.
    ///
    /// # Errors
    ///
    /// No connection within `within` (with the last attempt's error), or at once when the
    /// server refused the credentials (`redis HOST:PORT: authentication failed (…)`).
    pub async fn wait(&self, within: Duration) -> Result<(), LimitStoreError> {
        let deadline = tokio::time::Instant::now() + within;
        while self.inner.con.get().is_none() {
            let refusal = self
                .inner
                .refusal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some((why, true)) = &refusal {
                return Err(LimitStoreError(format!("{}: {why}", self.inner.shown)));
            }
            if tokio::time::Instant::now() >= deadline {
                let last = refusal.map(|(why, _)| format!(" ({why})"));
                return Err(LimitStoreError(format!(
                    "{}: no connection within {within:?}{}",
                    self.inner.shown,
                    last.unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Runs `op` on `con`, and once more when it failed because the connection was lost.
    ///
    /// redis-rs's manager reconnects when a command fails on a lost connection, not before:
    /// after an outage, the first command finds the connection that broke (or the failed
    /// reconnection made while Redis was still down) and fails although Redis is back, and
    /// every replica answered its first request with 503 (operations review). The second try
    /// waits for the new connection. Callers bound both tries together by their timeout.
    ///
    /// A timeout that comes back at once is no wait for Redis but the manager's last failed
    /// reconnection (one made while Redis was busy, answered to the next command however much
    /// later it comes): tried again too (operations review: the first request after such a
    /// reconnection got an instant 503 from a healthy Redis).
    ///
    /// A command that reached Redis just before the connection broke runs twice: an
    /// admission is then held twice (until it settles) or a settlement charged twice. That
    /// takes a connection lost in the instant between Redis running a command and its answer.
    pub(crate) async fn retrying<T, F>(
        con: &ConnectionManager,
        mut op: impl FnMut(ConnectionManager) -> F,
    ) -> redis::RedisResult<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let started = std::time::Instant::now();
        match op(con.clone()).await {
            Err(e) if connection_lost(&e) || (e.is_timeout() && started.elapsed() < STALE) => {
                op(con.clone()).await
            }
            r => r,
        }
    }

    /// The connection, once made.
    ///
    /// # Errors
    ///
    /// Not connected yet.
    pub fn get(&self) -> Result<ConnectionManager, LimitStoreError> {
        match self.inner.con.get() {
            Some(con) => Ok(con.clone()),
            None => {
                let e = LimitStoreError("redis: not connected yet".into());
                self.inner.outcome(Some(&e.0));
                Err(e)
            }
        }
    }

    /// Asks Redis for a `PONG` within `timeout` (readiness).
    ///
    /// # Errors
    ///
    /// Not connected, an error, or no answer in time.
    pub async fn ping(&self, timeout: Duration) -> Result<(), LimitStoreError> {
        let con = self.get()?;
        let ping = Self::retrying(&con, |mut con| async move {
            redis::cmd("PING").query_async::<String>(&mut con).await
        });
        let r = match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(err(e)),
            Err(_) => Err(LimitStoreError(format!(
                "redis: no answer within {timeout:?}"
            ))),
        };
        self.outcome(&r);
        r
    }

    /// Records how an operation went, for the outage log lines.
    pub fn outcome<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.inner.outcome(None),
            Err(e) => self.inner.outcome(Some(&e.to_string())),
        }
    }
}

impl Connection {
    fn outcome(&self, failure: Option<&str>) {
        use std::sync::atomic::Ordering::Relaxed;
        if failure.is_none() && !self.failing.load(Relaxed) {
            return;
        }
        let mut o = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match failure {
            None => {
                if let Some(since) = o.since.take() {
                    tracing::info!(
                        target: "agw",
                        "{}: reachable again ({} failed operations, the first {:.1} s ago)",
                        self.shown,
                        o.failures,
                        now.duration_since(since).as_secs_f64()
                    );
                }
                *o = Outage::default();
                self.failing.store(false, Relaxed);
            }
            Some(why) => {
                self.failing.store(true, Relaxed);
                o.failures += 1;
                let since = *o.since.get_or_insert(now);
                if o.logged
                    .is_none_or(|at| now.duration_since(at) >= OUTAGE_LOG_EVERY)
                {
                    o.logged = Some(now);
                    tracing::warn!(
                        target: "agw",
                        "{}: unavailable for {:.1} s ({} failed operations): {why}",
                        self.shown,
                        now.duration_since(since).as_secs_f64(),
                        o.failures
                    );
                }
            }
        }
    }
}

/// Counters in Redis, updated by one Lua script (one round trip per operation). Counters are
/// plain integer keys under the limiter's prefix and expire with their window; day and month
/// totals persist for a week and a year. Not for Redis Cluster (a script touches keys of
/// several scopes).
///
/// Operations are batched as a group commit: an operation that finds none in flight runs at
/// once (an idle gateway waits for nothing), and those that arrive while one is in flight go
/// together in the next script run, settlements first, then acquires in arrival order. Under
/// load one round trip and one script run admit many requests and settle many more.
///
/// Rate limits (requests and tokens per minute) are leased: an admission may charge a grant
/// beyond what the request needs, and the next requests of this replica are admitted against
/// it without a round trip while it lasts ([`Limiter::give_back`](super::Limiter::give_back)
/// returns what is left). Budgets are checked in Redis on every request.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    con: RedisConnection,
    step: redis::Script,
    queue: Mutex<Queue>,
    leases: Leases,
}

type Reply<T> = oneshot::Sender<Result<T, LimitStoreError>>;

/// What the script answered for one request.
#[derive(Debug)]
enum Answer {
    /// Admitted: each counter's value and the grant charged with it.
    Admitted(Vec<(u64, u64)>),
    /// Refused at the ask `index`; nothing charged.
    Refused { index: usize, current: u64 },
    /// Reached Redis after its deadline; nothing charged.
    Expired,
}

/// Operations waiting for the one in flight.
#[derive(Default)]
struct Queue {
    /// An operation is in flight; a new one waits here.
    busy: bool,
    acquires: Vec<(Remote, Reply<Acquired>)>,
    adds: Vec<(Vec<Add>, Reply<()>)>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store over `con`.
    pub fn new(con: RedisConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                con,
                step: redis::Script::new(STEP),
                queue: Mutex::default(),
                leases: Leases::default(),
            }),
        }
    }

    /// The connection (to share with [`RedisKeyStore`](crate::auth::RedisKeyStore)).
    pub fn connection(&self) -> RedisConnection {
        self.inner.con.clone()
    }
}

fn err(e: redis::RedisError) -> LimitStoreError {
    LimitStoreError(format!("redis: {}", describe(&e)))
}

fn unexpected() -> LimitStoreError {
    LimitStoreError("redis: unexpected script answer".into())
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the store's `answer` to `remote` means for the request, with the leases updated:
    /// an admission's grants kept, a refusal's (or failure's) lease units given back — and the
    /// request admitted after all if the leases now cover it.
    fn conclude(
        &self,
        remote: &Remote,
        answer: Result<Answer, LimitStoreError>,
    ) -> Result<Acquired, LimitStoreError> {
        match answer {
            Ok(Answer::Admitted(values)) => {
                Ok(Acquired::Admitted(self.leases.admitted(remote, &values)))
            }
            Ok(Answer::Refused { index, current }) => match self.leases.retry(remote) {
                Some(values) => Ok(Acquired::Admitted(values)),
                None => {
                    let index = remote.original_index(index).ok_or_else(unexpected)?;
                    Ok(Acquired::Refused { index, current })
                }
            },
            Ok(Answer::Expired) => self
                .leases
                .retry(remote)
                .map(Acquired::Admitted)
                .ok_or_else(|| {
                    LimitStoreError(
                        "redis: the admission reached Redis after its deadline (a stall)".into(),
                    )
                }),
            // What the leases hold was charged in Redis before it failed: still this replica's.
            Err(e) => self.leases.retry(remote).map(Acquired::Admitted).ok_or(e),
        }
    }

    /// Sends the request of `remote` its outcome, or, if nobody waits for it any more, gives
    /// back what was charged for it ([`Inner::late`]).
    fn deliver(
        self: &Arc<Self>,
        remote: &Remote,
        reply: Reply<Acquired>,
        answer: Result<Answer, LimitStoreError>,
    ) {
        if reply.is_closed() {
            self.late(remote, answer);
            return;
        }
        // Its caller may stop waiting between the check and the send: what Redis charged for
        // it is given back then too (the leases are already settled by `conclude`).
        let charged = matches!(answer, Ok(Answer::Admitted(_)));
        if reply.send(self.conclude(remote, answer)).is_err() && charged {
            self.give_back(remote);
        }
    }

    /// The answer to `remote` came after its request stopped waiting (its timeout passed: the
    /// limiter refused it with a 503, or admitted it failing open, and then charges what it
    /// uses as held nowhere). What Redis charged for the request itself is given back, so
    /// that a Redis slower than the timeout does not leave holds standing as spend until the
    /// day or month ends (seventeenth session's red-team review: three 503s during a 2 s
    /// stall spent $0.30 of a $1 day) — the token and dollar holds; a grant charged with them
    /// is the replica's lease, as for an admission. A refusal or a failure charged nothing:
    /// the ask ends.
    fn late(self: &Arc<Self>, remote: &Remote, answer: Result<Answer, LimitStoreError>) {
        let Ok(Answer::Admitted(values)) = answer else {
            self.leases.abandoned(remote);
            return;
        };
        self.leases.admitted(remote, &values);
        self.give_back(remote);
    }

    /// Gives back, on a task of its own, the token and dollar holds Redis charged for
    /// `remote`'s request, whose caller is gone.
    fn give_back(self: &Arc<Self>, remote: &Remote) {
        // Tokens and dollars only: a request admitted failing open is charged what it uses
        // as held nowhere, so its hold goes either way. A request counter stays charged (the
        // request may have run; the minute ends soon).
        let back: Vec<Add> = remote
            .asks
            .iter()
            .filter(|a| a.check.add > 0 && a.check.key.kind != super::LimitKind::Requests)
            .map(|a| Add {
                key: a.check.key.clone(),
                delta: -(a.check.add.min(MAX_AMOUNT) as i64),
                ttl: a.check.ttl,
            })
            .collect();
        if back.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = RedisStore {
            inner: self.clone(),
        };
        rt.spawn(async move {
            let _ = store.add(back).await;
        });
    }

    /// One script run: `adds`, then an acquire for every request of `batch`, in order.
    async fn step<'a>(
        &self,
        adds: impl Iterator<Item = &'a Add> + Clone,
        batch: impl ExactSizeIterator<Item = &'a [Ask]> + Clone,
    ) -> Result<Vec<Answer>, LimitStoreError> {
        // `EVALSHA sha numkeys keys... args...`, written straight into one command buffer
        // (a script invocation would allocate every key and argument on its own).
        let nadd = adds.clone().count();
        let nkeys = nadd + batch.clone().map(<[Ask]>::len).sum::<usize>();
        // A counter's name is its prefix, scope name and ~20 more bytes.
        let name_len = |k: &CounterKey| k.prefix.len() + k.scope.name().len() + 24;
        let (nargs, bytes) = adds
            .clone()
            .map(|a| (3, name_len(&a.key) + 24))
            .chain(
                batch
                    .clone()
                    .flatten()
                    .map(|a| (5, name_len(&a.check.key) + 40)),
            )
            .fold((7 + batch.len(), 112), |(n, b), (dn, db)| (n + dn, b + db));
        let mut cmd = redis::Cmd::with_capacity(nargs, bytes);
        cmd.arg("EVALSHA").arg(self.step.get_hash()).arg(nkeys);
        // Names are written into one buffer, then copied into the command.
        let mut name = String::with_capacity(64);
        let keys = adds
            .clone()
            .map(|a| &a.key)
            .chain(batch.clone().flatten().map(|a| &a.check.key));
        for k in keys {
            name.clear();
            k.write_name(&mut name);
            cmd.arg(name.as_str());
        }
        cmd.arg(nadd);
        for a in adds {
            let bound = MAX_AMOUNT as i64;
            cmd.arg(a.delta.clamp(-bound, bound)).arg(a.ttl);
        }
        cmd.arg(batch.len());
        for checks in batch.clone() {
            cmd.arg(checks.len());
            for a in checks {
                let c = &a.check;
                // Bounded, so that no `INCRBY` in the script overflows and fails the batch.
                cmd.arg(c.limit.min(MAX_AMOUNT))
                    .arg(c.add.min(MAX_AMOUNT))
                    .arg(a.want.min(MAX_AMOUNT))
                    .arg(c.ttl);
            }
        }
        // The acquires' deadline (none for settlements alone: they always apply).
        let deadline = if batch.len() == 0 {
            0
        } else {
            let c = &self.con.inner;
            let offset = c.clock_offset_ms.load(std::sync::atomic::Ordering::Relaxed);
            (unix_millis() as i64 + offset).max(0) as u64 + c.answer_wait.as_millis() as u64
        };
        cmd.arg(deadline);
        let con = self.con.get()?;
        let cmd = &cmd;
        let out: Result<Vec<i64>, _> = RedisConnection::retrying(&con, |mut con| async move {
            match cmd.query_async(&mut con).await {
                Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                    // Redis does not know the script yet (first use, or after a restart).
                    let loaded: Result<String, _> = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(STEP)
                        .query_async(&mut con)
                        .await;
                    match loaded {
                        Ok(_) => cmd.query_async(&mut con).await,
                        Err(e) => Err(e),
                    }
                }
                r => r,
            }
        })
        .await;
        self.con.outcome(&out);
        let out = out.map_err(err)?;
        let mut out = out.into_iter();
        let mut next = || out.next().ok_or_else(unexpected);
        let mut acquired = Vec::with_capacity(batch.len());
        for checks in batch {
            acquired.push(match next()? {
                1 => Answer::Admitted(
                    (0..checks.len())
                        .map(|_| Ok((next()?.max(0) as u64, next()?.max(0) as u64)))
                        .collect::<Result<_, _>>()?,
                ),
                0 => {
                    let index = usize::try_from(next()?).map_err(|_| unexpected())?;
                    let current = next()?.max(0) as u64;
                    if index >= checks.len() {
                        return Err(unexpected());
                    }
                    Answer::Refused { index, current }
                }
                2 => Answer::Expired,
                _ => return Err(unexpected()),
            });
        }
        Ok(acquired)
    }

    /// Runs `op` now if nothing is in flight (then hands on to what queued meanwhile), or
    /// queues it through `queue` and waits for the batch that takes it.
    async fn run<V, T, F>(
        self: &Arc<Self>,
        v: V,
        op: impl FnOnce(V) -> F,
        queue: impl FnOnce(&mut Queue, V, Reply<T>),
    ) -> Result<T, LimitStoreError>
    where
        F: std::future::Future<Output = Result<T, LimitStoreError>>,
    {
        let v = {
            let mut q = self.queue();
            if q.busy {
                let (tx, rx) = oneshot::channel();
                queue(&mut q, v, tx);
                Err(rx)
            } else {
                q.busy = true;
                Ok(v)
            }
        };
        match v {
            Ok(v) => {
                let _in_flight = InFlight(self);
                op(v).await
            }
            Err(rx) => rx
                .await
                .unwrap_or_else(|_| Err(LimitStoreError("redis: operation abandoned".into()))),
        }
    }

    /// The operation in flight has ended: what queued meanwhile goes next, on a task of its
    /// own, in batches until nothing waits.
    fn hand_on(self: &Arc<Self>) {
        let mut q = self.queue();
        if q.acquires.is_empty() && q.adds.is_empty() {
            q.busy = false;
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to run them on (it is shutting down): nobody is left to wait.
            for (remote, _) in &q.acquires {
                self.leases.abandoned(remote);
            }
            *q = Queue::default();
            return;
        };
        drop(q);
        let inner = self.clone();
        rt.spawn(async move {
            let mut acquires = Vec::new();
            let mut adds = Vec::new();
            loop {
                {
                    let mut q = inner.queue();
                    // A request that stopped waiting (its timeout passed) is not sent; what its
                    // leases covered stays used (the limiter may have admitted it anyway).
                    q.acquires.retain(|(remote, reply)| {
                        let waiting = !reply.is_closed();
                        if !waiting {
                            inner.leases.abandoned(remote);
                        }
                        waiting
                    });
                    if q.acquires.is_empty() && q.adds.is_empty() {
                        q.busy = false;
                        return;
                    }
                    let n = q.acquires.len().min(BATCH);
                    acquires.extend(q.acquires.drain(..n).map(|(r, reply)| (r, Some(reply))));
                    adds.append(&mut q.adds);
                }
                let result = inner
                    .step(
                        adds.iter().flat_map(|(a, _): &(Vec<Add>, _)| a.iter()),
                        acquires
                            .iter()
                            .map(|(r, _): &(Remote, _)| r.asks.as_slice()),
                    )
                    .await;
                // `step` answers for every acquire or fails: a reply left over is an error.
                let (acquired, done) = match result {
                    Ok(acquired) => (acquired, Ok(())),
                    Err(e) => (Vec::new(), Err(e)),
                };
                let mut answers = acquired.into_iter().map(Some).collect::<Vec<_>>();
                answers.resize_with(acquires.len(), || None);
                let answer = |a: &mut Option<Answer>| match (a.take(), &done) {
                    (Some(a), _) => Ok(a),
                    (None, Err(e)) => Err(e.clone()),
                    (None, Ok(())) => Err(unexpected()),
                };
                // Admissions first: their grants are in the leases before a refusal of the
                // same batch looks there.
                for ((remote, reply), a) in acquires.iter_mut().zip(&mut answers) {
                    if matches!(a, Some(Answer::Admitted(_)))
                        && let Some(reply) = reply.take()
                    {
                        inner.deliver(remote, reply, answer(a));
                    }
                }
                for ((remote, reply), a) in acquires.iter_mut().zip(&mut answers) {
                    if let Some(reply) = reply.take() {
                        inner.deliver(remote, reply, answer(a));
                    }
                }
                acquires.clear();
                for (_, reply) in adds.drain(..) {
                    let _ = reply.send(done.clone());
                }
            }
        });
    }
}

/// One request's admission script run, boxed to outlive its caller.
type Step = Pin<Box<dyn Future<Output = Result<Answer, LimitStoreError>> + Send>>;

/// The answer to one request's admission script: dropped before it (the request's timeout),
/// the script's answer is still awaited, on a task of its own, and handed to
/// [`Inner::late`].
struct Detachable {
    step: Option<Step>,
    inner: Arc<Inner>,
    remote: Arc<Remote>,
}

impl Future for Detachable {
    type Output = Result<Answer, LimitStoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(step) = self.step.as_mut() else {
            return Poll::Ready(Err(unexpected()));
        };
        let answer = std::task::ready!(step.as_mut().poll(cx));
        self.step = None;
        Poll::Ready(answer)
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        let Some(step) = self.step.take() else {
            return;
        };
        let (inner, remote) = (self.inner.clone(), self.remote.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let answer = step.await;
                    inner.late(&remote, answer);
                });
            }
            // No runtime to wait on (it is shutting down): the ask ends.
            Err(_) => inner.leases.abandoned(&remote),
        }
    }
}

/// The operation in flight; dropped when it ends (or its caller stops waiting), handing on.
struct InFlight<'a>(&'a Arc<Inner>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.hand_on();
    }
}

impl LimitStore for RedisStore {
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
        let inner = &self.inner;
        let remote = match inner.leases.take(checks) {
            // Covered by this replica's leases: no round trip.
            Plan::Local(values) => {
                return Box::pin(std::future::ready(Ok(Acquired::Admitted(values))));
            }
            Plan::Remote(remote) => remote,
        };
        Box::pin(inner.run(
            remote,
            move |remote| async move {
                // A request that stops waiting (its timeout) before the answer leaves the
                // script to finish on a task of its own, which gives back what it charged
                // ([`Inner::late`]); what its leases covered stays used (the limiter may admit
                // it anyway).
                let remote = Arc::new(remote);
                let this = inner.clone();
                let asked = remote.clone();
                let mut answer = Detachable {
                    step: Some(Box::pin(async move {
                        this.step(std::iter::empty(), std::iter::once(&asked.asks[..]))
                            .await
                            .and_then(|mut a| a.pop().ok_or_else(unexpected))
                    })),
                    inner: inner.clone(),
                    remote: remote.clone(),
                };
                let answer = (&mut answer).await;
                inner.conclude(&remote, answer)
            },
            |q, remote, reply| q.acquires.push((remote, reply)),
        ))
    }

    fn add(&self, mut adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        let inner = &self.inner;
        // Corrections of counters leased here are taken from or into the leases.
        inner.leases.absorb(&mut adds);
        if adds.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        Box::pin(inner.run(
            adds,
            move |adds| async move {
                inner.step(adds.iter(), std::iter::empty()).await?;
                Ok(())
            },
            |q, adds, reply| q.adds.push((adds, reply)),
        ))
    }

    fn give_back(&self) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        let adds = self.inner.leases.drain();
        self.add(adds)
    }

    fn get(&self, keys: Vec<CounterKey>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
        let con = self.inner.con.clone();
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let names: Vec<String> = keys.iter().map(CounterKey::name).collect();
            let mget = redis::cmd("MGET").arg(&names).clone();
            let mget = &mget;
            let v: Result<Vec<Option<i64>>, _> =
                RedisConnection::retrying(&con.get()?, |mut c| async move {
                    mget.query_async(&mut c).await
                })
                .await;
            con.outcome(&v);
            let v = v.map_err(err)?;
            Ok(v.into_iter()
                .map(|v| v.unwrap_or(0).max(0) as u64)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RedisConnection;

    /// Red-team rt4: a mangled URL (`…/0?protocol=resp3url: redis://:pw@h/…`) was refused
    /// with the client's cause, which echoed the parameter's value: a second URL. The cause
    /// names the parameter, never its value.
    #[test]
    fn a_query_is_checked_and_its_values_never_shown() {
        for ok in [
            "redis://:pw@127.0.0.1:6379/0",
            "redis://:pw@127.0.0.1:6379/0?protocol=resp3",
            "redis://127.0.0.1:6379/?protocol=2",
            "unix:///run/redis.sock?db=2",
        ] {
            RedisConnection::check_url(ok).unwrap_or_else(|e| panic!("{ok}: {}", e.0));
        }
        for (bad, cause) in [
            (
                "redis://:S3cretPW@127.0.0.1:16391/0?protocol=resp3url: redis://:r3disSECRETpw@127.0.0.1:16391/foo=bar",
                "the query's `protocol` is not resp2 or resp3",
            ),
            (
                "redis://:S3cretPW@127.0.0.1:16391/0?protocol=resp3&foo=bar",
                "the query parameter `foo` is not one agw's Redis client reads",
            ),
            (
                "redis://127.0.0.1:16391/0?password=S3cretPW",
                "the query parameter `password` is not one agw's Redis client reads",
            ),
            (
                "redis://127.0.0.1:16391/0?a%20b=S3cretPW",
                "the query has a parameter agw's Redis client does not read",
            ),
        ] {
            let e = RedisConnection::check_url(bad).unwrap_err().0;
            assert!(e.contains(cause), "{bad}: {e}");
            assert!(
                !e.contains("S3cretPW") && !e.contains("r3disSECRETpw") && !e.contains("foo=bar"),
                "{e}"
            );
        }
    }
}
