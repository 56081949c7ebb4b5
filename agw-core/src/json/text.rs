//! From a JSON string's raw bytes to the text a model reads, and back.
//!
//! [`decode`] unescapes JSON (`\u0063`, surrogate pairs), removes invisible and format characters
//! (every format character: zero-width spaces and joiners, soft hyphen, BOM, bidi controls,
//! Unicode tag characters, Arabic number marks; variation selectors, C0 and C1 control
//! characters that are not whitespace), applies NFKC compatibility normalisation (fullwidth
//! letters, ligatures, non-breaking spaces) and folds what NFKC leaves: combining marks are
//! dropped (`cre\u{301}dit`, `c̲r̲e̲d̲i̲t̲` and `crédit` read `credit`), decimal digits of every
//! script read as ASCII digits, blank characters as spaces, and line breaks other than `\n` and
//! `\r` (form feed, vertical tab, NEL, U+2028, U+2029, the separators U+001C–U+001E) as `\n`
//! (see [`chars`](super::chars)). [`map_back`] maps a byte of the decoded text back to the raw byte
//! range it came from, so an edit replaces exactly the source characters of a match, whole
//! escapes and the marks on its letters included.
//!
//! Both walk the input with the same function, so they cannot disagree. The common cases are
//! fast: pure-ASCII strings without escapes are copied as they are, and pure-ASCII strings with
//! only short escapes (`\n`, `\"`) are unescaped with `memchr`.

use super::chars::{fold, is_invisible, is_mark, is_tag, is_word_dash, spelled, whitespace};
use std::cell::Cell;
use std::ops::Range;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::canonical_combining_class;

/// How decoded text relates to the raw bytes it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Byte `i` of the text is byte `i` of the raw string.
    Identity,
    /// Use [`map_back`] to find where a text byte came from.
    Transformed,
}

/// Appends the normalized text of a JSON string's raw content (between the quotes) to `out`.
///
/// # Errors
///
/// A string that grows past [`MAX_EXPANSION`] when normalised.
pub(crate) fn decode(
    raw: &[u8],
    escaped: bool,
    out: &mut Vec<u8>,
) -> Result<Decoded, super::JsonError> {
    // Most text is already normal: ASCII, or Unicode that NFKC leaves alone with nothing
    // invisible in it. Then only JSON escapes (if any) change it, and `\u` escapes are rare.
    let plain = raw.is_ascii() || !needs_normalization(raw, &mut '\0');
    if plain && !escaped {
        out.extend_from_slice(raw);
        return Ok(Decoded::Identity);
    }
    if plain && memchr::memmem::find(raw, b"\\u").is_none() {
        simple_unescape(raw, out);
        return Ok(Decoded::Transformed);
    }
    if !decode_full(raw, out) {
        return Err(too_expanded());
    }
    Ok(Decoded::Transformed)
}

/// Normalizes plain (unescaped) text the way [`decode`] normalizes a JSON string; for each text
/// byte, `map` gets the source byte range it came from.
pub(crate) fn normalize_plain(s: &str, out: &mut Vec<u8>, map: &mut Vec<Range<usize>>) {
    // Escape into JSON string syntax and reuse the one walk, mapping back through the escapes.
    let (esc, src) = escape(s);
    let end_of = |e: usize| if e < src.len() - 1 { src[e] } else { s.len() };
    walk(&esc, usize::MAX, |text, r, one_to_one| {
        for k in 0..text.len() {
            let (a, b) = if one_to_one {
                (r.start + k, r.start + k + 1)
            } else {
                (r.start, r.end)
            };
            map.push(src[a]..end_of(b).max(src[a] + 1));
        }
        out.extend_from_slice(text);
    });
}

/// Normalizes plain (unescaped) text, such as a pattern or a tool argument, the way [`decode`]
/// normalizes a JSON string.
pub(crate) fn normalize_str(s: &str) -> std::borrow::Cow<'_, str> {
    if !plain_needs_normalization(s) {
        return s.into();
    }
    let mut text = Vec::with_capacity(s.len());
    walk(&escape(s).0, usize::MAX, |t, _, _| {
        text.extend_from_slice(t)
    });
    String::from_utf8(text)
        .expect("normalized text is UTF-8")
        .into()
}

/// Whether plain (unescaped) text changes when normalised. Unlike a JSON string's raw bytes,
/// where a control character is always an escape, plain text holds them as they are: ASCII
/// text is not normal when it has a C0 control other than tab, line feed and carriage return
/// (`\0`, backspace, escape are removed; form feed and the separators fold). Found by the
/// seventh red-team review: a stream's ASCII window skipped normalising, so `ghp_3i\u0000n…`
/// was not a token there.
#[inline]
pub(crate) fn plain_needs_normalization(s: &str) -> bool {
    // Most windows are printable ASCII with line breaks: one pass says so.
    if !unusual(s.as_bytes()) {
        return false;
    }
    has_control(s.as_bytes()) || (!s.is_ascii() && needs_normalization(s.as_bytes(), &mut '\0'))
}

/// Whether `b` has a byte that is neither printable ASCII nor `\t`, `\n`, `\r`: 16 bytes a
/// step (SSE2: a signed compare below 0x20 catches controls and every non-ASCII byte).
#[cfg(target_arch = "x86_64")]
fn unusual(b: &[u8]) -> bool {
    use safe_arch::*;
    let space = set_splat_i8_m128i(0x20);
    let [tab, lf, cr] = [b'\t', b'\n', b'\r'].map(|c| set_splat_i8_m128i(c as i8));
    let mut chunks = b.chunks_exact(16);
    for c in &mut chunks {
        let v = load_unaligned_m128i(c.try_into().expect("16 bytes"));
        let below = cmp_lt_mask_i8_m128i(v, space);
        let breaks = bitor_m128i(
            cmp_eq_mask_i8_m128i(v, tab),
            bitor_m128i(cmp_eq_mask_i8_m128i(v, lf), cmp_eq_mask_i8_m128i(v, cr)),
        );
        if move_mask_i8_m128i(bitandnot_m128i(breaks, below)) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| !(0x20..0x80).contains(&b) && !matches!(b, b'\t' | b'\n' | b'\r'))
}

#[cfg(not(target_arch = "x86_64"))]
fn unusual(b: &[u8]) -> bool {
    b.iter()
        .any(|&b| !(0x20..0x80).contains(&b) && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Whether `b` has a byte below 0x20 other than `\t`, `\n` and `\r`: eight bytes a step
/// (a byte below 0x20 sets its high bit in `x - 0x20..`, masked by `!x`), then exactly.
fn has_control(b: &[u8]) -> bool {
    const LOW: u64 = 0x2020_2020_2020_2020;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let exact = |c: &[u8]| {
        c.iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    };
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if x.wrapping_sub(LOW) & !x & HIGH != 0 && exact(c) {
            return true;
        }
    }
    exact(chunks.remainder())
}

/// `s` as the content of a JSON string, and for each byte of it the byte of `s` it came from
/// (with `s.len()` appended).
fn escape(s: &str) -> (Vec<u8>, Vec<usize>) {
    let mut esc = Vec::with_capacity(s.len() + 8);
    let mut src = Vec::with_capacity(s.len() + 9);
    for (i, b) in s.bytes().enumerate() {
        let before = esc.len();
        match b {
            b'"' => esc.extend_from_slice(b"\\\""),
            b'\\' => esc.extend_from_slice(b"\\\\"),
            c if c < 0x20 => esc.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => esc.push(c),
        }
        src.resize(src.len() + esc.len() - before, i);
    }
    src.push(s.len());
    (esc, src)
}

/// Text a string may grow to when normalised: this many bytes per raw byte (and 256 more).
/// NFKC turns a few characters into many (U+FDFA, 3 bytes, into 33; as a `\ufdfa` escape, 6
/// into 33): a body of them would take seconds of CPU and gigabytes to read. Real text stays
/// within it (a squared katakana sign, the widest common one, is 4×; a few wider characters
/// among other text are too).
pub(crate) const MAX_EXPANSION: usize = 4;

/// The full normalisation walk (escapes, invisibles, NFKC, folds), appending to `out`; `false`
/// (and `out` cut short) when the text grows past [`MAX_EXPANSION`].
#[must_use]
pub(crate) fn decode_full(raw: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(raw.len());
    let limit = raw.len().saturating_mul(MAX_EXPANSION).saturating_add(256);
    walk(raw, limit, |text, _, _| out.extend_from_slice(text))
}

/// The error of a string that grows past [`MAX_EXPANSION`] when normalised.
pub(crate) fn too_expanded() -> super::JsonError {
    super::JsonError::Shape(format!(
        "a string grows more than {MAX_EXPANSION}-fold when normalised (NFKC): agw does not \
         read it"
    ))
}

/// The raw byte range (relative to `raw`) of the source characters of text byte `at`.
///
/// `at` is relative to the text [`decode`] produced for `raw`. Returns `None` if `at` is past
/// the end of that text.
pub(crate) fn map_back(raw: &[u8], kind: Decoded, at: usize) -> Option<Range<usize>> {
    if kind == Decoded::Identity {
        return (at < raw.len()).then(|| at..at + 1);
    }
    let mut pos = 0usize;
    let mut found = None;
    walk(raw, usize::MAX, |text, src, one_to_one| {
        if found.is_some() {
            return;
        }
        if at < pos + text.len() {
            found = Some(if one_to_one {
                let i = src.start + (at - pos);
                i..i + 1
            } else {
                src
            });
        }
        pos += text.len();
    });
    found
}

/// [`map_back`] for many text offsets of one string in a single walk. `at` must be sorted; the
/// result has one range per offset (`None` past the end of the text).
pub(crate) fn map_back_many(raw: &[u8], kind: Decoded, at: &[usize]) -> Vec<Option<Range<usize>>> {
    if kind == Decoded::Identity {
        return at
            .iter()
            .map(|&a| (a < raw.len()).then(|| a..a + 1))
            .collect();
    }
    let mut out = vec![None; at.len()];
    let mut next = 0;
    let mut pos = 0usize;
    walk(raw, usize::MAX, |text, src, one_to_one| {
        while next < at.len() && at[next] < pos + text.len() {
            let a = at[next];
            out[next] = Some(if one_to_one {
                let i = src.start + (a - pos);
                i..i + 1
            } else {
                src.clone()
            });
            next += 1;
        }
        pos += text.len();
    });
    out
}

/// Exact JSON unescaping, without normalisation (for keys, roles and block types, and the JSON
/// a function call's `arguments` string holds). What lies between escapes is copied as it is.
pub(crate) fn unescape_exact(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len());
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\\', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + off]);
        i += off;
        let (c, next) = next_char(raw, i);
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i = next;
    }
    out.extend_from_slice(&raw[i..]);
}

/// For each offset into the text [`unescape_exact`] makes of `raw` (sorted, each at the start
/// of a character or at the end), the offset in `raw` where that character's source starts
/// (`raw.len()` at the end): text edits at character boundaries become edits of the raw bytes.
pub(crate) fn map_exact(raw: &[u8], at: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(at.len());
    let (mut i, mut pos) = (0, 0);
    for &a in at {
        while pos < a && i < raw.len() {
            if raw[i] == b'\\' {
                let (c, next) = next_char(raw, i);
                pos += c.len_utf8();
                i = next;
            } else {
                // Raw text up to the next escape is its own text, byte for byte.
                let run = memchr::memchr(b'\\', &raw[i..]).unwrap_or(raw.len() - i);
                let step = run.min(a - pos);
                pos += step;
                i += step;
            }
        }
        debug_assert!(pos == a || i == raw.len(), "offset {a} inside a character");
        out.push(i);
    }
    out
}

/// The index of the first non-ASCII byte at or after `from`, eight bytes at a time.
pub(crate) fn next_non_ascii(raw: &[u8], mut from: usize) -> Option<usize> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while from + 8 <= raw.len() {
        let word = u64::from_le_bytes(raw[from..from + 8].try_into().expect("8 bytes"));
        if word & HIGH != 0 {
            return Some(from + (word & HIGH).trailing_zeros() as usize / 8);
        }
        from += 8;
    }
    raw[from..]
        .iter()
        .position(|b| *b >= 0x80)
        .map(|i| from + i)
}

/// Whether any raw (unescaped) character of `raw` is invisible, a combining mark, or changed by
/// NFKC. Escapes are not looked at (callers handle `\u` separately). `known_ok` caches the last
/// character found stable, across calls: text repeats the same few non-ASCII characters
/// (arrows, dashes, quotes), and the NFKC check is a table search.
#[inline]
pub(crate) fn needs_normalization(raw: &[u8], known_ok: &mut char) -> bool {
    let mut at = 0;
    let mut buf = [0u8; 4];
    let mut known: &[u8] = known_ok.encode_utf8(&mut buf).as_bytes();
    let mut scratch = [0u8; 4];
    while let Some(i) = next_non_ascii(raw, at) {
        // Compare bytes with the cached character before decoding anything.
        if raw[i..].starts_with(known) {
            at = i + known.len();
            continue;
        }
        let (c, next) = next_char(raw, i);
        if is_word_dash(c) {
            // Never the cached character: each one's run is looked at.
            note_word_dash(raw, i, next);
            if alone(c) != Alone::Itself {
                return true;
            }
            at = next;
            continue;
        }
        if !is_stable(c) {
            return true;
        }
        *known_ok = c;
        known = c.encode_utf8(&mut scratch).as_bytes();
        at = next;
    }
    false
}

/// Whether normalisation leaves `c` alone, whatever surrounds it: it is not removed, not
/// folded (a digit, a blank, a letter with a mark such as `é`), not changed by NFKC and not
/// combined with its neighbours.
#[cold]
#[inline(never)]
pub(crate) fn is_stable(c: char) -> bool {
    canonical_combining_class(c) == 0
        && spelled(c).is_none()
        && fold(c) == Some(c)
        && unicode_normalization::is_nfkc_quick(std::iter::once(c))
            == unicode_normalization::IsNormalized::Yes
        && std::iter::once(c).nfd().all(|d| fold(d).is_some())
}

fn simple_unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\\', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + off]);
        i += off;
        match short_escape(raw.get(i + 1).copied().unwrap_or(b'\\')) {
            // `\b` is a control, removed like other invisible characters; `\f` ends a line.
            0x08 => {}
            0x0c => out.push(b'\n'),
            c => out.push(c),
        }
        i += 2;
    }
    if i < raw.len() {
        out.extend_from_slice(&raw[i..]);
    }
}

fn short_escape(c: u8) -> u8 {
    match c {
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'b' => 0x08,
        b'f' => 0x0c,
        other => other, // `"`, `\`, `/`
    }
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let h = raw.get(at..at + 4)?;
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// The character starting at raw byte `i` and the index after it. Malformed input (which the
/// scanner rejects before we get here) decodes to U+FFFD rather than panicking.
pub(crate) fn next_char(raw: &[u8], i: usize) -> (char, usize) {
    let b = raw[i];
    if b == b'\\' {
        let Some(&e) = raw.get(i + 1) else {
            return ('\u{FFFD}', raw.len());
        };
        if e != b'u' {
            return (short_escape(e) as char, i + 2);
        }
        let Some(hi) = hex4(raw, i + 2) else {
            return ('\u{FFFD}', (i + 2).min(raw.len()));
        };
        if (0xD800..0xDC00).contains(&hi)
            && raw.get(i + 6..i + 8) == Some(b"\\u")
            && let Some(lo) = hex4(raw, i + 8).filter(|lo| (0xDC00..0xE000).contains(lo))
        {
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return (char::from_u32(c).unwrap_or('\u{FFFD}'), i + 12);
        }
        // A lone surrogate is no character: readers that decode leniently drop it (Python's
        // `errors="ignore"`), so it is read as an invisible character, removed (eighteenth
        // session's red team: `cred\ud800it card` hid the phrase).
        return (char::from_u32(hi).unwrap_or('\u{200B}'), i + 6);
    }
    // The body was validated as UTF-8 up front; a truncated or stray byte still cannot panic.
    let len = match b {
        0x00..=0x7f => return (b as char, i + 1),
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return ('\u{FFFD}', i + 1),
    };
    let Some(bytes) = raw.get(i..i + len) else {
        return ('\u{FFFD}', raw.len());
    };
    let mut c = u32::from(b) & (0x7f >> len);
    for &cont in &bytes[1..] {
        if cont & 0xc0 != 0x80 {
            return ('\u{FFFD}', i + 1);
        }
        c = c << 6 | u32::from(cont & 0x3f);
    }
    (char::from_u32(c).unwrap_or('\u{FFFD}'), i + len)
}

/// Whether the run of tag characters starting at `raw[i]` holds two different characters
/// (text written in them), looking no further than the first difference.
fn tag_run_spells(raw: &[u8], mut i: usize) -> bool {
    let (first, next) = next_char(raw, i);
    i = next;
    while i < raw.len() {
        let (c, next) = next_char(raw, i);
        if !is_tag(c) {
            return false;
        }
        if c != first {
            return true;
        }
        i = next;
    }
    false
}

/// Whether `c` belongs with the character before it: a combining mark (which is dropped, but
/// its bytes go with the letter it sits on), a character whose compatibility decomposition
/// starts with one (halfwidth voiced marks), or one that NFC may compose with its predecessor
/// (conjoining Hangul vowels and finals). Such a character joins the current normalisation
/// group instead of starting one.
fn joins_previous(c: char) -> bool {
    use unicode_normalization::{IsNormalized, is_nfc_quick};
    canonical_combining_class(c) != 0
        || is_mark(c)
        || is_nfc_quick(std::iter::once(c)) == IsNormalized::Maybe
        || std::iter::once(c)
            .nfkd()
            .next()
            .is_some_and(|d| canonical_combining_class(d) != 0)
}

type Emit<'a> = dyn FnMut(&[u8], Range<usize>, bool) + 'a;

/// A character [`walk`] has read before and found ordinary: not a tag character, not spelled
/// (see [`spelled`]), not invisible, not ASCII and not joining the character before it, with
/// the text it normalises to when it stands alone (at most eight bytes).
#[derive(Clone, Copy)]
struct Ordinary {
    c: char,
    text: [u8; 8],
    len: u8,
}

/// The last ordinary characters [`walk`] met, by the low bits of their code point. Text
/// repeats a few non-ASCII characters (dashes, quotes, arrows, a script's common letters):
/// each is classified and normalised once, not at every occurrence.
type Seen = [Option<Ordinary>; 8];

thread_local! {
    /// What walks on this thread remembered, a cell per slot (so that [`alone`] reads one):
    /// a body's strings share their characters.
    static SEEN: [Cell<Option<Ordinary>>; 8] = const { [const { Cell::new(None) }; 8] };
}

/// This thread's remembered characters ([`SEEN`]), for a walk.
fn seen_here() -> Seen {
    SEEN.with(|s| std::array::from_fn(|i| s[i].get()))
}

/// Keeps a walk's remembered characters for the next one on this thread.
fn keep_seen(seen: &Seen) {
    SEEN.with(|s| s.iter().zip(seen).for_each(|(cell, o)| cell.set(*o)));
}

thread_local! {
    /// Whether text read since [`forget_notes`] on this thread had a dash prose uses
    /// between words ([`is_word_dash`]) in a run as long as a key, or escaped.
    static DASHED: Cell<bool> = const { Cell::new(false) };
    /// Whether text read since [`forget_notes`] on this thread had a terminal's control
    /// sequence ([`terminal_sequences`]).
    static TERMINAL: Cell<bool> = const { Cell::new(false) };
}

/// Starts a body: no dashed run ([`dashed_runs`]) and no terminal sequence
/// ([`terminal_sequences`]) seen yet.
pub(crate) fn forget_notes() {
    DASHED.with(|d| d.set(false));
    TERMINAL.with(|t| t.set(false));
}

/// Whether the text read since [`forget_notes`] had a terminal's control sequence (`ESC[31m`,
/// a command's coloured output pasted or returned by a tool): the guard then reads the text
/// again without them (`guard::encoded`), so that a colour's `[31m` glues no word to the value
/// it colours and `grep --color`'s `ESC[m` cuts no key in two.
pub(crate) fn terminal_sequences() -> bool {
    TERMINAL.with(Cell::get)
}

#[cold]
fn note_terminal_sequence() {
    TERMINAL.with(|t| t.set(true));
}

/// Whether the text read since [`forget_notes`] had a word dash in a run of letters,
/// digits, `-`, `_` and other dashes as long as a key (`sk—ant—api03—…`), or one escaped: the
/// guard then reads such dashes as `-` too (`guard::encoded`), which prose's `word—word`
/// does not need.
pub(crate) fn dashed_runs() -> bool {
    DASHED.with(Cell::get)
}

/// The shortest run of key characters around a word dash that [`dashed_runs`] reports (and
/// the guard reads again).
const DASHED_RUN: usize = 24;

/// Notes the word dash at `raw[at..next]` (raw or escaped) for [`dashed_runs`].
#[inline]
pub(crate) fn note_word_dash(raw: &[u8], at: usize, next: usize) {
    if !DASHED.with(Cell::get) {
        note_run(raw, at, next);
    }
}

#[cold]
fn note_run(raw: &[u8], at: usize, next: usize) {
    if raw[at] == b'\\' || in_dashed_run(raw, at, next) {
        DASHED.with(|d| d.set(true));
    }
}

/// Whether the word dash at `text[at..next]` is in a run of [`DASHED_RUN`] or more letters,
/// digits, `-`, `_` and non-ASCII bytes (other dashes), each side looked at no further than
/// the run needs.
pub(crate) fn in_dashed_run(text: &[u8], at: usize, next: usize) -> bool {
    let part = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || *b >= 0x80;
    let left = text[at.saturating_sub(DASHED_RUN)..at]
        .iter()
        .rev()
        .take_while(|b| part(b))
        .count();
    let right = text[next..text.len().min(next + DASHED_RUN)]
        .iter()
        .take_while(|b| part(b))
        .count();
    left + right >= DASHED_RUN
}

fn seen_slot(c: char) -> usize {
    (u32::from(c) as usize) & 7
}

/// The index of the first byte at or after `from` that is not ASCII or is a backslash (the
/// end of `raw` if none is): 16 bytes a step.
#[cfg(target_arch = "x86_64")]
#[inline]
fn plain_run_end(raw: &[u8], from: usize) -> usize {
    use safe_arch::*;
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let mut i = from;
    while let Some(block) = raw.get(i..i + 16) {
        let v = load_unaligned_m128i(block.try_into().expect("16 bytes"));
        // A byte's high bit: set in non-ASCII bytes, and in the all-ones of a backslash.
        let stops = move_mask_i8_m128i(bitor_m128i(v, cmp_eq_mask_i8_m128i(v, backslash)));
        if stops != 0 {
            return i + stops.trailing_zeros() as usize;
        }
        i += 16;
    }
    raw[i..]
        .iter()
        .position(|&b| b >= 0x80 || b == b'\\')
        .map_or(raw.len(), |k| i + k)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn plain_run_end(raw: &[u8], from: usize) -> usize {
    let end = next_non_ascii(raw, from).unwrap_or(raw.len());
    memchr::memchr(b'\\', &raw[from..end]).map_or(end, |k| from + k)
}

/// Whether the raw (unescaped, non-ASCII) character at `at` is one `seen` holds: an ordinary
/// character, which never joins the one before it.
#[inline]
fn ordinary_at(raw: &[u8], at: usize, seen: &Seen) -> bool {
    raw[at] >= 0x80 && {
        let (c, _) = next_char(raw, at);
        seen[seen_slot(c)].is_some_and(|o| o.c == c)
    }
}

/// Walks `raw`, calling `emit(text, raw_range, one_to_one)` for each piece of output: a run of
/// plain ASCII copied byte for byte (`one_to_one`), or a normalised cluster (a starter with its
/// combining marks) and the raw range it came from.
/// Normalises `raw`, handing each piece of text to `emit`. Stops, returning `false`, once
/// more than `limit` bytes of text came out (see [`MAX_EXPANSION`]).
fn walk(raw: &[u8], limit: usize, mut emit: impl FnMut(&[u8], Range<usize>, bool)) -> bool {
    let emitted = Cell::new(0usize);
    let mut emit = |t: &[u8], r: Range<usize>, one: bool| {
        emitted.set(emitted.get() + t.len());
        emit(t, r, one);
    };
    let mut cluster: Vec<char> = Vec::new();
    let mut cluster_src = 0..0;
    let mut scratch = String::new();
    let mut seen = seen_here();
    let mut flush =
        |cluster: &mut Vec<char>, src: Range<usize>, seen: &Seen, emit: &mut Emit<'_>| {
            if cluster.is_empty() {
                return;
            }
            if let [c] = cluster[..] {
                if c.is_ascii() {
                    cluster.clear();
                    emit(&[c as u8], src, false);
                    return;
                }
                if let Some(o) = seen[seen_slot(c)].filter(|o| o.c == c) {
                    cluster.clear();
                    if o.len > 0 {
                        emit(&o.text[..usize::from(o.len)], src, false);
                    }
                    return;
                }
            }
            scratch.clear();
            // NFKC with the folds applied between its decomposition and its composition, so
            // that a mark is dropped before it can compose (`e` + U+0301 reads `e`). Escaped
            // invisibles never get here; an ASCII control in a cluster is a raw byte, kept like
            // every raw ASCII byte (see `is_invisible`).
            scratch.extend(cluster.iter().copied().nfkd().filter_map(fold).nfc());
            cluster.clear();
            if !scratch.is_empty() {
                emit(scratch.as_bytes(), src, false);
            }
        };
    let mut i = 0;
    // Whether the last character was a tag character, and whether its run spells text.
    let (mut prev_tag, mut spell_run) = (false, false);
    while i < raw.len() {
        if emitted.get() > limit {
            keep_seen(&seen);
            return false;
        }
        let b = raw[i];
        if b < 0x80 && b != b'\\' {
            // A run of plain ASCII: all but its last byte cannot start a cluster that a following
            // combining mark would extend, so they are copied as they are; so is the last one
            // when what follows cannot join it (the end, or a character read before).
            let end = plain_run_end(raw, i);
            flush(&mut cluster, cluster_src.clone(), &seen, &mut emit);
            prev_tag = false;
            let open = end < raw.len() && !ordinary_at(raw, end, &seen);
            let cut = if open { end - 1 } else { end };
            if cut > i {
                emit(&raw[i..cut], i..cut, true);
            }
            if open {
                cluster.push(raw[cut] as char);
                cluster_src = cut..end;
            }
            i = end;
            continue;
        }
        let (c, next) = next_char(raw, i);
        if is_word_dash(c) {
            note_word_dash(raw, i, next);
        }
        if let Some(o) = seen[seen_slot(c)].filter(|o| o.c == c) {
            // Read before: it starts a cluster of its own, which is whole unless a character
            // that may join it follows.
            flush(&mut cluster, cluster_src.clone(), &seen, &mut emit);
            prev_tag = false;
            let whole = next == raw.len()
                || (raw[next] < 0x80 && raw[next] != b'\\')
                || ordinary_at(raw, next, &seen);
            if !whole {
                cluster.push(c);
                cluster_src = i..next;
            } else if o.len > 0 {
                emit(&o.text[..usize::from(o.len)], i..next, false);
            }
            i = next;
            continue;
        }
        // An enclosed letter or digit spells ASCII (see `spelled`); so does a run of tag
        // characters that is text: two different ones or more. One alone, or one repeated, is
        // invisible padding or a word splitter, dropped.
        let tag = is_tag(c);
        if tag && !prev_tag {
            spell_run = tag_run_spells(raw, i);
        }
        prev_tag = tag;
        let spelled = spelled(c);
        let c = match spelled {
            Some(a) if !tag || spell_run => a,
            _ => c,
        };
        if is_invisible(c) {
            // Only the escape character of a terminal's control sequence is dropped: its
            // `[31m` stays text, as a model reads it (a letter after `ESC[` may be the
            // sequence's end to a terminal and a word's start to a model: `ESC[credit card`).
            // The guard reads the text again without such sequences ([`terminal_sequences`]).
            if c == '\u{1b}' && csi_end(raw, next, c).is_some() {
                note_terminal_sequence();
            }
            i = next;
            continue;
        }
        // An ASCII character here is an escape: `\f`, `\u000b` and the like read as whitespace.
        // Non-ASCII whitespace is folded with its cluster.
        let c = if c.is_ascii() {
            whitespace(c).unwrap_or(c)
        } else {
            c
        };
        // ASCII (an escape here) never joins: no mark, no composition.
        let joins = !c.is_ascii() && joins_previous(c);
        if !tag && spelled.is_none() && !c.is_ascii() && !joins {
            remember(&mut seen, c);
        }
        if !cluster.is_empty() && joins {
            cluster.push(c);
            cluster_src.end = next;
        } else {
            flush(&mut cluster, cluster_src.clone(), &seen, &mut emit);
            cluster.push(c);
            cluster_src = i..next;
        }
        i = next;
    }
    flush(&mut cluster, cluster_src, &seen, &mut emit);
    keep_seen(&seen);
    emitted.get() <= limit
}

/// The longest parameter run of a control sequence [`csi_end`] reads.
const MAX_CSI_PARAMS: usize = 32;

/// Where the terminal control sequence (ECMA-48's CSI) that `c`, ending at `at`, introduces
/// ends, if it is one: `c` is ESC followed by `[`, or U+009B; then parameter bytes
/// (`0`–`9`, `:`, `;`, `<`–`?`), intermediate bytes (space to `/`) and one final byte (`@`
/// to `~`, not a backslash, which would start a JSON escape): `ESC[31m`, `ESC[01;31m`,
/// `ESC[K`, `ESC[2J`.
pub(crate) fn csi_end(raw: &[u8], at: usize, c: char) -> Option<usize> {
    let mut at = match c {
        '\u{1b}' if raw.get(at) == Some(&b'[') => at + 1,
        '\u{9b}' => at,
        _ => return None,
    };
    let rest = &raw[at.min(raw.len())..];
    let params = rest
        .iter()
        .take(MAX_CSI_PARAMS)
        .take_while(|b| (0x30..=0x3f).contains(*b))
        .count();
    let inter = rest[params..]
        .iter()
        .take(4)
        .take_while(|b| (0x20..=0x2f).contains(*b))
        .count();
    at += params + inter;
    matches!(raw.get(at), Some(0x40..=0x5b | 0x5d..=0x7e)).then_some(at + 1)
}

/// What non-ASCII `c` reads as when it stands alone and joins nothing before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alone {
    /// Itself: normalisation leaves it alone (a quote, an arrow, an em dash).
    Itself,
    /// One ASCII byte: an en dash reads `-`, a no-break space ` `, a fullwidth `ｋ` `k`, an
    /// Arabic-Indic digit its digit.
    Ascii(u8),
    /// Something else, or it may join a neighbour: for the full walk.
    Other,
}

/// What `c` reads as alone ([`Alone`]), for the scanner's fast path, which reads such a
/// character in place rather than handing its whole string to the walk; remembered with the
/// walk's characters.
pub(crate) fn alone(c: char) -> Alone {
    let slot = seen_slot(c);
    let known = SEEN.with(|s| s[slot].get()).filter(|o| o.c == c);
    let o = match known {
        Some(o) => o,
        None => {
            if c.is_ascii()
                || is_tag(c)
                || spelled(c).is_some()
                || is_invisible(c)
                || joins_previous(c)
            {
                return Alone::Other;
            }
            match ordinary(c) {
                Some(o) => {
                    SEEN.with(|s| s[slot].set(Some(o)));
                    o
                }
                None => return Alone::Other,
            }
        }
    };
    let text = &o.text[..usize::from(o.len)];
    let mut own = [0u8; 4];
    if text == c.encode_utf8(&mut own).as_bytes() {
        Alone::Itself
    } else if let [a] = text
        && a.is_ascii()
    {
        Alone::Ascii(*a)
    } else {
        Alone::Other
    }
}

/// Records ordinary character `c` in `seen` ([`ordinary`]).
#[cold]
fn remember(seen: &mut Seen, c: char) {
    if let Some(o) = ordinary(c) {
        seen[seen_slot(c)] = Some(o);
    }
}

/// Ordinary character `c` with the text it normalises to alone (the walk's own normalisation
/// of a one-character cluster), when that fits.
fn ordinary(c: char) -> Option<Ordinary> {
    let mut text = [0u8; 8];
    let mut len = 0;
    for d in std::iter::once(c).nfkd().filter_map(fold).nfc() {
        if len + d.len_utf8() > text.len() {
            return None;
        }
        len += d.encode_utf8(&mut text[len..]).len();
    }
    Some(Ordinary {
        c,
        text,
        len: len as u8,
    })
}

/// Strings of up to `max_pieces` pieces of `alphabet` (the `i`th of `count` has `i` modulo
/// `max_pieces + 1`), from a fixed xorshift sequence: inputs for the property tests.
#[cfg(test)]
pub(crate) fn random_strings<'a>(
    alphabet: &'a [&'a str],
    count: usize,
    max_pieces: usize,
) -> impl Iterator<Item = String> + 'a {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..count).map(move |case| {
        let mut raw = String::new();
        for _ in 0..case % (max_pieces + 1) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            raw.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        raw
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_with_a_control_needs_normalising() {
        for (s, needs) in [
            ("plain ascii text, long enough for words", false),
            ("tab\tline\ncr\r", false),
            ("an arrow \u{2192} and a dash \u{2014}", false),
            ("", false),
            ("\0", true),
            ("a key ghp_3i\0nWmj", true),
            ("12345678\u{8}", true),
            ("\u{1b}[0m", true),
            ("form\u{c}feed", true),
            ("sep\u{1f}", true),
            ("zero\u{200b}width", true),
        ] {
            assert_eq!(plain_needs_normalization(s), needs, "{s:?}");
            assert_eq!(normalize_str(s) != s, needs, "{s:?}");
        }
        // At every offset of a longer text (the 16-byte blocks, then the rest).
        for inserted in [
            "\0", "\u{8}", "\u{1b}", "\u{1f}", "\u{200b}", "\t", "\n", "\r", "\u{7f}", "\u{2192}",
        ] {
            for at in 0..48 {
                let mut text = "line one of text\nand more of it, with words ".repeat(2);
                text.truncate(47);
                text.insert_str(at, inserted);
                assert_eq!(
                    plain_needs_normalization(&text),
                    normalize_str(&text) != text,
                    "{inserted:?} at {at}"
                );
            }
        }
    }

    fn dec(raw: &str) -> (String, Decoded) {
        let mut out = Vec::new();
        let k = decode(raw.as_bytes(), raw.contains('\\'), &mut out);
        (String::from_utf8(out).unwrap(), k.unwrap())
    }

    #[test]
    fn decoding_table() {
        let cases = [
            ("plain text", "plain text"),
            (r#"line\nbreak \"q\" \\ \/"#, "line\nbreak \"q\" \\ /"),
            (r"\u0063redit card", "credit card"),
            (r"\u0043\u0052\u0045\u0044\u0049\u0054", "CREDIT"),
            (r"emoji \ud83d\ude00!", "emoji \u{1F600}!"),
            ("cre\u{200B}dit c\u{00AD}ard", "credit card"),
            (r"cre\u200bdit", "credit"),
            ("\u{FEFF}credit\u{2060} card", "credit card"),
            // One tag character, or one repeated, is a splitter or padding; a run of different
            // ones spells ASCII.
            ("c\u{E0063}redit", "credit"),
            ("c\u{E0063}\u{E0063}redit", "credit"),
            ("\u{E0063}\u{E0072}edit", "credit"),
            ("x\u{E0063}\u{E0072}\u{E0063}\u{200B}\u{E0063}y", "xcrcy"),
            // Unassigned default-ignorables too.
            (
                "cred\u{2065}it c\u{FFF0}ard\u{E0000}\u{E0080}\u{E0FFF}",
                "credit card",
            ),
            ("ｃｒｅｄｉｔ　ｃａｒｄ", "credit card"),
            ("ﬁle", "file"),
            ("non\u{00A0}breaking", "non breaking"),
            // Combining marks are dropped, precomposed letters lose theirs.
            ("cafe\u{0301}", "cafe"),
            ("caf\u{e9}", "cafe"),
            ("cre\u{301}dit card", "credit card"),
            (r"cre\u0301dit card", "credit card"),
            ("c̲r̲e̲d̲i̲t̲ c̲a̲r̲d̲", "credit card"),
            ("c\u{20DD}redit\u{489} card", "credit card"),
            ("\u{301}credit", "credit"),
            ("CRÉDIT ÇARD Ñ ü ø", "CREDIT CARD N u ø"),
            ("й ё ά", "и е α"),
            (r"lone \ud83d surrogate", "lone  surrogate"),
            ("①②", "12"),
            // Decimal digits of every script read as ASCII digits.
            ("٤١١١ ۱۱۱۱ १११३ ๑๑๑๑", "4111 1111 1113 1111"),
            (r"\u0660\u0669 \ud835\udfd7", "09 9"),
            // Every format character is removed; blanks read as spaces.
            ("c\u{600}r\u{605}e\u{6DD}d\u{70F}i\u{8E2}t", "credit"),
            (
                "c\u{110BD}r\u{13430}e\u{1343F}d\u{1BCA0}i\u{1BCA3}t",
                "credit",
            ),
            ("credit\u{2800}card\u{1680}x", "credit card x"),
            // Found by `fuzz/`: these compose across two starters (the voicing mark is then
            // dropped like any mark).
            ("ｶﾞ", "カ"),
            ("\u{1112}\u{1161}\u{11AB}", "한"),
            // C0 and C1 controls are removed; tab, line feed and carriage return stay.
            (r"credit\u0000 card", "credit card"),
            (r"cre\bdit card", "credit card"),
            (r"credit \u001bcard\u007f", "credit card"),
            // Of a terminal's control sequence only the escape character is dropped (the
            // guard reads the text again without the sequences: `terminal_sequences`).
            (r"\u001b[31mcredit\u001b[0m card", "[31mcredit[0m card"),
            (r"\u009b1;2Hcredit card", "1;2Hcredit card"),
            (r"\u001b[credit card", "[credit card"),
            ("credit\u{9F} card", "credit card"),
            // Whitespace controls are word breaks: line breaks read as `\n`, U+001F as a space.
            (r"credit\fcard", "credit\ncard"),
            (r"credit\u000bcard\u000C", "credit\ncard\n"),
            (r"credit\u0085card", "credit\ncard"),
            ("credit\u{85}card", "credit\ncard"),
            (r"a\u001cb\u001dc\u001ed\u001fe", "a\nb\nc\nd e"),
            ("credit\u{2028}card\u{2029}", "credit\ncard\n"),
            (r"credit\u2028card", "credit\ncard"),
            ("credit\u{85}\u{301}card", "credit\ncard"),
            (r"credit\f\u0301card", "credit\ncard"),
            (
                "\u{a0}\u{1680}\u{2000}\u{200A}\u{202F}\u{205F}\u{3000}",
                "       ",
            ),
            // Raw ASCII controls are kept; a combining mark after one is dropped like any mark.
            ("raw\u{7f}\u{1}\u{301} ok", "raw\u{7f}\u{1} ok"),
            (r"keep\t\n\r\u0009", "keep\t\n\r\t"),
        ];
        for (raw, want) in cases {
            assert_eq!(dec(raw).0, want, "{raw:?}");
        }
        assert_eq!(dec("abc").1, Decoded::Identity);
        assert_eq!(dec(r"a\nb").1, Decoded::Transformed);
    }

    #[test]
    fn map_back_covers_whole_source_characters() {
        let raw = r"x \u0063re\u200bdit ｃard";
        let mut out = Vec::new();
        let kind = decode(raw.as_bytes(), true, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text, "x credit card");
        let start = text.find("credit").unwrap();
        let end = start + "credit card".len();
        let first = map_back(raw.as_bytes(), kind, start).unwrap();
        let last = map_back(raw.as_bytes(), kind, end - 1).unwrap();
        assert_eq!(&raw[first.start..last.end], r"\u0063re\u200bdit ｃard");
        assert_eq!(map_back(raw.as_bytes(), kind, out.len()), None);
    }

    /// Decoding then mapping every text byte back must give non-decreasing, in-bounds ranges
    /// whose source decodes to the text that contains that byte.
    #[test]
    fn map_back_is_consistent_on_mixed_input() {
        let pieces = [
            "a",
            "Z",
            " ",
            r"\n",
            r"\u00e9",
            r"\ud83d\ude00",
            "\u{200B}",
            "é",
            "e\u{301}",
            "ｆ",
            "ﬁ",
            r"\\",
            r#"\""#,
            "\u{E0041}",
            "日本",
            "①",
            "→",
            "Σ",
            "😀",
            r"\u0000",
            r"\b",
            r"\f",
            "\u{85}",
            r"\u000b",
            r"\u001c",
            r"\u001F",
            r"\u0085",
            "\u{2028}",
            r"\u2029",
            "\u{3000}",
            "\u{1680}",
            r"\u009f",
            "\u{7f}",
            "\u{1}",
            "\u{301}",
            "\u{20DD}",
            "\u{E31}",
            r"\u0332",
            "٤",
            r"\u06f5",
            "\u{600}",
            r"\ud804\udcbd",
            "\u{2800}",
            "ｶ",
            "ﾞ",
            "\u{1161}",
        ];
        let mut seed = 0x2545F491u32;
        for _ in 0..1500 {
            let mut raw = String::new();
            // Up to ~40 pieces: strings long enough to cross the scanner's 16-byte blocks.
            for _ in 0..(seed % 41) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                raw.push_str(pieces[(seed as usize) % pieces.len()]);
            }
            let mut out = Vec::new();
            let kind = decode(raw.as_bytes(), raw.contains('\\'), &mut out).unwrap();
            let all: Vec<usize> = (0..out.len()).collect();
            let many = map_back_many(raw.as_bytes(), kind, &all);
            let mut last = 0;
            for (at, batched) in many.iter().enumerate() {
                assert_eq!(
                    batched,
                    &map_back(raw.as_bytes(), kind, at),
                    "{raw:?} at {at}"
                );
                let r = map_back(raw.as_bytes(), kind, at).expect("in range");
                assert!(r.start >= last && r.end <= raw.len(), "{raw:?} at {at}");
                last = r.start;
                // The source range, decoded alone, is the piece of text that holds byte `at`:
                // a mask over it replaces that piece and nothing else.
                let mut piece = Vec::new();
                assert!(decode_full(&raw.as_bytes()[r.clone()], &mut piece));
                let covers =
                    (0..piece.len().min(at + 1)).any(|k| out[at - k..].starts_with(&piece));
                assert!(covers, "{raw:?} at {at}: {r:?} decodes to {piece:?}");
            }
            let mut full = Vec::new();
            walk(raw.as_bytes(), usize::MAX, |t, _, _| {
                full.extend_from_slice(t)
            });
            assert_eq!(full, out, "{raw:?}: fast and slow paths disagree");
            // Ending at the end of the body, and with blocks reaching past the closing quote.
            for quoted in [format!("\"{raw}\""), format!("\"{raw}\"{:20}", "")] {
                let mut fused = Vec::new();
                let mut sc = super::super::Scanner::new(quoted.as_bytes()).unwrap();
                let (_, fused_kind) = sc.string_into(&mut fused).unwrap();
                sc.finish().unwrap();
                assert_eq!(fused, out, "{quoted:?}: string_into and decode disagree");
                assert_eq!(fused_kind, kind, "{quoted:?}");
                let mut sc = super::super::Scanner::new(quoted.as_bytes()).unwrap();
                sc.string().unwrap();
                sc.finish().unwrap();
            }
        }
    }

    #[test]
    fn plain_text_normalises_like_json_strings() {
        for s in [
            "plain",
            "a \"q\" \\ \n\t",
            "cre\u{200B}dit ｃａｒｄ",
            "caf\u{e9} e\u{301}",
            "①\u{1}",
            "cre\u{0}dit\u{8}\u{85} card\u{7f}",
            "credit\u{b}\u{c}\u{1c}\u{1d}\u{1e}\u{1f}card\u{2028}x\u{2029}",
        ] {
            let mut text = Vec::new();
            let mut map = Vec::new();
            normalize_plain(s, &mut text, &mut map);
            let json = serde_json::to_string(s).unwrap();
            let mut want = Vec::new();
            decode(&json.as_bytes()[1..json.len() - 1], true, &mut want).unwrap();
            assert_eq!(text, want, "{s:?}");
            assert_eq!(map.len(), text.len());
            for r in &map {
                assert!(
                    r.start < r.end && r.end <= s.len() && s.is_char_boundary(r.start),
                    "{s:?} {r:?}"
                );
            }
        }
        let mut text = Vec::new();
        let mut map = Vec::new();
        normalize_plain("x cre\u{200B}dit", &mut text, &mut map);
        let i = 2;
        assert_eq!(map[i].start, 2);
        assert_eq!(map[text.len() - 1].end, "x cre\u{200B}dit".len());
    }

    #[test]
    fn exact_unescape_does_not_normalise() {
        let mut out = Vec::new();
        unescape_exact("ｍ\\u006fdel\u{200B}".as_bytes(), &mut out);
        assert_eq!(out, "ｍodel\u{200B}".as_bytes());
    }

    #[test]
    fn exact_offsets_map_back_through_escapes() {
        // `a"é😀\` and `b`: each text offset at a character's start, and the end.
        let raw = br#"a\"\u00e9\ud83d\ude00\\b"#;
        let mut text = Vec::new();
        unescape_exact(raw, &mut text);
        assert_eq!(text, "a\"é😀\\b".as_bytes());
        let at = [0, 1, 2, 4, 8, 9, 10];
        assert_eq!(map_exact(raw, &at), [0, 1, 3, 9, 21, 23, 24]);
        assert_eq!(map_exact(b"plain", &[0, 3, 5]), [0, 3, 5]);
    }

    /// The walk before it remembered characters: every non-ASCII character classified and
    /// every cluster normalised afresh. The walk must write the same text and ranges.
    fn walk_afresh(raw: &[u8]) -> Vec<(Vec<u8>, Range<usize>)> {
        let mut out = Vec::new();
        let mut cluster: Vec<char> = Vec::new();
        let mut src = 0..0;
        let flush = |cluster: &mut Vec<char>, src: Range<usize>, out: &mut Vec<_>| {
            let t: String = cluster.drain(..).nfkd().filter_map(fold).nfc().collect();
            if !t.is_empty() {
                out.push((t.into_bytes(), src));
            }
        };
        let (mut i, mut prev_tag, mut spell_run) = (0, false, false);
        while i < raw.len() {
            let (c, next) = next_char(raw, i);
            let tag = is_tag(c);
            if tag && !prev_tag {
                spell_run = tag_run_spells(raw, i);
            }
            prev_tag = tag;
            let c = match spelled(c) {
                Some(a) if !tag || spell_run => a,
                _ => c,
            };
            if !is_invisible(c) || (c.is_ascii() && raw[i] != b'\\') {
                let c = if raw[i] == b'\\' {
                    whitespace(c).unwrap_or(c)
                } else {
                    c
                };
                if !cluster.is_empty() && !c.is_ascii() && joins_previous(c) {
                    cluster.push(c);
                    src.end = next;
                } else {
                    flush(&mut cluster, src.clone(), &mut out);
                    cluster.push(c);
                    src = i..next;
                }
            }
            i = next;
        }
        flush(&mut cluster, src, &mut out);
        out
    }

    #[test]
    fn remembered_characters_normalise_as_when_read_afresh() {
        // Characters that repeat, with what can follow them: marks that join, halfwidth voice
        // marks, conjoining Hangul, tags, spelled and invisible characters, escapes.
        let alphabet = [
            "a",
            "e",
            " ",
            "-",
            "\\u2013",
            "\u{2013}",
            "\u{2014}",
            "\u{2026}",
            "\u{301}",
            "\u{20DD}",
            "\u{FF76}",
            "\u{FF9E}",
            "\u{1100}",
            "\u{1161}",
            "\u{11A8}",
            "\u{AC00}",
            "\u{E0063}",
            "\u{E0072}",
            "\u{1F170}",
            "\u{200B}",
            "\u{FB01}",
            "\u{FDFA}",
            "\u{2460}",
            "\u{0663}",
            "\u{00A0}",
            "\u{2019}",
            "\u{2192}",
            "\u{1F600}",
            "\u{0441}",
            "\u{00E9}",
            "\\n",
            "\\u0301",
            "\u{3099}",
            "\u{304B}",
            "\u{0915}",
            "\u{093F}",
            // Terminal control sequences, whole and cut.
            "\\u001b",
            "[",
            "31m",
            ";1",
            "\u{9B}",
        ];
        for raw in random_strings(&alphabet, 3000, 23) {
            let mut got = Vec::new();
            assert!(walk(raw.as_bytes(), usize::MAX, |t, r, one| {
                if one {
                    for (k, b) in t.iter().enumerate() {
                        got.push((vec![*b], r.start + k..r.start + k + 1));
                    }
                } else {
                    got.push((t.to_vec(), r));
                }
            }));
            assert_eq!(got, walk_afresh(raw.as_bytes()), "{raw:?}");
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_backslash_or_non_ascii_byte() {
        for stop in ["\\", "\u{e9}", "\u{2013}", "\u{1F600}"] {
            for len in [0, 1, 15, 16, 17, 40] {
                for at in 0..=len {
                    let mut text = "p".repeat(len);
                    text.insert_str(at, stop);
                    for from in 0..=at {
                        assert_eq!(
                            plain_run_end(text.as_bytes(), from),
                            at,
                            "{stop:?} {at} {from}"
                        );
                    }
                }
                let plain = "q".repeat(len);
                assert_eq!(plain_run_end(plain.as_bytes(), 0), len);
            }
        }
    }
}
