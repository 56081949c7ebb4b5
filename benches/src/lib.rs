//! Realistic request bodies and policies for the benchmarks (and the load bench).
//!
//! The bodies are synthetic but shaped like what Claude Code sends (measured on 2.1.332: a
//! one-line prompt is ~77 KB — ~61 KB of tool schemas, ~7 KB of system prompt, ~10 KB of
//! messages including a `role: system` environment message; long sessions add assistant turns
//! with thinking and tool_use blocks and user turns with large tool results). Text mixes English,
//! Markdown and source code with line numbers (as the Read tool returns them), so digits are as
//! common as in real traffic. Everything is deterministic.

use agw_core::detect::Detector;
use agw_core::guard::{Policy, Rule};
use std::fmt::Write;

const WORDS: &[&str] = &[
    "the",
    "file",
    "function",
    "returns",
    "error",
    "when",
    "user",
    "request",
    "tool",
    "should",
    "use",
    "with",
    "and",
    "for",
    "this",
    "that",
    "code",
    "test",
    "value",
    "string",
    "parse",
    "config",
    "server",
    "client",
    "response",
    "stream",
    "message",
    "model",
    "before",
    "after",
    "always",
    "never",
    "important",
    "example",
    "result",
    "output",
    "input",
    "path",
    "line",
    "directory",
    "command",
    "`cargo`",
    "**note**:",
    "-",
    "(see",
    "docs)",
    "v2",
    "2024",
    "id",
];

const CODE: &[&str] = &[
    "fn main() {",
    "    let mut total = 0usize;",
    "    for (i, line) in input.lines().enumerate() {",
    "        if line.trim().is_empty() { continue; }",
    "        total += line.len() * 31 + i;",
    "    }",
    "    println!(\"total = {total}\");",
    "}",
    "#[derive(Debug, Clone, PartialEq)]",
    "pub struct Config { pub port: u16, pub host: String, timeout_ms: u64 }",
    "// TODO(#4521): handle the 503 case with a retry after 250 ms",
    "const LIMIT: usize = 32 * 1024 * 1024; // 33554432 bytes",
    "    return Err(Error::new(ErrorKind::Other, \"bad header\"));",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

fn prose(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        s.push_str(WORDS[rng.next() % WORDS.len()]);
        s.push(if rng.next().is_multiple_of(14) {
            '\n'
        } else {
            ' '
        });
    }
    s
}

/// Source code as Claude Code's Read tool returns it: numbered lines.
fn numbered_code(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    let mut n = 1;
    while s.len() < bytes {
        let _ = writeln!(s, "{n:>6}\u{2192}{}", CODE[rng.next() % CODE.len()]);
        n += 1;
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn tool_schema(rng: &mut Rng, i: usize) -> String {
    let desc = prose(rng, 1800);
    let mut props = String::new();
    for p in 0..4 {
        if p > 0 {
            props.push(',');
        }
        let _ = write!(
            props,
            r#""param_{p}":{{"type":"string","description":{}}}"#,
            json_str(&prose(rng, 120))
        );
    }
    format!(
        r#"{{"name":"Tool{i}","description":{},"input_schema":{{"type":"object","properties":{{{props}}},"required":["param_0"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}}}}"#,
        json_str(&desc)
    )
}

fn head(rng: &mut Rng, tools: usize) -> String {
    let system = format!(
        r#"[{{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-cli"}},{{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude.","cache_control":{{"type":"ephemeral"}}}},{{"type":"text","text":{},"cache_control":{{"type":"ephemeral"}}}}]"#,
        json_str(&prose(rng, 7000))
    );
    let tools: Vec<String> = (0..tools).map(|i| tool_schema(rng, i)).collect();
    format!(
        r#"{{"model":"claude-opus-5-5","max_tokens":128000,"stream":true,"thinking":{{"type":"adaptive"}},"metadata":{{"user_id":"{{\"device_id\":\"5e0f\",\"session_id\":\"9c1d\"}}"}},"system":{system},"tools":[{}],"#,
        tools.join(",")
    )
}

fn first_user_turn(rng: &mut Rng, prompt: &str) -> String {
    format!(
        r#"{{"role":"user","content":[{{"type":"text","text":{}}},{{"type":"text","text":{}}}]}}"#,
        json_str(&format!(
            "<system-reminder>\n{}\n</system-reminder>",
            prose(rng, 600)
        )),
        json_str(prompt)
    )
}

fn environment_message(rng: &mut Rng) -> String {
    format!(
        r#"{{"role":"system","content":{}}}"#,
        json_str(&format!(
            "Working directory: /home/dev/project\nPlatform: linux\nToday's date: 2026-11-25\n{}",
            prose(rng, 9000)
        ))
    )
}

/// A ~2 KB chat request (one system prompt, a few short turns).
pub fn chat_2k() -> Vec<u8> {
    let mut rng = Rng(7);
    let mut msgs = Vec::new();
    for i in 0..4 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        msgs.push(format!(
            r#"{{"role":"{role}","content":{}}}"#,
            json_str(&prose(&mut rng, 330))
        ));
    }
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,"system":{},"messages":[{}]}}"#,
        json_str(&prose(&mut rng, 300)),
        msgs.join(",")
    )
    .into_bytes()
}

/// A ~76 KB Claude Code first turn: system blocks, 24 tool schemas, a user turn and the
/// environment `system` message.
pub fn claude_code_first_turn() -> Vec<u8> {
    let mut rng = Rng(11);
    let mut s = head(&mut rng, 24);
    let user = first_user_turn(
        &mut rng,
        "Explain what src/main.rs does and fix the failing test.",
    );
    let env = environment_message(&mut rng);
    let _ = write!(s, r#""messages":[{user},{env}]}}"#);
    s.into_bytes()
}

/// A long Claude Code session of about `target` bytes: many assistant turns (thinking, text,
/// tool_use) and tool results holding numbered source files. `secrets` plants an AWS key and a
/// card number in every tenth tool result (for masking benchmarks).
pub fn long_session(target: usize, secrets: bool) -> Vec<u8> {
    let mut rng = Rng(13);
    let mut s = head(&mut rng, 24);
    s.push_str(r#""messages":["#);
    s.push_str(&first_user_turn(
        &mut rng,
        "Refactor the parser module and keep the tests green.",
    ));
    let mut turn = 0;
    while s.len() < target {
        turn += 1;
        let id = format!("toolu_{turn:020}");
        let _ = write!(
            s,
            r#",{{"role":"assistant","content":[{{"type":"thinking","thinking":{},"signature":"EqQBCkgIBxABGAIiQL{turn}sig/Zm9vYmFy=="}},{{"type":"text","text":{}}},{{"type":"tool_use","id":"{id}","name":"Read","input":{{"file_path":"/home/dev/project/src/mod{turn}.rs","limit":2000}}}}]}}"#,
            json_str(&prose(&mut rng, 400)),
            json_str(&prose(&mut rng, 120))
        );
        let mut file = numbered_code(&mut rng, 6000);
        if secrets && turn % 10 == 0 {
            file.push_str("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\ncard: 4111 1111 1111 1111\n");
        }
        let _ = write!(
            s,
            r#",{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"{id}","content":[{{"type":"text","text":{}}}]}}]}}"#,
            json_str(&file)
        );
    }
    s.push_str(&format!(",{}]}}", environment_message(&mut rng)));
    s.into_bytes()
}

/// (a) The seed article's single rule.
pub fn policy_seed() -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .unwrap()
}

/// (b) Every built-in detector, rejecting.
pub fn policy_builtins() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("all", Detector::ALL).reject("sensitive data"))
        .build()
        .unwrap()
}

/// (b') Every built-in detector, masking.
pub fn policy_builtins_mask() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("all", Detector::ALL).mask())
        .build()
        .unwrap()
}

/// The 100 keywords of policy (c).
pub fn keywords() -> Vec<String> {
    (0..100)
        .map(|i| format!("forbidden-term-{i:03} zq"))
        .collect()
}

/// (c) 100 literal keywords, case-insensitive, whole words.
pub fn policy_keywords() -> Policy {
    Policy::builder()
        .rule(
            Rule::literals("keywords", keywords())
                .case_insensitive(true)
                .whole_word(true)
                .reject("no"),
        )
        .build()
        .unwrap()
}

/// The 20 expressions of policy (d).
pub fn regexes() -> Vec<String> {
    let mut v: Vec<String> = (0..16)
        .map(|i| format!(r"project[-_ ]?codename[-_ ]?{i}\b"))
        .collect();
    v.push(r"\binternal\.corp\.example\.com/[a-z0-9/]+".into());
    v.push(r"(?i)confidential[ :]+do not share".into());
    v.push(r"\bBEGIN (?:RSA )?SECRET\b".into());
    v.push(r"\b[A-Z]{3}-\d{6}-[A-Z]\b".into());
    v
}

/// (d) 20 regexes.
pub fn policy_regexes() -> Policy {
    Policy::builder()
        .rule(Rule::regex("regexes", regexes()).reject("no"))
        .build()
        .unwrap()
}

/// A streamed Anthropic reply of `n` text deltas (one with a card number when `hit`).
pub fn reply_stream(n: usize, hit: bool) -> Vec<bytes::Bytes> {
    let mut events = vec![bytes::Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
    )];
    for i in 0..n {
        let text = if hit && i == n / 2 {
            "your card 4111 1111 1111 1111 is saved".to_owned()
        } else {
            format!(" the function returns {i} values when")
        };
        events.push(bytes::Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n",
            serde_json::to_string(&text).unwrap()
        )));
    }
    events.push(bytes::Bytes::from_static(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    ));
    events
}

/// Decodes and guards `wire`, an Anthropic SSE reply, in 512-byte reads, as the response guard
/// does (the `stream/per_event` bench); the number of pieces sent.
pub fn guard_stream(policy: &Policy, wire: &[u8]) -> usize {
    use agw_core::api::Api;
    use agw_core::stream::{SseDecoder, StreamGuard};
    let mut dec = SseDecoder::new(1 << 20);
    let mut guard = StreamGuard::new(policy.clone(), Api::Anthropic, 256);
    let (mut evs, mut out) = (Vec::new(), Vec::new());
    for chunk in wire.chunks(512) {
        dec.push(chunk, &mut evs).expect("a bench stream decodes");
        for e in evs.drain(..) {
            guard.event(e, &mut out);
        }
    }
    guard.finish(&mut out);
    out.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_core::route::RouteKind;

    #[test]
    fn fixtures_are_valid_and_sized() {
        let chat = chat_2k();
        assert!((1800..2600).contains(&chat.len()), "{}", chat.len());
        let cc = claude_code_first_turn();
        assert!((70_000..85_000).contains(&cc.len()), "{}", cc.len());
        let long = long_session(2 << 20, false);
        assert!((2 << 20..(2 << 20) + 20_000).contains(&long.len()));
        for body in [&chat, &cc, &long] {
            serde_json::from_slice::<serde_json::Value>(body).unwrap();
            for p in [
                policy_seed(),
                policy_builtins(),
                policy_keywords(),
                policy_regexes(),
            ] {
                assert!(p.inspect(RouteKind::Messages, body).unwrap().is_allow());
            }
        }
        let hits = long_session(1 << 20, true);
        let v = policy_builtins_mask()
            .inspect(RouteKind::Messages, &hits)
            .unwrap();
        assert!(matches!(
            v.decision(),
            agw_core::guard::Decision::Rewrite(_)
        ));
    }
}
