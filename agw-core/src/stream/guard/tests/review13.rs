//! The thirteenth review's stream findings: delta kinds agw has no reading for, and tool calls
//! cut short by the model's token limit.

use super::*;
use serde_json::json;

/// An Anthropic stream whose block 0 is of `block_type` and carries `deltas` of `delta_type`
/// with their strings under `key`.
fn unknown_deltas(block_type: &str, delta_type: &str, key: &str, deltas: &[&str]) -> Vec<u8> {
    let mut s = event(
        "message_start",
        json!({"type":"message_start","message":{"id":"m","content":[]}}),
    );
    s += &event(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":block_type}}),
    );
    for d in deltas {
        s += &event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":delta_type,key:d}}),
        );
    }
    s += &event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    s += &event(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"}}),
    );
    s += &event("message_stop", json!({"type":"message_stop"}));
    s.into_bytes()
}

/// A delta kind agw has no reading for (the `compaction_delta` beta, a kind still to come) is
/// continued by the block's later deltas of it, as the SDKs append them: a secret split over
/// two such deltas is rejected or masked (it passed, read one event at a time).
#[test]
fn unknown_delta_kinds_are_read_across_their_deltas() {
    let reject = Policy::builder()
        .rule(Rule::literals("s", ["SECRET-1234"]).reject("blocked"))
        .build()
        .unwrap();
    for (block, delta, key) in [
        ("compaction", "compaction_delta", "content"),
        ("text", "foo_delta", "text"),
    ] {
        for chunk in [1, 9, 1 << 20] {
            let input = unknown_deltas(block, delta, key, &["note SECRET-", "1234 ok"]);
            assert!(
                run(&reject, Api::Anthropic, 64, &input, chunk).1,
                "{delta} {chunk}"
            );
            let clean = unknown_deltas(block, delta, key, &["note SECRET-", "5678 ok"]);
            let (out, rejected) = run(&reject, Api::Anthropic, 64, &clean, chunk);
            assert!(!rejected, "{delta} {chunk}");
            assert_eq!(out, clean, "{delta} {chunk}");

            let input = unknown_deltas(block, delta, key, &["pay 4111 1111 ", "1111 1111 ok"]);
            let (out, rejected) = run(&mask_cards(), Api::Anthropic, 64, &input, chunk);
            assert!(!rejected, "{delta} {chunk}");
            let joined = strings_at(&out, &[&format!("/delta/{key}")]);
            assert!(
                joined.starts_with("pay ") && joined.ends_with(" ok"),
                "{joined}"
            );
            assert!(
                !joined.contains("4111") && !joined.contains("1111 1111"),
                "{joined}"
            );
        }
    }
}

/// A signature delta is never read as text a mask could rewrite: the stream passes byte for
/// byte under a mask rule, though its pieces joined as text would hold a card (as the same
/// pieces in an unknown delta kind are masked).
#[test]
fn signature_deltas_stay_as_sent() {
    let pieces = ["Eq 4111 1111 ", "1111 1111 AA"];
    let input = unknown_deltas("thinking", "signature_delta", "signature", &pieces);
    let (out, rejected) = run(&mask_cards(), Api::Anthropic, 64, &input, 7);
    assert!(!rejected);
    assert_eq!(out, input);
    let read = unknown_deltas("text", "foo_delta", "content", &pieces);
    assert_ne!(run(&mask_cards(), Api::Anthropic, 64, &read, 7).0, read);
}

/// `stream` through [`k8s_policy`] as an Anthropic Messages stream, in pieces of `chunk`.
fn k8s_anthropic(stream: &[u8], chunk: usize) -> Vec<u8> {
    run_kind(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        stream,
        chunk,
    )
}

/// [`tool_stream`] of `tool`, stopped by the token limit (`stop_reason: max_tokens`).
fn cut_stream(tool: &str, pieces: &[&str]) -> Vec<u8> {
    let s = String::from_utf8(tool_stream(tool, pieces)).unwrap();
    s.replace("\"tool_use\"}", "\"max_tokens\"}").into_bytes()
}

/// A tool call cut short by the model's token limit (`stop_reason: max_tokens` after an
/// input that stops mid-string) is read as clients' partial-JSON readers complete it: it
/// passes byte for byte when clean, its secret is masked (the rest of the cut input kept, a
/// partial escape at its end too, no closers added), a tool rule still refuses it, and the
/// stop reason reaches the client. It had ended the stream with an error event.
#[test]
fn a_tool_call_cut_short_by_the_token_limit_is_read_as_completed() {
    for chunk in [1, 9, 1 << 20] {
        let clean = cut_stream(
            "Write",
            &[r#"{"file_path": "/tmp/a.py", "content": "import os\nprint("#],
        );
        let out = k8s_anthropic(&clean, chunk);
        assert_eq!(out, clean, "{chunk}");

        let secret = cut_stream(
            "Write",
            &[
                r#"{"file_path": "/tmp/a.py", "content": "key=AKIAIOSF"#,
                r#"ODNN7EXAMPLE\nmore \u00"#,
            ],
        );
        let out = k8s_anthropic(&secret, chunk);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("event: error"), "{text}");
        assert!(text.contains("max_tokens"), "{text}");
        assert_eq!(
            tool_input_of(&out),
            r#"{"file_path": "/tmp/a.py", "content": "key=<AWS_ACCESS_KEY>\nmore \u00"#
        );
    }
    // A tool rule reads the completed input; a key cut short is read too.
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        &cut_stream("Bash", &[r#"{"command": "kubectl delete ns prod"#]),
        5,
    );
    assert!(
        out.contains("event: error") && !out.contains("delete ns"),
        "{out}"
    );
    let reject = Policy::builder()
        .rule(Rule::literals("s", ["SECRET-1234"]).reject("blocked"))
        .build()
        .unwrap();
    for input in [r#"{"a": 1, "SECRET-12"#, r#"{"a": "SECRET-1234\u00"#] {
        let s = tool_stream("Write", &[input, "34"]);
        let out = run_text(&reject, RouteKind::Messages, Api::Anthropic, &s, 7);
        assert!(out.contains("event: error"), "{input}: {out}");
    }
    // What starts no JSON value still fails closed: with the answer of a rule naming the
    // tool (`agw:tool-input`), as before.
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        &cut_stream("Bash", &[r#"{"command": "ls"} trailing"#]),
        7,
    );
    assert!(
        out.contains("event: error") && out.contains("agw blocked a call of tool `Bash`"),
        "{out}"
    );
}

/// The same in a chat stream (`finish_reason: length`): the cut arguments pass and the
/// finish reason with them.
#[test]
fn chat_arguments_cut_short_pass_with_their_finish_reason() {
    let mut s = String::new();
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"Write","arguments":""}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"file_path\":\"/tmp/a\",\"content\":\"pay 4111 1111 "}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1111 1111 and"}}]}}]),
    );
    s += &chat_chunk(json!([{"index":0,"delta":{},"finish_reason":"length"}]));
    s += "data: [DONE]\n\n";
    for chunk in [1, 13, s.len()] {
        let out = run_text(
            &mask_cards(),
            RouteKind::Completions,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        );
        assert!(
            !out.contains("error") && out.contains("\"length\""),
            "{out}"
        );
        let args = strings_at(
            out.as_bytes(),
            &["/choices/0/delta/tool_calls/0/function/arguments"],
        );
        assert!(
            args.starts_with("{\"file_path\":\"/tmp/a\",\"content\":\"pay "),
            "{args}"
        );
        assert!(args.ends_with(" and") && !args.contains("4111"), "{args}");
    }
}

/// Second round: a tool rule naming the tool reads a cut call as completed too — a clean one
/// passes with its stop reason (it was refused as not JSON), a refused command still ends the
/// stream.
#[test]
fn a_tool_rule_reads_a_cut_call_as_completed() {
    let clean = cut_stream("Bash", &[r#"{"command": "echo hi"#]);
    for chunk in [1, 7, 1 << 20] {
        let out = k8s_anthropic(&clean, chunk);
        assert_eq!(out, clean, "{chunk}");
        let out = run_text(
            &k8s_policy(),
            RouteKind::Messages,
            Api::Anthropic,
            &cut_stream("Bash", &[r#"{"command": "kubectl del"#, r#"ete ns prod"#]),
            chunk,
        );
        assert!(
            out.contains("event: error") && !out.contains("ete ns"),
            "{out}"
        );
    }
}
