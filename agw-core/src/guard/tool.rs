//! Tool-call rules: a policy over the tool calls a model makes (`Bash` whose `command` matches
//! `kubectl\s+delete`), decided before the client can run the tool.
//!
//! A [`ToolRule`] matches a call by tool name (exact, or a glob with `*` and `?`; in any ASCII
//! case, spaces around the name ignored) and, optionally, by an argument: a field of the call's
//! JSON input (a dotted path such as `command` or `options.target`, each field in any ASCII
//! case) whose value matches a regular expression. Without an
//! argument the expression is tried on every string of the input, object keys included. A
//! custom tool's free-form input (OpenAI custom tools: text, not a JSON object) has no fields,
//! so an argument rule tests the whole text. Arguments are matched after JSON unescaping and
//! the same normalisation as prompts (invisible and format characters and combining marks
//! removed, NFKC, digits of every script read as ASCII digits); the expression is folded the
//! same way. A call whose input is not valid JSON, or larger than [`MAX_TOOL_INPUT`], cannot be
//! checked and is rejected.
//!
//! # Example
//!
//! ```
//! use agw_core::guard::{Policy, ToolRule};
//!
//! let policy = Policy::builder()
//!     .tool_rule(
//!         ToolRule::new("no-cluster-deletes", "Bash")
//!             .argument("command", r"kubectl\s+delete")
//!             .reject("Deleting Kubernetes resources is not allowed"),
//!     )
//!     .build()?;
//! let hit = policy.check_tool_call("Bash", br#"{"command":"kubectl  delete ns prod"}"#);
//! assert_eq!(hit.unwrap().rule.as_ref(), "no-cluster-deletes");
//! assert!(policy.check_tool_call("Bash", br#"{"command":"kubectl get pods"}"#).is_none());
//! assert!(policy.check_tool_call("Read", br#"{"command":"kubectl delete"}"#).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{ActionKind, PolicyError};
use crate::json::normalize_str;
use http::StatusCode;
use regex::Regex;
use std::sync::Arc;

/// The largest tool-call input (JSON bytes) agw accumulates to check; a larger one is
/// rejected (fail closed).
pub const MAX_TOOL_INPUT: usize = 1 << 20;

/// What a tool rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolAction {
    /// Refuse the call: a stream ends with an error event, a JSON response becomes an error.
    Reject {
        /// HTTP status of the error response, 400 by default.
        status: StatusCode,
        /// The message the person sees.
        message: String,
    },
    /// Let the call through and report it.
    Audit,
}

/// One tool-call rule. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRule {
    pub(crate) name: String,
    pub(crate) tool: String,
    pub(crate) argument: Option<String>,
    pub(crate) regex: Option<String>,
    pub(crate) action: ToolAction,
}

impl ToolRule {
    /// A rule named `name` matching calls of the tool `tool` (exact name, or a glob with `*`
    /// and `?`, e.g. `mcp__*`). It rejects with a generic message until told otherwise.
    pub fn new(name: impl Into<String>, tool: impl Into<String>) -> ToolRule {
        ToolRule {
            name: name.into(),
            tool: tool.into(),
            argument: None,
            regex: None,
            action: ToolAction::Reject {
                status: StatusCode::BAD_REQUEST,
                message: "Tool call blocked by policy".into(),
            },
        }
    }

    /// Matches only calls whose input field `field` (a dotted path; empty for any string of
    /// the input) matches `regex`.
    pub fn argument(mut self, field: impl Into<String>, regex: impl Into<String>) -> ToolRule {
        let field = field.into();
        self.argument = (!field.is_empty()).then_some(field);
        self.regex = Some(regex.into());
        self
    }

    /// Rejects matching calls with this message (status 400).
    pub fn reject(mut self, message: impl Into<String>) -> ToolRule {
        self.action = ToolAction::Reject {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        };
        self
    }

    /// Reports matching calls and lets them through.
    pub fn audit(mut self) -> ToolRule {
        self.action = ToolAction::Audit;
        self
    }

    /// Sets the action.
    pub fn action(mut self, action: ToolAction) -> ToolRule {
        self.action = action;
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tool name or glob.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The argument path, if the rule looks at one field.
    pub fn argument_path(&self) -> Option<&str> {
        self.argument.as_deref()
    }

    /// The argument expression, if any.
    pub fn regex(&self) -> Option<&str> {
        self.regex.as_deref()
    }

    /// The action.
    pub fn action_ref(&self) -> &ToolAction {
        &self.action
    }
}

/// A tool rule that matched a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolHit {
    /// The rule's name (`agw:tool-input` when the input could not be checked).
    pub rule: Arc<str>,
    /// The rule's action.
    pub action: ActionKind,
    /// The tool's name.
    pub tool: String,
    /// For a rejection: the status and message to answer with.
    pub reject: Option<(StatusCode, String)>,
}

#[derive(Debug)]
struct CompiledTool {
    name: Arc<str>,
    /// The tool name or glob, folded ([`fold_name`]).
    tool: Vec<char>,
    path: Vec<String>,
    regex: Option<Regex>,
    action: ToolAction,
}

/// The compiled tool rules of a policy.
#[derive(Debug, Default)]
pub(crate) struct ToolRules {
    rules: Vec<CompiledTool>,
}

impl ToolRules {
    pub fn build(rules: &[ToolRule]) -> Result<ToolRules, PolicyError> {
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if rules[..i].iter().any(|o| o.name == r.name) {
                return Err(PolicyError::DuplicateName(r.name.clone()));
            }
            if r.tool.is_empty() {
                return Err(PolicyError::Empty {
                    rule: r.name.clone(),
                    what: "tool name",
                });
            }
            if let ToolAction::Reject { status, .. } = &r.action
                && !status.is_client_error()
            {
                return Err(PolicyError::Status {
                    rule: r.name.clone(),
                    status: status.as_u16(),
                });
            }
            let regex = match &r.regex {
                None => None,
                Some(p) => Some(
                    // Folded like the arguments it is matched against, a space matching any run
                    // of whitespace (`rm  -rf`, `rm\t-rf` run as `rm -rf` does: black-box
                    // review); a pattern that does not parse is compiled as written, for the
                    // regex crate's error message.
                    regex::RegexBuilder::new(
                        &super::widen::widen(p, true, false).unwrap_or_else(|_| p.clone()),
                    )
                    .size_limit(super::REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| PolicyError::Regex {
                        rule: r.name.clone(),
                        pattern: p.clone(),
                        message: e.to_string(),
                    })?,
                ),
            };
            out.push(CompiledTool {
                name: r.name.as_str().into(),
                tool: fold_name(&r.tool),
                path: r
                    .argument
                    .as_deref()
                    .map(|a| a.split('.').map(str::to_owned).collect())
                    .unwrap_or_default(),
                regex,
                action: r.action.clone(),
            });
        }
        Ok(ToolRules { rules: out })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rejecting rule that matches the call, else the first auditing one. `input`
    /// is the call's input as JSON text.
    pub fn check(&self, tool: &str, input: &[u8]) -> Option<ToolHit> {
        let name = fold_name(tool);
        let wanted: Vec<&CompiledTool> =
            self.rules.iter().filter(|r| glob(&r.tool, &name)).collect();
        if wanted.is_empty() {
            return None;
        }
        let fail = |what: &str| ToolHit {
            rule: "agw:tool-input".into(),
            action: ActionKind::Reject,
            tool: tool.to_owned(),
            reject: Some((
                StatusCode::BAD_REQUEST,
                format!("agw blocked a call of tool `{tool}`: its input {what}"),
            )),
        };
        if input.len() > MAX_TOOL_INPUT {
            return Some(fail("is too large to check"));
        }
        let text = if input.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            input
        };
        if let Err(e) = crate::guard::response::check_json(text) {
            return Some(fail(&format!("is not valid JSON ({e})")));
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
            return Some(fail("is not valid JSON"));
        };
        let mut audit = None;
        for r in wanted {
            if !r.matches(&value) {
                continue;
            }
            let hit = ToolHit {
                rule: r.name.clone(),
                action: match r.action {
                    ToolAction::Reject { .. } => ActionKind::Reject,
                    ToolAction::Audit => ActionKind::Audit,
                },
                tool: tool.to_owned(),
                reject: match &r.action {
                    ToolAction::Reject { status, message } => Some((*status, message.clone())),
                    ToolAction::Audit => None,
                },
            };
            if hit.reject.is_some() {
                return Some(hit);
            }
            audit.get_or_insert(hit);
        }
        audit
    }
}

impl CompiledTool {
    fn matches(&self, input: &serde_json::Value) -> bool {
        let Some(re) = &self.regex else {
            return true;
        };
        // A custom tool's free-form input is one string without fields: an argument rule
        // tests the whole of it.
        let path = if input.is_string() {
            &[][..]
        } else {
            &self.path[..]
        };
        let mut found = false;
        at_path(input, path, &mut |v| {
            strings(v, &mut |s| found = found || re.is_match(&normalize_str(s)));
        });
        found
    }
}

/// Calls `f` with every value at `path` in `v`. A field is found in any ASCII case (a client
/// with a case-insensitive JSON decoder, as Go's, reads `Command` as `command`), every one of
/// them if there are several.
fn at_path(v: &serde_json::Value, path: &[String], f: &mut impl FnMut(&serde_json::Value)) {
    let Some((p, rest)) = path.split_first() else {
        return f(v);
    };
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k.eq_ignore_ascii_case(p) {
                    at_path(x, rest, f);
                }
            }
        }
        serde_json::Value::Array(a) => {
            if let Some(x) = p.parse::<usize>().ok().and_then(|i| a.get(i)) {
                at_path(x, rest, f);
            }
        }
        _ => {}
    }
}

/// Calls `f` with every string in `v`, object keys included (numbers and booleans as their
/// JSON text).
fn strings(v: &serde_json::Value, f: &mut impl FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, f)),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            f(k);
            strings(x, f);
        }),
        serde_json::Value::Null => {}
        other => f(&other.to_string()),
    }
}

/// A tool name (or pattern) as tool rules compare it: in any ASCII case, without the spaces
/// around it (a lenient client may run `bash ` as `Bash`).
fn fold_name(s: &str) -> Vec<char> {
    s.trim().chars().map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether the folded tool name `n` matches the folded glob `p` (`*` any run, `?` one
/// character).
fn glob(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(r: Vec<ToolRule>) -> ToolRules {
        ToolRules::build(&r).unwrap()
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("Bash", "Bash", true),
            // Any case, spaces around ignored (found by the audit: `bash` passed a `Bash` rule).
            ("Bash", "bash", true),
            ("Bash", " BASH ", true),
            ("mcp__K8s__*", "MCP__k8s__delete", true),
            ("Bash", "Bash2", false),
            ("mcp__*", "mcp__k8s__delete", true),
            ("mcp__*", "mcp_", false),
            ("*", "", true),
            ("B?sh", "Bash", true),
            ("*__delete", "mcp__k8s__delete", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob(&fold_name(p), &fold_name(n)), want, "{p} {n}");
        }
    }

    #[test]
    fn matches_by_name_and_argument() {
        let r = rules(vec![
            ToolRule::new("k8s", "Bash")
                .argument("command", r"kubectl\s+delete")
                .reject("no deletes"),
            ToolRule::new("writes", "Write").audit(),
            ToolRule::new("deep", "Deep").argument("a.b.1", "x"),
            ToolRule::new("anywhere", "Any").argument("", "secret"),
        ]);
        let hit = r
            .check("Bash", br#"{"command":"echo hi; kubectl \t delete ns x"}"#)
            .unwrap();
        assert_eq!(hit.rule.as_ref(), "k8s");
        assert_eq!(hit.reject.unwrap().1, "no deletes");
        // A field in another case is the field (a Go client reads `Command` as `command`);
        // with both, either one matching is enough.
        for input in [
            &br#"{"Command":"kubectl delete x"}"#[..],
            br#"{"command":"ls","COMMAND":"kubectl delete x"}"#,
        ] {
            assert!(r.check("bash", input).is_some(), "{input:?}");
        }
        assert!(r.check("Deep", br#"{"A":{"B":["", "x"]}}"#).is_some());
        // Escapes and invisible characters do not hide the command.
        assert!(
            r.check("Bash", br#"{"command":"kube\u200bctl delete x"}"#)
                .is_some()
        );
        assert!(
            r.check("Bash", br#"{"command":"\u006bubectl delete"}"#)
                .is_some()
        );
        // Nor do combining marks, format characters or a braille blank.
        for evasion in [
            "ku\u{301}bectl delete x",
            "kubectl\u{2800}delete",
            "k\u{600}ube\u{1BCA0}ctl d\u{332}elete",
            "kubéctl delete",
        ] {
            let input = serde_json::json!({ "command": evasion }).to_string();
            assert!(r.check("Bash", input.as_bytes()).is_some(), "{evasion:?}");
        }
        assert!(r.check("Bash", br#"{"command":"kubectl get"}"#).is_none());
        assert!(r.check("Bash", br#"{"other":"kubectl delete"}"#).is_none());
        assert_eq!(r.check("Write", b"{}").unwrap().action, ActionKind::Audit);
        assert!(r.check("Deep", br#"{"a":{"b":["", "yxy"]}}"#).is_some());
        assert!(r.check("Deep", br#"{"a":{"b":["x"]}}"#).is_none());
        assert!(r.check("Any", br#"{"q":[{"z":"a secret"}]}"#).is_some());
        // A space in a rule's pattern matches any run of whitespace, as a shell reads it
        // (black-box review round 3: `rm  -rf` passed `rm -rf`).
        let r = rules(vec![ToolRule::new("rm", "*").argument("", "rm -rf")]);
        for cmd in ["rm -rf /", "rm  -rf /", "rm\t-rf /", "rm \n -rf /"] {
            let input = serde_json::json!({ "command": cmd }).to_string();
            assert!(r.check("Bash", input.as_bytes()).is_some(), "{cmd:?}");
        }
        assert!(r.check("Bash", br#"{"command":"rm-rf"}"#).is_none());
    }

    #[test]
    fn unreadable_input_fails_closed() {
        let r = rules(vec![
            ToolRule::new("k8s", "Bash").argument("command", "kubectl"),
        ]);
        for bad in [
            &br#"{"command":"ls"} x"#[..],
            br#"{"command":"ls","command":"kubectl"}"#,
            br#"{"command":"#,
        ] {
            let hit = r.check("Bash", bad).unwrap();
            assert_eq!(hit.action, ActionKind::Reject, "{bad:?}");
            assert_eq!(hit.rule.as_ref(), "agw:tool-input");
        }
        let big = format!(r#"{{"command":"{}"}}"#, "a".repeat(MAX_TOOL_INPUT));
        assert!(r.check("Bash", big.as_bytes()).is_some());
        // Tools no rule names are not checked at all.
        assert!(r.check("Read", b"not json").is_none());
    }

    #[test]
    fn bad_rules_fail_to_build() {
        let e =
            ToolRules::build(&[ToolRule::new("r", "Bash").argument("command", "(")]).unwrap_err();
        assert!(e.to_string().contains("rule `r`"), "{e}");
        assert!(ToolRules::build(&[ToolRule::new("r", "")]).is_err());
        assert!(ToolRules::build(&[ToolRule::new("r", "a"), ToolRule::new("r", "b")]).is_err());
    }
}
