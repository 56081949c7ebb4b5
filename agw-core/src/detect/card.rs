//! Payment card numbers: a known issuer range with that issuer's lengths, and Luhn.

use super::digits::run_end;
use super::numeric::{Continues, Token, luhn};
use super::{Detector, Edges, Finding, at, glued_after, glued_before, is_word};

const MAX_DIGITS: usize = 19;

pub(super) fn find(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let mut i = 0;
    while i < groups.len() {
        match candidate(token, i).filter(|_| !id_labelled(token.text, groups[i].start)) {
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
        let d = token.digits(i);
        // Written as one run, 19 digits are as often a 64-bit id (a Datadog trace id) as a
        // card, 17 and 18 a snowflake id (Discord's, a tweet's: twenty-fifth session's red
        // team), and a UATP card's 15 digits starting with 1 a 15-digit id: a card label must
        // name them. (13 digits stay a card alone: `4222222222222` is a test card every
        // processor lists, though a German EAN-13 can pass for one.)
        let ambiguous = matches!(d.len(), 17..=19) || d[0] == b'1';
        let ok = token.isolated(i, i + 1, false, Continues::SameGrouping)
            && valid(d)
            && !path_segment(token.text, first.start)
            && (!ambiguous || card_labelled(token.text, first.start));
        return ok.then_some(i + 1);
    }
    if first.len() == 8 && !first.paren {
        return halves(token, i);
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
            // UATP prints its 15 digits as `4-5-6`.
            && (if digits[0] == b'1' {
                lens[..j - i] == [5, 6]
            } else {
                laid_out(&lens[..j - i])
            })
            && valid(&digits[..len])
            && (token.isolated(i, j + 1, spaced, Continues::SameGrouping)
                || (spaced && beside_its_run(token, i, j + 1)))
        {
            best = Some(j + 1);
        }
    }
    best
}

/// Whether the run at `start` is a segment of a path or a URL: right after a `/` that follows
/// a name (`/orders/4500059797212.json`, `gid://shopify/Order/4571019011531`,
/// `/groups/4918904814754335/posts`), an id in every API's URLs (twenty-fifth session's red
/// team). A card follows a label or a blank, not a path's `/`.
fn path_segment(text: &[u8], start: usize) -> bool {
    start >= 2
        && text[start - 1] == b'/'
        && (text[start - 2].is_ascii_alphanumeric() || matches!(text[start - 2], b'_' | b'-'))
}

/// A 16-digit card written as two halves of eight (`41111111 11111111`), after a card word
/// only: two 8-digit numbers side by side are as often two dates or two ids.
fn halves(token: &Token<'_>, i: usize) -> Option<usize> {
    let next = token.groups.get(i + 1)?;
    if next.len() != 8 || next.paren || next.wide || !matches!(next.sep, b' ' | b'-' | b'.') {
        return None;
    }
    let mut digits = [0u8; 16];
    digits[..8].copy_from_slice(token.digits(i));
    digits[8..].copy_from_slice(token.digits(i + 1));
    let spaced = next.sep == b' ';
    (valid(&digits)
        && token.isolated(i, i + 2, spaced, Continues::Always)
        && card_labelled(token.text, token.groups[i].start))
    .then_some(i + 2)
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

/// The class of a line break between a card's groups (one group a line).
const LINE: u8 = b'\n';
/// The class of a bullet or middle dot (`•`, `·`, `∙`, `⋅`, `‧`, `・`).
const BULLET: u8 = b'*';

/// A mark that may stand between two groups of a card written loosely, at `i`: a dash (ASCII
/// or Unicode), a dot, a slash, an underscore, a pipe, a colon, a plus or a bullet, as its
/// class and length in bytes.
fn mark(text: &[u8], i: usize) -> Option<(u8, usize)> {
    match at(text, i) {
        // `+` is a space in a form's or a query's value (`card=4539+1488+0343+6467`).
        c @ (b'-' | b'.' | b'/' | b'_' | b'|' | b':' | b'+') => Some((c, 1)),
        0xC2 if at(text, i + 1) == 0xB7 => Some((BULLET, 2)),
        0xE2 => match (at(text, i + 1), at(text, i + 2)) {
            (0x80, 0x90..=0x95) | (0x88, 0x92) => Some((b'-', 3)),
            (0x80, 0xA2 | 0xA7) | (0x88, 0x99) | (0x8B, 0x85) => Some((BULLET, 3)),
            _ => None,
        },
        0xE3 if at(text, i + 1) == 0x83 && at(text, i + 2) == 0xBB => Some((BULLET, 3)),
        _ => None,
    }
}

/// A separator at `i` between two groups of a card written loosely: its class, its length in
/// bytes and whether it is spaced. A line break with up to three blanks either side (class
/// [`LINE`]; `\n` and `\r\n`, also left as escapes), a [`mark`], a mark with one space on
/// each side (spaced: `4111 / 1111`), one space, or two or three (spaced).
fn loose_sep(text: &[u8], i: usize) -> Option<(u8, usize, bool)> {
    let rest = |k: usize| text.get(k..).unwrap_or_default();
    let blanks = |k: usize| {
        rest(k)
            .iter()
            .take(3)
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
    };
    let j = i + blanks(i);
    let breaks: [&[u8]; 4] = [b"\r\n", b"\n", b"\\r\\n", b"\\n"];
    if let Some(br) = breaks.iter().find(|br| rest(j).starts_with(br)) {
        let k = j + br.len();
        return Some((LINE, k + blanks(k) - i, false));
    }
    if let Some((class, len)) = mark(text, i) {
        return Some((class, len, false));
    }
    if at(text, i) != b' ' {
        return None;
    }
    let spaces = rest(i).iter().take(4).take_while(|&&b| b == b' ').count();
    match spaces {
        1 => match mark(text, i + 1) {
            Some((class, len)) if at(text, i + 1 + len) == b' ' => Some((class, len + 2, true)),
            _ => Some((b' ', 1, false)),
        },
        2 | 3 => Some((b' ', spaces, true)),
        _ => None,
    }
}

/// The [`loose_sep`] that ends right before `i`, the longest, if one does.
fn loose_sep_before(text: &[u8], i: usize) -> Option<(u8, usize, bool)> {
    (1..=i.min(9))
        .rev()
        .find_map(|len| loose_sep(text, i - len).filter(|&(_, l, _)| l == len))
}

/// The most groups after the first in a card written loosely (`4-4-4-4-3`).
const LOOSE_GROUPS: usize = 4;

/// A card written with separators the other shapes do not read, its first group of four at
/// `s`, as a model reads it whole: slashes, underscores, pipes, colons, bullets
/// (`4111/1111/1111/1111`, `4111•1111•1111•1111`), mixed kinds (`4111-1111 1111.1111`), one
/// group a line. Returns its end. Red-team rt19a (finding 5) sent each of these through.
///
/// The groups must be laid out as issuers print them ([`laid_out`]), the digits pass Luhn and
/// an issuer's range, and the card stand alone: nothing of a word glued to it, no group of
/// digits beside it joined as its own groups are (a longer number, a table's next row, an
/// IPv6 address), no mark of its own kind around it (`|4111|…|1111|` is a table's row,
/// `/4111/…/` a path, `user:4111:…` a key), no mark glued to a letter or digit after it
/// (`….txt`, `…:abcd`). One kind of tight slash, underscore, pipe, colon or bullet is a card
/// by itself (a date, a time, an address or a version has no such groups); a card word
/// shortly before ([`card_labelled`]) is needed for mixed kinds, marks with spaces around
/// (`4111 | 1111 | …` is as often a table's cells) and line breaks (a column of numbers).
/// Cards of one kind of space, dash or dot are [`candidate`]'s, never this one's.
pub(super) fn loose(text: &[u8], s: usize, edges: Edges<'_>) -> Option<usize> {
    if run_end(text, s) != s + 4 || at(text, s) == b'1' {
        return None;
    }
    let mut digits = [0u8; MAX_DIGITS];
    digits[..4].copy_from_slice(&text[s..s + 4]);
    let mut len = 4;
    let mut lens = [0usize; LOOSE_GROUPS];
    let mut classes = [0u8; LOOSE_GROUPS];
    let mut spaced = [false; LOOSE_GROUPS];
    let mut ends = [0usize; LOOSE_GROUPS];
    let mut end = s + 4;
    let mut count = 0;
    while count < LOOSE_GROUPS {
        let Some((class, l, wide)) = loose_sep(text, end) else {
            break;
        };
        let g = end + l;
        let e = run_end(text, g);
        if !(3..=6).contains(&(e - g)) || len + e - g > MAX_DIGITS {
            break;
        }
        digits[len..len + e - g].copy_from_slice(&text[g..e]);
        len += e - g;
        (lens[count], classes[count], spaced[count], ends[count]) = (e - g, class, wide, e);
        count += 1;
        end = e;
    }
    let mut labelled = None;
    for k in (2..=count).rev() {
        let total = 4 + lens[..k].iter().sum::<usize>();
        let kinds = &classes[..k];
        let one_kind = kinds.iter().all(|&c| c == kinds[0]);
        if total < 13
            || (one_kind && matches!(kinds[0], b' ' | b'-' | b'.'))
            || !laid_out(&lens[..k])
            || !valid(&digits[..total])
        {
            continue;
        }
        let plain =
            one_kind && kinds[0] != LINE && (kinds[0] == BULLET || !spaced[..k].iter().any(|&w| w));
        if !plain && !*labelled.get_or_insert_with(|| card_labelled(text, s)) {
            continue;
        }
        if alone_before(text, s, kinds, edges)
            && alone_after(text, ends[k - 1], kinds, edges)
            && !id_labelled(text, s)
        {
            return Some(ends[k - 1]);
        }
    }
    None
}

/// Whether a loose card's first group at `s`, its groups joined by `kinds`, has nothing before
/// it that would make it part of something longer (see [`loose`]).
fn alone_before(text: &[u8], s: usize, kinds: &[u8], edges: Edges<'_>) -> bool {
    if edges.contains(s) {
        return true;
    }
    if glued_before(text, s, is_word) {
        return false;
    }
    let Some((class, len, wide)) = loose_sep_before(text, s) else {
        return true;
    };
    let p = s - len;
    let own = kinds.contains(&class);
    let tight_mark = !wide && !matches!(class, b' ' | LINE);
    if tight_mark && own {
        return false;
    }
    let before = at(text, p.wrapping_sub(1));
    if !before.is_ascii_digit() {
        return true;
    }
    if own || tight_mark {
        return false;
    }
    // A number before it on a blank or line break: a table's row before is one of its own
    // kind (`5678|…|3456` on the line above).
    let run = text[..p]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    !(run >= 3 && loose_sep_before(text, p - run).is_some_and(|(c, _, _)| kinds.contains(&c)))
}

/// Whether a loose card ending at `e`, its groups joined by `kinds`, has nothing after it that
/// would make it part of something longer (see [`loose`]).
fn alone_after(text: &[u8], e: usize, kinds: &[u8], edges: Edges<'_>) -> bool {
    if edges.contains(e) {
        return true;
    }
    if glued_after(text, e) {
        return false;
    }
    let Some((class, len, wide)) = loose_sep(text, e) else {
        return true;
    };
    let n = e + len;
    let own = kinds.contains(&class);
    let tight_mark = !wide && !matches!(class, b' ' | LINE);
    if tight_mark && own {
        return false;
    }
    let next = at(text, n);
    if !next.is_ascii_alphanumeric() {
        return true;
    }
    if tight_mark || (own && next.is_ascii_digit()) {
        return false;
    }
    if !next.is_ascii_digit() {
        return true;
    }
    // A number after it on a blank or line break: a table's next row (`1234|…` below).
    let r = run_end(text, n);
    !(r - n >= 3
        && loose_sep(text, r)
            .is_some_and(|(c, l, _)| kinds.contains(&c) && at(text, r + l).is_ascii_digit()))
}

/// Words that name a card, in lower case, as a label's parts (`card`, `cc_number`,
/// `creditCard`, `pan`).
const CARD_WORDS: &[&[u8]] = &[
    b"card",
    b"cc",
    b"pan",
    b"credit",
    b"visa",
    b"mastercard",
    b"amex",
    b"ccnum",
    b"cardnumber",
    b"uatp",
];

/// What may stand between a label and its value: `=`, `:`, quotes, blanks, `#`, a tag's `>`,
/// brackets (PostgreSQL's `Key (id)=(…)`).
fn label_sep(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':' | b'"' | b'\'' | b' ' | b'\t' | b'#' | b'>' | b'(' | b')'
    )
}

/// The word before the label that ends right before `start` ([`label_parts`]), across one
/// blank: `Tracking` in `Tracking number: …`, `Policy` in `Policy No. …`.
fn word_before_label(text: &[u8], start: usize) -> &[u8] {
    let before = &text[start.saturating_sub(48)..start];
    let mut e = before.len() - before.iter().rev().take_while(|&&b| label_sep(b)).count();
    // The label itself (with an abbreviation's dot), then one blank.
    e -= before[..e]
        .iter()
        .rev()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'.')
        .count();
    if e == 0 || !matches!(before[e - 1], b' ' | b'\t') {
        return &[];
    }
    e -= 1;
    let s = e - before[..e]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    &before[s..e]
}

/// Words that name an id's number when another word before them says whose
/// (`order_no`, `invoiceNumber`, `Tracking number`, `Policy No.`).
const NUMBER_WORDS: &[&[u8]] = &[
    b"number",
    b"no",
    b"num",
    b"nr",
    b"ref",
    b"reference",
    b"code",
];

/// Things numbered that are no card, alone as a label (`Invoice 4102…`, `span=…`, `SKU: …`)
/// or with a [`NUMBER_WORDS`] word after them (`order_no`, `Tracking number`).
const NUMBERED_ALONE: &[&[u8]] = &[
    b"order",
    b"invoice",
    b"tracking",
    b"confirmation",
    b"booking",
    b"serial",
    b"ticket",
    b"txn",
    b"shipment",
    b"reservation",
    b"receipt",
    b"sku",
    b"span",
    b"trace",
    b"offset",
    b"ref",
];

/// Things numbered that are no card only with a [`NUMBER_WORDS`] word after them
/// (`customer_no`, `Member number`): alone they may name a card's owner or its use.
const NUMBERED: &[&[u8]] = &[
    b"customer",
    b"policy",
    b"transaction",
    b"reference",
    b"claim",
    b"case",
    b"member",
    b"employee",
    b"part",
    b"item",
    b"product",
    b"build",
    b"job",
    b"batch",
    b"request",
    b"message",
    b"event",
    b"session",
    b"correlation",
];

/// The word parts of the label that ends right before `start`: the name (letters, digits, `_`,
/// `.`, `-`) before at most a few separators (`=`, `:`, quotes, blanks, `#`), split at `_`,
/// `.`, `-` and case changes, last part first. Empty when none.
fn label_parts(text: &[u8], start: usize) -> impl Iterator<Item = &[u8]> {
    let before = &text[start.saturating_sub(40)..start];
    let gap = before.iter().rev().take_while(|&&b| label_sep(b)).count();
    let name_end = before.len() - gap;
    let name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let name_start = name_end
        - before[..name_end]
            .iter()
            .rev()
            .take_while(|&&b| name_char(b))
            .count();
    let name = if gap <= 4 {
        &before[name_start..name_end]
    } else {
        &before[..0]
    };
    let mut end = name.len();
    std::iter::from_fn(move || {
        while end > 0 && matches!(name[end - 1], b'_' | b'.' | b'-') {
            end -= 1;
        }
        if end == 0 {
            return None;
        }
        let mut s = end - 1;
        while s > 0 {
            let (p, c) = (name[s - 1], name[s]);
            if matches!(p, b'_' | b'.' | b'-') || (p.is_ascii_lowercase() && c.is_ascii_uppercase())
            {
                break;
            }
            s -= 1;
        }
        let part = &name[s..end];
        end = s;
        Some(part)
    })
}

/// Whether the label right before a card candidate at `start` names an id, not a card:
/// `order_id=`, `trace_id=`, `dd.trace_id=`, `"requestId": "`, `txn_id`, `Order #`. Luhn
/// passes one id in ten, and logs print ids by the thousand (accuracy review:
/// `order_id=4964573150346858`, `dd.trace_id=…`). A card word anywhere in the label wins
/// (`card_id`, `cc_token_id`).
fn id_labelled(text: &[u8], start: usize) -> bool {
    let hash = at(text, start.wrapping_sub(1)) == b'#';
    let mut id = hash;
    let numbered = |w: &[u8]| {
        NUMBERED_ALONE
            .iter()
            .chain(NUMBERED)
            .any(|n| w.eq_ignore_ascii_case(n))
    };
    let mut number_word = false;
    let mut parts = 0;
    for (k, part) in label_parts(text, start).enumerate() {
        parts = k + 1;
        let lower = |w: &[u8]| part.eq_ignore_ascii_case(w);
        if CARD_WORDS.iter().any(|w| lower(w)) {
            return false;
        }
        // The last part names the value: `trace_id`, `traceId`, `requestID`, a bare `id`,
        // also glued (`traceid`, `orderid`, `txnid`).
        if k == 0 {
            let glued = part.len() > 2
                && part[part.len() - 2..].eq_ignore_ascii_case(b"id")
                && [
                    &b"trace"[..],
                    b"span",
                    b"order",
                    b"request",
                    b"txn",
                    b"transaction",
                    b"user",
                    b"session",
                    b"parent",
                    b"message",
                    b"event",
                    b"correlation",
                ]
                .iter()
                .any(|w| part[..part.len() - 2].eq_ignore_ascii_case(w));
            id |= lower(b"id") || lower(b"ids") || lower(b"uid") || lower(b"uuid") || glued;
            // `Invoice 4102…`, `span=…`, `SKU: …` (red team, twenty-sixth session).
            id |= NUMBERED_ALONE.iter().any(|n| part.eq_ignore_ascii_case(n));
            number_word = NUMBER_WORDS.iter().any(|w| lower(w));
        }
        // `order_no`, `invoiceNumber`, `customer-ref`.
        if k == 1 && number_word && numbered(part) {
            id = true;
        }
    }
    // `Tracking number: …`, `Policy No. …`: whose number, a word before.
    if !id && number_word && parts == 1 {
        // (No card word is a numbered thing.)
        id = numbered(word_before_label(text, start));
    }
    id
}

/// Whether a word naming a card ([`CARD_WORDS`]) stands within 32 bytes before `start`
/// (`card 4000…`, `"cc_number": "…"`, `Visa: …`).
fn card_labelled(text: &[u8], start: usize) -> bool {
    let from = start.saturating_sub(32);
    let window = &text[from..start];
    (0..window.len()).any(|i| {
        let b = window[i];
        let prev = if i == 0 {
            at(text, from.wrapping_sub(1))
        } else {
            window[i - 1]
        };
        let starts = b.is_ascii_alphabetic()
            && (!prev.is_ascii_alphabetic()
                || (prev.is_ascii_lowercase() && b.is_ascii_uppercase()));
        starts
            && CARD_WORDS.iter().any(|w| {
                let e = i + w.len();
                e <= window.len()
                    && window[i..e].eq_ignore_ascii_case(w)
                    && !window.get(e).is_some_and(u8::is_ascii_lowercase)
            })
    })
}

fn valid(digits: &[u8]) -> bool {
    issued(digits) && luhn(digits)
}

/// Whether an issuer uses this prefix at this length: Visa, Mastercard, Mir, Amex, JCB, Diners,
/// Discover, UnionPay, Maestro, RuPay (`60`, `65`, `81`, `82`, `508`), UATP (`1`, 15 digits),
/// Troy (`9792`), UzCard (`8600`), Humo (`9860`), BORICA (`2205`) and Indonesia's GPN (`1946`),
/// after the networks' published IIN ranges.
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
            ((2221..=2720).contains(&p4) && n == 16)
                || ((2200..=2204).contains(&p4) && long)
                || (p4 == 2205 && n == 16)
        }
        b'1' => n == 15 || (prefix(4) == 1946 && long),
        b'8' => (matches!(prefix(2), 81 | 82) || prefix(4) == 8600) && n == 16,
        b'9' => matches!(prefix(4), 9792 | 9860) && n == 16,
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
            // UATP, RuPay's `81`/`82`, Troy, UzCard, Humo, BORICA, GPN.
            ("103258568144794", true),
            ("1032585681447940", false),
            ("8100893585574189", true),
            ("8200998134520606", true),
            ("8300000000000000", false),
            ("9792991283288655", true),
            ("9791000000000000", false),
            ("8600123412341234", true),
            ("9860123412341234", true),
            ("2205123412341234", true),
            ("1946123412341234", true),
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
                // 19 digits in one run only with a card label (a 64-bit id otherwise);
                // grouped as printed, always.
                (
                    "card 4000000000000000006 / cc: 6200000000000000000",
                    &["4000000000000000006", "6200000000000000000"],
                ),
                (
                    "19 digits 4000000000000000006, 4000 0000 0000 0000 006",
                    &["4000 0000 0000 0000 006"],
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

    /// rt3 accuracy review: Luhn-valid ids right after an id label are no card; a card word
    /// in the label wins.
    #[test]
    fn ids_are_not_cards() {
        table(
            Detector::CreditCard,
            &[
                (
                    "order_id=4964573150346858 status=shipped [dd.trace_id=4111111111111111 dd.span_id=5555555555554444]",
                    &[],
                ),
                (
                    r#"{"requestId": "4111111111111111", "traceID": "4111111111111111", "txn_id": 4111111111111111, "id": "4111111111111111"}"#,
                    &[],
                ),
                (
                    "Order #4000123412341234-A shipped; orderid=4111111111111111 ids: 4111111111111111",
                    &[],
                ),
                (
                    "card_id=4111111111111111 cc_token_id: 5555555555554444 Card #4111111111111111",
                    &["4111111111111111", "5555555555554444", "4111111111111111"],
                ),
                // Other labels, prose, JSON values and CSV cells stay cards.
                (
                    r#"paid=4111111111111111 {"number":"5555-5555-5555-4444"} valid 378282246310005"#,
                    &["4111111111111111", "5555-5555-5555-4444", "378282246310005"],
                ),
                (
                    "name,card\nBob,4111 1111 1111 1111\nAmy,4111111111111111",
                    &["4111 1111 1111 1111", "4111111111111111"],
                ),
            ],
        );
    }

    /// rt3 review: networks that were missed, in the groupings they print.
    #[test]
    fn more_networks() {
        table(
            Detector::CreditCard,
            &[
                (
                    "rupay 8100 8935 8557 4189, 8200-9981-3452-0606; troy 9792991283288655",
                    &[
                        "8100 8935 8557 4189",
                        "8200-9981-3452-0606",
                        "9792991283288655",
                    ],
                ),
                (
                    "My card is 103258568144794, UATP 1032 58568 144794",
                    &["103258568144794", "1032 58568 144794"],
                ),
                // Fifteen digits starting with 1 in one run are an id without a card label.
                ("user 103258568144794 1032 585681 44794", &[]),
            ],
        );
    }

    /// rt19a (finding 5): cards written with separators the tokens do not read, which a model
    /// reads whole, and the near misses that stay clean (more in `testdata/separated.txt`).
    #[test]
    fn loose_separators() {
        table(
            Detector::CreditCard,
            &[
                // One kind of tight slash, underscore, pipe, colon or bullet: a card alone.
                (
                    "a 4111/1111/1111/1111, b 5555_5555_5555_4444; c 4111|1111|1111|1111",
                    &[
                        "4111/1111/1111/1111",
                        "5555_5555_5555_4444",
                        "4111|1111|1111|1111",
                    ],
                ),
                (
                    "d 4111:1111:1111:1111. e 4111\u{2022}1111\u{2022}1111\u{2022}1111 f 3782/822463/10005",
                    &[
                        "4111:1111:1111:1111",
                        "4111\u{2022}1111\u{2022}1111\u{2022}1111",
                        "3782/822463/10005",
                    ],
                ),
                (
                    "g 4111\u{b7}1111\u{b7}1111\u{b7}1111 h 4111 \u{2022} 1111 \u{2022} 1111 \u{2022} 1111",
                    &[
                        "4111\u{b7}1111\u{b7}1111\u{b7}1111",
                        "4111 \u{2022} 1111 \u{2022} 1111 \u{2022} 1111",
                    ],
                ),
                // 19 digits as `4-4-4-4-3`; a CVV and an expiry after it are no part of it.
                (
                    "4000/0000/0000/0000/006 and 4111_1111_1111_1111 123 12/25",
                    &["4000/0000/0000/0000/006", "4111_1111_1111_1111"],
                ),
                // Mixed kinds, marks between spaces, one group a line, two halves of eight:
                // after a card word.
                (
                    "card 4111-1111 1111.1111, card: 4111 / 1111 / 1111 / 1111",
                    &["4111-1111 1111.1111", "4111 / 1111 / 1111 / 1111"],
                ),
                (
                    "my card is\n4111\n1111\n1111\n1111\nthanks",
                    &["4111\n1111\n1111\n1111"],
                ),
                (
                    "card no.\r\n  4111 1111\r\n  1111 1111",
                    &["4111 1111\r\n  1111 1111"],
                ),
                ("my card is 41111111 11111111", &["41111111 11111111"]),
                ("cc 4111 1111 / 1111 1111", &["4111 1111 / 1111 1111"]),
                (
                    "mixed 4111-1111 1111.1111 4111 1111 / 1111 1111 4111 | 1111 | 1111 | 1111",
                    &[],
                ),
                ("4111\n1111\n1111\n1111", &[]),
                ("ids 41111111 11111111", &[]),
                ("card 41111111 11111111 22222222", &[]),
                // Dates, times, addresses, versions, paths, files, keys, table rows.
                (
                    "2024/01/01 12:34:56 10.0.0.1:8080 v4.1.1.1 2001:0db8:4111:1111:1111:1111:0:1",
                    &[],
                ),
                (
                    "/api/4111/1111/1111/1111/x img_4111_1111_1111_1111.png user:4111:1111:1111:1111",
                    &[],
                ),
                (
                    "|4111|1111|1111|1111| 4111/1111/1111/1111.txt 4111:1111:1111:1111:abcd",
                    &[],
                ),
                (
                    "5432|6379|8080|9200\n4111|1111|1111|1111\n1234|5678|9012|3456",
                    &[],
                ),
                ("4111/1111/1111/1111/1111 4111/1111/1111/1112", &[]),
                ("order_id=4111/1111/1111/1111 x4111/1111/1111/1111", &[]),
                ("card\n4111\n1111\n1111\n1111\n2222", &[]),
            ],
        );
    }
}
