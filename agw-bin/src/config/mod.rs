//! Configuration: the native YAML format, the seed article's Kubernetes manifests, and the
//! built-in default — all read into one [`model::Config`], which one build step turns into the
//! runtime [`Gateway`].
//!
//! ```text
//! native YAML ──serde──────────┐
//! seed manifests ──k8s::model──┼─> model::Config ──build::build──> Gateway ──> server
//! built-in default (native) ───┘
//! ```

mod build;
mod env;
mod k8s;
pub mod model;
mod native;
pub mod redact;
mod report;
mod rules;

use agw_core::guard::Policy;
use agw_core::model::ModelPolicy;
use agw_core::provider::ProviderSpec;
use agw_core::route::RouteTable;
use agw_tower::upstream::UpstreamConfig;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

pub use build::resolve_listen;
pub use env::Env;
pub use rules::{ActionSpec, RuleSpec, ScopeSpec};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A whole gateway: where it listens and what it forwards where.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The listen address.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Bytes of request bodies held in memory at once, across all requests.
    pub max_buffered_bytes: usize,
    /// How long open requests may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Backends, by name.
    pub backends: Vec<Backend>,
    /// Path prefixes mapped to backends (index into `backends`); the longest prefix wins.
    pub http_routes: Vec<(String, usize)>,
    /// Things in the configuration that agw accepted but does not act on, by name.
    pub notes: Vec<String>,
    /// Things that work but are likely not what was meant (a key variable that is not set):
    /// printed loudly at start-up.
    pub warnings: Vec<String>,
    /// Where the admin endpoints listen.
    pub admin_listen: AdminAt,
    /// HTTPS on the proxy listener.
    pub tls: Option<crate::server::TlsFiles>,
    /// On SIGTERM, seconds of readiness turned off before the listener closes.
    pub drain_delay_secs: u64,
    /// Idle connection timeout, when not the default.
    pub idle_timeout_secs: Option<u64>,
    /// Request body timeout, when not the default.
    pub body_timeout_secs: Option<u64>,
    /// Files the configuration reads besides itself (keys, TLS): a change reloads it.
    pub files: Vec<std::path::PathBuf>,
    /// Client identity, limits, usage and metrics, when any of their sections is configured
    /// (built into the running pieces by the server: it connects to Redis, fetches JWKS).
    pub team: Option<agw_tower::team::TeamConfig>,
    /// Set when a `redis` section is present but its URL is empty (its variable unset): one
    /// line saying so, e.g. "redis.url is empty (is REDIS_URL set?)". agw then runs on its own,
    /// and `agw keys` refuses to change the key file that replicas sharing Redis never read.
    pub redis_url_empty: Option<String>,
    /// The team sections the file sets (`auth`, `redis`, `limits`, `prices`, `metrics`), for
    /// messages that name them.
    pub team_sections: Vec<&'static str>,
    /// Settings a reload read but that take effect on restart (`limits`, `shutdown_grace_secs`,
    /// ...): the values in this gateway are the ones in force, and `/config` names these as
    /// awaiting a restart. Empty for a configuration loaded at start.
    pub pending_restart: Vec<&'static str>,
}

impl Gateway {
    /// Whether agw verifies client credentials (keys or JWT configured): every credential a
    /// request presents is checked and never forwarded, even where requests without one are
    /// let through (`allow_unauthenticated`).
    pub fn authenticates_clients(&self) -> bool {
        self.team
            .as_ref()
            .is_some_and(|t| t.auth.keys.is_some() || t.auth.jwt.is_some())
    }

    /// Whether every request must carry a client credential agw verifies.
    pub fn requires_client_auth(&self) -> bool {
        self.team.as_ref().is_some_and(|t| {
            (t.auth.keys.is_some() || t.auth.jwt.is_some()) && !t.auth.allow_unauthenticated
        })
    }
}

/// Where the admin endpoints listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminAt {
    /// `127.0.0.1:9091`, or nowhere (with a warning) when that is taken.
    #[default]
    Default,
    /// This address; failing to bind it is an error.
    Explicit(SocketAddr),
    /// No admin endpoints.
    Off,
}

/// One provider backend with its routes, model policy and guards.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The name, used in errors and logs.
    pub name: String,
    /// Provider, base URL and credentials.
    pub spec: ProviderSpec,
    /// Model policy.
    pub model: ModelPolicy,
    /// Path → route kind.
    pub routes: RouteTable,
    /// Request guards.
    pub policy: Policy,
    /// Response guards.
    pub response_policy: Policy,
    /// Bytes of streamed text held back for response guards.
    pub response_window: usize,
    /// Upstream client settings.
    pub upstream: UpstreamConfig,
    /// Who may use this backend and which models (with client authentication).
    pub access: Option<agw_tower::auth::Access>,
}

/// A configuration error, located as precisely as the source allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or `<built-in>`.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE:COLUMN: message`, with anything in the message that looks like a secret (a
    /// key pasted into the wrong field, a password in a URL) masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", redact::secrets(&self.message))
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error in `file` (or on the command line: `--listen`) with no location.
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }

    pub(crate) fn from_yaml(file: &str, line_offset: usize, e: &serde_norway::Error) -> Self {
        let mut msg = e.to_string();
        // serde_norway appends " at line L column C"; we put the location in front instead.
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        let msg = suggest(&msg);
        let loc = e.location();
        ConfigError::new(file, msg).at(
            loc.as_ref().map(|l| l.line() + line_offset),
            loc.as_ref().map(|l| l.column()),
        )
    }
}

/// Appends "did you mean" to serde's unknown-field and unknown-variant messages.
fn suggest(msg: &str) -> String {
    let Some(rest) = msg
        .find("unknown field `")
        .map(|i| &msg[i + 15..])
        .or_else(|| msg.find("unknown variant `").map(|i| &msg[i + 17..]))
    else {
        return msg.to_owned();
    };
    let Some(end) = rest.find('`') else {
        return msg.to_owned();
    };
    let wrong = &rest[..end];
    let candidates: Vec<&str> = rest[end..].split('`').skip(2).step_by(2).collect();
    match closest(wrong, &candidates) {
        Some(c) => format!("{msg} (did you mean `{c}`?)"),
        None => msg.to_owned(),
    }
}

/// The candidate closest to `wrong` by edit distance, if close enough to be a typo.
pub(crate) fn closest<'a>(wrong: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let d = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    };
    candidates
        .iter()
        .map(|c| (d(&wrong.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(dist, c)| *dist <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

/// Settings given on the command line or in the environment, applied to every config form.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--base-url [BACKEND=]URL` / `AGW_BASE_URL`: provider base URLs.
    pub base_urls: Vec<(Option<String>, String)>,
}

impl Gateway {
    /// The built-in default: the seed article's setup.
    pub fn builtin(env: &Env) -> Result<Gateway, ConfigError> {
        native::parse("<built-in>", native::BUILTIN, env)
    }

    /// Loads a file: native YAML, or Kubernetes manifests (detected by `apiVersion`/`kind`).
    pub fn load(path: &Path, env: &Env) -> Result<Gateway, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, format!("cannot read the file: {e}")))?;
        Self::parse(&file, &text, env)
    }

    /// Parses configuration text; `file` names it in errors.
    pub fn parse(file: &str, text: &str, env: &Env) -> Result<Gateway, ConfigError> {
        if k8s::looks_like_manifests(text) {
            k8s::parse(file, text, env)
        } else {
            native::parse(file, text, env)
        }
    }

    /// Reads configuration text into the model without building it, with the notes a
    /// translated front-end made.
    pub fn model(file: &str, text: &str) -> Result<(model::Config, Vec<String>), ConfigError> {
        if k8s::looks_like_manifests(text) {
            k8s::model(file, text)
        } else {
            native::model(file, text).map(|c| (c, Vec::new()))
        }
    }

    /// Applies command-line and environment overrides.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(l) = o.listen {
            self.listen = l;
        }
        for (name, url) in &o.base_urls {
            let mut hit = false;
            for b in &mut self.backends {
                if name.as_deref().is_none_or(|n| n == b.name) {
                    b.spec = b
                        .spec
                        .clone()
                        .with_base_url(url)
                        .map_err(|e| ConfigError::new("--base-url", e.to_string()))?;
                    hit = true;
                }
            }
            if !hit {
                let names: Vec<_> = self.backends.iter().map(|b| b.name.as_str()).collect();
                return Err(ConfigError::new(
                    "--base-url",
                    format!(
                        "no backend named `{}` (backends: {})",
                        name.as_deref().unwrap_or_default(),
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The backend for a request path: the longest prefix matching its canonical form (the
    /// form the backend's classifier forwards), compared case-insensitively, so a spelling an
    /// upstream treats alike cannot pick another backend.
    pub fn backend_for(&self, path: &str) -> Option<usize> {
        let canonical = agw_core::route::canonical_path(path);
        let path = canonical.as_deref().unwrap_or(path);
        self.http_routes
            .iter()
            .filter(|(prefix, _)| path_has_prefix(path, prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, b)| *b)
    }

    /// A human summary, one line per backend (see [`report`]).
    pub fn summary(&self) -> Vec<String> {
        report::summary(self)
    }

    /// What each backend inspects and what it lets through unguarded (see [`report`]).
    pub fn coverage(&self) -> Vec<String> {
        report::coverage(self)
    }
}

/// Prefix matching on path segments: `/api` matches `/api` and `/api/x`, not `/apix`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    let (path, p) = (path.as_bytes(), p.as_bytes());
    path.len() >= p.len()
        && path[..p.len()].eq_ignore_ascii_case(p)
        && (path.len() == p.len() || path[p.len()] == b'/')
}

#[cfg(test)]
mod tests;
