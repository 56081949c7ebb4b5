//! Policy tests on realistic request bodies.

use super::*;
use crate::detect::Detector;
use crate::route::RouteKind;

/// A Claude Code-shaped request after one Read tool call: system blocks with cache control, a
/// system-reminder block, a thinking block with a signature, a tool_use, a tool_result holding
/// `secret`, a `role: system` message and the latest user turn holding `prompt`.
fn claude_code_body(secret: &str, prompt: &str) -> String {
    let secret = serde_json::Value::from(secret);
    let prompt = serde_json::Value::from(prompt);
    format!(
        r#"{{"model":"claude-sonnet-4-5-20250929","max_tokens":32000,"stream":true,
"thinking":{{"type":"enabled","budget_tokens":31999}},
"metadata":{{"user_id":"{{\"device_id\":\"abc\",\"session_id\":\"s1\"}}"}},
"system":[{{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude.","cache_control":{{"type":"ephemeral"}}}},
 {{"type":"text","text":"\nYou are an interactive CLI tool.\n\n# Tone\n- Be concise.","cache_control":{{"type":"ephemeral"}}}}],
"messages":[
 {{"role":"user","content":[{{"type":"text","text":"<system-reminder>\nAs you answer, use the context.\n</system-reminder>"}},{{"type":"text","text":"Read notes.txt","cache_control":{{"type":"ephemeral"}}}}]}},
 {{"role":"assistant","content":[{{"type":"thinking","thinking":"The user wants notes.txt. credit card 4111111111111111","signature":"EqQBCkgIBxABGAIiQL+sig/=="}},{{"type":"text","text":"I'll read it."}},{{"type":"tool_use","id":"toolu_01","name":"Read","input":{{"file_path":"/home/u/notes.txt","limit":2000}}}}]}},
 {{"role":"user","content":[{{"type":"tool_result","tool_use_id":"toolu_01","content":[{{"type":"text","text":{secret}}}]}},{{"type":"text","text":{prompt}}}]}},
 {{"role":"system","content":"Remember the user's preferences."}}],
"tools":[{{"name":"Read","description":"Reads a file from the local filesystem.","input_schema":{{"type":"object","properties":{{"file_path":{{"type":"string"}}}}}}}}]}}"#
    )
}

fn seed_policy() -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .unwrap()
}

fn mask_policy() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("pii", [Detector::CreditCard, Detector::AwsAccessKey]).mask())
        .build()
        .unwrap()
}

fn decision(p: &Policy, body: &str) -> Decision {
    p.inspect(RouteKind::Messages, body.as_bytes())
        .unwrap()
        .into_decision()
}

fn rejected(p: &Policy, body: &str) -> bool {
    matches!(decision(p, body), Decision::Reject(_))
}

/// Whether a rejecting rule's hit was removed from the body (text of an earlier turn).
fn removed(p: &Policy, body: &str) -> bool {
    match decision(p, body) {
        Decision::Rewrite(out) => String::from_utf8(out)
            .unwrap()
            .contains("[removed by agw: rule "),
        _ => false,
    }
}

/// `masked` equals `orig` with each `(span, placeholder)` replaced once, in order, and
/// nothing else changed; and it parses as JSON.
fn assert_only_spans_changed(orig: &str, masked: &[u8], spans: &[(&str, &str)]) {
    serde_json::from_slice::<serde_json::Value>(masked).expect("masked body is JSON");
    let mut expected = String::new();
    let mut rest = orig;
    for (span, placeholder) in spans {
        let i = rest
            .find(span)
            .unwrap_or_else(|| panic!("span {span:?} not in body"));
        expected.push_str(&rest[..i]);
        expected.push_str(placeholder);
        rest = &rest[i + span.len()..];
    }
    expected.push_str(rest);
    assert_eq!(std::str::from_utf8(masked).unwrap(), expected);
}

#[test]
fn seed_rule_rejects_latest_prompt() {
    let p = seed_policy();
    let body = claude_code_body("ok", "What is a credit card");
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    match v.decision() {
        Decision::Reject(r) => {
            assert_eq!(&*r.rule, "credit-card");
            assert_eq!(r.status.as_u16(), 400);
            assert_eq!(r.message, "Rejected due to inappropriate content");
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(v.hits()[0].path, "messages[2].content[1].text");
}

#[test]
fn seed_rule_semantics_are_exact() {
    let p = seed_policy();
    // Case-sensitive, as in the original; thinking blocks are not prompt text (tool
    // definitions are: see `tool_definitions_are_read_and_known_clean_ones_are_not_read_again`).
    for ok in [
        "What is a Credit Card",
        "creditcard",
        "credit  card",
        "hello",
    ] {
        assert!(!rejected(&p, &claude_code_body("fine", ok)), "{ok}");
    }
}

#[test]
fn evasions_are_caught() {
    let p = seed_policy();
    let cases = [
        r#"What is a \u0063redit card"#,
        r#"\u0063\u0072\u0065\u0064\u0069\u0074\u0020\u0063\u0061\u0072\u0064"#,
        "cre\u{200B}dit card",
        r#"cre\u200bdit c\u00adard"#,
        "credit\u{2060} card",
        "\u{FEFF}credit card",
        "ｃｒｅｄｉｔ ｃａｒｄ",
        "credit\u{00A0}card",
        "c\u{E0072}redit card",
        // Combining marks (Mn, Me) are dropped; precomposed letters lose their marks.
        "cre\u{301}dit card",
        r#"cre\u0301dit card"#,
        "c̲r̲e̲d̲i̲t̲ c̲a̲r̲d̲",
        "c\u{20DD}r\u{20DD}edit ca\u{489}rd",
        "crédit cärd",
        r#"cr\u00e9dit card"#,
        // Every format character (Cf) is removed; a braille blank reads as a space.
        "c\u{600}redit\u{605} c\u{6DD}ard",
        "cr\u{70F}ed\u{8E2}it card",
        r#"cr\ud804\udcbdedit card"#,
        "cre\u{13430}dit c\u{1343F}ard",
        "cred\u{1BCA0}it\u{1BCA3} card",
        "credit\u{2800}card",
        "credit\u{1680}card",
    ];
    for raw in cases {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"{raw}"}}]}}]}}"#
        );
        assert!(rejected(&p, &body), "not caught: {raw:?}");
    }
}

#[test]
fn unicode_folds_do_not_over_reach() {
    let p = seed_policy();
    for ok in [
        // A digit is not a letter, a visible braille pattern is not a blank, a spacing
        // character between the words is not removed.
        "cred\u{661}t card",
        "credit\u{2801}card",
        "credit\u{00B7}card",
        "cre-dit card",
        // A mark does not join the words it separates.
        "credit\u{301}card",
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{ok}"}}]}}"#);
        assert!(!rejected(&p, &body), "{ok:?}");
    }
    let cards = mask_policy();
    for ok in [
        // Fails the Luhn check once read as ASCII digits.
        "card ٤١١١ ١١١١ ١١١١ ١١١٢",
        // Too few digits.
        "card ٤١١١ ١١١١",
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{ok}"}}]}}"#);
        assert_eq!(decision(&cards, &body), Decision::Allow, "{ok:?}");
    }
}

#[test]
fn digits_of_every_script_are_detected_and_masked_exactly() {
    let p = Policy::builder()
        .rule(Rule::detectors("pii", [Detector::CreditCard, Detector::UsSsn]).mask())
        .build()
        .unwrap();
    let cases = [
        // Arabic-Indic, raw and escaped.
        (
            "card ٤١١١ ١١١١ ١١١١ ١١١١.",
            "٤١١١ ١١١١ ١١١١ ١١١١",
            "<CREDIT_CARD>",
        ),
        (
            r"card \u0664\u0661\u0661\u0661-1111-\u0661\u0661\u0661\u0661-1111.",
            r"\u0664\u0661\u0661\u0661-1111-\u0661\u0661\u0661\u0661-1111",
            "<CREDIT_CARD>",
        ),
        // Extended Arabic-Indic, Devanagari, mixed with ASCII.
        (
            "card ۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱ ok",
            "۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱",
            "<CREDIT_CARD>",
        ),
        ("ssn ७८७-६५-४३२० ok", "७८७-६५-४३२०", "<US_SSN>"),
        ("ssn 078-०5-112० ok", "078-०5-112०", "<US_SSN>"),
        // Digits with a mark on them: the mark goes with the digit.
        (
            "card 4\u{301}111 1111 1111 1111\u{301}.",
            "4\u{301}111 1111 1111 1111\u{301}",
            "<CREDIT_CARD>",
        ),
    ];
    for (text, span, placeholder) in cases {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let Decision::Rewrite(masked) = decision(&p, &body) else {
            panic!("not masked: {text:?}")
        };
        assert_only_spans_changed(&body, &masked, &[(span, placeholder)]);
    }
}

#[test]
fn masking_covers_the_marks_and_format_characters_of_a_match() {
    let p = Policy::builder()
        .rule(Rule::regex("w", ["credit card"]).mask_with("[x]"))
        .build()
        .unwrap();
    let cases = [
        (r"my cre\u0301dit card is", r"cre\u0301dit card"),
        ("my cre\u{301}dit card is", "cre\u{301}dit card"),
        ("my cr\u{e9}dit card\u{332} is", "cr\u{e9}dit card\u{332}"),
        ("my c̲r̲e̲d̲i̲t̲ c̲a̲r̲d̲ is", "c̲r̲e̲d̲i̲t̲ c̲a̲r̲d̲"),
        (r"my cre\u0600dit\u2800card is", r"cre\u0600dit\u2800card"),
    ];
    for (text, span) in cases {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let Decision::Rewrite(masked) = decision(&p, &body) else {
            panic!("not masked: {text:?}")
        };
        assert_only_spans_changed(&body, &masked, &[(span, "[x]")]);
    }
}

#[test]
fn patterns_are_folded_like_text() {
    // A pattern written with marks or other digits matches the folded text, whatever the text
    // was written with.
    let p = Policy::builder()
        .rule(Rule::regex("r", ["crédit", "(?i)ÇARD", "[٠-٩]{3}x"]).reject("no"))
        .rule(Rule::literals("l", ["secre\u{301}t", "cafe\u{301}"]).reject("no"))
        .build()
        .unwrap();
    for text in [
        "credit",
        "cre\u{301}dit",
        "card",
        "Çard",
        "123x",
        "١٢٣x",
        "secret",
        "sécret",
        "café",
        "CAFE",
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let want = text != "CAFE";
        assert_eq!(rejected(&p, &body), want, "{text:?}");
    }
}

#[test]
fn phrase_split_across_blocks_is_found() {
    let p = seed_policy();
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"tell me about credit"},{"type":"text","text":" card fraud"}]}]}"#;
    assert!(rejected(&p, body));
    // Blocks of different turns are not joined; consecutive user messages are one turn (see
    // `consecutive_user_messages_are_read_as_one_turn`).
    let body = r#"{"messages":[{"role":"user","content":"credit"},{"role":"assistant","content":"?"},{"role":"user","content":" card"}]}"#;
    assert!(!rejected(&p, body));
    let body =
        r#"{"messages":[{"role":"user","content":"credit"},{"role":"user","content":" card"}]}"#;
    assert!(rejected(&p, body));
}

#[test]
fn every_prompt_field_is_scanned() {
    let p = seed_policy();
    let cc = "credit card";
    let bodies = [
        format!(r#"{{"system":"{cc}","messages":[]}}"#),
        format!(r#"{{"system":[{{"type":"text","text":"{cc}"}}],"messages":[]}}"#),
        format!(r#"{{"messages":[{{"role":"user","content":"{cc}"}}]}}"#),
        format!(r#"{{"messages":[{{"role":"system","content":"{cc}"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":"{cc}"}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"tool_use_id":"t","content":[{{"type":"text","text":"{cc}"}}],"type":"tool_result"}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"Bash","input":{{"cmd":["echo","{cc}"]}}}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"text","media_type":"text/plain","data":"{cc}"}}}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"search_result","source":"s","title":"t","content":[{{"type":"text","text":"{cc}"}}]}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"future_block","text":"{cc}"}}]}}]}}"#
        ),
    ];
    for body in &bodies {
        assert!(rejected(&p, body), "not scanned: {body}");
    }
}

#[test]
fn search_fetch_results_citations_and_tool_names_are_scanned() {
    let p = seed_policy();
    let cc = "credit card";
    let turn = |blocks: String| {
        format!(
            r#"{{"messages":[{{"role":"user","content":"q"}},{{"role":"assistant","content":[{blocks}]}}]}}"#
        )
    };
    let search = |result: &str| {
        format!(
            r#"{{"type":"server_tool_use","id":"s","name":"web_search","input":{{"query":"q"}}}},{{"type":"web_search_tool_result","tool_use_id":"s","content":[{result}]}}"#
        )
    };
    let bodies = [
        turn(search(&format!(
            r#"{{"type":"web_search_result","url":"https://e.com","title":"{cc}","encrypted_content":"e","page_age":null}}"#
        ))),
        turn(search(&format!(
            r#"{{"url":"https://e.com/{cc}","title":"t","type":"web_search_result"}}"#
        ))),
        turn(format!(
            r#"{{"type":"text","text":"x","citations":[{{"type":"char_location","cited_text":"{cc}","document_index":0,"document_title":"d","start_char_index":0,"end_char_index":5}}]}}"#
        )),
        turn(format!(
            r#"{{"citations":[{{"type":"web_search_result_location","cited_text":"c","url":"u","title":"{cc}","encrypted_index":"e"}}],"text":"x","type":"text"}}"#
        )),
        turn(format!(
            r#"{{"type":"text","text":"x","citations":[{{"type":"search_result_location","cited_text":"c","source":"{cc}","title":null,"search_result_index":0}}]}}"#
        )),
        turn(format!(
            r#"{{"type":"tool_use","id":"t","name":"{cc}","input":{{}}}}"#
        )),
        turn(format!(
            r#"{{"type":"code_execution_tool_result","tool_use_id":"s","content":{{"type":"code_execution_result","stdout":"{cc}","stderr":"","return_code":0,"content":[]}}}}"#
        )),
        turn(format!(
            r#"{{"type":"web_fetch_tool_result","tool_use_id":"s","content":{{"type":"web_fetch_result","url":"https://e.com","content":{{"type":"document","source":{{"type":"text","media_type":"text/plain","data":"{cc}"}},"title":"t"}}}}}}"#
        )),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"search_result","source":"{cc}","title":"t","content":[{{"type":"text","text":"x"}}]}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"search_result","source":"s","title":"t","content":[{{"type":"text","text":"x","citations":[{{"type":"char_location","cited_text":"{cc}"}}]}}]}}]}}]}}"#
        ),
    ];
    for body in &bodies {
        assert!(rejected(&p, body), "not scanned: {body}");
    }
}

#[test]
fn openai_fields_are_scanned() {
    let p = seed_policy();
    let cc = "credit card";
    let bodies = [
        format!(r#"{{"model":"gpt","messages":[{{"role":"user","content":"{cc}"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"{cc}"}},{{"type":"image_url","image_url":{{"url":"data:,"}}}}]}}]}}"#
        ),
        format!(r#"{{"messages":[{{"role":"tool","tool_call_id":"c","content":"{cc}"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"assistant","content":null,"tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":"{{\"q\":\"{cc}\"}}"}}}}]}}]}}"#
        ),
        format!(r#"{{"messages":[{{"role":"developer","content":"{cc}"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"assistant","content":null,"tool_calls":[{{"id":"c","type":"custom","custom":{{"name":"x","input":"{cc}"}}}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"{cc}","arguments":"{{}}"}}}}]}}]}}"#
        ),
        format!(
            r#"{{"messages":[{{"role":"assistant","function_call":{{"name":"{cc}","arguments":"{{}}"}}}}]}}"#
        ),
        format!(r#"{{"messages":[{{"role":"assistant","content":null,"refusal":"{cc}"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"assistant","content":[{{"type":"refusal","refusal":"{cc}"}}]}}]}}"#
        ),
        format!(r#"{{"messages":[{{"role":"user","name":"{cc}","content":"hi"}}]}}"#),
        format!(r#"{{"messages":[{{"role":"system","name":"{cc}","content":"hi"}}]}}"#),
        format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"file","file":{{"filename":"{cc}.txt","file_data":"data:text/plain;base64,eA=="}}}}]}}]}}"#
        ),
    ];
    for body in &bodies {
        let d = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
        assert!(
            matches!(d.decision(), Decision::Reject(_)),
            "not scanned: {body}"
        );
    }
}

#[test]
fn thinking_and_images_pass_untouched_and_unknown_fields_are_read() {
    let p = seed_policy();
    let body = r#"{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"credit card","signature":"s"},{"type":"redacted_thinking","data":"credit card"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"credit card"}}]}]}"#;
    assert_eq!(decision(&p, body), Decision::Allow);
    // A field agw has no reading for is read as text (seventh review).
    let body =
        r#"{"messages":[{"role":"user","content":"hi"}],"new_field":{"text":"credit card"}}"#;
    assert!(matches!(decision(&p, body), Decision::Reject(_)));
    // Opaque data: encrypted search results and citation indexes, file data in base64,
    // images sent as `data:` URLs. (Ids are read as identifiers since the seventeenth
    // session: `seventeenth_session.rs`.)
    let body = r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"f","file_data":"JVBERi0xLjcKJcfs","file_id":"file-1"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,credit card"}}]},{"role":"assistant","content":[{"type":"web_search_tool_result","tool_use_id":"s","content":[{"type":"web_search_result","url":"u","title":"t","encrypted_content":"credit card"}]},{"type":"text","text":"x","citations":[{"type":"web_search_result_location","cited_text":"c","encrypted_index":"credit card","file_id":"file-2"}]},{"type":"thinking","thinking":"t","citations":[{"cited_text":"credit card"}],"name":"credit card"}]}]}"#;
    assert_eq!(decision(&p, body), Decision::Allow);
    let p = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
    assert!(p.is_allow());
}

/// Files carried inline whose contents are text are read decoded: a `data:` URL (base64 or
/// percent-escaped), a chat `file` part's or a Responses `input_file`'s `file_data`, an
/// Anthropic document's base64 source, also inside a tool result. A match refuses, a masking
/// rule's too (the encoded bytes are not rewritten); binary media types are not decoded
/// (eighth red-team review).
#[test]
fn inline_text_files_are_read_decoded() {
    const ENC: &str = "bXkgY3JlZGl0IGNhcmQ="; // "my credit card"
    let p = seed_policy();
    for (kind, body) in [
        (
            RouteKind::Messages,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"text/plain","data":"{ENC}"}}}}]}}]}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":[{{"type":"document","source":{{"data":"{ENC}","media_type":"text/csv","type":"base64"}}}}]}}]}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"type":"file","file":{{"filename":"a.txt","file_data":"data:text/plain;base64,{ENC}"}}}}]}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"type":"file","file":{{"file_data":"{ENC}"}}}}]}}]}}"#),
        ),
        (
            RouteKind::Responses,
            format!(r#"{{"input":[{{"role":"user","content":[{{"type":"input_file","filename":"a.txt","file_data":"data:text/plain;base64,{ENC}"}}]}}]}}"#),
        ),
        (
            RouteKind::Completions,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"d\u0061ta:,my%20credit%20card"}}]}]}"#.to_owned(),
        ),
        // The regression round's: a prompt's variables, an instructions item, a `file_url`
        // holding a data URL, a fetched page's base64 document, base64 percent-encoded.
        (
            RouteKind::Responses,
            format!(r#"{{"prompt":{{"id":"p","variables":{{"doc":{{"type":"input_file","file_data":"data:text/plain;base64,{ENC}"}}}}}},"input":"hi"}}"#),
        ),
        (
            RouteKind::Responses,
            format!(r#"{{"instructions":[{{"role":"developer","content":[{{"type":"input_file","file_url":"data:text/plain;base64,{ENC}"}}]}}],"input":"hi"}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"messages":[{{"role":"user","content":"fetch"}},{{"role":"assistant","content":[{{"type":"web_fetch_tool_result","tool_use_id":"t","content":{{"type":"web_fetch_result","url":"https://e.x","content":{{"type":"document","source":{{"type":"base64","media_type":"text/plain","data":"{ENC}"}}}}}}}}]}}]}}"#),
        ),
        (
            RouteKind::Passthrough,
            format!(r#"{{"items":[{{"x":{{"type":"b\u0061se64","media_type":"text/plain","data":"{ENC}"}}}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"type":"file","file":{{"file_data":"data:text/plain;base64,{}"}}}}]}}]}}"#, ENC.replace('=', "%3D")),
        ),
        // A black-box review's: Gemini's inline data, Bedrock's document bytes (in a tool
        // result too), a stored prompt's variable with raw base64 `file_data`.
        (
            RouteKind::Passthrough,
            format!(r#"{{"contents":[{{"role":"user","parts":[{{"inlineData":{{"mimeType":"text/plain","data":"{ENC}"}}}}]}}]}}"#),
        ),
        (
            RouteKind::Passthrough,
            format!(r#"{{"contents":[{{"parts":[{{"inline_data":{{"mime_type":"application/json","data":"{ENC}"}}}}]}}]}}"#),
        ),
        (
            RouteKind::Passthrough,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"document":{{"format":"txt","name":"d","source":{{"bytes":"{ENC}"}}}}}}]}}]}}"#),
        ),
        (
            RouteKind::Passthrough,
            format!(r#"{{"messages":[{{"role":"user","content":[{{"toolResult":{{"toolUseId":"t","content":[{{"document":{{"format":"md","name":"d","source":{{"bytes":"{ENC}"}}}}}}]}}}}]}}]}}"#),
        ),
        (
            RouteKind::Responses,
            format!(r#"{{"prompt":{{"id":"p","variables":{{"v":{{"type":"input_file","filename":"a.txt","file_data":"{ENC}"}}}}}},"input":"hi"}}"#),
        ),
    ] {
        let v = p.inspect(kind, body.as_bytes()).unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{body}");
        // Found as a file, or as base64 text in the string that holds it (eighteenth
        // session): either way refused.
        assert!(!v.hits().is_empty(), "{body}");
    }
    // A masking rule's match refuses: the file cannot be rewritten in place.
    let body = r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"text/plain","data":"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx"}}]}]}"#;
    assert!(matches!(
        decision(&mask_policy(), body),
        Decision::Reject(_)
    ));
    // A second media type, which a parser may read instead, is refused as a second `type` is.
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"text/plain","media_type":"application/pdf","data":"{ENC}"}}}}]}}]}}"#
    );
    assert!(p.inspect(RouteKind::Messages, body.as_bytes()).is_err());
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"text/plain","data":"{ENC}","data":"eA=="}}}}]}}]}}"#
    );
    assert!(p.inspect(RouteKind::Messages, body.as_bytes()).is_err());
    // Declared images are read where they do not start as one (twenty-fourth session); PDFs
    // are read (a PDF of bare text as its text).
    for (media, read) in [("image/png", true), ("application/pdf", true)] {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"base64","media_type":"{media}","data":"{ENC}"}}}}]}}]}}"#
        );
        assert_eq!(decision(&p, &body) != Decision::Allow, read, "{media}");
    }
}

#[test]
fn masking_is_byte_exact_in_tool_results() {
    let p = mask_policy();
    let secret = "aws AKIAIOSFODNN7EXAMPLE and card 4111 1111 1111 1111.";
    let body = claude_code_body(secret, "summarise it");
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Rewrite(masked) = v.decision() else {
        panic!("{:?}", v.decision())
    };
    assert_only_spans_changed(
        &body,
        masked,
        &[
            ("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            ("4111 1111 1111 1111", "<CREDIT_CARD>"),
        ],
    );
    let text = std::str::from_utf8(masked).unwrap();
    assert!(text.contains("aws <AWS_ACCESS_KEY> and card <CREDIT_CARD>."));
    // The thinking block (which also holds a card number) is untouched, signature included.
    assert!(text.contains(r#""thinking":"The user wants notes.txt. credit card 4111111111111111","signature":"EqQBCkgIBxABGAIiQL+sig/==""#));
    assert_eq!(v.hits().len(), 2);
    assert!(
        v.hits()
            .iter()
            .all(|h| h.path == "messages[2].content[0].content[0].text")
    );
}

#[test]
fn masking_maps_escapes_and_invisibles_back_to_source() {
    let p = Policy::builder()
        .rule(
            Rule::literals("word", ["secret plan"])
                .case_insensitive(true)
                .mask(),
        )
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"a \u0053ecret\u200b PLAN\n here, ｓｅｃｒｅｔ plan"}]}"#;
    let Decision::Rewrite(masked) = decision(&p, body) else {
        panic!()
    };
    assert_eq!(
        std::str::from_utf8(&masked).unwrap(),
        r#"{"messages":[{"role":"user","content":"a <MASKED>\n here, <MASKED>"}]}"#
    );
}

#[test]
fn masking_across_blocks_edits_both() {
    let p = Policy::builder()
        .rule(Rule::literals("w", ["credit card"]).mask_with("[x]"))
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my credit"},{"type":"text","text":" card is"}]}]}"#;
    let Decision::Rewrite(masked) = decision(&p, body) else {
        panic!()
    };
    assert_eq!(
        std::str::from_utf8(&masked).unwrap(),
        r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my [x]"},{"type":"text","text":" is"}]}]}"#
    );
}

/// A match that runs to the end of a later string would leave that string empty, and
/// Anthropic's API refuses an empty text block or message: the emptied string gets the
/// placeholder too (found by the third red-team review).
#[test]
fn masking_never_leaves_an_emptied_block_or_message() {
    let p = Policy::builder()
        .rule(Rule::detectors("d", [Detector::CreditCard, Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    for (body, expect) in [
        (
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my card is 4111 1111"},{"type":"text","text":" 1111 1111"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"my card is <CREDIT_CARD>"},{"type":"text","text":"<CREDIT_CARD>"}]}]}"#,
        ),
        (
            r#"{"messages":[{"role":"user","content":"key AKIAUJZDEG"},{"role":"user","content":"XDNCF32EPF"}]}"#,
            r#"{"messages":[{"role":"user","content":"key <AWS_ACCESS_KEY>"},{"role":"user","content":"<AWS_ACCESS_KEY>"}]}"#,
        ),
        // A later string that keeps some text keeps only it.
        (
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"card 4111 1111"},{"type":"text","text":" 1111 1111 ok"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"card <CREDIT_CARD>"},{"type":"text","text":" ok"}]}]}"#,
        ),
    ] {
        let Decision::Rewrite(masked) = decision(&p, body) else {
            panic!("{body}")
        };
        assert_eq!(std::str::from_utf8(&masked).unwrap(), expect);
    }
}

/// A long JSON number in a tool's input or output is read like text (a card sent as a number,
/// found by the third red-team review), and masking replaces it with a JSON string; short
/// numbers are not read.
#[test]
fn long_numbers_in_tool_data_are_read_and_masked_as_strings() {
    let mask = Policy::builder()
        .rule(Rule::detectors("d", [Detector::CreditCard, Detector::Phone]).mask())
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Pay","input":{"card":4111111111111111,"phone":14155552671,"qty":2,"id":12345678}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":{"stdout":"ok","result":{"n":5555555555554444}}}]}]}"#;
    let Decision::Rewrite(masked) = decision(&mask, body) else {
        panic!("not masked")
    };
    let v: serde_json::Value = serde_json::from_slice(&masked).unwrap();
    let input = &v["messages"][0]["content"][0]["input"];
    assert_eq!(input["card"], "<CREDIT_CARD>");
    assert_eq!(input["qty"], 2);
    assert_eq!(input["id"], 12345678);
    assert_eq!(
        v["messages"][1]["content"][0]["content"]["result"]["n"],
        "<CREDIT_CARD>"
    );
    let reject = Policy::builder()
        .rule(Rule::detectors("d", [Detector::CreditCard]).reject("no cards"))
        .build()
        .unwrap();
    let passthrough = r#"{"order":{"card":4111111111111111}}"#;
    let v = reject
        .inspect(RouteKind::Passthrough, passthrough.as_bytes())
        .unwrap();
    assert!(
        matches!(v.decision(), Decision::Reject(_)),
        "{:?}",
        v.decision()
    );
}

#[test]
fn placeholder_is_json_escaped() {
    let p = Policy::builder()
        .rule(Rule::literals("w", ["x"]).mask_with("\"<q>\"\\"))
        .build()
        .unwrap();
    let Decision::Rewrite(m) = decision(&p, r#"{"messages":[{"role":"user","content":"axb"}]}"#)
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(v["messages"][0]["content"], "a\"<q>\"\\b");
}

#[test]
fn scope_latest_skips_history_and_system() {
    let p = Policy::builder()
        .rule(
            Rule::regex("cc", ["credit card"])
                .scope(Scope::Latest)
                .reject("no"),
        )
        .build()
        .unwrap();
    let old = r#"{"system":"credit card","messages":[{"role":"assistant","content":"credit card"},{"role":"assistant","content":"no"},{"role":"user","content":"ok"}]}"#;
    assert_eq!(decision(&p, old), Decision::Allow);
    // Older text the client wrote is still read by rejecting rules, only to be removed.
    let old = r#"{"system":"credit card","messages":[{"role":"user","content":"credit card"},{"role":"assistant","content":"no"},{"role":"user","content":"ok"}]}"#;
    match decision(&p, old) {
        Decision::Rewrite(out) => assert_only_spans_changed(
            old,
            &out,
            &[(
                "\"content\":\"credit card\"",
                "\"content\":\"[removed by agw: rule cc]\"",
            )],
        ),
        d => panic!("{d:?}"),
    }
    let new = r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"no"},{"role":"user","content":"ok"},{"role":"system","content":"credit card"}]}"#;
    assert!(rejected(&p, new));
    // The Claude Code body's prompt is after the last assistant turn.
    assert!(rejected(&p, &claude_code_body("x", "credit card")));
    // ... and its tool result too, which is removed (a text block follows it).
    let body = claude_code_body("credit card", "x");
    let Decision::Rewrite(out) = decision(&p, &body) else {
        panic!("not removed")
    };
    assert!(!String::from_utf8(out).unwrap().contains("credit card\""));
}

#[test]
fn field_filter() {
    let tool_only = Policy::builder()
        .rule(
            Rule::regex("cc", ["credit card"])
                .fields([Field::ToolOutput].into_iter().collect())
                .reject("no"),
        )
        .build()
        .unwrap();
    // The tool result is not the final prompt (a text block follows it): it is removed.
    let body = claude_code_body("credit card", "x");
    match decision(&tool_only, &body) {
        Decision::Rewrite(out) => assert_only_spans_changed(
            &body,
            &out,
            &[("\"credit card\"", "\"[removed by agw: rule cc]\"")],
        ),
        d => panic!("{d:?}"),
    }
    let tool_loop = r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Read","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"credit card"}]}]}"#;
    assert!(rejected(&tool_only, tool_loop));
    assert!(!rejected(&tool_only, &claude_code_body("x", "credit card")));
    let input_only = Policy::builder()
        .rule(
            Rule::literals("path", ["/home/u/notes.txt"])
                .fields(Fields::empty().with(Field::ToolInput))
                .reject("no"),
        )
        .build()
        .unwrap();
    // The tool call is in an earlier assistant turn: the hit removes it (twelfth session).
    assert!(removed(&input_only, &claude_code_body("x", "y")));
    let system_only = Policy::builder()
        .rule(
            Rule::literals("p", ["preferences"])
                .fields(Fields::empty().with(Field::System))
                .audit(),
        )
        .build()
        .unwrap();
    let v = system_only
        .inspect(RouteKind::Messages, claude_code_body("x", "y").as_bytes())
        .unwrap();
    assert!(v.is_allow());
    assert_eq!(v.hits()[0].path, "messages[3].content");
    assert_eq!(v.hits()[0].action, ActionKind::Audit);
}

#[test]
fn literal_options() {
    let p = Policy::builder()
        .rule(
            Rule::literals("w", ["card", "ÜBER"])
                .case_insensitive(true)
                .whole_word(true)
                .reject("no"),
        )
        .build()
        .unwrap();
    for (text, hit) in [
        ("my CARD", true),
        ("cards", false),
        ("discard", false),
        ("(card)", true),
        ("über alles", true),
        ("überall", false),
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        assert_eq!(rejected(&p, &body), hit, "{text}");
    }
}

#[test]
fn reject_wins_over_mask_and_first_rule_message() {
    let p = Policy::builder()
        .rule(Rule::literals("m", ["card"]).mask())
        .rule(Rule::literals("r1", ["credit"]).reject("first"))
        .rule(Rule::literals("r2", ["credit card"]).reject("second"))
        .build()
        .unwrap();
    match decision(
        &p,
        r#"{"messages":[{"role":"user","content":"credit card"}]}"#,
    ) {
        Decision::Reject(r) => assert!(r.message == "first" || r.message == "second"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn bad_bodies_fail_closed() {
    let p = seed_policy();
    for bad in [
        "not json",
        "",
        "[]",
        r#"{"messages":"credit card"}"#,
        r#"{"messages":[1]}"#,
        r#"{"messages":[{"role":"user","content":5}]}"#,
        r#"{"messages":[{"role":"user","content":[5]}]}"#,
        r#"{"messages":[],"messages":[]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"text","type":"image","text":"x"}]}]}"#,
        r#"{"system":5}"#,
        r#"{"messages":[{"role":"user","content":"x"}]} trailing"#,
    ] {
        let e = p.inspect(RouteKind::Messages, bad.as_bytes());
        assert!(e.is_err(), "{bad:?} accepted");
        let msg = e.unwrap_err().error_body().message().to_owned();
        assert!(
            msg.starts_with("agw could not inspect the request body"),
            "{msg}"
        );
    }
    let deep = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_use","input":{}1{}}}]}}]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(p.inspect(RouteKind::Messages, deep.as_bytes()).is_err());
    // Model listings and explicit opt-outs are not read at all; a passthrough body must be
    // JSON, unless there is none.
    for kind in [RouteKind::Models, RouteKind::Unguarded] {
        assert!(p.inspect(kind, b"not json").unwrap().is_allow());
    }
    assert!(p.inspect(RouteKind::Passthrough, b"not json").is_err());
    assert!(p.inspect(RouteKind::Passthrough, b"").unwrap().is_allow());
}

#[test]
fn escaped_keys_do_not_hide_text() {
    let p = seed_policy();
    let body = r#"{"\u006dessages":[{"role":"user","\u0063ontent":"credit card"}]}"#;
    assert!(rejected(&p, body));
}

#[test]
fn object_keys_in_json_the_model_reads_are_text() {
    let p = seed_policy();
    let cc = "credit card 4111111111111111";
    for (kind, body) in [
        (
            RouteKind::Messages,
            format!(
                r#"{{"messages":[{{"role":"user","content":"hi"}},{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"x","input":{{"{cc}":"v"}}}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":[{{"type":"x","content":{{"a":{{"{cc}":1}}}}}}]}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"messages":[{{"role":"user","content":[{{"type":"code_execution_tool_result","tool_use_id":"t","content":{{"{cc}":1}}}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"content","content":[{{"type":"text","text":"t","x":{{"{cc}":0}}}}]}}}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Responses,
            format!(
                r#"{{"input":[{{"type":"local_shell_call","call_id":"c","action":{{"type":"exec","command":["ls"],"env":{{"{cc}":"1"}}}}}}]}}"#
            ),
        ),
        (
            RouteKind::Responses,
            format!(r#"{{"input":[{{"type":"future_item","{cc}":{{}}}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{"messages":[],"prediction":{{"{cc}":""}}}}"#),
        ),
        (
            RouteKind::Passthrough,
            format!(r#"{{"a":[{{"{cc}":null}}]}}"#),
        ),
    ] {
        let v = p.inspect(kind, body.as_bytes()).unwrap();
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{kind:?} {body}"
        );
    }
    // A key is masked in place, escapes and all; it stays a JSON string, even when two keys
    // become equal.
    let p = mask_policy();
    let body = r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"x","input":{"AKIAIOSFODNN7EXAMPLE":"v","n":{"AKIA\u0049OSFODNN7EXAMPLE":1,"AKIAJSIE27KKMHXI3BJQ":[]}}}]}]}"#;
    let Decision::Rewrite(out) = decision(&p, body) else {
        panic!("not masked")
    };
    assert_only_spans_changed(
        body,
        &out,
        &[
            ("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            (r"AKIA\u0049OSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            ("AKIAJSIE27KKMHXI3BJQ", "<AWS_ACCESS_KEY>"),
        ],
    );
}

#[test]
fn case_variant_keys_are_read_as_a_case_insensitive_server_reads_them() {
    // Go's encoding/json (Ollama, other OpenAI-compatible servers) matches keys ignoring case,
    // the last one winning: a key agw skipped could be the one the model reads.
    let p = seed_policy();
    let cc = "credit card";
    let cases: &[(RouteKind, String)] = &[
        (
            RouteKind::Messages,
            format!(r#"{{"MESSAGES":[{{"role":"user","content":"{cc}"}}]}}"#),
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"Messages":[{{"Role":"user","Content":[{{"Type":"text","TEXT":"{cc}"}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"System":"{cc}","messages":[]}}"#),
        ),
        (
            RouteKind::Messages,
            format!("{{\"me\u{17f}\u{17f}ages\":[{{\"role\":\"user\",\"content\":\"{cc}\"}}]}}"),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"MESS\u0041GES":[{{"role":"user","content":"{cc}"}}]}}"#),
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","CONTENT":"{cc}"}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"messages":[{{"role":"assistant","Tool_Calls":[{{"FUNCTION":{{"Arguments":"{cc}"}}}}]}}]}}"#
            ),
        ),
        (RouteKind::Responses, format!(r#"{{"INPUT":"{cc}"}}"#)),
        (
            RouteKind::Responses,
            format!(r#"{{"Instructions":"{cc}","input":[]}}"#),
        ),
        (RouteKind::Embeddings, format!(r#"{{"Input":"{cc}"}}"#)),
        (
            RouteKind::LegacyCompletions,
            format!(r#"{{"PROMPT":"{cc}"}}"#),
        ),
        (
            RouteKind::MessageBatches,
            format!(
                r#"{{"Requests":[{{"PARAMS":{{"messages":[{{"role":"user","content":"{cc}"}}]}}}}]}}"#
            ),
        ),
    ];
    for (kind, body) in cases {
        let v = p.inspect(*kind, body.as_bytes());
        assert!(
            matches!(v.as_ref().map(Verdict::decision), Ok(Decision::Reject(_))),
            "{kind:?} {body}: {v:?}"
        );
    }
    // Together with the exact key, a case variant is a duplicate: which one a server reads
    // depends on the server.
    for body in [
        r#"{"messages":[{"role":"user","content":"hi"}],"MESSAGES":[{"role":"user","content":"hi"}]}"#,
        r#"{"messages":[{"role":"user","content":"hi","Content":"hi"}]}"#,
        r#"{"messages":[{"role":"user","ROLE":"assistant","content":"hi"}]}"#,
        r#"{"messages":[{"role":"user","content":[{"type":"text","TYPE":"image","text":"hi"}]}]}"#,
    ] {
        let e = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{body}: {e}");
    }
}

/// Found by the red-team review: the guard kept the last of two `model` keys, and the access
/// list checked that one, while the body went upstream with both (a server that keeps the
/// first gets a model the list refuses). A second `model` key is refused, whatever its value.
#[test]
fn a_repeated_model_key_is_refused_on_every_route_that_reads_it() {
    let p = Policy::builder()
        .rule(Rule::regex("seed", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let cases = [
        (
            RouteKind::Messages,
            format!(r#"{{"model":"claude-opus-4-5","model":"claude-sonnet-4-5",{msgs}}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"model":"claude-opus-4-5","model":"claude-sonnet-4-5",{msgs}}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"model":null,"Model":"claude-sonnet-4-5",{msgs}}}"#),
        ),
        (
            RouteKind::CountTokens,
            format!(r#"{{"model":"a","model":"b",{msgs}}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{"model":"a",{msgs},"model":"b"}}"#),
        ),
        (
            RouteKind::Responses,
            r#"{"model":"a","input":"hi","model":"b"}"#.to_owned(),
        ),
        (
            RouteKind::Complete,
            r#"{"model":"a","prompt":"hi","model":"b"}"#.to_owned(),
        ),
        (
            RouteKind::Embeddings,
            r#"{"model":"a","input":"hi","model":"b"}"#.to_owned(),
        ),
    ];
    for (kind, body) in &cases {
        let e = p.inspect(*kind, body.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("duplicate key `model`"),
            "{kind:?} {body}: {e}"
        );
    }
    // One `model` key is read as before.
    let v = p
        .inspect(
            RouteKind::Messages,
            format!(r#"{{"model":"claude-sonnet-4-5",{msgs}}}"#).as_bytes(),
        )
        .unwrap();
    assert_eq!(v.model(), Some("claude-sonnet-4-5"));
}

#[test]
fn build_errors_name_rule_and_value() {
    let e = Policy::builder()
        .rule(Rule::regex("bad", ["credit (card"]))
        .build()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("rule `bad`") && msg.contains("credit (card"),
        "{msg}"
    );
    let e = Policy::builder()
        .rule(Rule::literals("empty", [""]))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("rule `empty`"));
    let e = Policy::builder()
        .rule(Rule::literals("a", ["x"]))
        .rule(Rule::literals("a", ["y"]))
        .build()
        .unwrap_err();
    assert_eq!(e, PolicyError::DuplicateName("a".into()));
    let huge = r"(?:\w{100}){100}";
    let e = Policy::builder()
        .rule(Rule::regex("big", [huge]))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("size limit"), "{e}");
}

#[test]
fn untouched_body_is_allowed_without_copy() {
    let p = mask_policy();
    let body = claude_code_body("nothing here", "hello");
    assert_eq!(decision(&p, &body), Decision::Allow);
}

#[test]
fn responses_are_inspected_byte_faithfully() {
    use crate::api::Api;
    let p = mask_policy();
    let anthropic = r#"{"id":"msg_1","type":"message","content":[{"type":"thinking","thinking":"a card on file","signature":"s"},{"type":"text","text":"Your card 4111 1111 1111 1111 is on file."}],"usage":{"input_tokens":3}}"#;
    let v = p
        .inspect_response(Api::Anthropic, anthropic.as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    assert_eq!(
        std::str::from_utf8(out).unwrap(),
        anthropic.replace("4111 1111 1111 1111", "<CREDIT_CARD>")
    );
    let openai = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"key AKIAIOSFODNN7EXAMPLE"},"finish_reason":"stop"}]}"#;
    let v = p.inspect_response(Api::OpenAi, openai.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    assert_eq!(
        std::str::from_utf8(out).unwrap(),
        openai.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>")
    );
    assert!(
        seed_policy()
            .inspect_response(
                Api::Anthropic,
                br#"{"content":[{"type":"text","text":"a credit card"}]}"#
            )
            .unwrap()
            .decision()
            .ne(&Decision::Allow)
    );
    assert!(p.inspect_response(Api::Anthropic, b"[1]").is_err());
}

/// Found by the red-team review: a text block's citations between two text blocks kept the
/// blocks' texts apart, so a card split over them passed; clients show the texts as one.
#[test]
fn text_blocks_are_read_as_one_text_across_their_citations() {
    use crate::api::Api;
    let p = mask_policy();
    let body = r#"{"content":[{"type":"text","text":"card 4111 1111 ","citations":[{"type":"char_location","cited_text":"x","document_index":0,"document_title":"doc","start_char_index":0,"end_char_index":1}]},{"type":"text","text":"1111 1111 ok"}]}"#;
    let v = p.inspect_response(Api::Anthropic, body.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    let out = std::str::from_utf8(out).unwrap();
    assert!(
        !out.contains("4111") && !out.contains("1111 1111 ok"),
        "{out}"
    );
    assert!(
        out.contains("<CREDIT_CARD>") && out.contains("\"cited_text\":\"x\""),
        "{out}"
    );
    serde_json::from_str::<serde_json::Value>(out).unwrap();
}

/// The output cap the guard reads while inspecting is the one `usage::max_tokens` reads from
/// the body on its own, for every kind that names a model, so limiters can use it instead of
/// a second pass.
#[test]
fn verdict_reads_the_output_cap_as_usage_does() {
    let cases: &[(RouteKind, &str)] = &[
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            RouteKind::Messages,
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens": 7 ,"model":"m"}"#,
        ),
        (
            RouteKind::Completions,
            r#"{"model":"m","max_tokens":10,"max_completion_tokens":300,"messages":[]}"#,
        ),
        (
            RouteKind::Completions,
            r#"{"model":"m","max_completion_tokens":300,"max_tokens":10,"messages":[]}"#,
        ),
        (
            RouteKind::Responses,
            r#"{"model":"m","input":"hi","max_output_tokens":55}"#,
        ),
        (RouteKind::Responses, r#"{"model":"m","input":"hi"}"#),
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":1.5,"messages":[]}"#,
        ),
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":"64","messages":[]}"#,
        ),
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":-3,"messages":[]}"#,
        ),
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":null,"messages":[]}"#,
        ),
        (
            RouteKind::LegacyCompletions,
            r#"{"model":"m","prompt":"hi","max_tokens":16}"#,
        ),
        (
            RouteKind::Complete,
            r#"{"model":"m","prompt":"hi","max_tokens":99}"#,
        ),
        (
            RouteKind::Embeddings,
            r#"{"model":"m","input":["a"],"max_tokens":5}"#,
        ),
        (
            RouteKind::Messages,
            &claude_code_body("nothing here", "what does it say?"),
        ),
    ];
    let policy = seed_policy();
    for (kind, body) in cases {
        let verdict = policy.inspect(*kind, body.as_bytes()).unwrap();
        assert!(verdict.model().is_some(), "{kind:?} {body}");
        assert_eq!(
            verdict.shape().max_tokens,
            crate::usage::max_tokens(body.as_bytes()),
            "{kind:?} {body}"
        );
    }
    // A cap nested below the top level is not the request's.
    let nested = r#"{"model":"m","metadata":{"max_tokens":5},"messages":[]}"#;
    let verdict = policy
        .inspect(RouteKind::Messages, nested.as_bytes())
        .unwrap();
    assert_eq!(verdict.shape().max_tokens, None);
    assert_eq!(crate::usage::max_tokens(nested.as_bytes()), None);
}

/// Neighbouring values of a JSON the model reads are separate words: `["n", "AKIA…"]` was
/// matched as `nAKIA…`, which the key detectors (word boundaries) miss.
#[test]
fn neighbouring_values_are_separate_words() {
    let key = "AKIAIOSFODNN7EXAMPLE";
    for input in [
        format!(r#"["n","{key}"]"#),
        format!(r#"{{"a":"x","b":"{key}"}}"#),
        format!(r#"{{"a":["abc",{{"b":"{key}"}}]}}"#),
    ] {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"hi"}},{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"x","input":{input}}}]}}]}}"#
        );
        let v = mask_policy()
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        match v.into_decision() {
            Decision::Rewrite(out) => {
                let out = String::from_utf8(out).unwrap();
                assert!(
                    !out.contains(key) && out.contains("<AWS_ACCESS_KEY>"),
                    "{out}"
                );
                serde_json::from_str::<serde_json::Value>(&out).unwrap();
            }
            other => panic!("{input}: {other:?}"),
        }
    }
}

/// Found by fuzzing (`mask`): a rule matching a line break matched the separators agw puts
/// between a JSON's values and keys, text no one wrote (and that masking cannot remove).
#[test]
fn separators_between_values_are_not_text() {
    let p = Policy::builder()
        .rule(Rule::regex("nl", ["\n"]).reject("no line breaks"))
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"b"}},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":{"k":"v","w":["x","y"]}}]}]}"#;
    assert!(
        p.inspect(RouteKind::Completions, body.as_bytes())
            .unwrap()
            .is_allow()
    );
    // A line break the client wrote still matches.
    let body = r#"{"messages":[{"role":"user","content":"a\nb"}]}"#;
    assert!(
        !p.inspect(RouteKind::Completions, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// A form part: its name, its `Content-Disposition` file parameters, its content type, its
/// value.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body of `parts`.
fn form(parts: &[Part<'_>]) -> (Vec<u8>, String) {
    let mut body = Vec::new();
    for (name, filename, ct, value) in parts {
        body.extend_from_slice(b"--XyZ\r\n");
        let file = filename.map_or(String::new(), |f| format!("; {f}"));
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n").as_bytes(),
        );
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    (body, "multipart/form-data; boundary=XyZ".to_owned())
}

/// `bytes` in base64 (standard alphabet, padded), for the tests' inline files.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let v = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[(v >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

mod arguments;
mod eighteenth_session;
mod evasion;
mod fifteenth_session;
mod fourteenth_session;
mod fourth_review;
mod nineteenth_containers;
mod nineteenth_session;
mod seventeenth_session;
mod seventh_review;
mod tenth_review;
mod thirteenth_session;
mod twelfth_session;
mod twentyfifth_redteam;
mod twentyfifth_seen;
mod twentyfirst_escapes;
mod twentyfirst_files;
mod twentyfirst_thinking;
mod twentyfourth_session;
mod twentysecond_redteam;
mod twentysecond_redteam2;
mod twentysecond_session;
mod twentysixth_redteam;
mod twentythird_redteam;

/// The model is read under its key in any case on every kind that names one, as
/// `find_model` (the allow-list) reads it.
#[test]
fn the_model_key_is_read_in_any_case_on_every_kind() {
    let p = seed_policy();
    for (kind, body) in [
        (RouteKind::Messages, r#"{"MODEL":"m1","messages":[]}"#),
        (RouteKind::Responses, r#"{"Model":"m1","input":"hi"}"#),
        (RouteKind::Embeddings, r#"{"MODEL":"m1","input":"hi"}"#),
        (
            RouteKind::LegacyCompletions,
            r#"{"MODEL":"m1","prompt":"hi"}"#,
        ),
    ] {
        let mut v = p.inspect(kind, body.as_bytes()).unwrap();
        assert_eq!(v.take_model().as_deref(), Some("m1"), "{kind:?} {body}");
    }
}

/// Found by the red-team review: a message's blocks are read as one text, so a secret at the
/// end of one block with a block starting with a letter after it (or the reverse) had no
/// boundary for a detector, a whole-word keyword or a `\b` regex, though a model reads each
/// block on its own.
#[test]
fn a_secret_where_two_blocks_meet_is_found_from_either_side() {
    let p = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).reject("no cards"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .rule(
            Rule::literals("word", ["secret"])
                .whole_word(true)
                .reject("no"),
        )
        .rule(Rule::regex("pw", [r"\bpassword\b"]).reject("no"))
        .build()
        .unwrap();
    let blocks = |a: &str, b: &str| {
        serde_json::json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
            {"type":"text","text":a},{"type":"text","text":b}]}]})
        .to_string()
    };
    for (a, b) in [
        ("pay 4111111111111111", "x thanks"),
        ("pay", "4111111111111111 now"),
        ("the x", "secret is out"),
        ("my", "password is hunter2"),
        ("tell me the secret", "ly kept thing"),
    ] {
        let body = blocks(a, b);
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        // Refused, or (outside the final prompt: the first block) the string removed.
        match v.decision() {
            Decision::Reject(_) => {}
            Decision::Rewrite(out) => {
                let out = std::str::from_utf8(out).unwrap();
                assert!(
                    !out.contains(a) && out.contains("[removed by agw"),
                    "{a:?} + {b:?}: {out}"
                );
            }
            Decision::Allow => panic!("{a:?} + {b:?}: {v:?}"),
        }
    }
    // A key at a join is masked in its own block; the other block is untouched.
    let body = blocks("key AKIAIOSFODNN7EXAMPLE", "x ok");
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    let out = std::str::from_utf8(out).unwrap();
    assert_eq!(
        out,
        body.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>")
    );
    // Not found where no block alone has it: a word joined from two blocks is not a whole
    // word in either, and digits split over blocks are no card in either.
    for (a, b) in [("the secr", "etive one"), ("4111 1111", "x")] {
        let body = blocks(a, b);
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        assert_eq!(v.decision(), &Decision::Allow, "{a:?} + {b:?}");
    }
}

/// Found by the red-team review: a prompt of U+FDFA (3 bytes that NFKC turns into 33) took
/// 26 s of CPU for a 31 MB body and hundreds of MB to read. Text that grows more than
/// `MAX_EXPANSION`-fold is refused as soon as it has, whatever route reads it.
#[test]
fn text_that_normalisation_would_blow_up_is_refused_early() {
    let p = Policy::builder()
        .rule(Rule::regex("seed", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let blow = "\u{FDFA}".repeat(100_000);
    for (kind, body) in [
        (
            RouteKind::Messages,
            serde_json::json!({"messages":[{"role":"user","content":blow}]}).to_string(),
        ),
        (
            RouteKind::Messages,
            serde_json::json!({"messages":[{"role":"user","content":"\\ufdfa".repeat(50_000)}]})
                .to_string()
                .replace("\\\\ufdfa", "\\ufdfa"),
        ),
        (
            RouteKind::Passthrough,
            serde_json::json!({ blow.clone(): 1 }).to_string(),
        ),
    ] {
        let e = p.inspect(kind, body.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("when normalised"), "{kind:?}: {e}");
    }
    // Text with a few such characters among others is read as before.
    let body = serde_json::json!({"messages":[{"role":"user","content":
        format!("peace \u{FDFA} be upon him, {}", "x".repeat(100))}]})
    .to_string();
    assert_eq!(
        p.inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .decision(),
        &Decision::Allow
    );
}

/// Found by the red-team review: consecutive user messages were read apart, though the
/// provider merges them into one turn, so the seed's own phrase split over them passed.
#[test]
fn consecutive_user_messages_are_read_as_one_turn() {
    let p = Policy::builder()
        .rule(Rule::regex("seed", ["credit card"]).reject("Rejected due to inappropriate content"))
        .build()
        .unwrap();
    let msgs = |m: serde_json::Value| {
        serde_json::json!({"model":"m","max_tokens":5,"messages":m}).to_string()
    };
    let split = msgs(serde_json::json!([
        {"role":"user","content":"my credit"},
        {"role":"user","content":" card number is 4111"}
    ]));
    for kind in [RouteKind::Messages, RouteKind::Completions] {
        let v = p.inspect(kind, split.as_bytes()).unwrap();
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{kind:?}: {v:?}"
        );
    }
    // Block content, three turns in a row.
    let blocks = msgs(serde_json::json!([
        {"role":"user","content":[{"type":"text","text":"my"}]},
        {"role":"user","content":[{"type":"text","text":" credit"}]},
        {"role":"user","content":[{"type":"text","text":" card"}]}
    ]));
    let v = p.inspect(RouteKind::Messages, blocks.as_bytes()).unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)), "{v:?}");
    // Split by an assistant turn: two turns, read apart.
    let apart = msgs(serde_json::json!([
        {"role":"user","content":"my credit"},
        {"role":"assistant","content":"ok"},
        {"role":"user","content":" card number is 4111"}
    ]));
    let v = p.inspect(RouteKind::Messages, apart.as_bytes()).unwrap();
    assert_eq!(v.decision(), &Decision::Allow);
    // In the history (before the last assistant turn) the joined phrase's strings are removed.
    let older = msgs(serde_json::json!([
        {"role":"user","content":"my credit"},
        {"role":"user","content":" card"},
        {"role":"assistant","content":"ok"},
        {"role":"user","content":"hello"}
    ]));
    let v = p.inspect(RouteKind::Messages, older.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    let out = std::str::from_utf8(out).unwrap();
    assert!(
        !out.contains("my credit") && !out.contains("\" card\""),
        "{out}"
    );
}

/// Found by the second red-team review: runs of assistant, system or developer turns were read
/// apart, though Anthropic merges consecutive turns of one side and OpenAI-compatible servers
/// run system and developer messages together.
#[test]
fn consecutive_turns_of_one_side_are_read_as_one() {
    let p = seed_policy();
    let msgs = |m: serde_json::Value| {
        serde_json::json!({"model":"m","max_tokens":5,"messages":m}).to_string()
    };
    let assistant = msgs(serde_json::json!([
        {"role":"user","content":"x"},
        {"role":"assistant","content":"my credit"},
        {"role":"assistant","content":" card"},
        {"role":"user","content":"go on"}
    ]));
    for kind in [RouteKind::Messages, RouteKind::Completions] {
        let v = p.inspect(kind, assistant.as_bytes()).unwrap();
        assert_ne!(v.decision(), &Decision::Allow, "{kind:?}");
    }
    for (a, b) in [
        ("system", "system"),
        ("developer", "developer"),
        ("system", "developer"),
    ] {
        let body = msgs(serde_json::json!([
            {"role":a,"content":"my credit"},
            {"role":b,"content":" card"},
            {"role":"user","content":"hi"}
        ]));
        let v = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{a} {b}: {v:?}"
        );
    }
    // A user turn after an assistant one is another turn: read apart.
    let apart = msgs(serde_json::json!([
        {"role":"assistant","content":"my credit"},
        {"role":"user","content":" card"}
    ]));
    let v = p.inspect(RouteKind::Completions, apart.as_bytes()).unwrap();
    assert_eq!(v.decision(), &Decision::Allow);
}

/// Found by the red-team review: tool definitions were not read, though the model reads them
/// like a system prompt (and an MCP server's descriptions are a third party's text): the seed's
/// phrase in a tool's description passed.
#[test]
fn tool_definitions_are_read_and_known_clean_ones_are_not_read_again() {
    let p = Policy::builder()
        .rule(Rule::regex("seed", ["credit card"]).reject("no"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let bad = [
        (
            RouteKind::Messages,
            format!(r#"{{"tools":[{{"name":"t","description":"my credit card","input_schema":{{"type":"object"}}}}],{msgs}}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{"tools":[{{"name":"t","input_schema":{{"type":"object","properties":{{"x":{{"type":"string","description":"credit card"}}}}}}}}],{msgs}}}"#),
        ),
        (
            RouteKind::CountTokens,
            format!(r#"{{{msgs},"tools":[{{"name":"credit card","input_schema":{{}}}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"tools":[{{"type":"function","function":{{"name":"t","description":"credit card","parameters":{{}}}}}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"functions":[{{"name":"t","description":"credit card"}}]}}"#),
        ),
        (
            RouteKind::Responses,
            r#"{"input":"hi","tools":[{"type":"function","name":"t","description":"credit card"}]}"#.to_owned(),
        ),
    ];
    for (kind, body) in &bad {
        // Twice: a value with a match is never taken as known clean.
        for _ in 0..2 {
            let v = p.inspect(*kind, body.as_bytes()).unwrap();
            assert!(
                matches!(v.decision(), Decision::Reject(_)),
                "{kind:?} {body}: {v:?}"
            );
        }
    }
    // Definitions are never rewritten: a mask rule leaves them as sent (Claude Code's
    // commit instructions name `noreply@anthropic.com`; an email mask must not change them).
    let body = format!(
        r#"{{"tools":[{{"name":"t","description":"use AKIAIOSFODNN7EXAMPLE","input_schema":{{}}}}],{msgs}}}"#
    );
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    assert_eq!(v.decision(), &Decision::Allow, "{v:?}");
    assert!(v.hits().is_empty());
    // Detectors do not read them at all, even to refuse: schemas carry example values.
    let emails = Policy::builder()
        .rule(Rule::detectors("pii", [Detector::Email]).reject("no emails"))
        .build()
        .unwrap();
    let body = format!(
        r#"{{"tools":[{{"name":"Bash","description":"Co-Authored-By: Claude <noreply@anthropic.com>","input_schema":{{}}}}],{msgs}}}"#
    );
    assert_eq!(
        emails
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .decision(),
        &Decision::Allow
    );
    // Clean definitions are kept: the same bytes again are known clean for this policy, and a
    // one-byte change, or another policy, reads them again.
    let clean = format!(
        r#"{{"tools":[{{"name":"t","description":"reads a file","input_schema":{{}}}}],{msgs}}}"#
    );
    assert_eq!(
        p.inspect(RouteKind::Messages, clean.as_bytes())
            .unwrap()
            .decision(),
        &Decision::Allow
    );
    let tools = &clean[9..clean.find(r#","messages""#).unwrap()];
    assert_eq!(
        super::clean::known_at(p.inner_id(), 1, &clean.as_bytes()[9..]),
        Some(tools.len()),
        "{tools}"
    );
    assert_eq!(
        p.inspect(RouteKind::Messages, clean.as_bytes())
            .unwrap()
            .decision(),
        &Decision::Allow
    );
    let changed = clean.replace("reads a file", "credit card!");
    assert!(matches!(
        p.inspect(RouteKind::Messages, changed.as_bytes())
            .unwrap()
            .decision(),
        Decision::Reject(_)
    ));
    let other = Policy::builder()
        .rule(Rule::regex("file", ["reads a file"]).reject("no"))
        .build()
        .unwrap();
    assert!(matches!(
        other
            .inspect(RouteKind::Messages, clean.as_bytes())
            .unwrap()
            .decision(),
        Decision::Reject(_)
    ));
}

/// Found by the red-team review: a block's `text` that is not a string was skipped unread.
#[test]
fn a_block_text_that_is_not_a_string_is_still_read() {
    let p = seed_policy();
    for text in [
        r#"["my credit card"]"#,
        r#"{"value":"my credit card"}"#,
        r#"[["my credit card"]]"#,
    ] {
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":{text}}}]}}]}}"#
        );
        assert!(rejected(&p, &body), "{body}");
    }
}

/// Found by the red-team review: text the model reads (or the provider fetches) outside
/// messages and tools was not read.
#[test]
fn schemas_forced_tools_template_text_and_fetched_urls_are_read() {
    let p = seed_policy();
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let cases = [
        (
            RouteKind::Messages,
            format!(r#"{{{msgs},"output_format":{{"type":"json_schema","schema":{{"type":"object","description":"my credit card"}}}}}}"#),
        ),
        (
            RouteKind::Messages,
            format!(r#"{{{msgs},"tool_choice":{{"type":"tool","name":"credit card"}}}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{{"description":"credit card"}}}}}}}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"documents":[{{"title":"a","text":"my credit card"}}]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"chat_template_kwargs":{{"x":"credit card"}}}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"chat_template":"{{{{ 'credit card' }}}}"}}"#),
        ),
        // Mistral's reasoning parts in a chat history, as text parts or a string.
        (
            RouteKind::Completions,
            r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"my credit card"}]},{"type":"text","text":"ok"}]},{"role":"user","content":"y"}]}"#.to_owned(),
        ),
        (
            RouteKind::Completions,
            r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"thinking","thinking":"my credit card"},{"type":"text","text":"ok"}]},{"role":"user","content":"y"}]}"#.to_owned(),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"guided_choice":["yes","credit card"]}}"#),
        ),
        (
            RouteKind::Completions,
            format!(r#"{{{msgs},"structured_outputs":{{"json":{{"description":"credit card"}}}}}}"#),
        ),
        (
            RouteKind::Completions,
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok","reasoning_content":"my credit card"},{"role":"user","content":"go"}]}"#.to_owned(),
        ),
        (
            RouteKind::Responses,
            r#"{"input":"hi","text":{"format":{"type":"json_schema","name":"x","schema":{"description":"credit card"}}}}"#.to_owned(),
        ),
        (
            RouteKind::Messages,
            r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x.example/credit card.png"}},{"type":"text","text":"hi"}]}]}"#.to_owned(),
        ),
        (
            RouteKind::Messages,
            r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x.example/credit card.pdf"}},{"type":"text","text":"hi"}]}]}"#.to_owned(),
        ),
        // The second review: Anthropic's current structured outputs, a Responses file by URL.
        (
            RouteKind::Messages,
            format!(r#"{{{msgs},"output_config":{{"format":{{"type":"json_schema","schema":{{"description":"my credit card"}}}}}}}}"#),
        ),
        (
            RouteKind::CountTokens,
            format!(r#"{{{msgs},"output_config":{{"format":{{"type":"json_schema","schema":{{"description":"my credit card"}}}}}}}}"#),
        ),
        (
            RouteKind::Responses,
            r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"summarise"},{"type":"input_file","file_url":"https://files.example/credit card.pdf"}]}]}"#.to_owned(),
        ),
    ];
    for (kind, body) in &cases {
        let v = p.inspect(*kind, body.as_bytes()).unwrap();
        // Refused, or (an older assistant turn) the string removed.
        match v.decision() {
            Decision::Reject(_) => {}
            Decision::Rewrite(out) => {
                let out = std::str::from_utf8(out).unwrap();
                assert!(!out.contains("credit card"), "{kind:?} {body}: {out}");
            }
            Decision::Allow => panic!("{kind:?} {body}: {v:?}"),
        }
    }
    // An image's own bytes are still not read.
    let body = r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"credit card"}},{"type":"text","text":"hi"}]}]}"#;
    assert!(!rejected(&p, body));
}

/// Found by the second red-team review: a function call's `arguments` is JSON in a string,
/// which OpenAI-compatible servers parse before the model reads it, so a secret written with
/// JSON escapes inside it (`\u0041KIA…`) passed every rule.
#[test]
fn escapes_inside_function_call_arguments_are_read() {
    let p = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).reject("no keys"))
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let chat = |args: &str| {
        serde_json::json!({"model":"m","messages":[
            {"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"save","arguments":args}}]},
            {"role":"tool","tool_call_id":"c1","content":"ok"},
            {"role":"user","content":"continue"}]})
        .to_string()
    };
    let responses = |args: &str| {
        serde_json::json!({"model":"m","input":[
            {"type":"function_call","call_id":"c1","name":"save","arguments":args},
            {"type":"function_call_output","call_id":"c1","output":"ok"},
            {"role":"user","content":"continue"}]})
        .to_string()
    };
    // Nested past a body's depth, arguments are refused as such a body is (they were read
    // again as text before the fifth review read them as JSON).
    let deep = format!(
        "{}\"\\u0041KIAZ7QX3MPL4KRT2WQE\"{}",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(
        p.inspect(RouteKind::Completions, chat(&deep).as_bytes())
            .is_err()
    );
    assert!(
        p.inspect(RouteKind::Responses, responses(&deep).as_bytes())
            .is_err()
    );
    for args in [
        r#"{"key":"\u0041KIAZ7QX3MPL4KRT2WQE"}"#,
        r#"{"key":"\u0041\u004b\u0049\u0041Z7QX3MPL4KRT2WQE"}"#,
    ] {
        for (kind, body) in [
            (RouteKind::Completions, chat(args)),
            (RouteKind::Responses, responses(args)),
        ] {
            // In an earlier assistant turn, so removed (twelfth session): the key with it.
            let v = p.inspect(kind, body.as_bytes()).unwrap();
            assert_eq!(&*v.hits()[0].rule, "keys");
            let Decision::Rewrite(out) = v.decision() else {
                panic!("{kind:?} {args}: {v:?}")
            };
            let out = String::from_utf8(out.clone()).unwrap();
            assert!(out.contains("[removed by agw: rule keys]"), "{out}");
            assert!(!out.contains("Z7QX3MPL4KRT2WQE"), "{out}");
        }
    }
    // A card a mask rule would mask cannot be masked inside escapes: refused, saying why.
    let v = p
        .inspect(
            RouteKind::Completions,
            chat(r#"{"card":"\u0034111111111111111"}"#).as_bytes(),
        )
        .unwrap();
    let Decision::Reject(r) = v.decision() else {
        panic!("{v:?}")
    };
    assert!(
        r.message.contains("escapes") && !r.message.contains("4111"),
        "{r:?}"
    );
    // Escapes that hide nothing (what Python writes for non-ASCII letters) pass unchanged.
    let body = chat(r#"{"city":"Z\u00fcrich"}"#);
    assert_eq!(
        p.inspect(RouteKind::Completions, body.as_bytes())
            .unwrap()
            .decision(),
        &Decision::Allow
    );
}

/// Found by a black-box review: Ollama's `template` is a Go template program the server runs
/// over the prompt (`{{ print "cre" "dit" " ca" "rd" }}` assembled text no guard read), as a
/// `chat_template` is. A body read generically with a top-level `template`, `chat_template`
/// or a Modelfile with a `TEMPLATE` is refused where rules refuse or mask text.
#[test]
fn a_generic_bodys_own_template_is_refused() {
    let p = seed_policy();
    let template = r#"{{ print \"cre\" \"dit\" \" ca\" \"rd\" }} {{ .Prompt }}"#;
    for body in [
        format!(r#"{{"model":"llama3","prompt":"hi","template":"{template}"}}"#),
        format!(r#"{{"model":"m","chat_template":"{template}"}}"#),
        r#"{"model":"m","modelfile":"FROM llama3\n  template \"\"\"{{ .Prompt }}\"\"\""}"#
            .to_owned(),
        // A bare `\r` ends a line for Ollama's parser too (black-box review).
        r#"{"model":"m","modelfile":"FROM llama3\rTEMPLATE {{ .Prompt }}"}"#.to_owned(),
    ] {
        let v = p.inspect(RouteKind::Passthrough, body.as_bytes()).unwrap();
        assert!(
            matches!(v.decision(), Decision::Reject(r) if r.message.contains("template")),
            "{body}"
        );
    }
    // Not a template of its own: empty, nested, a Modelfile without one; an audit-only policy.
    for body in [
        r#"{"model":"llama3","prompt":"hi","template":""}"#,
        r#"{"model":"llama3","options":{"template":"{{ .Prompt }}"}}"#,
        r#"{"model":"m","modelfile":"FROM llama3\nSYSTEM be brief"}"#,
    ] {
        let v = p.inspect(RouteKind::Passthrough, body.as_bytes()).unwrap();
        assert!(v.is_allow(), "{body}");
    }
    let audit = Policy::builder()
        .rule(Rule::regex("cards", ["credit card"]).audit())
        .build()
        .unwrap();
    let body = format!(r#"{{"model":"llama3","prompt":"hi","template":"{template}"}}"#);
    assert!(
        audit
            .inspect(RouteKind::Passthrough, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// Found by a black-box review: keys of known Responses items that agw had no reading for
/// went upstream unread — a computer call output's safety check messages, an output text's
/// annotations, a key a client added to a function call or its output. They are read as a
/// field agw has no reading for is (a rejecting rule's hit refuses, or outside the latest turn
/// is removed); `status` and `encrypted_content` are not.
#[test]
fn keys_of_known_responses_items_are_read() {
    let p = seed_policy();
    for body in [
        r#"{"input":[{"type":"computer_call_output","call_id":"c","acknowledged_safety_checks":[{"id":"s","code":"x","message":"my credit card"}],"output":{"type":"computer_screenshot","image_url":"data:image/png;base64,AA=="}}]}"#,
        r#"{"input":[{"role":"assistant","type":"message","content":[{"type":"output_text","text":"see","annotations":[{"type":"url_citation","title":"my credit card","url":"https://e.x"}]}]}]}"#,
        r#"{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}","note":"my credit card"}]}"#,
        r#"{"input":[{"type":"function_call_output","call_id":"c","output":"ok","note":"my credit card"}]}"#,
        r#"{"input":[{"type":"reasoning","id":"r","summary":[],"note":"my credit card"}]}"#,
    ] {
        // Refused, or (a rejecting rule's hit outside the latest turn) removed.
        let v = p.inspect(RouteKind::Responses, body.as_bytes()).unwrap();
        match v.decision() {
            Decision::Reject(_) => {}
            Decision::Rewrite(out) => {
                let out = String::from_utf8_lossy(out);
                assert!(
                    !out.contains("credit card") && out.contains("removed by agw"),
                    "{out}"
                );
            }
            Decision::Allow => panic!("{body}"),
        }
    }
    // (An item's `id` is read as an identifier since the seventeenth session.)
    let body = r#"{"input":[{"type":"reasoning","id":"rs_1","status":"credit card","encrypted_content":"credit card","summary":[]}]}"#;
    assert!(
        p.inspect(RouteKind::Responses, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// Found reviewing the AWS pair (`AKIA…:KEY`, one `aws_secret_key` finding): a rule reading
/// only `aws_access_key` must still find the id in it, whatever another rule does with the
/// pair.
#[test]
fn an_aws_pair_is_found_by_a_rule_reading_only_ids() {
    let p = Policy::builder()
        .rule(Rule::detectors("ids", [Detector::AwsAccessKey]).mask())
        .rule(Rule::detectors("secrets", [Detector::AwsSecretKey]).audit())
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"AKIA4YDCVEKVHZLMUNBG:rN9lHZOqqk8Fk2FJh/FgzKVmj1OWaKqd4scg2InW"}]}"#;
    let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
    let rules: Vec<&str> = v.hits().iter().map(|h| &*h.rule).collect();
    assert!(
        rules.contains(&"ids") && rules.contains(&"secrets"),
        "{rules:?}"
    );
    match v.decision() {
        Decision::Rewrite(out) => {
            let out = String::from_utf8_lossy(out);
            assert!(
                !out.contains("AKIA4YDC") && out.contains("<AWS_ACCESS_KEY>"),
                "{out}"
            );
        }
        d => panic!("{d:?}"),
    }
}
