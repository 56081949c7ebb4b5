//! The strings of a JSON document that response rules read, each with its path: how the text
//! of a stream in a format agw does not know is followed from event to event (or line to
//! line). Consecutive events that carry a string at the same path — array indexes included,
//! so `candidates[0].content.parts[0].text` continues itself and two choices stay apart —
//! carry one text in pieces, as llama.cpp's `content`, TGI's `token.text` or Gemini's
//! candidates do. Found by the seventh red-team review: such streams were read one event at
//! a time, so a secret sent as tokens passed every rule.
//!
//! The strings are those [`walk`](super::response::walk) reads: identifiers and binary `data`
//! are not text, signed reasoning is marked.

use super::response::{binary_data, is_meta_key, is_signed_reasoning};
use crate::json::{JsonError, Scanner};
use serde_json::Value;
use std::ops::Range;

/// A string of a document, at a JSON pointer (RFC 6901).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub pointer: String,
    pub text: String,
    /// Signed reasoning (an Anthropic thinking block): never rewritten.
    pub signed: bool,
    /// In an object marked `"thought": true` (a Gemini thought part).
    pub thought: bool,
    /// In a Gemini candidate: its `index` (0 when it names none), which SDKs build each
    /// candidate by, whatever its position in the chunk.
    pub candidate: Option<u64>,
}

/// The strings of a document, and whether it has a tool call (the walk reads a tool's input
/// and name in ways of their own: such a document is not text in pieces).
#[derive(Debug, Default)]
pub(crate) struct Leaves {
    pub leaves: Vec<Leaf>,
    pub tool: bool,
    /// An object's `thought` is neither `true`, `false` nor `null`: clients may read it
    /// either way.
    pub ambiguous: bool,
}

/// The strings of `v` that response rules read, in document order.
pub(crate) fn leaves(v: &Value) -> Leaves {
    let mut out = Leaves::default();
    let mut pointer = String::new();
    walk(v, "", &mut pointer, (false, false, None), &mut out);
    out
}

/// What a string inherits from the objects around it: signed reasoning, a thought part, the
/// Gemini candidate.
type Context = (bool, bool, Option<u64>);

fn walk(
    v: &Value,
    key: &str,
    pointer: &mut String,
    (signed, thought, candidate): Context,
    out: &mut Leaves,
) {
    match v {
        Value::String(s) if !is_meta_key(key.as_bytes()) && !s.is_empty() => {
            out.leaves.push(Leaf {
                pointer: pointer.clone(),
                text: s.clone(),
                signed,
                thought,
                candidate,
            });
        }
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(itoa(i, &mut [0; 20]));
                // Items inherit the array's key, as in the walk.
                // A Gemini candidate, by its `index` (0 when it names none).
                let candidate = if key == "candidates" {
                    Some(item.get("index").and_then(whole_index).unwrap_or(0))
                } else {
                    candidate
                };
                walk(item, key, pointer, (signed, thought, candidate), out);
                pointer.truncate(len);
            }
        }
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            let signed = signed || is_signed_reasoning(ty.as_bytes(), o.contains_key("signature"));
            let thought = o.get("thought") == Some(&Value::Bool(true));
            out.ambiguous |= o
                .get("thought")
                .is_some_and(|t| !matches!(t, Value::Bool(_) | Value::Null));
            let tool = o.contains_key("input")
                || o.contains_key("arguments")
                || matches!(ty, "tool_use" | "server_tool_use" | "function_call");
            out.tool |= tool;
            let media = ["media_type", "mime_type", "mimeType"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str));
            for (k, child) in o {
                if k == "data"
                    && child.is_string()
                    && binary_data(ty.as_bytes(), key.as_bytes(), media.map(str::as_bytes))
                {
                    continue;
                }
                // A tool's name is the tool-name check's; `name` elsewhere is text.
                if k == "name" && tool {
                    continue;
                }
                let len = pointer.len();
                push_token(pointer, k);
                walk(child, k, pointer, (signed, thought, candidate), out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// Appends `/key` to a JSON pointer, `~` and `/` escaped (RFC 6901).
pub(crate) fn push_token(pointer: &mut String, key: &str) {
    pointer.push('/');
    for c in key.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Paths at which servers agw has no dialect for stream one text in pieces, a token or a few
/// per event or line (`*` is any array index): llama.cpp's `content`, TGI's `token.text`,
/// Anthropic-shaped deltas sent as JSON lines,
/// Gemini's candidates' parts, Ollama's `response`, `message.content` and thinking, chat- and
/// completion-shaped chunks without their `object`, and the bare `text` and `delta` of simpler
/// servers. Only these are joined across events: the strings of a stream of records (an
/// export, a log tail, progress events) are whole values, which joined would lose the
/// boundaries detectors need, hold progress events back, and cost a text per field (found by
/// the seventh review's regression round).
const TOKEN_PATHS: [&str; 38] = [
    // Cohere v2's `content-delta`, `tool-plan-delta` and `tool-call-delta`, watsonx's
    // `generation_stream`, Bedrock's model families (Llama's `generation`, Mistral's
    // `outputs`, Titan's `outputText`, Claude's legacy `completion`, Cohere's `generations`,
    // Converse's `contentBlockDelta` as JSON), a chunk's `message.content`, Assistants runs'
    // message and step deltas, AI21's `completions`; TGI's last event repeats the whole text
    // as `generated_text`, a text of its own (fourteenth session's review: read one event at
    // a time, a secret split over two passed; and TGI's every mask ended the stream). Not
    // bare `output`, `result` or `token` (KoboldCpp's, ERNIE's): a stream of records or
    // progress events uses them for whole values, which joined hid a secret at a record's end
    // and made a mask beside them end the stream (third round).
    "/delta/message/content/text",
    "/delta/message/tool_plan",
    "/delta/message/tool_calls/function/arguments",
    "/contentBlockDelta/delta/text",
    "/delta/content/*/text/value",
    "/delta/step_details/tool_calls/*/code_interpreter/input",
    "/delta/step_details/tool_calls/*/function/arguments",
    "/completions/*/data/text",
    "/generated_text",
    "/delta/reasoning_content",
    "/results/*/generated_text",
    "/generation",
    "/outputs/*/text",
    "/outputText",
    "/completion",
    "/generations/*/text",
    "/choices/*/message/content",
    "/content",
    "/text",
    "/delta",
    "/delta/text",
    "/delta/content",
    "/delta/thinking",
    "/token/text",
    "/response",
    "/thinking",
    "/message/content",
    "/message/thinking",
    "/choices/*/text",
    "/choices/*/delta/content",
    "/choices/*/delta/text",
    "/choices/*/delta/reasoning_content",
    "/choices/*/delta/reasoning",
    "/candidates/*/content/parts/*/text",
    "/candidates/*/content/parts/*/executableCode/code",
    "/candidates/*/content/parts/*/codeExecutionResult/output",
    "/candidates/*/content/parts/*/executable_code/code",
    "/candidates/*/content/parts/*/code_execution_result/output",
];

/// The text a string at `pointer` continues: its path, but for the parts of a Gemini
/// candidate, whose text parts are one text to a client (google-genai's `.text` joins them,
/// thought parts apart), whatever their positions in the events (twelfth session's black-box
/// review: `SECRET-` in part 0 of one event and `12345` in part 1 of the next, after a
/// thought part, went out unmasked).
///
/// A candidate is told by its `index` (`candidate`), not by its position in the chunk (a
/// second round found `index: 1` first in one chunk and second in the next read as two
/// texts). Code a model runs and its output (`executableCode.code`,
/// `codeExecutionResult.output`) are texts of their own per candidate too.
pub(crate) fn text_path(
    pointer: &str,
    thought: bool,
    candidate: Option<u64>,
) -> std::borrow::Cow<'_, str> {
    const PARTS: &str = "/content/parts/";
    if let Some(rest) = pointer.strip_prefix("/candidates/")
        && let Some((position, rest)) = rest.split_once('/')
        && let Some(rest) = rest.strip_prefix(&PARTS[1..])
        && let Some((part, field)) = rest.split_once('/')
        && !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
    {
        let kind = match field {
            "text" if thought => "thought",
            "text" => "text",
            "executableCode/code"
            | "codeExecutionResult/output"
            | "executable_code/code"
            | "code_execution_result/output" => field,
            _ => return pointer.into(),
        };
        let candidate = candidate.map_or_else(|| position.to_owned(), |c| c.to_string());
        return format!("/candidates/{candidate}{PARTS}*/{kind}").into();
    }
    pointer.into()
}

/// An index as lenient clients read it: a whole number, also written `1.0`.
pub(crate) fn whole_index(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}

/// The most strings of one event or line read as pieces of texts: more are a document, read
/// whole.
pub(crate) const MAX_PIECES: usize = 8;

/// Whether the string at `pointer` is a piece of a text streamed in pieces ([`TOKEN_PATHS`]).
pub(crate) fn is_token_path(pointer: &str) -> bool {
    TOKEN_PATHS.iter().any(|want| {
        let mut got = pointer.split('/');
        let mut want = want.split('/');
        loop {
            match (got.next(), want.next()) {
                (None, None) => return true,
                (Some(g), Some("*")) if !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()) => {}
                (Some(g), Some(w)) if g == w => {}
                _ => return false,
            }
        }
    })
}

/// Where the string at `pointer` lies in the JSON document `data`, quotes included: a changed
/// string is spliced in there, so the rest of the event keeps its bytes (keys in their order).
/// `None` when there is no string there.
pub(crate) fn span_at(data: &[u8], pointer: &str) -> Option<Range<usize>> {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut sc = Scanner::new(data).ok()?;
    find(&mut sc, &tokens).ok().flatten()
}

fn find(sc: &mut Scanner<'_>, tokens: &[String]) -> Result<Option<Range<usize>>, JsonError> {
    let Some((token, rest)) = tokens.split_first() else {
        if sc.peek() != Some(b'"') {
            sc.skip()?;
            return Ok(None);
        }
        let s = sc.string()?;
        return Ok(Some(s.raw.start - 1..s.raw.end + 1));
    };
    let mut found = None;
    match sc.peek() {
        Some(b'{') => sc.object(|sc, k| {
            // A key spelled as the event was read ([`crate::guard::keys`]).
            let key = sc.str_value(&k);
            if found.is_none()
                && (*key == *token.as_bytes()
                    || super::keys::folded(&key).is_some_and(|f| f == token))
            {
                found = find(sc, rest)?;
            } else {
                sc.skip()?;
            }
            Ok(())
        })?,
        Some(b'[') => {
            let want: Option<usize> = token.parse().ok();
            sc.array(|sc, i| {
                if Some(i) == want {
                    found = find(sc, rest)?;
                } else {
                    sc.skip()?;
                }
                Ok(())
            })?;
        }
        _ => {
            sc.skip()?;
        }
    }
    Ok(found)
}

/// `i` in decimal, without an allocation.
fn itoa(mut i: usize, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).expect("digits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_paths_servers_stream_tokens_at_are_pieces() {
        for p in [
            "/content",
            "/token/text",
            "/candidates/0/content/parts/3/text",
            "/choices/12/delta/content",
            "/message/content",
        ] {
            assert!(is_token_path(p), "{p}");
        }
        for p in [
            "/card",
            "/email",
            "/data",
            "/progress",
            "/candidates/x/content/parts/0/text",
            "/choices//delta/content",
            "/content/0/text",
            "/token/text/x",
            "/message",
        ] {
            assert!(!is_token_path(p), "{p}");
        }
    }

    #[test]
    fn strings_by_path_as_the_walk_reads_them() {
        let v = json!({
            "id": "x",
            "candidates": [{"content": {"parts": [{"text": "a"}], "role": "model"}}],
            "token": {"id": 1, "text": "b", "special": false},
            "a/b~": ["c", {"data": "d", "media_type": "text/plain"}],
            "audio": {"data": "AAAA", "transcript": "e"},
            "message": {"name": "f"},
            "content": [{"type": "thinking", "thinking": "g", "signature": "s"}],
        });
        let got: Vec<(String, String, bool)> = leaves(&v)
            .leaves
            .into_iter()
            .map(|l| (l.pointer, l.text, l.signed))
            .collect();
        let want = [
            ("/candidates/0/content/parts/0/text", "a", false),
            ("/token/text", "b", false),
            ("/a~1b~0/0", "c", false),
            ("/a~1b~0/1/data", "d", false),
            ("/audio/transcript", "e", false),
            ("/message/name", "f", false),
            ("/content/0/thinking", "g", true),
        ];
        let mut want: Vec<(String, String, bool)> = want
            .iter()
            .map(|(p, t, s)| (p.to_string(), t.to_string(), *s))
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(got_sorted, want);
        for l in &got {
            assert!(v.pointer(&l.0).is_some(), "{}", l.0);
        }
        assert!(!leaves(&v).tool);
        let data = v.to_string();
        for l in &got {
            let span = span_at(data.as_bytes(), &l.0).unwrap();
            assert_eq!(serde_json::from_str::<String>(&data[span]).unwrap(), l.1);
        }
        assert_eq!(span_at(data.as_bytes(), "/token/id"), None);
        assert_eq!(span_at(data.as_bytes(), "/nothing"), None);
        assert!(leaves(&json!({"x": {"name": "Bash", "input": {}}})).tool);
    }
}
