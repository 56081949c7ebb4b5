//! Settling off the response path: one task per limiter charges what finished requests used,
//! batched.

use super::clock::Periods;
use super::limiter::{
    DAY_TTL, FailureHook, LimitPolicy, MAX_AMOUNT, MINUTE_TTL, MONTH_TTL, StoreFailure, Ticket,
    counter_key, within,
};
use super::rejection::{LimitKind, Scope};
use super::store::{Add, LimitStore};
use crate::hash::FastState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The most settlements charged in one store operation.
const BATCH: usize = 256;

/// One finished request, as [`Limiter::settle_later`](super::Limiter::settle_later) queues it.
pub(super) struct Settle {
    pub ticket: Arc<Ticket>,
    pub tokens: Option<u64>,
    pub cost_micros: Option<u64>,
    pub success: bool,
}

/// The queue to the settling task, and what a task needs to start. Dropped with its limiter:
/// the task then charges what is queued and ends.
pub(super) struct Settler {
    work: Arc<Work>,
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<Settle>>>,
}

struct Work {
    policy: LimitPolicy,
    prefix: Arc<str>,
    store: Arc<dyn LimitStore>,
    on_failure: Option<FailureHook>,
}

impl Settler {
    pub fn new(
        policy: LimitPolicy,
        prefix: Arc<str>,
        store: Arc<dyn LimitStore>,
        on_failure: Option<FailureHook>,
    ) -> Self {
        Self {
            work: Arc::new(Work {
                policy,
                prefix,
                store,
                on_failure,
            }),
            tx: std::sync::Mutex::new(None),
        }
    }

    /// Queues `s`, starting the task on the current runtime if there is none yet (or its
    /// runtime has gone, as between tests); outside a runtime `s` is dropped.
    pub fn send(&self, s: Settle) {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let s = match tx.as_ref() {
            Some(tx) => match tx.send(s) {
                Ok(()) => return,
                Err(mpsc::error::SendError(s)) => s,
            },
            None => s,
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (new_tx, rx) = mpsc::unbounded_channel();
        let _ = new_tx.send(s);
        rt.spawn(self.work.clone().run(rx));
        *tx = Some(new_tx);
    }
}

impl Work {
    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Settle>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut totals = Totals::default();
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            // Let the requests that are ready finish first: under load, one store operation
            // then charges many of them.
            tokio::task::yield_now().await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            let mut adds = Vec::new();
            if let [s] = &batch[..] {
                // One request (an idle or lightly loaded gateway): its scopes are distinct,
                // so there is nothing to sum.
                ticket_adds(
                    &self.policy,
                    &self.prefix,
                    &s.ticket,
                    s.tokens,
                    s.cost_micros,
                    s.success,
                    &mut adds,
                );
                batch.clear();
            } else {
                for s in batch.drain(..) {
                    let amounts =
                        settle_amounts(&self.policy, &s.ticket, s.tokens, s.cost_micros, s.success);
                    for (scope, a) in amounts {
                        totals.add(scope, &s.ticket.periods(), a);
                    }
                }
                for ((scope, periods), a) in totals.drain() {
                    a.adds(&self.prefix, &scope, &periods, &mut adds);
                }
            }
            apply_adds(
                &*self.store,
                self.policy.timeout,
                self.on_failure.as_ref(),
                adds,
            )
            .await;
        }
    }
}

/// The amounts of a batch summed per scope and periods, in the order they first appear: the
/// counter names are built once per scope and batch, not per request.
#[derive(Default)]
struct Totals {
    /// Scopes are named by agw (see [`FastState`]).
    hasher: FastState,
    /// Indexes into `list` by the hash of their scope and periods.
    at: HashMap<u64, Vec<usize>, FastState>,
    list: Vec<((Scope, Periods), Amounts)>,
}

impl Totals {
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
