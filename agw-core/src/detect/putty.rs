//! PuTTY's private key files (`.ppk`, versions 2 and 3): the Windows form of an SSH private key,
//! from the `PuTTY-User-Key-File-N:` line through the `Private-MAC:` (or `Private-Hash:`)
//! line after the private lines (twenty-fifth session's red team: a `.ppk` a tool read went
//! upstream unmasked). Found by its own search, not the secrets automaton, whose 64 literals
//! are all taken; one `memmem` pass when the private-key detector is on.

use super::{Detector, Finding};
use memchr::memmem::Finder;
use std::sync::LazyLock;

static HEADER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"PuTTY-User-Key-File-"));
static PRIVATE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Private-Lines:"));

/// How far after the header the private lines may start (a 16384-bit RSA key's public part).
const WINDOW: usize = 16 << 10;
/// Most private lines read (a 16384-bit RSA key has about 40 of 64 characters).
const MAX_LINES: usize = 256;

/// Appends each PuTTY private key file in `text` to `out`.
pub(super) fn find(text: &[u8], out: &mut Vec<Finding>) {
    let mut from = 0;
    while let Some(p) = HEADER.find(&text[from..]) {
        let s = from + p;
        match end(text, s) {
            Some(e) => {
                out.push(Finding {
                    detector: Detector::PemPrivateKey,
                    range: s..e,
                });
                from = e;
            }
            None => from = s + 1,
        }
    }
}

/// The end of the key file whose header is at `s`: its private lines and the MAC line after
/// them (or the last private line, where the text ends before a MAC).
fn end(text: &[u8], s: usize) -> Option<usize> {
    let window = &text[s..text.len().min(s + WINDOW)];
    let p = PRIVATE.find(window)? + s + b"Private-Lines:".len();
    let digits = text[p..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .fold(0usize, |n, d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
    if digits == 0 {
        return None;
    }
    // The private lines, then perhaps the MAC.
    let mut e = line_end(text, p);
    for _ in 0..digits.min(MAX_LINES) {
        if e >= text.len() {
            break;
        }
        e = line_end(text, e + 1);
    }
    if e < text.len() {
        let next = line_end(text, e + 1);
        let line = &text[e + 1..next];
        if memchr::memmem::find(line, b"Private-MAC:").is_some()
            || memchr::memmem::find(line, b"Private-Hash:").is_some()
        {
            e = next;
        }
    }
    Some(e)
}

/// Where the line at `i` ends (its `\n`, or the text's end).
fn line_end(text: &[u8], i: usize) -> usize {
    let i = i.min(text.len());
    memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |k| i + k)
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::check;

    const PPK: &str = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20240101\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIGOgAMZV/NGvxOcfRQU6p3kL1nPrYI9fWa0dCiiVU+fh\n\nPrivate-Lines: 1\nAAAAIacCpXJDGMijLQR28e61PBAzIb0d7aI3bg02vl5EeDmH\nPrivate-MAC: 06cc0643a3223e16cc6aa11dde7eeba9f38fbea34538d9e8821fae3171623ccb";

    #[test]
    fn putty_key_files_are_private_keys() {
        check(
            Detector::PemPrivateKey,
            &format!("id.ppk:\n{PPK}\nafter"),
            &[PPK],
        );
        // Read with line numbers (`cat -n`), version 2, two private lines, cut before its MAC.
        let v2 = "     1\tPuTTY-User-Key-File-2: ssh-rsa\n     2\tPrivate-Lines: 2\n     3\tAAAAgQC1\n     4\tAAAAQQD2";
        check(Detector::PemPrivateKey, v2, &[&v2[7..]]);
        // A header named in prose, no key after it.
        check(
            Detector::PemPrivateKey,
            "PuTTY-User-Key-File-3 is the header of a .ppk file",
            &[],
        );
    }
}
