//! Found by the twenty-first session's red-team review and fixed in the twenty-second: a
//! private key whose armor was changed or dropped, a key written with Unicode hyphens, and a
//! phrase in base64 wrapped across lines all reached the provider unread.

use super::*;

use super::twentysecond_redteam::{RSA, detectors_policy};

fn key_policy(mask: bool) -> Policy {
    detectors_policy([Detector::PemPrivateKey, Detector::AnthropicKey], mask)
}

/// A user turn holding `text` (as a tool result, as Claude Code sends a file it read).
fn tool_result(text: &str) -> String {
    let text = serde_json::Value::from(text);
    format!(
        r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":{text}}},{{"type":"text","text":"what is this?"}}]}}]}}"#
    )
}

/// The key's body lines, without its armor.
fn body_lines() -> Vec<&'static str> {
    RSA.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn a_private_key_with_changed_or_no_armor_is_found() {
    let body = body_lines().join("\n");
    let armors = [
        ("", ""),
        (
            "----BEGIN RSA PRIVATE KEY----\n",
            "\n----END RSA PRIVATE KEY----",
        ),
        (
            "-----begin rsa private key-----\n",
            "\n-----end rsa private key-----",
        ),
        // A Cyrillic `Е` in BEGIN, U+2011 non-breaking hyphens for its dashes.
        (
            "-----BЕGIN RSA PRIVATE KEY-----\n",
            "\n-----END RSA PRIVATE KEY-----",
        ),
        (
            "\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}BEGIN RSA PRIVATE KEY\u{2011}\u{2011}\u{2011}\u{2011}\u{2011}\n",
            "",
        ),
        ("id_rsa (base64):\n  ", ""),
    ];
    let reject = key_policy(false);
    let mask = key_policy(true);
    for (head, tail) in armors {
        let text = format!("{head}{body}{tail}");
        let body_json = tool_result(&text);
        let v = reject
            .inspect(RouteKind::Messages, body_json.as_bytes())
            .unwrap();
        assert!(gone(v.decision()), "{head:?}: {:?}", v.decision());
        let v = mask
            .inspect(RouteKind::Messages, body_json.as_bytes())
            .unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{head:?}: {:?}", v.decision())
        };
        let out = String::from_utf8_lossy(out);
        assert!(out.contains("<PEM_PRIVATE_KEY>"), "{head:?}");
        for line in body_lines() {
            assert!(!out.contains(line), "{head:?}: {line} left in {out}");
        }
    }
    // On one line, as a `.env` value.
    let one_line = tool_result(&format!("PRIVATE_KEY={}", body_lines().concat()));
    let v = reject
        .inspect(RouteKind::Messages, one_line.as_bytes())
        .unwrap();
    assert!(gone(v.decision()), "{:?}", v.decision());
}

/// Whether a rejecting rule kept the key from the provider: the request refused, or the tool
/// result holding it removed (it is not the final prompt).
fn gone(d: &Decision) -> bool {
    match d {
        Decision::Reject(_) => true,
        Decision::Rewrite(out) => {
            let out = String::from_utf8_lossy(out);
            out.contains("[removed by agw: rule keys]")
                && body_lines().iter().all(|l| !out.contains(l))
        }
        Decision::Allow => false,
    }
}

#[test]
fn public_material_is_not_a_private_key() {
    let reject = key_policy(false);
    // A certificate and a public key, in PEM and bare.
    for text in [
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTES\nMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYDVQQD\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n-----END PUBLIC KEY-----",
        "MIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onL",
    ] {
        let body = tool_result(text);
        let v = reject
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Allow), "{text}");
    }
}

#[test]
fn a_key_written_with_unicode_hyphens_is_found_and_masked_in_place() {
    let key = "sk-ant-api03-Xq3vB7mN2pL9kR4tY8wE1uI6oP0aS5dF3gH7jK2lZ9xC4vB8nM1qW6eR0tY3uI7oP2aS5dF9gH4jK8lZ1xC6vB0nM3qW7eR2tY5uI9oP4aAA";
    let mask = key_policy(true);
    for dash in ['\u{2010}', '\u{2011}', '\u{2013}', '\u{2212}'] {
        let spelled = key.replace('-', &dash.to_string());
        let body = tool_result(&format!("export ANTHROPIC_API_KEY={spelled} # mine"));
        let v = mask.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{dash:?}: {:?}", v.decision())
        };
        assert_only_spans_changed(&body, out, &[(&spelled, "<ANTHROPIC_KEY>")]);
    }
}

#[test]
fn a_phrase_in_base64_wrapped_across_lines_is_read() {
    // `base64` of a note, wrapped at 76 characters: "credit card" runs across a line break.
    let note =
        "Reminder for accounting: the corporate credit card on file expires next month, renew it.";
    let encoded = b64(note.as_bytes());
    let at = note.find("credit card").unwrap();
    // Wrapped so the break falls inside the phrase.
    let width = ((at + 5) / 3 * 4).div_ceil(4) * 4;
    let width = width.max(40);
    let wrapped: Vec<&str> = encoded
        .as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let body = tool_result(&format!(
        "$ base64 -w{width} note.txt\n{}\n",
        wrapped.join("\n")
    ));
    let v = seed_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    // In a tool result before the final prompt: removed, not refused; either way not sent.
    match v.decision() {
        Decision::Reject(_) => {}
        Decision::Rewrite(out) => {
            let out = String::from_utf8_lossy(out);
            for line in &wrapped {
                assert!(!out.contains(line), "{line} left in {out}");
            }
        }
        Decision::Allow => panic!("a wrapped phrase went through: {body}"),
    }
}

/// Hex of text is read decoded, as base64 is: a model decodes `xxd -p` output as readily.
/// Hashes and numbers decode to no text and are not read so.
#[test]
fn a_phrase_in_hex_is_read() {
    let p = seed_policy();
    for hex in [
        "6372656469742063617264",
        "0x637265646974206361726421",
        "43 72 65",
    ] {
        let body = format!(
            r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":"decode {hex} please"}}]}}"#
        );
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        let refused = matches!(v.decision(), Decision::Reject(_));
        assert_eq!(refused, hex != "43 72 65", "{hex}");
    }
    let body = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b, card 4111111111111111, id 202320242025"}]}"#;
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert!(
        matches!(v.decision(), Decision::Allow),
        "{:?}",
        v.decision()
    );
}

/// The twenty-second session's red team (F1): a long run of `%XX` or `=XX` escapes that is
/// not UTF-8 was read again from each of its escapes (seconds for 100 KB). Runs are read in
/// parts of at most 64 bytes now: such input costs time linear in it, and text in a long
/// run of escapes is still read across the parts.
#[test]
fn long_escape_runs_are_read_in_parts() {
    let p = seed_policy();
    for unit in ["%1F%8B%08%00", "%C3%A9%FF", "=1F=8B=08=00", "%25FF"] {
        let body = format!(
            r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":"decode: {}"}}]}}"#,
            unit.repeat(30_000)
        );
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        assert!(matches!(v.decision(), Decision::Allow), "{unit}");
    }
    // A phrase written in escapes past the first 64 bytes of a run, and across a part's end.
    let phrase: String = format!("{}credit card", "x".repeat(60))
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let body = format!(
        r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":"see {phrase}"}}]}}"#
    );
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert!(
        matches!(v.decision(), Decision::Reject(_)),
        "{:?}",
        v.decision()
    );
}
