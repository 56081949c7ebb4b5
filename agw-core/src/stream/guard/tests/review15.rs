//! The fifteenth session's stream finding: keys spelled in other cases than the API's
//! (`Choices`, `Delta`, `Candidates`), which clients matching keys without regard to case
//! (Go's `encoding/json`) read as the API's, turned joining off: a card split over two such
//! events passed.

use super::*;
use serde_json::json;

/// Named SSE events (an empty name for none) and their data.
type Events<'a> = Vec<(&'a str, serde_json::Value)>;

/// The stream of `events` (SSE data, named when the pair has a name) through a card mask on
/// `kind`, at two chunkings; the output as text.
fn through(kind: RouteKind, api: Api, events: &[(&str, serde_json::Value)]) -> Vec<String> {
    let input: String = events
        .iter()
        .map(|(name, data)| match *name {
            "" => format!("data: {data}\n\n"),
            name => event(name, data.clone()),
        })
        .collect();
    [3, 1 << 20]
        .iter()
        .map(|&chunk| run_text(&mask_cards(), kind, api, input.as_bytes(), chunk))
        .collect()
}

#[test]
fn keys_in_other_cases_are_read_as_the_apis() {
    let chat = |choices: &str, delta: &str, text: &str| {
        json!({"id": "c", "object": "chat.completion.chunk",
            choices: [{"index": 0, delta: {"content": text}, "finish_reason": null}]})
    };
    let anthropic = |delta: &str, text: &str| {
        json!({"type": "content_block_delta", "index": 0,
            delta: {"type": "text_delta", "text": text}})
    };
    let gemini = |candidates: &str, text: &str| json!({candidates: [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}]});
    let start = json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}});
    let cases: Vec<(RouteKind, Api, Events<'_>)> = vec![
        (
            RouteKind::Completions,
            Api::OpenAi,
            vec![
                ("", chat("Choices", "delta", "card 4111 1111")),
                ("", chat("Choices", "delta", " 1111 1111 ok")),
            ],
        ),
        (
            RouteKind::Completions,
            Api::OpenAi,
            vec![
                ("", chat("choices", "Delta", "card 4111 1111")),
                ("", chat("choices", "DELTA", " 1111 1111 ok")),
            ],
        ),
        (
            RouteKind::Messages,
            Api::Anthropic,
            vec![
                ("content_block_start", start.clone()),
                ("content_block_delta", anthropic("Delta", "card 4111 1111")),
                ("content_block_delta", anthropic("Delta", " 1111 1111 ok")),
            ],
        ),
        (
            RouteKind::Passthrough,
            Api::OpenAi,
            vec![
                ("", gemini("Candidates", "card 4111 1111")),
                ("", gemini("Candidates", " 1111 1111 ok")),
            ],
        ),
    ];
    for (kind, api, events) in cases {
        for out in through(kind, api, &events) {
            assert!(!out.contains("4111 1111"), "{events:?}: {out}");
            assert!(out.contains("<CREDIT_CARD>"), "{events:?}: {out}");
        }
    }
    // A key in two spellings in one object (a client reads one of them, agw cannot know
    // which) ends the stream.
    let both = json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": "", "TEXT": "card 4111 1111"}});
    let events = [
        ("content_block_start", start),
        ("content_block_delta", both),
    ];
    for out in through(RouteKind::Messages, Api::Anthropic, &events) {
        assert!(!out.contains("4111"), "{out}");
        assert!(out.contains("event: error"), "{out}");
    }
}

/// A masked event keeps the upstream's spelling of its keys (the masked string is spliced
/// in), Go's other folds (`ſ` for `s`) are read as it reads them, and keys agw leaves unread
/// when spelled as the API's (`id`, `status`) are read as text when spelled otherwise
/// (review of the folding: `Status` and `ID` values had passed unread).
#[test]
fn folded_keys_keep_their_spelling_and_identifiers_stay_read() {
    let chunk = |choices: &str, text: &str| {
        json!({"id": "c", "object": "chat.completion.chunk",
            choices: [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    };
    for choices in ["Choices", "choice\u{17f}"] {
        let events = vec![
            ("", chunk(choices, "card 4111 1111")),
            ("", chunk(choices, " 1111 1111 ok")),
        ];
        for out in through(RouteKind::Completions, Api::OpenAi, &events) {
            assert!(!out.contains("4111 1111"), "{choices}: {out}");
            assert!(out.contains("<CREDIT_CARD>"), "{choices}: {out}");
            assert!(out.contains(&format!("\"{choices}\"")), "{choices}: {out}");
        }
    }
    let events = vec![(
        "",
        json!({"records": [{"Status": "4111111111111111", "ID": "ok"}]}),
    )];
    for out in through(RouteKind::Passthrough, Api::OpenAi, &events) {
        assert!(!out.contains("4111111111111111"), "{out}");
    }
}
