use super::*;

/// Runs one detector over `text` and checks the matches: `expect` lists the matched texts in
/// order; each is located after the previous one, so the exact byte ranges are checked too.
fn check(detector: Detector, text: &str, expect: &[&str]) {
    let mut got = Vec::new();
    DetectorSet::new([detector]).find(text.as_bytes(), &mut got);
    let mut want = Vec::new();
    let mut from = 0;
    for e in expect {
        let start = from
            + text[from..]
                .find(e)
                .unwrap_or_else(|| panic!("{e:?} not in {text:?}"));
        from = start + e.len();
        want.push(Finding {
            detector,
            range: start..from,
        });
    }
    let shown: Vec<_> = got.iter().map(|f| &text[f.range.clone()]).collect();
    assert_eq!(got, want, "{detector} in {text:?} found {shown:?}");
}

fn table(detector: Detector, cases: &[(&str, &[&str])]) {
    for (text, expect) in cases {
        check(detector, text, expect);
    }
}

#[test]
fn credit_card() {
    table(
        Detector::CreditCard,
        &[
            ("4111111111111111", &["4111111111111111"]),
            ("card 4111 1111 1111 1111.", &["4111 1111 1111 1111"]),
            (
                "card: 4111-1111-1111-1111, thanks",
                &["4111-1111-1111-1111"],
            ),
            (r#"{"card":"4111111111111111"}"#, &["4111111111111111"]),
            (
                "amex 378282246310005 and 3782 822463 10005",
                &["378282246310005", "3782 822463 10005"],
            ),
            ("(5555555555554444)", &["5555555555554444"]),
            (
                "mc2 2221000000000009 jcb 3530111333300000",
                &["2221000000000009", "3530111333300000"],
            ),
            (
                "discover 6011000990139424 diners 36227206271667",
                &["6011000990139424", "36227206271667"],
            ),
            (
                "19 digits: 4000000000000000006 / 6200000000000000000",
                &["4000000000000000006", "6200000000000000000"],
            ),
            ("visa13 4000000000006", &["4000000000006"]),
            (
                "4111 1111 1111 1111 12/25 cvv 123",
                &["4111 1111 1111 1111"],
            ),
            ("4111111111111111 123", &["4111111111111111"]),
            ("on 2024-01-15 4111111111111111", &["4111111111111111"]),
            ("卡号4111111111111111。", &["4111111111111111"]),
            (
                "cards 4111111111111111\n5555555555554444",
                &["4111111111111111", "5555555555554444"],
            ),
            ("x\\n4111111111111111", &["4111111111111111"]),
            // Near misses.
            ("order 4111111111111112", &[]),
            ("order 1234567812345678", &[]),
            (
                "wrong issuer 1234000000000006 7000000000000005 5900000000000000",
                &[],
            ),
            ("mc must be 16: 5105000000003", &[]),
            ("twelve 411111111111", &[]),
            ("20 digits 41111111111111111111", &[]),
            ("30 digits 411111111111111100000000000000", &[]),
            ("grouped 20 4111 1111 1111 1111 1111", &[]),
            ("grouped 20 1234 4111 1111 1111 1111", &[]),
            ("dash-joined 4111-1111-1111-1111-1111", &[]),
            ("mixed 4111 1111-1111 1111", &[]),
            ("decimal 0.4111111111111111", &[]),
            ("4111111111111111.5", &[]),
            ("id abc4111111111111111", &[]),
            ("id 4111111111111111abc", &[]),
            ("hex 4111111111111111_x", &[]),
            ("single spaces 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", &[]),
            ("double  4111  1111  1111  1111", &[]),
        ],
    );
}

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
                "665-01-0001 667-01-0001 899-99-9999",
                &["665-01-0001", "667-01-0001", "899-99-9999"],
            ),
            // Near misses.
            ("000-12-3456 666-12-3456 900-12-3456 999-12-3456", &[]),
            ("123-00-4567 123-45-0000", &[]),
            ("123456789", &[]),
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
            ("325437259,200780963", &["325437259", "200780963"]),
            // Near misses.
            ("046 454 286", &[]),
            ("830 692 544", &[]),
            ("130 692 545", &[]),
            ("130-692 544", &[]),
            ("1306925440 30692544", &[]),
            ("1 130 692 544", &[]),
            ("130-692-544-1", &[]),
        ],
    );
}

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
                "415-555-2671, 415.555.2671, 415 555 2671",
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
            ("+1 415 555 2671 1234 5678 9999", &["+1 415 555 2671 1234"]),
            // Near misses.
            ("id 4155552671", &[]),
            ("115-555-2671 415-155-2671 (015) 555-2671", &[]),
            ("415-555-26710 1415-555-2671 415-555-2671x", &[]),
            ("415-555.2671 415.555-2671", &[]),
            ("+1234567, 2+14155552671, x+14155552671", &[]),
            ("+01234567890", &[]),
            ("+1234567890123456", &[]),
            ("12 415 555 2671", &[]),
            ("ip 192.168.100.200 date 2024-05-15", &[]),
        ],
    );
}

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

#[test]
fn iban() {
    table(
        Detector::Iban,
        &[
            (
                "IBAN GB82 WEST 1234 5698 7654 32.",
                &["GB82 WEST 1234 5698 7654 32"],
            ),
            ("GB82WEST12345698765432", &["GB82WEST12345698765432"]),
            (
                r#"{"iban":"DE89370400440532013000"}"#,
                &["DE89370400440532013000"],
            ),
            (
                "DE89 3704 0044 0532 0130 00",
                &["DE89 3704 0044 0532 0130 00"],
            ),
            (
                "FR1420041010050500013M02606, NL91ABNA0417164300",
                &["FR1420041010050500013M02606", "NL91ABNA0417164300"],
            ),
            (
                "BE68539007547034 NO9386011117947",
                &["BE68539007547034", "NO9386011117947"],
            ),
            (
                "BR1800360305000010009795493C1",
                &["BR1800360305000010009795493C1"],
            ),
            (
                "MT84MALT011000012345MTLCAST001S",
                &["MT84MALT011000012345MTLCAST001S"],
            ),
            // Near misses.
            ("GB83WEST12345698765432 GB82 WEST 1234 5698 7654 33", &[]),
            ("DE8937040044053201300 DE893704004405320130001", &[]),
            ("XX89370400440532013000 de89370400440532013000", &[]),
            ("IBANDE89370400440532013000", &[]),
            ("DE89 3704 0044 0532 013000", &[]),
            ("DE89  3704 0044 0532 0130 00", &[]),
        ],
    );
}

#[test]
fn iban_wins_over_numbers_inside_it() {
    let text = "DE89 3704 0044 0532 0130 00";
    let mut got = Vec::new();
    DetectorSet::all().find(text.as_bytes(), &mut got);
    assert_eq!(
        got,
        [Finding {
            detector: Detector::Iban,
            range: 0..text.len()
        }]
    );
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn secrets() {
    let ant = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJ-KLMNOPQRSTUVWXYZ-0123456789AA";
    let cases: &[(Detector, &str, &[&str])] = &[
        (Detector::AnthropicKey, &format!("key={ant}\n"), &[ant]),
        (
            Detector::AnthropicKey,
            "sk-ant-admin01-Zx9_abcdefghijklmnop",
            &["sk-ant-admin01-Zx9_abcdefghijklmnop"],
        ),
        (
            Detector::AnthropicKey,
            "sk-ant-api03-... and sk-ant-short",
            &[],
        ),
        (Detector::OpenAiKey, &format!("{ant}"), &[]),
        (
            Detector::OpenAiKey,
            "OPENAI_API_KEY=sk-proj-Ab3dEfGh1jKlMnOpQrStUvWx-yz_0123456789abcd",
            &["sk-proj-Ab3dEfGh1jKlMnOpQrStUvWx-yz_0123456789abcd"],
        ),
        (
            Detector::OpenAiKey,
            r#""sk-1234567890abcdef1234567890abcdef1234567890abcdef""#,
            &["sk-1234567890abcdef1234567890abcdef1234567890abcdef"],
        ),
        (
            Detector::OpenAiKey,
            "sk-svcacct-ABCdef123456GHIjkl789012 sk-admin-0123456789abcdefXYZW",
            &[
                "sk-svcacct-ABCdef123456GHIjkl789012",
                "sk-admin-0123456789abcdefXYZW",
            ],
        ),
        (
            Detector::OpenAiKey,
            "sk-this-is-not-a-real-key-just-words sk-learn-2024-release-notes-v2",
            &[],
        ),
        (
            Detector::OpenAiKey,
            "task-1234567890abcdef1234567890 sk-1234567890abcdef sk-aaaaaaaaaaaaaaaaaaaaaaaa",
            &[],
        ),
        (
            Detector::AwsAccessKey,
            "aws_access_key_id=AKIAIOSFODNN7EXAMPLE\n",
            &["AKIAIOSFODNN7EXAMPLE"],
        ),
        (
            Detector::AwsAccessKey,
            "\"ASIAY34FZKBOKMUTVV7A\",",
            &["ASIAY34FZKBOKMUTVV7A"],
        ),
        (
            Detector::AwsAccessKey,
            "AKIAIOSFODNN7EXAMPLE1 AKIAIOSFODNN7EXAMPL8 XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMP",
            &[],
        ),
        (
            Detector::GithubToken,
            "token ghp_abcdefghijklmnopqrstuvwxyz0123456789.",
            &["ghp_abcdefghijklmnopqrstuvwxyz0123456789"],
        ),
        (
            Detector::GithubToken,
            "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd",
            &["gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd"],
        ),
        (
            Detector::GithubToken,
            &format!("github_pat_11ABCDEFG0{}_{}", "a".repeat(12), "B".repeat(59)),
            &[&format!(
                "github_pat_11ABCDEFG0{}_{}",
                "a".repeat(12),
                "B".repeat(59)
            )],
        ),
        (
            Detector::GithubToken,
            "ghp_short ghx_abcdefghijklmnopqrstuvwxyz0123456789 xghp_abcdefghijklmnopqrstuvwxyz0123456789",
            &[],
        ),
        (
            Detector::SlackToken,
            "SLACK=xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp ",
            &["xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"],
        ),
        (
            Detector::SlackToken,
            "xapp-1-A0123456789-1234567890123-abcdef-",
            &["xapp-1-A0123456789-1234567890123-abcdef"],
        ),
        (
            Detector::SlackToken,
            "xoxb-your-token-here xoxb-12345 xoxz-1234567890123",
            &[],
        ),
        (
            Detector::GoogleApiKey,
            "key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe&x",
            &["AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"],
        ),
        (
            Detector::GoogleApiKey,
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQeX AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQ",
            &[],
        ),
        (
            Detector::Jwt,
            &format!("Authorization: Bearer {JWT}\n"),
            &[JWT],
        ),
        (
            Detector::Jwt,
            "t=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ. end",
            &["eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ."],
        ),
        (
            Detector::Jwt,
            "eyJhbGciOiJIUzI1NiJ9.notapayload.sig eyJhbGciOiJIUzI1NiJ9 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ",
            &[],
        ),
        (
            Detector::Jwt,
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.short xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.",
            &[],
        ),
        (
            Detector::StripeKey,
            "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc rk_live_0123456789abcdefghijABCDEF",
            &[
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "rk_live_0123456789abcdefghijABCDEF",
            ],
        ),
        (
            Detector::StripeKey,
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc sk_live_short pk_live_4eC39HqLyjWDarjtT1zdp7dc",
            &[],
        ),
    ];
    for (detector, text, expect) in cases {
        check(*detector, text, expect);
    }
}

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
    let truncated = format!("-----BEGIN EC PRIVATE KEY-----\n{body}Zm9v==");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("key:\n{rsa}\nmore"), vec![&rsa]),
        (format!("{pkcs8}\r\n"), vec![&pkcs8]),
        (format!(r#"{{"content":"{escaped}\n"}}"#), vec![&escaped]),
        (encrypted.clone(), vec![&encrypted]),
        (format!("{truncated}\n\nThe key above is cut."), vec![&truncated]),
        (format!("{rsa} {rsa}"), vec![&rsa, &rsa]),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----".into(), vec![]),
        ("-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE-----".into(), vec![]),
        ("Keys start with -----BEGIN PRIVATE KEY----- and end with -----END PRIVATE KEY-----.".into(), vec![]),
        ("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----".into(), vec![]),
    ];
    for (text, expect) in &cases {
        check(Detector::PemPrivateKey, text, expect);
    }
}

#[test]
fn names_round_trip() {
    for d in Detector::ALL {
        assert_eq!(Detector::from_name(d.name()), Some(d));
        assert_eq!(d.placeholder(), format!("<{}>", d.name().to_uppercase()));
        assert_eq!(d.to_string(), d.name());
    }
    assert_eq!(Detector::from_name("ssn"), Some(Detector::UsSsn));
    assert_eq!(Detector::from_name("sin"), Some(Detector::CaSin));
    assert_eq!(Detector::from_name("Email"), None);
    let secrets: Vec<_> = Detector::ALL
        .into_iter()
        .filter(|d| d.is_secret())
        .collect();
    assert_eq!(secrets.len(), 9);
    assert!(!Detector::CreditCard.is_secret() && Detector::Jwt.is_secret());
}

#[test]
fn sets() {
    let set = DetectorSet::new([Detector::Email, Detector::Jwt, Detector::Email]);
    assert!(set.contains(Detector::Email) && !set.contains(Detector::Phone));
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [Detector::Email, Detector::Jwt]
    );
    assert_eq!(format!("{set:?}"), "{Email, Jwt}");
    assert!(DetectorSet::default().is_empty());
    assert_eq!(DetectorSet::all().iter().count(), 15);
    let mut out = vec![Finding {
        detector: Detector::Jwt,
        range: 0..0,
    }];
    DetectorSet::default().find(b"4111111111111111 a@b.co", &mut out);
    assert_eq!(out.len(), 1, "find appends and an empty set finds nothing");
}

#[test]
fn all_detectors_in_one_text() {
    let text = format!(
        "Hi, I'm alice@example.com, card 4111 1111 1111 1111, ssn 123-45-6789, call \
         (415) 555-2671, IBAN GB82WEST12345698765432, SIN 130 692 544, aws AKIAIOSFODNN7EXAMPLE, \
         jwt {JWT}, stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc."
    );
    let mut got = Vec::new();
    DetectorSet::all().find(text.as_bytes(), &mut got);
    let found: Vec<_> = got
        .iter()
        .map(|f| (f.detector, &text[f.range.clone()]))
        .collect();
    assert_eq!(
        found,
        [
            (Detector::Email, "alice@example.com"),
            (Detector::CreditCard, "4111 1111 1111 1111"),
            (Detector::UsSsn, "123-45-6789"),
            (Detector::Phone, "(415) 555-2671"),
            (Detector::Iban, "GB82WEST12345698765432"),
            (Detector::CaSin, "130 692 544"),
            (Detector::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            (Detector::Jwt, JWT),
            (Detector::StripeKey, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ]
    );
}

#[test]
fn prose_and_code_find_nothing() {
    let text = "fn main() { let v = vec![1, 2, 3]; println!(\"{}\", v.len() * 1024); }\n\
        Version 1.85.0 (2025-02-20), PR #12345, issue 987654321 closed on 2024-05-15 12:30:45.\n\
        | id | total |\n|----|-------|\n| 1 | 3.14159265358979 |\n\
        See https://example.com/path?a=1&b=2 and @decorator, user@host, 0x7fffffff, 1e-10.";
    let mut got = Vec::new();
    DetectorSet::new(Detector::ALL.into_iter().filter(|d| *d != Detector::CaSin))
        .find(text.as_bytes(), &mut got);
    assert_eq!(got, []);
}

#[test]
fn arbitrary_bytes_do_not_panic() {
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff, 0xfe, b'4', 0x80, b'@', 0xc3],
        "1".repeat(100_000).into_bytes(),
        "1 ".repeat(50_000).into_bytes(),
        "1-".repeat(50_000).into_bytes(),
        "(1) ".repeat(20_000).into_bytes(),
        "+1".repeat(20_000).into_bytes(),
        "a@".repeat(20_000).into_bytes(),
        "a.".repeat(20_000).into_bytes(),
        "GB82".repeat(20_000).into_bytes(),
        "sk-".repeat(20_000).into_bytes(),
        "eyJ.".repeat(20_000).into_bytes(),
        "-----BEGIN PRIVATE KEY-----".repeat(2_000).into_bytes(),
    ];
    // Every prefix of tricky tails, so look-ahead past the end is exercised.
    let tails = [
        "4111 1111 1111 1111",
        "+1 (415) 555-2671",
        "GB82 WEST 1234 5698 7654 32",
        "a@b.co",
        "sk-ant-",
        "AKIAIOSFODNN7EXAMPLE",
        "github_pat_",
        "xoxb-",
        "AIza",
        "eyJa.eyJb.",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END ",
        "(415)",
        "1(",
    ];
    for tail in tails {
        for cut in 0..=tail.len() {
            inputs.push(tail.as_bytes()[..cut].to_vec());
        }
    }
    // A cheap deterministic generator over a byte alphabet that hits the scanners' edges.
    let alphabet = b"0123456789 -.()+@_AKIGBsk-eyJx\\n\n\xff";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in [1, 7, 8, 9, 31, 200, 4_000] {
        for _ in 0..50 {
            let bytes = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            inputs.push(bytes);
        }
    }
    for input in &inputs {
        let mut out = Vec::new();
        DetectorSet::all().find(input, &mut out);
        for f in &out {
            assert!(
                f.range.start < f.range.end && f.range.end <= input.len(),
                "{f:?}"
            );
        }
        for d in Detector::ALL {
            let mine: Vec<_> = out.iter().filter(|f| f.detector == d).collect();
            assert!(
                mine.windows(2).all(|w| w[0].range.end <= w[1].range.start),
                "{d} overlaps"
            );
        }
    }
}
