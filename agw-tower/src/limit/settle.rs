//! Settling off the response path: a finished request's counter changes are summed per scope
//! into pending totals on the caller's thread, and one task per limiter applies them in one
//! store operation — at once when a check reads them, otherwise at most [`LINGER`] later.
//!
//! Most of what is settled are day and month totals of scopes without a budget: only reports
//! (`agw keys list`) read them, so they wait and many requests share one store operation (one
//! Redis script run). A correction of tokens per minute, or a total whose budget the policy
//! sets, is read by the next request's admission and is applied promptly, as before.

use super::clock::Periods;
use super::limiter::{
    DAY_TTL, FailureHook, LimitPolicy, Limits, MAX_AMOUNT, MINUTE_TTL, MONTH_TTL, StoreFailure,
    Ticket, counter_key, within,
};
use super::rejection::{LimitKind, Scope};
use super::store::{Add, LimitStore};
use crate::hash::FastState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long totals no check reads may wait before they are applied (the day and month totals
/// of scopes without a budget). Longer sums more requests into each store operation, but
/// leaves reports that much behind, and a process killed without a graceful shutdown loses
/// that much. At 100 ms reports are a tenth of a second behind, and above ten requests a
/// second the store operations of settling no longer grow with the traffic.
pub(super) const LINGER: Duration = Duration::from_millis(100);

/// The most scopes (each in its periods) pending before they are applied at once rather than
/// after [`LINGER`] (while a flush is in flight, more may gather: one entry per scope, not per
/// request). Requests of the same scopes are summed, so a busy gateway with few keys reaches
/// it rarely.
const MAX_PENDING: usize = 256;

/// The pending totals of one limiter and the task that applies them. Dropped with its limiter:
/// the task then applies what is pending and ends.
pub(super) struct Settler {
    shared: Arc<Shared>,
}

/// What the settler and its task share.
struct Shared {
    policy: LimitPolicy,
    prefix: Arc<str>,
    store: Arc<dyn LimitStore>,
    on_failure: Option<FailureHook>,
    pending: Mutex<Pending>,
    /// Wakes the task: the first amount of a flush cycle arrived, a prompt flush is asked, or
    /// the settler was dropped. Not per request: see [`Settler::send`].
    wake: Notify,
    /// How many flushes have been applied (see [`Pending::taken`]), for
    /// [`Settler::flush`] to wait on.
    applied: watch::Sender<u64>,
}

/// Totals waiting for the task.
#[derive(Default)]
struct Pending {
    totals: Totals,
    /// When the first of `totals` arrived; `None` while nothing is pending.
    since: Option<Instant>,
    /// A prompt flush is asked (and the task woken for it).
    prompt: bool,
    /// The settler was dropped: the task applies what is pending and ends.
    closed: bool,
    /// How many flushes have taken totals (applied, or in flight).
    taken: u64,
    /// The task, once started.
    task: Option<JoinHandle<()>>,
}

impl Pending {
    /// Whether the task runs (its runtime may have gone since it started, as between tests).
    fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Settler {
    /// A settler of `policy`'s counters in `store`, under `prefix`; its task starts on first
    /// use.
    pub fn new(
        policy: LimitPolicy,
        prefix: Arc<str>,
        store: Arc<dyn LimitStore>,
        on_failure: Option<FailureHook>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                prefix,
                store,
                on_failure,
                pending: Mutex::default(),
                wake: Notify::new(),
                applied: watch::Sender::new(0),
            }),
        }
    }

    /// Adds what a finished request changes to the pending totals. The task is woken only when
    /// a flush cycle starts, and again when a check reads a pending amount or the totals are
    /// full; it is started on the current runtime if it does not run (outside a runtime, with
    /// no task running, nothing is charged).
    pub fn send(
        &self,
        ticket: &Ticket,
        tokens: Option<u64>,
        cost_micros: Option<u64>,
        success: bool,
    ) {
        let s = &self.shared;
        let periods = ticket.periods();
        let mut p = s.lock();
        let mut wake = false;
        if !p.running() {
            if !s.start(&mut p) {
                return;
            }
            wake = true;
        }
        let mut prompt = false;
        for (scope, a) in settle_amounts(&s.policy, ticket, tokens, cost_micros, success) {
            if a != Amounts::default() {
                prompt |= a.checked(s.policy.limits_of(scope));
                p.totals.add(scope, &periods, a);
            }
        }
        if p.totals.is_empty() {
            return;
        }
        if p.since.is_none() {
            p.since = Some(Instant::now());
            wake = true;
        }
        prompt |= p.totals.len() >= MAX_PENDING;
        if prompt && !p.prompt {
            p.prompt = true;
            wake = true;
        }
        drop(p);
        if wake {
            s.wake.notify_one();
        }
    }

    /// Applies what is pending now, and waits until the store has taken it (or failed: the
    /// failure hook is told), with any flush already in flight.
    pub async fn flush(&self) {
        let s = &self.shared;
        let target = {
            let mut p = s.lock();
            if p.totals.is_empty() {
                if !p.running() {
                    // A flush in flight on a runtime that has gone is lost: nothing to wait for.
                    s.applied.send_replace(p.taken);
                }
                p.taken
            } else {
                if !p.running() && !s.start(&mut p) {
                    return;
                }
                p.prompt = true;
                p.taken + 1
            }
        };
        s.wake.notify_one();
        let mut applied = s.applied.subscribe();
        // The sender lives as long as `self`: the wait ends with the flush.
        let _ = applied.wait_for(|&n| n >= target).await;
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        let s = &self.shared;
        let mut p = s.lock();
        p.closed = true;
        if !p.running() && !p.totals.is_empty() {
            s.start(&mut p);
        }
        drop(p);
        s.wake.notify_one();
    }
}

/// What the task does next.
enum Next {
    /// Nothing is pending.
    Wait,
    /// Totals no check reads are pending: apply them at this instant, unless woken first.
    Linger(Instant),
    /// Apply what is pending now.
    Flush,
}

impl Shared {
    /// The pending totals (a panic elsewhere while holding them leaves them usable).
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the task on the current runtime; false outside one.
    fn start(self: &Arc<Self>, p: &mut Pending) -> bool {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        // A flush in flight on a runtime that has gone is lost: nothing to wait for.
        self.applied.send_replace(p.taken);
        p.task = Some(rt.spawn(self.clone().run()));
        true
    }

    /// The task: one flush cycle after another, until the settler is dropped. While a flush is
    /// in flight, new amounts are summed for the next one.
    async fn run(self: Arc<Self>) {
        // Swapped with the pending totals at each flush: both keep their capacity.
        let mut taking = Totals::default();
        loop {
            let next = {
                let p = self.lock();
                match p.since {
                    _ if p.prompt || p.closed => Next::Flush,
                    Some(since) => Next::Linger(since + LINGER),
                    None => Next::Wait,
                }
            };
            match next {
                Next::Wait => {
                    self.wake.notified().await;
                    continue;
                }
                Next::Linger(at) => {
                    // One timer per flush cycle. Woken before it: asked for a prompt flush, or
                    // dropped (decided again above).
                    if tokio::time::timeout_at(at, self.wake.notified())
                        .await
                        .is_ok()
                    {
                        continue;
                    }
                }
                Next::Flush => {}
            }
            let (taken, closed) = {
                let mut p = self.lock();
                std::mem::swap(&mut p.totals, &mut taking);
                p.since = None;
                p.prompt = false;
                p.taken += 1;
                (p.taken, p.closed)
            };
            let mut adds = Vec::with_capacity(5 * taking.len());
            for ((scope, periods), a) in taking.drain() {
                a.adds(&self.prefix, &scope, &periods, &mut adds);
            }
            apply_adds(
                &*self.store,
                self.policy.timeout,
                self.on_failure.as_ref(),
                adds,
            )
            .await;
            self.applied.send_replace(taken);
            if closed {
                return;
            }
        }
    }
}

/// Amounts summed per scope and periods, in the order they first appear: the counter names
/// are built once per scope and flush, not per request.
#[derive(Default)]
struct Totals {
    /// Scopes are named by agw (see [`FastState`]).
    hasher: FastState,
    /// Indexes into `list` by the hash of their scope and periods.
    at: HashMap<u64, Vec<usize>, FastState>,
    list: Vec<((Scope, Periods), Amounts)>,
}

impl Totals {
    /// Adds `a` to the sums of `scope` in `periods`.
    fn add(&mut self, scope: &Scope, periods: &Periods, a: Amounts) {
        let hash = self.hasher.hash_one((scope, periods));
        let slots = self.at.entry(hash).or_default();
        match slots
            .iter()
            .find(|&&i| (&self.list[i].0.0, &self.list[i].0.1) == (scope, periods))
        {
            Some(&i) => self.list[i].1.merge(a),
            None => {
                slots.push(self.list.len());
                self.list.push(((scope.clone(), *periods), a));
            }
        }
    }

    /// How many scopes (each in its periods) have amounts.
    fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether nothing is pending.
    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Takes every sum out, keeping the capacity for the next ones.
    fn drain(&mut self) -> impl Iterator<Item = ((Scope, Periods), Amounts)> + '_ {
        self.at.clear();
        self.list.drain(..)
    }
}

/// What one finished request changes in the counters of one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Amounts {
    /// The correction of the tokens-per-minute counter (actual minus estimate).
    pub tpm: i64,
    /// The change of the day's token total: the tokens used, less the estimate where a
    /// tokens-per-day budget held it.
    pub tokens_day: i64,
    /// The same for the month.
    pub tokens_month: i64,
    /// The change of the day's micro-dollars: the cost, less the estimate where a dollar
    /// budget held it.
    pub usd_day: i64,
    /// The same for the month.
    pub usd_month: i64,
}

impl Amounts {
    /// Adds another request's amounts (of the same scope and periods).
    pub fn merge(&mut self, other: Amounts) {
        self.tpm = self.tpm.saturating_add(other.tpm);
        self.tokens_day = self.tokens_day.saturating_add(other.tokens_day);
        self.tokens_month = self.tokens_month.saturating_add(other.tokens_month);
        self.usd_day = self.usd_day.saturating_add(other.usd_day);
        self.usd_month = self.usd_month.saturating_add(other.usd_month);
    }

    /// Whether a check reads one of these changes, in a scope of `limits`: the minute's
    /// correction (only a tokens-per-minute limit makes one), or a total whose budget is set.
    /// Admission reads them; other totals only reports do.
    pub fn checked(&self, limits: &Limits) -> bool {
        self.tpm != 0
            || (self.tokens_day != 0 && limits.tokens_per_day.is_some())
            || (self.tokens_month != 0 && limits.tokens_per_month.is_some())
            || (self.usd_day != 0 && limits.usd_per_day.is_some())
            || (self.usd_month != 0 && limits.usd_per_month.is_some())
    }

    /// The counter changes, for `scope` in the periods `p`.
    pub fn adds(&self, prefix: &Arc<str>, scope: &Scope, p: &Periods, adds: &mut Vec<Add>) {
        let mut add = |kind: LimitKind, delta: i64, ttl: u64| {
            adds.push(Add {
                key: counter_key(prefix, scope, kind, p),
                delta,
                ttl,
            });
        };
        if self.tpm != 0 {
            add(LimitKind::Tokens, self.tpm, MINUTE_TTL);
        }
        if self.tokens_day != 0 {
            add(LimitKind::TokensPerDay, self.tokens_day, DAY_TTL);
        }
        if self.tokens_month != 0 {
            add(LimitKind::TokensPerMonth, self.tokens_month, MONTH_TTL);
        }
        if self.usd_day != 0 {
            add(LimitKind::UsdPerDay, self.usd_day, DAY_TTL);
        }
        if self.usd_month != 0 {
            add(LimitKind::UsdPerMonth, self.usd_month, MONTH_TTL);
        }
    }
}

/// The counter changes of one finished request, appended to `adds`.
pub(super) fn ticket_adds(
    policy: &LimitPolicy,
    prefix: &Arc<str>,
    ticket: &Ticket,
    tokens: Option<u64>,
    cost_micros: Option<u64>,
    success: bool,
    adds: &mut Vec<Add>,
) {
    // At most five counters per scope (see `Amounts::adds`).
    adds.reserve(5 * ticket.scopes().len());
    let p = ticket.periods();
    for (scope, a) in settle_amounts(policy, ticket, tokens, cost_micros, success) {
        a.adds(prefix, scope, &p, adds);
    }
}

/// What one finished request changes, per scope (see
/// [`Limiter::settle`](super::Limiter::settle)): the minute's correction where a
/// tokens-per-minute limit held the estimate, and the day and month totals of every scope,
/// limited or not.
pub(super) fn settle_amounts<'a>(
    policy: &'a LimitPolicy,
    ticket: &'a Ticket,
    tokens: Option<u64>,
    cost_micros: Option<u64>,
    success: bool,
) -> impl Iterator<Item = (&'a Scope, Amounts)> + 'a {
    let used = tokens
        .unwrap_or(if success { ticket.estimate() } else { 0 })
        .min(MAX_AMOUNT);
    // The same for dollars, where a dollar budget held the request's estimated cost.
    let cost = cost_micros.unwrap_or(0).min(MAX_AMOUNT) as i64;
    let cost_correction = cost - ticket.cost_estimate().min(MAX_AMOUNT) as i64;
    // Both at most 2^53: the difference fits.
    let correction = used as i64 - ticket.estimate().min(MAX_AMOUNT) as i64;
    ticket.scopes().iter().map(move |scope| {
        let limits = policy.limits_of(scope);
        let held = |limit: Option<u64>| ticket.held() && limit.is_some();
        let total = |limit: Option<u64>| {
            if held(limit) { correction } else { used as i64 }
        };
        let usd = |limit: Option<f64>| {
            if ticket.held() && limit.is_some() {
                cost_correction
            } else {
                cost
            }
        };
        let amounts = Amounts {
            tpm: if held(limits.tokens_per_minute) {
                correction
            } else {
                0
            },
            tokens_day: total(limits.tokens_per_day),
            tokens_month: total(limits.tokens_per_month),
            usd_day: usd(limits.usd_per_day),
            usd_month: usd(limits.usd_per_month),
        };
        (scope, amounts)
    })
}

/// Applies `adds` within `4 × timeout`, reporting a failure to the hook.
pub(super) async fn apply_adds(
    store: &dyn LimitStore,
    timeout: Duration,
    on_failure: Option<&FailureHook>,
    adds: Vec<Add>,
) {
    if adds.is_empty() {
        return;
    }
    let error = match within(timeout * 4, store.add(adds)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.0,
        Err(_) => "no answer in time".to_owned(),
    };
    settle_failed(on_failure, error);
}

/// Reports a settlement the store did not take to the failure hook.
pub(super) fn settle_failed(on_failure: Option<&FailureHook>, error: String) {
    if let Some(hook) = on_failure {
        hook(&StoreFailure {
            operation: "settle",
            error,
            admitted: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{BoxFuture, Identity, IdentityKind};
    use crate::limit::{Acquired, Check, CounterKey, LimitStoreError, Limiter, MemoryStore, Spent};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// 2026-11-28T12:34:56Z.
    const NOW: u64 = 1_795_869_296;

    /// In-memory counters behind a store that waits, as Redis does: settling goes through the
    /// task. Counts its `add` operations; may hold them at a gate, or fail them.
    #[derive(Debug, Default)]
    struct Counting {
        counters: MemoryStore,
        /// `add` operations begun.
        calls: watch::Sender<usize>,
        /// `add` operations ended.
        ended: watch::Sender<usize>,
        /// Each `add` takes a permit first, when set.
        gate: Option<Semaphore>,
        fail: bool,
    }

    impl LimitStore for Counting {
        fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
            self.counters.acquire(checks)
        }

        fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
            Box::pin(async move {
                self.calls.send_modify(|n| *n += 1);
                if let Some(gate) = &self.gate {
                    gate.acquire().await.expect("never closed").forget();
                }
                let r = if self.fail {
                    Err(LimitStoreError("down".into()))
                } else {
                    self.counters.add_now(adds)
                };
                self.ended.send_modify(|n| *n += 1);
                r
            })
        }

        fn get(&self, keys: Vec<CounterKey>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
            self.counters.get(keys)
        }
    }

    impl Counting {
        /// `add` operations ended so far.
        fn adds(&self) -> usize {
            *self.ended.borrow()
        }

        /// Waits until `n` `add` operations have begun.
        async fn called(&self, n: usize) {
            let mut calls = self.calls.subscribe();
            calls.wait_for(|&k| k >= n).await.expect("the store lives");
        }

        /// Waits until `n` `add` operations have ended.
        async fn added(&self, n: usize) {
            let mut ended = self.ended.subscribe();
            ended.wait_for(|&k| k >= n).await.expect("the store lives");
        }
    }

    fn who(name: &str, team: Option<&str>) -> Identity {
        Identity {
            name: name.into(),
            team: team.map(Into::into),
            kind: IdentityKind::Key,
            groups: vec![],
        }
    }

    /// Admits `n` requests of `who` (each holding 10 tokens) and settles each later at 7 tokens
    /// and 3 micro-dollars.
    async fn settle_n(l: &Limiter, who: &Identity, n: usize) {
        for _ in 0..n {
            let t = l.admit(Some(who), Some(10), NOW).await.expect("admitted");
            l.settle_later(Arc::new(t), Some(7), Some(3), true);
        }
    }

    /// What `scope` used today: (tokens, micro-dollars).
    async fn today(l: &Limiter, scope: Scope) -> (u64, u64) {
        let Spent {
            tokens_today,
            usd_micros_today,
            ..
        } = l.spent(&scope, NOW).await.expect("the store answers");
        (tokens_today, usd_micros_today)
    }

    fn key(name: &str) -> Scope {
        Scope::Key(name.into())
    }

    /// A per-key rate limit: admission checks it, settling changes nothing it reads.
    fn unbudgeted() -> LimitPolicy {
        LimitPolicy {
            per_key: Limits {
                requests_per_minute: Some(10_000),
                ..Limits::default()
            },
            ..LimitPolicy::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn totals_nobody_limits_wait_and_share_one_store_operation() {
        let store = Arc::new(Counting::default());
        let l = Limiter::new(unbudgeted(), store.clone());
        let (alice, bob) = (who("alice", Some("platform")), who("bob", None));
        let start = Instant::now();
        settle_n(&l, &alice, 60).await;
        settle_n(&l, &bob, 40).await;
        tokio::task::yield_now().await;
        assert_eq!(store.adds(), 0, "nothing is applied before the linger ends");
        // Paused time: the clock moves only when every task waits.
        store.added(1).await;
        assert_eq!((store.adds(), start.elapsed()), (1, LINGER));
        assert_eq!(today(&l, key("alice")).await, (420, 180));
        assert_eq!(today(&l, key("bob")).await, (280, 120));
        assert_eq!(today(&l, Scope::Team("platform".into())).await, (420, 180));
        assert_eq!(today(&l, Scope::Global).await, (700, 300));
        // Flushed on demand: at once, in one more operation.
        let start = Instant::now();
        settle_n(&l, &alice, 50).await;
        l.flush_settlements().await;
        assert_eq!((store.adds(), start.elapsed()), (2, Duration::ZERO));
        assert_eq!(today(&l, key("alice")).await, (770, 330));
        assert_eq!(today(&l, Scope::Global).await, (1050, 450));
        // Nothing pending: no operation.
        l.flush_settlements().await;
        assert_eq!(store.adds(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn amounts_a_check_reads_are_applied_without_waiting() {
        let budget = |per_key, per_team, global| LimitPolicy {
            per_key,
            per_team,
            global,
            ..LimitPolicy::default()
        };
        let none = Limits::default();
        for (what, policy) in [
            (
                "a tokens-per-minute correction",
                budget(
                    Limits {
                        tokens_per_minute: Some(10_000),
                        ..none
                    },
                    none,
                    none,
                ),
            ),
            (
                "a team's tokens per day",
                budget(
                    none,
                    Limits {
                        tokens_per_day: Some(1_000_000),
                        ..none
                    },
                    none,
                ),
            ),
            (
                "the gateway's dollars per month",
                budget(
                    none,
                    none,
                    Limits {
                        usd_per_month: Some(100.0),
                        ..none
                    },
                ),
            ),
        ] {
            let store = Arc::new(Counting::default());
            let l = Limiter::new(policy, store.clone());
            let start = Instant::now();
            // A request whose totals only reports read, then one that a check reads: both
            // go in the prompt flush.
            settle_n(&l, &who("bob", None), 1).await;
            settle_n(&l, &who("alice", Some("platform")), 1).await;
            store.added(1).await;
            assert!(start.elapsed() < LINGER, "{what}: {:?}", start.elapsed());
            assert_eq!(store.adds(), 1, "{what}");
            assert_eq!(today(&l, key("bob")).await, (7, 3), "{what}");
            assert_eq!(today(&l, Scope::Global).await, (14, 6), "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_pending_totals_are_applied_without_waiting() {
        let store = Arc::new(Counting::default());
        let l = Limiter::new(unbudgeted(), store.clone());
        let start = Instant::now();
        // Each key's scope, and the global one: the last key fills the totals.
        for i in 0..MAX_PENDING - 1 {
            settle_n(&l, &who(&format!("dev{i}"), None), 1).await;
        }
        store.added(1).await;
        assert!(start.elapsed() < LINGER, "{:?}", start.elapsed());
        assert_eq!(store.adds(), 1);
        let n = (MAX_PENDING - 1) as u64;
        assert_eq!(today(&l, Scope::Global).await, (7 * n, 3 * n));
        assert_eq!(today(&l, key("dev0")).await, (7, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_limiter_applies_what_is_pending() {
        let store = Arc::new(Counting::default());
        let l = Limiter::new(unbudgeted(), store.clone());
        let start = Instant::now();
        settle_n(&l, &who("alice", None), 10).await;
        drop(l);
        store.added(1).await;
        assert!(start.elapsed() < LINGER, "{:?}", start.elapsed());
        let reader = Limiter::new(unbudgeted(), store.clone());
        assert_eq!(today(&reader, key("alice")).await, (70, 30));
        assert_eq!(today(&reader, Scope::Global).await, (70, 30));
        // The task has ended: it held the only other reference to the store.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(reader);
        assert_eq!(Arc::strong_count(&store), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn what_arrives_during_a_flush_goes_in_the_next() {
        let store = Arc::new(Counting {
            gate: Some(Semaphore::new(0)),
            ..Counting::default()
        });
        let policy = LimitPolicy {
            per_key: Limits {
                tokens_per_minute: Some(10_000),
                ..Limits::default()
            },
            ..LimitPolicy::default()
        };
        let l = Limiter::new(policy, store.clone());
        let alice = who("alice", None);
        settle_n(&l, &alice, 1).await;
        store.called(1).await;
        // The first flush waits at the gate; twenty more requests settle meanwhile.
        settle_n(&l, &alice, 20).await;
        store.gate.as_ref().expect("gated").add_permits(10);
        l.flush_settlements().await;
        assert_eq!(store.adds(), 2);
        assert_eq!(today(&l, key("alice")).await, (147, 63));
    }

    #[test]
    fn settling_outlives_the_runtime_its_task_started_on() {
        let store = Arc::new(Counting::default());
        let l = Limiter::new(unbudgeted(), store.clone());
        let alice = who("alice", None);
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime")
        };
        let first = runtime();
        first.block_on(async {
            settle_n(&l, &alice, 3).await;
            // The task starts and lingers.
            tokio::task::yield_now().await;
        });
        drop(first);
        assert_eq!(store.adds(), 0);
        // A new task on the next runtime applies what was pending with what comes.
        runtime().block_on(async {
            settle_n(&l, &alice, 2).await;
            l.flush_settlements().await;
            assert_eq!(store.adds(), 1);
            assert_eq!(today(&l, key("alice")).await, (35, 15));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_flush_the_store_refuses_goes_to_the_failure_hook() {
        let store = Arc::new(Counting {
            fail: true,
            ..Counting::default()
        });
        let failures = Arc::new(AtomicUsize::new(0));
        let seen = failures.clone();
        let l = Limiter::new(unbudgeted(), store.clone()).on_store_failure(move |f| {
            assert_eq!(
                (f.operation, f.error.as_str(), f.admitted),
                ("settle", "down", true)
            );
            seen.fetch_add(1, Ordering::Relaxed);
        });
        settle_n(&l, &who("alice", None), 5).await;
        l.flush_settlements().await;
        assert_eq!((store.adds(), failures.load(Ordering::Relaxed)), (1, 1));
    }

    #[test]
    fn totals_sum_per_scope_and_period_in_first_seen_order() {
        let (p, q) = (Periods::at(1_795_869_296), Periods::at(1_795_869_296 + 60));
        let alice = Scope::Key("alice".into());
        let a = |tpm, tokens: i64, usd: i64| Amounts {
            tpm,
            tokens_day: tokens,
            tokens_month: tokens,
            usd_day: usd,
            usd_month: usd,
        };
        let mut t = Totals::default();
        t.add(&alice, &p, a(-10, 100, 5));
        t.add(&Scope::Global, &p, a(0, 100, 5));
        t.add(&alice, &p, a(4, 50, 0));
        t.add(&alice, &q, a(0, 1, 1));
        let got: Vec<_> = t.drain().collect();
        assert_eq!(
            got,
            vec![
                ((alice.clone(), p), a(-6, 150, 5)),
                ((Scope::Global, p), a(0, 100, 5)),
                ((alice, q), a(0, 1, 1)),
            ]
        );
        assert!(t.drain().next().is_none());
    }
}
