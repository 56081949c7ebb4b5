//! `agw_bin::config::Gateway::parse` on arbitrary UTF-8 text: native YAML and Kubernetes
//! manifests (the seeds are the built-in configuration, the example files and the seed
//! article's manifests, which the fuzzer mutates).
//!
//! Never panics; an error displays; a parsed gateway summarizes, picks backends for paths,
//! and each backend's policy inspects a small request.
//!
//! The environment is a fixed map (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, `KEY_FILE=Cargo.toml`)
//! rather than the process environment, so runs are reproducible. `api_key_file` reads a file:
//! inputs that could point it at a device or a large file (`/dev`, `/proc`, `/sys`, escapes,
//! `$`, `~`) are skipped, because reading `/dev/zero` never ends — a local configuration is
//! trusted, so that is not a bug.
#![no_main]

use agw_bin::config::{Env, Gateway};
use agw_core::route::RouteKind;
use libfuzzer_sys::fuzz_target;

fn unsafe_key_file(text: &str) -> bool {
    text.contains("api_key_file")
        && ["dev", "proc", "sys", "\\", "$", "~", "%", "!"]
            .iter()
            .any(|s| text.contains(s))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if unsafe_key_file(text) {
        return;
    }
    let env = Env::from_pairs([
        ("ANTHROPIC_API_KEY", "sk-ant-fuzz"),
        ("OPENAI_API_KEY", "sk-fuzz"),
        ("KEY_FILE", "Cargo.toml"),
    ]);
    match Gateway::parse("fuzz.yaml", text, &env) {
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.yaml"), "{shown}");
        }
        Ok(gw) => {
            let _ = gw.summary();
            for path in ["/", "/v1/messages", "/v1/chat/completions", "/a/b"] {
                let _ = gw.backend_for(path);
            }
            let body = br#"{"model":"m","messages":[{"role":"user","content":"credit card 4111 1111 1111 1111"}]}"#;
            for b in &gw.backends {
                let _ = b.policy.inspect(RouteKind::Messages, body);
                let _ = b.routes.classify("/v1/messages");
            }
        }
    }
});
