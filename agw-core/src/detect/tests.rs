use super::*;

/// Runs one detector over `text` and checks the matches: `expect` lists the matched texts in
/// order; each is located after the previous one, so the exact byte ranges are checked too.
pub(super) fn check(detector: Detector, text: &str, expect: &[&str]) {
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

pub(super) fn table(detector: Detector, cases: &[(&str, &[&str])]) {
    for (text, expect) in cases {
        check(detector, text, expect);
    }
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

pub(super) const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

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
    assert_eq!(secrets.len(), 31);
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
    assert_eq!(DetectorSet::all().iter().count(), 37);
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
        "4111/".repeat(20_000).into_bytes(),
        "4111\n".repeat(20_000).into_bytes(),
        "4111 \u{2022} ".repeat(10_000).into_bytes(),
        "AKIA Z7QR ".repeat(10_000).into_bytes(),
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
    let alphabet = b"0123456789 -.()+@_AKIGBsk-eyJx\\n\n\xff/|:\xe2\x80\xa2";
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

/// Where two strings meet is a boundary at a match's ends, for every detector that asks for
/// one; inside a match it is nothing (`alice@exa` + `mple.com`). `|` marks an edge in the
/// table's texts.
#[test]
fn edges_are_boundaries_at_a_matchs_ends() {
    let cases: &[(Detector, &str, &[&str])] = &[
        (
            Detector::CreditCard,
            "hi|4111 1111 |1111 1111|thanks",
            &["4111 1111 1111 1111"],
        ),
        (Detector::CreditCard, "hi4111 1111 |1111 1111|thanks", &[]),
        (Detector::CreditCard, "hi|4111 1111 1111 11|11thanks", &[]),
        (
            Detector::CreditCard,
            "x|4111111111111111|y",
            &["4111111111111111"],
        ),
        (
            Detector::Email,
            "mail alice@exa|mple.com|x",
            &["alice@example.com"],
        ),
        (
            Detector::Email,
            "alice@example.co|mx",
            &["alice@example.co"],
        ),
        (Detector::Email, "alice@example.comx", &[]),
        (Detector::Email, "alice@exa|mplecomx", &[]),
        (
            Detector::AwsAccessKey,
            "key|AKIAIOSF|ODNN7EXAMPLE|NOW",
            &["AKIAIOSFODNN7EXAMPLE"],
        ),
        (Detector::AwsAccessKey, "keyAKIAIOSF|ODNN7EXAMPLE", &[]),
        (
            Detector::Iban,
            "x|DE89 3704 0044 0532 0130 00|y",
            &["DE89 3704 0044 0532 0130 00"],
        ),
        (
            Detector::GoogleApiKey,
            "k|AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q|rest",
            &["AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"],
        ),
    ];
    for (detector, marked, expect) in cases {
        let mut text = Vec::new();
        let mut edges = Vec::new();
        for (i, piece) in marked.split('|').enumerate() {
            if i > 0 {
                edges.push(text.len());
            }
            text.extend_from_slice(piece.as_bytes());
        }
        let mut got = Vec::new();
        DetectorSet::new([*detector]).find_at_edges(&text, Edges::new(&edges, 0), &mut got);
        let got: Vec<_> = got
            .iter()
            .map(|f| std::str::from_utf8(&text[f.range.clone()]).unwrap())
            .collect();
        assert_eq!(got, *expect, "{detector} in {marked:?}");
        // Without edges, only what has boundaries of its own.
        let mut plain = Vec::new();
        DetectorSet::new([*detector]).find(&text, &mut plain);
        assert!(plain.len() <= got.len(), "{marked:?}");
    }
}

/// A key or a card right after an escape left in the text of a character no word holds — a
/// percent-escape (`%22`, `%20`, `%3D`), a `\u0022`, a `\x22` — is found as after the character
/// itself: the escape's last digit or letter had glued it to a word, or lengthened the number
/// (fifteenth session's detector review: URL query strings, .NET and nginx log lines). An
/// escape of a word character (`%41`, `\u0034`) still glues.
#[test]
fn escapes_of_delimiters_are_boundaries() {
    let card = "4586470882370090";
    let keys = [
        (
            Detector::GithubToken,
            "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",
        ),
        (Detector::AwsAccessKey, "AKIA2E0A8F3B244C9986"),
        (Detector::Jwt, JWT),
        (Detector::CreditCard, card),
    ];
    // A number right after a backslash is read as written, not as an octal escape's end.
    check(
        Detector::CreditCard,
        "C:\\4111111111111111 \\4111111111111111",
        &["4111111111111111", "4111111111111111"],
    );
    for (detector, key) in keys {
        for escape in [
            "%22",
            "%20",
            "%3D",
            "%3a",
            "%2C",
            "%2522",
            "%253D",
            "%252522",
            "%u0022",
            "\\u0022",
            "\\u0027",
            "\\u00A0",
            "\\U00000022",
            "\\x22",
            "\\042",
            "\\47",
            "\\42",
            "&#34",
            "&#x22",
            "\\n",
        ] {
            // A number after a backslash and two digits is read as written (`\47` and a card
            // are `474586…`): only keys take a two-digit octal escape for a boundary.
            if detector == Detector::CreditCard && matches!(escape, "\\47" | "\\42") {
                continue;
            }
            check(detector, &format!("x{escape}{key}{escape}y"), &[key]);
        }
        check(
            detector,
            &format!("token=%7B%22token%22%3A%22{key}%22%7D"),
            &[key],
        );
        for glue in ["%41", "%2541", "\\u0034", "\\x5f", "\\101", "\\64", "&#65"] {
            check(detector, &format!("x{glue}{key} y"), &[]);
        }
    }
}

/// The cases of `testdata/separated.txt`, each with what was found where it should not have
/// been or was missed: a card or an AWS access key id written with separators a model reads
/// through, and the near misses (dates, times, addresses, tables, paths) that must stay clean.
fn separated_corpus() -> (usize, Vec<String>) {
    let corpus = include_str!("testdata/separated.txt");
    let mut wrong = Vec::new();
    let mut cases = 0;
    for line in corpus.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line.split_once(' ').expect("detector");
        let (sign, text) = rest.split_once(' ').expect("sign");
        let detector = match name {
            "card" => Detector::CreditCard,
            "aws" => Detector::AwsAccessKey,
            _ => panic!("detector {name}"),
        };
        let unescape = |s: &str| s.replace('⏎', "\n").replace('␍', "\r");
        let (text, want) = match text.split_once(" => ") {
            Some((t, w)) => (unescape(t), Some(unescape(w))),
            None => (unescape(text), None),
        };
        let want: Vec<String> = match (sign, want) {
            ("+", Some(w)) => vec![w],
            ("+", None) => vec![text.clone()],
            ("-", None) => Vec::new(),
            _ => panic!("case {line}"),
        };
        cases += 1;
        let mut got = Vec::new();
        DetectorSet::new([detector]).find(text.as_bytes(), &mut got);
        let got: Vec<String> = got
            .iter()
            .map(|f| text[f.range.clone()].to_owned())
            .collect();
        if got != want {
            wrong.push(format!("{name} {sign} {text:?}: found {got:?}"));
        }
    }
    (cases, wrong)
}

#[test]
fn separated_cards_and_keys() {
    let (cases, wrong) = separated_corpus();
    println!("separated corpus: {} wrong of {cases}", wrong.len());
    for w in &wrong {
        println!("  {w}");
    }
    assert!(wrong.is_empty(), "{} wrong of {cases}", wrong.len());
}

/// Prints every card and AWS access key id found in the files listed (one path a line) in
/// the file `AGW_DETECT_FILES` names, for comparing a change's findings over a large text
/// corpus: `AGW_DETECT_FILES=list cargo test … scan_files -- --ignored --nocapture`.
#[test]
#[ignore = "reads files named by AGW_DETECT_FILES"]
fn scan_files() {
    let Ok(list) = std::env::var("AGW_DETECT_FILES") else {
        return;
    };
    let set = DetectorSet::new([Detector::CreditCard, Detector::AwsAccessKey]);
    let mut out = Vec::new();
    for path in std::fs::read_to_string(list).unwrap().lines() {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        out.clear();
        set.find(&bytes, &mut out);
        for f in &out {
            let shown = String::from_utf8_lossy(&bytes[f.range.clone()]);
            println!("FOUND {path}\t{}\t{shown:?}", f.detector);
        }
    }
}

/// Twenty-fifth session's red team: ids that pass Luhn in an issuer's range were masked as
/// cards — snowflake ids of 17 and 18 digits (Discord, tweets) and ids that are a path's or
/// a URL's segment. A card label still names them; 13 digits alone stay a card (a test card
/// every processor lists), so a barcode that passes Luhn stays masked.
#[test]
fn snowflake_ids_barcodes_and_path_segments_are_no_cards() {
    table(
        Detector::CreditCard,
        &[
            ("https://x.com/someone/status/657101901153000595", &[]),
            ("Hey <@358991890481475439>, see <#657101901153000595>", &[]),
            ("channel = bot.get_channel(627972121087318711)", &[]),
            ("pay with 4222222222222", &["4222222222222"]),
            ("gid://shopify/Order/4571019011531", &[]),
            ("GET /admin/api/2024-04/orders/4500059797212.json 200", &[]),
            (
                "https://www.facebook.com/groups/4918904814754335/posts/4780810527620199/",
                &[],
            ),
            ("/repos/acme/app/actions/runs/4927874412661811/jobs", &[]),
            // Cards as people write them are still cards.
            ("card number 4222222222222", &["4222222222222"]),
            ("my card: 4111111111111111", &["4111111111111111"]),
            ("pay with 4111111111111111 today", &["4111111111111111"]),
            ("card 6011000990139424 on file", &["6011000990139424"]),
            ("a/b 4111111111111111", &["4111111111111111"]),
        ],
    );
}

/// Twenty-fifth session's red team: national numbers with their trunk prefix, after a phone
/// label, passed (outside E.164 and NANP). A label is what makes them numbers.
#[test]
fn national_numbers_after_a_phone_label_are_phones() {
    table(
        Detector::Phone,
        &[
            ("Phone: 020 7946 0958", &["020 7946 0958"]),
            ("Telefon: 030 12345678", &["030 12345678"]),
            ("Telefoon: 020-1234567", &["020-1234567"]),
            ("phone: (02) 9876 5432", &["(02) 9876 5432"]),
            ("Mobile: 01 23 45 67 89", &["01 23 45 67 89"]),
            ("tel 03-1234-5678", &["03-1234-5678"]),
            // No label, or another label: ids.
            ("ref 020 7946 0958", &[]),
            ("order: 030 12345678", &[]),
            ("020 7946 0958", &[]),
            // Too short or too long.
            ("Phone: 0123 4567", &[]),
            ("Phone: 0123 4567 8901 2345", &[]),
        ],
    );
}

/// Whether some finding of `detector` in `text` covers `part` (found where it first occurs).
fn covered(detector: Detector, text: &str, part: &str) -> bool {
    let mut got = Vec::new();
    DetectorSet::all().find(text.as_bytes(), &mut got);
    let s = text.find(part).expect("part in text");
    got.iter()
        .any(|f| f.detector == detector && f.range.start <= s && f.range.end >= s + part.len())
}

/// Twenty-sixth session's red team: an AWS secret access key on the line after its access
/// key id (a call's arguments one per line, the two pasted on two lines, labelled lines)
/// went upstream with only the id masked.
#[test]
fn aws_secret_on_the_next_line_is_paired() {
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY9f3kLm2QpZ";
    for text in [
        format!("boto3.Session(\n    \"AKIAZ7QRSTUVWX2345AB\",\n    \"{secret}\",\n)"),
        format!("aws.NewStaticCredentials(\n\t\"AKIAZ7QRSTUVWX2345AB\",\n\t\"{secret}\",\n\t\"\")"),
        format!("AKIAZ7QRSTUVWX2345AB\r\n{secret}"),
        format!("AKIAZ7QRSTUVWX2345AB\n{secret}\n"),
        format!("Key ID: AKIAZ7QRSTUVWX2345AB\nSecret: {secret}"),
        format!("Access key: AKIAZ7QRSTUVWX2345AB\nSecret access key = {secret}"),
        format!("[\n  \"AKIAZ7QRSTUVWX2345AB\",\n  \"{secret}\"\n]"),
    ] {
        assert!(covered(Detector::AwsSecretKey, &text, secret), "{text:?}");
        assert!(
            covered(Detector::AwsAccessKey, &text, "AKIAZ7QRSTUVWX2345AB"),
            "{text:?}"
        );
    }
    // A label that names something else, and a value far below, are no pair.
    for text in [
        format!("AKIAZ7QRSTUVWX2345AB\nChecksum: {secret}"),
        format!("AKIAZ7QRSTUVWX2345AB\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n{secret}"),
    ] {
        assert!(!covered(Detector::AwsSecretKey, &text, secret), "{text:?}");
    }
}

/// Twenty-sixth session's red team: a label that is a field path (`patient.ssn`,
/// `customer.phone`, `e.ssn`), a remark in brackets or an arrow after it.
#[test]
fn labels_with_paths_remarks_and_arrows() {
    table(
        Detector::UsSsn,
        &[
            ("patient.ssn = \"536228726\"", &["536228726"]),
            ("user.ssn=536228726 ok", &["536228726"]),
            ("employee.ssn: 536228726", &["536228726"]),
            ("SELECT e.ssn\n-- e.ssn: 536228726", &["536228726"]),
            ("SSN (full): 536228726", &["536228726"]),
            ("SSN (no dashes) 536228726", &["536228726"]),
            ("SSN \u{2192} 536228726", &["536228726"]),
            ("ssn -> 536228726", &["536228726"]),
            // The dot of an abbreviation still joins its letters.
            ("S.S.N. 536228726", &["536228726"]),
            // A name that only ends in the letters is still no label.
            ("lessn: 536228726", &[]),
            ("patient.lessn = 536228726", &[]),
        ],
    );
    table(
        Detector::Phone,
        &[
            ("customer.phone = \"4155552671\"", &["4155552671"]),
            ("contact.mobile: 07700 900123", &["07700 900123"]),
        ],
    );
    table(
        Detector::CaSin,
        &[("client.sin = \"046454286\"", &["046454286"])],
    );
}

/// Twenty-sixth session's red team: numbers that pass Luhn after a label naming an id's
/// number are no card (a tenth of all such numbers pass).
#[test]
fn numbered_ids_are_no_cards() {
    table(
        Detector::CreditCard,
        &[
            ("DETAIL:  Key (id)=(4102761612490652) already exists.", &[]),
            ("Key (order_id)=(4102761612490652)", &[]),
            ("{\"orderNumber\": \"4102761612490652\"}", &[]),
            ("order_no=4102761612490652 ", &[]),
            ("span=4102761612490652 trace=4102761612490652", &[]),
            ("Invoice 4102761612490652", &[]),
            ("invoice_number: 4102761612490652", &[]),
            ("Tracking number: 4102761612490652", &[]),
            ("Policy No. 4102761612490652", &[]),
            ("SKU: 4102761612490652", &[]),
            ("ref=4102761612490652", &[]),
            // A card word wins, and a number alone is still a card.
            ("card number: 4102761612490652", &["4102761612490652"]),
            ("cc_order_no=4102761612490652", &["4102761612490652"]),
            ("Number: 4102761612490652", &["4102761612490652"]),
            ("paid with 4102761612490652", &["4102761612490652"]),
        ],
    );
}

/// Twenty-sixth session's red team: national numbers dialled with an international prefix,
/// labels other languages and forms use, and a phone word a few words before.
#[test]
fn phones_with_exit_codes_and_more_labels() {
    table(
        Detector::Phone,
        &[
            ("Phone: 0049 30 12345678", &["0049 30 12345678"]),
            ("Tel: 0044 20 7946 0958", &["0044 20 7946 0958"]),
            ("phone: 011 44 20 7946 0958", &["011 44 20 7946 0958"]),
            ("Telefonnummer: 030 12345678", &["030 12345678"]),
            ("Mob: 07700 900123", &["07700 900123"]),
            ("Contact: 020 7946 0958", &["020 7946 0958"]),
            ("Call me on 0412 345 678", &["0412 345 678"]),
            // No label, or a word that names other numbers: an id.
            ("build 0049 30 12345678", &[]),
            ("Invoice no 0412 345 678", &[]),
            ("ref: 0044 20 7946 0958", &[]),
        ],
    );
}

/// Twenty-sixth session's second red-team round: an AWS secret in a typed declaration or a
/// shell's default.
#[test]
fn aws_secrets_in_typed_declarations_are_found() {
    let secret = "1qdXWPJx/d8ut8pdqsxRpvED5hJRaOvRTYZPNvS+";
    for text in [
        format!("const awsSecretAccessKey: string = \"{secret}\";"),
        format!("const AWS_SECRET_ACCESS_KEY: &str = \"{secret}\";"),
        format!("static AWS_SECRET_ACCESS_KEY: &'static str = \"{secret}\";"),
        format!("AWS_SECRET_ACCESS_KEY: str = \"{secret}\""),
        format!("val awsSecretAccessKey: String = \"{secret}\""),
        format!("var awsSecretAccessKey string = \"{secret}\""),
        format!("key=\"${{AWS_SECRET_ACCESS_KEY:-{secret}}}\""),
    ] {
        assert!(covered(Detector::AwsSecretKey, &text, secret), "{text:?}");
    }
    // A comparison is no declaration.
    let text = format!("if awsSecretAccessKey: x == \"{secret}\"");
    assert!(!covered(Detector::AwsSecretKey, &text, secret), "{text:?}");
}

/// Twenty-sixth session's second red-team round: a value under the header of a psql or
/// MySQL client table, a rule line between them.
#[test]
fn values_under_cli_table_headers_are_found() {
    table(
        Detector::UsSsn,
        &[
            (
                " id | name     | ssn\n----+----------+-----------\n  1 | Jane Doe | 536228726\n",
                &["536228726"],
            ),
            (
                "+----+------+-----------+\n| id | name | ssn       |\n+----+------+-----------+\n|  1 | Jane | 536228726 |\n+----+------+-----------+\n",
                &["536228726"],
            ),
            // Another column's header: no label.
            (
                " id | name     | code\n----+----------+-----------\n  1 | Jane Doe | 536228726\n",
                &[],
            ),
        ],
    );
    table(
        Detector::CaSin,
        &[(
            " id | sin\n----+-----------\n  1 | 046454286\n",
            &["046454286"],
        )],
    );
}
