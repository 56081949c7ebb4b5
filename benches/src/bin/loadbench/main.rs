//! `loadbench`: what agw adds to a request, measured against a minimal proxy in the same run.
//!
//! Starts `agw-mock`, `minproxy` (a passthrough proxy with no parsing, the floor), `agw` (the
//! built-in default policy) and two `agw`s configured for a team (client keys, usage and cost,
//! metrics, a per-key limit in memory or in a Redis of the bench's own) on 127.0.0.1, and sends
//! load to all of them — the mock directly and through each proxy — round-robin within every
//! round, so machine noise hits them alike. Then prints Markdown tables of medians over the
//! rounds, with agw's targets. See `--help` and the README's "Load bench" section.

mod load;
mod procs;
mod report;
mod rounds;
mod team;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use load::{ANY_KEY, Release, Target};
use procs::{Pinning, Server};
use report::{AGW, DIRECT, MINPROXY, Report, TARGETS, TEAM, TEAM_REDIS};
use rounds::{Bodies, CONCURRENCY, Plan, Soak, check, measure_round, warm_up};
use team::TeamSetup;

const USAGE: &str = "\
usage: loadbench [--rounds N] [--quick] [--no-pin] [--bin-dir DIR]
       loadbench --soak 2k|cc [--soak-via agw|minproxy|direct|team|team-redis]
                 [--soak-c N] [--soak-secs N]

Load bench for agw (run by hand, not in CI). Starts, on 127.0.0.1:
  agw-mock   the mock provider (the agw-mock crate),
  minproxy   a minimal passthrough proxy (hyper server + pooled hyper client, no parsing),
  agw        `agw serve` with the built-in default policy, pointed at the mock,
  team       `agw serve` for a team: the same backend and guard, client keys required
             (a key made with `agw keys create`), usage and cost, metrics, a per-key
             requests-per-minute limit never reached, limits in memory,
  team-redis the same with limits in Redis (a redis-server of its own; needs redis-server
             on PATH),
and measures, interleaving the five targets (mock direct and through each proxy) within
each round: added latency p50/p99 at c=1 (a 2 KB chat and an 80 KB Claude Code first
turn), requests/s and CPU per request at c=32, streaming time to first byte and per-event
overhead, a Redis round trip (PING), agw's and minproxy's resident memory idle and with
1,000 open streams. Prints Markdown tables of the medians over the rounds next to agw's
targets: the built-in default against minproxy, then the team configurations.

Build the servers first, in release mode:
    cargo build --release -p agw-bin -p agw-mock
    cargo run --release -p agw-benches --bin loadbench
agw and agw-mock are looked for next to this binary (target/release), or in --bin-dir.

With taskset and at least two allowed cores, the load generator (this process) runs on the
first core and all servers (Redis too) on the second.

options:
  --rounds N      timed rounds; each figure is the median over them (default 5)
  --quick         a ~15 s sanity run: 2 rounds, fewer requests (--rounds still applies)
  --no-pin        do not pin processes to cores
  --bin-dir DIR   where agw and agw-mock are
  --soak BODY     instead of the bench, for a profiler: print a server's pid, then send
                  the 2k or cc body through it (--soak-via: agw, the default, minproxy,
                  team, team-redis, or direct to the mock) at c=--soak-c (default 32) for --soak-secs
                  (default 20), printing requests/s and the server's CPU each second;
                  e.g. `perf record -g -p PID -- sleep 10` (see benches/load/profile.sh)
  -h, --help      print this help";

/// Held streams opened through each proxy for the memory figure.
const HELD_STREAMS: usize = 1000;

#[derive(Debug)]
struct Options {
    rounds: usize,
    quick: bool,
    pin: bool,
    bin_dir: Option<PathBuf>,
    /// Only load one proxy, for a profiler.
    soak: Option<Soak>,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("loadbench: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "loadbench: warning: a debug build; the load generator's figures are unreliable (use --release)"
        );
    }
    // Before the runtime starts, so that every thread inherits the core.
    let pinning = options.pin.then(Pinning::apply).flatten();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadbench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options, pinning)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("loadbench: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        rounds: 5,
        quick: false,
        pin: true,
        bin_dir: None,
        soak: None,
    };
    let mut rounds = None;
    let mut soak = Soak {
        body: String::new(),
        via: AGW,
        concurrency: CONCURRENCY,
        duration: Duration::from_secs(20),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--rounds" => {
                let v = value("--rounds")?;
                let n: usize = v.parse().map_err(|e| format!("--rounds {v:?}: {e}"))?;
                if !(1..=100).contains(&n) {
                    return Err(format!("--rounds {n}: expected 1 to 100"));
                }
                rounds = Some(n);
            }
            "--quick" => options.quick = true,
            "--no-pin" => options.pin = false,
            "--bin-dir" => options.bin_dir = Some(value("--bin-dir")?.into()),
            "--soak" => {
                let v = value("--soak")?;
                if v != "2k" && v != "cc" {
                    return Err(format!("--soak {v:?}: expected 2k or cc"));
                }
                soak.body = v;
            }
            "--soak-via" => {
                soak.via = match value("--soak-via")?.as_str() {
                    "agw" => AGW,
                    "minproxy" => MINPROXY,
                    "direct" => DIRECT,
                    "team" => TEAM,
                    "team-redis" => TEAM_REDIS,
                    v => {
                        return Err(format!(
                            "--soak-via {v:?}: expected agw, minproxy, direct, team or team-redis"
                        ));
                    }
                };
            }
            "--soak-c" => {
                let v = value("--soak-c")?;
                let n = v.parse().map_err(|e| format!("--soak-c {v:?}: {e}"))?;
                if !(1..=1000).contains(&n) {
                    return Err(format!("--soak-c {n}: expected 1 to 1000"));
                }
                soak.concurrency = n;
            }
            "--soak-secs" => {
                let v = value("--soak-secs")?;
                let n = v.parse().map_err(|e| format!("--soak-secs {v:?}: {e}"))?;
                if !(1..=3600).contains(&n) {
                    return Err(format!("--soak-secs {n}: expected 1 to 3600"));
                }
                soak.duration = Duration::from_secs(n);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.rounds = rounds.unwrap_or(if options.quick { 2 } else { 5 });
    if !soak.body.is_empty() {
        options.soak = Some(soak);
    }
    Ok(Some(options))
}

struct Binaries {
    agw: PathBuf,
    mock: PathBuf,
    minproxy: PathBuf,
}

impl Binaries {
    fn find(bin_dir: Option<&Path>) -> Result<Self, String> {
        let here = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let here = here.parent().ok_or("this binary has no directory")?;
        let dir = bin_dir.unwrap_or(here);
        let find = |dir: &Path, name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "{} not found; build it first: cargo build --release -p agw-bin -p agw-mock (or pass --bin-dir)",
                    path.display()
                ))
            }
        };
        Ok(Self {
            agw: find(dir, "agw")?,
            mock: find(dir, "agw-mock")?,
            minproxy: find(here, "minproxy")?,
        })
    }
}

/// How many of the functions `agw-bin/hot-symbols.txt` lists the agw binary has (the release
/// build lays them out first; see agw-bin/build.rs): a list made for other symbol names (a new
/// toolchain, other dependencies or features, other `RUSTFLAGS`) leaves agw's request path
/// spread over the binary, and its c=1 figures a little slower.
fn layout(agw: &std::path::Path) -> String {
    let list = concat!(env!("CARGO_MANIFEST_DIR"), "/../agw-bin/hot-symbols.txt");
    let Ok(listed) = std::fs::read_to_string(list) else {
        return format!("code layout: cannot read {list}");
    };
    let out = match std::process::Command::new("nm").arg(agw).output() {
        Ok(out) if out.status.success() => out.stdout,
        _ => return "code layout: not checked (`nm` did not run)".into(),
    };
    let text = String::from_utf8_lossy(&out);
    let names: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let listed: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let found = listed.iter().filter(|n| names.contains(*n)).count();
    let stale = if found * 10 < listed.len() * 9 {
        " — stale: rerun benches/load/hot_symbols.py and rebuild"
    } else {
        ""
    };
    format!(
        "code layout: agw has {found} of the {} functions agw-bin/hot-symbols.txt lists{stale}",
        listed.len()
    )
}

async fn run(options: &Options, pinning: Option<Pinning>) -> Result<(), String> {
    let bins = Binaries::find(options.bin_dir.as_deref())?;
    let busy = other_load(Duration::from_secs(1)).await?;
    let realtime = procs::realtime();
    if busy > 0.05 {
        eprintln!(
            "loadbench: warning: other processes are using {:.0}% of a core; {}",
            busy * 100.0,
            if realtime {
                "running under a real-time policy, ahead of them"
            } else {
                "the figures will be noisy (see the README: chrt)"
            }
        );
    }
    eprintln!("loadbench: {}", layout(&bins.agw));
    match pinning {
        Some(p) => eprintln!(
            "loadbench: load generator on core {}, servers on core {}",
            p.generator, p.servers
        ),
        None => eprintln!("loadbench: not pinned (--no-pin, no taskset, or one core)"),
    }
    let (team, servers) = start_servers(&bins, pinning.map(|p| p.servers))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut report = Report {
        concurrency: CONCURRENCY,
        realtime,
        ..Report::default()
    };
    report.minproxy.idle = servers[MINPROXY].memory()?.rss;
    report.agw.idle = servers[AGW].memory()?.rss;
    report.team_idle = [
        servers[TEAM].memory()?.rss,
        servers[TEAM_REDIS].memory()?.rss,
    ];

    let keys = [ANY_KEY, ANY_KEY, ANY_KEY, &team.memory.key, &team.redis.key];
    let mut targets = Vec::with_capacity(TARGETS);
    for (server, key) in servers.iter().zip(keys) {
        targets.push(Target::new(server.name, &server.url, key)?);
    }
    let targets: [Target; TARGETS] = targets.try_into().map_err(|_| "a target is missing")?;
    let bodies = Bodies::new();
    check(&targets, &bodies).await?;
    report.events = warm_up(&targets, &bodies).await?;
    if let Some(soak) = &options.soak {
        return soak
            .run(&targets[soak.via], &servers[soak.via], &bodies)
            .await;
    }

    let plan = Plan::new(options.quick);
    let ours = || -> Result<f64, String> {
        let servers: f64 = servers
            .iter()
            .map(Server::cpu_seconds)
            .sum::<Result<_, _>>()?;
        Ok(servers + team.redis_server.cpu_seconds()? + procs::cpu_seconds("self")?)
    };
    let (machine_before, ours_before) = (procs::machine_cpu_seconds()?, ours()?);
    let started = Instant::now();
    for round in 0..options.rounds {
        // Rotate which target goes first, so none always follows the same one.
        let mut order = [DIRECT, MINPROXY, AGW, TEAM, TEAM_REDIS];
        order.rotate_left(round % TARGETS);
        let redis = &team.redis_server.addr;
        let r = measure_round(
            &targets,
            &servers,
            &bodies,
            &plan,
            order,
            report.events,
            redis,
        )
        .await?;
        let added = |t: usize| r.latency_2k[t].p50 - r.latency_2k[DIRECT].p50;
        eprintln!(
            "loadbench: round {}/{} done ({:.0} s); 2 KB p50 added: minproxy {:+.0} µs, agw {:+.0} µs, \
             team {:+.0} µs, team-redis {:+.0} µs (Redis RTT {:.0} µs)",
            round + 1,
            options.rounds,
            started.elapsed().as_secs_f64(),
            added(MINPROXY),
            added(AGW),
            added(TEAM),
            added(TEAM_REDIS),
            r.redis_rtt,
        );
        report.rounds.push(r);
    }
    let others = procs::machine_cpu_seconds()? - machine_before - (ours()? - ours_before);
    let timed = started.elapsed();
    report.other_load = others.max(0.0) / timed.as_secs_f64();

    tokio::time::sleep(Duration::from_millis(500)).await;
    report.agw.idle_after_load = servers[AGW].memory()?.rss;
    report.minproxy.idle_after_load = servers[MINPROXY].memory()?.rss;
    let release = Release::new(&servers[DIRECT].url);
    for t in [AGW, MINPROXY] {
        let held = targets[t]
            .with_new_pool()
            .hold(&bodies.hold, HELD_STREAMS, &release, || servers[t].memory())
            .await?;
        eprintln!(
            "loadbench: {} streams open through {} after {:.1} s",
            held.open,
            servers[t].name,
            held.open_after.as_secs_f64()
        );
        let memory = if t == AGW {
            &mut report.agw
        } else {
            &mut report.minproxy
        };
        memory.held = held.measured?.rss;
        memory.held_streams = held.open;
        memory.peak = servers[t].memory()?.peak;
    }

    print(&report, timed);
    Ok(())
}

/// The mock, then minproxy, agw and the two team agws in front of it, in target order; and
/// what the team agws need (Redis, config files, keys).
fn start_servers(
    bins: &Binaries,
    core: Option<usize>,
) -> Result<(TeamSetup, [Server; TARGETS]), String> {
    let mock = Server::start(
        "agw-mock",
        &bins.mock,
        &["--listen", "127.0.0.1:0", "--max-recorded", "0"],
        core,
        "agw-mock listening on ",
    )?;
    let team = TeamSetup::new(&bins.agw, &mock.url, core)?;
    let minproxy = Server::start(
        "minproxy",
        &bins.minproxy,
        &["--listen", "127.0.0.1:0", "--upstream", &mock.url],
        core,
        "minproxy listening on ",
    )?;
    let agw_args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--base-url",
        &mock.url,
        "--access-log",
        "off",
    ];
    let agw = Server::start("agw", &bins.agw, &agw_args, core, "agw listening on ")?;
    let team_agw = |name, config: &str| {
        let args = ["serve", "--config", config, "--access-log", "off"];
        Server::start(name, &bins.agw, &args, core, "agw listening on ")
    };
    let memory = team_agw("team", &team.memory.file)?;
    let redis = team_agw("team-redis", &team.redis.file)?;
    Ok((team, [mock, minproxy, agw, memory, redis]))
}

fn print(report: &Report, timed: Duration) {
    println!("{}", report.table());
    println!("Team configurations (issue 11), against minproxy in the same rounds:\n");
    println!("{}", report.team_table());
    let others = match (report.other_load > 0.05, report.realtime) {
        (false, _) => String::new(),
        (true, true) => " (in the gaps: the bench ran under a real-time policy)".into(),
        (true, false) => " — the machine was not quiet, rerun for figures to trust".into(),
    };
    println!(
        "{} rounds in {:.0} s; medians over rounds. At c={CONCURRENCY} the load generator used at \
         most {:.0}% of its core through the proxies ({:.0}% direct); other processes used {:.0}% \
         of a core{others}.",
        report.rounds.len(),
        timed.as_secs_f64(),
        report.generator_load(&[MINPROXY, AGW]) * 100.0,
        report.generator_load(&[DIRECT]) * 100.0,
        report.other_load * 100.0,
    );
    let misses = report.misses();
    if misses.is_empty() {
        println!("\nagw meets every target.");
    } else {
        println!("\nagw misses:");
        for miss in misses {
            println!("- {miss}");
        }
    }
}

/// CPU other processes use, as a share of one core, measured over `window`.
async fn other_load(window: Duration) -> Result<f64, String> {
    let before = procs::machine_cpu_seconds()? - procs::cpu_seconds("self")?;
    tokio::time::sleep(window).await;
    let after = procs::machine_cpu_seconds()? - procs::cpu_seconds("self")?;
    Ok((after - before).max(0.0) / window.as_secs_f64())
}
