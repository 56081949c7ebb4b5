//! Private keys by their body: base64 of a DER private key (PKCS#1 RSA, DSA, SEC1 EC, PKCS#8
//! plain or encrypted, Ed25519, X25519, Ed448, X448) or of an OpenSSH key (`openssh-key-v1`),
//! whatever armor is around it.
//!
//! A PEM block is found by its `-----BEGIN … PRIVATE KEY-----` line ([`super::pem`]); a key
//! whose armor was changed (other dashes, `‑` for `-`, lower case, a Cyrillic `І` in `BEGIN`)
//! or dropped (`MIIEvQIBADANBgkqhkiG9w0BAQEFAASC…` pasted alone, a `.env` value) kept its
//! body, which a model reads as the key it is (twenty-first session's red team: all of them
//! went upstream). The body is recognised by what its first bytes decode to: a DER
//! `SEQUENCE` whose first element is a private key's version followed by a key's next field,
//! or the `openssh-key-v1` magic. Certificates, public keys, signing requests and explicit EC
//! parameters start otherwise, so they are not found.
//!
//! The finding runs over the whole body: as many base64 characters as the DER length says,
//! across lines, blanks, blank lines, a tool's line numbers or quoted pieces joined in code,
//! in either base64 alphabet (twenty-second session's red team: only the first line was
//! masked when lines had trailing blanks or were joined by spaces, and a URL-safe body only
//! up to its first `-`). An OpenSSH body, which has no length up front, runs over lines as
//! wide as its first and a last shorter or padded one.

use super::pem::{Margin, cut_break, skip_space};
use super::secrets::{base64_prefix, is_b64, run};
use super::{Detector, Finding};
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::OnceLock;

/// How a key's base64 starts: a DER `SEQUENCE` (`0x30`, `M`) whose length octets make the
/// second character (`C` to `H` for one octet of 0x20 to 0x7f: Ed25519, X448, EC keys in SEC1
/// and PKCS#8; `I` for the long forms of every larger key), and OpenSSH's magic.
const STARTS: [&str; 7] = ["MC", "MD", "ME", "MF", "MG", "MH", "MI"];
const OPENSSH: &str = "b3BlbnNzaC1rZXktdjE";

/// The fewest base64 characters a key body is found from: an Ed25519 key in PKCS#8 has 64.
const MIN_BODY: usize = 40;

fn automaton() -> &'static AhoCorasick {
    static AUTOMATON: OnceLock<AhoCorasick> = OnceLock::new();
    AUTOMATON.get_or_init(|| {
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(STARTS.iter().chain([&OPENSSH]))
            .expect("fixed starts compile")
    })
}

/// A character of a key body: base64's, either alphabet (a URL-safe body has `-` and `_`).
fn is_body(b: &u8) -> bool {
    is_b64(b) || matches!(b, b'-' | b'_')
}

/// Whether a base64 run may start at `s`: the text's start or a byte that is no base64
/// (`=` only ends one), or a `\n`, `\r` or `\t` escape of a JSON string's text.
fn starts_run(text: &[u8], s: usize) -> bool {
    match s {
        0 => true,
        1 => !is_b64(&text[0]) || text[0] == b'=',
        _ => {
            let b = text[s - 1];
            !is_b64(&b) || b == b'=' || (matches!(b, b'n' | b'r' | b't') && text[s - 2] == b'\\')
        }
    }
}

/// The length of a DER element's length octets at `d[0]`, and the length they give.
fn length(d: &[u8]) -> Option<(usize, usize)> {
    match *d.first()? {
        n @ 0..=0x7f => Some((1, usize::from(n))),
        0x81 => Some((2, usize::from(*d.get(1)?))),
        0x82 => Some((3, usize::from(*d.get(1)?) << 8 | usize::from(*d.get(2)?))),
        _ => None,
    }
}

/// The bytes of a private key whose DER starts `d` (as many as its outer length says), if `d`
/// starts one: `SEQUENCE { INTEGER version, … }` with a key's next field after the version
/// (PKCS#1 RSA's and DSA's long `INTEGER`, PKCS#8's algorithm `SEQUENCE { OID … }`, SEC1's
/// `OCTET STRING` of a key's length), or an encrypted PKCS#8 key's
/// `SEQUENCE { SEQUENCE { OID pkcs5 or pkcs12 …`. Explicit EC parameters (`SEQUENCE {
/// INTEGER 1, SEQUENCE { OID of a field type …`) are public: not a key.
fn private_der(d: &[u8]) -> Option<usize> {
    if d.first() != Some(&0x30) {
        return None;
    }
    let (n, total) = length(&d[1..])?;
    let rest = &d[1 + n..];
    let at = |i: usize| rest.get(i).copied();
    let key = match (at(0), at(1), at(2)) {
        // Version 0 (PKCS#1, DSA, PKCS#8) or 1 (SEC1, PKCS#8 with a public key).
        (Some(0x02), Some(0x01), Some(version @ (0 | 1))) => match at(3) {
            // RSA's modulus, DSA's p: an INTEGER of 64 bytes or more.
            Some(0x02) => {
                version == 0 && at(4).is_some_and(|l| matches!(l, 0x40..=0x7f | 0x81 | 0x82))
            }
            // PKCS#8's AlgorithmIdentifier: SEQUENCE { OID …, its length in any form.
            Some(0x30) => {
                let (m, _) = length(rest.get(4..)?)?;
                let oid = rest.get(4 + m..)?;
                // 1.2.840.10045.1: X9.62's field types, which only explicit parameters name.
                const FIELD: [u8; 7] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d];
                oid.first() == Some(&0x06)
                    && !(oid.starts_with(&FIELD) && oid.get(7) == Some(&0x01))
            }
            // SEC1's private key: an OCTET STRING of 24 to 66 bytes.
            Some(0x04) => version == 1 && at(4).is_some_and(|l| (24..=66).contains(&l)),
            _ => false,
        },
        // EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE { OID 1.2.840.113549.1.5.* or .12.* …
        (Some(0x30), Some(_), _) => {
            let (m, _) = length(&rest[1..])?;
            let alg = &rest[1 + m..];
            const PKCS: [u8; 8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05];
            alg.first() == Some(&0x06)
                && matches!(alg.get(1), Some(0x09 | 0x0a))
                && alg.get(2..9) == Some(&PKCS[..7])
                && matches!(alg.get(9), Some(0x05 | 0x0c))
        }
        _ => false,
    };
    key.then_some(1 + n + total)
}

/// What separates two parts of a key body after `e`, read as between a PEM block's lines
/// ([`skip_space`]: line breaks and their escapes, escaped once or more, a tool's margin,
/// blanks, quotes and the `+` or `,` that join quoted parts in code, `<br>`, `cat -A`'s `$`,
/// a table's `|`), and where it ends; whether it holds a line break; whether the text ended
/// inside it.
fn glue(text: &[u8], e: usize, margin: Margin<'_>) -> (usize, bool, bool) {
    let g = skip_space(text, e, margin);
    let span = &text[e..g];
    let line_break = span.iter().any(|&b| b == b'\n' || b == b'\r')
        || memchr::memmem::find(span, b"\\n").is_some();
    let rest = &text[g..];
    let cut = rest.is_empty() || cut_break(rest) || rest.iter().all(|&b| b == b'\\');
    (g, line_break, cut)
}

/// Where a key body starting at `s` ends, and whether text appended may still lengthen it.
struct Walk {
    end: usize,
    /// Base64 characters read (padding included).
    count: usize,
    open: bool,
}

/// Reads a key body from `s`: its parts (lines, or pieces joined by blanks or quotes) until
/// it has the `expected` characters its DER length says (a whole key, padded), or, without
/// one (OpenSSH), until a part shorter than the first or padded. Fewer when the text stops
/// being base64 first (a key cut short: what there is). A part after the first is the key's
/// only when it is one a key has: as wide as the first, padded, the one that completes the
/// key, or (OpenSSH) a last line of whole groups of four — not a word or a line of the text
/// after a key cut short (twenty-second session's red team).
fn walk(text: &[u8], s: usize, expected: Option<usize>) -> Walk {
    let margin = Margin::of(text, s);
    let (mut i, mut count, mut width) = (s, 0, None);
    let mut end = s;
    // Whether a line break came before the part being read.
    let mut broke = false;
    let done = |end, count, open| Walk { end, count, open };
    loop {
        let e = run(text, i, is_body);
        let part = e - i;
        // An armor line (`-----END…`), or nothing: no part of the body.
        if part == 0 || (i > s && text[i..].starts_with(b"-----")) {
            return done(end, count, e == text.len() && i > s);
        }
        let padded = text[i..e].contains(&b'=');
        if let Some(&w) = width.as_ref() {
            let completes = expected.is_some_and(|x| count + part >= x);
            let keys = part >= w
                || padded
                || completes
                || (expected.is_none() && broke && part.is_multiple_of(4));
            if expected.is_none() && part > w {
                return done(end, count, false);
            }
            if !keys {
                // Too short to tell while it still grows.
                return done(end, count, e == text.len());
            }
        }
        let width = *width.get_or_insert(part);
        count += part;
        end = e;
        if let Some(x) = expected
            && count >= x
        {
            // Characters after the key's last are not the key's.
            return done(e - (count - x), x, false);
        }
        if e == text.len() {
            // Still growing unless whole: as long as its length says, or padded (OpenSSH).
            return done(end, count, expected.map_or(!padded, |x| count < x));
        }
        if padded || (expected.is_none() && part < width) {
            return done(end, count, false);
        }
        let (g, line_break, cut) = glue(text, e, margin);
        if cut {
            return done(end, count, true);
        }
        // A short part joined by blanks alone is a word after the key, not a part of it.
        if g == e || (!line_break && part < 16) {
            return done(end, count, false);
        }
        broke = line_break;
        i = g;
    }
}

/// The characters a key whose base64 starts `head` has in all, padded, if `head` starts one.
/// OpenSSH's (`openssh-key-v1`) has no length up front: `Some(None)`.
fn expected(head: &[u8], openssh: bool) -> Option<Option<usize>> {
    if openssh {
        return Some(None);
    }
    let head = &head[..head.len() / 4 * 4];
    let bytes = private_der(&base64_prefix(head))?;
    Some(Some(bytes.div_ceil(3) * 4))
}

/// The end of the key body whose base64 starts at `s` (its literal found there), if it is one.
fn body_end(text: &[u8], s: usize, openssh: bool) -> Option<usize> {
    if !starts_run(text, s) {
        return None;
    }
    let head = &text[s..run(text, s, is_body).min(s + 24)];
    if !openssh && head.len() < 16 {
        return None;
    }
    let w = walk(text, s, expected(head, openssh)?);
    (w.count >= MIN_BODY).then_some(w.end)
}

/// Appends each key body in `text` that no finding from `base` on already covers (a PEM
/// block's body is its block's) to `out`.
pub(super) fn find(text: &[u8], base: usize, out: &mut Vec<Finding>) {
    let found = out.len();
    // The findings so far by start, each with the furthest end up to it: whether a start is
    // inside one is a binary search, not a walk over all (twenty-second session's red team:
    // thousands of keys and `MC`s took time quadratic in them). Built at the first start
    // found: most texts have none.
    let mut taken: Option<Vec<(usize, usize)>> = None;
    let mut pos = 0;
    for m in automaton().find_iter(text) {
        let s = m.start();
        if s < pos {
            continue;
        }
        let taken = taken.get_or_insert_with(|| {
            let mut t: Vec<(usize, usize)> = out[base..found]
                .iter()
                .map(|f| (f.range.start, f.range.end))
                .collect();
            t.sort_unstable();
            let mut furthest = 0;
            for r in &mut t {
                furthest = furthest.max(r.1);
                r.1 = furthest;
            }
            t
        });
        let k = taken.partition_point(|t| t.0 <= s);
        if k > 0 && s < taken[k - 1].1 {
            continue;
        }
        let openssh = m.pattern().as_usize() == STARTS.len();
        if let Some(e) = body_end(text, s, openssh) {
            out.push(Finding {
                detector: Detector::PemPrivateKey,
                range: s..e,
            });
            pos = e;
        }
    }
}

/// Where a key body that may still grow when text is appended starts, at or after `from`: its
/// start is at the text's end, still too short to tell, or its body still runs to the end.
pub(super) fn open(text: &[u8], from: usize) -> Option<usize> {
    let from = from.min(text.len());
    // A start cut at the end of the text (`M`, `b3Blbn`).
    let tail = text.len().saturating_sub(OPENSSH.len() - 1).max(from);
    let cut = (tail..text.len()).find(|&s| {
        let rest = &text[s..];
        starts_run(text, s)
            && STARTS
                .iter()
                .chain([&OPENSSH])
                .any(|p| p.len() > rest.len() && p.as_bytes().starts_with(rest))
    });
    let mut pos = from;
    for m in automaton().find_iter(&text[from..]) {
        let s = from + m.start();
        if cut.is_some_and(|c| s >= c) {
            break;
        }
        if s < pos || !starts_run(text, s) {
            continue;
        }
        let openssh = m.pattern().as_usize() == STARTS.len();
        let first = run(text, s, is_body);
        if first == text.len() && first - s < 24 {
            return Some(s); // its head, still too short to tell
        }
        let head = &text[s..first.min(s + 24)];
        if !openssh && head.len() < 16 {
            continue;
        }
        let Some(expected) = expected(head, openssh) else {
            continue;
        };
        let w = walk(text, s, expected);
        if w.open {
            return Some(s);
        }
        pos = w.end;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = include_str!("../stream/guard/testdata/rsa.pem");

    fn body() -> String {
        RSA.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn found(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        find(text.as_bytes(), 0, &mut out);
        out.iter().map(|f| &text[f.range.clone()]).collect()
    }

    #[test]
    fn bodies_of_each_kind_are_found() {
        let b = body();
        assert_eq!(found(&b), [b.as_str()]);
        let json = format!("\"{}\"", b.replace('\n', "\\n"));
        assert_eq!(found(&json), [&json[1..json.len() - 1]]);
        // Armor changed: the body alone is the finding.
        for armor in [
            "----BEGIN RSA PRIVATE KEY----",
            "-----begin rsa private key-----",
            "\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}BEGIN RSA PRIVATE KEY\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}",
            "-----BЕGIN RSA PRIVATE KEY-----",
            "key:",
        ] {
            let text = format!("{armor}\n{b}\n-----END-----");
            assert_eq!(found(&text), [b.as_str()], "{armor}");
        }
        for key in [
            // PKCS#8 RSA, EC P-256 in SEC1 and PKCS#8, Ed25519, OpenSSH, encrypted PKCS#8.
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
            "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oYFUJ5B8LKx/oAoGCCqGSM49AwEHoUQDQgAE",
            "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2",
            "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIr2Cv1XQB9VwCAggA",
        ] {
            assert_eq!(found(key), [key], "{key}");
            let text = format!("PRIVATE_KEY={key} # prod");
            assert_eq!(found(&text), [key], "{text}");
        }
    }

    #[test]
    fn public_material_and_words_are_not_keys() {
        for text in [
            // A certificate, a public key (SPKI and PKCS#1), a signing request.
            "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTES",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO",
            "MIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onL",
            "MIICvDCCAaQCAQAwdzELMAkGA1UEBhMCVVMxDTALBgNVBAgMBFV0YWgxDzANBgNVBAcM",
            "MIIT and MHc are words here, and MC4 is a model name",
            // Too short to be a key, and glued to other base64.
            "MIIEvQIBADANBgkqhkiG9w0B",
            "xMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
        ] {
            assert!(found(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn an_open_body_is_held() {
        let b = body();
        for cut in [1, 2, 10, 30, 64, 65, 200, b.len() - 1] {
            let text = format!("here: {}", &b[..cut]);
            assert_eq!(open(text.as_bytes(), 0), Some(6), "cut {cut}");
        }
        // Whole (as many characters as its DER length says): decided.
        let text = format!("here: {b}");
        assert_eq!(open(text.as_bytes(), 0), None);
        let text = format!("here: {b}\n\nthat was it");
        assert_eq!(open(text.as_bytes(), 0), None);
        let cert = "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTES";
        assert_eq!(open(cert.as_bytes(), 0), None);
    }
}
