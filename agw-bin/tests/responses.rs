//! The response guard end to end, over real sockets on 127.0.0.1: framing (content types,
//! duplicate keys, events that do not parse), tool-call policy, every choice, the Responses
//! API and reasoning. agw runs in front of the mock provider.

mod common;

use common::*;

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const BLOCKED: &str = "Deleting Kubernetes resources is blocked by policy";

fn config(provider: &str) -> String {
    format!(
        r#"
backends:
  - name: b
    provider: {provider}
    guards:
      response_window_bytes: 64
      response:
        - name: keys
          detectors: [aws_access_key]
          action: mask
        - name: codename
          keywords: [project zebra]
          case_insensitive: true
          message: The reply mentioned a code name
      tools:
        - name: no-k8s-deletes
          tool: Bash
          argument: command
          regex: 'kubectl\s+delete'
          message: {BLOCKED}
"#
    )
}

fn messages(prompt: &str, stream: bool) -> String {
    serde_json::json!({"model":"m","max_tokens":50,"stream":stream,
        "messages":[{"role":"user","content":prompt}]})
    .to_string()
}

fn chat(prompt: &str, stream: bool) -> String {
    serde_json::json!({"model":"m","stream":stream,"messages":[{"role":"user","content":prompt}]})
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn content_types_are_read_without_case_or_parameters() {
    let agw = Agw::start(&config("anthropic")).await;
    let url = agw.url("/v1/messages");
    let prompt = format!("mock:echo key {KEY} mock:content_type=Application/JSON; charset=utf-8");
    let (res, body) = send(json_post(&url, &messages(&prompt, false))).await;
    assert_eq!(res.status(), 200, "{}", text(&body));
    assert!(
        text(&body).contains("key <AWS_ACCESS_KEY>"),
        "{}",
        text(&body)
    );
    assert!(!text(&body).contains(KEY));
    let prompt = format!("mock:echo key {KEY} mock:content_type=Text/Event-Stream; charset=utf-8");
    let (res, body) = send(json_post(&url, &messages(&prompt, true))).await;
    assert_eq!(res.status(), 200);
    assert!(
        text(&body).contains("<AWS_ACCESS_KEY>") && !text(&body).contains(KEY),
        "{}",
        text(&body)
    );
    agw.stop().await;
}

#[tokio::test]
async fn responses_agw_cannot_read_are_refused_never_forwarded() {
    let agw = Agw::start(&config("anthropic")).await;
    let url = agw.url("/v1/messages");
    for (prompt, stream) in [
        (
            format!("mock:echo {KEY} mock:content_type=text/plain"),
            false,
        ),
        (
            format!("mock:echo {KEY} mock:content_type=application/octet-stream"),
            true,
        ),
        (format!("mock:echo {KEY} mock:dup_key"), false),
    ] {
        let (res, body) = send(json_post(&url, &messages(&prompt, stream))).await;
        assert_eq!(res.status(), 502, "{prompt}: {}", text(&body));
        let err = json(&body);
        assert_eq!(err["type"], "error", "{prompt}");
        assert_eq!(err["error"]["type"], "api_error");
        assert!(!text(&body).contains(KEY));
    }
    // An event whose data does not parse ends the stream with an error event.
    let (res, body) = send(json_post(
        &url,
        &messages(&format!("mock:echo {KEY} mock:trailing"), true),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let s = text(&body);
    assert!(!s.contains(KEY) && !s.contains("message_stop"), "{s}");
    assert!(
        s.ends_with("\n\n") && s.contains("event: error\ndata: {\"type\":\"error\""),
        "{s}"
    );
    agw.stop().await;
}

/// Found by an audit: a non-streaming answer labelled `text/event-stream` was read as lines
/// of unknown fields, ignored and forwarded; the SDK, which asked for no stream, reads it as
/// JSON. The keyword rule would not have matched in it either way. Since the nineteenth
/// session an event stream answering a request for none is refused outright (a 502 in the
/// route's dialect: the SDKs hand such a body to their caller as a string).
#[tokio::test]
async fn a_json_body_labelled_as_an_event_stream_is_not_forwarded() {
    let agw = Agw::start(&config("anthropic")).await;
    let url = agw.url("/v1/messages");
    for prompt in [
        format!("mock:echo my key {KEY} mock:content_type=text/event-stream"),
        "mock:echo project zebra mock:content_type=Text/Event-Stream; charset=utf-8".to_owned(),
        "mock:echo hello mock:content_type=text/event-stream".to_owned(),
    ] {
        let (res, body) = send(json_post(&url, &messages(&prompt, false))).await;
        let s = text(&body);
        assert_eq!(res.status(), 502, "{s}");
        let err: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(err["type"], "error", "{prompt}: {s}");
        assert_eq!(err["error"]["type"], "api_error", "{prompt}: {s}");
        assert!(
            !s.contains(KEY) && !s.contains("zebra") && !s.contains("hello"),
            "{s}"
        );
    }
    agw.stop().await;
}

#[tokio::test]
async fn openai_streams_get_openai_error_events() {
    let agw = Agw::start(&config("openai")).await;
    let url = agw.url("/v1/chat/completions");
    let (res, body) = send(json_post(
        &url,
        &chat(&format!("mock:echo {KEY} mock:trailing"), true),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let s = text(&body);
    assert!(!s.contains(KEY), "{s}");
    assert!(
        s.contains("data: {\"error\":{") && !s.contains("event: error"),
        "{s}"
    );
    agw.stop().await;
}

#[tokio::test]
async fn a_dangerous_tool_call_is_blocked_before_the_client_can_run_it() {
    let agw = Agw::start(&config("anthropic")).await;
    let url = agw.url("/v1/messages?beta=true");
    let prompt = "mock:tool=Bash:echo kubectl   delete ns prod > /dev/null; touch /tmp/agw-marker";
    let (res, body) = send(json_post(&url, &messages(prompt, true))).await;
    assert_eq!(res.status(), 200);
    let s = text(&body);
    assert!(
        s.contains("I'll run"),
        "the text before the call is sent: {s}"
    );
    assert!(!s.contains("kubectl") && !s.contains("tool_use"), "{s}");
    assert!(
        !s.contains("\"index\":1"),
        "no event of the tool block goes out: {s}"
    );
    assert!(s.ends_with(&format!("event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"invalid_request_error\",\"message\":\"{BLOCKED}\"}}}}\n\n")), "{s}");
    // The non-streaming retry gets a 400 naming the rule's message.
    let (res, body) = send(json_post(&url, &messages(prompt, false))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(&body)["error"]["message"], BLOCKED);
    // A harmless command goes through untouched.
    let direct = {
        let (_, b) = send(json_post(
            &format!("{}/v1/messages", agw.mock.base_url()),
            &messages("mock:tool=Bash:kubectl get pods", true),
        ))
        .await;
        b
    };
    let (res, body) = send(json_post(
        &url,
        &messages("mock:tool=Bash:kubectl get pods", true),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let strip = |b: &[u8]| {
        let s = text(b);
        let i = s.find("msg_mock_").unwrap() + 9;
        format!("{}{}", &s[..i], &s[i + 6..])
    };
    assert_eq!(strip(&body), strip(&direct));
    agw.stop().await;
}

/// Two choices asked for (`n: 2`, as the mock's `mock:choices=2` answers): each is guarded.
/// A stream with a choice the request did not ask for ends (twelfth session).
#[tokio::test]
async fn tool_calls_and_text_of_every_choice_are_guarded() {
    let agw = Agw::start(&config("openai")).await;
    let url = agw.url("/v1/chat/completions");
    let chat = |prompt: &str, stream: bool| {
        serde_json::json!({"model":"m","stream":stream,"n":2,"messages":[{"role":"user","content":prompt}]})
            .to_string()
    };
    let (res, body) = send(json_post(
        &url,
        &self::chat(&format!("mock:choices=2 mock:echo {KEY}"), true),
    ))
    .await;
    assert_eq!(res.status(), 200);
    let s = text(&body);
    assert!(
        !s.contains(KEY) && s.contains("a choice the request did not ask for"),
        "{s}"
    );
    let prompt = "mock:choices=2 mock:tool=Bash:kubectl delete ns prod";
    let (res, body) = send(json_post(&url, &chat(prompt, true))).await;
    assert_eq!(res.status(), 200);
    let s = text(&body);
    assert!(
        !s.contains("kubectl") && s.contains(BLOCKED) && !s.contains("[DONE]"),
        "{s}"
    );
    let (res, body) = send(json_post(&url, &chat(prompt, false))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(&body)["error"]["message"], BLOCKED);
    // Text in the second choice is masked too.
    let (_, body) = send(json_post(
        &url,
        &chat(&format!("mock:choices=2 mock:echo {KEY}"), true),
    ))
    .await;
    let s = text(&body);
    assert!(
        !s.contains(KEY) && s.matches("<AWS_ACCESS_KEY>").count() == 2,
        "{s}"
    );
    agw.stop().await;
}

#[tokio::test]
async fn the_responses_api_is_guarded() {
    let agw = Agw::start(&config("openai")).await;
    let url = agw.url("/v1/responses");
    let req = |prompt: &str, stream: bool| {
        serde_json::json!({"model":"m","stream":stream,"input":prompt}).to_string()
    };
    for stream in [false, true] {
        let (res, body) = send(json_post(&url, &req(&format!("mock:echo {KEY}"), stream))).await;
        assert_eq!(res.status(), 200);
        let s = text(&body);
        assert!(!s.contains(KEY) && s.contains("<AWS_ACCESS_KEY>"), "{s}");
    }
    let (_, body) = send(json_post(
        &url,
        &req("mock:tool=Bash:kubectl delete x", true),
    ))
    .await;
    let s = text(&body);
    assert!(!s.contains("kubectl") && s.contains(BLOCKED), "{s}");
    assert!(s.contains("event: error\ndata: {\"type\":\"error\""), "{s}");
    let (res, _) = send(json_post(
        &url,
        &req("mock:tool=Bash:kubectl delete x", false),
    ))
    .await;
    assert_eq!(res.status(), 400);
    agw.stop().await;
}

/// Signed thinking is never modified: a mask rule's hit in it refuses the response (400, a
/// policy's decision clients do not retry, or the error event of a stream) rather than let
/// what it would mask through (seventh red-team review; 400 since the twelfth session, as a
/// 502 made Claude Code send it eleven times); thinking without a hit passes with its
/// signature.
#[tokio::test]
async fn thinking_is_never_modified() {
    let agw = Agw::start(&config("anthropic")).await;
    let url = agw.url("/v1/messages");
    let prompt = format!("mock:think mock:echo {KEY}");
    for stream in [false, true] {
        let (res, body) = send(json_post(&url, &messages(&prompt, stream))).await;
        let s = text(&body);
        assert!(!s.contains(KEY) && s.contains("signed reasoning"), "{s}");
        if stream {
            assert_eq!(res.status(), 200);
            assert!(s.contains("event: error"), "{s}");
        } else {
            assert_eq!(res.status(), 400, "{s}");
            assert!(s.contains("invalid_request_error"), "{s}");
        }
    }
    for stream in [false, true] {
        let (res, body) = send(json_post(&url, &messages("mock:think hello", stream))).await;
        assert_eq!(res.status(), 200);
        let s = text(&body);
        assert!(s.contains("bW9jay1zaWduYXR1cmU="), "{s}");
    }
    // Reject rules read thinking.
    let (res, body) = send(json_post(
        &url,
        &messages("mock:think Project Zebra", false),
    ))
    .await;
    assert_eq!(res.status(), 400, "{}", text(&body));
    agw.stop().await;
}
