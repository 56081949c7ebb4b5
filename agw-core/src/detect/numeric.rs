//! The digit scanner shared by the numeric detectors: finds number-like tokens and hands each to
//! the card, SSN, SIN and phone validators; IBANs are tried first where two capitals precede.

use super::digits::{next_run, run_end};
use super::{
    Detector, DetectorSet, Edges, Finding, at, card, escape_digits, glued_after, glued_before,
    iban, is_word, national, phone, preceded_by, stripe_track,
};

/// Groups kept per token. A longer chain (`1 2 3 4 …`) is cut here; the cut counts as a
/// continuation on both sides, so nothing is reported across it and memory stays bounded.
const MAX_GROUPS: usize = 32;

/// The fewest digits any numeric shape has (E.164 minimum); shorter tokens are skipped early.
const MIN_DIGITS: usize = 8;

/// A run of digits inside a token.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    pub start: usize,
    pub end: usize,
    /// What joins this group to the previous one, by class ([`separator`]): `b' '`, `b'-'`
    /// (any dash), `b'.'`, or `b'('` for a direct join through a parenthesis (`(415)555`,
    /// `1(415)`); 0 for the first group.
    pub sep: u8,
    /// The join is wide ([`join`]: `4539  9458`, `4539 - 9458`): only cards read across it.
    pub wide: bool,
    /// Written as `(digits)`.
    pub paren: bool,
}

impl Group {
    pub fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The groups of one token, kept on the stack.
#[derive(Debug)]
struct Groups {
    buf: [Group; MAX_GROUPS],
    len: usize,
}

impl Groups {
    fn new() -> Self {
        let empty = Group {
            start: 0,
            end: 0,
            sep: 0,
            wide: false,
            paren: false,
        };
        Groups {
            buf: [empty; MAX_GROUPS],
            len: 0,
        }
    }

    /// Callers stop at [`MAX_GROUPS`].
    fn push(&mut self, group: Group) {
        self.buf[self.len] = group;
        self.len += 1;
    }

    fn as_slice(&self) -> &[Group] {
        &self.buf[..self.len]
    }
}

/// When a space-joined neighbour of a space-grouped match makes the match part of a longer
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Continues {
    /// Any neighbour does.
    Always,
    /// A neighbour does if it extends a regular grouping: the match's groups all have one width
    /// and so does the neighbour (`4111 1111 1111 1111 1111`, but not `… 1111 12/25`, and not
    /// after `4-6-5` or a remainder group as in `4-4-4-4-3`).
    SameGrouping,
}

/// A number-like token: digit groups joined by single separators, or by wide ones that only
/// cards read across (the other detectors read the token's pieces between them, see
/// [`validate`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'t> {
    pub text: &'t [u8],
    pub groups: &'t [Group],
    /// A word character (or a cut-off longer token) touches the first group.
    pub left_blocked: bool,
    /// A word character (or a cut-off longer token) touches the last group.
    pub right_blocked: bool,
    /// A free-standing `+` directly precedes the first group.
    pub plus: bool,
}

impl Token<'_> {
    pub fn digits(&self, g: usize) -> &[u8] {
        let g = self.groups[g];
        &self.text[g.start..g.end]
    }

    /// Whether `groups[i..j]` stands on its own: at the token's edges the outside must not be a
    /// word character; inside the token the neighbour must be joined loosely (space or
    /// parenthesis, never `-` or `.`), and for a space-grouped match (`spaced`) must not
    /// continue it as `rule` says. A wide join is loose to a match written without one (it
    /// ends a token for every other shape); a match written with wide joins reads its
    /// neighbours' joins by their kind, as any other.
    pub fn isolated(&self, i: usize, j: usize, spaced: bool, rule: Continues) -> bool {
        let width = self.groups[i].len();
        let regular = self.groups[i..j].iter().all(|g| g.len() == width);
        let wide = self.groups[i + 1..j].iter().any(|g| g.wide);
        // `joint`: the group whose join to the one before is between match and neighbour.
        let loose = |neighbour: usize, joint: usize| match self.groups[joint].sep {
            _ if self.groups[joint].wide && !wide => true,
            b' ' | b'\t' | b'(' if spaced => {
                rule == Continues::SameGrouping
                    && !(regular && self.groups[neighbour].len() == width)
            }
            b' ' | b'\t' | b'(' => true,
            _ => false,
        };
        let left = if i == 0 {
            !self.left_blocked
        } else {
            loose(i - 1, i)
        };
        let right = if j == self.groups.len() {
            !self.right_blocked
        } else {
            loose(j, j)
        };
        left && right
    }
}

/// Which numeric detectors are on.
#[derive(Debug, Clone, Copy)]
struct Wants {
    card: bool,
    ssn: bool,
    sin: bool,
    phone: bool,
    iban: bool,
}

pub(super) fn find(set: &DetectorSet, text: &[u8], edges: Edges<'_>, out: &mut Vec<Finding>) {
    let wants = Wants {
        card: set.contains(Detector::CreditCard),
        ssn: set.contains(Detector::UsSsn),
        sin: set.contains(Detector::CaSin),
        phone: set.contains(Detector::Phone),
        iban: set.contains(Detector::Iban),
    };
    let mut groups = Groups::new();
    let mut diff = DiffScan::default();
    let mut pos = 0;
    while let Some((p, run_end)) = next_run(text, pos) {
        // The digits that end an escape (`%22` before `4111…`) are not the number's.
        let p = p + escape_digits(text, p);
        if p == run_end {
            pos = run_end;
            continue;
        }
        let letters = at(text, p.wrapping_sub(1)).is_ascii_alphabetic()
            && at(text, p.wrapping_sub(2)).is_ascii_alphabetic();
        if wants.iban
            && letters
            && let Some(end) = iban::end(text, p - 2, edges)
        {
            out.push(Finding {
                detector: Detector::Iban,
                range: p - 2..end,
            });
            pos = end;
            continue;
        }
        if run_end - p < MIN_DIGITS && !continues(text, p, run_end) {
            // A card's first group of four before a separator no token reads
            // (`4111/1111/…`, `4111•1111…`, one group a line).
            if wants.card
                && run_end - p == 4
                && let Some(end) = card::loose(text, p, edges)
            {
                out.push(Finding {
                    detector: Detector::CreditCard,
                    range: p..end,
                });
                pos = end;
                continue;
            }
            pos = run_end;
            continue;
        }
        let plus = at(text, p.wrapping_sub(1)) == b'+'
            && !preceded_by(text, p - 1, |b| b.is_ascii_alphanumeric())
            && !operand_before(text, p - 1)
            && !diff.marks(text, p - 1);
        let end = scan_token(text, p, plus, &mut groups);
        let digits: usize = groups.as_slice().iter().map(Group::len).sum();
        let before = out.len();
        if digits >= MIN_DIGITS {
            let token = Token {
                text,
                groups: groups.as_slice(),
                // Where two strings meet is a boundary (`hi` + `4111 …` + `thanks`).
                left_blocked: (glued_before(text, p, is_word)
                    && !edges.contains(p)
                    && !stripe_track(text, p))
                    || cut_before(text, p),
                // A dash and a suffix go on with the number (`part no. 536-22-8726-B`, `Order
                // #4000123412341234-A`), as a dash and digits do; a dash and a word do not.
                right_blocked: (glued_after(text, end) && !edges.contains(end))
                    || cut_after(text, end)
                    || (suffixed(text, end) && !edges.contains(end)),
                plus,
            };
            validate(&token, wants, out);
        }
        pos = end;
        if wants.card
            && !out[before..]
                .iter()
                .any(|f| f.detector == Detector::CreditCard)
        {
            pos = pos.max(loose_card(text, groups.as_slice(), end, edges, out));
        }
    }
}

/// A card written loosely ([`card::loose`]) that starts at one of a token's groups of four,
/// where the token holds none: its joins are of more than one kind (`4111-1111 1111.1111`),
/// or it goes on after `end` with a separator no token reads (`4111 1111/1111/1111`). Returns
/// the card's end, or 0.
fn loose_card(
    text: &[u8],
    groups: &[Group],
    end: usize,
    edges: Edges<'_>,
    out: &mut Vec<Finding>,
) -> usize {
    let mixed = groups.iter().skip(2).any(|g| g.sep != groups[1].sep);
    let ends = !matches!(
        at(text, end),
        b' ' | b'-'
            | b'.'
            | b'/'
            | b'_'
            | b'|'
            | b':'
            | b'\n'
            | b'\r'
            | b'\t'
            | b'\\'
            | 0xC2
            | 0xE2
            | 0xE3
    );
    if !mixed && ends {
        return 0;
    }
    for g in groups.iter().filter(|g| g.len() == 4 && !g.paren) {
        if let Some(e) = card::loose(text, g.start, edges) {
            out.push(Finding {
                detector: Detector::CreditCard,
                range: g.start..e,
            });
            return e;
        }
    }
    0
}

/// Whether the `+` at `i`, in the middle of a line, adds to an operand before it
/// (`y = x +12345678901`, `len(a) +12345678901`): a closing bracket, or a name of one letter
/// or with `_` or a digit in it, then blanks. A word (`call +1…`), a label's `:` or `=`, or
/// another number (a list of phone numbers) is no operand.
fn operand_before(text: &[u8], i: usize) -> bool {
    let blanks = text[..i]
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if blanks == 0 {
        return false;
    }
    let e = i - blanks;
    let prev = at(text, e.wrapping_sub(1));
    if matches!(prev, b')' | b']') {
        return true;
    }
    let name = text[..e].iter().rev().take_while(|&&b| is_word(b)).count();
    let name = &text[e - name..e];
    let alpha = name
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    alpha && (name.len() == 1 || name.iter().any(|&b| b == b'_' || b.is_ascii_digit()))
}

/// Whether a `+` starts a line of a unified diff (`+5012345678901,widget` added to a CSV),
/// where it marks the line, not a country code. A text is a diff from its first hunk header
/// (`@@ -`) on; the search for one moves forward with the scan, so it reads each byte once.
#[derive(Debug, Default)]
struct DiffScan {
    /// How far the text has been searched for a hunk header.
    searched: usize,
    /// Whether one was found.
    seen: bool,
}

impl DiffScan {
    fn marks(&mut self, text: &[u8], i: usize) -> bool {
        let line_start =
            i == 0 || text[i - 1] == b'\n' || text[i - 1] == b'\r' || text[..i].ends_with(b"\\n");
        if !line_start {
            return false;
        }
        if !self.seen && self.searched < i {
            let from = self.searched.saturating_sub(3);
            self.seen = memchr::memmem::find(&text[from..i], b"@@ -").is_some();
            self.searched = i;
        }
        self.seen
    }
}

/// Hands `token` to the numeric detectors: cards read it whole, the others each piece between
/// its wide joins, as the token it was before wide joins were read (its edges there free).
fn validate(token: &Token<'_>, wants: Wants, out: &mut Vec<Finding>) {
    if wants.card {
        card::find(token, out);
    }
    if !(wants.ssn || wants.sin || wants.phone) {
        return;
    }
    let groups = token.groups;
    let mut a = 0;
    while a < groups.len() {
        let b = (a + 1..groups.len())
            .find(|&k| groups[k].wide)
            .unwrap_or(groups.len());
        let piece = Token {
            text: token.text,
            groups: &groups[a..b],
            left_blocked: a == 0 && token.left_blocked,
            right_blocked: b == groups.len() && token.right_blocked,
            plus: a == 0 && token.plus,
        };
        let digits: usize = piece.groups.iter().map(Group::len).sum();
        if digits >= MIN_DIGITS {
            if wants.ssn {
                national::find_ssn(&piece, out);
            }
            if wants.sin {
                national::find_sin(&piece, out);
            }
            if wants.phone {
                phone::find(&piece, out);
            }
        }
        a = b;
    }
}

/// The separator between two digit groups at `i`, as its class and its length in bytes: a
/// space, a dot, or a dash — ASCII `-` or a Unicode dash or minus sign (U+2010–U+2015,
/// U+2212), as word processors and copied web forms write `4111–1111–…`. Not a tab: a pasted
/// table's columns (`5432\t6379\t8080\t9202`) are no card, SSN or phone number. The text is
/// NFKC-normalised before it gets here, so no-break, thin and fullwidth spaces are already
/// spaces and a fullwidth hyphen-minus is `-`.
pub(super) fn separator(text: &[u8], i: usize) -> Option<(u8, usize)> {
    match at(text, i) {
        c @ (b' ' | b'-' | b'.') => Some((c, 1)),
        0xE2 => match (at(text, i + 1), at(text, i + 2)) {
            (0x80, 0x90..=0x95) | (0x88, 0x92) => Some((b'-', 3)),
            _ => None,
        },
        _ => None,
    }
}

/// The join between two digit groups at `i`: a [`separator`], or a wide one before a digit —
/// two or three spaces, or a dash or dot with a space on each side (`4539  9458`, pasted from a
/// PDF; `4539 - 9458`, typed into a form) — as its class, its length in bytes and whether it
/// is wide. A dash or dot against one digit only is a sign or a sentence's end (`-9458`,
/// `4111. 1111`), and more room than that separates columns.
pub(super) fn join(text: &[u8], i: usize) -> Option<(u8, usize, bool)> {
    let narrow = separator(text, i).map(|(class, len)| (class, len, false));
    if at(text, i) != b' ' || at(text, i + 1).is_ascii_digit() {
        return narrow;
    }
    let spaces = text[i..].iter().take(4).take_while(|&&b| b == b' ').count();
    if (2..=3).contains(&spaces) && at(text, i + spaces).is_ascii_digit() {
        return Some((b' ', spaces, true));
    }
    match separator(text, i + 1) {
        Some((class @ (b'-' | b'.'), len))
            if at(text, i + 1 + len) == b' ' && at(text, i + 2 + len).is_ascii_digit() =>
        {
            Some((class, len + 2, true))
        }
        _ => narrow,
    }
}

/// The length of a join that ends just before `i` and follows a digit, if one does.
fn join_before(text: &[u8], i: usize) -> Option<usize> {
    [1, 2, 3, 5].into_iter().find(|&len| {
        i > len
            && at(text, i - len - 1).is_ascii_digit()
            && join(text, i - len).is_some_and(|(_, l, _)| l == len)
    })
}

/// Whether the digit run `p..run_end` may be part of a multi-group token.
fn continues(text: &[u8], p: usize, run_end: usize) -> bool {
    if let Some((_, len, _)) = join(text, run_end) {
        let next = at(text, run_end + len);
        return next.is_ascii_digit() || next == b'(';
    }
    match at(text, run_end) {
        b')' => {
            at(text, p.wrapping_sub(1)) == b'('
                || (at(text, p.wrapping_sub(1)) == b'+' && at(text, p.wrapping_sub(2)) == b'(')
        }
        b'(' => true,
        _ => false,
    }
}

/// Whether a dash at `i` joins a suffix to the number before it (`536-22-8726-B`,
/// `…1234-A2`, `…1234-REV`): one letter, or letters and digits with a digit or no lower-case
/// letter. An em dash or a horizontal bar is prose's (`123-45-6789—keep it safe`), and so is a
/// word of two or more letters with a lower-case one (`…6789-call me`: an en dash, which the
/// guard reads as `-`, or a writer's hyphen for a dash).
fn suffixed(text: &[u8], i: usize) -> bool {
    let Some((b'-', len)) = separator(text, i) else {
        return false;
    };
    if len == 3 && matches!(at(text, i + 2), 0x94 | 0x95) {
        return false;
    }
    let run = text[(i + len).min(text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .take(MAX_SUFFIX + 1);
    let (mut n, mut digit, mut lower) = (0, false, false);
    for &b in run {
        n += 1;
        digit |= b.is_ascii_digit();
        lower |= b.is_ascii_lowercase();
    }
    at(text, i + len).is_ascii_alphabetic() && (n == 1 || digit || !lower || n > MAX_SUFFIX)
}

/// A run of letters and digits longer than this after a dash is an identifier going on with
/// the number (`…6789-abcdefghijklmnopq`), not a word.
const MAX_SUFFIX: usize = 24;

/// Whether a separator before `i` joins a digit before it to what follows: only true where a
/// token was cut at [`MAX_GROUPS`] (or an IBAN ended), since scanning otherwise swallows it.
fn cut_before(text: &[u8], i: usize) -> bool {
    join_before(text, i).is_some()
}

/// Whether a separator at `i` joins what precedes to a digit after it: true only where a token
/// was cut at [`MAX_GROUPS`].
fn cut_after(text: &[u8], i: usize) -> bool {
    join(text, i).is_some_and(|(_, len, _)| at(text, i + len).is_ascii_digit())
}

/// Reads the token whose first digit is at `p` into `groups`; returns the end of the token
/// (past a closing parenthesis).
///
/// After a `+` (`plus`), a `/` joins groups too, as German numbers are written
/// (`+49 30/1234567`), and a first group in parentheses with the `+` is a country code
/// (`(+44) 20 7946 0958`).
fn scan_token(text: &[u8], p: usize, plus: bool, groups: &mut Groups) -> usize {
    groups.len = 0;
    let end = run_end(text, p);
    let open = at(text, p.wrapping_sub(1)) == b'(' || (plus && at(text, p.wrapping_sub(2)) == b'(');
    let paren = open && at(text, end) == b')';
    groups.push(Group {
        start: p,
        end,
        sep: 0,
        wide: false,
        paren,
    });
    loop {
        let last = groups.buf[groups.len - 1];
        let after = last.end + usize::from(last.paren);
        if groups.len == MAX_GROUPS {
            return after;
        }
        let (sep, k, wide) = match (join(text, after), at(text, after)) {
            (Some((sep, len, wide)), _) => (sep, after + len, wide),
            (None, b'(') => (b'(', after, false),
            (None, b'/') if plus && groups.len > 1 => (b'/', after + 1, false),
            _ if last.paren => (b'(', after, false),
            _ => return after,
        };
        let d = at(text, k);
        if d.is_ascii_digit() {
            let end = run_end(text, k);
            groups.push(Group {
                start: k,
                end,
                sep,
                wide,
                paren: false,
            });
        } else if d == b'(' && matches!(sep, b' ' | b'(') && at(text, k + 1).is_ascii_digit() {
            let end = run_end(text, k + 1);
            if at(text, end) != b')' {
                return after;
            }
            groups.push(Group {
                start: k + 1,
                end,
                sep,
                wide,
                paren: true,
            });
        } else {
            return after;
        }
    }
}

/// Luhn checksum over ASCII digits.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group as text, joining separator and parenthesised flag.
    type Shape = (&'static str, u8, bool);

    #[test]
    fn tokens() {
        let cases: &[(&str, &[Shape])] = &[
            ("415", &[("415", 0, false)]),
            (
                "(415) 555-2671",
                &[
                    ("415", 0, true),
                    ("555", b' ', false),
                    ("2671", b'-', false),
                ],
            ),
            (
                "(415)555.2671",
                &[
                    ("415", 0, true),
                    ("555", b'(', false),
                    ("2671", b'.', false),
                ],
            ),
            (
                "1(415)555",
                &[("1", 0, false), ("415", b'(', true), ("555", b'(', false)],
            ),
            (
                "44 (0) 20",
                &[("44", 0, false), ("0", b' ', true), ("20", b' ', false)],
            ),
            ("12 (34 56", &[("12", 0, false)]),
            ("1--2", &[("1", 0, false)]),
            ("1. 2", &[("1", 0, false)]),
        ];
        let mut groups = Groups::new();
        for (text, expect) in cases {
            let t = text.as_bytes();
            let (start, _) = next_run(t, 0).unwrap();
            scan_token(t, start, false, &mut groups);
            let got: Vec<_> = groups
                .as_slice()
                .iter()
                .map(|g| (&text[g.start..g.end], g.sep, g.paren))
                .collect();
            assert_eq!(got, expect.to_vec(), "{text}");
        }
    }

    #[test]
    fn luhn_check() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b"79927398710"));
    }
}
