//! Payment card numbers: a known issuer range with that issuer's lengths, and Luhn.

use super::numeric::{Continues, Token, luhn};
use super::{Detector, Finding};

const MAX_DIGITS: usize = 19;

pub(super) fn find(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let mut i = 0;
    while i < groups.len() {
        match candidate(token, i) {
            Some(j) => {
                out.push(Finding {
                    detector: Detector::CreditCard,
                    range: groups[i].start..groups[j - 1].end,
                });
                i = j;
            }
            None => i += 1,
        }
    }
}

/// The end (exclusive group index) of a card starting at group `i`: one contiguous group, or a
/// first group of four followed by groups of 3–6 with one kind of separator (space, dash or
/// dot) throughout. A join may be wide (`4539  9458`, `4539 - 9458`: [`join`]) and the widths
/// may differ (`4539  9458 0730  2151`: text pasted from a PDF keeps its justification), but
/// not the kind: `4539 - 9458  0730 2151` is no card. The longest valid grouping wins.
///
/// [`join`]: super::numeric::join
fn candidate(token: &Token<'_>, i: usize) -> Option<usize> {
    let groups = token.groups;
    let first = groups[i];
    if (13..=MAX_DIGITS).contains(&first.len()) {
        let ok = token.isolated(i, i + 1, false, Continues::SameGrouping) && valid(token.digits(i));
        return ok.then_some(i + 1);
    }
    if first.len() != 4 || first.paren {
        return None;
    }
    let sep = groups.get(i + 1)?.sep;
    // Spaces, tabs, dashes, or dots (`4111.1111.1111.1111`, as some people write a card).
    if !matches!(sep, b' ' | b'\t' | b'-' | b'.') {
        return None;
    }
    let mut digits = [0u8; MAX_DIGITS];
    digits[..4].copy_from_slice(token.digits(i));
    let mut len = 4;
    let mut best = None;
    // The lengths of the groups after the first, for [`laid_out`].
    let mut lens = [0usize; 4];
    for (j, g) in groups.iter().enumerate().skip(i + 1).take(4) {
        if g.sep != sep || g.paren || !(3..=6).contains(&g.len()) || len + g.len() > MAX_DIGITS {
            break;
        }
        digits[len..len + g.len()].copy_from_slice(token.digits(j));
        len += g.len();
        lens[j - i - 1] = g.len();
        let spaced = matches!(sep, b' ' | b'\t');
        if j >= i + 2
            && len >= 13
            && laid_out(&lens[..j - i])
            && valid(&digits[..len])
            && (token.isolated(i, j + 1, spaced, Continues::SameGrouping)
                || (spaced && beside_its_run(token, i, j + 1)))
        {
            best = Some(j + 1);
        }
    }
    best
}

/// Whether the groups after a first group of four are laid out as cards are printed and
/// written: fours with a last group of three or four (`4111 1111 1111 1111`, 19 digits as
/// `4-4-4-4-3`, 15 as `4-4-4-3`), American Express's `4-6-5`, Diners Club's `4-6-4`, and
/// 13 digits as `4-4-5` or `4-3-3-3`. Other groupings are lists of numbers — process ids,
/// a table's cells (`3901 61130 32743 85162`, `4133 33155 193323 4640`; guard accuracy
/// review: about one such line in seventy passed Luhn and an issuer's range).
fn laid_out(lens: &[usize]) -> bool {
    match lens {
        [6, 5] | [6, 4] | [4, 5] | [3, 3, 3] => true,
        [init @ .., last] => init.iter().all(|&g| g == 4) && matches!(last, 3 | 4),
        [] => false,
    }
}

/// Whether a space-grouped card `groups[i..j]` of four-digit groups, inside a longer run of
/// them, still stands on its own: the run has one group more (an expiry as `0925`, a year, a
/// PIN: `4111 1111 1111 1111 2025`, `year 2024 4111 …`), or the rest of the run is cards too
/// (two cards in a row). A longer run of groups of four that are not cards is one number.
fn beside_its_run(token: &Token<'_>, i: usize, j: usize) -> bool {
    let groups = token.groups;
    let four = |g: &super::numeric::Group| g.len() == 4 && !g.paren;
    if !groups[i..j].iter().all(four) {
        return false;
    }
    let joined = |k: usize| matches!(groups[k].sep, b' ' | b'\t') && four(&groups[k]);
    let mut start = i;
    while start > 0 && joined(start) && four(&groups[start - 1]) {
        start -= 1;
    }
    let mut end = j;
    while end < groups.len() && joined(end) {
        end += 1;
    }
    // The run must end where the token does or at a loose join, as any card must.
    let closed = (start > 0 || !token.left_blocked) && (end < groups.len() || !token.right_blocked);
    let (left, right) = (i - start, end - j);
    if !closed || left + right == 0 {
        return false;
    }
    if left + right == 1 {
        return true;
    }
    let width = j - i;
    let cards = |from: usize, to: usize| {
        (to - from).is_multiple_of(width)
            && (from..to).step_by(width).all(|k| {
                let mut d = [0u8; MAX_DIGITS];
                let mut n = 0;
                for g in k..k + width {
                    let g = token.digits(g);
                    d[n..n + g.len()].copy_from_slice(g);
                    n += g.len();
                }
                valid(&d[..n])
            })
    };
    cards(start, i) && cards(j, end)
}

fn valid(digits: &[u8]) -> bool {
    issued(digits) && luhn(digits)
}

/// Whether an issuer uses this prefix at this length: Visa, Mastercard, Mir, Amex, JCB, Diners,
/// Discover, UnionPay, Maestro and RuPay.
fn issued(digits: &[u8]) -> bool {
    let n = digits.len();
    let prefix = |k: usize| {
        digits[..k]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let long = (16..=19).contains(&n);
    let any = (13..=19).contains(&n);
    match digits[0] {
        b'4' => matches!(n, 13 | 16 | 19),
        b'2' => {
            let p4 = prefix(4);
            ((2221..=2720).contains(&p4) && n == 16) || ((2200..=2204).contains(&p4) && long)
        }
        b'3' => {
            let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
            ((p2 == 34 || p2 == 37) && n == 15)
                || ((3528..=3589).contains(&p4) && long)
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39)) && n >= 14)
        }
        b'5' => {
            let p2 = prefix(2);
            ((51..=55).contains(&p2) && n == 16) || (matches!(p2, 50 | 56..=58) && any)
        }
        b'6' => {
            let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
            ((p4 == 6011 || (644..=649).contains(&p3) || matches!(p2, 62 | 65)) && long)
                || (matches!(p2, 60 | 63 | 67) && any)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers() {
        let cases: &[(&str, bool)] = &[
            ("4111111111111111", true),
            ("4222222222222", true),
            ("48146308100036", false),
            ("5555555555554444", true),
            ("2223003122003222", true),
            ("2721000000000000", false),
            ("2200000000000000", true),
            ("378282246310005", true),
            ("3782822463100050", false),
            ("36227206271667", true),
            ("30569309025904", true),
            ("3530111333300000", true),
            ("6011000990139424", true),
            ("6221260000000000", true),
            ("6445644564456445", true),
            ("6400000000000000", false),
            ("6100000000000000", false),
            ("5100000000000", false),
            ("1234567812345670", false),
            ("9111111111111111", false),
            ("0000000000000000", false),
        ];
        for (digits, expect) in cases {
            assert_eq!(issued(digits.as_bytes()), *expect, "{digits}");
        }
    }
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn credit_card() {
        table(
            Detector::CreditCard,
            &[
                ("4111111111111111", &["4111111111111111"]),
                ("card 4111 1111 1111 1111.", &["4111 1111 1111 1111"]),
                (
                    "card: 4111-1111-1111-1111, thanks",
                    &["4111-1111-1111-1111"],
                ),
                (r#"{"card":"4111111111111111"}"#, &["4111111111111111"]),
                (
                    "amex 378282246310005 and 3782 822463 10005",
                    &["378282246310005", "3782 822463 10005"],
                ),
                ("(5555555555554444)", &["5555555555554444"]),
                (
                    "mc2 2221000000000009 jcb 3530111333300000",
                    &["2221000000000009", "3530111333300000"],
                ),
                (
                    "discover 6011000990139424 diners 36227206271667",
                    &["6011000990139424", "36227206271667"],
                ),
                (
                    "19 digits: 4000000000000000006 / 6200000000000000000",
                    &["4000000000000000006", "6200000000000000000"],
                ),
                ("visa13 4000000000006", &["4000000000006"]),
                (
                    "4111 1111 1111 1111 12/25 cvv 123",
                    &["4111 1111 1111 1111"],
                ),
                ("4111111111111111 123", &["4111111111111111"]),
                ("on 2024-01-15 4111111111111111", &["4111111111111111"]),
                ("卡号4111111111111111。", &["4111111111111111"]),
                (
                    "cards 4111111111111111\n5555555555554444",
                    &["4111111111111111", "5555555555554444"],
                ),
                ("x\\n4111111111111111", &["4111111111111111"]),
                ("dotted 4111.1111.1111.1111.", &["4111.1111.1111.1111"]),
                // Tabs (a pasted table) and Unicode dashes (a word processor's en dash, a
                // non-breaking hyphen, a minus sign) separate groups too.
                // A table's cells: a card in one is a card; 4-digit numbers in four are not.
                ("tsv\t4111111111111111\t12/25", &["4111111111111111"]),
                ("port\t5432\t6379\t8080\t9202 3000\t3001\t3002\t3003", &[]),
                (
                    "en 4111\u{2013}1111\u{2013}1111\u{2013}1111.",
                    &["4111\u{2013}1111\u{2013}1111\u{2013}1111"],
                ),
                (
                    "em 5555\u{2014}5555\u{2014}5555\u{2014}4444",
                    &["5555\u{2014}5555\u{2014}5555\u{2014}4444"],
                ),
                (
                    "nb 4111\u{2011}1111\u{2011}1111\u{2011}1111",
                    &["4111\u{2011}1111\u{2011}1111\u{2011}1111"],
                ),
                (
                    "minus 3782\u{2212}822463\u{2212}10005",
                    &["3782\u{2212}822463\u{2212}10005"],
                ),
                (
                    "mixed dashes 4111-1111\u{2013}1111\u{2010}1111",
                    &["4111-1111\u{2013}1111\u{2010}1111"],
                ),
                (
                    "dash-joined 4111\u{2013}1111\u{2013}1111\u{2013}1111\u{2013}1111",
                    &[],
                ),
                ("not a dash 4111\u{2016}1111\u{2016}1111\u{2016}1111", &[]),
                // Near misses.
                ("order 4111111111111112", &[]),
                ("order 1234567812345678", &[]),
                (
                    "wrong issuer 1234000000000006 7000000000000005 5900000000000000",
                    &[],
                ),
                ("mc must be 16: 5105000000003", &[]),
                ("twelve 411111111111", &[]),
                ("20 digits 41111111111111111111", &[]),
                ("30 digits 411111111111111100000000000000", &[]),
                // One more group beside a card (an expiry, a year, a PIN), or two cards in a
                // row; a longer run of groups that are not cards is one number.
                (
                    "4111 1111 1111 1111 0925 123, year 2024 4111 1111 1111 1111",
                    &["4111 1111 1111 1111", "4111 1111 1111 1111"],
                ),
                (
                    "4111 1111 1111 1111 5555 5555 5555 4444",
                    &["4111 1111 1111 1111", "5555 5555 5555 4444"],
                ),
                ("grouped 24 4111 1111 1111 1111 1111 1111", &[]),
                ("grouped 24 1234 5678 4111 1111 1111 1111", &[]),
                ("dash-joined 4111-1111-1111-1111-1111", &[]),
                ("dot-joined 4111.1111.1111.1111.1111", &[]),
                ("mixed dots 4111.1111 1111.1111", &[]),
                ("mixed 4111 1111-1111 1111", &[]),
                ("decimal 0.4111111111111111", &[]),
                ("4111111111111111.5", &[]),
                ("id abc4111111111111111", &[]),
                ("id 4111111111111111abc", &[]),
                ("hex 4111111111111111_x", &[]),
                ("single spaces 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", &[]),
                // Wide joins (found by the fifth review): two or three spaces, or a dash or dot
                // between spaces; widths may differ, kinds may not.
                (
                    "card 4539  9458  0730  2151, card number: 4539 - 9458 - 0730 - 2151",
                    &["4539  9458  0730  2151", "4539 - 9458 - 0730 - 2151"],
                ),
                (
                    "pdf 4539   9458 0730  2151; dots 4539 . 9458 . 0730 . 2151; amex 3782  822463  10005",
                    &[
                        "4539   9458 0730  2151",
                        "4539 . 9458 . 0730 . 2151",
                        "3782  822463  10005",
                    ],
                ),
                (
                    "en dash 4539 \u{2013} 9458 \u{2013} 0730 \u{2013} 2151 ok",
                    &["4539 \u{2013} 9458 \u{2013} 0730 \u{2013} 2151"],
                ),
                // A card beside other numbers across wide joins reads them as before: an
                // expiry, a second card, a number of its own.
                (
                    "4111 1111 1111 1111  12/25, 4111111111111111  5555555555554444 - 7",
                    &[
                        "4111 1111 1111 1111",
                        "4111111111111111",
                        "5555555555554444",
                    ],
                ),
                (
                    "4111  1111  1111  1111  0925 and 4111 - 1111 - 1111 - 1111",
                    &["4111  1111  1111  1111", "4111 - 1111 - 1111 - 1111"],
                ),
                // Mixed kinds, a dash against one side, four spaces, a longer run of groups.
                ("mixed 4539 - 9458  0730  2151", &[]),
                // Lists of numbers that pass Luhn and start like a card, in groupings no card
                // is printed in (guard accuracy review); the printed ones still are cards.
                ("pids 3901 61130 32743 85162 6896", &[]),
                ("ids 40190 4133 33155 193323 4640 24", &[]),
                ("row 13: 2869  4641   637  8208  1423", &[]),
                ("odd 4111 111111 111111", &[]),
                (
                    "printed 4111 1111 1111 1111, 3782 8224 6310 005, 3056 930902 5904",
                    &[
                        "4111 1111 1111 1111",
                        "3782 8224 6310 005",
                        "3056 930902 5904",
                    ],
                ),
                (
                    "sign 4539 -9458 -0730 -2151 and 4539- 9458- 0730- 2151",
                    &[],
                ),
                ("columns 4539    9458    0730    2151", &[]),
                ("run 1234  5678  4539  9458  0730  2151", &[]),
                ("dash run 4539 - 9458 - 0730 - 2151 - 1234", &[]),
            ],
        );
    }
}
