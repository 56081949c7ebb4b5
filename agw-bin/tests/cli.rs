//! The `agw` binary as a person uses it: check, test-policy, help, examples, and a real process
//! serving and shutting down gracefully.

mod common;

use agw_mock::MockProvider;
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

const AGW: &str = env!("CARGO_BIN_EXE_agw");
const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn agw(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(AGW)
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("AGW_BASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn examples_and_seed_manifests_check() {
    let mut files: Vec<String> = std::fs::read_dir(format!("{DIR}/examples"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    assert_eq!(files.len(), 4);
    for v in ["guard-any-model", "guard-pinned", "no-guard"] {
        files.push(format!("{DIR}/tests/fixtures/seed/manifests-{v}.yaml"));
    }
    for f in files {
        let out = agw(&["check", "--config", &f], "");
        assert!(out.status.success(), "{f}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("ok: "), "{stdout}");
        assert!(stdout.contains("backend "), "{stdout}");
    }
}

/// `agw check` says what the team settings do: who may call, each scope's limits and budgets,
/// where they are kept, prices and metrics (seventeenth session's red-team review: neither it
/// nor `/config` showed any of them).
#[test]
fn check_summarises_the_team_settings() {
    let out = agw(
        &["check", "--config", &format!("{DIR}/examples/team.yaml")],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in [
        "  team: clients authenticate with agw keys (file /var/lib/agw/keys.json)\n",
        "  limits: per key 60 requests/min, 1000000 tokens/min, $20/day, $300/month; per team 600 requests/min, $3000/month; global 2000000 tokens/min\n",
        "  store: in memory (this instance alone)\n",
        "claude-sonnet-* 3/15/3.75/0.3",
        "  metrics: counted, at /metrics on the admin listener\n",
    ] {
        assert!(stdout.contains(want), "{want:?} in {stdout}");
    }
    let dir = std::env::temp_dir().join(format!("agw-check-team-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("redis.yaml");
    std::fs::write(
        &config,
        "backends: [{name: a, provider: anthropic}]\n\
         auth: {jwt: {jwks_url: 'https://idp.example/jwks?token=s3cret', issuer: https://idp.example, audience: agw}, allow_unauthenticated: true}\n\
         redis: {url: 'redis://user:hunter2@10.0.0.5:6379/0', timeout_ms: 50}\n",
    )
    .unwrap();
    let out = agw(&["check", "--config", config.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in [
        "team: clients may authenticate with JWTs (issuer https://idp.example, audience agw, JWKS https://idp.example/jwks?…); requests without a credential pass as anonymous",
        "limits: none (usage and cost counted)",
        "store: redis://***@10.0.0.5:6379/0 (timeout 50 ms per operation, prefix agw, on error: limits allow, budgets deny)",
        "prices: none (cost not counted)",
    ] {
        assert!(stdout.contains(want), "{want:?} in {stdout}");
    }
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("s3cret"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_points_at_the_problem() {
    let dir = std::env::temp_dir().join(format!("agw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "backends:\n  - name: a\n    provider: anthropic\n    guards:\n      request:\n        - regex: [\"x\"]\n          acton: reject\n",
    )
    .unwrap();
    let out = agw(&["check", "--config", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with(&format!("agw: error: {}:7:", bad.display())),
        "{err}"
    );
    assert!(
        err.contains("unknown field `acton`") && err.contains("did you mean `action`?"),
        "{err}"
    );

    let out = agw(&["check", "--config", "/nonexistent/agw.yaml"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read the file"));
    let out = agw(&["serve", "--lisen", "x"], "");
    assert!(text(&out.stderr).contains("unknown option `--lisen`"));
    let out = agw(&["bogus"], "");
    assert!(text(&out.stderr).contains("unknown command `bogus`"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn help_teaches() {
    let out = agw(&["--help"], "");
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "agw serve",
        "agw check",
        "agw test-policy",
        "--base-url",
        "ANTHROPIC_BASE_URL",
        "credit card",
    ] {
        assert!(help.contains(needle), "help lacks {needle}");
    }
}

#[test]
fn test_policy_verdicts() {
    let reject = r#"{"model":"m","messages":[{"role":"user","content":"What is a credit card?"}]}"#;
    let out = agw(&["test-policy"], reject);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("verdict: reject") && s.contains("rule: credit-card"),
        "{s}"
    );
    assert!(s.contains("message: Rejected due to inappropriate content"));
    assert!(s.contains("at messages[0].content"));

    let allow = r#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#;
    let out = agw(&["test-policy"], allow);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "verdict: allow\n");

    let mask_cfg = format!("{DIR}/examples/mask-tool-output.yaml");
    let body = r#"{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}]}]}"#;
    let out = agw(&["test-policy", "--config", &mask_cfg], body);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("verdict: mask\n"), "{s}");
    assert!(
        s.contains("hit: secrets-in-tools mask [github_token] at messages[0].content[0].content"),
        "{s}"
    );
    let masked = s.split("masked body:\n").nth(1).unwrap().trim_end();
    assert_eq!(
        masked,
        body.replace(
            "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
            "<GITHUB_TOKEN>"
        )
    );
    assert!(!s.contains("ghp_0123"), "the secret must not be printed");

    let out = agw(&["test-policy"], "{not json");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("verdict: invalid"));
}

/// A running `agw` process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(AGW)
        .arg("serve")
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .strip_prefix("agw listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (Proc(child), url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_open_streams_finish_then_exits_zero() {
    let mock = MockProvider::start().await.unwrap();
    let (mut proc, url) = spawn_serve(&[
        "--listen",
        "127.0.0.1:0",
        "--base-url",
        &mock.base_url(),
        "--access-log",
        "off",
    ]);
    let body = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"mock:hold hi"}]}"#;
    let res = open(json_post(&format!("{url}/v1/messages"), body)).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.data_ref().is_some());

    let pid = proc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // New connections are refused once the listener is closed; wait for that (bounded).
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "agw kept accepting after SIGTERM");
    // The open stream still completes.
    mock.release();
    let rest: Bytes = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
    let status = tokio::task::spawn_blocking(move || proc.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn check_reports_coverage_and_warns_about_a_missing_key() {
    let f = format!("{DIR}/tests/fixtures/seed/manifests-guard-any-model.yaml");
    let out = agw(&["check", "--config", &f], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("\ncoverage:\n"), "{s}");
    assert!(
        s.contains("* -> Passthrough: a JSON body has every string inspected"),
        "{s}"
    );
    assert!(
        s.contains("/v1/messages -> Messages: request inspected by"),
        "{s}"
    );
    // Endpoints that give stored model output back are listed as what they are.
    assert!(
        s.contains("/v1/messages/batches/{id}/results -> BatchResults:"),
        "{s}"
    );
    assert!(
        s.contains("warning: backend `anthropic`: ANTHROPIC_API_KEY is not set"),
        "{s}"
    );
}

/// `agw check` shows a backend's access list, and warns where `serve` would refuse the
/// listener (found by the ops review: it said "any model" and "ok").
#[test]
fn check_shows_access_lists_and_what_serve_would_refuse() {
    let dir = std::env::temp_dir().join(format!("agw-cli-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with_auth = dir.join("team.yaml");
    std::fs::write(
        &with_auth,
        "listen: 0.0.0.0:8080\nbackends:\n  - {name: a, provider: anthropic, api_key: k, access: {teams: [platform], models: ['claude-*']}}\nauth: {keys: {file: keys.json}}\n",
    )
    .unwrap();
    let out = agw(&["check", "--config", with_auth.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("; access: teams [platform], models [claude-*]\n"),
        "{s}"
    );
    assert!(!s.contains("refuses"), "{s}");
    let open = dir.join("open.yaml");
    std::fs::write(
        &open,
        "listen: 0.0.0.0:8080\nbackends:\n  - {name: a, provider: anthropic, api_key: sk-ant-secret-123}\n",
    )
    .unwrap();
    let out = agw(&["check", "--config", open.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("warning: `serve` refuses this: refusing to listen on 0.0.0.0:8080"),
        "{s}"
    );
    assert!(
        !s.contains("sk-ant-secret-123") && !s.contains("access:"),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serving_an_injected_key_beyond_loopback_needs_client_auth_or_an_explicit_flag() {
    let out = Command::new(AGW)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("ANTHROPIC_API_KEY", "sk-ant-test-key")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("without client authentication") && err.contains("--allow-unauthenticated"),
        "{err}"
    );
    assert!(!err.contains("sk-ant-test-key"), "{err}");
    // Bad listen values are one line too; host names are accepted (checked in config tests).
    let out = agw(&["serve", "--listen", "localhost"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--listen: `localhost` is not HOST:PORT"));
}

/// Fourteenth review: `agw check` said ok to a key file `agw serve` refused to start on, and
/// the refusals quoted the file's values (serde's `invalid type: string "sk-ant-…"`). Check,
/// serve and `agw keys` refuse it alike, with the file, the position and the kind of problem.
#[test]
fn a_broken_key_file_is_refused_alike_and_never_quoted() {
    let dir = std::env::temp_dir().join(format!("agw-cli-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.json");
    let config = dir.join("team.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nadmin_listen: off\nbackends:\n  - {{name: a, provider: anthropic, api_key: k}}\nauth: {{keys: {{file: {}}}}}\n",
            keys.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (content, kind) in [
        ("garbage{", "not valid JSON at line 1 column 1"),
        (
            r#"{"keys": "sk-ant-api03-SECONDLEAKxxxxxxxx"}"#,
            "JSON of the wrong shape",
        ),
    ] {
        std::fs::write(&keys, content).unwrap();
        for args in [
            &["check", "--config", config][..],
            &["serve", "--config", config, "--listen", "127.0.0.1:0"],
            &["keys", "--config", config, "list"],
            &["keys", "--config", config, "create", "--name", "alice"],
        ] {
            let out = agw(args, "");
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert!(!out.status.success(), "{args:?}: {stdout}{stderr}");
            assert!(
                stderr.contains("auth.keys.file: key file ") && stderr.contains(kind),
                "{args:?}: {stderr}"
            );
            assert!(
                !stderr.contains("SECONDLEAK") && !stderr.contains("garbage"),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
