//! The fourteenth session's stream findings: a chat delta's `name` and vLLM's `stop_reason`,
//! a key named `input` or `arguments` that turned joining off, and stream formats whose text
//! fields were read one event at a time.

use super::*;
use serde_json::json;

/// Each pair of events, on a passthrough path at two chunkings: the card split over them is
/// masked, and what follows it goes out.
fn masked_when_joined(cases: &[(serde_json::Value, serde_json::Value)]) {
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
}

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
    let cases: [(serde_json::Value, serde_json::Value); 7] = [
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
    ];
    masked_when_joined(&cases);
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

/// The second round's stream formats: Assistants runs' message and step deltas, Bedrock
/// Converse as JSON, AI21, Cohere v2's tool-call deltas are joined across events; TGI's last
/// event, which repeats the whole text as `generated_text`, is masked in place instead of
/// ending the stream.
#[test]
fn more_formats_join_their_text_and_tgi_masks_in_place() {
    let cases: [(serde_json::Value, serde_json::Value); 5] = [
        (
            json!({"id":"msg","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"card 4111 1111 "}}]}}),
            json!({"id":"msg","object":"thread.message.delta","delta":{"content":[{"index":0,"type":"text","text":{"value":"1111 1111 ok"}}]}}),
        ),
        (
            json!({"id":"step","object":"thread.run.step.delta","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":0,"type":"code_interpreter","code_interpreter":{"input":"x = '4111 1111 "}}]}}}),
            json!({"id":"step","object":"thread.run.step.delta","delta":{"step_details":{"type":"tool_calls","tool_calls":[{"index":0,"type":"code_interpreter","code_interpreter":{"input":"1111 1111' # ok"}}]}}}),
        ),
        (
            json!({"contentBlockDelta":{"contentBlockIndex":0,"delta":{"text":"card 4111 1111 "}}}),
            json!({"contentBlockDelta":{"contentBlockIndex":0,"delta":{"text":"1111 1111 ok"}}}),
        ),
        (
            json!({"completions":[{"data":{"text":"card 4111 1111 "}}]}),
            json!({"completions":[{"data":{"text":"1111 1111 ok"}}]}),
        ),
        (
            json!({"type":"tool-call-delta","index":1,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"n\": \"4111 1111 "}}}}}),
            json!({"type":"tool-call-delta","index":1,"delta":{"message":{"tool_calls":{"function":{"arguments":"1111 1111\"} ok"}}}}}),
        ),
    ];
    masked_when_joined(&cases);
    // TGI: tokens, then the last one beside the whole text.
    let mut input = String::new();
    for (i, t) in ["card ", "4111 1111 ", "1111 1111", " ok"]
        .iter()
        .enumerate()
    {
        let last = i == 3;
        let generated = last.then_some("card 4111 1111 1111 1111 ok");
        input += &format!(
            "data: {}\n\n",
            json!({"index":i,"token":{"id":i,"text":t,"logprob":-0.1,"special":false},"generated_text":generated,"details":null})
        );
    }
    let out = run_text(
        &mask_cards(),
        RouteKind::Passthrough,
        Api::OpenAi,
        input.as_bytes(),
        1 << 20,
    );
    assert!(!out.contains("4111 1111"), "{out}");
    assert!(!out.contains("error"), "{out}");
    assert!(out.contains("\"generated_text\":\"card "), "{out}");
}

/// Records and progress events whose values sit under common keys (`result`, `token`,
/// `output`) keep each value whole: a secret at one record's end is masked, and a mask in a
/// field beside them does not end the stream (third round: joined as pieces, `…bob@example.com`
/// + `done` hid the address, and a masked `user` ended the stream).
#[test]
fn records_under_common_keys_stay_whole() {
    let emails = Policy::builder()
        .rule(Rule::detectors("pii", [Detector::Email, Detector::CreditCard]).mask())
        .build()
        .unwrap();
    for key in ["result", "token", "output"] {
        let a = json!({"id": 1, key: "mailed bob@example.com"});
        let b = json!({"id": 2, key: "done", "user": "carol@example.com"});
        let input = format!("data: {a}\n\ndata: {b}\n\n");
        let out = run_text(
            &emails,
            RouteKind::Passthrough,
            Api::OpenAi,
            input.as_bytes(),
            1 << 20,
        );
        assert!(!out.contains("bob@example.com"), "{key}: {out}");
        assert!(!out.contains("carol@example.com"), "{key}: {out}");
        assert!(!out.contains("error"), "{key}: {out}");
        assert!(out.contains("done"), "{key}: {out}");
    }
}
