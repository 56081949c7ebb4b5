//! N inspections of one bench body with one policy, for counting instructions per inspection
//! under callgrind (deterministic, unlike time on a shared machine):
//!
//! ```sh
//! cargo build --release -p agw-benches --example inspect_instr
//! for n in 200 400; do valgrind --tool=callgrind target/release/examples/inspect_instr $n 2k a; done
//! ```
//!
//! Bodies `2k`, `76k`, `2m`, `args` (a ~9 KB chat completions turn of tool calls whose
//! `arguments` are JSON in a string, as Codex-style agents send them); policies `a` (the seed rule), `b` (all built-ins), `c` (the seed
//! rule as agw's configuration builds it: look-alike letters on), `d` (`c`, case-insensitive);
//! then optionally `en` or `em`: every twelfth space of the body an en or an em dash, as in
//! text a model wrote (`inspect_instr 200 76k c em`); then optionally `fresh`: each inspection
//! reads the body as if for the first time (the conversation units found clean before are
//! forgotten first; without it, every inspection after the first finds them known).

use agw_benches::*;
use agw_core::guard::{Policy, Rule};
use agw_core::route::RouteKind;

/// The seed rule with look-alike letters (as `credit card` gets them by default in a config).
fn seed_confusables(case_insensitive: bool, whitespace: bool) -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .confusables(true)
                .case_insensitive(case_insensitive)
                .whitespace_insensitive(whitespace)
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let (kind, body) = match args.next().as_deref() {
        Some("76k") => (RouteKind::Messages, claude_code_first_turn()),
        Some("2m") => (RouteKind::Messages, long_session(2 << 20, false)),
        Some("args") => (RouteKind::Completions, tool_call_turns()),
        _ => (RouteKind::Messages, chat_2k()),
    };
    let policy = match args.next().as_deref() {
        Some("b") => policy_builtins(),
        Some("c") => seed_confusables(false, false),
        Some("d") => seed_confusables(true, false),
        Some("e") => seed_confusables(false, true),
        _ => policy_seed(),
    };
    // Prose as models write it, with dashes: every twelfth space an en dash (which the guard
    // folds to `-`) or an em dash (which it keeps).
    let rest: Vec<String> = args.collect();
    let has = |word: &str| rest.iter().any(|a| a == word);
    let body = if has("en") {
        dashed(&body, "\u{2013}")
    } else if has("em") {
        dashed(&body, "\u{2014}")
    } else {
        body
    };
    let fresh = has("fresh");
    let mut hits = 0;
    for _ in 0..n {
        if fresh {
            agw_core::guard::forget_clean_units();
        }
        hits += policy.inspect(kind, &body).unwrap().hits().len();
    }
    println!("{hits}");
}

/// `body` with every twelfth space replaced by `dash`.
fn dashed(body: &[u8], dash: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("bench bodies are UTF-8");
    let mut out = String::with_capacity(text.len() * 2);
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push_str(if i % 12 == 0 { dash } else { " " });
        }
        out.push_str(word);
    }
    out.into_bytes()
}

/// A chat completions turn of tool calls: shell commands (arguments whose strings hold no
/// escape) and file writes (a file's lines, each `\n` escaped twice), with their results.
fn tool_call_turns() -> Vec<u8> {
    let file: String = (0..40)
        .map(|i| format!("    let value_{i} = parse(&input[{i}..]).unwrap_or_default();\n"))
        .collect();
    let mut messages = vec![serde_json::json!({"role": "user", "content": "Fix the parser."})];
    for i in 0..8 {
        let arguments = if i % 2 == 0 {
            serde_json::json!({"command": ["bash", "-lc", format!("rg -n 'parse' src/mod{i}.rs && cargo test -p parser")], "workdir": "/home/dev/project"})
        } else {
            serde_json::json!({"path": format!("src/mod{i}.rs"), "content": file})
        };
        let id = format!("call_{i}");
        messages.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "shell", "arguments": arguments.to_string()}}
        ]}));
        messages.push(serde_json::json!({"role": "tool", "tool_call_id": id, "content": "ok: 3 tests passed"}));
    }
    serde_json::json!({"model": "gpt-5", "messages": messages})
        .to_string()
        .into_bytes()
}
