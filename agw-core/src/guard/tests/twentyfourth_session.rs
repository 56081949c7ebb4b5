//! The twenty-fourth session: values set in prose's and Markdown's punctuation. A number
//! followed by an em dash and a word (`123-45-6789—keep it safe`), by an en dash (which the
//! guard reads as `-`), a value in Markdown's underscore emphasis (`_4111 1111 1111 1111_`), a
//! key after an en dash, an address glued to a word by one: each went upstream unread.

use super::twentysecond_redteam::{all_policy, prompt, sent};
use super::*;

/// Whether `value` is gone from what reaches the provider of `text` as a prompt.
pub(super) fn hidden(policy: &Policy, text: &str, value: &str) -> bool {
    !sent(policy, &prompt(text)).unwrap().contains(value)
}

/// Whether `text`, as a prompt, reaches the provider as it was sent.
pub(super) fn untouched(policy: &Policy, text: &str) -> bool {
    let body = prompt(text);
    sent(policy, &body).as_deref() == Some(body.as_str())
}

const VALUES: &[&str] = &[
    "123-45-6789",
    "+1 415-555-0132",
    "(415) 555-0132",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111111111111111",
    "alice@example.com",
    "AKIAIOSFODNN7EXAMPLE",
    "DE89 3704 0044 0532 0130 00",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
];

/// Before and after the value.
const SETTINGS: &[(&str, &str)] = &[
    ("", "—keep it safe"),
    ("", "―keep it safe"),
    ("", "–call me"),
    ("", "\u{2011}thanks"),
    ("", "-please"),
    ("", "—So"),
    ("_", "_"),
    ("__", "__"),
    ("_", "_."),
    ("–", ""),
    ("— ", " —"),
    ("**", "**"),
    ("“", "”"),
];

#[test]
fn values_in_prose_and_markdown_punctuation_are_found() {
    let policy = all_policy(true);
    let mut leaked = vec![];
    for value in VALUES {
        for (before, after) in SETTINGS {
            let text = format!("my value is {before}{value}{after} and more");
            let out = sent(&policy, &prompt(&text)).unwrap();
            if out.contains(value) {
                leaked.push(text);
            }
        }
    }
    assert!(leaked.is_empty(), "sent unmasked: {leaked:#?}");
}

/// What still goes on with a number or a key, and so is not it: a part number's suffix, an
/// identifier glued by `_` to a word, a longer run of key characters.
#[test]
fn suffixes_and_glued_identifiers_are_still_no_values() {
    let policy = all_policy(true);
    for text in [
        "part no. 536-22-8726-B",
        "part no. 536-22-8726-b",
        "part no. 536-22-8726-A2",
        "part no. 536-22-8726-REV",
        "Order #4000123412341234-A shipped",
        "row id_4111111111111111 and x_4111111111111111_y",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6QX",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q-x9Yz",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

const GHP: &str = "ghp_Xk3pQ9vR2mT7wL5nB8yC1dF4gH6jK0sA3zE9";

/// A terminal's colour codes around a value (a command's output pasted, a tool result): the
/// last letter of `ESC[31m` glued it to the value, which lost its boundary; `grep --color`
/// cuts a key in two with them. Raw (as JSON's `\u001b`) and written out (`\x1b`, `\033`,
/// `\u001b`, `\e`).
#[test]
fn values_in_terminal_colours_are_found() {
    let policy = all_policy(true);
    let mut leaked = vec![];
    for esc in ["\u{1b}", "\\x1b", "\\033", "\\u001b", "\\e", "\\x1B"] {
        for (text, value) in [
            (format!("value: {esc}[31m{GHP}{esc}[0m"), GHP),
            (
                format!("{esc}[31m4111111111111111{esc}[0m"),
                "4111111111111111",
            ),
            (
                format!("{esc}[33mAKIA4YDCVEKVHZLMUNBG{esc}[0m"),
                "AKIA4YDCVEKVHZLMUNBG",
            ),
            (format!("{esc}[31m+14155552671{esc}[0m"), "+14155552671"),
            (format!("{esc}[01;31m{esc}[K{GHP}{esc}[m{esc}[K"), GHP),
            (
                format!(
                    "GITHUB_TOKEN={esc}[01;31m{esc}[Kghp_{esc}[m{esc}[K{}",
                    &GHP[4..]
                ),
                &GHP[4..],
            ),
            (
                format!("2024-05-01T12:00:00.0000000Z {esc}[36;1m{GHP}{esc}[0m"),
                GHP,
            ),
            (
                format!("{{\n  {esc}[1;34m\"ssn\"{esc}[0m: {esc}[0;39m536-22-8726{esc}[0m\n}}"),
                "536-22-8726",
            ),
        ] {
            let out = sent(&policy, &prompt(&text)).unwrap();
            if out.contains(value) {
                leaked.push(text);
            }
        }
    }
    assert!(leaked.is_empty(), "sent unmasked: {leaked:#?}");
}

/// Only a whole control sequence is read away: brackets in prose and code, LaTeX's `\emph`,
/// an escape character before other text.
#[test]
fn text_like_a_control_sequence_is_read_as_written() {
    let rule = Policy::builder()
        .rule(Rule::regex("phrase", ["credit card", r"\[31mcredit"]).reject("no"))
        .build()
        .unwrap();
    for (text, refused) in [
        ("credit\u{1b}[31m card", true),
        ("cre\u{1b}[31mdit card", true),
        ("cre\u{1b}[1;31mdit\u{1b}[0m card", true),
        ("cre\\x1b[0mdit card", true),
        ("the [31mcredit] note", true),
        ("\\emph{credit card}", true),
        ("\u{1b}credit card", true),
        ("\u{1b}[credit card", true),
        ("\u{1b}[1credit card", true),
        ("my \u{1b}[mcredit card", true),
    ] {
        let body = prompt(text);
        assert_eq!(sent(&rule, &body).is_none(), refused, "{text:?}");
    }
}

/// Slack's browser-session token and cookie (`xoxc-`, `xoxd-`), which Slack's MCP servers
/// are configured with.
#[test]
fn slack_session_tokens_are_found() {
    let policy = all_policy(true);
    for value in [
        "xoxc-123456789012-123456789012-1234567890123-3f9a1c7e5b2d4f608a9c1e3b5d7f9a1c3f9a1c7e5b2d4f608a9c1e3b5d7f9a1c",
        "xoxd-Xk3pQ9vR2mT7wL5nB8yC1dF4gH6jK0sA3zE9uI2oP7q%2BXk3pQ9vR2mT7wL5nB8yC1d%2FF4gH6jK0sA3zE9uI2oP7q%3D",
    ] {
        for text in [
            format!("SLACK_MCP_TOKEN={value}"),
            format!("\"token\": \"{value}\""),
        ] {
            assert!(hidden(&policy, &text, &value[5..30]), "{text}");
        }
    }
    for text in [
        "xoxd-your-cookie-here",
        "xoxd-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "xoxc-your-token",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// A key after a word and a dash (`key–ghp_…`: an en dash reads as `-`).
#[test]
fn keys_after_a_word_and_a_dash_are_found() {
    let policy = all_policy(true);
    for dash in ["–", "-", "‐", "−", "‑"] {
        for (word, value) in [
            ("key", GHP),
            ("Token", GHP),
            ("key", "AKIA4YDCVEKVHZLMUNBG"),
            ("slack", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"),
        ] {
            let text = format!("the {word}{dash}{value} works");
            assert!(hidden(&policy, &text, value), "{text}");
        }
    }
    // `sk-` keeps its boundary: words end in `-sk`… and `risk-` is no key's start.
    let text = "see task-sk-1234567890abcdefghijklmnopqrstuvwx for details";
    assert!(untouched(&policy, text));
}

/// An AWS secret access key under labels a sentence, MinIO, S3-compatible stores and
/// Terraform's variables give it (red team, twenty-fourth session).
#[test]
fn aws_secret_keys_under_more_labels_are_found() {
    let policy = all_policy(true);
    let k = "rN9lHZOqqk8Fk2FJh/FgzKVmj1OWaKqd4scg2InW";
    for t in [
        format!("my aws secret key is {k}"),
        format!("My AWS Secret Access Key is {k}."),
        format!("AWS secret: {k}"),
        format!("the secret access key is {k}"),
        format!("secret access key = {k}"),
        format!("aws secret access key -> {k}"),
        format!("AWS_SECRET_ACCESS_KEY=\"{k}\""),
        format!("Secret key: {k}"),
        format!("Here are my AWS credentials: AKIA4YDCVEKVHZLMUNBG and {k}"),
        format!("access key AKIA4YDCVEKVHZLMUNBG secret {k}"),
        format!("MINIO_SECRET_KEY={k}"),
        format!("S3_SECRET={k}"),
        format!("S3_SECRET_KEY={k}"),
        format!("variable \"aws_secret_key\" {{\n  default = \"{k}\"\n}}"),
        format!("aws_secret_access_key: '{k}'"),
        format!("{{\"SecretAccessKey\": \"{k}\"}}"),
        format!("--aws-secret-access-key {k}"),
        format!("aws configure set aws_secret_access_key {k}"),
        format!("AWS Secret Access Key [None]: {k}"),
    ] {
        assert!(hidden(&policy, &t, k), "{t}");
    }
    // A hash after such a label is no key: 40 hex digits, one case.
    for t in [
        "secret key: da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "MINIO_SECRET_KEY=DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
    ] {
        assert!(untouched(&policy, t), "{t}");
    }
}

/// A NANP number written as one run of digits, named by a label or its column's header.
#[test]
fn phone_numbers_in_one_run_after_a_label_are_found() {
    let policy = all_policy(true);
    for text in [
        "phone: 4155552671",
        "{\"phone\": \"4155552671\"}",
        "name,phone\nJane,4155552671\n",
        "Mobile: 14155552671",
        "<td>Telephone</td><td>4155552671</td>",
        "contact_number=4155552671",
    ] {
        assert!(hidden(&policy, text, "4155552671"), "{text}");
    }
    for text in [
        "id: 4155552671",
        "created 1717171717",
        "phone: 1234567890",
        "phone: 41555526710",
        "calls per day 4155552671",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// A password in a URL's query or a JDBC URL's properties, where no userinfo holds one.
#[test]
fn passwords_in_url_queries_are_found() {
    let policy = all_policy(true);
    for text in [
        "jdbc:postgresql://db:5432/app?user=admin&password=S3cr3tP4ss",
        "jdbc:sqlserver://db.example.com:1433;databaseName=app;user=sa;password=S3cr3tP4ss;",
        "GET https://api.example.com/login?username=bob&password=S3cr3tP4ss HTTP/1.1",
        "mongodb://db.example.com/app?authSource=admin&PWD=S3cr3tP4ss",
    ] {
        assert!(hidden(&policy, text, "S3cr3tP4ss"), "{text}");
    }
    // Stand-ins and other parameters stay.
    for text in [
        "jdbc:postgresql://db:5432/app?user=admin&password=${DB_PASSWORD}",
        "https://example.com/reset?password=changeme&next=/",
        "https://example.com/search?q=password&page=2",
        "https://example.com/login?user=bob&password=<password>",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// A database connection string's password (ADO.NET, ODBC, libpq, MySQL), as `.NET`'s
/// `appsettings.json` and code hold them.
#[test]
fn passwords_in_connection_strings_are_found() {
    let policy = all_policy(true);
    for text in [
        "Server=tcp:db.database.windows.net,1433;Database=app;User ID=sa;Password=MyS3cr3t!Pass;Encrypt=True;",
        "{\"ConnectionStrings\": {\"Default\": \"Host=db;Port=5432;Username=app;Password=MyS3cr3t!Pass\"}}",
        "var cs = \"Data Source=db;Initial Catalog=app;User Id=sa;Password=MyS3cr3t!Pass;\";",
        "Driver={ODBC Driver 18 for SQL Server};Server=db;UID=sa;Password={MyS3cr3t!Pass};",
        "server=db; database=app; user=sa; password='MyS3cr3t!Pass'",
        "Password=MyS3cr3t!Pass;Server=db;Database=app",
    ] {
        assert!(hidden(&policy, text, "MyS3cr3t!Pass"), "{text}");
    }
    for text in [
        // Stand-ins, and a password with no connection string around it.
        "Server=db;Database=app;User ID=sa;Password=${DB_PASSWORD};",
        "Server=db;Database=app;User ID=sa;Password=<password>;",
        "Server=db;Database=app;User ID=sa;Password=changeme;",
        "POSTGRES_PASSWORD=MyS3cr3t!Pass",
        "the form posts password=MyS3cr3t!Pass to the server",
        "Integrated Security=True;Server=db;Database=app",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// An Anthropic key wrapped over two lines, as a terminal shows a long key and a copy keeps
/// it: both lines are masked; a key that ends on its line leaves the next alone.
#[test]
fn a_wrapped_anthropic_key_is_masked_whole() {
    let policy = all_policy(true);
    let random = "Xk3pQ9vR2mT7wL5nB8yC1dF4gH6jK0sA3zE9uI2oP7q-Z_".repeat(3);
    let key = format!("sk-ant-api03-{}AA", &random[..93]);
    let key = key.as_str();
    assert_eq!(key.len(), 108);
    for cut in [40, 80, 100] {
        for br in ["\n", "\r\n"] {
            let text = format!(
                "export ANTHROPIC_API_KEY={}{br}{}\nnext line",
                &key[..cut],
                &key[cut..]
            );
            let out = sent(&policy, &prompt(&text)).unwrap();
            assert!(!out.contains(&key[cut..]), "{cut}: {out}");
            assert!(out.contains("next line"), "{out}");
        }
    }
    // A whole key, then a line of another word.
    let text = format!("{key}\nAbcdefghijklmnopqrstuvwxyzAA");
    let out = sent(&policy, &prompt(&text)).unwrap();
    assert!(out.contains("AbcdefghijklmnopqrstuvwxyzAA"), "{out}");
}

/// What is no secret: a development default in a URL (the user's name again), a ticket's or a
/// process's id shaped as a SIN.
#[test]
fn development_defaults_and_ids_are_left_alone() {
    let policy = all_policy(true);
    for text in [
        "postgres://postgres:postgres@localhost:5432/postgres",
        "mysql://root:root@127.0.0.1:3306/test",
        "DATABASE_URL=postgresql://app:app@db:5432/app",
        "ticket 130-692-544 resolved",
        "[pid 130-692-544] started",
        "Order #130-692-544 shipped",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
    for (text, value) in [
        ("postgres://postgres:Pg5ecret9@localhost/app", "Pg5ecret9"),
        ("my SIN is 130-692-544", "130-692-544"),
        ("SIN: 130-692-544", "130-692-544"),
    ] {
        assert!(hidden(&policy, text, value), "{text}");
    }
}

/// A card in a form's value (`+` for spaces) and on a magnetic stripe's tracks.
#[test]
fn cards_in_form_values_and_stripe_tracks_are_found() {
    let policy = all_policy(true);
    for (text, digits) in [
        (
            "POST /pay card=4539+1488+0343+6467&exp=12%2F27",
            "4539+1488+0343+6467",
        ),
        (
            "%B4111111111111111^DOE/JANE^27121010000000000000?",
            "4111111111111111",
        ),
        (
            ";4111111111111111=27121010000000000000?",
            "4111111111111111",
        ),
    ] {
        let out = sent(&policy, &prompt(text)).unwrap();
        assert!(!out.contains(digits), "{text}: {out}");
    }
    // Sums of numbers are no card.
    assert!(untouched(&policy, "total = 1200+3400+5600+7800"));
}

/// An encrypted JWT (JWE: five parts, the header naming its `enc`), with a key or directly
/// encrypted (an empty second part).
#[test]
fn encrypted_jwts_are_found() {
    let policy = all_policy(true);
    let tail = "48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";
    for jwe in [
        format!(
            "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.{tail}"
        ),
        format!("eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..{tail}"),
    ] {
        let text = format!("Authorization: Bearer {jwe}");
        let out = sent(&policy, &prompt(&text)).unwrap();
        assert!(!out.contains("XFBoMYUZodetZdvTiFvSkQ"), "{out}");
    }
    // A header without `enc`, and parts too short, are no token.
    assert!(untouched(&policy, "eyJhbGciOiJSUzI1NiJ9.abc.def.ghi.jkl"));
}

/// Text declared a picture or a recording is read: an image block's base64, a data URL, a
/// form's file part and an uploaded file; a real picture still goes unread.
#[test]
fn text_declared_media_is_read() {
    let policy = all_policy(false);
    let text = "notes: AKIAZ7QRSTUVWX2345AB and more";
    let enc = b64(text.as_bytes());
    for media in ["image/png", "image/jpeg", "image/webp", "audio/wav"] {
        let body = format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"{media}","data":"{enc}"}}}}]}}]}}"#
        );
        assert!(sent(&policy, &body).is_none(), "{media}");
        let chat = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:{media};base64,{enc}"}}}}]}}]}}"#
        );
        let v = policy
            .inspect(RouteKind::Completions, chat.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{media}");
        let (form_body, ct) = form(&[(
            "file",
            Some("filename=\"a.png\""),
            Some(media),
            text.as_bytes(),
        )]);
        let v = policy.inspect_upload(&form_body, Some(&ct)).unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{media}");
        // A PNG's signature before the text makes no picture of it.
        let fake = [&b"\x89PNG\r\n\x1a\n"[..], text.as_bytes()].concat();
        let v = policy.inspect_upload(&fake, Some(media)).unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{media}");
    }
    // A real picture is not read, whatever text its chunks hold.
    let png = crate::guard::containers::test_png(text.as_bytes(), b"");
    let body = format!(
        r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{}"}}}}]}}]}}"#,
        b64(&png)
    );
    assert!(sent(&policy, &body).is_some());
}

/// What a client writes into a cache breakpoint or a document's citations switch reaches the
/// provider: read as identifiers are (refused where a rule matches); the breakpoints the API
/// knows are not read.
#[test]
fn cache_breakpoints_and_citation_switches_are_read() {
    let policy = all_policy(false);
    let cc = r#"{"type":"ephemeral","ttl":"AKIAZ7QRSTUVWX2345AB","n":{"a":["x"]}}"#;
    for body in [
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"text","text":"hi","cache_control":{cc}}}]}}]}}"#
        ),
        format!(
            r#"{{"model":"m","max_tokens":5,"system":[{{"type":"text","text":"be brief","cache_control":{cc}}}],"messages":[{{"role":"user","content":"hi"}}]}}"#
        ),
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t1","content":[{{"type":"text","text":"ok","cache_control":{cc}}}],"cache_control":{cc}}}]}}]}}"#
        ),
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"a doc"},"citations":{"enabled":true,"n":"AKIAZ7QRSTUVWX2345AB"}}]}]}"#.to_owned(),
    ] {
        assert!(sent(&policy, &body).is_none(), "{body}");
    }
    let chat = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"hi","cache_control":{cc}}}]}}]}}"#
    );
    let v = policy
        .inspect(RouteKind::Completions, chat.as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)));
    // Claude Code's own breakpoints pass.
    for cc in [
        r#"{"type":"ephemeral"}"#,
        r#"{"type":"ephemeral","ttl":"1h"}"#,
    ] {
        let body = format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"text","text":"hi","cache_control":{cc}}}]}}]}}"#
        );
        assert_eq!(sent(&policy, &body).as_deref(), Some(body.as_str()));
    }
}

/// Text before a form's first part or after its last (dropped by conforming parsers, read by
/// others) is refused; line breaks there are not.
#[test]
fn text_around_a_forms_parts_is_refused() {
    let part =
        "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--";
    let ct = "multipart/form-data; boundary=XyZ";
    for body in [
        format!("my credit card 4111 1111 1111 1111\r\n{part}\r\n"),
        format!("{part}\r\nkey AKIAZ7QRSTUVWX2345AB\r\n"),
    ] {
        assert!(
            crate::model::form_parts(body.as_bytes(), ct).is_err(),
            "{body}"
        );
    }
    for body in [
        format!("{part}\r\n"),
        format!("\r\n{part}"),
        part.to_owned(),
    ] {
        assert!(
            crate::model::form_parts(body.as_bytes(), ct).is_ok(),
            "{body}"
        );
    }
}

/// The session's review: a token as a connection string's password is refused by the token's
/// rule (a password's mask had covered it); `tax ID` and `employee id` name a SIN; a
/// development default is the user's name exactly; a query's path or switch is no password;
/// libpq's blank-separated form.
#[test]
fn the_reviews_cases() {
    let two = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AnthropicKey, Detector::GithubToken]).reject("no"))
        .rule(Rule::detectors("pw", [Detector::UrlPassword]).mask())
        .build()
        .unwrap();
    for text in [
        format!("Server=db;User ID=sa;Password={GHP};"),
        format!("jdbc:sqlserver://db;user=sa;password={GHP}"),
    ] {
        assert!(sent(&two, &prompt(&text)).is_none(), "{text}");
    }
    let policy = all_policy(true);
    for (text, value) in [
        ("tax ID: 130-692-544", "130-692-544"),
        ("employee id 130-692-544", "130-692-544"),
        ("per case 130-692-544", "130-692-544"),
        ("mysql://Admin:admin@db/app", "admin@db"),
        (
            "host=db user=app password=S3cr3tP4ss dbname=app",
            "S3cr3tP4ss",
        ),
    ] {
        let out = sent(&policy, &prompt(text)).unwrap();
        assert!(!out.contains(value), "{text}: {out}");
    }
    for text in [
        "http://localhost:8080/?pwd=/home/alice/project",
        "https://api.example.com/v1/check?pass=true&x=1",
        "postgres://app:app@db/app",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// A nine-digit SSN or a phone number in an SQL `INSERT`'s rows, named by its column.
#[test]
fn values_in_sql_rows_are_named_by_their_columns() {
    let policy = all_policy(true);
    for (text, value) in [
        (
            "INSERT INTO employees (name, ssn) VALUES ('Jane', '536228726');",
            "536228726",
        ),
        (
            "INSERT INTO employees (name, ssn) VALUES ('Jane', 536228726);",
            "536228726",
        ),
        (
            "insert into people (`id`, `full_name`, `ssn`, `phone`) values\n  (1, 'Doe, Jane', '536228726', '4155552671'),\n  (2, 'Roe, Bob', '536228727', '4155552672');",
            "536228727",
        ),
        (
            "INSERT INTO people (name, phone) VALUES ('Bob', '4155552671')",
            "4155552671",
        ),
    ] {
        assert!(hidden(&policy, text, value), "{text}");
    }
    // Another column's nine digits stay.
    for text in [
        "INSERT INTO orders (id, ssn_checked) VALUES (536228726, true);",
        "INSERT INTO orders (order_no, name) VALUES ('536228726', 'Jane');",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}

/// A nine-digit SSN in a table aligned with blanks (a printed DataFrame, a fixed-width report),
/// named by its column's header; prose with single spaces is no table.
#[test]
fn values_in_aligned_tables_are_named_by_their_columns() {
    let policy = all_policy(true);
    for (text, value) in [
        (
            "   name        ssn\n0  Jane  536228726\n1   Bob  536228727",
            "536228727",
        ),
        (
            "NAME      SSN        CITY\nJane Doe  536228726  Austin\n",
            "536228726",
        ),
    ] {
        assert!(hidden(&policy, text, value), "{text}");
    }
    for text in [
        "   name     order\n0  Jane  536228726",
        "the ssn\nwas 536228726 here",
    ] {
        assert!(untouched(&policy, text), "{text}");
    }
}
