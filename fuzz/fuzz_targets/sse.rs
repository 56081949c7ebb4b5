//! The incremental SSE decoder and the stream guard (`agw_core::stream`).
//!
//! A stream of events (Anthropic or OpenAI text deltas with arbitrary text, other events,
//! comments, garbage, mixed line ends) or raw bytes, cut into chunks at arbitrary points:
//!
//! 1. **Decoder, chunking.** With a large limit, every chunking gives the same events as
//!    feeding the stream at once, and events plus the unfinished tail are the stream's bytes.
//! 2. **Decoder, limit.** With a small limit, an error is never spurious: it comes only when
//!    an event (or the unfinished tail) is larger than the limit, and the events emitted before
//!    it are the first events of the stream. (Whether an over-limit event is an error depends
//!    on the chunking: one delivered whole in one chunk passes. See fuzz/README.md.)
//! 3. **Guard, chunking.** Feeding the guard events as each chunk completes them gives output
//!    identical to feeding it all events at once.
//! 4. **Guard, delta splits.** One text, split into deltas two different ways, with a window
//!    larger than the text: the concatenated output text is the same, and every output event
//!    is a well-formed event whose data is JSON.
//! 6. **Guard, tool-call delta splits.** A tool call (`Bash` with `{"command": text}`) whose
//!    input arrives as `input_json_delta`s (Anthropic) or `arguments` deltas (OpenAI), split
//!    two ways and one character at a time, with a keyword mask rule and a tool rule: the
//!    output is the same (rejected or not, same concatenated input), and a concatenated input
//!    that goes out is valid JSON.
//! 5. **Guard, completeness.** For ASCII text and case-sensitive keyword rules that mask with
//!    a placeholder no keyword can match, and a window at least as long as every keyword: the
//!    output text (all deltas joined) contains no keyword.
#![no_main]

use agw_core::api::Api;
use agw_core::guard::{Policy, Rule};
use agw_core::stream::{SseDecoder, StreamGuard};
use agw_fuzz::literal;
use agw_fuzz::text::{Text, VOCAB};
use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Clone, Arbitrary)]
enum Ev {
    Delta(Text),
    ThinkingDelta(Text),
    BlockStart,
    BlockStop,
    MessageStop,
    Ping,
    Comment(Text),
    Done,
    Garbage(Vec<u8>),
    ToolStart,
    ToolDelta(Text),
    ToolStop,
}

#[derive(Clone, Arbitrary)]
enum Source {
    Events(Vec<Ev>),
    Raw(Vec<u8>),
}

#[derive(Clone, Arbitrary)]
struct Input {
    openai: bool,
    source: Source,
    /// 0: `\n`, 1: `\r\n`, 2: `\r`.
    line_end: u8,
    cuts: Vec<u16>,
    limit: u16,
    keywords: Vec<u8>,
    window: u8,
    /// For property 4 and 5: a text and two ways to split it.
    text: String,
    splits: (Vec<u16>, Vec<u16>),
}

fn event(openai: bool, e: &Ev, nl: &str) -> Vec<u8> {
    let mut data = Vec::new();
    let (name, json): (&str, Vec<u8>) = match e {
        Ev::Delta(t) | Ev::ThinkingDelta(t) => {
            let mut s = Vec::new();
            t.render_quoted(&mut s);
            let thinking = matches!(e, Ev::ThinkingDelta(_));
            if openai {
                let key = if thinking { "reasoning_content" } else { "content" };
                let mut j = format!(r#"{{"id":"c","choices":[{{"index":0,"delta":{{"{key}":"#)
                    .into_bytes();
                j.extend_from_slice(&s);
                j.extend_from_slice(br#"},"finish_reason":null}]}"#);
                ("", j)
            } else {
                let (ty, key) = if thinking {
                    ("thinking_delta", "thinking")
                } else {
                    ("text_delta", "text")
                };
                let mut j = format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{ty}","{key}":"#
                )
                .into_bytes();
                j.extend_from_slice(&s);
                j.extend_from_slice(b"}}");
                ("content_block_delta", j)
            }
        }
        Ev::BlockStart => (
            "content_block_start",
            br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                .to_vec(),
        ),
        Ev::BlockStop => (
            "content_block_stop",
            br#"{"type":"content_block_stop","index":0}"#.to_vec(),
        ),
        Ev::MessageStop if openai => (
            "",
            br#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_vec(),
        ),
        Ev::MessageStop => ("message_stop", br#"{"type":"message_stop"}"#.to_vec()),
        Ev::Ping => ("ping", br#"{"type":"ping"}"#.to_vec()),
        Ev::Done => ("", b"[DONE]".to_vec()),
        Ev::ToolStart | Ev::ToolDelta(_) | Ev::ToolStop => {
            let partial = match e {
                Ev::ToolDelta(t) => {
                    let mut s = Vec::new();
                    t.render_quoted(&mut s);
                    s
                }
                _ => Vec::new(),
            };
            tool_event(openai, e, &partial)
        }
        Ev::Comment(t) => {
            data.extend_from_slice(b": ");
            t.render(&mut data);
            data.extend_from_slice(nl.as_bytes());
            data.extend_from_slice(nl.as_bytes());
            return data;
        }
        Ev::Garbage(b) => return b.clone(),
    };
    if !name.is_empty() && !openai {
        data.extend_from_slice(format!("event: {name}{nl}").as_bytes());
    }
    data.extend_from_slice(b"data: ");
    data.extend_from_slice(&json);
    data.extend_from_slice(nl.as_bytes());
    data.extend_from_slice(nl.as_bytes());
    data
}

/// A tool-call event; `partial` is the JSON string literal of a delta's piece of input.
fn tool_event(openai: bool, e: &Ev, partial: &[u8]) -> (&'static str, Vec<u8>) {
    let mut j = Vec::new();
    match (openai, e) {
        (false, Ev::ToolStart) => {
            return (
                "content_block_start",
                br#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"Bash","input":{}}}"#.to_vec(),
            );
        }
        (false, Ev::ToolStop) => {
            return (
                "content_block_stop",
                br#"{"type":"content_block_stop","index":1}"#.to_vec(),
            );
        }
        (false, _) => {
            j.extend_from_slice(
                br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"#,
            );
            j.extend_from_slice(partial);
            j.extend_from_slice(b"}}");
            ("content_block_delta", j)
        }
        (true, Ev::ToolStart) => (
            "",
            br#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"Bash","arguments":""}}]},"finish_reason":null}]}"#.to_vec(),
        ),
        (true, Ev::ToolStop) => (
            "",
            br#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#
                .to_vec(),
        ),
        (true, _) => {
            j.extend_from_slice(
                br#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"#,
            );
            j.extend_from_slice(partial);
            j.extend_from_slice(br#"}}]},"finish_reason":null}]}"#);
            ("", j)
        }
    }
}

/// One SSE event from a name and data.
fn sse(openai: bool, (name, json): (&str, Vec<u8>)) -> Bytes {
    let mut data = Vec::new();
    if !name.is_empty() && !openai {
        data.extend_from_slice(format!("event: {name}\n").as_bytes());
    }
    data.extend_from_slice(b"data: ");
    data.extend_from_slice(&json);
    data.extend_from_slice(b"\n\n");
    Bytes::from(data)
}

/// A tool call whose input `input` arrives in pieces cut at `cuts` (every character when
/// `None`).
fn tool_call(api: Api, input: &str, cuts: Option<&[u16]>) -> Vec<Bytes> {
    let openai = api == Api::OpenAi;
    let pieces: Vec<&str> = match cuts {
        None => input
            .char_indices()
            .map(|(i, c)| &input[i..i + c.len_utf8()])
            .collect(),
        Some(cuts) => {
            let mut cuts: Vec<usize> = cuts
                .iter()
                .take(16)
                .map(|c| *c as usize % (input.len() + 1))
                .filter(|c| input.is_char_boundary(*c))
                .collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([input.len()]) {
                pieces.push(&input[at..c]);
                at = c;
            }
            pieces
        }
    };
    let mut evs = vec![sse(openai, tool_event(openai, &Ev::ToolStart, b""))];
    for p in pieces {
        let lit = serde_json::to_string(p).expect("a string serializes");
        evs.push(sse(
            openai,
            tool_event(openai, &Ev::ToolDelta(Text::default()), lit.as_bytes()),
        ));
    }
    evs.push(sse(openai, tool_event(openai, &Ev::ToolStop, b"")));
    if !openai {
        evs.push(Bytes::from(event(openai, &Ev::MessageStop, "\n")));
    } else {
        evs.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    evs
}

/// The concatenated tool input of an output stream, and whether it ended in an error.
fn tool_output(api: Api, evs: &[Bytes]) -> (String, bool) {
    let mut input = String::new();
    let mut error = false;
    for ev in evs {
        let Ok(s) = std::str::from_utf8(ev) else {
            continue;
        };
        let data: Vec<&str> = s.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&data.join("\n")) else {
            continue;
        };
        if json.get("error").is_some() || json["type"] == "error" {
            error = true;
        }
        let piece = match api {
            Api::Anthropic => json.pointer("/delta/partial_json"),
            _ => json.pointer("/choices/0/delta/tool_calls/0/function/arguments"),
        };
        if let Some(p) = piece.and_then(|p| p.as_str()) {
            input.push_str(p);
        }
    }
    (input, error)
}

impl Input {
    fn stream(&self) -> Vec<u8> {
        let nl = ["\n", "\r\n", "\r"][self.line_end as usize % 3];
        match &self.source {
            Source::Events(evs) => evs.iter().flat_map(|e| event(self.openai, e, nl)).collect(),
            Source::Raw(b) => b.clone(),
        }
    }

    fn chunks<'a>(&self, stream: &'a [u8]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = self
            .cuts
            .iter()
            .map(|c| *c as usize % (stream.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([stream.len()]) {
            out.push(&stream[at..c]);
            at = c;
        }
        out
    }

    fn api(&self) -> Api {
        if self.openai {
            Api::OpenAi
        } else {
            Api::Anthropic
        }
    }

    fn keywords(&self) -> Vec<&'static str> {
        self.keywords
            .iter()
            .take(4)
            .map(|k| VOCAB[*k as usize % VOCAB.len()])
            .filter(|k| !k.trim().is_empty())
            .collect()
    }

    fn policy(&self) -> Policy {
        let kw = self.keywords();
        let mut b = Policy::builder();
        if !kw.is_empty() {
            b = b.rule(Rule::literals("kw", kw.clone()).mask_with("\u{e000}"));
        }
        if let Some(k) = kw.get(1) {
            let re = agw_core::guard::ToolRule::new("tool", "Bash")
                .argument("command", regex_syntax::escape(k))
                .reject("blocked");
            b = b.tool_rule(re);
        }
        b.build().expect("valid rules")
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stream = self.stream();
        writeln!(f, "let api = Api::{:?};", self.api())?;
        writeln!(f, "let stream = {};", literal(&stream))?;
        let chunks: Vec<usize> = self.chunks(&stream).iter().map(|c| c.len()).collect();
        writeln!(f, "let chunk_sizes = {chunks:?};")?;
        writeln!(f, "let limit = {};", self.limit)?;
        writeln!(
            f,
            "let keywords = {:?}; let window = {};",
            self.keywords(),
            self.window
        )?;
        write!(
            f,
            "let text = {:?}; let splits = {:?};",
            self.text, self.splits
        )
    }
}

/// Events and the unfinished tail, or the error and the events before it.
fn decode_all(
    chunks: &[&[u8]],
    limit: usize,
) -> (
    Vec<Bytes>,
    Result<Option<Bytes>, agw_core::stream::SseError>,
) {
    let mut d = SseDecoder::new(limit);
    let mut events = Vec::new();
    for c in chunks {
        if let Err(e) = d.push(c, &mut events) {
            return (events, Err(e));
        }
    }
    (events, Ok(d.finish()))
}

fn guard_run(policy: &Policy, api: Api, window: usize, events: &[Bytes]) -> Vec<Bytes> {
    let mut g = StreamGuard::new(policy.clone(), api, window);
    let mut out = Vec::new();
    for e in events {
        g.event(e.clone(), &mut out);
    }
    g.finish(&mut out);
    out
}

/// The text of an output delta event, if it is one.
fn delta_text(api: Api, ev: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(ev).ok()?;
    let data: Vec<&str> = s.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    let json: serde_json::Value = serde_json::from_str(&data.join("\n")).ok()?;
    let t = match api {
        Api::Anthropic => json.pointer("/delta/text"),
        _ => json.pointer("/choices/0/delta/content"),
    };
    t.and_then(|t| t.as_str()).map(str::to_owned)
}

fn split_text(api: Api, text: &str, cuts: &[u16]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .take(16)
        .map(|c| *c as usize % (text.len() + 1))
        .filter(|c| text.is_char_boundary(*c))
        .collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([text.len()]) {
        pieces.push(&text[at..c]);
        at = c;
    }
    let openai = api == Api::OpenAi;
    // Events of the stream's own API: a chat stream that carries Anthropic events ends with an
    // error once text was read (agw reads a stream as the API its events are).
    let mut evs = vec![Bytes::from(if openai {
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n".as_bytes().to_vec()
    } else {
        event(openai, &Ev::BlockStart, "\n")
    })];
    for p in pieces {
        let s = serde_json::to_string(p).expect("a string serializes");
        let data = if openai {
            format!(
                r#"data: {{"id":"c","choices":[{{"index":0,"delta":{{"content":{s}}},"finish_reason":null}}]}}"#
            )
        } else {
            format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{s}}}}}"
            )
        };
        evs.push(Bytes::from(format!("{data}\n\n")));
    }
    if !openai {
        evs.push(Bytes::from(event(openai, &Ev::BlockStop, "\n")));
    }
    evs.push(Bytes::from(event(openai, &Ev::MessageStop, "\n")));
    evs
}

/// Whether the stream holds an Anthropic text delta that `StreamGuard` panics on when it masks
/// it: a raw control character, a surrogate escape or nesting 128 deep inside the event, which
/// agw's scanner reads but serde_json (used to re-serialize a changed delta) rejects. Reported; such inputs are
/// kept from the guard properties until it is fixed, so the fuzzer can look for other bugs.
/// Set to `false` to reproduce.
const AVOID_KNOWN_PANIC: bool = false;

fn known_panic(api: Api, events: &[Bytes]) -> bool {
    AVOID_KNOWN_PANIC
        && api == Api::Anthropic
        && events.iter().any(|e| {
            let e: &[u8] = e;
            memmem(e, b"text_delta")
                && (e.iter().any(|&b| b < 0x20 && b != b'\n' && b != b'\r')
                    || e.to_ascii_lowercase().windows(3).any(|w| w == b"\\ud")
                    || e.iter().filter(|&&b| b == b'[' || b == b'{').count() >= 127)
        })
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|input: Input| {
    let stream = input.stream();
    let chunks = input.chunks(&stream);
    // Property 1.
    let (whole, tail) = decode_all(&[&stream], 1 << 20);
    let tail = tail.expect("no event reaches 1 MiB");
    let joined: Vec<u8> = whole
        .iter()
        .chain(tail.iter())
        .flat_map(|b| b.to_vec())
        .collect();
    assert!(
        joined == stream,
        "events and tail are not the stream's bytes"
    );
    let (chunked, chunked_tail) = decode_all(&chunks, 1 << 20);
    assert_eq!(chunked, whole, "chunking changed the events");
    assert_eq!(chunked_tail.expect("no error"), tail);
    // Property 2.
    let limit = input.limit as usize % 512 + 1;
    for feed in [vec![&stream[..]], chunks.clone()] {
        let (events, res) = decode_all(&feed, limit);
        assert!(whole.starts_with(&events), "events before the limit differ");
        if res.is_err() {
            let too_big = whole.iter().chain(tail.iter()).any(|e| e.len() > limit);
            assert!(too_big, "a spurious limit error at {limit}");
        }
    }
    // Property 3.
    let api = input.api();
    if known_panic(api, &whole)
        || tail
            .iter()
            .any(|t| known_panic(api, std::slice::from_ref(t)))
    {
        return;
    }
    let policy = input.policy();
    let window = input.window as usize % 64 + 1;
    let at_once = guard_run(&policy, api, window, &whole);
    let mut g = StreamGuard::new(policy.clone(), api, window);
    let mut d = SseDecoder::new(1 << 20);
    let mut out = Vec::new();
    for c in &chunks {
        let mut evs = Vec::new();
        d.push(c, &mut evs).expect("under the limit");
        for e in evs {
            g.event(e, &mut out);
        }
    }
    if let Some(t) = d.finish() {
        g.event(t, &mut out);
    }
    g.finish(&mut out);
    let at_once_with_tail = {
        let mut evs = whole.clone();
        evs.extend(tail);
        guard_run(&policy, api, window, &evs)
    };
    assert_eq!(
        out, at_once_with_tail,
        "chunking changed the guard's output"
    );
    drop(at_once);
    // Property 4.
    let text = &input.text;
    let a = guard_run(
        &policy,
        api,
        1 << 16,
        &split_text(api, text, &input.splits.0),
    );
    let b = guard_run(
        &policy,
        api,
        1 << 16,
        &split_text(api, text, &input.splits.1),
    );
    let joined = |evs: &[Bytes]| -> String {
        for e in evs {
            let mut d = SseDecoder::new(1 << 20);
            let mut again = Vec::new();
            d.push(e, &mut again).expect("small");
            assert!(
                again.len() == 1 && again[0] == *e && d.finish().is_none(),
                "not one well-formed event: {}",
                literal(e)
            );
        }
        evs.iter().filter_map(|e| delta_text(api, e)).collect()
    };
    let (ta, tb) = (joined(&a), joined(&b));
    assert_eq!(ta, tb, "the delta split changed the masked text");
    // Property 6.
    let input_json = serde_json::json!({ "command": text }).to_string();
    let runs: Vec<(String, bool)> = [Some(&input.splits.0[..]), Some(&input.splits.1[..]), None]
        .into_iter()
        .map(|cuts| {
            let out = guard_run(&policy, api, window, &tool_call(api, &input_json, cuts));
            tool_output(api, &out)
        })
        .collect();
    assert_eq!(runs[0], runs[1], "the tool delta split changed the output");
    assert_eq!(
        runs[0], runs[2],
        "one character at a time changed the output"
    );
    let (tool_input, rejected) = &runs[0];
    if *rejected {
        assert!(
            tool_input.is_empty(),
            "a rejected call sent input {tool_input:?}"
        );
    } else {
        serde_json::from_str::<serde_json::Value>(tool_input)
            .unwrap_or_else(|e| panic!("{e}: the tool input {tool_input:?} is not JSON"));
    }
    // Property 5.
    let kw = input.keywords();
    if text.is_ascii() && kw.iter().all(|k| k.is_ascii() && k.len() <= window) {
        let small = guard_run(
            &policy,
            api,
            window,
            &split_text(api, text, &input.splits.0),
        );
        let t = joined(&small);
        for k in &kw {
            assert!(
                !t.contains(k),
                "{k:?} left in the output {t:?} (window {window})"
            );
        }
    }
});
