//! National id numbers: US social security numbers and Canadian social insurance numbers.

use super::numeric::{Continues, Token, luhn};
use super::{Detector, Finding};

/// `AAA-GG-SSSS`; area not 000, 666 or 9xx, group not 00, serial not 0000. Written with
/// spaces or dots (`AAA GG SSSS`, `AAA.GG.SSSS`), or as nine contiguous digits, only right
/// after a label (`SSN: 123 45 6789`, `social security number 123456789`) or in a table's
/// column whose header names it: alone they are any id or a row of numbers (`[827 70 7182]`,
/// a numpy array; accuracy review: nine rows in ten of that shape were reported).
pub(super) fn find_ssn(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let valid = |area: &[u8], group: &[u8], serial: &[u8]| {
        area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
    };
    if let [g] = groups {
        let d = token.digits(0);
        if g.len() == 9
            && token.isolated(0, 1, false, Continues::Always)
            && valid(&d[..3], &d[3..5], &d[5..])
            && named(token.text, g.start, g.end, SSN_LABELS)
        {
            out.push(Finding {
                detector: Detector::UsSsn,
                range: g.start..g.end,
            });
        }
        return;
    }
    // `_` is a word character, but a dashed SSN after one is a file name's or a label's
    // (`W2_John_Smith_078-05-1120.pdf`, `ssn_078-05-1120`: twenty-second session's red team).
    let first = groups[0].start;
    let underscored = Token {
        left_blocked: token.left_blocked
            && !(first >= 1
                && token.text[first - 1] == b'_'
                && groups.len() >= 2
                && groups[1].sep == b'-'),
        ..*token
    };
    let token = &underscored;
    let mut i = 0;
    while i + 3 <= groups.len() {
        let (start, end) = (groups[i].start, groups[i + 2].end);
        let ok = three_groups(token, i, [3, 2, 4])
            && valid(token.digits(i), token.digits(i + 1), token.digits(i + 2))
            && ((groups[i + 1].sep == b'-' && !glued_left(token.text, start))
                || named(token.text, start, end, SSN_LABELS));
        if ok {
            out.push(Finding {
                detector: Detector::UsSsn,
                range: groups[i].start..groups[i + 2].end,
            });
            i += 3;
        } else {
            i += 1;
        }
    }
}

/// Words that name a build, a job, a version, a ticket or another record: a number after one
/// is its identifier.
const IDS: [&[u8]; 47] = [
    // A document, an extension, a serial, a lot, a model, a catalog entry (twenty-fifth
    // session's red team: `doc 536-22-8726` was reported as an SSN).
    b"doc",
    b"document",
    b"ext",
    b"serial",
    b"lot",
    b"model",
    b"catalog",
    b"build",
    b"builds",
    b"job",
    b"run",
    b"pipeline",
    b"ver",
    b"version",
    b"v",
    b"rev",
    b"revision",
    b"release",
    b"rel",
    b"pr",
    b"issue",
    b"ticket",
    b"order",
    b"invoice",
    b"sku",
    b"part",
    b"item",
    b"tag",
    b"node",
    b"pod",
    b"host",
    b"commit",
    b"batch",
    b"task",
    b"step",
    b"ref",
    b"bug",
    b"case",
    b"req",
    b"request",
    b"cluster",
    b"incident",
    b"inc",
    b"change",
    b"chg",
    b"jira",
    b"story",
];

/// Whether the number at `start` follows one of [`IDS`] but `case` (or `pid`), as its own word
/// (`ticket 130-692-544`, `[pid 130-692-544]`, `Order #130-692-544`): an identifier, not a
/// SIN written alone (red team, twenty-fourth session: a tenth of such ids pass Luhn).
fn after_id_word(text: &[u8], start: usize) -> bool {
    let before = &text[..start];
    let seps = before
        .iter()
        .rev()
        .take(4)
        .take_while(|b| matches!(b, b' ' | b'#' | b':' | b'=' | b'-' | b'_' | b'.'))
        .count();
    let mut word = word_before(&before[..before.len() - seps]);
    // `Part no. …`, `Order number …`: the record's word is the one before.
    if [&b"no"[..], b"nr", b"num", b"number"]
        .iter()
        .any(|n| word.eq_ignore_ascii_case(n))
    {
        let rest = &before[..before.len() - seps - word.len()];
        let blanks = rest
            .iter()
            .rev()
            .take(2)
            .take_while(|b| matches!(b, b' ' | b'_' | b'-'))
            .count();
        if blanks > 0 {
            word = word_before(&rest[..rest.len() - blanks]);
        }
    }
    // Not `id` (`tax ID: …`, `employee id …` name a SIN) nor `case` (a file's).
    seps > 0
        && !word.eq_ignore_ascii_case(b"case")
        && (IDS.iter().any(|id| word.eq_ignore_ascii_case(id)) || word.eq_ignore_ascii_case(b"pid"))
}

/// Whether the number at `start` goes on by a hyphen or an underscore from a word that names
/// a build, a job, a version or a ticket (`build-482-11-3344`, `job_123-45-6789`): an
/// identifier's part (twenty-first session's red team: such build ids were reported). Any
/// other word keeps it an SSN: a label (`ssn_078-05-1120`), a name in a file's name
/// (`W2_John_Smith_078-05-1120.pdf`: twenty-second session's red team).
fn glued_left(text: &[u8], start: usize) -> bool {
    if start < 2 || !matches!(text[start - 1], b'-' | b'_') {
        return false;
    }
    let word = word_before(&text[..start - 1]);
    IDS.iter().any(|id| word.eq_ignore_ascii_case(id))
}

/// The ASCII letters that end `text`.
fn word_before(text: &[u8]) -> &[u8] {
    let n = text
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    &text[text.len() - n..]
}

/// Whether the value `text[start..end]` is named by one of `names`: a label right before it
/// ([`labelled`]) or the header of its column in a table ([`column_named`]).
pub(super) fn named(text: &[u8], start: usize, end: usize, names: &[&str]) -> bool {
    labelled(text, start, names)
        || column_named(text, start, end, names)
        || sql_column_named(text, start, names)
        || aligned_column_named(text, start, end, names)
}

/// The most lines above a value searched for its aligned column's header.
const ALIGNED_LINES: usize = 40;

/// Whether the value `text[start..end]` stands in a column of a table aligned with blanks (a
/// printed DataFrame, `column -t`, a fixed-width report) whose header names it with one of
/// `names`: a line above, within [`ALIGNED_LINES`] lines and [`TABLE_WINDOW`] bytes, has a
/// word ending where the value ends (right-aligned numbers) or starting where it starts
/// (left-aligned), read back as a label is (red team, twenty-fourth session: `   name
/// ssn` above `0  Jane  536228726` passed).
fn aligned_column_named(text: &[u8], start: usize, end: usize, names: &[&str]) -> bool {
    let (line_start, row_end) = line_around(text, start, end);
    let blank = |b: u8| matches!(b, b' ' | b'\t');
    // The value is a cell of its own, in a row whose cells are set apart by runs of spaces
    // (prose's single spaces are no table's; tab-separated rows are `column_named`'s): two
    // spaces or the line's ends on each side.
    let left = start == line_start || text[line_start..start].ends_with(b"  ");
    let right = end == row_end || text[end..row_end].starts_with(b"  ");
    if !left || !right || text[line_start..row_end].contains(&b'\t') {
        return false;
    }
    let (from, to) = (start - line_start, end - line_start);
    let floor = start.saturating_sub(TABLE_WINDOW);
    for (s, line) in lines_above(text, line_start, floor).take(ALIGNED_LINES) {
        let word = |i: usize| line.get(i).is_some_and(u8::is_ascii_alphabetic);
        let gap = |i: Option<usize>| i.is_none_or(|i| line.get(i).is_none_or(|&b| blank(b)));
        // Right-aligned: a word ends at the value's end; left-aligned: one starts at its start.
        if (to > 0 && word(to - 1) && gap(Some(to)) && labelled(text, s + to, names))
            || (word(from) && gap(from.checked_sub(1)) && {
                let w = line[from..].iter().take_while(|b| !blank(**b)).count();
                labelled(text, s + from + w, names)
            })
        {
            return true;
        }
    }
    false
}

/// Where the line holding `text[start..end]` starts, and where it ends (before its line
/// break).
fn line_around(text: &[u8], start: usize, end: usize) -> (usize, usize) {
    let line_start = text[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |k| k + 1);
    let line_end = text[end..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(text.len(), |k| end + k);
    (line_start, line_end)
}

/// The lines above the one starting at `line_start`, nearest first, down to `floor`: each
/// with where it starts, its line break left out.
fn lines_above(
    text: &[u8],
    line_start: usize,
    floor: usize,
) -> impl Iterator<Item = (usize, &[u8])> {
    let mut e = line_start;
    std::iter::from_fn(move || {
        if e <= floor + 1 {
            return None;
        }
        let s = text[floor..e - 1]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(floor, |k| floor + k + 1);
        let line = &text[s..e - 1];
        e = s;
        Some((s, line.strip_suffix(b"\r").unwrap_or(line)))
    })
}

/// Whether the value at `start` is in an SQL `INSERT`'s `VALUES` row whose column list names
/// its column with one of `names` (`INSERT INTO people (name, ssn) VALUES ('Jane',
/// '536228726'), ('Bob', …)`; red team, twenty-fourth session): the row's fields counted by
/// their commas outside quotes, the rows before it skipped back to `VALUES`, the column read
/// back from its name's end as a label is. Within [`TABLE_WINDOW`] bytes.
fn sql_column_named(text: &[u8], start: usize, names: &[&str]) -> bool {
    let floor = start.saturating_sub(TABLE_WINDOW);
    let Some(open) = text[floor..start]
        .iter()
        .rposition(|&b| matches!(b, b'(' | b')'))
        .map(|k| floor + k)
        .filter(|&k| text[k] == b'(')
    else {
        return false;
    };
    let Some(field) = fields_before(&text[open + 1..start]) else {
        return false;
    };
    // Back over the rows before this one to `VALUES`.
    let blank = |b: &u8| b.is_ascii_whitespace();
    let mut i = open;
    loop {
        let before = text[floor..i]
            .iter()
            .rposition(|b| !blank(b))
            .map(|k| floor + k);
        match before.map(|k| text[k]) {
            Some(b',') => {
                let k = before.unwrap_or(floor);
                let Some(close) = text[floor..k].iter().rposition(|b| !blank(b)) else {
                    return false;
                };
                if text[floor + close] != b')' {
                    return false;
                }
                let Some(o) = text[floor..floor + close].iter().rposition(|&b| b == b'(') else {
                    return false;
                };
                i = floor + o;
            }
            Some(_) => {
                let k = before.unwrap_or(floor) + 1;
                if k < floor + 6 || !text[k - 6..k].eq_ignore_ascii_case(b"values") {
                    return false;
                }
                i = k - 6;
                break;
            }
            None => return false,
        }
    }
    // The column list before `VALUES`: `(a, b, c)`.
    let Some(close) = text[floor..i]
        .iter()
        .rposition(|b| !blank(b))
        .map(|k| floor + k)
    else {
        return false;
    };
    if text[close] != b')' {
        return false;
    }
    let Some(list) = text[floor..close]
        .iter()
        .rposition(|&b| b == b'(')
        .map(|k| floor + k)
    else {
        return false;
    };
    let mut ends = text[list + 1..close]
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b',')
        .map(|(k, _)| list + 1 + k)
        .chain(std::iter::once(close));
    let Some(end) = ends.nth(field) else {
        return false;
    };
    // A quoted name's closing quote or bracket is a separator to the label's reading.
    let name_end = text[list + 1..end]
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'`' | b']'))
        .map_or(list + 1, |k| list + 2 + k);
    labelled(text, name_end, names)
}

/// How many fields of an SQL row lie before a value: its commas outside quoted strings, when
/// nothing but a row's fields is there (no `)` or `;` outside quotes).
fn fields_before(row: &[u8]) -> Option<usize> {
    let (mut fields, mut quote) = (0, None);
    for &b in row {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b',') => fields += 1,
            (None, b')' | b';' | b'\n') => return None,
            _ => {}
        }
    }
    // The value itself may be quoted: its opening quote is not an open string.
    match quote {
        None => Some(fields),
        Some(_) if row.last().is_some_and(|&b| matches!(b, b'\'' | b'"')) => Some(fields),
        Some(_) => None,
    }
}

/// The most bytes before a value searched for its column's header.
const TABLE_WINDOW: usize = 2048;

/// Whether `text[start..end]` is a whole cell of a CSV, TSV or markdown table row (cells
/// split by `,`, `;`, `\t` or `|`) whose column has one of `names` as its header, a line
/// above it within [`TABLE_WINDOW`] bytes (`name,ssn,dob` then `Bob,536228726,…`;
/// `| Name | SSN |`, `|---|---|`, `| Bob | 536228726 |`).
fn column_named(text: &[u8], start: usize, end: usize, names: &[&str]) -> bool {
    let (line_start, line_end) = line_around(text, start, end);
    let is_cell_sep = |b: u8| matches!(b, b',' | b';' | b'\t' | b'|');
    let blank = |b: &u8| matches!(b, b' ' | b'"' | b'\'');
    // The value fills its cell.
    let left = text[line_start..start].iter().rev().find(|b| !blank(b));
    let right = text[end..line_end].iter().find(|b| !blank(b));
    let Some(&sep) = left.or(right).filter(|&&b| is_cell_sep(b)) else {
        return false;
    };
    if left.is_some_and(|&b| b != sep) || right.is_some_and(|&b| b != sep) {
        return false;
    }
    let column = text[line_start..start]
        .iter()
        .filter(|&&b| b == sep)
        .count();
    let floor = start.saturating_sub(TABLE_WINDOW);
    // Lines above, nearest first, while they are rows of the same table.
    for (s, line) in lines_above(text, line_start, floor) {
        // A rule between the header and the rows: psql's `----+----`, the MySQL client's
        // `+----+----+` (twenty-sixth session's red team: a value under either passed).
        if line.iter().any(|&b| b == b'-' || b == b'=')
            && line
                .iter()
                .all(|&b| matches!(b, b'-' | b'+' | b'=' | b':' | b'|' | b' ' | b'\t' | b'\r'))
        {
            continue;
        }
        if !line.contains(&sep) {
            return false;
        }
        // The end of the header's cell in that column, as an offset into the text: the
        // label is read back from there, as a label before a value is.
        let mut cells = line
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == sep)
            .map(|(k, _)| k);
        let cell_end = cells.nth(column).unwrap_or(line.len());
        let cell_start = line[..cell_end]
            .iter()
            .rposition(|&b| b == sep)
            .map_or(0, |k| k + 1);
        if line[cell_start..cell_end]
            .iter()
            .any(u8::is_ascii_alphabetic)
            && labelled(text, s + cell_end, names)
        {
            return true;
        }
    }
    false
}

/// The labels an SSN may follow (`ss#` besides), in the word form [`labelled`] reads.
const SSN_LABELS: &[&str] = &[
    "ssn",
    "ssn number",
    "ssn no",
    "social security",
    "social security number",
    "social security no",
    "socialsecuritynumber",
    // `my social is …`, as people call it.
    "social",
    "soc sec no",
    "soc sec number",
    // `Taxpayer ID (SSN/ITIN):`, a form's field for either; a taxpayer id is an SSN for a
    // person (twenty-fifth session's red team: `"tax_id": "536228726"`).
    "itin",
    "tax id",
    "taxpayer id",
    "taxpayer identification number",
    "tin",
];

/// The labels a SIN may follow.
const SIN_LABELS: &[&str] = &[
    "sin",
    "sin number",
    "sin no",
    "social insurance",
    "social insurance number",
    "social insurance no",
    // French: `numéro d'assurance sociale`, `NAS`.
    "assurance sociale",
    "nas",
];

/// Whether one of `names` (or `ss#`, with [`SSN_LABELS`]) ends shortly before `at`, in any
/// case and spelling (`social_security_number`, `socialSecurityNumber`, `S.S.N.`), then at most
/// a few separators (`: `, ` = `, `| `, quotes, a line break, table-cell tags: the key of a
/// JSON object or a table's header cell).
fn labelled(text: &[u8], at: usize, names: &[&str]) -> bool {
    let before = &text[at.saturating_sub(48)..at];
    let is_sep = |b: &u8| {
        matches!(
            b,
            b' ' | b'\t'
                | b'\r'
                | b'\n'
                | b':'
                | b'='
                | b'-'
                | b'"'
                | b'\''
                | b'.'
                | b'|'
                | b'('
                | b')'
                | b'#'
                | b','
                | b';'
                // Markdown's emphasis and code around a label or a value (`**SSN:** …`,
                // `_Mobile:_ …`, `` `…` ``): twenty-fifth session's red team.
                | b'*'
                | b'_'
                | b'`'
        )
    };
    let trim = |to: usize| {
        before[..to]
            .iter()
            .rposition(|b| !is_sep(b))
            .map_or(0, |k| k + 1)
    };
    let mut kept = trim(before.len());
    // An arrow between a label and its value (`SSN → …`, `ssn -> …`, `ssn => …`).
    for arrow in [&b"->"[..], b"=>", "\u{2192}".as_bytes()] {
        if before[..kept].ends_with(arrow) {
            kept = trim(kept - arrow.len());
            break;
        }
    }
    if before.len() - kept > 8 {
        return false;
    }
    // A short remark in brackets after the label (`SSN (full): …`, `SIN (no dashes) …`).
    if before.get(kept) == Some(&b')')
        && let Some(open) = before[kept.saturating_sub(20)..kept]
            .iter()
            .rposition(|&b| b == b'(')
    {
        kept = trim(kept.saturating_sub(20) + open);
    }
    // An HTML input's value names its field before it (`<input name="ssn" value="…">`).
    if kept > 5
        && before[kept - 5..kept].eq_ignore_ascii_case(b"value")
        && is_sep(&before[kept - 6])
    {
        kept = trim(kept - 5);
    }
    // Between an HTML table's cells (`<td>SSN</td><td>123…`) the tags are separators too; a
    // tag named after the label (`<ssn>123…`) is the label.
    for _ in 0..4 {
        if kept == 0 || before[kept - 1] != b'>' {
            break;
        }
        let Some(open) = before[..kept].iter().rposition(|&b| b == b'<') else {
            break;
        };
        let tag = before[open + 1..kept - 1].to_ascii_lowercase();
        let markup = tag.first() == Some(&b'/')
            || matches!(
                &tag[..],
                b"td"
                    | b"th"
                    | b"tr"
                    | b"p"
                    | b"b"
                    | b"i"
                    | b"strong"
                    | b"span"
                    | b"div"
                    | b"li"
                    | b"dt"
                    | b"dd"
                    | b"label"
                    | b"br"
                    | b"code"
            );
        if !markup {
            kept -= 1;
            break;
        }
        kept = before[..open]
            .iter()
            .rposition(|b| !is_sep(b))
            .map_or(0, |k| k + 1);
    }
    let label = &before[..kept];
    // `ss#`: the `#` is the label's own.
    let hash = before[kept..].first() == Some(&b'#');
    // The label's words, lower case, one space between them: `social_security_number`,
    // `socialSecurityNumber` and `Social Security Number` all read `social security number`.
    let mut words = String::with_capacity(label.len() + 4);
    let mut prev = b' ';
    let letters = |from: usize, back: bool| {
        let is = |b: &&u8| b.is_ascii_alphanumeric();
        if back {
            label[..from].iter().rev().take_while(is).count()
        } else {
            label[from..].iter().take_while(is).count()
        }
    };
    for (k, &b) in label.iter().enumerate() {
        // `S.S.N.` reads `ssn`, `Soc. Sec. No.` reads `soc sec no`; a dot between names
        // (`patient.ssn`, `e.ssn`, `user.phone`: a field path) parts them (red team,
        // twenty-sixth session: `patient.ssn = "…"` read `patientssn`).
        if b == b'.' {
            let (back, ahead) = (letters(k, true), letters(k + 1, false));
            if back > 0 && ahead > 0 && back.max(ahead) > 1 && prev != b' ' {
                words.push(' ');
                prev = b' ';
            }
            continue;
        }
        let b = if matches!(b, b'_' | b'-' | b'\t' | b'/') {
            b' '
        } else {
            b
        };
        if prev.is_ascii_lowercase() && b.is_ascii_uppercase() {
            words.push(' ');
        }
        if !(b == b' ' && prev == b' ') {
            words.push(char::from(b.to_ascii_lowercase()));
        }
        prev = b;
    }
    // `… number is 123 45 6789`: the label is what comes before the `is`.
    if words.ends_with(" is") {
        words.truncate(words.len() - 3);
    }
    let named = |name: &str| {
        words.ends_with(name)
            && words[..words.len() - name.len()]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric())
    };
    names.iter().any(|n| named(n)) || (hash && names == SSN_LABELS && named("ss"))
}

/// `ddd-ddd-ddd`; `ddd ddd ddd`, `ddd.ddd.ddd` or nine contiguous digits only right after a
/// label (`SIN:`, `NAS`) or under a column header naming it; Luhn, first digit not 0 or 8.
/// A tenth of all numbers pass Luhn, so three numbers in a row (`[367 814 597]`, window sizes)
/// are no SIN alone; the dashed form is how a SIN is written on forms and is rare in program
/// output (dates, versions and ids are dashed otherwise), so it needs no label, as an SSN's
/// does not.
pub(super) fn find_sin(token: &Token<'_>, out: &mut Vec<Finding>) {
    let groups = token.groups;
    let mut i = 0;
    while i < groups.len() {
        let mut digits = [0u8; 9];
        // Nine contiguous digits only after a SIN label, as for SSNs: a tenth of all
        // nine-digit ids pass Luhn (accuracy review: `order_id=355512575`).
        // `sin(123456789)` is the function's argument, not a label's value.
        let call = groups[i].start > 0 && token.text[groups[i].start - 1] == b'(';
        let len = if groups[i].len() == 9
            && token.isolated(i, i + 1, false, Continues::Always)
            && !call
            && named(token.text, groups[i].start, groups[i].end, SIN_LABELS)
        {
            digits.copy_from_slice(token.digits(i));
            1
        } else if i + 3 <= groups.len()
            && three_groups(token, i, [3, 3, 3])
            && ((groups[i + 1].sep == b'-' && !after_id_word(token.text, groups[i].start))
                || named(token.text, groups[i].start, groups[i + 2].end, SIN_LABELS))
        {
            for k in 0..3 {
                digits[k * 3..k * 3 + 3].copy_from_slice(token.digits(i + k));
            }
            3
        } else {
            0
        };
        // 8 is not used. 0 starts no issued SIN but does start the published sample
        // (`046 454 286`) that forms and test data use: taken after a SIN label only (a
        // zero-padded id is no SIN), and never all zeros.
        let zero_ok = digits[0] != b'0'
            || (digits != [b'0'; 9]
                && len > 0
                && named(
                    token.text,
                    groups[i].start,
                    groups[i + len - 1].end,
                    SIN_LABELS,
                ));
        if len > 0 && digits[0] != b'8' && zero_ok && luhn(&digits) {
            out.push(Finding {
                detector: Detector::CaSin,
                range: groups[i].start..groups[i + len - 1].end,
            });
            i += len;
        } else {
            i += 1;
        }
    }
}

/// Whether groups `i..i + 3` have exactly these widths, no parentheses, one separator (`-`,
/// space or dot) and stand on their own.
fn three_groups(token: &Token<'_>, i: usize, widths: [usize; 3]) -> bool {
    let g = &token.groups[i..i + 3];
    let sep = g[1].sep;
    g.iter().zip(widths).all(|(g, w)| g.len() == w && !g.paren)
        && matches!(sep, b'-' | b' ' | b'.')
        && g[2].sep == sep
        && token.isolated(i, i + 3, sep == b' ', Continues::Always)
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn us_ssn() {
        table(
            Detector::UsSsn,
            &[
                ("SSN 123-45-6789.", &["123-45-6789"]),
                ("SSN 123 45 6789", &["123 45 6789"]),
                (r#"{"ssn":"078-05-1120"}"#, &["078-05-1120"]),
                (
                    "a 123-45-6789, b 234-56-7890",
                    &["123-45-6789", "234-56-7890"],
                ),
                ("year 2024 123-45-6789", &["123-45-6789"]),
                (
                    "en dash 123\u{2013}45\u{2013}6789",
                    &["123\u{2013}45\u{2013}6789"],
                ),
                (
                    "665-01-0001 667-01-0001 899-99-9999",
                    &["665-01-0001", "667-01-0001", "899-99-9999"],
                ),
                // Near misses.
                ("000-12-3456 666-12-3456 900-12-3456 999-12-3456", &[]),
                ("123-00-4567 123-45-0000", &[]),
                ("123456789", &[]),
                ("order_id\tqty\tyear\n101\t25\t2024 123\t45\t6789", &[]),
                // Nine digits after a label.
                (
                    "SSN: 123456789; social security number 078051120, ssn#234567890",
                    &["123456789", "078051120", "234567890"],
                ),
                (
                    "id 123456789, SSN: 666123456, lessn 123456789, SSN: 1234567890",
                    &[],
                ),
                (
                    "SSN number: 123456789; SSN is 234567890; ssn_number=345678901; socialSecurityNumber: 456789012",
                    &["123456789", "234567890", "345678901", "456789012"],
                ),
                (
                    "SS#: 123456789 | SSN | 234567890 | <ssn>345678901</ssn> {\"ssn\": \"456789012\"}",
                    &["123456789", "234567890", "345678901", "456789012"],
                ),
                // In JSON the guard reads a key and its value with line breaks between them.
                ("\nssn\n\n123456789", &["123456789"]),
                (
                    "Social Security Number (SSN): 123456789; S.S.N.: 234567890; Soc. Sec. No.: 345678901",
                    &["123456789", "234567890", "345678901"],
                ),
                (
                    "SSN,456789012 <td>SSN</td><td>567890123</td>",
                    &["456789012", "567890123"],
                ),
                ("123-45 6789 123 45-6789 123.45.6789", &[]),
                ("1123-45-6789 123-45-67890 x123-45-6789 123-45-6789x", &[]),
                ("12 123 45 6789", &[]),
                ("123-45-6789-1", &[]),
                // Parts of identifiers; a label still names one.
                ("build-482-11-3344 job_123-45-6789 Release-234-56-7890", &[]),
                (
                    "ssn_078-05-1120 W2_John_Smith_078-05-1121.pdf jsmith-078-05-1122.png",
                    &["078-05-1120", "078-05-1121", "078-05-1122"],
                ),
                (
                    "ssn-123-45-6789, (123-45-6789)",
                    &["123-45-6789", "123-45-6789"],
                ),
            ],
        );
    }

    /// rt3 accuracy review: three numbers in a row are no SSN without a label; a dash and a
    /// letter go on with the number; `SSN/ITIN`, dots after a label, a column's header.
    #[test]
    fn us_ssn_spaced_or_dotted_needs_a_label() {
        table(
            Detector::UsSsn,
            &[
                (
                    "[827 70 7182] elapsed 123 45 6789 ms x 234 56 7890 y\n[[512 64 1024]\n [256 32 2048]]",
                    &[],
                ),
                (
                    "part no. 536-22-8726-B, ref 536.22.8726, 536-22-8726-x",
                    &[],
                ),
                // The dashed form needs none, the famous samples included.
                (
                    "123-45-6789 078-05-1120 536-22-8726.",
                    &["123-45-6789", "078-05-1120", "536-22-8726"],
                ),
                (
                    "SSN 536 22 8726; ssn: 536.22.8726; Taxpayer ID (SSN/ITIN): 536228726; my social is 536 22 8727",
                    &["536 22 8726", "536.22.8726", "536228726", "536 22 8727"],
                ),
                (
                    "name,ssn,dob\nBob,536228726,1990-01-01\nAmy,\"536 22 8727\",1991-02-02",
                    &["536228726", "536 22 8727"],
                ),
                (
                    "| Name | SSN |\n|---|---|\n| Bob | 536228726 |\n| Amy | 536 22 8727 |",
                    &["536228726", "536 22 8727"],
                ),
                // Another column's header, a cell with more in it, an empty header cell.
                (
                    "name,ssn,id\nBob,x,536228726\nname,ssn,,dob\nBob,1,536228726,2\nssn\tid\n536228726 x\t1",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn ca_sin() {
        table(
            Detector::CaSin,
            &[
                ("SIN 130 692 544", &["130 692 544"]),
                // rt3 review: three numbers in a row pass Luhn one time in ten; spaces or
                // dots need a label, dashes (a SIN as forms write it) do not.
                ("window sizes 130 311 665 px [367 814 597] 130.692.544", &[]),
                (
                    "130-692-544, NAS: 130 692 544, social insurance no. 130.692.544",
                    &["130-692-544", "130 692 544", "130.692.544"],
                ),
                ("name|sin\nBob|130692544", &["130692544"]),
                (
                    "my social insurance number is 130 692 544",
                    &["130 692 544"],
                ),
                ("SIN: 130-692-544.", &["130-692-544"]),
                ("sin=130692544", &["130692544"]),
                ("SIN: 325437259", &["325437259"]),
                ("social insurance number 200780963", &["200780963"]),
                // Nine digits alone are any id.
                ("325437259,200780963 order_id=355512575", &[]),
                ("sin(325437259) y = sin(130692544)", &[]),
                // The published sample SIN, as forms and test data write it.
                ("SIN 046 454 286", &["046 454 286"]),
                (
                    "id: 000000000, 000 000 000, uuid 046454286 row, SIN 000-000-000",
                    &[],
                ),
                // Near misses.
                ("830 692 544", &[]),
                ("table\t130\t692\t544", &[]),
                ("130 692 545", &[]),
                ("130-692 544", &[]),
                ("1306925440 30692544", &[]),
                ("1 130 692 544", &[]),
                ("130-692-544-1", &[]),
            ],
        );
    }
}
