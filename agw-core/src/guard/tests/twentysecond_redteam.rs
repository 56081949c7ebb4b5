//! The twenty-second session's red team, against that session's own fixes (F2–F7; F1, the
//! quadratic escape runs, is in `twentysecond_session.rs`): key bodies in other layouts,
//! alphabets and kinds, wrapped base64 in other layouts, SSNs in file names, explicit EC
//! parameters. Each test failed before the fix it names.

use super::*;

pub(super) const RSA: &str = include_str!("../../stream/guard/testdata/rsa.pem");

pub(super) fn all_policy(mask: bool) -> Policy {
    detectors_policy(Detector::ALL, mask)
}

/// One rule of `detectors`, masking or rejecting.
pub(super) fn detectors_policy(
    detectors: impl IntoIterator<Item = Detector>,
    mask: bool,
) -> Policy {
    let rule = Rule::detectors("keys", detectors);
    Policy::builder()
        .rule(if mask {
            rule.mask()
        } else {
            rule.reject("no keys")
        })
        .build()
        .unwrap()
}

/// A user's final prompt holding `text`.
pub(super) fn prompt(text: &str) -> String {
    let text = serde_json::Value::from(text);
    format!(r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":{text}}}]}}"#)
}

pub(super) fn body_of(pem: &str) -> Vec<&str> {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// What reaches the provider when `body` is inspected under `policy` (None: refused).
pub(super) fn sent(policy: &Policy, body: &str) -> Option<String> {
    let v = policy
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    match v.decision() {
        Decision::Allow => Some(body.to_owned()),
        Decision::Rewrite(out) => Some(String::from_utf8_lossy(out).into_owned()),
        Decision::Reject(_) => None,
    }
}

/// The lines of `lines` that reach the provider when `text` is the prompt under a mask rule
/// of every detector.
pub(super) fn leaked<'a>(text: &str, lines: &[&'a str]) -> Vec<&'a str> {
    let Some(out) = sent(&all_policy(true), &prompt(text)) else {
        return vec![];
    };
    lines.iter().copied().filter(|l| out.contains(l)).collect()
}

/// F2: an armorless (or re-armored) key body is masked only on its first line when its lines
/// carry trailing blanks, are joined by spaces, separated by blank lines, or quoted.
#[test]
fn rt23_f2_key_body_layouts_leak_all_but_the_first_line() {
    let lines = body_of(RSA);
    let cases: Vec<(&str, String)> = vec![
        (
            "trailing space, lower-case armor",
            format!(
                "-----begin rsa private key-----\n{}\n-----end rsa private key-----",
                lines
                    .iter()
                    .map(|l| format!("{l} "))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
        (
            "trailing space, no armor",
            lines
                .iter()
                .map(|l| format!("{l} "))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            "joined by spaces, lower-case armor",
            format!(
                "-----begin rsa private key----- {} -----end rsa private key-----",
                lines.join(" ")
            ),
        ),
        ("joined by spaces, no armor", lines.join(" ")),
        ("blank line between lines, no armor", lines.join("\n\n")),
        (
            "quoted string concatenation, no armor",
            lines
                .iter()
                .map(|l| format!("    \"{l}\\n\" +"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ];
    let mut bad = vec![];
    for (name, text) in &cases {
        let l = leaked(text, &lines);
        if !l.is_empty() {
            bad.push(format!(
                "{name}: {}/{} key lines sent",
                l.len(),
                lines.len()
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F3: private keys of these kinds are not found at all once their armor is changed or gone.
#[test]
fn rt23_f3_key_kinds_not_found_without_armor() {
    let kinds: [(&str, &str); 6] = [
        (
            "RSA-512 PKCS#1",
            "MIIBOgIBAAJBAKKT7Z5vzaSv3va7QyS8ASM5bt1T3PvtLLuXlO4TyRwvATOiTXxc\n3QLsrmaZcs1EXiX7mvzwQ/K8CeJ6odXSb7kCAwEAAQJAAeKlRskVIWvIsiPJy4tC\nmB36Yyat0V4WvrYrS/d+xYzhQpaa9uP9+L/GWAnix8fMTzgk69PTIad/sHZpE8CU\n4QIhANOFtCsZdne4qT9k++FBtil8l8jBxPKJJGhZ4Yn9rKxbAiEAxMOIjwTviWtb\n/ePlYHqEvmybBBfi6Sq6NcHT29Tk4HsCIFRKP5W9O9xRlgBROZ52FSVLJSE3NkiA\nJiX/S0U19Y1pAiAPKKVHp3Cw3JWMvNb6FNZPOVzD9vcjUYhhBdrFj+RGKwIhAMng\nXO4Z3caxVDG+mU7/8XX/ZmuJfDsZgyK+mRxYtOW8",
        ),
        (
            "DSA-1024 PKCS#8",
            "MIIBWwIBADCCATQGByqGSM44BAEwggEnAoGBAOLGKUzCJ8BIvsp1UUljw+DPXQSD\nA6//LVIxOXDRad9uFCItr99cYxKw7IDsLm+3NvE64N9SN06rEzQcGZACgG4LkkbN\nYhjkWai39R4s85CsWjJ9MKBQJRNwaqsyGymPUIJVuaXxarNoIfI/Z8PVjEB4Xnj0\nf7qJpeWWBB7SAru/Ah0AiDisimWT9se8MZ/Qr2rQRLJTar1UegK4NmnHFQKBgQCZ\ng5rWuTAYVlrtUcQS7k+a70IP5kjqNdDeBU6rbuZmO8xRTyTblo/IgimVsPvEG8fz\nEe22rNnopKbGUta+TT9j5YB/l9/wo02z6fVs3rA1BVV84IthiYAZlX1rMagq40h7\nEY+Xjyll9GAXWN8ku9hggLgbOinBqvvpoXOy5H7HXQQeAhxRg3EVnhlyVDtZz2mB\nJihHCkU8jOOcQvGWZQaR",
        ),
        (
            "X448 PKCS#8",
            "MEYCAQAwBQYDK2VvBDoEOGxz3+dB1SIWofmTvP4QHk9GsKX9yQN/cA9vrVY9Q1aS\nsK2Es0vmIALxvgN11Do8cu1jeYgjUQzc",
        ),
        (
            "P-256 SEC1 without public key (openssl ec -no_public)",
            "MDECAQEEIC+mDi7y7QhVvG1HqkKXxtNL7cC7JZRBDGIXyEGemVswoAoGCCqGSM49\nAwEH",
        ),
        (
            "P-256 PKCS#8 without public key (Java SunEC)",
            "MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCAvpg4u8u0IVbxtR6pCl8bTS+3AuyWUQQxiF8hBnplbMA==",
        ),
        (
            "P-256 PKCS#8 with explicit parameters",
            "MIIBeQIBADCCAQMGByqGSM49AgEwgfcCAQEwLAYHKoZIzj0BAQIhAP////8AAAAB\nAAAAAAAAAAAAAAAA////////////////MFsEIP////8AAAABAAAAAAAAAAAAAAAA\n///////////////8BCBaxjXYqjqT57PrvVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMV\nAMSdNgiG5wSTamZ44ROdJreBn36QBEEEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg\n9KE5RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9QIhAP////8A\nAAAA//////////+85vqtpxeehPO5ysL8YyVRAgEBBG0wawIBAQQgpn3cXLpBkQg3\npT8EzrI6gEsX1ghcAcVVT1cIsYNknoChRANCAAQDtNA/Vrel1pUWCN3mp6gTNHSF\n+xR1JGJbZzQqAu76tUtz2bcLvhLz9qxV+qFrgpuRtrKnbjsGughNNfquibqA",
        ),
    ];
    let mut bad = vec![];
    for (name, body) in kinds {
        let lines: Vec<&str> = body.lines().collect();
        for text in [
            body.to_owned(),
            format!("-----begin private key-----\n{body}\n-----end private key-----"),
        ] {
            if sent(&all_policy(false), &prompt(&text)).is_some() {
                bad.push(format!(
                    "{name}: allowed under a reject rule ({} lines)",
                    lines.len()
                ));
            }
            let l = leaked(&text, &lines);
            if !l.is_empty() {
                bad.push(format!(
                    "{name}: {}/{} lines sent under a mask rule",
                    l.len(),
                    lines.len()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F4: a key body in URL-safe base64 is masked only up to its first `-` or `_`.
#[test]
fn rt23_f4_urlsafe_key_body_masked_only_to_first_dash() {
    let one = body_of(RSA).concat().replace('+', "-").replace('/', "_");
    let out = sent(
        &all_policy(true),
        &prompt(&format!("PRIVATE_KEY_B64URL={one}")),
    )
    .unwrap();
    let tail = &one[one.len() - 200..];
    assert!(!out.contains(tail), "key tail sent: {out}");
}

/// The paddings (before "credit card") for which `base64 note` wrapped at `width`, each line
/// written by `line` and joined by `br`, passes the seed policy's "credit card" reject rule.
fn phrase_passes(width: usize, line: impl Fn(&str) -> String, br: &str, tail: &str) -> Vec<usize> {
    let mut passed = vec![];
    for pad in 0..60 {
        let note = format!(
            "{}the corporate credit card on file expires next month, renew it before then please.{tail}",
            "x".repeat(pad)
        );
        let enc = b64(note.as_bytes());
        let wrapped = enc
            .as_bytes()
            .chunks(width)
            .map(|c| line(std::str::from_utf8(c).unwrap()))
            .collect::<Vec<_>>()
            .join(br);
        let text = format!("$ base64 note.txt\n{wrapped}\n");
        if sent(&seed_policy(), &prompt(&text)).is_some() {
            passed.push(pad);
        }
    }
    passed
}

/// F5: a phrase across a line break of wrapped base64 is read only for the exact layout
/// `base64` writes (width a multiple of 4, no indentation, nothing after a line, whole
/// decoded text printable).
#[test]
fn rt23_f5_wrapped_base64_variants_pass() {
    let plain = |l: &str| l.to_owned();
    assert!(
        phrase_passes(76, plain, "\n", "").is_empty(),
        "sanity: base64 -w76 is read"
    );
    let mut bad = vec![];
    for (name, passed) in [
        (
            "indented 2 spaces (YAML block)",
            phrase_passes(76, |l| format!("  {l}"), "\n", ""),
        ),
        (
            "trailing space on each line",
            phrase_passes(76, |l| format!("{l} "), "\n", ""),
        ),
        (
            "blank line between lines",
            phrase_passes(76, plain, "\n\n", ""),
        ),
        (
            "wrapped at 70 (Python textwrap)",
            phrase_passes(70, plain, "\n", ""),
        ),
        ("wrapped at 78", phrase_passes(78, plain, "\n", "")),
        (
            "text ends in an ANSI reset ESC[0m",
            phrase_passes(76, plain, "\n", "\u{1b}[0m"),
        ),
        ("text ends in a NUL", phrase_passes(76, plain, "\n", "\0")),
    ] {
        if !passed.is_empty() {
            bad.push(format!("{name}: passed for paddings {passed:?}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// F6: SSNs after a label joined by `_`, and SSNs in file names, are no longer found.
#[test]
fn rt23_f6_ssn_after_underscore_label_or_in_file_name() {
    let policy = Policy::builder()
        .rule(Rule::detectors("ssn", [Detector::UsSsn]).mask())
        .build()
        .unwrap();
    let mut bad = vec![];
    for text in [
        "ssn_078-05-1120",
        "SSN_078-05-1120",
        "Attached: W2_2023_John_Smith_078-05-1120.pdf",
        "scans/jsmith-078-05-1120.png",
    ] {
        let out = sent(&policy, &prompt(text)).unwrap();
        if out.contains("078-05-1120") {
            bad.push(text);
        }
    }
    assert!(bad.is_empty(), "SSN sent unmasked: {bad:?}");
}

/// F7: explicit EC domain parameters (public) are taken for a private key, even under their
/// own correct `BEGIN EC PARAMETERS` armor.
#[test]
fn rt23_f7_explicit_ec_parameters_are_no_private_key() {
    let pem = "-----BEGIN EC PARAMETERS-----\nMIH3AgEBMCwGByqGSM49AQECIQD/////AAAAAQAAAAAAAAAAAAAAAP//////////\n/////zBbBCD/////AAAAAQAAAAAAAAAAAAAAAP///////////////AQgWsY12Ko6\nk+ez671VdpiGvGUdBrDMU7D2O848PifSYEsDFQDEnTYIhucEk2pmeOETnSa3gZ9+\nkARBBGsX0fLhLEJH+Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT+NC4v4af5uO5+tK\nfA+eFivOM1drMV7Oy7ZAaDe/UfUCIQD/////AAAAAP//////////vOb6racXnoTz\nucrC/GMlUQIBAQ==\n-----END EC PARAMETERS-----\n";
    let policy = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::PemPrivateKey]).reject("no keys"))
        .build()
        .unwrap();
    assert!(
        sent(&policy, &prompt(pem)).is_some(),
        "public EC parameters refused as a private key"
    );
}
