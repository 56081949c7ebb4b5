use super::*;
use crate::detect::Detector;
use crate::guard::Decision;
use crate::guard::Rule;
use crate::route::RouteKind;
use crate::stream::SseDecoder;
use crate::stream::sse::fields;
use resync::DISAGREES;

mod open;
mod review12;
mod review13;
mod review14;
mod review15;
mod review24;
mod review7;
mod rt2;
mod splits;

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
    strings_at(stream, &["/delta/text", "/choices/0/delta/content"])
}

/// The concatenated strings of a stream's events at the first of `pointers` each event has.
fn strings_at(stream: &[u8], pointers: &[&str]) -> String {
    let mut events = Vec::new();
    SseDecoder::new(1 << 20).push(stream, &mut events).unwrap();
    events
        .iter()
        .filter_map(|e| {
            let data = fields(std::str::from_utf8(e).ok()?).ok()?.data;
            let v: serde_json::Value = serde_json::from_str(&data).ok()?;
            pointers
                .iter()
                .find_map(|p| v.pointer(p))
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
        Bytes::from_static(
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        ),
        &mut out,
    );
    // Text reads on into the next text block: a block's end decides nothing.
    assert_eq!(out.len(), 1, "a text block's end keeps what is held");
    guard.event(
        Bytes::from_static(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"Read\",\"input\":{}}}\n\n",
        ),
        &mut out,
    );
    // What is held may still be the start of a match the next text block completes (rt2
    // review): held over the tool call, whose events wait behind it.
    assert_eq!(out.len(), 1, "a tool call's start keeps what is held");
    guard.event(
        Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        &mut out,
    );
    assert_eq!(out.len(), 5, "the message's end releases it, then the call");
    let mut guard = StreamGuard::new(mask_cards(), Api::Anthropic, 10);
    let mut out = Vec::new();
    guard.event(delta("0123456789abcdef"), &mut out);
    guard.event(
        Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        &mut out,
    );
    assert_eq!(out.len(), 2, "the message's end releases everything");
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

#[test]
fn responses_get_the_same_unicode_folds_as_requests() {
    let policy = Policy::builder()
        .rule(Rule::regex("w", ["credit card"]).mask_with("[x]"))
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let cases = [
        (vec!["a cre\u{301}d", "it card\u{332} b"], "a [x] b"),
        (vec!["a c̲r̲e̲d̲i̲t̲ c̲a̲", "r̲d̲ b"], "a [x] b"),
        (vec!["a cr\u{e9}dit\u{2800}card b"], "a [x] b"),
        (vec!["a cre\u{600}dit c\u{1BCA0}ard b"], "a [x] b"),
        (vec!["no ٤١١١ ١١١", "١ ١١١١ ١١١١ ok"], "no <CREDIT_CARD> ok"),
        (vec!["no ۴۱۱۱-۱۱۱۱-१११", "१-1111 ok"], "no <CREDIT_CARD> ok"),
        (vec!["cred\u{661}t card"], "cred\u{661}t card"),
    ];
    for (deltas, want) in cases {
        let input = anthropic_stream(&deltas);
        for chunk in [1, 3, 7, input.len()] {
            let out = run(&policy, Api::Anthropic, 48, &input, chunk).0;
            assert_eq!(text_of(&out), want, "{deltas:?} chunk {chunk}");
        }
    }
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

fn run_kind(policy: &Policy, kind: RouteKind, api: Api, input: &[u8], chunk: usize) -> Vec<u8> {
    let mut guard = StreamGuard::for_route(policy.clone(), kind, api, 64);
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
    out.concat()
}

/// [`run_kind`]'s output as text.
fn run_text(policy: &Policy, kind: RouteKind, api: Api, input: &[u8], chunk: usize) -> String {
    String::from_utf8(run_kind(policy, kind, api, input, chunk)).unwrap()
}

fn event(name: &str, data: serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An Anthropic stream: a text block, then a tool_use block whose input arrives as `pieces`.
fn tool_stream(tool: &str, pieces: &[&str]) -> Vec<u8> {
    use serde_json::json;
    let mut s = event(
        "message_start",
        json!({"type":"message_start","message":{"id":"m","content":[]}}),
    );
    s += &event(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    s += &event(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Running it."}}),
    );
    s += &event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    s += &event(
        "content_block_start",
        json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":tool,"input":{}}}),
    );
    for p in pieces {
        s += &event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":p}}),
        );
    }
    s += &event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":1}),
    );
    s += &event(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use"}}),
    );
    s += &event("message_stop", json!({"type":"message_stop"}));
    s.into_bytes()
}

/// The concatenated `partial_json` of every input_json_delta in a stream.
fn tool_input_of(stream: &[u8]) -> String {
    strings_at(stream, &["/delta/partial_json"])
}

/// A card split in two texts.
const CARD_HALVES: [&str; 2] = ["my card 4111 1111 ", "1111 1111 ok"];

fn k8s_policy() -> Policy {
    Policy::builder()
        .tool_rule(
            crate::guard::ToolRule::new("no-k8s-deletes", "Bash")
                .argument("command", r"kubectl\s+delete")
                .reject("Deleting Kubernetes resources is blocked by policy"),
        )
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap()
}

/// Every way to cut `text` into deltas at one or two points, and one byte at a time.
fn delta_splits(text: &str) -> Vec<Vec<String>> {
    let cuts: Vec<usize> = (1..text.len())
        .filter(|i| text.is_char_boundary(*i))
        .collect();
    let mut all = vec![vec![text.to_owned()]];
    for &a in &cuts {
        all.push(vec![text[..a].into(), text[a..].into()]);
        for &b in cuts.iter().filter(|b| **b > a).step_by(7) {
            all.push(vec![text[..a].into(), text[a..b].into(), text[b..].into()]);
        }
    }
    all.push(text.chars().map(String::from).collect());
    all
}

#[test]
fn a_rejected_tool_call_never_completes_at_any_split() {
    let command = r#"{"command": "echo kubectl  delete ns prod > /dev/null; touch /tmp/m"}"#;
    for pieces in delta_splits(command) {
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let input = tool_stream("Bash", &pieces);
        for chunk in [1, 17, input.len()] {
            let out = run_text(
                &k8s_policy(),
                RouteKind::Messages,
                Api::Anthropic,
                &input,
                chunk,
            );
            // The text before the call went out (held over the call, it is decided when the
            // stream ends on it); nothing of the call did.
            assert!(out.contains("Running it."), "{out}");
            assert!(!out.contains("tool_use"), "{out}");
            assert!(!out.contains("kubectl"), "{out}");
            assert!(!out.contains(r#""index":1"#), "{out}");
            assert!(
                out.ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Deleting Kubernetes resources is blocked by policy\"}}\n\n"),
                "{out}"
            );
        }
    }
}

#[test]
fn a_tool_name_with_a_secret_ends_the_stream_before_the_call_goes_out() {
    // Found by the sixth red-team review: a tool's name was read by no text rule. A name is not
    // rewritten, so a masking rule refuses it as a rejecting one does.
    let policy = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
        .build()
        .unwrap();
    for (name, rule) in [("AKIAJ4Q7R2LMXZ5B8PQW", "keys"), ("credit card", "cards")] {
        let input = tool_stream(name, &[r#"{"path": "/tmp/x"}"#]);
        for chunk in [1, 17, input.len()] {
            let mut guard = StreamGuard::new(policy.clone(), Api::Anthropic, 256);
            let mut dec = SseDecoder::new(1 << 20);
            let (mut events, mut out) = (Vec::new(), Vec::new());
            for c in input.chunks(chunk) {
                dec.push(c, &mut events).unwrap();
                for e in events.drain(..) {
                    guard.event(e, &mut out);
                }
            }
            guard.finish(&mut out);
            let out = String::from_utf8(out.concat()).unwrap();
            assert!(guard.is_rejected(), "{name}: {out}");
            assert!(out.contains("Running it."), "{out}");
            assert!(!out.contains(name), "{out}");
            assert!(!out.contains("tool_use"), "{out}");
            assert!(out.contains("event: error"), "{out}");
            assert!(
                guard.hits().iter().any(|h| &*h.rule == rule),
                "{name}: {:?}",
                guard.hits()
            );
        }
    }
    // An ordinary name passes.
    let input = tool_stream("Read", &[r#"{"path": "/tmp/x"}"#]);
    let (out, rejected) = run(&policy, Api::Anthropic, 256, &input, 7);
    assert!(!rejected);
    assert_eq!(out, input);
}

#[test]
fn an_allowed_tool_call_passes_byte_for_byte_at_any_chunking() {
    let input = tool_stream(
        "Bash",
        &[r#"{"comm"#, r#"and": "kubectl get"#, r#" pods"}"#],
    );
    for chunk in 1..40 {
        assert_eq!(
            run_kind(
                &k8s_policy(),
                RouteKind::Messages,
                Api::Anthropic,
                &input,
                chunk
            ),
            input,
            "chunk {chunk}"
        );
    }
    // Other tools are not held to the rule.
    let input = tool_stream("Read", &[r#"{"command": "kubectl delete"}"#]);
    assert_eq!(
        run_kind(
            &k8s_policy(),
            RouteKind::Messages,
            Api::Anthropic,
            &input,
            5
        ),
        input
    );
}

#[test]
fn masking_tool_input_keeps_the_json_valid_at_any_split() {
    let json = r#"{"file_path": "/tmp/a", "content": "key=AKIAIOSFODNN7EXAMPLE\n\"q\""}"#;
    let want = r#"{"file_path": "/tmp/a", "content": "key=<AWS_ACCESS_KEY>\n\"q\""}"#;
    for pieces in delta_splits(json) {
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let out = run_kind(
            &k8s_policy(),
            RouteKind::Messages,
            Api::Anthropic,
            &tool_stream("Write", &pieces),
            64,
        );
        let input = tool_input_of(&out);
        assert_eq!(input, want, "{pieces:?}");
        serde_json::from_str::<serde_json::Value>(&input).unwrap();
    }
}

/// A card the model writes as a JSON number in a streamed tool input is masked by a string.
#[test]
fn a_number_in_a_streamed_tool_input_is_masked() {
    let policy = mask_cards();
    let json = r#"{"amount": 12, "card": 4111111111111111}"#;
    for pieces in delta_splits(json) {
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let out = run_kind(
            &policy,
            RouteKind::Messages,
            Api::Anthropic,
            &tool_stream("Pay", &pieces),
            64,
        );
        let input = tool_input_of(&out);
        assert_eq!(
            input, r#"{"amount": 12, "card": "<CREDIT_CARD>"}"#,
            "{pieces:?}"
        );
    }
}

/// Found by the audit: a tool call whose input comes whole in `content_block_start` (with no
/// delta, or an empty one: clients then keep the start's input) was never held to the tool
/// rules.
#[test]
fn a_tool_input_given_in_the_start_block_is_checked() {
    let with_start = |input: serde_json::Value, pieces: &[&str]| {
        let empty = r#""input":{}"#;
        let stream = String::from_utf8(tool_stream("Bash", pieces)).unwrap();
        assert!(stream.contains(empty));
        stream.replacen(empty, &format!(r#""input":{input}"#), 1)
    };
    let deletes = serde_json::json!({"command": "kubectl delete pods --all"});
    for pieces in [&[][..], &[""][..], &["", "  "][..]] {
        let input = with_start(deletes.clone(), pieces);
        for chunk in [3, input.len()] {
            let out = run_text(
                &k8s_policy(),
                RouteKind::Messages,
                Api::Anthropic,
                input.as_bytes(),
                chunk,
            );
            assert!(out.contains("Running it."), "{out}");
            assert!(!out.contains("kubectl"), "{pieces:?}: {out}");
            assert!(out.contains("blocked by policy"), "{pieces:?}: {out}");
        }
    }
    // A harmless start input passes as it came; text rules still mask in it.
    let input = with_start(
        serde_json::json!({"command": "kubectl get pods", "note": "AKIAIOSFODNN7EXAMPLE"}),
        &[],
    );
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        input.as_bytes(),
        5,
    );
    assert!(out.contains("kubectl get pods"), "{out}");
    assert!(
        out.contains("<AWS_ACCESS_KEY>") && !out.contains("AKIA"),
        "{out}"
    );
    assert!(!out.contains("event: error"), "{out}");
}

/// Found by the audit: a PEM key longer than the window was masked only as far as the window
/// reached when it was decided; the rest of its lines went out.
#[test]
fn a_pem_key_longer_than_the_window_is_masked_to_its_end() {
    let policy = Policy::builder()
        .rule(Rule::detectors("pem", [Detector::PemPrivateKey]).mask())
        .build()
        .unwrap();
    let lines: Vec<String> = (0..25u32)
        .map(|i| {
            (0..64u32)
                .map(|j| {
                    let x = (i * 64 + j).wrapping_mul(2_654_435_761) >> 7;
                    let b = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                    b[(x % 64) as usize] as char
                })
                .collect()
        })
        .collect();
    for (numbered, end) in [(false, true), (true, true), (false, false)] {
        let body: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(n, l)| {
                if numbered {
                    format!("{:>6}\u{2192}{l}", n + 2)
                } else {
                    l.clone()
                }
            })
            .collect();
        let mut text = format!(
            "Here it is:\n-----BEGIN RSA PRIVATE KEY-----\n{}\n",
            body.join("\n")
        );
        if end {
            text += "-----END RSA PRIVATE KEY-----\nAnd that is all.";
        }
        // 40-byte deltas, cut at character boundaries.
        let mut pieces: Vec<&str> = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut n = rest.len().min(40);
            while !rest.is_char_boundary(n) {
                n -= 1;
            }
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        for chunk in [7, 1000] {
            let (out, rejected) = run(
                &policy,
                Api::Anthropic,
                256,
                &anthropic_stream(&pieces),
                chunk,
            );
            assert!(!rejected);
            let got = text_of(&out);
            for l in &lines {
                assert!(!got.contains(&l[..16]), "{numbered} {end}: {got}");
            }
            assert!(got.starts_with("Here it is:\n<PEM_PRIVATE_KEY>"), "{got}");
            if end {
                assert!(got.ends_with("\nAnd that is all."), "{got}");
                assert_eq!(got.matches("<PEM_PRIVATE_KEY>").count(), 1, "{got}");
            }
        }
    }
}

/// Found by the audit: `credit ` in one text block and `card` in the next passed; a client
/// shows consecutive text blocks as one text.
#[test]
fn a_match_across_text_blocks_is_found() {
    let two_blocks = |a: &str, b: &str| {
        let one = String::from_utf8(anthropic_stream(&[a])).unwrap();
        let stop =
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
        let second = format!(
            "{stop}event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n\
             event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":1}}\n\n",
            serde_json::to_string(b).unwrap()
        );
        one.replacen(stop, &second, 1)
    };
    let policy = Policy::builder()
        .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    let input = two_blocks("my credit ", "card, please");
    for chunk in [5, input.len()] {
        let (out, rejected) = run(&policy, Api::Anthropic, 64, input.as_bytes(), chunk);
        assert!(rejected, "{}", String::from_utf8_lossy(&out));
        assert!(!String::from_utf8_lossy(&out).contains("card, please"));
    }
    // A key split over two blocks is masked whole: text blocks are one text, held across
    // a block's end (found by the red-team review: the first block's part went out when that
    // block ended).
    let input = two_blocks("key AKIAIOSF", "ODNN7EXAMPLE ok");
    for chunk in [1, 9, input.len()] {
        let (out, rejected) = run(&policy, Api::Anthropic, 64, input.as_bytes(), chunk);
        assert!(!rejected);
        assert_eq!(text_of(&out), "key <AWS_ACCESS_KEY> ok", "chunk {chunk}");
    }
    // Unrelated blocks are unchanged.
    let input = two_blocks("my credit ", "history is fine");
    let (out, rejected) = run(&policy, Api::Anthropic, 64, input.as_bytes(), 9);
    assert!(!rejected);
    assert_eq!(out, input.as_bytes());
}

#[test]
fn a_tool_input_that_is_not_json_fails_closed() {
    let input = tool_stream("Bash", &[r#"{"command": "ls"} trailing"#]);
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        &input,
        7,
    );
    assert!(
        !out.contains(r#"\"ls\""#) && out.contains("event: error"),
        "{out}"
    );
}

fn chat_chunk(choices: serde_json::Value) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"id":"c","object":"chat.completion.chunk","choices":choices})
    )
}

/// A chat tool name streamed in pieces is checked whole after each piece; an audit rule's hit
/// on it is recorded once, not once per later piece (sixth review's diff read).
#[test]
fn a_tool_name_in_pieces_is_audited_once() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("watch", ["watchword"]).audit())
        .build()
        .unwrap();
    let mut s = String::new();
    for (i, piece) in ["watch", "word", "_tool", "_v2"].iter().enumerate() {
        let mut call = json!({"index":0,"function":{"name":piece}});
        if i == 0 {
            call["id"] = json!("c1");
            call["type"] = json!("function");
        }
        s += &chat_chunk(json!([{"index":0,"delta":{"tool_calls":[call]}}]));
    }
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]),
    );
    s += &chat_chunk(json!([{"index":0,"delta":{},"finish_reason":"tool_calls"}]));
    s += "data: [DONE]\n\n";
    let mut guard = StreamGuard::new(policy, Api::OpenAi, 256);
    let mut dec = SseDecoder::new(1 << 20);
    let (mut events, mut out) = (Vec::new(), Vec::new());
    dec.push(s.as_bytes(), &mut events).unwrap();
    for e in events.drain(..) {
        guard.event(e, &mut out);
    }
    guard.finish(&mut out);
    assert!(!guard.is_rejected());
    let audits = guard.hits().iter().filter(|h| &*h.rule == "watch").count();
    assert_eq!(audits, 1, "{:?}", guard.hits());
}

/// Found by a black-box review: a chat tool call whose name comes again in a later delta
/// (openai-node replaces the name with it) had the card in the second piece read glued to the
/// first (`f4111…`), and it went out. Each piece is checked on its own too.
#[test]
fn a_tool_name_sent_again_is_checked_on_its_own() {
    use serde_json::json;
    let policy = mask_cards();
    let mut s = chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"4111 1111 1111 1111"}}]}}]),
    );
    s += &chat_chunk(json!([{"index":0,"delta":{},"finish_reason":"tool_calls"}]));
    s += "data: [DONE]\n\n";
    for chunk in [1, 29, s.len()] {
        let (out, rejected) = run(&policy, Api::OpenAi, 256, s.as_bytes(), chunk);
        let out = String::from_utf8(out).unwrap();
        assert!(rejected, "{out}");
        assert!(!out.contains("4111"), "{out}");
    }
}

/// Found by a black-box review: an upstream that opened two text blocks and sent their deltas
/// interleaved had them read in arrival order (`1111 1111` then `4111 1111 `: no card), while
/// the SDKs assemble text by block index (a card). A block started while another is open, or
/// a delta for a block other than the open one, ends the stream.
#[test]
fn interleaved_content_blocks_end_the_stream() {
    use serde_json::json;
    let policy = mask_cards();
    let start = |i: u64| {
        event(
            "content_block_start",
            json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}}),
        )
    };
    let delta = |i: u64, t: &str| {
        event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":t}}),
        )
    };
    let stop = |i: u64| {
        event(
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        )
    };
    let head = event(
        "message_start",
        json!({"type":"message_start","message":{"id":"m","content":[]}}),
    );
    for body in [
        format!(
            "{head}{}{}{}{}",
            start(0),
            start(1),
            delta(1, "1111 1111"),
            delta(0, "4111 1111 ")
        ),
        format!(
            "{head}{}{}{}{}",
            start(0),
            delta(0, "4111 1111 "),
            delta(1, "1111 1111"),
            stop(0)
        ),
    ] {
        let out = run_text(
            &policy,
            RouteKind::Messages,
            Api::Anthropic,
            body.as_bytes(),
            9,
        );
        assert!(out.contains("event: error"), "{out}");
        assert!(!out.contains("1111 1111\""), "{out}");
    }
    // One after the other: read as one text, masked.
    let body = format!(
        "{head}{}{}{}{}{}{}",
        start(0),
        delta(0, "4111 1111 "),
        stop(0),
        start(1),
        delta(1, "1111 1111"),
        stop(1)
    );
    let out = run_text(
        &policy,
        RouteKind::Messages,
        Api::Anthropic,
        body.as_bytes(),
        9,
    );
    assert!(
        !out.contains("event: error") && !out.contains("1111"),
        "{out}"
    );
}

#[test]
fn openai_text_and_tool_calls_in_every_choice() {
    use serde_json::json;
    let mut s = String::new();
    s += &chat_chunk(
        json!([{"index":0,"delta":{"content":"ok "}},{"index":1,"delta":{"content":"key AKIAIOSF"}}]),
    );
    s += &chat_chunk(json!([{"index":1,"delta":{"content":"ODNN7EXAMPLE done"}}]));
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"Bash","arguments":""}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"command\":\"kubectl de"}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"lete x\"}"}}]}}]),
    );
    s += &chat_chunk(
        json!([{"index":0,"delta":{},"finish_reason":"tool_calls"},{"index":1,"delta":{},"finish_reason":"stop"}]),
    );
    s += "data: [DONE]\n\n";
    for chunk in [1, 3, 50, s.len()] {
        let out = run_text(
            &k8s_policy(),
            RouteKind::Completions,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        );
        assert!(!out.contains("AKIA"), "{out}");
        assert!(!out.contains("kubectl"), "{out}");
        assert!(out.ends_with("data: {\"error\":{\"message\":\"Deleting Kubernetes resources is blocked by policy\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_request\"}}\n\n"), "{out}");
        assert!(
            !out.contains("event: error"),
            "OpenAI clients get OpenAI errors: {out}"
        );
    }
    // Without the tool call, the masked text of the second choice goes out.
    let allowed = s.replace("kubectl de", "ls -l");
    let out = run_text(
        &k8s_policy(),
        RouteKind::Completions,
        Api::OpenAi,
        allowed.as_bytes(),
        4,
    );
    assert!(
        out.contains("<AWS_ACCESS_KEY>") && !out.contains("AKIA"),
        "{out}"
    );
    assert!(
        out.contains("ls -l") && out.contains("lete x") && out.ends_with("data: [DONE]\n\n"),
        "{out}"
    );
}

/// Found by the audit: in chat chunks only content, refusal, reasoning and
/// `tool_calls[].function` were read; the deprecated `function_call`, custom tool calls and the
/// audio transcript passed unread.
#[test]
fn chat_function_calls_custom_tools_and_transcripts_are_guarded() {
    use serde_json::json;
    let stream = |deltas: &[serde_json::Value]| {
        let mut s = String::new();
        for d in deltas {
            s += &chat_chunk(json!([{ "index": 0, "delta": d }]));
        }
        s += &chat_chunk(json!([{"index":0,"delta":{},"finish_reason":"tool_calls"}]));
        s + "data: [DONE]\n\n"
    };
    let legacy = |args: [&str; 2]| {
        stream(&[
            json!({"function_call":{"name":"Bash","arguments":""}}),
            json!({"function_call":{"arguments":args[0]}}),
            json!({"function_call":{"arguments":args[1]}}),
        ])
    };
    let custom = |input: [&str; 2]| {
        stream(&[
            json!({"tool_calls":[{"index":0,"id":"c1","type":"custom","custom":{"name":"Bash","input":""}}]}),
            json!({"tool_calls":[{"index":0,"type":"custom","custom":{"input":input[0]}}]}),
            json!({"tool_calls":[{"index":0,"type":"custom","custom":{"input":input[1]}}]}),
        ])
    };
    let run = |s: &str, chunk| {
        run_text(
            &k8s_policy(),
            RouteKind::Completions,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        )
    };
    // Rejected by the tool rule, whichever way the call comes.
    for s in [
        legacy(["{\"command\":\"kubectl de", "lete pods\"}"]),
        custom(["kubectl de", "lete pods"]),
    ] {
        for chunk in [2, 40, s.len()] {
            let out = run(&s, chunk);
            assert!(!out.contains("kubectl"), "{out}");
            assert!(out.contains("blocked by policy"), "{out}");
        }
    }
    // Allowed calls pass byte for byte (a custom tool's free text is not taken for JSON).
    for s in [
        legacy(["{\"command\":\"kubectl ge", "t pods\"}"]),
        custom(["*** Begin Patch\n", "*** End Patch"]),
    ] {
        assert_eq!(run(&s, 7), s);
    }
    // Text rules mask inside free-form input and the transcript; the JSON stays valid.
    let out = run(&custom(["key=AKIAIOSF", "ODNN7EXAMPLE \"q\""]), 5);
    assert!(
        !out.contains("AKIA") && out.contains("<AWS_ACCESS_KEY>"),
        "{out}"
    );
    let input = strings_at(
        out.as_bytes(),
        &["/choices/0/delta/tool_calls/0/custom/input"],
    );
    assert_eq!(input, "key=<AWS_ACCESS_KEY> \"q\"");
    let out = run(
        &stream(&[
            json!({"audio":{"id":"a","transcript":"key AKIAIOSF"}}),
            json!({"audio":{"transcript":"ODNN7EXAMPLE"}}),
        ]),
        3,
    );
    assert!(
        !out.contains("AKIA") && out.contains("<AWS_ACCESS_KEY>"),
        "{out}"
    );
}

/// Found by the audit: on a chat route (a passthrough path, a stored completion) a stream of
/// Responses events was read event by event, so a phrase split across deltas went out; and
/// a chat chunk whose tool arguments are an object, not a string, was not read.
#[test]
fn responses_events_on_a_chat_route_and_object_arguments() {
    use serde_json::json;
    let policy = Policy::builder()
        .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
        .build()
        .unwrap();
    let mut s = String::new();
    for d in ["my credit ", "card, please"] {
        s += &event(
            "response.output_text.delta",
            json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":d}),
        );
    }
    for chunk in [4, s.len()] {
        let out = run_text(
            &policy,
            RouteKind::Passthrough,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        );
        assert!(
            !out.contains("card, please") && !out.contains("my credit"),
            "{out}"
        );
        assert!(out.contains("no cards"), "{out}");
    }
    let object_args = chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"Bash","arguments":{"command":"kubectl delete ns prod"}}}]}}]),
    );
    let out = run_text(
        &k8s_policy(),
        RouteKind::Completions,
        Api::OpenAi,
        object_args.as_bytes(),
        7,
    );
    assert!(!out.contains("kubectl") && out.contains("error"), "{out}");
}

/// A Responses custom tool call (free-form input, as Codex's `apply_patch`) is checked whole
/// and passes when allowed; it used to fail closed as input that is not JSON.
#[test]
fn responses_custom_tool_calls_are_checked_as_text() {
    use serde_json::json;
    let stream = |pieces: &[&str]| {
        let mut s = event(
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":0,"item":{"type":"custom_tool_call","name":"Bash","input":""}}),
        );
        for d in pieces {
            s += &event(
                "response.custom_tool_call_input.delta",
                json!({"type":"response.custom_tool_call_input.delta","output_index":0,"delta":d}),
            );
        }
        s + &event(
            "response.output_item.done",
            json!({"type":"response.output_item.done","output_index":0,"item":{"type":"custom_tool_call","name":"Bash","input":pieces.concat()}}),
        )
    };
    let run = |s: &str| {
        run_text(
            &k8s_policy(),
            RouteKind::Responses,
            Api::OpenAi,
            s.as_bytes(),
            9,
        )
    };
    let allowed = stream(&["ls -l ", "/tmp"]);
    assert_eq!(run(&allowed), allowed);
    let out = run(&stream(&["kubectl  del", "ete ns prod"]));
    assert!(
        !out.contains("kubectl") && out.contains("blocked by policy"),
        "{out}"
    );
}

#[test]
fn thinking_is_never_modified_and_what_a_mask_would_change_ends_the_stream() {
    use serde_json::json;
    let stream = |thinking: &str| {
        let mut s = event(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
        );
        for piece in [&thinking[..5], &thinking[5..]] {
            s += &event(
                "content_block_delta",
                json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":piece}}),
            );
        }
        s += &event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}),
        );
        s += &event(
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        );
        s.into_bytes()
    };
    let policy = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .rule(Rule::literals("cards", ["credit card"]).reject("no cards"))
        .build()
        .unwrap();
    // A mask rule's hit in signed thinking refuses (seventh red-team review: it went out).
    let input = stream("the key AKIAIOSFODNN7EXAMPLE is here");
    for chunk in [1, 9, input.len()] {
        let out = run_text(&policy, RouteKind::Messages, Api::Anthropic, &input, chunk);
        assert!(
            !out.contains("AKIAIOSF") && out.contains("signed reasoning") && out.contains("keys"),
            "{out}"
        );
    }
    // An audit rule only records: the thinking passes byte for byte.
    let audit = Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).audit())
        .build()
        .unwrap();
    for chunk in [1, 9, input.len()] {
        assert_eq!(
            run_kind(&audit, RouteKind::Messages, Api::Anthropic, &input, chunk),
            input
        );
    }
    let input = stream("about a credit card");
    let out = run_text(&policy, RouteKind::Messages, Api::Anthropic, &input, 3);
    assert!(!out.contains("credit") && out.contains("no cards"), "{out}");
}

/// Found by a black-box review: a streamed `local_shell_call` (Codex runs it) and a Gemini
/// `functionCall` chunk passed every tool rule. Each is checked whole, in the event that
/// carries it, before it goes out.
#[test]
fn streamed_client_run_tools_and_gemini_calls_are_checked() {
    use serde_json::json;
    let policy = Policy::builder()
        .tool_rule(
            crate::guard::ToolRule::new("no-deletes", "*")
                .argument("", r"kubectl\s+delete")
                .reject("Deleting Kubernetes resources is blocked by policy"),
        )
        .build()
        .unwrap();
    let item = json!({"type":"local_shell_call","id":"l","call_id":"c","status":"completed",
        "action":{"type":"exec","command":["kubectl","delete","ns","prod"]}});
    let mut s = event(
        "response.created",
        json!({"type":"response.created","response":{"id":"r","output":[]}}),
    );
    s += &event(
        "response.output_item.added",
        json!({"type":"response.output_item.added","output_index":0,"item":item}),
    );
    s += &event(
        "response.output_item.done",
        json!({"type":"response.output_item.done","output_index":0,"item":item}),
    );
    let gemini = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"Bash\",\"args\":{\"command\":\"kubectl delete ns prod\"}}}]}}]}\n\n";
    for (kind, api, stream) in [
        (RouteKind::Responses, Api::OpenAi, s.as_str()),
        (RouteKind::Passthrough, Api::OpenAi, gemini),
    ] {
        for chunk in [1, 13, stream.len()] {
            let out = run_text(&policy, kind, api, stream.as_bytes(), chunk);
            assert!(!out.contains("kubectl"), "{out}");
            assert!(out.contains("blocked by policy"), "{out}");
        }
    }
}

/// Found by a black-box review: a card split over two text parts (or two message items) was
/// masked in the deltas, but the events that repeat each part whole (`output_text.done`,
/// `content_part.done`, `output_item.done`) carried its pieces in clear: each half alone is
/// no card. They carry what went out.
#[test]
fn responses_done_events_repeat_the_masked_text() {
    use serde_json::json;
    let policy = mask_cards();
    let halves = CARD_HALVES;
    // (output index, content index) of each half: two parts of one item, or two items.
    for places in [[(0, 0), (0, 1)], [(0, 0), (1, 0)]] {
        let mut s = event(
            "response.created",
            json!({"type":"response.created","response":{"id":"r","output":[]}}),
        );
        for (n, (&(o, c), text)) in places.iter().zip(halves).enumerate() {
            if c == 0 {
                s += &event(
                    "response.output_item.added",
                    json!({"type":"response.output_item.added","output_index":o,"item":{"type":"message","content":[]}}),
                );
            }
            s += &event(
                "response.content_part.added",
                json!({"type":"response.content_part.added","output_index":o,"content_index":c,"part":{"type":"output_text","text":""}}),
            );
            s += &event(
                "response.output_text.delta",
                json!({"type":"response.output_text.delta","output_index":o,"content_index":c,"delta":text}),
            );
            s += &event(
                "response.output_text.done",
                json!({"type":"response.output_text.done","output_index":o,"content_index":c,"text":text}),
            );
            s += &event(
                "response.content_part.done",
                json!({"type":"response.content_part.done","output_index":o,"content_index":c,"part":{"type":"output_text","text":text}}),
            );
            let last_of_item = places.get(n + 1).is_none_or(|next| next.0 != o);
            if last_of_item {
                let content: Vec<_> = places
                    .iter()
                    .zip(halves)
                    .filter(|(p, _)| p.0 == o)
                    .map(|(_, t)| json!({"type":"output_text","text":t}))
                    .collect();
                s += &event(
                    "response.output_item.done",
                    json!({"type":"response.output_item.done","output_index":o,"item":{"type":"message","content":content}}),
                );
            }
        }
        for chunk in [1, 17, s.len()] {
            let out = run_text(
                &policy,
                RouteKind::Responses,
                Api::OpenAi,
                s.as_bytes(),
                chunk,
            );
            assert!(!out.contains("1111"), "{places:?} {chunk}: {out}");
            assert!(out.contains("<CREDIT_CARD>"), "{out}");
            assert!(out.contains("ok"), "{out}");
        }
    }
}

/// The events that repeat masked parts, read again (review): `response.completed` over two
/// items, a malformed item (no panic: ends nothing, changes nothing), other items and keys
/// left as they are (no keys added), and a repeat that agrees with neither what came nor what
/// went out ends the stream.
#[test]
fn responses_repeats_of_masked_parts_are_rewritten_or_refused() {
    use serde_json::json;
    let policy = mask_cards();
    let halves = CARD_HALVES;
    let head = |s: &mut String| {
        for (o, text) in halves.iter().enumerate() {
            *s += &event(
                "response.output_text.delta",
                json!({"type":"response.output_text.delta","output_index":o,"content_index":0,"delta":text}),
            );
        }
    };
    let mut s = String::new();
    head(&mut s);
    s += &event(
        "response.output_item.done",
        json!({"type":"response.output_item.done","output_index":0,"item":"x"}),
    );
    s += &event(
        "response.completed",
        json!({"type":"response.completed","response":{"id":"r","output":[
            {"type":"message","content":[{"type":"output_text","text":halves[0],"annotations":[]}]},
            {"type":"message","content":[{"type":"output_text","text":halves[1]}]},
            {"type":"function_call","name":"f","arguments":"{}"},
            1
        ]}}),
    );
    let out = run_text(&policy, RouteKind::Responses, Api::OpenAi, s.as_bytes(), 7);
    assert!(
        !out.contains("1111") && out.contains("<CREDIT_CARD>"),
        "{out}"
    );
    assert!(!out.contains("null"), "no keys added: {out}");
    assert!(out.contains(r#""item":"x""#), "{out}");
    assert!(out.contains(r#""annotations":[]"#), "{out}");
    // A repeat that is neither: the stream ends.
    let mut s = String::new();
    head(&mut s);
    s += &event(
        "response.output_text.done",
        json!({"type":"response.output_text.done","output_index":0,"content_index":0,"text":"my card 4111 1111 (edited)"}),
    );
    let out = run_text(&policy, RouteKind::Responses, Api::OpenAi, s.as_bytes(), 7);
    assert!(!out.contains("1111 1111"), "{out}");
    assert!(
        out.contains("in a form other than its deltas") && out.contains("event: error"),
        "{out}"
    );
}

#[test]
fn responses_streams_are_guarded() {
    use serde_json::json;
    let mut s = event(
        "response.created",
        json!({"type":"response.created","response":{"id":"r","output":[]}}),
    );
    s += &event(
        "response.output_item.added",
        json!({"type":"response.output_item.added","output_index":0,"item":{"type":"message","content":[]}}),
    );
    for d in ["key AKIAIOSF", "ODNN7EXAMPLE ok"] {
        s += &event(
            "response.output_text.delta",
            json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":d}),
        );
    }
    s += &event(
        "response.output_text.done",
        json!({"type":"response.output_text.done","output_index":0,"content_index":0,"text":"key AKIAIOSFODNN7EXAMPLE ok"}),
    );
    s += &event(
        "response.output_item.added",
        json!({"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","name":"Bash","arguments":""}}),
    );
    for d in ["{\"command\":\"kubectl ", "delete x\"}"] {
        s += &event(
            "response.function_call_arguments.delta",
            json!({"type":"response.function_call_arguments.delta","output_index":1,"delta":d}),
        );
    }
    s += &event(
        "response.function_call_arguments.done",
        json!({"type":"response.function_call_arguments.done","output_index":1,"arguments":"{\"command\":\"kubectl delete x\"}"}),
    );
    for chunk in [1, 11, s.len()] {
        let out = run_text(
            &k8s_policy(),
            RouteKind::Responses,
            Api::OpenAi,
            s.as_bytes(),
            chunk,
        );
        assert!(
            !out.contains("AKIA") && out.contains("<AWS_ACCESS_KEY>"),
            "{out}"
        );
        assert!(
            !out.contains("kubectl") && !out.contains("function_call"),
            "{out}"
        );
        let last = out.rsplit("\n\n").nth(1).unwrap();
        // The Responses API's own `error` event, not chat's `{"error": ...}`.
        assert!(
            last.starts_with("event: error\ndata: {\"type\":\"error\",\"code\":"),
            "{last}"
        );
        assert!(last.ends_with(r#""param":null}"#), "{last}");
        assert!(
            last.contains(r#""message":"Deleting Kubernetes resources is blocked by policy""#),
            "{last}"
        );
    }
}

#[test]
fn unreadable_events_end_the_stream_in_the_clients_dialect() {
    let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"AKIAIOSFODNN7EXAMPLE\"}} x\n\n";
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        anthropic,
        5,
    );
    assert!(
        out.starts_with("event: error\ndata: {\"type\":\"error\"") && !out.contains("AKIA"),
        "{out}"
    );
    for bad in [
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"AKIAIOSFODNN7EXAMPLE\"}}]}}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\",\"content\":\"AKIAIOSFODNN7EXAMPLE\"}}]}\n\n",
        "data: [\"AKIAIOSFODNN7EXAMPLE\"]\n\n",
    ] {
        let out = run_text(
            &k8s_policy(),
            RouteKind::Completions,
            Api::OpenAi,
            bad.as_bytes(),
            3,
        );
        assert!(
            out.starts_with("data: {\"error\":{") && !out.contains("AKIA"),
            "{out}"
        );
    }
    // An event name that disagrees with the data's type.
    let lying = "event: ping\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n";
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        lying.as_bytes(),
        3,
    );
    assert!(out.starts_with("event: error\n"), "{out}");
}

#[test]
fn unknown_events_are_inspected_generically() {
    let input = "event: mystery\ndata: {\"type\":\"mystery\",\"payload\":{\"note\":\"AKIAIOSFODNN7EXAMPLE\"}}\n\n";
    let out = run_text(
        &k8s_policy(),
        RouteKind::Messages,
        Api::Anthropic,
        input.as_bytes(),
        4,
    );
    assert_eq!(
        out,
        "event: mystery\ndata: {\"type\":\"mystery\",\"payload\":{\"note\":\"<AWS_ACCESS_KEY>\"}}\n\n"
    );
}

/// A slow stream: after each event, exactly the text that cannot be part of a match is out.
#[test]
fn a_slow_stream_releases_what_cannot_match() {
    let policy = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .rule(
            Rule::literals("phrase", ["project zebra"])
                .case_insensitive(true)
                .reject("no"),
        )
        .build()
        .unwrap();
    let mut guard = StreamGuard::new(policy, Api::Anthropic, 256);
    let delta = |t: &str| {
        Bytes::from(event(
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}),
        ))
    };
    let mut sent = String::new();
    for (d, visible) in [
        ("Hello", "Hello"),
        (" world, your", "Hello world, your"),
        (" card is", "Hello world, your card is"),
        (" 4111 1111", "Hello world, your card is"),
        (" 1111 1111", "Hello world, your card is"),
        (" and the proj", "Hello world, your card is <CREDIT_CARD>"),
        (
            "ect is fine",
            "Hello world, your card is <CREDIT_CARD> and the project is fine",
        ),
    ] {
        let mut out = Vec::new();
        guard.event(delta(d), &mut out);
        sent.push_str(&text_of(&out.concat()));
        assert_eq!(sent, visible, "after {d:?}");
    }
}

/// Text deltas of one Anthropic text block through a guard with one masking detector: the
/// text released after each delta (all of it so far), and after the stream ends.
fn released(detector: Detector, deltas: &[&str]) -> (Vec<String>, String) {
    let policy = Policy::builder()
        .rule(Rule::detectors("d", [detector]).mask())
        .build()
        .unwrap();
    let mut guard = StreamGuard::new(policy, Api::Anthropic, 256);
    let mut sent = String::new();
    let mut after = Vec::new();
    for d in deltas {
        let e = event(
            "content_block_delta",
            serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":d}}),
        );
        let mut out = Vec::new();
        guard.event(Bytes::from(e), &mut out);
        sent.push_str(&text_of(&out.concat()));
        after.push(sent.clone());
    }
    let mut out = Vec::new();
    guard.finish(&mut out);
    sent.push_str(&text_of(&out.concat()));
    (after, sent)
}

/// A card written with en dashes or minus signs, arriving a group at a time, is held until it
/// is complete and masked: the hold-back reads the same separators as the detector.
#[test]
fn a_card_with_unicode_dashes_split_across_events_is_masked() {
    for sep in ["\u{2013}", "-", "\u{2212}"] {
        let deltas = ["card 4111", sep, "1111", sep, "1111", sep, "1111", " ok"];
        let (after, all) = released(Detector::CreditCard, &deltas);
        assert!(
            after.iter().all(|s| !s.contains("4111")),
            "{sep:?}: {after:?}"
        );
        // Released once the next delta rules a longer match out, before the stream ends.
        assert_eq!(after.last().unwrap(), "card <CREDIT_CARD> ok", "{sep:?}");
        assert_eq!(all, "card <CREDIT_CARD> ok", "{sep:?}");
    }
}

/// An address in another script, or with an apostrophe, arriving in pieces is held and masked
/// whole, as the detector reads it (found by the third red-team review).
#[test]
fn addresses_of_every_script_split_across_events_are_masked() {
    for pieces in [
        &["mail иван", "@пример.рф ok"][..],
        &["x alice@пример", ".рф ok"][..],
        &["mail alice@example\u{3002}", "com ok"][..],
        &[
            "Contact ",
            "dan",
            ".o",
            "'",
            "brien",
            "@",
            "example",
            ".co",
            ".uk",
            " for details",
        ][..],
    ] {
        let (_, sent) = released(Detector::Email, pieces);
        assert!(sent.contains("<EMAIL>"), "{pieces:?}: {sent:?}");
        assert!(
            !sent.contains('@') && !sent.contains("иван") && !sent.contains("brien"),
            "{pieces:?}: {sent:?}"
        );
    }
}

/// A lower-case IBAN arriving a group at a time is held and masked whole.
#[test]
fn a_lower_case_iban_split_across_events_is_masked() {
    let deltas = ["pay to de", "89 3704", " 0044 0532", " 0130 00", " today"];
    let (after, all) = released(Detector::Iban, &deltas);
    assert!(after.iter().all(|s| !s.contains("3704")), "{after:?}");
    assert_eq!(all, "pay to <IBAN> today");
}

#[test]
fn what_is_held_behind_an_open_tool_call_is_bounded() {
    use serde_json::json;
    let mut g = StreamGuard::for_route(k8s_policy(), RouteKind::Completions, Api::OpenAi, 64);
    let mut out = Vec::new();
    let start = chat_chunk(
        json!([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"Bash","arguments":"{"}}]}}]),
    );
    g.event(Bytes::from(start), &mut out);
    let big = "x ".repeat(50_000);
    for _ in 0..(MAX_HELD / big.len() + 2) {
        let e = chat_chunk(json!([{"index":1,"delta":{"content":big}}]));
        g.event(Bytes::from(e), &mut out);
        if g.is_rejected() {
            break;
        }
    }
    assert!(g.is_rejected());
    let s = String::from_utf8(out.concat()).unwrap();
    assert!(
        s.starts_with("data: {\"error\":") && !s.contains("xx") && !s.contains("x x"),
        "{}",
        &s[..s.len().min(300)]
    );
}

/// The hold-back is incremental (the automaton's live states carry over from one event to the
/// next): a secret split across events at any byte, in two or three deltas, behind text that
/// slid out of the window, is masked as it is when it arrives whole.
#[test]
fn a_secret_split_at_every_byte_across_events_is_masked() {
    let policy = Policy::builder()
        .rule(Rule::detectors("d", Detector::ALL).mask())
        .rule(
            Rule::literals("k", ["project zebra"])
                .case_insensitive(true)
                .mask(),
        )
        .build()
        .unwrap();
    let lead = "words that slide out of the window first. ".repeat(3);
    for secret in [
        "4111 1111 1111 1111",
        "AKIAIOSFODNN7EXAMPLE",
        "Project Zebra",
        "jane.doe@example.com",
    ] {
        let text = format!("{lead}see {secret} then more text");
        let whole = text_of(
            &run(
                &policy,
                Api::Anthropic,
                32,
                &anthropic_stream(&[&text]),
                1 << 20,
            )
            .0,
        );
        assert!(!whole.contains(secret), "{whole}");
        let at = lead.len() + 4;
        for i in at..=at + secret.len() {
            for j in [i, (i + 3).min(text.len()), text.len()] {
                let deltas = [&text[..i], &text[i..j], &text[j..]];
                let out = run(
                    &policy,
                    Api::Anthropic,
                    32,
                    &anthropic_stream(&deltas),
                    1 << 20,
                )
                .0;
                assert_eq!(text_of(&out), whole, "{deltas:?}");
            }
        }
    }
}

#[test]
fn streams_after_the_first_reuse_its_automaton_cache_with_the_same_output() {
    let policy = mask_cards();
    let input = anthropic_stream(&[
        "your card is 4111 11",
        "11 1111 1111 and the key AKIAIOSF",
        "ODNN7EXAMPLE, ok?",
    ]);
    assert_eq!(policy.prefixes().spare_caches(), 0);
    let first = run(&policy, Api::Anthropic, 48, &input, 7).0;
    assert_eq!(
        policy.prefixes().spare_caches(),
        1,
        "the finished stream's cache is kept"
    );
    for chunk in [1, 5, 7, 13, input.len()] {
        // Each of these takes the warm cache and gives it back.
        assert_eq!(
            run(&policy, Api::Anthropic, 48, &input, chunk).0,
            first,
            "chunk {chunk}"
        );
        assert_eq!(policy.prefixes().spare_caches(), 1);
    }
    assert_eq!(
        text_of(&first),
        "your card is <CREDIT_CARD> and the key <AWS_ACCESS_KEY>, ok?"
    );
    // Streams open at once each get their own cache.
    let (a, b) = (
        StreamGuard::new(policy.clone(), Api::Anthropic, 48),
        StreamGuard::new(policy.clone(), Api::Anthropic, 48),
    );
    assert_eq!(policy.prefixes().spare_caches(), 0);
    drop((a, b));
    assert_eq!(policy.prefixes().spare_caches(), 2);
}

/// A masked delta read without a tree keeps its event as sent — key order, spacing, the other
/// fields — with only the string replaced; one read the general way (a `\u` escape) is
/// rebuilt from its tree. Both carry the same text.
#[test]
fn a_masked_delta_changes_only_its_string() {
    let p = Policy::builder()
        .rule(Rule::literals("k", ["secret"]).mask())
        .build()
        .unwrap();
    let spliced = "event: content_block_delta\ndata: {\"index\":0, \"delta\": {\"text\":\"my secret \\\"x\\\"\",\"type\":\"text_delta\"} ,\"type\":\"content_block_delta\"}\n\n";
    let rebuilt = "event: content_block_delta\ndata: {\"index\":0, \"delta\": {\"text\":\"my secret \\u0022x\\u0022\",\"type\":\"text_delta\"} ,\"type\":\"content_block_delta\"}\n\n";
    let mut texts = Vec::new();
    for (event, exact) in [(spliced, true), (rebuilt, false)] {
        let mut g = StreamGuard::new(p.clone(), Api::Anthropic, 64);
        let mut out = Vec::new();
        g.event(Bytes::from(event), &mut out);
        g.finish(&mut out);
        let s = String::from_utf8(out.concat()).unwrap();
        assert!(!s.contains("secret"), "{s}");
        if exact {
            assert_eq!(s, event.replace("secret", "<MASKED>"));
        }
        texts.push(text_of(s.as_bytes()));
    }
    assert_eq!(texts[0], "my <MASKED> \"x\"");
    assert_eq!(texts[0], texts[1]);
}

/// The audit's body: a non-streaming Messages response, labelled `text/event-stream`.
const JSON_AS_STREAM: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"my credit card"}],"model":"claude-x","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":3}}"#;

/// Found by the audit: a JSON body labelled as an event stream was read as lines of unknown
/// fields, ignored and forwarded whole; an SDK that asked for no stream parses it as JSON.
/// Whatever the rules, whatever the chunking, it ends in the dialect's error event.
#[test]
fn a_body_that_is_not_an_event_stream_fails_closed() {
    let cards = Policy::builder()
        .rule(Rule::regex("cards", ["credit card"]).reject("no cards"))
        .build()
        .unwrap();
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(JSON_AS_STREAM).unwrap(),
    )
    .unwrap();
    let bodies = [
        JSON_AS_STREAM.to_owned(),
        format!("{JSON_AS_STREAM}\n"),
        format!("{JSON_AS_STREAM}\n\n"),
        pretty,
        // A real event, then the rest of the body in lines no stream has.
        format!(": ping\n\ndata: {{\"type\":\"ping\"}}\n\n{JSON_AS_STREAM}"),
        // Field names are compared exactly, as the SDKs compare them.
        "Data: {\"type\":\"message_start\",\"message\":{\"content\":\"my credit card\"}}\n\n"
            .to_owned(),
        " data: {\"type\":\"ping\"}\n\n".to_owned(),
        "data : {\"type\":\"ping\"}\n\n".to_owned(),
        "event: ping\ntext: my credit card\n\n".to_owned(),
        // Data the dialect cannot read.
        "data: my credit card\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ];
    for policy in [&cards, &mask_cards(), &k8s_policy()] {
        for body in &bodies {
            for chunk in [1, 3, 16, body.len()] {
                let out = run_kind(
                    policy,
                    RouteKind::Messages,
                    Api::Anthropic,
                    body.as_bytes(),
                    chunk,
                );
                let out = String::from_utf8(out).unwrap();
                assert!(
                    !out.contains("credit card") && out.ends_with("\n\n"),
                    "{body:?} {chunk}: {out}"
                );
                let error = out.rfind("event: error\ndata: {\"type\":\"error\"");
                assert!(error.is_some(), "{body:?} {chunk}: {out}");
            }
        }
    }
    // The other dialects end the stream in their own error event.
    for (kind, api, want) in [
        (RouteKind::Completions, Api::OpenAi, "data: {\"error\":{"),
        (
            RouteKind::Responses,
            Api::OpenAi,
            "event: error\ndata: {\"type\":\"error\"",
        ),
        (
            RouteKind::Complete,
            Api::Anthropic,
            "event: error\ndata: {\"type\":\"error\"",
        ),
    ] {
        let out = run_kind(&cards, kind, api, JSON_AS_STREAM.as_bytes(), 7);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with(want) && !out.contains("credit"),
            "{kind:?}: {out}"
        );
    }
}

/// What providers do send — comments, `id:` and `retry:` lines, CRLF and CR line ends, `data:`
/// without a space, data split over lines, a field without a value — passes byte for byte.
#[test]
fn every_field_a_provider_sends_passes_byte_for_byte() {
    let streams: [(RouteKind, Api, &str); 4] = [
        (
            RouteKind::Messages,
            Api::Anthropic,
            ": ping\r\n\r\nretry: 3000\r\nid: 1\r\nevent: message_start\r\ndata:{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\r\n\r\n\
             event: content_block_delta\rdata: {\"type\":\"content_block_delta\",\"index\":0,\r\
             data: \"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\r\r\
             :\n\nid\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ),
        (
            RouteKind::Completions,
            Api::OpenAi,
            ": OPENROUTER PROCESSING\n\nid: 5\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n",
        ),
        (
            RouteKind::Responses,
            Api::OpenAi,
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"hi\"}\n\n\
             event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\"}}\n\n",
        ),
        (
            RouteKind::Messages,
            Api::Anthropic,
            "event: ping\n\nretry: 10\n\n",
        ),
    ];
    for (kind, api, input) in streams {
        for chunk in [1, 2, 5, input.len()] {
            let out = run_kind(&mask_cards(), kind, api, input.as_bytes(), chunk);
            assert_eq!(String::from_utf8(out).unwrap(), input, "{kind:?} {chunk}");
        }
    }
}

/// The red-team review's stream cases: each was a way a guarded string reached the client.
mod red_team {
    use super::*;
    use serde_json::json;

    fn messages(events: &[(&str, serde_json::Value)]) -> Vec<u8> {
        let mut s = event(
            "message_start",
            json!({"type":"message_start","message":{"id":"m","content":[]}}),
        );
        for (name, data) in events {
            s += &event(name, data.clone());
        }
        s += &event(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"}}),
        );
        s += &event("message_stop", json!({"type":"message_stop"}));
        s.into_bytes()
    }

    fn text_delta(index: u64, text: &str) -> (&'static str, serde_json::Value) {
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":text}}),
        )
    }

    fn start(index: u64, block: serde_json::Value) -> (&'static str, serde_json::Value) {
        (
            "content_block_start",
            json!({"type":"content_block_start","index":index,"content_block":block}),
        )
    }

    fn stop(index: u64) -> (&'static str, serde_json::Value) {
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":index}),
        )
    }

    fn rejects_secret() -> Policy {
        Policy::builder()
            .rule(Rule::detectors("cards", [Detector::CreditCard, Detector::AwsAccessKey]).mask())
            .rule(Rule::regex("secret", ["topsecret"]).reject("blocked secret"))
            .build()
            .unwrap()
    }

    /// Characters normalising drops (zero-width spaces, joiners, variation selectors, tags)
    /// take no room in the window: a secret padded with any number of them, one character a
    /// delta, is still masked or refused whole.
    #[test]
    fn invisible_padding_does_not_push_a_secret_out_of_the_window() {
        for pad in ["\u{200b}", "\u{200d}", "\u{fe0f}", "\u{e0041}", "\u{2060}"] {
            for n in [1, 12, 40] {
                let gap = pad.repeat(n);
                let card: String = "4111111111111111"
                    .chars()
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .join(&gap);
                let text = format!("x {card} ok");
                let pieces: Vec<String> = text.chars().map(String::from).collect();
                let mut events = vec![start(0, json!({"type":"text","text":""}))];
                events.extend(pieces.iter().map(|p| text_delta(0, p)));
                events.push(stop(0));
                let input = messages(&events);
                let (out, rejected) = run(&rejects_secret(), Api::Anthropic, 256, &input, 4096);
                assert!(!rejected);
                let shown = text_of(&out);
                let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
                assert!(digits.is_empty(), "pad {pad:?} x{n}: {shown:?}");
                assert!(
                    shown.contains("<CREDIT_CARD>"),
                    "pad {pad:?} x{n}: {shown:?}"
                );
                // A refused keyword padded the same way.
                let word: String = "topsecret"
                    .chars()
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .join(&pad.repeat(n * 3));
                let mut events = vec![start(0, json!({"type":"text","text":""}))];
                events.extend(word.chars().map(|c| text_delta(0, &c.to_string())));
                let input = messages(&events);
                let (out, rejected) = run(&rejects_secret(), Api::Anthropic, 256, &input, 4096);
                assert!(
                    rejected,
                    "pad {pad:?} x{n}: {}",
                    String::from_utf8_lossy(&out)
                );
                assert!(
                    !text_of(&out).contains('t'),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }

    /// Found by the review of the padding fix: a live prefix followed by endless invisible
    /// characters kept the whole padding in the window and re-read it for every event.
    #[test]
    fn a_window_padded_past_its_limit_ends_the_stream() {
        let mut events = vec![
            start(0, json!({"type":"text","text":""})),
            text_delta(0, "key AKIA"),
        ];
        let pad = "\u{200b}".repeat(30);
        events.extend((0..2000).map(|_| text_delta(0, &pad)));
        let input = messages(&events);
        let (out, rejected) = run(&mask_cards(), Api::Anthropic, 256, &input, 1 << 16);
        assert!(rejected);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("padded with invisible characters"),
            "{}",
            &out[..out.len().min(400)]
        );
    }

    #[test]
    fn a_text_blocks_start_text_is_read_with_its_deltas() {
        let input = messages(&[
            start(0, json!({"type":"text","text":"card 4111 1111 "})),
            text_delta(0, "1111 1111 ok"),
            stop(0),
        ]);
        for chunk in [3, input.len()] {
            let (out, rejected) = run(&mask_cards(), Api::Anthropic, 256, &input, chunk);
            assert!(!rejected);
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("4111"), "{out}");
            assert!(out.contains("<CREDIT_CARD>"), "{out}");
        }
    }

    #[test]
    fn text_split_over_interleaved_blocks_is_read_as_one() {
        let input = messages(&[
            start(0, json!({"type":"text","text":""})),
            text_delta(0, "card 4111 1111 "),
            start(1, json!({"type":"text","text":""})),
            text_delta(1, "1111 1111 ok"),
            stop(0),
            stop(1),
        ]);
        let (out, _) = run(&mask_cards(), Api::Anthropic, 256, &input, 7);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("4111"), "{out}");
    }

    #[test]
    fn a_block_started_twice_ends_the_stream() {
        let tool = json!({"type":"tool_use","id":"t","name":"Bash","input":{}});
        let input = messages(&[
            start(0, tool.clone()),
            start(0, tool),
            (
                "content_block_delta",
                json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"kubectl delete ns prod\"}"}}),
            ),
            stop(0),
        ]);
        let out = run_text(
            &k8s_policy(),
            RouteKind::Messages,
            Api::Anthropic,
            &input,
            11,
        );
        assert!(out.contains("event: error"), "{out}");
        assert!(!out.contains("kubectl"), "{out}");
    }

    fn chat(chunks: &[serde_json::Value]) -> Vec<u8> {
        let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        s += "data: [DONE]\n\n";
        s.into_bytes()
    }

    fn chat_out(input: &[u8]) -> String {
        run_text(
            &mask_cards(),
            RouteKind::Completions,
            Api::OpenAi,
            input,
            13,
        )
    }

    #[test]
    fn chat_chunks_that_would_be_read_apart_end_the_stream() {
        let content = |index: serde_json::Value, text: &str, finish: serde_json::Value| json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":index,"delta":{"content":text},"finish_reason":finish}]});
        // Text after its choice finished is read on with the text before it (some servers
        // put a `finish_reason` on every chunk; a client appends the text to the choice).
        let out = chat_out(&chat(&[
            content(json!(0), "card 4111 1111 ", json!("stop")),
            content(json!(0), "1111 1111 ok", json!(null)),
        ]));
        assert!(!out.contains("4111") && !out.contains("\"error\""), "{out}");
        assert!(out.contains("<CREDIT_CARD>"), "{out}");
        let every = chat(&[
            content(json!(0), "all ", json!("stop")),
            content(json!(0), "good", json!("stop")),
        ]);
        assert_eq!(chat_out(&every).as_bytes(), &every[..]);
        // Two choices finishing in one chunk, then more text for one of them.
        let two = chat(&[
            json!({"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"},{"index":1,"delta":{"content":"b"},"finish_reason":"stop"}]}),
            content(json!(1), "more", json!(null)),
        ]);
        assert_eq!(chat_out(&two).as_bytes(), &two[..]);
        // A choice index that is not a whole number.
        let out = chat_out(&chat(&[
            content(json!(1.0), "card 4111 1111 ", json!(null)),
            content(json!(1), "1111 1111 ok", json!(null)),
        ]));
        assert!(!out.contains("4111") && out.contains("\"error\""), "{out}");
        // Content as parts (Mistral's reasoning models): each text read in its place, joined
        // with the other deltas; a part of another kind ends the stream.
        let out = chat_out(&chat(&[
            json!({"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]},{"type":"text","text":"card 4111 1111 "}]}}]}),
            json!({"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"1111 1111 ok"}]}}]}),
        ]));
        assert!(!out.contains("4111") && !out.contains("\"error\""), "{out}");
        assert!(
            out.contains("<CREDIT_CARD>") && out.contains("hmm"),
            "{out}"
        );
        let out = chat_out(&chat(&[
            json!({"choices":[{"index":0,"delta":{"content":[{"type":"image_url","image_url":{"url":"card 4111 1111 1111 1111"}}]}}]}),
        ]));
        assert!(!out.contains("4111") && out.contains("\"error\""), "{out}");
        // A tool call that is both custom and a function.
        let out = run_text(
            &k8s_policy(),
            RouteKind::Completions,
            Api::OpenAi,
            &chat(&[
                json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","custom":{},"function":{"name":"Bash","arguments":"{\"command\":\"kubectl delete ns prod\"}"}}]}}]}),
                json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
            ]),
            9,
        );
        assert!(
            !out.contains("kubectl") && out.contains("\"error\""),
            "{out}"
        );
        // An error beside choices is read: its text is masked.
        let out = chat_out(&chat(&[
            json!({"choices":[],"error":{"message":"card 4111 1111 1111 1111"}}),
        ]));
        assert!(!out.contains("4111"), "{out}");
        // What a well-formed stream does is unchanged: a finished choice, then usage.
        let ok = chat(&[
            content(json!(0), "all good", json!(null)),
            content(json!(0), "", json!("stop")),
            json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}),
        ]);
        assert_eq!(chat_out(&ok).as_bytes(), &ok[..]);
    }

    /// From the review: the audio events of a Responses stream carry no `output_index`; they
    /// are read generically, as before, and never end the stream.
    #[test]
    fn responses_audio_deltas_without_an_output_index_pass() {
        let mut input = String::new();
        for ty in ["response.audio.delta", "response.audio.transcript.delta"] {
            let data = json!({"type":ty,"delta":"aGVsbG8=","sequence_number":1});
            input += &format!("event: {ty}\ndata: {data}\n\n");
        }
        input += &format!(
            "event: response.completed\ndata: {}\n\n",
            json!({"type":"response.completed","response":{"id":"r"}})
        );
        let out = run_kind(
            &mask_cards(),
            RouteKind::Responses,
            Api::OpenAi,
            input.as_bytes(),
            9,
        );
        assert_eq!(out, input.as_bytes());
    }

    /// Tenth red-team review: a Realtime-style transcript, without `output_index`, split over
    /// three deltas went out unread (each delta was read alone). Read across its deltas, masked
    /// or refused as one text; a transcript of another kind is a text of its own.
    #[test]
    fn responses_itemless_transcript_deltas_are_read_across_events() {
        let delta = |ty: &str, text: &str| {
            let data = json!({"type":ty,"delta":text,"response_id":"r","sequence_number":1});
            format!("event: {ty}\ndata: {data}\n\n")
        };
        let ty = "response.audio.transcript.delta";
        let input = format!(
            "{}{}{}event: response.completed\ndata: {}\n\n",
            delta(ty, "card 4111 1111 "),
            delta(ty, "1111 1111 ZEBRA"),
            delta(ty, "CANARY"),
            json!({"type":"response.completed","response":{"id":"r"}})
        );
        let out = run_text(
            &mask_cards(),
            RouteKind::Responses,
            Api::OpenAi,
            input.as_bytes(),
            10,
        );
        assert!(!out.contains("4111"), "{out}");
        assert!(out.contains("<CREDIT_CARD>"), "{out}");
        // Two kinds are two texts: their pieces do not make one number.
        let input = format!(
            "{}{}event: response.completed\ndata: {}\n\n",
            delta(ty, "card 4111 1111 "),
            delta("response.output_audio_transcript.delta", "1111 1111 ok"),
            json!({"type":"response.completed","response":{"id":"r"}})
        );
        let out = run_text(
            &mask_cards(),
            RouteKind::Responses,
            Api::OpenAi,
            input.as_bytes(),
            10,
        );
        assert!(
            out.contains("4111 1111 ") && !out.contains("<CREDIT_CARD>"),
            "{out}"
        );
    }

    #[test]
    fn responses_text_parts_and_other_deltas_are_read_across_events() {
        let delta = |ty: &str, output: u64, content: u64, text: &str| {
            let data =
                json!({"type":ty,"output_index":output,"content_index":content,"delta":text});
            format!("event: {ty}\ndata: {data}\n\n")
        };
        for (a, b) in [
            (
                delta("response.output_text.delta", 0, 0, "card 4111 1111 "),
                delta("response.output_text.delta", 0, 1, "1111 1111 ok"),
            ),
            (
                delta("response.output_text.delta", 0, 0, "card 4111 1111 "),
                delta("response.output_text.delta", 1, 0, "1111 1111 ok"),
            ),
            (
                delta("response.audio.transcript.delta", 0, 0, "card 4111 1111 "),
                delta("response.audio.transcript.delta", 0, 0, "1111 1111 ok"),
            ),
            (
                delta(
                    "response.code_interpreter_call_code.delta",
                    0,
                    0,
                    "card 4111 1111 ",
                ),
                delta(
                    "response.code_interpreter_call_code.delta",
                    0,
                    0,
                    "1111 1111 ok",
                ),
            ),
        ] {
            let input = format!(
                "{a}{b}event: response.completed\ndata: {}\n\n",
                json!({"type":"response.completed","response":{"id":"r"}})
            );
            let out = run_text(
                &mask_cards(),
                RouteKind::Responses,
                Api::OpenAi,
                input.as_bytes(),
                10,
            );
            assert!(!out.contains("4111"), "{out}");
            assert!(out.contains("<CREDIT_CARD>"), "{out}");
        }
    }
}

/// Found by the second red team: on a passthrough path of a backend whose server speaks more
/// than one API (a local server serving `/v1/messages` behind an OpenAI-compatible backend),
/// Anthropic events were read as chat chunks, one by one: a card split across text deltas and
/// a tool call whose input came in pieces went out. The stream is now read as what its first
/// events are, either way round.
#[test]
fn a_stream_is_read_as_the_api_its_events_are() {
    use serde_json::json;
    let cards = anthropic_stream(&[
        "my card 4111 1111 ",
        "1111 1111 and AKIAIOSF",
        "ODNN7EXAMPLE ok",
    ]);
    for chunk in [3, cards.len()] {
        let out = run_kind(
            &mask_cards(),
            RouteKind::Passthrough,
            Api::OpenAi,
            &cards,
            chunk,
        );
        let text = text_of(&out);
        assert!(
            !text.contains("1111 1111")
                && !text.contains("ODNN7")
                && text.contains("<CREDIT_CARD>"),
            "{text}"
        );
    }
    let tool = tool_stream("Bash", &["{\"command\": \"kubectl\\t", "delete ns prod\"}"]);
    let out = run_text(&k8s_policy(), RouteKind::Passthrough, Api::OpenAi, &tool, 5);
    assert!(
        !out.contains("delete ns prod") && out.contains("error"),
        "{out}"
    );
    // Chat chunks where Anthropic events were expected.
    let mut chat = String::new();
    for d in ["card 4111 1111 ", "1111 1111 end"] {
        chat += &chat_chunk(json!([{"index":0,"delta":{"content":d}}]));
    }
    chat += "data: [DONE]\n\n";
    let out = run_kind(
        &mask_cards(),
        RouteKind::Passthrough,
        Api::Anthropic,
        chat.as_bytes(),
        4,
    );
    let text = text_of(&out);
    assert!(
        !text.contains("1111 1111") && text.contains("<CREDIT_CARD>"),
        "{text}"
    );
    // A stream does not change API once text has been read: refused, not read event by event.
    let mut mixed = chat_chunk(json!([{"index":0,"delta":{"content":"card 4111 1111 "}}]));
    mixed += &event(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"1111 1111"}}),
    );
    let out = run_text(
        &mask_cards(),
        RouteKind::Completions,
        Api::OpenAi,
        mixed.as_bytes(),
        mixed.len(),
    );
    assert!(
        !out.contains("1111 1111") && out.contains("another API"),
        "{out}"
    );
}

/// Found by the second red team: an event whose JSON came on several `data:` lines and had
/// something masked went out with the second line lacking its field name, which a client
/// drops: invalid JSON for the SDK.
#[test]
fn a_masked_event_of_several_data_lines_stays_valid() {
    let input = "event: message_start\n\
                 data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[{\"type\":\"text\",\"text\":\"key AKIAIOSFODNN7EXAMPLE\"}],\n\
                 data: \"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n";
    let (out, rejected) = run(&mask_cards(), Api::Anthropic, 64, input.as_bytes(), 7);
    assert!(!rejected);
    let mut events = Vec::new();
    SseDecoder::new(1 << 20).push(&out, &mut events).unwrap();
    let data = fields(std::str::from_utf8(&events[0]).unwrap())
        .unwrap()
        .data;
    let v: serde_json::Value = serde_json::from_str(&data).expect("the masked event is JSON");
    assert_eq!(v["message"]["content"][0]["text"], "key <AWS_ACCESS_KEY>");
    assert_eq!(v["message"]["model"], "m");
}

/// Found by the second red team: text a block, part or message starts with was read with the
/// deltas after it only when the start carried nothing else (citations, an unknown key, a
/// thinking block's signature), so a card or a refused phrase split between the start and
/// the first delta went out.
#[test]
fn text_a_start_carries_is_read_with_its_deltas_whatever_else_it_carries() {
    use serde_json::json;
    let delta = |t: &str| {
        event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":t}}),
        )
    };
    for block in [
        json!({"type":"text","text":"card 4111 1111 ","citations":[{"type":"char_location","cited_text":"x"}]}),
        json!({"type":"text","text":"card 4111 1111 ","x":1}),
    ] {
        let mut s = event(
            "message_start",
            json!({"type":"message_start","message":{"id":"m","content":[]}}),
        );
        s += &event(
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":block}),
        );
        s += &delta("1111 1111 end");
        s += &event(
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        );
        s += &event("message_stop", json!({"type":"message_stop"}));
        let out = run_text(
            &mask_cards(),
            RouteKind::Messages,
            Api::Anthropic,
            s.as_bytes(),
            5,
        );
        assert!(
            !out.contains("4111 1111") && out.contains("<CREDIT_CARD>"),
            "{out}"
        );
    }
    // A thinking block's start and its deltas are one reasoning text.
    let reject = Policy::builder()
        .rule(Rule::regex("codes", ["launch codes"]).reject("no codes"))
        .build()
        .unwrap();
    let mut s = event(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"the launch ","signature":""}}),
    );
    s += &event(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"codes are 1234"}}),
    );
    s += &event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    );
    let out = run_text(
        &reject,
        RouteKind::Messages,
        Api::Anthropic,
        s.as_bytes(),
        s.len(),
    );
    assert!(
        !out.contains("codes are") && out.contains("no codes"),
        "{out}"
    );
    // Responses: a part that starts with text.
    let mut s = event(
        "response.content_part.added",
        json!({"type":"response.content_part.added","output_index":0,"content_index":0,"part":{"type":"output_text","text":"card 4111 1111 ","annotations":[]}}),
    );
    s += &event(
        "response.output_text.delta",
        json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"1111 1111 end"}),
    );
    s += &event(
        "response.completed",
        json!({"type":"response.completed","response":{"id":"r"}}),
    );
    let out = run_text(
        &mask_cards(),
        RouteKind::Responses,
        Api::OpenAi,
        s.as_bytes(),
        6,
    );
    assert!(
        !out.contains("4111 1111") && out.contains("<CREDIT_CARD>"),
        "{out}"
    );
}

/// Found by the second red team: once an event was read as a delta, its other fields were not
/// read at all (chat `delta.annotations`, Perplexity's `citations`, an unknown field an SDK
/// merges into its snapshot). They are now: a refusing rule refuses, and a match a rule would
/// mask there ends the stream (it cannot be masked together with the delta).
#[test]
fn fields_beside_a_delta_are_read() {
    use serde_json::json;
    let reject = Policy::builder()
        .rule(Rule::regex("codes", ["launch codes"]).reject("no codes"))
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap();
    let chat = chat_chunk(
        json!([{"index":0,"delta":{"content":"hi","annotations":[{"type":"url_citation","url_citation":{"title":"the launch codes","url":"https://y/"}}]},"finish_reason":null}]),
    );
    let anthropic = event(
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"note":"the launch codes","delta":{"type":"text_delta","text":"hi"}}),
    );
    for (kind, api, s) in [
        (RouteKind::Completions, Api::OpenAi, &chat),
        (RouteKind::Messages, Api::Anthropic, &anthropic),
    ] {
        let out = run_text(&reject, kind, api, s.as_bytes(), s.len());
        assert!(
            !out.contains("launch codes") && out.contains("no codes"),
            "{out}"
        );
    }
    let key = chat_chunk(
        json!([{"index":0,"delta":{"content":"hi","x_note":"note AKIAIOSFODNN7EXAMPLE"}}]),
    );
    let out = run_text(
        &reject,
        RouteKind::Completions,
        Api::OpenAi,
        key.as_bytes(),
        key.len(),
    );
    assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
    // The usual chunk, with its identifiers and the role, is a delta as before.
    let plain = chat_chunk(
        json!([{"index":0,"delta":{"role":"assistant","content":"hello"},"logprobs":null,"finish_reason":null}]),
    );
    let out = run_text(
        &reject,
        RouteKind::Completions,
        Api::OpenAi,
        plain.as_bytes(),
        plain.len(),
    );
    assert!(out.contains("hello") && !out.contains("error"), "{out}");
}

/// What a Responses stream sent is kept for the repeats at most `MAX_HELD` bytes: past it a
/// part's text is let go, and a repeat of a masked part that would need it fails closed; an
/// unmasked part's repeat still passes.
#[test]
fn responses_resync_keeps_a_bounded_text() {
    let big = "x".repeat(MAX_HELD);
    let mut r = Resync::default();
    r.delta((0, 0), &big, &big);
    r.delta((0, 0), "card 4111 1111 1111 1111", "card <CREDIT_CARD>");
    r.delta((1, 0), "ok", "ok");
    let done = |o: u64, text: &str| {
        Bytes::from(format!(
            "event: response.output_text.done\ndata: {}\n\n",
            serde_json::json!({"type":"response.output_text.done","output_index":o,"content_index":0,"text":text})
        ))
    };
    assert_eq!(
        r.event(&done(0, &format!("{big}card 4111 1111 1111 1111"))),
        Err(DISAGREES)
    );
    assert_eq!(r.event(&done(1, "ok")), Ok(None));
}
