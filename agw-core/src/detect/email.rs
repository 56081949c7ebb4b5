//! E-mail addresses, anchored on `@` (found with `memchr`) and expanded both ways.

use super::{Detector, Finding, at};

pub(super) fn find(text: &[u8], out: &mut Vec<Finding>) {
    // Expansion never crosses an earlier match or another `@`, so each byte is read at most
    // twice: linear time even for `a@a@a@…`.
    let mut floor = 0;
    for a in memchr::memchr_iter(b'@', text) {
        if a < floor {
            continue;
        }
        let Some(start) = local_start(text, floor, a) else {
            continue;
        };
        let Some(end) = domain_end(text, a + 1) else {
            continue;
        };
        out.push(Finding {
            detector: Detector::Email,
            range: start..end,
        });
        floor = end;
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

/// The start of the local part ending at the `@` at `a`: `[A-Za-z0-9._%+'-]+` (an apostrophe
/// as in `o'hara`, found by the second red-team review: the name before it went out), no
/// leading or trailing dot and no leading apostrophe (a quote around the address).
fn local_start(text: &[u8], floor: usize, a: usize) -> Option<usize> {
    let mut s = a;
    while s > floor && is_local(text[s - 1]) {
        s -= 1;
    }
    // The letter of a `\n` escape left in the text is not part of the address.
    if s > 0 && s < a && text[s - 1] == b'\\' && matches!(text[s], b'n' | b'r' | b't') {
        s += 1;
    }
    while s < a && matches!(text[s], b'.' | b'\'') {
        s += 1;
    }
    (s < a && text[a - 1] != b'.').then_some(s)
}

/// The end of the domain starting at `d`: dot-separated labels of `[A-Za-z0-9-]` not starting
/// or ending with `-`, at least two, the last one alphabetic and two or more long. Trailing
/// labels that do not qualify (`a@b.com.123`) are left out.
fn domain_end(text: &[u8], d: usize) -> Option<usize> {
    let mut i = d;
    let mut labels = 0;
    let mut end = None;
    loop {
        let start = i;
        while at(text, i).is_ascii_alphanumeric() || at(text, i) == b'-' {
            i += 1;
        }
        let mut stop = i;
        while stop > start && text[stop - 1] == b'-' {
            stop -= 1;
        }
        if stop == start || text[start] == b'-' {
            break;
        }
        let label = &text[start..stop];
        labels += 1;
        if labels == 1 && is_density_suffix(label) {
            return None;
        }
        if labels >= 2 && label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic) {
            end = Some(stop);
        }
        if stop < i || at(text, i) != b'.' {
            break;
        }
        i += 1;
    }
    end
}

/// `2x` in `icon@2x.png`: an asset name, not a host.
fn is_density_suffix(label: &[u8]) -> bool {
    matches!(label.split_last(), Some((b'x', digits)) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn email() {
        table(
            Detector::Email,
            &[
                ("mail alice@example.com.", &["alice@example.com"]),
                (
                    "<bob.smith+tag@mail.example.co.uk>",
                    &["bob.smith+tag@mail.example.co.uk"],
                ),
                (
                    r#"{"email":"j_doe-99%x@sub-domain.example.org"}"#,
                    &["j_doe-99%x@sub-domain.example.org"],
                ),
                ("a@b.io,c@d.dev", &["a@b.io", "c@d.dev"]),
                ("..lead@example.com", &["lead@example.com"]),
                ("x\\nalice@example.com", &["alice@example.com"]),
                (
                    "to alice.o'hara+tag@sub.example.co.uk or 'bob@example.com'",
                    &["alice.o'hara+tag@sub.example.co.uk", "bob@example.com"],
                ),
                ("git@github.com:org/repo.git", &["git@github.com"]),
                (
                    "a@b.com.123 and a@example.com-",
                    &["a@b.com", "a@example.com"],
                ),
                // Near misses.
                ("@media @alice user@ @example.com", &[]),
                ("user@localhost user@example.c user@example.123", &[]),
                ("trail.@example.com icon@2x.png pkg@1.2.3", &[]),
                ("a@-bad.com a@.com", &[]),
            ],
        );
    }
}
