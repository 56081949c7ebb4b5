//! Route kinds and the route table that maps request paths to them.
//!
//! A [`RouteTable`] is plain data: an ordered list of path patterns, each with a [`RouteKind`].
//! Matching looks at the path only — the query string (Claude Code always sends `?beta=true`)
//! never affects it.
//!
//! # Example
//!
//! ```
//! use agw_core::route::{RouteKind, RouteTable};
//!
//! let table = RouteTable::claude_code();
//! assert_eq!(table.classify("/v1/messages?beta=true"), RouteKind::Messages);
//! assert_eq!(table.classify("/v1/messages/count_tokens"), RouteKind::CountTokens);
//! assert_eq!(table.classify("/api/oauth/profile"), RouteKind::Passthrough);
//! ```
//!
//! # Matching rules
//!
//! - The path is first put in its [canonical form](canonical_path) (percent-escapes, dot
//!   segments, repeated and trailing slashes, `;params`); a path that has none is refused by
//!   [`RouteTable::route`] and unmatched by [`RouteTable::lookup`]. Matching ignores ASCII case,
//!   as the upstreams that route case-insensitively do.
//! - A pattern without `*` matches a path that equals it, or that ends with it after a `/`
//!   boundary (so `/v1/messages` also matches `/anthropic/v1/messages` behind a path prefix).
//! - A segment written `{name}` (e.g. `/v1/responses/{id}`) matches any one segment; otherwise
//!   such a pattern matches as one without `*` does (the path, or a `/`-bounded suffix of it).
//! - A pattern ending in `*` (e.g. `/v1/files/*`) matches every path starting with what precedes
//!   the `*`.
//! - A lone `*` is the fallback.
//! - An exact match of a pattern without placeholders wins over everything; otherwise the
//!   longest matching pattern (as written) wins; the
//!   fallback applies only when nothing else matched. With no fallback, unmatched paths have no
//!   kind ([`RouteTable::lookup`] returns `None`, [`RouteTable::classify`] returns
//!   [`RouteKind::Passthrough`]).

pub(crate) mod canonical;

pub use canonical::{PathError, canonical_path, percent_decoded};

use crate::api::Api;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// What kind of API a request speaks, which decides how its body is understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteKind {
    /// Anthropic Messages, `POST /v1/messages`.
    Messages,
    /// Anthropic token counting, `POST /v1/messages/count_tokens` (same body as Messages).
    CountTokens,
    /// Anthropic message batches, `POST /v1/messages/batches`: `requests[].params` are
    /// Messages bodies.
    MessageBatches,
    /// Anthropic's legacy text completions, `POST /v1/complete` (`prompt`).
    Complete,
    /// OpenAI chat completions, `POST /v1/chat/completions`.
    Completions,
    /// OpenAI legacy completions, `POST /v1/completions` (`prompt`).
    LegacyCompletions,
    /// OpenAI Responses, `POST /v1/responses` (`input`, `instructions`).
    Responses,
    /// OpenAI embeddings, `POST /v1/embeddings` (`input`).
    Embeddings,
    /// Anthropic message batch results, `GET /v1/messages/batches/{id}/results`: JSON lines,
    /// each with a Messages response the model wrote. Request bodies are read as
    /// [`RouteKind::Passthrough`] reads them.
    BatchResults,
    /// OpenAI stored Responses, `GET /v1/responses/{id}` (a Responses object, or its events
    /// with `stream=true`) and `GET /v1/responses/{id}/input_items`. Request bodies are read as
    /// [`RouteKind::Passthrough`] reads them.
    StoredResponses,
    /// OpenAI stored chat completions, `GET /v1/chat/completions/{id}` and
    /// `GET /v1/chat/completions/{id}/messages`. Request bodies are read as
    /// [`RouteKind::Passthrough`] reads them.
    StoredCompletions,
    /// Model listing, `GET /v1/models`.
    Models,
    /// Anything else: forwarded as is; a body on a guarded backend is inspected generically
    /// (every string of a JSON body), anything else is refused.
    Passthrough,
    /// An explicit, named opt-out: forwarded without any body inspection.
    Unguarded,
}

impl RouteKind {
    /// Every kind, in declaration order.
    pub const ALL: [RouteKind; 14] = [
        RouteKind::Messages,
        RouteKind::CountTokens,
        RouteKind::MessageBatches,
        RouteKind::Complete,
        RouteKind::Completions,
        RouteKind::LegacyCompletions,
        RouteKind::Responses,
        RouteKind::Embeddings,
        RouteKind::BatchResults,
        RouteKind::StoredResponses,
        RouteKind::StoredCompletions,
        RouteKind::Models,
        RouteKind::Passthrough,
        RouteKind::Unguarded,
    ];

    /// The canonical name, as used in configuration (`Messages`, `CountTokens`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Messages => "Messages",
            RouteKind::CountTokens => "CountTokens",
            RouteKind::MessageBatches => "MessageBatches",
            RouteKind::Complete => "Complete",
            RouteKind::Completions => "Completions",
            RouteKind::LegacyCompletions => "LegacyCompletions",
            RouteKind::Responses => "Responses",
            RouteKind::Embeddings => "Embeddings",
            RouteKind::BatchResults => "BatchResults",
            RouteKind::StoredResponses => "StoredResponses",
            RouteKind::StoredCompletions => "StoredCompletions",
            RouteKind::Models => "Models",
            RouteKind::Passthrough => "Passthrough",
            RouteKind::Unguarded => "Unguarded",
        }
    }

    /// Whether request bodies of this kind carry prompts in a known shape that guards inspect.
    /// ([`RouteKind::Passthrough`] bodies are inspected generically instead.)
    pub fn has_prompt(self) -> bool {
        matches!(
            self,
            RouteKind::Messages
                | RouteKind::CountTokens
                | RouteKind::MessageBatches
                | RouteKind::Complete
                | RouteKind::Completions
                | RouteKind::LegacyCompletions
                | RouteKind::Responses
                | RouteKind::Embeddings
        )
    }

    /// The API whose error shape clients of this route expect, if the kind implies one.
    pub fn api(self) -> Option<crate::api::Api> {
        match self {
            RouteKind::Messages
            | RouteKind::CountTokens
            | RouteKind::MessageBatches
            | RouteKind::Complete
            | RouteKind::BatchResults => Some(crate::api::Api::Anthropic),
            RouteKind::Completions
            | RouteKind::LegacyCompletions
            | RouteKind::Responses
            | RouteKind::Embeddings
            | RouteKind::StoredResponses
            | RouteKind::StoredCompletions => Some(crate::api::Api::OpenAi),
            RouteKind::Models | RouteKind::Passthrough | RouteKind::Unguarded => None,
        }
    }

    /// How the response guard reads responses of this kind.
    pub fn response_reading(self) -> ResponseReading {
        match self {
            RouteKind::Messages
            | RouteKind::Complete
            | RouteKind::Completions
            | RouteKind::LegacyCompletions
            | RouteKind::Responses
            | RouteKind::StoredResponses
            | RouteKind::StoredCompletions => ResponseReading::Model,
            RouteKind::BatchResults => ResponseReading::Lines,
            RouteKind::CountTokens
            | RouteKind::MessageBatches
            | RouteKind::Models
            | RouteKind::Passthrough => ResponseReading::Generic,
            RouteKind::Embeddings => ResponseReading::Errors,
            RouteKind::Unguarded => ResponseReading::Unread,
        }
    }
}

/// How the response guard reads the responses of a [`RouteKind`]
/// ([`RouteKind::response_reading`]). Any JSON response may carry text a model wrote once a
/// provider stores its output, so every kind but two reads JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseReading {
    /// Model output in the kind's dialect (the prompt routes and the stored responses and
    /// completions that retrieve it): a JSON body is inspected whole, an event stream event by
    /// event; any other body is refused.
    Model,
    /// JSON lines (batch results): a body labelled JSON is inspected whole; any other body,
    /// whatever its content type, line by line, every line a JSON object.
    Lines,
    /// Whatever may carry text (model listings, passthrough paths, batches, token counts): a
    /// JSON body is inspected whole, a JSON-lines body line by line, an event stream event by
    /// event in the backend's dialect; any other body (a file download) passes untouched.
    Generic,
    /// Only errors read, as [`ResponseReading::Generic`] reads them: embeddings, whose answer is
    /// vectors, but whose error may repeat what it was sent or say more (black-box review: an
    /// upstream's error on `/v1/embeddings` reached the client unread).
    Errors,
    /// Not read: an `Unguarded` route (an opt-out).
    Unread,
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error returned when a string names no [`RouteKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown route kind `{0}` (expected one of Messages, CountTokens, MessageBatches, Complete, Completions, LegacyCompletions, Responses, Embeddings, BatchResults, StoredResponses, StoredCompletions, Models, Passthrough, Unguarded)"
)]
pub struct UnknownRouteKind(pub String);

impl FromStr for RouteKind {
    type Err = UnknownRouteKind;

    /// Parses a kind name. Case and `_`/`-` separators are ignored, and the snake_case spellings
    /// (`count_tokens`, `chat_completions`) are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let folded: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Ok(match folded.as_str() {
            "messages" => RouteKind::Messages,
            "counttokens" => RouteKind::CountTokens,
            "messagebatches" | "batches" => RouteKind::MessageBatches,
            "complete" => RouteKind::Complete,
            "completions" | "chatcompletions" => RouteKind::Completions,
            "legacycompletions" => RouteKind::LegacyCompletions,
            "responses" => RouteKind::Responses,
            "embeddings" => RouteKind::Embeddings,
            "batchresults" => RouteKind::BatchResults,
            "storedresponses" => RouteKind::StoredResponses,
            "storedcompletions" | "storedchatcompletions" => RouteKind::StoredCompletions,
            "models" => RouteKind::Models,
            "passthrough" => RouteKind::Passthrough,
            "unguarded" => RouteKind::Unguarded,
            _ => return Err(UnknownRouteKind(s.to_owned())),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Matches the path exactly or as a `/`-bounded suffix. With its [`Tail`].
    Path(String, Tail),
    /// Like `Path`, with `{name}` segments that match any one segment; the length of its
    /// [`template_text`].
    Template(Vec<Segment>, usize),
    /// Matches paths starting with the prefix.
    Prefix(String),
    /// Matches everything, with the lowest priority.
    Fallback,
}

/// A segment of a [`Pattern::Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one segment.
    Any,
}

impl Segment {
    fn matches(&self, seg: &str) -> bool {
        match self {
            Segment::Literal(l) => l.eq_ignore_ascii_case(seg),
            Segment::Any => !seg.is_empty(),
        }
    }
}

/// Whether the canonical `path` is the template `segs`, or ends with it after a `/`.
fn template_matches(segs: &[Segment], path: &str) -> bool {
    let mut path_segs = path.rsplit('/');
    // A canonical path starts with `/`: the segment before its first is the empty string,
    // which no template segment matches, so a match ends at a `/`.
    segs.iter()
        .rev()
        .all(|s| path_segs.next().is_some_and(|p| s.matches(p)))
}

/// A template as written, with every placeholder spelt `{id}` (templates that differ only in
/// placeholder names are the same pattern).
fn template_text(segs: &[Segment]) -> String {
    segs.iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Any => "/{id}".to_owned(),
        })
        .collect()
}

/// The segments of a pattern with `{name}` placeholders, each checked.
fn template(pattern: &str) -> Result<Vec<Segment>, &'static str> {
    pattern[1..]
        .split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || name.contains(['{', '}']) {
                    return Err("a placeholder is `{` a name `}`");
                }
                Ok(Segment::Any)
            } else if seg.contains(['{', '}']) {
                Err("a `{name}` placeholder is a whole segment")
            } else if canonical_path(&format!("/{seg}")).ok().as_deref()
                != Some(&*format!("/{seg}"))
                || seg.is_empty()
            {
                Err("the path has no canonical form")
            } else {
                Ok(Segment::Literal(seg.to_owned()))
            }
        })
        .collect()
}

/// The last (up to) 8 bytes of a path, case-folded loosely (`| 0x20`), packed last byte
/// first: a path can end with a pattern only if the low bytes of its tail equal the pattern's
/// tail, which rules out most patterns with one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    bits: u64,
    /// The bytes `bits` holds.
    mask: u64,
}

impl Tail {
    fn of(s: &str) -> Tail {
        let b = s.as_bytes();
        let n = b.len().min(8);
        let mut last = [0u8; 8];
        last[8 - n..].copy_from_slice(&b[b.len() - n..]);
        let mask = if n == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        Tail {
            bits: (u64::from_be_bytes(last) | 0x2020_2020_2020_2020) & mask,
            mask,
        }
    }

    /// Whether a path with this tail may end with a pattern with tail `p`.
    fn may_end_with(self, p: Tail) -> bool {
        self.bits & p.mask == p.bits
    }
}

/// Ordered path patterns mapped to route kinds. See the [module docs](self) for the rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    entries: Vec<(Pattern, RouteKind)>,
}

/// The error returned for a route pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route pattern `{pattern}`: {reason}")]
pub struct InvalidRoute {
    /// The offending pattern.
    pub pattern: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl RouteTable {
    /// An empty table: every path is unmatched.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table Claude Code needs: every endpoint of the Anthropic and OpenAI dialects
    /// (Anthropic serves an OpenAI-compatible chat endpoint too), models, and `*` passthrough.
    pub fn claude_code() -> Self {
        Self::builtin(&[Api::Anthropic, Api::OpenAi])
    }

    /// The table for OpenAI-style clients: the OpenAI dialect's endpoints (chat and legacy
    /// completions, Responses, embeddings), models, and `*` passthrough.
    pub fn openai() -> Self {
        Self::builtin(&[Api::OpenAi])
    }

    /// The table for an OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio, SGLang,
    /// LiteLLM): the OpenAI dialect's endpoints and Anthropic's Messages and token counting,
    /// which these servers serve too, read as Messages bodies are (eighteenth session's red
    /// team: read generically, a phrase split over text blocks passed).
    pub fn compatible() -> Self {
        let mut t = Self::openai();
        for (p, k) in [
            ("/v1/messages", RouteKind::Messages),
            ("/v1/messages/count_tokens", RouteKind::CountTokens),
        ] {
            t.insert(p, k).expect("built-in routes are valid");
        }
        t
    }

    /// The built-in table for a provider of `kind`.
    pub fn for_provider(kind: crate::provider::ProviderKind) -> Self {
        match kind {
            crate::provider::ProviderKind::Anthropic => Self::claude_code(),
            crate::provider::ProviderKind::OpenAi => Self::openai(),
            crate::provider::ProviderKind::OpenAiCompatible => Self::compatible(),
        }
    }

    /// The endpoints the dialects define (see [`Api::paths`]), models, and `*` passthrough.
    fn builtin(dialects: &[Api]) -> Self {
        let mut t = Self::new();
        let endpoints = dialects.iter().flat_map(|api| api.paths());
        for (p, k) in endpoints.chain([
            ("/v1/models", RouteKind::Models),
            ("*", RouteKind::Passthrough),
        ]) {
            t.insert(p, k).expect("built-in routes are valid");
        }
        t
    }

    /// Adds a pattern. A pattern given twice keeps the last kind.
    pub fn insert(&mut self, pattern: &str, kind: RouteKind) -> Result<&mut Self, InvalidRoute> {
        let invalid = |reason| InvalidRoute {
            pattern: pattern.to_owned(),
            reason,
        };
        let parsed = if pattern == "*" {
            Pattern::Fallback
        } else if !pattern.starts_with('/') {
            return Err(invalid("a path pattern starts with `/` (or is `*`)"));
        } else if pattern.contains('?') {
            return Err(invalid("the query string never takes part in matching"));
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            if prefix.contains(['{', '}']) {
                return Err(invalid("a `{name}` placeholder and `*` do not go together"));
            }
            if prefix.contains('*') {
                return Err(invalid("`*` is allowed only at the end"));
            }
            Pattern::Prefix(prefix.to_owned())
        } else if pattern.contains('*') {
            return Err(invalid("`*` is allowed only at the end"));
        } else if pattern.contains(['{', '}']) {
            let segs = template(pattern).map_err(invalid)?;
            let len = template_text(&segs).len();
            Pattern::Template(segs, len)
        } else {
            // Requests are matched in canonical form, so patterns are too.
            match canonical_path(pattern) {
                Ok(p) => {
                    let p = p.into_owned();
                    let t = Tail::of(&p);
                    Pattern::Path(p, t)
                }
                Err(_) => return Err(invalid("the path has no canonical form")),
            }
        };
        if let Some(entry) = self.entries.iter_mut().find(|(p, _)| *p == parsed) {
            entry.1 = kind;
        } else {
            self.entries.push((parsed, kind));
        }
        Ok(self)
    }

    /// The kind for a request target (path with optional query), or `None` when nothing matched
    /// or the path has no canonical form.
    pub fn lookup(&self, path_and_query: &str) -> Option<RouteKind> {
        self.lookup_canonical(&canonical_target(path_and_query).ok()?)
    }

    /// The kind and the canonical path for a request target; the query is not part of the
    /// returned path. Unmatched paths are [`RouteKind::Passthrough`].
    pub fn route<'a>(
        &self,
        path_and_query: &'a str,
    ) -> Result<(RouteKind, Cow<'a, str>), PathError> {
        let path = canonical_target(path_and_query)?;
        let kind = self
            .lookup_canonical(&path)
            .unwrap_or(RouteKind::Passthrough);
        Ok((kind, path))
    }

    /// [`RouteTable::route`] for a backend at `base` (its base URL's path, empty for none): a
    /// path that no pattern names but the fallback (`*`) is classified as the upstream sees it,
    /// the base's path and the request's joined (or, when that names nothing either, as the
    /// API's path after a `/v1` the base — or a provider serving unversioned paths, DeepSeek's
    /// `/chat/completions` — leaves out), when that is a kind that reads a prompt — a client
    /// of `base_url: https://api.openai.com/v1` sends `/chat/completions`, which the provider
    /// gets as `/v1/chat/completions` (black-box review: it went upstream as a passthrough,
    /// the model policy and field rules skipped). A pattern that names the client's path keeps
    /// its kind (an operator's `Unguarded` route stays theirs). The returned path is the
    /// client's, canonical; `base` is a path (`/v1`), `/` or empty for none.
    pub fn route_under<'a>(
        &self,
        base: &str,
        path_and_query: &'a str,
    ) -> Result<(RouteKind, Cow<'a, str>), PathError> {
        let path = canonical_target(path_and_query)?;
        let base = base.trim_end_matches('/');
        // The base's path is the API's version prefix when it names none the table knows
        // (Gemini's `/v1beta/openai`, an Azure deployment, a server's `/api`): the client's
        // path is then read after `/v1`.
        // Only a kind that reads a prompt is taken from a joined path: a route the operator
        // opted out (`Unguarded`) or a listing names the client's path, not another.
        let under = |prefix: &str| {
            canonical_target(&format!("{prefix}{path}"))
                .ok()
                .and_then(|joined| self.lookup_specific(&joined))
                .filter(|kind| kind.has_prompt())
        };
        let kind = match self.lookup_specific(&path) {
            Some(kind) => kind,
            None => (!base.is_empty())
                .then(|| under(base))
                .flatten()
                .or_else(|| under("/v1"))
                .or_else(|| self.lookup_canonical(&path))
                .unwrap_or(RouteKind::Passthrough),
        };
        Ok((kind, path))
    }

    /// The kind a pattern other than the fallback gives a canonical path.
    fn lookup_specific(&self, path: &str) -> Option<RouteKind> {
        self.lookup_in(path, false)
    }

    /// The kind for a path already in canonical form (no query).
    fn lookup_canonical(&self, path: &str) -> Option<RouteKind> {
        self.lookup_in(path, true)
    }

    /// The kind the longest matching pattern gives a canonical path; the fallback's (`*`) when
    /// none matches and `fallback` says so.
    fn lookup_in(&self, path: &str, with_fallback: bool) -> Option<RouteKind> {
        let mut best: Option<(usize, RouteKind)> = None;
        let mut fallback = None;
        let tail = Tail::of(path);
        for (pattern, kind) in &self.entries {
            let score = match pattern {
                Pattern::Path(p, t) if p.len() > path.len() || !tail.may_end_with(*t) => continue,
                Pattern::Path(p, _) if p.eq_ignore_ascii_case(path) => {
                    return Some(*kind);
                }
                // `p` starts with `/`, so a suffix match is always `/`-bounded.
                Pattern::Path(p, _) if ends_with_ignore_case(path, p) => p.len(),
                Pattern::Path(..) => continue,
                Pattern::Template(segs, len) if template_matches(segs, path) => *len,
                Pattern::Template(..) => continue,
                Pattern::Prefix(p) if starts_with_ignore_case(path, p) => p.len(),
                Pattern::Prefix(_) => continue,
                Pattern::Fallback => {
                    fallback = Some(*kind);
                    continue;
                }
            };
            if best.is_none_or(|(len, _)| score > len) {
                best = Some((score, *kind));
            }
        }
        best.map(|(_, k)| k).or(fallback.filter(|_| with_fallback))
    }

    /// The kind for a request target; unmatched paths are [`RouteKind::Passthrough`].
    pub fn classify(&self, path_and_query: &str) -> RouteKind {
        self.lookup(path_and_query)
            .unwrap_or(RouteKind::Passthrough)
    }

    /// Adds every path of `defaults` (a dialect's known endpoints) that this table does not
    /// list, so a configured table that names only some endpoints still classifies the others
    /// as their kinds instead of letting them fall through to `*`. Patterns this table has
    /// keep their kinds (an explicit `Unguarded` stays unguarded).
    pub fn with_defaults(mut self, defaults: &RouteTable) -> Self {
        for (pattern, kind) in &defaults.entries {
            if matches!(pattern, Pattern::Path(..) | Pattern::Template(..))
                && !self.entries.iter().any(|(p, _)| p == pattern)
            {
                self.entries.push((pattern.clone(), *kind));
            }
        }
        self
    }

    /// The patterns and their kinds, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (String, RouteKind)> + '_ {
        self.entries.iter().map(|(p, k)| {
            let s = match p {
                Pattern::Path(p, _) => p.clone(),
                Pattern::Template(segs, _) => template_text(segs),
                Pattern::Prefix(p) => format!("{p}*"),
                Pattern::Fallback => "*".to_owned(),
            };
            (s, *k)
        })
    }

    /// Whether the table has no patterns.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The canonical path of a request target (its query dropped): borrowed when the path is
/// already canonical.
fn canonical_target(path_and_query: &str) -> Result<Cow<'_, str>, PathError> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    canonical_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RouteKind::*;

    #[test]
    fn claude_code_table() {
        let t = RouteTable::claude_code();
        let cases = [
            ("/v1/messages", Some(Messages)),
            ("/v1/messages?beta=true", Some(Messages)),
            ("/v1/messages/count_tokens?beta=true", Some(CountTokens)),
            ("/v1/models?limit=1000", Some(Models)),
            ("/", Some(Passthrough)),
            ("/api/event_logging/batch", Some(Passthrough)),
            ("/anthropic/v1/messages", Some(Messages)),
            ("/v1/messagesx", Some(Passthrough)),
            ("/xv1/messages", Some(Passthrough)),
            ("/v1/models/claude-x", Some(Passthrough)),
            // Every spelling an upstream would route as Messages is Messages.
            ("/v1/messages/", Some(Messages)),
            ("/v1/message%73", Some(Messages)),
            ("//v1/messages", Some(Messages)),
            ("/v1/./messages", Some(Messages)),
            ("/V1/MESSAGES", Some(Messages)),
            ("/v1/messages;x", Some(Messages)),
            ("/v1/Messages/Count_Tokens?beta=true", Some(CountTokens)),
            ("/v1/messages/batches", Some(MessageBatches)),
            ("/v1/complete", Some(Complete)),
            ("/v1/chat/completions", Some(Completions)),
            ("/v1/completions", Some(LegacyCompletions)),
            ("/v1/responses", Some(Responses)),
            ("/v1/embeddings", Some(Embeddings)),
            // Retrieval: what a model wrote, stored and read back.
            (
                "/v1/messages/batches/msgbatch_1/results",
                Some(BatchResults),
            ),
            ("/V1/Messages/Batches/x/RESULTS/", Some(BatchResults)),
            (
                "/anthropic/v1/messages/batches/x/results",
                Some(BatchResults),
            ),
            ("/v1/messages/batches/msgbatch_1", Some(Passthrough)),
            ("/v1/messages/batches//results", Some(Passthrough)),
            ("/v1/responses/resp_1", Some(StoredResponses)),
            (
                "/v1/responses/resp_1/input_items?limit=5",
                Some(StoredResponses),
            ),
            ("/v1/responses/resp_1/cancel", Some(Passthrough)),
            ("/v1/chat/completions/chatcmpl-1", Some(StoredCompletions)),
            (
                "/v1/chat/completions/chatcmpl-1/messages",
                Some(StoredCompletions),
            ),
            ("/v1/chat/completions/a/b", Some(Passthrough)),
            // No canonical form: no kind.
            ("/v1%2fmessages", None),
        ];
        for (path, want) in cases {
            assert_eq!(t.lookup(path), want, "{path}");
        }
    }

    #[test]
    fn longest_match_and_fallback() {
        let mut t = RouteTable::new();
        t.insert("/v1/*", Passthrough).unwrap();
        t.insert("/v1/chat/*", Completions).unwrap();
        t.insert("/v1/chat/completions", Completions).unwrap();
        t.insert("/v1/models", Models).unwrap();
        assert_eq!(t.lookup("/v1/chat/completions?x=1"), Some(Completions));
        assert_eq!(t.lookup("/v1/chat/other"), Some(Completions));
        assert_eq!(t.lookup("/v1/files"), Some(Passthrough));
        assert_eq!(t.lookup("/v2/files"), None);
        assert_eq!(t.classify("/v2/files"), Passthrough);
        t.insert("*", Models).unwrap();
        assert_eq!(t.lookup("/v2/files"), Some(Models));
        // Re-inserting a pattern replaces its kind.
        t.insert("/v1/models", Messages).unwrap();
        assert_eq!(t.lookup("/v1/models"), Some(Messages));
        assert_eq!(t.iter().count(), 5);
    }

    #[test]
    fn route_gives_the_canonical_path() {
        let t = RouteTable::claude_code();
        let (kind, path) = t.route("//v1/./message%73/?beta=true").unwrap();
        assert_eq!((kind, &*path), (Messages, "/v1/messages"));
        assert_eq!(t.route("/v1%2Fmessages"), Err(PathError::EncodedSlash));
        assert_eq!(t.route("/x").unwrap().0, Passthrough);
        let mut bare = RouteTable::new();
        bare.insert("/v1/messages", Messages).unwrap();
        assert_eq!(bare.route("/other").unwrap().0, Passthrough);
    }

    #[test]
    fn configured_tables_keep_their_kinds_and_gain_the_known_endpoints() {
        let mut t = RouteTable::new();
        t.insert("/v1/messages", Messages).unwrap();
        t.insert("/v1/complete", Unguarded).unwrap();
        t.insert("*", Passthrough).unwrap();
        let t = t.with_defaults(&RouteTable::claude_code());
        assert_eq!(t.classify("/v1/messages/batches"), MessageBatches);
        assert_eq!(t.classify("/v1/responses"), Responses);
        assert_eq!(t.classify("/v1/complete"), Unguarded);
        assert_eq!(t.classify("/v1/files"), Passthrough);
    }

    #[test]
    fn placeholders_match_one_segment() {
        let mut t = RouteTable::new();
        t.insert("/v1/things/{id}/parts", Models).unwrap();
        t.insert("/v1/things/{thing_id}", Messages).unwrap();
        t.insert("/v1/things/*", Unguarded).unwrap();
        // The same template, whatever its placeholder's name: its kind is replaced.
        t.insert("/v1/things/{x}", Complete).unwrap();
        assert_eq!(t.iter().count(), 3);
        assert!(
            t.iter()
                .any(|(p, k)| p == "/v1/things/{id}" && k == Complete)
        );
        assert_eq!(t.lookup("/v1/things/a"), Some(Complete));
        assert_eq!(t.lookup("/v1/things/a/parts"), Some(Models));
        assert_eq!(t.lookup("/p/v1/things/a/parts"), Some(Models));
        assert_eq!(t.lookup("/v1/things/a/b"), Some(Unguarded));
        assert_eq!(t.lookup("/v1/things"), None);
        assert_eq!(t.lookup("/v1/things/parts"), Some(Complete));
        // An exact path wins over a template; a longer template over a shorter match.
        t.insert("/v1/things/special", Embeddings).unwrap();
        assert_eq!(t.lookup("/v1/things/special"), Some(Embeddings));
        let t = RouteTable::new().with_defaults(&RouteTable::openai());
        assert_eq!(t.classify("/v1/responses/r"), StoredResponses);
    }

    #[test]
    fn invalid_patterns() {
        let mut t = RouteTable::new();
        for bad in [
            "v1/messages",
            "/v1/*/x",
            "/v1/messages?beta=true",
            "/a*b",
            "/v1/{id}/*",
            "/v1/x{id}",
            "/v1/{}",
            "/v1/{a}b}",
            "/v1/{id}//x",
            "/v1/{id}/%2F",
        ] {
            let err = t.insert(bad, Messages).unwrap_err();
            assert_eq!(err.pattern, bad);
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in RouteKind::ALL {
            assert_eq!(k.name().parse::<RouteKind>().unwrap(), k);
        }
        assert_eq!("count_tokens".parse::<RouteKind>().unwrap(), CountTokens);
        assert_eq!(
            "chat_completions".parse::<RouteKind>().unwrap(),
            Completions
        );
        assert!("Chat".parse::<RouteKind>().is_err());
    }
}
