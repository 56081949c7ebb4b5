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
            .filter(|k| run.iter().any(|c| k(c)))
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
}
