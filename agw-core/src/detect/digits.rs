//! SWAR search for ASCII digits, eight bytes per step with plain `u64` arithmetic.

/// End of the run of ASCII digits starting at `i`, eight bytes at a time.
pub(super) fn run_end(text: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = text.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("a slice of 8 bytes"));
        let other = !digit_mask(word) & HIGH;
        if other != 0 {
            return i + (other.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = text.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len())
}

/// The first run of ASCII digits at or after `from`, as `(start, end)`, eight bytes at a time.
#[inline]
pub(super) fn next_run(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = text.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in chunks.by_ref() {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        let digits = digit_mask(word);
        if digits != 0 {
            let first = digits.trailing_zeros();
            // Most runs end inside the same word: no second load.
            let others = !digits & HIGH & (u64::MAX << first);
            let start = offset + (first / 8) as usize;
            let end = if others != 0 {
                offset + (others.trailing_zeros() / 8) as usize
            } else {
                run_end(text, offset + 8)
            };
            return Some((start, end));
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    let start = offset + tail.iter().position(u8::is_ascii_digit)?;
    Some((start, run_end(text, start)))
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is an ASCII digit, and no other bits.
fn digit_mask(word: u64) -> u64 {
    // Per byte: with the top bit cleared, adding never carries into the next byte.
    let seven = word & !HIGH;
    let at_least_0 = seven.wrapping_add(LOW * (0x80 - b'0' as u64));
    let above_9 = seven.wrapping_add(LOW * (0x80 - b'9' as u64 - 1));
    at_least_0 & !above_9 & !word & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_mask_matches_is_ascii_digit() {
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'x', b, 0xff, b'0', b'9', b'/', b':', b]);
            let expect = [
                false,
                b.is_ascii_digit(),
                false,
                true,
                true,
                false,
                false,
                b.is_ascii_digit(),
            ];
            let mask = digit_mask(word);
            for (i, e) in expect.iter().enumerate() {
                assert_eq!(mask >> (i * 8 + 7) & 1 == 1, *e, "byte {b:#x} at {i}");
            }
        }
    }

    #[test]
    fn next_run_finds_first_run() {
        let text = b"abcdefghijklmnopqrstuvw7yz 8 1234567 123456789012345678x 0";
        for from in 0..text.len() + 2 {
            let start = text.iter().skip(from).position(u8::is_ascii_digit);
            let expect = start.map(|i| {
                let s = i + from;
                (
                    s,
                    s + text[s..].iter().take_while(|b| b.is_ascii_digit()).count(),
                )
            });
            assert_eq!(next_run(text, from), expect, "from {from}");
        }
    }
}
