//! Lays out the release binary's request path together: the functions listed in
//! `hot-symbols.txt` (written by `benches/load/hot_symbols.py`) go first in the code, in that
//! order, so that a request touches ~45 of the binary's 4 KiB code pages instead of ~220. At one
//! request at a time caches and TLBs are cold for every request; packed, agw's user-space CPU
//! per request drops by about a sixth (docs/performance-log.md). After them come the functions
//! that run at all (start-up, configuration): the kernel maps code 64 KiB around every page a
//! process touches, so start-up code spread over the binary kept ~5 MB of it resident; packed,
//! idle RSS is ~6.8 MB instead of ~9.4 MB.
//!
//! Only for release builds on x86_64 Linux with rustc's default linker there (LLD, since Rust
//! 1.90); `AGW_SYMBOL_ORDER=off` turns it off. Names the binary does not have are ignored, so
//! a stale list costs speed, never a failed build.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=AGW_SYMBOL_ORDER");
    if env::var("AGW_SYMBOL_ORDER").is_ok_and(|v| v == "off")
        || env::var("PROFILE").map_or(true, |p| p != "release")
        || env::var("TARGET").map_or(true, |t| t != "x86_64-unknown-linux-gnu")
        || !default_linker_is_lld()
    {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let list = Path::new(&dir).join("hot-symbols.txt");
    if list.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// rustc links x86_64 Linux binaries with its own LLD from 1.90 on, unless told otherwise.
fn default_linker_is_lld() -> bool {
    if env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let minor: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
}
