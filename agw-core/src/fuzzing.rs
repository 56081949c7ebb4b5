//! Entry points for the fuzz targets in `fuzz/`: crate-private parts of the JSON scanner, the
//! string decoder and request extraction, exposed as they are.
//!
//! Not part of the API: hidden from the docs, no stability promise. Each function is a thin
//! wrapper that runs the same code the guard runs, so a fuzz target checks the real thing.
//!
//! # Example
//!
//! ```
//! use agw_core::fuzzing;
//!
//! let doc = br#" "\u0063re\u200bdit" "#;
//! let s = fuzzing::scan_string(doc)?;
//! assert_eq!(s.text, b"credit");
//! assert_eq!(s.exact, "cre\u{200b}dit".as_bytes());
//! // Text byte 0 (`c`) came from the six bytes of the `\u0063` escape.
//! assert_eq!(fuzzing::map_back(s.raw_bytes(doc), s.identity, 0), Some(0..6));
//! # Ok::<(), agw_core::json::JsonError>(())
//! ```

use crate::guard::Field;
use crate::guard::extract::extract as extract_doc;
use crate::json::{Decoded, JsonError, Scanner};
use crate::route::RouteKind;
use std::ops::Range;

/// Scans a whole JSON document with agw's validating scanner (the one every request body goes
/// through): one value of any type, then only whitespace.
pub fn validate(doc: &[u8]) -> Result<(), JsonError> {
    let mut sc = Scanner::new(doc)?;
    sc.skip()?;
    sc.finish()
}

/// A document holding one JSON string, read the ways the guard reads strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedString {
    /// The byte range of the raw content between the quotes, in the document.
    pub raw: Range<usize>,
    /// Whether the content has a backslash escape.
    pub escaped: bool,
    /// The normalized text, from the two-pass path (scan, then decode the raw bytes).
    pub text: Vec<u8>,
    /// Whether [`ScannedString::text`] is byte for byte the raw content.
    pub identity: bool,
    /// The normalized text from the fused path (decoded while scanning).
    pub fused: Vec<u8>,
    /// Whether the fused path reported its text as the raw content.
    pub fused_identity: bool,
    /// Exact JSON unescaping without normalisation (how keys, roles and types are read).
    pub exact: Vec<u8>,
}

impl ScannedString {
    /// The raw content between the quotes, given the document it was scanned from.
    pub fn raw_bytes<'a>(&self, doc: &'a [u8]) -> &'a [u8] {
        &doc[self.raw.clone()]
    }
}

/// Scans `doc` as one JSON string (whitespace around it allowed) and decodes it both ways the
/// guard does: scan then [`decode`](crate::json), and the fused scan-and-decode.
pub fn scan_string(doc: &[u8]) -> Result<ScannedString, JsonError> {
    let mut sc = Scanner::new(doc)?;
    let mut fused_sc = sc.at(0);
    let s = sc.string()?;
    sc.finish()?;
    let raw = &doc[s.raw.clone()];
    let mut text = Vec::new();
    let kind = crate::json::decode(raw, s.escaped, &mut text)?;
    let mut fused = Vec::new();
    let (fused_str, fused_kind) = fused_sc.string_into(&mut fused)?;
    fused_sc.finish()?;
    debug_assert_eq!(fused_str, s);
    Ok(ScannedString {
        raw: s.raw.clone(),
        escaped: s.escaped,
        text,
        identity: kind == Decoded::Identity,
        fused,
        fused_identity: fused_kind == Decoded::Identity,
        exact: sc.str_value(&s).into_owned(),
    })
}

/// The raw range (relative to `raw`) that text byte `at` came from; `identity` as reported by
/// [`scan_string`]. `None` past the end of the text.
pub fn map_back(raw: &[u8], identity: bool, at: usize) -> Option<Range<usize>> {
    let kind = if identity {
        Decoded::Identity
    } else {
        Decoded::Transformed
    };
    crate::json::map_back(raw, kind, at)
}

/// The ASCII letter or digit `c` spells (tag characters — see [`is_tag`] for which runs —,
/// enclosed letters and digits NFKC leaves alone or writes with punctuation), read before
/// anything else; `None` for the rest.
pub fn spelled(c: char) -> Option<char> {
    crate::json::spelled(c)
}

/// Whether `c` is a tag character that spells printable ASCII (U+E0020–U+E007E): the decoder
/// spells a run of them holding two different ones and drops any other run.
pub fn is_tag(c: char) -> bool {
    crate::json::is_tag(c)
}

/// Whether the decoder removes `c` as an invisible or format character.
pub fn is_invisible(c: char) -> bool {
    crate::json::is_invisible(c)
}

/// What a character of a compatibility decomposition becomes in the matched text: `None` for
/// invisible characters and combining marks, the ASCII digit for a decimal digit, a space for a
/// blank, else itself.
pub fn fold(c: char) -> Option<char> {
    crate::json::fold(c)
}

/// Normalizes plain (unescaped) text the way streamed text is normalized: returns the text and,
/// for each of its bytes, the byte range of `s` it came from.
pub fn normalize_plain(s: &str) -> (Vec<u8>, Vec<Range<usize>>) {
    let (mut text, mut map) = (Vec::new(), Vec::new());
    crate::json::normalize_plain(s, &mut text, &mut map);
    (text, map)
}

/// One string the guard reads from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The byte range of the string's raw content (between the quotes) in the body.
    pub raw: Range<usize>,
    /// The normalized text the rules match.
    pub text: Vec<u8>,
    /// Whether the text is byte for byte the raw content (see [`map_back`]).
    pub identity: bool,
    /// The field the string belongs to.
    pub field: Field,
    /// Whether the string is newer than the last assistant turn (what [`Scope::Latest`] reads).
    ///
    /// [`Scope::Latest`]: crate::guard::Scope::Latest
    pub latest: bool,
    /// The index of the unit (strings matched as one text) the string belongs to.
    pub unit: usize,
    /// The field path, as reported in hits.
    pub path: String,
    /// A JSON number (`raw` is the whole number, no quotes), which masking replaces with a
    /// JSON string.
    pub number: bool,
}

/// Runs request extraction on `body` and lists every string the guard reads, in body order
/// within each unit.
pub fn extract(kind: RouteKind, body: &[u8]) -> Result<Vec<Segment>, JsonError> {
    let doc = extract_doc(kind, body, 0)?;
    let mut out: Vec<Segment> = Vec::with_capacity(doc.segs.len());
    for (ui, unit) in doc.units.iter().enumerate() {
        for seg in &doc.segs[unit.segs.clone()] {
            if let Some(i) = seg.inner {
                // A string of the JSON an `arguments` string holds: listed as that string, its
                // text the texts of every string of the JSON read in it, a line each.
                let raw = doc.inner[i as usize].raw.clone();
                let text = &doc.text[seg.text.clone()];
                match out.last_mut() {
                    Some(last) if last.raw == raw => {
                        last.text.push(b'\n');
                        last.text.extend_from_slice(text);
                    }
                    _ => out.push(Segment {
                        raw,
                        text: text.to_vec(),
                        identity: false,
                        field: unit.field,
                        latest: doc.is_latest(unit),
                        unit: ui,
                        path: seg.loc.to_string(),
                        number: false,
                    }),
                }
                continue;
            }
            out.push(Segment {
                raw: seg.raw.clone(),
                text: doc.text[seg.text.clone()].to_vec(),
                identity: seg.kind == Decoded::Identity,
                field: unit.field,
                latest: doc.is_latest(unit),
                unit: ui,
                path: seg.loc.to_string(),
                number: seg.number,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_lists_strings_with_their_raw_ranges() {
        let body = br#"{"system":"be nice","messages":[{"role":"user","content":[{"type":"text","text":"a\nb"}]}]}"#;
        let segs = extract(RouteKind::Messages, body).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(&body[segs[0].raw.clone()], b"be nice");
        assert_eq!(segs[0].field, Field::System);
        assert_eq!(segs[1].text, b"a\nb");
        assert_eq!(&body[segs[1].raw.clone()], br"a\nb");
        assert_eq!(segs[1].path, "messages[0].content[0].text");
        assert!(segs[1].latest && !segs[0].latest);
    }

    #[test]
    fn validation_and_string_scanning() {
        assert!(validate(b" [1, {\"a\": null}] ").is_ok());
        assert!(validate(b"[1,]").is_err());
        let s = scan_string(b"\"abc\"").unwrap();
        assert!(s.identity && s.fused_identity && !s.escaped);
        assert_eq!(s.raw, 1..4);
        assert!(scan_string(b"1").is_err());
        assert_eq!(normalize_plain("ｆ").0, b"f");
    }
}
