//! Running agw as a service: hot reload (SIGHUP, a Kubernetes `..data` symlink swap, a bad
//! config), the admin listener, graceful drain on SIGTERM, logs for early disconnects, hostile
//! clients (slow uploaders and idle connections) and TLS. Real processes, real signals, real
//! sockets on 127.0.0.1.

mod common;

use agw_bin::config::{Env, Gateway, Overrides};
use agw_bin::log::AccessLog;
use agw_bin::server::{App, Reloader, Runtime, Serving, TlsFiles, TlsHandle, serve_with};
use agw_mock::MockProvider;
use bytes::Bytes;
use common::process::{Proc, TempDir};
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn get(url: &str) -> (u16, String) {
    let (res, body) = send(Request::get(url).body(Full::default()).unwrap()).await;
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn message(text: &str) -> String {
    serde_json::json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
        .to_string()
}

fn stream_message(text: &str) -> String {
    serde_json::json!({"model": "m", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": text}]})
    .to_string()
}

async fn post_status(url: &str, text: &str) -> u16 {
    send(json_post(url, &message(text)))
        .await
        .0
        .status()
        .as_u16()
}

/// Polls `check` every 50 ms for up to 20 s.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 20 s: {what}");
}

fn config_rejecting(word: &str) -> String {
    format!(
        "backends:\n  - name: anthropic\n    provider: anthropic\n    guards:\n      request:\n        - name: no-{word}\n          regex: [\"{word}\"]\n          action: reject\n          message: no {word}\n"
    )
}

/// Writes `text` as a new ConfigMap generation and swaps `..data` to it the way the kubelet
/// does: a new timestamped directory, a temporary symlink, and a rename over `..data`.
fn configmap_generation(dir: &TempDir, generation: &str, text: &str) {
    let gen_dir = dir.path(generation);
    std::fs::create_dir_all(&gen_dir).unwrap();
    std::fs::write(gen_dir.join("config.yaml"), text).unwrap();
    let tmp = dir.path("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(generation, &tmp).unwrap();
    std::fs::rename(&tmp, dir.path("..data")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_follows_configmap_symlink_swap_and_sighup_and_keeps_serving_on_bad_config() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("reload");
    configmap_generation(&dir, "..2026_11_28_10_00_00.1", &config_rejecting("alpha"));
    std::os::unix::fs::symlink("..data/config.yaml", dir.path("config.yaml")).unwrap();
    let config = dir.path("config.yaml");
    let agw = Proc::serve_config(&dir, &config, &mock.base_url());
    let url = agw.url("/v1/messages");
    assert_eq!(post_status(&url, "alpha").await, 400);
    assert_eq!(post_status(&url, "beta").await, 200);

    // A stream opened under the old configuration.
    let res = open(json_post(&url, &stream_message("mock:hold fine"))).await;
    assert_eq!(res.status(), 200);
    let mut held = res.into_body();
    let first = tokio::time::timeout(TIMEOUT, held.frame()).await.unwrap();
    assert!(first.unwrap().unwrap().data_ref().is_some());

    configmap_generation(&dir, "..2026_11_28_10_05_00.2", &config_rejecting("beta"));
    eventually("the swapped config is served", || async {
        post_status(&url, "beta").await == 400
    })
    .await;
    assert_eq!(post_status(&url, "alpha").await, 200);
    mock.release();
    let rest = tokio::time::timeout(TIMEOUT, held.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));

    // A broken generation: logged with its location, the running config stays.
    configmap_generation(
        &dir,
        "..2026_11_28_10_10_00.3",
        "backends:\n  - name: anthropic\n    provider: anthropic\n    bogus_field: 1\n",
    );
    eventually("the failed reload is counted", || async {
        let (_, cfg) = get(&agw.admin_url("/config")).await;
        json(cfg.as_bytes())["reloads"]["failed"] == 1
    })
    .await;
    assert_eq!(post_status(&url, "beta").await, 400);
    let log = agw.stderr();
    assert!(
        log.lines().any(|l| l.contains("reload failed")
            && l.contains("config.yaml:4:")
            && l.contains("bogus_field")),
        "{log}"
    );
    let (status, _) = get(&agw.admin_url("/readyz")).await;
    assert_eq!(status, 200);

    // SIGHUP reloads too (here: the file was fixed in place behind the same symlink).
    std::fs::write(
        dir.path("..2026_11_28_10_10_00.3/config.yaml"),
        config_rejecting("gamma"),
    )
    .unwrap();
    agw.signal("HUP");
    eventually("SIGHUP reload", || async {
        post_status(&url, "gamma").await == 400
    })
    .await;
    let (_, cfg) = get(&agw.admin_url("/config")).await;
    let cfg = json(cfg.as_bytes());
    assert!(cfg["reloads"]["ok"].as_u64().unwrap() >= 2, "{cfg}");
    assert!(cfg["reloads"]["last_ok_unix"].as_u64().is_some(), "{cfg}");
    assert_eq!(post_status(&url, "beta").await, 200);
}

/// The shutdown's grace period, the drain delay and the idle timeout are taken at start: a
/// reload that changes them says they wait for a restart, and `/config` keeps showing what is
/// in effect (review: a changed grace period was shown as reloaded, and the old one used).
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_says_which_settings_wait_for_a_restart() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("restart-only");
    let config = dir.path("agw.yaml");
    let with = |limits: &str| format!("limits: {{{limits}}}\n{}", config_rejecting("alpha"));
    std::fs::write(&config, with("shutdown_grace_secs: 10")).unwrap();
    let agw = Proc::serve_config(&dir, &config, &mock.base_url());
    // Serving, with its reload watcher (and SIGHUP handler) running: the first request through
    // the proxy has been answered.
    assert_eq!(post_status(&agw.url("/v1/messages"), "alpha").await, 400);
    std::fs::write(
        &config,
        with("shutdown_grace_secs: 2, drain_delay_secs: 3, idle_timeout_secs: 5"),
    )
    .unwrap();
    agw.signal("HUP");
    eventually("the reload is counted", || async {
        let (_, cfg) = get(&agw.admin_url("/config")).await;
        json(cfg.as_bytes())["reloads"]["ok"].as_u64() >= Some(1)
    })
    .await;
    let log = agw.stderr();
    assert!(
        log.lines().any(|l| l.contains(
            "reload: changes to shutdown_grace_secs, drain_delay_secs, idle_timeout_secs take \
             effect on restart"
        )),
        "{log}"
    );
    let (_, cfg) = get(&agw.admin_url("/config")).await;
    assert!(cfg.contains("\"shutdown_grace_secs\":10"), "{cfg}");
    assert!(!cfg.contains("\"drain_delay_secs\":3"), "{cfg}");
    // And says what waits for the restart.
    assert_eq!(
        json(cfg.as_bytes())["pending_restart"],
        serde_json::json!([
            "shutdown_grace_secs",
            "drain_delay_secs",
            "idle_timeout_secs"
        ]),
        "{cfg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_answer_on_their_own_port_and_redact_secrets() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("admin");
    let secret = "sk-ant-api03-SECRETSECRETSECRET";
    let config = dir.path("agw.yaml");
    std::fs::write(
        &config,
        format!("backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: {secret}\n"),
    )
    .unwrap();
    let agw = Proc::serve_config(&dir, &config, &mock.base_url());
    assert_eq!(get(&agw.admin_url("/healthz")).await.0, 200);
    let (status, body) = get(&agw.admin_url("/readyz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    let (status, body) = get(&agw.admin_url("/config")).await;
    assert_eq!(status, 200);
    assert!(body.contains("backend anthropic"), "{body}");
    assert!(!body.contains(secret) && !body.contains("SECRET"), "{body}");
    assert_eq!(get(&agw.admin_url("/nope")).await.0, 404);
    // The proxy port keeps its own /healthz; admin-only paths are not there.
    assert_eq!(get(&agw.url("/healthz")).await.0, 200);
    assert_ne!(get(&agw.url("/readyz")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_turns_readiness_off_first_then_closes_and_lets_streams_finish() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("drain");
    let agw = Proc::spawn(
        &dir,
        &["--base-url", &mock.base_url(), "--drain-delay", "5"],
    );
    let url = agw.url("/v1/messages");
    let res = open(json_post(&url, &stream_message("mock:hold hi"))).await;
    assert_eq!(res.status(), 200);
    let mut held = res.into_body();
    let first = tokio::time::timeout(TIMEOUT, held.frame()).await.unwrap();
    assert!(first.unwrap().unwrap().data_ref().is_some());

    agw.signal("TERM");
    eventually("readiness off", || async {
        get(&agw.admin_url("/readyz")).await.0 == 503
    })
    .await;
    // Still serving new connections during the drain delay.
    let fresh = std::net::TcpStream::connect(&agw.addr);
    assert!(fresh.is_ok(), "refused during the drain delay");
    assert_eq!(post_status(&url, "hello").await, 200);
    // Then the listener closes.
    eventually("listener closed", || async {
        tokio::net::TcpStream::connect(&agw.addr).await.is_err()
    })
    .await;
    mock.release();
    let rest = tokio::time::timeout(TIMEOUT, held.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
    let status = agw.wait_exit().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn early_disconnects_are_logged_with_request_id_in_json() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("logs");
    let agw = Proc::spawn(
        &dir,
        &["--base-url", &mock.base_url(), "--log-format", "json"],
    );
    let url = agw.url("/v1/messages");
    // Answered upstream: the upstream's request-id reaches the client and the log line.
    let (res, _) = send(json_post(&url, &message("hello"))).await;
    let upstream_id = res.headers()["request-id"].to_str().unwrap().to_owned();
    // Rejected by agw itself: agw's own id.
    let (res, _) = send(json_post(&url, &message("my credit card"))).await;
    assert_eq!(res.status(), 400);
    let id = res.headers()["request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("agw_"), "{id}");
    // The client goes away while the upstream has not answered.
    let req = json_post(&url, &message("mock:delay_ms=3000 slow"));
    let _ = tokio::time::timeout(Duration::from_millis(300), client().request(req)).await;
    let lines = || -> Vec<serde_json::Value> {
        agw.stderr()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| json(l.as_bytes()))
            .collect()
    };
    eventually("the disconnect is logged", || {
        let found = lines().iter().any(|l| l["status"] == 499);
        async move { found }
    })
    .await;
    let lines = lines();
    let closed = lines.iter().find(|l| l["status"] == 499).unwrap();
    assert_eq!(closed["cause"], "client_closed", "{closed}");
    assert_eq!(closed["path"], "/v1/messages");
    assert!(closed["request_id"].as_str().unwrap().starts_with("agw_"));
    let rejected = lines
        .iter()
        .find(|l| l["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(rejected["status"], 400, "{rejected}");
    assert_eq!(rejected["guard"], "reject", "{rejected}");
    let done = lines
        .iter()
        .find(|l| l["upstream_request_id"] == upstream_id.as_str())
        .unwrap();
    assert_eq!(done["status"], 200, "{done}");
    assert!(
        done["request_id"].as_str().unwrap().starts_with("agw_"),
        "{done}"
    );
    assert!(
        done["total_ms"].is_number() && done["upstream_ms"].is_number(),
        "{done}"
    );
    // Every line on stderr is JSON, agw's own messages too (the last: shutting down).
    let stderr = dir.path("stderr.log");
    agw.signal("TERM");
    assert!(agw.wait_exit().await.success());
    let log = std::fs::read_to_string(stderr).unwrap();
    for line in log.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    let last = json(log.lines().last().unwrap().as_bytes());
    assert_eq!(
        (last["level"].as_str(), last["msg"].as_str()),
        (Some("info"), Some("shut down")),
        "{last}"
    );
}

/// Hostile clients: slow uploaders trickling request bodies and idle connections, while normal
/// requests are served. Documented bound: agw's RSS stays under 64 MiB throughout (it starts
/// near 8 MiB), and the uploaders are cut off by the body deadline.
#[tokio::test(flavor = "multi_thread")]
async fn slow_uploaders_and_idle_connections_are_bounded() {
    const UPLOADERS: usize = 300;
    const IDLE: usize = 1000;
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("hostile");
    let agw = Proc::spawn(
        &dir,
        &[
            "--base-url",
            &mock.base_url(),
            "--body-timeout",
            "3",
            "--idle-timeout",
            "30",
        ],
    );
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(tokio::net::TcpStream::connect(&agw.addr).await.unwrap());
    }
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let mut uploaders = Vec::with_capacity(UPLOADERS);
    for _ in 0..UPLOADERS {
        let addr = agw.addr.clone();
        let done = done_rx.clone();
        uploaders.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\""
            );
            s.write_all(head.as_bytes()).await.unwrap();
            // Trickle until agw closes the connection (bounded: 60 writes).
            for _ in 0..60 {
                if *done.borrow() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                if s.write_all(b"aaaaaaaaaa").await.is_err() {
                    return true;
                }
            }
            false
        }));
    }
    let mut peak = agw.rss_kib();
    let url = agw.url("/v1/messages");
    for i in 0..40 {
        assert_eq!(post_status(&url, &format!("hello {i}")).await, 200);
        peak = peak.max(agw.rss_kib());
    }
    let mut cut = 0;
    for u in uploaders {
        if tokio::time::timeout(Duration::from_secs(40), u)
            .await
            .unwrap()
            .unwrap()
        {
            cut += 1;
        }
        peak = peak.max(agw.rss_kib());
    }
    let _ = done_tx.send(true);
    assert_eq!(
        cut, UPLOADERS,
        "every slow uploader is cut off by the body deadline"
    );
    eprintln!("hostile clients: agw RSS peaked at {peak} KiB");
    assert!(peak < RSS_BOUND_KIB, "agw RSS peaked at {peak} KiB");
    // Still serving, and the cut uploads were logged as such.
    assert_eq!(post_status(&url, "after").await, 200);
    let log = agw.stderr();
    assert!(
        log.contains("status=408") && log.contains("guard=timeout"),
        "{log:.2000}"
    );
    drop(idle);
}

/// A body the body stage does not read (no request rules: a passthrough upload streamed on
/// to the provider) is cut by the connection's own timer, a little after the deadline, and
/// logged as such: agw cannot answer a request whose body is already going upstream.
#[tokio::test(flavor = "multi_thread")]
async fn an_unread_trickled_upload_is_cut_by_the_connections_timer() {
    use tokio::io::AsyncReadExt;
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("trickle-unread");
    let config = dir.path("agw.yaml");
    std::fs::write(
        &config,
        "backends:\n  - name: anthropic\n    provider: anthropic\n",
    )
    .unwrap();
    let agw = Proc::serve_config_with(&dir, &config, &mock.base_url(), &["--body-timeout", "1"]);
    let mut s = tokio::net::TcpStream::connect(&agw.addr).await.unwrap();
    s.write_all(
        b"POST /v1/files HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nabc",
    )
    .await
    .unwrap();
    let mut closed = false;
    // Trickle (bounded: 40 writes of 250 ms) until agw closes the connection.
    for _ in 0..40 {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {}
            Err(_) => {
                if s.write_all(b"x").await.is_err() {
                    closed = true;
                    break;
                }
            }
        }
    }
    assert!(closed, "the connection stayed open");
    eventually("the cut is logged", || async {
        let log = agw.stderr();
        log.contains("status=408") && log.contains("cause=body_timeout")
    })
    .await;
}

/// Found by the tenth red-team review: a client trickling its body was disconnected at the
/// deadline with no answer (the connection's timer fired before the body stage's). It gets a
/// 408 in its dialect, with a request id, at the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_body_is_answered_408_at_the_deadline() {
    use tokio::io::AsyncReadExt;
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("trickle");
    let agw = Proc::spawn(
        &dir,
        &["--base-url", &mock.base_url(), "--body-timeout", "2"],
    );
    for (path, dialect) in [
        (
            "/v1/messages",
            r#"{"type":"error","error":{"type":"invalid_request_error""#,
        ),
        ("/v1/chat/completions", r#"{"error":{"message":"#),
    ] {
        let mut s = tokio::net::TcpStream::connect(&agw.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"model\":\"m\""
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        // Trickle (bounded: 40 writes) until an answer comes.
        for _ in 0..40 {
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                        break;
                    }
                }
                Ok(Err(_)) => break,
                Err(_) => {
                    let _ = s.write_all(b" ").await;
                }
            }
        }
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 408"), "{path}: {got:?}");
        assert!(got.contains("\r\nrequest-id: agw_"), "{got}");
        assert!(got.contains(dialect), "{got}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(2), "{waited:?}");
    }
}

/// The configuration handle: a new config is installed atomically, and unchanged backends keep
/// their upstream client (and its connection pool).
#[tokio::test]
async fn installing_a_config_keeps_pools_of_unchanged_backends() {
    let mock = MockProvider::start().await.unwrap();
    let parse = |text: &str| {
        let mut gw = Gateway::parse("test.yaml", text, &Env::default()).unwrap();
        gw.apply(&Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            base_urls: vec![(None, mock.base_url())],
        })
        .unwrap();
        gw
    };
    let app = App::new(parse(&config_rejecting("alpha")), AccessLog::Off).unwrap();
    let first: Arc<Runtime> = app.handle().current();
    app.handle()
        .install(parse(&config_rejecting("beta")))
        .unwrap();
    let second = app.handle().current();
    assert!(second.shares_upstream_pool(&first, "anthropic"));
    let slower = config_rejecting("beta").replace(
        "    guards:",
        "    timeouts:\n      connect_secs: 3\n    guards:",
    );
    app.handle().install(parse(&slower)).unwrap();
    assert!(
        !app.handle()
            .current()
            .shares_upstream_pool(&second, "anthropic")
    );
    assert!(
        second.gateway.backends[0]
            .policy
            .rules()
            .any(|r| r.name() == "no-beta")
    );
}

// ---- TLS ----

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "agw test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// A leaf for `name` (server: `localhost`; client: any), PEM cert and key.
    fn leaf(&self, name: &str, client: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// One HTTPS request over a fresh connection; returns the status and the server's leaf (DER).
async fn https_get(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
    path: &str,
) -> Result<(u16, Vec<u8>), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Full::<Bytes>::default())
        .unwrap();
    let res = tokio::time::timeout(TIMEOUT, send.send_request(req))
        .await
        .map_err(|_| "response timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    Ok((status, leaf))
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A provider over TLS speaking only `alpn` (`h2` or `http/1.1`): answers every Messages
/// request with a message whose text names the HTTP version it arrived in; counts connections.
async fn tls_provider(
    pki: &Pki,
    alpn: &'static [u8],
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = pki.leaf("localhost", false);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let version = format!("{:?}", req.version());
                        let body = serde_json::json!({
                            "id": "msg_tls", "type": "message", "role": "assistant",
                            "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
                            "content": [{"type": "text", "text": version}],
                            "usage": {"input_tokens": 3, "output_tokens": 2},
                        });
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap(),
                        )
                    });
                if alpn == b"h2" {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, svc)
                    .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                }
            });
        }
    });
    (port, conns)
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_over_tls_are_reached_over_http2_and_http1_on_reused_connections() {
    let pki = Pki::new();
    let dir = TempDir::new("tls-upstream");
    std::fs::write(dir.path("ca.pem"), pki.ca.pem()).unwrap();
    let ca = dir.path("ca.pem");
    for (alpn, version) in [(&b"h2"[..], "HTTP/2.0"), (&b"http/1.1"[..], "HTTP/1.1")] {
        let (port, conns) = tls_provider(&pki, alpn).await;
        let config = dir.path("tls-upstream.yaml");
        std::fs::write(
            &config,
            format!(
                "backends:\n  - name: anthropic\n    provider: anthropic\n    base_url: https://localhost:{port}\n    api_key: sk-ant-test\n    tls_roots: system\n"
            ),
        )
        .unwrap();
        // The system store is the test's CA alone (rustls-native-certs reads SSL_CERT_FILE).
        let agw = Proc::spawn_env(
            &dir,
            &["--config", config.to_str().unwrap()],
            &[("SSL_CERT_FILE", ca.to_str().unwrap())],
        );
        for _ in 0..3 {
            let (res, body) = send(json_post(&agw.url("/v1/messages"), &message("hello"))).await;
            let body = String::from_utf8_lossy(&body);
            assert_eq!(res.status(), 200, "{version}: {body}");
            assert!(body.contains(version), "{version}: {body}");
        }
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{version}: one connection for three requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_reloads_its_certificate_and_can_require_client_certs() {
    let pki = Pki::new();
    let ca_pem = pki.ca.pem();
    let dir = TempDir::new("tls");
    let (cert1, key1) = pki.leaf("localhost", false);
    std::fs::write(dir.path("cert.pem"), &cert1).unwrap();
    std::fs::write(dir.path("key.pem"), &key1).unwrap();
    std::fs::write(dir.path("ca.pem"), &ca_pem).unwrap();
    let files = TlsFiles {
        cert: dir.path("cert.pem"),
        key: dir.path("key.pem"),
        client_ca: None,
    };
    let gw = || Gateway::parse("test.yaml", SEED_DEFAULT, &Env::default());
    let app = App::new(gw().unwrap(), AccessLog::Off).unwrap();
    let tls = TlsHandle::load(&files).unwrap();
    let reloader = Reloader::new(app.handle().clone(), Arc::new(gw)).tls(tls.clone(), files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Serving {
        grace: Duration::from_secs(1),
        tls: Some(tls),
        ..Serving::default()
    };
    let server = tokio::spawn(serve_with(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        serving,
    ));

    let (status, leaf) = https_get(addr, client_config(&ca_pem, None), "/healthz")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(leaf, pem_der(&cert1));
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        send_plain(addr).await.is_err(),
        "plain HTTP answered on the TLS listener"
    );

    // A new certificate is used by the next handshake.
    let (cert2, key2) = pki.leaf("localhost", false);
    std::fs::write(dir.path("cert.pem"), &cert2).unwrap();
    std::fs::write(dir.path("key.pem"), &key2).unwrap();
    reloader.reload().unwrap();
    let (_, leaf) = https_get(addr, client_config(&ca_pem, None), "/healthz")
        .await
        .unwrap();
    assert_eq!(leaf, pem_der(&cert2));

    // A key that does not fit the certificate: refused, the old pair stays.
    std::fs::write(dir.path("key.pem"), &key1).unwrap();
    let err = reloader.reload().unwrap_err();
    assert!(
        err.contains("do not fit") && !err.contains("PRIVATE"),
        "{err}"
    );
    let (_, leaf) = https_get(addr, client_config(&ca_pem, None), "/healthz")
        .await
        .unwrap();
    assert_eq!(leaf, pem_der(&cert2));
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // Client certificates required: without one the handshake or request fails; with one
    // issued by the CA, it is served.
    std::fs::write(dir.path("key.pem"), &key2).unwrap();
    let files = TlsFiles {
        cert: dir.path("cert.pem"),
        key: dir.path("key.pem"),
        client_ca: Some(dir.path("ca.pem")),
    };
    let app = App::new(gw().unwrap(), AccessLog::Off).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = Serving {
        grace: Duration::from_secs(1),
        tls: Some(TlsHandle::load(&files).unwrap()),
        ..Serving::default()
    };
    let server = tokio::spawn(serve_with(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        serving,
    ));
    assert!(
        https_get(addr, client_config(&ca_pem, None), "/healthz")
            .await
            .is_err(),
        "served a client without a certificate"
    );
    let (ccert, ckey) = pki.leaf("client-1", true);
    let (status, _) = https_get(
        addr,
        client_config(&ca_pem, Some((&ccert, &ckey))),
        "/healthz",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A plain-text request on `addr`: `Err` when no HTTP answer comes back.
async fn send_plain(addr: std::net::SocketAddr) -> Result<(), ()> {
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        client().request(
            Request::get(format!("http://{addr}/healthz"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await;
    match res {
        Ok(Ok(_)) => Ok(()),
        _ => Err(()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agw_serve_with_tls_flags_picks_up_a_renewed_certificate_file() {
    let pki = Pki::new();
    let ca_pem = pki.ca.pem();
    let dir = TempDir::new("tls-proc");
    let (cert1, key1) = pki.leaf("localhost", false);
    std::fs::write(dir.path("tls.crt"), &cert1).unwrap();
    std::fs::write(dir.path("tls.key"), &key1).unwrap();
    let cert = dir.path("tls.crt");
    let key = dir.path("tls.key");
    let agw = Proc::spawn(
        &dir,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let addr: std::net::SocketAddr = agw.addr.parse().unwrap();
    let (status, leaf) = https_get(addr, client_config(&ca_pem, None), "/healthz")
        .await
        .unwrap();
    assert_eq!((status, leaf), (200, pem_der(&cert1)));
    // Renewed the way cert-manager does it: both files replaced.
    let (cert2, key2) = pki.leaf("localhost", false);
    std::fs::write(dir.path("tls.key.new"), &key2).unwrap();
    std::fs::write(dir.path("tls.crt.new"), &cert2).unwrap();
    std::fs::rename(dir.path("tls.key.new"), &key).unwrap();
    std::fs::rename(dir.path("tls.crt.new"), &cert).unwrap();
    let want = pem_der(&cert2);
    eventually("the renewed certificate is served", || {
        let config = client_config(&ca_pem, None);
        let want = want.clone();
        async move {
            matches!(https_get(addr, config, "/healthz").await, Ok((200, leaf)) if leaf == want)
        }
    })
    .await;
}

#[tokio::test]
async fn readyz_follows_checks_and_draining_and_admin_routes_can_be_added() {
    use agw_bin::server::admin::serve_admin;
    use agw_bin::server::{Admin, Health};
    use std::sync::atomic::{AtomicBool, Ordering};
    let gw = Gateway::parse("test.yaml", SEED_DEFAULT, &Env::default()).unwrap();
    let app = App::new(gw, AccessLog::Off).unwrap();
    let health = Arc::new(Health::default());
    let redis_up = Arc::new(AtomicBool::new(true));
    let mut admin = Admin::new(app.handle().clone(), health.clone());
    let up = redis_up.clone();
    admin.ready_checks.push(Arc::new(move || {
        let up = up.load(Ordering::Relaxed);
        Box::pin(async move {
            if up {
                Ok(())
            } else {
                Err("redis unreachable".to_owned())
            }
        })
    }));
    admin.routes = Some(Arc::new(|req: &Request<hyper::body::Incoming>| {
        (req.uri().path() == "/metrics").then(|| {
            http::Response::new(
                Full::new(Bytes::from_static(b"agw_up 1\n"))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            )
        })
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_admin(listener, admin, async move {
        let _ = stopped.await;
    }));
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);
    assert_eq!(
        get(&format!("{base}/metrics")).await,
        (200, "agw_up 1\n".to_owned())
    );
    redis_up.store(false, Ordering::Relaxed);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    assert!(body.contains("redis unreachable"), "{body}");
    redis_up.store(true, Ordering::Relaxed);
    health.start_draining();
    assert_eq!(
        get(&format!("{base}/readyz")).await,
        (503, r#"{"status":"draining"}"#.to_owned())
    );
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let _ = stop.send(());
    task.await.unwrap();
}

/// A stream still open when the shutdown grace period runs out ends with an error event in
/// the client's dialect (Claude Code can tell it was cut), not with a dropped connection.
#[tokio::test(flavor = "multi_thread")]
async fn streams_cut_at_the_end_of_the_grace_period_end_with_an_error_event() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("cut");
    let config = dir.path("agw.yaml");
    std::fs::write(
        &config,
        "limits: {shutdown_grace_secs: 1}\nbackends: [{name: anthropic, provider: anthropic}]\n",
    )
    .unwrap();
    let agw = Proc::serve_config(&dir, &config, &mock.base_url());
    let url = agw.url("/v1/messages");
    let res = open(json_post(&url, &stream_message("mock:hold hi"))).await;
    assert_eq!(res.status(), 200);
    let mut held = res.into_body();
    let first = tokio::time::timeout(TIMEOUT, held.frame()).await.unwrap();
    assert!(first.unwrap().unwrap().data_ref().is_some());
    agw.signal("TERM");
    let rest = tokio::time::timeout(TIMEOUT, held.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("event: error"), "{rest}");
    assert!(rest.contains("shutting down"), "{rest}");
    assert!(!rest.contains("message_stop"), "the stream was cut: {rest}");
    let stderr = dir.path("stderr.log");
    let status = agw.wait_exit().await;
    assert!(status.success(), "{status:?}");
    mock.release();
    // The log says the grace period ran out, and the cut request's line says it was cut.
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(log.contains("grace period of 1 s is over"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("path=/v1/messages"))
        .unwrap_or_else(|| panic!("no access line: {log}"));
    assert!(
        line.contains("cause=shutdown") && line.contains("aborted=true"),
        "{line}"
    );
}

/// The open-file limit (`server/fds.rs`): a low soft limit is raised to the hard one at start;
/// where the hard one is low too agw says so, and running out of descriptors only holds new
/// connections back until sockets close: a request sent meanwhile is answered, not lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_open_file_limit_is_raised_at_start_and_running_out_holds_connections_back() {
    let mock = MockProvider::start().await.unwrap();
    let dir = TempDir::new("nofile");
    let config = dir.path("agw.yaml");
    std::fs::write(
        &config,
        "backends:\n  - name: anthropic\n    provider: anthropic\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let base = mock.base_url();
    let args = ["--config", config.as_str(), "--base-url", base.as_str()];
    let open_files = |agw: &Proc| {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", agw.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_owned();
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        (words[3].clone(), words[4].clone())
    };

    let agw = Proc::spawn_under(&dir, &["prlimit", "--nofile=256:8192", "--"], &args, &[]);
    assert_eq!(open_files(&agw), ("8192".into(), "8192".into()));
    let (status, _) = send(json_post(&agw.url("/v1/messages"), &message("hello"))).await;
    assert_eq!(status.status(), 200);
    assert!(!agw.stderr().contains("open files"), "{}", agw.stderr());
    drop(agw);

    let low = TempDir::new("nofile-low");
    let agw = Proc::spawn_under(&low, &["prlimit", "--nofile=48:48", "--"], &args, &[]);
    assert_eq!(open_files(&agw), ("48".into(), "48".into()));
    let mut said = false;
    for _ in 0..100 {
        said = agw
            .stderr()
            .contains("open files are limited to 48 (the hard limit)");
        if said {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(said, "{}", agw.stderr());
    // More idle connections than agw has descriptors for.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(tokio::net::TcpStream::connect(&agw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = agw.url("/v1/messages");
    let pending = tokio::spawn(async move { send(json_post(&url, &message("hello"))).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "answered with no descriptor to accept it on"
    );
    drop(held);
    let (res, _) = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("answered once connections closed")
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = send(json_post(&agw.url("/v1/messages"), &message("again"))).await;
    assert_eq!(status.status(), 200);
}
