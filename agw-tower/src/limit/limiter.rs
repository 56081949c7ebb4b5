//! The limiter: a policy of limits and budgets per key, per team and global, over a store.

use super::clock::{Periods, rfc3339};
use super::rejection::{LimitKind, Rejection, Scope, set};
use super::store::{Acquired, Add, Check, LimitStore};
use crate::auth::Identity;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;

/// Limits of one scope; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (every kind) per minute; in-flight requests hold their estimate.
    pub tokens_per_minute: Option<u64>,
    /// Token budget per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Token budget per UTC month.
    pub tokens_per_month: Option<u64>,
    /// Spend budget per UTC day, in dollars.
    pub usd_per_day: Option<f64>,
    /// Spend budget per UTC month, in dollars.
    pub usd_per_month: Option<f64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    fn has_rates(&self) -> bool {
        self.requests_per_minute.is_some() || self.tokens_per_minute.is_some()
    }

    fn has_budgets(&self) -> bool {
        self.tokens_per_day.is_some()
            || self.tokens_per_month.is_some()
            || self.usd_per_day.is_some()
            || self.usd_per_month.is_some()
    }
}

/// What to do when the store fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Admit the request (unlimited while the store is down).
    #[default]
    Open,
    /// Refuse the request with a 503.
    Closed,
}

/// The whole limit configuration.
#[derive(Debug, Clone)]
pub struct LimitPolicy {
    /// Limits of each key (or JWT subject).
    pub per_key: Limits,
    /// Limits of each team (a key's team).
    pub per_team: Limits,
    /// Limits of all traffic through this store.
    pub global: Limits,
    /// Tokens an in-flight request holds when its `max_tokens` is unknown.
    pub default_estimate: u64,
    /// The store fails: rate limits.
    pub on_error_limits: FailMode,
    /// The store fails: budgets.
    pub on_error_budgets: FailMode,
    /// How long to wait for the store.
    pub timeout: Duration,
    /// Prefix of counter names (separates deployments sharing one Redis).
    pub prefix: String,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            per_key: Limits::default(),
            per_team: Limits::default(),
            global: Limits::default(),
            default_estimate: 4096,
            on_error_limits: FailMode::Open,
            on_error_budgets: FailMode::Closed,
            timeout: Duration::from_millis(100),
            prefix: "agw".into(),
        }
    }
}

/// An admitted request: what it holds, to be settled from its actual usage.
#[derive(Debug, Clone)]
pub struct Ticket {
    scopes: Vec<Scope>,
    estimate: u64,
    periods: Periods,
    /// Per kind (requests, tokens): the limit and what remains, for the response headers.
    remaining: [Option<(u64, u64, u64)>; 2],
    /// The estimate is held in the minute counters (the store answered).
    held: bool,
}

impl Ticket {
    /// Adds `x-agw-ratelimit-{requests,tokens}-{limit,remaining,reset}` (the tightest scope).
    pub fn headers(&self, headers: &mut HeaderMap) {
        for (names, remaining) in HEADER_NAMES.iter().zip(&self.remaining) {
            if let Some((limit, remaining, reset)) = remaining {
                set(headers, names[0], limit.to_string());
                set(headers, names[1], remaining.to_string());
                set(headers, names[2], rfc3339(*reset));
            }
        }
    }
}

const HEADER_NAMES: [[&str; 3]; 2] = [
    [
        "x-agw-ratelimit-requests-limit",
        "x-agw-ratelimit-requests-remaining",
        "x-agw-ratelimit-requests-reset",
    ],
    [
        "x-agw-ratelimit-tokens-limit",
        "x-agw-ratelimit-tokens-remaining",
        "x-agw-ratelimit-tokens-reset",
    ],
];

/// A store failure, reported to the hook (for logs and metrics).
#[derive(Debug, Clone)]
pub struct StoreFailure {
    /// `acquire` or `settle`.
    pub operation: &'static str,
    /// What went wrong (a timeout or the store's error).
    pub error: String,
    /// Whether the request was admitted anyway.
    pub admitted: bool,
}

type FailureHook = Arc<dyn Fn(&StoreFailure) + Send + Sync>;
type RejectionHook = Arc<dyn Fn(&Rejection) + Send + Sync>;

/// Applies a [`LimitPolicy`] over a [`LimitStore`]. Build once; share in an `Arc`.
pub struct Limiter {
    policy: LimitPolicy,
    store: Arc<dyn LimitStore>,
    on_failure: Option<FailureHook>,
    on_rejection: Option<RejectionHook>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("policy", &self.policy)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter of `policy` over `store`.
    pub fn new(policy: LimitPolicy, store: Arc<dyn LimitStore>) -> Self {
        Self {
            policy,
            store,
            on_failure: None,
            on_rejection: None,
        }
    }

    /// Calls `hook` on every refused request (count it: [`Metrics::rejection`](crate::metrics::Metrics::rejection)).
    pub fn on_rejection(mut self, hook: impl Fn(&Rejection) + Send + Sync + 'static) -> Self {
        self.on_rejection = Some(Arc::new(hook));
        self
    }

    /// [`Limiter::admit`], calling the rejection hook on a refusal.
    ///
    /// # Errors
    ///
    /// As [`Limiter::admit`].
    pub async fn admit_reported(
        &self,
        who: Option<&Identity>,
        estimate: Option<u64>,
        now: u64,
    ) -> Result<Ticket, Rejection> {
        let r = self.admit(who, estimate, now).await;
        if let (Err(e), Some(hook)) = (&r, &self.on_rejection) {
            hook(e);
        }
        r
    }

    /// Calls `hook` on every store failure (log it, count it).
    pub fn on_store_failure(
        mut self,
        hook: impl Fn(&StoreFailure) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Arc::new(hook));
        self
    }

    /// The policy.
    pub fn policy(&self) -> &LimitPolicy {
        &self.policy
    }

    /// Whether the store answers (one read of one counter, within the store's timeout): the
    /// readiness check of a replica whose limits live in Redis.
    pub async fn ping(&self) -> Result<(), super::LimitStoreError> {
        let key = format!("{}:ping", self.policy.prefix);
        self.store.get(vec![key]).await.map(|_| ())
    }

    fn scopes(&self, who: Option<&Identity>) -> Vec<(Scope, &Limits)> {
        let mut out = Vec::with_capacity(3);
        if let Some(who) = who {
            out.push((Scope::Key(who.name.clone()), &self.policy.per_key));
            if let Some(t) = &who.team {
                out.push((Scope::Team(t.clone()), &self.policy.per_team));
            }
        }
        out.push((Scope::Global, &self.policy.global));
        out
    }

    fn counter(&self, scope: &Scope, what: impl std::fmt::Display) -> String {
        format!("{}:{}:{what}", self.policy.prefix, scope.id())
    }

    /// Checks and charges a request of `who` holding `estimate` tokens, at `now` (Unix s).
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to answer with.
    pub async fn admit(
        &self,
        who: Option<&Identity>,
        estimate: Option<u64>,
        now: u64,
    ) -> Result<Ticket, Rejection> {
        let estimate = estimate.unwrap_or(self.policy.default_estimate);
        let p = Periods::at(now);
        let scopes = self.scopes(who);
        let mut checks = Vec::new();
        let mut meta = Vec::new();
        for (scope, limits) in &scopes {
            // The counter name is formatted only for a limit that is set.
            let mut push = |kind: LimitKind,
                            limit: Option<u64>,
                            what: std::fmt::Arguments<'_>,
                            add,
                            ttl,
                            reset| {
                if let Some(limit) = limit {
                    checks.push(Check {
                        key: self.counter(scope, what),
                        limit,
                        add,
                        ttl,
                    });
                    meta.push((scope.clone(), kind, reset));
                }
            };
            let usd = |d: Option<f64>| d.map(|d| (d * 1e6).round() as u64);
            push(
                LimitKind::Requests,
                limits.requests_per_minute,
                format_args!("rpm:{}", p.minute),
                1,
                120,
                p.minute_end,
            );
            push(
                LimitKind::Tokens,
                limits.tokens_per_minute,
                format_args!("tpm:{}", p.minute),
                estimate,
                120,
                p.minute_end,
            );
            push(
                LimitKind::TokensPerDay,
                limits.tokens_per_day,
                format_args!("tok:d:{}", p.day),
                0,
                DAY_TTL,
                p.day_end,
            );
            push(
                LimitKind::TokensPerMonth,
                limits.tokens_per_month,
                format_args!("tok:m:{}", p.month),
                0,
                MONTH_TTL,
                p.month_end,
            );
            push(
                LimitKind::UsdPerDay,
                usd(limits.usd_per_day),
                format_args!("usd:d:{}", p.day),
                0,
                DAY_TTL,
                p.day_end,
            );
            push(
                LimitKind::UsdPerMonth,
                usd(limits.usd_per_month),
                format_args!("usd:m:{}", p.month),
                0,
                MONTH_TTL,
                p.month_end,
            );
        }
        let mut ticket = Ticket {
            scopes: scopes.iter().map(|(s, _)| s.clone()).collect(),
            estimate,
            periods: p,
            remaining: [None, None],
            held: false,
        };
        if checks.is_empty() {
            return Ok(ticket);
        }
        let limits: Vec<u64> = checks.iter().map(|c| c.limit).collect();
        let result = tokio::time::timeout(self.policy.timeout, self.store.acquire(checks)).await;
        let error = match result {
            Ok(Ok(Acquired::Admitted(values))) => {
                ticket.held = true;
                for (i, ((_, kind, reset), value)) in meta.iter().zip(values).enumerate() {
                    let slot = match kind {
                        LimitKind::Requests => 0,
                        LimitKind::Tokens => 1,
                        _ => continue,
                    };
                    let remaining = limits[i].saturating_sub(value);
                    if ticket.remaining[slot].is_none_or(|(_, r, _)| remaining < r) {
                        ticket.remaining[slot] = Some((limits[i], remaining, *reset));
                    }
                }
                return Ok(ticket);
            }
            Ok(Ok(Acquired::Refused { index, .. })) => {
                let (scope, kind, reset) = meta.swap_remove(index);
                return Err(Rejection::Limited {
                    scope,
                    kind,
                    limit: limits[index],
                    reset,
                    now,
                });
            }
            Ok(Err(e)) => e.0,
            Err(_) => format!("no answer within {:?}", self.policy.timeout),
        };
        let budgets = scopes.iter().any(|(_, l)| l.has_budgets());
        let rates = scopes.iter().any(|(_, l)| l.has_rates());
        let admitted = !(budgets && self.policy.on_error_budgets == FailMode::Closed
            || rates && self.policy.on_error_limits == FailMode::Closed);
        if let Some(hook) = &self.on_failure {
            hook(&StoreFailure {
                operation: "acquire",
                error,
                admitted,
            });
        }
        if admitted {
            Ok(ticket)
        } else {
            Err(Rejection::Unavailable)
        }
    }

    /// Charges a finished request: `tokens` and `cost_micros` actually used (`None` when the
    /// response carried no usage; `success` then decides whether the estimate stays charged).
    /// Spend and token totals are recorded per day and month for every scope, limited or not.
    pub async fn settle(
        &self,
        ticket: &Ticket,
        tokens: Option<u64>,
        cost_micros: Option<u64>,
        success: bool,
    ) {
        let p = &ticket.periods;
        let used = tokens.unwrap_or(if success { ticket.estimate } else { 0 });
        let mut adds = Vec::new();
        for scope in &ticket.scopes {
            let limits = match scope {
                Scope::Key(_) => &self.policy.per_key,
                Scope::Team(_) => &self.policy.per_team,
                Scope::Global => &self.policy.global,
            };
            if ticket.held && limits.tokens_per_minute.is_some() {
                let delta = used as i64 - ticket.estimate as i64;
                if delta != 0 {
                    adds.push(Add {
                        key: self.counter(scope, format_args!("tpm:{}", p.minute)),
                        delta,
                        ttl: 120,
                    });
                }
            }
            if used > 0 {
                adds.push(Add {
                    key: self.counter(scope, format_args!("tok:d:{}", p.day)),
                    delta: used as i64,
                    ttl: DAY_TTL,
                });
                adds.push(Add {
                    key: self.counter(scope, format_args!("tok:m:{}", p.month)),
                    delta: used as i64,
                    ttl: MONTH_TTL,
                });
            }
            if let Some(c) = cost_micros.filter(|&c| c > 0) {
                adds.push(Add {
                    key: self.counter(scope, format_args!("usd:d:{}", p.day)),
                    delta: c as i64,
                    ttl: DAY_TTL,
                });
                adds.push(Add {
                    key: self.counter(scope, format_args!("usd:m:{}", p.month)),
                    delta: c as i64,
                    ttl: MONTH_TTL,
                });
            }
        }
        if adds.is_empty() {
            return;
        }
        let error = match tokio::time::timeout(self.policy.timeout * 4, self.store.add(adds)).await
        {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.0,
            Err(_) => "no answer in time".to_owned(),
        };
        if let Some(hook) = &self.on_failure {
            hook(&StoreFailure {
                operation: "settle",
                error,
                admitted: true,
            });
        }
    }

    /// Spend so far in micro-dollars and tokens, for `scope`, today and this month (for
    /// reports such as `agw keys list`).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn spent(&self, scope: &Scope, now: u64) -> Result<Spent, super::LimitStoreError> {
        let p = Periods::at(now);
        let keys = [
            format!("usd:d:{}", p.day),
            format!("usd:m:{}", p.month),
            format!("tok:d:{}", p.day),
            format!("tok:m:{}", p.month),
        ]
        .iter()
        .map(|w| self.counter(scope, w))
        .collect();
        let v = self.store.get(keys).await?;
        Ok(Spent {
            usd_micros_today: v[0],
            usd_micros_month: v[1],
            tokens_today: v[2],
            tokens_month: v[3],
        })
    }
}

/// What a scope used today and this month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Micro-dollars today (UTC).
    pub usd_micros_today: u64,
    /// Micro-dollars this month.
    pub usd_micros_month: u64,
    /// Tokens today.
    pub tokens_today: u64,
    /// Tokens this month.
    pub tokens_month: u64,
}

/// Day counters outlive their day by a week (reports), month counters by about a year.
const DAY_TTL: u64 = 8 * 86_400;
const MONTH_TTL: u64 = 400 * 86_400;
