//! Found by the seventh red-team review: streamed text skipped control-character removal when
//! it was ASCII, streams in formats agw does not know were read one event at a time, and
//! reasoning a mask rule hit went out unmasked.

use super::*;

fn mask_secrets() -> Policy {
    Policy::builder()
        .rule(
            Rule::detectors(
                "secrets",
                [
                    Detector::GithubToken,
                    Detector::AwsAccessKey,
                    Detector::CreditCard,
                ],
            )
            .mask(),
        )
        .build()
        .unwrap()
}

fn chat_stream(deltas: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for d in deltas {
        s += &chat_chunk(serde_json::json!([{"index": 0, "delta": {"content": d}}]));
    }
    s += "data: [DONE]\n\n";
    s.into_bytes()
}

/// The README's promise: C0 controls are removed before matching, in a stream as in JSON.
#[test]
fn controls_in_ascii_stream_text_are_removed_before_matching() {
    let policy = mask_secrets();
    for (secret, placeholder) in [
        (
            "ghp_3i\u{0}nWmjEDhU43xreZKWZPUyvqpk9qYDr4p0Kj",
            "<GITHUB_TOKEN>",
        ),
        ("AKIAOX\u{2}27LWH23Y6KRG6L", "<AWS_ACCESS_KEY>"),
        ("411111\u{0}1111111111", "<CREDIT_CARD>"),
        ("4111\u{8}11111111\u{1b}1111", "<CREDIT_CARD>"),
        ("AKIAIOSF\u{1}ODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
    ] {
        let text = format!("key {secret} ok");
        // Not streamed: masked.
        assert_eq!(
            super::splits::not_streamed(&policy, &text),
            format!("key {placeholder} ok"),
            "{text:?}"
        );
        let mid = text.len() / 2;
        for deltas in [vec![text.as_str()], vec![&text[..mid], &text[mid..]]] {
            for chunk in [1, 7, 1 << 20] {
                let input = anthropic_stream(&deltas);
                let out = run(&policy, Api::Anthropic, 64, &input, chunk).0;
                assert_eq!(text_of(&out), format!("key {placeholder} ok"), "{deltas:?}");
                let input = chat_stream(&deltas);
                let out = run(&policy, Api::OpenAi, 64, &input, chunk).0;
                assert_eq!(text_of(&out), format!("key {placeholder} ok"), "{deltas:?}");
            }
        }
    }
}
