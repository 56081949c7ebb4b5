//! Phone numbers: E.164 (`+` and 8–15 digits, any grouping) and formatted NANP numbers.

use super::numeric::{Continues, Group, Token};
use super::{Detector, Finding, at, is_word};

pub(super) fn find(token: &Token<'_>, out: &mut Vec<Finding>) {
    // An extension glued to the number (`415-555-2671x123`) ends it as a space would; the
    // extension is not reported.
    let relaxed;
    let token = match token.groups.last() {
        Some(last)
            if token.right_blocked && extension(token.text, last.end + usize::from(last.paren)) =>
        {
            relaxed = Token {
                right_blocked: false,
                ..*token
            };
            &relaxed
        }
        _ => token,
    };
    let groups = token.groups;
    let mut i = 0;
    if token.plus
        && let Some(j) = e164(token)
    {
        // `(+44) 20 7946 0958`: the country code in parentheses.
        let start = groups[0].start - 1 - usize::from(groups[0].paren);
        out.push(finding(start, &groups[j - 1]));
        i = j;
    }
    if let [g] = groups[i..]
        && let Some(start) = nanp_run(token, g)
    {
        out.push(finding(start, &g));
        return;
    }
    let before = out.len();
    while i < groups.len() {
        match nanp(token, i) {
            Some((start, j)) => {
                out.push(finding(start, &groups[j - 1]));
                i = j;
            }
            None => i += 1,
        }
    }
    if out.len() == before
        && !token.plus
        && let Some(start) = trunk_dialled(token)
    {
        out.push(finding(start, &groups[groups.len() - 1]));
    }
}

/// A national number as a country writes it at home — its trunk prefix `0`, 9 to 12 digits
/// in all, in up to five groups joined one way (`020 7946 0958`, `030-12345678`, `(02) 9876
/// 5432`, `01 23 45 67 89`) — that a phone label names ([`PHONE_LABELS`]): its start
/// (twenty-fifth session's red team: UK, German, French, Dutch, Australian and Japanese
/// numbers after `Phone:` passed). Without a label such digits are as often an id.
fn trunk_dialled(token: &Token<'_>) -> Option<usize> {
    let groups = token.groups;
    let (first, last) = (groups.first()?, groups.last()?);
    let digits: usize = groups.iter().map(Group::len).sum();
    let sep = groups.get(1).map_or(0, |g| g.sep);
    let start = first.start - usize::from(first.paren);
    let lengths = if international(token) {
        11..=17
    } else {
        9..=12
    };
    let ok = token.text[first.start] == b'0'
        && lengths.contains(&digits)
        && groups.len() <= 6
        && groups
            .iter()
            .skip(1)
            .all(|g| !g.wide && (g.sep == sep || first.paren))
        && groups.iter().skip(1).all(|g| !g.paren)
        && token.isolated(0, groups.len(), sep == b' ', Continues::Always)
        && (super::national::named(token.text, start, last.end, PHONE_LABELS)
            || (not_in_a_list(token.text, start, last.end)
                && phone_word_before(token.text, start, false)));
    ok.then_some(start)
}

/// Whether the token is dialled with an international prefix, `00` (most of the world) or
/// `011` (NANP), before an assigned country code (`0049 30 12345678`, `011 44 20 7946 0958`;
/// red team, twenty-sixth session).
fn international(token: &Token<'_>) -> bool {
    let mut all = [0u8; 8];
    let mut n = 0;
    for g in 0..token.groups.len() {
        for &d in token.digits(g) {
            if n == all.len() {
                break;
            }
            all[n] = d;
            n += 1;
        }
    }
    let all = &all[..n];
    let rest = if all.starts_with(b"011") {
        &all[3..]
    } else if all.starts_with(b"00") {
        &all[2..]
    } else {
        return false;
    };
    rest.first().is_some_and(|&d| d != b'0') && country(rest).is_some()
}

/// Whether an extension glued with `x` starts at `i` (`x123`): one to six digits, then no word
/// character.
fn extension(text: &[u8], i: usize) -> bool {
    if !matches!(at(text, i), b'x' | b'X') {
        return false;
    }
    let digits = text[i + 1..]
        .iter()
        .take(7)
        .take_while(|b| b.is_ascii_digit())
        .count();
    (1..=6).contains(&digits) && !is_word(at(text, i + 1 + digits))
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
/// country code) that ends at the token's end or before a space. The first group starts with
/// an assigned country code ([`NATIONAL_LENGTHS`]); written as one group, the number must
/// have a length that country uses (`+20240515123045,ok`, a timestamp on a diff line, is not
/// an Egyptian number). Dots join groups only as NANP numbers are written
/// (`+1.415.555.2671`): `+3.14159265358` is a number.
fn e164(token: &Token<'_>) -> Option<usize> {
    let groups = token.groups;
    let first = token.digits(0);
    country(first)?;
    // Country code 1 is NANP: ten more digits, area code and exchange starting with 2–9.
    let nanp = first[0] == b'1';
    let mut digits = 0;
    let mut dotted = false;
    let mut best = None;
    for (j, g) in groups.iter().enumerate() {
        digits += g.len();
        if digits > 15 {
            break;
        }
        dotted |= g.sep == b'.';
        let ends = match groups.get(j + 1) {
            None => !token.right_blocked,
            Some(next) => next.sep == b' ',
        };
        let valid = !nanp || (digits == 11 && nanp_digits_valid(token, j + 1));
        let valid = valid && (j > 0 || national_length(first));
        let nanp_shaped = j == 3 && groups[..4].iter().map(Group::len).eq([1, 3, 3, 4]);
        let valid = valid && (!dotted || (nanp && nanp_shaped));
        let least = if j == 0 { 10 } else { 8 };
        if digits >= least && ends && valid {
            best = Some(j + 1);
        }
    }
    best
}

/// Country codes and the lengths of their national significant number (the digits after the
/// code), shortest and longest, after the ITU's national numbering plans (E.164 assignments,
/// as libphonenumber's metadata lists them). Codes are prefix-free. A code not listed is not
/// assigned (or shared by networks, not people), so no number starts with it: `+501…` must
/// have Belize's seven digits, and `+28…` is no phone at all. NANP (`1`) is checked on its own
/// ([`nanp_digits_valid`]).
#[rustfmt::skip]
const NATIONAL_LENGTHS: &[(&[u8], usize, usize)] = &[
    (b"1", 10, 10), (b"7", 10, 10),
    (b"20", 8, 10), (b"27", 9, 9), (b"30", 10, 10), (b"31", 9, 9), (b"32", 8, 9),
    (b"33", 9, 9), (b"34", 9, 9), (b"36", 8, 9), (b"39", 6, 11), (b"40", 9, 9),
    (b"41", 9, 9), (b"43", 4, 13), (b"44", 9, 10), (b"45", 8, 8), (b"46", 7, 10),
    (b"47", 8, 8), (b"48", 9, 9), (b"49", 6, 13), (b"51", 8, 9), (b"52", 10, 10),
    (b"53", 6, 8), (b"54", 10, 11), (b"55", 10, 11), (b"56", 9, 9), (b"57", 8, 10),
    (b"58", 10, 10), (b"60", 7, 10), (b"61", 9, 9), (b"62", 7, 12), (b"63", 8, 10),
    (b"64", 8, 10), (b"65", 8, 8), (b"66", 8, 9), (b"81", 9, 10), (b"82", 8, 10),
    (b"84", 9, 10), (b"86", 9, 11), (b"90", 10, 10), (b"91", 10, 10), (b"92", 9, 10),
    (b"93", 9, 9), (b"94", 9, 9), (b"95", 7, 10), (b"98", 10, 10),
    // Africa.
    (b"211", 9, 9), (b"212", 9, 9), (b"213", 8, 9), (b"216", 8, 8), (b"218", 8, 9),
    (b"220", 7, 7), (b"221", 9, 9), (b"222", 8, 8), (b"223", 8, 8), (b"224", 8, 9),
    (b"225", 8, 10), (b"226", 8, 8), (b"227", 8, 8), (b"228", 8, 8), (b"229", 8, 10),
    (b"230", 7, 8), (b"231", 7, 9), (b"232", 8, 8), (b"233", 9, 9), (b"234", 8, 10),
    (b"235", 8, 8), (b"236", 8, 8), (b"237", 9, 9), (b"238", 7, 7), (b"239", 7, 7),
    (b"240", 9, 9), (b"241", 7, 8), (b"242", 9, 9), (b"243", 9, 9), (b"244", 9, 9),
    (b"245", 7, 9), (b"246", 7, 7), (b"247", 4, 6), (b"248", 7, 7), (b"249", 9, 9),
    (b"250", 9, 9), (b"251", 9, 9), (b"252", 7, 9), (b"253", 8, 8), (b"254", 9, 10),
    (b"255", 9, 9), (b"256", 9, 9), (b"257", 8, 8), (b"258", 8, 9), (b"260", 9, 9),
    (b"261", 9, 9), (b"262", 9, 9), (b"263", 8, 10), (b"264", 8, 9), (b"265", 7, 9),
    (b"266", 8, 8), (b"267", 7, 8), (b"268", 8, 8), (b"269", 7, 7), (b"290", 4, 5),
    (b"291", 7, 7), (b"297", 7, 7), (b"298", 6, 6), (b"299", 6, 6),
    // Europe.
    (b"350", 8, 8), (b"351", 9, 9), (b"352", 4, 11), (b"353", 7, 9), (b"354", 7, 9),
    (b"355", 8, 9), (b"356", 8, 8), (b"357", 8, 8), (b"358", 5, 12), (b"359", 7, 9),
    (b"370", 8, 8), (b"371", 8, 8), (b"372", 7, 8), (b"373", 8, 8), (b"374", 8, 8),
    (b"375", 9, 10), (b"376", 6, 9), (b"377", 8, 9), (b"378", 6, 10), (b"380", 9, 9),
    (b"381", 7, 10), (b"382", 8, 8), (b"383", 8, 8), (b"385", 8, 9), (b"386", 8, 8),
    (b"387", 8, 9), (b"389", 8, 8), (b"420", 9, 9), (b"421", 9, 9), (b"423", 7, 9),
    // The Americas.
    (b"500", 5, 5), (b"501", 7, 7), (b"502", 8, 8), (b"503", 8, 8), (b"504", 8, 8),
    (b"505", 8, 8), (b"506", 8, 8), (b"507", 7, 8), (b"508", 6, 6), (b"509", 8, 8),
    (b"590", 9, 9), (b"591", 8, 8), (b"592", 7, 7), (b"593", 8, 9), (b"594", 9, 9),
    (b"595", 7, 9), (b"596", 9, 9), (b"597", 6, 7), (b"598", 8, 8), (b"599", 7, 8),
    // Oceania and Asia.
    (b"670", 7, 8), (b"672", 6, 6), (b"673", 7, 7), (b"674", 7, 7), (b"675", 7, 8),
    (b"676", 5, 7), (b"677", 5, 7), (b"678", 5, 7), (b"679", 7, 7), (b"680", 7, 7),
    (b"681", 6, 6), (b"682", 5, 5), (b"683", 4, 7), (b"685", 5, 7), (b"686", 5, 8),
    (b"687", 6, 6), (b"688", 5, 6), (b"689", 6, 8), (b"690", 4, 7), (b"691", 7, 7),
    (b"692", 7, 7), (b"850", 8, 10), (b"852", 8, 8), (b"853", 8, 8), (b"855", 8, 9),
    (b"856", 8, 10), (b"870", 9, 9), (b"880", 8, 10), (b"881", 8, 10), (b"882", 7, 12),
    (b"883", 8, 12), (b"886", 8, 9), (b"960", 7, 7), (b"961", 7, 8), (b"962", 8, 9),
    (b"963", 8, 9), (b"964", 8, 10), (b"965", 8, 8), (b"966", 8, 9), (b"967", 7, 9),
    (b"968", 8, 8), (b"970", 8, 9), (b"971", 8, 9), (b"972", 8, 9), (b"973", 8, 8),
    (b"974", 7, 8), (b"975", 7, 8), (b"976", 8, 8), (b"977", 8, 10), (b"992", 9, 9),
    (b"993", 8, 8), (b"994", 9, 9), (b"995", 9, 9), (b"996", 9, 9), (b"998", 9, 9),
];

/// The country code `digits` (a number's first group) starts with, and its lengths.
fn country(digits: &[u8]) -> Option<(usize, usize, usize)> {
    NATIONAL_LENGTHS
        .iter()
        .find(|(code, _, _)| digits.starts_with(code))
        .map(|(code, min, max)| (code.len(), *min, *max))
}

/// Whether the digits of an ungrouped E.164 number (country code first) have a length its
/// country uses.
fn national_length(digits: &[u8]) -> bool {
    country(digits).is_some_and(|(code, min, max)| (min..=max).contains(&(digits.len() - code)))
}

/// Labels that name a phone number written as one run of digits (`phone: 4155552671`, a
/// `phone` column's `4155552671`; red team, twenty-fourth session): the label right before it
/// or the column's header ([`named`](super::national::named)), read as words in lower case.
const PHONE_LABELS: &[&str] = &[
    "phone",
    "phone number",
    "phone no",
    "telephone",
    "tel",
    "mobile",
    "mobile number",
    "mobile no",
    "cell",
    "cell phone",
    "cellphone",
    "fax",
    "contact number",
    "whatsapp",
    // As other languages write them in ASCII (twenty-fifth session).
    "telefon",
    "telefoon",
    "telefono",
    "telephone number",
    "handy",
    "mobil",
    "mobiel",
    "portable",
    "tlf",
    // Twenty-sixth session's red team.
    "telefonnummer",
    "handynummer",
    "mobilnummer",
    "rufnummer",
    "mob",
    "mobile phone",
    "ph",
    "home",
    "home phone",
    "work phone",
    "office phone",
    "contact",
    "celular",
    "cellulare",
    "numero di telefono",
    "numero de telephone",
    "tel no",
];

/// A NANP number written as one run of ten digits (eleven with the country code `1`) that a
/// phone label names ([`PHONE_LABELS`]): its start. Ten digits alone are as often an id or a
/// timestamp (`1717171717`), so only a label makes them a number.
fn nanp_run(token: &Token<'_>, g: Group) -> Option<usize> {
    let d = &token.text[g.start..g.end];
    let national = match d.len() {
        10 => d,
        11 if d[0] == b'1' => &d[1..],
        _ => return None,
    };
    let valid = national[0] >= b'2' && national[3] >= b'2';
    (valid
        && !g.paren
        && token.isolated(0, 1, false, Continues::Always)
        && super::national::named(token.text, g.start, g.end, PHONE_LABELS))
    .then_some(g.start)
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
/// offset and the end group index. Written with spaces alone, it must also be
/// [`spelled_out`].
fn nanp(token: &Token<'_>, i: usize) -> Option<(usize, usize)> {
    let groups = token.groups;
    let first = groups[i];
    // `(+415) …` is no area code: a `(+` opens a country code.
    if first.paren && at(token.text, first.start - 1) == b'+' {
        return None;
    }
    if token.digits(i) == b"1" && !first.paren && i + 4 <= groups.len() {
        let spaced = groups[i + 1].sep == b' ';
        if let Some(area_spaced) = core(token, i + 1)
            && token.isolated(i, i + 4, spaced && area_spaced, Continues::Always)
            && (!(spaced && area_spaced) || spelled_out(token.text, first.start, groups[i + 3].end))
        {
            return Some((first.start, i + 4));
        }
    }
    if i + 3 <= groups.len()
        && let Some(spaced) = core(token, i)
        && token.isolated(i, i + 3, spaced, Continues::Always)
        && (!spaced || spelled_out(token.text, first.start, groups[i + 2].end))
    {
        return Some((first.start - usize::from(first.paren), i + 3));
    }
    None
}

/// Whether a NANP number written with spaces alone, `text[start..end]` (`415 555 2671`), is
/// one. Three numbers in a row are as often a tensor's shape, a table's row or a `free`
/// output's columns (`[256 512 1024]`, `Mem: 512 768 1024`; accuracy review: four in five
/// random rows of that shape were reported), so only a phone word shortly before it makes
/// it a number (`call`, `phone`, `tel`, `mobile`, `cell`, `fax`, `contact`, `WhatsApp`,
/// `SMS`, and `number` or `text` right before it), and never inside brackets or beside another
/// number on its line.
fn spelled_out(text: &[u8], start: usize, end: usize) -> bool {
    not_in_a_list(text, start, end) && phone_word_before(text, start, true)
}

/// Whether `text[start..end]` stands apart from other numbers and brackets on its line.
fn not_in_a_list(text: &[u8], start: usize, end: usize) -> bool {
    let blank = |b: &&u8| matches!(b, b' ' | b'\t');
    let before = text[..start].iter().rev().take(8).find(|b| !blank(b));
    let after = text[end..].iter().take(8).find(|b| !blank(b));
    !(before.is_some_and(|b| b.is_ascii_digit() || matches!(b, b'[' | b'(' | b'{'))
        || after.is_some_and(|b| b.is_ascii_digit() || matches!(b, b']' | b')' | b'}')))
}

/// Words that name a phone number, in lower case; `true` for those that must stand right
/// before the number (only separators between: `number: 415 555 2671`), as they also name
/// other things (`number of rows 256 512 1024`).
const PHONE_WORDS: &[(&[u8], bool)] = &[
    (b"call", false),
    (b"phone", false),
    (b"tel", false),
    (b"telephone", false),
    (b"telefon", false),
    (b"telefono", false),
    (b"mobile", false),
    (b"mob", false),
    (b"cell", false),
    (b"cellphone", false),
    (b"fax", false),
    (b"contact", false),
    (b"whatsapp", false),
    (b"sms", false),
    (b"ph", false),
    (b"dial", false),
    (b"hotline", false),
    (b"helpline", false),
    (b"landline", false),
    (b"number", true),
    (b"no", true),
    (b"text", true),
];

/// Whether one of [`PHONE_WORDS`] ends within 40 bytes before `start`, as a whole word (or a
/// camel-case or `_` part: `phoneNumber`, `mobile_no`); the words that must stand right
/// before the number count only if `close_ok`.
fn phone_word_before(text: &[u8], start: usize, close_ok: bool) -> bool {
    let from = start.saturating_sub(40);
    let window = &text[from..start];
    let sep = |b: u8| {
        matches!(
            b,
            b' ' | b'\t' | b':' | b'=' | b'"' | b'\'' | b'.' | b'#' | b'-'
        )
    };
    let direct = window.iter().rposition(|&b| !sep(b)).map_or(0, |k| k + 1);
    let mut i = 0;
    while i < window.len() {
        let b = window[i];
        let starts = b.is_ascii_alphabetic()
            && (i == 0 && !at(text, from.wrapping_sub(1)).is_ascii_alphabetic()
                || i > 0
                    && (!window[i - 1].is_ascii_alphabetic()
                        || (window[i - 1].is_ascii_lowercase() && b.is_ascii_uppercase())));
        if starts {
            let found = PHONE_WORDS.iter().any(|(w, close)| {
                let e = i + w.len();
                e <= window.len()
                    && window[i..e].eq_ignore_ascii_case(w)
                    && !window.get(e).is_some_and(u8::is_ascii_lowercase)
                    && (!close || (close_ok && e == direct))
            });
            if found {
                return true;
            }
        }
        i += 1;
    }
    false
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
                    "415-555-2671, 415.555.2671, call 415 555 2671",
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

    /// Found by the rt3 accuracy review: three numbers in a row (a tensor's shape, `free`'s
    /// columns) were read as `415 555 2671`; the spaced form needs a phone word, no brackets
    /// and no number beside it.
    #[test]
    fn spaced_nanp_needs_a_phone_word() {
        table(
            Detector::Phone,
            &[
                (
                    "[256 512 1024] Mem: 512 768 1024 shape=(256 512 1024) seq 300 400 5000",
                    &[],
                ),
                (
                    "git diff stat: 234 567 8901\n[[512 640 1024]\n [256 320 2048]]",
                    &[],
                ),
                ("x = np.array([415 555 2671])", &[]),
                ("415 555 2671 1 415 555 2671", &[]),
                // A phone word makes it a number; not when a number stands beside it or
                // brackets close around it.
                (
                    "Call me at 415 555 2671. Phone: 1 415 555 2671; tel 415 555 2671",
                    &["415 555 2671", "1 415 555 2671", "415 555 2671"],
                ),
                (
                    "mobile_no=415 555 2671, WhatsApp +1 415 555 2671, fax: (415) 555 2671",
                    &["415 555 2671", "+1 415 555 2671", "(415) 555 2671"],
                ),
                (
                    "phone 7 415 555 2671; phone 415 555 2671\t12; call [415 555 2671]",
                    &[],
                ),
                // `number` and `text` only right before it: they name other things too.
                (
                    "number of params 256 512 1024; number: 415 555 2671",
                    &["415 555 2671"],
                ),
                (
                    "hotel 415 555 2671 photo 415 555 2671 cells 415 555 2671",
                    &[],
                ),
                // The written forms need no word.
                (
                    "(415) 555-2671 415-555-2671 415.555.2671 +1 415 555 2671 +1-415-555-2671 +44 20 7946 0958",
                    &[
                        "(415) 555-2671",
                        "415-555-2671",
                        "415.555.2671",
                        "+1 415 555 2671",
                        "+1-415-555-2671",
                        "+44 20 7946 0958",
                    ],
                ),
            ],
        );
    }

    /// rt3 review: a `+` that marks an added diff line or adds to an operand is no country
    /// code, dots are no E.164 separator but in NANP's shape, and every country code has its
    /// lengths.
    #[test]
    fn plus_is_a_country_code_only_where_one_stands() {
        table(
            Detector::Phone,
            &[
                (
                    "@@ -1,3 +1,4 @@\n id,name\n+5012345678901,widget\n+2345678901234,gadget\n+8612345678901\n+441234567890\n+17145648001\n",
                    &[],
                ),
                (
                    "y = x +12345678901; z = f(a) +14155552671; t = n_2 +14155552671",
                    &[],
                ),
                ("pi +3.14159265358 e +2.71828182845", &[]),
                // Unassigned codes, and assigned ones at a length the country does not use.
                ("+2812345678901 +8012345678 +5012345678901 +3521234", &[]),
                // Outside a diff a line may start with a number; a word before `+` is prose.
                (
                    "+8613800138000\ncall +14155552671, phone=+4915112345678, (+1 415 555 2671)",
                    &[
                        "+8613800138000",
                        "+14155552671",
                        "+4915112345678",
                        "+1 415 555 2671",
                    ],
                ),
                (
                    "+5012234567 +3545512345 +37061234567",
                    &["+5012234567", "+3545512345", "+37061234567"],
                ),
                (" +1.415.555.2671 +33.1.23.45.67.89", &["+1.415.555.2671"]),
            ],
        );
    }

    /// rt3 review: formats that were missed.
    #[test]
    fn bracketed_codes_slashes_and_extensions() {
        table(
            Detector::Phone,
            &[
                ("(+44) 20 7946 0958", &["(+44) 20 7946 0958"]),
                ("Tel. (+49) 30 901820", &["(+49) 30 901820"]),
                (
                    "+49 30/1234567, +49 89/12345678",
                    &["+49 30/1234567", "+49 89/12345678"],
                ),
                (
                    "+1-415-555-2671x123 or 415-555-2671X9; (415) 555-2671x12",
                    &["+1-415-555-2671", "415-555-2671", "(415) 555-2671"],
                ),
                // Not an extension: letters, or more than six digits.
                ("415-555-2671xy 415-555-2671x1234567 415-555-2671x", &[]),
                // A slash is no separator without the `+`.
                ("49 30/1234567 415 555/2671", &[]),
            ],
        );
    }
}
