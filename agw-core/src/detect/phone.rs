//! Phone numbers: E.164 (`+` and 8–15 digits, any grouping) and formatted NANP numbers.

use super::numeric::{Continues, Group, Token};
use super::{Detector, Finding};

pub(super) fn find(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let mut i = 0;
    if token.plus
        && let Some(j) = e164(token)
    {
        out.push(finding(groups[0].start - 1, &groups[j - 1]));
        i = j;
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
/// with 0. Written as one group, a number of a country in [`NATIONAL_LENGTHS`] must have one
/// of its lengths (`+20240515123045,ok`, a timestamp on a diff line, is not an Egyptian number).
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
        let valid = valid && (j > 0 || national_length(token.digits(0)));
        let least = if j == 0 { 10 } else { 8 };
        if digits >= least && ends && valid {
            best = Some(j + 1);
        }
    }
    best
}

/// Lengths of the national significant number (the digits after the country code) of common
/// country codes, shortest and longest, after the ITU's national numbering plans. Only codes
/// whose lengths are well known and narrow are listed (not Germany, Austria, Italy, Finland,
/// Indonesia, whose plans run from 5 to 13 digits); a number of another code is not checked.
/// NANP (`1`) is checked on its own ([`nanp_digits_valid`]).
const NATIONAL_LENGTHS: &[(&[u8], usize, usize)] = &[
    (b"7", 10, 10),  // Russia, Kazakhstan
    (b"20", 8, 10),  // Egypt
    (b"27", 9, 9),   // South Africa
    (b"30", 10, 10), // Greece
    (b"31", 9, 9),   // Netherlands
    (b"32", 8, 9),   // Belgium
    (b"33", 9, 9),   // France
    (b"34", 9, 9),   // Spain
    (b"36", 8, 9),   // Hungary
    (b"40", 9, 9),   // Romania
    (b"41", 9, 9),   // Switzerland
    (b"44", 9, 10),  // United Kingdom
    (b"45", 8, 8),   // Denmark
    (b"47", 8, 8),   // Norway
    (b"48", 9, 9),   // Poland
    (b"52", 10, 10), // Mexico
    (b"54", 10, 11), // Argentina (mobiles with the 9)
    (b"55", 10, 11), // Brazil
    (b"56", 9, 9),   // Chile
    (b"61", 9, 9),   // Australia
    (b"63", 8, 10),  // Philippines
    (b"64", 8, 10),  // New Zealand
    (b"65", 8, 8),   // Singapore
    (b"66", 8, 9),   // Thailand
    (b"81", 9, 10),  // Japan
    (b"82", 8, 10),  // South Korea
    (b"84", 9, 10),  // Vietnam
    (b"86", 9, 11),  // China
    (b"90", 10, 10), // Turkey
    (b"91", 10, 10), // India
    (b"92", 9, 10),  // Pakistan
    (b"234", 8, 10), // Nigeria
    (b"254", 9, 9),  // Kenya
    (b"351", 9, 9),  // Portugal
    (b"353", 7, 9),  // Ireland
    (b"380", 9, 9),  // Ukraine
    (b"966", 8, 9),  // Saudi Arabia
    (b"971", 8, 9),  // United Arab Emirates
    (b"972", 8, 9),  // Israel
];

/// Whether the digits of an ungrouped E.164 number (country code first) have a length its
/// country uses, when [`NATIONAL_LENGTHS`] lists the country. Country codes are prefix-free,
/// so at most one entry applies.
fn national_length(digits: &[u8]) -> bool {
    NATIONAL_LENGTHS
        .iter()
        .find(|(code, _, _)| digits.starts_with(code))
        .is_none_or(|(code, min, max)| (*min..=*max).contains(&(digits.len() - code.len())))
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
        if let Some(area_spaced) = core(token, i + 1)
            && token.isolated(i, i + 4, spaced && area_spaced, Continues::Always)
        {
            return Some((first.start, i + 4));
        }
    }
    if i + 3 <= groups.len()
        && let Some(spaced) = core(token, i)
        && token.isolated(i, i + 3, spaced, Continues::Always)
    {
        return Some((first.start - usize::from(first.paren), i + 3));
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
                // Ungrouped, a listed country's lengths: a timestamp on a diff line is not an
                // Egyptian number (found by the fifth review); one of an unlisted country
                // (Germany, 49) is read as before.
                (
                    "diff --git a/data.csv b/data.csv\n+20240515123045,ok\n-20240514093000,ok",
                    &[],
                ),
                ("+33612345678901 +447700900123456 +9112345678901", &[]),
                (
                    "+201001234567 +447700900123 +819012345678 +8613800138000 +491511234567890",
                    &[
                        "+201001234567",
                        "+447700900123",
                        "+819012345678",
                        "+8613800138000",
                        "+491511234567890",
                    ],
                ),
                // A wide join (which only cards read across) ends a phone number as before.
                (
                    "+44 20 7946 0958  123 4567; 415-555-2671  415-555-2671 - 3",
                    &["+44 20 7946 0958", "415-555-2671", "415-555-2671"],
                ),
                // Grouped, the groups tell it is a number: not checked.
                ("+20 2 4051 5123 045", &["+20 2 4051 5123 045"]),
                ("12 415 555 2671", &[]),
                ("ip 192.168.100.200 date 2024-05-15", &[]),
            ],
        );
    }
}
