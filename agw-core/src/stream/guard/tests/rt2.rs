//! The rt2 red-team review's stream findings: text a client assembles per part, item, block
//! or path, which agw read joined in another order or decided before its end.
//!
//! - F1: Responses text deltas interleaved across output items or content parts.
//! - F2: the generic reader's limits (an event with more than eight pieces, more than 64
//!   paths) released held text unread.
//! - F3: the held end of an Anthropic text block was released when a tool call or thinking
//!   block started, so a secret split around one was only masked in its tail.

use super::*;
use crate::stream::events::MAX_CONTINUED;
use serde_json::{Value, json};

const KEY: &str = "AKIA2E0A8F3B244C9986";
const TOKEN: &str = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A";

fn policy() -> Policy {
    Policy::builder()
        .rule(
            Rule::detectors(
                "mask-secrets",
                [
                    Detector::AwsAccessKey,
                    Detector::CreditCard,
                    Detector::GithubToken,
                ],
            )
            .mask(),
        )
        .rule(Rule::regex("no-phrase", [r"TOPSECRET\d+"]).reject("phrase refused"))
        .build()
        .unwrap()
}

/// SSE events: named when the pair has a name.
fn sse(events: &[(&str, Value)]) -> Vec<u8> {
    events
        .iter()
        .map(|(name, data)| match *name {
            "" => format!("data: {data}\n\n"),
            name => event(name, data.clone()),
        })
        .collect::<String>()
        .into_bytes()
}

/// The stream through `guard` at every chunking in a few (one byte at a time among them):
/// the output, which is the same at each, and whether the stream was cut off.
fn through(guard: impl Fn() -> StreamGuard, input: &[u8]) -> (String, bool) {
    let mut seen: Option<(Vec<u8>, bool)> = None;
    for chunk in [1, 3, 17, 64, input.len()] {
        let mut g = guard();
        let mut dec = SseDecoder::new(1 << 20);
        let (mut events, mut out) = (Vec::new(), Vec::new());
        for c in input.chunks(chunk.max(1)) {
            dec.push(c, &mut events).unwrap();
            for e in events.drain(..) {
                g.event(e, &mut out);
            }
        }
        if let Some(tail) = dec.finish() {
            g.event(tail, &mut out);
        }
        g.finish(&mut out);
        let got = (out.concat(), g.is_rejected());
        if let Some(s) = &seen {
            assert_eq!(s, &got, "chunk {chunk}");
        }
        seen = Some(got);
    }
    let (out, rejected) = seen.unwrap();
    (String::from_utf8(out).unwrap(), rejected)
}

fn guarded(kind: RouteKind, api: Api) -> impl Fn() -> StreamGuard {
    move || StreamGuard::for_route(policy(), kind, api, 256)
}

/// The strings at `pointer` of every event of `out`, joined (a client's text of one part).
fn joined(out: &str, pointer: impl Fn(&Value) -> Option<String>) -> String {
    let mut events = Vec::new();
    SseDecoder::new(1 << 20)
        .push(out.as_bytes(), &mut events)
        .unwrap();
    events
        .iter()
        .filter_map(|e| {
            let data = fields(std::str::from_utf8(e).ok()?).ok()?.data;
            pointer(&serde_json::from_str(&data).ok()?)
        })
        .collect()
}

/// A Responses delta of `ty` for part (`o`, `c`).
fn rdelta(ty: &str, o: u64, c: u64, text: &str) -> (&'static str, Value) {
    let ty: &'static str = match ty {
        "text" => "response.output_text.delta",
        "refusal" => "response.refusal.delta",
        _ => unreachable!(),
    };
    (
        ty,
        json!({"type": ty, "item_id": format!("msg_{o}"), "output_index": o, "content_index": c, "delta": text}),
    )
}

fn created() -> (&'static str, Value) {
    (
        "response.created",
        json!({"type":"response.created","response":{"id":"r","object":"response","status":"in_progress","output":[]}}),
    )
}

/// The text of part (`o`, `c`) as the OpenAI SDK assembles it from the deltas.
fn responses_part(out: &str, o: u64, c: u64) -> String {
    joined(out, |v| {
        let ty = v["type"].as_str()?;
        (ty.ends_with(".delta") && v["output_index"] == o && v["content_index"] == c)
            .then(|| v["delta"].as_str().map(str::to_owned))
            .flatten()
    })
}

#[test]
fn f1_responses_text_interleaved_across_parts_ends_the_stream() {
    let responses = guarded(RouteKind::Responses, Api::OpenAi);
    // (first half's part, the part between, second half's part), as the report's variants.
    let shapes = [
        (("text", 0, 0), ("text", 1, 0)),
        (("text", 0, 0), ("text", 0, 1)),
        (("refusal", 0, 0), ("refusal", 1, 0)),
        (("text", 0, 0), ("refusal", 1, 0)),
        (("text", 0, 1), ("text", 0, 0)),
    ];
    for (secret, halves) in [
        (KEY, ["key AKIA2E0A", "8F3B244C9986 end"]),
        ("TOPSECRET42", ["TOPSEC", "RET42 end"]),
    ] {
        for ((ty, o, c), (bty, bo, bc)) in shapes {
            let input = sse(&[
                created(),
                rdelta(ty, o, c, halves[0]),
                rdelta(bty, bo, bc, "Sure."),
                rdelta(ty, o, c, halves[1]),
            ]);
            let (out, rejected) = through(&responses, &input);
            assert!(rejected, "{out}");
            assert!(
                out.ends_with("event: error\ndata: {\"type\":\"error\",\"code\":\"bad_gateway\",\"message\":\"agw could not inspect an event in the provider's stream: text for an output part the stream had left\",\"param\":null}\n\n"),
                "{out}"
            );
            let part = responses_part(&out, o, c);
            assert!(!part.contains(secret) && !part.contains(halves[1]), "{out}");
        }
    }
    // Any number of items between the halves.
    for n in [1, 2, 65] {
        let mut events = vec![created(), rdelta("text", 0, 0, "key AKIA2E0A")];
        events.extend((1..=n).map(|o| rdelta("text", o, 0, "Sure.")));
        events.push(rdelta("text", 0, 0, "8F3B244C9986 end"));
        let (out, rejected) = through(&responses, &sse(&events));
        assert!(rejected && !out.contains("8F3B244C9986"), "{n}: {out}");
    }
}

#[test]
fn f1_an_index_a_client_reads_otherwise_ends_the_stream() {
    let responses = guarded(RouteKind::Responses, Api::OpenAi);
    for index in [json!(1.0), json!(-1), json!("1"), json!(0.5)] {
        for key in ["content_index", "output_index", "summary_index"] {
            let mut middle = rdelta("text", 0, 0, "Sure.");
            middle.1[key] = index.clone();
            let input = sse(&[
                created(),
                rdelta("text", 0, 0, "key AKIA2E0A"),
                middle,
                rdelta("text", 0, 0, "8F3B244C9986 end"),
            ]);
            let (out, rejected) = through(&responses, &input);
            assert!(rejected && !out.contains("8F3B"), "{key} {index}: {out}");
        }
    }
}

#[test]
fn f1_text_going_from_part_to_part_in_order_is_read_joined() {
    // Legit streams go from part to part: a secret split across two parts (as a client's
    // `output_text` joins them) is masked in both, and nothing is cut off.
    let input = sse(&[
        created(),
        (
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_0","role":"assistant","content":[]}}),
        ),
        rdelta("text", 0, 0, "key AKIA2E0A"),
        (
            "response.content_part.added",
            json!({"type":"response.content_part.added","output_index":0,"content_index":1,"part":{"type":"output_text","text":"8F3B"}}),
        ),
        rdelta("text", 0, 1, "244C9986 mid "),
        rdelta("text", 1, 0, "card 4539 9458 "),
        rdelta("text", 1, 0, "0730 2151 end"),
        (
            "response.completed",
            json!({"type":"response.completed","response":{"id":"r","status":"completed"}}),
        ),
    ]);
    let (out, rejected) = through(guarded(RouteKind::Responses, Api::OpenAi), &input);
    assert!(!rejected, "{out}");
    assert!(!out.contains("8F3B") && !out.contains("AKIA") && !out.contains("4539"));
    assert_eq!(responses_part(&out, 0, 0), "key <AWS_ACCESS_KEY>", "{out}");
    assert_eq!(
        responses_part(&out, 1, 0),
        "card <CREDIT_CARD> end",
        "{out}"
    );
}

#[test]
fn f1_a_part_continued_after_it_completed_ends_the_stream() {
    // Reasoning summaries and tool input are read per part; a piece after the part's `.done`
    // was read as a text of its own, while a client appends it.
    let responses = guarded(RouteKind::Responses, Api::OpenAi);
    let summary = |text: &str| {
        (
            "response.reasoning_summary_text.delta",
            json!({"type":"response.reasoning_summary_text.delta","item_id":"rs","output_index":0,"summary_index":0,"delta":text}),
        )
    };
    let input = sse(&[
        created(),
        summary("key AKIA2E0A"),
        (
            "response.reasoning_summary_text.done",
            json!({"type":"response.reasoning_summary_text.done","item_id":"rs","output_index":0,"summary_index":0,"text":"key AKIA2E0A"}),
        ),
        summary("8F3B244C9986 end"),
    ]);
    let (out, rejected) = through(&responses, &input);
    assert!(rejected && !out.contains("8F3B"), "{out}");
    let args = |text: &str| {
        (
            "response.function_call_arguments.delta",
            json!({"type":"response.function_call_arguments.delta","item_id":"fc","output_index":0,"delta":text}),
        )
    };
    let input = sse(&[
        created(),
        (
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc","call_id":"c","name":"run","arguments":""}}),
        ),
        args(r#"{"a": "4539 9458 0730 "#),
        (
            "response.function_call_arguments.done",
            json!({"type":"response.function_call_arguments.done","item_id":"fc","output_index":0,"arguments":r#"{"a": "4539 9458 0730 "#}),
        ),
        args("2151"),
    ]);
    let (out, rejected) = through(&responses, &input);
    assert!(rejected && !out.contains("\"2151"), "{out}");
}

#[test]
fn f1_anthropic_deltas_for_a_block_that_ended_end_the_stream() {
    // No block open: a delta for one that stopped, or for an earlier one, was read joined.
    let start = |i: u64| {
        (
            "content_block_start",
            json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}}),
        )
    };
    let delta = |i: u64, t: &str| {
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":t}}),
        )
    };
    let stop = |i: u64| {
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        )
    };
    let messages = guarded(RouteKind::Messages, Api::Anthropic);
    let shapes = [
        vec![
            start(0),
            delta(0, "key AKIA2E0A"),
            stop(0),
            start(1),
            delta(1, "Sure."),
            stop(1),
            delta(0, "8F3B244C9986 end"),
        ],
        vec![delta(2, "8F3B244C9986 end"), delta(1, "key AKIA2E0A")],
        vec![
            start(0),
            delta(0, "key AKIA2E0A"),
            stop(0),
            start(0),
            delta(0, "8F3B244C9986 end"),
        ],
    ];
    for events in shapes {
        let (out, rejected) = through(&messages, &sse(&events));
        assert!(rejected, "{out}");
        assert!(!(out.contains("AKIA2E0A") && out.contains("8F3B")), "{out}");
    }
}

/// llama.cpp `/completion` events.
fn llama(content: &str) -> (&'static str, Value) {
    ("", json!({"content": content, "stop": false}))
}

#[test]
fn f2_an_event_with_many_pieces_still_continues_the_texts_followed() {
    let generic = guarded(RouteKind::Passthrough, Api::OpenAi);
    // The report's event: pieces beside `content` in chat-shaped `choices` make the stream a
    // known API's; `content` held back then ends it.
    let padding: Vec<Value> = (0..9).map(|_| json!({"text": ""})).collect();
    for (first, second) in [
        ("key AKIA2E0A", "8F3B244C9986 end"),
        ("TOPSEC", "RET42 end"),
    ] {
        let input = sse(&[
            llama(first),
            (
                "",
                json!({"content": second, "stop": false, "choices": padding}),
            ),
            ("", json!({"content": "", "stop": true})),
        ]);
        let (out, rejected) = through(&generic, &input);
        assert!(rejected && !out.contains(second), "{out}");
    }
    // Pieces at paths servers stream tokens at, without `choices`: `content` is read on.
    let outputs: Vec<Value> = (0..9).map(|i| json!({ "text": format!("p{i}") })).collect();
    let input = sse(&[
        llama("key AKIA2E0A"),
        (
            "",
            json!({"content": "8F3B244C9986 end", "stop": false, "outputs": outputs}),
        ),
        ("", json!({"content": "", "stop": true})),
    ]);
    let (out, rejected) = through(&generic, &input);
    assert!(!rejected, "{out}");
    assert_eq!(
        joined(&out, |v| v["content"].as_str().map(str::to_owned)),
        "key <AWS_ACCESS_KEY> end"
    );
    // A piece read whole with a many-piece event is not continued later as a text of its own.
    let mut many: Vec<Value> = (0..9).map(|i| json!({ "text": format!("p{i}") })).collect();
    many[0] = json!({"text": "key AKIA2E0A"});
    let input = sse(&[
        ("", json!({"outputs": many})),
        ("", json!({"outputs": [{"text": "8F3B244C9986 end"}]})),
    ]);
    let (out, rejected) = through(&generic, &input);
    assert!(rejected && !out.contains("8F3B"), "{out}");
}

#[test]
fn f2_more_paths_than_followed_at_once_never_release_held_text() {
    let generic = guarded(RouteKind::Passthrough, Api::OpenAi);
    let at = |k: usize, text: &str| {
        let mut outputs = vec![Value::Null; k];
        outputs.push(json!({ "text": text }));
        ("", json!({ "outputs": outputs }))
    };
    // Held texts on every path: the one past the limit ends the stream.
    let mut events = vec![at(0, "key AKIA2E0A")];
    events.extend((1..70).map(|k| at(k, "x")));
    events.push(at(0, "8F3B244C9986 end"));
    let (out, rejected) = through(&generic, &sse(&events));
    let first = joined(&out, |v| {
        v.pointer("/outputs/0/text")?.as_str().map(str::to_owned)
    });
    assert!(!first.contains("8F3B"), "{out}");
    assert!(rejected, "{out}");
    // Decided texts are let go; one of them continued ends the stream. (Cards only: the
    // key detectors hold ordinary text back too, for a label that may follow.)
    let cards = || {
        let cards = Policy::builder()
            .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
            .build()
            .unwrap();
        StreamGuard::for_route(cards, RouteKind::Passthrough, Api::OpenAi, 256)
    };
    let mut events = vec![at(0, "card 4539 9458 ")];
    events.extend((1..=MAX_CONTINUED).map(|k| at(k, "done. ")));
    let (out, rejected) = through(cards, &sse(&events));
    assert!(!rejected, "{out}");
    events.push(at(0, "0730 2151 end"));
    let (out, rejected) = through(cards, &sse(&events));
    assert!(!rejected, "{out}");
    let first = joined(&out, |v| {
        v.pointer("/outputs/0/text")?.as_str().map(str::to_owned)
    });
    assert_eq!(first, "card <CREDIT_CARD> end", "{out}");
    events.push(at(1, "more"));
    let (out, rejected) = through(cards, &sse(&events));
    assert!(rejected && !out.contains("more"), "{out}");
}

/// An Anthropic stream: text block 0 (`first`), `between` at index 1, text block 2
/// (`second`).
fn around(first: &str, between: &[(&'static str, Value)], second: &str) -> Vec<u8> {
    let mut events = vec![
        (
            "message_start",
            json!({"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[]}}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":first}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
    ];
    events.extend(between.iter().cloned());
    events.extend([
        (
            "content_block_start",
            json!({"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":second}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":2}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ]);
    sse(&events)
}

fn tool_block() -> Vec<(&'static str, Value)> {
    vec![
        (
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"Read","input":{}}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\":\"x\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        ),
    ]
}

fn thinking_block() -> Vec<(&'static str, Value)> {
    vec![
        (
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"Let me see."}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"c2ln"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        ),
    ]
}

/// Block `i`'s text as the Anthropic SDK assembles it.
fn block_text(out: &str, i: u64) -> String {
    joined(out, |v| {
        (v["type"] == "content_block_delta" && v["index"] == i)
            .then(|| v["delta"]["text"].as_str().map(str::to_owned))
            .flatten()
    })
}

#[test]
fn f3_text_held_at_a_blocks_end_is_held_over_tool_calls_and_thinking() {
    let messages = guarded(RouteKind::Messages, Api::Anthropic);
    let (t1, t2) = TOKEN.split_at(30);
    for between in [tool_block(), thinking_block()] {
        for (first, second, masked) in [
            (format!("gh {t1}"), format!("{t2} end"), "gh <GITHUB_TOKEN>"),
            (
                "card 4539 9458 0730 ".into(),
                "2151 end".into(),
                "card <CREDIT_CARD>",
            ),
            (
                "key AKIA2E0A".into(),
                "8F3B244C9986 end".into(),
                "key <AWS_ACCESS_KEY>",
            ),
        ] {
            let input = around(&first, &between, &second);
            let (out, rejected) = through(&messages, &input);
            assert!(!rejected, "{out}");
            // As a response that is not streamed is masked: in both blocks.
            assert_eq!(block_text(&out, 0), masked, "{out}");
            assert_eq!(block_text(&out, 2), " end", "{out}");
            // The blocks between go out as they came, in their place.
            for (_, e) in &between {
                assert!(out.contains(&e.to_string()), "{out}");
            }
            assert!(out.find("\"index\":1").unwrap() < out.find("\"index\":2").unwrap());
        }
        // A refused phrase split around the block: nothing of it goes out.
        let (out, rejected) = through(&messages, &around("say TOPSECRET", &between, "42 end"));
        assert!(rejected && !out.contains("TOPSECRET"), "{out}");
    }
}

#[test]
fn f3_responses_text_is_held_over_other_output_items() {
    let input = sse(&[
        created(),
        rdelta("text", 0, 0, "key AKIA2E0A"),
        (
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc","call_id":"c","name":"run","arguments":""}}),
        ),
        (
            "response.function_call_arguments.delta",
            json!({"type":"response.function_call_arguments.delta","item_id":"fc","output_index":1,"delta":"{}"}),
        ),
        (
            "response.output_item.done",
            json!({"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","id":"fc","call_id":"c","name":"run","arguments":"{}"}}),
        ),
        rdelta("text", 2, 0, "8F3B244C9986 end"),
    ]);
    let (out, rejected) = through(guarded(RouteKind::Responses, Api::OpenAi), &input);
    assert!(!rejected, "{out}");
    assert_eq!(responses_part(&out, 0, 0), "key <AWS_ACCESS_KEY>", "{out}");
    assert_eq!(responses_part(&out, 2, 0), " end", "{out}");
}

#[test]
fn error_events_are_in_the_clients_dialect() {
    // Anthropic events on a chat route: the chat client gets a chat error.
    let input = around("say TOPSECRET", &tool_block(), "42 end");
    let (out, rejected) = through(guarded(RouteKind::Completions, Api::OpenAi), &input);
    assert!(rejected, "{out}");
    assert!(
        out.ends_with("data: {\"error\":{\"message\":\"phrase refused\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_request\"}}\n\n"),
        "{out}"
    );
    // A Gemini stream (`alt=sse`): Google's error shape.
    let part = |t: &str| {
        (
            "",
            json!({"candidates":[{"content":{"parts":[{"text":t}],"role":"model"},"index":0}]}),
        )
    };
    let input = sse(&[part("say TOPSEC"), part("RET42 end")]);
    let gemini = || {
        StreamGuard::for_route(policy(), RouteKind::Passthrough, Api::OpenAi, 256)
            .with_candidates(1)
    };
    let (out, rejected) = through(gemini, &input);
    assert!(rejected, "{out}");
    assert!(
        out.ends_with("data: {\"error\":{\"code\":400,\"message\":\"phrase refused\",\"status\":\"INVALID_ARGUMENT\"}}\n\n"),
        "{out}"
    );
}
