//! Completing a JSON value that was cut short: a tool call's input when the model hit its token
//! limit in the middle of it (Anthropic ends such a stream with `stop_reason: max_tokens`, chat
//! with `finish_reason: length`, Responses with `response.incomplete`).
//!
//! Clients read such an input with partial-JSON readers (the Python SDK's `jiter` in partial
//! mode, the TypeScript SDK's partial parser): a string cut short is the text it has so far, a
//! key cut short is still a key, a number or literal cut short and a dangling comma are
//! dropped. [`complete`] gives the same value as a whole document, so that the guard reads
//! every string a client could see; anything that is not the start of a JSON value is refused
//! (`None`), and read by no one.

/// A cut-short value made whole: `b[..kept]` followed by `closers` is valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completed {
    /// How many bytes of the input start the document.
    pub kept: usize,
    /// What closes it: a string's quote, `:null` after a key, `null` for a missing value, and
    /// the containers' brackets.
    pub closers: Vec<u8>,
}

/// Where a container is between its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// After `{` or `[`: a member or the end.
    First,
    /// After `,`: a member must follow (the comma is at the position kept here).
    Comma(usize),
    /// After an object's key: `:` must follow.
    Colon,
    /// After `:`: a value must follow.
    Value,
    /// After a member: `,` or the end.
    Next,
}

/// Completes `b`, the start of a JSON value (a whole value, too: then `closers` is empty).
/// `None` if `b` is not the start of any JSON value, or holds nothing but whitespace.
pub(crate) fn complete(b: &[u8]) -> Option<Completed> {
    // Each open container: whether it is an object, and where it is between members.
    let mut stack: Vec<(bool, Slot)> = Vec::new();
    let mut top_done = false;
    let mut i = 0;
    let ws = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t');
    loop {
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return finish(b, &stack, top_done, None);
        }
        let c = b[i];
        if top_done {
            return None;
        }
        let (object, slot) = match stack.last().copied() {
            Some(s) => (s.0, Some(s.1)),
            None => (false, None),
        };
        // What the container (or the top level) expects here.
        let wants_key = object && matches!(slot, Some(Slot::First | Slot::Comma(_)));
        let wants_value = slot.is_none()
            || (!object && matches!(slot, Some(Slot::First | Slot::Comma(_))))
            || slot == Some(Slot::Value);
        match c {
            b'}' | b']' => {
                let closes_object = c == b'}';
                if stack.is_empty()
                    || object != closes_object
                    || !matches!(slot, Some(Slot::First | Slot::Next))
                {
                    return None;
                }
                stack.pop();
                i += 1;
                member_done(&mut stack, &mut top_done);
            }
            b',' if slot == Some(Slot::Next) => {
                stack.last_mut().expect("in a container").1 = Slot::Comma(i);
                i += 1;
            }
            b':' if slot == Some(Slot::Colon) => {
                stack.last_mut().expect("in a container").1 = Slot::Value;
                i += 1;
            }
            b'"' if wants_key || wants_value => {
                let start = i;
                match string_end(b, i + 1)? {
                    Some(end) => {
                        i = end;
                        if wants_key {
                            stack.last_mut().expect("in a container").1 = Slot::Colon;
                        } else {
                            member_done(&mut stack, &mut top_done);
                        }
                    }
                    None => {
                        let kept = cut_escape(b, start + 1);
                        let mut closers = vec![b'"'];
                        if wants_key {
                            closers.extend_from_slice(b":null");
                        }
                        return finish_at(kept, closers, &stack);
                    }
                }
            }
            b'{' | b'[' if wants_value => {
                stack.push((c == b'{', Slot::First));
                if stack.len() > 128 {
                    return None;
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' if wants_value => {
                let start = i;
                let end = b[i..]
                    .iter()
                    .position(
                        |&c| !matches!(c, b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E'),
                    )
                    .map_or(b.len(), |k| i + k);
                let token = &b[start..end];
                let whole = end < b.len();
                if whole {
                    if !is_scalar(token) {
                        return None;
                    }
                    i = end;
                    member_done(&mut stack, &mut top_done);
                    continue;
                }
                // Cut inside the scalar: a number's digits so far (without a dangling `.`,
                // `e` or sign) are kept; a literal cut short is dropped, as is a number
                // with no digit yet.
                if !is_scalar_start(token) {
                    return None;
                }
                let keep = number_prefix(token);
                if keep > 0 {
                    return finish_at(start + keep, Vec::new(), &stack);
                }
                return finish(b, &stack, top_done, Some(start));
            }
            _ => return None,
        }
    }
}

/// A member (or the top-level value) is complete.
fn member_done(stack: &mut [(bool, Slot)], top_done: &mut bool) {
    match stack.last_mut() {
        Some(s) => s.1 = Slot::Next,
        None => *top_done = true,
    }
}

/// The input ended (or, with `cut`, is cut back to `cut`, a dropped scalar's start) between
/// tokens: closes what is open.
fn finish(
    b: &[u8],
    stack: &[(bool, Slot)],
    top_done: bool,
    cut: Option<usize>,
) -> Option<Completed> {
    let end = cut.unwrap_or(b.len());
    let Some(&(object, slot)) = stack.last() else {
        // The top level: a whole value, or nothing.
        return top_done.then(|| Completed {
            kept: end,
            closers: Vec::new(),
        });
    };
    let (kept, closers): (usize, &[u8]) = match slot {
        Slot::First | Slot::Next => (end, b""),
        // A dangling comma goes.
        Slot::Comma(at) => (at, b""),
        Slot::Colon => (end, b":null"),
        Slot::Value => (end, b"null"),
    };
    debug_assert!(object || !matches!(slot, Slot::Colon | Slot::Value));
    finish_at(kept, closers.to_vec(), stack)
}

/// `b[..kept]`, then `closers`, then each open container's bracket.
fn finish_at(kept: usize, mut closers: Vec<u8>, stack: &[(bool, Slot)]) -> Option<Completed> {
    for &(object, _) in stack.iter().rev() {
        closers.push(if object { b'}' } else { b']' });
    }
    Some(Completed { kept, closers })
}

/// The end (past the closing quote) of the string whose content starts at `from`; `Ok(None)`
/// if the input ends inside it; `None` (the outer) if it holds a raw control character or an
/// invalid escape.
fn string_end(b: &[u8], from: usize) -> Option<Option<usize>> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(Some(i + 1)),
            b'\\' => {
                let Some(&e) = b.get(i + 1) else {
                    return Some(None);
                };
                match e {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let hex = &b[i + 2..b.len().min(i + 6)];
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        if hex.len() < 4 {
                            return Some(None);
                        }
                        i += 6;
                    }
                    _ => return None,
                }
            }
            0..0x20 => return None,
            _ => i += 1,
        }
    }
    Some(None)
}

/// The end of a string's content that ends the input, without an escape cut short (a lone
/// `\`, or `\u` with fewer than four digits) or a high surrogate's escape whose low half is
/// missing.
fn cut_escape(b: &[u8], from: usize) -> usize {
    let mut i = from;
    let mut good = from;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            good = i;
            continue;
        }
        let len = if b.get(i + 1) == Some(&b'u') { 6 } else { 2 };
        if i + len > b.len() {
            break;
        }
        let high = len == 6
            && std::str::from_utf8(&b[i + 2..i + 6])
                .ok()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
                .is_some_and(|u| (0xd800..0xdc00).contains(&u));
        i += len;
        if !high {
            good = i;
        }
    }
    good
}

/// Whether `t` is a whole JSON number or literal.
fn is_scalar(t: &[u8]) -> bool {
    match t {
        b"true" | b"false" | b"null" => true,
        _ => number_prefix(t) == t.len() && t.last().is_some_and(u8::is_ascii_digit),
    }
}

/// Whether `t` can start a JSON number or literal.
fn is_scalar_start(t: &[u8]) -> bool {
    if [&b"true"[..], b"false", b"null"]
        .iter()
        .any(|l| l.starts_with(t))
    {
        return true;
    }
    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, any prefix of it.
    let mut i = usize::from(t.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    match t.get(i) {
        None => return true,
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        Some(_) => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return i == t.len();
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        digits(&mut i);
    }
    i == t.len()
}

/// The length of the longest prefix of `t` that is a whole JSON number (0 if none).
fn number_prefix(t: &[u8]) -> usize {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let s = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > s
    };
    if t.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return 0;
    }
    let mut good = i;
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return good;
        }
        good = i;
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) {
            good = i;
        }
    }
    good
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(b: &str) -> Option<String> {
        complete(b.as_bytes()).map(|c| {
            let mut s = b[..c.kept].to_owned();
            s.push_str(std::str::from_utf8(&c.closers).unwrap());
            s
        })
    }

    #[test]
    fn cut_values_are_completed_as_partial_readers_read_them() {
        for (cut, want) in [
            (
                r#"{"file_path": "/tmp/a.py", "content": "import os\nprint("#,
                r#"{"file_path": "/tmp/a.py", "content": "import os\nprint("}"#,
            ),
            (r#"{"a": "x\"#, r#"{"a": "x"}"#),
            (r#"{"a": "x\u00"#, r#"{"a": "x"}"#),
            (r#"{"a": "x\ud83d"#, r#"{"a": "x"}"#),
            (r#"{"a": "x\ud83d\ude00"#, r#"{"a": "x\ud83d\ude00"}"#),
            (r#"{"a": 1, "SECRET-12"#, r#"{"a": 1, "SECRET-12":null}"#),
            (r#"{"a": 1, "k""#, r#"{"a": 1, "k":null}"#),
            (r#"{"a": 1, "k":"#, r#"{"a": 1, "k":null}"#),
            (r#"{"a": 1,"#, r#"{"a": 1}"#),
            (r#"{"a": [1, 2,"#, r#"{"a": [1, 2]}"#),
            (r#"{"a": [1, 41111111"#, r#"{"a": [1, 41111111]}"#),
            (r#"{"a": 1.5e"#, r#"{"a": 1.5}"#),
            (r#"{"a": -"#, r#"{"a": null}"#),
            (r#"{"a": tr"#, r#"{"a": null}"#),
            (r#"[tr"#, r#"[]"#),
            (r#"[1, fa"#, r#"[1]"#),
            (r#"{"a": {"b": ["c", {"#, r#"{"a": {"b": ["c", {}]}}"#),
            (r#"{"#, r#"{}"#),
            (r#"{"a": true}"#, r#"{"a": true}"#),
            (r#""abc"#, r#""abc""#),
            (r#"  {"a" : "b" }  "#, r#"  {"a" : "b" }  "#),
        ] {
            let got = whole(cut).unwrap_or_else(|| panic!("{cut}"));
            assert_eq!(got, want, "{cut}");
            serde_json::from_str::<serde_json::Value>(&got)
                .unwrap_or_else(|e| panic!("{got}: {e}"));
        }
    }

    #[test]
    fn what_starts_no_json_value_is_refused() {
        for bad in [
            "",
            "   ",
            r#"{"command": "ls"} trailing"#,
            r#"{"a" "b"}"#,
            r#"{"a": x"#,
            r#"{"a": 1 2"#,
            r#"{"a": "\q"#,
            r#"{"a": "\u00zz"#,
            "{\"a\": \"x\u{1}",
            r#"{"a": 1}}"#,
            r#"[1,,"#,
            r#"{,"#,
            r#"{"a": truex"#,
            r#"{"a": 01"#,
            r#"{"a": 1.e"#,
            r#"{"a": --"#,
            r#"[}"#,
        ] {
            assert_eq!(whole(bad), None, "{bad}");
        }
    }

    /// Every prefix of valid documents is completed into valid JSON whose strings start
    /// those of the whole document.
    #[test]
    fn every_prefix_of_a_document_completes() {
        let docs = [
            r#"{"file_path": "/tmp/x", "content": "a\"b\\c\u00e9\ud83d\ude00 d", "n": [1, -2.5e+3, true, false, null, {"k": {}}], "e": []}"#,
            r#"[{"a": "b"}, ["c", 12345678901234], "tail"]"#,
        ];
        for doc in docs {
            for end in 1..=doc.len() {
                let cut = &doc[..end];
                let got = whole(cut).unwrap_or_else(|| panic!("{cut}"));
                serde_json::from_str::<serde_json::Value>(&got)
                    .unwrap_or_else(|e| panic!("{cut} -> {got}: {e}"));
            }
        }
    }
}
