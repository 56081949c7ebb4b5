//! Usage errors of the `agw` command: each one line that names what is wrong (black-box
//! review: clap's "required arguments were not provided" named nothing, a key name with a
//! newline printed two lines, `--idle-timeout -1` was "unknown option `-1`").

use std::process::{Command, Stdio};

const AGW: &str = env!("CARGO_BIN_EXE_agw");

/// Runs `agw` with `args`: its exit status and standard error.
fn agw(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(AGW)
        .args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("AGW_BASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_are_one_line_naming_the_argument() {
    let dir = std::env::temp_dir().join(format!("agw-cli-messages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("team.yaml");
    std::fs::write(
        &config,
        format!(
            "backends: [{{name: a, provider: anthropic}}]\nauth: {{keys: {{file: {}}}}}\n",
            dir.join("keys.json").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (args, want) in [
        (&["serve", "--tls-cert", "c.pem"][..], "--tls-key <FILE>"),
        (&["serve", "--tls-key", "k.pem"], "--tls-cert <FILE>"),
        (&["serve", "--tls-client-ca", "ca.pem"], "--tls-cert <FILE>"),
        (&["keys", "create", "--name", "alice"], "--config <FILE>"),
        (&["keys", "list"], "--config <FILE>"),
        (
            &["serve", "--idle-timeout", "-1"],
            "'--idle-timeout <SECS>': must not be negative",
        ),
        (
            &["serve", "--body-timeout", "0"],
            "'--body-timeout <SECS>': must be at least 1 second",
        ),
        (
            &["serve", "--drain-delay", "-5"],
            "'--drain-delay <SECS>': must not be negative",
        ),
        (
            &["keys", "--config", config, "create", "--name", "a\nb"],
            "keys: invalid name `a\\nb`",
        ),
        (
            &["kyes"],
            "unknown command `kyes` (commands: serve, check, test-policy, keys;",
        ),
    ] {
        let (code, err) = agw(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.starts_with("agw: error: "), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
