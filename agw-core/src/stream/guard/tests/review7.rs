//! Found by the seventh red-team review: streamed text skipped control-character removal when
//! it was ASCII, streams in formats agw does not know were read one event at a time, and
//! reasoning a mask rule hit went out unmasked.

use super::*;

fn mask_secrets() -> Policy {
    Policy::builder()
        .rule(
            Rule::detectors(
                "secrets",
                [
                    Detector::GithubToken,
                    Detector::AwsAccessKey,
                    Detector::CreditCard,
                ],
            )
            .mask(),
        )
        .build()
        .unwrap()
}

fn chat_stream(deltas: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for d in deltas {
        s += &chat_chunk(serde_json::json!([{"index": 0, "delta": {"content": d}}]));
    }
    s += "data: [DONE]\n\n";
    s.into_bytes()
}

/// The README's promise: C0 controls are removed before matching, in a stream as in JSON.
#[test]
fn controls_in_ascii_stream_text_are_removed_before_matching() {
    let policy = mask_secrets();
    for (secret, placeholder) in [
        (
            "ghp_3i\u{0}nWmjEDhU43xreZKWZPUyvqpk9qYDr4p0Kj",
            "<GITHUB_TOKEN>",
        ),
        ("AKIAOX\u{2}27LWH23Y6KRG6L", "<AWS_ACCESS_KEY>"),
        ("411111\u{0}1111111111", "<CREDIT_CARD>"),
        ("4111\u{8}11111111\u{1b}1111", "<CREDIT_CARD>"),
        ("AKIAIOSF\u{1}ODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
    ] {
        let text = format!("key {secret} ok");
        // Not streamed: masked.
        assert_eq!(
            super::splits::not_streamed(&policy, &text),
            format!("key {placeholder} ok"),
            "{text:?}"
        );
        let mid = text.len() / 2;
        for deltas in [vec![text.as_str()], vec![&text[..mid], &text[mid..]]] {
            for chunk in [1, 7, 1 << 20] {
                let input = anthropic_stream(&deltas);
                let out = run(&policy, Api::Anthropic, 64, &input, chunk).0;
                assert_eq!(text_of(&out), format!("key {placeholder} ok"), "{deltas:?}");
                let input = chat_stream(&deltas);
                let out = run(&policy, Api::OpenAi, 64, &input, chunk).0;
                assert_eq!(text_of(&out), format!("key {placeholder} ok"), "{deltas:?}");
            }
        }
    }
}

/// Reasoning without a signature (chat `reasoning_content`/`reasoning`, Responses reasoning
/// summaries, Mistral's thinking parts) is masked like text, across its deltas; signed
/// thinking refuses (`thinking_is_never_modified_and_what_a_mask_would_change_ends_the_stream`).
#[test]
fn unsigned_reasoning_is_masked_across_deltas() {
    use serde_json::json;
    let policy = mask_secrets();
    let pieces = ["think AKIAIOSF", "ODNN7EXAMPLE ok"];
    let want = "think <AWS_ACCESS_KEY> ok";
    for key in ["reasoning_content", "reasoning"] {
        let mut s = String::new();
        for p in pieces {
            s += &chat_chunk(json!([{"index": 0, "delta": {key: p}}]));
        }
        s += &chat_chunk(json!([{"index": 0, "delta": {"content": "done"}}]));
        s += "data: [DONE]\n\n";
        for chunk in [1, 9, s.len()] {
            let out = run_kind(
                &policy,
                RouteKind::Completions,
                Api::OpenAi,
                s.as_bytes(),
                chunk,
            );
            assert_eq!(
                strings_at(&out, &[&format!("/choices/0/delta/{key}")]),
                want
            );
        }
    }
    // Mistral: thinking as parts of `content`.
    let mut s = String::new();
    for p in pieces {
        s += &chat_chunk(json!([{"index": 0, "delta": {"content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": p}]}
        ]}}]));
    }
    s += "data: [DONE]\n\n";
    let out = run_kind(
        &policy,
        RouteKind::Completions,
        Api::OpenAi,
        s.as_bytes(),
        5,
    );
    assert_eq!(
        strings_at(&out, &["/choices/0/delta/content/0/thinking/0/text"]),
        want
    );
    // Responses: reasoning summary deltas.
    let mut s = event(
        "response.output_item.added",
        json!({"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","summary":[]}}),
    );
    for p in pieces {
        s += &event(
            "response.reasoning_summary_text.delta",
            json!({"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":0,"delta":p}),
        );
    }
    s += &event(
        "response.reasoning_summary_text.done",
        json!({"type":"response.reasoning_summary_text.done","output_index":0,"summary_index":0,"text":pieces.concat()}),
    );
    for chunk in [1, 9, s.len()] {
        let out = run_kind(
            &policy,
            RouteKind::Responses,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        );
        assert_eq!(
            strings_at(&out, &["/delta", "/text"]),
            format!("{want}{want}")
        );
    }
}

/// A content block's start carrying a fetched page (`source.data`, text) is masked in place;
/// a base64 image's data is not read.
#[test]
fn fetched_page_text_in_a_block_start_is_masked() {
    use serde_json::json;
    let block = |data: &str, ty: &str, media: &str| {
        event(
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"web_fetch_tool_result","tool_use_id":"t","content":{"type":"web_fetch_result","url":"https://e.x","content":{"type":"document","source":{"type":ty,"media_type":media,"data":data}}}}}),
        ) + &event(
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        )
    };
    let policy = mask_secrets();
    let s = block("page AKIAIOSFODNN7EXAMPLE", "text", "text/plain");
    let out = run_text(
        &policy,
        RouteKind::Messages,
        Api::Anthropic,
        s.as_bytes(),
        7,
    );
    assert!(
        !out.contains("AKIAIOSF") && out.contains("page <AWS_ACCESS_KEY>"),
        "{out}"
    );
    let s = block("AKIAIOSFODNN7EXAMPLE", "base64", "application/pdf");
    let out = run_kind(
        &policy,
        RouteKind::Messages,
        Api::Anthropic,
        s.as_bytes(),
        7,
    );
    assert_eq!(out, s.as_bytes());
}

const TOKENS: [&str; 9] = [
    "key", " AK", "IA", "IOS", "FOD", "NN7", "EXA", "MPLE", " ok",
];

pub(super) fn sse(events: impl IntoIterator<Item = serde_json::Value>) -> Vec<u8> {
    events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect::<String>()
        .into_bytes()
}

/// Streams agw does not recognise (llama.cpp's `/completion`, TGI's `/generate_stream`,
/// Gemini's candidates, any JSON events) carry text in pieces at one path: read joined, held
/// back and masked as known dialects' deltas are, at every split, whatever the route's API.
#[test]
fn text_continued_at_one_path_of_unknown_events_is_masked() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .rule(Rule::regex("phrase", ["forbidden phrase"]).reject("no phrase"))
        .build()
        .unwrap();
    type Shape = fn(&str) -> serde_json::Value;
    let shapes: [(&str, Shape); 5] = [
        ("/content", |t| json!({"content": t, "stop": false})),
        (
            "/token/text",
            |t| json!({"token": {"id": 1, "text": t, "logprob": -0.1, "special": false}, "generated_text": null}),
        ),
        (
            "/candidates/0/content/parts/0/text",
            |t| json!({"candidates": [{"content": {"parts": [{"text": t}], "role": "model"}, "index": 0}]}),
        ),
        ("/delta", |t| json!({"delta": t})),
        // Ollama's chat shape as events: its other strings are read event by event.
        (
            "/message/content",
            |t| json!({"model": "llama3", "message": {"role": "assistant", "content": t}, "done": false}),
        ),
    ];
    for (pointer, shape) in shapes {
        let input = sse(TOKENS.iter().map(|t| shape(t)));
        for api in [Api::OpenAi, Api::Anthropic] {
            for chunk in [1, 7, input.len()] {
                let (out, rejected) = run(&policy, api, 64, &input, chunk);
                assert!(!rejected, "{pointer}");
                // Masked events keep their bytes but for the strings changed (key order too).
                let first = std::str::from_utf8(&input).unwrap();
                let head = &first[..first.find("\":").unwrap() + 2];
                let text = String::from_utf8(out.clone()).unwrap();
                assert!(
                    text.split("\n\n")
                        .all(|e| e.is_empty() || e.starts_with(head)),
                    "{text}"
                );
                assert_eq!(
                    strings_at(&out, &[pointer]),
                    "key <AWS_ACCESS_KEY> ok",
                    "{pointer} {api:?} {chunk}"
                );
            }
        }
        // Clean text passes byte for byte.
        let clean = sse(["hel", "lo ", "there"].iter().map(|t| shape(t)));
        assert_eq!(run(&policy, Api::OpenAi, 64, &clean, 3).0, clean);
        // A refusing rule over pieces ends the stream with the client's error event.
        let refused = sse(["a forbid", "den ph", "rase"].iter().map(|t| shape(t)));
        let (out, rejected) = run(&policy, Api::OpenAi, 64, &refused, 5);
        let out = String::from_utf8(out).unwrap();
        assert!(
            rejected && !out.contains("forbid") && out.contains("no phrase"),
            "{out}"
        );
        assert!(out.contains("data: {\"error\""), "{out}");
        let out = String::from_utf8(run(&policy, Api::Anthropic, 64, &refused, 5).0).unwrap();
        assert!(out.contains("event: error"), "{out}");
    }
    // Two candidates are two texts: a key split between them is no key.
    let input = sse([
        json!({"candidates": [{"content": {"parts": [{"text": "AKIAIOSF"}]}, "index": 0}]}),
        json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "index": 0}, {"content": {"parts": [{"text": "ODNN7EXAMPLE"}]}, "index": 1}]}),
    ]);
    assert_eq!(run(&policy, Api::OpenAi, 64, &input, 4).0, input);
    // An unknown event ahead of a known stream: read, then the stream is read as what it is.
    let mut input =
        String::from_utf8(sse([json!({"type": "hello", "note": "hi AKIAIOSF"})])).unwrap();
    input += &String::from_utf8(anthropic_stream(&["a key AKIAIOSF", "ODNN7EXAMPLE"])).unwrap();
    let (out, rejected) = run(&policy, Api::Anthropic, 64, input.as_bytes(), 3);
    assert!(!rejected);
    assert_eq!(text_of(&out), "a key <AWS_ACCESS_KEY>");
}

/// Only paths where servers stream tokens are joined (the seventh review's regression
/// round): a stream of records is read one event at a time, so whole values keep their
/// boundaries and are masked, progress events go out at once, and an event of many strings
/// opens no text per string.
#[test]
fn records_are_read_event_by_event_and_only_token_paths_join() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(
            Rule::detectors(
                "dets",
                [
                    Detector::AwsAccessKey,
                    Detector::CreditCard,
                    Detector::Email,
                ],
            )
            .mask(),
        )
        .build()
        .unwrap();
    let input = sse([
        json!({"card": "4111111111111111"}),
        json!({"card": "5555555555554444"}),
        json!({"email": "alice@example.com"}),
        json!({"email": "bob@example.org"}),
        json!({"user": "svc1", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
        json!({"user": "svc2", "access_key_id": "AKIAIOSFODNN7EXAMPL2"}),
    ]);
    let (out, rejected) = run(&policy, Api::OpenAi, 64, &input, 9);
    let out = String::from_utf8(out).unwrap();
    assert!(!rejected, "{out}");
    for gone in ["4111", "5555", "alice", "bob@", "AKIA"] {
        assert!(!out.contains(gone), "{gone}: {out}");
    }
    for placeholder in ["<CREDIT_CARD>", "<EMAIL>", "<AWS_ACCESS_KEY>"] {
        assert_eq!(out.matches(placeholder).count(), 2, "{placeholder}: {out}");
    }
    // A progress event is not held back for the events after it.
    let mut guard = StreamGuard::new(mask_secrets(), Api::OpenAi, 64);
    let mut sent = Vec::new();
    guard.event(
        Bytes::from(format!(
            "data: {}\n\n",
            json!({"ts": "1715767200", "progress": "20%"})
        )),
        &mut sent,
    );
    assert_eq!(sent.len(), 1, "forwarded at once");
    // Many strings in one event: a document, read whole, no text opened per string.
    let mut guard = StreamGuard::new(mask_secrets(), Api::OpenAi, 64);
    let mut sent = Vec::new();
    let many = json!({"items": vec!["ab"; 20_000], "content": "hi"});
    guard.event(Bytes::from(format!("data: {many}\n\n")), &mut sent);
    assert!(guard.chans.len() <= 1, "{}", guard.chans.len());
    let many =
        json!({"outputs": (0..50).map(|i| json!({"index": i, "text": "x"})).collect::<Vec<_>>()});
    guard.event(Bytes::from(format!("data: {many}\n\n")), &mut sent);
    guard.finish(&mut sent);
    assert!(!guard.is_rejected());
}

/// A chat chunk whose delta carries text only under a key chat does not have (`text`) was
/// read by no rule: now its strings are texts continued by path, as in an unknown stream.
#[test]
fn strings_a_known_chunk_has_where_its_api_puts_none_are_read() {
    use serde_json::json;
    let policy = mask_secrets();
    let chunks = |pieces: &[&str]| {
        let mut s: String = pieces
            .iter()
            .map(|p| chat_chunk(json!([{"index": 0, "delta": {"text": p}}])))
            .collect();
        s += &chat_chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]));
        s + "data: [DONE]\n\n"
    };
    for pieces in [&["key AKIAIOSFODNN7EXAMPLE ok"][..], &TOKENS[..]] {
        let input = chunks(pieces);
        for chunk in [1, 9, input.len()] {
            let out = run_kind(
                &policy,
                RouteKind::Completions,
                Api::OpenAi,
                input.as_bytes(),
                chunk,
            );
            let text = strings_at(&out, &["/choices/0/delta/text"]);
            assert!(text.ends_with("<AWS_ACCESS_KEY> ok"), "{text}");
            assert!(
                String::from_utf8(out)
                    .unwrap()
                    .ends_with("data: [DONE]\n\n")
            );
        }
    }
    // Ordinary chunks are untouched.
    let input = chat_stream(&["hello", " there"]);
    assert_eq!(
        run_kind(&policy, RouteKind::Completions, Api::OpenAi, &input, 7),
        input
    );
}
