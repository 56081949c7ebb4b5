//! Found in the thirteenth session's black-box review of the request side: fields agw had no
//! reading for went upstream unread.

use super::*;
use serde_json::json;

fn secret_rule() -> Policy {
    Policy::builder()
        .rule(Rule::literals("secret", ["SECRET-1234"]).reject("blocked"))
        .build()
        .unwrap()
}

/// Whether the rule found its match: the request is refused, or (in an earlier turn, or in
/// text outside the final prompt) the match removed.
fn reads(policy: &Policy, kind: RouteKind, body: &serde_json::Value) -> bool {
    !policy
        .inspect(kind, body.to_string().as_bytes())
        .unwrap()
        .is_allow()
}

/// A message batch's fields beside `requests`, and a `max_tokens`, `n`, `best_of` or
/// `stream` whose value is text rather than a number or a flag, reach the provider (and its
/// logs, or a server's 400 that echoes them): their strings are read.
#[test]
fn batch_fields_and_textual_shape_values_are_read() {
    let policy = secret_rule();
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            RouteKind::MessageBatches,
            json!({"requests": [], "note": "SECRET-1234"}),
        ),
        (
            RouteKind::MessageBatches,
            json!({"requests": [], "system": ["SECRET-1234"]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": "SECRET-1234", "messages": user}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": 5, "stream": {"note": "SECRET-1234"}, "messages": user}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "n": ["SECRET-1234"], "messages": user}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "max_output_tokens": ["SECRET-1234"], "input": "hi"}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "best_of": "SECRET-1234", "prompt": "hi"}),
        ),
    ];
    for (kind, body) in cases {
        assert!(reads(&policy, kind, &body), "{kind:?} {body}");
        let clean = body.to_string().replace("SECRET-1234", "SECRET-5678");
        let clean: serde_json::Value = serde_json::from_str(&clean).unwrap();
        assert!(!reads(&policy, kind, &clean), "{kind:?} {clean}");
    }
    // Numbers and flags are what they always were: read for the limiter, not as text.
    let body = json!({"model": "m", "max_tokens": 12, "stream": true, "messages": user});
    let shape = crate::usage::request_shape(body.to_string().as_bytes());
    assert_eq!(shape.max_tokens, Some(12));
    assert!(shape.stream);
}

/// A message's keys agw has no reading for, a role of the client's own, and content parts of
/// types agw does not know (with the URL a provider fetches) are read; identifiers, cache
/// settings and signed reasoning are not.
#[test]
fn unknown_message_keys_roles_and_part_types_are_read() {
    let policy = secret_rule();
    let cases = [
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok", "thinking": "SECRET-1234"},
                {"role": "user", "content": "go"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [
                {"role": "assistant", "content": "ok", "reasoning_details": [{"type": "reasoning.text", "text": "SECRET-1234"}]},
                {"role": "user", "content": "go"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "SECRET-1234", "content": "hi"}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "document_url", "document_url": "https://x.example/f?k=SECRET-1234"}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "document_url", "document_url": "https://x.example/f?k=SECRET%2D1234"}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"image": "https://x.example/SECRET-1234.png", "type": "image"}]}]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "video", "video": ["https://x.example/a.png", "https://x.example/SECRET-1234.png"]}]}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "note": {"x": "SECRET-1234"}}]}]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [
                {"type": "message", "role": "user", "content": "hi", "note": "SECRET-1234"}]}),
        ),
    ];
    for (kind, body) in cases {
        assert!(reads(&policy, kind, &body), "{kind:?} {body}");
    }
    // Not text: cache settings, a signed thinking block's fields. (Tool ids are read as
    // identifiers since the seventeenth session: `seventeenth_session.rs`.)
    let policy = Policy::builder()
        .rule(Rule::literals("words", ["ephemeral", "sigSECRET"]).reject("blocked"))
        .build()
        .unwrap();
    let body = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sigSECRET", "extra": "sigSECRET"},
            {"type": "tool_use", "id": "call_77", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_77", "content": "x"}]}]});
    assert!(!reads(&policy, RouteKind::Messages, &body), "{body}");
}

/// A masked unknown field is rewritten in place, the rest of the body byte for byte.
#[test]
fn a_mask_rewrites_an_unknown_field_in_place() {
    let policy = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"document_url","document_url":"https://x.example/?card=4111111111111111"}]}]}"#;
    let Decision::Rewrite(out) = policy
        .inspect(RouteKind::Completions, body.as_bytes())
        .unwrap()
        .into_decision()
    else {
        panic!("not masked");
    };
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        body.replace("4111111111111111", "<CREDIT_CARD>"),
        "{out}"
    );
}

/// Text that only starts with `data:` (a prompt, an SSE transcript in a tool result) is no
/// `data:` URL: a mask rule masks it in place. It was refused with a 400 as a file holding
/// text the rule would mask, and Claude Code resends a tool result every turn.
#[test]
fn text_starting_with_data_colon_is_masked_as_text() {
    let policy = Policy::builder()
        .rule(Rule::detectors("pii", [Detector::Email]).mask())
        .build()
        .unwrap();
    let bodies = [
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": "data: see below, mail alice@example.com"}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "curl -N x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                    "content": "data: {\"a\": 1, \"mail\": \"alice@example.com\"}\n\n"}]}]}),
        ),
    ];
    for (kind, body) in bodies {
        let verdict = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
        let Decision::Rewrite(out) = verdict.into_decision() else {
            panic!("{kind:?}: not masked: {body}");
        };
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("alice@example.com"), "{out}");
    }
    // A data URL is still a file: its text is read, and a mask it needs refuses.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:text/plain,alice%40example.com"}}]}]});
    let verdict = policy
        .inspect(RouteKind::Completions, body.to_string().as_bytes())
        .unwrap();
    assert!(matches!(verdict.decision(), Decision::Reject(_)), "{body}");
}

/// `ESC [` before a word hides none of it: only the `ESC` is dropped, so the letter a terminal
/// would take as the sequence's end stays text, as the model reads it (a try that read
/// terminal sequences as nothing let `\u001b[credit card` past the seed rule: second round).
#[test]
fn an_escape_bracket_before_a_word_hides_none_of_it() {
    let policy = Policy::builder()
        .rule(Rule::literals("seed", ["credit card"]).reject("blocked"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    let body = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "tell me about \u{1b}[credit card numbers"}]});
    let verdict = policy
        .inspect(RouteKind::Messages, body.to_string().as_bytes())
        .unwrap();
    assert!(matches!(verdict.decision(), Decision::Reject(_)), "{body}");
}

/// Second round: a data URL whose media type is not `type/subtype` is still decoded as readers
/// decode it (`data:text;base64,`, `data:*/*;base64,`): its text is read.
#[test]
fn data_urls_of_any_media_type_are_read() {
    let policy = secret_rule();
    let b64 = "bm90ZTogU0VDUkVULTEyMzQ="; // "note: SECRET-1234"
    for header in [
        "data:text;base64,",
        "data:*/*;base64,",
        "data://text/plain;base64,",
        "data:text/plain/x;base64,",
    ] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.txt", "file_data": format!("{header}{b64}")}}]}]});
        assert!(reads(&policy, RouteKind::Completions, &body), "{header}");
    }
}

/// Second round: chat templates print tool call ids (Kimi K2's `## Return of {{ tool_call_id
/// }}`): a chat message's `tool_call_id` and `id` and a tool call's `id` are read as
/// identifiers — a rule's match refuses, and ordinary ids pass.
#[test]
fn chat_tool_call_ids_are_read_as_identifiers() {
    let policy = secret_rule();
    let body = |call: &str, result: &str| {
        json!({"model": "m", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": call, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": result, "content": "x"},
            {"role": "user", "content": "and?"}]})
    };
    assert!(reads(
        &policy,
        RouteKind::Completions,
        &body("SECRET-1234", "call_1")
    ));
    assert!(reads(
        &policy,
        RouteKind::Completions,
        &body("call_1", "SECRET-1234")
    ));
    assert!(!reads(
        &policy,
        RouteKind::Completions,
        &body("call_1", "call_1")
    ));
}
