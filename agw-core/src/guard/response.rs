//! Inspecting what a model sends back: non-streaming response bodies of every dialect
//! (Anthropic messages and legacy completions, OpenAI chat and legacy completions, OpenAI
//! Responses) and the JSON of single stream events.
//!
//! The walk is generic rather than per dialect, so a field or block type agw has not heard of
//! is inspected, not skipped: every string value is read, except metadata keys (`id`, `type`,
//! `model`, `role`, `signature`, ...) whose values are identifiers, not prose, and `data` that
//! its siblings show to be binary. Signed reasoning — Anthropic `thinking` blocks and deltas,
//! `redacted_thinking` — is read but never masked (a changed thinking block fails its
//! signature check when sent back): a mask rule's hit there refuses the response. Reasoning
//! without a signature (OpenAI `reasoning` summaries, `reasoning_content`) is text. Tool calls (`tool_use`, `server_tool_use`, OpenAI
//! `function` objects, Responses `function_call` items) are collected for the tool rules; an
//! `arguments` string is read as the JSON it holds, as a stream's tool call input is, and a
//! mask inside it is written back into the string, only the masked span changed.
//! A duplicate key anywhere is an error: parsers disagree on which value wins.

use super::extract::{Doc, Inner, Loc, Seg, Top, Unit};
use super::policy::{Decision, Rejection, Verdict};
use super::{ActionKind, Field, Hit, InspectError, Policy, ToolHit};
use crate::json::{JsonError, Scanner, Str, decode};
use serde_json::Value;
use std::ops::Range;

/// Keys whose string values are identifiers or enums, not text a person reads (a `match`, so
/// a key costs a length switch and a compare or two, not a scan of the list). Each is one a
/// provider fills in, never the model's words: ids (`container.id` too), the names of types,
/// roles and reasons, a `status` (`completed`, `in_progress`), opaque signatures and
/// ciphertext, a media type. Not here, so read as text: `data` (a document's text, a fetched
/// page; skipped only where its siblings say it is binary, see [`binary_data`]), `name`
/// (read unless it names a tool being called: then the tool-name check reads it) and
/// `stop_sequence` (text the model wrote, shown by clients that print it). Reconsidered by
/// the seventh red-team review.
pub(crate) fn is_meta_key(key: &[u8]) -> bool {
    matches!(
        key,
        b"id"
            | b"type"
            | b"model"
            | b"role"
            | b"object"
            | b"status"
            | b"finish_reason"
            | b"signature"
            | b"encrypted_content"
            | b"call_id"
            | b"custom_id"
            | b"tool_use_id"
            | b"tool_call_id"
            | b"item_id"
            | b"response_id"
            | b"previous_response_id"
            | b"system_fingerprint"
            | b"service_tier"
            | b"media_type"
    )
}

/// The tool-rule name of a Responses output item the client runs itself, by its `type`: the
/// shell (`local_shell_call`, `shell_call`), file edits (`apply_patch_call`) and computer use
/// (`computer_call`). Their input is the item's `action` (or `operation`).
pub(crate) fn client_tool(ty: &[u8]) -> Option<&'static str> {
    match ty {
        b"local_shell_call" => Some("local_shell"),
        b"shell_call" => Some("shell"),
        b"apply_patch_call" => Some("apply_patch"),
        b"computer_call" => Some("computer"),
        _ => None,
    }
}

/// A client-run tool's input as the tool rules read it: its `action`, with a `command` given
/// as an argument vector (`["kubectl","delete","ns","prod"]`, a local shell call's) joined
/// into the command line it runs, so a rule's pattern sees the words together.
fn client_tool_input(action: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(action) else {
        return action.to_vec();
    };
    let argv = v["command"].as_array().and_then(|a| {
        a.iter()
            .map(serde_json::Value::as_str)
            .collect::<Option<Vec<&str>>>()
    });
    if let Some(argv) = argv {
        let line = argv.join(" ");
        v["command"] = serde_json::Value::String(line);
        return serde_json::to_vec(&v).unwrap_or_else(|_| action.to_vec());
    }
    action.to_vec()
}

/// Whether an object's `data` string is a binary payload, not text, by its siblings: its
/// object's `type` (`redacted_thinking` is ciphertext; an image, audio or file part), the key
/// it sits under (`audio`, `image`, `inline_data`, ...), or a media type that is not text
/// (`image/png`, `application/pdf`; `text/plain`, JSON, XML and the like are text). Anything
/// else — no media type, one agw does not know to be binary — is read: it fails towards
/// reading (a `web_fetch_tool_result`'s page text is `source.data` with `type: "text"`).
pub(crate) fn binary_data(ty: &[u8], parent: &[u8], media: Option<&[u8]>) -> bool {
    const CARRIERS: [&[u8]; 10] = [
        b"redacted_thinking",
        b"image",
        b"input_image",
        b"audio",
        b"input_audio",
        b"output_audio",
        b"file",
        b"input_file",
        b"inline_data",
        b"inlineData",
    ];
    if let Some(media) = media {
        let media = String::from_utf8_lossy(media).to_ascii_lowercase();
        let media = media.split(';').next().unwrap_or("").trim();
        let (major, minor) = media.split_once('/').unwrap_or((media, ""));
        let textual = [
            "json",
            "xml",
            "yaml",
            "javascript",
            "csv",
            "text",
            "toml",
            "sql",
        ]
        .iter()
        .any(|t| minor.contains(t));
        return match major {
            "image" | "audio" | "video" | "font" | "model" => true,
            "application" => !textual,
            _ => false,
        };
    }
    ty == b"redacted_thinking" || CARRIERS.contains(&ty) || CARRIERS.contains(&parent)
}

/// Whether an object is reasoning covered by a signature, which a changed text fails: an
/// Anthropic thinking block (its `signature`), a `redacted_thinking` block, a thinking delta.
/// Reasoning without one (chat `reasoning_content`, Responses reasoning summaries, Ollama's
/// `thinking`) is text like any other, masked in place.
pub(crate) fn is_signed_reasoning(ty: &[u8], has_signature: bool) -> bool {
    has_signature || matches!(ty, b"redacted_thinking" | b"thinking_delta")
}

/// A tool call found in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub name: String,
    /// The input as JSON text.
    pub input: Vec<u8>,
}

/// A response body, walked once.
#[derive(Debug, Default)]
pub(crate) struct Walked {
    /// Text that masking may edit.
    pub text: Doc,
    /// Reasoning: read by reject and audit rules only.
    pub reasoning: Doc,
    pub tools: Vec<ToolCall>,
}

#[derive(Debug)]
struct Pending {
    s: Str,
    field: Field,
    reasoning: bool,
    /// A `text` value: consecutive ones (an Anthropic message's text blocks) read as one
    /// text, as a client shows them.
    text: bool,
    /// A JSON number (in a tool's input), not a string.
    number: bool,
    /// In the JSON document [`Walker::inner`]`[i]` (an `arguments` string), not in the body.
    inner: Option<u32>,
    /// In a Gemini thought part: its `text` values are one text of their own, apart from the
    /// answer's.
    thought: bool,
    /// The Gemini candidate (its `index`, 0 when it names none) it is in: each candidate's
    /// text is its own, whatever the candidates' positions in a list of chunks.
    candidate: u64,
}

struct Walker<'b> {
    body: &'b [u8],
    pending: Vec<Pending>,
    tools: Vec<ToolCall>,
    /// JSON documents held in `arguments` strings, read as the JSON they are.
    inner: Vec<Inner>,
    /// The keys of the objects being walked, innermost last.
    keys: Vec<std::borrow::Cow<'b, [u8]>>,
    /// An error body or error event ([`walk_error`]): every string leaf is text, identifiers,
    /// types and binary-looking `data` too, and so is every number of eight characters or
    /// more; nothing in it is signed reasoning (an error is never sent back).
    whole: bool,
}

impl<'b> Walker<'b> {
    /// A walker of `body` with nothing found yet.
    fn new(body: &'b [u8]) -> Self {
        Walker {
            body,
            pending: Vec::new(),
            tools: Vec::new(),
            inner: Vec::new(),
            keys: Vec::new(),
            whole: false,
        }
    }
}

/// Checks that `body` is one valid JSON value with no duplicate key in any object.
pub(crate) fn check_json(body: &[u8]) -> Result<(), JsonError> {
    fn value<'a>(
        sc: &mut Scanner<'a>,
        keys: &mut Vec<std::borrow::Cow<'a, [u8]>>,
    ) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'{') => {
                let from = keys.len();
                sc.object(|sc, k| {
                    keys.push(sc.str_value(&k));
                    value(sc, keys)
                })?;
                no_duplicates(keys, from)
            }
            Some(b'[') => sc.array(|sc, _| value(sc, keys)),
            _ => sc.skip().map(drop),
        }
    }
    let mut sc = Scanner::new(body)?;
    value(&mut sc, &mut Vec::new())?;
    sc.finish()
}

/// Checks the keys of one object, `keys[from..]`, for a duplicate and removes them: one key
/// buffer serves a whole body (objects nest, so their keys form a stack). A small object (most
/// are) is checked pair by pair, without moving its keys; a larger one is sorted.
fn no_duplicates(keys: &mut Vec<std::borrow::Cow<'_, [u8]>>, from: usize) -> Result<(), JsonError> {
    let object = &mut keys[from..];
    let found = if object.len() <= 16 {
        object
            .iter()
            .enumerate()
            .find(|(i, k)| object[i + 1..].contains(k))
            .map(|(_, k)| k.clone())
    } else {
        object.sort_unstable();
        object
            .windows(2)
            .find(|w| w[0] == w[1])
            .map(|w| w[0].clone())
    };
    keys.truncate(from);
    match found {
        // The key is not named: the model chooses a tool input's keys, and the error reaches
        // the client, so a key the response rules would mask must not come back in it (tenth
        // red-team review).
        Some(_) => Err(JsonError::Shape("a key named twice in one object".into())),
        None => Ok(()),
    }
}

/// Whether `key` names log probabilities in any case and with any underscores
/// (`logProbs`, `LogprobsResult`, `log_probs`: lenient decoders read those too; second
/// round).
fn is_logprobs_key(key: &[u8]) -> bool {
    let mut folded = [0u8; 32];
    let mut n = 0;
    for &b in key.iter().filter(|&&b| b != b'_') {
        if n == folded.len() {
            return false;
        }
        folded[n] = b.to_ascii_lowercase();
        n += 1;
    }
    // llama.cpp's `completion_probabilities`, TGI's `top_tokens`, SGLang's
    // `output_token_logprobs`, legacy completions' `token_logprobs` (third round).
    matches!(
        &folded[..n],
        b"logprobs"
            | b"logprobsresult"
            | b"toplogprobs"
            | b"completionprobabilities"
            | b"toptokens"
            | b"outputtokenlogprobs"
            | b"inputtokenlogprobs"
            | b"tokenlogprobs"
    )
}

/// Whether a value under a log-probabilities key holds any token (a string or a number):
/// `null`, `[]` and `{"content": null}` (what providers send when none were asked for) do not.
fn holds_tokens(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Number(_) => true,
        Value::Array(a) => a.iter().any(holds_tokens),
        Value::Object(o) => o.values().any(holds_tokens),
        Value::Null | Value::Bool(_) => false,
    }
}

/// Whether an event's JSON carries token log probabilities at any depth: the response's
/// text again in pieces no rule reads whole. agw refuses requests that ask for them where
/// text is masked or refused; a provider that sends them unasked is not let through either
/// (twelfth session's black-box review: Gemini's `logprobsResult` and chat chunks'
/// `logprobs` spelled a masked key token by token).
pub(crate) fn carries_logprobs(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| {
            (is_logprobs_key(k.as_bytes()) && holds_tokens(v)) || carries_logprobs(v)
        }),
        Value::Array(a) => a.iter().any(carries_logprobs),
        _ => false,
    }
}

/// Walks a response body (or the JSON of one stream event).
pub(crate) fn walk(body: &[u8]) -> Result<Walked, JsonError> {
    walk_as(body, false)
}

/// Walks an error body (a response with a status of 400 or more) or the JSON of a stream's
/// error event: every string leaf and every number of eight characters or more is read as
/// text — `error.type`, `type`, `id`, `model`, `status`, `object`, `signature` included. The
/// identifier exemption is for values a client sends back; an error is never sent back, and
/// the SDKs (and Claude Code) print the whole error body (nineteenth session's red team: a
/// card in `error.type` passed every rule).
pub(crate) fn walk_error(body: &[u8]) -> Result<Walked, JsonError> {
    walk_as(body, true)
}

fn walk_as(body: &[u8], whole: bool) -> Result<Walked, JsonError> {
    let mut sc = Scanner::new(body)?;
    // An object, or a list of them (Gemini's `:streamGenerateContent` without `alt=sse`
    // answers with a JSON list of its chunks: black-box review).
    if !matches!(sc.peek(), Some(b'{' | b'[')) {
        return Err(match sc.peek() {
            None => sc.skip().expect_err("nothing to skip"),
            Some(_) => JsonError::Shape("the response body must be a JSON object or list".into()),
        });
    }
    // Sized for a typical reply (a dozen keys, a few strings), so the walk does not grow them
    // step by step.
    let mut w = Walker {
        body,
        pending: Vec::with_capacity(8),
        tools: Vec::new(),
        inner: Vec::new(),
        keys: Vec::with_capacity(16),
        whole,
    };
    if sc.peek() == Some(b'[') {
        sc.array(|sc, _| {
            if sc.peek() != Some(b'{') {
                return Err(JsonError::Shape(
                    "a response list's items must be JSON objects".into(),
                ));
            }
            w.value(sc, None, Field::Messages)
        })?;
    } else {
        w.value(&mut sc, None, Field::Messages)?;
    }
    sc.finish()?;
    let mut out = Walked {
        tools: std::mem::take(&mut w.tools),
        ..Walked::default()
    };
    // Each document's text is about its strings' raw bytes (normalisation seldom grows it);
    // segments and units at most one a string.
    for (doc, reasoning) in [(&mut out.text, false), (&mut out.reasoning, true)] {
        let mine = || w.pending.iter().filter(|p| p.reasoning == reasoning);
        doc.text.reserve(mine().map(|p| p.s.raw.len()).sum());
        let n = mine().count();
        doc.segs.reserve(n);
        doc.units.reserve(n);
    }
    // Text blocks' `text` strings first, in order, then every other string: a block's
    // citations between two text blocks do not keep their texts apart (edits are applied by
    // their byte ranges, whatever the order of the segments).
    // Text values by what they are part of (a Gemini candidate, its thoughts apart), each in
    // document order.
    let mut texts: Vec<usize> = (0..w.pending.len())
        .filter(|&i| w.pending[i].text)
        .collect();
    texts.sort_by_key(|&i| (w.pending[i].candidate, w.pending[i].thought));
    let order = texts
        .into_iter()
        .chain((0..w.pending.len()).filter(|&i| !w.pending[i].text));
    let mut prev: Option<usize> = None;
    for i in order {
        let p = &w.pending[i];
        let doc = if p.reasoning {
            &mut out.reasoning
        } else {
            &mut out.text
        };
        let start = doc.text.len();
        let source = match p.inner {
            Some(i) => &w.inner[i as usize].json[..],
            None => body,
        };
        let kind = decode(&source[p.s.raw.clone()], p.s.escaped, &mut doc.text)?;
        let seg = doc.segs.len();
        doc.segs.push(Seg {
            text: start..doc.text.len(),
            raw: p.s.raw.clone(),
            kind,
            // What the model wrote is never "the final prompt": a reject rule rejects.
            last_prompt: false,
            number: p.number,
            inner: p.inner,
            loc: Loc {
                top: Top::Body,
                message: None,
                list: ".content",
                block: Some(i as u32),
                sub: None,
                leaf: if p.field == Field::ToolInput {
                    ".input"
                } else {
                    ".text"
                },
            },
        });
        // Each string is matched on its own (the model wrote it, not the client), but for
        // text blocks that follow one another: `credit ` and `card` in two blocks read as
        // the client shows them.
        let joins = p.text
            && prev.is_some_and(|j| {
                let q = &w.pending[j];
                q.text
                    && q.reasoning == p.reasoning
                    && q.field == p.field
                    && q.thought == p.thought
                    && q.candidate == p.candidate
            });
        prev = Some(i);
        match doc.units.last_mut() {
            Some(u) if joins && u.segs.end == seg => u.segs.end = seg + 1,
            _ => doc.units.push(Unit {
                field: p.field,
                message: Some(0),
                request: None,
                group: i as u32,
                latest: true,
                user: false,
                answered: false,
                any_field: false,
                segs: seg..seg + 1,
            }),
        }
    }
    // Segments index the documents of the text they are in (reasoning seldom holds one).
    if w.pending.iter().any(|p| p.reasoning && p.inner.is_some()) {
        out.reasoning.inner = w.inner.clone();
    }
    out.text.inner = w.inner;
    Ok(out)
}

impl<'b> Walker<'b> {
    fn value(
        &mut self,
        sc: &mut Scanner<'b>,
        key: Option<&[u8]>,
        field: Field,
    ) -> Result<(), JsonError> {
        match sc.peek() {
            Some(b'"') => {
                // Whether it is signed reasoning is known at its object's end.
                let s = sc.string()?;
                self.value_str(s, key.unwrap_or(b""), field);
                Ok(())
            }
            Some(b'{') => self.object(sc, field),
            Some(b'[') => sc.array(|sc, _| self.value(sc, key, field)),
            // A long number the model puts in a tool's input is read like text (a card as a
            // number), and masked by a JSON string, as in requests.
            Some(b'-' | b'0'..=b'9') if field == Field::ToolInput || self.whole => {
                let raw = sc.skip()?;
                if raw.len() >= 8 {
                    self.pending.push(Pending {
                        s: Str {
                            raw,
                            escaped: false,
                        },
                        field,
                        reasoning: false,
                        text: false,
                        number: true,
                        inner: None,
                        thought: false,
                        candidate: 0,
                    });
                }
                Ok(())
            }
            _ => sc.skip().map(drop),
        }
    }

    fn object(&mut self, sc: &mut Scanner<'b>, field: Field) -> Result<(), JsonError> {
        let first = self.pending.len();
        let from = self.keys.len();
        let mut ty: Option<std::borrow::Cow<'_, [u8]>> = None;
        let mut name: Option<(String, Str)> = None;
        // A `data` string, read unless its siblings say it is binary (`binary_data`), and
        // what decides it.
        let mut data: Option<Str> = None;
        let mut media: Option<std::borrow::Cow<'_, [u8]>> = None;
        let mut signed = false;
        let mut thought = false;
        let mut candidate_index = 0u64;
        let mut input: Option<Range<usize>> = None;
        // An `arguments` string's text: the JSON it holds, or what the tool rules read.
        let mut arguments: Option<Vec<u8>> = None;
        // `action`, `operation`, `actions`: a client-run tool's input (each checked).
        let mut actions: Vec<Range<usize>> = Vec::new();
        sc.object(|sc, k| {
            let mut key = sc.str_value(&k);
            // Read as a client that matches keys without regard to case reads it (`Text`);
            // a tool's input keeps its own keys.
            if field != Field::ToolInput
                && let Some(known) = super::keys::folded(&key)
            {
                key = std::borrow::Cow::Borrowed(known.as_bytes());
            }
            self.keys.push(key.clone());
            if field == Field::ToolInput {
                // The model wrote a tool input's keys too (and a client runs what they say).
                self.pending.push(Pending {
                    s: k.clone(),
                    field,
                    reasoning: false,
                    text: false,
                    number: false,
                    inner: None,
                    thought: false,
                    candidate: 0,
                });
            }
            match &*key {
                b"type" | b"name" | b"data" | b"media_type" | b"mime_type" | b"mimeType"
                    if field != Field::ToolInput && sc.peek() == Some(b'"') =>
                {
                    let s = sc.string()?;
                    if self.whole && &*key != b"name" && &*key != b"data" {
                        // An error's type and media type are text like the rest of it.
                        self.value_str(s.clone(), b"", field);
                    }
                    match &*key {
                        b"type" => ty = Some(sc.str_value(&s)),
                        b"name" => {
                            let v = String::from_utf8_lossy(&sc.str_value(&s)).into_owned();
                            name = Some((v, s));
                        }
                        b"data" => data = Some(s),
                        b"mime_type" | b"mimeType" => {
                            media = Some(sc.str_value(&s));
                            if !self.whole {
                                self.value_str(s, &key, field);
                            }
                        }
                        _ => media = Some(sc.str_value(&s)),
                    }
                    Ok(())
                }
                b"signature" if field != Field::ToolInput => {
                    signed = !self.whole;
                    self.value(sc, Some(&key), field)
                }
                k if field != Field::ToolInput
                    && is_logprobs_key(k)
                    && matches!(sc.peek(), Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9')) =>
                {
                    // See [`carries_logprobs`]: token log probabilities are not read.
                    let r = sc.skip()?;
                    let v: Value = serde_json::from_slice(&self.body[r])
                        .map_err(|_| JsonError::Shape("unreadable log probabilities".into()))?;
                    if holds_tokens(&v) {
                        return Err(JsonError::Shape(
                            "the response carries token log probabilities, which agw does not \
                             read"
                                .into(),
                        ));
                    }
                    Ok(())
                }
                b"index" if field != Field::ToolInput && matches!(sc.peek(), Some(b'0'..=b'9')) => {
                    let r = sc.skip()?;
                    candidate_index = crate::usage::lenient_count(&self.body[r]).unwrap_or(0);
                    Ok(())
                }
                b"thought" if field != Field::ToolInput => {
                    // Gemini's thought parts: reasoning a client shows apart from the answer.
                    // Anything but `true`, `false` or `null` a lenient SDK may read either way
                    // (`1`, `"true"`: third round): not read.
                    let r = sc.skip()?;
                    match &self.body[r] {
                        b"true" => thought = true,
                        b"false" | b"null" => {}
                        _ => {
                            return Err(JsonError::Shape(
                                "a part's `thought` that is not true or false".into(),
                            ));
                        }
                    }
                    Ok(())
                }
                b"arguments" if field != Field::ToolInput && sc.peek() == Some(b'"') => {
                    let s = sc.string()?;
                    let mut json = Vec::new();
                    crate::json::unescape_exact(&self.body[s.raw.clone()], &mut json);
                    if !self.arguments(&s, &json)? {
                        self.pending.push(Pending {
                            s,
                            field: Field::ToolInput,
                            reasoning: false,
                            text: false,
                            number: false,
                            inner: None,
                            thought: false,
                            candidate: 0,
                        });
                    }
                    arguments = Some(json);
                    Ok(())
                }
                // A tool's input, and arguments given as JSON rather than as a string (some
                // servers and clients take both), which are its input too; Gemini's
                // `functionCall.args`, and Vertex's `partialArgs` (the arguments in pieces,
                // each a `jsonPath` and a value: black-box review).
                b"input" | b"arguments" | b"args" | b"partialArgs"
                    if field != Field::ToolInput
                        && (&*key == b"input" || matches!(sc.peek(), Some(b'{' | b'['))) =>
                {
                    let r = sc.skip()?;
                    input = Some(r.clone());
                    let mut sub = sc.at(r.start);
                    self.value(&mut sub, Some(&key), Field::ToolInput)
                }
                // What a Responses tool the client runs is to do: a shell command, a patch, a
                // computer action (see [`client_tool`]). Read as its object's field (a web
                // search's `action` is no tool input); kept for the tool rules.
                // (`actions`: the computer tool's batched list, black-box review.)
                b"action" | b"operation" | b"actions"
                    if field != Field::ToolInput && matches!(sc.peek(), Some(b'{' | b'[')) =>
                {
                    let r = sc.skip()?;
                    actions.push(r.clone());
                    let mut sub = sc.at(r.start);
                    self.value(&mut sub, Some(&key), field)
                }
                _ => self.value(sc, Some(&key), field),
            }
        })?;
        let ty = ty.as_deref().unwrap_or(b"");
        if let Some(s) = data {
            // The key this object sits under (`audio`, `inline_data`, ...).
            let parent = from.checked_sub(1).map_or(&b""[..], |i| &self.keys[i]);
            if self.whole || !binary_data(ty, parent, media.as_deref()) {
                self.value_str(s, b"data", field);
            }
        }
        no_duplicates(&mut self.keys, from)?;
        if is_signed_reasoning(ty, signed) {
            for p in &mut self.pending[first..] {
                p.reasoning = true;
            }
        }
        if thought {
            // A Gemini thought part's text is not the answer's: the answer's text parts on
            // either side of it are one text to a client (`.text` joins them), and the thought
            // parts another (twelfth session's black-box reviews).
            for p in &mut self.pending[first..] {
                p.thought = true;
            }
        }
        if from
            .checked_sub(1)
            .is_some_and(|i| &*self.keys[i] == b"candidates")
        {
            // A Gemini candidate: its texts are its own, by its `index` (SDKs build each
            // candidate by it; a chunk may list them in any order).
            for p in &mut self.pending[first..] {
                p.candidate = candidate_index;
            }
        }
        if let Some(tool) = client_tool(ty) {
            // A tool the client runs on the model's word, with no name to call it by (one it
            // carries is not the client's to go by): checked by the tool rules under its own,
            // each action apart (black-box review: `local_shell_call` and `apply_patch_call`,
            // which Codex runs, passed a `tool: "*"` rule; so did a computer call's batched
            // `actions` beside a harmless `action`).
            for r in actions {
                self.tools.push(ToolCall {
                    name: tool.to_owned(),
                    input: client_tool_input(&self.body[r]),
                });
            }
        }
        if let Some((name, s)) = name {
            // `input`: Anthropic's tool_use blocks, and custom tools' free-form text (OpenAI
            // chat's `custom: {name, input}`, Responses' `custom_tool_call`).
            if let Some(r) = input {
                self.tools.push(ToolCall {
                    name,
                    input: self.body[r].to_vec(),
                });
            } else if let Some(text) = arguments {
                self.tools.push(ToolCall { name, input: text });
            } else if matches!(ty, b"tool_use" | b"server_tool_use" | b"function_call") {
                // A tool call without readable input is checked as one with an empty input.
                self.tools.push(ToolCall {
                    name,
                    input: b"{}".to_vec(),
                });
            } else {
                // A name that is no tool call's (a chat message's `name`, a fetched file's,
                // an MCP tool listed): text, masked in place (seventh red-team review).
                self.value_str(s, b"name", field);
            }
        }
        Ok(())
    }

    /// A string value under `key`: read unless the key holds identifiers.
    fn value_str(&mut self, s: Str, key: &[u8], field: Field) {
        if field != Field::ToolInput && !self.whole && is_meta_key(key) {
            return;
        }
        self.pending.push(Pending {
            s,
            field,
            reasoning: false,
            text: key == b"text",
            number: false,
            inner: None,
            thought: false,
            candidate: 0,
        });
    }

    /// An `arguments` string `s` whose text is `json`: read as the JSON it holds, every string
    /// (keys too) and long number of it as a tool's input, as a stream's tool call input is
    /// read once complete. Returns `false` for text that is not JSON (then read as the string
    /// it is); a document nested too deep, or with a duplicate key, is an error, as in a stream.
    fn arguments(&mut self, s: &Str, json: &[u8]) -> Result<bool, JsonError> {
        let mut sub = Walker::new(json);
        fn read_doc<'d>(sub: &mut Walker<'d>, doc: &'d [u8]) -> Result<(), JsonError> {
            Scanner::new(doc).and_then(|mut sc| {
                sub.value(&mut sc, Some(b"arguments"), Field::ToolInput)?;
                sc.finish()
            })
        }
        let mut read = read_doc(&mut sub, json);
        // Arguments cut short (the model's token limit hit mid-call), read as clients' partial
        // readers complete them (`crate::json::cut`): masks land in the part written (second
        // round: a cut Responses call with a `\u` escape failed the reply).
        let mut completed = None;
        if read.is_err()
            && let Some(c) = crate::json::cut::complete(json)
            && !c.closers.is_empty()
        {
            let mut doc = json[..c.kept].to_vec();
            doc.extend_from_slice(&c.closers);
            let mut cut = Walker::new(&doc);
            if read_doc(&mut cut, &doc).is_ok() {
                sub.pending = cut.pending;
                read = Ok(());
                completed = Some(doc);
            }
        }
        match read {
            Ok(()) => {
                let i = Some(self.inner.len() as u32);
                self.pending
                    .extend(sub.pending.into_iter().map(|p| Pending { inner: i, ..p }));
                self.inner.push(Inner {
                    raw: s.raw.clone(),
                    json: completed.unwrap_or_else(|| json.to_vec()),
                });
                Ok(true)
            }
            // Not JSON, or JSON past a limit (nesting, growth) or with a key twice: read as
            // the string it is, as before arguments were read as JSON — the model wrote it,
            // and failing the whole reply would lose the answer (regression round). Unless a
            // `\u` escape in it could spell out what the string as written does not show (a
            // lenient parser decodes it in `NaN`-bearing or duplicate-key JSON): then the
            // reply fails, as a stream with such arguments does (final review).
            Err(e) if memchr::memmem::find(json, br"\u").is_some() => Err(match e {
                JsonError::Syntax { .. } | JsonError::Utf8(_) => JsonError::Shape(
                    "a tool call's arguments are not JSON agw reads and hold \\u escapes".into(),
                ),
                e => e,
            }),
            Err(_) => Ok(false),
        }
    }
}

impl Policy {
    /// Inspects a provider's non-streaming response body (Anthropic message or legacy
    /// completion, OpenAI chat or legacy completion, OpenAI Responses object): the same text
    /// rules, over every string the model produced, and the tool rules over every tool call.
    /// Field filters apply (tool inputs and arguments are [`Field::ToolInput`], the rest
    /// [`Field::Messages`]); scope does not. Signed reasoning (an Anthropic thinking block) is
    /// never masked: a masking rule's hit in it refuses (400); reasoning without a signature
    /// is masked like text. `api` is the dialect of the body (kept for callers; the walk is
    /// generic).
    pub fn inspect_response(
        &self,
        api: crate::api::Api,
        body: &[u8],
    ) -> Result<Verdict, InspectError> {
        let _ = api;
        let walked = walk(body)?;
        Ok(self.decide_walked(body, walked))
    }

    /// Inspects an error body a provider answered (a status of 400 or more), as
    /// [`Policy::inspect_response`] inspects a response, but whole: every string leaf and long
    /// number, identifiers, types and statuses included (the SDKs and Claude Code print the
    /// whole error body, and an error is never sent back). A rejecting rule's hit replaces the
    /// error with agw's; a masking rule's masks in place.
    pub fn inspect_response_error(&self, body: &[u8]) -> Result<Verdict, InspectError> {
        let walked = walk_error(body)?;
        Ok(self.decide_walked(body, walked))
    }

    /// Inspects a response body labelled as text, or not labelled (a transcription's `text`,
    /// `srt` or `vtt`, a server's `text/plain` answer): a JSON object or list — JSON whatever
    /// its label, which the SDKs parse all the same — as [`Policy::inspect_response`] does;
    /// anything else as plain text, read as the text of a JSON response is: a rejecting rule
    /// refuses, a masking rule masks in place (the rest of the text byte for byte as it came).
    /// Text that is not UTF-8 is an error (agw reads text as UTF-8).
    pub fn inspect_response_text(&self, body: &[u8]) -> Result<Verdict, InspectError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if matches!(first, Some(b'{' | b'[')) && check_json(body).is_ok() {
            return self.inspect_response(crate::api::Api::OpenAi, body);
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| InspectError(JsonError::Shape("the text is not UTF-8".into())))?;
        // Read as the one `text` of a JSON document, which masks in place; the masked string
        // is taken back out of it.
        let mut doc = Vec::with_capacity(body.len() + 16);
        doc.extend_from_slice(b"{\"text\":");
        serde_json::to_writer(&mut doc, text)
            .map_err(|e| InspectError(JsonError::Shape(e.to_string())))?;
        doc.push(b'}');
        let walked = walk(&doc)?;
        let mut verdict = self.decide_walked(&doc, walked);
        if let Decision::Rewrite(masked) = &verdict.decision {
            let masked = serde_json::from_slice::<Value>(masked)
                .ok()
                .and_then(|v| v.get("text")?.as_str().map(str::to_owned))
                .ok_or_else(|| InspectError(JsonError::Shape("a masked text".into())))?;
            verdict.decision = Decision::Rewrite(masked.into_bytes());
        }
        Ok(verdict)
    }

    /// Reads a text of a response agw does not rewrite — a stream's comment, `id`, `retry`
    /// or event name (`what` names it in the refusal) — by every rule: an audit rule reports
    /// a hit, a rejecting rule refuses with its own answer, and a masking rule's hit refuses
    /// (502: the text cannot be masked where it is).
    pub(crate) fn unrewritten_text(&self, text: &str, what: &str) -> Verdict {
        let plain = crate::json::normalize_str(text);
        let mut hits = Vec::new();
        let mut refusal = None;
        for m in self.find_in_text(plain.as_bytes()) {
            hits.push(Hit {
                rule: m.rule.clone(),
                action: m.action.kind(),
                detector: m.detector,
                path: what.to_owned(),
            });
            if refusal.is_some() {
                continue;
            }
            refusal = match m.action.kind() {
                ActionKind::Audit => None,
                ActionKind::Reject => m.action.rejection(m.rule),
                ActionKind::Mask => Some(Rejection {
                    rule: m.rule.clone(),
                    status: http::StatusCode::BAD_GATEWAY,
                    message: format!(
                        "The provider's response carries, in {what}, text that the rule `{}` \
                         would mask; it is not rewritten there.",
                        m.rule
                    ),
                }),
            };
        }
        match refusal {
            Some(r) => Verdict::new(Decision::Reject(r), hits),
            None => Verdict::new(Decision::Allow, hits),
        }
    }

    /// Checks one tool call the model makes — tool `tool` with `input` as JSON text — against
    /// the tool rules: the first rejecting rule that matches, else the first auditing one.
    /// Input that is not valid JSON (or too large) is rejected if any rule names the tool.
    pub fn check_tool_call(&self, tool: &str, input: &[u8]) -> Option<ToolHit> {
        self.tools().check(tool, input)
    }

    pub(crate) fn decide_walked(&self, body: &[u8], walked: Walked) -> Verdict {
        let mut hits = Vec::new();
        for call in &walked.tools {
            let named = self.tool_name_verdict(&call.name);
            hits.extend(named.hits);
            if let Decision::Reject(r) = named.decision {
                return Verdict::new(Decision::Reject(r), hits);
            }
            let Some(hit) = self.check_tool_call(&call.name, &call.input) else {
                continue;
            };
            hits.push(Hit {
                rule: hit.rule.clone(),
                action: hit.action,
                detector: None,
                path: format!("tool:{}", call.name),
            });
            if let Some((status, message)) = hit.reject {
                return Verdict::new(
                    Decision::Reject(Rejection {
                        rule: hit.rule,
                        status,
                        message,
                    }),
                    hits,
                );
            }
        }
        // Signed reasoning is never rewritten (its signature would fail): a rejecting rule
        // refuses with its own answer, a masking rule's hit refuses the response, as a tool's
        // name does, rather than let what it would mask through (seventh red-team review).
        let reasoning = self.decide(body, &walked.reasoning, &[], false);
        let masked = reasoning
            .hits
            .iter()
            .find(|h| h.action == ActionKind::Mask)
            .map(|h| h.rule.clone());
        hits.extend(reasoning.hits);
        if let Decision::Reject(r) = reasoning.decision {
            return Verdict::new(Decision::Reject(r), hits);
        }
        if let Some(rule) = masked {
            return Verdict::new(Decision::Reject(signed_reasoning_refusal(rule)), hits);
        }
        // Text whose JSON escapes spell out what the rules refuse or mask (structured output
        // a client parses: `\u0053ECRET` is `SECRET` to it).
        // Read per text as a client joins it (an escape split over two chunks of a list).
        for doc in [&walked.text, &walked.reasoning] {
            for unit in &doc.units {
                if let Some(rule) = self.escaped_match(doc.unit_text(unit)) {
                    return Verdict::new(Decision::Reject(escaped_refusal(rule)), hits);
                }
            }
        }
        let mut verdict = self.decide(body, &walked.text, &[], false);
        hits.append(&mut verdict.hits);
        verdict.hits = hits;
        verdict
    }

    /// The rule, if any, that refuses or masks more in `text` read with its JSON escapes
    /// decoded (`\u0053`, `\n`, `\"`) than in `text` as written: a client that parses the
    /// model's answer as JSON (structured outputs: the SDKs' `parse()`) reads what the escapes
    /// spell, which no mask can reach where it is written. Found by the twelfth session's
    /// black-box review: `{"note":"\u0053ECRET-12345"}` passed a `SECRET-[0-9]+` mask.
    pub(crate) fn escaped_match(&self, text: &[u8]) -> Option<std::sync::Arc<str>> {
        memchr::memchr(b'\\', text)?;
        let unescaped = spelled(text)?;
        let (mut view, mut map) = (Vec::new(), Vec::new());
        crate::json::normalize_plain(&unescaped, &mut view, &mut map);
        let acting = |m: &&super::policy::TextMatch<'_>| m.action.kind() != ActionKind::Audit;
        let after: Vec<_> = self.find_in_text(&view);
        if !after.iter().any(|m| acting(&m)) {
            return None;
        }
        let before = self.find_in_text(text);
        let count = |ms: &[super::policy::TextMatch<'_>], rule: &str| {
            ms.iter().filter(|m| &**m.rule == rule).count()
        };
        after
            .iter()
            .filter(acting)
            .find(|m| count(&after, m.rule) > count(&before, m.rule))
            .map(|m| m.rule.clone())
    }
}

/// `text` with the JSON escapes a parser reads as printable text decoded — `\uXXXX` (and
/// surrogate pairs) naming a character that is not a control character, `\n`, `\t`, `\r`,
/// `\"`, `\\`, `\/` — and every other backslash left as written (`\b`, a Windows path's
/// `\U`: decoding those as a parser would, to a backspace that normalising drops, joined
/// words that were apart: second round). `None` when nothing is decoded.
fn spelled(text: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let (mut i, mut changed) = (0, false);
    while let Some(off) = memchr::memchr(b'\\', &text[i..]) {
        out.extend_from_slice(&text[i..i + off]);
        i += off;
        // What a JSON parser makes of it (`crate::json`'s own reading), where it is text.
        let (c, next) = match text.get(i + 1) {
            Some(b'n' | b't' | b'r' | b'"' | b'\\' | b'/' | b'u') => {
                crate::json::next_char(text, i)
            }
            _ => ('\u{FFFD}', i + 1),
        };
        if c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
            out.push(b'\\');
            i += 1;
            continue;
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i = next;
        changed = true;
    }
    out.extend_from_slice(&text[i..]);
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

/// The refusal of a response whose text spells out through JSON escapes what the rule `rule`
/// refuses or masks (see [`Policy::escaped_match`]).
pub(crate) fn escaped_refusal(rule: std::sync::Arc<str>) -> Rejection {
    let message = format!(
        "The model's answer spells out, through JSON escapes, text that the rule `{rule}` \
         refuses or masks; it cannot be masked where it is written."
    );
    Rejection {
        rule,
        status: http::StatusCode::BAD_REQUEST,
        message,
    }
}

/// The refusal of a response whose signed reasoning (an Anthropic thinking block) holds what
/// the masking rule `rule` would mask: a 400, as for a tool name.
pub(crate) fn signed_reasoning_refusal(rule: std::sync::Arc<str>) -> Rejection {
    let message = format!(
        "The model's signed reasoning carries text that the rule `{rule}` would mask; signed \
         reasoning is not rewritten."
    );
    // A policy's decision, not a fault: 400, which clients show and do not retry (as a 502,
    // Claude Code sent the same request eleven times and called it temporary: twelfth
    // session).
    Rejection {
        rule,
        status: http::StatusCode::BAD_REQUEST,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;
    use crate::detect::Detector;
    use crate::guard::{Rule, ToolRule};

    fn policy() -> Policy {
        Policy::builder()
            .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .rule(Rule::regex("watch", ["watchword"]).audit())
            .tool_rule(
                ToolRule::new("k8s", "Bash")
                    .argument("command", r"kubectl\s+delete")
                    .reject("no deletes"),
            )
            .build()
            .unwrap()
    }

    fn inspect(body: &str) -> Result<Verdict, InspectError> {
        policy().inspect_response(Api::Anthropic, body.as_bytes())
    }

    fn rewritten(body: &str) -> String {
        match inspect(body).unwrap().into_decision() {
            Decision::Rewrite(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn rejected(body: &str) -> String {
        match inspect(body).unwrap().into_decision() {
            Decision::Reject(r) => r.rule.to_string(),
            other => panic!("{other:?}"),
        }
    }

    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";

    #[test]
    fn a_tool_name_is_read_and_refused_not_rewritten() {
        // Found by the sixth red-team review: a tool's name was read by no text rule.
        let key = "AKIAJ4Q7R2LMXZ5B8PQW";
        for (name, rule, message) in [
            (key, "keys", "would mask"),
            ("run credit card", "cards", "no cards"),
        ] {
            for body in [
                format!(
                    r#"{{"type":"message","content":[{{"type":"tool_use","id":"t","name":"{name}","input":{{}}}}]}}"#
                ),
                format!(
                    r#"{{"choices":[{{"message":{{"tool_calls":[{{"id":"c","type":"function","function":{{"name":"{name}","arguments":"{{}}"}}}}]}}}}]}}"#
                ),
                format!(
                    r#"{{"output":[{{"type":"function_call","call_id":"c","name":"{name}","arguments":"{{}}"}}]}}"#
                ),
            ] {
                let v = inspect(&body).unwrap();
                assert!(
                    v.hits().iter().any(|h| h.path == "tool name"),
                    "{body}: {:?}",
                    v.hits()
                );
                match v.into_decision() {
                    Decision::Reject(r) => {
                        assert_eq!(&*r.rule, rule, "{body}");
                        assert!(r.message.contains(message), "{body}: {}", r.message);
                        assert!(!r.message.contains(name), "{}", r.message);
                    }
                    other => panic!("{body}: {other:?}"),
                }
            }
        }
        let ok = r#"{"type":"message","content":[{"type":"tool_use","id":"t","name":"Read","input":{}}]}"#;
        assert_eq!(inspect(ok).unwrap().decision(), &Decision::Allow);
    }

    #[test]
    fn masks_text_of_every_dialect() {
        for (body, want) in [
            (
                format!(r#"{{"type":"message","content":[{{"type":"text","text":"k {KEY}"}}]}}"#),
                r#"{"type":"message","content":[{"type":"text","text":"k <AWS_ACCESS_KEY>"}]}"#,
            ),
            (
                format!(
                    r#"{{"choices":[{{"message":{{"content":"a"}}}},{{"message":{{"content":"{KEY}"}}}}]}}"#
                ),
                r#"{"choices":[{"message":{"content":"a"}},{"message":{"content":"<AWS_ACCESS_KEY>"}}]}"#,
            ),
            (
                format!(r#"{{"choices":[{{"text":"{KEY}","index":0}}]}}"#),
                r#"{"choices":[{"text":"<AWS_ACCESS_KEY>","index":0}]}"#,
            ),
            (
                format!(r#"{{"completion":"{KEY}","stop_reason":"stop_sequence"}}"#),
                r#"{"completion":"<AWS_ACCESS_KEY>","stop_reason":"stop_sequence"}"#,
            ),
            (
                format!(
                    r#"{{"object":"response","output":[{{"type":"message","content":[{{"type":"output_text","text":"{KEY}"}}]}}]}}"#
                ),
                r#"{"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"<AWS_ACCESS_KEY>"}]}]}"#,
            ),
            // Tool input, in place: the JSON stays valid.
            (
                format!(
                    r#"{{"content":[{{"type":"tool_use","name":"Write","input":{{"content":"x={KEY}\n"}}}}]}}"#
                ),
                r#"{"content":[{"type":"tool_use","name":"Write","input":{"content":"x=<AWS_ACCESS_KEY>\n"}}]}"#,
            ),
            (
                format!(
                    r#"{{"choices":[{{"message":{{"tool_calls":[{{"function":{{"name":"w","arguments":"{{\"k\":\"{KEY}\"}}"}}}}]}}}}]}}"#
                ),
                r#"{"choices":[{"message":{"tool_calls":[{"function":{"name":"w","arguments":"{\"k\":\"<AWS_ACCESS_KEY>\"}"}}]}}]}"#,
            ),
        ] {
            assert_eq!(rewritten(&body), want);
        }
    }

    /// Found by the seventh red-team review: a mask rule's hit in reasoning went out
    /// unmasked. Signed reasoning (an Anthropic thinking block) is refused with a 400; reasoning
    /// without a signature is masked like text; a reject rule keeps its answer, an audit rule
    /// only records.
    #[test]
    fn signed_reasoning_is_refused_and_unsigned_reasoning_masked() {
        for body in [
            format!(
                r#"{{"content":[{{"type":"thinking","thinking":"k {KEY}","signature":"s"}},{{"type":"text","text":"ok"}}]}}"#
            ),
            format!(r#"{{"content":[{{"signature":"s","thinking":"{KEY}","type":"thinking"}}]}}"#),
        ] {
            match inspect(&body).unwrap().into_decision() {
                Decision::Reject(r) => {
                    assert_eq!(
                        (&*r.rule, r.status),
                        ("keys", http::StatusCode::BAD_REQUEST)
                    );
                    assert!(r.message.contains("signed reasoning"), "{}", r.message);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        for (body, want) in [
            (
                format!(
                    r#"{{"choices":[{{"message":{{"role":"assistant","content":"ok","reasoning_content":"k {KEY}"}}}}]}}"#
                ),
                r#"{"choices":[{"message":{"role":"assistant","content":"ok","reasoning_content":"k <AWS_ACCESS_KEY>"}}]}"#.to_owned(),
            ),
            (
                format!(
                    r#"{{"output":[{{"type":"reasoning","summary":[{{"type":"summary_text","text":"k {KEY}"}}],"content":[{{"type":"reasoning_text","text":"{KEY}"}}],"encrypted_content":"e"}}]}}"#
                ),
                r#"{"output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"k <AWS_ACCESS_KEY>"}],"content":[{"type":"reasoning_text","text":"<AWS_ACCESS_KEY>"}],"encrypted_content":"e"}]}"#.to_owned(),
            ),
            (
                format!(r#"{{"message":{{"thinking":"k {KEY}"}}}}"#),
                r#"{"message":{"thinking":"k <AWS_ACCESS_KEY>"}}"#.to_owned(),
            ),
        ] {
            assert_eq!(rewritten(&body), want);
        }
        let body =
            r#"{"content":[{"thinking":"a credit card","type":"thinking","signature":"s"}]}"#;
        assert_eq!(rejected(body), "cards");
        let body = r#"{"output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"watchword"}]}]}"#;
        let v = inspect(body).unwrap();
        assert_eq!(v.hits()[0].action, ActionKind::Audit);
        assert!(v.is_allow());
    }

    /// Gemini's `:streamGenerateContent` without `alt=sse` answers with a JSON list of chunks
    /// (found by a black-box review: refused as not an object). Read as one text.
    #[test]
    fn a_list_of_chunks_is_read() {
        let body = r#"[{"candidates":[{"content":{"role":"model","parts":[{"text":"my credit "}]}}]},{"candidates":[{"content":{"parts":[{"text":"card"}]}}]}]"#;
        assert_eq!(rejected(body), "cards");
        let body =
            format!(r#"[{{"candidates":[{{"content":{{"parts":[{{"text":"k {KEY}"}}]}}}}]}}]"#);
        assert!(!rewritten(&body).contains(KEY));
        assert!(inspect("[]").unwrap().is_allow());
        assert!(inspect("\"x\"").is_err());
    }

    #[test]
    fn tool_calls_are_checked_in_every_dialect() {
        for body in [
            r#"{"content":[{"type":"tool_use","id":"t","name":"Bash","input":{"command":"kubectl delete ns prod"}}]}"#,
            r#"{"content":[{"input":{"command":"kubectl delete ns prod"},"name":"Bash","type":"tool_use"}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"type":"function","function":{"name":"Bash","arguments":"{\"command\":\"kubectl delete x\"}"}}]}}]}"#,
            r#"{"output":[{"type":"function_call","name":"Bash","call_id":"c","arguments":"{\"command\":\"kubectl delete x\"}"}]}"#,
            // Unreadable arguments fail closed.
            r#"{"output":[{"type":"function_call","name":"Bash","arguments":"{\"command\":"}]}"#,
            // Arguments as a JSON object rather than a string (found by the audit: checked as
            // an empty input).
            r#"{"choices":[{"message":{"tool_calls":[{"id":"t","type":"function","function":{"name":"Bash","arguments":{"command":"kubectl delete ns prod"}}}]}}]}"#,
            r#"{"output":[{"type":"function_call","name":"Bash","arguments":{"command":"kubectl delete x"}}]}"#,
            // Custom tools' free-form input (found by the audit: not checked).
            r#"{"choices":[{"message":{"tool_calls":[{"id":"c","type":"custom","custom":{"name":"Bash","input":"kubectl delete pods"}}]}}]}"#,
            r#"{"output":[{"type":"custom_tool_call","call_id":"c","name":"Bash","input":"kubectl  delete x"}]}"#,
        ] {
            let rule = rejected(body);
            assert!(rule == "k8s" || rule == "agw:tool-input", "{body}");
        }
        assert!(
            inspect(r#"{"content":[{"type":"tool_use","name":"Bash","input":{"command":"ls"}}]}"#)
                .unwrap()
                .is_allow()
        );
    }

    /// Found by a black-box review: the tools a Responses client runs itself (Codex's shell,
    /// patches, computer use) carry no name, and Gemini's `functionCall` keeps its input in
    /// `args`; no tool rule saw them, not even `tool: "*"`. They are checked under their
    /// names, and a Gemini call's `args` are a tool input (its `id` or `type` keys included).
    #[test]
    fn client_run_tools_and_gemini_calls_are_checked() {
        let policy = |tool: &str| {
            Policy::builder()
                .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
                .tool_rule(
                    ToolRule::new("k8s", tool)
                        .argument("", r"kubectl\s+delete")
                        .reject("no"),
                )
                .build()
                .unwrap()
        };
        for (tool, body) in [
            (
                "local_shell",
                r#"{"output":[{"type":"local_shell_call","id":"l","call_id":"c","status":"completed","action":{"type":"exec","command":["kubectl","delete","ns","prod"]}}]}"#,
            ),
            (
                "shell",
                r#"{"output":[{"type":"shell_call","call_id":"c","action":{"commands":["kubectl delete ns prod"]}}]}"#,
            ),
            (
                // A name beside it does not make it another tool (review).
                "local_shell",
                r#"{"output":[{"type":"local_shell_call","name":"ls","call_id":"c","action":{"type":"exec","command":["kubectl","delete","x"]}}]}"#,
            ),
            (
                "apply_patch",
                r#"{"output":[{"type":"apply_patch_call","call_id":"c","operation":{"type":"update_file","path":"x.sh","diff":"+kubectl delete ns prod"}}]}"#,
            ),
            (
                "computer",
                r#"{"output":[{"type":"computer_call","call_id":"c","action":{"type":"type","text":"kubectl delete ns prod"}}]}"#,
            ),
            (
                // The batched `actions`, beside a harmless `action` (black-box review).
                "computer",
                r#"{"output":[{"type":"computer_call","call_id":"c","action":{"type":"screenshot"},"actions":[{"type":"type","text":"kubectl delete ns prod"},{"type":"keypress","keys":["ENTER"]}]}]}"#,
            ),
            (
                // Vertex's arguments in pieces.
                "Bash",
                r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"Bash","partialArgs":[{"jsonPath":"$.command","stringValue":"kubectl delete ns prod"}]}}]}}]}"#,
            ),
            (
                "Bash",
                r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"Bash","args":{"command":"kubectl delete ns prod"}}}]}}]}"#,
            ),
        ] {
            for rule in [tool, "*"] {
                let v = policy(rule)
                    .inspect_response(Api::OpenAi, body.as_bytes())
                    .unwrap();
                assert!(
                    matches!(v.decision(), Decision::Reject(r) if &*r.rule == "k8s"),
                    "{rule} {body}"
                );
            }
        }
        // In `args`, an identifier-named key's value is the model's input all the same.
        let body = r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"id":"4111 1111 1111 1111"}}}]}}]}"#;
        match policy("Bash")
            .inspect_response(Api::OpenAi, body.as_bytes())
            .unwrap()
            .into_decision()
        {
            Decision::Rewrite(b) => {
                let out = String::from_utf8(b).unwrap();
                assert!(!out.contains("4111"), "{out}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// Found by the audit: `credit ` in one text block and `card` in the next passed; a client
    /// shows them as one text.
    #[test]
    fn consecutive_text_blocks_read_as_one_text() {
        let body =
            r#"{"content":[{"type":"text","text":"my credit "},{"type":"text","text":"card"}]}"#;
        assert_eq!(rejected(body), "cards");
        let body = r#"{"content":[{"type":"text","text":"k AKIAIOSF"},{"type":"text","text":"ODNN7EXAMPLE x"}]}"#;
        let out = rewritten(body);
        assert!(!out.contains("AKIA") && !out.contains("ODNN7"), "{out}");
        // Text and a tool input, or a thinking block, are not one text.
        for body in [
            r#"{"content":[{"type":"text","text":"my credit "},{"type":"tool_use","id":"t","name":"x","input":{"a":"card"}}]}"#,
            r#"{"content":[{"type":"thinking","thinking":"credit "},{"type":"text","text":"card"}]}"#,
        ] {
            assert!(inspect(body).unwrap().is_allow(), "{body}");
        }
    }

    /// Found by the audit: a tool input's keys were never read.
    #[test]
    fn tool_input_keys_are_text() {
        let body = r#"{"content":[{"type":"tool_use","id":"t","name":"Write","input":{"credit card 4111":"v"}}]}"#;
        assert_eq!(rejected(body), "cards");
        let body = format!(
            r#"{{"content":[{{"type":"tool_use","id":"t","name":"Write","input":{{"{KEY}":"v","n":{{"{KEY}x":1}}}}}}]}}"#
        );
        let out = rewritten(&body);
        assert!(!out.contains("AKIA"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["content"][0]["input"]["<AWS_ACCESS_KEY>"], "v");
        // Keys elsewhere are the provider's schema, not text.
        assert!(
            inspect(r#"{"content":[],"usage":{"input_tokens":1}}"#)
                .unwrap()
                .is_allow()
        );
    }

    /// A long number the model writes in a tool's input is read like text and masked by a
    /// JSON string; numbers elsewhere (usage, timestamps) are not read.
    #[test]
    fn long_numbers_in_tool_inputs_are_read() {
        let p = Policy::builder()
            .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
            .build()
            .unwrap();
        let body = r#"{"content":[{"type":"tool_use","id":"t","name":"Pay","input":{"card":4111111111111111,"qty":3}}],"created":4111111111111111}"#;
        let Decision::Rewrite(out) = p
            .inspect_response(Api::Anthropic, body.as_bytes())
            .unwrap()
            .into_decision()
        else {
            panic!("not masked")
        };
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["content"][0]["input"]["card"], "<CREDIT_CARD>");
        assert_eq!(v["content"][0]["input"]["qty"], 3);
        assert_eq!(v["created"], 4111111111111111u64);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for body in [
            r#"{"content":[{"type":"text","text":"ok"}],"content":[{"type":"text","text":"x"}]}"#,
            r#"{"content":[{"type":"text","text":"ok","text":"x"}]}"#,
            r#"{"content":[]} trailing"#,
            r#"[1]"#,
            "",
        ] {
            assert!(inspect(body).is_err(), "{body}");
        }
        assert!(check_json(br#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(check_json(br#"{"a":{"b":1,"\u0062":2}}"#).is_err());
        assert!(check_json(br#"{"a":[{"b":1},{"b":2}]}"#).is_ok());
    }

    /// Found by the seventh red-team review: every string under `data` was skipped, so a
    /// fetched page's text went out unmasked, and so did `name` outside a tool call and
    /// `stop_sequence`. Binary `data` (by its siblings) is still not read.
    #[test]
    fn data_is_text_unless_its_siblings_say_binary() {
        let fetch = |source: &str| {
            format!(
                r#"{{"content":[{{"type":"web_fetch_tool_result","tool_use_id":"t","content":{{"type":"web_fetch_result","url":"https://e.x","content":{{"type":"document","source":{source},"title":"t"}}}}}}]}}"#
            )
        };
        for (body, want) in [
            (
                fetch(&format!(
                    r#"{{"type":"text","media_type":"text/plain","data":"page {KEY}"}}"#
                )),
                fetch(r#"{"type":"text","media_type":"text/plain","data":"page <AWS_ACCESS_KEY>"}"#),
            ),
            (
                fetch(&format!(r#"{{"data":"page {KEY}","type":"text"}}"#)),
                fetch(r#"{"data":"page <AWS_ACCESS_KEY>","type":"text"}"#),
            ),
            (
                format!(r#"{{"data":["{KEY}"],"object":"list"}}"#),
                r#"{"data":["<AWS_ACCESS_KEY>"],"object":"list"}"#.to_owned(),
            ),
            (
                format!(r#"{{"data":"{KEY}"}}"#),
                r#"{"data":"<AWS_ACCESS_KEY>"}"#.to_owned(),
            ),
            (
                format!(
                    r#"{{"type":"base64","media_type":"application/json","data":"{KEY}"}}"#
                ),
                r#"{"type":"base64","media_type":"application/json","data":"<AWS_ACCESS_KEY>"}"#
                    .to_owned(),
            ),
            (
                format!(
                    r#"{{"choices":[{{"message":{{"role":"assistant","name":"{KEY}","content":"x"}}}}]}}"#
                ),
                r#"{"choices":[{"message":{"role":"assistant","name":"<AWS_ACCESS_KEY>","content":"x"}}]}"#
                    .to_owned(),
            ),
            (
                format!(r#"{{"stop_reason":"stop_sequence","stop_sequence":"{KEY}"}}"#),
                r#"{"stop_reason":"stop_sequence","stop_sequence":"<AWS_ACCESS_KEY>"}"#.to_owned(),
            ),
        ] {
            assert_eq!(rewritten(&body), want);
        }
        // Binary payloads by their siblings: not read.
        for body in [
            fetch(&format!(
                r#"{{"type":"base64","media_type":"application/pdf","data":"{KEY}"}}"#
            )),
            format!(r#"{{"source":{{"type":"base64","media_type":"image/png","data":"{KEY}"}}}}"#),
            format!(r#"{{"audio":{{"id":"a","data":"{KEY}","transcript":"hi"}}}}"#),
            format!(r#"{{"inlineData":{{"data":"{KEY}"}}}}"#),
            format!(r#"{{"part":{{"mimeType":"audio/wav","data":"{KEY}"}}}}"#),
            format!(r#"{{"content":[{{"type":"redacted_thinking","data":"{KEY}"}}]}}"#),
            format!(r#"{{"container":{{"id":"{KEY}"}},"status":"{KEY}"}}"#),
        ] {
            let v = inspect(&body).unwrap();
            assert!(v.is_allow() && v.hits().is_empty(), "{body}: {v:?}");
        }
        // A tool call's name is still the tool-name check's: refused, not rewritten.
        let call = format!(
            r#"{{"content":[{{"type":"tool_use","id":"t","name":"{KEY}","input":{{}}}}]}}"#
        );
        assert_eq!(rejected(&call), "keys");
    }

    #[test]
    fn metadata_is_not_text() {
        let body = r#"{"id":"credit card","model":"credit card","content":[]}"#;
        assert!(inspect(body).unwrap().is_allow());
    }

    /// Objects of every size up to the sorted path and past it: a duplicate anywhere (first,
    /// last, adjacent, far apart) is found, and distinct keys of equal length are not one.
    #[test]
    fn duplicates_are_found_in_small_and_large_objects() {
        for n in [2usize, 3, 15, 16, 17, 40] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{i:02}")).collect();
            let object = |keys: &[String]| {
                let fields: Vec<String> = keys.iter().map(|k| format!(r#""{k}":1"#)).collect();
                format!("{{{}}}", fields.join(","))
            };
            assert!(check_json(object(&keys).as_bytes()).is_ok(), "{n} distinct");
            for (a, b) in [(0, n - 1), (0, 1), (n - 2, n - 1), (n / 2, 0)] {
                if a == b {
                    continue;
                }
                let mut dup = keys.clone();
                dup[b] = dup[a].clone();
                let body = object(&dup);
                assert!(check_json(body.as_bytes()).is_err(), "{body}");
                assert!(
                    walk(format!(r#"{{"content":[{body}]}}"#).as_bytes()).is_err(),
                    "{body}"
                );
            }
        }
    }

    #[test]
    fn meta_and_reasoning_keys() {
        for k in ["id", "type", "previous_response_id", "media_type", "status"] {
            assert!(is_meta_key(k.as_bytes()), "{k}");
        }
        for k in [
            "text",
            "ID",
            "types",
            "",
            "content",
            "thinking",
            "data",
            "name",
            "stop_sequence",
            // vLLM's `stop_reason` is the stop string that matched (fourteenth session).
            "stop_reason",
        ] {
            assert!(!is_meta_key(k.as_bytes()), "{k}");
        }
    }
}
