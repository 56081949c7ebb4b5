//! Asking an OpenAI chat stream for its usage: the request edit that adds
//! `"stream_options":{"include_usage":true}`, and the recognition of the extra chunk it makes
//! the upstream send.
//!
//! A streamed chat completion reports usage only when asked (`stream_options.include_usage`);
//! most clients (the OpenAI SDK's `stream=True`) do not ask, and a gateway that counts usage
//! would otherwise charge an estimate: the request's whole output cap. [`ask_for_usage`]
//! finds the one edit that asks, as a byte splice (the rest of the body is forwarded as sent);
//! [`is_usage_chunk`] recognises the chunk it adds — empty `choices` and a `usage` object,
//! just before `data: [DONE]` — so that the client, which did not ask for it, does not see it.
//!
//! # Example
//!
//! ```
//! use agw_core::edit::apply;
//! use agw_core::usage::{UsageAsk, ask_for_usage, is_usage_chunk};
//!
//! let body = br#"{"model":"gpt-4o","stream":true,"messages":[]}"#;
//! let UsageAsk::Edit(edit) = ask_for_usage(body) else { panic!() };
//! assert_eq!(
//!     apply(body, vec![edit]),
//!     br#"{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true,"messages":[]}"#
//! );
//! assert!(is_usage_chunk(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5}}\n\n"));
//! assert!(!is_usage_chunk(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0}],\"usage\":null}\n\n"));
//! ```
//!
//! # Limits
//!
//! A body whose `stream_options` or `include_usage` is given twice is [`UsageAsk::Ambiguous`]:
//! which of the two a server takes is its choice (OpenAI's takes the last), so no edit of one
//! is sure to ask, and a gateway that forwarded it would charge an estimate (twenty-first
//! session's red team); the caller refuses it. A `stream_options` that is neither an object
//! nor `null`, or an `include_usage` that is not a boolean, is left as it is
//! ([`UsageAsk::Leave`]): the server refuses it. Keys are matched exactly, as OpenAI's server
//! reads them.

use crate::edit::Edit;
use crate::json::{JsonError, Scanner};

/// What [`ask_for_usage`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageAsk {
    /// The client asked for usage itself (`"include_usage": true`): nothing to change, and its
    /// usage chunk is the client's.
    Asked,
    /// The edit that asks: the upstream then sends a usage chunk the client did not ask for.
    /// A client's explicit `"include_usage": false` is turned to `true` too (it is a request
    /// not to receive the chunk, which it does not: the chunk is dropped on the way back).
    Edit(Edit),
    /// Not a body agw edits (not a JSON object, a value of another type).
    Leave,
    /// `stream_options` or its `include_usage` given twice: no one edit is sure to ask, so
    /// the request is refused (see the [module docs](self)).
    Ambiguous,
}

/// The edit that asks an OpenAI chat request for its usage (see the [module docs](self)).
pub fn ask_for_usage(body: &[u8]) -> UsageAsk {
    read(body).unwrap_or(UsageAsk::Leave)
}

const ADD: &str = r#""stream_options":{"include_usage":true}"#;

fn read(body: &[u8]) -> Result<UsageAsk, JsonError> {
    let mut sc = Scanner::new(body)?;
    let open = sc.position();
    if sc.peek() != Some(b'{') {
        return Ok(UsageAsk::Leave);
    }
    // The value of `stream_options` (its range), and whether any key came at all.
    let mut options: Option<std::ops::Range<usize>> = None;
    let mut twice = false;
    let mut keys = 0usize;
    sc.object(|sc, key| {
        keys += 1;
        if sc.key_is(&key, "stream_options") {
            twice |= options.is_some();
            options = Some(sc.skip()?);
            Ok(())
        } else {
            sc.skip_fast()
        }
    })?;
    if twice {
        return Ok(UsageAsk::Ambiguous);
    }
    let Some(range) = options else {
        // First in the object: `{` + `"stream_options":{…},` + the rest as sent.
        let mut text = String::from("{");
        text.push_str(ADD);
        if keys > 0 {
            text.push(',');
        }
        return Ok(UsageAsk::Edit(Edit::new(open..open + 1, text)));
    };
    match body[range.start] {
        b'n' => Ok(UsageAsk::Edit(Edit::new(
            range,
            r#"{"include_usage":true}"#,
        ))),
        b'{' => {
            let mut inner = sc.at(range.start);
            let mut include: Option<std::ops::Range<usize>> = None;
            let (mut again, mut members) = (false, 0usize);
            inner.object(|sc, key| {
                members += 1;
                if sc.key_is(&key, "include_usage") {
                    again |= include.is_some();
                    include = Some(sc.skip()?);
                    Ok(())
                } else {
                    sc.skip().map(drop)
                }
            })?;
            match (again, include) {
                (true, _) => Ok(UsageAsk::Ambiguous),
                (false, None) => {
                    let mut text = String::from(r#"{"include_usage":true"#);
                    if members > 0 {
                        text.push(',');
                    }
                    Ok(UsageAsk::Edit(Edit::new(
                        range.start..range.start + 1,
                        text,
                    )))
                }
                (false, Some(v)) => Ok(match &body[v.clone()] {
                    b"true" => UsageAsk::Asked,
                    b"false" => UsageAsk::Edit(Edit::new(v, "true")),
                    _ => UsageAsk::Leave,
                }),
            }
        }
        _ => Ok(UsageAsk::Leave),
    }
}

/// Whether a server-sent event (bytes as on the wire) is an OpenAI chat stream's usage chunk:
/// its data is an object whose `choices` is an empty array and whose `usage` is an object.
/// Other chunks (`"usage": null` on each when usage was asked for) and `data: [DONE]` are not.
pub fn is_usage_chunk(event: &[u8]) -> bool {
    if memchr::memmem::find(event, b"\"usage\"").is_none() {
        return false;
    }
    // One `data:` line: what OpenAI sends. An event of several is not recognised (kept).
    let mut data = None;
    for line in event.split(|&b| b == b'\n' || b == b'\r') {
        if let Some(rest) = line.strip_prefix(b"data:") {
            if data.is_some() {
                return false;
            }
            data = Some(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    let Some(data) = data else {
        return false;
    };
    let Ok(mut sc) = Scanner::new(data) else {
        return false;
    };
    if sc.peek() != Some(b'{') {
        return false;
    }
    let (mut choices, mut usage) = (None, None);
    let read = sc.object(|sc, key| {
        if sc.key_is(&key, "choices") {
            let mut n = 0usize;
            let is_array = sc.peek() == Some(b'[');
            if is_array {
                sc.array(|sc, _| {
                    n += 1;
                    sc.skip_fast()
                })?;
            } else {
                sc.skip_fast()?;
            }
            choices = Some(is_array && n == 0);
            Ok(())
        } else if sc.key_is(&key, "usage") {
            usage = Some(sc.peek() == Some(b'{'));
            sc.skip_fast()
        } else {
            sc.skip_fast()
        }
    });
    read.is_ok() && choices == Some(true) && usage == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::apply;

    fn edited(body: &str) -> Option<String> {
        match ask_for_usage(body.as_bytes()) {
            UsageAsk::Edit(e) => Some(String::from_utf8(apply(body.as_bytes(), vec![e])).unwrap()),
            _ => None,
        }
    }

    #[test]
    fn the_edit_asks_for_usage_and_changes_nothing_else() {
        let cases = [
            (
                r#"{"model":"m","stream":true}"#,
                r#"{"stream_options":{"include_usage":true},"model":"m","stream":true}"#,
            ),
            (
                " \n{ \"model\" : \"m\" }",
                " \n{\"stream_options\":{\"include_usage\":true}, \"model\" : \"m\" }",
            ),
            ("{}", r#"{"stream_options":{"include_usage":true}}"#),
            (
                r#"{"model":"m","stream_options":null}"#,
                r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            ),
            (
                r#"{"model":"m","stream_options":{}}"#,
                r#"{"model":"m","stream_options":{"include_usage":true}}"#,
            ),
            (
                r#"{"model":"m","stream_options": { "x" : 1 }}"#,
                r#"{"model":"m","stream_options": {"include_usage":true, "x" : 1 }}"#,
            ),
            (
                r#"{"stream_options":{"include_usage":false},"model":"m"}"#,
                r#"{"stream_options":{"include_usage":true},"model":"m"}"#,
            ),
            // Keys match exactly: another spelling is not OpenAI's.
            (
                r#"{"Stream_Options":{"include_usage":true}}"#,
                r#"{"stream_options":{"include_usage":true},"Stream_Options":{"include_usage":true}}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(edited(body).as_deref(), Some(want), "{body}");
            let out: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(out["stream_options"]["include_usage"], true, "{want}");
        }
    }

    #[test]
    fn asked_or_unclear_bodies_are_left() {
        let asked = [
            r#"{"stream_options":{"include_usage":true}}"#,
            r#"{"stream_options":{"x":1, "include_usage" : true}}"#,
        ];
        for body in asked {
            assert_eq!(ask_for_usage(body.as_bytes()), UsageAsk::Asked, "{body}");
        }
        let left = [
            "",
            "[]",
            "not json",
            r#"{"stream_options":"yes"}"#,
            r#"{"stream_options":{"include_usage":1}}"#,
            r#"{"model":"m""#,
        ];
        for body in left {
            assert_eq!(ask_for_usage(body.as_bytes()), UsageAsk::Leave, "{body}");
        }
        // A key given twice, however spelled: the server takes one of the two (OpenAI's the
        // last), so no single edit is sure to ask.
        let ambiguous = [
            r#"{"stream_options":{}, "stream_options":{}}"#,
            r#"{"stream_options":{"include_usage":true},"stream_option\u0073":null}"#,
            r#"{"stream_options":{"include_usage":true,"include_usage":false}}"#,
            r#"{"stream_options":{"include_usage":false,"include_usag\u0065":true}}"#,
        ];
        for body in ambiguous {
            assert_eq!(
                ask_for_usage(body.as_bytes()),
                UsageAsk::Ambiguous,
                "{body}"
            );
        }
    }

    #[test]
    fn only_the_usage_chunk_is_recognised() {
        let usage = [
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
            "data:{\"usage\":{\"prompt_tokens\":5},\"choices\":[ ]}\r\n\r\n",
        ];
        for e in usage {
            assert!(is_usage_chunk(e.as_bytes()), "{e}");
        }
        let other = [
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{}}],\"usage\":{\"prompt_tokens\":5}}\n\n",
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"usage\":{\"prompt_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[],\ndata: \"usage\":{}}\n\n",
            ": a comment with \"usage\"\n\n",
        ];
        for e in other {
            assert!(!is_usage_chunk(e.as_bytes()), "{e}");
        }
    }
}
