//! Building a [`Policy`] and inspecting bodies with it.

use super::engine::{Engines, RawHit, Wanted};
use super::extract::{Doc, extract};
use super::rule::{Action, ActionKind, Field, Rule, Scope};
use super::tool::{ToolRule, ToolRules};
use crate::api::{ErrorBody, ErrorKind};
use crate::detect::{Detector, Edges, Finding};
use crate::edit::{Edit, apply};
use crate::json::{JsonError, map_back_many, map_exact};
use crate::route::RouteKind;
use http::StatusCode;
use std::ops::Range;
use std::sync::Arc;

/// Why a policy could not be built. The message names the rule and the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A rule has nothing to match.
    #[error("rule `{rule}`: no {what} given")]
    Empty {
        /// The rule.
        rule: String,
        /// What is missing.
        what: &'static str,
    },
    /// A regular expression does not compile.
    #[error("rule `{rule}`: invalid regex `{pattern}`: {message}")]
    Regex {
        /// The rule.
        rule: String,
        /// The expression.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// All expressions together exceed the size limit.
    #[error("the regexes of all rules together are too large: {message}")]
    RegexSet {
        /// What went wrong.
        message: String,
    },
    /// The keyword automaton could not be built.
    #[error("the keyword lists could not be compiled: {message}")]
    Literals {
        /// What went wrong.
        message: String,
    },
    /// Two rules share a name.
    #[error("rule name `{0}` is used twice")]
    DuplicateName(String),
    /// A rule applies to no field.
    #[error("rule `{0}`: the field filter is empty")]
    NoFields(String),
    /// A rejection status that is not a 4xx.
    #[error("rule `{rule}`: reject status {status} is not a 4xx client error")]
    Status {
        /// The rule.
        rule: String,
        /// The status.
        status: u16,
    },
}

/// Why a body could not be inspected. Callers must not forward such a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InspectError(#[from] pub JsonError);

impl InspectError {
    /// The 400 error a client gets for this body.
    pub fn error_body(&self) -> ErrorBody {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("agw could not inspect the request body: {}", self.0),
        )
    }
}

/// Collects rules for a [`Policy`].
#[derive(Debug, Clone, Default)]
pub struct PolicyBuilder {
    rules: Vec<Rule>,
    tools: Vec<ToolRule>,
}

impl PolicyBuilder {
    /// Adds a rule. Rules are checked in the order added; the first rejecting rule that matches
    /// decides the message.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds several rules.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Adds a tool-call rule (see [`ToolRule`]); tool rules apply to responses only.
    pub fn tool_rule(mut self, rule: ToolRule) -> Self {
        self.tools.push(rule);
        self
    }

    /// Validates and compiles the rules.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let tools = ToolRules::build(&self.tools)?;
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(PolicyError::DuplicateName(r.name.clone()));
            }
            if r.fields.is_empty() {
                return Err(PolicyError::NoFields(r.name.clone()));
            }
            if let Action::Reject { status, .. } = &r.action
                && !status.is_client_error()
            {
                return Err(PolicyError::Status {
                    rule: r.name.clone(),
                    status: status.as_u16(),
                });
            }
        }
        let engines = Engines::build(&self.rules)?;
        // Which rules apply, for each field and each kind of text: [`OLDER`], [`LATEST`], or
        // [`OLDER_USER`] — older text the client wrote, which rejecting rules of every scope
        // read so that text they would reject is removed, never forwarded.
        let mut wanted = vec![vec![false; self.rules.len()]; Field::ALL.len() * CONTEXTS];
        for (ctx, w) in wanted.iter_mut().enumerate() {
            let field = Field::ALL[ctx / CONTEXTS];
            let state = ctx % CONTEXTS;
            for (i, r) in self.rules.iter().enumerate() {
                let reject = matches!(r.action, Action::Reject { .. });
                w[i] = r.fields.contains(field)
                    && (r.effective_scope() == Scope::All
                        || state == LATEST
                        || (state == OLDER_USER && reject));
            }
        }
        Ok(Policy {
            inner: Arc::new(Inner {
                rules: self.rules.into_iter().map(Compiled::from).collect(),
                engines,
                wanted,
                tools,
                tool_rules: self.tools,
                prefixes: std::sync::OnceLock::new(),
                id: super::clean::next_id(),
            }),
        })
    }
}

/// Kinds of text, for [`Inner::wanted`]: older than the last assistant turn...
const OLDER: usize = 0;
/// ... newer ...
const LATEST: usize = 1;
/// ... or older, from a message the client wrote (user or tool).
const OLDER_USER: usize = 2;
const CONTEXTS: usize = 3;

/// The text that takes the place of a string a rejecting rule removed.
fn removed_placeholder(rule: &str) -> String {
    format!("[removed by agw: rule {rule}]")
}

/// The edit that replaces a segment's whole text with `text`: inside a string's quotes, or a
/// number by a JSON string.
fn replace_seg(seg: &super::extract::Seg, text: &str) -> Edit {
    if seg.number {
        let mut quoted = b"\"".to_vec();
        crate::edit::escape_json_into(text, &mut quoted);
        quoted.push(b'"');
        Edit::new(seg.raw.clone(), quoted)
    } else {
        Edit::json_string(seg.raw.clone(), text)
    }
}

/// A masked piece of text waiting to be mapped back to raw bytes.
#[derive(Debug)]
struct Pending {
    seg: usize,
    first: usize,
    last: usize,
    placeholder: String,
    /// The first piece of its match: it carries the placeholder. A later piece (the rest of a
    /// match that runs into the next string) is removed, unless it is its whole string: an
    /// empty text block or message is refused by Anthropic's API, so it gets the placeholder
    /// too.
    leads: bool,
}

#[derive(Debug)]
struct Compiled {
    name: Arc<str>,
    action: Action,
    rule: Rule,
}

impl From<Rule> for Compiled {
    fn from(rule: Rule) -> Self {
        Compiled {
            name: rule.name.as_str().into(),
            action: rule.action.clone(),
            rule,
        }
    }
}

#[derive(Debug)]
struct Inner {
    rules: Vec<Compiled>,
    engines: Engines,
    /// `wanted[field * CONTEXTS + context][rule]`.
    wanted: Vec<Vec<bool>>,
    tools: ToolRules,
    tool_rules: Vec<ToolRule>,
    /// The stream guard's prefix automaton, built when the first stream needs it.
    prefixes: std::sync::OnceLock<crate::stream::prefix::Prefixes>,
    /// Never reused: what this policy found clean is kept under it ([`super::clean`]).
    id: u64,
}

/// A compiled, immutable set of guard rules. Cheap to clone (an `Arc`), `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

/// One rule that matched: which, what it does, and where — never the matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The rule's action.
    pub action: ActionKind,
    /// The detector that fired, for detector rules.
    pub detector: Option<Detector>,
    /// The field path of the match, such as `messages[3].content[1].text`.
    pub path: String,
}

/// A match in plain text, from [`Policy::find_in_text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch<'a> {
    /// The rule's name.
    pub rule: &'a Arc<str>,
    /// The rule's action.
    pub action: &'a Action,
    /// The detector that fired, for detector rules.
    pub detector: Option<Detector>,
    /// The byte range in the text.
    pub range: std::ops::Range<usize>,
    /// The rule matches whole words only: text after the range, still to come, can undo it.
    pub whole_word: bool,
}

impl TextMatch<'_> {
    /// The placeholder a masking rule puts in place of this match.
    pub fn placeholder(&self) -> &str {
        match self.action {
            Action::Mask {
                placeholder: Some(p),
            } => p,
            _ => self.detector.map_or("<MASKED>", Detector::placeholder),
        }
    }
}

/// A rejection: the rule that decided, and the error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule's name.
    pub rule: Arc<str>,
    /// The status to answer with.
    pub status: StatusCode,
    /// The message to show.
    pub message: String,
}

impl Action {
    /// The rejection this action makes for rule `rule`: `None` unless it rejects.
    pub(crate) fn rejection(&self, rule: &Arc<str>) -> Option<Rejection> {
        match self {
            Action::Reject { status, message } => Some(Rejection {
                rule: rule.clone(),
                status: *status,
                message: message.clone(),
            }),
            Action::Mask { .. } | Action::Audit => None,
        }
    }
}

impl Rejection {
    /// The provider-shaped error for this rejection.
    pub fn error_body(&self) -> ErrorBody {
        // A refused response (a 502: what the model wrote cannot be passed on) is the
        // upstream's fault, not the request's: its type says so (regression round).
        let kind = if self.status.is_server_error() {
            ErrorKind::BadGateway
        } else {
            ErrorKind::InvalidRequest
        };
        ErrorBody::new(kind, self.message.clone()).with_status(self.status)
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the original bytes.
    Allow,
    /// Answer with an error; forward nothing.
    Reject(Rejection),
    /// Forward these bytes instead: the original with masked spans replaced.
    Rewrite(Vec<u8>),
}

/// The outcome of inspecting a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub(super) decision: Decision,
    pub(super) hits: Vec<Hit>,
    pub(super) model: Option<String>,
    pub(super) shape: crate::usage::RequestShape,
    /// A rule matched in tool definitions (they are then not kept as clean).
    pub(super) tool_hit: bool,
}

impl Verdict {
    /// A verdict that names no model or output cap (only [`Policy::inspect`] reads those).
    pub(super) fn new(decision: Decision, hits: Vec<Hit>) -> Verdict {
        Verdict {
            decision,
            hits,
            model: None,
            shape: crate::usage::RequestShape::default(),
            tool_hit: false,
        }
    }

    /// What to do.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Consumes the verdict, giving the decision.
    pub fn into_decision(self) -> Decision {
        self.decision
    }

    /// Every hit that counted (for a rejection, the hits found until it was decided).
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// The request's top-level `model`, if it names one (read while scanning, for logs).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The request's output cap, the completions it asks for and whether it streams, read
    /// with the `model`: what [`crate::usage::request_shape`] gives for the body, without
    /// reading it again.
    pub fn shape(&self) -> crate::usage::RequestShape {
        self.shape
    }

    /// Takes the request's `model` out of the verdict (no copy).
    pub fn take_model(&mut self) -> Option<String> {
        self.model.take()
    }

    /// Whether the body goes through unchanged.
    pub fn is_allow(&self) -> bool {
        self.decision == Decision::Allow
    }
}

impl Policy {
    /// Starts a policy.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// A policy without rules: every body is allowed (but still validated).
    pub fn empty() -> Policy {
        PolicyBuilder::default()
            .build()
            .expect("an empty policy builds")
    }

    /// Whether the policy has no rules (text rules or tool rules).
    pub fn is_empty(&self) -> bool {
        self.inner.rules.is_empty() && self.inner.tools.is_empty()
    }

    /// The tool-call rules, in order.
    pub fn tool_rules(&self) -> &[ToolRule] {
        &self.inner.tool_rules
    }

    pub(super) fn tools(&self) -> &ToolRules {
        &self.inner.tools
    }

    pub(crate) fn prefixes(&self) -> &crate::stream::prefix::Prefixes {
        self.inner
            .prefixes
            .get_or_init(|| crate::stream::prefix::Prefixes::build(self))
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.inner.rules.iter().map(|c| &c.rule)
    }

    /// Inspects a request body of route `kind`.
    ///
    /// Each prompt-bearing kind is read in its own shape (see the [module docs](super)).
    /// [`RouteKind::Passthrough`] bodies are read generically: every string of a JSON body,
    /// object keys included, and a body that is not JSON is an [`InspectError`]; a passthrough request without
    /// a body is allowed. [`RouteKind::Models`] and [`RouteKind::Unguarded`] are allowed without
    /// reading the body.
    pub fn inspect(&self, kind: RouteKind, body: &[u8]) -> Result<Verdict, InspectError> {
        if matches!(kind, RouteKind::Models | RouteKind::Unguarded) {
            return Ok(Verdict::new(Decision::Allow, Vec::new()));
        }
        let mut doc = extract(kind, body, self.inner.id)?;
        let mut verdict = self.decide(body, &doc);
        if !matches!(verdict.decision(), Decision::Reject(_)) {
            self.escaped_arguments(body, &doc, &mut verdict);
        }
        if doc.template && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.own_template(&mut verdict);
        }
        if !doc.encoded_urls.is_empty() && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.encoded_urls(&doc, &mut verdict);
        }
        if let Some(model) = doc.model.as_deref()
            && !matches!(verdict.decision(), Decision::Reject(_))
        {
            self.model_name(model, &mut verdict);
        }
        if !doc.identifiers.is_empty() && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.identifiers(&doc.identifiers, &mut verdict);
        }
        if !doc.inline_files.is_empty() && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.inline_files(&doc.inline_files, &mut verdict);
        }
        // Tool definitions nothing matched in are known clean for this policy (a value with a
        // match is read again every time). Not after a refusal: it stops at its first hit,
        // before what follows is read.
        if !matches!(verdict.decision(), Decision::Reject(_)) && !verdict.tool_hit {
            for (depth, r) in &doc.tool_values {
                super::clean::keep(self.inner.id, *depth, &body[r.clone()]);
            }
        }
        verdict.model = doc.model.take();
        verdict.shape = doc.shape;
        doc.recycle();
        Ok(verdict)
    }

    /// A URL the provider fetches reaches a third party, which decodes its percent-escapes
    /// (and a query's `+`): `?k=%53ECRET`, `?c=4111+1111+1111+1111` hide from the rules what
    /// the server there reads. Such a URL is read again decoded; a rule that finds there what
    /// it did not find in the URL as written refuses the request where it would refuse or
    /// mask (the escapes cannot be masked in place), an audit rule reports it. Found by the
    /// fourth review's regression round.
    fn encoded_urls(&self, doc: &Doc, verdict: &mut Verdict) {
        let inner = &*self.inner;
        let wanted: Vec<bool> = inner
            .rules
            .iter()
            .map(|r| r.rule.fields.contains(Field::Messages))
            .collect();
        let (mut findings, mut as_written, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
        for range in &doc.encoded_urls {
            let url = &doc.text[range.clone()];
            // Decoded text is normalised as a body's is: `%00` or a zero-width character
            // between a key's halves is removed, as it is from JSON text (found while mending
            // the seventh review's control-character gap).
            let decoded_url = crate::route::canonical::percent_decoded(url);
            let decoded_url = String::from_utf8_lossy(&decoded_url);
            let plain = crate::json::normalize_str(&decoded_url);
            let plain = plain.as_bytes();
            self.find_both(
                &wanted,
                [url, plain],
                &mut findings,
                [&mut as_written, &mut decoded],
            );
            for h in &decoded {
                if as_written.iter().any(|w| w.rule == h.rule) {
                    continue;
                }
                if self.hidden_hit(
                    verdict,
                    h,
                    "url (percent-decoded)",
                    StatusCode::BAD_REQUEST,
                    |rule| {
                        format!(
                            "A URL the provider fetches hides text behind percent-escapes that the \
                         rule `{rule}` would mask; write it without them."
                        )
                    },
                ) {
                    return;
                }
            }
        }
    }

    /// A request's `model` reaches the provider and its logs as the body does: read by the
    /// rules that read the latest message text. A model name is not rewritten (it picks what
    /// runs), so a masking rule's match refuses the request (a rejecting rule's with its own
    /// status and message); the hit's path is `model`, never the name. Found by the seventh
    /// red-team review (`"model":"AKIA…"` went upstream as it was). A name found clean is
    /// remembered per thread for the policy, as the same name comes with every request.
    fn model_name(&self, model: &str, verdict: &mut Verdict) {
        thread_local! {
            /// The last name found clean, and the policy it was clean for.
            static CLEAN: std::cell::RefCell<(u64, String)> =
                const { std::cell::RefCell::new((0, String::new())) };
        }
        let inner = &*self.inner;
        let wanted = &inner.wanted[Field::Messages as usize * CONTEXTS + LATEST];
        if model.is_empty()
            || !wanted.iter().any(|w| *w)
            || CLEAN.with_borrow(|(id, name)| *id == inner.id && name == model)
        {
            return;
        }
        let hits = verdict.hits().len();
        self.refuse_in(
            verdict,
            wanted,
            crate::json::normalize_str(model).as_bytes(),
            "model",
            StatusCode::BAD_REQUEST,
            |rule| {
                format!(
                    "The request's model names text that the rule `{rule}` would mask; a model \
                     name is not rewritten."
                )
            },
        );
        if verdict.hits().len() == hits {
            CLEAN.with_borrow_mut(|(id, name)| {
                *id = inner.id;
                name.clear();
                name.push_str(model);
            });
        }
    }

    /// Identifier fields (`user`, `safety_identifier`, `prompt_cache_key`, `metadata`, a batch
    /// request's `custom_id`) reach the provider: read by the rules that read the latest message text, never rewritten (a
    /// masked identifier would be every end user's), so a masking rule's match refuses; the
    /// hit's path is `identifier`.
    fn identifiers(&self, strings: &[String], verdict: &mut Verdict) {
        let wanted = &self.inner.wanted[Field::Messages as usize * CONTEXTS + LATEST];
        if !wanted.iter().any(|w| *w) {
            return;
        }
        for s in strings {
            self.refuse_in(
                verdict,
                wanted,
                crate::json::normalize_str(s).as_bytes(),
                "identifier",
                StatusCode::BAD_REQUEST,
                |rule| {
                    format!(
                        "The request's `user`, `metadata`, a batch request's `custom_id` or \
                         another identifier carries text that the rule `{rule}` would mask; an \
                         identifier is not rewritten (send a hash of it)."
                    )
                },
            );
            if matches!(verdict.decision(), Decision::Reject(_)) {
                return;
            }
        }
    }

    /// Files the request carries inline (a `data:` URL, `file_data`, a base64 document) whose
    /// contents are text: read by the rules that read their field, never rewritten (the
    /// encoded bytes cannot be masked in place), so a masking rule's match refuses; the hit's
    /// path is `file (decoded)`.
    fn inline_files(&self, files: &[(String, Field)], verdict: &mut Verdict) {
        for (text, field) in files {
            let wanted = &self.inner.wanted[*field as usize * CONTEXTS + LATEST];
            if !wanted.iter().any(|w| *w) {
                continue;
            }
            self.refuse_in(
                verdict,
                wanted,
                crate::json::normalize_str(text).as_bytes(),
                "file (decoded)",
                StatusCode::BAD_REQUEST,
                |rule| {
                    format!(
                        "A file in the request holds text that the rule `{rule}` would mask; an \
                         encoded file is not rewritten (send it as text, or without it)."
                    )
                },
            );
            if matches!(verdict.decision(), Decision::Reject(_)) {
                return;
            }
        }
    }

    /// The matches of the `wanted` rules in a text as written and in the same text as a server
    /// decodes it (percent-escapes, JSON escapes), each into its own list (cleared first).
    fn find_both(
        &self,
        wanted: &[bool],
        texts: [&[u8]; 2],
        findings: &mut Vec<Finding>,
        outs: [&mut Vec<RawHit>; 2],
    ) {
        for (text, out) in texts.into_iter().zip(outs) {
            out.clear();
            self.find_plain(wanted, text, findings, out);
        }
    }

    /// The matches of the `wanted` rules in one plain text (not a JSON document), appended to
    /// `out`.
    fn find_plain(
        &self,
        wanted: &[bool],
        text: &[u8],
        findings: &mut Vec<Finding>,
        out: &mut Vec<RawHit>,
    ) {
        self.inner.engines.find(
            text,
            Edges::NONE,
            Wanted { rules: wanted },
            findings,
            out,
            &|_| false,
        );
    }

    /// [`Policy::find_plain`], each hit recorded by [`Policy::hidden_hit`] at `path` until one
    /// refuses: for text agw reads but never rewrites (a request's URL, a response's tool
    /// name).
    fn refuse_in(
        &self,
        verdict: &mut Verdict,
        wanted: &[bool],
        text: &[u8],
        path: &str,
        mask_status: StatusCode,
        mask_message: impl Fn(&str) -> String,
    ) {
        let (mut findings, mut raw) = (Vec::new(), Vec::new());
        self.find_plain(wanted, text, &mut findings, &mut raw);
        for h in &raw {
            if self.hidden_hit(verdict, h, path, mask_status, &mask_message) {
                break;
            }
        }
    }

    /// Records a hit in text agw does not rewrite in place (behind escapes, a URL, a response's
    /// tool name): an audit rule reports it, a rejecting rule refuses as it would anyway, and a
    /// masking rule refuses with `mask_status` and `mask_message`. Returns whether the message
    /// is now refused.
    fn hidden_hit(
        &self,
        verdict: &mut Verdict,
        h: &RawHit,
        path: &str,
        mask_status: StatusCode,
        mask_message: impl FnOnce(&str) -> String,
    ) -> bool {
        let rule = &self.inner.rules[h.rule];
        verdict.hits.push(Hit {
            rule: rule.name.clone(),
            action: rule.action.kind(),
            detector: h.detector,
            path: path.to_owned(),
        });
        let rejection = match &rule.action {
            Action::Audit => None,
            Action::Reject { .. } => rule.action.rejection(&rule.name),
            Action::Mask { .. } => Some(Rejection {
                rule: rule.name.clone(),
                status: mask_status,
                message: mask_message(&rule.name),
            }),
        };
        match rejection {
            Some(r) => {
                verdict.decision = Decision::Reject(r);
                true
            }
            None => false,
        }
    }

    /// A request's own `chat_template` is a program (Jinja) the server runs over the messages:
    /// it can put together what no guard read — a secret written backwards, or split over
    /// messages and joined (`{{ messages[0].content ~ messages[2].content }}`). Where a rule
    /// would refuse or mask text, such a request is refused; audit-only policies let it
    /// through. Found by the fourth red-team review.
    fn own_template(&self, verdict: &mut Verdict) {
        let Some(rule) = self
            .inner
            .rules
            .iter()
            .find(|r| !matches!(r.rule.action, Action::Audit))
        else {
            return;
        };
        verdict.hits.push(Hit {
            rule: rule.name.clone(),
            action: ActionKind::Reject,
            detector: None,
            path: "chat_template".to_owned(),
        });
        verdict.decision = Decision::Reject(Rejection {
            rule: rule.name.clone(),
            status: StatusCode::BAD_REQUEST,
            message: "A request's own prompt template (chat_template, Ollama's template) is \
                      refused where guards refuse or mask text: the server runs it over the \
                      messages and it could assemble text no guard read. Leave it out to use \
                      the server's or the model's template."
                .to_owned(),
        });
    }

    /// Function-call `arguments` that are not JSON are read as the string they are (those that
    /// are JSON are read as the JSON they hold: [`Seg::inner`](super::extract::Seg)). A lenient
    /// server may still decode the `\uXXXX` escapes in them (`\u0041KIA…`), so those that
    /// carry one are read again with them decoded: a match found there that the string as
    /// written does not hold is refused where a rule would refuse or mask it (escaped text
    /// cannot be masked in place), an audit rule reports it. A match the string holds as
    /// written was dealt with there (found by the fifth review: one `\u00e9` refused a mask of
    /// a token written plainly).
    fn escaped_arguments(&self, body: &[u8], doc: &Doc, verdict: &mut Verdict) {
        let inner = &*self.inner;
        // Made at the first string with escapes: most requests have none.
        let mut wanted: Vec<bool> = Vec::new();
        let (mut findings, mut as_written, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
        for unit in doc.units.iter().filter(|u| u.field == Field::ToolInput) {
            for seg in &doc.segs[unit.segs.clone()] {
                // A segment of a JSON document inside a string has its range in that document,
                // not in the body.
                if seg.inner.is_some() || !seg.loc.leaf.ends_with("arguments") {
                    continue;
                }
                let raw = &body[seg.raw.clone()];
                // Any backslash: `\u005cu0049` is an escaped `\u` too (final review).
                if memchr::memchr(b'\\', raw).is_none() {
                    continue;
                }
                let mut outer = Vec::with_capacity(raw.len());
                crate::json::unescape_exact(raw, &mut outer);
                let outer = String::from_utf8_lossy(&outer);
                if !outer.contains("\\u") {
                    continue;
                }
                if wanted.is_empty() {
                    wanted = inner
                        .rules
                        .iter()
                        .map(|r| r.rule.fields.contains(Field::ToolInput))
                        .collect();
                }
                let plain = crate::json::normalize_str(&unescape_u(&outer)).into_owned();
                let written = &doc.text[seg.text.clone()];
                self.find_both(
                    &wanted,
                    [written, plain.as_bytes()],
                    &mut findings,
                    [&mut as_written, &mut decoded],
                );
                // Each match the string holds as written stands for one decoded match of the
                // same rule and text, not for all of them: a key written plainly once and
                // spelled with escapes again is still hidden once (final review). Counted,
                // not compared pairwise (many small matches in one string).
                let mut shown: std::collections::HashMap<(usize, &[u8]), usize> =
                    std::collections::HashMap::new();
                for w in as_written.iter() {
                    *shown
                        .entry((w.rule, &written[w.range.clone()]))
                        .or_default() += 1;
                }
                for h in &decoded {
                    let found = &plain.as_bytes()[h.range.clone()];
                    if let Some(n) = shown.get_mut(&(h.rule, found)).filter(|n| **n > 0) {
                        *n -= 1;
                        continue;
                    }
                    if self.hidden_hit(
                        verdict,
                        h,
                        "arguments (escaped)",
                        StatusCode::BAD_REQUEST,
                        escaped_message,
                    ) {
                        return;
                    }
                }
            }
        }
    }

    /// A request's target (its path and query) reaches the provider, and the provider's logs,
    /// as its body does: a key pasted into a file id or a query parameter (`?note=4111…`) is
    /// read too — the path and each query parameter, percent-decoded — by the rules that read
    /// message text. A hit refuses the request where its rule refuses or masks (a URL is not
    /// rewritten) and is reported where it audits. Query parameters that carry a credential
    /// ([`is_credential_param`](crate::provider::is_credential_param)) are not read: agw drops
    /// them when it injects its own key, and otherwise they are the client's own credential,
    /// which no rule reads in a header either. Found by the fifth review.
    pub fn inspect_target(&self, path_and_query: &str) -> Verdict {
        let mut verdict = Verdict::new(Decision::Allow, Vec::new());
        let inner = &*self.inner;
        if inner.rules.is_empty() {
            return verdict;
        }
        // The rules that read the latest message text: a URL is part of this request.
        let wanted = &inner.wanted[Field::Messages as usize * CONTEXTS + LATEST];
        if !wanted.iter().any(|w| *w) {
            return verdict;
        }
        let decoded = |s: &str| crate::route::canonical::percent_decoded(s.as_bytes());
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let credential = crate::provider::is_credential_pair;
        // Nothing to decode and nothing to leave out (`/v1/messages?beta=true`): the target
        // as it is, `?` and `&` separating its parts as line breaks would.
        let plain = !path_and_query
            .bytes()
            .any(|b| b == b'%' || b == b'+' || b == b';')
            && !query.split('&').any(credential);
        let mut text = Vec::new();
        if !plain {
            text = decoded(path);
            // Each `;` part on its own (servers that split there read `note=…;key=…` as two
            // parameters): a credential part is left out, the rest is read.
            for part in query.split(['&', ';']).filter(|p| !p.is_empty()) {
                if crate::provider::is_key_part(part) {
                    continue;
                }
                // A line of its own: parameters are separate values, as blocks are.
                text.push(b'\n');
                text.extend_from_slice(&decoded(part));
            }
        }
        // Decoded text is normalised as a body's is (full-width digits, invisible characters:
        // final review); a plain target is ASCII, which normalising leaves as it is.
        let normalized;
        let text = if plain {
            path_and_query.as_bytes()
        } else {
            normalized = crate::json::normalize_str(&String::from_utf8_lossy(&text)).into_owned();
            normalized.as_bytes()
        };
        self.refuse_in(
            &mut verdict,
            wanted,
            text,
            "url",
            StatusCode::BAD_REQUEST,
            |rule| {
                format!(
                    "The request's URL carries text that the rule `{rule}` would mask; a URL is \
                     not rewritten: send it in the body."
                )
            },
        );
        verdict
    }

    /// A tool call's name in a response, read by the rules that read tool input: a client
    /// dispatches on it and shows it, and a model writing it freely (a server parsing tool
    /// calls out of its text) can put anything there. A name is not rewritten, so a match of
    /// a masking rule refuses too (a reject rule's with its own status and message); the
    /// hit's path is `tool name`, never the name. Found by the sixth red-team review.
    pub(crate) fn tool_name_verdict(&self, name: &str) -> Verdict {
        let mut verdict = Verdict::new(Decision::Allow, Vec::new());
        let inner = &*self.inner;
        let wanted = &inner.wanted[Field::ToolInput as usize * CONTEXTS + LATEST];
        if name.is_empty() || !wanted.iter().any(|w| *w) {
            return verdict;
        }
        self.refuse_in(
            &mut verdict,
            wanted,
            crate::json::normalize_str(name).as_bytes(),
            "tool name",
            StatusCode::BAD_GATEWAY,
            |rule| {
                format!(
                    "The model called a tool whose name carries text that the rule `{rule}` \
                     would mask; a tool name is not rewritten."
                )
            },
        );
        verdict
    }

    /// Every match of every rule in a piece of plain text (for streamed responses, which are
    /// not JSON documents). Ranges are byte ranges of `text`.
    pub fn find_in_text(&self, text: &[u8]) -> Vec<TextMatch<'_>> {
        let inner = &*self.inner;
        let all = vec![true; inner.rules.len()];
        let (mut findings, mut raw) = (Vec::new(), Vec::new());
        self.find_plain(&all, text, &mut findings, &mut raw);
        raw.into_iter()
            .map(|h| TextMatch {
                rule: &inner.rules[h.rule].name,
                action: &inner.rules[h.rule].action,
                detector: h.detector,
                range: h.range,
                whole_word: h.detector.is_none() && inner.rules[h.rule].rule.is_whole_word(),
            })
            .collect()
    }

    /// The hits a unit's strings have where they meet: read as one text, a string's end runs
    /// into the next string's start, so a card at the end of one block followed by a block
    /// that starts with a letter has no boundary for a detector (or a whole-word rule) to
    /// find, though a client sends, and a model reads, each string on its own. Each join is
    /// read again from both sides, up to [`JOIN_WINDOW`] bytes into each string alone; a hit
    /// there counts when it touches the join. Found by the red-team review.
    #[allow(clippy::too_many_arguments)]
    fn find_at_joins(
        &self,
        doc: &Doc,
        unit: &super::extract::Unit,
        base: usize,
        wanted: Wanted<'_>,
        findings: &mut Vec<Finding>,
        raw: &mut Vec<RawHit>,
        stop: &dyn Fn(usize) -> bool,
    ) {
        let mut side = Vec::new();
        for s in unit.segs.start..unit.segs.end - 1 {
            let (a, b) = (&doc.segs[s].text, &doc.segs[s + 1].text);
            if b.start != a.end {
                // A line break agw put between them (keys, separate values): a boundary.
                continue;
            }
            // The end of string `s` alone: hits that end at its end.
            let mut from = a.end.saturating_sub(JOIN_WINDOW).max(a.start);
            while !is_char_start(&doc.text, from) {
                from += 1;
            }
            side.clear();
            let stopped = self.inner.engines.find(
                &doc.text[from..a.end],
                Edges::NONE,
                wanted,
                findings,
                &mut side,
                stop,
            );
            for h in side.drain(..) {
                // A hit at the cut start may only be one because of the cut.
                if h.range.end == a.end - from && (h.range.start > 0 || from == a.start) {
                    push_at(raw, h, from - base);
                }
            }
            if stopped {
                return;
            }
            // The start of string `s + 1` alone: hits that start at its start.
            let mut to = (b.start + JOIN_WINDOW).min(b.end);
            while !is_char_start(&doc.text, to) {
                to -= 1;
            }
            let stopped = self.inner.engines.find(
                &doc.text[b.start..to],
                Edges::NONE,
                wanted,
                findings,
                &mut side,
                stop,
            );
            for h in side.drain(..) {
                if h.range.start == 0 && (h.range.end < to - b.start || to == b.end) {
                    push_at(raw, h, b.start - base);
                }
            }
            if stopped {
                return;
            }
        }
    }

    /// This policy's id (see [`super::clean`]).
    #[cfg(test)]
    pub(crate) fn inner_id(&self) -> u64 {
        self.inner.id
    }

    pub(super) fn decide(&self, body: &[u8], doc: &Doc) -> Verdict {
        let inner = &*self.inner;
        let mut raw: Vec<RawHit> = Vec::new();
        let mut findings: Vec<Finding> = Vec::new();
        let mut hits = Vec::new();
        let mut edits = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let is_reject = |rule: usize| matches!(inner.rules[rule].action, Action::Reject { .. });
        if inner.rules.is_empty() {
            return Verdict::new(Decision::Allow, hits);
        }
        // Strings a rejecting rule removed, and the rule.
        let mut removed: Vec<(usize, usize)> = Vec::new();
        let mut tool_hit = false;
        for unit in &doc.units {
            let state = if doc.is_latest(unit) {
                LATEST
            } else if unit.user {
                OLDER_USER
            } else {
                OLDER
            };
            let wanted = Wanted {
                rules: &inner.wanted[unit.field as usize * CONTEXTS + state],
            };
            if !wanted.rules.iter().any(|w| *w) {
                continue;
            }
            let text = doc.unit_text(unit);
            raw.clear();
            // In text the client wrote, a rejecting rule's hit outside the final prompt removes
            // the strings it touches instead: keep looking for hits that reject. So does one in
            // an earlier assistant turn (its text or a tool call's input): what the model said
            // once — an answer that names the phrase, a file it wrote — comes back in every
            // later request, and rejecting it ended the session for good (twelfth session,
            // with Claude Code). Removed, a fabricated turn still never reaches the provider.
            let history = !unit.user && unit.answered && unit.field != Field::System;
            let removable = history
                || (unit.user && doc.segs[unit.segs.clone()].iter().any(|s| !s.last_prompt));
            let stop = |rule: usize| is_reject(rule) && !removable;
            let base = doc.segs[unit.segs.start].text.start;
            let stopped = inner.engines.find(
                text,
                doc.edges_in(unit),
                wanted,
                &mut findings,
                &mut raw,
                &stop,
            );
            if !stopped && unit.segs.len() > 1 {
                let found = raw.len();
                self.find_at_joins(doc, unit, base, wanted, &mut findings, &mut raw, &stop);
                if raw.len() > found {
                    // In text order, each hit once (a join's hit may be one the whole text
                    // found too): sorting, not a search per hit.
                    raw.sort_by(|x, y| {
                        (x.range.start, x.range.end, x.rule).cmp(&(
                            y.range.start,
                            y.range.end,
                            y.rule,
                        ))
                    });
                    raw.dedup_by(|x, y| x.rule == y.rule && x.range == y.range);
                }
            }
            for h in &raw {
                let rule = &inner.rules[h.rule];
                let (first_seg, pieces) = self.locate(doc, unit, base, h);
                if pieces.is_empty() {
                    // Only the separators agw puts between words (a key and its value): no
                    // one wrote that text.
                    continue;
                }
                let loc = &doc.segs[first_seg].loc;
                // A Responses MCP tool's `server_url` is read by every rule, as Anthropic's
                // `mcp_servers[].url` is; the hit still keeps the definitions from being
                // remembered clean.
                let in_tools = loc.top == super::extract::Top::Tools;
                let server_url = in_tools && loc.leaf == ".server_url";
                if in_tools
                    && !server_url
                    && (matches!(rule.action, Action::Mask { .. }) || h.detector.is_some())
                {
                    // Tool definitions are read by the literal and regex rules that reject or
                    // audit, and never rewritten: a client's schemas stay as sent. Detectors do
                    // not read them: Claude Code's own commit instructions name
                    // `noreply@anthropic.com`, and schemas are full of example values; a rule
                    // refusing emails would refuse every request.
                    continue;
                }
                tool_hit |= in_tools;
                hits.push(Hit {
                    rule: rule.name.clone(),
                    action: rule.action.kind(),
                    detector: h.detector,
                    path: match unit.request {
                        Some(r) => format!("requests[{r}].params.{loc}"),
                        None => loc.to_string(),
                    },
                });
                if let Some(r) = rule.action.rejection(&rule.name) {
                    // Older text only reaches a latest-scope rule to be removed.
                    let older_only = state == OLDER_USER && rule.rule.scope == Scope::Latest;
                    let outside_prompt = pieces.iter().all(|(s, _, _)| !doc.segs[*s].last_prompt);
                    if !pieces.is_empty()
                        && (history || (unit.user && (older_only || outside_prompt)))
                    {
                        removed.extend(pieces.iter().map(|(s, _, _)| (*s, h.rule)));
                        continue;
                    }
                    return Verdict::new(Decision::Reject(r), hits);
                }
                if let Action::Mask { placeholder } = &rule.action {
                    if doc.escaped_refuses && written_with_escapes(body, doc, &pieces) {
                        // A request's `arguments` hold it only through escapes: refused, as
                        // text behind escapes cannot be masked where it is written. Plain
                        // text beside it is masked as usual.
                        return Verdict::new(Decision::Reject(escaped_rejection(&rule.name)), hits);
                    }
                    let text = placeholder
                        .as_deref()
                        .unwrap_or_else(|| h.detector.map_or("<MASKED>", Detector::placeholder));
                    for (i, (seg, first, last)) in pieces.into_iter().enumerate() {
                        pending.push(Pending {
                            seg,
                            first,
                            last,
                            placeholder: text.to_owned(),
                            leads: i == 0,
                        });
                    }
                }
            }
        }
        // A removed string is replaced whole: masks inside it go with it.
        removed.sort_unstable();
        removed.dedup_by_key(|(seg, _)| *seg);
        let is_removed = |seg: usize| removed.binary_search_by_key(&seg, |(s, _)| *s).is_ok();
        pending.retain(|p| !is_removed(p.seg));
        // Edits of the JSON documents strings hold (`arguments`), by document: written back
        // into their strings once all are known.
        let mut nested: Vec<(u32, Edit)> = Vec::new();
        let mut push = |seg: &super::extract::Seg, e: Edit| match seg.inner {
            Some(i) => nested.push((i, e)),
            None => edits.push(e),
        };
        for (seg, rule) in &removed {
            let seg = &doc.segs[*seg];
            // A name (a tool's, a message author's) must stay one a provider takes
            // (`^[a-zA-Z0-9_-]+$`): the second round found the bracketed words there, which
            // every later turn would have been refused for.
            let placeholder = if seg.loc.leaf.ends_with(".name") {
                "removed_by_agw".to_owned()
            } else {
                removed_placeholder(&inner.rules[*rule].name)
            };
            push(seg, replace_seg(seg, &placeholder));
        }
        // Map all masked spans back to raw bytes, one walk per string (not one per hit: a
        // string with thousands of hits would otherwise be walked thousands of times).
        pending.sort_by_key(|p| p.seg);
        for group in pending.chunk_by(|a, b| a.seg == b.seg) {
            let seg = &doc.segs[group[0].seg];
            if seg.number {
                // A number is replaced whole, by a string: one edit, whatever matched in it.
                let p = group.iter().find(|p| p.leads).unwrap_or(&group[0]);
                push(seg, replace_seg(seg, &p.placeholder));
                continue;
            }
            let source = match seg.inner {
                Some(i) => &doc.inner[i as usize].json[..],
                None => body,
            };
            let raw = &source[seg.raw.clone()];
            let mut offsets: Vec<usize> = group.iter().flat_map(|p| [p.first, p.last]).collect();
            offsets.sort_unstable();
            offsets.dedup();
            let mapped = map_back_many(raw, seg.kind, &offsets);
            let find =
                |o: usize| mapped[offsets.binary_search(&o).expect("offset was mapped")].clone();
            for p in group {
                let start = find(p.first).map_or(0, |r| r.start);
                let end = find(p.last).map_or(raw.len(), |r| r.end);
                let whole = start == 0 && end == raw.len();
                push(
                    seg,
                    Edit::json_string(
                        seg.raw.start + start..seg.raw.start + end,
                        if p.leads || whole { &p.placeholder } else { "" },
                    ),
                );
            }
        }
        write_nested(body, doc, nested, &mut edits);
        let decision = if edits.is_empty() {
            Decision::Allow
        } else {
            Decision::Rewrite(apply(body, edits))
        };
        let mut verdict = Verdict::new(decision, hits);
        verdict.tool_hit = tool_hit;
        verdict
    }

    /// The first segment a hit touches, and the pieces of its text per segment it spans:
    /// (segment, first text byte, last text byte), offsets relative to the segment's text.
    fn locate(
        &self,
        doc: &Doc,
        unit: &super::extract::Unit,
        base: usize,
        h: &RawHit,
    ) -> (usize, Vec<(usize, usize, usize)>) {
        let (a, b) = (base + h.range.start, base + h.range.end);
        let mut first = None;
        let mut pieces = Vec::new();
        // The unit's strings lie in text order: start at the first that ends after the hit's
        // start (a binary search: a unit may hold thousands of strings, each with hits).
        let segs = &doc.segs[unit.segs.clone()];
        let from = unit.segs.start + segs.partition_point(|seg| seg.text.end <= a);
        for si in from..unit.segs.end {
            let seg = &doc.segs[si];
            if seg.text.start >= b {
                break;
            }
            let (s, e) = (a.max(seg.text.start), b.min(seg.text.end));
            if s >= e {
                continue;
            }
            first.get_or_insert(si);
            pieces.push((si, s - seg.text.start, e - seg.text.start - 1));
        }
        (first.unwrap_or(unit.segs.start), pieces)
    }
}

/// How far into each string a join between two strings of one unit is read again (see
/// `Policy::find_at_joins`): longer than any detector's match but a PEM key's.
const JOIN_WINDOW: usize = 1024;

/// Whether `at` starts a character of `text` (or is at or past its end).
pub(super) fn is_char_start(text: &[u8], at: usize) -> bool {
    at >= text.len() || (text[at] as i8) >= -0x40
}

/// Adds `h`, found at `offset` in the unit's text (duplicates are removed once all are in).
fn push_at(raw: &mut Vec<RawHit>, mut h: RawHit, offset: usize) {
    h.range = h.range.start + offset..h.range.end + offset;
    raw.push(h);
}

/// The rejection of a mask a request's tool call `arguments` hide behind JSON escapes.
fn escaped_rejection(rule: &Arc<str>) -> Rejection {
    Rejection {
        rule: rule.clone(),
        status: StatusCode::BAD_REQUEST,
        message: escaped_message(rule),
    }
}

fn escaped_message(rule: &str) -> String {
    format!(
        "A tool call's arguments hide text behind JSON escapes that the rule `{rule}` would \
         mask; write them without escapes."
    )
}

/// Where in the body the bytes `first..=last` of a string's text come from, when the string
/// lies in a JSON document another string holds ([`Seg::inner`](super::extract::Seg)): mapped
/// back through that document's escapes, then through the escapes of the string holding it.
fn nested_range(
    body: &[u8],
    doc: &Doc,
    seg: usize,
    first: usize,
    last: usize,
) -> Option<Range<usize>> {
    let seg = &doc.segs[seg];
    let inner = &doc.inner[seg.inner? as usize];
    let raw = &inner.json[seg.raw.clone()];
    let m = map_back_many(raw, seg.kind, &[first, last]);
    let start = seg.raw.start + m[0].as_ref().map_or(0, |r| r.start);
    let end = seg.raw.start + m[1].as_ref().map_or(raw.len(), |r| r.end);
    let at = map_exact(&body[inner.raw.clone()], &[start, end]);
    Some(inner.raw.start + at[0]..inner.raw.start + at[1])
}

/// Whether a match (its pieces, as `Policy::locate` gives them) is held by a JSON document in
/// a string only through escapes, of the document or of the string holding it: the body does
/// not hold its text as a model reads it, so it cannot be masked where it is written. Text
/// written plainly is (found by the fifth review: one `\u00e9` elsewhere in the arguments
/// refused a mask of a token written plainly).
fn written_with_escapes(body: &[u8], doc: &Doc, pieces: &[(usize, usize, usize)]) -> bool {
    pieces.iter().any(|&(seg, first, last)| {
        nested_range(body, doc, seg, first, last)
            .is_some_and(|r| memchr::memchr(b'\\', &body[r]).is_some())
    })
}

/// Writes edits of the JSON documents strings hold (`nested`: document, edit of its text) back
/// into those strings: each edit's range mapped through the string's escapes, its replacement
/// escaped for the string. The rest of the string stays byte for byte as it was.
fn write_nested(body: &[u8], doc: &Doc, mut nested: Vec<(u32, Edit)>, edits: &mut Vec<Edit>) {
    nested.sort_by_key(|(i, _)| *i);
    for group in nested.chunk_by(|a, b| a.0 == b.0) {
        let inner = &doc.inner[group[0].0 as usize];
        let mut offsets: Vec<usize> = group
            .iter()
            .flat_map(|(_, e)| [e.range.start, e.range.end])
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let mapped = map_exact(&body[inner.raw.clone()], &offsets);
        let at = |o: usize| {
            inner.raw.start + mapped[offsets.binary_search(&o).expect("offset was mapped")]
        };
        for (_, e) in group {
            let text = std::str::from_utf8(&e.replacement).expect("an edit's text is UTF-8");
            edits.push(Edit::json_string(at(e.range.start)..at(e.range.end), text));
        }
    }
}

/// `s` with each `\uXXXX` (and surrogate pair) replaced by its character; anything else kept.
fn unescape_u(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let hex = |h: &str| h.get(..4).and_then(|h| u32::from_str_radix(h, 16).ok());
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(hi) = hex(after) else {
            out.push_str("\\u");
            rest = after;
            continue;
        };
        let mut used = 4;
        let c = if (0xD800..0xDC00).contains(&hi) {
            match after[4..].strip_prefix("\\u").and_then(hex) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    used = 10;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                }
                _ => None,
            }
        } else {
            char::from_u32(hi)
        };
        out.push(c.unwrap_or('\u{FFFD}'));
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}
