//! Prometheus metrics: OpenTelemetry GenAI semantic conventions plus agw's own counters.
//!
//! [`Metrics`] owns a registry. It is a [`UsageSink`]: give it to the
//! [`UsageLayer`](crate::usage::UsageLayer) and every response feeds the GenAI histograms and
//! the request, token and cost counters. The rest is recorded by calls from where it happens
//! (guard outcomes, upstream errors, limit rejections, reloads). [`Metrics::encode`] renders
//! the OpenMetrics text exposition, which Prometheus scrapes (serve it with
//! [`CONTENT_TYPE`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gen_ai_client_token_usage` | histogram | `gen_ai_token_type` (`input`, `output`), `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model` |
//! | `gen_ai_client_operation_duration_seconds` | histogram | the GenAI labels, `error_type` |
//! | `gen_ai_server_time_to_first_token_seconds` | histogram | the GenAI labels (streams only) |
//! | `agw_requests_total` | counter | `route`, `backend`, `status` (+ `identity`, `team`): every answer, from the usage layer's reports and [`Metrics::answered`] |
//! | `agw_tokens_total` | counter | `backend`, `model`, `kind` (`input`, `output`, `cache_write`, `cache_read`) (+ `identity`, `team`) |
//! | `agw_cost_usd_total` | counter | `backend`, `model` (+ `identity`, `team`) |
//! | `agw_added_latency_seconds` | histogram | `route`: agw's own time to response headers, upstream excluded |
//! | `agw_guard_outcomes_total` | counter | `rule`, `action`, `direction` (`request`, `response`) |
//! | `agw_limit_rejections_total` | counter | `limit` (e.g. `tokens_per_minute`), `scope` (`key`, `team`, `global`, `store`) |
//! | `agw_limit_store_failures_total` | counter | `operation`, `outcome` (`admitted`, `refused`) |
//! | `agw_auth_failures_total` | counter | `reason` |
//! | `agw_upstream_errors_total` | counter | `backend`, `cause` |
//! | `agw_reloads_total` | counter | `result` (`ok`, `error`) |
//! | `agw_last_reload_success_timestamp_seconds` | gauge | (the start until the first reload) |
//!
//! `identity` and `team` labels exist only with [`Metrics::new`]`(true)`: one series per
//! person can be many series.
//!
//! # Example
//!
//! ```
//! use agw_tower::metrics::Metrics;
//!
//! let metrics = Metrics::new(false);
//! metrics.reload(true, 1_800_000_000);
//! metrics.guard_outcome("credit-card", "reject", "request");
//! let text = metrics.encode();
//! assert!(text.contains("agw_guard_outcomes_total{rule=\"credit-card\",action=\"reject\",direction=\"request\"} 1"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

mod series;
mod timer;

pub use timer::{UpstreamTimer, UpstreamTimerLayer, UpstreamTiming};

use crate::usage::{UsageReport, UsageSink};
use agw_core::route::RouteKind;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use series::SeriesCache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GenAi {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_response_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Tokens {
    gen_ai_token_type: &'static str,
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_response_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Duration_ {
    gen_ai_operation_name: &'static str,
    gen_ai_provider_name: String,
    gen_ai_request_model: String,
    gen_ai_response_model: String,
    error_type: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Requests {
    route: &'static str,
    backend: String,
    status: u16,
    #[prometheus(flatten)]
    who: Who,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenKind {
    backend: String,
    model: String,
    kind: &'static str,
    #[prometheus(flatten)]
    who: Who,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Cost {
    backend: String,
    model: String,
    #[prometheus(flatten)]
    who: Who,
}

/// The `identity` and `team` labels: both (a caller without a team has `team=""`) with
/// identity labels on, neither without — not two empty labels on every series (black-box
/// review). Last in its label set: a flattened set takes the encoder.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
struct Who(Option<(String, String)>);

impl EncodeLabelSet for Who {
    fn encode(&self, mut encoder: LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some((identity, team)) = &self.0 {
            ("identity", identity.as_str()).encode(encoder.encode_label())?;
            ("team", team.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A counter's value that saturates at `u64::MAX` instead of wrapping: a counter never goes
/// down (black-box review: an absurd usage figure wrapped `agw_tokens_total`).
#[derive(Debug, Default)]
pub(crate) struct Saturating(AtomicU64);

impl prometheus_client::metrics::counter::Atomic<u64> for Saturating {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        let add = |n: u64| Some(n.saturating_add(v));
        // `add` always gives a value: the update cannot fail.
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, add)
            .unwrap_or_else(|n| n)
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter of whole things that never wraps.
pub(crate) type Count = Counter<u64, Saturating>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Guard {
    rule: String,
    action: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rejection {
    limit: &'static str,
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreFailure {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Upstream {
    backend: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Result_ {
    result: &'static str,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn token_buckets() -> Histogram {
    // The GenAI conventions' advice: powers of 4 from 1 to 4^13.
    Histogram::new((0..14).map(|i| 4f64.powi(i)))
}

fn duration_buckets() -> Histogram {
    Histogram::new([
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ])
}

fn ttft_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ])
}

fn added_buckets() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    ])
}

/// agw's metrics. See the [module docs](self). Share it in an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    identity_label: bool,
    token_usage: Hist<Tokens>,
    duration: Hist<Duration_>,
    ttft: Hist<GenAi>,
    requests: Family<Requests, Count>,
    tokens: Family<TokenKind, Count>,
    cost: Family<Cost, Counter<f64, AtomicU64>>,
    added: Hist<Route>,
    guard: Family<Guard, Counter>,
    rejections: Family<Rejection, Counter>,
    store_failures: Family<StoreFailure, Counter>,
    auth_failures: Family<Reason, Counter>,
    upstream_errors: Family<Upstream, Counter>,
    reloads: Family<Result_, Counter>,
    last_reload: Gauge,
    /// The series of every kind of report seen, so a report is counted without building and
    /// hashing its label sets again.
    series: SeriesCache,
    /// The model names used so far (at most [`MAX_MODELS`]) and their label values.
    models: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The most distinct model names that become label values; later ones are counted as
/// `other`. Clients choose the model they ask for: without a bound, a client sending random
/// names would grow the registry (and every scrape) without end.
pub const MAX_MODELS: usize = 200;

/// The longest model name that gets a label of its own (bytes); a longer one is `other`.
pub const MAX_MODEL_LABEL: usize = 128;

fn operation(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Messages | RouteKind::Completions | RouteKind::Responses => "chat",
        RouteKind::Complete | RouteKind::LegacyCompletions => "text_completion",
        RouteKind::Embeddings => "embeddings",
        _ => "other",
    }
}

impl Metrics {
    /// A registry with every metric; `identity_label` adds `identity` and `team` labels to
    /// the request, token and cost counters.
    pub fn new(identity_label: bool) -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            identity_label,
            token_usage: Family::new_with_constructor(token_buckets),
            duration: Family::new_with_constructor(duration_buckets),
            ttft: Family::new_with_constructor(ttft_buckets),
            requests: Family::default(),
            tokens: Family::default(),
            cost: Family::default(),
            added: Family::new_with_constructor(added_buckets),
            guard: Family::default(),
            rejections: Family::default(),
            store_failures: Family::default(),
            auth_failures: Family::default(),
            upstream_errors: Family::default(),
            reloads: Family::default(),
            last_reload: Gauge::default(),
            registry: Registry::default(),
            series: SeriesCache::default(),
            models: Default::default(),
        };
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request (OpenTelemetry gen_ai.client.token.usage)",
            m.token_usage.clone(),
        );
        registry.register(
            "gen_ai_client_operation_duration_seconds",
            "Duration of GenAI operations (OpenTelemetry gen_ai.client.operation.duration)",
            m.duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed bytes (OpenTelemetry gen_ai.server.time_to_first_token)",
            m.ttft.clone(),
        );
        registry.register("agw_requests", "Requests answered", m.requests.clone());
        registry.register("agw_tokens", "Tokens used, by kind", m.tokens.clone());
        registry.register("agw_cost_usd", "Spend in US dollars", m.cost.clone());
        registry.register(
            "agw_added_latency_seconds",
            "agw's own time to response headers, the upstream's excluded",
            m.added.clone(),
        );
        registry.register("agw_guard_outcomes", "Guard rule outcomes", m.guard.clone());
        registry.register(
            "agw_limit_rejections",
            "Requests refused by a rate limit or budget",
            m.rejections.clone(),
        );
        registry.register(
            "agw_limit_store_failures",
            "Limit store failures and timeouts",
            m.store_failures.clone(),
        );
        registry.register(
            "agw_auth_failures",
            "Requests refused for their credential",
            m.auth_failures.clone(),
        );
        registry.register(
            "agw_upstream_errors",
            "Upstream failures by cause",
            m.upstream_errors.clone(),
        );
        registry.register("agw_reloads", "Configuration reloads", m.reloads.clone());
        registry.register(
            "agw_last_reload_success_timestamp_seconds",
            "When the configuration last loaded successfully (Unix seconds)",
            m.last_reload.clone(),
        );
        // Both reload series exist from the start (a rate over them needs a first sample), and
        // the configuration loaded at start counts as the last success.
        for result in ["ok", "error"] {
            let _ = m.reloads.get_or_create(&Result_ { result });
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        m.last_reload
            .set(i64::try_from(started).unwrap_or(i64::MAX));
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A guard rule's outcome (`action`: `reject`, `mask`, `audit`; `direction`: `request` or
    /// `response`). agw's access log calls it for every rule that matched a request or a
    /// response, with the strongest action taken on it.
    pub fn guard_outcome(&self, rule: &str, action: &str, direction: &'static str) {
        self.guard
            .get_or_create(&Guard {
                rule: rule.to_owned(),
                action: action.to_owned(),
                direction,
            })
            .inc();
    }

    /// A request refused by a limit (`limit`: [`LimitKind::name`](crate::limit::LimitKind::name)
    /// or `store_unavailable`; `scope`: `key`, `team`, `global` or `store`).
    pub fn limit_rejection(&self, limit: &'static str, scope: &'static str) {
        self.rejections
            .get_or_create(&Rejection { limit, scope })
            .inc();
    }

    /// Counts a rejection as the limit layer reports it.
    pub fn rejection(&self, r: &crate::limit::Rejection) {
        match r {
            crate::limit::Rejection::Limited { scope, kind, .. } => {
                self.limit_rejection(kind.name(), scope.kind())
            }
            crate::limit::Rejection::Unavailable => {
                self.limit_rejection("store_unavailable", "store")
            }
        }
    }

    /// A request answered before the usage layer (a refused credential, request or limit:
    /// responses without [`Reported`](crate::usage::Reported)), for `agw_requests_total`; the
    /// usage layer's reports count the rest.
    pub fn answered(
        &self,
        route: RouteKind,
        backend: &str,
        status: u16,
        who: Option<&crate::auth::Identity>,
    ) {
        self.requests
            .get_or_create(&Requests {
                route: route.name(),
                backend: backend.to_owned(),
                status,
                who: self.labels_of(who),
            })
            .inc();
    }

    /// A limit store failure (wire it to [`Limiter::on_store_failure`](crate::limit::Limiter::on_store_failure)).
    pub fn store_failure(&self, f: &crate::limit::StoreFailure) {
        self.store_failures
            .get_or_create(&StoreFailure {
                operation: f.operation,
                outcome: if f.admitted { "admitted" } else { "refused" },
            })
            .inc();
    }

    /// A refused credential (`reason`: `missing`, `invalid`, `store`).
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&Reason {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// An upstream failure (`cause`: `connect`, `timeout`, `tls`, `reset`, `status_5xx`, ...).
    pub fn upstream_error(&self, backend: &str, cause: &str) {
        self.upstream_errors
            .get_or_create(&Upstream {
                backend: backend.to_owned(),
                cause: cause.to_owned(),
            })
            .inc();
    }

    /// A configuration reload; `ok` also sets the last-success time (`now`, Unix seconds).
    pub fn reload(&self, ok: bool, now: u64) {
        self.reloads
            .get_or_create(&Result_ {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        if ok {
            self.last_reload.set(now as i64);
        }
    }

    /// agw's own time for a request of `route`, the upstream's excluded.
    pub fn added_latency(&self, route: RouteKind, d: Duration) {
        self.added
            .get_or_create(&Route {
                route: route.name(),
            })
            .observe(d.as_secs_f64());
    }
}

impl UsageSink for Metrics {
    fn report(&self, r: &UsageReport) {
        let s = self.series.get(r, self.identity_label);
        s.requests
            .get_or_init(|| {
                self.requests
                    .get_or_create(&Requests {
                        route: r.route.name(),
                        backend: r.backend.as_deref().unwrap_or("").to_owned(),
                        status: r.status.as_u16(),
                        who: self.identity(r),
                    })
                    .clone()
            })
            .inc();
        if let (Some(upstream), Some(headers)) = (r.upstream, r.time_to_headers) {
            s.added
                .get_or_init(|| {
                    self.added
                        .get_or_create(&Route {
                            route: r.route.name(),
                        })
                        .clone()
                })
                .observe(headers.saturating_sub(upstream).as_secs_f64());
        }
        let op = operation(r.route);
        if op == "other" {
            return;
        }
        let admit = r.status.is_success();
        let gen_ai = || GenAi {
            gen_ai_operation_name: op,
            gen_ai_provider_name: r.provider.as_deref().unwrap_or("").to_owned(),
            gen_ai_request_model: self.model_label(r.request_model.as_deref(), admit),
            gen_ai_response_model: self.model_label(r.response_model.as_deref(), admit),
        };
        s.duration
            .get_or_init(|| {
                let g = gen_ai();
                self.duration
                    .get_or_create(&Duration_ {
                        gen_ai_operation_name: g.gen_ai_operation_name,
                        gen_ai_provider_name: g.gen_ai_provider_name,
                        gen_ai_request_model: g.gen_ai_request_model,
                        gen_ai_response_model: g.gen_ai_response_model,
                        error_type: (!r.status.is_success()).then(|| r.status.as_u16().to_string()),
                    })
                    .clone()
            })
            .observe(r.duration.as_secs_f64());
        if r.streamed
            && r.status.is_success()
            && let Some(t) = r.time_to_first_byte
        {
            s.ttft
                .get_or_init(|| self.ttft.get_or_create(&gen_ai()).clone())
                .observe(t.as_secs_f64());
        }
        let Some(usage) = r.usage else { return };
        for (i, (ty, n)) in [("input", usage.input_total()), ("output", usage.output)]
            .into_iter()
            .enumerate()
        {
            s.token_usage[i]
                .get_or_init(|| {
                    let g = gen_ai();
                    self.token_usage
                        .get_or_create(&Tokens {
                            gen_ai_token_type: ty,
                            gen_ai_operation_name: g.gen_ai_operation_name,
                            gen_ai_provider_name: g.gen_ai_provider_name,
                            gen_ai_request_model: g.gen_ai_request_model,
                            gen_ai_response_model: g.gen_ai_response_model,
                        })
                        .clone()
                })
                .observe(n as f64);
        }
        let model = || self.model_label(r.model(), admit);
        let backend = || r.backend.as_deref().unwrap_or("").to_owned();
        for (i, (kind, n)) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cache_write", usage.cache_write),
            ("cache_read", usage.cache_read),
        ]
        .into_iter()
        .enumerate()
        {
            if n > 0 {
                s.tokens[i]
                    .get_or_init(|| {
                        self.tokens
                            .get_or_create(&TokenKind {
                                backend: backend(),
                                model: model(),
                                kind,
                                who: self.identity(r),
                            })
                            .clone()
                    })
                    .inc_by(n);
            }
        }
        if let Some(c) = r.cost_micros {
            s.cost
                .get_or_init(|| {
                    self.cost
                        .get_or_create(&Cost {
                            backend: backend(),
                            model: model(),
                            who: self.identity(r),
                        })
                        .clone()
                })
                .inc_by(c as f64 / 1e6);
        }
    }
}

impl Metrics {
    /// The label value for a model name: the name while fewer than [`MAX_MODELS`] names are
    /// in use (or it is one of them), else `other`. Called when a series is first resolved.
    /// Only a successful response (`admit`) gives a new name a label: a client naming junk
    /// models that the provider refuses (a 404 costs nothing) would otherwise use up every
    /// slot, and each real model after them would be counted as `other` until a restart
    /// (found by the fifth review). A failed request of a model not yet named is `other`.
    fn model_label(&self, model: Option<&str>, admit: bool) -> String {
        let Some(model) = model.filter(|m| !m.is_empty()) else {
            return String::new();
        };
        if model.len() > MAX_MODEL_LABEL {
            // No model is named like that; a label that long makes every scrape as long.
            return "other".to_owned();
        }
        let mut known = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(label) = known.get(model) {
            return label.clone();
        }
        if admit && known.len() < MAX_MODELS {
            let label = label_value(model);
            known.insert(model.to_owned(), label.clone());
            return label;
        }
        "other".to_owned()
    }

    /// The `identity` and `team` labels of a report (none unless configured).
    fn identity(&self, r: &UsageReport) -> Who {
        self.labels_of(r.identity.as_ref())
    }

    /// The `identity` and `team` labels of a caller, where identities are labels. Capped as
    /// model names are: a name over [`MAX_MODEL_LABEL`] bytes is `other` (a JWT's `sub` is
    /// the identity provider's, and may be kilobytes: black-box review).
    fn labels_of(&self, who: Option<&crate::auth::Identity>) -> Who {
        if !self.identity_label {
            return Who(None);
        }
        let capped = |v: &str| {
            if v.len() > MAX_MODEL_LABEL {
                "other".to_owned()
            } else {
                label_value(v)
            }
        };
        Who(Some(match who {
            Some(i) => (
                capped(&i.name),
                i.team.as_deref().map_or_else(String::new, capped),
            ),
            None => (String::new(), String::new()),
        }))
    }
}

/// A label value from outside agw's configuration (a model name a client chose or an upstream
/// named, a token's `sub`; rule names are the operator's), escaped as the OpenMetrics text
/// format escapes it — `\` as `\\`, `"` as `\"`, a line feed as `\n` — since the encoder
/// writes values as they are (a client could otherwise write its own series into the scrape,
/// or break it). The escaping is one to one: two values never share a series (red-team rt4:
/// with each of them written `_`, the subjects `eve\nidentity=alice` and `eve_identity=alice`
/// did). Other characters, control characters among them, are valid in a label value as they
/// are. A value the secret detectors recognise (a key pasted as a model name) is `redacted`.
pub(crate) fn label_value(v: &str) -> String {
    // A credential anywhere in it, even glued to a model name (`claude-agw_...`).
    let mut found = Vec::new();
    agw_core::detect::credential_spans(v, &mut found);
    if !found.is_empty() {
        return "redacted".to_owned();
    }
    // And a payment card (a model name a client chose): the access log masks one too
    // (twelfth session's black-box review: `claude-sonnet-4111111111111111` was a label).
    let mut cards = Vec::new();
    agw_core::detect::DetectorSet::new([agw_core::detect::Detector::CreditCard])
        .find(v.as_bytes(), &mut cards);
    if !cards.is_empty() {
        return "redacted".to_owned();
    }
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `c` can stand in a label value as written: the text exposition does not escape
/// `"`, `\` or control characters. Configuration names (backends, rules) are checked with it.
pub fn label_safe(c: char) -> bool {
    c != '"' && c != '\\' && !c.is_control()
}

#[cfg(test)]
mod tests;
