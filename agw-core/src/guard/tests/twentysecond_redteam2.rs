//! The twenty-second session's second red team, against the first round's fixes: key
//! bodies with line breaks escaped twice, in more layouts, URL-safe lines starting with `-`,
//! walks that took the words after a key, a quoted-printable run's part boundary, SSNs after
//! more identifier words. Each test failed before its fix.

use super::*;

use super::twentysecond_redteam::{RSA, all_policy, body_of, leaked, prompt, sent};

/// F1: a key whose line breaks are written `\\n` (JSON text inside a JSON string: kubectl's
/// last-applied-configuration, a tool result that serialises a JSON file) leaks all lines but
/// the first, armor intact or not.
#[test]
fn rt24_f1_double_escaped_line_breaks_leak_key_body() {
    let lines = body_of(RSA);
    let mut bad = vec![];
    for (name, text) in [
        (
            "armored",
            format!(
                "{{\"tls.key\": \"-----BEGIN RSA PRIVATE KEY-----\\\\n{}\\\\n-----END RSA PRIVATE KEY-----\\\\n\"}}",
                lines.join("\\\\n")
            ),
        ),
        (
            "armorless",
            format!("{{\"tls.key\": \"{}\\\\n\"}}", lines.join("\\\\n")),
        ),
    ] {
        let l = leaked(&text, &lines);
        if !l.is_empty() {
            bad.push(format!("{name}: {} of {} lines sent", l.len(), lines.len()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F2: an armorless / re-armored key body is masked on its first line only when its lines
/// carry a margin `pem.rs` reads but `der::glue` does not, or are indented more than
/// MAX_GLUE (32) bytes, or continued by a shell `\`.
#[test]
fn rt24_f2_key_body_layouts_glue_misses() {
    let lines = body_of(RSA);
    let each = |f: &dyn Fn(&str) -> String, sep: &str| {
        lines.iter().map(|l| f(l)).collect::<Vec<_>>().join(sep)
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "indented 36 (nested YAML)",
            format!(
                "tls.key: |\n{}",
                each(&|l| format!("{}{l}", " ".repeat(36)), "\n")
            ),
        ),
        ("markdown table", each(&|l| format!("| {l} |"), "\n")),
        ("<br> joined", lines.join("<br>")),
        ("cat -A", each(&|l| format!("{l}$"), "\n")),
        (
            "shell continuation",
            format!("export KEY=\"{}\"", lines.join("\\\n")),
        ),
        ("xml elements", each(&|l| format!("<line>{l}</line>"), "\n")),
    ];
    let mut bad = vec![];
    for (name, text) in &cases {
        let l = leaked(text, &lines);
        if !l.is_empty() {
            bad.push(format!("{name}: {} of {} lines sent", l.len(), lines.len()));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F3: a URL-safe key body wrapped into lines stops at the first line that starts with `-`
/// (walk takes it for an armor line).
#[test]
fn rt24_f3_urlsafe_line_starting_with_dash_ends_the_body() {
    let one = body_of(RSA).concat().replace('+', "-").replace('/', "_");
    let ls: Vec<&str> = one
        .as_bytes()
        .chunks(40)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    assert!(ls[1].starts_with('-'));
    let l = leaked(&ls.join("\n"), &ls);
    assert!(l.is_empty(), "{} of {} lines sent", l.len(), ls.len());
}

/// F5: a quoted-printable run is read in parts of 64 bytes; a part left with one escape
/// gets the lone-`=XX` rules (`=64` is two decimal digits: a value), so the last letter is
/// not decoded and the phrase passes.
#[test]
fn rt24_f5_qp_part_boundary_drops_lone_byte() {
    let qp = |s: &str| s.bytes().map(|b| format!("={b:02X}")).collect::<String>();
    let text = format!("{}{}", qp(&"x".repeat(54)), qp("credit card"));
    assert!(
        sent(&seed_policy(), &prompt(&text)).is_none(),
        "passed: {text}"
    );
}

/// F7: a key body's walk takes text after the key: the next line's first word after a key
/// cut short, a following word after a 40+ character head, a short line after an OpenSSH body.
#[test]
fn rt24_f7_walk_over_reaches() {
    let lines = body_of(RSA);
    let ossh = include_str!("../../stream/guard/testdata/openssh_ed25519.key");
    let ols: Vec<&str> = ossh.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut bad = vec![];
    for (text, keep) in [
        (
            format!("{}\nkeep this line please", lines[..3].join("\n")),
            "keep this",
        ),
        (
            format!(
                "{}\n\nSomeVeryLongIdentifierName and more",
                lines[..3].join("\n")
            ),
            "SomeVeryLongIdentifierName",
        ),
        (
            "The header MIIEpAIBAAKCAQEAnSyDodNlP3zRwURzbpBUttzW+FCh3HXD starts a key".to_owned(),
            "starts a key",
        ),
        (
            format!("{}\nThanks", ols[..ols.len() - 1].join("\n")),
            "Thanks",
        ),
    ] {
        let out = sent(&all_policy(true), &prompt(&text)).unwrap();
        if !out.contains(keep) {
            bad.push(out);
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F10: SSN: dashed numbers glued to identifier words not on the list are SSNs now (before
/// d5e8d92 they were identifiers); `v2-234-56-7890` was dropped from the negative test.
#[test]
fn rt24_f10_ssn_identifier_words_flagged() {
    let ssn = Policy::builder()
        .rule(Rule::detectors("ssn", [Detector::UsSsn]).mask())
        .build()
        .unwrap();
    let flagged: Vec<&str> = [
        "ref-482-11-3344",
        "bug-482-11-3344",
        "case-482-11-3344",
        "req-482-11-3344",
        "cluster-482-11-3344",
    ]
    .into_iter()
    .filter(|t| !sent(&ssn, &prompt(t)).unwrap().contains("3344"))
    .collect();
    assert!(flagged.is_empty(), "masked as SSNs: {flagged:?}");
}
