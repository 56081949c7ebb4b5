//! The seed article's Kubernetes manifests (Gateway API + agentgateway), read as configuration.
//!
//! Supported: `Gateway` (listener port), `Secret` (`stringData`/`data`, `$VAR` values read from
//! the environment as the article's shell heredoc would have expanded them),
//! `AgentgatewayBackend` (`ai.provider` anthropic/openai with an optional pinned model,
//! `policies.ai.routes`, `policies.ai.promptGuard.request[].regex` with `action`, `matches`,
//! `builtins` and `response.message`, `policies.auth.secretRef`) and `HTTPRoute` (path prefix →
//! backend). Deployment details agw has no use for (gateway class, infrastructure, parent refs)
//! are accepted and reported as notes; any other field is an error naming it. The manifests
//! are translated into the [`Config`] model, which the one build step turns into the runtime.

use super::build::{Source, build};
use super::model::{self, Config, HttpRouteSpec as HttpRoute, ProviderName};
use super::rules::{ActionSpec, RuleSpec};
use super::{ConfigError, Env, Gateway};
use agw_core::detect::Detector;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::Value;
use std::collections::BTreeMap;

/// Whether the text is Kubernetes manifests rather than native configuration.
pub(crate) fn looks_like_manifests(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("apiVersion:") || l.starts_with("kind:"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manifest<S> {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    spec: S,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretDoc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    #[serde(rename = "type")]
    #[allow(dead_code)]
    ty: Option<String>,
    #[serde(default)]
    string_data: BTreeMap<String, String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GatewaySpec {
    gateway_class_name: Option<String>,
    infrastructure: Option<Value>,
    listeners: Vec<Listener>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Listener {
    #[allow(dead_code)]
    name: Option<String>,
    protocol: String,
    port: u16,
    allowed_routes: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendSpec {
    ai: AiSpec,
    #[serde(default)]
    policies: Policies,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AiSpec {
    provider: ProviderBlock,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderBlock {
    anthropic: Option<ProviderOptions>,
    openai: Option<ProviderOptions>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProviderOptions {
    model: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Policies {
    #[serde(default)]
    ai: AiPolicies,
    auth: Option<Auth>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AiPolicies {
    routes: Option<BTreeMap<String, String>>,
    prompt_guard: Option<PromptGuard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptGuard {
    #[serde(default)]
    request: Vec<GuardEntry>,
    #[serde(default)]
    response: Vec<GuardEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardEntry {
    response: Option<GuardResponse>,
    regex: RegexGuard,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GuardResponse {
    message: Option<String>,
    status_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexGuard {
    #[serde(default)]
    action: GuardAction,
    #[serde(default)]
    matches: Vec<String>,
    #[serde(default)]
    builtins: Vec<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
enum GuardAction {
    #[default]
    Reject,
    Mask,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Auth {
    secret_ref: Option<SecretRef>,
    key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRouteSpec {
    parent_refs: Option<Value>,
    hostnames: Option<Vec<String>>,
    rules: Vec<HttpRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRule {
    #[serde(default)]
    matches: Vec<HttpMatch>,
    backend_refs: Vec<BackendRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpMatch {
    path: Option<PathMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathMatch {
    #[serde(rename = "type", default = "prefix")]
    ty: String,
    value: String,
}

fn prefix() -> String {
    "PathPrefix".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendRef {
    name: String,
    #[allow(dead_code)]
    namespace: Option<String>,
    #[allow(dead_code)]
    group: Option<String>,
    #[allow(dead_code)]
    kind: Option<String>,
    #[allow(dead_code)]
    weight: Option<u32>,
}

/// One `---`-separated document and the line it starts on (0-based).
struct Chunk<'a> {
    text: &'a str,
    line: usize,
}

fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            out.push(Chunk {
                text: &text[start..offset],
                line: start_line,
            });
            start = offset + line.len();
            start_line = i + 1;
        }
        offset += line.len();
    }
    out.push(Chunk {
        text: &text[start..],
        line: start_line,
    });
    out.retain(|c| {
        c.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    out
}

fn typed<T: DeserializeOwned>(file: &str, c: &Chunk<'_>) -> Result<T, ConfigError> {
    serde_norway::from_str(c.text).map_err(|e| ConfigError::from_yaml(file, c.line, &e))
}

/// Reads the manifests and builds them.
pub(crate) fn parse(file: &str, text: &str, env: &Env) -> Result<Gateway, ConfigError> {
    let (cfg, notes) = model(file, text)?;
    let mut gw = build(&cfg, env, Source { file, text: None })?;
    gw.notes.splice(0..0, notes);
    gw.notes.dedup();
    Ok(gw)
}

/// Translates the manifests into the configuration model, with notes on what agw ignores.
pub(crate) fn model(file: &str, text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    let mut listen = None;
    let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut backends: Vec<(usize, Manifest<BackendSpec>)> = Vec::new();
    let mut routes: Vec<(usize, Manifest<HttpRouteSpec>)> = Vec::new();
    let mut notes = Vec::new();
    for c in split(text) {
        let head: Value =
            serde_norway::from_str(c.text).map_err(|e| ConfigError::from_yaml(file, c.line, &e))?;
        let kind = head.get("kind").and_then(Value::as_str).unwrap_or("");
        let at = |msg: String| ConfigError::new(file, msg).at(Some(c.line + 1), None);
        match kind {
            "Gateway" => {
                let g: Manifest<GatewaySpec> = typed(file, &c)?;
                if g.spec.gateway_class_name.is_some() {
                    notes.push("Gateway.spec.gatewayClassName is a cluster detail; ignored".into());
                }
                if g.spec.infrastructure.is_some() {
                    notes.push("Gateway.spec.infrastructure is a cluster detail; ignored".into());
                }
                let http: Vec<&Listener> = g
                    .spec
                    .listeners
                    .iter()
                    .filter(|l| l.protocol.eq_ignore_ascii_case("HTTP"))
                    .collect();
                let Some(first) = http.first() else {
                    return Err(at(
                        "Gateway.spec.listeners: agw serves one HTTP listener; none found".into(),
                    ));
                };
                if first.allowed_routes.is_some() {
                    notes.push(
                        "Gateway.spec.listeners[].allowedRoutes: all routes are allowed; ignored"
                            .into(),
                    );
                }
                if http.len() > 1 || g.spec.listeners.len() > http.len() {
                    notes.push(format!(
                        "Gateway.spec.listeners: only port {} (HTTP) is served",
                        first.port
                    ));
                }
                listen = Some(format!("127.0.0.1:{}", first.port));
            }
            "Secret" => {
                let s: SecretDoc = typed(file, &c)?;
                let mut values = s.string_data;
                for (k, v) in s.data {
                    let decoded = base64_decode(&v).ok_or_else(|| {
                        at(format!(
                            "Secret `{}`: data.{k} is not base64",
                            s.metadata.name
                        ))
                    })?;
                    values.insert(k, decoded);
                }
                secrets.insert(s.metadata.name, values);
            }
            "AgentgatewayBackend" => backends.push((c.line, typed(file, &c)?)),
            "HTTPRoute" => routes.push((c.line, typed(file, &c)?)),
            "" => return Err(at("a manifest without `kind`".into())),
            other => {
                return Err(at(format!(
                    "kind `{other}` is not supported (agw reads Gateway, Secret, AgentgatewayBackend and HTTPRoute)"
                )));
            }
        }
    }
    let mut cfg = Config {
        listen,
        ..Config::default()
    };
    if backends.is_empty() {
        return Err(ConfigError::new(
            file,
            "no AgentgatewayBackend in the manifests",
        ));
    }
    for (line, b) in backends {
        let name = b.metadata.name.clone();
        let spec = backend(b, &secrets).map_err(|m| {
            ConfigError::new(file, format!("AgentgatewayBackend `{name}`: {m}"))
                .at(Some(line + 1), None)
        })?;
        cfg.backends.push(model::BackendSpec {
            line: Some(line + 1),
            ..spec
        });
    }
    for (line, r) in routes {
        let at = |msg: String| {
            ConfigError::new(file, format!("HTTPRoute `{}`: {msg}", r.metadata.name))
                .at(Some(line + 1), None)
        };
        if r.spec.parent_refs.is_some() {
            notes.push("HTTPRoute.spec.parentRefs: agw is the only gateway; ignored".into());
        }
        if r.spec.hostnames.is_some() {
            return Err(at("spec.hostnames is not supported".into()));
        }
        for rule in &r.spec.rules {
            let [backend_ref] = rule.backend_refs.as_slice() else {
                return Err(at("each rule needs exactly one backendRef".into()));
            };
            if !cfg.backends.iter().any(|b| b.name == backend_ref.name) {
                return Err(at(format!(
                    "backendRef `{}` names no AgentgatewayBackend",
                    backend_ref.name
                )));
            }
            let route = |prefix: &str| HttpRoute {
                prefix: prefix.to_owned(),
                backend: backend_ref.name.clone(),
            };
            if rule.matches.is_empty() {
                cfg.routes.push(route("/"));
            }
            for m in &rule.matches {
                let Some(p) = &m.path else {
                    return Err(at("only path matches are supported".into()));
                };
                if p.ty != "PathPrefix" {
                    return Err(at(format!(
                        "path match type `{}` is not supported (use PathPrefix)",
                        p.ty
                    )));
                }
                cfg.routes.push(route(&p.value));
            }
        }
    }
    if cfg.routes.is_empty() && cfg.backends.len() > 1 {
        return Err(ConfigError::new(
            file,
            "several backends but no HTTPRoute to choose between them",
        ));
    }
    Ok((cfg, notes))
}

fn backend(
    b: Manifest<BackendSpec>,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<model::BackendSpec, String> {
    let p = &b.spec.ai.provider;
    let (provider, options) = match (&p.anthropic, &p.openai) {
        (Some(o), None) => (ProviderName::Anthropic, o),
        (None, Some(o)) => (ProviderName::Openai, o),
        _ => return Err("spec.ai.provider must name exactly one of `anthropic`, `openai`".into()),
    };
    let mut out = model::BackendSpec::new(b.metadata.name, provider);
    out.model.pin = options.model.clone();
    let key = match &b.spec.policies.auth {
        None => None,
        Some(Auth {
            key: Some(k),
            secret_ref: None,
        }) => Some(k.clone()),
        Some(Auth {
            secret_ref: Some(r),
            key: None,
        }) => {
            let values = secrets.get(&r.name).ok_or_else(|| {
                format!(
                    "policies.auth.secretRef: no Secret named `{}` in the file",
                    r.name
                )
            })?;
            let v = values
                .get("Authorization")
                .or_else(|| values.values().next())
                .ok_or_else(|| format!("Secret `{}` has no value", r.name))?;
            Some(v.clone())
        }
        Some(_) => return Err("policies.auth: give `secretRef` or `key`".into()),
    };
    // A `$VAR` reference stays one (the build step reads the environment); a literal may carry
    // the `Bearer ` of an Authorization header value.
    out.api_key = key.map(|k| match Env::reference(&k) {
        Some(_) => k,
        None => k.trim_start_matches("Bearer ").to_owned(),
    });
    if let Some(map) = &b.spec.policies.ai.routes {
        out.routes = Some(
            map.iter()
                .map(|(path, kind)| {
                    let kind = match kind.as_str() {
                        "AnthropicTokenCount" => "CountTokens",
                        other => other,
                    };
                    (path.clone(), kind.to_owned())
                })
                .collect(),
        );
    }
    if let Some(g) = &b.spec.policies.ai.prompt_guard {
        out.guards.request = guard_rules("promptGuard.request", &g.request)?;
        out.guards.response = guard_rules("promptGuard.response", &g.response)?;
    }
    Ok(out)
}

/// The rules of a `promptGuard.request` or `.response` list, as native rule specs.
fn guard_rules(what: &str, entries: &[GuardEntry]) -> Result<Vec<RuleSpec>, String> {
    let mut rules = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let rule_name = format!("{what}[{i}]");
        let r = &entry.regex;
        let mut detectors = Vec::new();
        for builtin in &r.builtins {
            let d = builtin_detector(builtin).ok_or_else(|| {
                format!(
                    "{rule_name}.regex.builtins: unknown builtin `{builtin}` \
                     (known: CreditCard, Ssn, Email, PhoneNumber, CaSin)"
                )
            })?;
            detectors.push(d.name().to_owned());
        }
        if r.matches.is_empty() && detectors.is_empty() {
            return Err(format!("{rule_name}.regex: no `matches` or `builtins`"));
        }
        let resp = entry.response.as_ref();
        let base = RuleSpec {
            action: match r.action {
                GuardAction::Reject => ActionSpec::Reject,
                GuardAction::Mask => ActionSpec::Mask,
            },
            message: resp
                .and_then(|r| r.message.clone())
                .filter(|_| matches!(r.action, GuardAction::Reject)),
            status: resp
                .and_then(|r| r.status_code)
                .filter(|_| matches!(r.action, GuardAction::Reject)),
            ..RuleSpec::default()
        };
        let both = !r.matches.is_empty() && !detectors.is_empty();
        if !r.matches.is_empty() {
            rules.push(RuleSpec {
                name: Some(if both {
                    format!("{rule_name}.matches")
                } else {
                    rule_name.clone()
                }),
                regex: r.matches.clone(),
                ..base.clone()
            });
        }
        if !detectors.is_empty() {
            rules.push(RuleSpec {
                name: Some(if both {
                    format!("{rule_name}.builtins")
                } else {
                    rule_name.clone()
                }),
                detectors,
                ..base
            });
        }
    }
    Ok(rules)
}

fn builtin_detector(name: &str) -> Option<Detector> {
    Some(match name {
        "CreditCard" => Detector::CreditCard,
        "Ssn" => Detector::UsSsn,
        "Email" => Detector::Email,
        "PhoneNumber" => Detector::Phone,
        "CaSin" => Detector::CaSin,
        other => return Detector::from_name(other),
    })
}

fn base64_decode(s: &str) -> Option<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("c2stYW50LXRlc3Q=").as_deref(),
            Some("sk-ant-test")
        );
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn split_keeps_line_numbers() {
        let docs = split("# c\nkind: A\n---\nkind: B\n\n---\n# only a comment\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].line, 3);
    }
}
