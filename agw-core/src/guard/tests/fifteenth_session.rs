//! Found in the fifteenth session's black-box reviews: rules limited to some fields skipped
//! text whose field agw cannot tell.

use super::*;
use crate::api::Api;
use serde_json::json;

/// A rule for tool output and one for the system prompt, both refusing.
fn field_rules() -> Policy {
    Policy::builder()
        .rule(
            Rule::literals("in-tools", ["SECRET-1234"])
                .fields(Fields::empty().with(Field::ToolOutput))
                .reject("blocked"),
        )
        .rule(
            Rule::literals("in-system", ["CODEWORD"])
                .fields(Fields::empty().with(Field::System))
                .reject("blocked"),
        )
        .build()
        .unwrap()
}

fn rules_hit(policy: &Policy, kind: RouteKind, body: &serde_json::Value) -> Vec<String> {
    let v = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
    v.hits().iter().map(|h| h.rule.to_string()).collect()
}

/// A body agw reads generically (a passthrough path: Vertex `rawPredict`, Bedrock `invoke`, an
/// Ollama or Azure path on an OpenAI backend) cannot say which string is tool output or the
/// system prompt: every rule reads all of it, whatever its `fields`. Both rules had been
/// skipped there, and a Messages body on such a path went upstream with its tool result
/// unread (`agw check` even said every string was inspected by them).
#[test]
fn text_read_generically_is_read_by_every_rule() {
    let policy = field_rules();
    let body = |system: &str, tool: &str| {
        json!({"anthropic_version": "vertex-2023-10-16", "system": system,
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": tool}]}]})
    };
    let in_system = body("CODEWORD", "ok");
    let in_tools = body("be brief", "SECRET-1234");
    // Where agw reads the fields, each rule reads its own...
    assert_eq!(
        rules_hit(&policy, RouteKind::Messages, &in_system),
        ["in-system"]
    );
    assert_eq!(
        rules_hit(&policy, RouteKind::Messages, &in_tools),
        ["in-tools"]
    );
    let swapped = body("SECRET-1234", "CODEWORD");
    assert!(rules_hit(&policy, RouteKind::Messages, &swapped).is_empty());
    // ...and read generically, every rule reads every string.
    assert_eq!(
        rules_hit(&policy, RouteKind::Passthrough, &in_system),
        ["in-system"]
    );
    assert_eq!(
        rules_hit(&policy, RouteKind::Passthrough, &in_tools),
        ["in-tools"]
    );
    assert_eq!(
        rules_hit(&policy, RouteKind::Passthrough, &swapped).len(),
        1
    );
    // A top-level field agw has no reading for, in a body it reads, is such text too.
    let unknown = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "container": {"note": "SECRET-1234"}});
    assert_eq!(
        rules_hit(&policy, RouteKind::Messages, &unknown),
        ["in-tools"]
    );
}

/// A JSON response whose keys are spelled in other cases than the API's (`Text`, `Content`),
/// as a client matching keys without regard to case reads it: two text blocks are one text,
/// and a card split over them is masked; a key in two spellings is refused.
#[test]
fn response_keys_in_other_cases_are_read_as_the_apis() {
    let policy = Policy::builder()
        .rule(Rule::detectors("cards", [crate::detect::Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let body = json!({"type": "message", "role": "assistant", "Content": [
        {"type": "text", "Text": "card 4111 1111"},
        {"type": "text", "Text": " 1111 1111 ok"}]});
    let v = policy
        .inspect_response(Api::Anthropic, body.to_string().as_bytes())
        .unwrap();
    let Decision::Rewrite(out) = v.into_decision() else {
        panic!("not masked: {body}");
    };
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("4111 1111"), "{out}");
    // Identifiers are not folded: a value under `Status` is read as text, as before.
    let status = json!({"records": [{"Status": "4111111111111111"}]});
    let v = policy
        .inspect_response(Api::OpenAi, status.to_string().as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Rewrite(_)), "{status}");
    let both = json!({"type": "message", "content": [
        {"type": "text", "text": "hi", "TEXT": "card"}]});
    assert!(
        policy
            .inspect_response(Api::Anthropic, both.to_string().as_bytes())
            .is_err()
    );
}

/// Tool output under names agw had no reading for — a Responses item it does not know (a
/// `shell_call_output`'s stdout, a code interpreter's logs), a chat role that carries tool
/// results (Llama 3's `ipython`, GLM's `observation`) or a role of the client's own (`Tool`) —
/// is read by a rule for tool output (review: they reached the provider unread by it).
#[test]
fn tool_output_under_other_names_is_read_by_tool_output_rules() {
    let policy = field_rules();
    let responses = json!({"model": "m", "input": [
        {"role": "user", "content": "run it"},
        {"type": "shell_call", "call_id": "c1", "action": {"commands": ["cat .env"]}},
        {"type": "shell_call_output", "call_id": "c1",
            "output": [{"stdout": "KEY=SECRET-1234", "stderr": "", "outcome": {"type": "exit"}}]}]});
    assert_eq!(
        rules_hit(&policy, RouteKind::Responses, &responses),
        ["in-tools"]
    );
    for role in ["ipython", "observation", "Tool", "TOOL", "environment"] {
        let chat = json!({"model": "m", "messages": [
            {"role": "user", "content": "run it"},
            {"role": role, "content": "KEY=SECRET-1234"}]});
        assert_eq!(
            rules_hit(&policy, RouteKind::Completions, &chat),
            ["in-tools"],
            "{role}"
        );
    }
    // A user's text is still no tool output.
    let user = json!({"model": "m", "messages": [{"role": "user", "content": "SECRET-1234"}]});
    assert!(rules_hit(&policy, RouteKind::Completions, &user).is_empty());
}
