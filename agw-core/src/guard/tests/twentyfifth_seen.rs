//! The twenty-fifth session: units of a conversation a policy found clean are known by their
//! bytes in the client's next request (`guard/seen.rs`) and not read again; everything the
//! reading depended on besides the text is part of what is known.

use super::*;
use crate::guard::seen::known_count;
use serde_json::json;

const SYSTEM: &str = "You are a careful assistant for the whole team; answer briefly and plainly.";

/// A conversation: the system prompt, `history` as user and assistant turns, `last` as the
/// final prompt.
fn conversation(history: &[(&str, &str)], last: &str) -> String {
    let mut messages = Vec::new();
    for (user, assistant) in history {
        messages.push(json!({"role": "user", "content": user}));
        messages.push(json!({"role": "assistant", "content": assistant}));
    }
    messages.push(json!({"role": "user", "content": last}));
    json!({"model": "m", "max_tokens": 10, "system": SYSTEM, "messages": messages}).to_string()
}

const WEATHER: (&str, &str) = (
    "Tell me about the weather in Paris in spring, please, in some detail if you can.",
    "It is mild and often rainy, with long days and trees blossoming along every avenue.",
);

fn inspect(policy: &Policy, body: &str) -> Verdict {
    policy
        .inspect(RouteKind::Messages, body.as_bytes())
        .unwrap()
}

fn seed() -> Policy {
    Policy::builder()
        .rule(Rule::regex("credit-card", ["credit card"]).reject("no"))
        .build()
        .unwrap()
}

#[test]
fn history_found_clean_is_known_in_the_next_request() {
    let policy = seed();
    let first = inspect(&policy, &conversation(&[WEATHER], "Thanks! And in summer?"));
    assert!(matches!(first.decision(), Decision::Allow));
    let before = known_count();
    let next = conversation(&[WEATHER, ("And in summer?", "Warm.")], "And in winter?");
    assert!(matches!(
        inspect(&policy, &next).decision(),
        Decision::Allow
    ));
    // The system prompt and the first two turns; the short turns are read (below the size
    // worth a lookup), the final prompt is read as the latest.
    assert_eq!(known_count() - before, 3);
    // The final prompt of a request is read again as an older turn in the next.
    let prompt = "A question long enough to be kept once it is an older turn of the conversation.";
    inspect(&policy, &conversation(&[WEATHER], prompt));
    let before = known_count();
    inspect(
        &policy,
        &conversation(&[WEATHER, (prompt, "An answer.")], "Go on."),
    );
    assert_eq!(
        known_count() - before,
        3,
        "the older prompt was read, not known"
    );
    let before = known_count();
    inspect(
        &policy,
        &conversation(&[WEATHER, (prompt, "An answer.")], "Go on again."),
    );
    assert_eq!(known_count() - before, 4);
}

#[test]
fn a_unit_with_a_match_is_read_in_every_request() {
    let policy = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let card = "4111 1111 1111 1111";
    let turn =
        format!("My card is {card}; please keep it in mind for the booking we talked about.");
    for last in ["Book it.", "Book it now.", "Book it now, please."] {
        let body = conversation(
            &[(&turn, "Noted, I will keep it in mind for the booking.")],
            last,
        );
        let v = inspect(&policy, &body);
        let Decision::Rewrite(out) = v.decision() else {
            panic!("not masked: {:?}", v.decision());
        };
        assert!(!String::from_utf8_lossy(out).contains(card));
    }
}

#[test]
fn another_policy_reads_what_one_found_clean() {
    let body = conversation(&[WEATHER], "Thanks!");
    assert!(inspect(&seed(), &body).hits().is_empty());
    assert!(inspect(&seed(), &body).hits().is_empty());
    // A reload: a new policy, with a rule the text matches.
    let reloaded = Policy::builder()
        .rule(Rule::regex("weather", ["weather"]).reject("no"))
        .build()
        .unwrap();
    assert!(!inspect(&reloaded, &body).hits().is_empty());
}

#[test]
fn the_same_text_in_another_field_is_read_by_that_fields_rules() {
    let policy = Policy::builder()
        .rule(Rule::regex("zebra", ["zebra"]).reject("no"))
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .fields([Field::ToolOutput].into_iter().collect())
                .reject("no"),
        )
        .build()
        .unwrap();
    let text = "The credit card statement arrived this morning with the usual charges listed.";
    let as_message = conversation(&[(text, "I see.")], "Summarise it.");
    assert!(inspect(&policy, &as_message).hits().is_empty());
    assert!(inspect(&policy, &as_message).hits().is_empty());
    let as_tool_output = json!({
        "model": "m", "max_tokens": 10, "system": SYSTEM,
        "messages": [
            {"role": "user", "content": "Read the statement."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "s.txt"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}]},
            {"role": "assistant", "content": "I see."},
            {"role": "user", "content": "Summarise it."}
        ]
    })
    .to_string();
    assert!(!inspect(&policy, &as_tool_output).hits().is_empty());
}

#[test]
fn a_body_with_a_terminal_sequence_reads_its_history_again() {
    // A colour code's remains inside the phrase: read through only when the body has a
    // terminal sequence somewhere (`encoded::Also`).
    let policy = seed();
    let turn = "The log said: cre[31mdit card numbers are never printed by the payment service.";
    let plain = conversation(&[(turn, "Good.")], "Anything else in the log?");
    assert!(inspect(&policy, &plain).hits().is_empty());
    assert!(inspect(&policy, &plain).hits().is_empty());
    let coloured = conversation(&[(turn, "Good.")], "Here is more: \u{1b}[0m done.");
    assert!(!inspect(&policy, &coloured).hits().is_empty());
}
