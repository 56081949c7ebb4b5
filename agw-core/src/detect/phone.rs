//! Phone numbers: E.164 (`+` and 8–15 digits, any grouping) and formatted NANP numbers.

use super::numeric::{Continues, Group, Token};
use super::{Detector, Finding};

pub(super) fn find(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let mut i = 0;
    if token.plus {
        if let Some(j) = e164(token) {
            out.push(finding(groups[0].start - 1, &groups[j - 1]));
            i = j;
        }
    }
    while i < groups.len() {
        match nanp(token, i) {
            Some((start, j)) => {
                out.push(finding(start, &groups[j - 1]));
                i = j;
            }
            None => i += 1,
        }
    }
}

fn finding(start: usize, last: &Group) -> Finding {
    Finding {
        detector: Detector::Phone,
        range: start..last.end + usize::from(last.paren),
    }
}

/// The end (exclusive group index) of the longest run of groups from the first one holding
/// 8–15 digits (10–15 written as one group: `+86400000` or `+20240115` in code and diffs is a
/// number, not a phone; every country's mobile numbers have ten digits or more with the
/// country code) that ends at the token's end or before a space. The country code never starts
/// with 0.
fn e164(token: &Token<'_>) -> Option<usize> {
    let groups = token.groups;
    if token.digits(0)[0] == b'0' || groups[0].paren {
        return None;
    }
    // Country code 1 is NANP: ten more digits, area code and exchange starting with 2–9.
    let nanp = token.digits(0)[0] == b'1';
    let mut digits = 0;
    let mut best = None;
    for (j, g) in groups.iter().enumerate() {
        digits += g.len();
        if digits > 15 {
            break;
        }
        let ends = match groups.get(j + 1) {
            None => !token.right_blocked,
            Some(next) => next.sep == b' ',
        };
        let valid = !nanp || (digits == 11 && nanp_digits_valid(token, j + 1));
        let least = if j == 0 { 10 } else { 8 };
        if digits >= least && ends && valid {
            best = Some(j + 1);
        }
    }
    best
}

/// Whether the 11 digits of `groups[..end]` (`1` and a national number) have an area code and
/// an exchange that start with 2–9.
fn nanp_digits_valid(token: &Token<'_>, end: usize) -> bool {
    let mut all = [0u8; 11];
    let mut n = 0;
    for g in 0..end {
        for &d in token.digits(g) {
            if n < all.len() {
                all[n] = d;
            }
            n += 1;
        }
    }
    n == 11 && all[1] >= b'2' && all[4] >= b'2'
}

/// A NANP number starting at group `i`, optionally with the country code `1`: returns the start
/// offset and the end group index.
fn nanp(token: &Token<'_>, i: usize) -> Option<(usize, usize)> {
    let groups = token.groups;
    let first = groups[i];
    if token.digits(i) == b"1" && !first.paren && i + 4 <= groups.len() {
        let spaced = groups[i + 1].sep == b' ';
        if let Some(area_spaced) = core(token, i + 1) {
            if token.isolated(i, i + 4, spaced && area_spaced, Continues::Always) {
                return Some((first.start, i + 4));
            }
        }
    }
    if i + 3 <= groups.len() {
        if let Some(spaced) = core(token, i) {
            if token.isolated(i, i + 3, spaced, Continues::Always) {
                return Some((first.start - usize::from(first.paren), i + 3));
            }
        }
    }
    None
}

/// Whether groups `a..a + 3` are area code, exchange and line number (`(415) 555-2671`,
/// `415-555-2671`, `415.555.2671`, `415 555-2671`, `415 555 2671`); returns whether they are
/// joined by spaces only. Area code and exchange start with 2–9.
fn core(token: &Token<'_>, a: usize) -> Option<bool> {
    let g = &token.groups[a..a + 3];
    let widths = g[0].len() == 3 && g[1].len() == 3 && g[2].len() == 4;
    if !widths || g[1].paren || g[2].paren {
        return None;
    }
    if token.digits(a)[0] < b'2' || token.digits(a + 1)[0] < b'2' {
        return None;
    }
    let (s1, s2) = (g[1].sep, g[2].sep);
    let seps = if g[0].paren {
        matches!(s1, b' ' | b'(' | b'-') && matches!(s2, b'-' | b' ' | b'.')
    } else {
        matches!(s1, b'-' | b'.' | b' ') && (s1 == s2 || (s1 == b' ' && s2 == b'-'))
    };
    seps.then_some(!g[0].paren && s1 == b' ' && s2 == b' ')
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn phone() {
        table(
            Detector::Phone,
            &[
                ("call +14155552671 now", &["+14155552671"]),
                ("UK: +44 20 7946 0958.", &["+44 20 7946 0958"]),
                ("+44 (0)20 7946 0958", &["+44 (0)20 7946 0958"]),
                ("+33 1 23 45 67 89", &["+33 1 23 45 67 89"]),
                (
                    "+49-30-901820 or +1.415.555.2671",
                    &["+49-30-901820", "+1.415.555.2671"],
                ),
                ("(415) 555-2671", &["(415) 555-2671"]),
                ("tel:(415)555-2671;", &["(415)555-2671"]),
                (
                    "415-555-2671, 415.555.2671, 415 555 2671",
                    &["415-555-2671", "415.555.2671", "415 555 2671"],
                ),
                ("415 555-2671", &["415 555-2671"]),
                ("+1 415 555 2671", &["+1 415 555 2671"]),
                (
                    "1-415-555-2671 or 1 (415) 555-2671",
                    &["1-415-555-2671", "1 (415) 555-2671"],
                ),
                (r#"{"phone":"415-555-2671"}"#, &["415-555-2671"]),
                // Spaced E.164 cannot tell where it ends: the longest prefix of up to 15 digits.
                ("+44 20 7946 0958 123 4567", &["+44 20 7946 0958 123"]),
                // Country code 1 is NANP: exactly ten more digits, validated like without `+1`.
                ("+1 415 555 2671 1234 5678 9999", &["+1 415 555 2671"]),
                ("+1 (555) 010-0000 +1 (055) 210-0000 +1-555-010-0000", &[]),
                ("+15550100000 +1 555 0100000 +1 415 555 267", &[]),
                (
                    "+1 (415) 555-2671 and +1-415-555-2671",
                    &["+1 (415) 555-2671", "+1-415-555-2671"],
                ),
                // Near misses.
                ("id 4155552671", &[]),
                ("115-555-2671 415-155-2671 (015) 555-2671", &[]),
                ("415-555-26710 1415-555-2671 415-555-2671x", &[]),
                ("415-555.2671 415.555-2671", &[]),
                ("+1234567, 2+14155552671, x+14155552671", &[]),
                ("+01234567890", &[]),
                // Ungrouped, fewer than ten digits: numbers in code and diffs, not phones.
                (
                    "timeout = base +86400000; delta: +20240115, score +250000000",
                    &[],
                ),
                (
                    "+4915112345678 +6591234567",
                    &["+4915112345678", "+6591234567"],
                ),
                ("+1234567890123456", &[]),
                ("12 415 555 2671", &[]),
                ("ip 192.168.100.200 date 2024-05-15", &[]),
            ],
        );
    }
}
