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

/// The runs of base64 in `text` that decode to text, each with its decoded text, to `out`.
/// A run is a maximal stretch of base64's characters (either alphabet) with its padding, of
/// [`MIN_RUN`] characters or more, that mixes at least two of upper case, lower case and
/// digits (a word, a number or a hex hash does not) and decodes to printable UTF-8.
pub(crate) fn runs(text: &[u8], out: &mut Vec<(std::ops::Range<usize>, String)>) {
    let mut i = 0;
    // Prose has no run that long: most texts are passed over 64 bytes a step, and between
    // runs so long the scan goes on that way.
    while let Some(next) = first_long_run(&text[i..]) {
        i += next;
        // Byte by byte from there to the end of the first run that long.
        loop {
            while i < text.len() && !is_base64(text[i]) {
                i += 1;
            }
            if i == text.len() {
                return;
            }
            let start = i;
            let (mut upper, mut lower, mut digit) = (false, false, false);
            while i < text.len() && is_base64(text[i]) {
                let c = text[i];
                upper |= c.is_ascii_uppercase();
                lower |= c.is_ascii_lowercase();
                digit |= c.is_ascii_digit();
                i += 1;
            }
            let len = i - start;
            if len < MIN_RUN {
                continue;
            }
            let mut end = i;
            while end < text.len() && end - i < 2 && text[end] == b'=' {
                end += 1;
            }
            let mixed = usize::from(upper) + usize::from(lower) + usize::from(digit) >= 2;
            if len <= MAX_RUN && mixed && len % 4 != 1 {
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
            break;
        }
    }
}

/// Where the first run of [`MIN_RUN`] base64 characters or more starts, if any (at or before
/// the returned offset): 64 bytes a step.
fn first_long_run(text: &[u8]) -> Option<usize> {
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
            // A run that ends in this block's first bytes, or one inside it.
            let mut inside = m;
            for shift in [1, 2, 4, 4] {
                inside &= inside >> shift;
            }
            if run + m.trailing_ones() as usize >= MIN_RUN || inside != 0 {
                return Some(at - run.min(at));
            }
            run = m.leading_ones() as usize;
        }
        if run >= MIN_RUN {
            return Some(at + 64 - run);
        }
        at += 64;
    }
    for &c in tail {
        run = if is_base64(c) { run + 1 } else { 0 };
        if run >= MIN_RUN {
            return Some(at + 1 - run);
        }
        at += 1;
    }
    None
}

/// The base64 characters of 16 bytes, a bit each (bit `i` for byte `i`).
#[cfg(target_arch = "x86_64")]
fn mask16(block: &[u8; 16]) -> u16 {
    use safe_arch::*;
    let v = load_unaligned_m128i(block);
    let splat = |b: u8| set_splat_i8_m128i(b as i8);
    let between = |v: m128i, lo: u8, hi: u8| {
        bitand_m128i(
            cmp_gt_mask_i8_m128i(v, splat(lo - 1)),
            cmp_lt_mask_i8_m128i(v, splat(hi + 1)),
        )
    };
    let digit = between(v, b'0', b'9');
    let letter = between(bitor_m128i(v, splat(0x20)), b'a', b'z');
    let sign = bitor_m128i(
        bitor_m128i(
            cmp_eq_mask_i8_m128i(v, splat(b'+')),
            cmp_eq_mask_i8_m128i(v, splat(b'/')),
        ),
        bitor_m128i(
            cmp_eq_mask_i8_m128i(v, splat(b'-')),
            cmp_eq_mask_i8_m128i(v, splat(b'_')),
        ),
    );
    move_mask_i8_m128i(bitor_m128i(bitor_m128i(digit, letter), sign)) as u16
}

#[cfg(not(target_arch = "x86_64"))]
fn mask16(block: &[u8; 16]) -> u16 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (i, &c)| m | (u16::from(is_base64(c)) << i))
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
    fn the_block_scan_finds_every_run_a_byte_scan_does() {
        let scalar = |t: &[u8]| {
            let mut run = 0;
            t.iter().position(|&c| {
                run = if is_base64(c) { run + 1 } else { 0 };
                run >= MIN_RUN
            })
        };
        // Runs of every length at every offset, across block edges.
        for len in [11, 12, 13, 16, 17, 33, 64, 65, 70] {
            for at in 0..140 {
                let mut t = vec![b' '; 220];
                for c in &mut t[at..at + len] {
                    *c = b'Q';
                }
                t[at + len / 2] = b'9';
                let want = scalar(&t).map(|end| end + 1 - MIN_RUN);
                let got = first_long_run(&t);
                match want {
                    None => assert_eq!(got, None, "{len} at {at}"),
                    Some(w) => assert!(got.is_some_and(|g| g <= w), "{len} at {at}: {got:?}"),
                }
            }
        }
        assert_eq!(
            first_long_run(b"\xff\xfe words and words \x80\x81 more"),
            None
        );
    }
}
