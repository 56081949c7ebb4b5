//! `agw keys` against a key file from many processes at once: every change that reports success
//! is in the file afterwards (found by the security review: parallel revocations were lost).

mod common;

use common::process::TempDir;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const AGW: &str = env!("CARGO_BIN_EXE_agw");

/// A configuration whose keys live in `dir/keys.json`.
fn config(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.path("team.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\n\
             auth:\n  keys:\n    file: {}\n  allow_unauthenticated: false\n\
             backends:\n  - name: anthropic\n    provider: anthropic\n    api_key: sk-ant-injected\n",
            dir.path("keys.json").display()
        ),
    )
    .unwrap();
    path
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
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path("keys.json")).unwrap()).unwrap();
    file["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap().to_owned(),
                k["revoked"].as_bool().unwrap(),
            )
        })
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
