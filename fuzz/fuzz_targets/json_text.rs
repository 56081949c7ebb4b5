//! JSON scanning and string decoding, differential against serde_json.
//!
//! For every document:
//!
//! 1. **Acceptance.** agw's scanner accepts a document exactly when serde_json accepts it
//!    after one documented leniency is undone: ill-formed surrogate escapes (agw decodes each
//!    unpaired `\uD800`–`\uDFFF` to U+200B, an invisible character the normalised text drops,
//!    since 2026-12-01; they become `\u200b`). Raw control characters
//!    inside strings are refused by both (agw tolerated them until 2026-11-30). serde_json
//!    validates as `RawValue`, which has no depth limit; agw rejects nesting deeper than
//!    `MAX_DEPTH` (128), checked separately.
//! 2. **Decoding** (documents that are one string). With the same leniencies undone:
//!    - exact unescaping (how agw reads keys, roles and block types) equals serde_json's string;
//!    - the normalized text equals an independent implementation of the documented rule,
//!      applied to serde_json's string: read the characters that spell ASCII letters and
//!      digits (`fuzzing::spelled`: enclosed letters and digits, and the tag characters of a
//!      run of them that holds two different ones; other tag runs are invisible) as them, drop
//!      invisible characters (C0/C1 controls that are not
//!      whitespace included), read the ASCII whitespace controls as whitespace (vertical tab,
//!      form feed and U+001C–U+001E as `\n`, U+001F as a space), group each starter with the
//!      combining marks after it, take each group's NFKD, drop invisibles and combining marks
//!      (Mn, Me) from it, read decimal digits as ASCII, blanks as spaces and other line breaks
//!      as `\n`, and compose (NFC) what is left — except that a raw (unescaped) `DEL` is
//!      kept as it is (an escaped one is dropped); the reference marks it as the private-use
//!      character U+F0000 + byte before decoding and unmarks it after. (The voicing mark of `ｶﾞ` is dropped like any mark: it reads `カ`.)
//!      For ASCII strings without `\u` escapes the text equals serde_json's string byte for
//!      byte, less the controls of `\b` escapes and with `\f` escapes read as `\n`;
//!    - the fused scan-and-decode path gives the same text and kind as scan-then-decode.
//! 3. **Mapping back.** For every text byte, `map_back` returns a non-empty range inside the
//!    raw content, starting no earlier than the previous byte's; a text byte that starts a
//!    character maps to a range starting on a source character boundary (never inside an
//!    escape or a UTF-8 sequence), one that ends a character to a range ending on one; and
//!    decoding that range on its own gives text that covers the byte. Past the end: `None`.
#![no_main]

use agw_core::fuzzing::{self, ScannedString};
use agw_fuzz::literal;
use agw_fuzz::text::Text;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

/// A token of a JSON-ish document; most sequences are invalid, which is the point.
#[derive(Debug, Clone, Arbitrary)]
enum Tok {
    Open(bool),
    Close(bool),
    Comma,
    Colon,
    Str(Text),
    Num(u8),
    Lit(u8),
    Ws(u8),
    Byte(u8),
}

#[derive(Clone, Arbitrary)]
enum Input {
    /// One string literal with whitespace around it.
    String { lead: u8, text: Text, trail: u8 },
    /// A token soup.
    Tokens(Vec<Tok>),
    /// Any bytes.
    Raw(Vec<u8>),
}

const WS: &[&[u8]] = &[b"", b" ", b"\n", b"\r\n\t ", b"\x0c", b"\xc2\xa0"];
const NUM: &[&[u8]] = &[
    b"0", b"-", b"1", b"12", b".", b"5", b"e", b"E+", b"-0", b"01", b"1.5e-3",
];
const LIT: &[&[u8]] = &[b"true", b"false", b"null", b"tru", b"nul", b"True"];

impl Input {
    fn doc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Input::String { lead, text, trail } => {
                out.extend_from_slice(WS[*lead as usize % WS.len()]);
                text.render_quoted(&mut out);
                out.extend_from_slice(WS[*trail as usize % WS.len()]);
            }
            Input::Tokens(toks) => {
                for t in toks {
                    match t {
                        Tok::Open(a) => out.push(if *a { b'[' } else { b'{' }),
                        Tok::Close(a) => out.push(if *a { b']' } else { b'}' }),
                        Tok::Comma => out.push(b','),
                        Tok::Colon => out.push(b':'),
                        Tok::Str(t) => t.render_quoted(&mut out),
                        Tok::Num(i) => out.extend_from_slice(NUM[*i as usize % NUM.len()]),
                        Tok::Lit(i) => out.extend_from_slice(LIT[*i as usize % LIT.len()]),
                        Tok::Ws(i) => out.extend_from_slice(WS[*i as usize % WS.len()]),
                        Tok::Byte(b) => out.push(*b),
                    }
                }
            }
            Input::Raw(b) => out.extend_from_slice(b),
        }
        out
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "let doc = {};", literal(&self.doc()))
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let h = b.get(..4)?;
    if !h.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

/// The first private-use character of the marks for raw ASCII controls (see the module docs).
const MARK: u32 = 0xF0000;

/// The document with agw's leniency undone (see the module docs), and its deepest nesting
/// outside strings. With `mark`, a raw `DEL` in a string becomes a mark (raw ASCII controls
/// too, though a document holding one is refused before its text is compared).
fn strict(doc: &[u8], mark: bool) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(doc.len());
    let (mut depth, mut max_depth) = (0usize, 0usize);
    let mut in_str = false;
    let mut i = 0;
    while i < doc.len() {
        let b = doc[i];
        if !in_str {
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => {
                    depth += 1;
                    max_depth = max_depth.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_str = false;
                out.push(b);
                i += 1;
            }
            b'\\' if doc.get(i + 1) == Some(&b'u') => {
                let Some(hi) = hex4(&doc[i + 2..]) else {
                    out.extend_from_slice(&doc[i..i + 2]);
                    i += 2;
                    continue;
                };
                let lo = (doc.get(i + 6..i + 8) == Some(b"\\u"))
                    .then(|| hex4(&doc[i + 8..]))
                    .flatten();
                if (0xd800..0xdc00).contains(&hi)
                    && lo.is_some_and(|l| (0xdc00..0xe000).contains(&l))
                {
                    out.extend_from_slice(&doc[i..i + 12]);
                    i += 12;
                } else if (0xd800..0xe000).contains(&hi) {
                    out.extend_from_slice(b"\\u200b");
                    i += 6;
                } else {
                    out.extend_from_slice(&doc[i..i + 6]);
                    i += 6;
                }
            }
            b'\\' => {
                // The escaped byte is copied as it is, even a control byte: `\` + U+0001 must
                // stay an invalid escape.
                let end = (i + 2).min(doc.len());
                out.extend_from_slice(&doc[i..end]);
                i = end;
            }
            0x00..=0x1f | 0x7f if mark => {
                let c = char::from_u32(MARK + u32::from(b)).expect("private use");
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, max_depth)
}

/// Whether the document has characters of its own that look like marks.
fn has_marks(doc: &[u8]) -> bool {
    doc.windows(3)
        .any(|w| w == [0xf3, 0xb0, 0x80] || w == [0xf3, 0xb0, 0x81])
        || doc.to_ascii_lowercase().windows(6).any(|w| w == b"\\udb80")
}

/// Marks back to the raw control bytes they stand for.
fn unmark(s: &str) -> String {
    s.chars()
        .map(|c| match u32::from(c).checked_sub(MARK) {
            Some(b @ 0..=0x7f) => char::from(b as u8),
            _ => c,
        })
        .collect()
}

/// The documented normalisation, written independently of agw's walk.
fn normalize(s: &str) -> String {
    fn flush(group: &mut String, out: &mut String) {
        out.extend(group.nfkd().filter_map(fuzzing::fold).nfc());
        group.clear();
    }
    let mut out = String::new();
    let mut group = String::new();
    // Raw ASCII controls are marks here, so every ASCII control left was escaped.
    let ascii_whitespace = |c: char| match c {
        '\u{b}' | '\u{c}' | '\u{1c}'..='\u{1e}' => '\n',
        '\u{1f}' => ' ',
        c => c,
    };
    let chars: Vec<char> = s.chars().collect();
    let mut spelled = Vec::with_capacity(chars.len());
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k];
        if fuzzing::is_tag(c) {
            let end = chars[k..]
                .iter()
                .position(|t| !fuzzing::is_tag(*t))
                .map_or(chars.len(), |p| k + p);
            if chars[k..end].iter().any(|t| *t != c) {
                spelled.extend(chars[k..end].iter().filter_map(|t| fuzzing::spelled(*t)));
            }
            k = end;
        } else {
            spelled.push(fuzzing::spelled(c).unwrap_or(c));
            k += 1;
        }
    }
    for c in spelled
        .into_iter()
        .filter(|c| !fuzzing::is_invisible(*c))
        .map(ascii_whitespace)
    {
        // A character that can combine with its predecessor under NFKC joins its group.
        let joins = canonical_combining_class(c) != 0
            || fuzzing::fold(c).is_none()
            || unicode_normalization::is_nfc_quick(std::iter::once(c))
                == unicode_normalization::IsNormalized::Maybe
            || std::iter::once(c)
                .nfkd()
                .next()
                .is_some_and(|d| canonical_combining_class(d) != 0);
        if !joins {
            flush(&mut group, &mut out);
        }
        group.push(c);
    }
    flush(&mut group, &mut out);
    out
}

/// Offsets in `raw` where a source character starts: a UTF-8 sequence, an escape, or a
/// surrogate-pair escape (as agw pairs them), plus `raw.len()`.
fn boundaries(raw: &[u8]) -> Vec<bool> {
    let mut at = vec![false; raw.len() + 1];
    let mut i = 0;
    while i < raw.len() {
        at[i] = true;
        i += match raw[i] {
            b'\\' if raw.get(i + 1) == Some(&b'u') => {
                let hi = hex4(&raw[i + 2..]).unwrap_or(0);
                let pair = (0xd800..0xdc00).contains(&hi)
                    && raw.get(i + 6..i + 8) == Some(b"\\u")
                    && hex4(&raw[i + 8..]).is_some_and(|l| (0xdc00..0xe000).contains(&l));
                if pair { 12 } else { 6 }
            }
            b'\\' => 2,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => 1,
        };
    }
    at[raw.len()] = true;
    at
}

fn check_map_back(doc: &[u8], s: &ScannedString) {
    let raw = s.raw_bytes(doc);
    let text = &s.text;
    let text_str = std::str::from_utf8(text).expect("decoded text is UTF-8");
    let bounds = boundaries(raw);
    let mut last = 0;
    for at in 0..text.len() {
        let r = fuzzing::map_back(raw, s.identity, at)
            .unwrap_or_else(|| panic!("map_back({at}) is None inside the text"));
        assert!(
            r.start < r.end && r.end <= raw.len(),
            "map_back({at}) = {r:?} for {} raw bytes",
            raw.len()
        );
        assert!(
            r.start >= last,
            "map_back({at}) = {r:?} goes back before {last}"
        );
        last = r.start;
        if text_str.is_char_boundary(at) {
            assert!(
                bounds[r.start],
                "map_back({at}) = {r:?} starts inside a character"
            );
        }
        if text_str.is_char_boundary(at + 1) {
            assert!(
                bounds[r.end],
                "map_back({at}) = {r:?} ends inside a character"
            );
        }
        if !s.identity {
            // The range decodes, alone, to a piece of the text that covers byte `at`.
            let quoted = [b"\"", &raw[r.clone()], b"\""].concat();
            let scanned = fuzzing::scan_string(&quoted).expect("a source range is a string");
            // A tag character spells its letter only in a run that holds another (see the
            // module docs): alone, its range (with any marks it carries) decodes to nothing.
            let exact = std::str::from_utf8(&scanned.exact).ok();
            let first = exact.and_then(|e| e.chars().next());
            let marks_after = exact.is_some_and(|e| {
                e.chars()
                    .skip(1)
                    .all(|m| canonical_combining_class(m) != 0 || fuzzing::fold(m).is_none())
            });
            let piece = match first {
                Some(c) if fuzzing::is_tag(c) && marks_after => {
                    vec![fuzzing::spelled(c).expect("a tag spells ASCII") as u8]
                }
                _ => scanned.text,
            };
            let covers = (0..piece.len().min(at + 1))
                .any(|k| text[at - k..].starts_with(&piece) && k < piece.len());
            assert!(
                covers,
                "map_back({at}) = {r:?} decodes to {:?}, which is not the text at {at}",
                String::from_utf8_lossy(&piece)
            );
        }
    }
    assert_eq!(fuzzing::map_back(raw, s.identity, text.len()), None);
}

fuzz_target!(|input: Input| {
    let doc = input.doc();
    let (strict_doc, depth) = strict(&doc, false);
    let agw = fuzzing::validate(&doc);
    if depth <= agw_core::json::MAX_DEPTH {
        // `RawValue` validates without a depth limit (serde_json's `Value` stops at 127).
        let serde = serde_json::from_slice::<&serde_json::value::RawValue>(&strict_doc);
        assert_eq!(
            agw.is_ok(),
            serde.is_ok(),
            "agw: {agw:?}, serde_json: {serde:?} on {}",
            literal(&strict_doc)
        );
    } else {
        assert!(agw.is_err(), "nesting {depth} deep was accepted");
    }
    let scanned = fuzzing::scan_string(&doc);
    if scanned
        .as_ref()
        .is_err_and(|e| e.to_string().contains("when normalised"))
    {
        // Valid JSON that normalisation would blow up past agw's bound: refused by design.
        return;
    }
    let serde = serde_json::from_slice::<String>(&strict_doc);
    assert_eq!(
        scanned.is_ok(),
        serde.is_ok(),
        "as a string: agw {:?}, serde_json {serde:?}",
        scanned.as_ref().err()
    );
    let (Ok(s), Ok(want)) = (scanned, serde) else {
        return;
    };
    assert_eq!(agw, Ok(()), "a valid string is a valid document");
    assert_eq!(
        String::from_utf8_lossy(&s.exact),
        want,
        "exact unescaping differs from serde_json"
    );
    let text = std::str::from_utf8(&s.text).expect("decoded text is UTF-8");
    let raw = s.raw_bytes(&doc);
    if !has_marks(&doc) {
        let marked: String = serde_json::from_slice(&strict(&doc, true).0)
            .expect("marking keeps a valid string valid");
        assert_eq!(
            text,
            unmark(&normalize(&marked)),
            "normalized text differs from the rule"
        );
        if raw.is_ascii() && memchr_u(raw).is_none() {
            let unescaped: String = marked
                .chars()
                .filter(|c| *c != '\u{8}')
                .map(|c| if c == '\u{c}' { '\n' } else { c })
                .collect();
            assert_eq!(
                text,
                unmark(&unescaped),
                "ASCII without \\u: plain unescaping"
            );
        }
    }
    assert_eq!(s.fused, s.text, "fused and two-pass decoding differ");
    assert_eq!(
        s.fused_identity, s.identity,
        "fused and two-pass kinds differ"
    );
    if s.identity {
        assert_eq!(s.text, raw, "an identity decoding changed bytes");
    }
    check_map_back(&doc, &s);
});

fn memchr_u(raw: &[u8]) -> Option<usize> {
    raw.windows(2).position(|w| w == b"\\u")
}
