//! Byte-range edits of a body: everything outside the edited ranges stays byte-identical.
//!
//! # Example
//!
//! ```
//! use agw_core::edit::{Edit, apply};
//!
//! let body = br#"{"model":"opus","x":1}"#;
//! let out = apply(body, vec![Edit::new(10..14, "claude-opus-4-6")]);
//! assert_eq!(out, br#"{"model":"claude-opus-4-6","x":1}"#);
//! ```

use std::ops::Range;

/// Replace `range` of a body with `replacement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The bytes to replace.
    pub range: Range<usize>,
    /// What to put there.
    pub replacement: Vec<u8>,
}

impl Edit {
    /// An edit replacing `range` with `replacement`.
    pub fn new(range: Range<usize>, replacement: impl Into<Vec<u8>>) -> Edit {
        Edit {
            range,
            replacement: replacement.into(),
        }
    }

    /// An edit replacing `range` (the raw content of a JSON string) with `text`, escaped so the
    /// string stays valid JSON.
    pub fn json_string(range: Range<usize>, text: &str) -> Edit {
        let mut out = Vec::with_capacity(text.len());
        escape_json_into(text, &mut out);
        Edit {
            range,
            replacement: out,
        }
    }
}

/// Appends `s` escaped for the inside of a JSON string.
pub fn escape_json_into(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Applies `edits` to `body`. Edits are sorted; an edit overlapping an earlier one is merged
/// into it (the earlier replacement wins), so the result never duplicates or reorders bytes.
/// Ranges past the end of `body` are clamped.
pub fn apply(body: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| (e.range.start, e.range.end));
    let extra: usize = edits.iter().map(|e| e.replacement.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    let mut prev_end = 0;
    for e in edits {
        let start = e.range.start.min(body.len());
        let end = e.range.end.min(body.len()).max(start);
        if start < prev_end {
            // Overlaps the previous edit: extend it over this range.
            if end > prev_end {
                at = end;
                prev_end = end;
            }
            continue;
        }
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(&e.replacement);
        at = end;
        prev_end = end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_unsorted_edits() {
        let body = b"0123456789";
        let out = apply(
            body,
            vec![
                Edit::new(6..8, "B"),
                Edit::new(1..3, "A"),
                Edit::new(2..5, "x"),
                Edit::new(9..20, "C"),
            ],
        );
        assert_eq!(out, b"0A5B8C");
        assert_eq!(apply(body, vec![]), body);
    }

    #[test]
    fn escaping() {
        let mut out = Vec::new();
        escape_json_into("a\"b\\c\n\u{1}é", &mut out);
        assert_eq!(out, "a\\\"b\\\\c\\n\\u0001é".as_bytes());
    }
}
