//! How much generated content one stream event carries: the length of the strings a model's
//! output streams in, read without parsing the event.
//!
//! Used to estimate the output of a stream that ends before its final usage (see
//! [`UsageCounter::cut`](super::UsageCounter::cut)). The event is walked string by string
//! (`memchr` to each quote); a string followed by `:` is a key, any other a value, counted
//! when its key is one that carries output in the event's shape:
//!
//! | shape | recognised by | counted |
//! | --- | --- | --- |
//! | Anthropic delta | first `type` is `content_block_delta` | `text`, `partial_json`, `thinking` |
//! | Responses delta | first `type` is `response.….delta` | `delta` |
//! | OpenAI chat chunk | `choices` before any `type` | `content`, `refusal`, `reasoning_content`, `reasoning`, `arguments`, `text` |
//!
//! Any other event (a start, a stop, Responses' `….done` events, which repeat the text already
//! streamed) counts nothing. The paths mirror what the stream guard reads
//! (`crate::stream::events`) but only by key name: nesting is not tracked, which keeps this a
//! byte search.
//!
//! # Limits
//!
//! Lengths are of the string as sent, escapes included (`\n` is two bytes, `\u00e9` six): a
//! slight over-count, the safe side for a charge. A key split from its `:` across `data:`
//! lines is read as a value (its string is not counted); no provider splits an event's JSON
//! that way.

use memchr::memmem::Finder;
use std::sync::OnceLock;

/// What an event is, as far as counting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Not known yet: no `type` value and no `choices` key seen.
    Unknown,
    /// Anthropic `content_block_delta`: one payload string.
    Messages,
    /// OpenAI Responses `response.….delta`: one `delta` string.
    Responses,
    /// OpenAI chat (or legacy) chunk: any number of choices and tool calls.
    Chat,
}

/// The bytes of generated content in `event` (one whole server-sent event as on the wire).
pub(super) fn bytes(event: &[u8]) -> u64 {
    let Some(open) = memchr::memchr(b'{', event) else {
        return 0;
    };
    let b = &event[open..];
    if let Some(n) = exact_delta(b) {
        return n;
    }
    // A chat chunk is walked from its `choices` key: what comes before (id, model,
    // fingerprint) is most of the chunk and says nothing. (A string's content cannot end in
    // `"choices"`, whose last quote would be escaped, but a string may end with `\"choices`:
    // only one followed by a colon is the key.)
    static CHOICES: OnceLock<Finder<'static>> = OnceLock::new();
    let choices = CHOICES.get_or_init(|| Finder::new(br#""choices""#));
    match choices.find(b) {
        Some(at) if is_key(&b[at + br#""choices""#.len()..]) => walk(&b[at..], Shape::Unknown),
        _ => walk(b, Shape::Unknown),
    }
}

/// Whether what follows a string makes it a key: a colon, after any whitespace.
fn is_key(after: &[u8]) -> bool {
    after.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b':')
}

/// [`bytes`](fn@bytes) of the JSON at `b`, key by key, starting in `shape`.
fn walk(b: &[u8], mut shape: Shape) -> u64 {
    let mut at = 0;
    let mut key: &[u8] = b"";
    let mut total = 0u64;
    // Byte loops, not `memchr`: most strings here are a few bytes (keys, types), shorter than
    // a vector search takes to set up.
    while let Some(q) = b[at..].iter().position(|&c| c == b'"') {
        let start = at + q + 1;
        let Some(end) = string_end(b, start) else {
            // Cut off inside a string: what came before it counts.
            return total;
        };
        let s = &b[start..end];
        at = end + 1;
        if is_key(&b[at..]) {
            key = s;
            if shape == Shape::Unknown && key == b"choices" {
                shape = Shape::Chat;
            }
            continue;
        }
        match shape {
            Shape::Unknown if key == b"type" => {
                shape = if s == b"content_block_delta" {
                    Shape::Messages
                } else if s.starts_with(b"response.") && s.ends_with(b".delta") {
                    Shape::Responses
                } else {
                    return 0;
                };
            }
            // One payload per event in these shapes: done once it is found.
            Shape::Messages if matches!(key, b"text" | b"partial_json" | b"thinking") => {
                return s.len() as u64;
            }
            Shape::Responses if key == b"delta" => return s.len() as u64,
            Shape::Chat
                if matches!(
                    key,
                    b"content"
                        | b"refusal"
                        | b"reasoning_content"
                        | b"reasoning"
                        | b"arguments"
                        | b"text"
                ) =>
            {
                total += s.len() as u64;
            }
            _ => {}
        }
    }
    total
}

/// The payload's length in a `content_block_delta` exactly as Anthropic writes it (keys in its
/// order, no spaces — nearly every event of a Claude stream), found without walking the keys.
/// `None` for any other event: the walk reads it.
fn exact_delta(data: &[u8]) -> Option<u64> {
    const HEADS: [&[u8]; 3] = [
        br#","delta":{"type":"text_delta","text":""#,
        br#","delta":{"type":"input_json_delta","partial_json":""#,
        br#","delta":{"type":"thinking_delta","thinking":""#,
    ];
    let rest = data.strip_prefix(br#"{"type":"content_block_delta","index":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = &rest[digits..];
    let head = HEADS.into_iter().find(|h| rest.starts_with(h))?;
    // The payload is usually long enough for a vector search to pay.
    let mut at = head.len();
    loop {
        let i = at + memchr::memchr2(b'"', b'\\', rest.get(at..)?)?;
        if rest[i] == b'"' {
            return Some((i - head.len()) as u64);
        }
        at = i + 2;
    }
}

/// Where the string whose content starts at `start` ends (its closing quote), if it does.
fn string_end(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let i = at + b.get(at..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some(i);
        }
        // An escape: the next byte is escaped, whatever it is.
        at = i + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::{Shape, bytes, exact_delta, walk};

    #[test]
    fn generated_content_of_each_shape() {
        let cases: &[(&str, u64)] = &[
            // Anthropic: text, tool input, thinking; the nested `type` is not the event's.
            (
                r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there"}}"#,
                11,
            ),
            (
                r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"ls"}}"#,
                "{\\\"command\\\": \\\"ls".len() as u64,
            ),
            (
                r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
                3,
            ),
            // A signature is not output.
            (
                r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"bW9jaw=="}}"#,
                0,
            ),
            // Escapes count as sent; an escaped quote does not end the string.
            (
                r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\"b\\"}}"#,
                6,
            ),
            // Other Anthropic events carry no new output.
            (
                r#"data: {"type":"message_start","message":{"content":[{"type":"text","text":"ignored"}]}}"#,
                0,
            ),
            (
                r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
                0,
            ),
            // OpenAI chat: content, reasoning, tool arguments, refusal, several choices.
            (
                r#"data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi you"},"finish_reason":null}]}"#,
                6,
            ),
            (
                r#"data: {"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"abc"}},{"index":1,"delta":{"reasoning":"de","refusal":"f"}}]}"#,
                6,
            ),
            (
                r#"data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Bash","arguments":"{\"a\":1}"}}]}}]}"#,
                "{\\\"a\\\":1}".len() as u64,
            ),
            // Mistral's content parts.
            (
                r#"data: {"choices":[{"delta":{"content":[{"type":"text","text":"abcd"}]}}]}"#,
                4,
            ),
            // The role chunk and the usage chunk carry nothing.
            (
                r#"data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
                0,
            ),
            (
                r#"data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
                0,
            ),
            // Responses: deltas count, the `done` events that repeat them do not.
            (
                r#"event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hey","sequence_number":4}"#,
                3,
            ),
            (
                r#"data: {"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":"{\"x\"","sequence_number":9}"#,
                "{\\\"x\\\"".len() as u64,
            ),
            (
                r#"data: {"type":"response.output_text.done","item_id":"msg_1","text":"Hey delta"}"#,
                0,
            ),
            // Text that ends in a quoted `choices` is text.
            (
                r#"data: {"type":"content_block_delta","index":0,"delta":{"text":"say \"choices","type":"text_delta"}}"#,
                13,
            ),
            // Not JSON, cut off, empty.
            ("data: [DONE]", 0),
            (
                r#"data: {"choices":[{"delta":{"content":"ab"}},{"delta":{"content":"unterminated"#,
                2,
            ),
            ("", 0),
        ];
        for (event, want) in cases {
            assert_eq!(bytes(event.as_bytes()), *want, "{event}");
        }
    }

    /// Anthropic's exact shape is read without the walk, to the same count.
    #[test]
    fn the_exact_delta_counts_as_the_walk_does() {
        for (delta, payload) in [
            (r#"{"type":"text_delta","text":"Hello there"}"#, 11),
            (r#"{"type":"text_delta","text":""}"#, 0),
            (r#"{"type":"text_delta","text":"a\"b\\"}"#, 6),
            (
                r#"{"type":"input_json_delta","partial_json":"{\"a\": 1}"}"#,
                10,
            ),
            (
                r#"{"type":"thinking_delta","thinking":"\u00e9t\u00e9"}"#,
                13,
            ),
        ] {
            for index in ["0", "12"] {
                let data =
                    format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#);
                assert_eq!(exact_delta(data.as_bytes()), Some(payload), "{data}");
                assert_eq!(walk(data.as_bytes(), Shape::Unknown), payload, "{data}");
            }
        }
        // Another order or spacing: the walk reads it.
        let spaced = r#"{"type": "content_block_delta","index":0,"delta":{"type":"text_delta","text":"ab"}}"#;
        assert_eq!(exact_delta(spaced.as_bytes()), None);
        assert_eq!(bytes(spaced.as_bytes()), 2);
    }

    /// Whitespace around the colon and pretty-printed data read the same.
    #[test]
    fn spacing_does_not_change_the_count() {
        let tight =
            r#"data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"abc"}}"#;
        let loose = "data: { \"type\" : \"content_block_delta\" ,\n\"delta\" : { \"type\" : \"text_delta\", \"text\" :\t\"abc\" } }";
        assert_eq!(bytes(tight.as_bytes()), 3);
        assert_eq!(bytes(loose.as_bytes()), 3);
    }
}
