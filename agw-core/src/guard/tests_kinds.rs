//! Tests for every route kind's extraction, the session-survival removal, detectors and rule
//! options seen through a policy.

use super::*;
use crate::detect::Detector;
use crate::route::RouteKind;

/// `{R}` marks text agw must read (masked to `###`), `{N}` text it must not read.
fn check_masking(kind: RouteKind, template: &str, paths: &[&str]) {
    let policy = Policy::builder()
        .rule(Rule::literals("s", ["SECRET"]).mask_with("###"))
        .build()
        .unwrap();
    let body = template.replace("{R}", "SECRET").replace("{N}", "SECRET");
    let want = template.replace("{R}", "###").replace("{N}", "SECRET");
    let v = policy.inspect(kind, body.as_bytes()).unwrap();
    let got: Vec<&str> = v.hits().iter().map(|h| h.path.as_str()).collect();
    assert_eq!(got, paths, "{kind:?}: {template}");
    match v.decision() {
        Decision::Rewrite(out) => {
            assert_eq!(std::str::from_utf8(out).unwrap(), want, "{kind:?}");
            serde_json::from_slice::<serde_json::Value>(out).expect("still JSON");
        }
        d if paths.is_empty() => assert_eq!(d, &Decision::Allow),
        d => panic!("{kind:?}: {d:?}"),
    }
}

#[test]
fn every_kind_reads_its_prompt_text_and_masks_byte_exactly() {
    use RouteKind::*;
    let cases: &[(RouteKind, &str, &[&str])] = &[
        (
            MessageBatches,
            r#"{"requests":[{"custom_id":"a","params":{"model":"{R}","system":"{R}","messages":[{"role":"user","content":"{R}"}]}},{"custom_id":"b","params":{"messages":[{"role":"user","content":[{"type":"text","text":"a {R} b"}]},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"x","input":{"a":["{R}"]}}]}]}}]}"#,
            &[
                "requests[0].params.other field",
                "requests[0].params.system",
                "requests[0].params.messages[0].content",
                "requests[1].params.messages[0].content[0].text",
                "requests[1].params.messages[1].content[0].input",
            ],
        ),
        (
            Complete,
            r#"{"model":"m","prompt":"\n\nHuman: {R}\u00e9\n\nAssistant:","max_tokens_to_sample":5,"stop_sequences":["{R}"]}"#,
            &["prompt", "other field"],
        ),
        (
            LegacyCompletions,
            r#"{"model":"m","prompt":["a {R}",["x"],[["y"],"{R}"]],"suffix":"{R}","stop":"{R}"}"#,
            &["prompt[0]", "prompt[2]", "suffix", "other field"],
        ),
        (LegacyCompletions, r#"{"prompt":"{R}"}"#, &["prompt"]),
        (
            Embeddings,
            r#"{"input":["x","{R}"],"model":"m","extra":"{R}"}"#,
            &["input[1]", "other field"],
        ),
        (Embeddings, r#"{"input":"{R} {R}"}"#, &["input", "input"]),
        (
            Responses,
            r#"{"model":"m","instructions":"{R}","input":[{"role":"developer","content":"{R}"},{"type":"message","role":"user","content":[{"type":"input_text","text":"{R}"},{"type":"input_image","image_url":"data:image/png;base64,{N}"}]},{"type":"reasoning","id":"toolu_1","summary":[{"type":"summary_text","text":"{R}"}],"content":[{"type":"reasoning_text","text":"a {R}"}],"encrypted_content":"{N}"},{"type":"function_call","call_id":"call_1","name":"shell","arguments":"{\"cmd\":\"{R}\"}"},{"type":"function_call_output","call_id":"c","output":"{R}"},{"output":[{"type":"input_text","text":"{R}"}],"type":"custom_tool_call_output","call_id":"c"},{"type":"web_search_call","id":"toolu_1","action":{"query":"{R}"}},{"content":[{"type":"output_text","text":"{R}"}],"type":"message","role":"assistant"}],"truncation":{"k":"{R}"}}"#,
            &[
                "instructions",
                "input[0].content",
                "input[1].content[0].text",
                "input[2].summary[0].text",
                "input[2].content[0].text",
                "input[3].arguments",
                "input[4].output",
                "input[5].output[0].text",
                "input[6]",
                "input[7].content[0].text",
                "other field",
            ],
        ),
        (
            Responses,
            r#"{"input":"{R}","service_tier":"{R}"}"#,
            &["input", "other field"],
        ),
        (
            Responses,
            r#"{"prompt":{"id":"pmpt_1","variables":{"topic":"{R}"}},"input":[]}"#,
            &["prompt"],
        ),
        (
            Passthrough,
            r#"{"a":{"b":["{R}",1,null,{"c":"x {R}"}]},"{R}":true}"#,
            &["body", "body", "body"],
        ),
        (
            Messages,
            r#"{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"x","input":{"{R}":{"k {R}":["{R}"]}}}]}]}"#,
            &[
                "messages[0].content[0].input",
                "messages[0].content[0].input",
                "messages[0].content[0].input",
            ],
        ),
        (
            Responses,
            r#"{"input":[{"type":"function_call","call_id":"call_1","arguments":"{}","action":{"{R}":1}},{"type":"future_item","{R}":{"{R}":2}}]}"#,
            &["input[0].action", "input[1]", "input[1]"],
        ),
        (Passthrough, r#""{R}""#, &["body"]),
        (
            Completions,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"{R}"}]}],"prediction":{"type":"content","content":"{R}"}}"#,
            &["messages[0].content[0].text", "prediction"],
        ),
        (
            Completions,
            r#"{"MESSAGES":[{"ROLE":"user","Content":[{"TYPE":"text","Text":"a {R}"}]}]}"#,
            &["messages[0].content[0].text"],
        ),
        (
            Responses,
            r#"{"Input":[{"Type":"function_call_output","OUTPUT":"{R}"}]}"#,
            &["input[0].output"],
        ),
        (
            Completions,
            r#"{"messages":[{"role":"user","name":"{R}","content":[{"type":"file","file":{"file_id":"file-1","filename":"{R}.txt"}}]},{"role":"assistant","content":[{"type":"refusal","refusal":"{R}"}],"refusal":"{R}","tool_calls":[{"id":"c1","type":"custom","custom":{"name":"{R}","input":"{R}"}},{"id":"c2","type":"function","function":{"name":"{R}","arguments":"{\"{R}\":1}"}}]}]}"#,
            &[
                "messages[0].name",
                "messages[0].content[0].file.filename",
                "messages[1].content[0].refusal",
                "messages[1].refusal",
                "messages[1].tool_calls[0].custom.name",
                "messages[1].tool_calls[0].custom.input",
                "messages[1].tool_calls[1].function.name",
                "messages[1].tool_calls[1].function.arguments",
            ],
        ),
        (
            Messages,
            r#"{"messages":[{"role":"assistant","content":[{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://{R}","title":"{R}","page_age":"{R}","encrypted_content":"{N}"}]},{"type":"text","text":"a","citations":[{"type":"web_search_result_location","cited_text":"{R}","title":"{R}","url":"{R}","encrypted_index":"{N}"}]}]}]}"#,
            &[
                "messages[0].content[0].content[0].url",
                "messages[0].content[0].content[0].title",
                "messages[0].content[0].content[0].page_age",
                "messages[0].content[1].citations",
                "messages[0].content[1].citations",
                "messages[0].content[1].citations",
            ],
        ),
        (
            Responses,
            // An MCP call's `server_label` is read as a field agw has no reading for is (a
            // black-box review: it went upstream unread); its `id` is an identifier.
            r#"{"input":[{"role":"user","content":[{"type":"input_file","filename":"{R}","file_data":"data:application/pdf;base64,{N}"}]},{"type":"mcp_call","id":"toolu_1","server_label":"{R}","name":"{R}","arguments":"{}","output":"{R}"}]}"#,
            &[
                "input[0].content[0].filename",
                "other field",
                "input[1].name",
                "input[1].output",
            ],
        ),
        (Models, r#"{"x":"{N}"}"#, &[]),
        (Unguarded, r#"{"x":"{N}"}"#, &[]),
    ];
    for (kind, template, paths) in cases {
        check_masking(*kind, template, paths);
    }
    // A prompt of token ids holds no text agw can read: refused where a rule would mask
    // (seventeenth session; `tests/seventeenth_session.rs`).
    let policy = Policy::builder()
        .rule(Rule::literals("s", ["SECRET"]).mask_with("###"))
        .build()
        .unwrap();
    let v = policy
        .inspect(LegacyCompletions, br#"{"prompt":["a",[1,2,3]]}"#)
        .unwrap();
    assert!(
        matches!(v.decision(), Decision::Reject(_)),
        "{:?}",
        v.hits()
    );
}

#[test]
fn duplicate_keys_and_wrong_shapes_are_refused() {
    use RouteKind::*;
    let p = Policy::builder()
        .rule(Rule::literals("x", ["nothing"]))
        .build()
        .unwrap();
    let cases: &[(RouteKind, &str)] = &[
        (Complete, r#"{"prompt":"a","prompt":"b"}"#),
        (LegacyCompletions, r#"{"prompt":"a","prompt":"b"}"#),
        (LegacyCompletions, r#"{"suffix":"a","suffix":"b"}"#),
        (Embeddings, r#"{"input":"a","input":"b"}"#),
        (Responses, r#"{"input":"a","input":"b"}"#),
        (Responses, r#"{"instructions":"a","instructions":"b"}"#),
        (Responses, r#"{"prompt":{},"prompt":{}}"#),
        (Responses, r#"{"input":[{"type":"message","type":"x"}]}"#),
        (
            Responses,
            r#"{"input":[{"type":"function_call_output","output":"a","output":"b"}]}"#,
        ),
        (
            Responses,
            r#"{"input":[{"type":"function_call","arguments":"a","arguments":"b"}]}"#,
        ),
        (
            Responses,
            r#"{"input":[{"role":"user","content":"a","content":"b"}]}"#,
        ),
        (Responses, r#"{"input":[5]}"#),
        (MessageBatches, r#"{"requests":[],"requests":[]}"#),
        (
            MessageBatches,
            r#"{"requests":[{"params":{},"params":{}}]}"#,
        ),
        (
            MessageBatches,
            r#"{"requests":[{"params":{"messages":[],"messages":[]}}]}"#,
        ),
        (MessageBatches, r#"{"requests":{}}"#),
        (MessageBatches, r#"{"requests":[{"params":"x"}]}"#),
        (
            Messages,
            r#"{"messages":[{"role":"user","content":"a","content":"b"}]}"#,
        ),
        (
            Messages,
            r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"x","type":"base64"}}]}]}"#,
        ),
        (
            Completions,
            r#"{"messages":[{"role":"assistant","tool_calls":[],"tool_calls":[]}]}"#,
        ),
        (Completions, r#"{"prediction":{},"prediction":{}}"#),
        (Completions, r#"{"prediction":{},"PREDICTION":{}}"#),
        (Responses, r#"{"input":"a","Input":"b"}"#),
        (Embeddings, r#"{"INPUT":"a","input":"b"}"#),
        (MessageBatches, r#"{"requests":[],"Requests":[]}"#),
        (Passthrough, "not json"),
        (Passthrough, r#"{"a":"b""#),
        (Passthrough, r#"{"a":1} x"#),
    ];
    for (kind, body) in cases {
        assert!(
            p.inspect(*kind, body.as_bytes()).is_err(),
            "{kind:?} {body}"
        );
    }
}

fn seed() -> Policy {
    seed_scoped(Scope::All)
}

fn seed_scoped(scope: Scope) -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .scope(scope)
                .reject("Rejected due to inappropriate content"),
        )
        .rule(Rule::detectors("pii", [Detector::CreditCard]).mask())
        .build()
        .unwrap()
}

const REMINDER: &str =
    r#"{"type":"text","text":"<system-reminder>\nContext.\n</system-reminder>"}"#;
const REMOVED: &str = r#""[removed by agw: rule credit-card]""#;

fn text_block(t: &str) -> String {
    format!(r#"{{"type":"text","text":{}}}"#, serde_json::Value::from(t))
}

/// A Claude Code request whose first user message holds `blocks` (after a system reminder),
/// followed by `rest` (more messages, JSON, each with a leading comma).
fn session(blocks: &[&str], rest: &str) -> String {
    let blocks: Vec<String> = blocks.iter().map(|b| text_block(b)).collect();
    format!(
        r#"{{"model":"claude-opus-5-5","max_tokens":32000,"stream":true,"system":[{{"type":"text","text":"You are Claude Code."}}],"messages":[{{"role":"user","content":[{REMINDER},{}]}}{rest}],"tools":[]}}"#,
        blocks.join(",")
    )
}

fn inspect(p: &Policy, kind: RouteKind, body: &str) -> Decision {
    p.inspect(kind, body.as_bytes()).unwrap().into_decision()
}

/// The body forwarded, asserting it differs from `body` only where `removed` strings became
/// the placeholder, and that it never carries the phrase.
fn forwarded(p: &Policy, kind: RouteKind, body: &str, removed: &[&str]) -> String {
    let out = match inspect(p, kind, body) {
        Decision::Rewrite(out) => String::from_utf8(out).unwrap(),
        d => panic!("not forwarded: {d:?}\n{body}"),
    };
    let mut want = body.to_owned();
    for r in removed {
        let quoted = serde_json::Value::from(*r).to_string();
        assert!(want.contains(&quoted), "{quoted} not in body");
        want = want.replacen(&quoted, REMOVED, 1);
    }
    assert_eq!(out, want);
    assert!(!out.contains("credit card"), "{out}");
    out
}

#[test]
fn a_session_survives_a_rejected_prompt() {
    let bad = "What is a credit card";
    for scope in [Scope::All, Scope::Latest] {
        let p = seed_scoped(scope);
        let k = RouteKind::Messages;
        // The rejected prompt itself.
        assert!(matches!(
            inspect(&p, k, &session(&[bad], "")),
            Decision::Reject(_)
        ));
        // Claude Code's next request: the next prompt is another block of the same message.
        forwarded(&p, k, &session(&[bad, "hello"], ""), &[bad]);
        forwarded(&p, k, &session(&[bad, "hello", "and more"], ""), &[bad]);
        // After the answer, the rejected text is in the history: still never forwarded.
        let later = r#",{"role":"assistant","content":[{"type":"text","text":"Hi!"}]},{"role":"user","content":[{"type":"text","text":"next"}]}"#;
        forwarded(&p, k, &session(&[bad, "hello"], later), &[bad]);
        // A rejected next prompt is still rejected.
        for blocks in [&[bad, "a credit card again"][..], &[bad, "credit", " card"]] {
            assert!(
                matches!(inspect(&p, k, &session(blocks, "")), Decision::Reject(_)),
                "{scope:?} {blocks:?}"
            );
        }
        let later_bad =
            r#",{"role":"assistant","content":"Hi!"},{"role":"user","content":"credit card?"}"#;
        assert!(matches!(
            inspect(&p, k, &session(&[bad, "hello"], later_bad)),
            Decision::Reject(_)
        ));
        // Count tokens carries the same body.
        forwarded(
            &p,
            RouteKind::CountTokens,
            &session(&[bad, "hi"], ""),
            &[bad],
        );
    }
}

#[test]
fn removal_is_whole_and_cannot_smuggle_text() {
    let p = seed();
    let k = RouteKind::Messages;
    // An appended clean block does not let rejected text through: it is removed.
    forwarded(
        &p,
        k,
        &session(&["a credit card", "x"], ""),
        &["a credit card"],
    );
    // A phrase split across blocks removes every block it touches.
    forwarded(
        &p,
        k,
        &session(&["about credit", " card", "ok"], ""),
        &["about credit", " card"],
    );
    // A mask inside a removed block goes with it.
    let out = forwarded(
        &p,
        k,
        &session(&["credit card 4111 1111 1111 1111", "ok"], ""),
        &["credit card 4111 1111 1111 1111"],
    );
    assert!(!out.contains("credit card 4111 1111 1111 1111"));
    // ... masks elsewhere still apply.
    let body = session(&["credit card", "card 4111111111111111"], "");
    let Decision::Rewrite(out) = inspect(&p, k, &body) else {
        panic!()
    };
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(REMOVED) && out.contains("card <CREDIT_CARD>"),
        "{out}"
    );
    // Text the system wrote is not removed: it still rejects. An earlier assistant turn's
    // is (twelfth session: the model naming the phrase once ended the session for good).
    let rest = r#",{"role":"system","content":"a credit card"},{"role":"user","content":"ok"}"#;
    assert!(
        matches!(inspect(&p, k, &session(&["x"], rest)), Decision::Reject(_)),
        "{rest}"
    );
    let rest = r#",{"role":"assistant","content":"a credit card"},{"role":"user","content":"ok"}"#;
    let Decision::Rewrite(out) = inspect(&p, k, &session(&["x"], rest)) else {
        panic!("{rest}")
    };
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(REMOVED) && !out.contains("credit card"),
        "{out}"
    );
    // A tool loop: the latest user message ends in a tool result, which is the final prompt.
    let tool = r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Read","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"a credit card"},{"type":"tool_result","tool_use_id":"u","content":"fine"}]}]}"#;
    assert!(matches!(inspect(&p, k, tool), Decision::Reject(_)));
    // A key is removed whole like any other string.
    let keyed = tool.replace(
        r#""content":"a credit card""#,
        r#""content":{"a credit card":1}"#,
    );
    assert!(matches!(inspect(&p, k, &keyed), Decision::Reject(_)));
    let keyed = keyed.replace(
        r#""content":"fine"}"#,
        r#""content":"fine"},{"type":"text","text":"never mind"}"#,
    );
    forwarded(&p, k, &keyed, &["a credit card"]);
    // ... and once the user types the next prompt, the tool result is removed.
    let tool = tool.replace(
        r#""content":"fine"}"#,
        r#""content":"fine"},{"type":"text","text":"never mind"}"#,
    );
    forwarded(&p, k, &tool, &["a credit card"]);
}

#[test]
fn removal_in_other_dialects() {
    let p = seed();
    // OpenAI chat: an earlier user message.
    let chat = r#"{"model":"gpt","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"a credit card"},{"role":"assistant","content":"No."},{"role":"user","content":"hello"}]}"#;
    forwarded(&p, RouteKind::Completions, chat, &["a credit card"]);
    let chat = r#"{"messages":[{"role":"user","content":"hello"},{"role":"user","content":"a credit card"}]}"#;
    assert!(matches!(
        inspect(&p, RouteKind::Completions, chat),
        Decision::Reject(_)
    ));
    // Responses.
    let resp = r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"a credit card"}]},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"No."}]},{"role":"user","content":"hello"}]}"#;
    forwarded(&p, RouteKind::Responses, resp, &["a credit card"]);
    let resp = r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"a credit card"},{"type":"input_text","text":"hello"}]}]}"#;
    forwarded(&p, RouteKind::Responses, resp, &["a credit card"]);
    assert!(matches!(
        inspect(&p, RouteKind::Responses, r#"{"input":"a credit card"}"#),
        Decision::Reject(_)
    ));
    // Batches: each request is its own conversation.
    let batch = r#"{"requests":[{"custom_id":"a","params":{"messages":[{"role":"user","content":[{"type":"text","text":"a credit card"},{"type":"text","text":"hi"}]}]}},{"custom_id":"b","params":{"messages":[{"role":"user","content":"hi"}]}}]}"#;
    forwarded(&p, RouteKind::MessageBatches, batch, &["a credit card"]);
    let batch = batch.replace(r#""content":"hi"}"#, r#""content":"credit card"}"#);
    assert!(matches!(
        inspect(&p, RouteKind::MessageBatches, &batch),
        Decision::Reject(_)
    ));
    // Prompts that are not conversations reject.
    for (kind, body) in [
        (RouteKind::Complete, r#"{"prompt":"credit card"}"#),
        (
            RouteKind::LegacyCompletions,
            r#"{"prompt":["hi","credit card"]}"#,
        ),
        (RouteKind::Embeddings, r#"{"input":["credit card","hi"]}"#),
        (RouteKind::Passthrough, r#"{"q":["credit card","hi"]}"#),
    ] {
        assert!(
            matches!(inspect(&p, kind, body), Decision::Reject(_)),
            "{body}"
        );
    }
}

fn mask_pem() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("keys", [Detector::PemPrivateKey]).mask())
        .build()
        .unwrap()
}

#[test]
fn read_tool_output_with_a_key_is_masked_whole() {
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBg0UPz0kpWg3Wx5rZVb+Lx7c1Ngy4Fh4ktGuiYeg4eOQAAAJjM8x3wzPMd\n-----END OPENSSH PRIVATE KEY-----";
    let numbered: Vec<String> = key
        .lines()
        .enumerate()
        .map(|(n, l)| format!("{:>6}→{l}", n + 1))
        .collect();
    let read = format!("{}\n     5→", numbered.join("\n"));
    let content = serde_json::Value::from(read.as_str()).to_string();
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"show ~/.ssh/id_ed25519"}},{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"Read","input":{{"file_path":"/home/u/.ssh/id_ed25519"}}}}]}},{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","content":{content}}}]}}]}}"#
    );
    let Decision::Rewrite(out) = inspect(&mask_pem(), RouteKind::Messages, &body) else {
        panic!("not masked")
    };
    let want = body.replace(
        &content,
        &serde_json::Value::from("     1→<PEM_PRIVATE_KEY>\n     5→").to_string(),
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn controls_and_plus_one_numbers() {
    let p = seed();
    for raw in [
        r"credit\u0000 card",
        r"cre\u0000dit\b card",
        r"cre\u009fdit card",
        "cre\u{9f}dit\u{9e} card",
        r"credit\u001b card",
        // Whitespace controls are word breaks (see `tests::evasion`).
        r"credit\u001fcard",
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{raw}"}}]}}"#);
        assert!(
            matches!(inspect(&p, RouteKind::Messages, &body), Decision::Reject(_)),
            "{raw:?}"
        );
    }
    let phones = Policy::builder()
        .rule(Rule::detectors("phone", [Detector::Phone]).reject("no"))
        .build()
        .unwrap();
    for (text, hit) in [
        ("+1 (555) 010-0000", false),
        ("(555) 010-0000", false),
        ("+1 (415) 555-2671", true),
        ("+14155552671", true),
        ("+10155552671", false),
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"call {text}"}}]}}"#);
        let got = matches!(
            inspect(&phones, RouteKind::Messages, &body),
            Decision::Reject(_)
        );
        assert_eq!(got, hit, "{text}");
    }
}

#[test]
fn whitespace_and_confusable_options() {
    let rule = || Rule::literals("cc", ["credit card"]).reject("no");
    let plain = Policy::builder().rule(rule()).build().unwrap();
    let ws = Policy::builder()
        .rule(rule().whitespace_insensitive(true))
        .build()
        .unwrap();
    let conf = Policy::builder()
        .rule(rule().confusables(true).case_insensitive(true))
        .build()
        .unwrap();
    let both = Policy::builder()
        .rule(rule().confusables(true).whitespace_insensitive(true))
        .build()
        .unwrap();
    // (text as JSON string content, plain, ws, conf, both)
    for (raw, want) in [
        ("credit card", [true, true, true, true]),
        (r"credit\n\t  card", [false, true, false, true]),
        ("credit\u{3000}\u{a0}card", [false, true, false, true]),
        ("сrеdit саrd", [false, false, true, true]),
        ("СRЕDIT саrd", [false, false, true, false]),
        (r"сrеdit\r\nсаrd", [false, false, false, true]),
        ("creditcard", [false, false, false, false]),
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{raw}"}}]}}"#);
        for (p, w) in [&plain, &ws, &conf, &both].into_iter().zip(want) {
            let got = matches!(inspect(p, RouteKind::Messages, &body), Decision::Reject(_));
            assert_eq!(got, w, "{raw:?} {:?}", p.rules().next().unwrap());
        }
    }
    let r = rule().whitespace_insensitive(true).confusables(true);
    assert!(r.is_whitespace_insensitive() && r.folds_confusables());
    // Masking a widened match replaces exactly its source characters.
    let masker = Policy::builder()
        .rule(
            Rule::literals("cc", ["credit card"])
                .whitespace_insensitive(true)
                .confusables(true)
                .whole_word(true)
                .mask_with("[cc]"),
        )
        .build()
        .unwrap();
    let body = r#"{"messages":[{"role":"user","content":"my сrеdit\n\t card, mycredit card"}]}"#;
    let Decision::Rewrite(out) = inspect(&masker, RouteKind::Messages, body) else {
        panic!()
    };
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"messages":[{"role":"user","content":"my [cc], mycredit card"}]}"#
    );
}
