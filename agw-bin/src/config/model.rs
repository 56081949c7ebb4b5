//! The configuration model: what a gateway is configured to do, as plain data.
//!
//! Every front-end produces this model — the native YAML deserializes into it field for field,
//! the seed article's Kubernetes manifests are translated into it ([`super::k8s`]), and the
//! built-in default is an instance of it (a native file compiled into the binary). One build
//! step ([`super::build`]) turns it into the runtime [`super::Gateway`]. Adding a field means
//! adding it here and to the build step, nothing else.

use super::rules::RuleSpec;
use agw_tower::team;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole gateway configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `HOST:PORT` the proxy listens on (host names and `[IPv6]` allowed).
    pub listen: Option<String>,
    /// `HOST:PORT` of the admin endpoints, or `off` (default `127.0.0.1:9091`).
    pub admin_listen: Option<String>,
    /// HTTPS on the proxy listener.
    pub tls: Option<TlsSpec>,
    /// Request size and shutdown limits.
    #[serde(default)]
    pub limits: Limits,
    /// The provider backends, by name.
    #[serde(default)]
    pub backends: Vec<BackendSpec>,
    /// Path prefixes mapped to backend names; default: everything to the first backend.
    #[serde(default)]
    pub routes: Vec<HttpRouteSpec>,
    /// Client credentials: gateway-issued keys, JWTs.
    pub auth: Option<team::AuthConfig>,
    /// A Redis shared by replicas for keys, limits and budgets (`url` unset or empty: memory).
    pub redis: Option<team::RedisConfig>,
    /// US dollars per million tokens by model (first match wins), for cost and budgets.
    #[serde(default)]
    pub prices: Vec<team::PriceEntry>,
    /// Prometheus metrics on the admin listener (on whenever this or any team section is
    /// present).
    pub metrics: Option<team::MetricsConfig>,
}

/// Gateway-wide limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Bytes of request bodies held in memory at once, across all requests; over it, a
    /// request that needs its body read gets a retryable error.
    pub max_buffered_bytes: Option<usize>,
    /// How long open requests may take to finish after a shutdown signal.
    pub shutdown_grace_secs: Option<u64>,
    /// On SIGTERM, how long readiness is false before the listener closes.
    pub drain_delay_secs: Option<u64>,
    /// A connection with nothing in flight this long is closed.
    pub idle_timeout_secs: Option<u64>,
    /// A request body that takes longer than this to arrive closes its connection.
    pub body_timeout_secs: Option<u64>,
    /// Tokens a request holds against token limits while in flight, when it names no
    /// `max_tokens`.
    pub default_estimate_tokens: Option<u64>,
    /// Rate limits and budgets of each client key.
    #[serde(default)]
    pub per_key: team::ScopeLimits,
    /// Rate limits and budgets of each team.
    #[serde(default)]
    pub per_team: team::ScopeLimits,
    /// Rate limits and budgets of the whole gateway.
    #[serde(default)]
    pub global: team::ScopeLimits,
}

/// Certificate files of the HTTPS listener (PEM), reloaded when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// The certificate chain.
    pub cert_file: String,
    /// Its private key.
    pub key_file: String,
    /// When set, clients must present a certificate issued by this CA.
    pub client_ca_file: Option<String>,
}

/// One provider backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// The name routes, logs and errors use.
    pub name: String,
    /// The provider's API family.
    pub provider: ProviderName,
    /// Where requests go; the provider's public endpoint by default.
    pub base_url: Option<String>,
    /// Whose credentials reach the provider.
    #[serde(default)]
    pub credentials: CredentialsMode,
    /// The key agw injects: a literal, or `$VAR` / `${VAR}` read from the environment.
    pub api_key: Option<String>,
    /// A file holding the key agw injects.
    pub api_key_file: Option<String>,
    /// Model pin, aliases and allow-list.
    #[serde(default)]
    pub model: ModelSpec,
    /// Path patterns mapped to route kind names; the provider's table by default.
    pub routes: Option<BTreeMap<String, String>>,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Which TLS roots verify the provider.
    #[serde(default)]
    pub tls_roots: Roots,
    /// Request and response guards.
    #[serde(default)]
    pub guards: Guards,
    /// Who may use this backend, and which models (with client authentication).
    pub access: Option<team::AccessConfig>,
    /// The source line this backend was written on, when the field-based locator cannot find
    /// it (translated front-ends set it).
    #[serde(skip)]
    pub line: Option<usize>,
}

impl BackendSpec {
    /// A backend of `provider` named `name`, everything else default.
    pub fn new(name: impl Into<String>, provider: ProviderName) -> Self {
        Self {
            name: name.into(),
            provider,
            base_url: None,
            credentials: CredentialsMode::Auto,
            api_key: None,
            api_key_file: None,
            model: ModelSpec::default(),
            routes: None,
            timeouts: Timeouts::default(),
            tls_roots: Roots::Bundled,
            guards: Guards::default(),
            access: None,
            line: None,
        }
    }
}

/// A provider's API family, as configured.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    /// Anthropic.
    Anthropic,
    /// OpenAI.
    Openai,
    /// An OpenAI-compatible server (needs `base_url`).
    OpenaiCompatible,
}

/// Whose credentials reach the provider.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsMode {
    /// Inject the key when one is set, otherwise pass the client's through (said loudly).
    #[default]
    Auto,
    /// Always inject; a missing key is an error.
    Inject,
    /// Always forward the client's own credentials.
    Passthrough,
}

/// Which roots verify the provider's certificate.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Roots {
    /// Mozilla's roots, compiled in.
    #[default]
    Bundled,
    /// The operating system's store.
    System,
}

/// Model pin, aliases and allow-list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Every request goes to this model.
    pub pin: Option<String>,
    /// Requested model (glob) → model sent.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Models a request may end up with; others get a 400.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// Upstream timeouts, in seconds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting (TCP and TLS).
    pub connect_secs: Option<f64>,
    /// From the request sent to the response headers.
    pub response_secs: Option<f64>,
}

/// Guard rules of one backend.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Rules on what the client sends.
    #[serde(default)]
    pub request: Vec<RuleSpec>,
    /// Rules on what the model sends back.
    #[serde(default)]
    pub response: Vec<RuleSpec>,
    /// Streamed text held back so matches split across events are seen whole.
    pub response_window_bytes: Option<usize>,
    /// Rules on the tool calls the model makes, decided before the client can run them.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
}

/// A tool-call rule: a tool (name or glob) and optionally an argument matching a regex.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The rule's name, in logs and in the rejection.
    pub name: String,
    /// The tool's name, or a glob (`*`, `?`).
    pub tool: String,
    /// A dotted path into the call's input (`command`); without it, the regex is tried on
    /// every string of the input.
    pub argument: Option<String>,
    /// What the argument must match for the rule to fire; without it, any call of the tool.
    pub regex: Option<String>,
    /// `reject` (default) or `audit`.
    #[serde(default)]
    pub action: ToolActionSpec,
    /// What the client is told on a rejection.
    pub message: Option<String>,
}

/// What a tool-call rule does.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolActionSpec {
    /// End the response with an error naming the rule.
    #[default]
    Reject,
    /// Let the call through and log the rule.
    Audit,
}

/// A path prefix served by a backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRouteSpec {
    /// The prefix, on path segments (`/api` matches `/api/x`, not `/apix`).
    pub prefix: String,
    /// The backend's name.
    pub backend: String,
}
