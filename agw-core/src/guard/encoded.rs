//! Text written in base64 inside message text (`decode this: Y3JlZGl0IGNhcmQ=`, a Kubernetes
//! Secret's `data:` values in a file a tool read, Docker's `auth`): a model decodes it, so a
//! run of base64 that decodes to text is read decoded, and a rule's match there is a hit over
//! the whole run — masked as a whole, or refused (eighteenth session's red team and detector
//! review: both went upstream unread).

/// The shortest run read (12 characters hold 9 bytes: `credit card` is 16).
const MIN_RUN: usize = 12;

/// The longest run read (longer ones are files: read as inline files are, elsewhere).
const MAX_RUN: usize = 64 << 10;

fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_')
}

/// Whether a byte can be part of a run: every printable ASCII character from `+` on, a
/// superset of base64's (`+`, `-`, `/`, digits, letters, `_`) that one signed compare finds.
fn maybe_base64(c: u8) -> bool {
    (0x2b..0x80).contains(&c)
}

/// The runs of base64 in `text` that decode to text, each with its decoded text, to `out`.
/// A run is a maximal stretch of base64's characters (either alphabet) with its padding, of
/// [`MIN_RUN`] characters or more, that mixes at least two of upper case, lower case and
/// digits (a word, a number or a hex hash does not) and decodes to printable UTF-8; or an even
/// number of hex digits that decodes to printable UTF-8 as hex ([`hex_text`]).
pub(crate) fn runs(text: &[u8], out: &mut Vec<(std::ops::Range<usize>, String)>) {
    let mut i = 0;
    // The end of the last wrapped block tried ([`wrapped_end`]).
    let mut tried = 0;
    // Prose has few stretches that long without a space: most texts are passed over 64 bytes
    // a step, and only the stretches found are read byte by byte. A run is inside one
    // stretch (its characters are all of the stretch's kind, and so are its padding's).
    while let Some(next) = first_long_stretch(&text[i..]) {
        let from = i + next;
        let to = text[from..]
            .iter()
            .position(|&c| !maybe_base64(c))
            .map_or(text.len(), |n| from + n);
        i = from;
        // Where reading goes on after a wrapped block read whole.
        let mut resume = None;
        while i < to {
            while i < to && !is_base64(text[i]) {
                i += 1;
            }
            let start = i;
            let (mut upper, mut lower, mut digit) = (false, false, false);
            while i < to && is_base64(text[i]) {
                let c = text[i];
                upper |= c.is_ascii_uppercase();
                lower |= c.is_ascii_lowercase();
                digit |= c.is_ascii_digit();
                i += 1;
            }
            let len = i - start;
            let mut end = i;
            while end < to && end - i < 2 && text[end] == b'=' {
                end += 1;
            }
            let mixed = usize::from(upper) + usize::from(lower) + usize::from(digit) >= 2;
            // A block wrapped into lines (`base64` writes 76 characters a line, PEM 64): read
            // as one run, so text across a line break is read whole (twenty-first session's
            // red team: each line was decoded alone).
            // A block that does not decode to text is tried once, not again from each of its
            // lines (that would be quadratic in its lines).
            if mixed
                && end == to
                && end == i
                && len >= MIN_WRAP
                && start >= tried
                && let Some(block) = wrapped_end(text, start, len)
            {
                tried = block;
                let decoded = super::files::base64_decoded(&text[start..block], usize::MAX);
                if let Some(s) = printable_block(&decoded) {
                    out.push((start..block, s.to_owned()));
                    resume = Some(block);
                    break;
                }
            }
            // Hex of lower-case letters is all digits: no mix asked of it.
            if (MIN_RUN..=MAX_RUN).contains(&len) {
                if let Some(s) = hex_text(&text[start..end]) {
                    out.push((start..end, s));
                } else if mixed && len % 4 != 1 {
                    let decoded = super::files::base64_decoded(&text[start..end], usize::MAX);
                    if let Some(s) = printable(&decoded) {
                        out.push((start..end, s.to_owned()));
                    }
                }
            }
            i = end;
        }
        i = resume.take().unwrap_or(to);
    }
}

/// What a run of hex digits (an even number, perhaps after `0x`) decodes to, if that is
/// printable text: `637265646974206361726420` is `credit card ` to a model as much as its
/// base64 is (twenty-second session).
fn hex_text(run: &[u8]) -> Option<String> {
    let digits = run
        .strip_prefix(b"0x")
        .or_else(|| run.strip_prefix(b"0X"))
        .unwrap_or(run);
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Vec<u8> = digits
        .chunks_exact(2)
        .map(|p| hex_byte(Some(p)))
        .collect::<Option<_>>()?;
    printable(&bytes).map(str::to_owned)
}

/// The narrowest line a wrapped block of base64 is read from ([`wrapped_end`]).
const MIN_WRAP: usize = 40;

/// Decoded bytes as text, if they are printable UTF-8 (line breaks and tabs allowed).
fn printable(decoded: &[u8]) -> Option<&str> {
    std::str::from_utf8(decoded).ok().filter(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    })
}

/// The end of a block of base64 wrapped into lines of `width` characters whose first line
/// starts at `start`: each following line of exactly `width` characters, then a last one of
/// at most `width` with its padding, each a line of base64 alone. Between two lines: blanks
/// after the first (a terminal's copy), one to three line breaks (`\n` or `\r\n`: blank
/// lines between), and the next line's indentation (a YAML block scalar). `None` when no
/// line follows the first.
fn wrapped_end(text: &[u8], start: usize, width: usize) -> Option<usize> {
    let blanks = |from: usize, most: usize| {
        from + text[from.min(text.len())..]
            .iter()
            .take(most)
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count()
    };
    let mut e = start + width;
    let mut lines = 1;
    while e - start <= MAX_RUN {
        let mut next = blanks(e, 8);
        let mut breaks = 0;
        while breaks < 3 {
            let rest = &text[next..];
            let len = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") {
                1
            } else {
                break;
            };
            breaks += 1;
            next = blanks(next + len, 16);
        }
        if breaks == 0 {
            break;
        }
        let r = next
            + text[next..]
                .iter()
                .take(width + 1)
                .take_while(|&&c| is_base64(c))
                .count();
        let mut padded = r;
        while padded < text.len() && padded - r < 2 && text[padded] == b'=' {
            padded += 1;
        }
        let alone = text.get(padded).is_none_or(|&c| !maybe_base64(c));
        if r == next || r - next > width || !alone {
            break;
        }
        e = padded;
        lines += 1;
        if r - next < width || padded > r {
            break;
        }
    }
    (lines > 1).then_some(e)
}

/// Decoded bytes of a wrapped block as text ([`printable`]), a few control characters in it
/// allowed (at most one in 50: an ANSI colour code, a NUL at the end of a file), since a long
/// block that is UTF-8 is text, not binary, whatever a control character in it.
fn printable_block(decoded: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(decoded)
        .ok()
        .filter(|s| !s.is_empty())?;
    let odd = s
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .count();
    (odd * 50 <= s.len()).then_some(s)
}

/// Where the first stretch of [`MIN_RUN`] or more characters that [`maybe_base64`] starts,
/// if any: 64 bytes a step.
fn first_long_stretch(text: &[u8]) -> Option<usize> {
    // The length of the stretch that reaches the end of what was scanned.
    let mut run = 0usize;
    let mut at = 0;
    let blocks = text.chunks_exact(64);
    let tail = blocks.remainder();
    for block in blocks {
        let m = block.chunks_exact(16).enumerate().fold(0u64, |m, (k, b)| {
            m | u64::from(mask16(b.try_into().expect("16 bytes"))) << (16 * k)
        });
        if m == u64::MAX {
            run += 64;
        } else {
            // One that goes on into this block's first bytes.
            if run + m.trailing_ones() as usize >= MIN_RUN {
                return Some(at - run);
            }
            // One inside it: bit `k` is left set when bits `k..k + 12` all are, and the
            // lowest such bit starts a stretch (the one below it is clear, or bit 0 would
            // have been a stretch going on from the block before).
            let mut inside = m;
            for shift in [1, 2, 4, 4] {
                inside &= inside >> shift;
            }
            if inside != 0 {
                return Some(at + inside.trailing_zeros() as usize);
            }
            run = m.leading_ones() as usize;
        }
        at += 64;
    }
    if run >= MIN_RUN {
        return Some(at - run);
    }
    for &c in tail {
        run = if maybe_base64(c) { run + 1 } else { 0 };
        at += 1;
        if run >= MIN_RUN {
            return Some(at - run);
        }
    }
    None
}

/// The bytes of 16 that [`maybe_base64`], a bit each (bit `i` for byte `i`).
#[cfg(target_arch = "x86_64")]
fn mask16(block: &[u8; 16]) -> u16 {
    use safe_arch::*;
    // Signed: the bytes from 0x80 on are negative, below `*` (0x2a).
    let v = load_unaligned_m128i(block);
    move_mask_i8_m128i(cmp_gt_mask_i8_m128i(v, set_splat_i8_m128i(0x2a))) as u16
}

#[cfg(not(target_arch = "x86_64"))]
fn mask16(block: &[u8; 16]) -> u16 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (i, &c)| m | (u16::from(maybe_base64(c)) << i))
}

/// Message text with the escapes a reader decodes written out: HTML character references
/// (`cr&#101;dit`, `&#x65;`, `&#0000101;`, `credit&nbsp;card`, `alice&commat;example.com`,
/// `cr&eacute;dit`, `&copf;`, and the legacy names HTML reads without `;`: `credit&nbspcard`),
/// URL escapes (`credit%20card`, `%u0065`, `%2563`: a URL escaped twice), the escapes of
/// program text (`\x65`, `\xc3\xa9`, `\u0065`, `\u{65}`, `\U00000065`, octal `\145`,
/// `\0145`, `\o{145}`), CSS's (`\65 `, `\000065`) and quoted-printable's (`cr=65dit`,
/// `cred=\nit`), and dashes prose uses between words read as `-` inside one ([`word_dash`]:
/// `sk—ant—api03—…`). A model reads `cr&#101;dit card` as `credit card` (nineteenth session's
/// red team, and the twenty-first's: all of these went upstream unread).
///
/// Escapes of different languages are written alike (`\101` is `A` in C and `ā` in CSS;
/// `=41` is `A` in a mail and a value in `x=41`); one reading is kept, the one a model most
/// likely takes ([`backslash`], [`quoted_printable`]). A wrong reading costs little: the
/// text as written is read too, so a reading only adds hits.
#[derive(Debug, Default)]
pub(crate) struct Unescaped {
    /// The text, each escape replaced by what it stands for, normalised as text is.
    pub text: Vec<u8>,
    /// Where the pieces of `text` start, here and in the original text, and whether each is
    /// copied (byte for byte) or an escape written out; the last one is empty, at the end.
    segs: Vec<(usize, usize, bool)>,
}

/// What [`Unescaped::read`] reads besides escapes: what a body had
/// ([`dashed_runs`](crate::json::dashed_runs),
/// [`terminal_sequences`](crate::json::terminal_sequences)), or everything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Also {
    /// Word dashes in a key-long run, read as `-` ([`word_dash`]).
    pub dashes: bool,
    /// What is left of a terminal's control sequences once the text dropped their escape
    /// character (`[31m`), read as nothing ([`terminal_residue`]).
    pub terminal: bool,
}

impl Also {
    /// Everything: for text read apart from a body's notes (an upload).
    pub(crate) const ALL: Also = Also {
        dashes: true,
        terminal: true,
    };

    /// What the body read since [`forget_notes`](crate::json::forget_notes) had.
    pub(crate) fn noted() -> Also {
        Also {
            dashes: crate::json::dashed_runs(),
            terminal: crate::json::terminal_sequences(),
        }
    }
}

impl Unescaped {
    /// Writes `text` out into `self`; false (and `self` unspecified) when it holds no
    /// escape that decodes. Word dashes and terminal sequences are read as `also` says.
    pub(crate) fn read(&mut self, text: &[u8], also: Also) -> bool {
        let mut copied = 0;
        let mut i = 0;
        let mut any = false;
        let mut chars = String::new();
        let mut triggers = Triggers::new(text, also);
        while let Some(at) = triggers.next(i) {
            // `=` is common in code; an escape's next byte is a hex digit or a line break.
            if text[at] == b'='
                && !text
                    .get(at + 1)
                    .is_some_and(|c| c.is_ascii_hexdigit() || matches!(c, b'\n' | b'\r'))
            {
                i = at + 1;
                continue;
            }
            chars.clear();
            let Some(mut len) = escape_at(text, at, &mut chars) else {
                i = at + 1;
                continue;
            };
            // A terminal's control sequence written out (`\x1b[31m`, `\033[0m`, `\e[K`) is
            // read as the terminal shows it: not at all, as the text's own are.
            if let Some(c @ ('\u{1b}' | '\u{9b}')) = chars.chars().next()
                && chars.len() == c.len_utf8()
                && let Some(end) = crate::json::csi_end(text, at + len, c)
            {
                chars.clear();
                len = end - at;
            }
            if !any {
                any = true;
                self.text.clear();
                self.segs.clear();
                self.text.reserve(text.len());
            }
            self.segs.push((self.text.len(), copied, true));
            self.text.extend_from_slice(&text[copied..at]);
            self.segs.push((self.text.len(), at, false));
            self.text
                .extend_from_slice(crate::json::normalize_str(&chars).as_bytes());
            copied = at + len;
            i = copied;
        }
        if !any {
            return false;
        }
        self.segs.push((self.text.len(), copied, true));
        self.text.extend_from_slice(&text[copied..]);
        self.segs.push((self.text.len(), text.len(), true));
        true
    }

    /// Where in the original text the byte at `k` of [`Self::text`] (or its end) comes
    /// from: a match over `text[a..b]` is the original `original(a)..original(b)`.
    pub(crate) fn original(&self, k: usize) -> usize {
        let at = self.segs.partition_point(|s| s.0 <= k) - 1;
        let (here, there, copied) = self.segs[at];
        if copied { there + (k - here) } else { there }
    }

    /// Where the byte at `k` of the original text is in [`Self::text`] (an escape's bytes:
    /// where what it stands for starts).
    pub(crate) fn written(&self, k: usize) -> usize {
        let at = self.segs.partition_point(|s| s.1 <= k) - 1;
        let (here, there, copied) = self.segs[at];
        if copied { here + (k - there) } else { here }
    }
}

/// Where the bytes an escape starts with (`&`, `%`, `\\`, `=`, and in text that is not ASCII
/// the lead bytes of word dashes) are in `text`, in order: `memchr3` for `&`, `%` and `\\`,
/// `memchr` for `=`, `memchr3` for the lead bytes, each asked again only once past what it
/// found. Two passes of `memchr`'s (AVX2 where the machine has it, chosen at run time) cost
/// less over text without escapes than one pass of SSE2 compares for four bytes (the guard
/// benchmark: +12% on a 76 KB request with the latter, within noise with these). Code with
/// an `=` on every line pays a search per `=`; in a body with a dashed run, text with
/// quotes or arrows pays one per quote or arrow.
struct Triggers<'a> {
    len: usize,
    escapes: memchr::Memchr3<'a>,
    equals: memchr::Memchr<'a>,
    /// The lead bytes of the dashes [`word_dash`] reads, in text that is not ASCII.
    leads: Option<memchr::Memchr3<'a>>,
    /// The `[` of terminal sequences' residues ([`terminal_residue`]).
    brackets: Option<memchr::Memchr<'a>>,
    /// The last `&`, `%` or `\\` found (`len` for none).
    escape: usize,
    /// The last `=` found.
    equal: usize,
    /// The last dash lead byte found.
    lead: usize,
    /// The last `[` found.
    bracket: usize,
}

impl<'a> Triggers<'a> {
    fn new(text: &'a [u8], also: Also) -> Self {
        let mut escapes = memchr::memchr3_iter(b'&', b'%', b'\\', text);
        let mut equals = memchr::memchr_iter(b'=', text);
        let mut leads = (also.dashes && has_word_dash(text))
            .then(|| memchr::memchr3_iter(0xE2, 0xE3, 0xEF, text));
        let mut brackets = also.terminal.then(|| memchr::memchr_iter(b'[', text));
        let len = text.len();
        Triggers {
            len,
            escape: escapes.next().unwrap_or(len),
            equal: equals.next().unwrap_or(len),
            lead: leads.as_mut().and_then(Iterator::next).unwrap_or(len),
            bracket: brackets.as_mut().and_then(Iterator::next).unwrap_or(len),
            escapes,
            equals,
            leads,
            brackets,
        }
    }

    /// Where the first trigger at `from` or after it is.
    fn next(&mut self, from: usize) -> Option<usize> {
        while self.escape < from.min(self.len) {
            self.escape = self.escapes.next().unwrap_or(self.len);
        }
        while self.equal < from.min(self.len) {
            self.equal = self.equals.next().unwrap_or(self.len);
        }
        if let Some(leads) = &mut self.leads {
            while self.lead < from.min(self.len) {
                self.lead = leads.next().unwrap_or(self.len);
            }
        }
        if let Some(brackets) = &mut self.brackets {
            while self.bracket < from.min(self.len) {
                self.bracket = brackets.next().unwrap_or(self.len);
            }
        }
        let at = self.escape.min(self.equal).min(self.lead).min(self.bracket);
        (at < self.len).then_some(at)
    }
}

/// A dash prose uses between words ([`is_word_dash`](crate::json::is_word_dash)) at
/// `text[at]`, between two ASCII letters or digits, in a run of word characters, dashes and
/// underscores as long as a key's ([`in_dashed_run`](crate::json::in_dashed_run)): read as `-`, as a model reads
/// `sk—ant—api03—…` (the twenty-second session's red team: such a key went upstream unread).
/// A reading, not the text: in the text as written the dash still ends a number, an address
/// or a token (`key—AKIA…`, `alice@example.com—thanks`), as detectors need; and prose's
/// `word—word` is too short to be read again.
fn word_dash(text: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let len = word_dash_len(text, at)?;
    out.push('-');
    Some(len)
}

/// The length of the word dash at `text[at]` that [`word_dash`] reads.
fn word_dash_len(text: &[u8], at: usize) -> Option<usize> {
    // The second bytes of the dashes' encodings (an arrow's or a quote's are others).
    let second = text.get(at + 1).copied().unwrap_or(0);
    let lead = match text[at] {
        0xE2 => matches!(second, 0x80 | 0x8E | 0x94 | 0x9E | 0xB8 | 0xB9),
        0xE3 => second == 0x83,
        0xEF => matches!(second, 0xB8 | 0xB9 | 0xBD),
        _ => false,
    };
    if !lead || at == 0 || !text[at - 1].is_ascii_alphanumeric() {
        return None;
    }
    let (c, next) = crate::json::next_char(text, at);
    let read = crate::json::is_word_dash(c)
        && text.get(next).is_some_and(u8::is_ascii_alphanumeric)
        && crate::json::in_dashed_run(text, at, next);
    read.then_some(next - at)
}

/// Whether `text` has a dash [`word_dash`] reads: one pass over the lead bytes of non-ASCII
/// text (a cheap reject of the rest: a Read tool result has an arrow on every line), stopping
/// at the first. Only asked when the body had such a dash at all
/// ([`dashed_runs`](crate::json::dashed_runs)).
fn has_word_dash(text: &[u8]) -> bool {
    !crate::json::is_ascii(text)
        && memchr::memchr3_iter(0xE2, 0xE3, 0xEF, text).any(|at| word_dash_len(text, at).is_some())
}

/// The value of `digits` in `radix` if they are all its digits (no sign, unlike
/// `from_str_radix`), at most 12 of them (leading zeros included).
fn number(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &c| {
        let d = char::from(c).to_digit(radix)?;
        n.checked_mul(radix)?.checked_add(d)
    })
}

/// The byte `%XX`, `=XX` or `\xXX` stand for, from its two hex digits.
fn hex_byte(digits: Option<&[u8]>) -> Option<u8> {
    digits
        .filter(|d| d.len() == 2)
        .and_then(|d| number(d, 16))
        .map(|b| b as u8)
}

/// A character a rule may read: not NUL (HTML reads `&#0;` as U+FFFD) and, for escapes of
/// other languages than the ones written to hide text (`\x`, `\u`), no control character.
fn readable(value: u32, controls: bool) -> Option<char> {
    char::from_u32(value).filter(|&c| c != '\0' && (controls || !c.is_control()))
}

/// The escape at `text[at]` (`&`, `%`, `\`, `=` or a dash's lead byte), if it is one that
/// decodes: its length, and what it stands for appended to `out`. Consecutive URL and
/// quoted-printable escapes are one (their bytes make one character together).
fn escape_at(text: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let rest = &text[at..];
    match rest[0] {
        0xE2 | 0xE3 | 0xEF => word_dash(text, at, out),
        b'[' => terminal_residue(text, at),
        b'&' if rest.get(1) == Some(&b'#') => numeric_reference(rest, out),
        b'&' => named_reference_at(rest, out),
        b'%' => url_escape(rest, out),
        b'=' => quoted_printable(text, at, out),
        _ => backslash(rest, out),
    }
}

/// What is left at `text[at]` of a terminal's control sequence once its escape character was
/// dropped (`[31m`, `[01;31m`, `[K`: [`csi_end`](crate::json::csi_end)), read as nothing, as
/// a terminal shows it. Only in a body that had such a sequence, and only in this reading:
/// the text keeps it, as a model reads it (`ESC[credit card` is `[credit card` to a model).
fn terminal_residue(text: &[u8], at: usize) -> Option<usize> {
    crate::json::csi_end(text, at, '\u{1b}').map(|end| end - at)
}

/// `&#101;`, `&#x65;`, with any number of leading zeros and without the `;` (HTML reads
/// `&#101dit` as `edit`).
fn numeric_reference(rest: &[u8], out: &mut String) -> Option<usize> {
    let (radix, from) = match rest.get(2) {
        Some(b'x' | b'X') => (16, 3),
        _ => (10, 2),
    };
    let digits = rest[from..]
        .iter()
        .take(40)
        .take_while(|c| c.is_ascii_hexdigit() && (radix == 16 || c.is_ascii_digit()))
        .count();
    if digits == 0 || digits == 40 {
        return None;
    }
    let written = &rest[from..from + digits];
    let significant = written.iter().position(|&c| c != b'0').unwrap_or(digits);
    let value = if significant == digits {
        0
    } else {
        number(&written[significant..], radix)?
    };
    // `&#0;` and surrogates stand for U+FFFD in HTML: nothing a rule reads.
    out.push(readable(value, true)?);
    let end = from + digits;
    Some(end + usize::from(rest.get(end) == Some(&b';')))
}

/// The longest name [`named_reference`] knows (`DiacriticalDoubleAcute`).
const MAX_NAME: usize = 24;

/// `&name;`, or one of HTML's legacy names without the `;` (`&nbspcard` is ` card`: the
/// longest legacy name the letters start with, as HTML's tokenizer reads text).
fn named_reference_at(rest: &[u8], out: &mut String) -> Option<usize> {
    let name_len = rest[1..]
        .iter()
        .take(MAX_NAME + 1)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if name_len == 0 {
        return None;
    }
    if name_len <= MAX_NAME && rest.get(1 + name_len) == Some(&b';') {
        let name = std::str::from_utf8(&rest[1..1 + name_len]).ok()?;
        if let Some(value) = named_reference(name) {
            out.push_str(value);
            return Some(name_len + 2);
        }
    }
    let run = &rest[1..1 + name_len.min(6)];
    let name = (2..=run.len()).rev().find_map(|n| {
        let name = std::str::from_utf8(&run[..n]).ok()?;
        LEGACY.binary_search(&name).is_ok().then_some(name)
    })?;
    out.push_str(named_reference(name)?);
    Some(1 + name.len())
}

/// `%XX` runs whose bytes are UTF-8, where `%25XX` is `%XX` read again (a URL escaped twice:
/// at most two readings, as a server that decodes twice reads it); `%uHHHH` (JavaScript's
/// `escape`, IIS).
fn url_escape(rest: &[u8], out: &mut String) -> Option<usize> {
    if rest.get(1) == Some(&b'u') {
        let (value, len) = utf16_escape(rest, b"%u")?;
        out.push(readable(value, true)?);
        return Some(len);
    }
    // Read twice first; once where that is not UTF-8 (`%25C3` is `%C3`, not a lone byte).
    // At most [`MAX_ESCAPE_RUN`] bytes: on the stack.
    let mut bytes = [0u8; MAX_ESCAPE_RUN];
    let mut ends = [0usize; MAX_ESCAPE_RUN];
    for twice in [true, false] {
        let mut n = 0;
        let mut len = 0;
        while rest.get(len) == Some(&b'%') && n < MAX_ESCAPE_RUN {
            let again = twice && rest.get(len + 1..len + 3) == Some(b"25");
            let (b, width) = match (
                hex_byte(rest.get(len + 3..len + 5)),
                hex_byte(rest.get(len + 1..len + 3)),
            ) {
                (Some(b), _) if again => (b, 5),
                (_, Some(b)) => (b, 3),
                _ => break,
            };
            bytes[n] = b;
            len += width;
            ends[n] = len;
            n += 1;
        }
        if let Some((s, k)) = utf8_prefix(&bytes[..n]) {
            out.push_str(s);
            return Some(ends[k - 1]);
        }
    }
    None
}

/// The most bytes one run of `%XX` or `=XX` escapes is read for at a time: a longer run is
/// read in parts, each from where the last ended, so a long run that is not UTF-8 is not
/// read again from each of its escapes (twenty-second session's red team: 96 KB of
/// `%1F%8B…` took seconds).
const MAX_ESCAPE_RUN: usize = 64;

/// The longest prefix of `bytes` that is UTF-8 and not empty, and its length in bytes (a
/// character cut at the end of a part of a run is read with the next part).
fn utf8_prefix(bytes: &[u8]) -> Option<(&str, usize)> {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    (valid > 0).then(|| {
        let s = std::str::from_utf8(&bytes[..valid]).expect("the valid prefix");
        (s, valid)
    })
}

/// `\uHHHH` or `%uHHHH` (after its two-byte `lead`) as a code point and length, a surrogate
/// pair written as two read as one character.
fn utf16_escape(rest: &[u8], lead: &[u8; 2]) -> Option<(u32, usize)> {
    let high = number(rest.get(2..6)?, 16)?;
    if !(0xd800..0xdc00).contains(&high) {
        return Some((high, 6));
    }
    let low = (rest.get(6..8) == Some(lead))
        .then(|| rest.get(8..12).and_then(|d| number(d, 16)))
        .flatten()
        .filter(|l| (0xdc00..0xe000).contains(l))?;
    Some((0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00), 12))
}

/// Quoted-printable's escapes (RFC 2045): `=XX` runs whose bytes are UTF-8, and soft line
/// breaks (`=` ending a line joins it to the next: `cred=\nit`).
///
/// `=` is everywhere in code and URLs (`x=41`, `id=4012…`), so a lone `=XX` is read only
/// where a mail encoder would have written it inside a word (`cr=65dit`, `=63redit`,
/// `4111=201111`), not as a value: two decimal digits ending a word (`n=20`), or a number's
/// first digits (`id=4012…`, whose rest a card detector could read) are left as they are.
/// A run of two or more (`=63=72`) is read wherever it is. A soft break is read where it
/// cuts a word of prose: a letter or digit on both sides and a space earlier on its line
/// (base64's last line and an `.env` file's `KEY=` have none: joined to the next line, a
/// key found there would be masked with the line break).
fn quoted_printable(text: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let rest = &text[at..];
    let prev = at.checked_sub(1).map(|p| text[p]);
    let line_break = match rest.get(1) {
        Some(b'\n') => 2,
        Some(b'\r') if rest.get(2) == Some(&b'\n') => 3,
        _ => 0,
    };
    if line_break > 0 {
        let word = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphanumeric);
        let prose = text[at.saturating_sub(200)..at]
            .iter()
            .rev()
            .take_while(|&&c| c != b'\n')
            .any(|&c| c == b' ' || c == b'\t');
        return (word(prev.as_ref()) && word(rest.get(line_break)) && prose).then_some(line_break);
    }
    let mut bytes = [0u8; MAX_ESCAPE_RUN];
    let (mut n, mut len) = (0, 0);
    while rest.get(len) == Some(&b'=')
        && n < MAX_ESCAPE_RUN
        && let Some(b) = hex_byte(rest.get(len + 1..len + 3))
    {
        bytes[n] = b;
        n += 1;
        len += 3;
    }
    let (s, k) = utf8_prefix(&bytes[..n])?;
    if s.chars().any(char::is_control) {
        return None;
    }
    let bytes = &bytes[..k];
    let len = 3 * k;
    // The next part of a longer run (read 64 bytes at a time) is no lone escape, whatever
    // its length (twenty-second session's red team: one left alone at a part's start was
    // dropped).
    let continues = at >= 3 && text[at - 3] == b'=' && hex_byte(text.get(at - 2..at)).is_some();
    if bytes.len() == 1 && !continues {
        let next = rest.get(3).copied();
        let alnum = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        let value = rest[1..3].iter().all(u8::is_ascii_digit) && !alnum(next);
        let number = digit(next) && !digit(prev);
        if !(alnum(prev) || alnum(next)) || value || number {
            return None;
        }
    }
    out.push_str(s);
    Some(len)
}

/// Program text's escapes: `\xHH` (a UTF-8 character's bytes as one: `\xc3\xa9`),
/// `\x{H…}`, `\uHHHH` (a surrogate pair as two), `\u{H…}`, `\UHHHHHHHH`, `\o{O…}`, and the
/// digits after a backslash, octal (C, Python, shell: `\101`, echo's `\0101`) or CSS's
/// hex (`\41 `, `\000041`).
fn backslash(rest: &[u8], out: &mut String) -> Option<usize> {
    let braced = |radix: u32| -> Option<(u32, usize)> {
        let n = rest[3..]
            .iter()
            .take(13)
            .take_while(|&&c| c != b'}')
            .count();
        if rest.get(3 + n) != Some(&b'}') {
            return None;
        }
        Some((number(&rest[3..3 + n], radix)?, n + 4))
    };
    let (value, len) = match *rest.get(1)? {
        b'x' | b'u' if rest.get(2) == Some(&b'{') => braced(16)?,
        b'o' if rest.get(2) == Some(&b'{') => braced(8)?,
        b'x' => {
            let b = hex_byte(rest.get(2..4))?;
            if let Some((c, len)) = utf8_escaped(rest) {
                out.push(c);
                return Some(len);
            }
            (u32::from(b), 4)
        }
        b'u' => utf16_escape(rest, b"\\u")?,
        // The shell's `\e` (bash's `echo -e`, `printf`, zsh's prompts), read only where it
        // starts a terminal's control sequence: LaTeX's `\emph` stays as written.
        b'e' if rest.get(2) == Some(&b'[') => (0x1b, 2),
        // Octal escape characters (`\033`, echo's `\0033`) starting one: other octal controls
        // stay as written.
        b'0' if rest.get(2..5) == Some(b"33[") => (0x1b, 4),
        b'0' if rest.get(2..6) == Some(b"033[") => (0x1b, 5),
        b'U' => (number(rest.get(2..10)?, 16)?, 10),
        c if c.is_ascii_hexdigit() => {
            let (c, len) = digits_escape(rest)?;
            out.push(c);
            return Some(len);
        }
        _ => return None,
    };
    out.push(readable(value, true)?);
    Some(len)
}

/// The byte a `\xHH` or three-digit octal `\ooo` escape stands for, and its length.
fn byte_escape(rest: &[u8]) -> Option<(u8, usize)> {
    if rest.first() != Some(&b'\\') {
        return None;
    }
    match rest.get(1)? {
        b'x' => Some((hex_byte(rest.get(2..4))?, 4)),
        _ => {
            let value = number(rest.get(1..4)?, 8).filter(|&v| v <= 0xff)?;
            Some((value as u8, 4))
        }
    }
}

/// A character beyond ASCII written as its UTF-8 bytes' escapes (`\xc3\xa9`, `\303\251`),
/// as a byte string in C or Python holds it, and the escapes' length.
fn utf8_escaped(rest: &[u8]) -> Option<(char, usize)> {
    let (first, mut len) = byte_escape(rest)?;
    let need = match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let mut bytes = [first, 0, 0, 0];
    for b in &mut bytes[1..need] {
        let (next, n) = byte_escape(&rest[len..])?;
        *b = next;
        len += n;
    }
    let c = std::str::from_utf8(&bytes[..need]).ok()?.chars().next()?;
    Some((c, len))
}

/// Digits after a backslash: octal in C, Python and the shell (`\101`, exactly three digits;
/// `\0101` in `echo -e`), hex in CSS (`\41 `: one to six digits, one white space ending
/// them). Three octal digits are octal (CSS writes `\41 ` or `\000041`); otherwise the
/// reading that gives a letter where the other does not is taken (`\0101` is `A`, `\0065`
/// is CSS's `e`), else the form's own (a white space after them or more digits than
/// octal's make it CSS's). A CSS escape is read when it is ASCII, ended by a white space or
/// six digits long, and never as a control character: `\begin`, `\d` and `\1` in LaTeX
/// and regular expressions stay as written.
fn digits_escape(rest: &[u8]) -> Option<(char, usize)> {
    let hex = rest[1..]
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_hexdigit())
        .count();
    let space = match rest.get(1 + hex) {
        Some(b'\r') if rest.get(2 + hex) == Some(&b'\n') => 2,
        Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => 1,
        _ => 0,
    };
    let css = number(&rest[1..1 + hex], 16)
        .and_then(|v| readable(v, false))
        .filter(|c| c.is_ascii() || space > 0 || hex == 6)
        .map(|c| (c, 1 + hex + space));
    let octal_digits = rest[1..1 + hex]
        .iter()
        .take_while(|c| (b'0'..=b'7').contains(c))
        .count();
    let octal_len = match octal_digits {
        4.. if rest[1] == b'0' => 4,
        3.. => 3,
        _ => 0,
    };
    let octal = (octal_len > 0)
        .then(|| {
            let value = number(&rest[1..1 + octal_len], 8)?;
            if octal_len == 3
                && let Some(joined) = utf8_escaped(rest)
            {
                return Some(joined);
            }
            Some((readable(value, false)?, 1 + octal_len))
        })
        .flatten();
    let letter = |r: Option<(char, usize)>| r.is_some_and(|(c, _)| c.is_ascii_alphabetic());
    if octal_len == 3 && hex == 3 {
        return octal.or(css);
    }
    let as_written = octal_len == hex && space == 0;
    match (letter(octal), letter(css)) {
        (true, false) => octal,
        (false, true) => css,
        _ if as_written => octal.or(css),
        _ => css.or(octal),
    }
}

/// What an HTML named character reference stands for, for the names whose text agw reads as
/// ASCII, a space or nothing (NFKC, marks dropped): the ones [`NAMED`] lists, and a letter's
/// accented, double-struck, script and Fraktur forms (`eacute`, `copf`, `cscr`, `cfr`: what
/// normalising leaves of them). `None` for any other name (`alpha`, `lstrok`: characters a
/// rule's ASCII text does not hold).
fn named_reference(name: &str) -> Option<&'static str> {
    const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const FORMS: [&str; 16] = [
        "acute", "breve", "caron", "cedil", "circ", "dblac", "dot", "fr", "grave", "macr", "ogon",
        "opf", "ring", "scr", "tilde", "uml",
    ];
    if let Ok(k) = NAMED.binary_search_by(|(n, _)| n.cmp(&name)) {
        return Some(NAMED[k].1);
    }
    let letter = LETTERS.find(name.get(..1)?)?;
    // Names of that shape for other characters: `odot` (⊙), `sdot` (⋅), `xcirc` (◯).
    if FORMS.contains(&&name[1..]) && !matches!(name, "odot" | "sdot" | "xcirc") {
        Some(&LETTERS[letter..letter + 1])
    } else {
        None
    }
}

/// HTML's legacy names that write ASCII as [`named_reference`] reads them: the ones HTML
/// reads without a `;` (sorted, for a binary search).
const LEGACY: [&str; 72] = [
    "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "Ccedil", "Eacute", "Ecirc",
    "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT", "Ntilde", "Oacute", "Ocirc",
    "Ograve", "Otilde", "Ouml", "QUOT", "Uacute", "Ucirc", "Ugrave", "Uuml", "Yacute", "aacute",
    "acirc", "acute", "agrave", "amp", "aring", "atilde", "auml", "ccedil", "cedil", "eacute",
    "ecirc", "egrave", "euml", "gt", "iacute", "icirc", "igrave", "iuml", "lt", "macr", "nbsp",
    "ntilde", "oacute", "ocirc", "ograve", "ordf", "ordm", "otilde", "ouml", "quot", "shy", "sup1",
    "sup2", "sup3", "uacute", "ucirc", "ugrave", "uml", "uuml", "yacute", "yuml",
];

/// HTML's named references whose text agw reads as ASCII, a space or nothing, other than a
/// letter's forms (see [`named_reference`]), with the characters HTML gives them (sorted,
/// for a binary search). `dash`, `hyphen` and `minus` read `-`, `tilde` `~` and `Tab` a
/// space, as a reader takes them.
const NAMED: &[(&str, &str)] = &[
    ("AMP", "&"),
    ("ApplyFunction", "\u{2061}"),
    ("Bernoullis", "\u{212c}"),
    ("Breve", "\u{2d8}"),
    ("CapitalDifferentialD", "\u{2145}"),
    ("Cayleys", "\u{212d}"),
    ("Cedilla", "\u{b8}"),
    ("Colone", "\u{2a74}"),
    ("DD", "\u{2145}"),
    ("DiacriticalAcute", "\u{b4}"),
    ("DiacriticalDot", "\u{2d9}"),
    ("DiacriticalDoubleAcute", "\u{2dd}"),
    ("DiacriticalGrave", "`"),
    ("DiacriticalTilde", "\u{2dc}"),
    ("DifferentialD", "\u{2146}"),
    ("Dot", "\u{a8}"),
    ("DotDot", "\u{20dc}"),
    ("DoubleDot", "\u{a8}"),
    ("DownBreve", "\u{311}"),
    ("Equal", "\u{2a75}"),
    ("ExponentialE", "\u{2147}"),
    ("Fouriertrf", "\u{2131}"),
    ("GT", ">"),
    ("Hat", "^"),
    ("HilbertSpace", "\u{210b}"),
    ("IJlig", "\u{132}"),
    ("Im", "\u{2111}"),
    ("ImaginaryI", "\u{2148}"),
    ("InvisibleComma", "\u{2063}"),
    ("InvisibleTimes", "\u{2062}"),
    ("LT", "<"),
    ("Laplacetrf", "\u{2112}"),
    ("MediumSpace", "\u{205f}"),
    ("Mellintrf", "\u{2133}"),
    ("NegativeMediumSpace", "\u{200b}"),
    ("NegativeThickSpace", "\u{200b}"),
    ("NegativeThinSpace", "\u{200b}"),
    ("NegativeVeryThinSpace", "\u{200b}"),
    ("NewLine", "\n"),
    ("NoBreak", "\u{2060}"),
    ("NonBreakingSpace", "\u{a0}"),
    ("NotEqual", "\u{2260}"),
    ("NotGreater", "\u{226f}"),
    ("NotLess", "\u{226e}"),
    ("OverBar", "\u{203e}"),
    ("Poincareplane", "\u{210c}"),
    ("QUOT", "\""),
    ("Re", "\u{211c}"),
    ("TRADE", "\u{2122}"),
    ("Tab", " "),
    ("ThickSpace", "\u{205f}\u{200a}"),
    ("ThinSpace", "\u{2009}"),
    ("TripleDot", "\u{20db}"),
    ("UnderBar", "_"),
    ("VerticalLine", "|"),
    ("VeryThinSpace", "\u{200a}"),
    ("ZeroWidthSpace", "\u{200b}"),
    ("acute", "\u{b4}"),
    ("af", "\u{2061}"),
    ("amp", "&"),
    ("angst", "\u{c5}"),
    ("apos", "'"),
    ("ast", "*"),
    ("bernou", "\u{212c}"),
    ("bne", "=\u{20e5}"),
    ("breve", "\u{2d8}"),
    ("bsol", "\\"),
    ("cedil", "\u{b8}"),
    ("circledS", "\u{24c8}"),
    ("colon", ":"),
    ("comma", ","),
    ("commat", "@"),
    ("complexes", "\u{2102}"),
    ("dash", "-"),
    ("dblac", "\u{2dd}"),
    ("dd", "\u{2146}"),
    ("die", "\u{a8}"),
    ("dollar", "$"),
    ("dot", "\u{2d9}"),
    ("ee", "\u{2147}"),
    ("ell", "\u{2113}"),
    ("emsp", "\u{2003}"),
    ("emsp13", "\u{2004}"),
    ("emsp14", "\u{2005}"),
    ("ensp", "\u{2002}"),
    ("equals", "="),
    ("excl", "!"),
    ("expectation", "\u{2130}"),
    ("exponentiale", "\u{2147}"),
    ("ffilig", "\u{fb03}"),
    ("fflig", "\u{fb00}"),
    ("ffllig", "\u{fb04}"),
    ("filig", "\u{fb01}"),
    ("fjlig", "fj"),
    ("fllig", "\u{fb02}"),
    ("grave", "`"),
    ("gt", ">"),
    ("hairsp", "\u{200a}"),
    ("hamilt", "\u{210b}"),
    ("hellip", "\u{2026}"),
    ("hyphen", "-"),
    ("ic", "\u{2063}"),
    ("ii", "\u{2148}"),
    ("ijlig", "\u{133}"),
    ("image", "\u{2111}"),
    ("imagline", "\u{2110}"),
    ("imagpart", "\u{2111}"),
    ("incare", "\u{2105}"),
    ("integers", "\u{2124}"),
    ("it", "\u{2062}"),
    ("lagran", "\u{2112}"),
    ("lbrace", "{"),
    ("lbrack", "["),
    ("lcub", "{"),
    ("lowbar", "_"),
    ("lpar", "("),
    ("lrm", "\u{200e}"),
    ("lsqb", "["),
    ("lt", "<"),
    ("macr", "\u{af}"),
    ("mdash", "\u{2014}"),
    ("midast", "*"),
    ("minus", "-"),
    ("mldr", "\u{2026}"),
    ("naturals", "\u{2115}"),
    ("nbsp", "\u{a0}"),
    ("ndash", "\u{2013}"),
    ("ne", "\u{2260}"),
    ("ngt", "\u{226f}"),
    ("ngtr", "\u{226f}"),
    ("nldr", "\u{2025}"),
    ("nless", "\u{226e}"),
    ("nlt", "\u{226e}"),
    ("num", "#"),
    ("numero", "\u{2116}"),
    ("numsp", "\u{2007}"),
    ("nvgt", ">\u{20d2}"),
    ("nvlt", "<\u{20d2}"),
    ("oS", "\u{24c8}"),
    ("ogon", "\u{2db}"),
    ("oline", "\u{203e}"),
    ("order", "\u{2134}"),
    ("orderof", "\u{2134}"),
    ("ordf", "\u{aa}"),
    ("ordm", "\u{ba}"),
    ("percnt", "%"),
    ("period", "."),
    ("phmmat", "\u{2133}"),
    ("planckh", "\u{210e}"),
    ("plus", "+"),
    ("primes", "\u{2119}"),
    ("puncsp", "\u{2008}"),
    ("quaternions", "\u{210d}"),
    ("quest", "?"),
    ("quot", "\""),
    ("rationals", "\u{211a}"),
    ("rbrace", "}"),
    ("rbrack", "]"),
    ("rcub", "}"),
    ("real", "\u{211c}"),
    ("realine", "\u{211b}"),
    ("realpart", "\u{211c}"),
    ("reals", "\u{211d}"),
    ("ring", "\u{2da}"),
    ("rlm", "\u{200f}"),
    ("rpar", ")"),
    ("rsqb", "]"),
    ("semi", ";"),
    ("shy", "\u{ad}"),
    ("sol", "/"),
    ("strns", "\u{af}"),
    ("sup1", "\u{b9}"),
    ("sup2", "\u{b2}"),
    ("sup3", "\u{b3}"),
    ("tdot", "\u{20db}"),
    ("thinsp", "\u{2009}"),
    ("tilde", "~"),
    ("trade", "\u{2122}"),
    ("uml", "\u{a8}"),
    ("verbar", "|"),
    ("vert", "|"),
    ("zeetrf", "\u{2128}"),
    ("zwj", "\u{200d}"),
    ("zwnj", "\u{200c}"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        runs(text.as_bytes(), &mut out);
        out.into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn base64_runs_that_decode_to_text_are_found() {
        assert_eq!(
            found("decode this: Y3JlZGl0IGNhcmQ= please"),
            ["credit card"]
        );
        assert_eq!(found("Y3JlZGl0IGNhcmQ"), ["credit card"]);
        // URL-safe, in YAML, in a header's value.
        assert_eq!(
            found("data:\n  password: c3VwZXItc2VjcmV0LXBhc3N3b3Jk\n"),
            ["super-secret-password"]
        );
        assert_eq!(
            found("Authorization: Basic dXNlcjpodW50ZXIy"),
            ["user:hunter2"]
        );
        // Hex of text, as `xxd -p` writes it or after `0x`.
        assert_eq!(
            found("run: 6372656469742063617264 and 0x43726564697420636172640a"),
            ["credit card", "Credit card\n"]
        );
        // Not base64 of text: words, hex hashes, binary, identifiers.
        assert!(found("internationalization and responsibilities").is_empty());
        assert!(
            found("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .is_empty()
        );
        assert!(found("integrity sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==").is_empty());
        assert!(found("getUserAccountBalanceForCustomer2").is_empty());
    }

    /// Twenty-first session's red team: `base64` wraps its output at 76 characters, and a
    /// phrase across a line break was never read whole. A wrapped block is one run, over all
    /// its lines; lines of other widths, or a block whose whole does not decode to text, are
    /// read line by line as before.
    #[test]
    fn a_block_wrapped_into_lines_is_read_whole() {
        use base64_of as b64;
        let text = "Notes for the team: the company credit card ends in 4242 and the vault \
                    password is on the wiki. Do not share it outside of the finance group.";
        for (width, br) in [(76, "\n"), (64, "\r\n"), (40, "\n")] {
            let encoded = b64(text.as_bytes());
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(width)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            let block = lines.join(br);
            let wrapped = format!("cat notes.b64:{br}{block}{br}done");
            let mut out = Vec::new();
            runs(wrapped.as_bytes(), &mut out);
            assert_eq!(out.len(), 1, "{width}: {out:?}");
            assert_eq!(out[0].1, text, "{width}");
            assert_eq!(&wrapped[out[0].0.clone()], block, "{width}");
        }
        // Lines narrower than a wrap are read alone.
        assert_eq!(
            found("Y3JlZGl0IGNhcmQ=\nY3JlZGl0IGNhcmQ="),
            ["credit card", "credit card"]
        );
    }

    /// Standard base64 of `bytes`, padded.
    fn base64_of(bytes: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for k in 0..4 {
                out.push(if k <= c.len() {
                    char::from(ABC[(n >> (18 - 6 * k) & 63) as usize])
                } else {
                    '='
                });
            }
        }
        out
    }

    #[test]
    fn the_block_scan_finds_every_stretch_a_byte_scan_does() {
        let scalar = |t: &[u8]| {
            let mut run = 0;
            t.iter().position(|&c| {
                run = if maybe_base64(c) { run + 1 } else { 0 };
                run >= MIN_RUN
            })
        };
        // Stretches of every length at every offset, across block edges, of base64's
        // characters and of others the block compare takes alike.
        for fill in [b'Q', b'.', b'~'] {
            for len in [11, 12, 13, 16, 17, 33, 64, 65, 70] {
                for at in 0..140 {
                    let mut t = vec![b' '; 220];
                    for c in &mut t[at..at + len] {
                        *c = fill;
                    }
                    t[at + len / 2] = b'9';
                    let want = scalar(&t).map(|end| end + 1 - MIN_RUN);
                    assert_eq!(first_long_stretch(&t), want, "{len} at {at}");
                }
            }
        }
        assert_eq!(
            first_long_stretch(b"\xff\xfe words and words \x80\x81 more"),
            None
        );
    }

    /// Every maximal run of base64 over the whole text, byte by byte: what [`runs`] must find.
    fn byte_by_byte(text: &[u8]) -> Vec<(std::ops::Range<usize>, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut tried = 0;
        while i < text.len() {
            if !is_base64(text[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < text.len() && is_base64(text[i]) {
                i += 1;
            }
            let run = &text[start..i];
            let mut end = i;
            while end < text.len() && end - i < 2 && text[end] == b'=' {
                end += 1;
            }
            let kinds = [
                u8::is_ascii_uppercase,
                u8::is_ascii_lowercase,
                u8::is_ascii_digit,
            ]
            .iter()
            .filter(|k| run.iter().any(k))
            .count();
            let line_end = text.get(i).is_none_or(|&c| !maybe_base64(c));
            if kinds >= 2
                && end == i
                && line_end
                && run.len() >= MIN_WRAP
                && start >= tried
                && let Some(block) = wrapped_end(text, start, run.len())
            {
                tried = block;
                let decoded = super::super::files::base64_decoded(&text[start..block], usize::MAX);
                if let Some(s) = printable_block(&decoded) {
                    out.push((start..block, s.to_owned()));
                    i = block;
                    continue;
                }
            }
            if (MIN_RUN..=MAX_RUN).contains(&run.len()) {
                if let Some(s) = hex_text(&text[start..end]) {
                    out.push((start..end, s));
                } else if kinds >= 2 && run.len() % 4 != 1 {
                    let decoded =
                        super::super::files::base64_decoded(&text[start..end], usize::MAX);
                    if let Ok(s) = std::str::from_utf8(&decoded)
                        && !s.is_empty()
                        && s.chars()
                            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                    {
                        out.push((start..end, s.to_owned()));
                    }
                }
            }
            i = end;
        }
        out
    }

    #[test]
    fn runs_are_those_a_byte_by_byte_reading_finds() {
        // Texts of words, punctuation that joins stretches, padding, non-ASCII and encoded
        // phrases, at every length around the block size.
        let pieces: [&[u8]; 12] = [
            b"Y3JlZGl0IGNhcmQ=",
            b"c2VjcmV0LXBhc3N3b3Jk",
            b"word",
            b" ",
            b".",
            b"==",
            b"\n",
            b"\xc3\xa9",
            b"internationalization",
            b"a1B2",
            b"~:;",
            b"dXNlcjpodW50ZXIy",
        ];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..3000 {
            let mut text = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = seed as usize % 40;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                text.extend_from_slice(pieces[seed as usize % pieces.len()]);
            }
            let mut got = Vec::new();
            runs(&text, &mut got);
            assert_eq!(
                got,
                byte_by_byte(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn escapes_are_written_out_and_mapped_back() {
        let mut u = Unescaped::default();
        assert!(!u.read(b"50% of it & more, C:\\Users", Also::ALL));
        let text = "a&#98;c&shy;d%20e\\x66";
        assert!(u.read(text.as_bytes(), Also::ALL));
        assert_eq!(u.text, b"abcd ef");
        // Each byte written out comes from where it was written; an escape's from its start.
        let from: Vec<usize> = (0..=u.text.len()).map(|k| u.original(k)).collect();
        assert_eq!(from, [0, 1, 6, 12, 13, 16, 17, text.len()]);
        // And back: each original byte to where it is written (an escape's to its start).
        let to: Vec<usize> = (0..=text.len()).map(|k| u.written(k)).collect();
        assert_eq!(
            to,
            [
                0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 5, 6, 6, 6, 6, 7
            ]
        );
        // A reading ending in an escape ends where the text does.
        assert!(u.read(b"x&amp;", Also::ALL));
        assert_eq!((u.text.as_slice(), u.original(2)), (&b"x&"[..], 6));
    }

    /// What `text` reads written out, if it holds an escape that decodes.
    fn unescaped(text: &str) -> Option<String> {
        let mut u = Unescaped::default();
        u.read(text.as_bytes(), Also::ALL)
            .then(|| String::from_utf8(u.text).expect("UTF-8"))
    }

    #[test]
    fn every_escape_form_is_written_out() {
        for (text, want) in [
            // HTML: names that write ASCII, with and without `;` (legacy), and numbers.
            (
                "a&lpar;b&rpar;&period;&comma;&colon;&semi;&sol;&bsol;",
                "a(b).,:;/\\",
            ),
            (
                "&lowbar;&num;&dollar;&percnt;&plus;&equals;&excl;&quest;",
                "_#$%+=!?",
            ),
            (
                "&apos;&quot;&lt;&gt;&amp;&hyphen;&dash;&Hat;&grave;",
                "'\"<>&--^`",
            ),
            ("a&Tab;b&NewLine;c&nbsp;d&ThinSpace;e", "a b\nc d e"),
            ("cr&eacute;dit c&Aacute;rd", "credit cArd"),
            ("&copf;&Ropf;&escr;&dfr;&fjlig;&filig;", "cRedfjfi"),
            ("cred&ZeroWidthSpace;it&NegativeThinSpace;", "credit"),
            ("credit&nbspcard", "credit card"),
            ("credit&nbsp card", "credit  card"),
            ("a&ltb&gtc&ampd&QUOTe", "a<b>c&d\"e"),
            ("cr&eacutedit", "credit"),
            ("&sup1;&sup2&sup3;", "123"),
            ("cr&#101dit", "credit"),
            ("cr&#00000000000000101;dit", "credit"),
            ("cr&#x0000065;dit", "credit"),
            // URL escapes, once, twice, and JavaScript's `escape`.
            ("cr%65dit", "credit"),
            ("%2563redit", "credit"),
            ("%252563", "%63"),
            ("%25C3%25A9", "e"),
            ("100%25C3", "100%C3"),
            ("cr%u0065dit %uD83D%uDE00", "credit \u{1f600}"),
            // Program text.
            ("cr\\x65dit", "credit"),
            ("cr\\x{65}dit", "credit"),
            ("cr\\u{0000000065}dit", "credit"),
            ("cr\\xc3\\xa9dit", "credit"),
            ("cr\\303\\251dit", "credit"),
            ("\\x41\\x4b\\x49\\x41", "AKIA"),
            ("\\101\\113\\111\\101", "AKIA"),
            ("\\0101\\0113", "AK"),
            ("\\o{101}\\o{113}", "AK"),
            ("\\064\\061\\061\\061", "4111"),
            // CSS.
            ("\\63 redit", "credit"),
            ("\\000063redit", "credit"),
            ("\\0065 ", "e"),
            ("\\63\r\nredit", "credit"),
            ("\\e9 t\\E9 ", "ete"),
            // Quoted-printable.
            ("cr=65dit", "credit"),
            ("cred=69t card", "credit card"),
            ("credi=74=20card", "credit card"),
            ("credit=20card", "credit card"),
            ("4111=201111=201111=201111", "4111 1111 1111 1111"),
            ("=63=72=65=64=69=74 card", "credit card"),
            ("cr=C3=A9dit", "credit"),
            ("my cred=\nit card", "my credit card"),
            ("my cred=\r\nit card", "my credit card"),
        ] {
            assert_eq!(unescaped(text).as_deref(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn text_that_only_looks_escaped_is_read_as_written() {
        for text in [
            "50% of it & more, C:\\Users",
            "x=20 and n=41, id=4012888888881881, a=1b, color=ff0000, credi=74 card",
            "sha=e5f0 and k=v; y == z",
            "QUJDREVGR0g==\nSUpL",
            "QUJDREVGR0hJ=\nSUpL",
            "KEY=\nNEXT=1",
            "a line cut =\nhere, and a line=\n",
            "\\begin{document} \\cdot \\d+ \\1 \\bword\\b \\section",
            "\\2024\\report",
            "&unknown; &alpha; &lstrok; &odot; &sdot; &xcirc; &notaname",
            "%zz %4 %u12 %uZZZZ \\u12 \\x4 \\o{} \\o{9} \\x{}",
            "&#; &#x; &#0; &#xd800;",
            "a = b\n",
        ] {
            assert_eq!(unescaped(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_name_tables_are_sorted_and_read_as_ascii() {
        assert!(NAMED.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(LEGACY.windows(2).all(|w| w[0] < w[1]));
        assert!(
            LEGACY.iter().all(|n| named_reference(n).is_some()),
            "legacy"
        );
        assert!(NAMED.iter().all(|(n, _)| n.len() <= MAX_NAME));
        for (name, value) in NAMED.iter().filter(|(n, _)| !n.ends_with("dash")) {
            let read = crate::json::normalize_str(value);
            assert!(read.is_ascii(), "{name}: {read:?}");
        }
    }

    #[test]
    fn the_trigger_scan_finds_what_a_byte_scan_does() {
        let is_trigger = |c: u8| matches!(c, b'&' | b'%' | b'\\' | b'=' | b'[');
        let scalar = |t: &[u8], from: usize| (from..t.len()).find(|&k| is_trigger(t[k]));
        let mut seed = 0x9e37_79b9_u32;
        for len in 0..100 {
            for _ in 0..20 {
                // Triggers scattered among bytes the vector compare must not take for them.
                let t: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        b"&%\\=[aaaaaaaaaaa\xa6\xa5\xdc\xbd"[seed as usize % 20]
                    })
                    .collect();
                // Asked from every trigger found on (as `read` asks), and from a jump ahead.
                let mut triggers = Triggers::new(&t, Also::ALL);
                let mut from = 0;
                while let Some(at) = triggers.next(from) {
                    assert_eq!(Some(at), scalar(&t, from), "{t:?} from {from}");
                    from = at + 1 + (seed as usize % 3) * (seed as usize % 40);
                }
                assert_eq!(scalar(&t, from), None, "{t:?} from {from}");
            }
        }
    }

    /// Map-back over texts built of escapes of every kind and plain text: each copied byte
    /// maps to itself, both ways are monotone, and the ends map to the ends (an escape that
    /// writes nothing at the start aside: text from after it starts the reading).
    #[test]
    fn mapping_back_holds_for_mixed_escapes() {
        let pieces: [&str; 16] = [
            "cr",
            "&#101;",
            "&eacute",
            "&nbsp;",
            "%2563",
            "%20",
            "\\x65",
            "\\101",
            "\\63 ",
            "=65",
            "=\n",
            "%u0065",
            "\\xc3\\xa9",
            "=",
            "\\",
            " ",
        ];
        let mut seed = 0x2545_f491_u32;
        let mut u = Unescaped::default();
        for _ in 0..2000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            for _ in 0..seed % 12 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                text.push_str(pieces[seed as usize % pieces.len()]);
            }
            let t = text.as_bytes();
            if !u.read(t, Also::ALL) {
                continue;
            }
            assert_eq!(u.original(u.text.len()), t.len());
            assert_eq!((u.written(0), u.written(t.len())), (0, u.text.len()));
            for k in 0..u.text.len() {
                assert!(u.original(k) <= u.original(k + 1), "{text:?}");
                assert!(u.written(u.original(k)) <= k, "{text:?} {k}");
            }
            for k in 0..t.len() {
                assert!(u.written(k) <= u.written(k + 1), "{text:?}");
            }
            for w in u.segs.windows(2) {
                let ((here, there, copied), next) = (w[0], w[1].0);
                if copied {
                    let n = next - here;
                    assert_eq!(u.text[here..next], t[there..there + n], "{text:?}");
                }
            }
        }
    }
}
