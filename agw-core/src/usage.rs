//! Token usage read from provider responses: whole JSON bodies and streamed (SSE) events.
//!
//! [`UsageCounter`] is fed what a response carries — a complete JSON body, or the server-sent
//! events of a stream one by one — and keeps the last usage it saw. Only events that carry
//! usage are parsed (a byte search for `"usage"` decides), so counting a stream costs two
//! `memmem` per event, one small JSON parse per usage event (Anthropic `message_start` and
//! `message_delta`, OpenAI's final chunk, Responses' `response.completed`), and for each delta
//! event a walk over its strings that adds up the length of the generated content it carries
//! (nothing is parsed or held).
//!
//! A stream that ends before its final usage — the client went away, the connection broke, a
//! response guard ended it with an error — was billed by the provider for what it generated;
//! [`UsageCounter::cut`] makes its output at least what the deltas delivered: a token per
//! [`BYTES_PER_TOKEN`] bytes of generated text, and at least one per delta event.
//!
//! Token kinds are normalised to what is billed separately: [`Usage::input`] is *uncached*
//! input (OpenAI's `prompt_tokens` minus `cached_tokens`; Anthropic's `input_tokens` as is),
//! [`Usage::cache_read`] the input served from the prompt cache, [`Usage::cache_write`] the
//! input written to it (Anthropic `cache_creation_input_tokens`; OpenAI has none).
//!
//! # Example
//!
//! ```
//! use agw_core::api::Api;
//! use agw_core::usage::{Usage, UsageCounter};
//!
//! let mut counter = UsageCounter::new(Api::Anthropic);
//! counter.event(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-6\",\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n");
//! counter.event(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n");
//! counter.event(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":42}}\n\n");
//! let (usage, model) = counter.finish().unwrap();
//! assert_eq!(usage, Usage { input: 10, output: 42, cache_write: 100, cache_read: 2000 });
//! assert_eq!(model.as_deref(), Some("claude-opus-4-6"));
//! ```
//!
//! # Limits
//!
//! [`UsageCounter::json`] needs the whole JSON body (the caller decides how much it holds);
//! it reads only the top-level `model` and `usage` keys with the skipping scanner and parses
//! just the `usage` object. A response without usage (an error, a stream cut before any
//! usage or content) gives `None` from [`UsageCounter::finish`]: the caller keeps its estimate.
//! The output of a cut stream is an estimate from the bytes it delivered: the provider's
//! tokenizer is not known here, and what it generated past what reached agw is not seen.

mod generated;
mod stream_options;

pub use stream_options::{UsageAsk, ask_for_usage, is_usage_chunk};

use crate::api::Api;
use crate::json::Scanner;
use memchr::memmem::Finder;
use serde_json::Value;
use std::sync::OnceLock;

/// Bytes of generated content counted as one output token when a stream's output must be
/// estimated ([`UsageCounter::cut`]). English prose averages about four bytes a token, but code,
/// JSON tool input and text in other scripts tokenize denser (about three), and the provider
/// also billed tokens it generated that never reached agw; for a budget, charging a cut stream
/// slightly over is safer than letting output through cheap, so three, rounded up. (The
/// escapes of the JSON strings, counted as sent, lean the same way.)
pub const BYTES_PER_TOKEN: u64 = 3;

/// The most bytes of generated content a token stands for on average, for telling an upstream
/// that ignored a request's output cap ([`UsageCounter::output_estimate_capped`]): longer than
/// any tokenizer's average over a whole response (English averages about four).
pub const MAX_BYTES_PER_TOKEN: u64 = 16;

/// The largest figure of one kind a response's usage may report: 100 million tokens, far
/// above any context window and output cap (a million tokens today). An upstream that reports
/// more (`"output_tokens": 1e30`, a huge integer) is counted this much: a figure wrapped or
/// saturated at `u64::MAX` made a Prometheus counter go down and spent every budget with one
/// response (black-box review). A negative count, or one that is not a number, is no count
/// (as a missing one: the request is charged its estimate when no count is read at all).
pub const MAX_USAGE_TOKENS: u64 = 100_000_000;

/// Tokens of one response, by billing kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
}

impl Usage {
    /// All tokens of every kind: what token limits charge.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_write)
            .saturating_add(self.cache_read)
    }

    /// Input tokens of every kind (uncached, cache write and cache read).
    pub fn input_total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_write)
            .saturating_add(self.cache_read)
    }
}

/// Accumulates the usage of one response. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct UsageCounter {
    api: Api,
    usage: Usage,
    model: Option<String>,
    seen: bool,
    /// Stream events that carried a delta (each at least one output token).
    deltas: u64,
    /// Bytes of generated content in the stream's delta events.
    generated: u64,
    /// The stream reached its end: its final usage, or OpenAI's `[DONE]`.
    ended: bool,
    /// A response on a route agw has no reading for ([`UsageCounter::any_shape`]).
    any_shape: bool,
    /// An output count was read (see [`UsageCounter::output_counted`]).
    output_counted: bool,
}

/// Whether every `"usage"` key in `event` has the value `null` (whitespace allowed around the
/// colon). A quote inside a JSON string is escaped, so each match is a key or a string value;
/// a string value `"usage"` is followed by no colon and answers false (the event is parsed).
fn usage_is_null_everywhere(event: &[u8], finder: &Finder<'_>) -> bool {
    finder.find_iter(event).all(|at| {
        let rest = &event[at + b"\"usage\"".len()..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|r| r.trim_ascii_start().starts_with(b"null"))
    })
}

impl UsageCounter {
    /// A counter for a response in `api`'s wire format (the upstream's dialect).
    pub fn new(api: Api) -> Self {
        Self {
            api,
            usage: Usage::default(),
            model: None,
            seen: false,
            deltas: 0,
            generated: 0,
            ended: false,
            any_shape: false,
            output_counted: false,
        }
    }

    /// A counter for a response on a passthrough route (a local server's own API, an image
    /// or an eval): it reads a top-level `usage` object as [`UsageCounter::new`]'s does, and
    /// also the counts servers report in their own shapes — Ollama's `prompt_eval_count` and
    /// `eval_count`, llama.cpp's `tokens_evaluated` and `tokens_predicted` — in a JSON body, in
    /// stream events and in JSON lines ([`UsageCounter::line`]). A stream without any is not
    /// estimated ([`UsageCounter::cut`] leaves it): what such a response costs is unknown.
    /// Found by the seventh red-team review: token limits and budgets never charged these.
    pub fn any_shape(api: Api) -> Self {
        Self {
            any_shape: true,
            ..Self::new(api)
        }
    }

    /// Reads one complete server-sent event (bytes as on the wire, `event:`/`data:` lines).
    /// Events without `"usage"` in them cost a byte search or two, delta events a walk over
    /// their strings.
    pub fn event(&mut self, event: &[u8]) {
        let [delta, usage, ..] = finders();
        if delta.find(event).is_some() {
            self.deltas += 1;
            self.generated = self.generated.saturating_add(generated::bytes(event));
        }
        // An OpenAI chunk names `"usage":null` on every event when the client asked for the
        // usage chunk: nothing to read there once the model is known (a parse per chunk cost
        // ~20k instructions, found by the fifth review's cut-stream fix).
        let no_usage = match usage.find(event) {
            // An OpenAI stream whose client did not ask for usage names its model on every
            // chunk: read from the first until it is known (the ops review found it missing
            // from metrics).
            None if self.model.is_none() && memchr::memmem::find(event, b"\"model\"").is_some() => {
                false
            }
            None => !(self.any_shape && names_own_counts(event)),
            // From the first match on: the search does not start over.
            Some(at) => self.model.is_some() && usage_is_null_everywhere(&event[at..], usage),
        };
        if no_usage {
            // `data: [DONE]`, OpenAI's last event (after the usage chunk, when asked for).
            if event.len() <= 32 && memchr::memmem::find(event, b"[DONE]").is_some() {
                self.ended = true;
            }
            return;
        }
        let mut data = Vec::new();
        for line in event.split(|&b| b == b'\n' || b == b'\r') {
            if let Some(rest) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&data) {
            self.value(&v);
        }
    }

    /// Reads one line of a JSON-lines response (Ollama's streams): as a stream event's data.
    pub fn line(&mut self, line: &[u8]) {
        let [_, usage, ..] = finders();
        if usage.find(line).is_none() && !(self.any_shape && names_own_counts(line)) {
            return;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(line) {
            self.value(&v);
        }
    }

    /// Reads a complete (non-streamed) JSON response body: its top-level `model` and `usage`.
    pub fn json(&mut self, body: &[u8]) {
        if self.any_shape {
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                self.value(&v);
            }
            return;
        }
        let Ok(mut sc) = Scanner::new(body) else {
            return;
        };
        if sc.peek() != Some(b'{') {
            return;
        }
        let mut usage = None;
        let mut model = None;
        let _ = sc.object(|sc, key| {
            if sc.key_is(&key, "usage") {
                // Read where it stands: one pass, no second scanner over the same bytes.
                usage = Some(Scanned::read(sc)?);
                Ok(())
            } else if sc.key_is(&key, "model") {
                if let Some(s) = sc.string_or_none()? {
                    model = Some(String::from_utf8_lossy(&sc.str_value(&s)).into_owned());
                }
                Ok(())
            } else {
                sc.skip_fast()
            }
        });
        if let Some(m) = model {
            self.model = Some(m);
        }
        if let Some(u) = usage {
            self.usage_object(&u, false);
        }
    }

    /// Reads one parsed JSON value: a response body or the data of a stream event.
    pub fn value(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(m) = v.get("message") {
                    self.set_model(m.get("model"));
                    if let Some(u) = m.get("usage") {
                        // Its output count is a placeholder (1): the stream's own comes in its
                        // `message_delta`, and one that names none leaves the output
                        // uncounted (seventeenth session's second review).
                        let counted = self.output_counted;
                        self.usage_object(u, false);
                        self.output_counted = counted;
                    }
                }
            }
            // The usage of the stream's end: its output count is final.
            Some("message_delta") => {
                if let Some(u) = v.get("usage") {
                    self.usage_object(u, true);
                    self.ended = true;
                }
            }
            Some(t) if t.starts_with("response.") => {
                if let Some(r) = v.get("response") {
                    self.set_model(r.get("model"));
                    if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
                        self.usage_object(u, false);
                        self.ended = true;
                    }
                }
            }
            // Gemini's `:streamGenerateContent` without `alt=sse`: a list of its chunks.
            None if self.any_shape && v.is_array() => {
                for chunk in v.as_array().into_iter().flatten() {
                    self.value(chunk);
                }
            }
            _ => {
                self.set_model(v.get("model"));
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage_object(u, false);
                    if !self.seen && self.any_shape {
                        self.own_counts(u);
                    }
                    self.ended = true;
                } else if self.any_shape {
                    self.own_counts(v);
                }
            }
        }
    }

    /// A server's counts in its own shape (see [`UsageCounter::any_shape`]): Ollama's and
    /// llama.cpp's beside the reply, Gemini's `usageMetadata` (cumulative in a stream: the
    /// last one counts), Bedrock's `usage` in its own names (twelfth session's black-box
    /// review: neither was charged, and a passthrough call of theirs cost no budget).
    fn own_counts(&mut self, v: &Value) {
        if let Some(m) = v.get("usageMetadata").filter(|m| m.is_object()) {
            self.set_model(v.get("modelVersion"));
            let n = |k: &str| m.count(k);
            if n("promptTokenCount").is_some() || n("candidatesTokenCount").is_some() {
                let cached = n("cachedContentTokenCount").unwrap_or(0);
                let input = n("promptTokenCount")
                    .unwrap_or(0)
                    .saturating_add(n("toolUsePromptTokenCount").unwrap_or(0))
                    .min(MAX_USAGE_TOKENS);
                self.seen = true;
                self.ended = true;
                self.output_counted |= n("candidatesTokenCount").is_some();
                self.usage = Usage {
                    input: input.saturating_sub(cached),
                    output: n("candidatesTokenCount")
                        .unwrap_or(0)
                        .saturating_add(n("thoughtsTokenCount").unwrap_or(0))
                        .min(MAX_USAGE_TOKENS),
                    cache_write: 0,
                    cache_read: cached.min(input),
                };
            }
            return;
        }
        if v.count("inputTokens").is_some() || v.count("outputTokens").is_some() {
            // Bedrock (`usage` of Converse, InvokeModel's own `amazon-bedrock-invocationMetrics`
            // aside): input excludes the cache's tokens there.
            self.seen = true;
            self.ended = true;
            self.output_counted |= v.count("outputTokens").is_some();
            self.usage = Usage {
                input: v.count("inputTokens").unwrap_or(0),
                output: v.count("outputTokens").unwrap_or(0),
                cache_write: v.count("cacheWriteInputTokens").unwrap_or(0),
                cache_read: v.count("cacheReadInputTokens").unwrap_or(0),
            };
            return;
        }
        for (input, output) in OWN_COUNTS {
            let (i, o) = (v.count(input), v.count(output));
            if i.is_some() || o.is_some() {
                self.seen = true;
                self.ended = true;
                self.output_counted |= o.is_some();
                self.usage = Usage {
                    input: i.unwrap_or(0),
                    output: o.unwrap_or(0),
                    ..Usage::default()
                };
                return;
            }
        }
    }

    fn set_model(&mut self, m: Option<&Value>) {
        if let Some(m) = m.and_then(Value::as_str) {
            self.model = Some(m.to_owned());
        }
    }

    /// `delta`: Anthropic's `message_delta`, whose counts replace only the fields it carries.
    /// A `usage` that names none of its dialect's counts (`null`, as OpenAI's Responses API
    /// answers a `background` request while it is queued, or `{}`) reports nothing: the
    /// request is charged as one without usage, not as zero tokens (eighth red-team review).
    fn usage_object(&mut self, u: &impl Counts, delta: bool) {
        let n = |k: &str| u.count(k);
        let names: &[&str] = match self.api {
            Api::Anthropic => &[
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ],
            Api::OpenAi => &[
                "prompt_tokens",
                "input_tokens",
                "completion_tokens",
                "output_tokens",
            ],
        };
        if !names.iter().any(|k| n(k).is_some()) {
            return;
        }
        self.seen = true;
        self.output_counted |= match self.api {
            Api::Anthropic => n("output_tokens").is_some(),
            Api::OpenAi => n("completion_tokens").is_some() || n("output_tokens").is_some(),
        };
        match self.api {
            Api::Anthropic => {
                let set = |field: &mut u64, k: &str| match n(k) {
                    Some(v) => *field = v,
                    None if !delta => *field = 0,
                    None => {}
                };
                set(&mut self.usage.input, "input_tokens");
                set(&mut self.usage.output, "output_tokens");
                set(&mut self.usage.cache_write, "cache_creation_input_tokens");
                set(&mut self.usage.cache_read, "cache_read_input_tokens");
            }
            Api::OpenAi => {
                // Chat completions: prompt/completion; Responses and embeddings: input/output.
                let input = n("prompt_tokens")
                    .or_else(|| n("input_tokens"))
                    .unwrap_or(0);
                let output = n("completion_tokens")
                    .or_else(|| n("output_tokens"))
                    .unwrap_or(0);
                let cached = u.cached().unwrap_or(0).min(input);
                self.usage = Usage {
                    input: input - cached,
                    output,
                    cache_write: 0,
                    cache_read: cached,
                };
            }
        }
    }

    /// Whether a usage report named an output count (`output_tokens`, `completion_tokens`,
    /// a server's own). A report that names only its input (`{"input_tokens": 5}`, an
    /// `"output_tokens": null`) leaves the output uncounted, which the caller charges as an
    /// estimate, not as nothing (seventeenth session's red-team review: such responses were
    /// generated for free).
    pub fn output_counted(&self) -> bool {
        self.output_counted
    }

    /// The usage so far, if any usage was seen.
    pub fn usage(&self) -> Option<Usage> {
        self.seen.then_some(self.usage)
    }

    /// The model the response names, if it named one.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The final usage and response model; `None` if the response carried no usage.
    pub fn finish(self) -> Option<(Usage, Option<String>)> {
        self.seen.then_some((self.usage, self.model))
    }

    /// Whether the stream reached its end: its final usage (Anthropic `message_delta`, OpenAI's
    /// usage chunk, Responses' `response.completed`), or OpenAI's `[DONE]` (a stream that did not
    /// ask for usage). A stream that did not was cut: see [`Self::cut`].
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The output tokens the stream's deltas amount to: a token per [`BYTES_PER_TOKEN`] bytes
    /// of generated content (rounded up), and at least one per delta event.
    pub fn output_estimate(&self) -> u64 {
        self.generated.div_ceil(BYTES_PER_TOKEN).max(self.deltas)
    }

    /// The stream ended before its final usage (the client went away, the connection broke,
    /// an error event — a response guard's refusal — ended it): the provider billed what it
    /// generated, of which what was delivered is a lower bound, so the output count becomes
    /// the larger of the reported one (`message_start` says 1) and [`Self::output_estimate`].
    /// `input` is the request's estimated input, counted when the stream reported no usage at
    /// all (OpenAI's comes in its last chunk). Whether the usage now holds an estimate; a
    /// stream that delivered nothing is left as it was.
    pub fn cut(&mut self, input: u64) -> bool {
        self.cut_capped(input, None)
    }

    /// [`Self::output_estimate`] for a request whose output is capped at `cap` tokens (its
    /// `max_tokens`, times its completions): the provider generated no more than that, so the
    /// estimate from delivered bytes (which leans high) is at most `cap` (red-team rt4: a cut
    /// stream of `max_tokens: 1000` was charged 1,200). Unless what was delivered cannot fit
    /// in `cap` tokens — more deltas than `cap`, or more than [`MAX_BYTES_PER_TOKEN`] bytes a
    /// token — which shows an upstream that ignored the cap: then the whole estimate.
    pub fn output_estimate_capped(&self, cap: Option<u64>) -> u64 {
        let estimate = self.output_estimate();
        match cap {
            Some(c)
                if self.deltas <= c && self.generated <= c.saturating_mul(MAX_BYTES_PER_TOKEN) =>
            {
                estimate.min(c)
            }
            _ => estimate,
        }
    }

    /// [`Self::cut`] for a request whose output is capped at `cap` tokens: the output estimate
    /// is [`Self::output_estimate_capped`].
    pub fn cut_capped(&mut self, input: u64, cap: Option<u64>) -> bool {
        if self.any_shape && !self.seen {
            return false;
        }
        let output = self.output_estimate_capped(cap);
        if output <= self.usage.output {
            return false;
        }
        if !self.seen {
            self.usage.input = input;
            self.seen = true;
        }
        self.usage.output = output;
        true
    }
}

/// The counts of a `usage` object, read from a parsed value or by the scanner.
trait Counts {
    /// A top-level field that is a non-negative integer.
    fn count(&self, key: &str) -> Option<u64>;
    /// `prompt_tokens_details.cached_tokens`, else `input_tokens_details.cached_tokens`.
    fn cached(&self) -> Option<u64>;
}

impl Counts for Value {
    fn count(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(value_count)
    }

    fn cached(&self) -> Option<u64> {
        DETAILS
            .iter()
            .find_map(|k| value_count(self.get(*k)?.get("cached_tokens")?))
    }
}

/// [`token_count`] of a parsed number, without writing it out again.
fn value_count(v: &Value) -> Option<u64> {
    let n = v.as_u64().or_else(|| {
        let f = v.as_f64().filter(|f| *f >= 0.0)?;
        Some(f.ceil() as u64)
    })?;
    Some(n.min(MAX_USAGE_TOKENS))
}

/// A count as a JSON number writes it: a whole number, or one with a fraction or an exponent
/// (`700.5`, `1e3`), rounded up — a server that writes a count so is still charged it
/// (regression round: one such count was charged 0). Negative, not a number: no count. At
/// most [`MAX_USAGE_TOKENS`].
fn token_count(number: &str) -> Option<u64> {
    let n = number.parse::<u64>().ok().or_else(|| {
        // A count past what a float holds (`7e400`), or past `u64::MAX`, is as large as a
        // count gets.
        let f = number
            .parse::<f64>()
            .ok()
            .filter(|f| !f.is_nan() && *f >= 0.0)?;
        Some(f.ceil() as u64)
    })?;
    Some(n.min(MAX_USAGE_TOKENS))
}

/// Input and output counts servers report outside a `usage` object: Ollama's, llama.cpp's.
const OWN_COUNTS: [(&str, &str); 2] = [
    ("prompt_eval_count", "eval_count"),
    ("tokens_evaluated", "tokens_predicted"),
];

/// Whether `text` names one of [`OWN_COUNTS`]' fields (then it is worth parsing).
fn names_own_counts(text: &[u8]) -> bool {
    let [_, _, own @ ..] = finders();
    own.iter().any(|f| f.find(text).is_some())
}

/// The searchers events and lines are checked with, built once: a searcher made per call
/// costs more than the search of a short event. `delta`, `"usage"`, then
/// [`names_own_counts`]'s (`eval_count"` also finds `prompt_eval_count"`).
fn finders() -> &'static [Finder<'static>; 6] {
    static FINDERS: OnceLock<[Finder<'static>; 6]> = OnceLock::new();
    FINDERS.get_or_init(|| {
        [
            Finder::new(b"delta"),
            Finder::new(b"\"usage\""),
            Finder::new(b"eval_count\""),
            Finder::new(b"tokens_predicted\""),
            Finder::new(b"tokens_evaluated\""),
            Finder::new(b"\"usageMetadata\""),
        ]
    })
}

/// The fields of a `usage` object that [`UsageCounter`] reads.
const COUNTS: [&str; 6] = [
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "prompt_tokens",
    "completion_tokens",
];
const DETAILS: [&str; 2] = ["prompt_tokens_details", "input_tokens_details"];

/// A `usage` object read with the scanner, skipping what is not counted: no `Value` built
/// for a JSON body's usage. Same answers as [`Value`]'s (`as_u64`, the last of duplicate
/// keys); a value that is not an object has no counts.
#[derive(Debug, Default)]
struct Scanned {
    counts: [Option<u64>; COUNTS.len()],
    cached: [Option<u64>; DETAILS.len()],
}

impl Scanned {
    /// Reads the value at `sc`, validating all of it as [`Scanner::skip`] does; on an error
    /// nothing is read (the caller keeps what it had).
    fn read(sc: &mut Scanner<'_>) -> Result<Self, crate::json::JsonError> {
        let mut out = Scanned::default();
        if sc.peek() != Some(b'{') {
            sc.skip()?;
            return Ok(out);
        }
        let b = sc.bytes();
        let int = |sc: &mut Scanner<'_>| -> Result<Option<u64>, crate::json::JsonError> {
            let r = sc.skip()?;
            Ok(std::str::from_utf8(&b[r]).ok().and_then(token_count))
        };
        sc.object(|sc, key| {
            if let Some(i) = COUNTS.iter().position(|k| sc.key_is(&key, k)) {
                out.counts[i] = int(sc)?;
            } else if let Some(i) = DETAILS.iter().position(|k| sc.key_is(&key, k)) {
                out.cached[i] = None;
                if sc.peek() == Some(b'{') {
                    sc.object(|sc, key| {
                        if sc.key_is(&key, "cached_tokens") {
                            out.cached[i] = int(sc)?;
                            Ok(())
                        } else {
                            sc.skip().map(drop)
                        }
                    })?;
                } else {
                    sc.skip()?;
                }
            } else {
                sc.skip()?;
            }
            Ok(())
        })?;
        Ok(out)
    }
}

impl Counts for Scanned {
    fn count(&self, key: &str) -> Option<u64> {
        COUNTS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| self.counts[i])
    }

    fn cached(&self) -> Option<u64> {
        self.cached.iter().find_map(|c| *c)
    }
}

/// The output-token cap a request asks for: the top-level `max_tokens` (Anthropic, OpenAI
/// chat), `max_completion_tokens` (OpenAI chat) or `max_output_tokens` (Responses) — what a
/// limiter holds while the request is in flight. `None` for none, or a body that is not a
/// JSON object.
pub fn max_tokens(body: &[u8]) -> Option<u64> {
    request_shape(body).max_tokens
}

/// What a request body asks of the response, read in one pass over its top-level keys: its
/// output cap ([`max_tokens`]), how many completions (`n`, `best_of`), whether it streams
/// (`"stream": true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestShape {
    /// The largest top-level output cap, read as lenient servers read it.
    pub max_tokens: Option<u64>,
    /// The completions asked for (`n`, `best_of`), at least 1.
    pub choices: u64,
    /// A top-level `"stream": true`.
    pub stream: bool,
}

impl Default for RequestShape {
    /// No cap, one completion, no stream.
    fn default() -> Self {
        Self {
            max_tokens: None,
            choices: 1,
            stream: false,
        }
    }
}

impl RequestShape {
    /// Reads the value of the top-level `key` (the cursor is at it) when it is part of the
    /// shape: the largest cap, the largest count of completions (at most [`MAX_CHOICES`]), the
    /// last `stream`. `None`, the cursor untouched, for any other key. The one reading of these
    /// keys, for [`request_shape`] and for the guard's extractor alike.
    pub(crate) fn read_key(
        &mut self,
        sc: &mut Scanner<'_>,
        key: &crate::json::Str,
    ) -> Option<Result<(), crate::json::JsonError>> {
        let which = if is_output_cap(sc, key) {
            0
        } else if ["n", "best_of"].iter().any(|k| sc.key_matches(key, k)) {
            1
        } else if sc.key_matches(key, "stream") {
            2
        } else {
            return None;
        };
        Some(sc.skip().map(|range| {
            let value = &sc.bytes()[range];
            match which {
                0 => self.max_tokens = larger_cap(self.max_tokens, value),
                1 => {
                    let n = lenient_count(value).map_or(1, |n| n.clamp(1, MAX_CHOICES));
                    self.choices = self.choices.max(n);
                }
                _ => self.stream = value == b"true",
            }
        }))
    }
}

/// Reads a request body's [`RequestShape`]: one pass; a body that is not a JSON object asks
/// for no cap, one completion and no stream.
pub fn request_shape(body: &[u8]) -> RequestShape {
    let mut shape = RequestShape::default();
    let Ok(mut sc) = Scanner::new(body) else {
        return shape;
    };
    if sc.peek() != Some(b'{') {
        return shape;
    }
    let read = sc.object(|sc, key| shape.read_key(sc, &key).unwrap_or_else(|| sc.skip_fast()));
    if read.is_err() {
        // An invalid body names no cap (as before); what was read of the others stands.
        shape.max_tokens = None;
    }
    shape
}

/// How many prompts a legacy completions body sends at once: a top-level `prompt` list of
/// strings (or of token lists) is that many prompts, each answered with `n` completions
/// (twelfth session's black-box review: fifty prompts held the estimate of one, and a $1
/// budget was charged $45). A string, one token list or anything else is one.
pub fn prompt_count(body: &[u8]) -> u64 {
    let mut count = 1u64;
    let _ = top_level_keys(body, |sc, key| {
        if sc.key_matches(&key, "prompt") && sc.peek() == Some(b'[') {
            let mut prompts = 0u64;
            sc.array(|sc, _| {
                if matches!(sc.peek(), Some(b'"' | b'[')) {
                    prompts += 1;
                }
                sc.skip().map(drop)
            })?;
            count = count.max(prompts).min(MAX_CHOICES);
            Ok(())
        } else {
            sc.skip_fast()
        }
    });
    count
}

/// Reads the top-level keys of a JSON object body with `f` (the cursor at each value). `Err`
/// for a body that is no JSON object, or the error `f` or the scanner met; what `f` read
/// before it stands.
fn top_level_keys(
    body: &[u8],
    f: impl FnMut(&mut Scanner<'_>, crate::json::Str) -> Result<(), crate::json::JsonError>,
) -> Result<(), crate::json::JsonError> {
    let mut sc = Scanner::new(body)?;
    if sc.peek() != Some(b'{') {
        return Err(crate::json::JsonError::Shape("not a JSON object".into()));
    }
    sc.object(f)
}

/// The candidates a Gemini request asks for: `generationConfig.candidateCount` (Vertex's
/// `generation_config.candidate_count`), read as lenient servers read it; 1 when it names
/// none, at most [`MAX_CHOICES`].
pub fn candidate_count(body: &[u8]) -> u64 {
    let mut count = 1u64;
    let _ = top_level_keys(body, |sc, key| {
        if (sc.key_matches(&key, "generationconfig") || sc.key_matches(&key, "generation_config"))
            && sc.peek() == Some(b'{')
        {
            sc.object(|sc, key| {
                if sc.key_matches(&key, "candidatecount") || sc.key_matches(&key, "candidate_count")
                {
                    let r = sc.skip()?;
                    let n = lenient_count(&body[r]).unwrap_or(1);
                    count = count.max(n.clamp(1, MAX_CHOICES));
                    Ok(())
                } else {
                    sc.skip_fast()
                }
            })
        } else {
            sc.skip_fast()
        }
    });
    count
}

/// Whether a Gemini response (an object, or a list of chunks) has a candidate at or past the
/// `n` the request asked for, or two with one `index` in one chunk: a client that reads
/// `candidates[0]` of each chunk would join texts agw reads apart (second review round).
pub fn unasked_candidates(body: &[u8], n: u64) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let chunks: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    chunks.iter().any(|c| {
        c.get("candidates")
            .and_then(Value::as_array)
            .and_then(|list| unasked_index(list, Some(n)))
            .is_some()
    })
}

/// What is wrong with the indexes of one event's chat choices or Gemini candidates, for a
/// client that reads the first of each event: one at or past the `n` asked for, or two
/// alike (an entry without an `index` counts as its position; one that is no whole number
/// as past any `n`). `None` when nothing is.
pub(crate) fn unasked_index(list: &[Value], n: Option<u64>) -> Option<&'static str> {
    let mut indexes: Vec<u64> = list
        .iter()
        .enumerate()
        .map(|(pos, c)| {
            c.get("index").map_or(pos as u64, |i| {
                crate::guard::leaves::whole_index(i).unwrap_or(u64::MAX)
            })
        })
        .collect();
    if n.is_some_and(|n| indexes.iter().any(|&i| i >= n)) {
        return Some("a choice the request did not ask for");
    }
    indexes.sort_unstable();
    indexes
        .windows(2)
        .any(|w| w[0] == w[1])
        .then_some("two choices with one index in one event")
}

/// The input tokens a request body will cost, estimated before it is sent: a token per four
/// bytes of its text, binary data left out — base64 sources (`"data":"…"`, as Anthropic sends
/// images and PDFs) and `data:` URLs (`…;base64,…`, OpenAI's inline images), which providers
/// bill by size in pixels or pages, not by bytes. What limits hold while a request is in
/// flight; the response's usage replaces it.
pub fn input_estimate(body: &[u8]) -> u64 {
    // One pass for `base64`, which both forms name: Anthropic's `"type":"base64"` beside the
    // source's `"data"` (after it, as clients write it, or before it), OpenAI's
    // `data:…;base64,`. What is skipped must be base64 to its closing quote: text that only
    // names `;base64,` is counted.
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\');
    let blob = |start: usize| -> Option<usize> {
        let len = body[start..].iter().position(|b| !b64(b))?;
        (body[start + len] == b'"').then_some(len)
    };
    let mut binary = 0usize;
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&body[from..], b"base64") {
        let hit = from + at;
        let end = hit + b"base64".len();
        let url = body.get(end) == Some(&b',') && hit > 0 && body[hit - 1] == b';';
        let after = if url {
            Some(end + 1)
        } else {
            data_string(&body[end..(end + 512).min(body.len())]).map(|k| end + k)
        };
        if let Some(start) = after {
            let len = blob(start).unwrap_or(0);
            binary += len;
            from = (start + len).max(end);
            continue;
        }
        // `"data":"…"` before `"type":"base64"` in the same object: it ends just before.
        if let Some(k) = memchr::memmem::rfind(&body[from..hit], b"\"data\"") {
            let key = from + k + b"\"data\"".len();
            if let Some(v) = data_string(&body[key - b"\"data\"".len()..hit]) {
                let start = key - b"\"data\"".len() + v;
                if let Some(len) = blob(start)
                    && start + len < hit
                    && hit - (start + len) < 256
                {
                    binary += len;
                }
            }
        }
        from = end;
    }
    (body.len().saturating_sub(binary) as u64).div_ceil(4)
}

/// Where the string value of a `"data"` key starts in `near`, if one does.
fn data_string(near: &[u8]) -> Option<usize> {
    let at = memchr::memmem::find(near, b"\"data\"")? + b"\"data\"".len();
    let colon = near[at..]
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .map(|k| at + k)
        .filter(|&k| near[k] == b':')?;
    let quote = near[colon + 1..]
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .map(|k| colon + 1 + k)
        .filter(|&k| near[k] == b'"')?;
    Some(quote + 1)
}

/// Output a request asks for that carries the response's text in a form no text rule reads
/// (see [`unread_output`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnreadOutput {
    /// Token log probabilities: the response's text again, cut into pieces no rule can read
    /// one at a time.
    pub logprobs: bool,
    /// Spoken audio (OpenAI chat's `modalities: ["audio"]`): the answer again, as sound. Its
    /// transcript is guarded; the audio is not (eighth red-team review).
    pub audio: bool,
    /// Tool-call arguments streamed in pieces (Vertex's `toolConfig.functionCallingConfig.
    /// streamFunctionCallArguments`): each piece in an event of its own, which no tool rule
    /// reads whole (black-box review).
    pub streamed_arguments: bool,
}

/// What output a request body asks for that a response guard cannot read:
///
/// - token log probabilities: a top-level `logprobs` (OpenAI chat `true`, legacy completions
///   a number — `0` included, which still returns the chosen tokens), `top_logprobs` above 0,
///   or an `include` list naming `…logprobs` (Responses' `message.output_text.logprobs`);
/// - audio: `modalities` naming `audio`, or an `audio` output setting (chat completions).
///
/// Keys are compared as a case-insensitive parser compares them. A body that is not a JSON
/// object asks for nothing. A response guard that masks or refuses text cannot let either
/// through.
pub fn unread_output(body: &[u8]) -> UnreadOutput {
    let mut asks = UnreadOutput::default();
    let Ok(mut sc) = Scanner::new(body) else {
        return asks;
    };
    if sc.peek() != Some(b'{') {
        return asks;
    }
    let read = sc.object(|sc, key| {
        let value = |sc: &mut Scanner<'_>| -> Result<&[u8], crate::json::JsonError> {
            let range = sc.skip()?;
            Ok(&body[range])
        };
        let ends_with = |text: &[u8], end: &[u8]| {
            text.len() >= end.len() && text[text.len() - end.len()..].eq_ignore_ascii_case(end)
        };
        if sc.key_matches(&key, "logprobs") {
            let v = value(sc)?;
            asks.logprobs |= !matches!(v, b"null" | b"false");
        } else if [
            "top_logprobs",
            "n_probs",
            "top_n_tokens",
            "return_logprob",
            "return_text_in_logprobs",
            "top_logprobs_num",
            "return_tokens",
            "return_token_ids",
            "responselogprobs",
            "response_logprobs",
        ]
        .iter()
        .any(|k| sc.key_matches(&key, k))
        {
            // llama.cpp's `n_probs` and `return_tokens`, TGI's `top_n_tokens`, SGLang's
            // `return_logprob`, vLLM's `return_token_ids`: token ids are text again through
            // an open model's public tokenizer (regression rounds).
            let v = value(sc)?;
            asks.logprobs |= !matches!(v, b"null" | b"0" | b"false");
        } else if sc.key_matches(&key, "parameters") && sc.peek() == Some(b'{') {
            // TGI's `/generate`: `details` lists each generated token's text.
            let inner = value(sc)?;
            let nested = unread_output(inner);
            asks.logprobs |= nested.logprobs || details(inner);
        } else if ["generationconfig", "generation_config", "sampling_params"]
            .iter()
            .any(|k| sc.key_matches(&key, k))
            && sc.peek() == Some(b'{')
        {
            // Gemini's `generationConfig.responseLogprobs` and `logprobs` (Vertex's
            // `generation_config.response_logprobs`), vLLM's `sampling_params.logprobs`
            // (twelfth session's black-box review: forwarded, and the tokens came back
            // unread).
            let nested = unread_output(value(sc)?);
            asks.logprobs |= nested.logprobs;
            asks.audio |= nested.audio;
        } else if sc.key_matches(&key, "audio") {
            let v = value(sc)?;
            asks.audio |= !matches!(v, b"null" | b"false");
        } else if sc.key_matches(&key, "toolconfig") || sc.key_matches(&key, "tool_config") {
            let v = value(sc)?;
            asks.streamed_arguments |= streams_arguments(v);
        } else if sc.key_matches(&key, "modalities") && sc.peek() == Some(b'"') {
            let s = sc.string()?;
            asks.audio |= sc.str_value(&s).trim_ascii().eq_ignore_ascii_case(b"audio");
        } else if (sc.key_matches(&key, "include") || sc.key_matches(&key, "modalities"))
            && sc.peek() == Some(b'[')
        {
            let include = sc.key_matches(&key, "include");
            sc.array(|sc, _| {
                match sc.string_or_none()? {
                    Some(s) => {
                        let text = sc.str_value(&s);
                        if include {
                            asks.logprobs |= ends_with(&text, b"logprobs");
                        } else {
                            asks.audio |= text.trim_ascii().eq_ignore_ascii_case(b"audio");
                        }
                    }
                    None => {
                        sc.skip()?;
                    }
                }
                Ok(())
            })?;
        } else {
            sc.skip_fast()?;
        }
        Ok(())
    });
    // A body that does not parse is not forwarded as JSON a server would read: the request
    // guard refuses it first. What was seen before the error still counts.
    let _ = read;
    asks
}

/// Whether a Gemini `toolConfig` asks for function-call arguments streamed in pieces: a
/// `streamFunctionCallArguments` (any case, or `stream_function_call_arguments`) that is not
/// `false` or `null`, at any depth.
fn streams_arguments(config: &[u8]) -> bool {
    fn walk(
        sc: &mut Scanner<'_>,
        body: &[u8],
        found: &mut bool,
    ) -> Result<(), crate::json::JsonError> {
        match sc.peek() {
            Some(b'{') => sc.object(|sc, key| {
                if sc.key_matches(&key, "streamfunctioncallarguments")
                    || sc.key_matches(&key, "stream_function_call_arguments")
                {
                    let r = sc.skip()?;
                    *found |= !matches!(&body[r], b"null" | b"false");
                    Ok(())
                } else {
                    walk(sc, body, found)
                }
            }),
            Some(b'[') => sc.array(|sc, _| walk(sc, body, found)),
            _ => sc.skip_fast(),
        }
    }
    let Ok(mut sc) = Scanner::new(config) else {
        return false;
    };
    let mut found = false;
    let _ = walk(&mut sc, config, &mut found);
    found
}

/// Whether a TGI `parameters` object asks for `details` (or `decoder_input_details`), which
/// list every generated token's text.
fn details(parameters: &[u8]) -> bool {
    let Ok(mut sc) = Scanner::new(parameters) else {
        return false;
    };
    let mut asks = false;
    let _ = sc.object(|sc, key| {
        if sc.key_matches(&key, "details") || sc.key_matches(&key, "decoder_input_details") {
            let r = sc.skip()?;
            asks |= !matches!(&parameters[r], b"null" | b"false");
            Ok(())
        } else {
            sc.skip_fast()
        }
    });
    asks
}

/// Whether a request body asks for token log probabilities ([`unread_output`]).
pub fn asks_for_logprobs(body: &[u8]) -> bool {
    unread_output(body).logprobs
}

/// Whether a query string asks for token log probabilities (a stored response fetched with
/// `?include[]=message.output_text.logprobs`): `logprobs` anywhere in it, percent-escapes
/// decoded, in any case.
pub fn query_asks_for_logprobs(query: &str) -> bool {
    let plain = crate::route::canonical::escapes_decoded(query.as_bytes());
    plain
        .to_ascii_lowercase()
        .windows(8)
        .any(|w| w == b"logprobs")
}

/// The query parameter, if any, by which a request picks a response format agw does not
/// read: Google's `alt` (`$alt`) other than `json`, `sse` or `media` (a file's bytes), e.g.
/// `alt=proto`, and a JSONP `callback` (`$callback`). Names and values are compared with
/// percent-escapes decoded, in any case; pairs are split at `&` and `;`. Found by the twelfth
/// session's black-box review: the model's answer came back as protocol buffers or a script,
/// which a response guard passes unread.
pub fn query_picks_unread_format(query: &str) -> Option<&'static str> {
    let plain = crate::route::canonical::escapes_decoded(query.as_bytes());
    for pair in plain.split(|&b| b == b'&' || b == b';') {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = name.trim_ascii();
        let name = name.strip_prefix(b"$").unwrap_or(name);
        if name.eq_ignore_ascii_case(b"callback") {
            return Some("callback");
        }
        if name.eq_ignore_ascii_case(b"alt") {
            let value = value.trim_ascii();
            if !["json", "sse", "media"]
                .iter()
                .any(|v| value.eq_ignore_ascii_case(v.as_bytes()))
            {
                return Some("alt");
            }
        }
    }
    None
}

/// Whether `key` names an output-token cap (see [`max_tokens`]).
pub(crate) fn is_output_cap(sc: &Scanner<'_>, key: &crate::json::Str) -> bool {
    [
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens_to_sample",
    ]
    .iter()
    .any(|k| sc.key_matches(key, k))
}

/// The most completions a request is counted as asking for (OpenAI allows 128).
pub const MAX_CHOICES: u64 = 1024;

/// A count or cap as a lenient server reads it: a whole number, a number with a fraction or
/// an exponent (`4e4`, `40000.0`, rounded up), or a string holding one (`"40000"`, as
/// Pydantic-based servers accept). `None` for anything else, or a negative number.
pub(crate) fn lenient_count(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?.trim();
    // A string is decoded first (`"4\u0030000"` is 40000 to the server).
    let decoded;
    let s = if s.starts_with('"') {
        decoded = serde_json::from_str::<String>(s).ok()?;
        decoded.trim()
    } else {
        s
    };
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let f = s.parse::<f64>().ok().filter(|f| *f >= 0.0 && !f.is_nan())?;
    // `as` saturates: 1e30 reads as the largest cap.
    Some(f.ceil() as u64)
}

/// The larger of `found` and the cap whose JSON value is `value` (read as [`lenient_count`]
/// reads it: `4e4`, `40000.0` and `"40000"` are 40000 to the server that reads them).
pub(crate) fn larger_cap(found: Option<u64>, value: &[u8]) -> Option<u64> {
    // (`None` orders below every `Some`.)
    found.max(lenient_count(value))
}

/// Whether a body sent to a path agw has no reading for (a passthrough route) asks a model to
/// generate — Ollama's `/api/chat` and `/api/generate`, a server's own completion endpoint: a
/// JSON object naming a string `model` and a prompt (`messages`, `prompt`, `input` or
/// `contents`). `Some` with its output cap, when it names one: the largest top-level cap
/// ([`max_tokens`]), Ollama's `options.num_predict` (a negative one, "until done", is
/// none), Gemini's `generationConfig.maxOutputTokens`, Bedrock's `inferenceConfig.maxTokens`.
/// `None` for any other body (a file, an image request without a prompt key).
///
/// `model_in_path`: the path names the model (Gemini, Bedrock: [`crate::model::path_model`]),
/// so a prompt alone makes it a generation (twelfth session's black-box review: such calls
/// held nothing while they ran).
pub fn generation_cap(body: &[u8], model_in_path: bool) -> Option<Option<u64>> {
    let (mut model, mut prompt, mut cap) = (false, false, None);
    top_level_keys(body, |sc, key| {
        if sc.key_matches(&key, "model") {
            model |= sc.peek() == Some(b'"');
            sc.skip_fast()
        } else if ["messages", "prompt", "input", "contents"]
            .iter()
            .any(|k| sc.key_matches(&key, k))
        {
            prompt = true;
            sc.skip_fast()
        } else if is_output_cap(sc, &key) {
            let range = sc.skip()?;
            cap = larger_cap(cap, &body[range]);
            Ok(())
        } else if [
            "options",
            "generationconfig",
            "generation_config",
            "inferenceconfig",
        ]
        .iter()
        .any(|k| sc.key_matches(&key, k))
            && sc.peek() == Some(b'{')
        {
            sc.object(|sc, key| {
                if [
                    "num_predict",
                    "maxoutputtokens",
                    "max_output_tokens",
                    "maxtokens",
                ]
                .iter()
                .any(|k| sc.key_matches(&key, k))
                {
                    let range = sc.skip()?;
                    cap = larger_cap(cap, &body[range]);
                    Ok(())
                } else {
                    sc.skip_fast()
                }
            })
        } else {
            sc.skip_fast()
        }
    })
    .ok()?;
    ((model || model_in_path) && prompt).then_some(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenth red-team review: a generation on a passthrough path (Ollama's `/api/chat`) held
    /// nothing in flight. What looks like one is told apart from other bodies, with its cap.
    #[test]
    fn generations_on_passthrough_paths_are_told_apart_with_their_cap() {
        let cases: [(&str, Option<Option<u64>>); 8] = [
            (r#"{"model":"llama3","messages":[]}"#, Some(None)),
            (
                r#"{"model":"llama3","prompt":"hi","options":{"num_predict":500}}"#,
                Some(Some(500)),
            ),
            (
                r#"{"model":"llama3","prompt":"hi","options":{"num_predict":-1}}"#,
                Some(None),
            ),
            (
                r#"{"prompt":"hi","model":"m","max_tokens":"900"}"#,
                Some(Some(900)),
            ),
            (
                r#"{"model":"m","contents":[],"max_output_tokens":7}"#,
                Some(Some(7)),
            ),
            (r#"{"model":"m","file":"x"}"#, None),
            (r#"{"messages":[]}"#, None),
            ("not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(generation_cap(body.as_bytes(), false), want, "{body}");
        }
        // The model in the path (Gemini, Bedrock), the cap in their own settings.
        for (body, want) in [
            (
                r#"{"contents":[],"generationConfig":{"maxOutputTokens":800}}"#,
                Some(Some(800)),
            ),
            (
                r#"{"messages":[],"inferenceConfig":{"maxTokens":300}}"#,
                Some(Some(300)),
            ),
            (r#"{"contents":[]}"#, Some(None)),
            (r#"{"file":"x"}"#, None),
        ] {
            assert_eq!(generation_cap(body.as_bytes(), true), want, "{body}");
            assert_eq!(generation_cap(body.as_bytes(), false), None, "{body}");
        }
    }

    /// A cap or count as lenient servers read it (tenth red-team review): `4e4`, `40000.0`
    /// and `"40000"` are 40000; legacy completions' `max_tokens_to_sample` is a cap; `n` and
    /// `best_of` ask for that many completions, at least one, at most `MAX_CHOICES`.
    #[test]
    fn caps_and_choices_are_read_as_lenient_servers_read_them() {
        for cap in [
            "40000",
            "4e4",
            "40000.0",
            "\"40000\"",
            " \" 40000 \" ",
            "39999.5",
            r#""4\u0030000""#,
        ] {
            let body = format!(r#"{{"model":"m","max_tokens":{cap}}}"#);
            assert_eq!(max_tokens(body.as_bytes()), Some(40000), "{cap}");
        }
        for cap in ["-1", "null", "true", "\"lots\"", "[1]", "-4e4"] {
            let body = format!(r#"{{"model":"m","max_tokens":{cap}}}"#);
            assert_eq!(max_tokens(body.as_bytes()), None, "{cap}");
        }
        assert_eq!(max_tokens(br#"{"max_tokens":1e30}"#), Some(u64::MAX));
        assert_eq!(
            max_tokens(br#"{"prompt":"x","max_tokens_to_sample":9000}"#),
            Some(9000)
        );
        assert_eq!(request_shape(br#"{"model":"m"}"#).choices, 1);
        assert_eq!(request_shape(br#"{"n":8}"#).choices, 8);
        assert_eq!(request_shape(br#"{"n":2,"best_of":"5"}"#).choices, 5);
        assert_eq!(request_shape(br#"{"n":0}"#).choices, 1);
        for (body, prompts) in [
            (r#"{"model":"m","prompt":["a","b","c"]}"#, 3),
            (r#"{"prompt":[[1,2],[3]],"n":2}"#, 2),
            (r#"{"prompt":[1,2,3]}"#, 1),
            (r#"{"prompt":"one"}"#, 1),
            (r#"{"prompt":[]}"#, 1),
            (r#"{"messages":[{"role":"user","content":"x"}]}"#, 1),
            ("not json", 1),
        ] {
            assert_eq!(prompt_count(body.as_bytes()), prompts, "{body}");
        }
        assert_eq!(request_shape(br#"{"n":"1\u0032"}"#).choices, 12);
        assert_eq!(request_shape(br#"{"n":1e9}"#).choices, MAX_CHOICES);
        assert_eq!(
            request_shape(br#"{"messages":[{"n":99}]}"#).choices,
            1,
            "top level only"
        );
        assert_eq!(request_shape(b"not json").choices, 1);
    }

    #[test]
    fn input_estimates_leave_binary_data_out() {
        let text = "x".repeat(4000);
        let image = "A".repeat(400_000);
        let plain = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let with_image = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{image}"}}}},{{"type":"text","text":"{text}"}}]}}]}}"#
        );
        let with_url = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}},{{"type":"text","text":"{text}"}}]}}]}}"#
        );
        let p = input_estimate(plain.as_bytes());
        assert!((1000..1100).contains(&p), "{p}");
        let spaced = with_image.replace(r#""data":"#, r#""data": "#);
        // The data before the type, as a client may order the keys.
        let data_first = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image","source":{{"data":"{image}","media_type":"image/png","type":"base64"}}}},{{"type":"text","text":"{text}"}}]}}]}}"#
        );
        for body in [with_image, with_url, spaced, data_first] {
            let e = input_estimate(body.as_bytes());
            assert!((1000..1200).contains(&e), "{e}");
        }
        assert_eq!(input_estimate(b""), 0);
        // Text that names `;base64,` is still text.
        let words = "x ".repeat(2000);
        let hidden = format!(r#"{{"messages":[{{"role":"user","content":";base64,{words}"}}]}}"#);
        assert!(input_estimate(hidden.as_bytes()) >= 1000);
    }

    #[test]
    fn requests_for_log_probabilities_are_recognised() {
        for (body, asks) in [
            (r#"{"model":"m","logprobs":true}"#, true),
            (
                r#"{"model":"m","logprobs":false,"top_logprobs":null}"#,
                false,
            ),
            (r#"{"model":"m","logprobs":null}"#, false),
            // Legacy completions: a count; 0 still returns the chosen tokens.
            (r#"{"prompt":"x","logprobs":0}"#, true),
            (r#"{"prompt":"x","logprobs":5}"#, true),
            (r#"{"top_logprobs":3}"#, true),
            (r#"{"top_logprobs":0}"#, false),
            (
                r#"{"input":"x","include":["message.output_text.logprobs"]}"#,
                true,
            ),
            (
                r#"{"input":"x","include":["reasoning.encrypted_content"]}"#,
                false,
            ),
            // As a case-insensitive parser reads keys, escapes decoded.
            (r#"{"LogProbs":true}"#, true),
            (r#"{"log\u0070robs":true}"#, true),
            (
                r#"{"messages":[{"role":"user","content":"logprobs: true"}]}"#,
                false,
            ),
            (r#"{"metadata":{"logprobs":true}}"#, false),
            (
                r#"{"contents":[],"generationConfig":{"responseLogprobs":true,"logprobs":5}}"#,
                true,
            ),
            (r#"{"generationConfig":{"responseLogprobs":false}}"#, false),
            (r#"{"generation_config":{"response_logprobs":true}}"#, true),
            (r#"{"generationConfig":{"logprobs":3}}"#, true),
            (r#"{"sampling_params":{"logprobs":1}}"#, true),
            (r#"{"generationConfig":{"temperature":0}}"#, false),
            // llama.cpp, TGI.
            (r#"{"prompt":"x","n_probs":5}"#, true),
            (r#"{"prompt":"x","n_probs":0}"#, false),
            (r#"{"text":"x","return_logprob":true}"#, true),
            (r#"{"prompt":"x","return_tokens":true}"#, true),
            (r#"{"messages":[],"return_token_ids":true}"#, true),
            (r#"{"messages":[],"return_token_ids":false}"#, false),
            (r#"{"inputs":"x","parameters":{"details":true}}"#, true),
            (r#"{"inputs":"x","parameters":{"top_n_tokens":3}}"#, true),
            (
                r#"{"inputs":"x","parameters":{"details":false,"max_new_tokens":9}}"#,
                false,
            ),
            ("[1,2]", false),
            ("not json", false),
        ] {
            assert_eq!(asks_for_logprobs(body.as_bytes()), asks, "{body}");
        }
        for (query, asks) in [
            ("include[]=message.output_text.logprobs", true),
            ("include%5B%5D=message.output_text.LOG%70robs", true),
            ("include[]=reasoning.encrypted_content&limit=5", false),
        ] {
            assert_eq!(query_asks_for_logprobs(query), asks, "{query}");
        }
    }

    #[test]
    fn queries_that_pick_a_format_agw_does_not_read() {
        for (query, picks) in [
            ("alt=proto", Some("alt")),
            ("$alt=proto", Some("alt")),
            ("%24alt=PROTO", Some("alt")),
            ("key=x;alt=proto", Some("alt")),
            ("al%74=proto", Some("alt")),
            ("alt", Some("alt")),
            ("callback=cb", Some("callback")),
            ("$callback=cb", Some("callback")),
            ("alt=sse", None),
            ("alt=json&x=1", None),
            ("ALT=SSE", None),
            ("alt=media", None),
            ("beta=true", None),
            ("alternate=proto", None),
            ("", None),
        ] {
            assert_eq!(query_picks_unread_format(query), picks, "{query}");
        }
    }

    #[test]
    fn audio_output_is_asked_for_by_modalities_or_settings() {
        for (body, audio) in [
            (
                r#"{"modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"}}"#,
                true,
            ),
            (r#"{"Modalities":["AUDIO"]}"#, true),
            (r#"{"audio":{"voice":"alloy"}}"#, true),
            (r#"{"modalities":["text"],"audio":null}"#, false),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}"#,
                false,
            ),
            (r#"{"metadata":{"modalities":["audio"]}}"#, false),
            (r#"{"modalities":"audio"}"#, true),
            (r#"{"modalities":["audio "]}"#, true),
        ] {
            let asked = unread_output(body.as_bytes());
            assert_eq!(asked.audio, audio, "{body}");
            assert!(!asked.logprobs, "{body}");
        }
    }
    use crate::stream::SseDecoder;

    fn u(input: u64, output: u64, cache_write: u64, cache_read: u64) -> Usage {
        Usage {
            input,
            output,
            cache_write,
            cache_read,
        }
    }

    /// Feeds `stream` through the SSE decoder at every split size and checks one result.
    fn stream_at_every_split(api: Api, stream: &str) -> (Usage, Option<String>) {
        let mut first = None;
        for size in 1..=stream.len() {
            let mut dec = SseDecoder::new(1 << 20);
            let mut counter = UsageCounter::new(api);
            let mut events = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                dec.push(chunk, &mut events).unwrap();
                for e in events.drain(..) {
                    counter.event(&e);
                }
            }
            if let Some(e) = dec.finish() {
                counter.event(&e);
            }
            let got = counter.finish().expect("usage");
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "split {size}"),
            }
        }
        first.unwrap()
    }

    #[test]
    fn anthropic_stream_with_cache_tokens() {
        let s = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":4000,\"output_tokens\":1}}}\r\n\r\n\
                 event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"the usage is \\\"usage\\\"\"}}\r\n\r\n\
                 event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":77}}\r\n\r\n\
                 event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        let (usage, model) = stream_at_every_split(Api::Anthropic, s);
        assert_eq!(usage, u(12, 77, 300, 4000));
        assert_eq!(model.as_deref(), Some("claude-sonnet-4-5"));
    }

    /// Found by the audit: a stream the client left early was charged what `message_start`
    /// said (1 output token), however much it had delivered; then one token a delta, however
    /// long the delta (security review: a stream cut just before its `message_delta` had its
    /// output nearly free).
    #[test]
    fn a_cut_stream_counts_the_output_it_delivered() {
        let start = b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
        let long = format!(
            "data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            "word ".repeat(60)
        );
        let short = b"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n";
        let mut c = UsageCounter::new(Api::Anthropic);
        c.event(start);
        for _ in 0..7 {
            c.event(long.as_bytes());
        }
        assert!(!c.ended());
        assert_eq!(c.usage(), Some(u(5, 1, 0, 0)));
        assert!(c.cut(999));
        // 7 × 300 bytes, a token per 3; the reported input stands.
        assert_eq!(c.usage(), Some(u(5, 700, 0, 0)));
        // Short deltas: a token each at least.
        let mut c = UsageCounter::new(Api::Anthropic);
        c.event(start);
        for _ in 0..7 {
            c.event(short);
        }
        assert!(c.cut(999));
        assert_eq!(c.usage(), Some(u(5, 7, 0, 0)));
        // A larger reported count stands; nothing delivered, nothing added.
        let mut c = UsageCounter::new(Api::Anthropic);
        c.event(b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":30}}}\n\n");
        c.event(short);
        assert!(!c.cut(999));
        assert_eq!(c.usage(), Some(u(5, 30, 0, 0)));
        let mut c = UsageCounter::new(Api::OpenAi);
        assert!(!c.cut(40));
        assert_eq!(c.usage(), None);
        // OpenAI chunks without usage: the request's input estimate, the output delivered.
        for _ in 0..3 {
            c.event(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n");
        }
        c.event(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"0123456789abcdef\"}}]}\n\n",
        );
        assert!(c.cut(40));
        // 19 bytes → 7 tokens, more than the 4 chunks.
        assert_eq!(c.usage(), Some(u(40, 7, 0, 0)));
    }

    /// Red-team rt4: a stream of `max_tokens: 1000` cut after 3,600 bytes of text was charged
    /// 1,200 output tokens, more than the provider could have generated.
    #[test]
    fn a_cut_stream_is_charged_at_most_its_cap() {
        let start = b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
        let delta = format!(
            "data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            "x".repeat(120)
        );
        let counter = || {
            let mut c = UsageCounter::new(Api::Anthropic);
            c.event(start);
            for _ in 0..30 {
                c.event(delta.as_bytes());
            }
            c
        };
        for (cap, output) in [(None, 1200), (Some(1000), 1000), (Some(5000), 1200)] {
            let mut c = counter();
            assert!(c.cut_capped(9, cap), "{cap:?}");
            assert_eq!(c.usage(), Some(u(5, output, 0, 0)), "{cap:?}");
        }
        // 3,600 bytes cannot fit in 100 tokens: the upstream ignored the cap, all is charged.
        let mut c = counter();
        assert!(c.cut_capped(9, Some(100)));
        assert_eq!(c.usage(), Some(u(5, 1200, 0, 0)));
        // A reported count above the cap stands; a cap under it adds nothing.
        let mut c = counter();
        c.event(b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":300}}\n\n");
        assert!(!c.cut_capped(9, Some(240)));
        assert_eq!(c.usage(), Some(u(5, 300, 0, 0)));
    }

    /// A stream's end is its final usage or `[DONE]`; any other last event leaves it cut.
    #[test]
    fn streams_end_with_their_final_usage_or_done() {
        let start = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
        let delta = "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n";
        let end = "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n";
        let stop = "data: {\"type\":\"message_stop\"}\n\n";
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"agw: refused\"}}\n\n";
        let chunk =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\n";
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\n";
        let done = "data: [DONE]\n\n";
        let chat_error = "data: {\"error\":{\"message\":\"agw: refused\",\"type\":\"invalid_request_error\"}}\n\n";
        let created = "data: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\n";
        let text = "data: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n";
        let completed = "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
        let cases: &[(Api, &[&str], bool)] = &[
            (Api::Anthropic, &[start, delta, end, stop], true),
            (Api::Anthropic, &[start, delta, end], true),
            (Api::Anthropic, &[start, delta], false),
            (Api::Anthropic, &[start, delta, error], false),
            (Api::OpenAi, &[chunk, usage, done], true),
            (Api::OpenAi, &[chunk, usage], true),
            (Api::OpenAi, &[chunk, done], true),
            (Api::OpenAi, &[chunk], false),
            (Api::OpenAi, &[chunk, chat_error], false),
            (Api::OpenAi, &[created, text, completed], true),
            (Api::OpenAi, &[created, text], false),
        ];
        for (api, events, ended) in cases {
            let mut c = UsageCounter::new(*api);
            for e in *events {
                c.event(e.as_bytes());
            }
            assert_eq!(c.ended(), *ended, "{events:?}");
        }
    }

    /// The estimate of a cut stream is the same however its bytes were split.
    #[test]
    fn a_cut_stream_counts_alike_at_every_split() {
        let s = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\r\n\r\n\
                 event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a sentence of some length, \\\"quoted\\\"\"}}\r\n\r\n\
                 event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\": \\\"ls -l /tmp\\\"}\"}}\r\n\r\n";
        let mut first = None;
        for size in 1..=s.len() {
            let mut dec = SseDecoder::new(1 << 20);
            let mut c = UsageCounter::new(Api::Anthropic);
            let mut events = Vec::new();
            for chunk in s.as_bytes().chunks(size) {
                dec.push(chunk, &mut events).unwrap();
                for e in events.drain(..) {
                    c.event(&e);
                }
            }
            assert!(!c.ended());
            assert!(c.cut(0), "split {size}");
            let got = c.usage();
            match first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, got, "split {size}"),
            }
        }
        // 37 + 29 bytes of content, escapes as sent: 22 tokens.
        assert_eq!(first.flatten().map(|u| u.output), Some(22));
    }

    #[test]
    fn anthropic_delta_with_cumulative_input_replaces_it() {
        let mut c = UsageCounter::new(Api::Anthropic);
        c.event(b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n");
        c.event(b"data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":9,\"cache_read_input_tokens\":3,\"output_tokens\":20}}\n\n");
        assert_eq!(c.usage(), Some(u(9, 20, 0, 3)));
    }

    #[test]
    fn anthropic_json_body() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"tool_use","input":{"usage":{"input_tokens":999},"model":"fake"}}],"stop_reason":"end_turn","usage":{"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":50,"output_tokens":8}}"#;
        let mut c = UsageCounter::new(Api::Anthropic);
        c.json(body);
        let (usage, model) = c.finish().unwrap();
        assert_eq!(usage, u(20, 8, 0, 50));
        assert_eq!(model.as_deref(), Some("claude-haiku-4-5"));
    }

    #[test]
    fn openai_chat_json_with_cached_tokens() {
        let body = br#"{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":30,"total_tokens":1030,"prompt_tokens_details":{"cached_tokens":600}}}"#;
        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(body);
        let (usage, model) = c.finish().unwrap();
        assert_eq!(usage, u(400, 30, 0, 600));
        assert_eq!(usage.total(), 1030);
        assert_eq!(model.as_deref(), Some("gpt-4o-2024-08-06"));
    }

    #[test]
    fn openai_stream_usage_chunk() {
        let s = "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
                 data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n\
                 data: [DONE]\n\n";
        let (usage, model) = stream_at_every_split(Api::OpenAi, s);
        assert_eq!(usage, u(6, 2, 0, 4));
        assert_eq!(model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn responses_completed_event_and_json() {
        let s = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\n\
                 event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5-2025\",\"usage\":{\"input_tokens\":50,\"input_tokens_details\":{\"cached_tokens\":20},\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":3}}}}\n\n";
        let (usage, model) = stream_at_every_split(Api::OpenAi, s);
        assert_eq!(usage, u(30, 7, 0, 20));
        assert_eq!(model.as_deref(), Some("gpt-5-2025"));

        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(br#"{"id":"r","object":"response","model":"gpt-5","output":[],"usage":{"input_tokens":5,"output_tokens":1}}"#);
        assert_eq!(c.usage(), Some(u(5, 1, 0, 0)));
    }

    #[test]
    fn max_tokens_of_requests() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (
                br#"{"model":"m","max_tokens":1024,"messages":[{"max_tokens":5}]}"#,
                Some(1024),
            ),
            (br#"{"max_completion_tokens": 300 }"#, Some(300)),
            (br#"{"max_output_tokens":7,"input":"x"}"#, Some(7)),
            (br#"{"max_tokens":"many"}"#, None),
            (br#"{"messages":[]}"#, None),
            (b"[1]", None),
            (b"not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(max_tokens(body), *want, "{}", String::from_utf8_lossy(body));
        }
    }

    /// The scanner reads a `usage` object as the parsed `Value` does.
    #[test]
    fn scanned_usage_counts_as_the_value_does() {
        for usage in [
            r#"{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":3}"#,
            r#"{"input_tokens":10,"output_tokens":null,"server_tool_use":{"web_search_requests":1}}"#,
            r#"{"input_tokens":1.0,"output_tokens":-4,"cache_read_input_tokens":"7"}"#,
            r#"{"input_tokens":18446744073709551616,"output_tokens":1e2}"#,
            r#"{"input_tokens":1,"input_tokens":2,"output_tokens":9}"#,
            r#"{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":40}}"#,
            r#"{"prompt_tokens":100,"prompt_tokens_details":{"audio_tokens":1},"input_tokens_details":{"cached_tokens":7}}"#,
            r#"{"input_tokens":100,"input_tokens_details":{"cached_tokens":1000}}"#,
            r#"{"prompt_tokens_details":[1],"input_tokens_details":null}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":{}}"#,
            r#"{}"#,
            r#"null"#,
            r#"[1,2]"#,
        ] {
            let v: Value = serde_json::from_str(usage).unwrap();
            let sc = Scanned::read(&mut Scanner::new(usage.as_bytes()).unwrap()).unwrap();
            for k in COUNTS {
                assert_eq!(sc.count(k), v.count(k), "{k} in {usage}");
            }
            assert_eq!(sc.cached(), v.cached(), "cached in {usage}");
        }
    }

    /// A whole body read with the scanner counts as its parsed `Value` does: only the
    /// top-level `usage`, wherever it stands, the last of duplicates.
    #[test]
    fn json_body_counts_as_the_value_does() {
        let big = "x".repeat(100_000);
        let bodies = [
            format!(r#"{{"content":[{{"type":"text","text":"{big}"}}],"model":"m","usage":{{"input_tokens":3,"output_tokens":4}}}}"#),
            format!(r#"{{"usage":{{"input_tokens":1}},"content":"{big}","usage":{{"output_tokens":2,"extra":{{"a":[1,{{"b":null}}]}}}}}}"#),
            r#"{"content":[{"usage":{"input_tokens":99}}],"usage":{"input_tokens":5,"cache_read_input_tokens":6}}"#.to_owned(),
            r#"{"us\u0061ge":{"input_tokens":7},"model":"a\"b"}"#.to_owned(),
            r#"{"model":"m"}"#.to_owned(),
        ];
        for body in &bodies {
            let mut by_scanner = UsageCounter::new(Api::Anthropic);
            by_scanner.json(body.as_bytes());
            let mut by_value = UsageCounter::new(Api::Anthropic);
            by_value.value(&serde_json::from_str(body).unwrap());
            assert_eq!(by_scanner.finish(), by_value.finish(), "{:.200}", body);
        }
    }

    /// `"usage": null` (a queued background response) or a usage naming no counts reports
    /// nothing, so the request is charged as one without usage rather than as zero tokens.
    #[test]
    fn a_usage_without_counts_reports_nothing() {
        for api in [Api::Anthropic, Api::OpenAi] {
            for body in [
                r#"{"id":"resp_1","status":"queued","usage":null,"model":"gpt-5"}"#,
                r#"{"usage":{},"model":"m"}"#,
                r#"{"usage":{"total_tokens":"x"},"model":"m"}"#,
            ] {
                let mut c = UsageCounter::new(api);
                c.json(body.as_bytes());
                assert_eq!(c.usage(), None, "{api:?} {body}");
                let mut c = UsageCounter::new(api);
                c.value(&serde_json::from_str(body).unwrap());
                assert_eq!(c.usage(), None, "{api:?} {body}");
            }
        }
        let mut c = UsageCounter::new(Api::OpenAi);
        c.event(b"data: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n");
        c.event(b"data: {\"type\":\"message_start\",\"message\":{\"usage\":null}}\n\n");
        assert_eq!(c.usage(), None);
        // A count of zero is a count.
        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(br#"{"usage":{"prompt_tokens":0,"completion_tokens":0}}"#);
        assert_eq!(c.usage(), Some(Usage::default()));
    }

    /// An OpenAI stream without usage still names its model (read from its first chunk).
    #[test]
    fn a_stream_without_usage_names_its_model() {
        let mut c = UsageCounter::new(Api::OpenAi);
        c.event(b"data: {\"id\":\"c\",\"model\":\"gpt-4o-2024\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
        c.event(b"data: {\"id\":\"c\",\"model\":\"other\",\"choices\":[{\"delta\":{\"content\":\"!\"}}]}\n\n");
        c.event(b"data: [DONE]\n\n");
        assert_eq!(c.model(), Some("gpt-4o-2024"));
        assert_eq!(c.usage(), None);
        assert!(c.ended());
    }

    /// A count written with a fraction or an exponent is still a count (rounded up); a string
    /// or a negative number is none.
    #[test]
    fn counts_written_as_floats_are_counted() {
        for body in [
            r#"{"usage":{"prompt_tokens":0,"completion_tokens":700.5}}"#,
            r#"{"usage":{"prompt_tokens":0,"completion_tokens":7.01e2}}"#,
        ] {
            let mut c = UsageCounter::new(Api::OpenAi);
            c.json(body.as_bytes());
            assert_eq!(c.usage().map(|u| u.output), Some(701), "{body}");
            let mut c = UsageCounter::new(Api::OpenAi);
            c.value(&serde_json::from_str(body).unwrap());
            assert_eq!(c.usage().map(|u| u.output), Some(701), "{body}");
        }
        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(br#"{"usage":{"prompt_tokens":"5","completion_tokens":-3}}"#);
        assert_eq!(c.usage(), None);
        // Past what a float holds: as large as a count gets.
        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(br#"{"usage":{"prompt_tokens":0,"completion_tokens":7e400}}"#);
        assert_eq!(c.usage().map(|u| u.output), Some(MAX_USAGE_TOKENS));
    }

    /// Black-box review: `"output_tokens": 1e30` was counted `u64::MAX` (a Prometheus counter
    /// wrapped and went down, one response spent every budget). Every figure read, in every
    /// shape and by both readers, is at most [`MAX_USAGE_TOKENS`]; a negative one is none.
    #[test]
    fn absurd_usage_figures_are_clamped() {
        let max = MAX_USAGE_TOKENS;
        for (api, body, want) in [
            (
                Api::Anthropic,
                r#"{"usage":{"input_tokens":5,"output_tokens":1e30}}"#,
                u(5, max, 0, 0),
            ),
            (
                Api::Anthropic,
                r#"{"usage":{"input_tokens":99999999999999999999999,"output_tokens":18446744073709551615,"cache_creation_input_tokens":100000001,"cache_read_input_tokens":-4}}"#,
                u(max, max, max, 0),
            ),
            (
                Api::OpenAi,
                r#"{"usage":{"prompt_tokens":1e300,"completion_tokens":2.5,"prompt_tokens_details":{"cached_tokens":1e40}}}"#,
                u(0, 3, 0, max),
            ),
            (
                Api::OpenAi,
                r#"{"usage":{"prompt_tokens":-1,"completion_tokens":7}}"#,
                u(0, 7, 0, 0),
            ),
        ] {
            let mut scanned = UsageCounter::new(api);
            scanned.json(body.as_bytes());
            assert_eq!(scanned.usage(), Some(want), "{body}");
            let mut parsed = UsageCounter::new(api);
            parsed.value(&serde_json::from_str(body).unwrap());
            assert_eq!(parsed.usage(), Some(want), "{body}");
        }
        // A server's own counts, and Gemini's sums, too.
        for body in [
            r#"{"prompt_eval_count":1e30,"eval_count":184467440737095516150}"#,
            r#"{"usageMetadata":{"promptTokenCount":1e30,"candidatesTokenCount":1e30,"thoughtsTokenCount":1e30}}"#,
        ] {
            let mut c = UsageCounter::any_shape(Api::OpenAi);
            c.json(body.as_bytes());
            let got = c.usage().unwrap();
            assert_eq!((got.input, got.output), (max, max), "{body}");
        }
    }

    /// A broken `usage` after a good one leaves the good one counted.
    #[test]
    fn json_body_keeps_the_last_usage_read_before_an_error() {
        let mut c = UsageCounter::new(Api::Anthropic);
        c.json(br#"{"usage":{"input_tokens":7},"usage":{"input_tokens":8,"x":[1,}}"#);
        let (u, _) = c.finish().unwrap();
        assert_eq!(u.input, 7);
    }

    /// Gemini's `usageMetadata` and Bedrock's `usage` in its own names are counted on the
    /// routes agw reads in any shape (twelfth session's black-box review: neither was
    /// charged, so a passthrough call of theirs cost no budget).
    #[test]
    fn gemini_and_bedrock_counts_are_read() {
        let gemini = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":7,"thoughtsTokenCount":3,"cachedContentTokenCount":40,"totalTokenCount":110},"modelVersion":"gemini-2.5-pro"}"#;
        let want = Usage {
            input: 60,
            output: 10,
            cache_write: 0,
            cache_read: 40,
        };
        let mut c = UsageCounter::any_shape(Api::OpenAi);
        c.json(gemini.as_bytes());
        assert_eq!(c.usage(), Some(want));
        assert_eq!(c.model(), Some("gemini-2.5-pro"));
        // The list of chunks (`:streamGenerateContent` without `alt=sse`), and the stream:
        // cumulative counts, the last counts.
        let first = r#"{"candidates":[],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":1}}"#;
        let mut c = UsageCounter::any_shape(Api::OpenAi);
        c.json(format!("[{first},{gemini}]").as_bytes());
        assert_eq!(c.usage(), Some(want));
        let mut c = UsageCounter::any_shape(Api::OpenAi);
        c.event(
            format!(
                "data: {first}

"
            )
            .as_bytes(),
        );
        c.event(
            format!(
                "data: {gemini}

"
            )
            .as_bytes(),
        );
        assert_eq!(c.usage(), Some(want));
        let bedrock = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":5,"totalTokens":17,"cacheReadInputTokens":2,"cacheWriteInputTokens":3}}"#;
        let mut c = UsageCounter::any_shape(Api::OpenAi);
        c.json(bedrock.as_bytes());
        assert_eq!(
            c.usage(),
            Some(Usage {
                input: 12,
                output: 5,
                cache_write: 3,
                cache_read: 2,
            })
        );
        // Not on routes read in their own dialect, where these names mean nothing.
        let mut c = UsageCounter::new(Api::OpenAi);
        c.json(gemini.as_bytes());
        assert_eq!(c.usage(), None);
    }

    #[test]
    fn no_usage_is_none() {
        let mut c = UsageCounter::new(Api::Anthropic);
        c.json(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#);
        c.event(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        c.json(b"not json");
        assert_eq!(c.finish(), None);
    }
}
