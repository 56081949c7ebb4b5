//! The native YAML configuration.

use super::rules::RuleSpec;
use super::{Backend, ConfigError, Env, Gateway};
use agw_core::guard::Policy;
use agw_core::model::ModelPolicy;
use agw_core::provider::{Credentials, ProviderKind, ProviderSpec, Secret};
use agw_core::route::{RouteKind, RouteTable};
use agw_tower::upstream::{TlsRoots, UpstreamConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The built-in default configuration (what `agw` with no arguments runs).
pub(crate) const BUILTIN: &str = include_str!("builtin.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    #[serde(default)]
    limits: Limits,
    backends: Vec<BackendSpec>,
    #[serde(default)]
    routes: Vec<HttpRouteSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_body_bytes: Option<usize>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendSpec {
    name: String,
    provider: ProviderName,
    base_url: Option<String>,
    #[serde(default)]
    credentials: CredentialsMode,
    api_key: Option<String>,
    api_key_file: Option<String>,
    #[serde(default)]
    model: ModelSpec,
    routes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    tls_roots: Roots,
    #[serde(default)]
    guards: Guards,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ProviderName {
    Anthropic,
    Openai,
    OpenaiCompatible,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CredentialsMode {
    #[default]
    Auto,
    Inject,
    Passthrough,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Roots {
    #[default]
    Bundled,
    System,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ModelSpec {
    pin: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
    #[serde(default)]
    allow: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Timeouts {
    connect_secs: Option<f64>,
    response_secs: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Guards {
    #[serde(default)]
    request: Vec<RuleSpec>,
    #[serde(default)]
    response: Vec<RuleSpec>,
    response_window_bytes: Option<usize>,
    /// Tool-call rules (checked on responses). Minimal wiring by the response-guard branch.
    #[serde(default)]
    tools: Vec<ToolSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolSpec {
    name: String,
    tool: String,
    argument: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    action: Option<String>,
    message: Option<String>,
}

impl ToolSpec {
    fn to_rule(&self) -> Result<agw_core::guard::ToolRule, String> {
        let mut r = agw_core::guard::ToolRule::new(&self.name, &self.tool);
        if let Some(re) = &self.regex {
            r = r.argument(self.argument.clone().unwrap_or_default(), re.clone());
        } else if self.argument.is_some() {
            return Err(format!(
                "tool rule `{}`: `argument` needs a `regex`",
                self.name
            ));
        }
        match self.action.as_deref() {
            None | Some("reject") => {
                if let Some(m) = &self.message {
                    r = r.reject(m.clone());
                }
            }
            Some("audit") => r = r.audit(),
            Some(other) => {
                return Err(format!(
                    "tool rule `{}`: action `{other}` is not reject or audit",
                    self.name
                ));
            }
        }
        Ok(r)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpRouteSpec {
    prefix: String,
    backend: String,
}

pub(crate) fn parse(file: &str, text: &str, env: &Env) -> Result<Gateway, ConfigError> {
    let spec: File =
        serde_norway::from_str(text).map_err(|e| ConfigError::from_yaml(file, 0, &e))?;
    // Errors after parsing point at the line of the field they name.
    let err = |field: &str, msg: String| {
        ConfigError::new(file, format!("{field}: {msg}")).at(line_of(text, field), None)
    };
    let listen = spec
        .listen
        .as_deref()
        .unwrap_or(super::DEFAULT_LISTEN)
        .parse()
        .map_err(|e| {
            err(
                "listen",
                format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"),
            )
        })?;
    let max_body = spec
        .limits
        .max_body_bytes
        .unwrap_or(agw_tower::guard::DEFAULT_LIMIT);
    if spec.backends.is_empty() {
        return Err(err("backends", "at least one backend is required".into()));
    }
    let mut gw = Gateway {
        listen,
        max_body_bytes: max_body,
        shutdown_grace_secs: spec.limits.shutdown_grace_secs.unwrap_or(30),
        backends: Vec::new(),
        http_routes: Vec::new(),
        notes: Vec::new(),
    };
    for b in &spec.backends {
        if gw.backends.iter().any(|o: &Backend| o.name == b.name) {
            return Err(err(
                "name",
                format!("backend name `{}` is used twice", b.name),
            ));
        }
        let backend = backend(b, env, max_body, &mut gw.notes)
            .map_err(|m| err(&m.0, format!("backend `{}`: {}", b.name, m.1)))?;
        gw.backends.push(backend);
    }
    if spec.routes.is_empty() {
        gw.http_routes.push(("/".into(), 0));
    }
    for r in &spec.routes {
        let Some(i) = gw.backends.iter().position(|b| b.name == r.backend) else {
            return Err(err(
                "backend",
                format!(
                    "route `{}` names no known backend `{}`",
                    r.prefix, r.backend
                ),
            ));
        };
        if !r.prefix.starts_with('/') {
            return Err(err("prefix", format!("`{}` must start with `/`", r.prefix)));
        }
        gw.http_routes.push((r.prefix.clone(), i));
    }
    Ok(gw)
}

/// The 1-based line of the first `field:` in `text`, for pointing at it.
fn line_of(text: &str, field: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(field) && t[field.len()..].trim_start().starts_with(':')
        })
        .map(|i| i + 1)
}

type FieldError = (String, String);

fn backend(
    b: &BackendSpec,
    env: &Env,
    limit: usize,
    notes: &mut Vec<String>,
) -> Result<Backend, FieldError> {
    let fe = |field: &str, msg: String| (field.to_owned(), msg);
    let kind = match b.provider {
        ProviderName::Anthropic => ProviderKind::Anthropic,
        ProviderName::Openai => ProviderKind::OpenAi,
        ProviderName::OpenaiCompatible => ProviderKind::OpenAiCompatible,
    };
    let mut spec = ProviderSpec::for_kind(kind);
    match &b.base_url {
        Some(url) => {
            let url = env.expand(url).map_err(|e| fe("base_url", e))?;
            spec = spec
                .with_base_url(&url)
                .map_err(|e| fe("base_url", e.to_string()))?;
        }
        None if kind == ProviderKind::OpenAiCompatible => {
            return Err(fe(
                "base_url",
                "an openai_compatible backend needs a base_url".into(),
            ));
        }
        None => {}
    }
    let key = resolve_key(b, env)?;
    let credentials =
        match (b.credentials, key) {
            (CredentialsMode::Passthrough, Some(_)) => {
                return Err(fe(
                    "credentials",
                    "passthrough forwards the client's key; remove api_key".into(),
                ));
            }
            (CredentialsMode::Passthrough, None) => Credentials::Passthrough,
            (CredentialsMode::Inject, None) => {
                return Err(fe(
                    "credentials",
                    "inject needs `api_key` or `api_key_file` with a value".into(),
                ));
            }
            (_, Some(k)) => Credentials::Inject(Secret::new(k)),
            (CredentialsMode::Auto, None) => {
                if b.api_key.is_some() {
                    notes.push(format!(
                    "backend `{}`: {} is not set, so clients' own credentials are passed through",
                    b.name,
                    b.api_key.as_deref().and_then(Env::reference).unwrap_or("the api_key variable")
                ));
                }
                Credentials::Passthrough
            }
        };
    spec = spec.with_credentials(credentials);
    if !spec.key_is_sendable() {
        return Err(fe(
            "api_key",
            "the key contains characters an HTTP header cannot carry (a line break?)".into(),
        ));
    }
    let model = model_policy(&b.model).map_err(|e| fe("model", e))?;
    let routes = match &b.routes {
        None if kind == ProviderKind::Anthropic => RouteTable::claude_code(),
        None => RouteTable::openai(),
        Some(map) => {
            let mut t = RouteTable::new();
            for (path, kind) in map {
                let k: RouteKind = kind
                    .parse()
                    .map_err(|e: agw_core::route::UnknownRouteKind| fe("routes", e.to_string()))?;
                t.insert(path, k).map_err(|e| fe("routes", e.to_string()))?;
            }
            t
        }
    };
    let policy = build_policy(&b.guards.request).map_err(|e| fe("request", e))?;
    let response_policy = build_response_policy(&b.guards.response, &b.guards.tools)
        .map_err(|e| fe("response", e))?;
    let response_window = match b.guards.response_window_bytes {
        Some(0) => return Err(fe("response_window_bytes", "must be at least 1".into())),
        Some(n) => n,
        None => agw_tower::response::DEFAULT_WINDOW,
    };
    let mut upstream = UpstreamConfig::new(&b.name);
    if let Some(s) = b.timeouts.connect_secs {
        upstream.connect_timeout = secs(s).map_err(|e| fe("connect_secs", e))?;
    }
    if let Some(s) = b.timeouts.response_secs {
        upstream.response_timeout = secs(s).map_err(|e| fe("response_secs", e))?;
    }
    upstream.roots = match b.tls_roots {
        Roots::Bundled => TlsRoots::Bundled,
        Roots::System => TlsRoots::System,
    };
    let _ = limit;
    Ok(Backend {
        name: b.name.clone(),
        spec,
        model,
        routes,
        policy,
        response_policy,
        response_window,
        upstream,
    })
}

fn build_policy(specs: &[RuleSpec]) -> Result<Policy, String> {
    let rules = specs
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_rule(i))
        .collect::<Result<Vec<_>, _>>()?;
    Policy::builder()
        .rules(rules)
        .build()
        .map_err(|e| e.to_string())
}

fn build_response_policy(specs: &[RuleSpec], tools: &[ToolSpec]) -> Result<Policy, String> {
    let rules = specs
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_rule(i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = Policy::builder().rules(rules);
    for t in tools {
        b = b.tool_rule(t.to_rule()?);
    }
    b.build().map_err(|e| e.to_string())
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s} is not a positive number of seconds"))
}

fn resolve_key(b: &BackendSpec, env: &Env) -> Result<Option<String>, FieldError> {
    match (&b.api_key, &b.api_key_file) {
        (Some(_), Some(_)) => Err((
            "api_key_file".into(),
            "give `api_key` or `api_key_file`, not both".into(),
        )),
        (Some(k), None) => match Env::reference(k) {
            Some(var) => Ok(env.get(var)),
            None if k.contains("${") => env.expand(k).map(Some).map_err(|e| ("api_key".into(), e)),
            None => Ok(Some(k.clone())),
        },
        (None, Some(path)) => {
            let path = env.expand(path).map_err(|e| ("api_key_file".into(), e))?;
            let key = std::fs::read_to_string(&path)
                .map_err(|e| ("api_key_file".into(), format!("cannot read `{path}`: {e}")))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(("api_key_file".into(), format!("`{path}` is empty")));
            }
            Ok(Some(key.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

fn model_policy(m: &ModelSpec) -> Result<ModelPolicy, String> {
    let base = match (&m.pin, m.aliases.is_empty()) {
        (Some(_), false) => return Err("give `pin` or `aliases`, not both".into()),
        (Some(p), true) => ModelPolicy::pin(p.clone()),
        (None, false) => {
            ModelPolicy::aliases(m.aliases.iter().map(|(a, b)| (a.clone(), b.clone())))
        }
        (None, true) => Ok(ModelPolicy::any()),
    }
    .map_err(|e| e.to_string())?;
    base.allow(m.allow.iter().cloned())
        .map_err(|e| e.to_string())
}
