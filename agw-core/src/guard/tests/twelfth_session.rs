//! Found in the twelfth session, with Claude Code and black-box reviews.

use super::*;
use serde_json::json;

/// A masking rule reads every turn, whatever its scope: Claude Code sends its own, unmasked
/// copy of the conversation again with every request, so a card masked in the tool result
/// that brought it went to the provider in clear on the next request under `scope: latest`
/// (the shipped example did this). The masked turn reads the same every time.
#[test]
fn a_masking_rule_masks_earlier_turns_whatever_its_scope() {
    let policy = Policy::builder()
        .rule(
            Rule::detectors("pii", [Detector::CreditCard])
                .mask()
                .fields(Fields::empty().with(Field::ToolOutput))
                .scope(Scope::Latest),
        )
        .build()
        .unwrap();
    let card = "4539 1488 0343 6467";
    let bodies = [
        (
            RouteKind::Messages,
            json!({"model": "m", "max_tokens": 5, "messages": [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "c.txt"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": format!("card: {card}")}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "Read", "input": {"path": "d.txt"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "nothing"}]},
            ]}),
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": format!("card: {card}")},
                {"role": "assistant", "content": "read it"},
                {"role": "user", "content": "thanks"},
            ]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [
                {"role": "user", "content": "look"},
                {"type": "function_call", "call_id": "c1", "name": "read", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": format!("card: {card}")},
                {"role": "assistant", "content": [{"type": "output_text", "text": "read it"}]},
                {"role": "user", "content": "thanks"},
            ]}),
        ),
    ];
    for (kind, body) in bodies {
        let verdict = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
        let Decision::Rewrite(out) = verdict.into_decision() else {
            panic!("{kind:?}: not masked");
        };
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains(card) && out.contains("<CREDIT_CARD>"),
            "{kind:?}: {out}"
        );
    }
    // The rule still says what it was given; it reads with `All`.
    let rule = policy.rules().next().unwrap();
    assert_eq!(rule.scope_of(), Scope::Latest);
    assert_eq!(rule.effective_scope(), Scope::All);
}

/// What the model said in an earlier turn comes back in every later request: a rejecting
/// rule's hit there removes the string (as in the client's earlier turns) rather than reject
/// every later prompt of the session (found with Claude Code: one answer naming `credit card`,
/// or a file the model wrote as `credit card notes.txt`, ended the session for good). A
/// prefill the client puts last, and the system prompt, still reject.
#[test]
fn a_rejecting_rules_hit_in_an_earlier_assistant_turn_is_removed() {
    let policy = Policy::builder()
        .rule(Rule::regex("credit-card", ["credit card"]).reject("Rejected"))
        .build()
        .unwrap();
    let answered = json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what card lets me borrow money?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "they mean credit", "signature": "c2ln"},
            {"type": "text", "text": "A credit card lets you borrow money."},
            {"type": "tool_use", "id": "t1", "name": "Write", "input": {"file_path": "/tmp/credit card notes.txt", "content": "notes"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "File created"},
            {"type": "text", "text": "and how does interest work?"},
        ]},
    ]});
    let body = answered.to_string();
    let verdict = policy
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap();
    assert!(verdict.hits().iter().all(|h| &*h.rule == "credit-card"));
    assert_eq!(verdict.hits().len(), 2, "{:?}", verdict.hits());
    let Decision::Rewrite(out) = verdict.into_decision() else {
        panic!("not removed");
    };
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let turn = &out["messages"][1]["content"];
    assert_eq!(turn[1]["text"], "[removed by agw: rule credit-card]");
    assert_eq!(
        turn[2]["input"]["file_path"],
        "[removed by agw: rule credit-card]"
    );
    // Everything else as sent: the signed thinking, the prompt.
    assert_eq!(turn[0], answered["messages"][1]["content"][0]);
    assert_eq!(out["messages"][2], answered["messages"][2]);
    // Chat completions and Responses alike.
    for (kind, body) in [
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [
                {"role": "user", "content": "card?"},
                {"role": "assistant", "content": "A credit card."},
                {"role": "user", "content": "and interest?"},
            ]}),
        ),
        (
            RouteKind::Responses,
            json!({"model": "m", "input": [
                {"role": "user", "content": "card?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A credit card."}]},
                {"role": "user", "content": "and interest?"},
            ]}),
        ),
    ] {
        let verdict = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
        let Decision::Rewrite(out) = verdict.into_decision() else {
            panic!("{kind:?}: not removed");
        };
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains("credit card") && out.contains("and interest?"),
            "{out}"
        );
    }
    // Still refused: a prefill the client puts last, the system prompt, the prompt itself.
    for body in [
        json!({"model": "m", "messages": [
            {"role": "user", "content": "go on"},
            {"role": "assistant", "content": "Sure, the credit card"},
        ]}),
        json!({"model": "m", "system": "credit card", "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "my credit card"},
        ]}),
    ] {
        let verdict = policy
            .inspect(RouteKind::Messages, body.to_string().as_bytes())
            .unwrap();
        assert!(matches!(verdict.decision(), Decision::Reject(_)), "{body}");
    }
}

/// A tool's or an author's name removed from an earlier turn stays a name a provider takes
/// (second round: `[removed by agw: rule …]` there would be refused on every later turn).
#[test]
fn a_removed_name_stays_a_valid_name() {
    let policy = Policy::builder()
        .rule(Rule::literals("rz", ["zorb"]).reject("no zorb"))
        .build()
        .unwrap();
    for (kind, body, pointer) in [
        (
            RouteKind::Messages,
            json!({"model": "m", "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "zorb_tool", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
            ]}),
            "/messages/1/content/0/name",
        ),
        (
            RouteKind::Completions,
            json!({"model": "m", "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "zorb_tool", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ]}),
            "/messages/1/tool_calls/0/function/name",
        ),
    ] {
        let verdict = policy.inspect(kind, body.to_string().as_bytes()).unwrap();
        let Decision::Rewrite(out) = verdict.into_decision() else {
            panic!("{kind:?}: not removed");
        };
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out.pointer(pointer).unwrap(),
            "removed_by_agw",
            "{kind:?}: {out}"
        );
    }
}
