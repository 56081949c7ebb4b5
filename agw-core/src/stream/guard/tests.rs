use super::*;
use crate::detect::Detector;
use crate::guard::Rule;
use crate::stream::SseDecoder;

fn anthropic_stream(deltas: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n\
         event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
         event: ping\ndata: {\"type\": \"ping\"}\n\n",
    );
    for d in deltas {
        let text = serde_json::to_string(d).unwrap();
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n"
        ));
        s.push_str(": keep-alive\n\n");
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
         event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n\
         event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    s.into_bytes()
}

fn run(policy: &Policy, api: Api, window: usize, input: &[u8], chunk: usize) -> (Vec<u8>, bool) {
    let mut guard = StreamGuard::new(policy.clone(), api, window);
    let mut dec = SseDecoder::new(1 << 20);
    let mut events = Vec::new();
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        dec.push(c, &mut events).unwrap();
        for e in events.drain(..) {
            guard.event(e, &mut out);
        }
    }
    if let Some(tail) = dec.finish() {
        guard.event(tail, &mut out);
    }
    guard.finish(&mut out);
    (out.concat(), guard.is_rejected())
}

fn text_of(stream: &[u8]) -> String {
    let mut events = Vec::new();
    let mut dec = SseDecoder::new(1 << 20);
    dec.push(stream, &mut events).unwrap();
    events
        .iter()
        .filter_map(|e| {
            let (_, data, _) = fields(std::str::from_utf8(e).ok()?);
            let v: serde_json::Value = serde_json::from_str(&data).ok()?;
            v.pointer("/delta/text")
                .or(v.pointer("/choices/0/delta/content"))
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .collect()
}

fn mask_cards() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard, Detector::AwsAccessKey]).mask())
        .build()
        .unwrap()
}

#[test]
fn untouched_streams_pass_byte_for_byte_at_any_chunking() {
    let input = anthropic_stream(&["Hello", " there, ", "how are you?"]);
    for chunk in [1, 2, 3, 7, 64, input.len()] {
        let (out, rejected) = run(&mask_cards(), Api::Anthropic, 32, &input, chunk);
        assert!(!rejected);
        assert_eq!(out, input, "chunk {chunk}");
    }
}

#[test]
fn a_card_split_across_deltas_is_masked() {
    let input = anthropic_stream(&[
        "your card is 4111 11",
        "11 1111 1111 and the key AKIAIOSF",
        "ODNN7EXAMPLE, ok?",
    ]);
    let whole = run(&mask_cards(), Api::Anthropic, 48, &input, input.len()).0;
    assert_eq!(
        text_of(&whole),
        "your card is <CREDIT_CARD> and the key <AWS_ACCESS_KEY>, ok?"
    );
    for chunk in [1, 5, 13, 100] {
        assert_eq!(
            run(&mask_cards(), Api::Anthropic, 48, &input, chunk).0,
            whole,
            "chunk {chunk}"
        );
    }
    // Events other than deltas keep their bytes and their order.
    let s = String::from_utf8(whole).unwrap();
    assert!(s.starts_with("event: message_start\n"));
    assert_eq!(s.matches(": keep-alive\n\n").count(), 3);
    assert!(s.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[test]
fn text_is_held_back_only_by_the_window() {
    let policy = mask_cards();
    let mut guard = StreamGuard::new(policy, Api::Anthropic, 10);
    let mut out = Vec::new();
    let delta = |t: &str| {
        Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n"
        ))
    };
    guard.event(delta("0123456789abcdef"), &mut out);
    assert!(out.is_empty(), "the only delta is within the window");
    guard.event(delta("0123456789abcdef"), &mut out);
    assert_eq!(
        out.len(),
        1,
        "the first delta is now 16 bytes behind the end"
    );
    guard.event(
        Bytes::from_static(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"),
        &mut out,
    );
    assert_eq!(out.len(), 3, "a block end releases everything");
}

#[test]
fn reject_cuts_the_stream_with_an_error_event() {
    let policy = Policy::builder()
        .rule(
            Rule::literals("secret", ["project zebra"])
                .case_insensitive(true)
                .reject("Blocked response"),
        )
        .build()
        .unwrap();
    let input = anthropic_stream(&["the code name is Proj", "ect Zeb", "ra, don't tell"]);
    for chunk in [1, 9, input.len()] {
        let (out, rejected) = run(&policy, Api::Anthropic, 32, &input, chunk);
        assert!(rejected);
        let s = String::from_utf8(out).unwrap();
        assert!(!s.contains("Zeb"), "{s}");
        assert!(
            s.trim_end().ends_with(
                r#"event: error
data: {"type":"error","error":{"type":"invalid_request_error","message":"Blocked response"}}"#
            ),
            "{s}"
        );
    }
}

#[test]
fn openai_streams() {
    let mut input = String::new();
    for d in ["card 4111", " 1111 1111 1111", " end"] {
        input.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
            serde_json::to_string(d).unwrap()
        ));
    }
    input.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    let (out, _) = run(&mask_cards(), Api::OpenAi, 64, input.as_bytes(), 5);
    assert_eq!(text_of(&out), "card <CREDIT_CARD> end");
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
}

#[test]
fn evasion_in_responses_is_normalised() {
    let policy = Policy::builder()
        .rule(Rule::literals("w", ["secret"]).mask())
        .build()
        .unwrap();
    let input = anthropic_stream(&["a s\u{200B}ec", "ｒｅｔ here"]);
    let out = run(&policy, Api::Anthropic, 32, &input, 3).0;
    assert_eq!(text_of(&out), "a <MASKED> here");
}

/// Found by `fuzz/` (sse): deltas agw's scanner accepts but serde_json does not (a raw tab, a
/// lone surrogate) made re-serializing a masked delta panic. Such events are not JSON a client
/// parses the same way: they now end the stream (fail closed), secret unsent.
#[test]
fn deltas_that_serde_json_rejects_end_the_stream() {
    let p = Policy::builder()
        .rule(Rule::literals("k", ["secret"]).mask())
        .build()
        .unwrap();
    for text in ["secret\t", "secret \\ud800"] {
        let mut g = StreamGuard::new(p.clone(), Api::Anthropic, 64);
        let mut out = Vec::new();
        let event = format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
        );
        g.event(Bytes::from(event), &mut out);
        g.finish(&mut out);
        let s = String::from_utf8(out.concat()).unwrap();
        assert!(!s.contains("secret"), "{s}");
        assert!(s.starts_with("event: error\n"), "{s}");
        assert!(g.is_rejected());
    }
}

/// Found by fuzzing (`sse`, property 4): a short keyword inside a longer one that had not
/// fully arrived was masked first, so `credit card` split as `credit ca` + `rd` came out as
/// `credit c<kw>rd`. Masks are now decided when the text they start in is sent, so every
/// split gives what the whole text gives.
#[test]
fn a_longer_match_still_arriving_wins_over_a_shorter_one() {
    let policy = Policy::builder()
        .rule(Rule::literals("kw", ["credit card", "a"]).mask_with("#"))
        .build()
        .unwrap();
    let text = "a \"credit card\" is a card";
    for window in [11, 32, 256] {
        let mut seen = Vec::new();
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            let input = anthropic_stream(&[a, b]);
            let mut guard = StreamGuard::new(policy.clone(), Api::Anthropic, window);
            let mut dec = SseDecoder::new(1 << 20);
            let mut events = Vec::new();
            let mut out = Vec::new();
            dec.push(&input, &mut events).unwrap();
            for e in events.drain(..) {
                guard.event(e, &mut out);
            }
            guard.finish(&mut out);
            let masked = text_of(&out.concat());
            assert_eq!(
                masked, "# \"#\" is # c#rd",
                "window {window}, split {a:?} + {b:?}"
            );
            // Once per match, however often held text is scanned again (each keep-alive
            // rescans it): four masked spans, plus `a` inside `credit card` when the whole
            // phrase is seen at once (rules report overlapping matches).
            let hits = guard.hits().len();
            assert!(
                (4..=5).contains(&hits),
                "{hits} hits: window {window}, split {a:?} + {b:?}"
            );
            seen.push(masked);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]));
    }
}
