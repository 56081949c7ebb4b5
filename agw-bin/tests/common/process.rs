//! The `agw` binary as a child process: a scratch directory and a running `agw serve` on free
//! loopback ports, killed on drop, its standard error in a file the test reads.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

const AGW: &str = env!("CARGO_BIN_EXE_agw");

/// Creates a client key with `agw keys --config CONFIG create ARGS` (no Redis from the
/// environment) and returns it: the last line of stdout. Panics with agw's stderr on failure.
pub fn created_key(config: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(AGW)
        .args(["keys", "--config"])
        .arg(config)
        .arg("create")
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    printed_key(out)
}

/// The key `agw keys create` printed: the last line of its stdout. Panics with agw's stderr
/// when it failed.
pub fn printed_key(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("agw-proc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `agw serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 ARGS`, killed on drop.
pub struct Proc {
    pub child: Child,
    /// `host:port` of the proxy.
    pub addr: String,
    /// `host:port` of the admin listener.
    pub admin: String,
    stderr: PathBuf,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// [`Proc::spawn`] with `--config CONFIG --base-url BASE_URL`.
    pub fn serve_config(dir: &TempDir, config: &std::path::Path, base_url: &str) -> Proc {
        Proc::serve_config_with(dir, config, base_url, &[])
    }

    /// [`Proc::serve_config`] with more `serve` arguments.
    pub fn serve_config_with(
        dir: &TempDir,
        config: &std::path::Path,
        base_url: &str,
        more: &[&str],
    ) -> Proc {
        let config = config.to_str().expect("temporary paths are UTF-8");
        let mut args = vec!["--config", config, "--base-url", base_url];
        args.extend_from_slice(more);
        Proc::spawn(dir, &args)
    }

    /// Starts agw without provider keys, base-URL or Redis from the environment, and waits for
    /// the two lines that name its addresses.
    pub fn spawn(dir: &TempDir, args: &[&str]) -> Proc {
        Proc::spawn_env(dir, args, &[])
    }

    /// [`Proc::spawn`] with more environment variables.
    pub fn spawn_env(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_under(dir, &[], args, env)
    }

    /// [`Proc::spawn_env`] run by a command that execs agw (`prlimit --nofile=… --`): the
    /// child's pid is agw's.
    pub fn spawn_under(dir: &TempDir, under: &[&str], args: &[&str], env: &[(&str, &str)]) -> Proc {
        let stderr = dir.path("stderr.log");
        let mut cmd = match under.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(AGW);
                c
            }
            None => Command::new(AGW),
        };
        let mut child = cmd
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("AGW_BASE_URL")
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut addr, mut admin) = (None, None);
        let mut line = String::new();
        for _ in 0..10 {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let url = line
                .split_whitespace()
                .find_map(|w| w.split_once("://").map(|(_, a)| a.to_owned()));
            if line.starts_with("agw admin on ") {
                admin = url;
            } else if line.starts_with("agw listening on ") {
                addr = url;
            }
            if addr.is_some() && admin.is_some() {
                break;
            }
        }
        let (Some(addr), Some(admin)) = (addr, admin) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "agw did not print its addresses: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Proc {
            child,
            addr,
            admin,
            stderr,
            _stdout: out,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// What agw wrote to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The process's resident memory, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Waits (up to 20 s) for agw to exit.
    pub async fn wait_exit(mut self) -> std::process::ExitStatus {
        for _ in 0..400 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("agw did not exit within 20 s");
    }
}
