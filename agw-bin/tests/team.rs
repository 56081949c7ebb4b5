//! agw for a team, as processes: `agw keys`, client keys required, limits shared by two agw
//! processes through one real Redis, metrics on the admin listener.
//!
//! These tests run the `agw` binary with the configuration shape of
//! `agw-bin/examples/team.yaml` (auth, redis, limits, prices, metrics, `--admin-listen`). They
//! run the binary with that configuration.

mod common;

use agw_mock::MockProvider;
use common::process::TempDir;
use common::{json_post, send};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const AGW: &str = env!("CARGO_BIN_EXE_agw");

/// A child process (agw or redis-server), killed by its PID on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server of its own on a free loopback port.
fn redis() -> (Proc, String) {
    for _ in 0..10 {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (Proc(child), format!("redis://127.0.0.1:{port}/"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("redis-server did not start");
}

fn config(dir: &std::path::Path, redis: bool, rpm: u32) -> std::path::PathBuf {
    let redis = if redis {
        "redis:\n  url: ${REDIS_URL}\n  timeout_ms: 250\n  on_error: {limits: allow, budgets: deny}\n"
    } else {
        ""
    };
    config_with(
        dir,
        "  allow_unauthenticated: false\n",
        &format!(
            "{redis}\
             limits:\n  per_key:\n    requests_per_minute: {rpm}\n    budget: {{usd_per_month: 100}}\n\
             prices:\n  - {{model: \"*\", input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}\n\
             metrics: {{identity_label: true}}\n\
             backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n    \
             access: {{models: [\"claude-*\"]}}\n"
        ),
    )
}

fn keys(cfg: &std::path::Path, redis_url: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(AGW);
    cmd.arg("keys").arg("--config").arg(cfg).args(args);
    match redis_url {
        Some(u) => cmd.env("REDIS_URL", u),
        None => cmd.env_remove("REDIS_URL"),
    };
    cmd.output().unwrap()
}

fn create_key(cfg: &std::path::Path, redis_url: Option<&str>, name: &str) -> String {
    common::process::printed_key(keys(
        cfg,
        redis_url,
        &["create", "--name", name, "--team", "platform"],
    ))
}

/// Starts `agw serve`; returns the process, the proxy URL and the admin URL.
fn serve(cfg: &std::path::Path, redis_url: Option<&str>, mock: &str) -> (Proc, String, String) {
    let mut cmd = Command::new(AGW);
    cmd.args(["serve", "--config"])
        .arg(cfg)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--base-url",
            mock,
        ])
        .args(["--access-log", "off"])
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match redis_url {
        Some(u) => cmd.env("REDIS_URL", u),
        None => cmd.env_remove("REDIS_URL"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut proxy, mut admin) = (None, None);
    for _ in 0..10 {
        let Some(Ok(line)) = lines.next() else { break };
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_owned);
        if line.contains("admin") {
            admin = url;
        } else if line.starts_with("agw listening on ") {
            proxy = url;
        }
        if proxy.is_some() && admin.is_some() {
            break;
        }
    }
    let (Some(proxy), Some(admin)) = (proxy, admin) else {
        let _ = child.kill();
        panic!("agw did not print its proxy and admin addresses");
    };
    (Proc(child), proxy, admin)
}

fn message(key: &str, url: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = json_post(
        &format!("{url}/v1/messages"),
        r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agw_processes_against_one_redis_enforce_one_limit_in_total() {
    let (_redis, redis_url) = redis();
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-two");
    let cfg = config(&dir, true, 5);
    // Created through one process, used through both (keys live in Redis).
    let key = create_key(&cfg, Some(&redis_url), "alice");
    assert!(key.starts_with("agw_"), "{key}");
    let (_a, url_a, admin_a) = serve(&cfg, Some(&redis_url), &mock.base_url());
    let (_b, url_b, _) = serve(&cfg, Some(&redis_url), &mock.base_url());
    // Start with at least 15 s left in the minute, so all ten fall in one window.
    let secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    if secs() % 60 > 45 {
        tokio::time::sleep(Duration::from_secs(61 - secs() % 60)).await;
    }
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..10 {
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        let (res, body) = send(message(&key, url)).await;
        match res.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(res.headers().contains_key("retry-after"));
                assert!(String::from_utf8_lossy(&body).contains("rate_limit_error"));
            }
            s => panic!("{s}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert_eq!(
        (ok, limited),
        (5, 5),
        "one limit of 5 across both processes"
    );
    // Metrics on the admin listener, not on the proxy port.
    let (res, body) = send(
        http::Request::get(format!("{admin_a}/metrics"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("agw_requests_total"), "{text}");
    let (res, _) = send(
        http::Request::get(format!("{url_a}/metrics"))
            .header("x-api-key", &key)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_ne!(res.status(), 200, "no metrics on the proxy port");
    // Spend is shared through Redis, so `agw keys list` shows what the servers counted
    // (charged within 100 ms of each response: give the settlements a moment).
    let mut list = String::new();
    for _ in 0..30 {
        let out = keys(&cfg, Some(&redis_url), &["list"]);
        assert!(out.status.success());
        list = String::from_utf8(out.stdout).unwrap();
        let alice = list.lines().find(|l| l.starts_with("alice")).unwrap_or("");
        if list.contains("USD TODAY") && !alice.trim_end().ends_with("0.0000     0.0000") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alice = list.lines().find(|l| l.starts_with("alice")).unwrap_or("");
    let today: f64 = alice
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(list.contains("USD TODAY") && today > 0.0, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_cli_and_client_keys_with_a_file_store() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-file");
    let cfg = config(&dir, false, 100);
    let key = create_key(&cfg, None, "bob");
    let stored = std::fs::read_to_string(dir.join("keys.json")).unwrap();
    assert!(!stored.contains(&key), "only the hash is stored");
    let list = keys(&cfg, None, &["list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("bob") && list.contains("active"), "{list}");

    let (_agw, url, admin) = serve(&cfg, None, &mock.base_url());
    let (res, body) = send(message(&key, &url)).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        res.headers()
            .contains_key("x-agw-ratelimit-requests-remaining")
    );
    // The admin `/config` says what the team settings do, as `agw check` does.
    let (res, body) = send(
        http::Request::get(format!("{admin}/config"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let config = common::json(&body);
    let team: Vec<&str> = config["team"]
        .as_array()
        .expect("a team summary")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert!(
        team.iter()
            .any(|l| l.starts_with("team: clients authenticate with agw keys")),
        "{team:?}"
    );
    assert!(
        team.iter().any(|l| l.starts_with("limits: per key")),
        "{team:?}"
    );
    // No key, a wrong key: Anthropic-shaped 401.
    let (res, body) = send(json_post(&format!("{url}/v1/messages"), "{}")).await;
    assert_eq!(res.status(), 401);
    assert!(String::from_utf8_lossy(&body).contains("authentication_error"));
    // A model outside the backend's access list: 400 naming it.
    let mut req = json_post(
        &format!("{url}/v1/messages"),
        r#"{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    let (res, body) = send(req).await;
    assert_eq!(res.status(), 400);
    assert!(String::from_utf8_lossy(&body).contains("gpt-4o"));
    // Revoked: refused (the running agw re-reads the key file on reload; a fresh one at once).
    let out = keys(&cfg, None, &["revoke", "bob"]);
    assert!(out.status.success());
    let (_agw2, url2, _) = serve(&cfg, None, &mock.base_url());
    let (res, _) = send(message(&key, &url2)).await;
    assert_eq!(res.status(), 401);
}

/// A backend's model allow-list holds on every route, with no request guard configured: a
/// JSON body's `model` and a form's `model` field are checked on passthrough routes, a body
/// whose model cannot be read for certain is refused, and so is creating a batch from an
/// uploaded file (found by the fifth review: without a guard, passthrough bodies were never
/// read, so an image, audio or fine-tuning request ran any model).
#[tokio::test(flavor = "multi_thread")]
async fn a_model_allow_list_holds_on_every_route_without_guards() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-routes");
    let cfg = config(&dir, false, 1000);
    let key = create_key(&cfg, None, "carol");
    let (_agw, url, _) = serve(&cfg, None, &mock.base_url());
    let post = |path: &str, content_type: &str, body: &[u8]| {
        http::Request::post(format!("{url}{path}"))
            .header("content-type", content_type)
            .header("x-api-key", key.as_str())
            .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
                body,
            )))
            .unwrap()
    };
    let form = |fields: &[(&str, &str)]| {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        body
    };
    const FORM: &str = "multipart/form-data; boundary=XyZ";
    let refused: Vec<(&str, &str, String, &str)> = vec![
        (
            "/v1/images/generations",
            "application/json",
            r#"{"model":"gpt-image-1","prompt":"a cat"}"#.into(),
            "gpt-image-1",
        ),
        (
            "/v1/fine_tuning/jobs",
            "text/plain",
            r#" {"training_file":"file-abc","model":"gpt-4o"}"#.into(),
            "gpt-4o",
        ),
        (
            "/v1/audio/transcriptions",
            FORM,
            form(&[("file", "RIFF...."), ("model", "whisper-1")]),
            "whisper-1",
        ),
        (
            "/v1/images/edits",
            FORM,
            form(&[("model", "claude-x"), ("model", "gpt-image-1")]),
            "`model` twice",
        ),
        (
            "/v1/audio/speech",
            "application/json",
            r#"{"model":"claude-x","model":"tts-1-hd"}"#.into(),
            "names `model` twice",
        ),
        (
            "/v1/images/generations",
            "application/json",
            r#"{"model":"gpt-image-1", /* lenient */ "n":1}"#.into(),
            "cannot be read",
        ),
        (
            "/v1/BATCHES",
            "application/json",
            r#"{"input_file_id":"file-abc","endpoint":"/v1/chat/completions"}"#.into(),
            "uploaded file",
        ),
        (
            "/v1/batches",
            "application/json",
            r#"{"input_file_id":"file-abc","endpoint":"/v1/chat/completions"}"#.into(),
            "uploaded file",
        ),
        // A model named deeper in the body runs too (seventh review): an eval run's.
        (
            "/v1/evals/eval_1/runs",
            "application/json",
            r#"{"name":"r","data_source":{"type":"responses","model":"o3-pro"}}"#.into(),
            "o3-pro",
        ),
        (
            "/v1/evals/eval_1/runs",
            "application/json",
            r#"{"data_source":{"model":"claude-x","MODEL":"o3-pro"}}"#.into(),
            "duplicate key `model`",
        ),
        // Ollama's own keys on its `/api/...` paths.
        (
            "/api/create",
            "application/json",
            r#"{"model":"claude-x","from":"qwen3:235b"}"#.into(),
            "qwen3:235b",
        ),
        (
            "/api/pull",
            "application/json",
            r#"{"name":"qwen3:235b"}"#.into(),
            "qwen3:235b",
        ),
        // The regression round's: a byte order mark, an urlencoded form, a folded header.
        (
            "/v1/images/generations",
            "application/json",
            "\u{feff}{\"model\":\"gpt-image-1\"}".into(),
            "gpt-image-1",
        ),
        (
            "/v1/audio/speech",
            "application/x-www-form-urlencoded",
            "input=hi&model=tts-1-hd".into(),
            "tts-1-hd",
        ),
        (
            "/v1/audio/transcriptions",
            FORM,
            "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n"
                .into(),
            "whisper-1",
        ),
    ];
    for (path, content_type, body, says) in &refused {
        let (res, answer) = send(post(path, content_type, body.as_bytes())).await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(res.status(), 400, "{path}: {answer}");
        assert!(answer.contains(says), "{path}: {answer}");
    }
    // Two content types, or one that is not text: a server may read either (final review).
    for types in [
        vec![
            http::HeaderValue::from_static(FORM),
            http::HeaderValue::from_static("multipart/form-data; boundary=Other"),
        ],
        vec![http::HeaderValue::from_bytes(b"multipart/form-data; boundary=XyZ; x=\xe9").unwrap()],
    ] {
        let mut req = post(
            "/v1/audio/transcriptions",
            "text/plain",
            form(&[("model", "whisper-1")]).as_bytes(),
        );
        req.headers_mut().remove("content-type");
        for t in types {
            req.headers_mut().append("content-type", t);
        }
        let (res, answer) = send(req).await;
        assert_eq!(res.status(), 400, "{}", String::from_utf8_lossy(&answer));
    }
    assert!(
        mock.requests().is_empty(),
        "nothing refused reached the provider: {:?}",
        mock.requests().iter().map(|r| &r.uri).collect::<Vec<_>>()
    );
    // Allowed models, and bodies that name none, go on.
    let passed: Vec<(&str, &str, String)> = vec![
        (
            "/v1/images/generations",
            "application/json",
            r#"{"model":"claude-x","prompt":"a cat"}"#.into(),
        ),
        (
            "/v1/audio/transcriptions",
            FORM,
            form(&[("model", "claude-x"), ("file", "RIFF....")]),
        ),
        (
            "/v1/files",
            FORM,
            form(&[("purpose", "batch"), ("file", "{\"model\":\"gpt-4o\"}")]),
        ),
        (
            "/v1/uploads/part",
            "application/octet-stream",
            "\u{0}\u{1}binary".into(),
        ),
        // (An eval's run is refused under token limits: its usage is never read.)
        (
            "/v1/evals",
            "application/json",
            r#"{"data_source_config":{"type":"custom","model":"claude-x"}}"#.into(),
        ),
        (
            "/api/show",
            "application/json",
            r#"{"name":"claude-x"}"#.into(),
        ),
    ];
    for (path, content_type, body) in &passed {
        let (res, answer) = send(post(path, content_type, body.as_bytes())).await;
        assert_ne!(
            res.status(),
            400,
            "{path}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let forwarded: Vec<String> = mock.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        forwarded,
        passed.iter().map(|p| p.0.to_owned()).collect::<Vec<_>>()
    );
}

#[test]
fn an_open_listener_with_an_injected_key_and_no_client_auth_refuses_to_start() {
    let dir = TempDir::new("team-open");
    let cfg = dir.join("open.yaml");
    std::fs::write(
        &cfg,
        "backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n",
    )
    .unwrap();
    let out = Command::new(AGW)
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("allow_unauthenticated"), "{err}");
}

#[allow(dead_code)]
#[path = "clients/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "clients/install.rs"]
mod install;

/// Claude Code itself against agw with client keys required: a wrong key is refused with a
/// 401 that Claude Code reports (and nothing reaches the provider); the right key works as
/// `ANTHROPIC_API_KEY` and as `ANTHROPIC_AUTH_TOKEN`.
#[tokio::test(flavor = "multi_thread")]
async fn claude_code_with_client_keys() {
    use harness::{Agw, AgwOptions, Claude, Credential, Scratch};
    let tools = install::tools().await;
    let scratch = Scratch::new("team-keys");
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-claude");
    let cfg = config(&dir, false, 100);
    let key = create_key(&cfg, None, "alice");
    let agw = Agw::start(AgwOptions {
        config: Some(&cfg),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
        .credential(Credential::ApiKey("agw_this-is-not-a-key"))
        .run()
        .await;
    assert!(run.failed(), "{run}");
    assert!(
        run.stdout.contains("401") || run.stdout.contains("Invalid API key"),
        "{run}"
    );
    assert!(mock.requests().is_empty(), "nothing reaches the provider");
    // A developer's own provider key, with no agw key: Claude Code shows agw's message saying
    // what to set, not its own login hint (real-client review: a message naming the
    // `x-api-key` header was replaced by "Invalid API key · Fix external API key").
    for credential in [
        Credential::ApiKey("sk-ant-api03-personal-key-of-the-developer"),
        Credential::AuthToken("sk-ant-api03-personal-key-of-the-developer"),
    ] {
        let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
            .credential(credential)
            .run()
            .await;
        assert!(run.failed(), "{run}");
        assert!(run.stdout.contains("no client credential"), "{run}");
    }
    assert!(mock.requests().is_empty(), "nothing reaches the provider");
    for credential in [Credential::ApiKey(&key), Credential::AuthToken(&key)] {
        let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
            .credential(credential)
            .run()
            .await;
        assert_eq!(
            run.expect_success().stdout.trim(),
            "Hello from the mock provider.",
            "{run}"
        );
    }
    // The provider saw agw's key only, never the client's.
    for r in mock.requests() {
        let all = format!("{:?}", r.headers);
        assert!(!all.contains(&key), "the client key reached the provider");
    }
    agw.stop().await;
}

/// Over a rate limit agw answers a provider-shaped 429 with `retry-after`; the real Claude Code
/// backs off for that long and retries, and the retry (in the next window) is answered.
#[tokio::test(flavor = "multi_thread")]
async fn claude_code_backs_off_on_a_429_and_retries() {
    use harness::{Agw, AgwOptions, Claude, Credential, Scratch};
    let tools = install::tools().await;
    let scratch = Scratch::new("team-429");
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-claude-429");
    let cfg = config(&dir, false, 1);
    let key = create_key(&cfg, None, "bob");
    let agw = Agw::start(AgwOptions {
        config: Some(&cfg),
        base_url: Some(&mock.base_url()),
        ..Default::default()
    })
    .await;
    // Both runs in one minute window, the second late in it, so that the window it is told
    // to wait for (`retry-after`) is short and the harness's 60 s bound holds.
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 60
    };
    if second() > 40 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second())).await;
    }
    let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
        .credential(Credential::ApiKey(&key))
        .run()
        .await;
    assert_eq!(
        run.expect_success().stdout.trim(),
        "Hello from the mock provider."
    );
    if second() < 50 {
        tokio::time::sleep(std::time::Duration::from_secs(50 - second())).await;
    }
    let started = std::time::Instant::now();
    let run = Claude::new(tools, &scratch, &agw.url, "Say hello")
        .credential(Credential::ApiKey(&key))
        .retries(2)
        .run()
        .await;
    assert_eq!(
        run.expect_success().stdout.trim(),
        "Hello from the mock provider.",
        "the retry after the 429 is answered"
    );
    // Started at second 50 or later of the window, answered only in the next one: the first
    // attempt got the 429 and Claude Code waited (an unlimited run takes a second or two).
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "Claude Code waited for retry-after before retrying ({:?})",
        started.elapsed()
    );
    let log = agw.stop().await;
    let answered = mock
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/v1/messages"))
        .count();
    assert_eq!(answered, 2, "one request per run reached the provider");
    assert!(!log.contains(&key), "the key is never logged");
}

/// Writes a configuration of client keys in `dir/keys.json` with `extra` (YAML) after it.
fn config_with(dir: &std::path::Path, auth: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("team.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\n\
             admin_listen: 127.0.0.1:0\n\
             auth:\n  keys:\n    file: {keys}\n{auth}\
             {extra}",
            keys = dir.join("keys.json").display(),
        ),
    )
    .unwrap();
    path
}

/// Found by the red-team review: with `allow_unauthenticated`, the keys were never looked at,
/// so a revoked or made-up key passed, per-key limits did not count, and (with no provider key
/// to inject) the client's agw key went upstream.
#[tokio::test(flavor = "multi_thread")]
async fn allow_unauthenticated_still_checks_every_presented_credential() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-unauth");
    let cfg = config_with(
        &dir,
        "  allow_unauthenticated: true\n",
        "limits:\n  per_key:\n    requests_per_minute: 2\n\
         backends:\n  - name: anthropic\n    provider: anthropic\n",
    );
    let key = create_key(&cfg, None, "alice");
    let gone = create_key(&cfg, None, "dave");
    assert!(keys(&cfg, None, &["revoke", "dave"]).status.success());
    let (_agw, url, _) = serve(&cfg, None, &mock.base_url());
    // A valid key is counted against its limit: the third request in the minute is refused.
    for expect in [200, 200, 429] {
        let (res, body) = send(message(&key, &url)).await;
        assert_eq!(res.status(), expect, "{}", String::from_utf8_lossy(&body));
    }
    // A made-up key and a revoked one are refused, not taken for "no credential".
    for bad in ["agw_made_up_0000000000000000000000", gone.as_str()] {
        let (res, _) = send(message(bad, &url)).await;
        assert_eq!(res.status(), 401);
        let mut req = message("x", &url);
        req.headers_mut().remove("x-api-key");
        req.headers_mut()
            .insert("authorization", format!("Bearer {bad}").parse().unwrap());
        let (res, _) = send(req).await;
        assert_eq!(res.status(), 401);
    }
    // No credential at all: let through, as configured.
    let mut req = message("x", &url);
    req.headers_mut().remove("x-api-key");
    let (res, _) = send(req).await;
    assert_eq!(res.status(), 200);
    // A client's own provider key (no agw credential): let through as anonymous, and (this
    // backend injects no key) passed to the provider, as without client authentication.
    let (res, _) = send(message("sk-ant-api03-byok", &url)).await;
    assert_eq!(res.status(), 200);
    // No agw credential ever reached the provider; the brought key did.
    let seen = mock.requests();
    assert_eq!(
        seen.len(),
        4,
        "two keyed requests, the anonymous one, the brought key"
    );
    for r in &seen[..3] {
        assert!(r.headers.get("x-api-key").is_none(), "{:?}", r.headers);
        assert!(r.headers.get("authorization").is_none(), "{:?}", r.headers);
    }
    assert_eq!(seen[3].headers["x-api-key"], "sk-ant-api03-byok");
}

/// Found by the red-team review: a response without usage (an OpenAI stream the client did
/// not ask `include_usage` for) charged no spend, so a USD budget never ran out. An
/// `openai_compatible` backend: agw asks `provider: openai` streams for their usage itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_budget_is_charged_an_estimate_when_the_response_reports_no_usage() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-nousage");
    // 4 input tokens (16 bytes) and 1,000 output tokens at $15 per million: ~$0.015 each.
    let cfg = config_with(
        &dir,
        "",
        "limits:\n  per_key:\n    budget: {usd_per_day: 0.04}\n\
         prices:\n  - {model: \"gpt-*\", input: 3, output: 15}\n\
         backends:\n  - name: openai\n    provider: openai_compatible\n    \
         base_url: http://127.0.0.1:1\n    api_key: sk-injected\n",
    );
    let key = create_key(&cfg, None, "bob");
    let carol = create_key(&cfg, None, "carol");
    let (_agw, url, _) = serve(&cfg, None, &mock.base_url());
    let body = r#"{"model":"gpt-4o","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let statuses = bearer_streams(&url, &key, body, 6).await;
    // Each request holds its estimated cost while in flight: after two ($0.03 spent) a third
    // would pass the budget, and nothing in flight will give any back (400, not retried).
    assert_eq!(&statuses[..3], &[200, 200, 400], "{statuses:?}");
    assert!(
        statuses[3..].iter().all(|&s| s == 400),
        "the budget has run short: {statuses:?}"
    );
    // Without `max_tokens` the output is estimated at 4,096 tokens (~$0.06, found by the
    // review: it was estimated at none): more than the whole day's budget, refused (400).
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let statuses = bearer_streams(&url, &carol, body, 2).await;
    assert_eq!(statuses, [400, 400], "{statuses:?}");
}

/// A response without usage to a request without a cap is charged the configured
/// `default_estimate_tokens` as its output, what the limiter held (found reading the code
/// again: the usage layer charged 4,096 whatever was configured, so a budget ran out 20×
/// sooner than its holds said, or a larger default was undercharged).
#[tokio::test(flavor = "multi_thread")]
async fn a_response_without_usage_is_charged_the_configured_default_estimate() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-nousage-default");
    // $15 per million output tokens: 200 tokens are $0.003, 4,096 are $0.061.
    let cfg = config_with(
        &dir,
        "",
        "limits:\n  default_estimate_tokens: 200\n  per_key:\n    budget: {usd_per_day: 0.04}\n\
         prices:\n  - {model: \"gpt-*\", input: 3, output: 15}\n\
         backends:\n  - name: openai\n    provider: openai_compatible\n    \
         base_url: http://127.0.0.1:1\n    api_key: sk-injected\n",
    );
    let key = create_key(&cfg, None, "dana");
    let (_agw, url, _) = serve(&cfg, None, &mock.base_url());
    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let statuses = bearer_streams(&url, &key, body, 4).await;
    assert_eq!(statuses, [200, 200, 200, 200], "{statuses:?}");
}

/// Sends `n` chat streams with `key` as a Bearer token, one after another, each answered
/// without usage and not refused as unauthenticated; waits after each for the settlement
/// (charged off the response path). Returns their statuses.
async fn bearer_streams(url: &str, key: &str, body: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let mut req = json_post(&format!("{url}/v1/chat/completions"), body);
        req.headers_mut().remove("x-api-key");
        req.headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        let (res, body) = send(req).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("\"usage\":{"),
            "the stream carries no usage"
        );
        assert_ne!(res.status(), 401, "{}", String::from_utf8_lossy(&body));
        statuses.push(res.status().as_u16());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    statuses
}

/// A key file broken by a hand edit is not loaded: the keys loaded before keep working, and
/// agw says so once on stderr, naming the file, not its content (found by the sixth review:
/// nothing was logged, so a revocation that broke the JSON was silently never applied).
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_key_file_keeps_the_old_keys_and_says_so() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-broken-keys");
    let cfg = config(&dir.0, false, 1000);
    let key = create_key(&cfg, None, "erin");
    let agw = common::process::Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}", agw.addr);
    let (res, _) = send(message(&key, &url)).await;
    assert_eq!(res.status(), 200);
    let file = dir.0.join("keys.json");
    let text = std::fs::read_to_string(&file).unwrap();
    // The first 100 bytes: not JSON any more. A later mtime, for coarse file systems.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, &text.as_bytes()[..100]).unwrap();
    let mut said = String::new();
    for _ in 0..60 {
        // Each request gives the store a chance to look at the file (at most once a second).
        let (res, _) = send(message(&key, &url)).await;
        assert_eq!(res.status(), 200, "the old keys stay in use");
        said = agw.stderr();
        if said.contains("key file not reloaded") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("key file not reloaded"))
        .collect();
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].contains("keys.json"), "{}", lines[0]);
    assert!(!lines[0].contains(&text[..40]), "{}", lines[0]);
    // Said once per change: more requests over more than a second add no line.
    for _ in 0..12 {
        send(message(&key, &url)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let again = agw.stderr().matches("key file not reloaded").count();
    assert_eq!(again, 1, "{}", agw.stderr());
}

/// A key file that does not exist is an empty store: said at start, and said once when a
/// watched file disappears (operations review: every key got a 401 with nothing logged).
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_removed_key_file_is_said() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-missing-keys");
    let cfg = config(&dir.0, false, 1000);
    let file = dir.0.join("keys.json");
    assert!(!file.exists());
    let agw = common::process::Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}", agw.addr);
    let missing: Vec<String> = agw
        .stderr()
        .lines()
        .filter(|l| l.contains("does not exist"))
        .map(str::to_owned)
        .collect();
    assert_eq!(missing.len(), 1, "{}", agw.stderr());
    assert!(
        missing[0].contains(&format!("key file {} does not exist", file.display()))
            && missing[0].contains("no client keys until it is created"),
        "{}",
        missing[0]
    );

    // Created: the running agw takes it up; removed: it says so once.
    let key = create_key(&cfg, None, "ivan");
    let mut status = 0;
    for _ in 0..60 {
        status = send(message(&key, &url)).await.0.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the new key file is read");
    std::fs::remove_file(&file).unwrap();
    let mut said = String::new();
    for _ in 0..60 {
        let (res, _) = send(message(&key, &url)).await;
        said = agw.stderr();
        if res.status() == 401 && said.contains("was removed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed: Vec<&str> = said.lines().filter(|l| l.contains("was removed")).collect();
    assert_eq!(removed.len(), 1, "{said}");
    assert!(
        removed[0].contains(&format!("key file {} was removed", file.display())),
        "{}",
        removed[0]
    );
    // Once: more requests over more than a second add no line.
    for _ in 0..12 {
        let (res, _) = send(message(&key, &url)).await;
        assert_eq!(res.status(), 401);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(agw.stderr().matches("was removed").count(), 1);
}

/// The sum of the Redis counters matching `pattern` (redis-cli, as an operator would look).
fn redis_sum(url: &str, pattern: &str) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-u", url, "--no-raw", "EVAL"])
        .arg(
            "local s = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
             s = s + tonumber(redis.call('GET', k)) end return s",
        )
        .args(["0", pattern])
        .output()
        .expect("redis-cli is installed with redis-server");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_start_matches("(integer) ")
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "redis-cli: {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_gives_back_leased_rate_limits() {
    let (_redis, redis_url) = redis();
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-lease");
    // A limit large enough to lease: the replica charges ahead of its requests.
    let cfg = config(&dir, true, 1_000_000);
    let key = create_key(&cfg, Some(&redis_url), "alice");
    let agw = common::process::Proc::spawn_env(
        &dir,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--base-url",
            &mock.base_url(),
        ],
        &[("REDIS_URL", &redis_url)],
    );
    let url = agw.url("");
    for _ in 0..20 {
        let (res, body) = send(message(&key, &url)).await;
        assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    }
    let counted = redis_sum(&redis_url, "agw:k:alice:rpm:*");
    assert!(
        counted > 20,
        "{counted}: nothing leased ahead of the requests"
    );
    agw.signal("TERM");
    assert!(agw.wait_exit().await.success());
    assert_eq!(
        redis_sum(&redis_url, "agw:k:alice:rpm:*"),
        20,
        "given back at shutdown: the counter holds what was admitted"
    );
}

/// Review of the tenth review's fixes: a reload that removes `auth:` from the file kept the
/// team built at start (keys, limits) but took the authentication off every backend, while the
/// log said auth changes wait for a restart. Callers stay authenticated until a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_drops_auth_keeps_callers_authenticated() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("team-reload-auth");
    let cfg = config(&dir.0, false, 1000);
    let key = create_key(&cfg, None, "frank");
    let agw = common::process::Proc::serve_config(&dir, &cfg, &mock.base_url());
    let url = format!("http://{}", agw.addr);
    assert_eq!(send(message("agw_wrong", &url)).await.0.status(), 401);
    assert_eq!(send(message(&key, &url)).await.0.status(), 200);
    // The same file without its `auth:` section, and a guard rule to see the reload land.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let auth_start = text.find("auth:\n").unwrap();
    let auth_end = auth_start + text[auth_start..].find("limits:").unwrap();
    let without = format!(
        "{}{}    guards:\n      request:\n        - name: no-zebra\n          regex: [zebra]\n          action: reject\n          message: no zebra\n",
        &text[..auth_start],
        &text[auth_end..]
    );
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&cfg, without).unwrap();
    let zebra = |key: &str| {
        let mut req = json_post(
            &format!("{url}/v1/messages"),
            r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"zebra"}]}"#,
        );
        req.headers_mut().insert("x-api-key", key.parse().unwrap());
        req
    };
    let mut landed = false;
    for _ in 0..100 {
        if send(zebra(&key)).await.0.status() == 400 {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(landed, "the reload was not applied: {}", agw.stderr());
    assert!(
        agw.stderr().contains("take effect on restart"),
        "{}",
        agw.stderr()
    );
    // Still authenticated: no key, or a wrong one, is refused; the right one works.
    assert_eq!(send(message("agw_wrong", &url)).await.0.status(), 401);
    let mut req = json_post(
        &format!("{url}/v1/messages"),
        r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    req.headers_mut().remove("x-api-key");
    assert_eq!(send(req).await.0.status(), 401);
    assert_eq!(send(message(&key, &url)).await.0.status(), 200);
}
