//! The real clients end to end: Claude Code and the official Python SDKs, through the real
//! `agw` binary, against the mock provider on 127.0.0.1.
//!
//! The clients are installed on first use into the git-ignored `.cache` at the workspace root
//! (pinned versions, see `clients/install.rs`); a machine without Node.js >= 20 with npm, or
//! without Python 3 with venv, fails these tests with one line saying what to install.
//!
//! Each case checks what the client printed and what the provider received. Where agw must
//! forward a request untouched, the same client run goes once straight to the mock and once
//! through agw, and the two requests must be identical (bodies byte for byte). What differs
//! between two otherwise identical Claude Code runs is pinned rather than normalised: the
//! device id (seeded into `.claude.json`), the session id (`--session-id`) and the config
//! folder's path (the system prompt names it; every run of a test reuses the same path). Only
//! the date in "Today's date is …" is normalised, for runs that straddle midnight.

#[path = "clients/harness.rs"]
mod harness;
#[path = "clients/install.rs"]
mod install;

use agw_mock::{MockProvider, Recorded};
use harness::{Agw, AgwOptions, Claude, Credential, Interactive, Run, Scratch, python};
use http::HeaderMap;
use install::tools;
use serde_json::Value;
use std::path::Path;

const REPLY: &str = "Hello from the mock provider.";
const REJECTED: &str = "Rejected due to inappropriate content";
/// The seed's reject rule answers 400 with this, and Claude Code shows it so.
const CLAUDE_REJECTED: &str = "API Error: 400 Rejected due to inappropriate content";

fn fixture(name: &str) -> &'static Path {
    let path = match name {
        "any-model" => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/seed/manifests-guard-any-model.yaml"
        ),
        "pinned" => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/seed/manifests-guard-pinned.yaml"
        ),
        "mask" => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/mask-secrets.yaml"
        ),
        "tool-policy" => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/tool-policy.yaml"
        ),
        "tool-policy-control" => concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/tool-policy-control.yaml"
        ),
        _ => unreachable!("no fixture {name}"),
    };
    Path::new(path)
}

/// The one request the mock received (and forgets it).
fn only_request(mock: &MockProvider) -> Recorded {
    let mut got = all_requests(mock);
    assert_eq!(got.len(), 1, "expected one request, got {:?}", uris(&got));
    got.remove(0)
}

/// Every request the mock received (and forgets them).
fn all_requests(mock: &MockProvider) -> Vec<Recorded> {
    let got = mock.requests();
    mock.clear();
    got
}

fn uris(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn assert_nothing_received(mock: &MockProvider, run: &Run) {
    assert!(
        mock.requests().is_empty(),
        "the provider received {:?}\n{run}",
        uris(&mock.requests())
    );
}

fn assert_rejected(run: &Run) {
    assert!(
        run.failed() && run.stdout.contains(CLAUDE_REJECTED),
        "{run}"
    );
}

/// The date in Claude Code's system prompt, the one part of a request body that can differ
/// between two runs a second apart (at midnight).
fn normalise_date(body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    let marker = b"Today's date is ";
    let mut from = 0;
    while let Some(at) = body[from..].windows(marker.len()).position(|w| w == marker) {
        let start = from + at + marker.len();
        let end = (start + "YYYY-MM-DD".len()).min(body.len());
        body.splice(start..end, *b"YYYY-MM-DD");
        from = start;
    }
    body
}

/// Fails with the first difference and some context around it.
fn assert_same_bytes(expected: &[u8], got: &[u8], what: &str) {
    if expected == got {
        return;
    }
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(200)..(at + 200).min(b.len())]).into_owned()
    };
    panic!(
        "{what}: {} bytes expected, {} received, first difference at byte {at}\n--- expected\n{}\n--- received\n{}",
        expected.len(),
        got.len(),
        show(expected),
        show(got)
    );
}

/// Every header of `expected` arrived with its value, and nothing else did but agw's request
/// id; `connection` is hop-by-hop and `content-length` is checked against the body instead.
fn assert_same_headers(expected: &HeaderMap, got: &Recorded) {
    let skip = |name: &http::HeaderName| {
        name == "connection" || name == "content-length" || name == "x-request-id"
    };
    assert!(
        !expected.contains_key("x-request-id"),
        "the client sent no request id"
    );
    assert!(
        got.headers
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty()),
        "agw forwards its request id"
    );
    let pairs = |h: &HeaderMap| {
        let mut v: Vec<(String, String)> = h
            .iter()
            .filter(|(n, _)| !skip(n))
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(pairs(expected), pairs(&got.headers), "headers");
    let length = got
        .headers
        .get("content-length")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(length, Some(got.body.len().to_string()), "content-length");
}

/// `got` is `reference` as agw must forward it: same path and query, same headers, same body.
fn assert_same_request(reference: &Recorded, got: &Recorded) {
    assert_eq!(got.method, reference.method);
    assert_eq!(got.uri, reference.uri);
    assert_same_headers(&reference.headers, got);
    assert_same_bytes(
        &normalise_date(&reference.body),
        &normalise_date(&got.body),
        "body",
    );
}

fn header<'a>(request: &'a Recorded, name: &str) -> Option<&'a str> {
    request.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Case 1: a plain prompt through the built-in default arrives exactly as Claude Code sent it,
/// with the experimental betas on (Claude Code's default).
#[tokio::test(flavor = "multi_thread")]
async fn claude_hello_through_the_default_arrives_untouched() {
    let tools = tools().await;
    let scratch = Scratch::new("hello");
    let mock = MockProvider::start().await.unwrap();
    let claude =
        |url: &str| Claude::new(tools, &scratch, url, "Say hello").with_experimental_betas();

    let direct = claude(&mock.base_url()).run().await;
    assert_eq!(direct.expect_success().stdout.trim(), REPLY, "{direct}");
    let reference = only_request(&mock);

    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = claude(&agw.url).run().await;
    assert_eq!(run.expect_success().stdout.trim(), REPLY, "{run}");
    let got = only_request(&mock);
    assert_eq!(got.uri, "/v1/messages?beta=true");
    let beta = header(&got, "anthropic-beta").unwrap_or_default();
    assert!(
        beta.starts_with("claude-code-20250219,"),
        "anthropic-beta: {beta}"
    );
    assert_eq!(header(&got, "x-api-key"), Some("sk-client"), "passthrough");
    assert_same_request(&reference, &got);
    agw.stop().await;
}

/// Case 2: a rejected prompt. With the experimental betas on, Claude Code answers a plain 400
/// by sending the turn again with fewer betas, six requests in all (2.1.332): the direct run
/// against a mock told to answer 400 shows them. agw's refusal says it is a data-loss-prevention
/// denial (`details.error_code: dlp_request_denied`), which Claude Code takes as terminal for
/// that request body: through agw the prompt is sent once, and refused once.
#[tokio::test(flavor = "multi_thread")]
async fn claude_sends_a_refused_prompt_once() {
    let tools = tools().await;
    let scratch = Scratch::new("credit-card");
    let mock = MockProvider::start().await.unwrap();
    let prompt = "mock:status=400 What is a credit card";
    let claude = |url: &str| Claude::new(tools, &scratch, url, prompt).with_experimental_betas();

    let direct = claude(&mock.base_url()).run().await;
    assert!(
        direct.failed() && direct.stdout.contains("API Error: 400 mock error 400"),
        "{direct}"
    );
    let attempts = all_requests(&mock);
    assert_eq!(
        attempts.len(),
        6,
        "Claude Code's fallbacks on a 400: {:?}",
        uris(&attempts)
    );

    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        access_log: true,
        ..Default::default()
    })
    .await;
    let run = claude(&agw.url).run().await;
    assert_rejected(&run);
    assert_nothing_received(&mock, &run);
    let log = agw.stop().await;
    let rejections = log
        .lines()
        .filter(|l| {
            l.contains("path=/v1/messages ")
                && l.contains("status=400")
                && l.contains("guard=reject")
        })
        .count();
    assert_eq!(rejections, 1, "agw's access log:\n{log}");
}

/// Case 6: `--output-format json` reports the rejection as an API error.
#[tokio::test(flavor = "multi_thread")]
async fn claude_json_output_reports_the_rejection() {
    let tools = tools().await;
    let scratch = Scratch::new("json");
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = Claude::new(tools, &scratch, &agw.url, "What is a credit card")
        .args(["--output-format", "json"])
        .run()
        .await;
    assert!(run.failed(), "{run}");
    let result = run.json();
    assert_eq!(result["is_error"], true, "{run}");
    assert_eq!(result["api_error_status"], 400, "{run}");
    assert_eq!(result["result"], CLAUDE_REJECTED, "{run}");
    assert_nothing_received(&mock, &run);
    agw.stop().await;
}

/// Case 3: the seed's manifests as the config, with agw's own key injected from the
/// Secret's `$ANTHROPIC_API_KEY`.
#[tokio::test(flavor = "multi_thread")]
async fn claude_through_the_seed_manifests_any_model() {
    let tools = tools().await;
    let scratch = Scratch::new("manifests-any");
    let mock = MockProvider::start().await.unwrap();

    let direct = Claude::new(tools, &scratch, &mock.base_url(), "Say hello")
        .run()
        .await;
    direct.expect_success();
    let reference = only_request(&mock);

    let agw = Agw::start(AgwOptions {
        config: Some(fixture("any-model")),
        base_url: Some(&mock.base_url()),
        api_key: Some("sk-ant-seed"),
        ..Default::default()
    })
    .await;
    let run = Claude::new(tools, &scratch, &agw.url, "What is a credit card")
        .run()
        .await;
    assert_rejected(&run);
    assert_nothing_received(&mock, &run);

    let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
        .run()
        .await;
    assert_eq!(run.expect_success().stdout.trim(), REPLY, "{run}");
    let got = only_request(&mock);
    let mut expected = reference.headers.clone();
    expected.insert("x-api-key", "sk-ant-seed".parse().unwrap());
    // With its own key injected, agw asks for responses uncompressed: an error body that
    // echoes the key is only found so (twelfth session).
    expected.remove("accept-encoding");
    assert_same_headers(&expected, &got);
    assert_same_bytes(
        &normalise_date(&reference.body),
        &normalise_date(&got.body),
        "body",
    );
    agw.stop().await;
}

/// Case 3, pinned: the request that passes reaches the provider with the pinned model and is
/// otherwise untouched; without `ANTHROPIC_API_KEY` the client's key passes through.
#[tokio::test(flavor = "multi_thread")]
async fn claude_through_the_seed_manifests_pinned() {
    let tools = tools().await;
    let scratch = Scratch::new("manifests-pinned");
    let mock = MockProvider::start().await.unwrap();

    let direct = Claude::new(tools, &scratch, &mock.base_url(), "Say hello")
        .run()
        .await;
    direct.expect_success();
    let reference = only_request(&mock);
    let asked = reference.json().unwrap()["model"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(asked, "claude-opus-4-6", "the pin must change something");

    let agw = Agw::start(AgwOptions {
        config: Some(fixture("pinned")),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = Claude::new(tools, &scratch, &agw.url, "What is a credit card")
        .run()
        .await;
    assert_rejected(&run);
    assert_nothing_received(&mock, &run);

    let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
        .run()
        .await;
    assert_eq!(run.expect_success().stdout.trim(), REPLY, "{run}");
    let got = only_request(&mock);
    assert_eq!(got.json().unwrap()["model"], "claude-opus-4-6");
    assert_eq!(header(&got, "x-api-key"), Some("sk-client"));
    let from = format!("\"model\":\"{asked}\"");
    let expected = String::from_utf8(reference.body.to_vec())
        .unwrap()
        .replacen(&from, "\"model\":\"claude-opus-4-6\"", 1);
    assert_same_headers(&reference.headers, &got);
    assert_same_bytes(
        &normalise_date(expected.as_bytes()),
        &normalise_date(&got.body),
        "body",
    );
    agw.stop().await;
}

/// Case 4, inject: agw has its own key; the provider sees only that, whichever way the client
/// sent its credential.
#[tokio::test(flavor = "multi_thread")]
async fn claude_credentials_are_replaced_when_agw_has_a_key() {
    let tools = tools().await;
    let scratch = Scratch::new("inject");
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        api_key: Some("sk-ant-gateway"),
        ..Default::default()
    })
    .await;
    let secrets = ["sk-ant-client-key", "client-oauth-token"];
    for credential in [
        Credential::ApiKey(secrets[0]),
        Credential::AuthToken(secrets[1]),
    ] {
        let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
            .credential(credential)
            .run()
            .await;
        assert_eq!(run.expect_success().stdout.trim(), REPLY, "{run}");
        let got = only_request(&mock);
        assert_eq!(
            header(&got, "x-api-key"),
            Some("sk-ant-gateway"),
            "{credential:?}"
        );
        assert_eq!(header(&got, "authorization"), None, "{credential:?}");
        let everything = format!("{:?}{}", got.headers, String::from_utf8_lossy(&got.body));
        for secret in secrets {
            assert!(
                !everything.contains(secret),
                "{secret} reached the provider ({credential:?})"
            );
        }
    }
    agw.stop().await;
}

/// Case 4, passthrough: without a key of its own agw forwards the client's header unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn claude_credentials_pass_through_when_agw_has_no_key() {
    let tools = tools().await;
    let scratch = Scratch::new("passthrough");
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let cases = [
        (
            Credential::ApiKey("sk-ant-client-key"),
            Some("sk-ant-client-key"),
            None,
        ),
        (
            Credential::AuthToken("client-oauth-token"),
            None,
            Some("Bearer client-oauth-token"),
        ),
    ];
    for (credential, api_key, authorization) in cases {
        let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
            .credential(credential)
            .run()
            .await;
        assert_eq!(run.expect_success().stdout.trim(), REPLY, "{run}");
        let got = only_request(&mock);
        assert_eq!(header(&got, "x-api-key"), api_key, "{credential:?}");
        assert_eq!(
            header(&got, "authorization"),
            authorization,
            "{credential:?}"
        );
    }
    agw.stop().await;
}

/// Case 5: a tool round trip. The mock asks Claude Code to Read a file holding an AWS key and
/// a card number; Claude Code sends the file back in a `tool_result`, and agw masks exactly
/// those two spans. The rest of the body, the assistant turn included, is what Claude Code
/// sent.
#[tokio::test(flavor = "multi_thread")]
async fn claude_tool_result_secrets_are_masked() {
    let tools = tools().await;
    let scratch = Scratch::new("mask");
    let mock = MockProvider::start().await.unwrap();
    let (key, card) = ("AKIAZ7Q3M5XK2WP4RT6N", "4111 1111 1111 1111");
    let file = scratch.file(
        "credentials.txt",
        &format!("aws_access_key_id = {key}\ncard: {card}\n"),
    );
    let prompt = format!("mock:read={}", file.display());
    let claude =
        |url: &str| Claude::new(tools, &scratch, url, &prompt).args(["--allowedTools", "Read"]);

    let direct = claude(&mock.base_url()).run().await;
    assert_eq!(
        direct.expect_success().stdout.trim(),
        "I read the file.",
        "{direct}"
    );
    let reference = all_requests(&mock);
    assert_eq!(
        reference.len(),
        2,
        "the prompt, then the tool result: {:?}",
        uris(&reference)
    );
    let json_escaped = |s: &str| {
        serde_json::to_string(s)
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    let sent = String::from_utf8(reference[1].body.to_vec()).unwrap();
    assert!(
        sent.contains(&json_escaped(key)) && sent.contains(&json_escaped(card)),
        "Claude Code read the file"
    );

    let agw = Agw::start(AgwOptions {
        config: Some(fixture("mask")),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = claude(&agw.url).run().await;
    assert_eq!(
        run.expect_success().stdout.trim(),
        "I read the file.",
        "{run}"
    );
    let got = all_requests(&mock);
    assert_eq!(got.len(), 2, "{:?}", uris(&got));
    assert_same_request(&reference[0], &got[0]);

    let expected = sent
        .replace(&json_escaped(key), &json_escaped("<AWS_ACCESS_KEY>"))
        .replace(&json_escaped(card), &json_escaped("<CREDIT_CARD>"));
    assert_eq!(got[1].uri, reference[1].uri);
    assert_same_headers(&reference[1].headers, &got[1]);
    assert_same_bytes(
        &normalise_date(expected.as_bytes()),
        &normalise_date(&got[1].body),
        "masked body",
    );

    let assistant = |r: &Recorded| -> Vec<Value> {
        let body = r.json().unwrap();
        let messages = body["messages"].as_array().unwrap().clone();
        messages
            .into_iter()
            .filter(|m| m["role"] == "assistant")
            .collect()
    };
    let turns = assistant(&got[1]);
    assert!(
        turns.iter().any(|m| m.to_string().contains("tool_use")),
        "{turns:?}"
    );
    assert_eq!(
        turns,
        assistant(&reference[1]),
        "assistant turns are forwarded untouched"
    );
    agw.stop().await;
}

/// The tool-call policy: the model (the mock) asks Claude Code to run a Bash command that
/// matches `kubectl\s+delete` but only touches a marker file. Claude Code is allowed to run
/// Bash, and does — straight to the mock, and through agw with a rule that does not match —
/// so the marker proves the command would run. Through agw with the rule, the tool call never
/// completes: the marker never appears, and Claude Code shows the rule's message from the
/// stream's error event. That event says it is a policy denial (`dlp_request_denied`), so
/// Claude Code makes none of the non-streaming retries (each billed) it makes after a plain
/// stream error.
#[tokio::test(flavor = "multi_thread")]
async fn claude_never_runs_a_tool_call_the_policy_rejects() {
    let tools = tools().await;
    let scratch = Scratch::new("tool-policy");
    let mock = MockProvider::start().await.unwrap();
    let marker = scratch.work().join("marker-kubectl-delete");
    let prompt = format!(
        "mock:tool=Bash:echo kubectl delete deployment prod > /dev/null; touch {}",
        marker.display()
    );
    let claude =
        |url: &str| Claude::new(tools, &scratch, url, &prompt).args(["--allowedTools", "Bash"]);

    // Controls: the command runs when nothing stops it.
    let direct = claude(&mock.base_url()).run().await;
    assert!(
        marker.exists(),
        "Claude Code ran the command straight against the mock\n{direct}"
    );
    std::fs::remove_file(&marker).unwrap();
    let control = Agw::start(AgwOptions {
        config: Some(fixture("tool-policy-control")),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = claude(&control.url).run().await;
    assert!(
        marker.exists(),
        "Claude Code ran the command through agw without a matching rule\n{run}"
    );
    std::fs::remove_file(&marker).unwrap();
    control.stop().await;
    mock.clear();

    let agw = Agw::start(AgwOptions {
        config: Some(fixture("tool-policy")),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = claude(&agw.url).run().await;
    assert!(!marker.exists(), "the rejected command ran\n{run}");
    assert!(
        run.failed()
            && run.stdout.contains(
                "Blocked by agw rule no-k8s-deletes: deleting Kubernetes resources is not allowed"
            ),
        "{run}"
    );
    // One request, the stream: no non-streaming retry after the policy's error event.
    let sent = all_requests(&mock);
    assert_eq!(sent.len(), 1, "{:?}", uris(&sent));
    // No tool result ever went back: Claude Code never ran the tool.
    for r in all_requests(&mock) {
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("tool_result"), "{}", r.uri);
    }
    agw.stop().await;
    assert!(!marker.exists());
}

/// A session survives a rejected prompt, in the real interactive Claude Code under tmux:
/// Claude Code keeps the rejected prompt in the conversation and sends the next prompt as
/// another block of the same user message. The clean prompt must be answered, and the
/// rejected text must never reach the provider.
#[tokio::test(flavor = "multi_thread")]
async fn claude_interactive_session_survives_a_rejected_prompt() {
    let tools = tools().await;
    let scratch = Scratch::new("session");
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start(AgwOptions {
        config: Some(fixture("any-model")),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let ui = Interactive::start(tools, &scratch, &agw.url, "sk-client-0123456789abcdefghij").await;
    ui.prompt("What is a credit card number made of?").await;
    ui.wait_for(REJECTED).await;
    ui.prompt("What is a good name for a cat?").await;
    let screen = ui.wait_for(&format!("● {REPLY}")).await;
    assert!(screen.contains(REJECTED), "{screen}");
    drop(ui);
    let got = all_requests(&mock);
    assert!(
        got.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("a good name for a cat")),
        "the clean prompt reached the provider: {:?}",
        uris(&got)
    );
    for r in &got {
        let body = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(
            !body.contains("credit card"),
            "the rejected prompt reached the provider in {}",
            r.uri
        );
    }
    agw.stop().await;
}

/// Checks one SDK script's outcome: the mock's reply, or the SDK's 400 with agw's message.
fn assert_sdk_reply(run: &Run) {
    let result = run.expect_success().json();
    assert_eq!(result["ok"], true, "{run}");
    assert_eq!(result["text"], REPLY, "{run}");
}

fn assert_sdk_rejected(run: &Run, message: &str) {
    let result = run.expect_success().json();
    assert_eq!(result["error"], "BadRequestError", "{run}");
    assert_eq!(result["status"], 400, "{run}");
    assert!(
        result["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message),
        "{run}"
    );
}

/// Case 7: the Anthropic Python SDK through the built-in default, plain and streaming.
#[tokio::test(flavor = "multi_thread")]
async fn python_anthropic_sdk() {
    let tools = tools().await;
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start(AgwOptions {
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    for stream in [false, true] {
        let run = python(tools, "anthropic_sdk.py", &agw.url, "Say hello", stream).await;
        assert_sdk_reply(&run);
        if stream {
            let pieces = run.json()["pieces"].as_array().unwrap().len();
            assert!(pieces > 1, "streamed in pieces: {run}");
        }
        let got = only_request(&mock);
        assert_eq!(got.uri, "/v1/messages");
        let body = got.json().unwrap();
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream, "{body}");
        assert_eq!(body["messages"][0]["content"], "Say hello");
        // anthropic 2.14.0 sends api_key= as a Bearer token.
        assert_eq!(header(&got, "authorization"), Some("Bearer sk-client"));

        let run = python(
            tools,
            "anthropic_sdk.py",
            &agw.url,
            "What is a credit card",
            stream,
        )
        .await;
        assert_sdk_rejected(&run, REJECTED);
        assert_nothing_received(&mock, &run);
    }
    agw.stop().await;
}

/// Case 7: the OpenAI Python SDK through an `openai_compatible` backend, plain and streaming.
#[tokio::test(flavor = "multi_thread")]
async fn python_openai_sdk() {
    let tools = tools().await;
    let scratch = Scratch::new("openai");
    let mock = MockProvider::start().await.unwrap();
    let message = "Card numbers stay on this machine";
    let config = scratch.file(
        "openai.yaml",
        &format!(
            "backends:
  - name: local
    provider: openai_compatible
    base_url: {}
    guards:
      request:
        - name: credit-card
          regex: [\"credit card\"]
          action: reject
          message: {message}
",
            mock.base_url()
        ),
    );
    let agw = Agw::start(AgwOptions {
        config: Some(&config),
        ..Default::default()
    })
    .await;
    for stream in [false, true] {
        let run = python(tools, "openai_sdk.py", &agw.url, "Say hello", stream).await;
        assert_sdk_reply(&run);
        let result = run.json();
        assert_eq!(result["finish_reason"], "stop", "{run}");
        if stream {
            assert!(
                result["pieces"].as_array().unwrap().len() > 1,
                "streamed in pieces: {run}"
            );
        }
        let got = only_request(&mock);
        assert_eq!(got.uri, "/v1/chat/completions");
        let body = got.json().unwrap();
        assert_eq!(body["stream"].as_bool().unwrap_or(false), stream, "{body}");
        assert_eq!(body["messages"][0]["content"], "Say hello");
        assert_eq!(header(&got, "authorization"), Some("Bearer sk-client"));

        let run = python(
            tools,
            "openai_sdk.py",
            &agw.url,
            "What is a credit card",
            stream,
        )
        .await;
        assert_sdk_rejected(&run, message);
        assert_nothing_received(&mock, &run);
    }
    agw.stop().await;
}
