//! `agw`: a guarding AI gateway for Claude Code and the official SDKs.

use agw_bin::config::{AdminAt, ConfigError, Env, Gateway, Overrides, resolve_listen};
use agw_bin::log::{AccessLog, LogFormat};
use agw_bin::server::{App, ServeOptions, TlsFiles, shutdown_signal};
use agw_core::guard::Decision;
use agw_core::route::RouteKind;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
agw                              serve the built-in default on 127.0.0.1:8080
       agw serve [--config FILE] [OPTIONS]
       agw check --config FILE          validate a config and print what it does
       agw test-policy [--config FILE] [--backend NAME] [--route KIND] < body.json
       agw keys --config FILE create --name NAME [--team TEAM] [--expires 90d] | list | revoke NAME";

const ABOUT: &str = "agw — a guarding AI gateway for Claude Code, Cursor and the official SDKs";

const AFTER: &str = "\
The built-in default is the seed article's setup: Anthropic behind /v1/messages (Messages),
/v1/messages/count_tokens (CountTokens), /v1/models (Models) and everything else (Passthrough),
with a request guard that rejects prompts containing \"credit card\" with
\"Rejected due to inappropriate content\". If ANTHROPIC_API_KEY is set it is injected (clients'
keys are dropped); otherwise each client's own key or login is passed through.

    agw
    ANTHROPIC_BASE_URL=http://127.0.0.1:8080 claude

FILE is agw's YAML (see README.md and agw-bin/examples/) or Kubernetes manifests in the
agentgateway form (Gateway, Secret, AgentgatewayBackend, HTTPRoute).

SIGHUP, or a change of the config file (or a file it references, or the TLS files), reloads
the configuration; a bad one is logged and the running one kept. SIGTERM turns /readyz off,
waits --drain-delay, closes the listener and lets open requests and streams finish.

test-policy runs a request body through a backend's guards without any traffic and prints the
verdict; the masked body follows when rules masked something. Exit status: 0 allowed or masked,
1 rejected, 2 the body or config is invalid.";

#[derive(Parser, Debug)]
#[command(
    name = "agw",
    version,
    about = ABOUT,
    override_usage = USAGE,
    after_help = AFTER,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve a configuration (the default command)
    Serve(ServeArgs),
    /// Validate a configuration and print what it does, with a coverage report
    Check(CheckArgs),
    /// Run a request body (standard input) through a backend's guards offline
    TestPolicy(TestPolicyArgs),
    /// Create, list and revoke client keys: keys create --name NAME [--team T] [--expires 90d],
    /// keys list, keys revoke NAME
    Keys(KeysArgs),
}

#[derive(Args, Debug)]
struct KeysArgs {
    /// The configuration whose `auth.keys` store (file, or Redis) holds the keys
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// create --name NAME [--team TEAM] [--expires DURATION] | list | revoke NAME
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Args, Debug, Default, Clone)]
struct ConfigArgs {
    /// Configuration file: native YAML or the seed's Kubernetes manifests (default: the
    /// built-in default)
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Send backend NAME (or every backend) to URL instead of the provider's, e.g. a local mock
    /// or an internal endpoint; also AGW_BASE_URL=[NAME=]URL
    #[arg(long = "base-url", value_name = "[NAME=]URL")]
    base_url: Vec<String>,
}

#[derive(Args, Debug, Default, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Listen address, overriding the config: 127.0.0.1:8080, localhost:8080, [::]:8080;
    /// port 0 picks a free port
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// One log line per request
    #[arg(long, value_enum, value_name = "WHERE", default_value = "stderr")]
    access_log: AccessLogArg,
    /// Log line format
    #[arg(long, value_name = "FORMAT", default_value = "logfmt", value_parser = parse_format)]
    log_format: LogFormat,
    /// Admin endpoints /healthz /readyz /config /metrics, or `off` (default: the config's
    /// `admin_listen`, else 127.0.0.1:9091)
    #[arg(long, value_name = "HOST:PORT|off")]
    admin_listen: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); reloaded when it changes
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// On SIGTERM, report not-ready this long before closing the listener (~5 on Kubernetes)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = secs_or_zero)]
    drain_delay: Option<u64>,
    /// Close a connection idle this long (default 60)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = secs)]
    idle_timeout: Option<u64>,
    /// Close a connection whose request body takes longer than this (default 60)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = secs)]
    body_timeout: Option<u64>,
    /// Allow listening beyond loopback while injecting a provider key without client
    /// authentication (anyone who reaches the port spends the key)
    #[arg(long)]
    allow_unauthenticated: bool,
}

/// A whole number of seconds, at least 1. A negative one is read as a value (not as an
/// unknown option `-1`) and refused by name.
fn secs(s: &str) -> Result<u64, String> {
    match secs_or_zero(s)? {
        0 => Err("must be at least 1 second".into()),
        n => Ok(n),
    }
}

/// A whole number of seconds, 0 or more.
fn secs_or_zero(s: &str) -> Result<u64, String> {
    if s.trim_start().starts_with('-') {
        return Err("must not be negative (a whole number of seconds)".into());
    }
    s.trim()
        .parse()
        .map_err(|_| "not a whole number of seconds".into())
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    s.parse()
}

#[derive(ValueEnum, Debug, Default, Clone, Copy)]
enum AccessLogArg {
    #[default]
    Stderr,
    Off,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args, Debug)]
struct TestPolicyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The backend whose guards to run (default: the first)
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// The route kind: messages, count_tokens, completions, responses, ... (default: messages
    /// for Anthropic backends, completions for OpenAI ones)
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    route: Option<RouteKind>,
}

fn parse_kind(s: &str) -> Result<RouteKind, String> {
    s.parse()
        .map_err(|e: agw_core::route::UnknownRouteKind| e.to_string())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_error(&e),
    };
    let result = match cli.cmd {
        None => run_server(&cli.serve),
        Some(Cmd::Serve(a)) => run_server(&a),
        Some(Cmd::Check(a)) => check(&a.config),
        Some(Cmd::TestPolicy(a)) => test_policy(&a),
        Some(Cmd::Keys(a)) => keys(&a),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("agw: error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout; a usage error becomes one line naming the problem.
fn clap_error(e: &clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let arg = match e
        .get(ContextKind::InvalidArg)
        .or_else(|| e.get(ContextKind::InvalidSubcommand))
    {
        Some(ContextValue::String(s)) => s.clone(),
        // What a missing required argument names: one or more (`--tls-key <FILE>`).
        Some(ContextValue::Strings(list)) => list.join(", "),
        _ => String::new(),
    };
    let msg = match e.kind() {
        ErrorKind::UnknownArgument => {
            let flag = arg.split('=').next().unwrap_or(&arg).to_owned();
            let hint = match e.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!(" (did you mean `{s}`?)"),
                _ => String::new(),
            };
            format!("unknown option `{flag}`{hint} (see agw --help)")
        }
        ErrorKind::MissingRequiredArgument if !arg.is_empty() => {
            format!("the following required arguments were not provided: {arg} (see agw --help)")
        }
        ErrorKind::InvalidSubcommand => {
            format!(
                "unknown command `{arg}` (commands: serve, check, test-policy, keys; see agw --help)"
            )
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            format!(
                "{} (see agw --help)",
                first.trim_start_matches("error: ").trim()
            )
        }
    };
    eprintln!("agw: error: {msg}");
    ExitCode::from(2)
}

fn base_url(v: &str) -> (Option<String>, String) {
    match v.split_once('=') {
        Some((name, url)) if !name.contains(':') && !name.contains('/') => {
            (Some(name.to_owned()), url.to_owned())
        }
        _ => (None, v.to_owned()),
    }
}

/// Loads the configuration `a` names (or the built-in default) with the command line's
/// overrides; the reload watcher calls this again for every change.
fn load(a: &ConfigArgs, listen: Option<&str>) -> Result<Gateway, ConfigError> {
    let env = Env::process();
    let mut overrides = Overrides {
        listen: listen
            .map(|l| resolve_listen(l).map_err(|e| ConfigError::new("--listen", e)))
            .transpose()?,
        base_urls: a.base_url.iter().map(|v| base_url(v)).collect(),
    };
    if overrides.base_urls.is_empty()
        && let Some(v) = std::env::var("AGW_BASE_URL").ok().filter(|v| !v.is_empty())
    {
        overrides.base_urls.push(base_url(&v));
    }
    let mut gw = match &a.config {
        Some(path) => Gateway::load(path, &env),
        None => Gateway::builtin(&env),
    }?;
    gw.apply(&overrides)?;
    Ok(gw)
}

/// `agw keys`: the key store of the config's `auth.keys` (a file, or Redis when configured).
fn keys(a: &KeysArgs) -> Result<ExitCode, String> {
    let cmd = agw_bin::keys::KeysCommand::parse(&a.command)?;
    let args = ConfigArgs {
        config: Some(a.config.clone()),
        base_url: Vec::new(),
    };
    let gw = load(&args, None).map_err(|e| e.to_string())?;
    let team = gw
        .team
        .clone()
        .filter(|t| t.auth.keys.is_some())
        .ok_or_else(|| format!("{}: no `auth.keys` store configured", a.config.display()))?;
    // A `redis` section whose URL is empty (its variable unset in this shell): the servers
    // that share Redis would never see a change made to the key file, and a revocation would
    // find no key there (operations review). `agw serve` runs on the file then, and says so.
    if let Some(why) = &gw.redis_url_empty {
        let msg = format!(
            "{why} — with a `redis` section, servers keep keys in Redis; set it, or remove \
             the section to use the key file"
        );
        let file = team.auth.keys.as_ref().and_then(|k| k.file.as_ref());
        match (&cmd, file) {
            (agw_bin::keys::KeysCommand::List, Some(file)) => {
                eprintln!("agw keys: warning: {msg}; listing {}", file.display());
            }
            _ => return Err(msg),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let team_config = team;
        let team = team_config.build().await.map_err(|e| e.to_string())?;
        let store = team.keys.as_deref().ok_or("auth.keys is not configured")?;
        // Which store the command works on, where the operator sees it (stdout's last line is
        // a new key).
        match (&team.redis, &team_config.auth.keys) {
            (Some(redis), _) => {
                let within = Duration::from_millis(
                    team_config.redis.as_ref().map_or(100, |r| r.timeout_ms) * 4,
                )
                .max(Duration::from_secs(2));
                redis
                    .wait(within)
                    .await
                    .map_err(|e| format!("redis.url: {}", e.0))?;
                eprintln!("agw keys: keys in {redis}");
            }
            (None, Some(k)) => {
                if let Some(file) = &k.file {
                    eprintln!("agw keys: keys in {}", file.display());
                }
            }
            (None, None) => {}
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut out = Vec::new();
        // Spend is shared only through Redis: without it, it lives in the memory of the agw
        // that serves, and this process's own limiter would show every key at 0.
        let usage = team.limiter.as_deref().filter(|_| team.redis.is_some());
        if usage.is_none()
            && team.limiter.is_some()
            && matches!(cmd, agw_bin::keys::KeysCommand::List)
        {
            eprintln!(
                "agw keys: no spend shown: without Redis it is kept by the serving agw \
                 (agw_cost_usd_total on its /metrics)"
            );
        }
        let result = agw_bin::keys::run(&cmd, store, usage, now, &mut out).await;
        let _ = std::io::stdout().write_all(&out);
        result.map(|()| ExitCode::SUCCESS)
    })
}

fn check(a: &ConfigArgs) -> Result<ExitCode, String> {
    let Some(path) = &a.config else {
        return Err("check needs --config FILE".into());
    };
    let gw = load(a, None).map_err(|e| e.to_string())?;
    let mut out = format!("ok: {} — listens on {}\n", path.display(), gw.listen);
    for line in gw.summary() {
        out.push_str(&format!("  {line}\n"));
    }
    for line in gw.team.iter().flat_map(|t| t.summary()) {
        out.push_str(&format!("  {line}\n"));
    }
    if gw.team.is_some() && matches!(gw.admin_listen, AdminAt::Off) {
        out.push_str("  note: admin_listen is off: metrics are counted but not served\n");
    }
    for n in &gw.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    for w in &gw.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    // The URL's form is checked, not the identity provider: say so, since `serve` then needs it
    // (it starts without it, refusing tokens until a fetch succeeds).
    if let Some(url) = gw
        .team
        .as_ref()
        .and_then(|t| t.auth.jwt.as_ref())
        .and_then(|j| j.jwks_url.as_deref())
    {
        out.push_str(&format!(
            "  note: auth.jwt.jwks_url {} was not fetched; `serve` refuses tokens until it is\n",
            agw_core::provider::shown_url(url)
        ));
    }
    // `serve` refuses to start so without `--allow-unauthenticated` (ops review: check said ok).
    if let Some(why) = exposure_problem(&gw, false) {
        out.push_str(&format!("  warning: `serve` refuses this: {why}\n"));
    }
    out.push_str("coverage:\n");
    for line in gw.coverage() {
        out.push_str(&format!("  {line}\n"));
    }
    // A reader that stops early (`agw check ... | head -1`) is not an error.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn test_policy(a: &TestPolicyArgs) -> Result<ExitCode, String> {
    let gw = load(&a.config, None).map_err(|e| e.to_string())?;
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

fn run_server(a: &ServeArgs) -> Result<ExitCode, String> {
    agw_bin::log::init(a.log_format);
    let mut gw = load(&a.config, a.listen.as_deref()).map_err(|e| e.to_string())?;
    // One body deadline for the connection and the body stage (which answers it with a 408),
    // kept across reloads: the connections' timers are set at start.
    let body_secs = a.body_timeout.or(gw.body_timeout_secs);
    gw.body_timeout_secs = body_secs;
    if let Some(why) = exposure_problem(&gw, a.allow_unauthenticated) {
        return Err(why);
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: a.tls_client_ca.clone(),
        }),
        _ => gw.tls.clone(),
    };
    let admin_listen = match a.admin_listen.as_deref() {
        Some("off") => AdminAt::Off,
        Some(v) => {
            AdminAt::Explicit(resolve_listen(v).map_err(|e| format!("--admin-listen: {e}"))?)
        }
        None => gw.admin_listen,
    };
    // Before the runtime: its threads, the listener and every socket after count against it.
    let open_files = agw_bin::server::fds::raise_open_files();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let log = match a.access_log {
        AccessLogArg::Stderr => AccessLog::Stderr,
        AccessLogArg::Off => AccessLog::Off,
    };
    rt.block_on(async move {
        let shutdown = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(gw.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", gw.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let admin = match admin_listen {
            AdminAt::Off => None,
            AdminAt::Explicit(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} (admin_listen): {e}"))?,
            ),
            // The default address may be taken (another agw on the host): go on without it.
            AdminAt::Default => {
                match tokio::net::TcpListener::bind(agw_bin::server::DEFAULT_ADMIN_LISTEN).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tracing::warn!(
                            target: "agw",
                            "no admin endpoints: cannot listen on {}: {e}",
                            agw_bin::server::DEFAULT_ADMIN_LISTEN
                        );
                        None
                    }
                }
            }
        };
        let source = match &a.config.config {
            Some(p) => p.display().to_string(),
            None => "the built-in default".into(),
        };
        // In the log's format (`--log-format json` too), as every message after this point.
        for n in &gw.notes {
            tracing::info!(target: "agw", "note: {n}");
        }
        for w in &gw.warnings {
            tracing::warn!(target: "agw", "{w}");
        }
        if let Some(w) = agw_bin::server::fds::open_files_warning(&open_files) {
            tracing::warn!(target: "agw", "{w}");
        }
        let team = match &gw.team {
            Some(t) => Some(std::sync::Arc::new(t.build().await.map_err(|e| {
                format!(
                    "{}: {e}",
                    a.config
                        .config
                        .as_ref()
                        .map_or("<built-in>".into(), |p| p.display().to_string())
                )
            })?)),
            None => None,
        };
        // A missing key file is an empty store (the first `agw keys create` makes it), so
        // every key would get a 401 with nothing said (operations review).
        if let Some(path) = team
            .as_ref()
            .and_then(|t| t.key_file.as_ref())
            .and_then(|k| k.path())
            && std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            tracing::warn!(
                target: "agw",
                "key file {} does not exist: no client keys until it is created \
                 (agw keys --config FILE create)",
                path.display()
            );
        }
        let mut watch: Vec<PathBuf> = a.config.config.iter().cloned().collect();
        watch.extend(gw.files.iter().cloned());
        let mut opts = ServeOptions {
            tls,
            grace: Duration::from_secs(gw.shutdown_grace_secs),
            drain_delay: Duration::from_secs(a.drain_delay.unwrap_or(gw.drain_delay_secs)),
            watch,
            ..ServeOptions::default()
        };
        opts.tls_handle()?;
        if let Some(team) = &team {
            let metrics = team.metrics.clone();
            let stats = opts.reload_stats();
            // Reloads counted by the watcher, carried into the registry when it is read.
            let reported = std::sync::Mutex::new((0u64, 0u64));
            opts.admin_routes = Some(std::sync::Arc::new(move |req| {
                (req.uri().path() == "/metrics").then(|| {
                    if let Ok(mut seen) = reported.lock() {
                        let when = stats
                            .last_ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                        for _ in seen.0..stats.ok() {
                            metrics.reload(true, when.map_or(0, |d| d.as_secs()));
                        }
                        for _ in seen.1..stats.failed() {
                            metrics.reload(false, 0);
                        }
                        *seen = (stats.ok(), stats.failed());
                    }
                    let mut res = http::Response::new(agw_bin::server::full_body(metrics.encode()));
                    res.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(agw_tower::metrics::CONTENT_TYPE),
                    );
                    res
                })
            }));
            // Ready once Redis has answered: a pod started during an outage gets no traffic.
            // A later outage does not take it out of the Service (every replica would leave at
            // once): known keys keep working, limits and budgets answer as `on_error` says,
            // and the log and `agw_limit_store_failures_total` tell.
            if let Some(redis) = team.redis.clone() {
                opts.ready_checks.push(std::sync::Arc::new(move || {
                    let redis = redis.clone();
                    Box::pin(async move { redis.get().map(|_| ()).map_err(|e| e.to_string()) })
                }));
            }
        }
        let (reload_args, reload_listen, allow) =
            (a.config.clone(), a.listen.clone(), a.allow_unauthenticated);
        // The team pieces (Redis connection, JWKS, limiter, metrics) are built once: a reload
        // that changes their sections says that those changes wait for a restart, and keeps
        // the sections in force, which `/config` then shows (red-team rt4: it showed the new
        // file's limits, not the ones enforced).
        let team_at_start = gw.team.clone();
        // What a reload cannot change: the address the listener is bound to, and the client
        // authentication built at start (tenth red-team review: a reload that added an
        // injected key with `auth` and a loopback `listen` was checked against the new file's
        // address and auth, neither in use, and injected the key for anyone on the old port).
        let running = (addr, gw.requires_client_auth());
        let body_at_start = gw.body_timeout_secs;
        // Settings the server took at start (the connections' timers, the shutdown's), as
        // in effect with the command line's flags: a reload that changes one says it waits
        // for a restart, and keeps the running value, which `/config` then shows (review: a
        // changed grace period was logged as reloaded and shown, and not used).
        let in_file = (
            gw.shutdown_grace_secs,
            gw.drain_delay_secs,
            gw.idle_timeout_secs,
        );
        let in_effect = (
            gw.shutdown_grace_secs,
            a.drain_delay.unwrap_or(gw.drain_delay_secs),
            a.idle_timeout.or(gw.idle_timeout_secs),
        );
        opts.loader = Some(std::sync::Arc::new(move || {
            let mut gw = load(&reload_args, reload_listen.as_deref())?;
            // Started without team sections, agw built no layer that authenticates, checks
            // access, limits or counts: a file that adds them would be shown and reported as
            // in use while nothing enforces them (red-team rt4: a reload adding `auth` and an
            // `access` list served anyone, any model). Refused, as a start would refuse an
            // `access` list with nothing to enforce it.
            if team_at_start.is_none() && gw.team.is_some() {
                return Err(ConfigError::new(
                    "reload",
                    format!(
                        "{} need the team layers, which agw builds only when it starts with \
                         them: restart agw to turn them on (the previous configuration keeps \
                         serving)",
                        gw.team_sections
                            .iter()
                            .map(|s| format!("`{s}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let mut pending = Vec::new();
            if gw.body_timeout_secs.is_some() && gw.body_timeout_secs != body_at_start {
                pending.push("body_timeout_secs");
            }
            gw.body_timeout_secs = body_secs;
            let (grace, drain, idle) = in_file;
            let changed = [
                ("shutdown_grace_secs", gw.shutdown_grace_secs != grace),
                ("drain_delay_secs", gw.drain_delay_secs != drain),
                ("idle_timeout_secs", gw.idle_timeout_secs != idle),
            ];
            pending.extend(changed.iter().filter(|(_, c)| *c).map(|(name, _)| *name));
            (
                gw.shutdown_grace_secs,
                gw.drain_delay_secs,
                gw.idle_timeout_secs,
            ) = in_effect;
            let team_changed = changed_team_sections(team_at_start.as_ref(), gw.team.as_ref());
            // Said as at start (red-team rt4: a reload that left a backend without a key, with
            // client authentication on, was silent while every request reached the provider
            // without credentials).
            for w in &gw.warnings {
                tracing::warn!(target: "agw", "reload: {w}");
            }
            // Never what a start with this file would refuse; and never exposed as served:
            // on the bound listener, with the client authentication built at start. The
            // consent (`allow_unauthenticated`) is the file's being installed, or the flag's.
            if let Some(why) = exposure_problem(&gw, allow) {
                return Err(ConfigError::new("reload", why));
            }
            let (listen, client_auth) = running;
            if let Some(why) = exposure(&gw, listen, client_auth, allow || unauth_allowed(&gw)) {
                return Err(ConfigError::new(
                    "reload",
                    format!(
                        "{why} (a reload keeps the listener and the client authentication agw \
                         started with: restart to change them)"
                    ),
                ));
            }
            pending.extend(team_changed);
            if !pending.is_empty() {
                tracing::warn!(
                    target: "agw",
                    "reload: changes to {} take effect on restart; the rest of the new \
                     configuration is in use",
                    pending.join(", ")
                );
            }
            // What is in force, for `/config`: the team sections agw started with.
            gw.team.clone_from(&team_at_start);
            gw.pending_restart = pending;
            Ok(gw)
        }));
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
        let idle = a.idle_timeout.or(gw.idle_timeout_secs);
        let body = body_secs;
        let limiter = team.as_ref().and_then(|t| t.limiter.clone());
        let mut app = App::with_team(gw, log, team)
            .map_err(|e| format!("cannot set up the upstream client: {e}"))?;
        if let Some(s) = idle {
            app = app.idle_timeout(Duration::from_secs(s));
        }
        if let Some(s) = body {
            app = app.body_timeout(Duration::from_secs(s));
        }
        agw_bin::server::run(listener, app, opts, shutdown)
            .await
            .map_err(|e| e.to_string())?;
        // The totals settled since the last flush (reports' day and month totals wait up to
        // 100 ms): applied before the process ends, bounded by the store's own timeout.
        // Then what this replica holds of leased rate limits goes back to Redis, for the
        // replicas still serving.
        if let Some(limiter) = limiter {
            limiter.flush_settlements().await;
            if let Err(e) = limiter.give_back().await {
                tracing::warn!(target: "agw", "shutdown: leased rate limits not given back: {e}");
            }
        }
        tracing::info!(target: "agw", "shut down");
        Ok(ExitCode::SUCCESS)
    })
}

/// The team sections (`auth`, `redis`, `limits`, `prices`, `metrics`) that differ between
/// the ones in force and a reloaded file's.
fn changed_team_sections(
    running: Option<&agw_tower::team::TeamConfig>,
    file: Option<&agw_tower::team::TeamConfig>,
) -> Vec<&'static str> {
    let none = agw_tower::team::TeamConfig::default();
    let (a, b) = (running.unwrap_or(&none), file.unwrap_or(&none));
    // The sections have no `PartialEq`; their `Debug` lists every setting (no secret is
    // printed: only compared).
    let differs =
        |x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| format!("{x:?}") != format!("{y:?}");
    [
        ("auth", differs(&a.auth, &b.auth)),
        ("redis", differs(&a.redis, &b.redis)),
        ("limits", differs(&a.limits, &b.limits)),
        ("prices", differs(&a.prices, &b.prices)),
        ("metrics", differs(&a.metrics, &b.metrics)),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Why serving `gw` as configured would hand the provider key to anyone who can reach the
/// port, if it would.
fn exposure_problem(gw: &Gateway, allowed: bool) -> Option<String> {
    exposure(
        gw,
        gw.listen,
        gw.requires_client_auth(),
        allowed || unauth_allowed(gw),
    )
}

/// Whether `gw` allows unauthenticated callers explicitly (`auth.allow_unauthenticated`).
fn unauth_allowed(gw: &Gateway) -> bool {
    gw.team
        .as_ref()
        .is_some_and(|t| t.auth.allow_unauthenticated)
}

/// Why serving the backends of `gw` on `listen`, with client authentication required or not,
/// would hand a provider key to anyone who can reach the port, if it would (`allowed`: the
/// operator said so).
fn exposure(
    gw: &Gateway,
    listen: std::net::SocketAddr,
    client_auth: bool,
    allowed: bool,
) -> Option<String> {
    let injects = gw
        .backends
        .iter()
        .filter(|b| {
            matches!(
                b.spec.credentials(),
                agw_core::provider::Credentials::Inject(_)
            )
        })
        .map(|b| b.name.as_str())
        .collect::<Vec<_>>();
    // `::ffff:127.0.0.1` is loopback too.
    let loopback = listen.ip().to_canonical().is_loopback();
    (!allowed && !loopback && !injects.is_empty() && !client_auth).then(|| {
        format!(
            "refusing to listen on {} without client authentication while injecting the provider \
             key of backend `{}`: anyone who reaches the port would spend it; configure client \
             keys or JWT (`auth:`), listen on 127.0.0.1, or allow it explicitly \
             (--allow-unauthenticated, or `auth: {{allow_unauthenticated: true}}`)",
            listen,
            injects.join("`, `")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_bin::config::Env;

    fn gateway(text: &str) -> Gateway {
        Gateway::parse("agw.yaml", text, &Env::from_pairs([("K", "sk-ant-x")])).unwrap()
    }

    /// Found by the tenth red-team review: a reload is checked against the listener and the
    /// client authentication in use, not the new file's — a reload cannot move the one or
    /// (without a restart) change the other, so a file that adds an injected key with `auth`
    /// and a loopback `listen` must not inject it for anyone on the open port.
    #[test]
    fn a_reload_is_checked_against_the_running_listener_and_auth() {
        let new = gateway(
            "listen: 127.0.0.1:8080\nauth:\n  keys: {file: keys.json}\nbackends:\n  - name: a\n    provider: anthropic\n    api_key: ${K}\n",
        );
        // The new file alone looks fine.
        assert_eq!(exposure_problem(&new, false), None);
        let open: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let why = exposure(&new, open, false, false).expect("refused");
        assert!(why.contains("0.0.0.0:8080") && why.contains("`a`"), "{why}");
        // Running with client authentication, or on loopback, or allowed: fine.
        assert_eq!(exposure(&new, open, true, false), None);
        assert_eq!(exposure(&new, open, false, true), None);
        for lo in ["127.0.0.1:8080", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            assert_eq!(
                exposure(&new, lo.parse().unwrap(), false, false),
                None,
                "{lo}"
            );
        }
        // Nothing injected: nothing to expose.
        let passthrough = gateway("backends:\n  - name: a\n    provider: anthropic\n");
        assert_eq!(exposure(&passthrough, open, false, false), None);
    }
}
