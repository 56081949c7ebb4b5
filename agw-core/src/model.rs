//! Model policy: which models clients may ask for, and what is sent upstream instead.
//!
//! Rewriting the model edits only the bytes of the `model` string value; the rest of the body is
//! forwarded byte for byte.
//!
//! # Example
//!
//! ```
//! use agw_core::model::{ModelOutcome, ModelPolicy};
//!
//! let policy = ModelPolicy::aliases([("opus", "claude-opus-4-6"), ("claude-haiku-*", "claude-haiku-4-5")])?
//!     .allow(["claude-opus-4-6", "claude-haiku-4-5"])?;
//! let out = policy.apply(br#"{"model":"opus","max_tokens":1}"#)?;
//! let ModelOutcome::Rewritten { body, to, .. } = out else { unreachable!() };
//! assert_eq!(to, "claude-opus-4-6");
//! assert_eq!(body, br#"{"model":"claude-opus-4-6","max_tokens":1}"#);
//!
//! let err = policy.apply(br#"{"model":"claude-sonnet-4-5"}"#).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "model `claude-sonnet-4-5` is not allowed here; allowed models: claude-opus-4-6, claude-haiku-4-5"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::api::{ErrorBody, ErrorKind};
use crate::edit::{Edit, apply};
use crate::json::{JsonError, Scanner};
use std::ops::Range;

/// A pattern over model names: exact, or with `*` matching any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern(String);

impl ModelPattern {
    /// Parses a pattern; it must not be empty.
    pub fn new(p: impl Into<String>) -> Result<Self, ModelPolicyError> {
        let p = p.into();
        if p.is_empty() || p.trim() != p {
            return Err(ModelPolicyError::Pattern(p));
        }
        Ok(Self(p))
    }

    /// Whether `model` matches.
    pub fn matches(&self, model: &str) -> bool {
        glob(self.0.as_bytes(), model.as_bytes())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_exact(&self) -> bool {
        !self.0.contains('*')
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with single backtrack point (linear for one `*`, O(n·m) worst).
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// How the requested model becomes the upstream model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ModelMode {
    /// Forward whatever the client asked for.
    #[default]
    Any,
    /// Send every request to this model.
    Pin(String),
    /// Map matching names; others pass as they are. Sorted longest pattern first, exact before
    /// glob.
    Aliases(Vec<(ModelPattern, String)>),
}

/// A model policy: a [`ModelMode`] and an optional allow-list of upstream models.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelPolicy {
    mode: ModelMode,
    allow: Vec<ModelPattern>,
}

/// Why a model policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelPolicyError {
    /// An empty or padded pattern or model name.
    #[error("invalid model name or pattern `{0}`")]
    Pattern(String),
}

/// Why a request's model was refused or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model (after aliasing) is not on the allow-list.
    #[error("model `{model}` is not allowed here; allowed models: {}", allowed.join(", "))]
    NotAllowed {
        /// The model asked for (after aliasing).
        model: String,
        /// The allow-list.
        allowed: Vec<String>,
    },
    /// The request names no model but the allow-list requires one.
    #[error("the request names no model; allowed models: {}", allowed.join(", "))]
    Missing {
        /// The allow-list.
        allowed: Vec<String>,
    },
    /// The body could not be read.
    #[error("agw could not read the request body: {0}")]
    Body(#[from] JsonError),
}

impl ModelError {
    /// The 400 a client gets.
    pub fn error_body(&self) -> ErrorBody {
        ErrorBody::new(ErrorKind::InvalidRequest, self.to_string())
    }
}

/// What [`ModelPolicy::apply`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOutcome {
    /// Forward the body as it is. `model` is the requested model, if the body was read.
    Unchanged {
        /// The requested model.
        model: Option<String>,
    },
    /// Forward `body`, in which the model value was replaced.
    Rewritten {
        /// The requested model.
        from: String,
        /// The model sent upstream.
        to: String,
        /// The edited body.
        body: Vec<u8>,
    },
}

impl ModelPolicy {
    /// Any model, no allow-list: bodies are not even read.
    pub fn any() -> Self {
        Self::default()
    }

    /// Pin every request to `model`.
    pub fn pin(model: impl Into<String>) -> Result<Self, ModelPolicyError> {
        let model = model.into();
        ModelPattern::new(model.clone())?;
        Ok(Self {
            mode: ModelMode::Pin(model),
            allow: Vec::new(),
        })
    }

    /// Rename models matching a pattern (exact names or `*` globs).
    pub fn aliases<I, P, M>(pairs: I) -> Result<Self, ModelPolicyError>
    where
        I: IntoIterator<Item = (P, M)>,
        P: Into<String>,
        M: Into<String>,
    {
        let mut list = Vec::new();
        for (p, m) in pairs {
            let m = m.into();
            ModelPattern::new(m.clone())?;
            list.push((ModelPattern::new(p)?, m));
        }
        list.sort_by(|(a, _), (b, _)| {
            b.0.len()
                .cmp(&a.0.len())
                .then(b.is_exact().cmp(&a.is_exact()))
        });
        Ok(Self {
            mode: ModelMode::Aliases(list),
            allow: Vec::new(),
        })
    }

    /// Restricts upstream models to those matching one of `patterns`.
    pub fn allow<I, S>(mut self, patterns: I) -> Result<Self, ModelPolicyError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in patterns {
            self.allow.push(ModelPattern::new(p)?);
        }
        Ok(self)
    }

    /// The mode.
    pub fn mode(&self) -> &ModelMode {
        &self.mode
    }

    /// The allow-list (empty: everything is allowed).
    pub fn allowed(&self) -> &[ModelPattern] {
        &self.allow
    }

    /// Whether the policy never reads or changes a body.
    pub fn is_noop(&self) -> bool {
        self.mode == ModelMode::Any && self.allow.is_empty()
    }

    /// The upstream model for a requested one.
    pub fn resolve<'a>(&'a self, requested: &'a str) -> &'a str {
        match &self.mode {
            ModelMode::Any => requested,
            ModelMode::Pin(m) => m,
            ModelMode::Aliases(list) => list
                .iter()
                .find(|(p, _)| p.matches(requested))
                .map_or(requested, |(_, m)| m.as_str()),
        }
    }

    /// Applies the policy to a JSON request body.
    pub fn apply(&self, body: &[u8]) -> Result<ModelOutcome, ModelError> {
        if self.is_noop() {
            return Ok(ModelOutcome::Unchanged { model: None });
        }
        let found = find_model(body)?;
        let allowed = || self.allow.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
        let Some((span, requested)) = found else {
            if !self.allow.is_empty() {
                return Err(ModelError::Missing { allowed: allowed() });
            }
            return Ok(ModelOutcome::Unchanged { model: None });
        };
        let target = self.resolve(&requested);
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(target)) {
            return Err(ModelError::NotAllowed {
                model: target.to_owned(),
                allowed: allowed(),
            });
        }
        if target == requested {
            return Ok(ModelOutcome::Unchanged {
                model: Some(requested),
            });
        }
        let to = target.to_owned();
        let body = apply(body, vec![Edit::json_string(span, &to)]);
        Ok(ModelOutcome::Rewritten {
            from: requested,
            to,
            body,
        })
    }
}

/// The model a request's path names, on APIs that choose the model there rather than in the
/// body: Gemini and Vertex (`…/models/{model}:generateContent`, `…/tunedModels/{model}:…`,
/// Vertex's `…/publishers/google/models/{model}:…`), Bedrock (`/model/{modelId}/converse`,
/// `…/invoke`, percent-escapes decoded: Bedrock takes ARNs escaped) and Azure OpenAI
/// (`/openai/deployments/{deployment}/…`, the deployment standing for its model). Found by the
/// twelfth session's black-box review: an access list read only a body's `model`, so such a
/// call ran any model, with an allowed one (or none) in the body.
///
/// ```
/// use agw_core::model::path_model;
/// assert_eq!(path_model("/v1beta/models/gemini-2.5-pro:generateContent").as_deref(), Some("gemini-2.5-pro"));
/// assert_eq!(path_model("/model/anthropic.claude-opus-4/converse").as_deref(), Some("anthropic.claude-opus-4"));
/// assert_eq!(path_model("/openai/deployments/o1-pro/chat/completions").as_deref(), Some("o1-pro"));
/// assert_eq!(path_model("/v1/messages"), None);
/// ```
pub fn path_model(path: &str) -> Option<String> {
    let decoded = crate::route::canonical::percent_decoded(path.as_bytes());
    let path = String::from_utf8_lossy(&decoded);
    let segments: Vec<&str> = path.split('/').collect();
    let found = segments.windows(2).rev().find_map(|w| {
        let (key, value) = (w[0], w[1]);
        if key.eq_ignore_ascii_case("models") || key.eq_ignore_ascii_case("tunedModels") {
            // `{model}:{method}`; a bare `models/{model}` is the model's own description.
            Some(value.split(':').next().unwrap_or(value))
        } else if key.eq_ignore_ascii_case("model") || key.eq_ignore_ascii_case("deployments") {
            Some(value)
        } else {
            None
        }
    })?;
    (!found.is_empty()).then(|| found.to_owned())
}

/// Why a request's top-level `model` cannot be read for certain: the limits, budgets, access
/// lists and usage that agw keys on the model would read another one than the provider runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelKeyError {
    /// `model` is a key twice (compared decoded and in any case: `mod\u0065l`, `MODEL`):
    /// parsers disagree on which one wins (found by the fourteenth review: a dollar budget
    /// held the first, cheap model while the provider ran the last).
    #[error(
        "the request names `model` twice (keys are compared decoded and in any case): which \
         one a server takes is its choice, so agw cannot tell which model runs"
    )]
    Twice,
    /// `model` is not a string (a list, an object, a number, `null`).
    #[error("the request's `model` is not a string")]
    NotString,
}

/// Why [`scan_model`] read no model: a model key agw cannot read for certain, or a body that
/// is not a JSON object it reads.
enum Unread {
    Key(ModelKeyError),
    Json(JsonError),
}

/// Reads the top-level `model` of a JSON object, telling a model key agw cannot read for
/// certain from a body that is not such an object.
fn scan_model(body: &[u8]) -> Result<Option<(Range<usize>, String)>, Unread> {
    let mut sc = Scanner::new(body).map_err(Unread::Json)?;
    if sc.peek() != Some(b'{') {
        return Err(Unread::Json(JsonError::Shape(
            "the request body must be a JSON object".into(),
        )));
    }
    let mut found = None;
    let mut problem = None;
    let walked = sc.object(|sc, key| {
        // Any case: an upstream with a case-insensitive JSON decoder (Go's) reads `MODEL`
        // as `model` (so `model` and `MODEL` together are a duplicate).
        if !sc.key_matches(&key, "model") {
            return sc.skip_fast();
        }
        if found.is_some() {
            problem = Some(ModelKeyError::Twice);
            return Err(JsonError::Shape(String::new()));
        }
        let Some(s) = sc.string_or_none()? else {
            problem = Some(ModelKeyError::NotString);
            return Err(JsonError::Shape(String::new()));
        };
        let value = String::from_utf8_lossy(&sc.str_value(&s)).into_owned();
        found = Some((s.raw, value));
        Ok(())
    });
    if let Some(p) = problem {
        return Err(Unread::Key(p));
    }
    walked.and_then(|()| sc.finish()).map_err(Unread::Json)?;
    Ok(found)
}

/// The raw span and decoded value of the top-level `model` string, if any. A repeated `model`
/// key is an error: parsers disagree on which one wins, so it could slip past an allow-list.
pub fn find_model(body: &[u8]) -> Result<Option<(Range<usize>, String)>, JsonError> {
    scan_model(body).map_err(|e| match e {
        Unread::Key(ModelKeyError::Twice) => JsonError::Shape("duplicate key `model`".into()),
        Unread::Key(ModelKeyError::NotString) => {
            JsonError::Shape("`model` must be a string".into())
        }
        Unread::Json(e) => e,
    })
}

/// The model a request body names at its top level, for the layers that key limits, budgets,
/// access lists and usage on it: `Ok(None)` for a body that names none or is not a JSON object
/// agw reads (what it cannot parse, a provider cannot either); an error for a `model` key that
/// a server could read otherwise than agw ([`ModelKeyError`]). It agrees with [`find_model`]
/// and with the request guard's reading of `model`.
///
/// ```
/// use agw_core::model::{ModelKeyError, request_model};
/// assert_eq!(request_model(br#"{"model":"claude-haiku-4-5"}"#), Ok(Some("claude-haiku-4-5".into())));
/// assert_eq!(request_model(br#"{"model":"a","max_tokens":9,"MODEL":"b"}"#), Err(ModelKeyError::Twice));
/// assert_eq!(request_model(br#"{"model":["a"]}"#), Err(ModelKeyError::NotString));
/// assert_eq!(request_model(b"not json"), Ok(None));
/// ```
///
/// # Errors
///
/// `model` twice, or not a string.
pub fn request_model(body: &[u8]) -> Result<Option<String>, ModelKeyError> {
    match scan_model(body) {
        Ok(found) => Ok(found.map(|(_, m)| m)),
        Err(Unread::Key(e)) => Err(e),
        Err(Unread::Json(_)) => Ok(None),
    }
}

/// The model a request body names on a route without a prompt, as a server that reads any
/// of these would: a `multipart/form-data` body's `model` field ([`form_model`]), an
/// `application/x-www-form-urlencoded` body's `model` parameter, or a JSON object's top-level
/// `model` ([`find_model`]) — whatever the `Content-Type` says of JSON, and in the encodings a
/// JSON reader detects (a UTF-8 byte order mark, UTF-16 and UTF-32 as Python's `json` reads
/// them). `Ok(None)`: the body names no model (a file's bytes, JSON without one).
///
/// # Errors
///
/// What makes the model uncertain: a form agw cannot read, `model` given twice, JSON that
/// does not parse, or a UTF-16/32 body that does not decode.
pub fn body_model(body: &[u8], content_type: &str) -> Result<Option<String>, String> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("multipart/form-data") {
        return form_model(body, content_type);
    }
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let mut model = None;
        for pair in body.split(|&b| b == b'&') {
            let (name, value) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            if crate::route::canonical::percent_decoded(name) != b"model" {
                continue;
            }
            if model.is_some() {
                return Err("the form names `model` twice".into());
            }
            let value = crate::route::canonical::percent_decoded(value);
            model = Some(String::from_utf8_lossy(&value).into_owned());
        }
        // JSON labelled a form: a server may read it as JSON anyway (final review).
        if model.is_some() || body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(model);
        }
    }
    let Some(text) = json_text(body)? else {
        return Ok(None);
    };
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(None);
    }
    find_model(&text)
        .map(|found| found.map(|(_, m)| m))
        .map_err(|e| format!("the JSON body cannot be read ({e})"))
}

/// A body as the UTF-8 a JSON reader that detects encodings reads it ([`json_encoding`]);
/// `None` for UTF-16/32-looking bytes without a byte order mark that do not decode (a file's
/// bytes).
fn json_text(body: &[u8]) -> Result<Option<std::borrow::Cow<'_, [u8]>>, String> {
    Ok(Some(match json_encoding(body) {
        JsonEncoding::Utf8 => body.into(),
        JsonEncoding::Utf8Bom => body[3..].into(),
        wide => match wide.decode(body) {
            Some(text) => text.into_bytes().into(),
            // A byte order mark says text; without one, zeros up front are a file's bytes.
            None if wide.has_bom() => {
                return Err("the body has a byte order mark but does not decode".into());
            }
            None => return Ok(None),
        },
    }))
}

/// Every model a request body on a route without a prompt names: [`body_model`]'s, and in a
/// JSON body every string under a `model` key at any depth — an eval run's
/// `data_source.model`, a Realtime session's `session.model`, a fine-tuning job's `model` —
/// each a model that runs on the organisation's key (found by the seventh red-team review:
/// an access list read only the top level). On Ollama's own API (`path` under `/api/`) the
/// top-level `name`, `from`, `source` and `destination` name models too: `/api/create` builds
/// a model `from` another, which it then serves under a new name (regression round).
///
/// # Errors
///
/// As [`body_model`]; and JSON that a strict parser does not read.
pub fn body_models(body: &[u8], content_type: &str, path: &str) -> Result<Vec<String>, String> {
    /// The top-level keys Ollama's API names models under, besides `model`.
    const OLLAMA: [&str; 4] = ["name", "from", "source", "destination"];
    let mut models: Vec<String> = body_model(body, content_type)?.into_iter().collect();
    let Some(text) = json_text(body)? else {
        return Ok(models);
    };
    if !matches!(
        text.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    ) {
        return Ok(models);
    }
    /// Appends the `model` strings in the value at the cursor; a `model` key twice in one
    /// object (in any case) is refused, as [`find_model`] refuses it at the top.
    /// (The scanner bounds the depth.)
    /// `also`: other keys that name a model in this object (not below it).
    fn nested(sc: &mut Scanner<'_>, also: &[&str], out: &mut Vec<String>) -> Result<(), JsonError> {
        let push = |m: String, out: &mut Vec<String>| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        match sc.peek() {
            Some(b'{') => {
                let mut seen = false;
                sc.object(|sc, key| {
                    if !sc.key_matches(&key, "model") {
                        // Bedrock's `modelId` (async invocations, batch jobs), a tuning job's
                        // `baseModel` (second round: read only as `model`, they ran anything).
                        if sc.peek() == Some(b'"')
                            && (also.iter().any(|k| sc.key_matches(&key, k))
                                || [
                                    "modelid",
                                    "model_id",
                                    "model-id",
                                    "modelarn",
                                    "modelname",
                                    "model_name",
                                    "basemodel",
                                    "base_model",
                                    "basemodelidentifier",
                                ]
                                .iter()
                                .any(|k| sc.key_matches(&key, k)))
                        {
                            let s = sc.string()?;
                            push(String::from_utf8_lossy(&sc.str_value(&s)).into_owned(), out);
                            return Ok(());
                        }
                        return nested(sc, &[], out);
                    }
                    if std::mem::replace(&mut seen, true) {
                        return Err(JsonError::Shape("duplicate key `model`".into()));
                    }
                    match sc.string_or_none()? {
                        Some(s) => {
                            push(String::from_utf8_lossy(&sc.str_value(&s)).into_owned(), out);
                            Ok(())
                        }
                        None => nested(sc, &[], out),
                    }
                })
            }
            Some(b'[') => sc.array(|sc, _| nested(sc, &[], out)),
            _ => sc.skip_fast(),
        }
    }
    let ollama = path.len() >= 5 && path.as_bytes()[..5].eq_ignore_ascii_case(b"/api/");
    let also: &[&str] = if ollama { &OLLAMA } else { &[] };
    let mut sc = Scanner::new(&text).map_err(|e| format!("the JSON body cannot be read ({e})"))?;
    nested(&mut sc, also, &mut models)
        .and_then(|()| sc.finish())
        .map_err(|e| format!("the JSON body cannot be read ({e})"))?;
    Ok(models)
}

/// The models a prompt request may run besides its `model`: a Responses request's
/// `image_generation` tool names its image model in `tools[i].model` (each image billed at
/// that model's price), and routers take fallbacks — OpenRouter's top-level `models` list,
/// LiteLLM's `fallbacks` (names, or maps of a name to names). Only those top-level keys are
/// read: a `model` key deeper in a tool (a function's parameter schema) or in the
/// conversation is data.
///
/// # Errors
///
/// JSON that a strict parser does not read, or a tool naming `model` twice.
pub fn extra_models(body: &[u8]) -> Result<Vec<String>, String> {
    let read = |e: JsonError| format!("the JSON body cannot be read ({e})");
    let Some(text) = json_text(body)? else {
        return Ok(Vec::new());
    };
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Ok(Vec::new());
    }
    let mut models = Vec::new();
    let mut sc = Scanner::new(&text).map_err(read)?;
    /// Every string and key in the value at the cursor (a fallbacks list).
    fn names(sc: &mut Scanner<'_>, out: &mut Vec<String>) -> Result<(), JsonError> {
        let mut push = |name: String| {
            if !out.contains(&name) {
                out.push(name);
            }
        };
        match sc.peek() {
            Some(b'"') => {
                let s = sc.string()?;
                push(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
                Ok(())
            }
            Some(b'[') => sc.array(|sc, _| names(sc, out)),
            Some(b'{') => sc.object(|sc, key| {
                let k = String::from_utf8_lossy(&sc.str_value(&key)).into_owned();
                if !out.contains(&k) {
                    out.push(k);
                }
                names(sc, out)
            }),
            _ => sc.skip_fast(),
        }
    }
    sc.object(|sc, key| {
        if sc.key_matches(&key, "models") || sc.key_matches(&key, "fallbacks") {
            return names(sc, &mut models);
        }
        if !sc.key_matches(&key, "tools") || sc.peek() != Some(b'[') {
            return sc.skip_fast();
        }
        sc.array(|sc, _| {
            if sc.peek() != Some(b'{') {
                return sc.skip_fast();
            }
            let mut seen = false;
            sc.object(|sc, key| {
                if !sc.key_matches(&key, "model") {
                    return sc.skip_fast();
                }
                if std::mem::replace(&mut seen, true) {
                    return Err(JsonError::Shape("a tool names `model` twice".into()));
                }
                match sc.string_or_none()? {
                    Some(s) => {
                        let m = String::from_utf8_lossy(&sc.str_value(&s)).into_owned();
                        if !models.contains(&m) {
                            models.push(m);
                        }
                        Ok(())
                    }
                    None if sc.peek() == Some(b'n') => sc.skip_fast(),
                    None => Err(JsonError::Shape("a tool's `model` is not a string".into())),
                }
            })
        })
    })
    .and_then(|()| sc.finish())
    .map_err(read)?;
    Ok(models)
}

/// How a JSON reader that detects encodings (Python's `json.loads` on bytes, RFC 4627's
/// rule) reads a body: by its byte order mark, else by where its first bytes are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonEncoding {
    Utf8,
    Utf8Bom,
    Utf16 { big: bool, bom: bool },
    Utf32 { big: bool, bom: bool },
}

fn json_encoding(b: &[u8]) -> JsonEncoding {
    use JsonEncoding::*;
    match b {
        [0, 0, 0xfe, 0xff, ..] => Utf32 {
            big: true,
            bom: true,
        },
        [0xff, 0xfe, 0, 0, ..] => Utf32 {
            big: false,
            bom: true,
        },
        [0xfe, 0xff, ..] => Utf16 {
            big: true,
            bom: true,
        },
        [0xff, 0xfe, ..] => Utf16 {
            big: false,
            bom: true,
        },
        [0xef, 0xbb, 0xbf, ..] => Utf8Bom,
        [0, 0, _, _, ..] => Utf32 {
            big: true,
            bom: false,
        },
        [0, _, _, _, ..] => Utf16 {
            big: true,
            bom: false,
        },
        [_, 0, 0, 0, ..] => Utf32 {
            big: false,
            bom: false,
        },
        [_, 0, _, _, ..] => Utf16 {
            big: false,
            bom: false,
        },
        _ => Utf8,
    }
}

impl JsonEncoding {
    fn has_bom(self) -> bool {
        matches!(
            self,
            JsonEncoding::Utf8Bom
                | JsonEncoding::Utf16 { bom: true, .. }
                | JsonEncoding::Utf32 { bom: true, .. }
        )
    }

    /// The body as text, or `None` when its length does not fit the encoding. A lone
    /// surrogate or an invalid code point is one replacement character, as Python's
    /// `surrogatepass` keeps it one character (regression round: failing to decode read no
    /// model where Python read one).
    fn decode(self, b: &[u8]) -> Option<String> {
        match self {
            JsonEncoding::Utf16 { big, bom } => {
                let b = &b[if bom { 2 } else { 0 }..];
                if !b.len().is_multiple_of(2) {
                    return None;
                }
                let units = b.chunks_exact(2).map(|c| {
                    let pair = [c[0], c[1]];
                    if big {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    }
                });
                Some(
                    char::decode_utf16(units)
                        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect(),
                )
            }
            JsonEncoding::Utf32 { big, bom } => {
                let b = &b[if bom { 4 } else { 0 }..];
                if !b.len().is_multiple_of(4) {
                    return None;
                }
                Some(
                    b.chunks_exact(4)
                        .map(|c| {
                            let quad = [c[0], c[1], c[2], c[3]];
                            let unit = if big {
                                u32::from_be_bytes(quad)
                            } else {
                                u32::from_le_bytes(quad)
                            };
                            char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)
                        })
                        .collect(),
                )
            }
            JsonEncoding::Utf8 | JsonEncoding::Utf8Bom => None,
        }
    }
}

/// The `model` field of a `multipart/form-data` body (OpenAI's image edits, transcriptions and
/// translations send their model as a form field), given the request's `Content-Type`:
/// `Ok(None)` when the content type is not multipart or no part is named `model`.
///
/// # Errors
///
/// A message naming the problem when the body is multipart but cannot be read as a form
/// ([`form_parts`]) or names `model` twice: an access list that restricts models then refuses
/// it rather than guess what a server reads.
pub fn form_model(body: &[u8], content_type: &str) -> Result<Option<String>, String> {
    let Some(parts) = form_parts(body, content_type)? else {
        return Ok(None);
    };
    let mut model = None;
    for part in parts
        .iter()
        .filter(|p| p.names.iter().any(|n| n == "model"))
    {
        if model.is_some() {
            return Err("the form names `model` twice".into());
        }
        model = Some(String::from_utf8_lossy(part.value).trim().to_owned());
    }
    Ok(model)
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart<'a> {
    /// The names the field may be read by (`Content-Disposition`'s `name` and its RFC 5987
    /// `name*`, which form parsers prefer differently).
    pub names: Vec<String>,
    /// Whether the part is a file (its `Content-Disposition` names a `filename`).
    pub file: bool,
    /// The names a file part's `Content-Disposition` gives it (`filename` and RFC 5987's
    /// `filename*`, which form parsers prefer differently): each declares the file's type.
    pub filenames: Vec<String>,
    /// The part's own `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The part's contents.
    pub value: &'a [u8],
}

/// The parts of a `multipart/form-data` body, given the request's `Content-Type`: `Ok(None)`
/// when the content type is not multipart.
///
/// # Errors
///
/// A message naming the problem when the body cannot be read as one form, the same by every
/// form parser: no boundary or two, the boundary inside a line, no closing delimiter, a part
/// without headers, a bare carriage return in a part's headers, a quoted parameter with a
/// backslash, a field or file name split into RFC 2231 continuations, a part in a transfer
/// encoding (quoted-printable, base64), text before the first part or after the last.
pub fn form_parts<'a>(
    body: &'a [u8],
    content_type: &str,
) -> Result<Option<Vec<FormPart<'a>>>, String> {
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Ok(None);
    }
    // One boundary, read as form parsers read parameters (quotes kept together): a second
    // one, or one hidden in another parameter's quoted value, is a body two parsers split
    // differently (regression round).
    let mut boundaries = header_params(params)?
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("boundary"));
    let boundary = boundaries
        .next()
        .map(|(_, v)| v)
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or("the multipart body has no boundary")?;
    if boundaries.next().is_some() {
        return Err("the multipart content type names two boundaries".into());
    }
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    // The parts: what lies between one delimiter line and the next. A delimiter starts a
    // line; the boundary anywhere else (after a bare CR, inside a line) is a body parsers
    // split differently, so it is refused rather than read as content.
    let starts: Vec<usize> = finder.find_iter(body).collect();
    if starts.iter().any(|&i| i != 0 && body[i - 1] != b'\n') {
        return Err("the multipart boundary appears inside a line".into());
    }
    let Some(&last) = starts.last() else {
        return Err("the multipart body has no parts".into());
    };
    if !body[last + delimiter.len()..].starts_with(b"--") {
        return Err("the multipart body does not end with its closing delimiter".into());
    }
    // Text before the first part or after the last is dropped by conforming parsers, but not
    // by every server: refused rather than passed on unread (black-box review, twenty-fourth
    // session). HTTP clients write none; a line break after the closing delimiter is kept.
    let epilogue = &body[last + delimiter.len() + 2..];
    if !body[..starts[0]].trim_ascii().is_empty() || !epilogue.trim_ascii().is_empty() {
        return Err("the multipart body holds text before its first part or after its last".into());
    }
    let mut parts = Vec::with_capacity(starts.len() - 1);
    for pair in starts.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        // The delimiter's own line break, and the one that precedes the next delimiter.
        let part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .ok_or("a multipart delimiter is not followed by a line break")?;
        let part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        // The headers end at the first blank line, `\r\n` or `\n` alone, as form parsers
        // (Go's `textproto`, Werkzeug) end them: a later `\r\n\r\n` is the value's (second
        // review, twenty-third session: `\r\n\n` then `\r\n\r\n` hid the value before it).
        let (head, value) = header_block(part).ok_or("a multipart part has no header block")?;
        // A bare CR ends a header line for some parsers and not for others.
        if head
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && head.get(i + 1) != Some(&b'\n'))
        {
            return Err("a multipart part's headers hold a bare carriage return".into());
        }
        let head = String::from_utf8_lossy(head);
        // Folded header lines (a line that starts with a space or a tab continues the one
        // before), which form parsers still unfold: `name="model"` may sit on the second line.
        let mut lines: Vec<String> = Vec::new();
        for line in head.lines() {
            match lines.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
                _ => lines.push(line.to_owned()),
            }
        }
        let mut form = FormPart {
            names: Vec::new(),
            file: false,
            filenames: Vec::new(),
            content_type: None,
            value,
        };
        for line in &lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-type") {
                form.content_type = Some(value.trim().to_owned());
                continue;
            }
            // A part in quoted-printable or base64 is decoded by some form parsers (Go's
            // `mime/multipart`, python-multipart) and read as it is by others (Starlette,
            // Werkzeug): refused, as RFC 7578 deprecates the header and no client sends it
            // (twenty-third session's red team: `credit=20card` went upstream unread).
            if name.eq_ignore_ascii_case("content-transfer-encoding")
                && !["7bit", "8bit", "binary"]
                    .iter()
                    .any(|e| value.trim().eq_ignore_ascii_case(e))
            {
                return Err(
                    "a multipart part declares a Content-Transfer-Encoding other than \
                            7bit, 8bit or binary, which form parsers decode differently"
                        .into(),
                );
            }
            if !name.eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            let params = value.split_once(';').map_or("", |(_, p)| p);
            for (k, v) in header_params(params)? {
                let k = k.to_ascii_lowercase();
                if k == "name" {
                    form.names.push(v);
                } else if k == "name*" {
                    // `name*=utf-8''mod%65l` (RFC 5987), which some form parsers decode.
                    let encoded = v.rsplit('\'').next().unwrap_or(&v);
                    let decoded = crate::route::canonical::percent_decoded(encoded.as_bytes());
                    form.names
                        .push(String::from_utf8_lossy(&decoded).into_owned());
                } else if k.starts_with("name*") {
                    // `name*0="mo"; name*1="del"` (RFC 2231 continuations): no client sends
                    // them, and a parser that joins them could read a name agw did not.
                    return Err("a form field's name is split into RFC 2231 continuations".into());
                } else if k.starts_with("filename*") && k != "filename*" {
                    // `filename*0="my cre"; filename*1="dit card"`: parsers that join them read
                    // a name agw would read in pieces (second review).
                    return Err("a file's name is split into RFC 2231 continuations".into());
                } else if k.starts_with("filename") {
                    form.file = true;
                    // `filename*=utf-8''notes.txt` (RFC 5987) decoded, as form parsers that
                    // prefer it read it.
                    let name = if k == "filename*" {
                        let encoded = v.rsplit('\'').next().unwrap_or(&v);
                        let decoded = crate::route::canonical::percent_decoded(encoded.as_bytes());
                        String::from_utf8_lossy(&decoded).into_owned()
                    } else {
                        v
                    };
                    form.filenames.push(name);
                }
            }
        }
        parts.push(form);
    }
    Ok(Some(parts))
}

/// A multipart part's header block and its value: split at the first empty line (a line
/// break right after the start or after another line break, `\r\n` or `\n`).
fn header_block(part: &[u8]) -> Option<(&[u8], &[u8])> {
    let blank_at = |i: usize| {
        if part[i..].starts_with(b"\r\n") {
            Some(i + 2)
        } else if part[i..].starts_with(b"\n") {
            Some(i + 1)
        } else {
            None
        }
    };
    if let Some(v) = blank_at(0) {
        return Some((&part[..0], &part[v..]));
    }
    let mut from = 0;
    while let Some(k) = memchr::memchr(b'\n', &part[from..]) {
        let eol = from + k;
        if let Some(v) = blank_at(eol + 1) {
            let head = &part[..eol];
            return Some((head.strip_suffix(b"\r").unwrap_or(head), &part[v..]));
        }
        from = eol + 1;
    }
    None
}

/// The `key=value` parameters of a header value after its first `;`, as form parsers read
/// them: a quoted value runs to its closing quote, `;` inside quotes separates nothing, and
/// what follows a closing quote up to the next `;` is dropped (`name="model"junk` is `model`).
///
/// # Errors
///
/// A quoted value that never closes, or that holds a backslash (parsers disagree on whether
/// it escapes the next quote).
fn header_params(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return Ok(out);
        }
        let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim().to_owned();
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start_matches([' ', '\t']);
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut close = None;
            for (i, c) in quoted.char_indices() {
                match c {
                    // Some parsers unescape `\"` in a quoted value and some do not, so
                    // they end it at different quotes (final review): refused.
                    '\\' => return Err("a quoted header parameter holds a backslash".into()),
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    c => v.push(c),
                }
            }
            let close = close.ok_or("a quoted header parameter never closes")?;
            value = v;
            let tail = &quoted[close + 1..];
            rest = &tail[tail.find(';').unwrap_or(tail.len())..];
        } else {
            let end = after.find(';').unwrap_or(after.len());
            value = after[..end].trim().to_owned();
            rest = &after[end..];
        }
        out.push((key, value));
    }
}

/// The models of a message batch: every `requests[].params.model` (keys compared as a
/// case-insensitive parser compares them), in order. Each request is a billed call of its own,
/// so an access list checks each — a batch's top-level `model`, if any, is not what runs.
///
/// # Errors
///
/// The body is not a JSON object, a `params` has no string `model` or two of them.
pub fn batch_models(body: &[u8]) -> Result<Vec<String>, JsonError> {
    Ok(batch_requests(body)?.into_iter().map(|(m, _)| m).collect())
}

/// Each request of a message batch: its model and its output cap (`max_tokens`), in order
/// (see [`batch_models`]).
///
/// # Errors
///
/// As [`batch_models`].
pub fn batch_requests(body: &[u8]) -> Result<Vec<(String, Option<u64>)>, JsonError> {
    let mut sc = Scanner::new(body)?;
    if sc.peek() != Some(b'{') {
        return Err(JsonError::Shape(
            "the request body must be a JSON object".into(),
        ));
    }
    let mut models = Vec::new();
    sc.object(|sc, key| {
        if !sc.key_matches(&key, "requests") || sc.peek() != Some(b'[') {
            return sc.skip_fast();
        }
        sc.array(|sc, _| {
            if sc.peek() != Some(b'{') {
                return sc.skip_fast();
            }
            sc.object(|sc, key| {
                if !sc.key_matches(&key, "params") || sc.peek() != Some(b'{') {
                    return sc.skip_fast();
                }
                let mut model = None;
                let mut cap = None;
                sc.object(|sc, key| {
                    if crate::usage::is_output_cap(sc, &key) {
                        let range = sc.skip()?;
                        cap = crate::usage::larger_cap(cap, &sc.bytes()[range]);
                        return Ok(());
                    }
                    if !sc.key_matches(&key, "model") {
                        return sc.skip_fast();
                    }
                    let Some(s) = sc.string_or_none()? else {
                        return Err(JsonError::Shape("`model` must be a string".into()));
                    };
                    if model.is_some() {
                        return Err(JsonError::Shape("duplicate key `model`".into()));
                    }
                    model = Some(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
                    Ok(())
                })?;
                let model = model
                    .ok_or_else(|| JsonError::Shape("a batch request has no `model`".into()))?;
                models.push((model, cap));
                Ok(())
            })
        })
    })?;
    sc.finish()?;
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fourteenth review: a second `model` key (escaped, or in another case) got around a
    /// dollar budget's hold; every reader of the top-level model agrees on what is refused.
    #[test]
    fn request_model_refuses_a_model_key_a_server_could_read_otherwise() {
        use ModelKeyError::{NotString, Twice};
        for (body, want) in [
            (
                r#"{"model":"claude-opus-4-6"}"#,
                Ok(Some("claude-opus-4-6")),
            ),
            (r#"{"max_tokens":1,"messages":[]}"#, Ok(None)),
            (r#"{"messages":[{"model":"x"}],"model":"m"}"#, Ok(Some("m"))),
            (
                r#"{"model":"claude-haiku-4-5","max_tokens":9,"model":"claude-opus-4-6"}"#,
                Err(Twice),
            ),
            (
                r#"{"model":"claude-haiku-4-5","mod\u0065l":"claude-opus-4-6"}"#,
                Err(Twice),
            ),
            (
                r#"{"model":"claude-haiku-4-5","MODEL":"claude-opus-4-6"}"#,
                Err(Twice),
            ),
            (r#"{"Model":"a","model":"a"}"#, Err(Twice)),
            (r#"{"model":["claude-sonnet-4-5"]}"#, Err(NotString)),
            (r#"{"model":null}"#, Err(NotString)),
            (r#"{"model":1}"#, Err(NotString)),
            // Not an object agw reads: no model (a provider cannot read it either).
            ("garbage{", Ok(None)),
            (r#"["model"]"#, Ok(None)),
        ] {
            let want = want.map(|m| m.map(str::to_owned));
            assert_eq!(request_model(body.as_bytes()), want, "{body}");
            // `find_model` refuses what `request_model` refuses.
            if want.is_err() {
                assert!(find_model(body.as_bytes()).is_err(), "{body}");
            }
        }
    }

    #[test]
    fn body_models_reads_every_depth_and_ollamas_own_keys() {
        let json = "application/json";
        let models = |body: &str, path: &str| body_models(body.as_bytes(), json, path);
        // Second round: Bedrock's `modelId`, a tuning job's `baseModel`.
        assert_eq!(
            models(
                r#"{"modelId":"amazon.nova","x":{"baseModel":"g"}}"#,
                "/async-invoke"
            )
            .unwrap(),
            ["amazon.nova", "g"]
        );
        assert_eq!(
            models(
                r#"{"model":"a","data_source":{"model":"b","x":[{"model":"a"}]}}"#,
                "/v1/evals/e/runs"
            )
            .unwrap(),
            ["a", "b"]
        );
        assert!(models(r#"{"s":{"model":"a","MODEL":"b"}}"#, "/v1/x").is_err());
        // Ollama's keys at the top of its own API's bodies, and nowhere else.
        assert_eq!(
            models(
                r#"{"name":"n","from":"f","x":{"source":"s"}}"#,
                "/api/create"
            )
            .unwrap(),
            ["n", "f"]
        );
        assert!(
            models(r#"{"name":"n","from":"f"}"#, "/v1/files")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            models(r#"{"source":"s","destination":"d"}"#, "/API/copy").unwrap(),
            ["s", "d"]
        );
    }

    #[test]
    fn extra_models_reads_tools_and_fallbacks() {
        let models = |body: &str| extra_models(body.as_bytes());
        assert_eq!(
            models(
                r#"{"model":"gpt-5","input":[{"model":"x"}],"tools":[{"type":"image_generation","model":"gpt-image-1"},{"type":"function","name":"f","parameters":{"properties":{"model":{"type":"string"}}}},"odd"]}"#
            )
            .unwrap(),
            ["gpt-image-1"]
        );
        assert!(models(r#"{"tools":[{"model":"a","Model":"b"}]}"#).is_err());
        assert!(models(r#"{"tools":[{"model":{"id":"a"}}]}"#).is_err());
        assert!(models(r#"{"tools":[{"model":null}]}"#).unwrap().is_empty());
        assert!(
            models(r#"{"tools":[{"type":"web_search"}]}"#)
                .unwrap()
                .is_empty()
        );
        // Routers' fallbacks.
        assert_eq!(
            models(r#"{"model":"a","models":["b","c"],"fallbacks":[{"d":["e"]},"f"]}"#).unwrap(),
            ["b", "c", "d", "e", "f"]
        );
    }

    /// The regression round's bypasses of the model check on routes without a prompt: JSON
    /// with a byte order mark or in UTF-16/32 (Python's `json` reads both), urlencoded forms,
    /// folded part headers, `name*` spellings.
    #[test]
    fn a_body_names_its_model_in_every_encoding_a_server_reads() {
        let json = r#"{"prompt":"a cat","model":"gpt-image-1"}"#;
        let want = Ok(Some("gpt-image-1".to_owned()));
        assert_eq!(body_model(json.as_bytes(), "text/plain"), want);
        let mut bom = vec![0xef, 0xbb, 0xbf];
        bom.extend_from_slice(json.as_bytes());
        assert_eq!(body_model(&bom, "application/json"), want);
        let utf16 = |big: bool, bom: bool| {
            let mut out = Vec::new();
            let units = bom.then_some(0xfeff).into_iter().chain(json.encode_utf16());
            for u in units {
                out.extend_from_slice(&if big {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                });
            }
            out
        };
        for (big, bom) in [(false, false), (true, false), (false, true), (true, true)] {
            assert_eq!(body_model(&utf16(big, bom), "application/json"), want);
        }
        let utf32: Vec<u8> = json
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        assert_eq!(body_model(&utf32, ""), want);
        // A byte order mark that does not decode; a file's bytes with zeros up front.
        assert!(body_model(&[0xff, 0xfe, 0x7b], "application/json").is_err());
        assert_eq!(
            body_model(b"\0\0\x01\0icon", "application/octet-stream"),
            Ok(None)
        );
        // Urlencoded: decoded names, and twice is refused.
        let form = "application/x-www-form-urlencoded";
        assert_eq!(
            body_model(b"prompt=a+cat&mod%65l=gpt-image-1", form),
            Ok(Some("gpt-image-1".into()))
        );
        assert!(body_model(b"model=a&model=b", form).is_err());
        // JSON labelled a form is read as JSON (final review).
        assert_eq!(
            body_model(br#"{"model":"gpt-image-1"}"#, form),
            Ok(Some("gpt-image-1".into()))
        );
        assert_eq!(body_model(b"prompt=x", form), Ok(None));
        // Multipart: a folded header, a percent-encoded `name*`, continuations refused.
        let ct = "multipart/form-data; boundary=b";
        let part = |head: &str| format!("--b\r\n{head}\r\n\r\nwhisper-1\r\n--b--\r\n");
        for head in [
            "Content-Disposition: form-data;\r\n name=\"model\"",
            "Content-Disposition: form-data;\r\n\tname=model",
            "Content-Disposition: form-data; name*=UTF-8''mod%65l",
        ] {
            assert_eq!(
                body_model(part(head).as_bytes(), ct),
                Ok(Some("whisper-1".into())),
                "{head}"
            );
        }
        let split = part("Content-Disposition: form-data; name*0=\"mo\"; name*1=\"del\"");
        assert!(body_model(split.as_bytes(), ct).is_err());
    }

    /// The final review's multipart differentials: each is read as the model it names, or
    /// refused; none reads as a form without one.
    #[test]
    fn forms_two_parsers_split_differently_are_refused() {
        let model = |ct: &str, body: &str| body_model(body.as_bytes(), ct);
        let part = |b: &str, name: &str, v: &str| {
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n")
        };
        // (a) a boundary inside another parameter's quotes is that parameter's.
        let body = format!("{}--BND--\r\n", part("BND", "model", "gpt-x"));
        assert_eq!(
            model(
                "multipart/form-data; x=\"; boundary=AAA\"; boundary=BND",
                &body
            ),
            Ok(Some("gpt-x".into()))
        );
        // (b) two boundaries.
        assert!(model("multipart/form-data; boundary=AAA; boundary=BND", &body).is_err());
        // (c) a bare CR in a part's headers.
        let bare = "--BND\r\nX-Y: z\rContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-x\r\n--BND--\r\n";
        assert!(model("multipart/form-data; boundary=BND", bare).is_err());
        // (d), (e) the boundary after a bare CR, or inside a line.
        let cr = format!("{}\r--BND--\r\n", part("BND", "file", "x"));
        assert!(model("multipart/form-data; boundary=BND", &cr).is_err());
        let mid = format!("xx{}--BND--\r\n", part("BND", "model", "gpt-x"));
        assert!(model("multipart/form-data; boundary=BND", &mid).is_err());
        // (f) junk after a quoted name.
        let junk = "--BND\r\nContent-Disposition: form-data; name=\"model\"junk\r\n\r\ngpt-x\r\n--BND--\r\n";
        assert_eq!(
            model("multipart/form-data; boundary=BND", junk),
            Ok(Some("gpt-x".into()))
        );
        // An unclosed quote; a backslash in a quoted value (parsers disagree on it).
        assert!(model("multipart/form-data; boundary=\"BND", &body).is_err());
        let slash = "--BND\r\nContent-Disposition: form-data; name=\"\\\"; name=\"model\"\r\n\r\ngpt-x\r\n--BND--\r\n";
        assert!(model("multipart/form-data; boundary=BND", slash).is_err());
        // (i) UTF-16 without a byte order mark, with a lone surrogate elsewhere.
        let mut units: Vec<u16> = r#"{"model":"gpt-image-1","p":""#.encode_utf16().collect();
        units.push(0xd800);
        units.extend(r#""}"#.encode_utf16());
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(body_model(&bytes, ""), Ok(Some("gpt-image-1".into())));
    }

    #[test]
    fn a_form_names_its_model_in_one_field() {
        let ct = "multipart/form-data; boundary=\"a b\"";
        let form = |parts: &str| format!("{parts}--a b--\r\n");
        let field = |name: &str, v: &str| {
            format!("--a b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n")
        };
        let body = form(&(field("file", "x y") + &field("model", " whisper-1 ")));
        assert_eq!(
            form_model(body.as_bytes(), ct),
            Ok(Some("whisper-1".into()))
        );
        // The boundary inside a line is a body parsers split differently: refused.
        let body = form(&(field("file", "x --a b y") + &field("model", " whisper-1 ")));
        assert!(form_model(body.as_bytes(), ct).is_err());
        // `name*` (RFC 5987), unquoted names, bare line feeds.
        let body = "--a b\nContent-Disposition: form-data; name*=utf-8''model\n\nm1\n--a b--";
        assert_eq!(form_model(body.as_bytes(), ct), Ok(Some("m1".into())));
        let body = "--a b\r\ncontent-disposition: form-data; NAME=model\r\n\r\nm2\r\n--a b--";
        assert_eq!(form_model(body.as_bytes(), ct), Ok(Some("m2".into())));
        // No model field; not a form at all.
        let body = form(&field("purpose", "batch"));
        assert_eq!(form_model(body.as_bytes(), ct), Ok(None));
        assert_eq!(
            form_model(b"{\"model\":\"x\"}", "application/json"),
            Ok(None)
        );
        // Refused: twice, no boundary, no closing delimiter, a part without headers.
        let body = form(&(field("model", "a") + &field("model", "b")));
        assert!(
            form_model(body.as_bytes(), ct)
                .unwrap_err()
                .contains("twice")
        );
        assert!(form_model(body.as_bytes(), "multipart/form-data").is_err());
        let open = field("model", "a");
        assert!(form_model(open.as_bytes(), ct).is_err());
        assert!(form_model(b"--a b\r\nmodel\r\n--a b--", ct).is_err());
    }

    #[test]
    fn a_batch_names_the_model_of_each_request() {
        let body = br#"{"model":"decoy","requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4-5","messages":[]}},{"custom_id":"b","params":{"MODEL":"claude-opus-4-1"}}]}"#;
        assert_eq!(
            batch_models(body).unwrap(),
            ["claude-sonnet-4-5", "claude-opus-4-1"]
        );
        assert_eq!(
            batch_requests(br#"{"requests":[{"params":{"model":"a","max_tokens":64000}},{"params":{"model":"b"}}]}"#).unwrap(),
            [("a".to_owned(), Some(64000)), ("b".to_owned(), None)]
        );
        assert!(batch_models(br#"{"requests":[{"params":{"messages":[]}}]}"#).is_err());
        assert!(batch_models(br#"{"requests":[{"params":{"model":"a","Model":"b"}}]}"#).is_err());
        assert!(batch_models(b"[]").is_err());
        assert_eq!(
            batch_models(br#"{"requests":[]}"#).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn glob_table() {
        for (p, s, want) in [
            ("claude-*", "claude-opus", true),
            ("claude-*", "claude-", true),
            ("*", "", true),
            ("*-4-6", "claude-opus-4-6", true),
            ("c*o*s", "claude-opus", true),
            ("c*o*x", "claude-opus", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a*a*b", "aaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(glob(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
    }

    #[test]
    fn pin_rewrites_only_the_value() {
        let p = ModelPolicy::pin("claude-opus-4-6").unwrap();
        let body = br#"{ "max_tokens" : 5, "model" : "claude-sonnet-4-5", "x":[1,2.50]}"#;
        let ModelOutcome::Rewritten {
            body: out,
            from,
            to,
        } = p.apply(body).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (from.as_str(), to.as_str()),
            ("claude-sonnet-4-5", "claude-opus-4-6")
        );
        assert_eq!(
            out,
            br#"{ "max_tokens" : 5, "model" : "claude-opus-4-6", "x":[1,2.50]}"#
        );
        let same = br#"{"model":"claude-opus-4-6"}"#;
        assert_eq!(
            p.apply(same).unwrap(),
            ModelOutcome::Unchanged {
                model: Some("claude-opus-4-6".into())
            }
        );
    }

    #[test]
    fn aliases_longest_first_and_exact_first() {
        let p = ModelPolicy::aliases([
            ("claude-*", "generic"),
            ("claude-opus-*", "opus"),
            ("claude-opus-4-6", "exact"),
        ])
        .unwrap();
        assert_eq!(p.resolve("claude-opus-4-6"), "exact");
        assert_eq!(p.resolve("claude-opus-4-1"), "opus");
        assert_eq!(p.resolve("claude-haiku"), "generic");
        assert_eq!(p.resolve("gpt-5"), "gpt-5");
    }

    #[test]
    fn allow_list_errors() {
        let p = ModelPolicy::any().allow(["claude-opus-*"]).unwrap();
        assert!(p.apply(br#"{"model":"claude-opus-4-6"}"#).is_ok());
        let e = p.apply(br#"{"model":"claude-haiku-4-5"}"#).unwrap_err();
        assert_eq!(e.error_body().status().as_u16(), 400);
        assert!(e.to_string().contains("claude-opus-*"));
        assert!(matches!(p.apply(b"{}"), Err(ModelError::Missing { .. })));
        // An escaped duplicate key cannot smuggle a second model past the list.
        let dup = br#"{"model":"claude-opus-4-6","\u006dodel":"claude-haiku"}"#;
        assert!(matches!(p.apply(dup), Err(ModelError::Body(_))));
        // Nor a key in another case, which a case-insensitive decoder (Go's) reads as `model`.
        for dup in [
            &br#"{"model":"claude-opus-4-6","MODEL":"claude-haiku"}"#[..],
            br#"{"Model":"claude-haiku","model":"claude-opus-4-6"}"#,
        ] {
            assert!(matches!(p.apply(dup), Err(ModelError::Body(_))));
        }
        let e = p.apply(br#"{"MODEL":"claude-haiku"}"#).unwrap_err();
        assert!(matches!(e, ModelError::NotAllowed { .. }), "{e:?}");
        assert!(matches!(
            p.apply(br#"{"model":7}"#),
            Err(ModelError::Body(_))
        ));
        assert!(matches!(p.apply(b"nope"), Err(ModelError::Body(_))));
    }

    #[test]
    fn escaped_model_names_decode_and_rewrite_cleanly() {
        let p = ModelPolicy::aliases([("opus", "claude-\"opus\"")]).unwrap();
        let ModelOutcome::Rewritten { body, .. } = p.apply(br#"{"model":"\u006fpus"}"#).unwrap()
        else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "claude-\"opus\"");
    }

    #[test]
    fn noop_policy_does_not_read() {
        assert_eq!(
            ModelPolicy::any().apply(b"not json").unwrap(),
            ModelOutcome::Unchanged { model: None }
        );
        assert!(ModelPattern::new("").is_err());
        assert!(ModelPolicy::pin(" x").is_err());
    }
}
