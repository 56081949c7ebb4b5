//! The build's profile-guided optimisation (`pgo/`): cargo's rustc wrapper adds the profile to
//! exactly the compilations it should, and the committed profile is one rustc can read. A
//! broken wrapper or profile would fail every release build, or silently build without PGO.
//!
//! The wrapper runs here in front of a stand-in rustc that prints its arguments (and, asked
//! `-vV`, an LLVM version), so every case is decided without compiling anything.

mod common;

use common::process::TempDir;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A stand-in rustc reporting LLVM `llvm`, in a fresh directory; and a profile file beside it.
fn fake_rustc(name: &str, llvm: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(&format!("pgo-{name}"));
    let rustc = dir.path("rustc");
    fs::write(
        &rustc,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -vV ]; then printf 'rustc 1.95.0\\nLLVM version: {llvm}\\n'; \
             exit 0; fi\nprintf '%s\\n' \"$@\"\n"
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&rustc)
        .status()
        .unwrap();
    let profile = dir.path("agw.profdata");
    fs::write(&profile, b"profile").unwrap();
    (dir, rustc, profile)
}

/// The arguments the stand-in rustc was run with, through the wrapper.
fn wrapped(rustc: &Path, profile: &Path, envs: &[(&str, &str)], args: &[&str]) -> Vec<String> {
    let out = Command::new(repo().join("pgo/rustc-wrapper"))
        .arg(rustc)
        .args(args)
        .env("AGW_PGO_PROFILE", profile)
        .env_remove("AGW_PGO")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn uses_profile(args: &[String], profile: &Path) -> bool {
    let flag = format!("-Cprofile-use={}", profile.display());
    let has = args.contains(&flag);
    if has {
        assert!(args.contains(&"-Cllvm-args=-no-pgo-warn-mismatch".to_owned()));
    }
    has
}

const OPTIMISED: [&str; 5] = ["--crate-name", "agw", "-C", "opt-level=3", "src/main.rs"];

#[test]
fn optimised_x86_64_linux_builds_get_the_profile_and_others_run_as_asked() {
    let (_dir, rustc, profile) = fake_rustc("cases", "22.1.2");
    let native = cfg!(all(target_os = "linux", target_arch = "x86_64"));
    let run = |envs: &[(&str, &str)], extra: &[&str]| {
        let mut args = OPTIMISED.to_vec();
        args.extend_from_slice(extra);
        wrapped(&rustc, &profile, envs, &args)
    };

    // What cargo asked for is passed on unchanged, in order, in every case.
    let plain = run(&[], &[]);
    assert_eq!(&plain[..OPTIMISED.len()], OPTIMISED);
    assert_eq!(uses_profile(&plain, &profile), native);
    let targeted = run(&[], &["--target", "x86_64-unknown-linux-gnu"]);
    assert!(uses_profile(&targeted, &profile));
    assert!(uses_profile(
        &run(&[], &["--target=x86_64-unknown-linux-gnu"]),
        &profile
    ));

    for extra in [
        &["--target", "aarch64-unknown-linux-gnu"][..],
        &["--target=x86_64-apple-darwin"],
        &[
            "-Zsanitizer=address",
            "--target",
            "x86_64-unknown-linux-gnu",
        ],
        &["-Cllvm-args=-sanitizer-coverage-level=4"],
        &["-Cprofile-generate=/tmp/raw"],
        &["-Cprofile-use=/elsewhere.profdata"],
        &["-Cinstrument-coverage"],
    ] {
        let args = run(&[], extra);
        assert!(!uses_profile(&args, &profile), "{extra:?}: {args:?}");
        assert_eq!(args.len(), OPTIMISED.len() + extra.len(), "{args:?}");
    }
    let off = run(
        &[("AGW_PGO", "off")],
        &["--target", "x86_64-unknown-linux-gnu"],
    );
    assert!(!uses_profile(&off, &profile));

    // Debug and other optimisation levels, and rustc's own probes.
    for args in [
        &[
            "--crate-name",
            "agw",
            "-C",
            "opt-level=0",
            "--target",
            "x86_64-unknown-linux-gnu",
        ][..],
        &["-C", "opt-level=s", "--target", "x86_64-unknown-linux-gnu"],
        &["-", "--crate-name", "___", "--print=file-names"],
    ] {
        let got = wrapped(&rustc, &profile, &[], args);
        assert_eq!(got, args, "{args:?}");
    }
}

#[test]
fn a_profile_rustc_cannot_read_or_a_missing_one_is_not_passed() {
    // LLVM 21 cannot read LLVM 22's profile format: building must still work, without it.
    let (_dir, rustc, profile) = fake_rustc("llvm21", "21.1.0");
    let args = [
        OPTIMISED.as_slice(),
        &["--target", "x86_64-unknown-linux-gnu"],
    ]
    .concat();
    assert!(!uses_profile(
        &wrapped(&rustc, &profile, &[], &args),
        &profile
    ));

    let (dir, rustc, _) = fake_rustc("missing", "22.1.2");
    let missing = dir.path("none.profdata");
    assert!(!uses_profile(
        &wrapped(&rustc, &missing, &[], &args),
        &missing
    ));
}

#[test]
fn cargo_config_points_the_wrapper_at_the_committed_profile_which_is_an_indexed_llvm_profile() {
    let config = fs::read_to_string(repo().join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("rustc-wrapper = \"pgo/rustc-wrapper\""),
        "{config}"
    );
    assert!(
        config.contains("AGW_PGO_PROFILE = { value = \"pgo/agw.profdata\", relative = true }"),
        "{config}"
    );
    let profile = fs::read(repo().join("pgo/agw.profdata")).unwrap();
    // An indexed profile opens with its magic number (little-endian) and a format version that
    // LLVM 22 reads; a Git LFS pointer or a raw profile would fail every release build.
    assert!(profile.len() > 100_000, "{} bytes", profile.len());
    assert_eq!(
        u64::from_le_bytes(profile[..8].try_into().unwrap()),
        0x8169_666f_7270_6cff
    );
    let version = u64::from_le_bytes(profile[8..16].try_into().unwrap()) & 0xffff;
    // 13 is what LLVM 22 writes; raise the bound with the toolchain (pgo/train uses the
    // llvm-profdata of rustc's own LLVM).
    assert!((10..=13).contains(&version), "format version {version}");
    let mode = fs::metadata(repo().join("pgo/rustc-wrapper"))
        .unwrap()
        .permissions();
    assert!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o111 != 0,
        "pgo/rustc-wrapper must be executable"
    );
}
