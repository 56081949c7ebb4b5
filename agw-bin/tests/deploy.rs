//! The deployment files checked against each other and against the binary, with no container
//! runtime or cluster: the Kubernetes base and overlays render with `kubectl kustomize`, every
//! config they and the image carry passes `agw check`, and the image, ports, user, arguments
//! and probe paths agree between the manifests, the Containerfile and `agw` itself; the
//! Deployment's own arguments and config, run on loopback in front of a real `redis-server` and
//! `agw-mock`, serve the probes, client keys created with `agw keys`, and `/metrics`.
//!
//! `kubectl` (Debian's `kubernetes-client`, installed by `.ci/run`) and `redis-server` are
//! required: without them these tests fail, they do not skip. The image itself is built and run
//! by `deploy/image/check.sh` (CI runs it).

use serde::Deserialize;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGW: &str = env!("CARGO_BIN_EXE_agw");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Every kustomization a user may apply: the base (through `deploy/kubernetes`) and overlays.
const KUSTOMIZATIONS: [&str; 3] = [
    "deploy/kubernetes",
    "deploy/kubernetes/overlays/seed-manifests",
    "deploy/kubernetes/overlays/external-redis",
];
/// A placeholder provider key, for configs that inject one.
const PLACEHOLDER_KEY: &str = "sk-ant-placeholder-for-agw-check";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `kubectl kustomize DIR`, as parsed documents.
fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl kustomize` ({e}): install kubectl \
                 (Debian: apt-get install kubernetes-client; .ci/run does)"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed (kubectl >= 1.21 needed, for kustomize v4 or later): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| str_of(s, "list item").to_owned())
        .collect()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("`{flag}` is not in {args:?}"));
    args.get(i + 1)
        .unwrap_or_else(|| panic!("`{flag}` has no value in {args:?}"))
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("`{addr}` is not IP:PORT: {e}"))
        .port()
}

/// What the Containerfile says: `USER`, `EXPOSE`, `ENTRYPOINT` and `CMD` (exec form).
#[derive(Debug, Default)]
struct Containerfile {
    user: String,
    expose: Vec<u16>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

fn containerfile() -> Containerfile {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let mut c = Containerfile::default();
    for line in text.lines() {
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim();
        match word {
            "USER" => c.user = rest.to_owned(),
            "EXPOSE" => {
                c.expose = rest
                    .split_whitespace()
                    .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
                    .collect()
            }
            "ENTRYPOINT" => c.entrypoint = serde_json::from_str(rest).unwrap(),
            "CMD" => c.cmd = serde_json::from_str(rest).unwrap(),
            _ => {}
        }
    }
    c
}

fn agw_check(config: &str, name: &str) -> String {
    let tmp = TempDir::new(name);
    let file = tmp.0.join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(AGW)
        .args(["check", "--config"])
        .arg(&file)
        .env_clear()
        .env("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: agw check failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{name}: {stdout}");
    assert!(
        !stdout.contains(PLACEHOLDER_KEY),
        "{name}: agw check printed the key"
    );
    stdout
}

#[test]
fn kustomizations_render_with_what_agw_needs() {
    for dir in KUSTOMIZATIONS {
        let docs = render(dir);
        let mut kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        kinds.sort_unstable();
        for kind in [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Namespace",
            "PodDisruptionBudget",
            "Service",
        ] {
            assert!(kinds.contains(&kind), "{dir}: no {kind} in {kinds:?}");
        }
        // The provider key's Secret is the operator's (created with kubectl): an apply must
        // never overwrite it with a placeholder (found by the fourth review).
        assert!(
            !docs.iter().any(|d| d["kind"].as_str() == Some("Secret")
                && d["metadata"]["name"].as_str() == Some("agw-provider")),
            "{dir}: renders the Secret agw-provider"
        );
        for d in &docs {
            if d["kind"].as_str() != Some("Namespace") {
                assert_eq!(
                    d["metadata"]["namespace"].as_str(),
                    Some("agw"),
                    "{dir}: {d:?}"
                );
            }
        }
        let env =
            &find(&docs, "Deployment", "agw")["spec"]["template"]["spec"]["containers"][0]["env"];
        if dir.ends_with("seed-manifests") {
            // The seed's config keeps no keys, limits or budgets: no Redis, no REDIS_URL.
            assert!(
                !docs
                    .iter()
                    .any(|d| d["metadata"]["name"].as_str() == Some("agw-redis")),
                "{dir}: runs a Redis nothing uses"
            );
            assert!(
                !env.as_sequence()
                    .unwrap()
                    .iter()
                    .any(|e| e["name"].as_str() == Some("REDIS_URL")),
                "{dir}: REDIS_URL"
            );
            continue;
        }
        let redis = env
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some("REDIS_URL"))
            .unwrap_or_else(|| panic!("{dir}: agw has no REDIS_URL"));
        if dir.ends_with("external-redis") {
            assert_eq!(
                redis["valueFrom"]["secretKeyRef"]["name"].as_str(),
                Some("agw-redis")
            );
            assert!(
                !docs
                    .iter()
                    .any(|d| d["metadata"]["name"].as_str() == Some("agw-redis")
                        && d["kind"].as_str() != Some("Secret")),
                "{dir}: the in-cluster Redis is still there"
            );
        } else {
            // The in-cluster Redis, reached by its Service name and port.
            let port = &find(&docs, "Service", "agw-redis")["spec"]["ports"][0]["port"];
            assert_eq!(
                redis["value"].as_str(),
                Some(format!("redis://agw-redis:{}", port.as_u64().unwrap()).as_str())
            );
            find(&docs, "Deployment", "agw-redis");
        }
    }
}

#[test]
fn every_config_the_manifests_and_the_image_carry_passes_agw_check() {
    let mut checked = 0;
    for dir in KUSTOMIZATIONS {
        for d in render(dir) {
            if d["kind"].as_str() != Some("ConfigMap") {
                continue;
            }
            let data = d["data"].as_mapping().expect("a ConfigMap with data");
            for (key, value) in data {
                let key = str_of(key, "ConfigMap key");
                let name = format!("{}-{key}", dir.replace('/', "-"));
                let out = agw_check(str_of(value, key), &name);
                assert!(
                    out.contains("backend anthropic") && out.contains(": reject"),
                    "{name}: not the seed's guarded setup: {out}"
                );
                assert!(out.contains("credentials: inject"), "{name}: {out}");
                checked += 1;
            }
        }
    }
    // The base's native config and the overlay's seed manifests (the base again through
    // external-redis).
    assert_eq!(checked, 3);

    // The seed overlay carries the seed's manifests exactly as they are.
    let overlay = repo().join("deploy/kubernetes/overlays/seed-manifests");
    assert_eq!(
        std::fs::read(overlay.join("manifests-guard-pinned.yaml")).unwrap(),
        std::fs::read(repo().join("agw-bin/tests/fixtures/seed/manifests-guard-pinned.yaml"))
            .unwrap(),
    );

    // The image's own default: guarded, and it never injects a key even when one is set.
    let image =
        std::fs::read_to_string(repo().join("deploy/image/rootfs/etc/agw/config.yaml")).unwrap();
    let out = agw_check(&image, "image-default");
    assert!(out.contains("listens on 0.0.0.0:8080"), "{out}");
    assert!(out.contains("credentials: passthrough"), "{out}");
    assert!(out.contains("credit-card: reject"), "{out}");
}

/// An address that is no interface's here (TEST-NET-1, RFC 5737): `agw serve` runs its exposure
/// check on it as on `0.0.0.0`, then fails to bind, so nothing listens beyond loopback.
const NOT_LOCAL: &str = "192.0.2.1:8080";

/// Runs `agw` with `args` and the placeholder key and Redis URL, which must fail (within 20 s);
/// its stdout and stderr.
fn agw_output(args: &[String]) -> String {
    let tmp = TempDir::new("output");
    let (out, err) = (tmp.0.join("stdout"), tmp.0.join("stderr"));
    let mut proc = Proc(
        Command::new(AGW)
            .args(args)
            .env_clear()
            .env("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
            .env("REDIS_URL", "redis://127.0.0.1:1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "agw {args:?} is serving on {NOT_LOCAL}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "agw {args:?} exited 0");
    std::fs::read_to_string(out).unwrap() + &std::fs::read_to_string(err).unwrap()
}

#[test]
fn the_pods_pass_the_exposure_check_on_every_interface() {
    for dir in KUSTOMIZATIONS {
        let docs = render(dir);
        let c = &find(&docs, "Deployment", "agw")["spec"]["template"]["spec"]["containers"][0];
        let config = str_of(
            &find(&docs, "ConfigMap", "agw-config")["data"]["config.yaml"],
            "config",
        );
        let tmp = TempDir::new(&format!("exposure-{}", dir.replace('/', "-")));
        let file = tmp.0.join("config.yaml");
        std::fs::write(&file, config).unwrap();
        // The pod's own arguments; its config from a file here, its addresses not local.
        let mut args = strings(&c["args"]);
        assert_eq!(
            Ipv4Addr::UNSPECIFIED,
            flag(&args, "--listen").parse::<SocketAddr>().unwrap().ip()
        );
        for (i, a) in args.clone().iter().enumerate() {
            match a.as_str() {
                "--config" => args[i + 1] = file.display().to_string(),
                "--listen" | "--admin-listen" => args[i + 1] = NOT_LOCAL.into(),
                _ => {}
            }
        }
        let out = agw_output(&args);
        assert!(
            out.contains(&format!("cannot listen on {NOT_LOCAL}")) && !out.contains("refusing"),
            "{dir}: the pods would not start: {out}"
        );
        let unauthenticated = args.iter().any(|a| a == "--allow-unauthenticated");
        if dir.ends_with("seed-manifests") {
            // The seed's manifests have no client authentication: without the overlay's flag
            // agw refuses to inject the key for whoever reaches the port.
            assert!(unauthenticated, "{dir}: {args:?}");
            args.retain(|a| a != "--allow-unauthenticated");
            let out = agw_output(&args);
            assert!(
                out.contains(&format!("refusing to listen on {NOT_LOCAL}")),
                "{dir}: {out}"
            );
        } else {
            // The base requires client keys: nothing to allow.
            assert!(!unauthenticated, "{dir}: {args:?}");
            let native: Value = serde_norway::from_str(config).unwrap();
            assert!(!native["auth"]["keys"].is_null(), "{dir}: no auth.keys");
            assert!(
                native["auth"]["keys"]["file"].is_null(),
                "{dir}: keys in Redis, not a file"
            );
            assert_eq!(native["redis"]["url"].as_str(), Some("${REDIS_URL}"));
            assert_eq!(
                native["auth"]["allow_unauthenticated"].as_bool(),
                Some(false)
            );
            assert!(
                !native["limits"]["per_key"].is_null(),
                "{dir}: no per-key limits"
            );
            assert!(!native["metrics"].is_null(), "{dir}: no metrics");
        }
    }
}

#[test]
fn manifests_containerfile_and_binary_agree() {
    let image = containerfile();
    let docs = render("deploy/kubernetes");
    let deployment = find(&docs, "Deployment", "agw");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // The image the manifests run is the one deploy/image/check.sh builds and checks.
    assert_eq!(
        str_of(&c["image"], "image"),
        format!("localhost/agw:{VERSION}")
    );
    let check_sh = std::fs::read_to_string(repo().join("deploy/image/check.sh")).unwrap();
    assert!(check_sh.contains(r#"IMAGE="localhost/agw:${VERSION}""#));
    assert!(check_sh.contains("-f Containerfile ."));

    // The pod runs the image's own command, as the image's user.
    assert_eq!(image.entrypoint, ["/usr/local/bin/agw"]);
    assert!(c["command"].is_null(), "the image's entrypoint is kept");
    let args = strings(&c["args"]);
    assert_eq!(
        args[..image.cmd.len()],
        image.cmd,
        "the pod's args are the image's CMD and a drain delay"
    );
    assert_eq!(args[image.cmd.len()..].len(), 2, "{args:?}");
    let drain: u64 = flag(&args, "--drain-delay").parse().unwrap();
    let (uid, gid) = image.user.split_once(':').unwrap();
    assert_eq!(
        pod["securityContext"]["runAsUser"].as_u64(),
        uid.parse().ok()
    );
    assert_eq!(
        pod["securityContext"]["runAsGroup"].as_u64(),
        gid.parse().ok()
    );
    assert_ne!(uid, "0");
    let passwd = std::fs::read_to_string(repo().join("deploy/image/rootfs/etc/passwd")).unwrap();
    assert!(passwd.contains(&format!("agw:x:{uid}:{gid}:")), "{passwd}");

    // Ports: the Containerfile's EXPOSE, the container's ports and what agw is told to bind.
    let ports: BTreeMap<String, u16> = c["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            let n = p["containerPort"].as_u64().unwrap() as u16;
            (str_of(&p["name"], "port name").to_owned(), n)
        })
        .collect();
    let mut declared: Vec<u16> = ports.values().copied().collect();
    declared.sort_unstable();
    let mut exposed = image.expose.clone();
    exposed.sort_unstable();
    assert_eq!(declared, exposed, "containerPorts vs EXPOSE");
    assert_eq!(port_of(flag(&args, "--listen")), ports["http"]);
    assert_eq!(port_of(flag(&args, "--admin-listen")), ports["admin"]);
    assert_eq!(
        flag(&args, "--listen").parse::<SocketAddr>().unwrap().ip(),
        Ipv4Addr::UNSPECIFIED,
        "the proxy must be reachable from the pod network"
    );

    // Probes on the admin port, at the paths agw serves there (served_probe_paths below).
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        let port = match &get["port"] {
            Value::String(name) => ports[name],
            v => v.as_u64().unwrap() as u16,
        };
        assert_eq!(port, ports["admin"], "{probe} on the admin port");
    }

    // The Service sends clients to the proxy port only.
    let service = find(&docs, "Service", "agw");
    let sports = service["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(sports.len(), 1, "the admin port stays off the Service");
    let target = match &sports[0]["targetPort"] {
        Value::String(name) => ports[name],
        v => v.as_u64().unwrap() as u16,
    };
    assert_eq!(target, ports["http"]);

    // The config file agw is told to read is the ConfigMap's, where it is mounted.
    let config = flag(&args, "--config");
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| config.starts_with(&format!("{}/", str_of(&m["mountPath"], "mountPath"))))
        .unwrap_or_else(|| panic!("no volume mounted where {config} is"));
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let configmap = find(
        &docs,
        "ConfigMap",
        str_of(&volume["configMap"]["name"], "configMap name"),
    );
    let key = config.rsplit('/').next().unwrap();
    let native = str_of(&configmap["data"][key], "the config");

    // Hardening.
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(!c["resources"][r][k].is_null(), "resources.{r}.{k}");
        }
    }

    // Replicas: at least two, kept by the autoscaler and the disruption budget.
    let labels = &pod_labels(deployment);
    // The autoscaler owns the count: a `replicas` in the Deployment would reset it on apply.
    assert!(deployment["spec"]["replicas"].is_null());
    let hpa = find(&docs, "HorizontalPodAutoscaler", "agw");
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"].as_str(), Some("agw"));
    let pdb = find(&docs, "PodDisruptionBudget", "agw");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));
    assert!(selects(&service["spec"]["selector"], labels));

    // Draining: the pod is killed only after agw's own shutdown grace has run out.
    let grace = serde_norway::from_str::<Value>(native).unwrap()["limits"]["shutdown_grace_secs"]
        .as_u64()
        .unwrap_or(30);
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        (1..=grace).contains(&drain),
        "a drain delay of {drain} s for agw's {grace} s grace"
    );
    assert!(
        termination >= drain + grace + 5,
        "terminationGracePeriodSeconds {termination} leaves no room above agw's {drain} s drain \
         delay and {grace} s grace"
    );
    assert!(
        c["lifecycle"].is_null(),
        "no preStop hook: agw drains on SIGTERM"
    );
}

fn pod_labels(deployment: &Value) -> BTreeMap<String, String> {
    let labels: BTreeMap<String, String> =
        serde_norway::from_value(deployment["spec"]["template"]["metadata"]["labels"].clone())
            .unwrap();
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        &labels
    ));
    labels
}

fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let selector: BTreeMap<String, String> = serde_norway::from_value(selector.clone()).unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A temporary directory, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("agw-deploy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process (`agw` or `redis-server`), killed by its PID on drop if still running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of its own on a free loopback port (no persistence), answering PING.
fn redis() -> (Proc, String) {
    for _ in 0..10 {
        if let Some(redis) = redis_on(free_port()) {
            return redis;
        }
    }
    panic!("redis-server did not start");
}

/// A `redis-server` on `port`, or `None` when it exits (the port was taken meanwhile).
fn redis_on(port: u16) -> Option<(Proc, String)> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}): install it (Debian: redis-server)")
        });
    let mut proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = proc.0.try_wait() {
            return None;
        }
        if redis_ping(port) {
            return Some((proc, format!("redis://127.0.0.1:{port}/")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// One HTTP/1.1 request, `(status, body)`; `None` while nothing listens there.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    Some((status, body.unwrap_or_default()))
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    request(addr, "GET", path, &[], "")
}

/// A Messages request through agw with `key` as the client's key (none if empty).
fn message(proxy: SocketAddr, key: &str, prompt: &str) -> (u16, String) {
    let body = format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let mut headers = vec![
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
    ];
    if !key.is_empty() {
        headers.push(("x-api-key", key));
    }
    request(proxy, "POST", "/v1/messages", &headers, &body).expect("agw answers")
}

/// The base's pod, run here: the Deployment's own arguments and ConfigMap, the config path moved
/// to a temporary file and both addresses to loopback, plus `extra` arguments; `REDIS_URL` as
/// the Deployment sets it, pointed at `redis_url`.
struct Pod {
    proc: Proc,
    config: PathBuf,
    proxy: SocketAddr,
    admin: SocketAddr,
    args: Vec<String>,
    _tmp: TempDir,
}

fn pod(name: &str, redis_url: &str, extra: &[&str]) -> Pod {
    let docs = render("deploy/kubernetes");
    let c = &find(&docs, "Deployment", "agw")["spec"]["template"]["spec"]["containers"][0];
    let env = c["env"].as_sequence().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"].as_str() == Some("REDIS_URL") && e["value"].as_str().is_some()),
        "the Deployment sets REDIS_URL"
    );
    let config = str_of(
        &find(&docs, "ConfigMap", "agw-config")["data"]["config.yaml"],
        "config",
    );
    let tmp = TempDir::new(name);
    let file = tmp.0.join("config.yaml");
    std::fs::write(&file, config).unwrap();
    let log = tmp.0.join("stderr");
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut args = strings(&c["args"]);
    for (i, a) in args.clone().iter().enumerate() {
        match a.as_str() {
            "--config" => args[i + 1] = file.display().to_string(),
            "--listen" => args[i + 1] = "127.0.0.1:0".into(),
            "--admin-listen" => args[i + 1] = admin.to_string(),
            _ => {}
        }
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut proc = Proc(
        Command::new(AGW)
            .args(&args)
            .env_clear()
            .env("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
            .env("REDIS_URL", redis_url)
            .stdout(Stdio::piped())
            // To a file: agw's access log and messages never block on a pipe nor meet a closed one.
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(proc.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(proxy) = line
        .strip_prefix("agw listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
    else {
        let _ = proc.0.wait();
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("agw {args:?} did not start: {line}{err}");
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(admin, "/healthz").is_none() {
        assert!(
            Instant::now() < deadline,
            "the admin listener does not answer /healthz"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Pod {
        proc,
        config: file,
        proxy,
        admin,
        args,
        _tmp: tmp,
    }
}

/// Waits until the pod is ready (Redis is connected in the background after the start).
fn wait_ready(pod: &Pod) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(pod.admin, "/readyz") {
            Some((200, _)) => return,
            other => assert!(Instant::now() < deadline, "/readyz: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `agw keys --config FILE ARGS…` as `kubectl exec deploy/agw -- agw keys …` runs it in a pod.
fn agw_keys(config: &Path, redis_url: &str, args: &[&str]) -> String {
    let out = Command::new(AGW)
        .arg("keys")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .env("ANTHROPIC_API_KEY", PLACEHOLDER_KEY)
        .env("REDIS_URL", redis_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agw keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn served_probe_paths_answer_on_the_admin_port() {
    let (_redis, redis_url) = redis();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(agw_mock::MockProvider::start()).unwrap();
    // The provider reached at the mock instead of api.anthropic.com: one more argument.
    let mut pod = pod("probes", &redis_url, &["--base-url", &mock.base_url()]);
    wait_ready(&pod);
    let (status, _) = get(pod.admin, "/healthz").unwrap();
    assert_eq!(status, 200, "/healthz");
    let (status, body) = get(pod.admin, "/readyz").unwrap();
    assert_eq!(status, 200, "/readyz with Redis up: {body}");

    // Client keys, created as an operator would in the cluster, kept in Redis.
    let out = agw_keys(&pod.config, &redis_url, &["create", "--name", "alice"]);
    let key = out.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("agw_"), "{out}");
    let list = agw_keys(&pod.config, &redis_url, &["list"]);
    assert!(list.contains("alice"), "{list}");

    let (status, body) = message(pod.proxy, "", "Say hello");
    assert_eq!(status, 401, "no client key: {body}");
    let (status, body) = message(pod.proxy, "sk-ant-someone-elses", "Say hello");
    assert_eq!(status, 401, "not a client key: {body}");
    assert!(mock.requests().is_empty(), "nothing reached the provider");
    let (status, body) = message(pod.proxy, &key, "What is a credit card?");
    assert_eq!(status, 400, "the seed's guard: {body}");
    assert!(
        body.contains("Rejected due to inappropriate content"),
        "{body}"
    );
    assert!(
        mock.requests().is_empty(),
        "the rejected prompt reached the provider"
    );
    let (status, body) = message(pod.proxy, &key, "Say hello");
    assert_eq!(status, 200, "alice's key: {body}");
    let sent = mock.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]
            .headers
            .get("x-api-key")
            .map(|v| v.to_str().unwrap()),
        Some(PLACEHOLDER_KEY),
        "the organisation's key is injected, the client's removed"
    );

    // Prometheus, where the pod's annotations say. A request is counted just after its
    // response is written: poll (bounded).
    let mut body = String::new();
    for _ in 0..100 {
        let (status, b) = get(pod.admin, "/metrics").unwrap();
        assert_eq!(status, 200, "/metrics");
        body = b;
        if body.contains("agw_requests_total") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(body.contains("agw_requests_total"), "{body}");

    let pid = pod.proc.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Draining, as the Deployment's --drain-delay arranges: not ready before the listener closes.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match get(pod.admin, "/readyz") {
            Some((503, _)) => break,
            Some((200, _)) => {}
            other => panic!("/readyz while draining: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed 200 after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = pod.proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "agw did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "agw {:?} exited with {status}", pod.args);
}

#[test]
fn readyz_stays_ready_through_a_redis_outage() {
    let (redis, redis_url) = redis();
    let pod = pod("redis-down", &redis_url, &[]);
    wait_ready(&pod);
    let (status, body) = get(pod.admin, "/readyz").unwrap();
    assert_eq!(status, 200, "/readyz with Redis up: {body}");
    drop(redis);
    // A request notices the outage (its key lookup or limit fails); the log says so, and
    // readiness does not drop: every replica would leave the Service at once, while known
    // keys keep working and limits answer as `on_error` says.
    let _ = message(pod.proxy, "agw_unknownkeyunknownkeyunknownkey", "hello");
    let log = pod._tmp.0.join("stderr");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("unavailable")
    {
        assert!(Instant::now() < deadline, "no outage line in the log");
        let _ = message(pod.proxy, "agw_unknownkeyunknownkeyunknownkey", "hello");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = get(pod.admin, "/readyz").unwrap();
    assert_eq!(status, 200, "/readyz during the outage: {body}");
    // Liveness is not Redis's either.
    assert_eq!(get(pod.admin, "/healthz").map(|r| r.0), Some(200));
}

/// A pod started while Redis is down (a first install, a scale-up during an outage) runs and
/// reports not ready, instead of exiting into a crash loop; once Redis answers it is ready,
/// and the outage and the recovery are in its log.
#[test]
fn a_pod_started_before_redis_becomes_ready_when_redis_answers() {
    let port = free_port();
    let pod = pod("redis-late", &format!("redis://127.0.0.1:{port}/"), &[]);
    let (status, body) = get(pod.admin, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    assert_eq!(get(pod.admin, "/healthz").map(|r| r.0), Some(200));
    let Some(_redis) = redis_on(port) else {
        panic!("redis-server did not start on port {port}");
    };
    wait_ready(&pod);
    let log = std::fs::read_to_string(pod._tmp.0.join("stderr")).unwrap();
    assert!(log.contains("unavailable"), "{log}");
    assert!(log.contains("reachable again"), "{log}");
}
