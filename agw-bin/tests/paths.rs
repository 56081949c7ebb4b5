//! Non-canonical paths and every prompt-bearing endpoint, black-box over sockets: agw in front
//! of the mock provider. No spelling of a guarded endpoint that an upstream would route there
//! gets past the request guard, and what is forwarded is the canonical path.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CARD: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"my credit card"}]}"#;
const CLEAN: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hello"}]}"#;

const OPENAI: &str = r#"
backends:
  - name: openai
    provider: openai
    api_key: sk-gateway
    guards:
      request:
        - name: credit-card
          regex: ["credit card"]
          action: reject
          message: Rejected due to inappropriate content
"#;

/// Issue 10, item 1: each spelling, and the canonical path it must be forwarded as.
const SPELLINGS: &[(&str, &str)] = &[
    ("/v1/message%73", "/v1/messages"),
    ("/v1/messages/", "/v1/messages"),
    ("//v1/messages", "/v1/messages"),
    ("/v1/./messages", "/v1/messages"),
    ("/V1/MESSAGES", "/V1/MESSAGES"),
    ("/v1/messages;x", "/v1/messages"),
    ("/v1/x/../messages?beta=true", "/v1/messages?beta=true"),
    ("/v1/%6d%65ssages", "/v1/messages"),
];

#[tokio::test]
async fn non_canonical_spellings_of_messages_are_guarded_and_forwarded_canonical() {
    let agw = Agw::start(SEED_DEFAULT).await;
    for (path, canonical) in SPELLINGS {
        let (res, body) = send(json_post(&agw.url(path), CARD)).await;
        assert_eq!(
            res.status(),
            400,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            json(&body)["error"]["message"],
            "Rejected due to inappropriate content",
            "{path}"
        );
        assert!(res.headers().contains_key("request-id"), "{path}");
        let (res, body) = send(json_post(&agw.url(path), CLEAN)).await;
        let seen = agw.mock.requests();
        let last = seen
            .last()
            .unwrap_or_else(|| panic!("{path}: nothing forwarded"));
        assert_eq!(
            &last.uri,
            canonical,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        let _ = res;
    }
    assert_eq!(agw.mock.requests().len(), SPELLINGS.len());
    agw.stop().await;
}

#[tokio::test]
async fn encoded_slashes_and_backslashes_are_refused() {
    let agw = Agw::start(SEED_DEFAULT).await;
    for path in [
        "/v1%2fmessages",
        "/v1%2Fmessages",
        "/v1%5cmessages",
        "/v1/messages%00",
    ] {
        let (res, body) = send(json_post(&agw.url(path), CLEAN)).await;
        assert_eq!(res.status(), 400, "{path}");
        let v = json(&body);
        assert_eq!(v["type"], "error", "{path}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("agw refuses the path"),
            "{v}"
        );
    }
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

#[tokio::test]
async fn every_prompt_bearing_endpoint_is_guarded() {
    // The built-in default lists only Messages, CountTokens and Models: the other endpoints
    // its dialects know are still their kinds, not the `*` passthrough.
    let agw = Agw::start(SEED_DEFAULT).await;
    let batch = format!(r#"{{"requests":[{{"custom_id":"a","params":{CARD}}}]}}"#);
    let complete = r#"{"model":"claude-2","prompt":"\n\nHuman: my credit card\n\nAssistant:","max_tokens_to_sample":8}"#;
    let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"my credit card"}]}"#;
    for (path, body) in [
        ("/v1/messages/count_tokens", CARD),
        ("/v1/messages/batches", batch.as_str()),
        ("/v1/complete", complete),
        ("/v1/chat/completions", chat),
    ] {
        let (res, body) = send(json_post(&agw.url(path), body)).await;
        assert_eq!(
            res.status(),
            400,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;

    let agw = Agw::start(OPENAI).await;
    let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"my credit card"}]}"#;
    let prompt = r#"{"model":"gpt-3.5-turbo-instruct","prompt":["hi","my credit card"]}"#;
    let responses = r#"{"model":"gpt-4o","instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"my credit card"}]}]}"#;
    let embeddings = r#"{"model":"text-embedding-3-small","input":"my credit card"}"#;
    for (path, body) in [
        ("/v1/chat/completions", chat),
        ("/v1/completions", prompt),
        ("/v1/responses", responses),
        ("/v1/embeddings", embeddings),
        ("/v1/Chat/Completions/", chat),
        ("/v1/respon%73es", responses),
    ] {
        let (res, body) = send(json_post(&agw.url(path), body)).await;
        assert_eq!(
            res.status(),
            400,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        // OpenAI's error shape.
        assert_eq!(
            json(&body)["error"]["message"],
            "Rejected due to inappropriate content"
        );
    }
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

/// Sends a raw request and returns the status code of the answer.
async fn raw_status(agw: &Agw, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(agw.addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the head and a small error body.
    for _ in 0..64 {
        let n = tokio::time::timeout(TIMEOUT, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    (status, text)
}

#[tokio::test]
async fn connect_and_trace_get_405() {
    let agw = Agw::start(SEED_DEFAULT).await;
    for req in [
        "CONNECT api.anthropic.com:443 HTTP/1.1\r\nhost: api.anthropic.com:443\r\nx-api-key: sk-client\r\n\r\n",
        "TRACE /v1/messages HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let (status, text) = raw_status(&agw, req).await;
        assert_eq!(status, 405, "{text}");
        assert!(text.contains("\"type\":\"error\""), "{text}");
    }
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

#[tokio::test]
async fn a_passthrough_body_is_read_by_the_guard_and_one_without_a_body_passes() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let (res, _) = send(
        http::Request::get(agw.url("/v1/models?limit=1000"))
            .header("x-api-key", "sk-client")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (res, _) = send(json_post(
        &agw.url("/api/event_logging/batch"),
        r#"{"events":[]}"#,
    ))
    .await;
    assert_ne!(res.status(), 400);
    assert_eq!(agw.mock.requests().len(), 2);
    agw.stop().await;
}
