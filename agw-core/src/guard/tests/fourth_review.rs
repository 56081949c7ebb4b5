//! The fourth red-team review's request-side gaps, through a whole policy: prompt text an
//! OpenAI-compatible server templates in (`documents`, `chat_template`, `chat_template_kwargs`),
//! cards written as non-integer JSON numbers, matches whose ends sit where two blocks meet,
//! URLs the provider fetches, and vLLM's `structural_tag`.

use super::*;

/// The review's rule: `{name: dets, detectors: [credit_card, email, aws_access_key]}`,
/// rejecting or masking.
fn dets(masks: bool) -> Policy {
    let rule = Rule::detectors(
        "dets",
        [
            Detector::CreditCard,
            Detector::Email,
            Detector::AwsAccessKey,
        ],
    );
    let rule = if masks {
        rule.mask()
    } else {
        rule.reject("no")
    };
    Policy::builder().rule(rule).build().unwrap()
}

fn reject() -> Policy {
    dets(false)
}

fn mask() -> Policy {
    dets(true)
}

/// Refused, or (outside the final prompt) the strings holding the match removed: either way
/// `secret` is not forwarded.
fn assert_stopped(p: &Policy, kind: RouteKind, body: &str, secret: &str) {
    let v = p.inspect(kind, body.as_bytes()).unwrap();
    match v.decision() {
        Decision::Reject(_) => {}
        Decision::Rewrite(out) => {
            let out = std::str::from_utf8(out).unwrap();
            assert!(!out.contains(secret), "{kind:?} {body}: {out}");
        }
        Decision::Allow => panic!("{kind:?} {body}: allowed"),
    }
}

/// The masked body, which must parse as JSON.
fn masked(kind: RouteKind, body: &str) -> String {
    let v = mask().inspect(kind, body.as_bytes()).unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{kind:?} {body}: {v:?}")
    };
    serde_json::from_slice::<serde_json::Value>(out).expect("masked body is JSON");
    String::from_utf8(out.clone()).unwrap()
}

const CARD: &str = "4111 1111 1111 1111";
const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const MAIL: &str = "alice@example.com";

/// `documents`, `chat_template_kwargs` and `chat_template` are put into the prompt by the
/// server's chat template: detectors and masks read them like message text (they were read by
/// literal and regex rules only, like tool definitions).
#[test]
fn templated_prompt_fields_are_read_by_detectors_and_masked_in_place() {
    let msgs = r#""model":"m","messages":[{"role":"user","content":"hello"}]"#;
    let cases: &[(String, &str, &str, &str)] = &[
        (
            format!(r#"{{{msgs},"documents":[{{"title":"t","text":"customer card {CARD}"}}]}}"#),
            CARD,
            "<CREDIT_CARD>",
            "documents[0]",
        ),
        (
            format!(r#"{{{msgs},"documents":["x","customer card {CARD}"]}}"#),
            CARD,
            "<CREDIT_CARD>",
            "documents[1]",
        ),
        (
            format!(r#"{{{msgs},"chat_template_kwargs":{{"ctx":"mail {MAIL} now"}}}}"#),
            MAIL,
            "<EMAIL>",
            "chat_template_kwargs",
        ),
    ];
    // A request's own template is refused outright (see the test below), a key in it too.
    let body = format!(r#"{{{msgs},"chat_template":"{{{{ messages }}}} key {KEY}"}}"#);
    for p in [reject(), mask()] {
        assert!(matches!(
            p.inspect(RouteKind::Completions, body.as_bytes())
                .unwrap()
                .decision(),
            Decision::Reject(_)
        ));
    }
    for (body, secret, placeholder, path) in cases {
        assert_stopped(&reject(), RouteKind::Completions, body, secret);
        let v = mask()
            .inspect(RouteKind::Completions, body.as_bytes())
            .unwrap();
        assert_eq!(v.hits()[0].path, *path, "{body}");
        assert_eq!(
            masked(RouteKind::Completions, body),
            body.replace(secret, placeholder)
        );
    }
    // The literal and regex rules still read them.
    let seed = Policy::builder()
        .rule(Rule::regex("cc", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let body = format!(r#"{{{msgs},"documents":[{{"text":"my credit card"}}]}}"#);
    assert_stopped(&seed, RouteKind::Completions, &body, "credit card");
    // Tool definitions are still left to the literal and regex rules.
    let body = format!(
        r#"{{{msgs},"tools":[{{"type":"function","function":{{"name":"f","description":"mail {MAIL}"}}}}]}}"#
    );
    assert!(
        reject()
            .inspect(RouteKind::Completions, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// A card written as a non-integer JSON number (Python providers print it back as its
/// digits) is read by its integer digits too; a mask replaces the whole number.
#[test]
fn integral_numbers_with_a_fraction_or_exponent_are_read_as_their_digits() {
    for number in [
        "4.111111111111111e15",
        "41111111111111110E-1",
        "4111111111111111.0",
        "4111111111111111e0",
        "4.111111111111111E+15",
        "0.4111111111111111e16",
        "411111111111111100e-2",
        // A double rounds these to the card, and a Python or JavaScript server prints that.
        "4.1111111111111111e15",
        "4111111111111110.9999999",
        "4111111111111111.0000001",
    ] {
        let body = format!(r#"{{"x":{{"card":{number}}}}}"#);
        assert_stopped(&reject(), RouteKind::Passthrough, &body, number);
        assert_eq!(
            masked(RouteKind::Passthrough, &body),
            r#"{"x":{"card":"<CREDIT_CARD>"}}"#,
            "{number}"
        );
        // In a tool's input as well.
        let body = format!(
            r#"{{"messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"Pay","input":{{"card":{number}}}}}]}}]}}"#
        );
        assert_stopped(&reject(), RouteKind::Messages, &body, number);
    }
    // Not whole numbers, or not these digits: not a card.
    for number in [
        "0.4111111111111111",
        "4111111111111111.5",
        "4111111111111111e-1",
        "4.111111111111111e14",
        "1e300",
        "12345678.0",
    ] {
        let body = format!(r#"{{"x":{{"card":{number}}}}}"#);
        let v = reject()
            .inspect(RouteKind::Passthrough, body.as_bytes())
            .unwrap();
        assert!(v.is_allow(), "{number}: {v:?}");
    }
}

fn anthropic_blocks(blocks: &[&str]) -> String {
    let content: Vec<_> = blocks
        .iter()
        .map(|t| serde_json::json!({"type":"text","text":t}))
        .collect();
    serde_json::json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":content}]})
        .to_string()
}

fn chat_parts(blocks: &[&str]) -> String {
    let content: Vec<_> = blocks
        .iter()
        .map(|t| serde_json::json!({"type":"text","text":t}))
        .collect();
    serde_json::json!({"model":"m","messages":[{"role":"user","content":content}]}).to_string()
}

/// Where two blocks meet is a word boundary, for the whole joined text: a match that runs
/// from one block edge over another to a third is found although text is glued on both
/// sides, and masked in each block it spans.
#[test]
fn block_edges_are_word_boundaries_for_matches_spanning_blocks() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["hi", "4111 1111 ", "1111 1111", "thanks"],
            &["hi", "<CREDIT_CARD>", "<CREDIT_CARD>", "thanks"],
        ),
        (
            &["mail alice@exa", "mple.com", "x"],
            &["mail <EMAIL>", "<EMAIL>", "x"],
        ),
        (
            &["key", "AKIAIOSF", "ODNN7EXAMPLE", "now"],
            &["key", "<AWS_ACCESS_KEY>", "<AWS_ACCESS_KEY>", "now"],
        ),
        (
            &["pay", "4111 1111 1111 ", "1111", "ok"],
            &["pay", "<CREDIT_CARD>", "<CREDIT_CARD>", "ok"],
        ),
        // A lone leading space was always a boundary.
        (
            &["hi", "4111 1111 ", "1111 1111", " thanks"],
            &["hi", "<CREDIT_CARD>", "<CREDIT_CARD>", " thanks"],
        ),
    ];
    for (blocks, want) in cases {
        let joined: String = blocks.concat();
        for (kind, body, want_body) in [
            (
                RouteKind::Messages,
                anthropic_blocks(blocks),
                anthropic_blocks(want),
            ),
            (RouteKind::Completions, chat_parts(blocks), chat_parts(want)),
        ] {
            let v = reject().inspect(kind, body.as_bytes()).unwrap();
            assert!(!v.is_allow(), "{kind:?} {joined:?}");
            assert_eq!(masked(kind, &body), want_body, "{kind:?} {joined:?}");
        }
    }
    // Glued text inside one block still has no boundary, and a word joined from two blocks
    // is no whole word in either.
    for blocks in [
        &["card4111 1111 ", "1111 1111"][..],
        &["x", "4111 1111 1111 11112"],
        &["4111 1111 1111 11", "11thanks"],
    ] {
        let body = anthropic_blocks(blocks);
        let v = reject()
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert!(v.is_allow(), "{blocks:?}: {v:?}");
    }
}

/// URLs the provider (or a vLLM server) fetches are text that leaves: read by every rule,
/// unless they are `data:` URLs (base64). An MCP server's authorization token is the client's
/// own credential for it and is not read by detectors.
#[test]
fn fetched_urls_and_mcp_servers_are_read() {
    let url = format!("https://files.example/{KEY}/a.png");
    let cases: &[(RouteKind, String, &str)] = &[
        (
            RouteKind::Messages,
            format!(
                r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"{url}","name":"n","authorization_token":"tok"}}]}}"#
            ),
            "mcp_servers[0].url",
        ),
        (
            RouteKind::Messages,
            format!(
                r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"https://mcp.example","name":"{MAIL}"}}]}}"#
            ),
            "mcp_servers[0].name",
        ),
        (
            RouteKind::Responses,
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_text","text":"see"}},{{"type":"input_image","image_url":"{url}"}}]}}]}}"#
            ),
            "input[0].content[1].image_url",
        ),
        (
            RouteKind::Responses,
            format!(
                r#"{{"model":"m","input":[{{"type":"computer_call_output","call_id":"c","output":{{"type":"computer_screenshot","image_url":"{url}"}}}}]}}"#
            ),
            "input[0].output.image_url",
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}","detail":"auto"}}}},{{"type":"text","text":"hi"}}]}}]}}"#
            ),
            "messages[0].content[0].image_url.url",
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"audio_url","audio_url":{{"url":"{url}"}}}},{{"type":"text","text":"hi"}}]}}]}}"#
            ),
            "messages[0].content[0].audio_url.url",
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"video_url","video_url":{{"url":"{url}"}}}},{{"type":"text","text":"hi"}}]}}]}}"#
            ),
            "messages[0].content[0].video_url.url",
        ),
    ];
    for (kind, body, path) in cases {
        let secret = if body.contains(MAIL) { MAIL } else { KEY };
        let v = reject().inspect(*kind, body.as_bytes()).unwrap();
        assert!(!v.is_allow(), "{kind:?} {body}");
        let v = mask().inspect(*kind, body.as_bytes()).unwrap();
        assert_eq!(v.hits()[0].path, *path, "{body}");
        let placeholder = if secret == MAIL {
            "<EMAIL>"
        } else {
            "<AWS_ACCESS_KEY>"
        };
        assert_eq!(masked(*kind, body), body.replace(secret, placeholder));
    }
    // Literal rules read them too.
    let seed = Policy::builder()
        .rule(Rule::literals("s", ["SECRET"]).reject("no"))
        .build()
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x.example/SECRET"}}]}]}"#;
    assert!(
        !seed
            .inspect(RouteKind::Completions, body.as_bytes())
            .unwrap()
            .is_allow()
    );
    // Not read: `data:` URLs, and an MCP server's authorization token.
    let not_read = [
        (
            RouteKind::Messages,
            format!(
                r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"https://mcp.example/sse","name":"n","authorization_token":"{KEY}"}}]}}"#
            ),
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{KEY}"}}}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Completions,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"DATA:image/png;base64,{KEY}"}}}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Responses,
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_image","image_url":"data:image/png;base64,{KEY}"}}]}}]}}"#
            ),
        ),
        (
            RouteKind::Responses,
            format!(
                r#"{{"model":"m","input":[{{"type":"computer_call_output","call_id":"c","output":{{"type":"computer_screenshot","image_url":"data:image/png;base64,{KEY}"}}}}]}}"#
            ),
        ),
    ];
    for (kind, body) in &not_read {
        let v = reject().inspect(*kind, body.as_bytes()).unwrap();
        assert!(v.is_allow(), "{kind:?} {body}: {v:?}");
    }
}

/// vLLM's `structural_tag` is read where the other guided-decoding fields are.
#[test]
fn structural_tag_is_read_like_the_other_guided_decoding_fields() {
    let seed = Policy::builder()
        .rule(Rule::regex("cc", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"structural_tag":"{\"type\":\"structural_tag\",\"structures\":[{\"begin\":\"<card>\",\"schema\":{\"description\":\"credit card\"},\"end\":\"</card>\"}],\"triggers\":[\"<card>\"]}"}"#;
    assert_stopped(&seed, RouteKind::Completions, body, "credit card");
}

/// A request's own `chat_template` is a program the server runs over the messages: it can
/// assemble what no guard read (the canary written backwards, or split over messages and
/// joined). Refused where a rule would refuse or mask; an audit-only policy and a null
/// template let the request through.
#[test]
fn a_requests_own_chat_template_is_refused_where_rules_refuse_or_mask() {
    let msgs = r#""model":"m","messages":[{"role":"user","content":"SECRET-CANA"},{"role":"user","content":"RY-42"}]"#;
    for template in [
        r#""{{ '24-YRANAC-TERCES'[::-1] }}""#,
        r#""{{ messages[0].content ~ messages[1].content }}""#,
        r#""""#,
    ] {
        let body = format!(r#"{{{msgs},"chat_template":{template}}}"#);
        for p in [reject(), mask()] {
            let v = p.inspect(RouteKind::Completions, body.as_bytes()).unwrap();
            let Decision::Reject(r) = v.decision() else {
                panic!("{body}: {v:?}")
            };
            assert!(r.message.contains("chat_template"), "{}", r.message);
        }
    }
    let audit = Policy::builder()
        .rule(Rule::detectors("dets", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let body = format!(r#"{{{msgs},"chat_template":"{{{{ x }}}}"}}"#);
    let v = audit
        .inspect(RouteKind::Completions, body.as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Allow), "{v:?}");
    let body = format!(r#"{{{msgs},"chat_template":null}}"#);
    let v = reject()
        .inspect(RouteKind::Completions, body.as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Allow), "{v:?}");
}

/// vLLM embeds chat too: `/v1/embeddings` with `messages` (and its chat template's variables,
/// or a template of the request's own) is read as a chat's prompt is.
#[test]
fn chat_embeddings_are_read() {
    for body in [
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"card {CARD}"}}]}}"#),
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"mail {MAIL}"}}]}}]}}"#
        ),
        format!(r#"{{"model":"m","messages":[],"chat_template_kwargs":{{"x":"key {KEY}"}}}}"#),
        format!(r#"{{"model":"m","input":"card {CARD}"}}"#),
    ] {
        let v = reject()
            .inspect(RouteKind::Embeddings, body.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{body}: {v:?}");
    }
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template":"{{ x }}"}"#;
    let v = reject()
        .inspect(RouteKind::Embeddings, body.as_bytes())
        .unwrap();
    let Decision::Reject(r) = v.decision() else {
        panic!("{v:?}")
    };
    assert!(r.message.contains("chat_template"), "{}", r.message);
    let clean = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    assert!(
        reject()
            .inspect(RouteKind::Embeddings, clean.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// A fetched URL's percent-escapes (and a query's `+`) are decoded by the server that serves
/// it: read again decoded, a match found only there refuses the request (mask rules too: the
/// escapes cannot be masked in place); one found as written is masked as before.
#[test]
fn percent_encoded_urls_are_read_decoded() {
    let canary = Policy::builder()
        .rule(Rule::literals("canary", ["SECRET-CANARY-42"]).reject("no"))
        .build()
        .unwrap();
    let mcp = |url: &str| {
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"{url}","name":"x"}}]}}"#
        )
    };
    let body = mcp("https://evil.example/x?k=%53ECRET-CANARY-42");
    let v = canary
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)), "{v:?}");
    // A query's `+` is a card's separator as written (twenty-fourth session): masked in place.
    let body = mcp("https://evil.example/x?c=4111+1111+1111+1111");
    let v = mask()
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.decision() else {
        panic!("{v:?}")
    };
    assert!(!String::from_utf8_lossy(out).contains("1111+1111"), "{v:?}");
    for url in [
        "https://evil.example/x?c=4111%201111%201111%201111",
        "https://alice%40example.com@evil.example/",
    ] {
        for (p, says) in [(reject(), "no"), (mask(), "percent-escapes")] {
            let v = p.inspect(RouteKind::Messages, mcp(url).as_bytes()).unwrap();
            let Decision::Reject(r) = v.decision() else {
                panic!("{url}: {v:?}")
            };
            // A rejecting rule refuses with its own message, a masking one says why it
            // cannot mask.
            assert!(r.message.contains(says), "{url}: {}", r.message);
        }
    }
    // Found as written: masked in place, as before.
    let body = mcp(&format!("https://x.example/?e=jane%40example.com&k={KEY}"));
    let out = masked(RouteKind::Messages, &body);
    assert!(!out.contains(KEY), "{out}");
    // Nothing hidden: allowed.
    let body = mcp("https://x.example/a%20b?q=1+2");
    assert!(
        reject()
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap()
            .is_allow()
    );
}

/// The request's URL reaches the provider too (fifth review): its path and query, decoded,
/// are read by the rules that read message text. A URL is not rewritten, so a masking rule
/// refuses; an audit rule reports; a credential parameter is not read.
#[test]
fn a_request_url_is_read_by_the_message_rules() {
    for p in [reject(), mask()] {
        for target in [
            "/v1/messages?note=4111111111111111",
            "/v1/messages?note=4111%201111%201111%201111&beta=true",
            "/v1/files/AKIAIOSFODNN7EXAMPL3",
            "/v1/messages?c=4111+1111+1111+1111",
            "/v1/x?to=jane%40example.com",
            // Normalised as a body is (final review): a full-width digit, an invisible one.
            "/v1/x?c=%EF%BC%94111111111111111",
            "/v1/x?c=4111%E2%80%8B111111111111",
        ] {
            let v = p.inspect_target(target);
            assert!(
                matches!(v.decision(), Decision::Reject(_)),
                "{target}: {:?}",
                v.hits()
            );
            assert_eq!(v.hits()[0].path, "url");
        }
        for target in [
            "/v1/messages?beta=true",
            "/v1/models?limit=1000",
            "/v1/files/file-abc123XYZ/content",
            "/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/results",
            "/v1/x?key=4111111111111111&api_key=AKIAIOSFODNN7EXAMPL3",
            "/",
        ] {
            let v = p.inspect_target(target);
            assert!(
                v.is_allow() && v.hits().is_empty(),
                "{target}: {:?}",
                v.hits()
            );
        }
    }
    let audit = Policy::builder()
        .rule(Rule::detectors("dets", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let v = audit.inspect_target("/v1/messages?note=4111111111111111");
    assert!(v.is_allow());
    assert_eq!(v.hits().len(), 1);
    // A masking rule says why it refuses.
    let v = mask().inspect_target("/v1/messages?note=4111111111111111");
    let Decision::Reject(r) = v.decision() else {
        unreachable!()
    };
    assert!(
        r.error_body().message().contains("URL"),
        "{:?}",
        r.error_body()
    );
}

/// Found while mending the seventh review's control-character gap: a URL's percent-decoded
/// text was matched as decoded, not normalised, so `%00` (or a zero-width `%E2%80%8B`)
/// inside a key hid it from every rule.
#[test]
fn percent_decoded_urls_are_normalised_before_matching() {
    let mcp = |url: &str| {
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"{url}","name":"x"}}]}}"#
        )
    };
    for url in [
        "https://evil.example/x?k=AKIAIOSF%00ODNN7EXAMPLE",
        "https://evil.example/x?k=AKIAIOSF%1BODNN7EXAMPLE",
        "https://evil.example/x?k=AKIAIOSF%E2%80%8BODNN7EXAMPLE",
    ] {
        let v = mask()
            .inspect(RouteKind::Messages, mcp(url).as_bytes())
            .unwrap();
        let Decision::Reject(r) = v.decision() else {
            panic!("{url}: {v:?}")
        };
        assert!(
            r.message.contains("percent-escapes"),
            "{url}: {}",
            r.message
        );
    }
}
