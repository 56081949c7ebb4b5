//! `agw serve` with a JWKS URL that does not answer (black-box review: it exited 2 while
//! `agw check` said ok): it starts, says so in one line naming the URL, refuses tokens with a
//! 401 that says why, and client keys keep working.

mod common;

use agw_mock::MockProvider;
use common::process::{Proc, TempDir, created_key};
use common::*;
use std::process::Command;

const AGW: &str = env!("CARGO_BIN_EXE_agw");

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_jwks_url_refuses_tokens_and_keys_still_work() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("jwks-start");
    // A port nothing listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/jwks");
    let cfg = dir.path("agw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "backends: [{{name: a, provider: anthropic, api_key: k}}]\n\
             auth:\n  keys: {{file: {keys}}}\n  jwt: {{issuer: i, audience: a, jwks_url: '{url}'}}\n",
            keys = dir.path("keys.json").display(),
        ),
    )
    .unwrap();
    let check = Command::new(AGW)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(
        said.contains(&format!("auth.jwt.jwks_url {url} was not fetched")),
        "{said}"
    );
    let key = created_key(&cfg, &["--name", "alice"]);

    let agw = Proc::serve_config(&dir, &cfg, &mock.base_url());
    let body = r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = |auth: (&'static str, String)| {
        let mut r = json_post(&agw.url("/v1/messages"), body);
        r.headers_mut().insert(auth.0, auth.1.parse().unwrap());
        r
    };
    let (res, answer) = send(req(("x-api-key", key))).await;
    assert_eq!(res.status(), 200, "{answer:?}");
    let (res, answer) = send(req(("authorization", "Bearer e30.e30.c2ln".to_owned()))).await;
    assert_eq!(res.status(), 401);
    let message = json(&answer)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("identity provider's keys (JWKS)"),
        "{message}"
    );
    let log = agw.stderr();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("JWKS unavailable"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(&url), "{log}");
}
