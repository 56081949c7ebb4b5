//! The fourteenth session's stream findings: a chat delta's `name` and vLLM's `stop_reason`,
//! a key named `input` or `arguments` that turned joining off, and stream formats whose text
//! fields were read one event at a time.

use super::*;
use serde_json::json;

/// A chat stream's delta `name` (a participant's, which the SDKs join like other strings) is
/// read across chunks, and a choice's `stop_reason` string (vLLM's matched stop sequence) is
/// read: both went out unread.
#[test]
fn a_chat_deltas_name_and_a_stop_reason_are_read() {
    let mut input = chat_chunk(
        json!([{"index":0,"delta":{"role":"assistant","name":"card 4111 1111 ","content":"hi"}}]),
    );
    input += &chat_chunk(json!([{"index":0,"delta":{"name":"1111 1111 ok"}}]));
    input += &chat_chunk(json!([{"index":0,"delta":{},"finish_reason":"stop"}]));
    input += "data: [DONE]\n\n";
    for chunk in [1, 7, 1 << 20] {
        let out = run_text(
            &mask_cards(),
            RouteKind::Completions,
            Api::OpenAi,
            input.as_bytes(),
            chunk,
        );
        assert!(!out.contains("4111 1111"), "{chunk}: {out}");
        assert!(out.contains("[DONE]"), "{chunk}: {out}");
    }
    let input = chat_chunk(
        json!([{"index":0,"delta":{"content":"done"},"finish_reason":"stop","stop_reason":"4111 1111 1111 1111"}]),
    ) + "data: [DONE]\n\n";
    let out = run_text(
        &mask_cards(),
        RouteKind::Completions,
        Api::OpenAi,
        input.as_bytes(),
        1 << 20,
    );
    assert!(!out.contains("4111 1111 1111 1111"), "{out}");
}

/// Events of a format agw does not know, on any path: an `input` or `arguments` key beside the
/// text (llama.cpp-style servers add one) no longer turns joining off, and the text fields of
/// Cohere v2, watsonx and Bedrock's model families are joined across events.
#[test]
fn unknown_formats_join_their_text_across_events() {
    let cases: [(serde_json::Value, serde_json::Value); 8] = [
        (
            json!({"content":"card 4111 1111 ","input":""}),
            json!({"content":"1111 1111 ok","input":""}),
        ),
        (
            json!({"content":"card 4111 1111 ","meta":{"arguments":1}}),
            json!({"content":"1111 1111 ok"}),
        ),
        (
            json!({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"card 4111 1111 "}}}}),
            json!({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"1111 1111 ok"}}}}),
        ),
        (
            json!({"results":[{"generated_text":"card 4111 1111 ","generated_token_count":3}]}),
            json!({"results":[{"generated_text":"1111 1111 ok","generated_token_count":6}]}),
        ),
        (
            json!({"generation":"card 4111 1111 "}),
            json!({"generation":"1111 1111 ok"}),
        ),
        (
            json!({"outputs":[{"text":"card 4111 1111 "}]}),
            json!({"outputs":[{"text":"1111 1111 ok"}]}),
        ),
        (
            json!({"outputText":"card 4111 1111 "}),
            json!({"outputText":"1111 1111 ok"}),
        ),
        (
            json!({"output":"card 4111 1111 "}),
            json!({"output":"1111 1111 ok"}),
        ),
    ];
    for (a, b) in cases {
        let input = format!("data: {a}\n\ndata: {b}\n\n");
        for chunk in [3, 1 << 20] {
            let out = run_text(
                &mask_cards(),
                RouteKind::Passthrough,
                Api::OpenAi,
                input.as_bytes(),
                chunk,
            );
            assert!(!out.contains("4111 1111"), "{a} {chunk}: {out}");
            assert!(out.contains("ok"), "{a} {chunk}: {out}");
        }
    }
    // A tool call beside the text is still checked by the tool rules.
    let tool =
        json!({"content":"x","tool":{"name":"Bash","input":{"command":"kubectl delete ns prod"}}});
    let input = format!("data: {tool}\n\n");
    let out = run_text(
        &k8s_policy(),
        RouteKind::Passthrough,
        Api::OpenAi,
        input.as_bytes(),
        1 << 20,
    );
    assert!(out.contains("blocked by policy"), "{out}");
    assert!(!out.contains("kubectl"), "{out}");
}
