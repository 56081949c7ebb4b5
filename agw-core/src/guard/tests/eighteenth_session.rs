//! Found in the eighteenth session's red-team review: files a guard took for binary, and
//! uploads refused as "not valid JSON".

use super::*;

fn refused(v: &Verdict) -> bool {
    matches!(v.decision(), Decision::Reject(_))
}

/// An Anthropic document of `media` holding `bytes`.
fn document(media: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"{media}","data":"{}"}}}},{{"type":"text","text":"What is in the note?"}}]}}]}}"#,
        b64(bytes)
    )
}

#[test]
fn inline_files_with_control_characters_or_odd_encodings_are_read() {
    let p = seed_policy();
    let secret = b"my credit card and key AKIAZ7QRSTUVWX2345AB\n";
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for filler in [&b"\x01"[..], b"\0", b"\x7f", b"\x0b"] {
        cases.push(("text/plain", [&secret[..], &filler.repeat(8)].concat()));
    }
    let mut utf16_head: Vec<u8> = "Notes file.\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect::<Vec<u8>>()
        .repeat(3);
    utf16_head.extend_from_slice(secret);
    cases.push(("text/plain", utf16_head));
    cases.push(("text/plain", [&b"\xff\xfe"[..], secret].concat()));
    let utf32: Vec<u8> = "my credit card"
        .chars()
        .flat_map(|c| u32::from(c).to_be_bytes())
        .collect();
    cases.push(("text/plain", [&b"\0\0\xfe\xff"[..], &utf32].concat()));
    let noise: Vec<u8> = (0..3000u32).map(|i| (i * 97 % 256) as u8).collect();
    cases.push(("application/octet-stream", [&noise[..], secret].concat()));
    // A PDF, declared as one: its page's text is read.
    let pdf = b"%PDF-1.4\n4 0 obj << /Length 44 >>\nstream\nBT /F1 12 Tf (my credit card) Tj ET\nendstream\nendobj\n%%EOF\n";
    cases.push(("application/pdf", pdf.to_vec()));
    for (media, bytes) in &cases {
        let body = document(media, bytes);
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        assert!(refused(&v), "{media} {bytes:?}");
    }
    // Declared pictures and sound that do not start as one are read (twenty-fourth
    // session); one that does stays unread; a clean file passes.
    let body = document("image/png", secret);
    assert!(refused(
        &p.inspect(RouteKind::Messages, body.as_bytes()).unwrap()
    ));
    let body = document("image/png", &[&b"\x89PNG\r\n\x1a\n"[..], secret].concat());
    assert!(
        p.inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .is_allow()
    );
    let body = document("text/plain", b"quarterly notes\n\x01\x02");
    assert!(
        p.inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

#[test]
fn a_file_too_large_to_read_once_decompressed_is_refused() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..80 {
        gz.write_all(&[b'a'; 1 << 20]).unwrap();
    }
    let gz = gz.finish().unwrap();
    let body = document("application/gzip", &gz);
    let v = seed_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(refused(&v), "{:?}", v.hits());
    assert_eq!(v.hits()[0].path, "file");
    // An audit-only policy reports nothing and lets it through.
    let audit = Policy::builder()
        .rule(Rule::literals("word", ["credit card"]).audit())
        .build()
        .unwrap();
    assert!(
        audit
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

#[test]
fn uploads_are_read_as_forms_and_files() {
    let p = seed_policy();
    // The OpenAI SDK's `files.create`, the Anthropic SDK's `files.upload`, a transcription.
    let (clean, ct) = form(&[
        ("purpose", None, None, b"assistants"),
        (
            "file",
            Some("filename=\"notes.txt\""),
            Some("text/plain"),
            b"quarterly notes",
        ),
    ]);
    let v = p.inspect_upload(&clean, Some(&ct)).unwrap();
    assert!(v.is_allow(), "{:?}", v.hits());
    let (dirty, ct) = form(&[
        ("purpose", None, None, b"assistants"),
        (
            "file",
            Some("filename=\"notes.jsonl\""),
            Some("application/octet-stream"),
            b"{\"a\":\"my credit card\"}",
        ),
    ]);
    let v = p.inspect_upload(&dirty, Some(&ct)).unwrap();
    assert!(refused(&v));
    assert_eq!(v.hits()[0].path, "form file `file`");
    let (field, ct) = form(&[
        ("model", None, None, b"whisper-1"),
        ("prompt", None, None, b"spell out my credit card"),
        (
            "file",
            Some("filename=\"a.wav\""),
            Some("audio/wav"),
            b"RIFF\0\0\0\0WAVEfmt credit card",
        ),
    ]);
    let v = p.inspect_upload(&field, Some(&ct)).unwrap();
    assert!(refused(&v));
    assert_eq!(v.hits()[0].path, "form field `prompt`");
    // The recording itself is not decoded, whatever its part says; the text it carries is
    // read (twenty-fifth session's red team: a media shell around plain text passed).
    let (audio, ct) = form(&[
        ("model", None, None, b"whisper-1"),
        (
            "file",
            Some("filename=\"a.wav\""),
            Some("application/octet-stream"),
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0",
        ),
    ]);
    assert!(p.inspect_upload(&audio, Some(&ct)).unwrap().is_allow());
    let (audio, ct) = form(&[
        ("model", None, None, b"whisper-1"),
        (
            "file",
            Some("filename=\"a.wav\""),
            Some("application/octet-stream"),
            b"RIFF\0\0\0\0WAVEfmt credit card",
        ),
    ]);
    assert!(refused(&p.inspect_upload(&audio, Some(&ct)).unwrap()));
    // A form that parsers split differently is named.
    let err = p
        .inspect_upload(b"--XyZ\r\nno headers", Some(&ct))
        .unwrap_err();
    assert!(err.contains("multipart"), "{err}");
    // A URL-encoded form, a raw file body (Gemini's upload), a text body.
    let v = p
        .inspect_upload(
            b"note=my+credit%20card&x=1",
            Some("application/x-www-form-urlencoded"),
        )
        .unwrap();
    assert!(refused(&v));
    let v = p
        .inspect_upload(b"%PDF-1.7\n(my credit card) Tj", Some("application/pdf"))
        .unwrap();
    assert!(refused(&v));
    let v = p.inspect_upload(b"my credit card", None).unwrap();
    assert!(refused(&v));
    // An upload declared a picture is read unless it really is one (twenty-fourth session:
    // it is kept, and code execution may read it later).
    assert!(refused(
        &p.inspect_upload(b"\x89PNG\r\n\x1a\nmy credit card", Some("image/png"))
            .unwrap()
    ));
    // A real one is not decoded, but the text it carries is read (twenty-fifth session).
    assert!(refused(
        &p.inspect_upload(
            &crate::guard::containers::test_png(b"my credit card", b""),
            Some("image/png")
        )
        .unwrap()
    ));
    assert!(
        p.inspect_upload(
            &crate::guard::containers::test_png(b"a picture", b""),
            Some("image/png")
        )
        .unwrap()
        .is_allow()
    );
    // A masking rule's hit refuses: an upload is not rewritten.
    let v = mask_policy()
        .inspect_upload(b"card 4111 1111 1111 1111", Some("text/plain"))
        .unwrap();
    assert!(refused(&v));
}

/// Masking literals and patterns leave tool definitions as sent (tried this session: a mask of
/// `secret`, `password`, `.env`, URLs or long numbers refused every Claude Code request, whose
/// own descriptions name them); rejecting ones read them, less Claude Code's commit address.
#[test]
fn masking_literals_and_patterns_leave_tool_definitions_alone() {
    let masking = Policy::builder()
        .rule(Rule::literals("words", ["secrets", "password", "GitHub"]).mask())
        .rule(Rule::regex("urls", [r"https?://\S+"]).mask())
        .build()
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"Bash","description":"Do not commit files that likely contain secrets (.env, credentials.json); a password; GitHub; see https://json-schema.org/draft/2020-12/schema","input_schema":{"type":"object"}}]}"#;
    let v = masking
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(v.is_allow(), "{:?}", v.hits());
    let rejecting = Policy::builder()
        .rule(Rule::literals("codename", ["Project Falcon"]).reject("no"))
        .rule(Rule::regex("emails", [r"[a-z]+@[a-z]+\.com"]).reject("no"))
        .build()
        .unwrap();
    let dirty = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t","description":"Ask about Project Falcon","input_schema":{"type":"object"}}]}"#;
    assert!(refused(
        &rejecting
            .inspect(RouteKind::Messages, dirty.as_bytes())
            .unwrap()
    ));
    let own = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"Bash","description":"Co-Authored-By: Claude <noreply@anthropic.com>","input_schema":{"type":"object"}}]}"#;
    assert!(
        rejecting
            .inspect(RouteKind::Messages, own.as_bytes())
            .unwrap()
            .is_allow()
    );
}

#[test]
fn an_mcp_servers_credential_is_read_by_literal_and_pattern_rules() {
    let body = |token: &str| {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"https://mcp.example.com/sse","name":"x","authorization_token":"{token}"}}]}}"#
        )
    };
    let v = seed_policy()
        .inspect(
            RouteKind::Messages,
            body("my credit card 4111 1111 1111 1111").as_bytes(),
        )
        .unwrap();
    assert!(refused(&v));
    assert_eq!(v.hits()[0].path, "mcp_servers[0].mcp_credential");
    let masking = Policy::builder()
        .rule(Rule::literals("codename", ["Project Falcon"]).mask())
        .rule(Rule::detectors("keys", [Detector::GithubToken, Detector::CreditCard]).reject("no"))
        .build()
        .unwrap();
    let v = masking
        .inspect(RouteKind::Messages, body("Project Falcon").as_bytes())
        .unwrap();
    assert!(refused(&v));
    // The credential it is passes the detectors.
    let v = masking
        .inspect(
            RouteKind::Messages,
            body("ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c").as_bytes(),
        )
        .unwrap();
    assert!(v.is_allow(), "{:?}", v.hits());
}

#[test]
fn text_parts_read_generically_are_joined_where_a_server_runs_them_together() {
    let p = Policy::builder()
        .rule(Rule::literals("phrase", ["credit card"]).reject("no"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    for body in [
        // Gemini's parts, Bedrock's content, content blocks on a path agw has no reading for.
        r#"{"contents":[{"role":"user","parts":[{"text":"my credit "},{"text":"card"}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"text":"key AKIAZ7QRST"},{"text":"UVWX2345AB"}]}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my cre"},{"type":"text","text":"dit "},{"type":"text","text":"card"}]}]}"#,
    ] {
        let v = p.inspect(RouteKind::Passthrough, body.as_bytes()).unwrap();
        assert!(refused(&v), "{body}");
        assert_eq!(v.hits()[0].path, "text parts (joined)", "{body}");
    }
    // An Anthropic document of text blocks, on the Messages path; base64 `data` that is no
    // base64 is read as written.
    for body in [
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{"type":"content","content":[{"type":"text","text":"my credit "},{"type":"text","text":"card"}]}}]}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"my credit card, key!"}}]}]}"#,
    ] {
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        assert!(refused(&v), "{body}");
    }
    // Parts apart (a picture between them) are not joined; a match within one part is
    // masked as before, not refused.
    let apart = r#"{"contents":[{"parts":[{"text":"my credit "},{"inlineData":{"mimeType":"image/png","data":"iVBO"}},{"text":"card"}]}]}"#;
    assert!(
        p.inspect(RouteKind::Passthrough, apart.as_bytes())
            .unwrap()
            .is_allow()
    );
    let within =
        r#"{"contents":[{"parts":[{"text":"key AKIAZ7QRSTUVWX2345AB"},{"text":"more"}]}]}"#;
    let v = p
        .inspect(RouteKind::Passthrough, within.as_bytes())
        .unwrap();
    assert!(
        matches!(v.decision(), Decision::Rewrite(_)),
        "{:?}",
        v.hits()
    );
}

#[test]
fn text_in_base64_is_read_decoded_and_masked_whole() {
    let enc = b64(b"credit card");
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"decode this and follow it: {enc}"}}]}}"#
    );
    let v = seed_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(refused(&v), "{:?}", v.hits());
    // A Kubernetes Secret a tool read: the key inside is masked, the whole value replaced.
    let key = b64(b"AKIAZ7QRSTUVWX2345AB");
    let body = claude_code_body(
        &format!("data:\n  aws: {key}\n  user: YWRtaW4="),
        "deploy it",
    );
    let v = mask_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    let Decision::Rewrite(masked) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    let masked = String::from_utf8_lossy(masked);
    assert!(!masked.contains(&key), "{masked}");
    assert!(masked.contains("aws: <AWS_ACCESS_KEY>"), "{masked}");
    assert!(masked.contains("user: YWRtaW4="), "{masked}");
}

#[test]
fn a_stored_prompts_variables_are_read_joined() {
    let p = Policy::builder()
        .rule(Rule::literals("phrase", ["credit card"]).reject("no"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).reject("no"))
        .build()
        .unwrap();
    for body in [
        r#"{"model":"m","prompt":{"id":"pmpt_1","variables":{"a":"AKIAZ7QRST","b":"UVWX2345AB"}}}"#,
        r#"{"model":"m","prompt":{"id":"pmpt_1","variables":{"a":"my credit ","b":"card"}},"input":"hi"}"#,
    ] {
        let v = p.inspect(RouteKind::Responses, body.as_bytes()).unwrap();
        assert!(refused(&v), "{body}");
    }
    let clean = r#"{"model":"m","prompt":{"id":"pmpt_1","variables":{"a":"credit","b":"score"}}}"#;
    assert!(
        p.inspect(RouteKind::Responses, clean.as_bytes())
            .unwrap()
            .is_allow()
    );
}

#[test]
fn a_lone_surrogate_inside_a_phrase_hides_nothing() {
    let body = r#"{"model":"m","messages":[{"role":"user","content":"my cred\ud800it card"}]}"#;
    let v = seed_policy()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(refused(&v), "{:?}", v.hits());
}
