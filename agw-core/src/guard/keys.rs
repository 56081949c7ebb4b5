//! The keys agw's response readers look for, and how a client that matches keys without
//! regard to case (Go's `encoding/json`, Newtonsoft's `Json.NET`) reads another spelling of
//! one: `Choices`, `TEXT` and `functioncall` are `choices`, `text` and `functionCall` to it.
//!
//! A response or stream event is read with such keys folded to agw's spelling, so text split
//! over `"Choices"` chunks is joined as a Go client joins it; a key written twice in two
//! spellings (a client takes one of them, agw cannot know which) is refused. Found by the
//! fifteenth session's black-box review: a card split over two `"Choices"` chunks passed.

/// The keys the response and stream readers match to find and join text, tool calls and
/// their inputs, sorted by their ASCII-lowercase form (a test checks). Not the keys whose
/// values agw leaves unread (identifiers and enums: `id`, `type`, `model`, `status`,
/// `signature`; media types; `data`): a key folded to one of those would have its value
/// skipped where it was read as text (review of this change: `Status` and `ID` values
/// passed unread).
const KNOWN: [&str; 69] = [
    "action",
    "actions",
    "args",
    "arguments",
    "audio",
    "candidates",
    "choices",
    "citations",
    "code",
    "code_execution_result",
    "code_interpreter",
    "codeExecutionResult",
    "completion",
    "completions",
    "content",
    "content_block",
    "content_index",
    "contentBlockDelta",
    "custom",
    "delta",
    "executable_code",
    "executableCode",
    "file",
    "function",
    "function_call",
    "functionCall",
    "generated_text",
    "generation",
    "generations",
    "image",
    "index",
    "inline_data",
    "inlineData",
    "input",
    "input_audio",
    "input_file",
    "input_image",
    "item",
    "logprobs",
    "message",
    "name",
    "operation",
    "output",
    "output_audio",
    "output_index",
    "output_text",
    "outputs",
    "outputText",
    "part",
    "partial_json",
    "partialArgs",
    "parts",
    "reasoning",
    "reasoning_content",
    "refusal",
    "response",
    "results",
    "step_details",
    "stop_reason",
    "summary_index",
    "text",
    "thinking",
    "thought",
    "token",
    "tool_calls",
    "tool_plan",
    "toolUse",
    "transcript",
    "value",
];

/// The longest key in [`KNOWN`].
const LONGEST: usize = 21;

/// The lengths of [`CAMEL`]'s keys, as bits (a test checks).
const CAMEL_LENGTHS: u32 = 1 << 7 | 1 << 10 | 1 << 11 | 1 << 12 | 1 << 14 | 1 << 17 | 1 << 19;

/// The known keys with an ASCII capital, in lower case: an all-lowercase key is looked up
/// only when it is one of these (`functioncall`), the rest being known as written or unknown.
const CAMEL: [&str; 8] = [
    "codeexecutionresult",
    "contentblockdelta",
    "executablecode",
    "functioncall",
    "inlinedata",
    "outputtext",
    "partialargs",
    "tooluse",
];

/// The spelling agw reads `key` as, when `key` is a known key spelled in other cases
/// (`Choices`, and `choiceſ` or a Kelvin sign's `K`: Go folds those to `s` and `k` too);
/// `None` for a key known as written, and for any other key.
pub(crate) fn folded(key: &[u8]) -> Option<&'static str> {
    let plain = key.iter().all(|b| b.is_ascii_lowercase() || *b == b'_');
    // Most keys: lower case, and of no length a camel-case key has.
    if plain
        && (CAMEL_LENGTHS.checked_shr(key.len() as u32).unwrap_or(0) & 1 == 0
            || !CAMEL.iter().any(|c| c.as_bytes() == key))
    {
        return None;
    }
    let mut buf = [0u8; LONGEST];
    let mut len = 0;
    let mut i = 0;
    while i < key.len() {
        let (c, width) = match key[i..] {
            [b, ..] if b.is_ascii() => (b.to_ascii_lowercase(), 1),
            // U+017F LATIN SMALL LETTER LONG S, U+212A KELVIN SIGN.
            [0xc5, 0xbf, ..] => (b's', 2),
            [0xe2, 0x84, 0xaa, ..] => (b'k', 3),
            _ => return None,
        };
        *buf.get_mut(len)? = c;
        len += 1;
        i += width;
    }
    let lower = &buf[..len];
    let i = KNOWN
        .binary_search_by(|k| {
            k.bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(lower.iter().copied())
        })
        .ok()?;
    (KNOWN[i].as_bytes() != key).then_some(KNOWN[i])
}

/// Folds the keys of `v`'s objects ([`folded`]), but inside a tool's input (`input`, `args`,
/// `arguments` and `partialArgs` objects: its keys are the tool's own); `Err` naming the
/// problem when an object has a key in two spellings.
pub(crate) fn fold_keys(v: &mut serde_json::Value) -> Result<(), &'static str> {
    match v {
        serde_json::Value::Object(o) => {
            let renames: Vec<(String, &'static str)> = o
                .keys()
                .filter_map(|k| folded(k.as_bytes()).map(|f| (k.clone(), f)))
                .collect();
            for (from, to) in renames {
                if o.contains_key(to) {
                    return Err("an object has a key twice, spelled in different cases");
                }
                if let Some(value) = o.remove(&from) {
                    o.insert(to.to_owned(), value);
                }
            }
            for (k, v) in o.iter_mut() {
                if !matches!(k.as_str(), "input" | "args" | "arguments" | "partialArgs") {
                    fold_keys(v)?;
                }
            }
            Ok(())
        }
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(fold_keys),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_keys_are_sorted_and_listed_once() {
        let lower: Vec<String> = KNOWN.iter().map(|k| k.to_ascii_lowercase()).collect();
        assert!(lower.windows(2).all(|w| w[0] < w[1]), "{lower:?}");
        assert_eq!(KNOWN.iter().map(|k| k.len()).max(), Some(LONGEST));
        let camel: Vec<String> = KNOWN
            .iter()
            .filter(|k| k.bytes().any(|b| b.is_ascii_uppercase()))
            .map(|k| k.to_ascii_lowercase())
            .collect();
        assert_eq!(camel, CAMEL);
        let lengths = CAMEL.iter().fold(0u32, |m, c| m | 1 << c.len());
        assert_eq!(lengths, CAMEL_LENGTHS);
    }

    #[test]
    fn other_spellings_of_known_keys_fold() {
        for (key, want) in [
            ("Choices", Some("choices")),
            ("TEXT", Some("text")),
            ("Delta", Some("delta")),
            ("functioncall", Some("functionCall")),
            ("TOOL_CALLS", Some("tool_calls")),
            ("choice\u{17f}", Some("choices")),
            ("tool_call\u{17f}", Some("tool_calls")),
            ("to\u{212a}en", Some("token")),
            ("\u{212a}", None),
            ("Status", None),
            ("ID", None),
            ("choices", None),
            ("mimeType", None),
            ("Unknown", None),
            ("x", None),
        ] {
            assert_eq!(folded(key.as_bytes()), want, "{key}");
        }
    }

    #[test]
    fn objects_fold_but_tool_inputs_and_two_spellings_are_refused() {
        let mut v = json!({"Choices": [{"Delta": {"Content": "a"}}],
            "input": {"Text": 1}, "functionCall": {"args": {"Name": 2}}});
        fold_keys(&mut v).unwrap();
        assert_eq!(
            v,
            json!({"choices": [{"delta": {"content": "a"}}],
                "input": {"Text": 1}, "functionCall": {"args": {"Name": 2}}})
        );
        let mut v = json!({"delta": {"text": "a", "TEXT": "b"}});
        assert!(fold_keys(&mut v).is_err());
    }
}
