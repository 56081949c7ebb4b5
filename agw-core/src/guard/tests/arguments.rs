//! Function-call `arguments` are JSON in a string, read as the JSON they hold (the fifth
//! review): in requests, in non-streamed responses (chat `tool_calls`, the legacy
//! `function_call`, Responses `function_call` items) and in streams alike. Each input below is
//! what Python's `json.dumps` writes for a tool call; a non-streamed response masks it as the
//! same response streamed does, and the JSON a client gets parses and holds no secret.

use super::*;
use crate::api::Api;
use crate::stream::{SseDecoder, StreamGuard};
use serde_json::{Value, json};

const SSN: &str = "536228791";
const KEY: &str = "ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5";
const PEM_BODY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";

fn pem() -> String {
    format!(
        "-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDu\n-----END PRIVATE KEY-----\n"
    )
}

/// `v` as Python's `json.dumps` writes it by default: every non-ASCII character as a `\u`
/// escape (a surrogate pair beyond the BMP).
fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// A review input: the arguments as sent, and the text that must not reach anyone.
struct Case {
    name: &'static str,
    args: String,
    secret: String,
}

/// The review's inputs (finding A), and B's token beside an escaped letter.
fn cases() -> Vec<Case> {
    let case = |name, args, secret: &str| Case {
        name,
        args,
        secret: secret.to_owned(),
    };
    vec![
        case(
            "quoted ssn label",
            json!({"content": format!("{{\"ssn\":\"{SSN}\"}}")}).to_string(),
            SSN,
        ),
        case(
            "ssn= quoted",
            json!({"content": format!("ssn=\"{SSN}\"")}).to_string(),
            SSN,
        ),
        case(
            "pem in a json file",
            json!({"path": "sa.json", "content": json!({"private_key": pem()}).to_string()})
                .to_string(),
            PEM_BODY,
        ),
        case(
            "cyrillic then a card",
            ascii_json(&json!({"command": "Карта МИР 2201 7201 9860 3959"})),
            "2201 7201 9860 3959",
        ),
        case(
            "cyrillic address",
            ascii_json(&json!({"to": "иван@пример.рф"})),
            "иван@пример.рф",
        ),
        case(
            "accented address",
            ascii_json(&json!({"to": "müller@bücher.de"})),
            "müller@bücher.de",
        ),
        case(
            "escaped letter beside a token",
            ascii_json(&json!({"note": "café", "key": KEY})),
            KEY,
        ),
        case(
            "card as a number",
            r#"{"card": 4111111111111111}"#.to_owned(),
            "4111111111111111",
        ),
    ]
}

fn mask_all() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("all", Detector::ALL).mask())
        .build()
        .unwrap()
}

fn reject_all() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("all", Detector::ALL).reject("no secrets"))
        .build()
        .unwrap()
}

/// Whether `secret` shows in `args` as sent, or in any string of the JSON they hold.
fn shows(args: &str, secret: &str) -> bool {
    args.contains(secret)
        || serde_json::from_str::<Value>(args).is_ok_and(|v| v.to_string().contains(secret))
}

// Requests.

fn chat_request(args: &str) -> String {
    json!({"model":"m","messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"write","arguments":args}}]},
        {"role":"tool","tool_call_id":"c1","content":"ok"},
        {"role":"user","content":"continue"}]})
    .to_string()
}

fn legacy_request(args: &str) -> String {
    json!({"model":"m","messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":null,"function_call":{"name":"write","arguments":args}},
        {"role":"user","content":"continue"}]})
    .to_string()
}

fn responses_request(args: &str) -> String {
    json!({"model":"m","input":[
        {"type":"function_call","call_id":"c1","name":"write","arguments":args},
        {"type":"function_call_output","call_id":"c1","output":"ok"},
        {"role":"user","content":"continue"}]})
    .to_string()
}

/// Each request shape: its route, its body, and where its arguments are.
fn requests(args: &str) -> [(RouteKind, String, &'static str); 3] {
    [
        (
            RouteKind::Completions,
            chat_request(args),
            "/messages/1/tool_calls/0/function/arguments",
        ),
        (
            RouteKind::Completions,
            legacy_request(args),
            "/messages/1/function_call/arguments",
        ),
        (
            RouteKind::Responses,
            responses_request(args),
            "/input/0/arguments",
        ),
    ]
}

/// A request's tool-call arguments are read as the JSON they hold: a match written plainly is
/// masked in place (the rest of the body byte for byte as sent), one the body holds only
/// through escapes refuses, saying why; a rejecting rule refuses every one with its message.
#[test]
fn request_arguments_are_read_as_the_json_they_hold() {
    // Masked in place: the match is written plainly, whatever escapes are around it.
    let masked = [
        "quoted ssn label",
        "ssn= quoted",
        "cyrillic then a card",
        "escaped letter beside a token",
        "card as a number",
    ];
    for case in cases() {
        for (kind, body, at) in requests(&case.args) {
            let what = format!("{} ({kind:?} {at})", case.name);
            let v = mask_all().inspect(kind, body.as_bytes()).unwrap();
            assert!(!v.hits().is_empty(), "{what}: nothing found");
            if masked.contains(&case.name) {
                let Decision::Rewrite(out) = v.decision() else {
                    panic!("{what}: {v:?}")
                };
                let out: Value = serde_json::from_slice(out).expect("masked body is JSON");
                let args = out.pointer(at).unwrap().as_str().unwrap();
                assert!(!shows(args, &case.secret), "{what}: {args}");
                serde_json::from_str::<Value>(args).expect("masked arguments are JSON");
                // Only the match changed: the escapes around it are as sent.
                let placeholder = v.hits()[0].detector.unwrap().placeholder();
                // A number is masked by a JSON string.
                let placeholder = match case.secret.parse::<u64>() {
                    Ok(_) if !case.args.contains(&format!("\"{}", case.secret)) => {
                        format!("\"{placeholder}\"")
                    }
                    _ => placeholder.to_owned(),
                };
                let sent = case.args.replace(&case.secret, &placeholder);
                assert_eq!(args, sent, "{what}");
            } else {
                let Decision::Reject(r) = v.decision() else {
                    panic!("{what}: {v:?}")
                };
                assert!(r.message.contains("escapes"), "{what}: {r:?}");
                assert!(!r.message.contains(&case.secret), "{what}: {r:?}");
            }
            let v = reject_all().inspect(kind, body.as_bytes()).unwrap();
            match v.decision() {
                Decision::Reject(r) => assert_eq!(r.message, "no secrets", "{what}"),
                // A tool call in an earlier assistant turn: removed (twelfth session).
                Decision::Rewrite(out) => {
                    let out = String::from_utf8(out.clone()).unwrap();
                    assert!(out.contains("[removed by agw: rule all]"), "{what}: {out}");
                    assert!(!shows(&out, &case.secret), "{what}: {out}");
                }
                Decision::Allow => panic!("{what}: {v:?}"),
            }
        }
    }
}

/// Finding B: one escape elsewhere in the arguments no longer turns a mask into a refusal.
#[test]
fn an_escape_elsewhere_does_not_refuse_a_plain_mask() {
    for note in ["cafe", "caf\\u00e9"] {
        let args = format!(r#"{{"note": "{note}", "key": "{KEY}"}}"#);
        let body = chat_request(&args);
        let v = mask_all()
            .inspect(RouteKind::Completions, body.as_bytes())
            .unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{args}: {v:?}")
        };
        let expected = body.replace(KEY, "<GITHUB_TOKEN>");
        assert_eq!(std::str::from_utf8(out).unwrap(), expected);
    }
}

/// Arguments that are not JSON are read as the string they are: masked in place where written
/// plainly; a `\u` escape that hides a match still refuses, one beside a plain match does not.
#[test]
fn arguments_that_are_not_json_are_read_as_text() {
    let p = mask_all();
    let cases = [
        (format!("run --token {KEY}"), Some(KEY)),
        (format!("caf\\u00e9 {{\"key\": \"{KEY}\""), Some(KEY)),
        ("card \\u0034111 1111 1111 1111".to_owned(), None),
        (format!("{{\"key\": \"{KEY}\"}} trailing"), Some(KEY)),
    ];
    for (args, plain) in cases {
        let body = chat_request(&args);
        let v = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
        match (plain, v.decision()) {
            (Some(secret), Decision::Rewrite(out)) => {
                let out = std::str::from_utf8(out).unwrap();
                assert!(!out.contains(secret), "{args}: {out}");
                serde_json::from_str::<Value>(out).unwrap();
            }
            (None, Decision::Reject(r)) => assert!(r.message.contains("escapes"), "{r:?}"),
            (_, d) => panic!("{args}: {d:?}"),
        }
    }
}

/// Bounds: arguments nested deeper than a body may be, or holding a string that grows past
/// what normalising may make of it, are refused in a request as the same JSON in the body
/// is; in a response (the model wrote them) deep ones, and ones with a key twice, are read as
/// the string they are, so the answer is not lost (regression round); large arguments are
/// read whole.
#[test]
fn arguments_are_bounded_like_a_body() {
    let p = mask_all();
    let deep = format!("{}\"{KEY}\"{}", "[".repeat(200), "]".repeat(200));
    let wide = json!({ "k": "\u{fdfa}".repeat(64) }).to_string();
    let twice = format!("{{\"k\": \"{KEY}\", \"k\": \"x\"}}");
    for args in [deep, wide] {
        for (kind, body, _) in requests(&args) {
            assert!(p.inspect(kind, body.as_bytes()).is_err(), "{kind:?}");
        }
    }
    // A string that grows past the bound is refused wherever a response carries it.
    let wide = json!({ "k": "\u{fdfa}".repeat(64) }).to_string();
    assert!(
        p.inspect_response(Api::OpenAi, chat_response(&wide).as_bytes())
            .is_err()
    );
    for args in [
        format!("{}\"{KEY}\"{}", "[".repeat(200), "]".repeat(200)),
        twice,
    ] {
        let response = chat_response(&args);
        let v = p
            .inspect_response(Api::OpenAi, response.as_bytes())
            .unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{args}: {v:?}");
        };
        let out = std::str::from_utf8(out).unwrap();
        assert!(!out.contains(KEY), "{out}");
        serde_json::from_str::<Value>(out).unwrap();
    }
    let nested_ok = format!("{}\"{KEY}\"{}", "[".repeat(100), "]".repeat(100));
    let large = json!({"content": format!("{}{KEY}", "word ".repeat(40_000))}).to_string();
    for args in [nested_ok, large] {
        let body = chat_request(&args);
        let v = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{v:?}")
        };
        assert!(!std::str::from_utf8(out).unwrap().contains(KEY));
        let response = chat_response(&args);
        let v = p
            .inspect_response(Api::OpenAi, response.as_bytes())
            .unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{v:?}")
        };
        assert!(!std::str::from_utf8(out).unwrap().contains(KEY));
    }
}

// Responses.

fn chat_response(args: &str) -> String {
    json!({"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"write","arguments":args}}]},"finish_reason":"tool_calls"}]})
    .to_string()
}

fn legacy_response(args: &str) -> String {
    json!({"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"function_call":{"name":"write","arguments":args}},"finish_reason":"function_call"}]})
    .to_string()
}

fn responses_response(args: &str) -> String {
    json!({"id":"r1","object":"response","status":"completed","model":"m","output":[{"type":"function_call","id":"fc_1","call_id":"call_1","name":"write","arguments":args,"status":"completed"}]})
    .to_string()
}

/// The arguments a client reads from a non-streamed response (`None` when refused); the
/// response must parse.
fn json_outcome(p: &Policy, body: &str, at: &str) -> Option<String> {
    let v = p.inspect_response(Api::OpenAi, body.as_bytes()).unwrap();
    let out = match v.into_decision() {
        Decision::Allow => body.as_bytes().to_vec(),
        Decision::Rewrite(out) => out,
        Decision::Reject(_) => return None,
    };
    let out: Value = serde_json::from_slice(&out).expect("the response is JSON");
    Some(out.pointer(at).unwrap().as_str().unwrap().to_owned())
}

/// The arguments a client puts together from a stream (`None` when it ends in an error).
fn stream_outcome(p: &Policy, kind: RouteKind, wire: &str) -> Option<String> {
    let mut guard = StreamGuard::for_route(p.clone(), kind, Api::OpenAi, 256);
    let (mut events, mut out) = (Vec::new(), Vec::new());
    let mut dec = SseDecoder::new(1 << 20);
    dec.push(wire.as_bytes(), &mut events).unwrap();
    for e in events.drain(..) {
        guard.event(e, &mut out);
    }
    guard.finish(&mut out);
    if guard.is_rejected() {
        return None;
    }
    let mut args = String::new();
    for data in String::from_utf8(out.concat()).unwrap().lines() {
        let Some(data) = data.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        let piece = v
            .pointer("/choices/0/delta/tool_calls/0/function/arguments")
            .or_else(|| {
                v.pointer("/delta")
                    .filter(|_| v["type"] == "response.function_call_arguments.delta")
            });
        if let Some(piece) = piece.and_then(Value::as_str) {
            args.push_str(piece);
        }
    }
    Some(args)
}

/// `args` as chat chunks of `n` characters.
fn chat_wire(args: &str, n: usize) -> String {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        )
    };
    let mut s = chunk(
        json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"write","arguments":""}}]}),
        Value::Null,
    );
    let chars: Vec<char> = args.chars().collect();
    for piece in chars.chunks(n) {
        let piece: String = piece.iter().collect();
        s += &chunk(
            json!({"tool_calls":[{"index":0,"function":{"arguments":piece}}]}),
            Value::Null,
        );
    }
    s += &chunk(json!({}), json!("tool_calls"));
    s + "data: [DONE]\n\n"
}

/// `args` as Responses argument deltas of `n` characters.
fn responses_wire(args: &str, n: usize) -> String {
    let event = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap());
    let mut s = event(
        json!({"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"write","arguments":""}}),
    );
    let chars: Vec<char> = args.chars().collect();
    for piece in chars.chunks(n) {
        let piece: String = piece.iter().collect();
        s += &event(
            json!({"type":"response.function_call_arguments.delta","output_index":0,"item_id":"fc_1","delta":piece}),
        );
    }
    s += &event(
        json!({"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"write","status":"completed"}}),
    );
    s
}

/// Finding A: a non-streamed response's arguments are read as the JSON they hold, and masked
/// as the same response streamed is, in chat, legacy `function_call` and Responses shapes:
/// the response stays JSON, its arguments stay JSON, and no secret is left in either.
#[test]
fn response_arguments_mask_as_streamed() {
    let p = mask_all();
    for case in cases() {
        let json_outcomes = [
            (
                chat_response(&case.args),
                "/choices/0/message/tool_calls/0/function/arguments",
            ),
            (
                legacy_response(&case.args),
                "/choices/0/message/function_call/arguments",
            ),
            (responses_response(&case.args), "/output/0/arguments"),
        ]
        .map(|(body, at)| json_outcome(&p, &body, at));
        let streamed = [
            stream_outcome(&p, RouteKind::Completions, &chat_wire(&case.args, 6)),
            stream_outcome(&p, RouteKind::Completions, &chat_wire(&case.args, 1)),
            stream_outcome(&p, RouteKind::Responses, &responses_wire(&case.args, 5)),
        ];
        let expected = streamed[0].clone().expect("masked, not refused");
        assert!(!shows(&expected, &case.secret), "{}: {expected}", case.name);
        serde_json::from_str::<Value>(&expected).expect("masked arguments are JSON");
        for got in json_outcomes.iter().chain(&streamed) {
            assert_eq!(got.as_ref(), Some(&expected), "{}", case.name);
        }
        // A rejecting rule refuses both ways.
        let r = reject_all();
        assert_eq!(json_outcome(&r, &chat_response(&case.args), ""), None);
        let wire = chat_wire(&case.args, 6);
        assert_eq!(stream_outcome(&r, RouteKind::Completions, &wire), None);
    }
}

/// Only the masked spans change in a non-streamed response: the escapes around them stay as
/// the server wrote them.
#[test]
fn response_arguments_are_masked_in_place() {
    let args = ascii_json(&json!({"note": "café", "card": "Карта 2201 7201 9860 3959"}));
    let body = chat_response(&args);
    let Decision::Rewrite(out) = mask_all()
        .inspect_response(Api::OpenAi, body.as_bytes())
        .unwrap()
        .into_decision()
    else {
        panic!()
    };
    let expected = body.replace("2201 7201 9860 3959", "<CREDIT_CARD>");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    // A match written with escapes is masked whole, escapes and all, as in a stream.
    let args = json!({"content": json!({"private_key": pem()}).to_string()}).to_string();
    let body = chat_response(&args);
    let out = json_outcome(
        &mask_all(),
        &body,
        "/choices/0/message/tool_calls/0/function/arguments",
    );
    let inner: Value = serde_json::from_str(&out.unwrap()).unwrap();
    let file: Value = serde_json::from_str(inner["content"].as_str().unwrap()).unwrap();
    assert_eq!(file["private_key"], "<PEM_PRIVATE_KEY>\n");
}

/// Response arguments that are not JSON are read as the string they are.
#[test]
fn response_arguments_that_are_not_json_are_read_as_text() {
    let body = chat_response(&format!("run --token {KEY}"));
    let at = "/choices/0/message/tool_calls/0/function/arguments";
    let out = json_outcome(&mask_all(), &body, at).unwrap();
    assert_eq!(out, "run --token <GITHUB_TOKEN>");
}

/// The final review: arguments that are not JSON agw reads (a key twice, `NaN`) and that hold
/// a `\u` escape could spell out a secret a lenient parser decodes — a response with them
/// fails, as a stream with them does, while the same without escapes is read as a string and
/// masked; in a request, an escaped backslash (`\u005c`) before `u0049` is an escape too.
#[test]
fn lenient_arguments_with_escapes_are_not_read_as_plain_text() {
    let p = mask_all();
    for args in [
        r#"{"k":"x","k":"AKIA\u0049OSFODNN7EXAMPLE"}"#,
        r#"{"n":NaN,"k":"AKIA\u0049OSFODNN7EXAMPLE"}"#,
    ] {
        let response = chat_response(args);
        assert!(
            p.inspect_response(Api::OpenAi, response.as_bytes())
                .is_err(),
            "{args}"
        );
    }
    let plain = format!(r#"{{"n":NaN,"k":"{KEY}"}}"#);
    let v = p
        .inspect_response(Api::OpenAi, chat_response(&plain).as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    assert!(!std::str::from_utf8(out).unwrap().contains(KEY));
    // A request: the outer JSON writes the inner escape's backslash as `\u005c`.
    let body = chat_request(r#"{"n":NaN,"k":"AKIA\u0049OSFODNN7EXAMPLE"}"#)
        .replace(r"AKIA\\u0049", r"AKIA\u005cu0049");
    assert!(body.contains(r"\u005cu0049"), "{body}");
    let v = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)), "{v:?}");
}

/// The final diff review: a `thinking` key inside a reply's arguments is the tool's input,
/// masked like the rest; a key written plainly once and with escapes again is hidden once.
#[test]
fn tool_input_keys_named_like_reasoning_are_masked_and_every_hidden_copy_counts() {
    let p = mask_all();
    let args = format!(r#"{{"thinking":"{KEY}","reasoning":"{KEY}"}}"#);
    let v = p
        .inspect_response(Api::OpenAi, chat_response(&args).as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    assert!(!std::str::from_utf8(out).unwrap().contains(KEY));
    // Not JSON (NaN), the key plainly and then spelled with escapes: the escaped copy refuses.
    let args = r#"{"n":NaN,"a":"AKIAIOSFODNN7EXAMPL3","b":"\u0041KIAIOSFODNN7EXAMPL3"}"#;
    let v = p
        .inspect(RouteKind::Completions, chat_request(args).as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)), "{v:?}");
}

/// Second round of the thirteenth session: arguments cut short (the token limit hit mid-call)
/// with a `\u` escape are read as completed — the reply passes, a key in them is masked in
/// place and the cut tail kept as written, one spelled by escapes is found.
#[test]
fn arguments_cut_short_are_read_as_completed() {
    let p = mask_all();
    let clean = r#"{"content": "caf\u00e9 au lait, then more"#;
    let v = p
        .inspect_response(Api::OpenAi, chat_response(clean).as_bytes())
        .unwrap();
    assert!(v.is_allow(), "{v:?}");
    let secret = format!(r#"{{"note": "caf\u00e9", "content": "key {KEY} and more"#);
    let v = p
        .inspect_response(Api::OpenAi, chat_response(&secret).as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    let out: serde_json::Value = serde_json::from_slice(out).unwrap();
    let args = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert_eq!(
        args,
        r#"{"note": "caf\u00e9", "content": "key <GITHUB_TOKEN> and more"#
    );
    let spelled = r#"{"note": "caf\u00e9", "k": "AKIA\u0049OSFODNN7EXAMPLE and"#;
    let v = p.inspect_response(Api::OpenAi, chat_response(spelled).as_bytes());
    assert!(!matches!(v, Ok(ref v) if v.is_allow()), "{v:?}");
}
