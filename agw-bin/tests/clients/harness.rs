//! Child processes for the client tests: the real `agw` binary, Claude Code and the Python
//! SDK scripts, each with a bounded run time, its output kept for failure messages.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::install::Tools;

/// Longest a client may run; it is killed after that and the test fails with its output.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Longest agw may take to print its listening line, or to exit after SIGTERM.
const AGW_LIMIT: Duration = Duration::from_secs(20);
/// How long output pipes may stay open after their process ended (a grandchild holding them).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Claude Code generates a device id into `$CLAUDE_CONFIG_DIR/.claude.json` on first start and
/// sends it in `metadata.user_id`; seeding a fixed one keeps request bodies comparable.
const USER_ID: &str = "a9e0c1d2b3f4a5e6d7c8b9a0f1e2d3c4b5a6978866554433221100ffeeddccbb";
/// Sent as `x-claude-code-session-id` and in `metadata.user_id`; fixed with `--session-id`.
pub const SESSION_ID: &str = "0c1a5e55-0a90-4e2e-8c11-e17e5c0ffee0";

/// A temporary folder for one test, removed when the test ends.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("agw-clients-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for sub in ["work", "home", "files"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        Self { root }
    }

    /// Claude Code's working directory (not a git repository).
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }

    /// Writes `text` into a file outside the working directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root.join("files").join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An empty Claude Code config folder, at the same path for every run of one test, so that
    /// the path (which the system prompt names) does not differ between compared runs.
    fn fresh_claude_config(&self) -> PathBuf {
        let dir = self.root.join("claude-config");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join(".claude.json"),
            format!("{{\"userID\":\"{USER_ID}\"}}\n"),
        )
        .unwrap();
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a finished child printed.
#[derive(Debug)]
pub struct Run {
    what: String,
    /// `None` when it was killed for running too long.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Exited on its own with a failure code.
    pub fn failed(&self) -> bool {
        self.status.is_some_and(|s| !s.success())
    }

    /// Panics with the whole output unless it exited 0.
    pub fn expect_success(&self) -> &Self {
        assert!(self.success(), "{self}");
        self
    }

    /// The last stdout line as JSON.
    pub fn json(&self) -> serde_json::Value {
        let line = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {self}"))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => writeln!(f, "{} exited with {status}", self.what)?,
            None => writeln!(f, "{} was killed after {RUN_LIMIT:?}", self.what)?,
        }
        writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr\n{}", self.stderr.trim_end())
    }
}

/// Output collected as it arrives, so that it is there even if the process must be killed.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn spawn(self, mut reader: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf).await {
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
            }
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Runs `command` with stdin from /dev/null, killing it after [`RUN_LIMIT`].
pub async fn run(what: impl Into<String>, command: &mut Command) -> Run {
    let what = what.into();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let (out, err) = (Captured::default(), Captured::default());
    let readers = [
        out.clone().spawn(child.stdout.take().unwrap()),
        err.clone().spawn(child.stderr.take().unwrap()),
    ];
    let status = match tokio::time::timeout(RUN_LIMIT, child.wait()).await {
        Ok(status) => Some(status.unwrap_or_else(|e| panic!("waiting for {what}: {e}"))),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    for reader in readers {
        let _ = tokio::time::timeout(DRAIN_LIMIT, reader).await;
    }
    Run {
        what,
        status,
        stdout: out.text(),
        stderr: err.text(),
    }
}

/// The `agw` binary serving on a free port of 127.0.0.1; killed when dropped.
pub struct Agw {
    child: Child,
    pub url: String,
    stderr: Captured,
    stderr_reader: JoinHandle<()>,
}

/// How agw is started.
#[derive(Debug, Default)]
pub struct AgwOptions<'a> {
    /// `--config FILE`; the built-in default without it.
    pub config: Option<&'a Path>,
    /// `--base-url URL`: every backend sent to the mock.
    pub base_url: Option<&'a str>,
    /// `ANTHROPIC_API_KEY` in agw's environment (agw's own key, injected upstream).
    pub api_key: Option<&'a str>,
    /// `--access-log stderr` instead of `off`.
    pub access_log: bool,
}

impl Agw {
    pub async fn start(options: AgwOptions<'_>) -> Agw {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agw"));
        command.arg("serve").args(["--listen", "127.0.0.1:0"]);
        command.args([
            "--access-log",
            if options.access_log { "stderr" } else { "off" },
        ]);
        if let Some(config) = options.config {
            command.arg("--config").arg(config);
        }
        if let Some(url) = options.base_url {
            command.args(["--base-url", url]);
        }
        // Nothing from the test's own environment (a developer's ANTHROPIC_API_KEY,
        // AGW_BASE_URL) may change what agw does.
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        if let Some(key) = options.api_key {
            command.env("ANTHROPIC_API_KEY", key);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start agw");
        let stderr = Captured::default();
        let stderr_reader = stderr.clone().spawn(child.stderr.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = tokio::time::timeout(AGW_LIMIT, stdout.read_line(&mut line)).await;
        let prefix = "agw listening on ";
        let url = match read {
            Ok(Ok(_)) if line.starts_with(prefix) => {
                let rest = &line[prefix.len()..];
                rest.split_whitespace().next().unwrap().to_owned()
            }
            _ => {
                let _ = child.kill().await;
                let _ = tokio::time::timeout(DRAIN_LIMIT, stderr_reader).await;
                panic!(
                    "agw did not print its listening line within {AGW_LIMIT:?}; stdout: {line:?}\nstderr:\n{}",
                    stderr.text()
                )
            }
        };
        // agw prints nothing more there; keep the pipe drained regardless.
        Captured::default().spawn(stdout);
        Agw {
            child,
            url,
            stderr,
            stderr_reader,
        }
    }

    /// Stops agw with SIGTERM, checks that it exits 0, and returns everything it wrote to
    /// stderr (the access log, if on).
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("agw still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "cannot send SIGTERM to agw"
        );
        let status = tokio::time::timeout(AGW_LIMIT, self.child.wait())
            .await
            .expect("agw exits within the limit after SIGTERM")
            .unwrap();
        // The pipe closed with agw; wait for the reader to take in the last lines.
        let _ = tokio::time::timeout(DRAIN_LIMIT, &mut self.stderr_reader).await;
        let stderr = self.stderr.text();
        assert!(
            status.success(),
            "agw exited with {status} after SIGTERM:\n{stderr}"
        );
        stderr
    }
}

/// A client credential, as Claude Code takes it from its environment.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// `ANTHROPIC_API_KEY`, sent as `x-api-key`.
    ApiKey(&'a str),
    /// `ANTHROPIC_AUTH_TOKEN`, sent as `Authorization: Bearer`.
    AuthToken(&'a str),
}

/// One `claude -p` run.
#[derive(Debug)]
pub struct Claude<'a> {
    tools: &'a Tools,
    scratch: &'a Scratch,
    base_url: String,
    credential: Credential<'a>,
    experimental_betas: bool,
    retries: u32,
    args: Vec<String>,
}

impl<'a> Claude<'a> {
    /// `claude -p PROMPT` against `base_url`, with `ANTHROPIC_API_KEY=sk-client` and without
    /// the experimental betas (so a rejected turn is sent once, not six times).
    pub fn new(tools: &'a Tools, scratch: &'a Scratch, base_url: &str, prompt: &str) -> Self {
        Self {
            tools,
            scratch,
            base_url: base_url.to_owned(),
            credential: Credential::ApiKey("sk-client"),
            experimental_betas: false,
            retries: 0,
            args: vec!["-p".into(), prompt.into()],
        }
    }

    pub fn credential(mut self, credential: Credential<'a>) -> Self {
        self.credential = credential;
        self
    }

    /// Keeps Claude Code's experimental betas, and with them its beta fallbacks: on a 400 it
    /// sends the turn again, up to six times in all, dropping one beta each time.
    pub fn with_experimental_betas(mut self) -> Self {
        self.experimental_betas = true;
        self
    }

    /// Lets Claude Code retry a retryable answer (429, 5xx) up to `n` times (default 0).
    #[allow(dead_code)] // tests/team.rs uses it; tests/clients.rs shares this file
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    pub fn args<const N: usize>(mut self, args: [&str; N]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub async fn run(&self) -> Run {
        let config = self.scratch.fresh_claude_config();
        let mut command = Command::new(&self.tools.claude);
        command
            .args(&self.args)
            .args(["--session-id", SESSION_ID])
            .current_dir(self.scratch.work())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.scratch.root.join("home"))
            .env("CLAUDE_CONFIG_DIR", &config)
            .env("ANTHROPIC_BASE_URL", &self.base_url)
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", self.retries.to_string());
        match self.credential {
            Credential::ApiKey(key) => command.env("ANTHROPIC_API_KEY", key),
            Credential::AuthToken(token) => command.env("ANTHROPIC_AUTH_TOKEN", token),
        };
        if !self.experimental_betas {
            command.env("CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS", "1");
        }
        let what = format!("claude {:?} against {}", self.args, self.base_url);
        run(what, &mut command).await
    }
}

/// Runs `tests/clients/SCRIPT BASE_URL PROMPT [--stream]` with the venv's Python; the script
/// prints one JSON line.
pub async fn python(
    tools: &Tools,
    script: &str,
    base_url: &str,
    prompt: &str,
    stream: bool,
) -> Run {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut command = Command::new(&tools.python);
    command.arg(&path).args([base_url, prompt]);
    if stream {
        command.arg("--stream");
    }
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mode = if stream { " --stream" } else { "" };
    run(
        format!("{script} {base_url} {prompt:?}{mode}"),
        &mut command,
    )
    .await
}

/// The interactive Claude Code in a detached tmux session on a private tmux server (its own
/// socket, so nothing else's sessions are touched); the server is killed when dropped.
pub struct Interactive {
    socket: String,
}

/// Longest to wait for the screen to show something.
const SCREEN_LIMIT: Duration = Duration::from_secs(60);

impl Interactive {
    /// Starts `claude` in `scratch`'s working directory against `base_url` with API key `key`,
    /// its first-run dialogs (onboarding, API key, folder trust) answered in advance.
    pub async fn start(tools: &Tools, scratch: &Scratch, base_url: &str, key: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "agw-clients-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let config = scratch.fresh_claude_config();
        let work = scratch.work();
        let settings = serde_json::json!({
            "userID": USER_ID,
            "hasCompletedOnboarding": true,
            "customApiKeyResponses": {"approved": [&key[key.len().saturating_sub(20)..]], "rejected": []},
            "projects": {work.display().to_string(): {"hasTrustDialogAccepted": true}},
        });
        std::fs::write(config.join(".claude.json"), settings.to_string()).unwrap();
        let env = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", scratch.root.join("home").display().to_string()),
            ("CLAUDE_CONFIG_DIR", config.display().to_string()),
            ("ANTHROPIC_BASE_URL", base_url.to_owned()),
            ("ANTHROPIC_API_KEY", key.to_owned()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
            ("CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS", "1".into()),
            ("TERM", "xterm-256color".into()),
        ];
        let mut command = std::process::Command::new("tmux");
        command
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "cc",
            ])
            .args(["-x", "150", "-y", "45", "-c"])
            .arg(&work)
            .arg("env")
            .arg("-i");
        for (k, v) in env {
            command.arg(format!("{k}={v}"));
        }
        command.arg(&tools.claude);
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("cannot run tmux (install the Debian package `tmux`): {e}"));
        assert!(status.success(), "tmux new-session failed");
        let me = Self { socket };
        me.wait_for("❯").await;
        me
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "cc"])
    }

    /// Types `text` and presses Enter.
    pub async fn prompt(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "cc", "-l", text]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.tmux(&["send-keys", "-t", "cc", "Enter"]);
    }

    /// Waits (bounded) until the screen contains `text`; returns the screen, or panics with it.
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + SCREEN_LIMIT;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("the screen never showed {text:?} within {SCREEN_LIMIT:?}:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        // Claude Code runs as the pane's process (`env` execs it) and writes its config folder
        // as it exits: wait (bounded) until it has, so the scratch folder removed next stays
        // removed.
        let pid = self.tmux(&["list-panes", "-t", "cc", "-F", "#{pane_pid}"]);
        self.tmux(&["kill-server"]);
        if let Ok(pid) = pid.trim().parse::<u32>() {
            // Gone, or a zombie nobody has reaped yet (its state after the command's name).
            let exited = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Ok(stat) => stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')),
                Err(_) => true,
            };
            for _ in 0..100 {
                if exited() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
