//! The limiter: a policy of limits and budgets per key, per team and global, over a store.

use super::clock::{Periods, rfc3339};
use super::rejection::{Fit, LimitKind, Rejection, Scope};
use super::settle::{Settler, apply_adds, settle_failed, ticket_adds};
use super::store::{Acquired, Check, CounterKey, LimitStore};
use crate::auth::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::{Arc, Mutex, OnceLock};
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

    /// Whether a token or dollar limit is set: tokens per minute, or a token or dollar budget.
    fn counts_tokens(&self) -> bool {
        self.tokens_per_minute.is_some()
            || self.tokens_per_day.is_some()
            || self.tokens_per_month.is_some()
            || self.usd_per_day.is_some()
            || self.usd_per_month.is_some()
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

/// Output tokens assumed for a request that names no `max_tokens`: what it holds in flight
/// (the default of [`LimitPolicy::default_estimate`]) and what usage accounting estimates when
/// the response reports none.
pub const DEFAULT_ESTIMATE_TOKENS: u64 = 4096;

/// The most output tokens a request's `max_tokens` holds in flight (2^18 = 262,144, above every
/// model's output limit): a client's `max_tokens` of 10^15 must not hold a team's or the
/// gateway's tokens-per-minute for as long as it runs.
pub const MAX_OUTPUT_ESTIMATE: u64 = 1 << 18;

/// The output all of a request's completions may generate: its cap (`default` without one),
/// at most [`MAX_OUTPUT_ESTIMATE`] each, times the completions it asks for (at most
/// [`MAX_CHOICES`](agw_core::usage::MAX_CHOICES)).
pub fn output_of(shape: &agw_core::usage::RequestShape, default: u64) -> u64 {
    shape
        .max_tokens
        .unwrap_or(default)
        .min(MAX_OUTPUT_ESTIMATE)
        .saturating_mul(shape.choices.clamp(1, agw_core::usage::MAX_CHOICES))
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            per_key: Limits::default(),
            per_team: Limits::default(),
            global: Limits::default(),
            default_estimate: DEFAULT_ESTIMATE_TOKENS,
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
    scopes: Scopes,
    estimate: u64,
    /// The micro-dollars held against dollar budgets.
    cost_estimate: u64,
    periods: Periods,
    /// Per kind (requests, tokens): the tightest limit and what remains of it.
    remaining: [Option<Remaining>; 2],
    /// The minute's end as a header value (both kinds reset with the minute), formatted once
    /// per minute by the limiter rather than per response.
    minute_reset: Option<HeaderValue>,
    /// The estimate is held in the minute counters (the store answered).
    held: bool,
    /// Counts the request among those holding part of its scopes' budgets, until it is dropped.
    _flight: Option<Arc<Flight>>,
}

/// Requests holding part of each scope's token limits and budgets in this process, counted
/// with what they hold while in flight: what tells "less is left than this request may use,
/// but requests in flight may give enough back" (a 429, retry soon) from "less is left, and
/// not enough can come back" (a 400 for a budget, the window's end for a rate).
type InFlight = Arc<Mutex<std::collections::HashMap<Scope, Held>>>;

/// What the requests in flight of one scope hold.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    requests: u32,
    tokens: u64,
    micros: u64,
}

/// One request's place in [`InFlight`], given back when it settles or when the last clone of
/// its ticket is dropped, whichever comes first.
#[derive(Debug)]
struct Flight {
    in_flight: InFlight,
    scopes: Scopes,
    tokens: u64,
    micros: u64,
    released: std::sync::atomic::AtomicBool,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.release();
    }
}

impl Flight {
    fn release(&self) {
        if self
            .released
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for scope in self.scopes.as_slice() {
            if let Some(h) = map.get_mut(scope) {
                h.requests = h.requests.saturating_sub(1);
                h.tokens = h.tokens.saturating_sub(self.tokens);
                h.micros = h.micros.saturating_sub(self.micros);
                if h.requests == 0 {
                    map.remove(scope);
                }
            }
        }
    }
}

/// What remains of one rate limit, for the response headers.
#[derive(Debug, Clone)]
struct Remaining {
    /// The limit, as the limiter formatted it once.
    limit: HeaderValue,
    left: u64,
    /// Unix seconds.
    reset: u64,
}

/// A request's scopes, most specific first: its key, its key's team, global (no allocation).
#[derive(Debug, Clone)]
struct Scopes {
    list: [Scope; 3],
    len: usize,
}

impl Scopes {
    fn of(who: Option<&Identity>) -> Self {
        let mut list = [Scope::Global, Scope::Global, Scope::Global];
        let mut len = 0;
        if let Some(who) = who {
            list[0] = Scope::Key(who.name.clone());
            len = 1;
            if let Some(t) = &who.team {
                list[1] = Scope::Team(t.clone());
                len = 2;
            }
        }
        // `Global` is already in place.
        Self { list, len: len + 1 }
    }

    fn as_slice(&self) -> &[Scope] {
        &self.list[..self.len]
    }
}

impl Ticket {
    /// No longer counts what the request holds among what requests in flight hold: settled,
    /// it is charged what it used instead.
    fn release_hold(&self) {
        if let Some(f) = &self._flight {
            f.release();
        }
    }

    /// The tokens held in flight.
    pub(super) fn estimate(&self) -> u64 {
        self.estimate
    }

    /// The micro-dollars held in flight.
    pub(super) fn cost_estimate(&self) -> u64 {
        self.cost_estimate
    }

    /// Whether the estimate is held in the minute counters.
    pub(super) fn held(&self) -> bool {
        self.held
    }

    /// Adds `x-agw-ratelimit-{requests,tokens}-{limit,remaining,reset}` (the tightest scope).
    pub fn headers(&self, headers: &mut HeaderMap) {
        for (names, remaining) in HEADER_NAMES.iter().zip(&self.remaining) {
            if let Some(r) = remaining {
                headers.insert(names[0].clone(), r.limit.clone());
                headers.insert(names[1].clone(), number_value(r.left));
                let reset = match &self.minute_reset {
                    Some(v) if r.reset == self.periods.minute_end => v.clone(),
                    _ => reset_value(r.reset),
                };
                headers.insert(names[2].clone(), reset);
            }
        }
    }

    /// The scopes the request was admitted in (key, team, global).
    pub(super) fn scopes(&self) -> &[Scope] {
        self.scopes.as_slice()
    }

    /// The periods the request was admitted in.
    pub(super) fn periods(&self) -> Periods {
        self.periods
    }
}

/// Limit kinds (`LimitKind`'s variants): checks per scope at most.
const KINDS: usize = 6;

const HEADER_NAMES: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-agw-ratelimit-requests-limit"),
        HeaderName::from_static("x-agw-ratelimit-requests-remaining"),
        HeaderName::from_static("x-agw-ratelimit-requests-reset"),
    ],
    [
        HeaderName::from_static("x-agw-ratelimit-tokens-limit"),
        HeaderName::from_static("x-agw-ratelimit-tokens-remaining"),
        HeaderName::from_static("x-agw-ratelimit-tokens-reset"),
    ],
];

/// A number as a header value: one allocation (`HeaderValue::from(u64)` takes two).
fn number_value(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_bytes(digits.format(n).as_bytes()).expect("digits are a valid header value")
}

fn reset_value(t: u64) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(rfc3339(t)))
        .expect("an RFC 3339 time is a valid header value")
}

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

pub(super) type FailureHook = Arc<dyn Fn(&StoreFailure) + Send + Sync>;
type RejectionHook = Arc<dyn Fn(&Rejection) + Send + Sync>;

/// Applies a [`LimitPolicy`] over a [`LimitStore`]. Build once; share in an `Arc`.
pub struct Limiter {
    policy: LimitPolicy,
    /// `policy.prefix`, shared by every counter key.
    prefix: Arc<str>,
    store: Arc<dyn LimitStore>,
    on_failure: Option<FailureHook>,
    on_rejection: Option<RejectionHook>,
    /// The pending totals of [`Limiter::settle_later`] and their task, made on first use.
    settler: OnceLock<Settler>,
    /// The current minute's end and its header value.
    minute_reset: Mutex<Option<(u64, HeaderValue)>>,
    /// Requests in flight holding part of a budget, per scope.
    in_flight: InFlight,
    /// The rate limits of the policy as header values (a few numbers, formatted once).
    limit_values: Vec<(u64, HeaderValue)>,
    /// Prices, for the cost a request holds against dollar budgets in flight.
    prices: Option<Arc<agw_core::price::PriceTable>>,
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
        let mut limit_values: Vec<(u64, HeaderValue)> = Vec::new();
        for l in [&policy.per_key, &policy.per_team, &policy.global] {
            for n in [l.requests_per_minute, l.tokens_per_minute]
                .into_iter()
                .flatten()
            {
                let n = n.min(MAX_AMOUNT);
                if !limit_values.iter().any(|(m, _)| *m == n) {
                    limit_values.push((n, number_value(n)));
                }
            }
        }
        Self {
            prefix: policy.prefix.as_str().into(),
            limit_values,
            policy,
            store,
            on_failure: None,
            on_rejection: None,
            settler: OnceLock::new(),
            minute_reset: Mutex::new(None),
            in_flight: InFlight::default(),
            prices: None,
        }
    }

    /// Calls `hook` on every refused request (count it: [`Metrics::rejection`](crate::metrics::Metrics::rejection)).
    pub fn on_rejection(mut self, hook: impl Fn(&Rejection) + Send + Sync + 'static) -> Self {
        self.on_rejection = Some(Arc::new(hook));
        self
    }

    /// Prices requests with `prices` for [`Limiter::cost_estimate`]: what a request holds
    /// against dollar budgets while in flight.
    pub fn with_prices(mut self, prices: Arc<agw_core::price::PriceTable>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// The micro-dollars a request holds against dollar budgets while in flight: its
    /// `estimate` tokens (as [`Limiter::estimate`] made it, input included) at its model's
    /// price, the input at the input rate and the rest at the output rate. 0 without prices
    /// or a model (a dollar budget is then charged when the response reports its cost).
    pub fn cost_estimate(&self, model: Option<&str>, input_tokens: u64, estimate: u64) -> u64 {
        let (Some(prices), Some(model)) = (&self.prices, model) else {
            return 0;
        };
        let input = input_tokens.min(estimate);
        let usage = agw_core::usage::Usage {
            input,
            output: estimate - input,
            ..Default::default()
        };
        prices.cost_micros(model, &usage).unwrap_or(0)
    }

    /// Whether any token or dollar limit is set: only then does a request's input need an
    /// estimate ([`input_estimate`](agw_core::usage::input_estimate), a pass over its body).
    pub fn holds_tokens(&self) -> bool {
        [
            &self.policy.per_key,
            &self.policy.per_team,
            &self.policy.global,
        ]
        .iter()
        .any(|l| l.counts_tokens())
    }

    /// Whether a token or dollar limit applies to `who`: the global limits, a caller's per-key
    /// limits, and a caller with a team its team's. A request whose usage agw cannot read or
    /// hold (an OpenAI batch, an Assistants run) is refused where one does.
    pub fn counts_tokens_of(&self, who: Option<&Identity>) -> bool {
        self.policy.global.counts_tokens()
            || who.is_some_and(|w| {
                self.policy.per_key.counts_tokens()
                    || (w.team.is_some() && self.policy.per_team.counts_tokens())
            })
    }

    /// The tokens a request holds while in flight: its output cap (`max_tokens`, or the
    /// policy's default estimate without one), at most [`MAX_OUTPUT_ESTIMATE`] — a cap no
    /// model produces cannot hold a team's or the gateway's whole minute — plus the estimate
    /// of its input ([`input_estimate`](agw_core::usage::input_estimate)).
    pub fn estimate(&self, max_tokens: Option<u64>, input_tokens: u64) -> u64 {
        let shape = agw_core::usage::RequestShape {
            max_tokens,
            ..Default::default()
        };
        self.estimate_shape(&shape, input_tokens)
    }

    /// [`Limiter::estimate`] for a request of `shape`: each completion it asks for (OpenAI's
    /// `n`, legacy completions' `best_of`) may generate up to the output cap
    /// ([`output_of`]; found by the tenth red-team review: `n: 128` held one completion's
    /// worth and spent 120 times a budget).
    pub fn estimate_shape(&self, shape: &agw_core::usage::RequestShape, input_tokens: u64) -> u64 {
        output_of(shape, self.policy.default_estimate)
            .saturating_add(input_tokens)
            .min(MAX_AMOUNT)
    }

    /// [`Limiter::admit_costing`], calling the rejection hook on a refusal.
    ///
    /// # Errors
    ///
    /// As [`Limiter::admit`].
    pub async fn admit_reported(
        &self,
        who: Option<&Identity>,
        estimate: Option<u64>,
        cost_micros: u64,
        now: u64,
    ) -> Result<Ticket, Rejection> {
        let r = self.admit_costing(who, estimate, cost_micros, now).await;
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

    /// Gives back to the store what this replica holds charged ahead of use (leases of rate
    /// limits in Redis), so that other replicas may use it at once: on a graceful shutdown.
    /// Requests admitted later lease again.
    ///
    /// # Errors
    ///
    /// The store failed (what was held then stays charged until its minute ends).
    pub async fn give_back(&self) -> Result<(), super::LimitStoreError> {
        within(self.policy.timeout * 4, self.store.give_back())
            .await
            .unwrap_or_else(|_| Err(super::LimitStoreError("no answer in time".into())))
    }

    /// The policy.
    pub fn policy(&self) -> &LimitPolicy {
        &self.policy
    }

    /// Whether the store answers (one read of one counter, within the store's timeout): the
    /// readiness check of a replica whose limits live in Redis.
    pub async fn ping(&self) -> Result<(), super::LimitStoreError> {
        // The global request counter of minute 0: never written, always there to read.
        let key = counter_key(
            &self.prefix,
            &Scope::Global,
            LimitKind::Requests,
            &Periods::at(0),
        );
        self.store.get(vec![key]).await.map(|_| ())
    }

    /// A rate limit as a header value: the policy's own limits were formatted once.
    fn limit_value(&self, limit: u64) -> HeaderValue {
        self.limit_values
            .iter()
            .find(|(n, _)| *n == limit)
            .map_or_else(|| number_value(limit), |(_, v)| v.clone())
    }

    /// The header value of the minute ending at `end`, formatted once per minute.
    fn minute_reset(&self, end: u64) -> HeaderValue {
        let mut cached = self.minute_reset.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((at, v)) if *at == end => v.clone(),
            _ => {
                let v = reset_value(end);
                *cached = Some((end, v.clone()));
                v
            }
        }
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
        self.admit_costing(who, estimate, 0, now).await
    }

    /// [`Limiter::admit`], also holding `cost_micros` (the request's estimated cost) against
    /// the dollar budgets while it is in flight, so that requests in flight together cannot
    /// overrun them; settling replaces it with the actual cost.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to answer with.
    pub async fn admit_costing(
        &self,
        who: Option<&Identity>,
        estimate: Option<u64>,
        cost_micros: u64,
        now: u64,
    ) -> Result<Ticket, Rejection> {
        let estimate = estimate
            .unwrap_or(self.policy.default_estimate)
            .min(MAX_AMOUNT);
        let cost_estimate = cost_micros.min(MAX_AMOUNT);
        let p = Periods::at(now);
        let scopes = Scopes::of(who);
        // At most one check per scope and kind: no regrowth.
        let mut checks = Vec::with_capacity(scopes.as_slice().len() * KINDS);
        // Per check: its scope's index, its kind, its limit, when it resets (at most 3 scopes
        // × 6 kinds; on the stack).
        let mut meta = [(0, LimitKind::Requests, 0, 0); 3 * KINDS];
        for (i, scope) in scopes.as_slice().iter().enumerate() {
            let limits = self.policy.limits_of(scope);
            let usd = |d: Option<f64>| d.map(|d| (d * 1e6).round() as u64);
            for (kind, limit, add, ttl, reset) in [
                (
                    LimitKind::Requests,
                    limits.requests_per_minute,
                    1,
                    MINUTE_TTL,
                    p.minute_end,
                ),
                (
                    LimitKind::Tokens,
                    limits.tokens_per_minute,
                    estimate,
                    MINUTE_TTL,
                    p.minute_end,
                ),
                // Token budgets hold the estimate too, so that requests in flight together
                // cannot overrun them; the response's usage corrects it.
                (
                    LimitKind::TokensPerDay,
                    limits.tokens_per_day,
                    estimate,
                    DAY_TTL,
                    p.day_end,
                ),
                (
                    LimitKind::TokensPerMonth,
                    limits.tokens_per_month,
                    estimate,
                    MONTH_TTL,
                    p.month_end,
                ),
                (
                    LimitKind::UsdPerDay,
                    usd(limits.usd_per_day),
                    cost_estimate,
                    DAY_TTL,
                    p.day_end,
                ),
                (
                    LimitKind::UsdPerMonth,
                    usd(limits.usd_per_month),
                    cost_estimate,
                    MONTH_TTL,
                    p.month_end,
                ),
            ] {
                if let Some(limit) = limit {
                    let limit = limit.min(MAX_AMOUNT);
                    meta[checks.len()] = (i, kind, limit, reset);
                    checks.push(Check {
                        key: counter_key(&self.prefix, scope, kind, &p),
                        limit,
                        add,
                        ttl,
                    });
                }
            }
        }
        let meta = &meta[..checks.len()];
        // A request that may use more than a whole budget can never fit it: refused before the
        // store (an empty counter would otherwise admit it, and it would spend the budget many
        // times over).
        for (check, &(scope, kind, limit, reset)) in checks.iter().zip(meta) {
            if kind.is_budget() && check.add > limit {
                return Err(Rejection::Limited {
                    scope: scopes.as_slice()[scope].clone(),
                    kind,
                    limit,
                    reset,
                    now,
                    fit: Fit::TooLarge { hold: check.add },
                });
            }
        }
        let mut ticket = Ticket {
            scopes,
            estimate,
            cost_estimate,
            periods: p,
            remaining: [None, None],
            minute_reset: None,
            held: false,
            _flight: None,
        };
        if checks.is_empty() {
            return Ok(ticket);
        }
        let result = within(self.policy.timeout, self.store.acquire(checks)).await;
        let error = match result {
            Ok(Ok(Acquired::Admitted(values))) => {
                ticket.held = true;
                // Requests in flight are counted where they hold something a refusal can
                // be told to wait for (budgets, tokens per minute).
                if meta
                    .iter()
                    .any(|(_, kind, _, _)| kind.is_budget() || *kind == LimitKind::Tokens)
                {
                    let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                    for scope in ticket.scopes.as_slice() {
                        let h = map.entry(scope.clone()).or_default();
                        h.requests += 1;
                        h.tokens = h.tokens.saturating_add(estimate);
                        h.micros = h.micros.saturating_add(cost_estimate);
                    }
                    drop(map);
                    ticket._flight = Some(Arc::new(Flight {
                        in_flight: self.in_flight.clone(),
                        scopes: ticket.scopes.clone(),
                        tokens: estimate,
                        micros: cost_estimate,
                        released: Default::default(),
                    }));
                }
                for (&(_, kind, limit, reset), value) in meta.iter().zip(values) {
                    let slot = match kind {
                        LimitKind::Requests => 0,
                        LimitKind::Tokens => 1,
                        _ => continue,
                    };
                    let left = limit.saturating_sub(value);
                    if ticket.remaining[slot]
                        .as_ref()
                        .is_none_or(|r| left < r.left)
                    {
                        ticket.remaining[slot] = Some(Remaining {
                            limit: self.limit_value(limit),
                            left,
                            reset,
                        });
                    }
                }
                if ticket.remaining.iter().any(Option::is_some) {
                    ticket.minute_reset = Some(self.minute_reset(p.minute_end));
                }
                return Ok(ticket);
            }
            Ok(Ok(Acquired::Refused { index, current })) => {
                let Some(&(scope, kind, limit, reset)) = meta.get(index) else {
                    return Err(Rejection::Unavailable);
                };
                let hold = match kind {
                    LimitKind::Tokens | LimitKind::TokensPerDay | LimitKind::TokensPerMonth => {
                        estimate
                    }
                    LimitKind::UsdPerDay | LimitKind::UsdPerMonth => cost_estimate,
                    _ => 0,
                };
                // Spent; or not enough left for this request, while requests in flight hold some
                // (a retry may fit) or none does (it will not).
                let scope_ref = &ticket.scopes()[scope];
                let held = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(scope_ref)
                    .copied()
                    .unwrap_or_default();
                let held = match kind {
                    LimitKind::UsdPerDay | LimitKind::UsdPerMonth => held.micros,
                    _ => held.tokens,
                };
                let left = limit.saturating_sub(current);
                // It may fit once the requests in flight here settle, if they used nothing.
                let may_fit = hold > 0
                    && held > 0
                    && current.saturating_sub(held).saturating_add(hold) <= limit;
                let fit = if may_fit {
                    Fit::Held { left, hold }
                } else if current >= limit || hold == 0 {
                    Fit::UsedUp
                } else {
                    Fit::Short { left, hold }
                };
                return Err(Rejection::Limited {
                    scope: ticket.scopes()[scope].clone(),
                    kind,
                    limit,
                    reset,
                    now,
                    fit,
                });
            }
            Ok(Err(e)) => e.0,
            Err(_) => format!("no answer within {:?}", self.policy.timeout),
        };
        let limits = ticket.scopes().iter().map(|s| self.policy.limits_of(s));
        let budgets = limits.clone().any(Limits::has_budgets);
        let rates = limits.into_iter().any(Limits::has_rates);
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
        ticket.release_hold();
        let mut adds = Vec::new();
        ticket_adds(
            &self.policy,
            &self.prefix,
            ticket,
            tokens,
            cost_micros,
            success,
            &mut adds,
        );
        apply_adds(
            &*self.store,
            self.policy.timeout,
            self.on_failure.as_ref(),
            adds,
        )
        .await;
    }

    /// [`Limiter::settle`] off the caller's path, without a task per request. A store that
    /// applies adds without waiting ([`LimitStore::adds_now`]: the in-memory one) is charged
    /// at once, on the caller's thread. Otherwise the request's counter changes are summed,
    /// per scope, into totals that one task per limiter (started on first use, on the current
    /// tokio runtime) applies in one store operation (one Redis round trip): at once when a
    /// check reads them (a tokens-per-minute correction, a total whose budget is set), else at
    /// most 100 ms after the first of them arrived — totals only reports read wait, so that
    /// many requests share one operation. Dropping the limiter applies what is pending; so
    /// does [`Limiter::flush_settlements`]. Outside a tokio runtime, with no task running,
    /// nothing is charged.
    pub fn settle_later(
        &self,
        ticket: Arc<Ticket>,
        tokens: Option<u64>,
        cost_micros: Option<u64>,
        success: bool,
    ) {
        ticket.release_hold();
        if self.store.adds_now() {
            let mut adds = Vec::new();
            ticket_adds(
                &self.policy,
                &self.prefix,
                &ticket,
                tokens,
                cost_micros,
                success,
                &mut adds,
            );
            if adds.is_empty() {
                return;
            }
            if let Err(e) = self.store.add_now(adds) {
                settle_failed(self.on_failure.as_ref(), e.0);
            }
            return;
        }
        let settler = self.settler.get_or_init(|| {
            Settler::new(
                self.policy.clone(),
                self.prefix.clone(),
                self.store.clone(),
                self.on_failure.clone(),
            )
        });
        settler.send(&ticket, tokens, cost_micros, success);
    }

    /// Applies what [`Limiter::settle_later`] has summed and not applied yet, now, and waits
    /// until the store has taken it (a failure goes to [`Limiter::on_store_failure`]'s hook):
    /// for a graceful shutdown, and for reading totals that must be current.
    pub async fn flush_settlements(&self) {
        if let Some(settler) = self.settler.get() {
            settler.flush().await;
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
            LimitKind::UsdPerDay,
            LimitKind::UsdPerMonth,
            LimitKind::TokensPerDay,
            LimitKind::TokensPerMonth,
        ]
        .into_iter()
        .map(|kind| counter_key(&self.prefix, scope, kind, &p))
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

/// The largest amount (tokens, micro-dollars, limit) a counter is charged or compared with:
/// 2^53, exact in the Lua doubles of the Redis script, and far enough from `i64::MAX` that no
/// sum of a few overflows Redis's counters. A client's `max_tokens` can be any number; past
/// this it means the same.
pub(super) const MAX_AMOUNT: u64 = 1 << 53;

/// Minute counters live two minutes; day counters outlive their day by a week (reports),
/// month counters by about a year.
pub(super) const MINUTE_TTL: u64 = 120;
pub(super) const DAY_TTL: u64 = 8 * 86_400;
pub(super) const MONTH_TTL: u64 = 400 * 86_400;

impl LimitPolicy {
    pub(super) fn limits_of(&self, scope: &Scope) -> &Limits {
        match scope {
            Scope::Key(_) => &self.per_key,
            Scope::Team(_) => &self.per_team,
            Scope::Global => &self.global,
        }
    }
}

/// The counter of `scope` and `kind` in the periods `p`.
pub(super) fn counter_key(
    prefix: &Arc<str>,
    scope: &Scope,
    kind: LimitKind,
    p: &Periods,
) -> CounterKey {
    let period = match kind {
        LimitKind::Requests | LimitKind::Tokens => p.minute,
        LimitKind::TokensPerDay | LimitKind::UsdPerDay => u64::from(p.day),
        LimitKind::TokensPerMonth | LimitKind::UsdPerMonth => u64::from(p.month),
    };
    CounterKey {
        prefix: prefix.clone(),
        scope: scope.clone(),
        kind,
        period,
    }
}

/// `f` within `timeout`; a store that answers at once (the in-memory one) arms no timer.
pub(super) async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    let mut f = std::pin::pin!(f);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => tokio::time::timeout(timeout, f).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counter names are shared with running replicas and stored spend: they must not change.
    #[test]
    fn counter_names_are_stable() {
        let p = Periods::at(1_795_869_296);
        let key = Scope::Key("alice".into());
        let team = Scope::Team("platform".into());
        for (scope, kind, want) in [
            (&key, LimitKind::Requests, "agw:k:alice:rpm:29931154"),
            (&key, LimitKind::Tokens, "agw:k:alice:tpm:29931154"),
            (
                &team,
                LimitKind::TokensPerDay,
                "agw:t:platform:tok:d:20261128",
            ),
            (
                &team,
                LimitKind::TokensPerMonth,
                "agw:t:platform:tok:m:202611",
            ),
            (&Scope::Global, LimitKind::UsdPerDay, "agw:g:usd:d:20261128"),
            (&Scope::Global, LimitKind::UsdPerMonth, "agw:g:usd:m:202611"),
        ] {
            assert_eq!(counter_key(&"agw".into(), scope, kind, &p).name(), want);
        }
    }

    #[test]
    fn ticket_headers_reuse_the_minute_value() {
        let t = Ticket {
            scopes: Scopes::of(None),
            estimate: 1,
            cost_estimate: 0,
            periods: Periods::at(1_795_869_296),
            remaining: [
                Some(Remaining {
                    limit: number_value(10),
                    left: 9,
                    reset: 1_795_869_300,
                }),
                Some(Remaining {
                    limit: number_value(100),
                    left: 1,
                    reset: 1_795_872_000,
                }),
            ],
            minute_reset: Some(reset_value(1_795_869_300)),
            held: true,
            _flight: None,
        };
        let mut h = HeaderMap::new();
        t.headers(&mut h);
        let get = |n: &str| h.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("x-agw-ratelimit-requests-limit"), "10");
        assert_eq!(get("x-agw-ratelimit-tokens-limit"), "100");
        assert_eq!(get("x-agw-ratelimit-requests-remaining"), "9");
        assert_eq!(
            get("x-agw-ratelimit-requests-reset"),
            "2026-11-28T12:35:00Z"
        );
        assert_eq!(get("x-agw-ratelimit-tokens-remaining"), "1");
        assert_eq!(get("x-agw-ratelimit-tokens-reset"), "2026-11-28T13:20:00Z");
    }
}
