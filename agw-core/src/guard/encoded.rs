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
/// digits (a word, a number or a hex hash does not) and decodes to printable UTF-8.
pub(crate) fn runs(text: &[u8], out: &mut Vec<(std::ops::Range<usize>, String)>) {
    let mut i = 0;
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
            if (MIN_RUN..=MAX_RUN).contains(&len) && mixed && len % 4 != 1 {
                let decoded = super::files::base64_decoded(&text[start..end], usize::MAX);
                if let Ok(s) = std::str::from_utf8(&decoded)
                    && !s.is_empty()
                    && s.chars()
                        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                {
                    out.push((start..end, s.to_owned()));
                }
            }
            i = end;
        }
        i = to;
    }
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
/// (`cr&#101;dit`, `&#x65;`, `&#0000101;`, `credit&nbsp;card`, `alice&commat;example.com`),
/// URL escapes (`credit%20card`) and the escapes of program text (`\x65`, `\u0065`,
/// `\u{65}`, `\U00000065`). A model reads `cr&#101;dit card` as `credit card` (nineteenth
/// session's red team: all of these went upstream unread).
#[derive(Debug, Default)]
pub(crate) struct Unescaped {
    /// The text, each escape replaced by what it stands for, normalised as text is.
    pub text: Vec<u8>,
    /// Where the pieces of `text` start, here and in the original text, and whether each is
    /// copied (byte for byte) or an escape written out; the last one is empty, at the end.
    segs: Vec<(usize, usize, bool)>,
}

impl Unescaped {
    /// Writes `text` out into `self`; false (and `self` unspecified) when it holds no
    /// escape that decodes.
    pub(crate) fn read(&mut self, text: &[u8]) -> bool {
        let mut copied = 0;
        let mut i = 0;
        let mut any = false;
        let mut chars = String::new();
        while let Some(k) = memchr::memchr3(b'&', b'%', b'\\', &text[i..]) {
            let at = i + k;
            chars.clear();
            let Some(len) = escape_at(text, at, &mut chars) else {
                i = at + 1;
                continue;
            };
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

/// The escape at `text[at]` (`&`, `%` or `\`), if it is one that decodes: its length, and
/// what it stands for appended to `out`. Consecutive URL escapes are one (their bytes make
/// one character together).
fn escape_at(text: &[u8], at: usize, out: &mut String) -> Option<usize> {
    let rest = &text[at..];
    let hex = |b: &[u8]| -> Option<u32> {
        let s = std::str::from_utf8(b).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    match rest[0] {
        b'&' if rest.get(1) == Some(&b'#') => {
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
            let s = std::str::from_utf8(&rest[from..from + digits]).ok()?;
            let value = u32::from_str_radix(s.trim_start_matches('0'), radix)
                .ok()
                .or_else(|| s.bytes().all(|c| c == b'0').then_some(0))?;
            // `&#0;` and surrogates stand for U+FFFD in HTML: nothing a rule reads.
            let c = char::from_u32(value).filter(|&c| c != '\0')?;
            out.push(c);
            let end = from + digits;
            Some(end + usize::from(rest.get(end) == Some(&b';')))
        }
        b'&' => {
            let name_len = rest[1..]
                .iter()
                .take(12)
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            if name_len == 0 || rest.get(1 + name_len) != Some(&b';') {
                return None;
            }
            let name = std::str::from_utf8(&rest[1..1 + name_len]).ok()?;
            out.push_str(named_reference(name)?);
            Some(name_len + 2)
        }
        b'%' => {
            // A run of `%XX` whose bytes are UTF-8.
            let mut bytes = Vec::new();
            let mut len = 0;
            while rest.get(len) == Some(&b'%')
                && let Some(b) = rest.get(len + 1..len + 3).and_then(hex)
            {
                bytes.push(b as u8);
                len += 3;
            }
            let s = std::str::from_utf8(&bytes).ok().filter(|s| !s.is_empty())?;
            out.push_str(s);
            Some(len)
        }
        _ => {
            // `\xHH`, `\uHHHH` (a surrogate pair as two), `\u{H…}`, `\UHHHHHHHH`.
            let (value, len) = match rest.get(1)? {
                b'x' => (hex(rest.get(2..4)?)?, 4),
                b'u' if rest.get(2) == Some(&b'{') => {
                    let n = rest[3..]
                        .iter()
                        .take(7)
                        .take_while(|c| c.is_ascii_hexdigit())
                        .count();
                    if n == 0 || n > 6 || rest.get(3 + n) != Some(&b'}') {
                        return None;
                    }
                    (hex(&rest[3..3 + n])?, n + 4)
                }
                b'u' => {
                    let high = hex(rest.get(2..6)?)?;
                    if (0xd800..0xdc00).contains(&high) {
                        let low = (rest.get(6..8) == Some(b"\\u"))
                            .then(|| rest.get(8..12).and_then(hex))
                            .flatten()
                            .filter(|l| (0xdc00..0xe000).contains(l))?;
                        (0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00), 12)
                    } else {
                        (high, 6)
                    }
                }
                b'U' => (hex(rest.get(2..10)?)?, 10),
                _ => return None,
            };
            let c = char::from_u32(value).filter(|&c| c != '\0')?;
            out.push(c);
            Some(len)
        }
    }
}

/// What an HTML named character reference stands for: the ones that write ASCII, spaces and
/// invisible characters (an accented letter's name writes a letter a rule's text holds
/// unaccented only if the rule says so). `None` for a name not listed.
fn named_reference(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" | "AMP" => "&",
        "lt" | "LT" => "<",
        "gt" | "GT" => ">",
        "quot" | "QUOT" => "\"",
        "apos" => "'",
        "nbsp" | "ensp" | "emsp" | "emsp13" | "emsp14" | "thinsp" | "hairsp" | "numsp"
        | "puncsp" | "MediumSpace" | "ThinSpace" | "VeryThinSpace" | "NonBreakingSpace" | "Tab" => {
            " "
        }
        "NewLine" => "\n",
        "shy" | "zwj" | "zwnj" | "lrm" | "rlm" | "ZeroWidthSpace" | "NoBreak"
        | "InvisibleTimes" | "InvisibleComma" | "ic" | "it" | "af" | "ApplyFunction" => "",
        "commat" => "@",
        "period" => ".",
        "comma" => ",",
        "colon" => ":",
        "semi" => ";",
        "sol" => "/",
        "bsol" => "\\",
        "lowbar" | "UnderBar" => "_",
        "dash" | "hyphen" | "minus" => "-",
        "ndash" => "\u{2013}",
        "mdash" => "\u{2014}",
        "num" => "#",
        "dollar" => "$",
        "percnt" => "%",
        "plus" => "+",
        "equals" => "=",
        "excl" => "!",
        "quest" => "?",
        "lpar" => "(",
        "rpar" => ")",
        "lsqb" | "lbrack" => "[",
        "rsqb" | "rbrack" => "]",
        "lcub" | "lbrace" => "{",
        "rcub" | "rbrace" => "}",
        "ast" | "midast" => "*",
        "verbar" | "vert" | "VerticalLine" => "|",
        "grave" | "DiacriticalGrave" => "`",
        "Hat" => "^",
        "tilde" => "~",
        _ => return None,
    })
}

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
        // Not base64 of text: words, hex hashes, binary, identifiers.
        assert!(found("internationalization and responsibilities").is_empty());
        assert!(
            found("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
                .is_empty()
        );
        assert!(found("integrity sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==").is_empty());
        assert!(found("getUserAccountBalanceForCustomer2").is_empty());
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
            if run.len() >= MIN_RUN && kinds >= 2 && run.len() % 4 != 1 {
                let decoded = super::super::files::base64_decoded(&text[start..end], usize::MAX);
                if let Ok(s) = std::str::from_utf8(&decoded)
                    && !s.is_empty()
                    && s.chars()
                        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
                {
                    out.push((start..end, s.to_owned()));
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
        assert!(!u.read(b"50% of it & more, C:\\Users"));
        let text = "a&#98;c&shy;d%20e\\x66";
        assert!(u.read(text.as_bytes()));
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
        assert!(u.read(b"x&amp;"));
        assert_eq!((u.text.as_slice(), u.original(2)), (&b"x&"[..], 6));
    }
}
