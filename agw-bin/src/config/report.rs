//! What `agw check` prints: a summary line per backend and a coverage report — which paths and
//! kinds go where, which rules inspect them, which fields each rule leaves unread, and what
//! passes unguarded and why.

use super::{Backend, Gateway};
use agw_core::guard::{Field, Policy};
use agw_core::model::ModelMode;
use agw_core::route::{ResponseReading, RouteKind};

/// One line per backend: provider, base URL, credentials, model policy, prefixes, routes and
/// rules. The same for every front-end that describes the same gateway.
pub(crate) fn summary(gw: &Gateway) -> Vec<String> {
    gw.backends
        .iter()
        .map(|b| {
            let rules = rule_list(&b.policy);
            let response_rules = rule_list(&b.response_policy);
            let model = match b.model.mode() {
                ModelMode::Any => "any model".to_owned(),
                ModelMode::Pin(m) => format!("model pinned to {m}"),
                ModelMode::Aliases(a) => format!("{} model aliases", a.len()),
                _ => "model policy".to_owned(),
            };
            let routes: Vec<String> = b.routes.iter().map(|(p, k)| format!("{p} {k}")).collect();
            let mut line = format!(
                "backend {} ({} at {}, credentials: {}, {}) on {}; routes: {}; request guards: {}; response guards: {}",
                b.name,
                b.spec.kind().name(),
                super::redact::secrets(&b.spec.base_url().to_string()),
                b.spec.credentials().mode(),
                model,
                prefixes(gw, b).join(", "),
                routes.join(", "),
                rules,
                response_rules,
            );
            // Who may use it and which models, when client authentication narrows it.
            if let Some(access) = b.access.as_ref().and_then(|a| a.describe()) {
                line.push_str("; access: ");
                line.push_str(&access);
            }
            line
        })
        .collect()
}

fn prefixes<'a>(gw: &'a Gateway, b: &Backend) -> Vec<&'a str> {
    gw.http_routes
        .iter()
        .filter(|(_, i)| gw.backends[*i].name == b.name)
        .map(|(p, _)| p.as_str())
        .collect()
}

fn rule_list(p: &Policy) -> String {
    // Tool-call rules are response rules too: `name: reject tool Bash`.
    let tools = p.tool_rules().iter().map(|t| {
        let action = match t.action_ref() {
            agw_core::guard::ToolAction::Audit => "audit",
            _ => "reject",
        };
        format!("{}: {action} tool {}", t.name(), t.tool())
    });
    let rules: Vec<String> = p
        .rules()
        .map(|r| format!("{}: {}", r.name(), r.action_ref().kind().name()))
        .chain(tools)
        .collect();
    if rules.is_empty() {
        "none".to_owned()
    } else {
        rules.join(", ")
    }
}

fn names(p: &Policy) -> String {
    let names: Vec<&str> = p.rules().map(|r| r.name()).collect();
    names.join(", ")
}

/// The coverage report: for each backend, each route and what inspects it, then the gaps.
pub(crate) fn coverage(gw: &Gateway) -> Vec<String> {
    let mut out = Vec::new();
    for b in &gw.backends {
        out.push(format!(
            "backend {} (paths {}):",
            b.name,
            prefixes(gw, b).join(", ")
        ));
        let guarded = !b.policy.is_empty();
        // The table the stack runs: a configured one gains the dialects' endpoints it omits.
        let defaults = agw_tower::classify::Classifier::for_provider(&b.spec);
        let routes = b.routes.clone().with_defaults(defaults.table());
        let mut kinds: Vec<(String, RouteKind)> = routes.iter().collect();
        if !kinds.iter().any(|(p, _)| p == "*") {
            kinds.push((
                "(unmatched)".into(),
                routes.lookup("/").unwrap_or(RouteKind::Passthrough),
            ));
        }
        for (path, kind) in kinds {
            let served = b.spec.speaks(kind);
            let request = if !served {
                format!("answered 404 ({} does not serve it)", b.spec.kind().name())
            } else if kind == RouteKind::Unguarded {
                "forwarded UNGUARDED: opted out by name".to_owned()
            } else if !guarded {
                "forwarded uninspected: no request guards".to_owned()
            } else if kind.has_prompt() {
                format!("request inspected by {}", names(&b.policy))
            } else if kind == RouteKind::Passthrough {
                format!(
                    "a JSON body has every string inspected by {}; an upload (a form, a file) is \
                     read as one; no body passes",
                    names(&b.policy)
                )
            } else {
                "no prompt in the request (bodies are inspected generically)".to_owned()
            };
            let response = if !served {
                String::new()
            } else if b.response_policy.is_empty() {
                "; responses not inspected".to_owned()
            } else {
                let by = names(&b.response_policy);
                match kind.response_reading() {
                    ResponseReading::Model => format!(
                        "; responses (JSON and streams, text, tool calls, signed thinking \
                         refused where masked) inspected by {by}; other bodies refused"
                    ),
                    ResponseReading::Lines => format!(
                        "; responses read as JSON lines whatever their content type, every line \
                         inspected by {by}; an unreadable line is refused"
                    ),
                    ResponseReading::Generic => format!(
                        "; JSON, JSON-lines and event-stream responses inspected by {by}; AWS \
                         event streams, protocol buffers and scripts refused; other bodies \
                         (files) pass unread"
                    ),
                    ResponseReading::Errors => format!(
                        "; responses carry vectors and pass unread; errors inspected by {by}"
                    ),
                    _ => "; responses not inspected either".to_owned(),
                }
            };
            out.push(format!("  {path} -> {kind}: {request}{response}"));
        }
        for r in b.policy.rules() {
            let fields = r.fields_of();
            let unread: Vec<&str> = Field::ALL
                .iter()
                .filter(|f| !fields.contains(**f))
                .map(|f| f.name())
                .collect();
            let scope = match (r.scope_of(), r.effective_scope()) {
                (agw_core::guard::Scope::Latest, agw_core::guard::Scope::All) => {
                    "; scope latest ignored: a masking rule reads every turn (clients send \
                     earlier turns again unmasked)"
                }
                (agw_core::guard::Scope::Latest, _) => {
                    "; scope latest: earlier turns and the system prompt are not read"
                }
                _ => "",
            };
            if !unread.is_empty() || !scope.is_empty() {
                out.push(format!(
                    "  rule {} does not read: {}{scope}",
                    r.name(),
                    if unread.is_empty() {
                        "-".to_owned()
                    } else {
                        unread.join(", ")
                    }
                ));
            }
        }
        if guarded {
            out.push(
                "  never read by request rules: signed thinking in assistant turns, pictures, \
                 audio and video (other files are read decoded); tool definitions (`tools`) are read as \
                 system text by literal and regex rules that reject or audit"
                    .into(),
            );
        }
        if !b.response_policy.is_empty() {
            out.push(
                "  never read by response rules: images, audio and files a model makes (Responses' \
                 image generation, code execution's files); where they mask or refuse, requests \
                 for log probabilities or spoken audio are refused"
                    .into(),
            );
        }
    }
    out
}
