//! Hot reload of the team sections, as processes (red-team rt4): what a reload may add, what
//! `/config` says is in force, which key files are watched, and what a reload warns about.

mod common;

use agw_mock::MockProvider;
use common::process::{Proc, TempDir, created_key};
use common::{json, json_post, send};
use std::time::Duration;

const HELLO: &str =
    r#"{"model":"claude-opus-4-6","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

/// `/config` on the admin listener, parsed.
async fn config(agw: &Proc) -> serde_json::Value {
    let req = http::Request::get(agw.admin_url("/config"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    json(&send(req).await.1)
}

/// Waits (up to 10 s) until the reload counts of `/config` reach `ok` good and `failed` failed
/// reloads, and returns `/config` then.
async fn reloaded(agw: &Proc, ok: u64, failed: u64) -> serde_json::Value {
    for _ in 0..100 {
        let c = config(agw).await;
        if c["reloads"]["ok"] == ok && c["reloads"]["failed"] == failed {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no reload ({ok} ok, {failed} failed): {}\n{}",
        config(agw).await,
        agw.stderr()
    );
}

/// Writes `text` to `path` so that the watcher sees a change (a new modification time).
fn rewrite(path: &std::path::Path, text: &str) {
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(path, text).unwrap();
}

fn hello(url: &str, key: Option<&str>) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = json_post(&format!("{url}/v1/messages"), HELLO);
    req.headers_mut().remove("x-api-key");
    if let Some(k) = key {
        req.headers_mut().insert("x-api-key", k.parse().unwrap());
    }
    req
}

/// F1: agw started without team sections has no layer that authenticates or checks access; a
/// reload that adds `auth` and an `access` list was reported as in use while anyone was
/// served any model. It is refused, naming the sections, and the old configuration serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_adding_team_sections_to_a_gateway_without_them_is_refused() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-reload-add");
    let cfg = dir.path("agw.yaml");
    let backend =
        "backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-x\n";
    std::fs::write(&cfg, backend).unwrap();
    let agw = Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}", agw.addr);
    assert_eq!(send(hello(&url, None)).await.0.status(), 200);
    rewrite(
        &cfg,
        &format!(
            "auth: {{keys: {{file: {}}}}}\nlimits: {{per_key: {{requests_per_minute: 1}}}}\nmetrics: {{}}\n{backend}    access: {{identities: [nobody], models: [\"claude-haiku-*\"]}}\n",
            dir.path("keys.json").display()
        ),
    );
    let c = reloaded(&agw, 0, 1).await;
    let log = agw.stderr();
    assert!(
        log.contains("`auth`, `limits`, `metrics` need the team layers")
            && log.contains("restart agw"),
        "{log}"
    );
    assert!(!log.contains("configuration reloaded"), "{log}");
    // `/config` shows what is in force: no team, no access list.
    assert!(c.get("team").is_none(), "{c}");
    assert!(!c["backends"].to_string().contains("access"), "{c}");
    // The old configuration still serves (and claims nothing it does not do).
    assert_eq!(send(hello(&url, None)).await.0.status(), 200);
}

fn team_config(dir: &TempDir, rpm: u32, key: &str) -> String {
    format!(
        "auth: {{keys: {{file: {}}}}}\nlimits: {{per_key: {{requests_per_minute: {rpm}}}}}\nmetrics: {{}}\nbackends:\n  - name: anthropic\n    provider: anthropic\n    {key}\n",
        dir.path("keys.json").display()
    )
}

/// F2: `/config` showed the new file's limits after a reload, though the ones agw started with
/// stay in force until a restart. It shows those, and names the sections awaiting a restart.
#[tokio::test(flavor = "multi_thread")]
async fn config_shows_the_team_settings_in_force_and_what_awaits_a_restart() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-reload-config");
    let cfg = dir.path("agw.yaml");
    std::fs::write(&cfg, team_config(&dir, 60, "api_key: sk-ant-x")).unwrap();
    let key = created_key(&cfg, &["--name", "alice"]);
    let agw = Proc::serve_config(&dir, &cfg, &mock.base_url());
    let before = config(&agw).await;
    assert!(before.get("pending_restart").is_none(), "{before}");
    rewrite(&cfg, &team_config(&dir, 5, "api_key: sk-ant-x"));
    let c = reloaded(&agw, 1, 0).await;
    let team = c["team"].to_string();
    assert!(team.contains("60 requests/min"), "{c}");
    assert!(!team.contains("5 requests/min"), "{c}");
    assert_eq!(c["pending_restart"], serde_json::json!(["limits"]), "{c}");
    assert!(
        agw.stderr()
            .contains("reload: changes to limits take effect on restart"),
        "{}",
        agw.stderr()
    );
    // And 60 it is.
    let url = format!("http://{}", agw.addr);
    for _ in 0..6 {
        assert_eq!(send(hello(&url, Some(&key))).await.0.status(), 200);
    }
}

/// F4: a reload that leaves a backend without a provider key while clients authenticate was
/// silent; the same file at start warns. The reload warns the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_loses_the_provider_key_warns_as_a_start_does() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-reload-unset");
    let cfg = dir.path("agw.yaml");
    std::fs::write(&cfg, team_config(&dir, 60, "api_key: ${AGW_TEST_PKEY}")).unwrap();
    let agw = Proc::spawn_env(
        &dir,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--base-url",
            &mock.base_url(),
        ],
        &[("AGW_TEST_PKEY", "sk-ant-x")],
    );
    assert!(
        !agw.stderr().contains("no provider key"),
        "{}",
        agw.stderr()
    );
    rewrite(
        &cfg,
        &team_config(&dir, 60, "api_key: ${AGW_TEST_UNSET_PKEY}"),
    );
    reloaded(&agw, 1, 0).await;
    let log = agw.stderr();
    assert!(
        log.contains("AGW_TEST_UNSET_PKEY is not set")
            && log.contains(
                "client authentication is on but agw has no provider key to inject, so requests \
                 reach the provider without credentials"
            ),
        "{log}"
    );
}

/// The `x-api-key` the mock last received.
fn last_key(mock: &MockProvider) -> String {
    let reqs = mock.requests();
    let last = reqs.last().expect("a request reached the mock");
    last.headers["x-api-key"].to_str().unwrap().to_owned()
}

/// F3: a key file that a reload named (`api_key` → `api_key_file`) was read once and never
/// watched: rotating it changed nothing until a SIGHUP. The key files of the configuration in
/// force are watched.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_file_named_by_a_reload_is_watched() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-reload-keyfile");
    let cfg = dir.path("agw.yaml");
    let backend =
        |key: &str| format!("backends:\n  - name: anthropic\n    provider: anthropic\n    {key}\n");
    std::fs::write(&cfg, backend("api_key: sk-ant-inline")).unwrap();
    let agw = Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}", agw.addr);
    assert_eq!(send(hello(&url, None)).await.0.status(), 200);
    assert_eq!(last_key(&mock), "sk-ant-inline");
    let pkey = dir.path("pkey.txt");
    std::fs::write(&pkey, "sk-ant-file-1").unwrap();
    rewrite(&cfg, &backend(&format!("api_key_file: {}", pkey.display())));
    reloaded(&agw, 1, 0).await;
    assert_eq!(send(hello(&url, None)).await.0.status(), 200);
    assert_eq!(last_key(&mock), "sk-ant-file-1");
    // Rotated through the file alone.
    rewrite(&pkey, "sk-ant-file-2");
    reloaded(&agw, 2, 0).await;
    assert_eq!(send(hello(&url, None)).await.0.status(), 200);
    assert_eq!(last_key(&mock), "sk-ant-file-2");
}

/// The data of each event of a server-sent event stream, in order.
fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_owned))
        .collect()
}

/// F6: a streamed OpenAI chat completion whose client did not ask for usage was charged its
/// whole output cap. agw asks the upstream for the usage chunk (one splice of the body),
/// counts it, and drops it from the stream, so the client sees what it asked for. A client
/// that asked gets its chunk, and its body is forwarded as sent.
#[tokio::test(flavor = "multi_thread")]
async fn an_openai_stream_is_asked_for_its_usage_and_the_client_sees_what_it_asked_for() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-include-usage");
    let cfg = dir.path("agw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "auth: {{keys: {{file: {}}}}}\nlimits: {{per_key: {{budget: {{usd_per_day: 10}}}}}}\n\
             prices:\n  - {{model: \"*\", input: 2.5, output: 10}}\nmetrics: {{}}\n\
             backends:\n  - name: openai\n    provider: openai\n    api_key: sk-proj-x\n",
            dir.path("keys.json").display()
        ),
    )
    .unwrap();
    let key = created_key(&cfg, &["--name", "alice"]);
    let agw = Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}/v1/chat/completions", agw.addr);
    let chat = |body: &str| {
        let mut req = json_post(&url, body);
        req.headers_mut().remove("x-api-key");
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        req
    };
    let usage_chunks = |events: &[String]| {
        events
            .iter()
            .filter(|d| d.contains("\"choices\":[]") && d.contains("\"usage\":{"))
            .count()
    };
    let plain = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let refused = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}"#;
    let asked = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
    let want_plain = format!(
        "{{\"stream_options\":{{\"include_usage\":true}},{}",
        &plain[1..]
    );
    let want_refused = refused.replace("false", "true");
    for (body, upstream, chunks) in [
        (plain, want_plain.as_str(), 0),
        (refused, want_refused.as_str(), 0),
        (asked, asked, 1),
    ] {
        mock.clear();
        let (res, got) = send(chat(body)).await;
        assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&got));
        assert!(res.headers().get("content-length").is_none());
        let events = sse_data(&got);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{events:?}"
        );
        assert!(
            events.iter().any(|d| d.contains("\"content\"")),
            "{events:?}"
        );
        assert_eq!(usage_chunks(&events), chunks, "{body}: {events:?}");
        // The upstream got the body as sent, but for the one splice.
        let sent = mock.requests();
        assert_eq!(String::from_utf8_lossy(&sent[0].body), upstream, "{body}");
    }
    // Each was charged the usage the upstream reported, not an estimate.
    let mut lines = 0;
    for _ in 0..50 {
        lines = agw
            .stderr()
            .lines()
            .filter(|l| l.contains("/v1/chat/completions") && l.contains("output_tokens="))
            .count();
        if lines == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = agw.stderr();
    assert_eq!(lines, 3, "{log}");
    assert!(!log.contains("estimated"), "{log}");
}
