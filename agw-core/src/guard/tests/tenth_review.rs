//! The tenth red-team review's request-side gaps: URLs the provider fetches that were read as
//! written only (an Anthropic image's or document's `source.url`, a Responses `input_file`'s
//! `file_url`, a stored prompt's variables), and a Responses MCP tool's `server_url`, which
//! only the rules that read tool definitions read.

use super::seventh_review::dets;
use super::*;

/// The review's configurations: the seed's rule, and detectors rejecting or masking.
fn seed() -> Policy {
    Policy::builder()
        .rule(Rule::regex("seed", ["credit card"]).reject("Rejected due to inappropriate content"))
        .build()
        .unwrap()
}

fn anthropic(block: &str) -> String {
    format!(
        r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":[{block},{{"type":"text","text":"what is this?"}}]}}]}}"#
    )
}

fn refused(p: &Policy, kind: RouteKind, body: &str) -> bool {
    matches!(
        p.inspect(kind, body.as_bytes()).unwrap().decision(),
        Decision::Reject(_)
    )
}

fn allowed(p: &Policy, kind: RouteKind, body: &str) -> bool {
    p.inspect(kind, body.as_bytes()).unwrap().is_allow()
}

/// Refused, or (a masking policy only) forwarded with `secret` masked.
fn stopped(p: &Policy, masks: bool, kind: RouteKind, body: &str, secret: &str) {
    let v = p.inspect(kind, body.as_bytes()).unwrap();
    match v.decision() {
        Decision::Reject(_) => {}
        Decision::Rewrite(out) => {
            assert!(masks, "{body}: {v:?}");
            let out = String::from_utf8_lossy(out);
            assert!(!out.contains(secret), "{out}");
        }
        other => panic!("{body}: {other:?}"),
    }
}

/// Every URL the provider fetches is read again percent-decoded, wherever it sits: an image's
/// or a document's source (also when `type` comes after `source`), a Responses file, a stored
/// prompt's image variable. A match found only decoded refuses, for reject and mask rules.
#[test]
fn every_fetched_url_is_read_decoded() {
    let images = |url: &str| {
        [
            anthropic(&format!(
                r#"{{"type":"image","source":{{"type":"url","url":"{url}"}}}}"#
            )),
            anthropic(&format!(
                r#"{{"source":{{"type":"url","url":"{url}"}},"type":"image"}}"#
            )),
            anthropic(&format!(
                r#"{{"type":"document","source":{{"type":"url","url":"{url}"}}}}"#
            )),
            anthropic(&format!(
                r#"{{"source":{{"url":"{url}","type":"url"}},"type":"document"}}"#
            )),
        ]
    };
    let responses = |url: &str| {
        [
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"type":"input_file","file_url":"{url}"}},{{"type":"input_text","text":"hi"}}]}}]}}"#
            ),
            format!(
                r#"{{"model":"m","input":[{{"role":"user","content":[{{"file_url":"{url}","type":"input_file"}},{{"type":"input_text","text":"hi"}}]}}]}}"#
            ),
            format!(
                r#"{{"model":"m","prompt":{{"id":"p","variables":{{"pic":{{"type":"input_image","image_url":"{url}"}}}}}},"input":"hi"}}"#
            ),
        ]
    };
    for url in [
        "https://example.com/i.png?q=credit%20card",
        "https://example.com/i.png?q=credit+card",
        "https://example.com/i.png?q=%63redit%20card",
    ] {
        for body in images(url) {
            assert!(refused(&seed(), RouteKind::Messages, &body), "{body}");
            assert!(refused(&seed(), RouteKind::CountTokens, &body), "{body}");
        }
        for body in responses(url) {
            assert!(refused(&seed(), RouteKind::Responses, &body), "{body}");
        }
    }
    for url in [
        "https://example.com/i.png?c=4111%201111%201111%201111",
        "https://example.com/i.png?k=%41KIAIOSFODNN7EXAMPL3",
    ] {
        for masks in [false, true] {
            for body in images(url) {
                assert!(refused(&dets(masks), RouteKind::Messages, &body), "{body}");
            }
            for body in responses(url) {
                assert!(refused(&dets(masks), RouteKind::Responses, &body), "{body}");
            }
        }
    }
    // A Responses file given inline as a `data:` URL is read decoded whichever key comes
    // first (with `type` after it, the file went unread).
    for part in [
        r#"{"type":"input_file","file_url":"data:text/plain;base64,bXkgY3JlZGl0IGNhcmQ="}"#,
        r#"{"file_url":"data:text/plain;base64,bXkgY3JlZGl0IGNhcmQ=","type":"input_file"}"#,
    ] {
        let body = format!(
            r#"{{"model":"m","input":[{{"role":"user","content":[{part},{{"type":"input_text","text":"hi"}}]}}]}}"#
        );
        assert!(refused(&seed(), RouteKind::Responses, &body), "{body}");
    }
    // A passthrough body and a field agw has no reading for are read generically: a URL in
    // them is read decoded too.
    for (kind, body) in [
        (
            RouteKind::Passthrough,
            r#"{"model":"m","image":{"url":"https://x.example/?k=%41KIAIOSFODNN7EXAMPL3"}}"#,
        ),
        (
            RouteKind::Messages,
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"extra":{"url":"https://x.example/?k=%41KIAIOSFODNN7EXAMPL3"}}"#,
        ),
    ] {
        assert!(refused(&dets(false), kind, body), "{body}");
    }
    // Nothing hidden behind the escapes: allowed as before.
    for body in images("https://example.com/a%20b.png?q=1+2") {
        assert!(allowed(&seed(), RouteKind::Messages, &body));
        assert!(allowed(&dets(true), RouteKind::Messages, &body));
    }
    for body in responses("https://example.com/a%20b.pdf?q=1+2") {
        assert!(allowed(&seed(), RouteKind::Responses, &body));
    }
}

/// A Responses MCP tool's `server_url` is where the provider connects: read by every rule, as
/// Anthropic's `mcp_servers[].url` is, decoded too — not only by the rules that read tool
/// definitions. Definitions with such a hit are not remembered clean.
#[test]
fn a_responses_mcp_server_url_is_read_by_every_rule() {
    let body = |url: &str| {
        format!(
            r#"{{"model":"m","tools":[{{"type":"mcp","server_label":"s","server_url":"{url}","require_approval":"never"}}],"input":"hi"}}"#
        )
    };
    for masks in [false, true] {
        for url in [
            "https://mcp.example.com/sse?k=AKIAIOSFODNN7EXAMPL3",
            "https://mcp.example.com/sse?k=%41KIAIOSFODNN7EXAMPL3",
        ] {
            let p = dets(masks);
            let b = body(url);
            // Twice: a hit is never remembered as clean definitions.
            for _ in 0..2 {
                stopped(&p, masks, RouteKind::Responses, &b, "AKIAIOSFODNN7EXAMPL3");
            }
        }
    }
    // Rules scoped to the latest text read it too, as they read `mcp_servers[].url`.
    let latest = Policy::builder()
        .rule(
            Rule::detectors("dets", [Detector::AwsAccessKey])
                .scope(crate::guard::Scope::Latest)
                .reject("no"),
        )
        .build()
        .unwrap();
    let b = body("https://mcp.example.com/sse?k=AKIAIOSFODNN7EXAMPL3");
    assert!(refused(&latest, RouteKind::Responses, &b), "{b}");
    // A detector still does not read the definitions' own text (schemas, descriptions).
    let b = r#"{"model":"m","tools":[{"type":"function","name":"f","description":"card 4111 1111 1111 1111","parameters":{}}],"input":"hi"}"#;
    assert!(allowed(&dets(false), RouteKind::Responses, b));
    let b = body("https://mcp.example.com/sse?v=1+2");
    assert!(allowed(&dets(false), RouteKind::Responses, &b));
}

/// A batch request's `custom_id` is stored by the provider with its results: read as an
/// identifier (refused on a match, never rewritten: the client matches results by it); any
/// other field beside `params` is read as text. An MCP server's `tool_configuration` is read
/// too; its `authorization_token` (the client's own credential for its server) is not.
#[test]
fn batch_custom_ids_and_mcp_server_settings_are_read() {
    let batch = |custom_id: &str, extra: &str| {
        format!(
            r#"{{"requests":[{{"custom_id":"{custom_id}",{extra}"params":{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}]}}}}]}}"#
        )
    };
    for masks in [false, true] {
        let body = batch("4111111111111111", "");
        assert!(
            refused(&dets(masks), RouteKind::MessageBatches, &body),
            "{body}"
        );
        let body = batch("req-1", r#""note":"AKIAIOSFODNN7EXAMPL3","#);
        stopped(
            &dets(masks),
            masks,
            RouteKind::MessageBatches,
            &body,
            "AKIAIOSFODNN7EXAMPL3",
        );
    }
    let body = batch("req-1", "");
    assert!(allowed(&dets(false), RouteKind::MessageBatches, &body));

    let mcp = |config: &str| {
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"mcp_servers":[{{"type":"url","url":"https://mcp.example.com/","name":"x",{config}}}]}}"#
        )
    };
    let body = mcp(r#""tool_configuration":{"enabled":true,"allowed_tools":["credit card"]}"#);
    assert!(refused(&seed(), RouteKind::Messages, &body), "{body}");
    let body = mcp(r#""authorization_token":"AKIAIOSFODNN7EXAMPL3""#);
    assert!(allowed(&dets(false), RouteKind::Messages, &body));
}

/// The verdict names the completions a request asks for, whether it asks for a stream, and
/// its cap in any form a lenient server reads, as `usage::request_shape` does (the limiter
/// holds their product without reading the body again).
#[test]
fn the_verdict_names_choices_and_caps_as_the_usage_readers_do() {
    for (kind, body) in [
        (
            RouteKind::Completions,
            r#"{"model":"m","n":8,"max_tokens":"16000","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            RouteKind::LegacyCompletions,
            r#"{"model":"m","prompt":"hi","best_of":8,"n":2,"max_tokens":1.6e4}"#,
        ),
        (
            RouteKind::Responses,
            r#"{"model":"m","input":"hi","n":8,"max_output_tokens":16000}"#,
        ),
    ] {
        let v = seed().inspect(kind, body.as_bytes()).unwrap();
        let want = crate::usage::RequestShape {
            max_tokens: Some(16000),
            choices: 8,
            stream: false,
        };
        assert_eq!(v.shape(), want, "{body}");
        assert_eq!(crate::usage::request_shape(body.as_bytes()), want, "{body}");
        let streamed = body.replacen('{', r#"{"stream":true,"#, 1);
        let v = seed().inspect(kind, streamed.as_bytes()).unwrap();
        let want = crate::usage::RequestShape {
            stream: true,
            ..want
        };
        assert_eq!(v.shape(), want, "{streamed}");
        assert_eq!(crate::usage::request_shape(streamed.as_bytes()), want);
    }
    let v = seed()
        .inspect(
            RouteKind::Messages,
            anthropic(r#"{"type":"text","text":"x"}"#).as_bytes(),
        )
        .unwrap();
    assert_eq!((v.shape().choices, v.shape().max_tokens), (1, Some(5)));
}

/// A query parameter a server reads apart at `;` is read apart: a credential part beside it
/// (never read) does not hide a card in the other part.
#[test]
fn a_query_part_beside_a_credential_is_read() {
    for target in [
        "/v1/messages?note=4111111111111111;key=x",
        "/v1/messages?key=x;note=4111111111111111",
        "/v1/messages?sig=1&note=4111%201111%201111%201111;code=2",
    ] {
        let v = dets(false).inspect_target(target);
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{target}: {v:?}"
        );
    }
    let v = dets(false).inspect_target("/v1/messages?beta=true;key=4111111111111111");
    assert!(v.is_allow(), "a key is the client's own: {v:?}");
    // The names added to what agw drops when it injects its key (`code`, `sig`, `session`)
    // may hold anything: the URL rules still read them.
    for target in [
        "/v1/messages?code=4111111111111111",
        "/v1/messages?session=4111111111111111",
    ] {
        let v = dets(false).inspect_target(target);
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{target}: {v:?}"
        );
    }
}

/// A response that names a key twice cannot be read for certain and is refused, but the
/// error reaches the client: it must not name the key, which the model chose (a secret the
/// response rules would mask went back in the refusal's message).
#[test]
fn a_duplicate_key_refusal_does_not_repeat_the_key() {
    let body = r#"{"type":"message","role":"assistant","content":[{"type":"tool_use","id":"t","name":"x","input":{"AKIAIOSFODNN7EXAMPL3":1,"AKIAIOSFODNN7EXAMPL3":2}}]}"#;
    let e = dets(true)
        .inspect_response(crate::api::Api::Anthropic, body.as_bytes())
        .unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains("named twice") && !said.contains("AKIA"),
        "{said}"
    );
    let e = crate::json::unique_keys(br#"{"sk-secret":1,"sk-secret":2}"#).unwrap_err();
    assert!(!e.to_string().contains("sk-secret"), "{e}");
}
