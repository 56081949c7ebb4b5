//! `agw keys` against a key file from many processes at once: every change that reports success
//! is in the file afterwards (found by the security review: parallel revocations were lost).
//! And what the operations review found: a revoked name takes a new key, `list` shows no spend
//! it cannot know, a `redis` section without a URL is not silently the key file, and a URL
//! that is not a Redis URL is one clean line.

mod common;

use common::process::TempDir;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const AGW: &str = env!("CARGO_BIN_EXE_agw");

/// A configuration whose keys live in `dir/keys.json`.
fn config(dir: &TempDir) -> std::path::PathBuf {
    config_with(dir, "")
}

/// [`config`] with `extra` top-level sections.
fn config_with(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    let path = dir.path("team.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\n\
             auth:\n  keys:\n    file: {}\n  allow_unauthenticated: false\n\
             {extra}\
             backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n",
            dir.path("keys.json").display()
        ),
    )
    .unwrap();
    path
}

/// The one error line on stderr (after which store the command worked on, if it got that
/// far).
fn error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("agw keys: keys in "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    lines[0].to_owned()
}

fn command(cfg: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(AGW);
    cmd.arg("keys")
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn keys(cfg: &std::path::Path, args: &[&str]) -> Output {
    command(cfg, args).output().unwrap()
}

/// Starts every command before waiting for any, then waits for all (each one is bounded by
/// the store's lock wait; the test by `cargo test`'s own limits).
fn all_at_once(cfg: &std::path::Path, commands: &[Vec<String>]) -> Vec<Output> {
    let children: Vec<Child> = commands
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            command(cfg, &args).spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `name -> revoked` from the file itself.
fn stored(dir: &TempDir) -> std::collections::BTreeMap<String, bool> {
    key_file_field(dir, |k| k["revoked"].as_bool())
}

/// `name -> field` for each key in the file, the field read by `read`.
fn key_file_field<T>(
    dir: &TempDir,
    read: impl Fn(&serde_json::Value) -> Option<T>,
) -> std::collections::BTreeMap<String, T> {
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("keys.json")).unwrap()).unwrap();
    file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["name"].as_str().unwrap().to_owned(), read(k).unwrap()))
        .collect()
}

const N: usize = 8;

fn create_sequentially(cfg: &std::path::Path, prefix: &str) {
    for i in 1..=N {
        let name = format!("{prefix}{i}");
        assert_success(&keys(cfg, &["create", "--name", &name]), &name);
    }
}

#[test]
fn parallel_revocations_are_all_kept() {
    let dir = TempDir::new("keys-revoke");
    let cfg = config(&dir);
    create_sequentially(&cfg, "v");
    let revokes: Vec<Vec<String>> = (1..=N)
        .map(|i| vec!["revoke".into(), format!("v{i}")])
        .collect();
    for (i, out) in all_at_once(&cfg, &revokes).iter().enumerate() {
        assert_success(out, &format!("revoke v{}", i + 1));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("revoked key `v{}`", i + 1))
        );
    }
    let stored = stored(&dir);
    assert_eq!(stored.len(), N, "{stored:?}");
    assert!(stored.values().all(|&revoked| revoked), "{stored:?}");
    let list = String::from_utf8(keys(&cfg, &["list"]).stdout).unwrap();
    assert!(!list.contains("active"), "{list}");
}

#[test]
fn parallel_creates_and_revocations_are_all_kept() {
    let dir = TempDir::new("keys-mixed");
    let cfg = config(&dir);
    create_sequentially(&cfg, "old");
    let mut commands: Vec<Vec<String>> = Vec::new();
    for i in 1..=N {
        commands.push(vec!["create".into(), "--name".into(), format!("new{i}")]);
        commands.push(vec!["revoke".into(), format!("old{i}")]);
    }
    for (args, out) in commands.iter().zip(all_at_once(&cfg, &commands)) {
        assert_success(&out, &args.join(" "));
    }
    let stored = stored(&dir);
    assert_eq!(
        stored.len(),
        2 * N,
        "every printed key was kept: {stored:?}"
    );
    for i in 1..=N {
        assert_eq!(stored.get(&format!("old{i}")), Some(&true), "{stored:?}");
        assert_eq!(stored.get(&format!("new{i}")), Some(&false), "{stored:?}");
    }
    // No temporary file is left behind by a writer that finished.
    let names: Vec<String> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp")),
        "temporary files left: {names:?}"
    );
}

#[test]
fn a_held_lock_fails_the_command_with_one_line_after_a_bounded_wait() {
    let dir = TempDir::new("keys-held");
    let cfg = config(&dir);
    create_sequentially(&cfg, "k");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path("keys.json.lock"))
        .expect("the first change made the lock file");
    lock.lock().unwrap();
    let started = Instant::now();
    let out = keys(&cfg, &["revoke", "k1"]);
    let waited = started.elapsed();
    lock.unlock().unwrap();
    assert!(!out.status.success());
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(last.contains("keys.json.lock"), "{err}");
    assert_eq!(stored(&dir).get("k1"), Some(&false), "nothing was changed");
    // Released: the same command goes through.
    assert_success(&keys(&cfg, &["revoke", "k1"]), "revoke k1");
    assert_eq!(stored(&dir).get("k1"), Some(&true));
}

/// A file of `{"keys": [...]}` as `name -> hash`.
fn hashes(dir: &TempDir) -> std::collections::BTreeMap<String, String> {
    key_file_field(dir, |k| k["hash"].as_str().map(str::to_owned))
}

/// A developer whose key leaked gets a new key under the same name once the old one is revoked
/// (operations review: the name, which access lists and limits use, was lost for good).
#[test]
fn a_revoked_name_takes_a_new_key_and_an_active_one_does_not() {
    let dir = TempDir::new("keys-reissue");
    let cfg = config(&dir);
    assert_success(&keys(&cfg, &["create", "--name", "frank"]), "create frank");
    let old = hashes(&dir)["frank"].clone();
    assert_eq!(
        error_line(&keys(&cfg, &["create", "--name", "frank"])),
        "agw: error: a key named `frank` is active (revoke it first or pick another name)"
    );
    assert_success(&keys(&cfg, &["revoke", "frank"]), "revoke frank");
    assert_success(
        &keys(&cfg, &["create", "--name", "frank"]),
        "create frank again",
    );
    let now = hashes(&dir);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now["frank"], old, "the old key's hash is gone");
    assert_eq!(stored(&dir).get("frank"), Some(&false));
}

/// Without Redis, spend lives in the serving agw's memory: `list` leaves it out rather than
/// show every key at 0 (operations review).
#[test]
fn list_without_redis_shows_no_spend() {
    let dir = TempDir::new("keys-spend");
    let cfg = config_with(
        &dir,
        "limits:\n  per_key:\n    budget: {usd_per_month: 10}\n\
         prices:\n  - {model: \"*\", input: 3, output: 15}\n",
    );
    assert_success(&keys(&cfg, &["create", "--name", "gina"]), "create gina");
    let out = keys(&cfg, &["list"]);
    assert_success(&out, "list");
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("gina") && list.contains("active"), "{list}");
    assert!(!list.contains("USD") && !list.contains("0.0000"), "{list}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no spend shown"), "{err}");
}

/// A `redis` section whose URL is empty (`REDIS_URL` unset in the operator's shell): the
/// servers keep keys in Redis, so a change to the key file would never reach them
/// (operations review: `revoke` said "no key named", `create` wrote a key nobody saw).
#[test]
fn an_empty_redis_url_refuses_changes_and_warns_on_list() {
    let dir = TempDir::new("keys-empty-redis");
    let cfg = config_with(&dir, "redis:\n  url: ${REDIS_URL}\n");
    let want = "agw: error: redis.url is empty (is REDIS_URL set?) — with a `redis` section, \
                servers keep keys in Redis; set it, or remove the section to use the key file";
    assert_eq!(error_line(&keys(&cfg, &["create", "--name", "hana"])), want);
    assert_eq!(error_line(&keys(&cfg, &["revoke", "hana"])), want);
    assert!(!dir.path("keys.json").exists(), "nothing was written");
    let out = keys(&cfg, &["list"]);
    assert_success(&out, "list");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: redis.url is empty (is REDIS_URL set?)") && err.contains("listing"),
        "{err}"
    );
}

/// A URL that is not a Redis URL is one line naming it, without its password (operations
/// review: "Redis URL did not parse- InvalidClientConfig").
#[test]
fn a_url_that_is_not_a_redis_url_is_one_clean_line() {
    let dir = TempDir::new("keys-http-redis");
    // Located in the file, as every configuration error is.
    let cfg = config_with(&dir, "redis:\n  url: 'http://x'\n");
    let line = error_line(&keys(&cfg, &["list"]));
    assert!(
        line.starts_with(&format!("agw: error: {}:", cfg.display())),
        "{line}"
    );
    assert!(
        line.ends_with(": redis.url: `http://x` is not a redis:// or rediss:// URL"),
        "{line}"
    );
    let cfg = config_with(&dir, "redis:\n  url: 'http://agw:s3cret@x:1/'\n");
    let line = error_line(&keys(&cfg, &["create", "--name", "ida"]));
    assert!(
        line.ends_with(": redis.url: `http://***@x:1/` is not a redis:// or rediss:// URL"),
        "{line}"
    );
    assert!(!line.contains("s3cret"), "{line}");
}
