//! National id numbers: US social security numbers and Canadian social insurance numbers.

use super::numeric::{Continues, Token, luhn};
use super::{Detector, Finding};

/// `AAA-GG-SSSS` or `AAA GG SSSS`; area not 000, 666 or 9xx, group not 00, serial not 0000.
/// Nine contiguous digits count only right after a label (`SSN: 123456789`, `social
/// security number 123456789`): alone they are any id.
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
            && labelled(token.text, g.start, SSN_LABELS)
        {
            out.push(Finding {
                detector: Detector::UsSsn,
                range: g.start..g.end,
            });
        }
        return;
    }
    let mut i = 0;
    while i + 3 <= groups.len() {
        let ok = three_groups(token, i, [3, 2, 4])
            && valid(token.digits(i), token.digits(i + 1), token.digits(i + 2));
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

/// The labels an SSN may follow (`ss#` besides), in the word form [`labelled`] reads.
const SSN_LABELS: &[&str] = &[
    "ssn",
    "ssn number",
    "ssn no",
    "ssn is",
    "social security",
    "social security number",
    "social security no",
    "social security number is",
    "socialsecuritynumber",
    "soc sec no",
    "soc sec number",
];

/// The labels a SIN may follow.
const SIN_LABELS: &[&str] = &["sin", "sin number", "sin no", "social insurance number"];

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
        )
    };
    let mut kept = before.iter().rposition(|b| !is_sep(b)).map_or(0, |k| k + 1);
    if before.len() - kept > 6 {
        return false;
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
    for &b in label {
        // `S.S.N.` reads `ssn`, `Soc. Sec. No.` reads `soc sec no`.
        if b == b'.' {
            continue;
        }
        let b = if matches!(b, b'_' | b'-' | b'\t') {
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
    let named = |name: &str| {
        words.ends_with(name)
            && words[..words.len() - name.len()]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric())
    };
    names.iter().any(|n| named(n)) || (hash && names == SSN_LABELS && named("ss"))
}

/// `ddd-ddd-ddd`, `ddd ddd ddd`, or nine contiguous digits right after a label (`SIN:`);
/// Luhn, first digit not 0 or 8.
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
            && labelled(token.text, groups[i].start, SIN_LABELS)
        {
            digits.copy_from_slice(token.digits(i));
            1
        } else if i + 3 <= groups.len() && three_groups(token, i, [3, 3, 3]) {
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
            || (digits != [b'0'; 9] && labelled(token.text, groups[i].start, SIN_LABELS));
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

/// Whether groups `i..i + 3` have exactly these widths, no parentheses, one separator (`-` or
/// space) and stand on their own.
fn three_groups(token: &Token<'_>, i: usize, widths: [usize; 3]) -> bool {
    let g = &token.groups[i..i + 3];
    let sep = g[1].sep;
    g.iter().zip(widths).all(|(g, w)| g.len() == w && !g.paren)
        && matches!(sep, b'-' | b' ')
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
                ("123 45 6789", &["123 45 6789"]),
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
            ],
        );
    }

    #[test]
    fn ca_sin() {
        table(
            Detector::CaSin,
            &[
                ("SIN 130 692 544", &["130 692 544"]),
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
