//! The one build step: a [`Config`] (from any front-end) becomes the runtime [`Gateway`].
//!
//! Everything that turns configured values into working parts happens here, once: listen
//! address resolution, key lookup and the credentials decision, provider specs, route tables,
//! model and guard policies, upstream settings and defaults.

use super::model::{
    BackendSpec, Config, CredentialsMode, ModelSpec, ProviderName, Roots, ToolActionSpec, ToolSpec,
};
use super::rules::RuleSpec;
use super::{AdminAt, Backend, ConfigError, Env, Gateway};
use agw_core::guard::{Policy, ToolRule};
use agw_core::model::ModelPolicy;
use agw_core::provider::{Credentials, ProviderKind, ProviderSpec, Secret};
use agw_core::route::{RouteKind, RouteTable};
use agw_tower::team::{LimitsConfig, TeamConfig};
use agw_tower::upstream::{TlsRoots, UpstreamConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Where a configuration came from, for locating errors in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The file name errors start with.
    pub file: &'a str,
    /// The text, when errors can be located by the field they name.
    pub text: Option<&'a str>,
}

impl Source<'_> {
    fn error(&self, backend: Option<&BackendSpec>, field: &str, msg: String) -> ConfigError {
        let line = backend
            .and_then(|b| b.line)
            .or_else(|| self.text.and_then(|t| line_of(t, field)));
        ConfigError::new(self.file, format!("{field}: {msg}")).at(line, None)
    }
}

/// The 1-based line of the first `field:` in `text` (block or flow style), for pointing at it.
pub(crate) fn line_of(text: &str, field: &str) -> Option<usize> {
    let is_key_at = |l: &str, i: usize| {
        let before = l[..i].chars().next_back();
        let after = l[i + field.len()..].trim_start();
        before.is_none_or(|c| matches!(c, ' ' | '{' | ',' | '-' | '"' | '\''))
            && (after.starts_with(':') || after.starts_with("\":") || after.starts_with("':"))
    };
    text.lines()
        .position(|l| {
            let code = l.split(" #").next().unwrap_or(l);
            code.match_indices(field).any(|(i, _)| is_key_at(code, i))
        })
        .map(|i| i + 1)
}

/// The 1-based line of a dotted path of keys (`limits.per_key.requests_per_minute`): each
/// key's first line at or after the line of the key before it; the last key found.
fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let mut found = None;
    let mut from = 0; // the first line searched, 0-based
    for key in path.split('.') {
        let offset: usize = text.split_inclusive('\n').take(from).map(str::len).sum();
        let Some(l) = line_of(&text[offset..], key) else {
            break;
        };
        found = Some(from + l);
        from += l - 1;
    }
    found
}

/// Resolves `HOST:PORT` (a host name, an IPv4 address or a bracketed IPv6 address) to the
/// address to listen on. A name that resolves to several addresses gets its first IPv4 one.
pub fn resolve_listen(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!(
            "`{value}` is not HOST:PORT (e.g. 127.0.0.1:8080, localhost:8080, [::]:8080)"
        ));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "`{value}` is not HOST:PORT (e.g. 127.0.0.1:8080, localhost:8080, [::]:8080)"
        ));
    }
    let addrs: Vec<SocketAddr> = value
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{host}` resolves to no address"))
}

/// Builds the runtime gateway from `cfg`, reading keys and `${VAR}`s through `env`.
pub(crate) fn build(cfg: &Config, env: &Env, src: Source<'_>) -> Result<Gateway, ConfigError> {
    let top = |field: &str, msg: String| src.error(None, field, msg);
    let listen = resolve_listen(cfg.listen.as_deref().unwrap_or(super::DEFAULT_LISTEN))
        .map_err(|e| top("listen", e))?;
    let max_body = cfg
        .limits
        .max_body_bytes
        .unwrap_or(agw_tower::guard::DEFAULT_LIMIT);
    let max_buffered = cfg
        .limits
        .max_buffered_bytes
        .unwrap_or(DEFAULT_BUFFERED.max(max_body));
    if max_buffered < max_body {
        return Err(top(
            "max_buffered_bytes",
            format!(
                "{max_buffered} is less than max_body_bytes ({max_body}): no large body could ever be read"
            ),
        ));
    }
    if cfg.backends.is_empty() {
        return Err(top("backends", "at least one backend is required".into()));
    }
    let admin_listen = match cfg.admin_listen.as_deref() {
        None => AdminAt::Default,
        Some("off") => AdminAt::Off,
        Some(v) => AdminAt::Explicit(resolve_listen(v).map_err(|e| top("admin_listen", e))?),
    };
    let positive = |field: &str, v: Option<u64>| match v {
        Some(0) => Err(top(field, "must be at least 1 second".into())),
        v => Ok(v),
    };
    let tls = cfg
        .tls
        .as_ref()
        .map(|t| -> Result<_, ConfigError> {
            let path = |field: &str, v: &str| {
                env.expand(v)
                    .map(std::path::PathBuf::from)
                    .map_err(|e| top(field, e))
            };
            Ok(crate::server::TlsFiles {
                cert: path("cert_file", &t.cert_file)?,
                key: path("key_file", &t.key_file)?,
                client_ca: t
                    .client_ca_file
                    .as_deref()
                    .map(|c| path("client_ca_file", c))
                    .transpose()?,
            })
        })
        .transpose()?;
    let mut gw = Gateway {
        listen,
        max_body_bytes: max_body,
        max_buffered_bytes: max_buffered,
        shutdown_grace_secs: cfg.limits.shutdown_grace_secs.unwrap_or(30),
        backends: Vec::new(),
        http_routes: Vec::new(),
        notes: Vec::new(),
        warnings: Vec::new(),
        admin_listen,
        tls,
        drain_delay_secs: cfg.limits.drain_delay_secs.unwrap_or(0),
        idle_timeout_secs: positive("idle_timeout_secs", cfg.limits.idle_timeout_secs)?,
        body_timeout_secs: positive("body_timeout_secs", cfg.limits.body_timeout_secs)?,
        files: Vec::new(),
        team: team(cfg, env).map_err(|(field, e)| top(field, e))?,
        redis_url_empty: redis_url_empty(cfg, env),
        team_sections: team_sections(cfg),
        pending_restart: Vec::new(),
    };
    // What `serve` would refuse at its start, refused here: by `agw check` and by a reload too.
    if let Some(t) = &gw.team {
        t.validate().map_err(|e| {
            // "limits.per_key.requests_per_minute: 0 (...)": located at that key, each part
            // looked for from the line of the one before (not a `per_team`'s of that name).
            let path = e.0.split(':').next().unwrap_or_default();
            let line = src.text.and_then(|t| line_of_path(t, path));
            ConfigError::new(src.file, e.0).at(line, None)
        })?;
    }
    if let Some(why) = &gw.redis_url_empty {
        gw.notes.push(format!(
            "{why}: this agw keeps limits and spend in its own memory and reads keys from \
             auth.keys.file, unshared with other replicas"
        ));
    }
    for b in &cfg.backends {
        if let Err(e) = super::rules::check_name(&b.name) {
            return Err(src.error(
                Some(b),
                "name",
                format!("backend name `{}`: {e}", b.name.escape_debug()),
            ));
        }
        if gw.backends.iter().any(|o: &Backend| o.name == b.name) {
            return Err(src.error(
                Some(b),
                "name",
                format!("backend name `{}` is used twice", b.name),
            ));
        }
        if let Some(f) = &b.api_key_file {
            gw.files.extend(env.expand(f).ok().map(Into::into));
        }
        if b.access.is_some() && gw.team.is_none() {
            // The team layers enforce it: without them an access list was printed by `agw
            // check` and enforced by nothing (second review round of the twelfth session).
            return Err(src.error(
                Some(b),
                "access",
                format!(
                    "backend `{}`: `access` needs the team features, which this configuration \
                     does not turn on: add `auth:` (who may call), or `metrics: {{}}` for a \
                     model list alone",
                    b.name
                ),
            ));
        }
        let backend = backend(b, env, &mut gw.warnings).map_err(|(field, msg)| {
            src.error(Some(b), &field, format!("backend `{}`: {msg}", b.name))
        })?;
        if gw.requires_client_auth()
            && matches!(backend.spec.credentials(), Credentials::Passthrough)
        {
            // Clients' credentials are agw keys or tokens then, never forwarded: without a key
            // to inject, the provider gets no credentials at all.
            gw.warnings.push(format!(
                "backend `{}`: client authentication is on but agw has no provider key to \
                 inject, so requests reach the provider without credentials (set `api_key` or \
                 its variable)",
                b.name
            ));
        }
        gw.backends.push(backend);
    }
    if cfg.routes.is_empty() {
        gw.http_routes.push(("/".into(), 0));
    }
    for r in &cfg.routes {
        let Some(i) = gw.backends.iter().position(|b| b.name == r.backend) else {
            return Err(top(
                "backend",
                format!(
                    "route `{}` names no known backend `{}`",
                    r.prefix, r.backend
                ),
            ));
        };
        if !r.prefix.starts_with('/') {
            return Err(top("prefix", format!("`{}` must start with `/`", r.prefix)));
        }
        gw.http_routes.push((r.prefix.clone(), i));
    }
    Ok(gw)
}

/// The default budget for request bodies held in memory at once (or `max_body_bytes`, when
/// that is larger).
pub const DEFAULT_BUFFERED: usize = 256 << 20;

type FieldError = (String, String);

fn backend(b: &BackendSpec, env: &Env, warnings: &mut Vec<String>) -> Result<Backend, FieldError> {
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
    let credentials = match (b.credentials, key) {
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
            if let Some(k) = &b.api_key {
                warnings.push(format!(
                    "backend `{}`: {} is not set, so agw injects no key and clients' own \
                     credentials are passed through (set it, or say `credentials: passthrough` \
                     to mean this)",
                    b.name,
                    Env::reference(k).unwrap_or("the api_key variable")
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
        None => RouteTable::for_provider(kind),
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
    let response_policy =
        build_response_policy(&b.guards.response, &b.guards.tools).map_err(|(f, e)| fe(f, e))?;
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
    let access = b
        .access
        .as_ref()
        .map(|a| {
            a.build().map_err(|e| {
                // The error names its list (`access.teams: ...`): that is the field.
                let msg = e.to_string();
                match msg.split_once(": ") {
                    Some((field, m)) if field.starts_with("access.") => fe(field, m.to_owned()),
                    _ => fe("access", msg),
                }
            })
        })
        .transpose()?;
    Ok(Backend {
        access,
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

/// "redis.url is empty (is VAR set?)" when a `redis` section is present and its URL expands
/// to nothing.
fn redis_url_empty(cfg: &Config, env: &Env) -> Option<String> {
    let raw = cfg.redis.as_ref()?.url.as_deref().unwrap_or("");
    let expanded = match Env::reference(raw) {
        Some(var) => env.get(var),
        None => env.expand(raw).ok(),
    };
    if expanded.is_some_and(|u| !u.trim().is_empty()) {
        return None;
    }
    Some(match Env::reference(raw) {
        Some(var) => format!("redis.url is empty (is {var} set?)"),
        None => "redis.url is empty".into(),
    })
}

/// The team sections, when any is present, with `${VAR}`s expanded. An unset or empty
/// `redis.url` means limits kept in memory (one instance).
/// The team sections `cfg` sets, by name.
fn team_sections(cfg: &Config) -> Vec<&'static str> {
    [
        ("auth", cfg.auth.is_some()),
        ("redis", cfg.redis.is_some()),
        ("limits", limited(cfg)),
        ("prices", !cfg.prices.is_empty()),
        ("metrics", cfg.metrics.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Whether `cfg` sets a limit or a budget in any scope.
fn limited(cfg: &Config) -> bool {
    let l = &cfg.limits;
    [&l.per_key, &l.per_team, &l.global].iter().any(|s| {
        s.requests_per_minute.is_some()
            || s.tokens_per_minute.is_some()
            || s.budget.usd_per_day.is_some()
            || s.budget.usd_per_month.is_some()
            || s.budget.tokens_per_day.is_some()
            || s.budget.tokens_per_month.is_some()
    })
}

fn team(cfg: &Config, env: &Env) -> Result<Option<TeamConfig>, (&'static str, String)> {
    let l = &cfg.limits;
    if team_sections(cfg).is_empty() {
        return Ok(None);
    }
    let path = |field: &'static str, p: &std::path::Path| -> Result<std::path::PathBuf, _> {
        env.expand(&p.to_string_lossy())
            .map(Into::into)
            .map_err(|e| (field, e))
    };
    let mut auth = cfg.auth.clone().unwrap_or_default();
    if let Some(k) = &mut auth.keys
        && let Some(f) = &k.file
    {
        k.file = Some(path("file", f)?);
    }
    if let Some(j) = &mut auth.jwt {
        if let Some(f) = &j.jwks_file {
            j.jwks_file = Some(path("jwks_file", f)?);
        }
        if let Some(u) = &j.jwks_url {
            j.jwks_url = Some(env.expand(u).map_err(|e| ("jwks_url", e))?);
        }
    }
    let mut redis = cfg.redis.clone();
    if let Some(r) = &mut redis {
        r.url = match r.url.as_deref() {
            Some(u) => match Env::reference(u) {
                Some(var) => env.get(var),
                None => Some(env.expand(u).map_err(|e| ("url", e))?),
            },
            None => None,
        };
    }
    Ok(Some(TeamConfig {
        auth,
        redis,
        limits: LimitsConfig {
            default_estimate_tokens: l.default_estimate_tokens,
            per_key: l.per_key,
            per_team: l.per_team,
            global: l.global,
        },
        prices: cfg.prices.clone(),
        metrics: cfg.metrics.unwrap_or_default(),
    }))
}

/// Response rules and tool-call rules: both are decided on what the model sends back.
/// The response policy; an error names its list (`response` or `tools`), so that it points at
/// the right lines (a response rule's error had been reported as the tool rules').
fn build_response_policy(
    specs: &[RuleSpec],
    tools: &[ToolSpec],
) -> Result<Policy, (&'static str, String)> {
    let rules = specs
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_rule(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("response", e))?;
    let mut tool_rules = Vec::with_capacity(tools.len());
    for t in tools {
        let mut rule = ToolRule::new(&t.name, &t.tool);
        match (&t.argument, &t.regex) {
            (arg, Some(re)) => rule = rule.argument(arg.clone().unwrap_or_default(), re.clone()),
            (Some(_), None) => {
                return Err((
                    "tools",
                    format!("tool rule `{}`: `argument` needs a `regex`", t.name),
                ));
            }
            (None, None) => {}
        }
        rule = match (t.action, &t.message) {
            (ToolActionSpec::Reject, Some(m)) => rule.reject(m.clone()),
            (ToolActionSpec::Reject, None) => rule,
            (ToolActionSpec::Audit, None) => rule.audit(),
            (ToolActionSpec::Audit, Some(_)) => {
                return Err((
                    "tools",
                    format!(
                        "tool rule `{}`: `message` goes with `action: reject`",
                        t.name
                    ),
                ));
            }
        };
        tool_rules.push(rule);
    }
    // The tool rules alone first (a few small regexes): what fails there is the `tools`
    // list's, what fails after is the `response` list's — the text rules compile once.
    let tools_only = |b: agw_core::guard::PolicyBuilder| {
        tool_rules.iter().cloned().fold(b, |b, r| b.tool_rule(r))
    };
    tools_only(Policy::builder())
        .build()
        .map_err(|e| ("tools", e.to_string()))?;
    tools_only(Policy::builder().rules(rules))
        .build()
        .map_err(|e| ("response", e.to_string()))
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
