//! Building a [`Policy`] and inspecting bodies with it.
//!
//! This file builds the policy and holds [`Policy::inspect`], the walk from a body to a
//! [`Verdict`]: `decide` matches each rule in the contexts it reads and makes a mask's edits,
//! `reads` checks what lies beside the body's units of text (URLs again percent-decoded, the
//! model's name, identifiers, inline files, a request's own chat template), and `verdict`
//! holds what an inspection returns.

use super::engine::{Engines, RawHit, Wanted};
use super::extract::{Doc, extract};
use super::rule::{Action, Field, Rule, Scope};
use super::tool::{ToolRule, ToolRules};
use crate::api::{ErrorBody, ErrorKind};
use crate::detect::{DetectorSet, Edges, Finding};
use crate::edit::Edit;
use crate::json::JsonError;
use crate::route::RouteKind;
use http::StatusCode;
use std::sync::Arc;

mod decide;
mod reads;
mod verdict;

pub use verdict::{Decision, Hit, Rejection, TextMatch, Verdict};

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
        // A last row for text read generically ([`ANY_FIELD`]): every rule, whatever its fields.
        let mut wanted = vec![vec![false; self.rules.len()]; (Field::ALL.len() + 1) * CONTEXTS];
        for (ctx, w) in wanted.iter_mut().enumerate() {
            let field = Field::ALL.get(ctx / CONTEXTS);
            let state = ctx % CONTEXTS;
            for (i, r) in self.rules.iter().enumerate() {
                let reject = matches!(r.action, Action::Reject { .. });
                w[i] = field.is_none_or(|&f| r.fields.contains(f))
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

/// The row of [`Inner::wanted`] for text whose field is unknown ([`Unit::any_field`]).
///
/// [`Unit::any_field`]: crate::guard::extract::Unit::any_field
const ANY_FIELD: usize = Field::ALL.len();

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
    /// `wanted[field * CONTEXTS + context][rule]`, `field` [`ANY_FIELD`] for text read
    /// generically.
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
        crate::json::forget_notes();
        let mut doc = extract(kind, body, self.inner.id)?;
        let history_files = if doc.file_sources.is_empty() {
            Vec::new()
        } else {
            self.files_in_history(body, &doc)
        };
        let mut verdict = self.decide(body, &doc, &history_files, true);
        if !matches!(verdict.decision(), Decision::Reject(_)) {
            self.escaped_arguments(body, &doc, &mut verdict);
        }
        if doc.template && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.own_template(&mut verdict);
        }
        if doc.token_ids && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.token_prompt(&mut verdict);
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
            self.inline_files(&doc.inline_files, &history_files, &mut verdict);
        }
        if !doc.joined.is_empty() && !matches!(verdict.decision(), Decision::Reject(_)) {
            self.joined_parts(&doc, &mut verdict);
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
            Wanted {
                rules: wanted,
                detectors: None,
            },
            findings,
            out,
            &|_| false,
        );
    }

    /// Which rules read the latest message text (by rule index), if any does: what reads the
    /// parts of a request beside its messages — the URL, the headers, identifiers, the model.
    pub(super) fn latest_message_rules(&self) -> Option<&[bool]> {
        let wanted = &self.inner.wanted[Field::Messages as usize * CONTEXTS + LATEST];
        wanted.iter().any(|w| *w).then_some(wanted.as_slice())
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
        // The rules that read the latest message text: a URL is part of this request.
        let Some(wanted) = self.latest_message_rules() else {
            return verdict;
        };
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

    /// A request's headers reach the provider, and its logs, as its URL does: text a client
    /// puts in a header of its own (`x-note: AKIA…`), in `user-agent` or in `anthropic-beta`
    /// is read too — each header a line `name: value`, a value with percent-escapes read again
    /// decoded (twice) and with `+` as a space, bytes beyond ASCII read as UTF-8 and as
    /// Latin-1 — by the literal and regex rules and the credential detectors that read message
    /// text (not the personal-data detectors or the JWT one: trace ids read as cards, proxies
    /// add JWTs; and a header named as a credential for another service by literal and regex
    /// rules only). A hit refuses the request where its rule refuses or masks (a header is not
    /// rewritten) and is reported where it audits. Not read: `host` (agw sets the upstream's)
    /// and the headers a client authenticates with (`authorization`, `x-api-key`, `cookie`,
    /// …): agw drops them when it injects its own key, and otherwise they are the client's own
    /// credential, as credential query parameters are for
    /// [`inspect_target`](Self::inspect_target). Found by the seventeenth session's red-team
    /// reviews.
    pub fn inspect_headers(&self, headers: &http::HeaderMap) -> Verdict {
        let mut verdict = Verdict::new(Decision::Allow, Vec::new());
        let Some(wanted) = self.latest_message_rules() else {
            return verdict;
        };
        // Two texts: headers every rule reads, and headers named as a client's credential for
        // another service (`x-litellm-api-key`, `x-auth-token`), whose keys are expected
        // there: read by literal and regex rules only (seventeenth session's third review:
        // Claude Code with `ANTHROPIC_CUSTOM_HEADERS` naming a gateway key was refused).
        // The texts' buffers are kept per thread: a request's headers allocate nothing.
        thread_local! {
            static TEXTS: std::cell::Cell<[Vec<u8>; 2]> = const { std::cell::Cell::new([Vec::new(), Vec::new()]) };
        }
        let [a, b] = TEXTS.with(std::cell::Cell::take);
        let mut texts: [(Vec<u8>, bool); 2] = [(a, true), (b, true)];
        for (name, value) in headers {
            if name == http::header::HOST || authenticates(name) {
                continue;
            }
            let (text, plain) =
                &mut texts[usize::from(crate::provider::is_credential_header(name))];
            let v = value.as_bytes();
            let mut line = |value: &[u8]| {
                text.extend_from_slice(name.as_str().as_bytes());
                text.extend_from_slice(b": ");
                text.extend_from_slice(value);
                text.push(b'\n');
            };
            line(v);
            // One pass for what the value may need decoding for (a header value is short).
            let (mut percent, mut plus, mut high) = (false, false, false);
            for &b in v {
                percent |= b == b'%';
                plus |= b == b'+';
                high |= b >= 0x80;
            }
            *plain &= !(percent || high);
            if !(percent || plus || high) {
                continue;
            }
            // Decoded as a server may decode it: percent-escapes (twice: `%2520`), `+` as a
            // space, and bytes beyond ASCII as Latin-1 (Starlette's and so FastAPI's servers:
            // vLLM, SGLang, LiteLLM) beside UTF-8 (seventeenth session's second review).
            let mut decoded = std::borrow::Cow::Borrowed(v);
            for _ in 0..2 {
                if !decoded.contains(&b'%') {
                    break;
                }
                decoded = crate::route::canonical::percent_decoded(&decoded).into();
                line(&decoded);
            }
            if decoded.contains(&b'+') {
                let spaced: Vec<u8> = decoded
                    .iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect();
                line(&spaced);
            }
            if !decoded.is_ascii() {
                let latin1: String = decoded.iter().map(|&b| char::from(b)).collect();
                line(latin1.as_bytes());
            }
        }
        // Headers are read by literal and regex rules and the credential detectors, not by
        // the personal-data ones: trace ids are long decimal numbers (Datadog's
        // `x-datadog-trace-id`, Google's `x-cloud-trace-context`), one in fifty a valid card
        // (seventeenth session's second review); nor by the JWT detector (Cloudflare Access
        // and AWS load balancers add one to every request). Those detectors do not run.
        let detectors = [DetectorSet::credentials(), DetectorSet::default()];
        for ((text, plain), detectors) in texts.iter().zip(detectors) {
            if text.is_empty() || matches!(verdict.decision(), Decision::Reject(_)) {
                continue;
            }
            let normalized;
            let read: &[u8] = if *plain {
                text
            } else {
                normalized =
                    crate::json::normalize_str(&String::from_utf8_lossy(text)).into_owned();
                normalized.as_bytes()
            };
            let (mut findings, mut raw) = (Vec::new(), Vec::new());
            self.inner.engines.find(
                read,
                Edges::NONE,
                Wanted {
                    rules: wanted,
                    detectors: Some(detectors),
                },
                &mut findings,
                &mut raw,
                &|_| false,
            );
            for h in &raw {
                let refused =
                    self.hidden_hit(&mut verdict, h, "header", StatusCode::BAD_REQUEST, |rule| {
                        format!(
                            "A request header carries text that the rule `{rule}` would mask; \
                             a header is not rewritten: send it in the body."
                        )
                    });
                if refused {
                    break;
                }
            }
        }
        let [(mut a, _), (mut b, _)] = texts;
        for t in [&mut a, &mut b] {
            t.clear();
            // Headers are bounded by the server (64 KiB by default): one kept is bounded too.
            t.shrink_to(64 << 10);
        }
        TEXTS.with(|c| c.set([a, b]));
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

/// Whether a request header is the client's credential for the provider, which no rule reads
/// (agw drops it when it injects its own key, and otherwise it is the client's own, as a
/// credential query parameter is): `Authorization`, `Proxy-Authorization`, `Cookie`, the
/// providers' key headers and AWS's session token. Other headers named as a credential
/// (`x-note-key`) are read by literal and regex rules: with credentials passed through they go
/// upstream as sent (seventeenth session's second review).
fn authenticates(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            | "anthropic-api-key"
            | "ocp-apim-subscription-key"
            | "x-amz-security-token"
    )
}
