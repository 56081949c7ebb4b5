//! PEM private key blocks, from the `-----BEGIN` line through the `-----END` line, or through the
//! last base64 line of a truncated block.

use super::at;

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";
const MAX_LABEL: usize = 40;

/// The end of the private key block whose `-----BEGIN ` is at `s`, if its label names a private
/// key (`PRIVATE KEY`, `RSA PRIVATE KEY`, `OPENSSH PRIVATE KEY`, `PGP PRIVATE KEY BLOCK`, …) and
/// it has a body.
pub(super) fn end(text: &[u8], s: usize) -> Option<usize> {
    let m = Margin::of(text, s);
    let label_start = s + BEGIN.len();
    let label_end = label(text, label_start);
    let name = &text[label_start..label_end];
    let private = name.ends_with(b"PRIVATE KEY") || name.ends_with(b"PRIVATE KEY BLOCK");
    if !private || !text[label_end..].starts_with(DASHES) {
        return None;
    }
    let mut i = label_end + DASHES.len();
    let mut body_end = None;
    loop {
        i = skip_space(text, i, m);
        if text[i..].starts_with(END) {
            return body_end.map(|body_end| end_line(text, i).unwrap_or(body_end));
        }
        let w = word_end(text, i);
        if let Some(e) = header_line_end(text, i, w) {
            body_end = Some(e);
            i = e;
            continue;
        }
        if w == i || !body_word(&text[i..w], text, w, m) {
            return body_end;
        }
        body_end = Some(w);
        i = w;
    }
}

/// An armor header's line (`Version: GnuPG v2`, `Comment: https://…` in a PGP block;
/// `Proc-Type: 4,ENCRYPTED` in an encrypted PEM key) starting with the word `i..w`: where the
/// line ends, the header's value being part of the block whatever its words.
fn header_line_end(text: &[u8], i: usize, w: usize) -> Option<usize> {
    let word = &text[i..w];
    let (name, colon) = word.split_at(word.len().checked_sub(1)?);
    let header = colon == b":"
        && name.first().is_some_and(u8::is_ascii_alphabetic)
        && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !header {
        return None;
    }
    let rest = &text[w..];
    let newline = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
    let escaped = memchr::memmem::find(rest, b"\\n").unwrap_or(rest.len());
    Some(w + newline.min(escaped).min(256))
}

/// Whether the key block whose `-----BEGIN ` is at `s` may still grow when text is appended
/// to `text`: [`end`] has not read up to a byte that decides where it ends (an end line, a
/// word no key body has), or its label may still turn out to name a private key. A stream
/// holds such a block back until it is complete, so it is masked as it is in one piece.
pub(super) fn open(text: &[u8], s: usize) -> bool {
    let m = Margin::of(text, s);
    let label_start = s + BEGIN.len();
    let label_end = label(text, label_start);
    if label_end == text.len() {
        return true; // the label, cut
    }
    let name = &text[label_start..label_end];
    let private = name.ends_with(b"PRIVATE KEY") || name.ends_with(b"PRIVATE KEY BLOCK");
    if !private {
        return false;
    }
    let rest = &text[label_end..];
    if !rest.starts_with(DASHES) {
        return DASHES.starts_with(rest);
    }
    let mut i = label_end + DASHES.len();
    loop {
        i = skip_space(text, i, m);
        let rest = &text[i.min(text.len())..];
        if rest.is_empty() || END.starts_with(rest) || cut_break(rest) {
            return true;
        }
        if rest.starts_with(END) {
            let label_end = label(text, i + END.len());
            return label_end == text.len() || DASHES.starts_with(&text[label_end..]);
        }
        let w = word_end(text, i);
        if w == text.len() {
            return true; // a word, cut
        }
        if let Some(e) = header_line_end(text, i, w) {
            if e == text.len() {
                return true;
            }
            i = e;
            continue;
        }
        if w == i {
            return false;
        }
        let word = &text[i..w];
        let base64 = word
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\'));
        if base64 && word.len() < 16 && !word.contains(&b'=') {
            // A short last line counts when the end line follows it: known once what follows
            // the blank after it is.
            let after = &text[skip_space(text, w, m)..];
            if after.is_empty() || END.starts_with(after) || cut_break(after) {
                return true;
            }
        }
        if !body_word(word, text, w, m) {
            return false;
        }
        i = w;
    }
}

/// Whether `rest`, which ends the text, may be the start of something [`skip_space`] skips
/// (a `\n` escape, a `<br>`), cut.
pub(super) fn cut_break(rest: &[u8]) -> bool {
    rest == b"\\"
        || rest == b"$"
        || [&b"<br>"[..], b"<br/>", b"<br />"]
            .iter()
            .any(|br| br.starts_with(rest))
}

/// End of a label (`[A-Z0-9 ]`, at most [`MAX_LABEL`] bytes) starting at `i`.
fn label(text: &[u8], i: usize) -> usize {
    let rest = &text[i..text.len().min(i + MAX_LABEL)];
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b' '))
        .unwrap_or(rest.len());
    i + len
}

/// The end of `-----END <label>-----` at `i`.
fn end_line(text: &[u8], i: usize) -> Option<usize> {
    let label_end = label(text, i + END.len());
    text[label_end..]
        .starts_with(DASHES)
        .then_some(label_end + DASHES.len())
}

/// What a tool writes at the start of every line of a file it prints, read from the line of
/// the `-----BEGIN`: grep's and ripgrep's file name (`secrets/id_rsa:1:`, `secrets/id_rsa:`,
/// `secrets/id_rsa-2-` on a context line), or a line number followed by spaces (`less -N`).
/// The inner lines of the key may carry the same margin (their own line numbers); a margin
/// only a later line has is not skipped, so `12 MIIE…` after a bare header ends the block.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Margin<'a> {
    /// The file name grep writes before `:` or `-` (and the line number), or empty.
    file: &'a [u8],
    /// Whether a line number may be followed by spaces, as on the header's line.
    spaced: bool,
    /// What the header's line has before the `-----BEGIN` (a log's timestamp and source, a
    /// viewer's `   1 │ `, a table's `| `), at most [`MAX_COLUMN`] bytes: an inner line that
    /// starts with a prefix of its shape ([`same_shape`]) has its key body at the same column.
    column: &'a [u8],
}

/// The longest prefix of the header's line read as a column margin.
const MAX_COLUMN: usize = 128;

/// Whether `line` (as long as `column`) has the shape of the header's `column`: a digit where
/// it has one (a line number, a timestamp), a digit or a space where it has a space (a
/// right-aligned number that grew a digit), the same byte elsewhere (another file's name,
/// another source, is another margin).
fn same_shape(line: &[u8], column: &[u8]) -> bool {
    line.len() == column.len()
        && line.iter().zip(column).all(|(&a, &b)| match b {
            b'0'..=b'9' => a.is_ascii_digit(),
            b' ' => a == b' ' || a.is_ascii_digit(),
            _ => a == b,
        })
}

/// The longest margin read before a header.
const MAX_MARGIN: usize = 256;

impl<'a> Margin<'a> {
    /// The margin of the line holding the `-----BEGIN ` at `s`.
    pub(super) fn of(text: &'a [u8], s: usize) -> Self {
        let from = s.saturating_sub(MAX_MARGIN);
        let before = &text[from..s];
        let start = before
            .iter()
            .enumerate()
            .rev()
            .find(|&(k, &b)| b == b'\n' || (b == b'n' && k > 0 && before[k - 1] == b'\\'))
            .map(|(k, _)| from + k + 1);
        let Some(start) = start.or((from == 0).then_some(0)) else {
            return Margin::default();
        };
        let line = &text[start..s];
        let number = &line[line.iter().take_while(|&&b| b == b' ').count()..];
        let digits = number.iter().take_while(|b| b.is_ascii_digit()).count();
        let spaced = (1..=9).contains(&digits)
            && digits < number.len()
            && number[digits..].iter().all(|&b| b == b' ');
        let mut file: &[u8] = &[];
        if let Some((&b':' | &b'-', rest)) = line.split_last() {
            // `path:12:` or `path-12-` (a context line): the number is not the file's.
            let n = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
            let name = match rest.len().checked_sub(n + 1) {
                Some(k) if (1..=9).contains(&n) && matches!(rest[k], b':' | b'-') => &rest[..k],
                _ => rest,
            };
            let plain = |b: &u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'`');
            if !name.iter().all(u8::is_ascii_digit) && name.iter().all(plain) {
                file = name;
            }
        }
        let column = if line.len() <= MAX_COLUMN && !line.iter().all(|&b| b == b' ' || b == b'\t') {
            line
        } else {
            &[]
        };
        Margin {
            file,
            spaced,
            column,
        }
    }
}

/// Skips whitespace, including `\n`, `\r` and `\t` escapes left in the text, and the margin
/// that starts a line of `cat -n`, `grep -n` or Claude Code `Read` output (`     2→`, `  2\t`,
/// `id_rsa:2:`).
pub(super) fn skip_space(text: &[u8], mut i: usize, m: Margin<'_>) -> usize {
    let blank = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'`');
    loop {
        match at(text, i) {
            b'\n' => i = skip_line_number(text, i + 1, m),
            // `\n` escaped once or more (JSON in a JSON string: kubectl's
            // last-applied-configuration, a tool result holding a JSON file: twenty-second
            // session's red team), and a shell line's `\` before its line break.
            b'\\' => {
                let slashes = text[i..].iter().take_while(|&&b| b == b'\\').count();
                match at(text, i + slashes) {
                    b'n' => i = skip_line_number(text, i + slashes + 1, m),
                    b'r' | b't' | b'"' => i += slashes + 1,
                    b'\n' | b'\r' if slashes == 1 => i += 1,
                    _ => return i,
                }
            }
            b' ' | b'\t' | b'\r' => i += 1,
            // `cat -A` ends every line with `$`.
            b'$' if line_end(text, i + 1) => i += 1,
            // A key written into source code or quoted text, a line at a time: the quotes and
            // concatenation around each line (`"…\n" +`, `'…',`), a quoting `> `, a list's
            // `- ` or a comment `# `, `// ` before it, `<br>` between lines. A `+` or `/` that a
            // base64 line starts with is followed by no blank, nor is an end line's `-`.
            b'"' | b'\'' | b'`' | b',' | b';' => i += 1,
            b'+' | b'>' | b'#' | b'-' if blank(at(text, i + 1)) => i += 1,
            // A table's cell borders (`| MIIE… |`): base64 has no `|`.
            b'|' if blank(at(text, i + 1)) || line_end(text, i + 1) => i += 1,
            b'/' if at(text, i + 1) == b'/' && blank(at(text, i + 2)) => i += 2,
            // A short tag between lines (`<br>`, `<br />`, `</line><line>`).
            b'<' => {
                let name = text[i + 1..]
                    .iter()
                    .take(12)
                    .take_while(|&&b| b.is_ascii_alphabetic() || matches!(b, b'/' | b' '))
                    .count();
                if name == 0 || at(text, i + 1 + name) != b'>' {
                    return i;
                }
                i += name + 2;
            }
            _ => return i,
        }
    }
}

/// Whether a line ends at `i`: a line break, its escape, or the end of the text.
fn line_end(text: &[u8], i: usize) -> bool {
    matches!(at(text, i), 0 | b'\n' | b'\r')
        || (at(text, i) == b'\\' && matches!(at(text, i + 1), b'n' | b'r'))
}

/// The position after the margin at line start `i`: the header line's file name (`id_rsa:`,
/// `id_rsa-`, with or without a line number), or a line number (spaces, digits, then `→` or a
/// tab as `cat -n` and Claude Code `Read` write it, `:` or `-` as `grep -n` does, spaces if
/// the header's line has them); `i` when there is none. Base64 has none of these separators,
/// so a body line is never taken for one.
pub(super) fn skip_line_number(text: &[u8], i: usize, m: Margin<'_>) -> usize {
    let rest = &text[i.min(text.len())..];
    if !m.file.is_empty() && rest.starts_with(m.file) {
        let j = i + m.file.len();
        if matches!(at(text, j), b':' | b'-') {
            let d = j
                + 1
                + text[j + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
            let numbered = (1..=9).contains(&(d - j - 1)) && matches!(at(text, d), b':' | b'-');
            return if numbered { d + 1 } else { j + 1 };
        }
    }
    let mut j = i;
    while at(text, j) == b' ' {
        j += 1;
    }
    let digits = j;
    while at(text, j).is_ascii_digit() {
        j += 1;
    }
    let numbered = j > digits && j - digits <= 9;
    if !m.column.is_empty()
        && text
            .get(i..i + m.column.len())
            .is_some_and(|line| same_shape(line, m.column))
    {
        // The header line's own margin, again (`   2 │ `, `Nov 30 12:00:01 host app[7]: `,
        // a timestamp that a line number's rules would cut at its first `-`).
        i + m.column.len()
    } else if numbered && text[j..].starts_with("→".as_bytes()) {
        j + "→".len()
    } else if numbered && matches!(at(text, j), b'\t' | b':' | b'-') {
        j + 1
    } else if numbered && text[j..].starts_with(b"\\t") {
        j + 2
    } else if numbered && m.spaced && at(text, j) == b' ' {
        j + text[j..].iter().take_while(|&&b| b == b' ').count()
    } else {
        i
    }
}

/// End of the word at `i`: up to whitespace, a quote, `<`, an escape, a run of five dashes or
/// the end.
fn word_end(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' | b'\r' | b'\n' | b'"' | b'\'' | b'`' | b'<' => break,
            b'\\' if matches!(at(text, i + 1), b'n' | b'r' | b't') => break,
            b'-' if text[i..].starts_with(DASHES) => break,
            b'$' if line_end(text, i + 1) => break,
            _ => i += 1,
        }
    }
    i
}

/// Whether `word` (ending at `w`) belongs to a key body: a base64 line (16+ characters, padded
/// with `=`, or the last line before `-----END`), or a header word like `Proc-Type:`,
/// `4,ENCRYPTED` or `AES-128-CBC,2AF2…`.
fn body_word(word: &[u8], text: &[u8], w: usize, m: Margin<'_>) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\\');
    if word.iter().all(base64) {
        word.len() >= 16 || word.contains(&b'=') || text[skip_space(text, w, m)..].starts_with(END)
    } else {
        word.iter().any(|b| matches!(b, b':' | b','))
            && word
                .iter()
                .all(|b| base64(b) || matches!(b, b':' | b',' | b'-'))
    }
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::check;

    #[test]
    fn pem_private_key() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\nMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\nNMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n";
        let rsa = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
        let pkcs8 = format!(
            "-----BEGIN PRIVATE KEY-----\r\n{}-----END PRIVATE KEY-----",
            body.replace('\n', "\r\n")
        );
        let escaped = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\\n{}-----END OPENSSH PRIVATE KEY-----",
            body.replace('\n', "\\n")
        );
        let encrypted = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,2AF25325A9B286F4CBD8FCD4B40B8EA3\n\n{body}-----END RSA PRIVATE KEY-----"
        );
        // A PGP block's armor headers: free text up to the end of their line.
        let pgp = format!(
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\nComment: GPGTools - https://gpgtools.org\n\n{body}-----END PGP PRIVATE KEY BLOCK-----"
        );
        let truncated = format!("-----BEGIN EC PRIVATE KEY-----\n{body}Zm9v==");
        // Claude Code `Read` output and `cat -n`: every line carries its number.
        let numbered = |sep: &str, nl: &str| {
            rsa.lines()
                .enumerate()
                .map(|(n, l)| format!("{:>6}{sep}{l}", n + 1))
                .collect::<Vec<_>>()
                .join(nl)
        };
        let read_tool = numbered("→", "\n");
        let cat_n = numbered("\t", "\n");
        let escaped_read = numbered("→", "\\n");
        let grep_n = numbered(":", "\n");
        // The key's lines, each written as `line` writes it, joined by `sep`.
        let each = |line: &dyn Fn(&str) -> String, sep: &str| {
            rsa.lines().map(line).collect::<Vec<_>>().join(sep)
        };
        let js = format!(
            "const k = {};\n",
            each(&|l| format!("\"{l}\\n\""), " +\n  ")
        );
        let py = format!("k = ({})", each(&|l| format!("'{l}\\n'"), "\n     "));
        let quoted = each(&|l| format!("> {l}"), "\n");
        let br = each(&str::to_owned, "<br>");
        let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("key:\n{rsa}\nmore"), vec![&rsa]),
        (format!("{pkcs8}\r\n"), vec![&pkcs8]),
        (format!(r#"{{"content":"{escaped}\n"}}"#), vec![&escaped]),
        (encrypted.clone(), vec![&encrypted]),
        (format!("key:\n{pgp}\nok"), vec![&pgp]),
        (format!("{truncated}\n\nThe key above is cut."), vec![&truncated]),
        (format!("{rsa} {rsa}"), vec![&rsa, &rsa]),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----".into(), vec![]),
        ("-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE-----".into(), vec![]),
        ("Keys start with -----BEGIN PRIVATE KEY----- and end with -----END PRIVATE KEY-----.".into(), vec![]),
        ("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----".into(), vec![]),
        (read_tool.clone(), vec![&read_tool[6 + "→".len()..]]),
        (format!("{cat_n}\n"), vec![&cat_n[7..]]),
        (grep_n.clone(), vec![&grep_n[7..]]),
        (format!("{escaped_read}\\n"), vec![&escaped_read[6 + "→".len()..]]),
        // The second red-team review: a key written into source code or quoted a line at a
        // time.
        (js.clone(), vec![&js[11..js.len() - 5]]),
        (py.clone(), vec![&py[6..py.len() - 4]]),
        (quoted.clone(), vec![&quoted[2..]]),
        (br.clone(), vec![&br[..]]),
        // A number that is not a line prefix ends the body.
        ("-----BEGIN PRIVATE KEY-----\n12 MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----".into(), vec![]),
    ];
        for (text, expect) in &cases {
            check(Detector::PemPrivateKey, text, expect);
        }
    }

    /// Search tools and pagers write a margin before every line: grep's and ripgrep's file
    /// name and line number, `less -N`'s number and spaces, a markdown list's `- `, `cat -A`'s
    /// trailing `$` (found by the seventh review).
    #[test]
    fn pem_through_tool_margins() {
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEADMTZ4xtGkditXqci3lKHj6wttt+/LJrDOtJuPnWj9pb0FO8Y\ntNSH6YVmfhSxYFR5FlSjhfUrA/Dc9MdKOSxPhZv/G6oJ0UMYBeaPDlzRcYsHzVwV\nnNmXwDDm8yo0tp6fzCkIiTCYbkRA3UrgQyFpXwY6baUTArFpXsEU08qFYymlOUJc\n-----END RSA PRIVATE KEY-----";
        // Each line `n` (from 1) written as `margin(n)` and the line, joined by `nl`.
        let with = |margin: &dyn Fn(usize) -> String, nl: &str| {
            rsa.lines()
                .enumerate()
                .map(|(n, l)| format!("{}{l}", margin(n + 1)))
                .collect::<Vec<_>>()
                .join(nl)
        };
        let after = |text: &str, margin: &str| text[margin.len()..].to_owned();
        let grep_rn = with(&|n| format!("secrets/id_rsa:{n}:"), "\n");
        let grep_r = with(&|_| "secrets/id_rsa:".to_owned(), "\n");
        let escaped = with(&|n| format!("secrets/id_rsa:{n}:"), "\\n");
        // `grep -rn -A4 BEGIN`: the header matched, the rest are context lines.
        let context = with(
            &|n| {
                format!(
                    "my-keys/id_rsa{}{n}{}",
                    if n == 1 { ':' } else { '-' },
                    if n == 1 { ':' } else { '-' }
                )
            },
            "\n",
        );
        let grep_c = with(&|n| format!("{n}-"), "\n");
        let grep_n = with(&|n| format!("{n}:"), "\n");
        let less = with(&|n| format!("{n:>7} "), "\n");
        let list = with(&|_| "- ".to_owned(), "\n");
        let cat_a = rsa
            .lines()
            .map(|l| format!("{l}$"))
            .collect::<Vec<_>>()
            .join("\n");
        // Thirteenth review: the header line's own margin on every line, whatever it is — a
        // viewer's (`bat`), a log's (journald, `kubectl logs --prefix`, `docker logs -t`), a
        // table's cells.
        let bat = with(&|n| format!("{n:>4} │ "), "\n");
        let bat_10 = with(&|n| format!("{:>4} │ ", n + 7), "\n");
        let journal = with(&|n| format!("Nov 30 12:00:0{n} web-1 app[812]: "), "\n");
        let kubectl = with(&|_| "[pod/api-7f9c/app] ".to_owned(), "\n");
        let docker = with(&|n| format!("2026-11-30T12:00:0{n}.123456789Z "), "\n");
        let table = rsa
            .lines()
            .map(|l| format!("| {l} |"))
            .collect::<Vec<_>>()
            .join("\n");
        let cases: Vec<(String, Vec<String>)> = vec![
            (bat.clone(), vec![after(&bat, "   1 │ ")]),
            (bat_10.clone(), vec![after(&bat_10, "   8 │ ")]),
            (journal.clone(), vec![after(&journal, "Nov 30 12:00:01 web-1 app[812]: ")]),
            (kubectl.clone(), vec![after(&kubectl, "[pod/api-7f9c/app] ")]),
            (docker.clone(), vec![after(&docker, "2026-11-30T12:00:01.123456789Z ")]),
            (table.clone(), vec![table[2..table.len() - 2].to_owned()]),
            // A margin of another shape ends the body.
            (
                "[a] -----BEGIN PRIVATE KEY-----\n(bb) MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----".into(),
                vec![],
            ),
            (grep_rn.clone(), vec![after(&grep_rn, "secrets/id_rsa:1:")]),
            (format!("$ grep -rn KEY .\n{grep_r}\n"), vec![after(&grep_r, "secrets/id_rsa:")]),
            (escaped.clone(), vec![after(&escaped, "secrets/id_rsa:1:")]),
            (context.clone(), vec![after(&context, "my-keys/id_rsa:1:")]),
            (grep_c.clone(), vec![after(&grep_c, "1-")]),
            (grep_n.clone(), vec![after(&grep_n, "1:")]),
            (less.clone(), vec![after(&less, "      1 ")]),
            (list.clone(), vec![after(&list, "- ")]),
            (cat_a.clone(), vec![cat_a[..cat_a.len() - 1].to_owned()]),
            // Another file's lines, a number and spaces the header's line has not: the body
            // ends.
            (
                "a.pem:1:-----BEGIN PRIVATE KEY-----\nb.pem:2:MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n".into(),
                vec![],
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n   12 MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----".into(),
                vec![],
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n...\n- MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw".into(),
                vec![],
            ),
        ];
        for (text, expect) in &cases {
            let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
            check(Detector::PemPrivateKey, text, &expect);
        }
    }
}
