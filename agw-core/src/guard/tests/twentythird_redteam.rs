//! The twenty-third session's red team, on uploads: a multipart part in a transfer encoding
//! (which Go's and python-multipart's form parsers decode), base64 text inside an uploaded
//! text file, a file's name. Each test failed before its fix.

use super::*;

const SECRET: &str = "my credit card is 4111 1111 1111 1111, key AKIAZ7QRSTUVWX2345AB";

// A rejecting literal, a rejecting detector, and a masking detector (an upload is not
// rewritten: a mask's hit refuses).
use super::twentyfirst_files::policies;

fn refused_by_all(body: &[u8], ct: &str) -> bool {
    policies().iter().all(|p| {
        p.inspect_upload(body, Some(ct))
            .map_or(true, |v| matches!(v.decision(), Decision::Reject(_)))
    })
}

fn passed_by_all(body: &[u8], ct: &str) -> bool {
    policies()
        .iter()
        .all(|p| p.inspect_upload(body, Some(ct)).unwrap().is_allow())
}

/// A part with its own header lines, in a form of its own.
fn form_with_header(header: &str, value: &str) -> (Vec<u8>, String) {
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"prompt\"\r\n{header}\r\n\r\n{value}\r\n\
         --XyZ--\r\n"
    );
    (
        body.into_bytes(),
        "multipart/form-data; boundary=XyZ".into(),
    )
}

#[test]
fn rt25_f1_a_part_in_a_transfer_encoding_is_refused() {
    let qp = "my credit=20card AKIAIOSFOD=\r\nNN7EXAMPLQ";
    let b64 = b64(SECRET.as_bytes());
    for (header, value) in [
        ("Content-Transfer-Encoding: quoted-printable", qp),
        ("Content-Transfer-Encoding: QUOTED-PRINTABLE", qp),
        ("content-transfer-encoding:  base64 ", b64.as_str()),
        ("Content-Transfer-Encoding: x-uuencode", "begin 644 a"),
    ] {
        let (body, ct) = form_with_header(header, value);
        assert!(crate::model::form_parts(&body, &ct).is_err(), "{header}");
        assert!(refused_by_all(&body, &ct), "{header}");
    }
    // The identity encodings are what a part is anyway.
    for header in [
        "Content-Transfer-Encoding: 7bit",
        "Content-Transfer-Encoding: 8BIT",
        "Content-Transfer-Encoding: binary",
    ] {
        let (body, ct) = form_with_header(header, "transcribe this meeting");
        assert!(passed_by_all(&body, &ct), "{header}");
        let (body, ct) = form_with_header(header, SECRET);
        assert!(refused_by_all(&body, &ct), "{header}");
    }
}

#[test]
fn rt25_f2_base64_text_in_an_uploaded_text_file_is_read() {
    let encoded = b64(SECRET.as_bytes());
    let text = format!("notes for the meeting\n{encoded}\nend of notes\n");
    let (body, ct) = form(&[(
        "file",
        Some("filename=\"notes.txt\""),
        Some("text/plain"),
        text.as_bytes(),
    )]);
    assert!(refused_by_all(&body, &ct));
    // A file sent as the body, and a form field.
    assert!(refused_by_all(text.as_bytes(), "text/plain"));
    let (body, ct) = form(&[("prompt", None, None, text.as_bytes())]);
    assert!(refused_by_all(&body, &ct));
    // Escapes too, as in a prompt.
    let (body, ct) = form(&[("prompt", None, None, b"my cr&#101;dit%20card")]);
    assert!(
        policies()[0]
            .inspect_upload(&body, Some(&ct))
            .is_ok_and(|v| matches!(v.decision(), Decision::Reject(_)))
    );
    // Base64 that is no text, and text without any, pass.
    let (body, ct) = form(&[(
        "file",
        Some("filename=\"notes.txt\""),
        Some("text/plain"),
        b"hash c2VjcmV0IGhhc2ggdmFsdWVzIG9ubHk= and prose about a meeting\n",
    )]);
    assert!(passed_by_all(&body, &ct));
}

#[test]
fn rt25_f3_a_file_name_is_read() {
    for disposition in [
        "filename=\"my credit card 4111 1111 1111 1111 AKIAZ7QRSTUVWX2345AB.txt\"",
        "filename*=UTF-8''my%20credit%20card%204111%201111%201111%201111%20AKIAZ7QRSTUVWX2345AB.txt",
    ] {
        let (body, ct) = form(&[("file", Some(disposition), Some("text/plain"), b"hello")]);
        assert!(refused_by_all(&body, &ct), "{disposition}");
    }
    let (body, ct) = form(&[(
        "file",
        Some("filename=\"meeting-notes.txt\""),
        Some("text/plain"),
        b"hello",
    )]);
    assert!(passed_by_all(&body, &ct));
}

/// F8 of the twenty-second session's red team: a key written with dashes that prose uses
/// between words (the em dash, the horizontal bar, the katakana prolonged sound mark, a box
/// drawing line …) went upstream unread; between two ASCII letters or digits they are read as
/// `-` in a reading beside the text (as escapes are), with invisible or fullwidth characters
/// around them too (the second review of the first fix).
#[test]
fn rt24_f8_keys_written_with_word_dashes_are_found() {
    use super::twentysecond_redteam::{all_policy, prompt, sent};
    let key = "sk-ant-api03-Zx9abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab-cdefghij_klmnopqrstuvwxyzAA";
    let secret = "Zx9abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";
    for dash in [
        "\u{2014}",
        "\u{2015}",
        "\u{2E3A}",
        "\u{2E3B}",
        "\u{FE31}",
        "\u{FE58}",
        "\u{2796}",
        "\u{2E17}",
        "\u{2E1A}",
        "\u{2E40}",
        "\u{30FC}",
        "\u{FF70}",
        "\u{2500}",
        "\u{2501}",
        "\u{23AF}",
        "\u{2014}\u{200B}",
        "\u{200B}\u{2014}\u{00AD}",
    ] {
        let written = key.replace('-', dash);
        for body in [
            prompt(&format!("my key is {written} thanks")),
            // Escaped as JSON writers with `ensure_ascii` write it.
            prompt(&format!("my key is {written} thanks")).replace(
                dash,
                &dash
                    .chars()
                    .map(|c| format!("\\u{:04x}", u32::from(c)))
                    .collect::<String>(),
            ),
            // A fullwidth letter after each dash.
            prompt(&format!(
                "my key is {} thanks",
                written.replace("ant", "\u{FF41}nt")
            )),
            // After prose's own dashes (the scanner's known characters), in the string and
            // in an earlier one.
            prompt(&format!(
                "the fix{dash}a check{dash}works; my key is {written} thanks"
            )),
            format!(
                r#"{{"model":"m","max_tokens":10,"system":"be brief{dash}really","messages":[{{"role":"user","content":"my key is {written}"}}]}}"#
            ),
        ] {
            for mask in [true, false] {
                let out = sent(&all_policy(mask), &body);
                assert!(
                    out.as_ref().is_none_or(|o| !o.contains(secret)),
                    "{dash:?} mask {mask}: {out:?}"
                );
            }
        }
    }
    // Prose keeps its dashes: between words with spaces, or beside punctuation, nothing reads
    // as a hyphen, and nothing is found.
    for text in [
        "agw \u{2014} the gateway \u{2014} reads this",
        "the fix\u{2014}a check\u{2014}works",
        "1999\u{2014}2024 and \u{2014}quoted\u{2014}",
    ] {
        let body = prompt(text);
        assert_eq!(sent(&all_policy(true), &body), Some(body.clone()), "{text}");
    }
}

/// The first fix read such dashes as `-` in the text itself, and the dash then continued the
/// number, address or token before it (the second review): each of these was found before
/// the fix and is found again.
#[test]
fn word_dashes_still_end_numbers_addresses_and_tokens() {
    use super::twentysecond_redteam::{all_policy, prompt, sent};
    let mut missed = Vec::new();
    for (text, secret) in [
        ("email alice@example.com\u{2014}thanks", "alice@example"),
        ("key\u{2014}AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (
            "token\u{2014}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",
            "ycIe4xlBiDoKqKdhIsMy",
        ),
        (
            "use AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe\u{2014}it works",
            "DaGmWKa4JsXZ",
        ),
        (
            "bot 4028896554:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY\u{2014}thanks",
            "HJsD2RRMKl6Coj",
        ),
        ("card 4111111111111111\u{30FC}thanks", "4111111111111111"),
    ] {
        for mask in [true, false] {
            let out = sent(&all_policy(mask), &prompt(text));
            if out.as_ref().is_some_and(|o| o.contains(secret)) {
                missed.push((text, mask));
            }
        }
    }
    assert!(missed.is_empty(), "{missed:?}");
}

/// A rule's `-` matches a word dash inside a run as long as a key (in the reading), and a rule
/// written with the dash itself still matches it (the text keeps it).
#[test]
fn word_dashes_read_as_hyphens_only_inside_words() {
    let refused = |pattern: &str, text: &str| {
        let policy = Policy::builder()
            .rule(Rule::regex("proj", [pattern]).reject("no"))
            .build()
            .unwrap();
        matches!(
            policy
                .inspect(
                    RouteKind::Messages,
                    super::twentysecond_redteam::prompt(text).as_bytes()
                )
                .unwrap()
                .decision(),
            Decision::Reject(_)
        )
    };
    let id = "build-2024-release-candidate-x7";
    assert!(refused(
        id,
        "ship build\u{2014}2024\u{2014}release\u{2014}candidate\u{2014}x7 today"
    ));
    assert!(refused(
        id,
        "ship build\u{30FC}2024-release-candidate\u{2500}x7 today"
    ));
    assert!(!refused(
        id,
        "ship build \u{2014} 2024 \u{2014} release-candidate-x7 today"
    ));
    // Prose's `word—word` is too short a run to be read again: a rule's `-` does not match it.
    assert!(!refused("project-x", "about project\u{2014}x today"));
    for pattern in [
        r"credit\s*\u{2014}\s*card",
        r"\w+\u{2014}\w+",
        r"(?i)CREDIT\u{2014}CARD",
    ] {
        assert!(refused(pattern, "my credit\u{2014}card"), "{pattern}");
    }
}

/// The second review: a part's headers end at the first blank line, as Go's and Werkzeug's
/// form parsers end them (agw took the first `\r\n\r\n` and read only what followed it), and a
/// file name in RFC 2231 pieces is refused as a field name in pieces is.
#[test]
fn form_headers_end_at_the_first_blank_line_and_names_are_whole() {
    for sep in ["\r\n\n", "\n\r\n", "\n\n"] {
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"prompt\"{sep}{SECRET}\r\n\r\nx\r\n--XyZ--\r\n"
        );
        let ct = "multipart/form-data; boundary=XyZ";
        assert!(refused_by_all(body.as_bytes(), ct), "{sep:?}");
        let parts = crate::model::form_parts(body.as_bytes(), ct)
            .unwrap()
            .unwrap();
        assert!(parts[0].value.starts_with(SECRET.as_bytes()), "{sep:?}");
        assert_eq!(parts[0].names, ["prompt"]);
    }
    let (body, ct) = form(&[(
        "file",
        Some("filename*0=\"my credit \"; filename*1=\"card.txt\""),
        Some("text/plain"),
        b"hello",
    )]);
    assert!(crate::model::form_parts(&body, &ct).is_err());
    assert!(refused_by_all(&body, &ct));
}

/// The second review: a key split at a word dash between two text blocks of one message (the
/// first fix read each string's dashes alone). The reading runs over the message's text.
#[test]
fn a_key_split_at_a_word_dash_between_blocks_is_found() {
    use super::twentysecond_redteam::{all_policy, sent};
    let tail = "ant\u{2014}api03\u{2014}Zx9abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab\u{2014}cdefghij_klmnopqrstuvwxyzAA";
    let secret = "Zx9abcdefghijklmnopqrstuvwxyz0123456789ABCDEF";
    for (first, second) in [
        ("my key is sk".to_owned(), format!("\u{2014}{tail} thanks")),
        ("my key is sk\u{2014}".to_owned(), format!("{tail} thanks")),
    ] {
        let blocks = serde_json::json!([
            {"type": "text", "text": first},
            {"type": "text", "text": second},
        ]);
        let body = format!(
            r#"{{"model":"m","max_tokens":10,"messages":[{{"role":"user","content":{blocks}}}]}}"#
        );
        for mask in [true, false] {
            let out = sent(&all_policy(mask), &body);
            assert!(
                out.as_ref().is_none_or(|o| !o.contains(secret)),
                "{first:?} mask {mask}: {out:?}"
            );
        }
    }
}
