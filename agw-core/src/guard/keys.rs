//! The keys agw's response readers look for, and how a client that matches keys without
//! regard to case (Go's `encoding/json`, Newtonsoft's `Json.NET`) reads another spelling of
//! one: `Choices`, `TEXT` and `mimetype` are `choices`, `text` and `mimeType` to it.
//!
//! A response or stream event is read with such keys folded to agw's spelling, so text split
//! over `"Choices"` chunks is joined as a Go client joins it; a key written twice in two
//! spellings (a client takes one of them, agw cannot know which) is refused. Found by the
//! fifteenth session's black-box review: a card split over two `"Choices"` chunks passed.

/// Every key the response and stream readers match, sorted by its ASCII-lowercase form
/// (a test checks).
const KNOWN: [&str; 96] = [
    "action",
    "actions",
    "args",
    "arguments",
    "audio",
    "call_id",
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
    "custom_id",
    "data",
    "delta",
    "encrypted_content",
    "error",
    "executable_code",
    "executableCode",
    "file",
    "finish_reason",
    "format",
    "function",
    "function_call",
    "functionCall",
    "generated_text",
    "generation",
    "generations",
    "id",
    "image",
    "index",
    "inline_data",
    "inlineData",
    "input",
    "input_audio",
    "input_file",
    "input_image",
    "item",
    "item_id",
    "logprobs",
    "media_type",
    "message",
    "mime_type",
    "mimeType",
    "model",
    "name",
    "obfuscation",
    "object",
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
    "previous_response_id",
    "reasoning",
    "reasoning_content",
    "refusal",
    "response",
    "response_id",
    "results",
    "role",
    "service_tier",
    "signature",
    "status",
    "step_details",
    "stop_reason",
    "summary_index",
    "system_fingerprint",
    "text",
    "thinking",
    "thought",
    "token",
    "tool_call_id",
    "tool_calls",
    "tool_plan",
    "tool_use_id",
    "toolUse",
    "transcript",
    "type",
    "usage",
    "usageMetadata",
    "value",
];

/// The longest key in [`KNOWN`].
const LONGEST: usize = 21;

/// The known keys with an ASCII capital, in lower case: an all-lowercase key is looked up
/// only when it is one of these (`mimetype`), the rest being known as written or unknown.
const CAMEL: [&str; 10] = [
    "codeexecutionresult",
    "contentblockdelta",
    "executablecode",
    "functioncall",
    "inlinedata",
    "mimetype",
    "outputtext",
    "partialargs",
    "tooluse",
    "usagemetadata",
];

/// The spelling agw reads `key` as, when `key` is a known key spelled in other cases
/// (`Choices`); `None` for a key known as written, and for any other key.
pub(crate) fn folded(key: &[u8]) -> Option<&'static str> {
    if key.len() > LONGEST {
        return None;
    }
    let upper = key.iter().any(u8::is_ascii_uppercase);
    if !upper && !CAMEL.iter().any(|c| c.as_bytes() == key) {
        return None;
    }
    let mut buf = [0u8; LONGEST];
    let lower = &mut buf[..key.len()];
    lower.copy_from_slice(key);
    lower.make_ascii_lowercase();
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
    }

    #[test]
    fn other_spellings_of_known_keys_fold() {
        for (key, want) in [
            ("Choices", Some("choices")),
            ("TEXT", Some("text")),
            ("Delta", Some("delta")),
            ("mimetype", Some("mimeType")),
            ("MIME_TYPE", Some("mime_type")),
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
