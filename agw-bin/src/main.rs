//! `agw`: a guarding AI gateway for Claude Code and the official SDKs.

use agw_bin::config::{ConfigError, Env, Gateway, Overrides};
use agw_bin::log::{AccessLog, LogFormat};
use agw_bin::server::{App, ServeOptions, TlsFiles, shutdown_signal};
use agw_core::guard::Decision;
use agw_core::route::RouteKind;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "\
agw — a guarding AI gateway for Claude Code, Cursor and the official SDKs

USAGE:
    agw                              serve the built-in default on 127.0.0.1:8080
    agw serve [--config FILE] [OPTIONS]
    agw check --config FILE          validate a config and print what it does
    agw test-policy [--config FILE] [--backend NAME] [--route KIND] < body.json
    agw help | --help | --version

The built-in default is the seed article's setup: Anthropic behind /v1/messages (Messages),
/v1/messages/count_tokens (CountTokens), /v1/models (Models) and everything else (Passthrough),
with a request guard that rejects prompts containing \"credit card\" with
\"Rejected due to inappropriate content\". If ANTHROPIC_API_KEY is set it is injected (clients'
keys are dropped); otherwise each client's own key or login is passed through.

    agw
    ANTHROPIC_BASE_URL=http://127.0.0.1:8080 claude

FILE is agw's YAML (see README.md and agw-bin/examples/) or Kubernetes manifests in the
agentgateway form (Gateway, Secret, AgentgatewayBackend, HTTPRoute).

OPTIONS (serve):
    --config FILE            configuration file (default: the built-in default)
    --listen HOST:PORT       listen address (overrides the config; port 0 picks a free port)
    --base-url [NAME=]URL    send backend NAME (or every backend) to URL instead of the
                             provider's, e.g. a local mock or an internal endpoint;
                             also AGW_BASE_URL=[NAME=]URL
    --access-log stderr|off  one log line per request (default: stderr)
    --log-format logfmt|json log line format (default: logfmt)
    --admin-listen HOST:PORT|off
                             admin endpoints /healthz /readyz /config (default: 127.0.0.1:9091)
    --tls-cert FILE --tls-key FILE
                             serve HTTPS with this PEM certificate chain and key
    --tls-client-ca FILE     require client certificates issued by this CA
    --drain-delay SECS       on SIGTERM, report not-ready this long before closing the
                             listener (default: 0; ~5 on Kubernetes)
    --idle-timeout SECS      close a connection idle this long (default: 60)
    --body-timeout SECS      close a connection whose request body takes longer (default: 60)

SIGHUP, or a change of the config file (or the TLS files), reloads the configuration; a bad
one is logged and the running one kept.

test-policy runs a request body through a backend's guards without any traffic and prints the
verdict; the masked body follows when rules masked something. --route is the route kind
(messages, count_tokens, completions; default: messages for Anthropic backends, completions
for OpenAI ones). Exit status: 0 allowed or masked, 1 rejected, 2 the body or config is invalid.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("agw: error: {msg}");
            ExitCode::from(2)
        }
    }
}

#[derive(Default, Clone)]
struct Args {
    log_format: LogFormat,
    /// `None`: the default address; `Some(None)`: off.
    admin_listen: Option<Option<std::net::SocketAddr>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    drain_delay: Option<u64>,
    idle_timeout: Option<u64>,
    body_timeout: Option<u64>,
    config: Option<PathBuf>,
    overrides: Overrides,
    backend: Option<String>,
    route: Option<RouteKind>,
    log: Option<AccessLog>,
}

fn parse_args(cmd: &str, rest: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (flag.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value (see agw --help)"))
        };
        match (cmd, flag) {
            (_, "--config" | "-c") => a.config = Some(value("--config")?.into()),
            ("serve", "--listen") => {
                let v = value("--listen")?;
                a.overrides.listen = Some(v.parse().map_err(|_| {
                    format!("--listen `{v}` is not HOST:PORT, e.g. 127.0.0.1:8080")
                })?);
            }
            ("serve" | "check" | "test-policy", "--base-url") => {
                a.overrides.base_urls.push(base_url(&value("--base-url")?));
            }
            ("serve", "--access-log") => {
                a.log = Some(match value("--access-log")?.as_str() {
                    "stderr" => AccessLog::Stderr,
                    "off" => AccessLog::Off,
                    v => return Err(format!("--access-log `{v}`: expected stderr or off")),
                });
            }
            ("serve", "--log-format") => a.log_format = value("--log-format")?.parse()?,
            ("serve", "--admin-listen") => {
                let v = value("--admin-listen")?;
                a.admin_listen = Some(match v.as_str() {
                    "off" => None,
                    _ => Some(
                        v.parse()
                            .map_err(|_| format!("--admin-listen `{v}` is not HOST:PORT or off"))?,
                    ),
                });
            }
            ("serve", "--tls-cert") => a.tls_cert = Some(value("--tls-cert")?.into()),
            ("serve", "--tls-key") => a.tls_key = Some(value("--tls-key")?.into()),
            ("serve", "--tls-client-ca") => {
                a.tls_client_ca = Some(value("--tls-client-ca")?.into());
            }
            ("serve", "--drain-delay") => {
                let v = value("--drain-delay")?;
                a.drain_delay = Some(
                    v.parse()
                        .map_err(|_| format!("--drain-delay `{v}` is not whole seconds"))?,
                );
            }
            ("serve", flag @ ("--idle-timeout" | "--body-timeout")) => {
                let v = value(flag)?;
                let secs =
                    v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{flag} `{v}` is not a positive number of seconds")
                    })?;
                if flag == "--idle-timeout" {
                    a.idle_timeout = Some(secs);
                } else {
                    a.body_timeout = Some(secs);
                }
            }
            ("test-policy", "--backend") => a.backend = Some(value("--backend")?),
            ("test-policy", "--route") => {
                let v = value("--route")?;
                a.route = Some(v.parse().map_err(|e| format!("--route: {e}"))?);
            }
            (_, "--help" | "-h") => {
                print!("{HELP}");
                std::process::exit(0);
            }
            _ => {
                return Err(format!(
                    "unknown option `{flag}` for `agw {cmd}` (see agw --help)"
                ));
            }
        }
    }
    if let Ok(v) = std::env::var("AGW_BASE_URL") {
        if !v.is_empty() && a.overrides.base_urls.is_empty() {
            a.overrides.base_urls.push(base_url(&v));
        }
    }
    Ok(a)
}

fn base_url(v: &str) -> (Option<String>, String) {
    match v.split_once('=') {
        Some((name, url)) if !name.contains(':') && !name.contains('/') => {
            (Some(name.to_owned()), url.to_owned())
        }
        _ => (None, v.to_owned()),
    }
}

fn load(a: &Args) -> Result<Gateway, ConfigError> {
    let env = Env::process();
    let mut gw = match &a.config {
        Some(path) => Gateway::load(path, &env)?,
        None => Gateway::builtin(&env)?,
    };
    gw.apply(&a.overrides)?;
    Ok(gw)
}

fn run(args: Vec<String>) -> Result<ExitCode, String> {
    let (cmd, rest) = match args.first().map(String::as_str) {
        None => ("serve", &args[..0]),
        Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
        Some("--version" | "-V" | "version") => {
            println!("agw {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Some(c @ ("serve" | "check" | "test-policy")) => (c, &args[1..]),
        Some(f) if f.starts_with('-') => ("serve", &args[..]),
        Some(other) => {
            return Err(format!(
                "unknown command `{other}` (commands: serve, check, test-policy; see agw --help)"
            ));
        }
    };
    let a = parse_args(cmd, rest)?;
    match cmd {
        "check" => check(&a),
        "test-policy" => test_policy(&a),
        _ => run_server(&a),
    }
}

fn check(a: &Args) -> Result<ExitCode, String> {
    if a.config.is_none() {
        return Err("check needs --config FILE".into());
    }
    let gw = load(a).map_err(|e| e.to_string())?;
    println!(
        "ok: {} — listens on {}",
        a.config.as_ref().unwrap().display(),
        gw.listen
    );
    for line in gw.summary() {
        println!("  {line}");
    }
    for n in &gw.notes {
        println!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

fn test_policy(a: &Args) -> Result<ExitCode, String> {
    let gw = load(a).map_err(|e| e.to_string())?;
    let backend = match &a.backend {
        Some(name) => gw
            .backends
            .iter()
            .find(|b| &b.name == name)
            .ok_or_else(|| format!("no backend named `{name}`"))?,
        None => &gw.backends[0],
    };
    let kind = a.route.unwrap_or(match backend.spec.kind().api() {
        agw_core::api::Api::Anthropic => RouteKind::Messages,
        agw_core::api::Api::OpenAi => RouteKind::Completions,
    });
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
    let verdict = match backend.policy.inspect(kind, &body) {
        Ok(v) => v,
        Err(e) => {
            println!("verdict: invalid\nmessage: {}", e.error_body().message());
            return Ok(ExitCode::from(2));
        }
    };
    let mut out = String::new();
    let code = match verdict.decision() {
        Decision::Allow if verdict.hits().is_empty() => {
            out.push_str("verdict: allow\n");
            0
        }
        Decision::Allow => {
            out.push_str("verdict: allow (audit hits only)\n");
            0
        }
        Decision::Reject(r) => {
            out.push_str(&format!(
                "verdict: reject\nrule: {}\nstatus: {}\nmessage: {}\n",
                r.rule,
                r.status.as_u16(),
                r.message
            ));
            1
        }
        Decision::Rewrite(_) => {
            out.push_str("verdict: mask\n");
            0
        }
    };
    for h in verdict.hits() {
        let det = h
            .detector
            .map(|d| format!(" [{}]", d.name()))
            .unwrap_or_default();
        out.push_str(&format!(
            "hit: {} {}{} at {}\n",
            h.rule,
            h.action.name(),
            det,
            h.path
        ));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    if let Decision::Rewrite(masked) = verdict.decision() {
        let _ = stdout.write_all(b"masked body:\n");
        let _ = stdout.write_all(masked);
        let _ = stdout.write_all(b"\n");
    }
    Ok(ExitCode::from(code))
}

fn run_server(a: &Args) -> Result<ExitCode, String> {
    agw_bin::log::init(a.log_format);
    let gw = load(a).map_err(|e| e.to_string())?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: a.tls_client_ca.clone(),
        }),
        (None, None) if a.tls_client_ca.is_none() => None,
        _ => {
            return Err(
                "--tls-cert and --tls-key go together (and --tls-client-ca needs both)".into(),
            );
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(gw.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", gw.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let admin = match a.admin_listen {
            Some(None) => None,
            Some(Some(addr)) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} (--admin-listen): {e}"))?,
            ),
            // The default address may be taken (another agw on the host): go on without it.
            None => {
                match tokio::net::TcpListener::bind(agw_bin::server::DEFAULT_ADMIN_LISTEN).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        eprintln!(
                            "agw: warning: no admin endpoints: cannot listen on {}: {e}",
                            agw_bin::server::DEFAULT_ADMIN_LISTEN
                        );
                        None
                    }
                }
            }
        };
        let source = match &a.config {
            Some(p) => p.display().to_string(),
            None => "the built-in default".into(),
        };
        for n in &gw.notes {
            eprintln!("agw: note: {n}");
        }
        let mut opts = ServeOptions {
            tls,
            grace: Duration::from_secs(gw.shutdown_grace_secs),
            drain_delay: Duration::from_secs(a.drain_delay.unwrap_or(0)),
            watch: a.config.iter().cloned().collect(),
            ..ServeOptions::default()
        };
        opts.tls_handle()?;
        let reload_args = a.clone();
        opts.loader = Some(std::sync::Arc::new(move || load(&reload_args)));
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let summary = gw.summary().join("; ");
        println!("agw listening on {scheme}://{addr} with {source}: {summary}");
        if let Some(l) = &admin {
            let admin_addr = l.local_addr().map_err(|e| e.to_string())?;
            // Whoever reads the first line may have closed the pipe since.
            let _ = writeln!(std::io::stdout(), "agw admin on http://{admin_addr}");
        }
        let _ = std::io::stdout().flush();
        opts.admin = admin;
        let mut app = App::new(gw, a.log.unwrap_or(AccessLog::Stderr))
            .map_err(|e| format!("cannot set up the upstream client: {e}"))?;
        if let Some(s) = a.idle_timeout {
            app = app.idle_timeout(Duration::from_secs(s));
        }
        if let Some(s) = a.body_timeout {
            app = app.body_timeout(Duration::from_secs(s));
        }
        agw_bin::server::run(listener, app, opts, shutdown_signal())
            .await
            .map_err(|e| e.to_string())?;
        eprintln!("agw: shut down");
        Ok(ExitCode::SUCCESS)
    })
}
