//! The team features from configuration: one plain-data [`TeamConfig`] (the `auth`, `redis`,
//! `limits`, `prices` and `metrics` sections of agw's YAML, and a backend's `access`) built
//! into the shared pieces the layers need.
//!
//! The binary deserializes the sections (after `${VAR}` expansion) and calls
//! [`TeamConfig::build`] once at start (and on reload); the [`Team`] it gets holds the
//! authenticator, the limiter (over Redis or memory), the metrics registry and the price table,
//! and makes the layers: [`Team::auth_layer`], [`Team::limit_layer`], [`Team::usage_layer`].
//!
//! # Example
//!
//! ```
//! use agw_tower::team::TeamConfig;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config: TeamConfig = serde_json::from_str(r#"{
//!     "limits": {"per_key": {"requests_per_minute": 60, "budget": {"usd_per_month": 300}}},
//!     "prices": [{"model": "claude-sonnet-*", "input": 3, "output": 15, "cache_write": 3.75, "cache_read": 0.3}],
//!     "metrics": {"identity_label": false}
//! }"#).unwrap();
//! let team = config.build().await.unwrap();
//! assert!(team.limiter.is_some());
//! assert!(team.metrics.encode().contains("agw_requests"));
//! # });
//! ```

use crate::after::AfterResponse;
use crate::auth::jwt::{Jwks, JwksSource, JwtConfig};
use crate::auth::{Access, AuthLayer, Authenticator, FileKeyStore, KeyStore};
use crate::limit::{FailMode, LimitLayer, LimitPolicy, Limiter, Limits, MemoryStore};
use crate::metrics::Metrics;
use crate::usage::UsageLayer;
use agw_core::price::{Price, PriceTable};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The team sections of agw's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// `auth`: client credentials.
    #[serde(default)]
    pub auth: AuthConfig,
    /// `redis`: a shared store (absent or an empty `url`: in memory).
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// `limits`.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `prices`, first match wins.
    #[serde(default)]
    pub prices: Vec<PriceEntry>,
    /// `metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `auth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `keys`: gateway-issued keys.
    #[serde(default)]
    pub keys: Option<KeysConfig>,
    /// `jwt`: tokens from the identity provider.
    #[serde(default)]
    pub jwt: Option<JwtSection>,
    /// `allow_unauthenticated`: let requests without a credential through.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

/// `auth.keys`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The key file (single instance). With `redis`, keys live in Redis instead.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `auth.jwt`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSection {
    /// A JWKS file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`https://`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Required `iss`.
    pub issuer: String,
    /// Required audience.
    pub audience: String,
    /// The groups claim.
    #[serde(default)]
    pub group_claim: Option<String>,
    /// The team claim (a string): the token holder's team, as a key's `--team`.
    #[serde(default)]
    pub team_claim: Option<String>,
    /// Clock leeway (default 60).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// JWKS refresh interval (default 600).
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
}

fn default_leeway() -> u64 {
    60
}

fn default_refresh() -> u64 {
    600
}

/// `redis`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`; empty: no Redis.
    #[serde(default)]
    pub url: Option<String>,
    /// The longest a request waits for Redis (default 100).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Prefix of every Redis key (default `agw`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// What fails open and what closed.
    #[serde(default)]
    pub on_error: OnError,
    /// A PEM bundle of the CAs that sign a `rediss://` server's certificate (a private CA);
    /// without it, the bundled Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_timeout() -> u64 {
    100
}

fn default_prefix() -> String {
    "agw".into()
}

/// `redis.on_error`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnError {
    /// Rate limits (default `allow`).
    #[serde(default = "allow")]
    pub limits: Verdict,
    /// Budgets (default `deny`).
    #[serde(default = "deny")]
    pub budgets: Verdict,
}

impl Default for OnError {
    fn default() -> Self {
        OnError {
            limits: Verdict::Allow,
            budgets: Verdict::Deny,
        }
    }
}

fn allow() -> Verdict {
    Verdict::Allow
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

fn deny() -> Verdict {
    Verdict::Deny
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fail open.
    Allow,
    /// Fail closed.
    Deny,
}

impl From<Verdict> for FailMode {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Allow => FailMode::Open,
            Verdict::Deny => FailMode::Closed,
        }
    }
}

/// `limits`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Tokens held in flight without `max_tokens` (default 4096).
    #[serde(default)]
    pub default_estimate_tokens: Option<u64>,
    /// Each key.
    #[serde(default)]
    pub per_key: ScopeLimits,
    /// Each team.
    #[serde(default)]
    pub per_team: ScopeLimits,
    /// Everything.
    #[serde(default)]
    pub global: ScopeLimits,
}

/// Limits of one scope.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeLimits {
    /// Requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Day and month budgets.
    #[serde(default)]
    pub budget: Budget,
}

/// `budget`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Dollars per UTC day.
    #[serde(default)]
    pub usd_per_day: Option<f64>,
    /// Dollars per UTC month.
    #[serde(default)]
    pub usd_per_month: Option<f64>,
    /// Tokens per UTC day.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC month.
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
}

impl ScopeLimits {
    fn limits(&self, scope: &str) -> Result<Limits, TeamError> {
        let bad = |field: &str, v: String| {
            TeamError(format!(
                "limits.{scope}.{field}: {v} (a limit must be positive; leave it out for none)"
            ))
        };
        for (f, v) in [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
            ("budget.tokens_per_day", self.budget.tokens_per_day),
            ("budget.tokens_per_month", self.budget.tokens_per_month),
        ] {
            if v == Some(0) {
                return Err(bad(f, "0".into()));
            }
        }
        for (f, v) in [
            ("budget.usd_per_day", self.budget.usd_per_day),
            ("budget.usd_per_month", self.budget.usd_per_month),
        ] {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v <= 0.0) {
                return Err(bad(f, v.to_string()));
            }
        }
        Ok(Limits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.budget.tokens_per_day,
            tokens_per_month: self.budget.tokens_per_month,
            usd_per_day: self.budget.usd_per_day,
            usd_per_month: self.budget.usd_per_month,
        })
    }
}

/// One `prices` entry: dollars per million tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Model pattern (`*` globs).
    pub model: String,
    /// Uncached input.
    pub input: f64,
    /// Output.
    pub output: f64,
    /// Cache writes (default 0).
    #[serde(default)]
    pub cache_write: f64,
    /// Cache reads (default 0).
    #[serde(default)]
    pub cache_read: f64,
}

/// `metrics`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Label requests, tokens and cost with identity and team.
    #[serde(default)]
    pub identity_label: bool,
}

/// A backend's `access`. A list left out admits everyone; a list that is given must name
/// someone: `teams: []` reads as "no team may use it" to one reader and "no restriction" to
/// another, so it is refused (black-box review: it admitted everyone).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Key names or JWT subjects.
    #[serde(default)]
    pub identities: Option<Vec<String>>,
    /// Teams.
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// JWT groups.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Model patterns.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

impl AccessConfig {
    /// The access list.
    ///
    /// # Errors
    ///
    /// An empty list (named, with how to admit everyone), or a bad model pattern.
    pub fn build(&self) -> Result<Access, TeamError> {
        let lists = [
            ("identities", &self.identities),
            ("teams", &self.teams),
            ("groups", &self.groups),
            ("models", &self.models),
        ];
        if let Some((field, _)) = lists
            .iter()
            .find(|(_, l)| l.as_ref().is_some_and(Vec::is_empty))
        {
            return Err(TeamError(format!(
                "access.{field}: an empty list admits no one; remove `{field}` to admit everyone"
            )));
        }
        Access::any()
            .identities(self.identities.iter().flatten().cloned())
            .teams(self.teams.iter().flatten().cloned())
            .groups(self.groups.iter().flatten().cloned())
            .models(self.models.iter().flatten().cloned())
            .map_err(|e| TeamError(format!("access.models: {e}")))
    }
}

#[cfg(test)]
mod access_tests {
    use super::AccessConfig;

    /// Black-box review: `access: {teams: []}` admitted everyone.
    #[test]
    fn an_empty_access_list_is_refused_by_name() {
        for field in ["identities", "teams", "groups", "models"] {
            let c: AccessConfig = serde_json::from_str(&format!(r#"{{"{field}": []}}"#)).unwrap();
            let e = c.build().unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "access.{field}: an empty list admits no one; remove `{field}` to admit \
                     everyone"
                )
            );
        }
        let c: AccessConfig = serde_json::from_str(r#"{"teams": ["platform"]}"#).unwrap();
        assert!(c.build().is_ok());
        assert!(AccessConfig::default().build().is_ok());
    }
}

/// A team configuration that cannot be built: one line naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TeamError(pub String);

/// What [`TeamConfig::plan`] checked and compiled.
struct Plan {
    prices: PriceTable,
    jwks: Option<JwksSource>,
    /// Per key, per team, global.
    scopes: [Limits; 3],
}

/// The built team features, shared by every backend's stack.
#[derive(Debug)]
pub struct Team {
    /// Resolves credentials.
    pub authenticator: Arc<Authenticator>,
    /// The key store (`agw keys` works against it).
    pub keys: Option<Arc<dyn KeyStore>>,
    /// The file store, when keys are in a file (call `reload` on a configuration reload).
    pub key_file: Option<FileKeyStore>,
    /// The limiter; `None` when no limit is configured and no spend is tracked.
    pub limiter: Option<Arc<Limiter>>,
    /// The metrics registry (serve [`Metrics::encode`] at `/metrics` on the admin listener).
    pub metrics: Arc<Metrics>,
    /// Prices.
    pub prices: Arc<PriceTable>,
    /// Whether requests need a credential (false: `allow_unauthenticated`, or no auth at all).
    pub requires_credentials: bool,
    /// Whether client keys or JWTs are configured: the backends then authenticate callers.
    /// Fixed when the team is built, as the authenticator is (a reload keeps the team).
    pub authenticates: bool,
    /// Where usage reports go once the response is written; share it with the access log so
    /// that its lines see the reports ([`crate::after`]).
    pub after: AfterResponse,
    /// The Redis connection, when `redis.url` is set (made in the background: see
    /// [`RedisConnection::wait`](crate::limit::RedisConnection::wait)).
    #[cfg(feature = "redis")]
    pub redis: Option<crate::limit::RedisConnection>,
}

impl TeamConfig {
    /// What the team settings do, a line each (for `agw check` and the admin `/config`): who
    /// may call, the limits and budgets of each scope, where they are kept, prices and
    /// metrics. No secret: URLs are shown without their user-info and query.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut how = Vec::new();
        if let Some(k) = &self.auth.keys {
            how.push(match (&k.file, self.redis_url()) {
                (_, Some(_)) => "agw keys (in Redis)".to_owned(),
                (Some(f), None) => format!("agw keys (file {})", f.display()),
                (None, None) => "agw keys".to_owned(),
            });
        }
        if let Some(j) = &self.auth.jwt {
            let from = match (&j.jwks_file, &j.jwks_url) {
                (Some(f), _) => format!("JWKS file {}", f.display()),
                (None, Some(u)) => format!("JWKS {}", agw_core::provider::shown_url(u)),
                (None, None) => "no JWKS".to_owned(),
            };
            how.push(format!(
                "JWTs (issuer {}, audience {}, {from})",
                j.issuer, j.audience
            ));
        }
        out.push(match (how.is_empty(), self.auth.allow_unauthenticated) {
            (true, _) => "team: no client authentication".to_owned(),
            (false, false) => format!("team: clients authenticate with {}", how.join(" or ")),
            (false, true) => format!(
                "team: clients may authenticate with {}; requests without a credential pass as anonymous",
                how.join(" or ")
            ),
        });
        let scopes = [
            ("per key", &self.limits.per_key),
            ("per team", &self.limits.per_team),
            ("global", &self.limits.global),
        ];
        let mut limits = Vec::new();
        for (name, l) in scopes {
            let b = &l.budget;
            let parts: Vec<String> = [
                l.requests_per_minute.map(|v| format!("{v} requests/min")),
                l.tokens_per_minute.map(|v| format!("{v} tokens/min")),
                b.tokens_per_day.map(|v| format!("{v} tokens/day")),
                b.tokens_per_month.map(|v| format!("{v} tokens/month")),
                b.usd_per_day.map(|v| format!("${v}/day")),
                b.usd_per_month.map(|v| format!("${v}/month")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !parts.is_empty() {
                limits.push(format!("{name} {}", parts.join(", ")));
            }
        }
        out.push(if limits.is_empty() {
            "limits: none (usage and cost counted)".to_owned()
        } else {
            format!("limits: {}", limits.join("; "))
        });
        out.push(match (&self.redis, self.redis_url()) {
            (Some(r), Some(url)) => format!(
                "store: {} (timeout {} ms per operation, prefix {}, on error: limits {}, budgets {})",
                agw_core::provider::shown_url(url),
                r.timeout_ms,
                r.prefix,
                verdict(r.on_error.limits),
                verdict(r.on_error.budgets),
            ),
            _ => "store: in memory (this instance alone)".to_owned(),
        });
        out.push(if self.prices.is_empty() {
            "prices: none (cost not counted)".to_owned()
        } else {
            format!(
                "prices ($ per million tokens, input/output/cache write/cache read): {}",
                self.prices
                    .iter()
                    .map(|p| format!(
                        "{} {}/{}/{}/{}",
                        p.model, p.input, p.output, p.cache_write, p.cache_read
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        out.push(format!(
            "metrics: counted, at /metrics on the admin listener{}",
            if self.metrics.identity_label {
                ", labelled by identity and team"
            } else {
                ""
            }
        ));
        out
    }

    /// Whether Redis is configured (a non-empty `redis.url`).
    pub fn redis_url(&self) -> Option<&str> {
        self.redis
            .as_ref()
            .and_then(|r| r.url.as_deref())
            .filter(|u| !u.trim().is_empty())
    }

    /// The CAs of `redis.ca_file`, read, when it is set.
    #[cfg(feature = "redis")]
    fn redis_ca(&self) -> Result<Option<Vec<u8>>, TeamError> {
        let Some(path) = self.redis.as_ref().and_then(|r| r.ca_file.as_deref()) else {
            return Ok(None);
        };
        let pem = std::fs::read(path)
            .map_err(|e| TeamError(format!("redis.ca_file: {}: {e}", path.display())))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(TeamError(format!(
                "redis.ca_file: {}: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                path.display()
            )));
        }
        Ok(Some(pem))
    }

    /// Checks everything [`TeamConfig::build`] checks, without connecting or spawning
    /// anything: limits, prices, where keys are kept, the JWKS source (a file is read and
    /// parsed; a URL's scheme is checked, it is not fetched) and the Redis URL's form (Redis is
    /// not contacted). `agw check` and a reload run it, so neither accepts what `serve` would
    /// refuse at its next start.
    ///
    /// # Errors
    ///
    /// As [`TeamConfig::build`].
    pub fn validate(&self) -> Result<(), TeamError> {
        let plan = self.plan()?;
        #[cfg(feature = "redis")]
        if let Some(url) = self.redis_url() {
            match self.redis_ca()? {
                Some(ca) => crate::limit::RedisConnection::check_url_with_ca(url, &ca),
                None => crate::limit::RedisConnection::check_url(url),
            }
            .map_err(|e| TeamError(format!("redis.url: {}", e.0)))?;
        } else if self.redis.as_ref().is_some_and(|r| r.ca_file.is_some()) {
            return Err(TeamError(
                "redis.ca_file: set without redis.url, it has no connection to check".into(),
            ));
        }
        match plan.jwks {
            Some(JwksSource::File(path)) => {
                let doc = std::fs::read(&path)
                    .map_err(|e| TeamError(format!("auth.jwt: {}: {e}", path.display())))?;
                crate::auth::jwt::JwkSet::parse(&doc)
                    .map_err(|e| TeamError(format!("auth.jwt: {}: {e}", path.display())))?;
            }
            Some(JwksSource::Url(uri)) => crate::auth::jwt::check_jwks_url(&uri)
                .map_err(|e| TeamError(format!("auth.jwt: {e}")))?,
            _ => {}
        }
        // The key file `build` opens (keys not in Redis), read as it reads it (fourteenth
        // review: `agw check` said ok to a file that `serve` refused to start on).
        if let Some(path) = self.key_file() {
            FileKeyStore::open(path).map_err(|e| TeamError(format!("auth.keys.file: {e}")))?;
        }
        Ok(())
    }

    /// The key file keys are kept in: `auth.keys.file`, unless Redis keeps them.
    fn key_file(&self) -> Option<&std::path::Path> {
        if cfg!(feature = "redis") && self.redis_url().is_some() {
            return None;
        }
        self.auth.keys.as_ref()?.file.as_deref()
    }

    /// The checked, compiled parts of the configuration that need no I/O.
    fn plan(&self) -> Result<Plan, TeamError> {
        #[cfg(not(feature = "redis"))]
        if self.redis_url().is_some() {
            return Err(TeamError(
                "redis: this agw was built without the `redis` feature".into(),
            ));
        }
        let prices = PriceTable::new(self.prices.iter().map(|p| {
            (
                p.model.clone(),
                Price {
                    input: p.input,
                    output: p.output,
                    cache_write: p.cache_write,
                    cache_read: p.cache_read,
                },
            )
        }))
        .map_err(|e| TeamError(format!("prices: {e}")))?;
        if let Some(k) = &self.auth.keys
            && k.file.is_none()
            && self.redis_url().is_none()
        {
            return Err(TeamError(
                "auth.keys: set `file` (or configure redis to keep keys there)".into(),
            ));
        }
        let jwks = match &self.auth.jwt {
            None => None,
            Some(j) => Some(match (&j.jwks_file, &j.jwks_url) {
                (Some(f), None) => JwksSource::File(f.clone()),
                (None, Some(u)) => JwksSource::Url(
                    u.parse()
                        .map_err(|e| TeamError(format!("auth.jwt.jwks_url: {e}")))?,
                ),
                _ => {
                    return Err(TeamError(
                        "auth.jwt: set exactly one of jwks_file and jwks_url".into(),
                    ));
                }
            }),
        };
        let l = &self.limits;
        let scopes = [
            l.per_key.limits("per_key")?,
            l.per_team.limits("per_team")?,
            l.global.limits("global")?,
        ];
        let dollars = scopes
            .iter()
            .any(|l| l.usd_per_day.is_some() || l.usd_per_month.is_some());
        // A dollar budget must not be spent on a model without a price for free: such a model
        // is charged the table's highest rates.
        let prices = match (dollars, prices.is_empty()) {
            (true, true) => {
                return Err(TeamError(
                    "limits: a dollar budget (usd_per_day, usd_per_month) needs `prices`".into(),
                ));
            }
            (true, false) => {
                let highest = prices.highest();
                prices.with_fallback(highest)
            }
            (false, _) => prices,
        };
        Ok(Plan {
            prices,
            jwks,
            scopes,
        })
    }

    /// Builds everything: connects to Redis (waiting up to four times its timeout, then
    /// connecting in the background: see [`Team::redis`]), opens the key file,
    /// loads the JWKS (and spawns its refresh), compiles prices and limits. Needs a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// One line naming the section and the problem.
    pub async fn build(&self) -> Result<Team, TeamError> {
        let Plan {
            prices,
            jwks,
            scopes: [per_key, per_team, global],
        } = self.plan()?;
        let metrics = Arc::new(Metrics::new(self.metrics.identity_label));
        let redis_cfg = self.redis.clone();
        let timeout = Duration::from_millis(redis_cfg.as_ref().map_or(100, |r| r.timeout_ms));
        #[cfg(feature = "redis")]
        let redis_con = match self.redis_url() {
            // Given the time a connection takes, then left to connect in the background: a
            // gateway starts (not ready) while Redis is down, rather than exit.
            Some(url) => {
                let con = match self.redis_ca()? {
                    Some(ca) => crate::limit::RedisConnection::open_with_ca(url, &ca, timeout),
                    None => crate::limit::RedisConnection::open(url, timeout),
                }
                .map_err(|e| TeamError(format!("redis.url: {}", e.0)))?;
                let _ = con.wait(timeout * 4).await;
                Some(con)
            }
            None => None,
        };
        let prefix = redis_cfg
            .as_ref()
            .map_or_else(default_prefix, |r| r.prefix.clone());

        let mut auth = Authenticator::new().allow_unauthenticated(self.auth.allow_unauthenticated);
        let mut keys: Option<Arc<dyn KeyStore>> = None;
        let mut key_file = None;
        #[cfg(feature = "redis")]
        if let (Some(con), Some(_)) = (&redis_con, &self.auth.keys) {
            keys = Some(Arc::new(crate::auth::RedisKeyStore::new(
                con.clone(),
                prefix.clone(),
                timeout,
            )));
        }
        // Keys in a file unless Redis keeps them (`plan` refused keys with neither).
        if let Some(path) = self.key_file() {
            let store =
                FileKeyStore::open(path).map_err(|e| TeamError(format!("auth.keys.file: {e}")))?;
            key_file = Some(store.clone());
            keys = Some(Arc::new(store));
        }
        if let Some(k) = &keys {
            auth = auth.keys(k.clone());
        }
        if let (Some(j), Some(source)) = (&self.auth.jwt, jwks) {
            let mut config = JwtConfig::new(j.issuer.clone(), j.audience.clone());
            config.group_claim = j.group_claim.clone();
            config.team_claim = j.team_claim.clone();
            config.leeway = Duration::from_secs(j.leeway_seconds);
            // A JWKS URL that does not answer yet is logged and tried again: the gateway
            // starts, refusing tokens until then (client keys work).
            let jwks = Jwks::start(source, config)
                .await
                .map_err(|e| TeamError(format!("auth.jwt: {e}")))?;
            jwks.spawn_refresh(Duration::from_secs(j.refresh_seconds.max(10)));
            auth = auth.jwt(jwks);
        }
        let m = metrics.clone();
        auth = auth.on_failure(move |e| m.auth_failure(e.reason()));
        let requires_credentials = auth.requires_credentials();

        let policy = LimitPolicy {
            per_key,
            per_team,
            global,
            default_estimate: self
                .limits
                .default_estimate_tokens
                .unwrap_or(crate::limit::DEFAULT_ESTIMATE_TOKENS),
            on_error_limits: redis_cfg
                .as_ref()
                .map_or(FailMode::Open, |r| r.on_error.limits.into()),
            on_error_budgets: redis_cfg
                .as_ref()
                .map_or(FailMode::Closed, |r| r.on_error.budgets.into()),
            timeout,
            prefix,
        };
        let limited =
            !(policy.per_key.is_empty() && policy.per_team.is_empty() && policy.global.is_empty());
        let tracked = limited || !prices.is_empty();
        let prices = Arc::new(prices);
        let limiter = if tracked {
            #[cfg(feature = "redis")]
            let store: Arc<dyn crate::limit::LimitStore> = match &redis_con {
                Some(con) => Arc::new(crate::limit::RedisStore::new(con.clone())),
                None => Arc::new(MemoryStore::new()),
            };
            #[cfg(not(feature = "redis"))]
            let store: Arc<dyn crate::limit::LimitStore> = Arc::new(MemoryStore::new());
            let (m1, m2) = (metrics.clone(), metrics.clone());
            Some(Arc::new(
                Limiter::new(policy, store)
                    .with_prices(prices.clone())
                    .on_rejection(move |r| m1.rejection(r))
                    .on_store_failure(move |f| m2.store_failure(f)),
            ))
        } else {
            None
        };
        Ok(Team {
            authenticator: Arc::new(auth),
            keys,
            key_file,
            limiter,
            metrics,
            prices,
            requires_credentials,
            authenticates: self.auth.keys.is_some() || self.auth.jwt.is_some(),
            after: AfterResponse::new(),
            #[cfg(feature = "redis")]
            redis: redis_con,
        })
    }
}

impl Team {
    /// The authentication layer (outermost of the team layers, after classification).
    pub fn auth_layer(&self) -> AuthLayer {
        AuthLayer::new(self.authenticator.clone())
    }

    /// The limit layer, if any limit or spend tracking is configured (inside auth and access,
    /// outside usage).
    pub fn limit_layer(&self) -> Option<LimitLayer> {
        self.limiter.clone().map(LimitLayer::new)
    }

    /// The usage layer of one backend, reporting to the metrics and to `log` (the access log)
    /// after the response, on [`Team::after`].
    pub fn usage_layer(
        &self,
        backend: &str,
        provider: &str,
        log: Option<Arc<dyn crate::usage::UsageSink>>,
    ) -> UsageLayer {
        let mut layer = UsageLayer::new(self.prices.clone())
            .default_estimate(
                self.limiter
                    .as_ref()
                    .map_or(crate::limit::DEFAULT_ESTIMATE_TOKENS, |l| {
                        l.policy().default_estimate
                    }),
            )
            .after(self.after.clone())
            .sink(self.metrics.clone())
            .backend(backend)
            .provider(provider);
        if let Some(log) = log {
            layer = layer.sink(log);
        }
        layer
    }
}
