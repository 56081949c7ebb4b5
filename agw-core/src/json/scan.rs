//! The byte-level scanner.

use super::classify::{Known, Step, attention, is_special, quote_or_escape, string_stop};
use super::seen;
use super::text::Alone;
use super::{JsonError, MAX_DEPTH};
use std::ops::Range;

/// A JSON string's position: the raw bytes between the quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str {
    /// Byte range of the content between the quotes, in the scanned body.
    pub raw: Range<usize>,
    /// Whether the content contains at least one backslash escape.
    pub escaped: bool,
}

/// A cursor over a JSON body. Every method validates what it consumes.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// The last non-ASCII character found to need no normalisation.
    stable: Known,
    /// The last word dash found to need none: never [`stable`](Self::stable), so that each
    /// one is looked at, but not classified again.
    dash: char,
}

/// What each byte after a backslash means: the character a short escape stands for,
/// [`UNICODE_ESCAPE`] for `u`, 0 for an invalid escape.
const SHORT_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'/' as usize] = b'/';
    // A backspace is removed from the text (the full walk handles it); a form feed ends a line.
    t[b'b' as usize] = CONTROL_ESCAPE;
    t[b'f' as usize] = b'\n';
    t[b'n' as usize] = b'\n';
    t[b'r' as usize] = b'\r';
    t[b't' as usize] = b'\t';
    t[b'u' as usize] = UNICODE_ESCAPE;
    t
};
const UNICODE_ESCAPE: u8 = 0xff;
/// `\b`: valid, but its character is removed from the text like other controls.
const CONTROL_ESCAPE: u8 = 0xfe;

/// Appends `b[from..to]`, a run of string bytes that need no decoding.
#[inline]
fn copy_run(out: &mut Vec<u8>, b: &[u8], from: usize, to: usize) {
    // A short run (the common stop within the first block or two: a line of a tool result
    // between its escapes) is a fixed-size copy and a cut rather than a call.
    let n = to - from;
    let copied = if n <= 16 {
        copy_block::<16>(out, b, from, n)
    } else {
        n <= 32 && copy_block::<32>(out, b, from, n)
    };
    if !copied {
        out.extend_from_slice(&b[from..to]);
    }
}

/// Appends the first `n` (≤ `N`) bytes at `from` as one `N`-byte copy and a cut, when `N`
/// bytes are there to read.
#[inline(always)]
fn copy_block<const N: usize>(out: &mut Vec<u8>, b: &[u8], from: usize, n: usize) -> bool {
    let Some(block) = b.get(from..from + N) else {
        return false;
    };
    let block: &[u8; N] = block.try_into().expect("N bytes");
    out.extend_from_slice(block);
    out.truncate(out.len() - N + n);
    true
}

/// Whether `key` (decoded) equals `name` (ASCII lower case) under the folding described at
/// [`Scanner::key_matches`].
fn folds_to(key: &[u8], name: &[u8]) -> bool {
    let mut rest = key;
    for &want in name {
        let (c, len) = match rest {
            [0xc5, 0xbf, ..] => (b's', 2),
            [0xe2, 0x84, 0xaa, ..] => (b'k', 3),
            [c, ..] => (c.to_ascii_lowercase(), 1),
            [] => return false,
        };
        if c != want {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `b`. Checks UTF-8 once, up front.
    pub fn new(b: &'a [u8]) -> Result<Self, JsonError> {
        // SIMD validation: the std validator slows down on text with scattered non-ASCII.
        if simdutf8::basic::from_utf8(b).is_err() {
            let at = std::str::from_utf8(b).err().map_or(0, |e| e.valid_up_to());
            return Err(JsonError::Utf8(at));
        }
        Ok(Self {
            b,
            pos: 0,
            depth: 0,
            stable: Known::none(),
            dash: '\0',
        })
    }

    /// A scanner over the same (already validated) body, positioned at `pos`.
    pub fn at(&self, pos: usize) -> Self {
        Self {
            b: self.b,
            pos,
            depth: self.depth,
            stable: self.stable,
            dash: self.dash,
        }
    }

    /// The position of the next value (after whitespace).
    pub fn position(&mut self) -> usize {
        self.skip_ws();
        self.pos
    }

    /// Where the cursor is (just after the last value read, before any whitespace).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// How many containers the cursor is in.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The body being scanned.
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax { what, at: self.pos }
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if !is_ws(c) {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next non-whitespace byte, without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Checks that only whitespace is left.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("trailing characters after the JSON value")),
        }
    }

    /// Reads a string (the cursor must be at its opening quote, after whitespace).
    pub fn string(&mut self) -> Result<Str, JsonError> {
        self.expect(b'"', "expected a string")?;
        let start = self.pos;
        let mut pos = start;
        let mut escaped = false;
        loop {
            let at = self.string_stop(pos)?;
            if self.b[at] == b'"' {
                self.pos = at + 1;
                return Ok(Str {
                    raw: start..at,
                    escaped,
                });
            }
            escaped = true;
            pos = at + self.escape(at)?.1;
        }
    }

    /// The next `"` or `\` at or after `pos` in a string that is read, a block at a time;
    /// a raw control character on the way is an error: JSON allows them only escaped, and a
    /// lenient reader that takes them raw (Python's `strict=False`) reads text a guard that
    /// dropped them would not (thirteenth review). `pos` may be inside a character.
    #[inline]
    fn string_stop(&mut self, mut pos: usize) -> Result<usize, JsonError> {
        let b = self.b;
        let at = loop {
            let Some(block) = b.get(pos..pos + 16) else {
                match b[pos..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                {
                    Some(k) => break pos + k,
                    None => {
                        self.pos = b.len();
                        return Err(self.err("unterminated string"));
                    }
                }
            };
            match string_stop(block.try_into().expect("16 bytes")) {
                Some(k) => break pos + k,
                None => pos += 16,
            }
        };
        if b[at] < 0x20 {
            self.pos = at;
            return Err(self.err("a control character in a string"));
        }
        Ok(at)
    }

    /// Checks the escape whose backslash is at `at`: the byte a short escape stands for
    /// ([`UNICODE_ESCAPE`] for a valid `\u`), and the escape's length.
    fn escape(&mut self, at: usize) -> Result<(u8, usize), JsonError> {
        match self
            .b
            .get(at + 1)
            .map_or(0, |&c| SHORT_ESCAPES[usize::from(c)])
        {
            0 => {
                self.pos = at;
                Err(self.err("invalid escape"))
            }
            UNICODE_ESCAPE => {
                let hex = self.b.get(at + 2..at + 6);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    self.pos = at;
                    return Err(self.err("invalid \\u escape"));
                }
                Ok((UNICODE_ESCAPE, 6))
            }
            c => Ok((c, 2)),
        }
    }

    /// How the fast path of [`string_into`](Self::string_into) reads the non-ASCII character
    /// at `at` (`len` bytes): as it is (`Itself`: it needs no normalisation), as one ASCII
    /// byte (an en dash's `-`, a no-break space's ` `), or not at all (`Other`: the string
    /// goes to the full walk). A word dash is noted for `text::dashed_runs` and never becomes
    /// the known character, so that each one's run is looked at.
    fn read_in_place(&mut self, at: usize, len: usize) -> Alone {
        let b = self.b;
        if self.stable.is_at(b, at, len) {
            return Alone::Itself;
        }
        let (c, _) = super::text::next_char(b, at);
        let word_dash = super::chars::is_word_dash(c);
        if word_dash {
            super::text::note_word_dash(b, at, at + len);
            if c == self.dash {
                return Alone::Itself;
            }
        }
        let stable = match super::text::alone(c) {
            Alone::Ascii(a) => return Alone::Ascii(a),
            Alone::Itself => true,
            Alone::Other => super::text::is_stable(c),
        };
        if !stable {
            return Alone::Other;
        }
        if word_dash {
            self.dash = c;
        } else {
            self.stable.set(c);
        }
        Alone::Itself
    }

    /// Reads a string (the cursor must be at its opening quote) and appends its normalized text
    /// to `out` in the same pass — the same text [`decode`](super::decode) gives.
    ///
    /// One loop over 16-byte blocks finds the bytes that need attention (`"`, `\`, non-ASCII)
    /// and copies whole blocks, so text with an escape or a non-ASCII character on every line
    /// (Read tool results) costs no function call per stop. A non-ASCII character that the last
    /// stable one matches needs a single compare; others get the NFKC-stability check once.
    pub fn string_into(&mut self, out: &mut Vec<u8>) -> Result<(Str, super::Decoded), JsonError> {
        self.expect(b'"', "expected a string")?;
        let b = self.b;
        let start = self.pos;
        let out_start = out.len();
        let mut pos = start;
        let mut escaped = false;
        // Whether a character was read as the one ASCII byte it reads as alone.
        let mut folded = false;
        // Whether copying bytes and replacing short escapes gives the normalized text; once
        // false, the string is normalized by the full walk at the end. While it is true, `out`
        // holds the text of `b[start..pos]`.
        let mut simple = true;
        loop {
            let at = if simple {
                // Blocks that need no attention are copied as one run: one copy per run, not
                // per block.
                let run = pos;
                let at = loop {
                    match attention(b, pos, &self.stable) {
                        Step::Stop(k) => break pos + k,
                        Step::Skip(n) => pos += n,
                        Step::Tail => match b[pos..].iter().position(|&c| is_special(c)) {
                            Some(k) => break pos + k,
                            None => {
                                self.pos = b.len();
                                return Err(self.err("unterminated string"));
                            }
                        },
                    }
                };
                copy_run(out, b, run, at);
                at
            } else {
                // Only the end matters now (the full walk decodes): blocks are skipped whole,
                // so `pos` can be inside a character.
                self.string_stop(pos)?
            };
            match b[at] {
                b'"' => {
                    self.pos = at + 1;
                    let raw = start..at;
                    let kind = if !simple {
                        out.truncate(out_start);
                        if !super::text::decode_full(&b[raw.clone()], out) {
                            out.truncate(out_start);
                            return Err(super::text::too_expanded());
                        }
                        super::Decoded::Transformed
                    } else if escaped || folded {
                        super::Decoded::Transformed
                    } else {
                        super::Decoded::Identity
                    };
                    return Ok((Str { raw, escaped }, kind));
                }
                b'\\' => {
                    escaped = true;
                    // Inline rather than through `escape`: this is the hottest stop.
                    match b.get(at + 1).map_or(0, |&c| SHORT_ESCAPES[usize::from(c)]) {
                        0 | UNICODE_ESCAPE | CONTROL_ESCAPE => {
                            let (c, len) = self.escape(at)?;
                            debug_assert!(matches!(c, UNICODE_ESCAPE | CONTROL_ESCAPE));
                            simple = false;
                            pos = at + len;
                        }
                        c => {
                            if simple {
                                out.push(c);
                            }
                            pos = at + 2;
                        }
                    }
                }
                0..0x20 => {
                    self.pos = at;
                    return Err(self.err("a control character in a string"));
                }
                lead => {
                    debug_assert!(simple, "non-ASCII is only looked at while simple");
                    // The body is valid UTF-8 (checked in `new`): the lead byte gives the length.
                    let len = match lead {
                        0xf0.. => 4,
                        0xe0.. => 3,
                        _ => 2,
                    };
                    if simple {
                        match self.read_in_place(at, len) {
                            Alone::Itself => {
                                // A fixed-size copy (then a cut) rather than a call for 2-4
                                // bytes.
                                match b.get(at..at + 4) {
                                    Some(four) => {
                                        out.extend_from_slice(four);
                                        out.truncate(out.len() - 4 + len);
                                    }
                                    None => out.extend_from_slice(&b[at..at + len]),
                                }
                            }
                            Alone::Ascii(a) => {
                                out.push(a);
                                folded = true;
                            }
                            Alone::Other => simple = false,
                        }
                    }
                    pos = at + len;
                }
            }
        }
    }

    /// Reads a string and, if it is one, returns its range; `Ok(None)` (consuming nothing but
    /// whitespace) if the next value is not a string.
    pub fn string_or_none(&mut self) -> Result<Option<Str>, JsonError> {
        if self.peek() == Some(b'"') {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JsonError::TooDeep(MAX_DEPTH));
        }
        Ok(())
    }

    /// Walks an object, calling `f` with each key; `f` must consume the value.
    pub fn object(
        &mut self,
        mut f: impl FnMut(&mut Self, Str) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'{', "expected an object")?;
        self.enter()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected an object key"));
            }
            let key = self.string()?;
            self.expect(b':', "expected `:` after an object key")?;
            f(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    /// Walks an array, calling `f` with each index; `f` must consume the element.
    pub fn array(
        &mut self,
        mut f: impl FnMut(&mut Self, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'[', "expected an array")?;
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            f(self, i)?;
            i += 1;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }

    /// Skips one value of any type, validating it. Returns its byte range.
    pub fn skip(&mut self) -> Result<Range<usize>, JsonError> {
        let c = self.peek();
        let start = self.pos;
        match c {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => self.object(|s, _| s.skip().map(drop))?,
            Some(b'[') => self.array(|s, _| s.skip().map(drop))?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.err("expected a JSON value")),
            None => return Err(self.err("unexpected end of body")),
        }
        Ok(start..self.pos)
    }

    /// Skips one value that nobody reads, as fast as possible: strings are only found to end
    /// (one `memchr` per quote, not per escape) and containers only checked to nest and close
    /// properly. For valid JSON the value ends where [`Scanner::skip`] says; what is not
    /// checked is the grammar inside (commas, escapes, number syntax) — agw reads nothing there,
    /// and the provider rejects such a body anyway.
    pub fn skip_fast(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'"') => self.skip_string_fast(),
            Some(b'{' | b'[') => self.skip_container_fast(),
            _ => self.skip().map(drop),
        }
    }

    #[inline]
    fn skip_string_fast(&mut self) -> Result<(), JsonError> {
        let mut from = self.pos + 1;
        // Most strings skipped are short (keys, types, enum values): a block compare or two
        // finds their end without a `memchr` call. An escape's next byte is never the end.
        for _ in 0..2 {
            let Some(block) = self.b.get(from..from + 16) else {
                break;
            };
            match quote_or_escape(block.try_into().expect("16 bytes")) {
                Some(k) if block[k] == b'"' => {
                    self.pos = from + k + 1;
                    return Ok(());
                }
                Some(k) => from += k + 2,
                None => from += 16,
            }
        }
        self.skip_long_string(from)
    }

    /// The rest of a string that opened at `self.pos`, from `from`: `memchr` to each quote,
    /// then whether an odd run of backslashes escapes it.
    #[inline(never)]
    fn skip_long_string(&mut self, mut from: usize) -> Result<(), JsonError> {
        let open = self.pos;
        loop {
            let Some(off) = memchr::memchr(b'"', self.b.get(from..).unwrap_or_default()) else {
                self.pos = self.b.len();
                return Err(self.err("unterminated string"));
            };
            let quote = from + off;
            let backslashes = self.b[open + 1..quote]
                .iter()
                .rev()
                .take_while(|&&c| c == b'\\')
                .count();
            if backslashes % 2 == 0 {
                self.pos = quote + 1;
                return Ok(());
            }
            from = quote + 1;
        }
    }

    fn skip_container_fast(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        // Whether the values kept from earlier skips were looked at: once this value is known
        // to be large (small ones, most of them, never pay for the lookup).
        let mut looked = false;
        // Open brackets as bits (1 = `{`), innermost lowest; the depth limit keeps it in 128.
        let mut stack: u128 = 0;
        let mut depth = 0usize;
        let mut deepest = 0usize;
        loop {
            if !looked && self.pos - start >= seen::MIN_LEN {
                looked = true;
                // A large value sent before (the same tool schemas every turn) is found by
                // comparing it whole.
                if let Some(n) = seen::find(&self.b[start..], self.depth, MAX_DEPTH) {
                    self.pos = start + n;
                    return Ok(());
                }
            }
            let Some(&c) = self.b.get(self.pos) else {
                return Err(self.err("unexpected end of body"));
            };
            match c {
                b'"' => {
                    self.skip_string_fast()?;
                    continue;
                }
                b'{' | b'[' => {
                    depth += 1;
                    if self.depth + depth > MAX_DEPTH {
                        return Err(JsonError::TooDeep(MAX_DEPTH));
                    }
                    stack = stack << 1 | u128::from(c == b'{');
                    deepest = deepest.max(depth);
                }
                b'}' | b']' => {
                    if depth == 0 || (stack & 1 == 1) != (c == b'}') {
                        return Err(self.err("mismatched bracket"));
                    }
                    stack >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        seen::keep(&self.b[start..self.pos], deepest);
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), JsonError> {
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let n = self.b[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.pos += n;
        n
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }

    /// Whether the key (raw, possibly escaped) decodes to `name`.
    pub fn key_is(&self, key: &Str, name: &str) -> bool {
        *self.str_value(key) == *name.as_bytes()
    }

    /// Whether the key is `name` (ASCII lower case) to a parser that matches keys
    /// case-insensitively, as Go's `encoding/json` does: decoded, it equals `name` ignoring
    /// ASCII case, with `ſ` (U+017F) read as `s` and the Kelvin sign (U+212A) as `k` (the two
    /// non-ASCII characters Unicode folds to ASCII letters). A request reader that skips such a
    /// key would forward text such a server reads.
    ///
    /// Inline and without a library call: the extractors try each key against a few names in
    /// turn, so most calls are quick refusals. A key is decoded only when it is escaped or
    /// non-ASCII, longer than `name`, and its ends do not already rule it out.
    #[inline(always)]
    pub fn key_matches(&self, key: &Str, name: &str) -> bool {
        let raw = &self.b[key.raw.clone()];
        let name = name.as_bytes();
        debug_assert!(!name.iter().any(u8::is_ascii_uppercase), "{name:?}");
        match raw.len().cmp(&name.len()) {
            // An escape or a folded character makes a key longer than its folded text, so a
            // key of `name`'s length matches only as plain ASCII (`name` is lower case).
            std::cmp::Ordering::Equal => raw
                .iter()
                .zip(name)
                .all(|(&c, &want)| c.to_ascii_lowercase() == want),
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => {
                // A plain ASCII first character (not `\\`, not the start of `ſ` or the Kelvin
                // sign) is the folded text's first character; unescaped, the same holds for
                // the last.
                let plain = |c: u8| c < 0x80 && c != b'\\';
                let (first, last) = (raw[0], raw[raw.len() - 1]);
                if name.is_empty()
                    || plain(first) && first.to_ascii_lowercase() != name[0]
                    || !key.escaped
                        && plain(last)
                        && last.to_ascii_lowercase() != name[name.len() - 1]
                {
                    return false;
                }
                self.longer_key_folds_to(key, raw, name)
            }
        }
    }

    /// [`Scanner::key_matches`] for a key longer than `name` that its ends do not rule out.
    #[inline(never)]
    fn longer_key_folds_to(&self, key: &Str, raw: &[u8], name: &[u8]) -> bool {
        if !key.escaped && raw.is_ascii() {
            return false;
        }
        folds_to(&self.str_value(key), name)
    }

    /// The decoded value of a short string (keys, roles, types), exact JSON semantics.
    pub fn str_value(&self, s: &Str) -> std::borrow::Cow<'a, [u8]> {
        let raw = &self.b[s.raw.clone()];
        if !s.escaped {
            return std::borrow::Cow::Borrowed(raw);
        }
        let mut out = Vec::new();
        super::text::unescape_exact(raw, &mut out);
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(s: &str) -> Result<(), JsonError> {
        let mut sc = Scanner::new(s.as_bytes())?;
        sc.skip()?;
        sc.finish()
    }

    #[test]
    fn valid_documents() {
        for ok in [
            "{}",
            "[]",
            " {\"a\" : [1, -2.5e+3, 0, true, false, null, \"x\\n\\u00e9\\\"\"] } ",
            "\"\"",
            "0",
            "-0.0E-0",
            "{\"k\":{\"k\":{\"k\":[[[]]]}}}",
        ] {
            skip_all(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn invalid_documents() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "\"abc",
            "\"\\x\"",
            "\"\\u12g4\"",
            "01",
            "1.",
            "-",
            "tru",
            "{} {}",
            "{'a':1}",
            "nul",
        ] {
            assert!(skip_all(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(Scanner::new(b"\"\xff\""), Err(JsonError::Utf8(1))));
    }

    /// A raw control character in a string a guard reads is refused, as JSON has it (a
    /// lenient reader would read it; the guard's text dropped it): in a value read as text on
    /// the fast path and after an escape, and in a key; escaped it is text.
    #[test]
    fn raw_control_characters_in_read_strings_are_refused() {
        for (raw, at) in [
            ("\"cre\u{0}dit card\"", 4),
            ("\"SECRET\u{1c}-1234\"", 7),
            ("\"a long run of plain text, then \u{1b}[0m\"", 32),
            ("\"\\u00e9 then\u{7} bell\"", 12),
        ] {
            let mut sc = Scanner::new(raw.as_bytes()).unwrap();
            let err = sc.string_into(&mut Vec::new()).unwrap_err();
            assert_eq!(
                err,
                JsonError::Syntax {
                    what: "a control character in a string",
                    at
                },
                "{raw:?}"
            );
            let mut sc = Scanner::new(raw.as_bytes()).unwrap();
            assert!(sc.string().is_err(), "{raw:?}");
        }
        let mut sc = Scanner::new(br#""cre\u0000dit card""#).unwrap();
        let mut out = Vec::new();
        sc.string_into(&mut out).unwrap();
        assert_eq!(out, b"credit card");
    }

    #[test]
    fn fast_skip_ends_where_the_strict_skip_ends() {
        for doc in [
            r#"{"a":[1,{"b":"x\\\"]}"}],"c":"\\"}"#,
            r#"["\\\\",{"k":"}"},[[[]]],"end"]"#,
            r#""plain \" string""#,
            r#"{"tools":[{"name":"R","description":"a\nb \"q\" \\","input_schema":{"type":"object"}}]}"#,
        ] {
            let mut strict = Scanner::new(doc.as_bytes()).unwrap();
            strict.skip().unwrap();
            let mut fast = Scanner::new(doc.as_bytes()).unwrap();
            fast.skip_fast().unwrap();
            assert_eq!(fast.pos, strict.pos, "{doc}");
            assert_eq!(fast.pos, doc.len(), "{doc}");
        }
        for bad in [r#"[1,2"#, r#"{"a":[}"#, r#""abc"#, r#"[{]}"#] {
            assert!(
                Scanner::new(bad.as_bytes()).unwrap().skip_fast().is_err(),
                "{bad}"
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(
            Scanner::new(deep.as_bytes()).unwrap().skip_fast(),
            Err(JsonError::TooDeep(MAX_DEPTH))
        );
    }

    /// A tool-schema-like array of about `n` bytes.
    fn schemas(n: usize) -> String {
        let mut s = String::from("[");
        let mut i = 0;
        while s.len() < n {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                r#"{{"name":"T{i}","description":"line\n \"q\" {{[ \\","input_schema":{{"type":"object","properties":{{"p{i}":{{"type":"array","items":[1,true,null]}}}}}}}}"#
            ));
            i += 1;
        }
        s.push(']');
        s
    }

    /// Where `skip_fast` ends on `doc` starting at `depth`, or its error.
    fn fast_end(doc: &[u8], depth: usize) -> Result<usize, JsonError> {
        let mut sc = Scanner::new(doc).unwrap();
        sc.depth = depth;
        sc.skip_fast().map(|()| sc.pos)
    }

    /// Skips `doc` twice from a clean slate, so that it is kept (a value is kept the second
    /// time it is skipped).
    fn kept(doc: &[u8]) {
        seen::clear();
        fast_end(doc, 0).unwrap();
        assert_eq!(seen::held().0, 0, "kept only when seen again");
        fast_end(doc, 0).unwrap();
        assert_eq!(seen::held().0, 1);
        assert_eq!(seen::hits(), 0);
    }

    #[test]
    fn a_value_skipped_before_is_recognised_only_by_equal_bytes() {
        let value = schemas(4 * seen::MIN_LEN);
        kept(value.as_bytes());
        // Found again, also with more after it.
        assert_eq!(fast_end(value.as_bytes(), 0), Ok(value.len()));
        let longer = format!("{value} , 1]");
        assert_eq!(fast_end(longer.as_bytes(), 0), Ok(value.len()));
        assert_eq!(seen::hits(), 2);
        // Every one-byte change, kept value or not, ends where a scan from scratch ends.
        let bytes = value.as_bytes();
        let mut checked = 0;
        for at in (0..bytes.len())
            .step_by(7)
            .chain(bytes.len() - 12..bytes.len())
        {
            for with in [b'"', b'\\', b'[', b']', b'{', b'}', b'x'] {
                if bytes[at] == with {
                    continue;
                }
                let mut changed = bytes.to_vec();
                changed[at] = with;
                seen::clear();
                let scratch = fast_end(&changed, 0);
                kept(bytes);
                assert_eq!(fast_end(&changed, 0), scratch, "byte {at} -> {with}");
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn a_value_skipped_before_still_counts_its_depth() {
        // Nested about 100 deep at its end, after enough bytes that the kept values are
        // consulted before the depth is reached.
        let value = format!(
            "[{},{}1{}]",
            schemas(seen::MIN_LEN),
            "[".repeat(98),
            "]".repeat(98)
        );
        let bytes = value.as_bytes();
        // The deepest start a scan from scratch accepts.
        let limit = (0..MAX_DEPTH)
            .take_while(|&d| {
                seen::clear();
                fast_end(bytes, d).is_ok()
            })
            .last()
            .unwrap();
        assert!((20..35).contains(&limit), "{limit}");
        kept(bytes);
        assert_eq!(fast_end(bytes, limit), Ok(value.len()));
        assert_eq!(seen::hits(), 1, "found, not scanned");
        // Kept, but too deep where it is found now: refused as a scan from scratch refuses it.
        assert_eq!(
            fast_end(bytes, limit + 1),
            Err(JsonError::TooDeep(MAX_DEPTH))
        );
        assert_eq!(seen::hits(), 1);
    }

    #[test]
    fn values_seen_once_are_not_kept_and_the_least_recently_used_make_room() {
        seen::clear();
        // One-off values cost no copy.
        let values: Vec<String> = (0..40)
            .map(|i| format!("[{},{i}]", schemas(seen::MIN_LEN + 64 * i)))
            .collect();
        for v in &values {
            fast_end(v.as_bytes(), 0).unwrap();
        }
        assert_eq!(seen::held(), (0, 0));
        // A turn's repeated values (a tools array and images, say) are kept together.
        seen::clear();
        for _ in 0..3 {
            for v in &values[..5] {
                fast_end(v.as_bytes(), 0).unwrap();
            }
        }
        assert_eq!(seen::held().0, 5);
        assert_eq!(seen::hits(), 5, "the third turn finds all five");
        // Past the count bound, the value unused the longest goes.
        for v in &values[5..20] {
            fast_end(v.as_bytes(), 0).unwrap();
            fast_end(v.as_bytes(), 0).unwrap();
        }
        let (count, bytes) = seen::held();
        assert!(count <= 16 && bytes <= 1 << 20, "{count} {bytes}");
        let before = seen::hits();
        fast_end(values[0].as_bytes(), 0).unwrap();
        assert_eq!(seen::hits(), before, "the oldest went first");
        fast_end(values[19].as_bytes(), 0).unwrap();
        assert_eq!(seen::hits(), before + 1, "the newest stays");
        // Too large to keep.
        seen::clear();
        let huge = schemas(seen::MAX_LEN + 1);
        for _ in 0..3 {
            fast_end(huge.as_bytes(), 0).unwrap();
        }
        assert_eq!(seen::held(), (0, 0));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(skip_all(&deep), Err(JsonError::TooDeep(MAX_DEPTH)));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        skip_all(&ok).unwrap();
    }

    #[test]
    fn escaped_keys_compare_decoded() {
        let body = br#"{"\u006dodel":"x","model":"y"}"#;
        let mut sc = Scanner::new(body).unwrap();
        let mut hits = 0;
        sc.object(|s, k| {
            if s.key_is(&k, "model") {
                hits += 1;
            }
            s.skip().map(drop)
        })
        .unwrap();
        assert_eq!(hits, 2);
    }

    #[test]
    fn keys_match_as_a_case_insensitive_parser_reads_them() {
        let matching = [
            r#""messages""#,
            r#""MESSAGES""#,
            r#""Messages""#,
            r#""mess\u0061ges""#,
            r#""MESS\u0041GES""#,
            "\"me\u{17f}\u{17f}ages\"",
            r#""me\u017fSAGES""#,
            "\"\u{212a}\"",
        ];
        let other = [
            r#""message""#,
            r#""messagess""#,
            r#""messages ""#,
            r#""me\u0073sage""#,
            "\"mess\u{e1}ges\"",
            "\"messages\u{17f}\"",
            r#""""#,
        ];
        for (keys, want) in [(&matching[..], true), (&other[..], false)] {
            for key in keys {
                let body = format!("{{{key}:1}}");
                let mut sc = Scanner::new(body.as_bytes()).unwrap();
                let mut hit = false;
                sc.object(|s, k| {
                    hit = s.key_matches(&k, "messages") || s.key_matches(&k, "k");
                    s.skip().map(drop)
                })
                .unwrap();
                assert_eq!(hit, want, "{key}");
            }
        }
    }

    /// `key_matches` agrees with decoding the key and folding it, on keys built from the names
    /// the extractors use: case changes, `ſ` and the Kelvin sign, `\u` escapes, and a
    /// character added or dropped at either end.
    #[test]
    fn key_matches_agrees_with_decode_and_fold() {
        fn fold(s: &str) -> String {
            s.chars()
                .map(|c| match c {
                    '\u{17f}' => 's',
                    '\u{212a}' => 'k',
                    c => c.to_ascii_lowercase(),
                })
                .collect()
        }
        let names = [
            "messages",
            "model",
            "type",
            "text",
            "content",
            "k",
            "tool_use_id",
            "s",
        ];
        let mut keys = Vec::new();
        for name in names {
            let chars: Vec<char> = name.chars().collect();
            for i in 0..chars.len() {
                let with = |c: String| {
                    let mut k: String = chars[..i].iter().collect();
                    k.push_str(&c);
                    k.extend(&chars[i + 1..]);
                    k
                };
                keys.push(with(chars[i].to_ascii_uppercase().to_string()));
                keys.push(with(format!("\\u{:04x}", chars[i] as u32)));
                keys.push(with(format!(
                    "\\u{:04X}",
                    chars[i].to_ascii_uppercase() as u32
                )));
                match chars[i] {
                    's' => keys.push(with("\u{17f}".into())),
                    'k' => keys.push(with("\u{212a}".into())),
                    _ => {}
                }
            }
            for edge in ["x", "X", "\u{e9}", "\u{17f}", "\u{212a}", "\\u0041", "\\n"] {
                keys.push(format!("{edge}{name}"));
                keys.push(format!("{name}{edge}"));
            }
            keys.push(name[1..].to_owned());
            keys.push(name[..name.len() - 1].to_owned());
            keys.push(name.to_uppercase());
        }
        for key in &keys {
            let body = format!("{{\"{key}\":1}}");
            let decoded: std::collections::BTreeMap<String, u8> =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            let decoded = decoded.keys().next().unwrap().clone();
            let mut sc = Scanner::new(body.as_bytes()).unwrap();
            sc.object(|s, k| {
                for name in names {
                    let want = fold(&decoded) == name;
                    assert_eq!(s.key_matches(&k, name), want, "key {key:?} name {name:?}");
                }
                s.skip().map(drop)
            })
            .unwrap();
        }
    }

    /// The fused read (`string_into`, which reads characters that fold to one ASCII byte in
    /// place and looks at every word dash) gives the text `decode` gives, and calls it the raw
    /// bytes only when it is.
    #[test]
    fn string_into_reads_dashes_and_folds_as_decode_does() {
        let alphabet = [
            "a",
            "Z",
            "7",
            " ",
            "-",
            "\\n",
            "\\u0062",
            "\\u2014",
            "\\u2013",
            "\\u00e9",
            "\u{2014}",
            "\u{2013}",
            "\u{2015}",
            "\u{30FC}",
            "\u{FF70}",
            "\u{FE31}",
            "\u{00A0}",
            "\u{FF4B}",
            "\u{0663}",
            "\u{2460}",
            "\u{2192}",
            "\u{301}",
            "\u{200B}",
            "\u{1F170}",
            "\u{E0063}",
            "\u{E0072}",
            "\u{2026}",
            "\u{00E9}",
            "\u{0441}",
        ];
        for raw in super::super::text::random_strings(&alphabet, 4000, 19) {
            let doc = format!("\"{raw}\"");
            let mut fused = Vec::new();
            let (str, kind) = Scanner::new(doc.as_bytes())
                .unwrap()
                .string_into(&mut fused)
                .unwrap();
            let mut two_pass = Vec::new();
            let want = super::super::decode(raw.as_bytes(), str.escaped, &mut two_pass).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&fused),
                String::from_utf8_lossy(&two_pass),
                "{raw:?}"
            );
            if kind == super::super::Decoded::Identity {
                assert_eq!(fused, raw.as_bytes(), "{raw:?}");
                assert_eq!(want, kind, "{raw:?}");
            }
        }
    }
}
