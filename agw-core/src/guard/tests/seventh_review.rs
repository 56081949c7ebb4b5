//! The seventh red-team review's request-side gaps: the request's `model`, and top-level
//! fields agw did not read (`metadata`, `stop_sequences`, `container`, `context_management`).

use super::*;

/// Cards and AWS keys, rejecting or masking (the tenth review's tests use it too).
pub(super) fn dets(masks: bool) -> Policy {
    let rule = Rule::detectors("dets", [Detector::CreditCard, Detector::AwsAccessKey]);
    let rule = if masks {
        rule.mask()
    } else {
        rule.reject("no")
    };
    Policy::builder().rule(rule).build().unwrap()
}

fn messages(model: &str, extra: &str) -> String {
    format!(
        r#"{{"model":{},"max_tokens":5,{extra}"messages":[{{"role":"user","content":"hello"}}]}}"#,
        serde_json::Value::from(model)
    )
}

/// A model name is read by the rules that read message text; it is not rewritten, so a mask
/// rule refuses too, and the hit's path is `model`.
#[test]
fn the_request_model_is_read_and_never_rewritten() {
    for masks in [false, true] {
        let p = dets(masks);
        for model in [
            "AKIAIOSFODNN7EXAMPL3",
            "card 4111111111111111",
            "claude-4111 1111 1111 1111",
            // Normalised as text is: full-width digits.
            "\u{ff14}111111111111111",
        ] {
            for kind in [RouteKind::Messages, RouteKind::Completions] {
                let v = p.inspect(kind, messages(model, "").as_bytes()).unwrap();
                assert!(
                    matches!(v.decision(), Decision::Reject(_)),
                    "{model} ({kind:?}, masks {masks}): {:?}",
                    v.hits()
                );
                assert_eq!(v.hits()[0].path, "model");
            }
        }
        // Clean names pass, twice (the second time from the thread's memory).
        for _ in 0..2 {
            for model in [
                "claude-sonnet-4-5-20250929",
                "gpt-4o-mini",
                "claude-opus-5-5",
            ] {
                let v = p
                    .inspect(RouteKind::Messages, messages(model, "").as_bytes())
                    .unwrap();
                assert!(v.is_allow() && v.hits().is_empty(), "{model}");
            }
        }
    }
    // Remembered per policy: a name clean for one policy is read again by another.
    let _ = dets(false).inspect(
        RouteKind::Messages,
        messages("x 4111111111111111", "").as_bytes(),
    );
    let lax = Policy::builder()
        .rule(Rule::literals("word", ["zzz"]).reject("no"))
        .build()
        .unwrap();
    let v = lax
        .inspect(RouteKind::Messages, messages("model zzz", "").as_bytes())
        .unwrap();
    assert!(matches!(v.decision(), Decision::Reject(_)));
    // An audit rule reports the hit and lets the request through.
    let audit = Policy::builder()
        .rule(Rule::detectors("dets", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let v = audit
        .inspect(
            RouteKind::Messages,
            messages("4111111111111111", "").as_bytes(),
        )
        .unwrap();
    assert!(v.is_allow());
    assert_eq!(v.hits().len(), 1);
    assert_eq!(v.hits()[0].path, "model");
}

/// Fields agw has no reading for reach the provider: every string and key in them is read as
/// message text and masked in place; numbers in them (a `seed`) are not read.
#[test]
fn fields_agw_does_not_know_are_read_as_text() {
    for extra in [
        r#""stop_sequences":["4111 1111 1111 1111"],"#,
        r#""container":"AKIAIOSFODNN7EXAMPL3","#,
        r#""context_management":{"edits":[{"type":"clear","note":"4111111111111111"}]},"#,
        r#""future_field":{"AKIAIOSFODNN7EXAMPL3":true},"#,
    ] {
        let body = messages("claude-sonnet-4-5", extra);
        let v = dets(false)
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert!(matches!(v.decision(), Decision::Reject(_)), "{extra}");
        assert_eq!(v.hits()[0].path, "other field");
        let v = dets(true)
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        let Decision::Rewrite(out) = v.decision() else {
            panic!("{extra}: {:?}", v.decision())
        };
        let out = std::str::from_utf8(out).unwrap();
        assert!(
            !out.contains("AKIAIOSFODNN7EXAMPL3") && !out.contains("4111"),
            "{out}"
        );
        serde_json::from_str::<serde_json::Value>(out).expect("still JSON");
    }
    for (kind, body) in [
        (
            RouteKind::Completions,
            r#"{"model":"m","seed":4111111111111111,"messages":[{"role":"user","content":"hi"}],"metadata":{"k":"v"},"stream":true}"#,
        ),
        (
            RouteKind::Responses,
            r#"{"model":"m","input":"hi","seed":4111111111111111,"store":false,"user":"u-1"}"#,
        ),
    ] {
        let v = dets(false).inspect(kind, body.as_bytes()).unwrap();
        assert!(
            v.is_allow() && v.hits().is_empty(),
            "{body}: {:?}",
            v.hits()
        );
    }
}

/// Numbers in tables are not cards split over lines or into halves: the regression round
/// found 2×2 grids of four-digit numbers (an Octave matrix) and pairs of eight-digit numbers
/// refused once cards were read across line breaks and in halves of eight; that reading was
/// taken out.
#[test]
fn number_tables_are_not_cards() {
    let p = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).reject("no"))
        .build()
        .unwrap();
    for text in [
        "A =\n\n   4000   4000\n   4096   5000\n",
        "  4000 4000\n  4096 5000",
        "sizes: 40004000 40965000",
        "sizes: 4000 4000 40965000",
    ] {
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]}).to_string();
        let v = p.inspect(RouteKind::Messages, body.as_bytes()).unwrap();
        assert!(v.is_allow(), "{text:?}: {:?}", v.hits());
    }
    // The same digits written as one card are one.
    let body =
        serde_json::json!({"messages": [{"role": "user", "content": "4000 4000 4096 5000"}]});
    let v = p
        .inspect(RouteKind::Messages, body.to_string().as_bytes())
        .unwrap();
    assert!(!v.is_allow(), "a card in four groups");
}

/// A refusal with a 5xx status (a response agw cannot pass on) is typed as the upstream's
/// error, not the request's.
#[test]
fn a_refused_response_is_an_api_error() {
    let r = Rejection {
        rule: "r".into(),
        status: http::StatusCode::BAD_GATEWAY,
        message: "m".into(),
    };
    let json = crate::api::Api::Anthropic.error_json(&r.error_body());
    assert!(json.contains("\"api_error\""), "{json}");
    let r = Rejection {
        status: http::StatusCode::BAD_REQUEST,
        ..r
    };
    let json = crate::api::Api::Anthropic.error_json(&r.error_body());
    assert!(json.contains("\"invalid_request_error\""), "{json}");
}

/// Identifier fields are read but never rewritten (a masked `safety_identifier` would be
/// every end user's): a masking rule's match refuses, path `identifier`; a clean one passes
/// as sent.
#[test]
fn identifiers_are_read_and_never_rewritten() {
    for (kind, body) in [
        (
            RouteKind::Messages,
            messages("m", r#""metadata":{"user_id":"AKIAIOSFODNN7EXAMPL3"},"#),
        ),
        (
            RouteKind::Completions,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"card 4111111111111111"}"#.to_owned(),
        ),
        (
            RouteKind::Responses,
            r#"{"model":"m","input":"hi","safety_identifier":"AKIAIOSFODNN7EXAMPL3"}"#.to_owned(),
        ),
        (
            RouteKind::Responses,
            r#"{"model":"m","input":"hi","prompt_cache_key":"4111-1111-1111-1111"}"#.to_owned(),
        ),
    ] {
        for masks in [false, true] {
            let v = dets(masks).inspect(kind, body.as_bytes()).unwrap();
            assert!(matches!(v.decision(), Decision::Reject(_)), "{body}");
            assert_eq!(v.hits()[0].path, "identifier");
        }
    }
    let clean = messages(
        "m",
        r#""metadata":{"user_id":"user_5f1c0c7f2d9a4b1e8c3a6f0e9d2b7c4a_account__session_0b7c5e1a-2f3d-4c8b-9a6e-1d2c3b4a5f6e"},"#,
    );
    let v = dets(true)
        .inspect(RouteKind::Messages, clean.as_bytes())
        .unwrap();
    assert!(v.is_allow() && v.hits().is_empty(), "{:?}", v.hits());
}
