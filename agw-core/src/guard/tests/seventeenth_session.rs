//! Found in the seventeenth session's red-team review: text that reaches the provider outside
//! the body and the URL.

use super::*;
use http::{HeaderMap, HeaderName, HeaderValue};

fn dets(masks: bool) -> Policy {
    let rule = Rule::detectors(
        "dets",
        [
            Detector::CreditCard,
            Detector::Email,
            Detector::AwsAccessKey,
            Detector::GithubToken,
        ],
    );
    let rule = if masks {
        rule.mask()
    } else {
        rule.reject("no")
    };
    Policy::builder()
        .rule(rule)
        .rule(Rule::literals("word", ["TOPSECRET"]).reject("no"))
        .build()
        .unwrap()
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    h
}

/// Asserts that `v` refuses the request, with a hit at `path` when one is given.
fn assert_refused(v: &Verdict, path: Option<&str>, what: &str) {
    assert!(
        matches!(v.decision(), Decision::Reject(_)),
        "{what}: {:?}",
        v.hits()
    );
    if let Some(path) = path {
        assert!(
            v.hits().iter().any(|h| h.path == path),
            "{what}: {:?}",
            v.hits()
        );
    }
}

/// Claude Code's own headers, which every request carries: nothing in them is a hit.
const CLAUDE_CODE: &[(&str, &[u8])] = &[
    ("accept", b"application/json"),
    ("anthropic-beta", b"claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"),
    ("anthropic-dangerous-direct-browser-access", b"true"),
    ("anthropic-version", b"2023-06-01"),
    ("content-type", b"application/json"),
    ("user-agent", b"claude-cli/2.1.332 (external, cli)"),
    ("x-app", b"cli"),
    ("x-claude-code-session-id", b"3f9c2a71-5b0e-4d8a-9c61-2e7f4b1a8d03"),
    ("x-stainless-arch", b"x64"),
    ("x-stainless-lang", b"js"),
    ("x-stainless-os", b"Linux"),
    ("x-stainless-package-version", b"0.60.0"),
    ("x-stainless-retry-count", b"0"),
    ("x-stainless-runtime", b"node"),
    ("x-stainless-runtime-version", b"v20.20.2"),
    ("x-stainless-timeout", b"600"),
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("accept-encoding", b"gzip, deflate, br, zstd"),
    ("content-length", b"76213"),
];

/// A client's headers reach the provider and its logs: read by the message rules, each header
/// a line of its own. A header is not rewritten: a masking rule refuses too.
#[test]
fn request_headers_are_read_by_the_message_rules() {
    for masks in [false, true] {
        let p = dets(masks);
        for (name, value) in [
            ("x-note", &b"my key AKIAZ7Q3JX5K2M4PL6WR"[..]),
            ("user-agent", b"TOPSECRET/1.0"),
            ("anthropic-beta", b"credit-card-TOPSECRET"),
            ("x-claude-code-session-id", b"AKIAZ7Q3JX5K2M4PL6WR"),
            ("x-gh", b"ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"),
            // Named like a credential but not one a client authenticates with: read (with
            // credentials passed through it goes upstream as sent).
            ("x-note-key", b"TOPSECRET"),
            // Percent-encoded, once or twice, read decoded too; obs-text normalised (a
            // full-width letter).
            ("x-note", b"TOP%53ECRET"),
            ("x-note", b"TOP%2553ECRET"),
            ("x-note", "\u{ff34}OPSECRET".as_bytes()),
        ] {
            let mut all = CLAUDE_CODE.to_vec();
            all.push((name, value));
            let v = p.inspect_headers(&headers(&all));
            assert!(
                matches!(v.decision(), Decision::Reject(_)),
                "{name}: {:?}",
                v.hits()
            );
            assert!(
                v.hits().iter().all(|h| h.path == "header"),
                "{:?}",
                v.hits()
            );
        }
        let v = p.inspect_headers(&headers(CLAUDE_CODE));
        assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
        // A client's own credential (passed through when agw injects no key) and the host
        // are not read; no header at all is nothing to read.
        let v = p.inspect_headers(&headers(&[
            ("x-api-key", b"TOPSECRET-AKIAZ7Q3JX5K2M4PL6WR"),
            (
                "authorization",
                b"Bearer ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
            ),
            ("proxy-authorization", b"Basic TOPSECRET"),
            ("cookie", b"s=TOPSECRET"),
            ("host", b"TOPSECRET.example"),
        ]));
        assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
        // Personal-data detectors and the JWT one do not read headers: trace ids are long
        // numbers (this one Luhn-valid, in a card's range), load balancers add JWTs.
        let v = p.inspect_headers(&headers(&[
            ("x-datadog-trace-id", b"4111111111111111"),
            ("x-cloud-trace-context", b"105445aa7843bc8bf206b12000100000/4111111111111111;o=1"),
            ("x-from", b"jane.doe@example.com"),
            ("cf-access-jwt-assertion", b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
        ]));
        assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
        assert!(p.inspect_headers(&HeaderMap::new()).is_allow());
    }
    // Two headers do not run into one match.
    let p = Policy::builder()
        .rule(Rule::literals("cc", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let v = p.inspect_headers(&headers(&[("x-a", b"credit"), ("x-b", b"card")]));
    assert!(v.is_allow(), "{:?}", v.hits());
    // A no-break space in Latin-1 (`\xA0`) is a space to a server that reads headers so, and
    // a `+` to one that decodes forms.
    for value in [&b"credit\xA0card"[..], b"credit+card", b"credit%2Bcard"] {
        let v = p.inspect_headers(&headers(&[("x-note", value)]));
        assert_refused(&v, Some("header"), "x-note");
    }
    // A header named as a credential for another service (a gateway's key set through
    // Claude Code's ANTHROPIC_CUSTOM_HEADERS) is read by literal and regex rules only: its key
    // is expected there (third review).
    let v = dets(false).inspect_headers(&headers(&[
        (
            "x-litellm-api-key",
            b"Bearer ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
        ),
        (
            "x-github-token",
            b"ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
        ),
    ]));
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
    let v = dets(false).inspect_headers(&headers(&[("x-auth-token", b"TOPSECRET")]));
    assert_refused(&v, Some("header"), "x-auth-token");
    // An audit rule reports; a masking rule says why it refuses.
    let audit = Policy::builder()
        .rule(Rule::detectors("dets", [Detector::AwsAccessKey]).audit())
        .build()
        .unwrap();
    let v = audit.inspect_headers(&headers(&[("x-note", b"AKIAZ7Q3JX5K2M4PL6WR")]));
    assert!(v.is_allow());
    assert_eq!(v.hits().len(), 1);
    let v = dets(true).inspect_headers(&headers(&[("x-note", b"AKIAZ7Q3JX5K2M4PL6WR")]));
    let Decision::Reject(r) = v.decision() else {
        unreachable!()
    };
    assert!(
        r.error_body().message().contains("header"),
        "{:?}",
        r.error_body()
    );
    // Rules for other fields only (tool output) do not read headers.
    let tools = Policy::builder()
        .rule(
            Rule::literals("t", ["TOPSECRET"])
                .fields(Fields::empty().with(Field::ToolOutput))
                .reject("no"),
        )
        .build()
        .unwrap();
    assert!(
        tools
            .inspect_headers(&headers(&[("x-note", b"TOPSECRET")]))
            .is_allow()
    );
}

/// A prompt given as token ids or embeddings is text again through the model's tokenizer,
/// which agw does not have: refused where a rule that reads message text refuses or masks,
/// let through where rules only audit (or read other fields).
#[test]
fn prompts_given_as_token_ids_are_refused_where_rules_refuse_or_mask() {
    use serde_json::json;
    let refused = [
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": [10827, 3786, 318]}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": [[10827], [3786, 318]]}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": "hi", "prompt_embeds": "AAAA"}),
        ),
        (
            RouteKind::Embeddings,
            json!({"model": "m", "input": [1212, 318]}),
        ),
        (
            RouteKind::Embeddings,
            json!({"model": "m", "input": [[1212, 318], [11]]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt_embeds": "AAAA"}),
        ),
        (RouteKind::Passthrough, json!({"input_ids": [1212, 318]})),
        (
            RouteKind::Passthrough,
            json!({"token_ids": [1212, 318], "sampling_params": {}}),
        ),
        (RouteKind::Passthrough, json!({"prompt_token_ids": [1]})),
        // Second review: any number in a prompt, and local servers' own shapes.
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": 1212}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": [[[1212]]]}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": {"prompt_token_ids": [1212]}}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": [{"type": "tokens", "ids": [1212]}]}),
        ),
        (
            RouteKind::Passthrough,
            json!({"prompt": [1212, 318], "n_predict": 5}),
        ),
        (RouteKind::Passthrough, json!({"content": [1212, 318]})),
        (
            RouteKind::Passthrough,
            json!({"model": "m", "input": [1212, 318]}),
        ),
        (
            RouteKind::Passthrough,
            json!({"model": "llama3", "prompt": "hi", "context": [1212, 318]}),
        ),
    ];
    let allowed = [
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": ["hello", "there"]}),
        ),
        (
            RouteKind::LegacyCompletions,
            json!({"model": "m", "prompt": "hello", "max_tokens": 5}),
        ),
        (
            RouteKind::Embeddings,
            json!({"model": "m", "input": ["a", "b"], "dimensions": 256}),
        ),
        (
            RouteKind::Passthrough,
            json!({"text": "hello", "input_ids": null}),
        ),
        (
            RouteKind::Passthrough,
            json!({"inputs": "hello", "parameters": {"top_k": 5}}),
        ),
        (
            RouteKind::Passthrough,
            json!({"model": "llama3", "prompt": "hi", "options": {"num_predict": 5}}),
        ),
        // Third review: numbers inside objects of a generic body are settings, not token ids
        // (a Responses history sent to `/v1/responses/compact`, a Triton request's `shape`).
        (
            RouteKind::Passthrough,
            json!({"model": "m", "input": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "see", "annotations": [{"type": "url_citation", "start_index": 0, "end_index": 3, "url": "https://e.x"}]}]}, {"type": "computer_call", "call_id": "c", "action": {"type": "click", "x": 100, "y": 200}}]}),
        ),
        (
            RouteKind::Passthrough,
            json!({"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}),
        ),
    ];
    for masks in [false, true] {
        let p = dets(masks);
        for (kind, body) in &refused {
            let v = p.inspect(*kind, body.to_string().as_bytes()).unwrap();
            let Decision::Reject(r) = v.decision() else {
                panic!("{kind:?} {body}: {:?}", v.hits())
            };
            assert!(
                r.error_body().message().contains("token ids"),
                "{:?}",
                r.error_body()
            );
            assert!(v.hits().iter().any(|h| h.path == "token ids"));
        }
        for (kind, body) in &allowed {
            let v = p.inspect(*kind, body.to_string().as_bytes()).unwrap();
            assert!(v.is_allow(), "{kind:?} {body}: {:?}", v.hits());
        }
    }
    let audit = Policy::builder()
        .rule(Rule::detectors("dets", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let tools = Policy::builder()
        .rule(
            Rule::literals("t", ["TOPSECRET"])
                .fields(Fields::empty().with(Field::ToolOutput))
                .reject("no"),
        )
        .build()
        .unwrap();
    for p in [audit, tools] {
        for (kind, body) in &refused {
            let v = p.inspect(*kind, body.to_string().as_bytes()).unwrap();
            assert!(v.is_allow(), "{kind:?} {body}: {:?}", v.hits());
        }
    }
}

/// Anthropic's tool ids (`tool_use.id`, `tool_result.tool_use_id`) and a block's `file_id`
/// reach the provider's logs, and compatible servers print tool ids into the prompt: read as
/// identifiers, as chat's `tool_call_id` is, never rewritten.
#[test]
fn anthropic_tool_ids_are_read_as_identifiers() {
    use serde_json::json;
    let body = |id: &str, result_id: &str, file: &str| {
        json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "list files"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": id, "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": result_id, "content": "a.txt"},
                {"type": "document", "source": {"type": "file", "file_id": file}},
                {"type": "text", "text": "and now?"}]}]})
        .to_string()
    };
    let clean = "toolu_01A09q90qw90lq917835lq9";
    for masks in [false, true] {
        let p = dets(masks);
        for b in [
            body(
                "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A",
                clean,
                "file_011CNha8iCJcU1wXNR6q4V8w",
            ),
            body(
                clean,
                "AKIAZ7Q3JX5K2M4PL6WR",
                "file_011CNha8iCJcU1wXNR6q4V8w",
            ),
            body(clean, clean, "TOPSECRET"),
        ] {
            let v = p.inspect(RouteKind::Messages, b.as_bytes()).unwrap();
            assert_refused(&v, Some("identifier"), &b);
        }
        let b = body(clean, clean, "file_011CNha8iCJcU1wXNR6q4V8w");
        let v = p.inspect(RouteKind::Messages, b.as_bytes()).unwrap();
        assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
    }
}

/// A card written as a JSON number where chat text goes (a text part's `text`, a message's
/// `name`, an assistant's `reasoning_content`, a message's key agw has no reading for): a
/// lenient server prints it, so it is read as numbers in data are, and masked as a JSON
/// string. Top-level numbers are parameters (`seed`), not read (`seventh_review.rs`).
#[test]
fn long_numbers_in_chat_message_fields_are_read() {
    use serde_json::json;
    let card = 4111111111111111u64;
    let bodies = [
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": card}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "name": card, "content": "hi"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "reasoning_content": card}, {"role": "user", "content": "and?"}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi", "note": card}]}),
    ];
    // Refused, masked, or (in an earlier turn) removed: the card does not go upstream.
    for (b, masks) in bodies.iter().flat_map(|b| [(b, false), (b, true)]) {
        let text = b.to_string();
        let v = dets(masks)
            .inspect(RouteKind::Completions, text.as_bytes())
            .unwrap();
        assert!(!v.hits().is_empty(), "{text}");
        match v.decision() {
            Decision::Rewrite(out) => {
                let out = std::str::from_utf8(out).unwrap();
                assert!(!out.contains("4111111111111111"), "{out}");
                serde_json::from_str::<serde_json::Value>(out).expect("still JSON");
            }
            Decision::Reject(_) => {}
            d => panic!("{text}: {d:?}"),
        }
    }
    // Short numbers are no text (`"n": 2`, an index).
    let b = json!({"model": "m", "messages": [{"role": "user", "content": "hi", "note": 12345}]});
    let v = dets(false)
        .inspect(RouteKind::Completions, b.to_string().as_bytes())
        .unwrap();
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
}

/// Keys and tokens in tool definitions (an MCP server's description, a schema's `default`, a
/// tool's name, `tool_choice`, an output schema) are found by the credential detectors of
/// rules that reject or audit; a masking rule refuses, as definitions are not rewritten.
/// Personal-data detectors, and the JWT and URL-password detectors whose samples schemas'
/// documentation shows, still leave definitions alone.
#[test]
fn credentials_in_tool_definitions_are_found_by_credential_detectors() {
    use serde_json::json;
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
    let messages = json!([{"role": "user", "content": "hi"}]);
    let anthropic = |tools: serde_json::Value| {
        json!({"model": "m", "max_tokens": 5, "messages": messages, "tools": tools}).to_string()
    };
    let tool = |description: &str| json!([{"name": "q", "description": description, "input_schema": {"type": "object"}}]);
    let refused = [
        (RouteKind::Messages, anthropic(tool("Query. Token AKIAZ7Q3JX5K2M4PL6WR"))),
        (RouteKind::Messages, anthropic(json!([{"name": "q", "input_schema": {"type": "object", "properties": {"k": {"type": "string", "default": pem}}}}]))),
        (RouteKind::Messages, anthropic(json!([{"name": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A", "input_schema": {"type": "object"}}]))),
        (RouteKind::Messages, json!({"model": "m", "max_tokens": 5, "messages": messages, "tool_choice": {"type": "tool", "name": "AKIAZ7Q3JX5K2M4PL6WR"}}).to_string()),
        (RouteKind::Completions, json!({"model": "m", "messages": messages, "tools": [{"type": "function", "function": {"name": "f", "description": "key AKIAZ7Q3JX5K2M4PL6WR"}}]}).to_string()),
        (RouteKind::Completions, json!({"model": "m", "messages": messages, "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"}}}}).to_string()),
    ];
    let allowed = [
        anthropic(tool(
            "Commit as Claude <noreply@anthropic.com>; card 4111 1111 1111 1111",
        )),
        anthropic(tool("Connect with postgres://user:pass@localhost/db")),
        anthropic(tool(
            "Credentials look like AKIAIOSFODNN7EXAMPLE (AWS's documentation key)",
        )),
        anthropic(tool(
            "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        )),
    ];
    let all = |action: &str| {
        let rule = Rule::detectors(
            "all",
            [
                Detector::CreditCard,
                Detector::Email,
                Detector::AwsAccessKey,
                Detector::GithubToken,
                Detector::PemPrivateKey,
                Detector::Jwt,
                Detector::UrlPassword,
            ],
        );
        let rule = match action {
            "reject" => rule.reject("no"),
            "mask" => rule.mask(),
            _ => rule.audit(),
        };
        Policy::builder().rule(rule).build().unwrap()
    };
    for action in ["reject", "mask"] {
        let p = all(action);
        for (kind, body) in &refused {
            let v = p.inspect(*kind, body.as_bytes()).unwrap();
            let Decision::Reject(r) = v.decision() else {
                panic!("{action} {kind:?} {body}: {:?}", v.hits())
            };
            if action == "mask" {
                assert!(
                    r.error_body().message().contains("tool definitions"),
                    "{:?}",
                    r.error_body()
                );
            }
            // Read every time: a value with a hit is never kept as known clean.
            let again = p.inspect(*kind, body.as_bytes()).unwrap();
            assert!(matches!(again.decision(), Decision::Reject(_)), "{body}");
        }
        for body in &allowed {
            let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
            assert!(
                v.is_allow() && v.hits().is_empty(),
                "{action} {body}: {:?}",
                v.hits()
            );
        }
    }
    let p = all("audit");
    let v = p
        .inspect(RouteKind::Messages, refused[0].1.as_bytes())
        .unwrap();
    assert!(v.is_allow());
    assert_eq!(v.hits().len(), 1, "{:?}", v.hits());
    // Definitions found clean, then the same tool with a key added: read again, refused.
    let p = all("reject");
    let clean = anthropic(tool("Query the database."));
    assert!(
        p.inspect(RouteKind::Messages, clean.as_bytes())
            .unwrap()
            .is_allow()
    );
    assert!(
        p.inspect(RouteKind::Messages, clean.as_bytes())
            .unwrap()
            .is_allow()
    );
    let dirty = anthropic(tool("Query the database. AKIAZ7Q3JX5K2M4PL6WR"));
    let v = p.inspect(RouteKind::Messages, dirty.as_bytes()).unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)));
}

/// Second review: ids of Responses items (`call_id`, `id`) and ids that are not strings
/// (a list, a long number) are read as identifiers too.
#[test]
fn responses_item_ids_and_ids_that_are_not_strings_are_read() {
    use serde_json::json;
    let p = dets(false);
    for (kind, body) in [
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "AKIAZ7Q3JX5K2M4PL6WR", "output": "x"}]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [{"type": "function_call", "call_id": "c1", "id": "TOPSECRET", "name": "f", "arguments": "{}"}]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [{"type": "item_reference", "id": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"}]}),
        ),
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": ["AKIAZ7Q3JX5K2M4PL6WR"], "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": 4111111111111111u64, "content": "x"}]}]}),
        ),
    ] {
        let v = p.inspect(kind, body.to_string().as_bytes()).unwrap();
        assert_refused(&v, Some("identifier"), &body.to_string());
    }
    let clean = json!({"model": "m", "input": [
        {"type": "function_call", "call_id": "call_abc123", "id": "fc_68a1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_abc123", "output": "ok"}]});
    let v = p
        .inspect(RouteKind::Responses, clean.to_string().as_bytes())
        .unwrap();
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
}

/// Second review: a Responses MCP tool's `headers` and `authorization` are the client's
/// credential for its server (OpenAI's documented pattern), and keys that documentation
/// publishes are samples: neither refuses the definitions. A real key beside them still does.
#[test]
fn mcp_tool_credentials_and_documentation_keys_do_not_refuse_tool_definitions() {
    use serde_json::json;
    let p = Policy::builder()
        .rule(
            Rule::detectors(
                "keys",
                [
                    Detector::GithubToken,
                    Detector::StripeKey,
                    Detector::GoogleApiKey,
                    Detector::AzureStorageKey,
                    Detector::AwsAccessKey,
                ],
            )
            .reject("no"),
        )
        .build()
        .unwrap();
    let responses =
        |tools: serde_json::Value| json!({"model": "m", "input": "hi", "tools": tools}).to_string();
    let mcp = json!([{"type": "mcp", "server_label": "github", "server_url": "https://api.githubcopilot.com/mcp/",
        "headers": {"Authorization": "Bearer ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"},
        "authorization": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"}]);
    let v = p
        .inspect(RouteKind::Responses, responses(mcp).as_bytes())
        .unwrap();
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
    for sample in [
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;",
        "e.g. sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "e.g. ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "e.g. AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "e.g. sk_test_BQokikJOvBiI2HlWgH4olfQ2 or sk_test_26PHem9AhJZvU623DfE1x4sd",
        "e.g. xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
    ] {
        let tools =
            json!([{"type": "function", "name": "f", "description": sample, "parameters": {}}]);
        let v = p
            .inspect(RouteKind::Responses, responses(tools).as_bytes())
            .unwrap();
        assert!(
            v.is_allow() && v.hits().is_empty(),
            "{sample}: {:?}",
            v.hits()
        );
    }
    let tools = json!([{"type": "function", "name": "f", "description": "token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A", "parameters": {}}]);
    let v = p
        .inspect(RouteKind::Responses, responses(tools).as_bytes())
        .unwrap();
    assert_refused(&v, Some("tools"), "a real key in a tool's description");
}

/// Claude Code's own attribution address, in the system reminder every request of it
/// carries, is no one's personal data: an e-mail rule leaves it (third review: the block was
/// removed from every prompt). Any other address there is still found.
#[test]
fn claude_codes_attribution_address_is_not_an_email_hit() {
    use serde_json::json;
    let p = Policy::builder()
        .rule(Rule::detectors("pii", [Detector::Email]).reject("no"))
        .build()
        .unwrap();
    let body = |reminder: &str| {
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": reminder},
            {"type": "text", "text": "hello"}]}]})
        .to_string()
    };
    let v = p
        .inspect(
            RouteKind::Messages,
            body("<system-reminder>\nCo-Authored-By: Claude Opus 5.5 <noreply@anthropic.com>\n</system-reminder>").as_bytes(),
        )
        .unwrap();
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
    let v = p
        .inspect(
            RouteKind::Messages,
            body("<system-reminder>\nCo-Authored-By: Jane <jane.doe@anthropic.com>\n</system-reminder>").as_bytes(),
        )
        .unwrap();
    assert!(!v.hits().is_empty(), "{:?}", v.hits());
}
