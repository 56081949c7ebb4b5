//! The servers under test as child processes, their CPU pinning, and what `/proc` says about
//! them (resident memory, CPU time).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
const STARTUP: Duration = Duration::from_secs(10);

/// A running server. Dropping it kills the process (also when the bench panics or fails), so
/// no server outlives the bench.
#[derive(Debug)]
pub struct Server {
    pub name: &'static str,
    /// `http://IP:PORT`.
    pub url: String,
    child: std::process::Child,
}

impl Server {
    /// Starts `program args`, pinned to `core` when given (through `taskset`, which execs the
    /// program, so the pid is the server's), and waits for the line that starts with `banner`
    /// and ends in the URL it listens on.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        core: Option<usize>,
        banner: &str,
    ) -> Result<Self, String> {
        let mut command = pinned(program, core);
        command
            .args(args)
            // A key in the bench's environment would be injected by agw; keep runs alike.
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("AGW_BASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        // The server owns this process; kill it on every early return from here on.
        let mut server = Self {
            name,
            url: String::new(),
            child,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining, so a chatty server never blocks on a full pipe; ends at its exit.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(STARTUP)
            .map_err(|_| format!("{name} did not start within {STARTUP:?}"))?;
        let url = line
            .strip_prefix(banner)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .ok_or_else(|| {
                format!("{name} printed {line:?}, expected `{banner}http://127.0.0.1:PORT`")
            })?;
        server.url = url.to_owned();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak.
    pub fn memory(&self) -> Result<Memory, String> {
        Memory::of(self.pid())
    }

    /// CPU time used so far, user plus system, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds(&self.pid().to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program`, through `taskset` on `core` when given (it execs the program, so the pid is the
/// program's).
fn pinned(program: &Path, core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(core.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A `redis-server` of the bench's own on a free loopback port, without persistence. Dropping
/// it kills the process.
#[derive(Debug)]
pub struct Redis {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: std::process::Child,
}

impl Redis {
    /// Starts `redis-server` (from `PATH`), pinned to `core` when given, and waits until it
    /// answers a `PING`.
    pub fn start(core: Option<usize>) -> Result<Self, String> {
        // A port free a moment ago; redis-server fails to start (and we say so) if it is
        // taken meanwhile.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for redis-server: {e}"))?
            .port();
        let child = pinned(Path::new("redis-server"), core)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
        let mut redis = Self {
            addr: format!("127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Some(status) = redis.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("redis-server exited at start: {status}"));
            }
            if ping(&redis.addr) {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Returning drops `redis`, which kills it.
        Err(format!("redis-server did not answer within {STARTUP:?}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far, user plus system, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, String> {
        cpu_seconds(&self.pid().to_string())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Redis at `addr` answers `PING` within a second.
fn ping(addr: &str) -> bool {
    use std::io::Write;
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    conn.write_all(b"PING\r\n").is_ok()
        && conn.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// Runs `program args` to its end (killed after `limit`) and returns its stdout; an error
/// names the program and carries its stderr.
pub fn output(program: &Path, args: &[&str], limit: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut out);
            }
            out
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {limit:?}",
                    program.display()
                ));
            }
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{} failed ({status}): {}",
            program.display(),
            stderr.trim()
        ))
    }
}

/// A directory of the bench's own under the system's temporary directory, removed when
/// dropped.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("loadbench-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `VmRSS` and `VmHWM` from `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Self, String> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| -> Result<u64, String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .ok_or_else(|| format!("{path}: no {name}"))
        };
        Ok(Self {
            rss: field("VmRSS:")?,
            peak: field("VmHWM:")?,
        })
    }
}

/// CPU time of process `pid` (`self` for this one), all threads, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name may hold spaces and parentheses; fields count from after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / clock_ticks() as f64),
        _ => Err(format!("{path}: unexpected format")),
    }
}

/// Whether this process runs under a real-time scheduling policy (e.g. started with
/// `chrt -r 10`), so that other processes only get the CPU it leaves idle.
pub fn realtime() -> bool {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // `policy` is field 41 of stat(5), i.e. 38 after the command name.
    let policy = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(38))
        .and_then(|p| p.parse::<u32>().ok());
    matches!(policy, Some(1 | 2))
}

/// CPU time every process on the machine has spent in user and kernel mode since boot,
/// seconds (`/proc/stat`; interrupt and softirq time left out, as it is not any process's).
pub fn machine_cpu_seconds() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match ticks.as_slice() {
        [user, nice, system, ..] => Ok((user + nice + system) as f64 / clock_ticks() as f64),
        _ => Err("/proc/stat: unexpected format".into()),
    }
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Where the bench runs: the load generator on one core, the servers on another.
#[derive(Debug, Clone, Copy)]
pub struct Pinning {
    pub generator: usize,
    pub servers: usize,
}

impl Pinning {
    /// Pins this process (before any other thread starts, so every thread inherits it) and
    /// says where the servers go; `None` when `taskset` is missing or fewer than two cores are
    /// allowed.
    pub fn apply() -> Option<Self> {
        let cores = allowed_cores()?;
        let (&generator, &servers) = (cores.first()?, cores.get(1)?);
        let pinned = Command::new("taskset")
            .args(["-a", "-c", "-p", &generator.to_string()])
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        pinned.then_some(Self { generator, servers })
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list`, e.g. `0-1` or `0,2-3`).
fn allowed_cores() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cores = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cores.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cores.push(part.parse().ok()?),
        }
    }
    Some(cores)
}
