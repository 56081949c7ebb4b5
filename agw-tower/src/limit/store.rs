//! Counter stores: the [`LimitStore`] trait and the in-memory store.

use super::rejection::{LimitKind, Scope};
use crate::auth::BoxFuture;
use crate::hash::FastState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A counter: whose ([`Scope`]), which limit or total ([`LimitKind`]), and which period.
///
/// A shared store names it `{prefix}:{scope}:{counter}{period}`, e.g.
/// `agw:k:alice:rpm:29930000` ([`CounterKey::write_name`]); the in-memory store keys its map by
/// the value itself, so admitting and settling a request build no names. Building one costs no
/// allocation: the prefix and the scope's name are shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// Separates deployments sharing one store ([`LimitPolicy::prefix`](super::LimitPolicy)).
    pub prefix: Arc<str>,
    /// Whose counter.
    pub scope: Scope,
    /// Which limit or total.
    pub kind: LimitKind,
    /// Minutes since the Unix epoch for the per-minute counters, `YYYYMMDD` for a day,
    /// `YYYYMM` for a month.
    pub period: u64,
}

impl CounterKey {
    /// Appends the counter's name to `out`.
    pub fn write_name(&self, out: &mut String) {
        let tag = match &self.scope {
            Scope::Key(_) => "k:",
            Scope::Team(_) => "t:",
            Scope::Global => "g",
        };
        let name = self.scope.name();
        let counter = match self.kind {
            LimitKind::Requests => "rpm:",
            LimitKind::Tokens => "tpm:",
            LimitKind::TokensPerDay => "tok:d:",
            LimitKind::TokensPerMonth => "tok:m:",
            LimitKind::UsdPerDay => "usd:d:",
            LimitKind::UsdPerMonth => "usd:m:",
        };
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(self.period);
        out.reserve(self.prefix.len() + tag.len() + name.len() + counter.len() + digits.len() + 2);
        for part in [&*self.prefix, ":", tag, name, ":", counter, digits] {
            out.push_str(part);
        }
    }

    /// The counter's name.
    pub fn name(&self) -> String {
        let mut out = String::new();
        self.write_name(&mut out);
        out
    }
}

/// One counter checked, and charged if every check passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The counter.
    pub key: CounterKey,
    /// The limit.
    pub limit: u64,
    /// What admission adds (1 for a request, the estimate for tokens, 0 for a budget).
    pub add: u64,
    /// Seconds the counter lives after its creation.
    pub ttl: u64,
}

impl Check {
    /// Whether `current` refuses this check: the counter is at its limit, or a non-empty
    /// counter would pass it (an empty counter admits one request larger than the limit, so
    /// a big `max_tokens` is not refused forever).
    pub fn refuses(&self, current: u64) -> bool {
        current >= self.limit || (current > 0 && current.saturating_add(self.add) > self.limit)
    }
}

/// One counter changed after a response (a correction may be negative; counters stay ≥ 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// The counter.
    pub key: CounterKey,
    /// The change.
    pub delta: i64,
    /// Seconds the counter lives after its creation.
    pub ttl: u64,
}

/// The outcome of [`LimitStore::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Every check passed and was charged; the counters' values afterwards, in order.
    Admitted(Vec<u64>),
    /// The check at `index` refused; nothing was charged.
    Refused {
        /// Which check.
        index: usize,
        /// Its counter's value.
        current: u64,
    },
}

/// A counter store failed or did not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit store: {0}")]
pub struct LimitStoreError(pub String);

/// Counters shared by every request (and, for a shared store, every replica). Both operations
/// are atomic: all checks pass and are charged together, or none is.
pub trait LimitStore: Send + Sync + std::fmt::Debug + 'static {
    /// Checks and charges `checks` atomically.
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>>;
    /// Applies `adds`.
    fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>>;
    /// Current values (0 for a missing counter).
    fn get(&self, keys: Vec<CounterKey>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>>;
    /// Whether [`LimitStore::add_now`] applies adds without waiting (an in-process store).
    /// [`Limiter::settle_later`](super::Limiter::settle_later) then settles on the caller's
    /// thread instead of queuing to a batching task. The default: no.
    fn adds_now(&self) -> bool {
        false
    }
    /// Gives back what this replica holds charged ahead of use (a shared store's leases of
    /// rate limits), so that other replicas may use it: before a graceful shutdown. The
    /// default: nothing held, nothing to do.
    fn give_back(&self) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// Applies `adds` now, when [`LimitStore::adds_now`] says it can. The default: an error,
    /// nothing applied.
    fn add_now(&self, adds: Vec<Add>) -> Result<(), LimitStoreError> {
        drop(adds);
        Err(LimitStoreError(
            "this store cannot apply adds without waiting".to_owned(),
        ))
    }
}

/// Counters in this process only: one agw instance. One mutex around a map; expired counters
/// are purged every few thousand operations.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Counters are named by agw (see [`FastState`]).
    map: HashMap<CounterKey, (u64, Instant), FastState>,
    ops: u32,
}

impl Counters {
    fn value(&self, key: &CounterKey, now: Instant) -> u64 {
        self.map
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map_or(0, |(v, _)| *v)
    }

    fn apply(&mut self, key: &CounterKey, delta: i64, ttl: u64, now: Instant) -> u64 {
        // Most counters exist: look up by reference and clone the key only for a new one.
        let e = match self.map.get_mut(key) {
            Some(e) => e,
            None => self
                .map
                .entry(key.clone())
                .or_insert((0, now + Duration::from_secs(ttl))),
        };
        if e.1 <= now {
            *e = (0, now + Duration::from_secs(ttl));
        }
        e.0 = e.0.saturating_add_signed(delta);
        e.0
    }

    fn tick(&mut self, now: Instant) {
        self.ops = self.ops.wrapping_add(1);
        if self.ops.is_multiple_of(4096) {
            self.map.retain(|_, (_, exp)| *exp > now);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl LimitStore for MemoryStore {
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
        let now = Instant::now();
        let mut c = self.lock();
        c.tick(now);
        for (index, check) in checks.iter().enumerate() {
            let current = c.value(&check.key, now);
            if check.refuses(current) {
                return Box::pin(std::future::ready(Ok(Acquired::Refused { index, current })));
            }
        }
        let values = checks
            .iter()
            .map(|ch| {
                if ch.add > 0 {
                    c.apply(&ch.key, ch.add as i64, ch.ttl, now)
                } else {
                    c.value(&ch.key, now)
                }
            })
            .collect();
        Box::pin(std::future::ready(Ok(Acquired::Admitted(values))))
    }

    fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        Box::pin(std::future::ready(self.add_now(adds)))
    }

    fn adds_now(&self) -> bool {
        true
    }

    fn add_now(&self, adds: Vec<Add>) -> Result<(), LimitStoreError> {
        let now = Instant::now();
        let mut c = self.lock();
        c.tick(now);
        for a in &adds {
            c.apply(&a.key, a.delta, a.ttl, now);
        }
        Ok(())
    }

    fn get(&self, keys: Vec<CounterKey>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
        let now = Instant::now();
        let c = self.lock();
        let v = keys.iter().map(|k| c.value(k, now)).collect();
        Box::pin(std::future::ready(Ok(v)))
    }
}
