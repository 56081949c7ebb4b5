//! Every outcome in the access-log line and in the metrics, with the `agw` binary over real
//! sockets on 127.0.0.1: the response guard's verdict on a stream (read when the body ends),
//! a tool call it refused, an upstream that refuses connections, and with team features on
//! who called, the tokens and the cost, and guard outcome and upstream error counters on
//! `/metrics`.

mod common;

use agw_mock::MockProvider;
use common::process::{Proc, TempDir, created_key};
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What these tests read of a running agw: its JSON access-log lines and its metrics.
trait AccessLog {
    fn access_lines(&self) -> Vec<serde_json::Value>;
    async fn line_for(&self, request_id: &str) -> serde_json::Value;
    async fn metrics(&self) -> String;
}

/// agw with `config`, every backend at `base_url`, JSON log lines.
fn spawn(dir: &TempDir, config: &Path, base_url: &str) -> Proc {
    Proc::serve_config_with(dir, config, base_url, &["--log-format", "json"])
}

impl AccessLog for Proc {
    /// The access-log lines written so far.
    fn access_lines(&self) -> Vec<serde_json::Value> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| json(l.as_bytes()))
            .filter(|l| l.get("request_id").is_some())
            .collect()
    }

    /// The access-log line of the response that carried `request_id` (agw's own or the
    /// upstream's), waiting up to 20 s for it: a line is written when the body ends.
    async fn line_for(&self, request_id: &str) -> serde_json::Value {
        for _ in 0..400 {
            if let Some(l) = self
                .access_lines()
                .into_iter()
                .find(|l| l["request_id"] == request_id || l["upstream_request_id"] == request_id)
            {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no log line for {request_id}: {}", self.stderr());
    }

    async fn metrics(&self) -> String {
        let (res, body) = send(
            Request::get(format!("http://{}/metrics", self.admin))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), 200);
        String::from_utf8_lossy(&body).into_owned()
    }
}

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.path("agw.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn messages(prompt: &str, stream: bool) -> String {
    serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": prompt}]})
    .to_string()
}

/// Sends `body` to `/v1/messages` (with `key` as `x-api-key` when given), reads the whole
/// response and returns its status, its `request-id` and its body.
async fn post(agw: &Proc, body: &str, key: Option<&str>) -> (u16, String, String) {
    let mut req = json_post(&agw.url("/v1/messages"), body);
    if let Some(k) = key {
        req.headers_mut().insert("x-api-key", k.parse().unwrap());
    }
    let (res, body) = send(req).await;
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    (
        res.status().as_u16(),
        id,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

const GUARDS: &str = r#"
    guards:
      response_window_bytes: 64
      request:
        - name: credit-card
          regex: ["credit card"]
          action: reject
          message: Rejected due to inappropriate content
      response:
        - name: cards
          detectors: [credit_card]
          action: mask
      tools:
        - name: no-k8s-deletes
          tool: Bash
          argument: command
          regex: 'kubectl\s+delete'
          message: Deleting Kubernetes resources is blocked by policy
"#;

#[tokio::test(flavor = "multi_thread")]
async fn response_guard_outcomes_are_logged_when_the_body_ends() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("guard");
    let cfg = write_config(
        &dir,
        &format!("backends:\n  - name: anthropic\n    provider: anthropic\n{GUARDS}"),
    );
    let agw = spawn(&dir, &cfg, &mock.base_url());

    // A stream masked on its way: the verdict is known only when the body ends.
    let (status, id, body) = post(
        &agw,
        &messages("mock:echo your card 4111 1111 1111 1111 is on file", true),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<CREDIT_CARD>"), "{body}");
    let masked = agw.line_for(&id).await;
    assert_eq!(masked["response_guard"], "mask", "{masked}");
    assert_eq!(masked["response_rules"], "cards", "{masked}");
    assert_eq!(masked["guard"], "allow", "{masked}");
    assert!(masked.get("aborted").is_none(), "{masked}");

    // A dangerous tool call refused in the middle of a stream.
    let (status, id, body) = post(
        &agw,
        &messages("mock:tool=Bash:kubectl delete ns prod", true),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("blocked by policy"), "{body}");
    let refused = agw.line_for(&id).await;
    assert_eq!(refused["response_guard"], "reject", "{refused}");
    assert_eq!(refused["response_rules"], "no-k8s-deletes", "{refused}");

    // The same call without streaming: refused before the headers, with agw's own answer.
    let (status, id, _) = post(
        &agw,
        &messages("mock:tool=Bash:kubectl delete ns prod", false),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let refused = agw.line_for(&id).await;
    assert_eq!(refused["response_guard"], "reject", "{refused}");
    assert_eq!(refused["response_rules"], "no-k8s-deletes", "{refused}");
    // The provider answered it: its time and its request id are logged (and the client
    // gets that id), not agw's as if nothing had gone upstream.
    assert!(refused["upstream_ms"].is_number(), "{refused}");
    assert!(!id.starts_with("agw_"), "{id}");
    assert_eq!(refused["upstream_request_id"], id.as_str(), "{refused}");

    // Refused by the request guard: nothing went upstream, no upstream id is logged.
    let (status, id, _) = post(&agw, &messages("my credit card", false), None).await;
    assert_eq!(status, 400);
    assert!(id.starts_with("agw_"), "{id}");
    let refused = agw.line_for(&id).await;
    assert_eq!(refused["guard"], "reject", "{refused}");
    assert!(refused.get("upstream_request_id").is_none(), "{refused}");
    assert!(refused["upstream_ms"].is_null(), "{refused}");

    // Refused for what the model name or the URL says: neither is logged as sent.
    let body = serde_json::json!({"model": "claude-credit card-x", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let (status, id, _) = post(&agw, &body, None).await;
    assert_eq!(status, 400);
    let refused = agw.line_for(&id).await;
    assert_eq!(refused["model"], "***", "{refused}");
    assert_eq!(refused["path"], "/v1/messages", "{refused}");
    let (res, _) = send(json_post(
        &agw.url("/v1/messages?note=my%20credit%20card"),
        &messages("hi", false),
    ))
    .await;
    assert_eq!(res.status(), 400);
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    let refused = agw.line_for(&id).await;
    assert_eq!(refused["path"], "***", "{refused}");
    // Refused before the body is read: no model known.
    assert_eq!(refused["model"], "-", "{refused}");

    // Nothing matched: inspected and allowed.
    let (status, id, _) = post(&agw, &messages("hello", true), None).await;
    assert_eq!(status, 200);
    let clean = agw.line_for(&id).await;
    assert_eq!(clean["response_guard"], "allow", "{clean}");
    assert_eq!(clean["response_rules"], "-", "{clean}");
    // No team features: no identity, no tokens.
    assert!(clean.get("identity").is_none(), "{clean}");
    assert!(clean.get("input_tokens").is_none(), "{clean}");
    // The matched text never reaches the log.
    let log = agw.stderr();
    assert!(!log.contains("4111") && !log.contains("kubectl"), "{log}");
    assert!(
        !log.contains("credit card") && !log.contains("%20credit"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_upstream_is_logged_with_its_cause_and_counted() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("refused");
    // Team features on (metrics only), no client auth.
    let cfg = write_config(
        &dir,
        "metrics: {identity_label: false}\nbackends:\n  - name: anthropic\n    provider: anthropic\n",
    );
    let agw = spawn(&dir, &cfg, &format!("http://127.0.0.1:{port}"));
    let (status, id, body) = post(&agw, &messages("hello", false), None).await;
    assert_eq!(status, 502, "{body}");
    assert!(id.starts_with("agw_"), "{id}");
    let line = agw.line_for(&id).await;
    assert_eq!(line["cause"], "refused", "{line}");
    assert_eq!(line["status"], 502, "{line}");
    let metrics = agw.metrics().await;
    assert!(
        metrics.contains(r#"agw_upstream_errors_total{backend="anthropic",cause="refused"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn team_requests_log_identity_tokens_and_cost_but_never_the_key() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team");
    let cfg = write_config(
        &dir,
        &format!(
            "auth:\n  keys:\n    file: {keys}\n  allow_unauthenticated: false\n\
             prices:\n  - {{model: \"claude-*\", input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}\n\
             metrics: {{identity_label: true}}\n\
             backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n{GUARDS}",
            keys = dir.path("keys.json").display(),
        ),
    );
    let key = created_key(&cfg, &["--name", "alice", "--team", "platform"]);
    assert!(key.starts_with("agw_"), "{key}");
    let agw = spawn(&dir, &cfg, &mock.base_url());

    // A plain answer: the log's tokens are the ones the mock reported to the client.
    let (status, id, body) = post(&agw, &messages("hello there", false), Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    let usage = &json(body.as_bytes())["usage"];
    let line = agw.line_for(&id).await;
    assert_eq!(line["identity"], "alice", "{line}");
    assert_eq!(line["team"], "platform", "{line}");
    assert_eq!(line["input_tokens"], usage["input_tokens"], "{line}");
    assert_eq!(line["output_tokens"], usage["output_tokens"], "{line}");
    assert!(line["input_tokens"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(line["cache_write_tokens"], 0, "{line}");
    assert_eq!(line["cache_read_tokens"], 0, "{line}");
    assert!(line["cost_usd"].as_f64().unwrap() > 0.0, "{line}");

    // A masked stream: usage and the response verdict on one line.
    let (status, id, _) = post(
        &agw,
        &messages("mock:echo your card 4111 1111 1111 1111 is on file", true),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200);
    let line = agw.line_for(&id).await;
    assert_eq!(line["identity"], "alice", "{line}");
    assert!(line["output_tokens"].as_u64().unwrap() > 0, "{line}");
    assert_eq!(line["response_guard"], "mask", "{line}");

    // A client that leaves in the middle of a stream: the line (written when the body is
    // dropped) still names the caller, as the usage layer inside reports first.
    let mut req = json_post(
        &agw.url("/v1/messages"),
        &messages("mock:hold mock:ping_comment hi", true),
    );
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let res = open(req).await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    let mut body = res.into_body();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("message_start") {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .expect("the stream's first event")
            .unwrap()
            .unwrap();
        if let Some(d) = frame.data_ref() {
            seen.extend_from_slice(d);
        }
    }
    drop(body);
    let line = agw.line_for(&id).await;
    mock.release();
    assert_eq!(line["aborted"], true, "{line}");
    assert_eq!(line["identity"], "alice", "{line}");
    assert_eq!(line["response_guard"], "allow", "{line}");

    // A client that leaves before the response headers: the line (written once the stack's
    // future is dropped, so the usage layer has reported) names the caller too.
    let mut req = json_post(
        &agw.url("/v1/messages"),
        &messages("mock:delay_ms=3000 hi", false),
    );
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let cut = tokio::time::timeout(Duration::from_millis(300), send(req)).await;
    assert!(cut.is_err(), "the request should still be in flight");
    let mut closed = None;
    for _ in 0..400 {
        closed = agw.access_lines().into_iter().find(|l| l["status"] == 499);
        if closed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = closed.expect("a line for the request the client left");
    assert_eq!(line["cause"], "client_closed", "{line}");
    assert_eq!(line["identity"], "alice", "{line}");

    // Refused by the request guard: counted, never sent upstream; the line names the caller.
    let (status, id, _) = post(&agw, &messages("my credit card", false), Some(&key)).await;
    assert_eq!(status, 400);
    let line = agw.line_for(&id).await;
    assert_eq!(line["identity"], "alice", "{line}");
    assert!(line.get("input_tokens").is_none(), "{line}");
    // A wrong key: refused before anything else.
    let (status, _, _) = post(&agw, &messages("hi", false), Some("agw_wrong")).await;
    assert_eq!(status, 401);

    let log = agw.stderr();
    assert!(!log.contains(&key), "the key is never logged: {log}");
    assert!(!log.contains("sk-ant-injected"), "{log}");

    let metrics = agw.metrics().await;
    for series in [
        r#"agw_guard_outcomes_total{rule="credit-card",action="reject",direction="request"} 1"#,
        r#"agw_guard_outcomes_total{rule="cards",action="mask",direction="response"} 1"#,
        // agw's own refusals are requests answered too (found by the fourth review: the
        // requests counter, and the dashboard's error rate, left them out).
        r#"agw_requests_total{route="Messages",backend="anthropic",status="400",identity="alice",team="platform"} 1"#,
        r#"agw_requests_total{route="Messages",backend="anthropic",status="401",identity="",team=""} 1"#,
    ] {
        assert!(metrics.contains(series), "{series}: {metrics}");
    }
    assert!(!metrics.contains(&key), "{metrics}");
}

/// With team features but no request guard, the line still names the model: the usage layer
/// read it (found by the fifth review: the model came only from the guard's report).
#[tokio::test(flavor = "multi_thread")]
async fn a_team_line_names_the_model_without_a_request_guard() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-noguard");
    let cfg = write_config(
        &dir,
        &format!(
            "auth:\n  keys:\n    file: {keys}\n  allow_unauthenticated: false\n\
             prices:\n  - {{model: \"claude-*\", input: 3, output: 15}}\n\
             backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n",
            keys = dir.path("keys.json").display(),
        ),
    );
    let key = created_key(&cfg, &["--name", "dana"]);
    let agw = spawn(&dir, &cfg, &mock.base_url());
    let body = messages("hello there", false);
    let model = json(body.as_bytes())["model"].as_str().unwrap().to_owned();
    let (status, id, answer) = post(&agw, &body, Some(&key)).await;
    assert_eq!(status, 200, "{answer}");
    let line = agw.line_for(&id).await;
    assert_eq!(line["model"], model.as_str(), "{line}");
    assert_eq!(line["guard"], "skip", "{line}");
    assert_eq!(line["identity"], "dana", "{line}");
}

/// A configured route table that leaves a dialect endpoint out still has it (the stack adds
/// the dialects' endpoints); the log names the kind the request was guarded as, not
/// `Passthrough` from the table as written.
#[tokio::test(flavor = "multi_thread")]
async fn the_logged_kind_is_the_kind_the_stack_guarded() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("kind");
    let cfg = write_config(
        &dir,
        "backends:\n  - name: anthropic\n    provider: anthropic\n    routes: {/v1/messages: Messages, \"*\": Passthrough}\n",
    );
    let agw = spawn(&dir, &cfg, &mock.base_url());
    let req = json_post(
        &agw.url("/v1/messages/count_tokens"),
        &messages("hello", false),
    );
    let (res, body) = send(req).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    let line = agw.line_for(&id).await;
    assert_eq!(line["kind"], "CountTokens", "{line}");
}
