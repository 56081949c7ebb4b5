//! The nineteenth session's red team (response and stream guard bypasses): upstream redirects
//! passed to the client, error bodies' identifiers unread, SSE comments, `id`, `retry` and
//! event names unread, a stream answering a request for none, and text responses
//! (transcriptions, JSON labelled `text/plain`) passed unread on passthrough paths.

use agw_core::api::Api;
use agw_core::detect::Detector;
use agw_core::guard::{Policy, Rule};
use agw_core::route::RouteKind;
use agw_tower::classify::Classified;
use agw_tower::limits::Collected;
use agw_tower::response::{ResponseGuardLayer, ResponseOutcome};
use agw_tower::test_util::MemoryUpstream;
use agw_tower::upstream::{Upstream, UpstreamConfig, UpstreamFailure};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_layer::Layer;

const CARD: &str = "4111 1111 1111 1111";

/// The red team's rules: a literal and a pattern that refuse, cards and addresses masked.
fn policy() -> Policy {
    Policy::builder()
        .rule(Rule::literals("bluebird", ["Project Bluebird"]).reject("blocked bluebird"))
        .rule(Rule::regex("secretre", [r"SECRET-\d{4}"]).reject("blocked secret regex"))
        .rule(
            Rule::detectors(
                "cards",
                [
                    Detector::CreditCard,
                    Detector::Email,
                    Detector::AwsAccessKey,
                ],
            )
            .mask(),
        )
        .build()
        .unwrap()
}

fn request(method: Method, path: &str, body: &str) -> Request<String> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .unwrap()
}

async fn call(
    upstream: MemoryUpstream,
    req: Request<String>,
) -> (StatusCode, String, Option<ResponseOutcome>) {
    let svc = ResponseGuardLayer::new(policy()).layer(upstream);
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let outcome = res.extensions().get::<ResponseOutcome>().cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), outcome)
}

fn upstream(content_type: &'static str, body: &str) -> MemoryUpstream {
    MemoryUpstream::new(content_type, vec![Bytes::from(body.to_owned())])
}

const MESSAGES: &str =
    r#"{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

// ---- F1: redirects ----

/// Serves one canned response to every connection (bounded: the test ends, the task is
/// dropped).
async fn canned(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr.to_string()
}

async fn through_upstream(
    addr: &str,
    api: Api,
    kind: RouteKind,
    path: &str,
) -> (u16, String, Option<UpstreamFailure>, http::HeaderMap) {
    let mut req = Request::post(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    req.extensions_mut().insert(Classified {
        kind,
        api,
        upstream: api,
    });
    let up: Upstream<Full<Bytes>> = Upstream::new(UpstreamConfig::new("up")).unwrap();
    let res = up.oneshot(req).await.unwrap();
    let failure = res.extensions().get::<UpstreamFailure>().copied();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        failure,
        headers,
    )
}

/// Found by the nineteenth session's red team: an upstream's `307` with an absolute
/// `Location` reached the client, and the SDKs followed it — the prompt went to that address
/// and its answer was shown, both unguarded. Every redirect is a 502 in the route's dialect,
/// cause `redirect`, its `Location` never echoed, with `x-should-retry: false`; a `304`
/// without one passes.
#[tokio::test]
async fn an_upstream_redirect_is_never_passed_on() {
    for response in [
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/v1/messages\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://evil.example/v1/messages\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 302 Found\r\nlocation: //evil.example/x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nLocation: http://evil.example/\r\n\r\n",
    ] {
        let addr = canned(response).await;
        for (api, kind, path, shape) in [
            (
                Api::Anthropic,
                RouteKind::Messages,
                "/v1/messages",
                "\"type\":\"error\"",
            ),
            (
                Api::OpenAi,
                RouteKind::Completions,
                "/v1/chat/completions",
                "\"error\":{",
            ),
            (
                Api::Anthropic,
                RouteKind::Passthrough,
                "/v1/files",
                "\"type\":\"error\"",
            ),
        ] {
            let (status, body, failure, headers) = through_upstream(&addr, api, kind, path).await;
            assert_eq!(status, 502, "{response:?} {path}: {body}");
            assert_eq!(failure, Some(UpstreamFailure::Redirect), "{response:?}");
            assert!(headers.get(http::header::LOCATION).is_none(), "{headers:?}");
            // Retrying cannot help: the SDKs (Claude Code's too) read `x-should-retry: false`
            // and show it at once, where they retried a 502 ten times.
            assert_eq!(
                headers.get("x-should-retry").map(|v| v.as_bytes()),
                Some(&b"false"[..]),
                "{headers:?}"
            );
            assert!(
                body.contains(shape) && body.contains("redirect") && !body.contains("evil"),
                "{response:?} {path}: {body}"
            );
            assert!(!body.contains("127.0.0.1:9"), "{body}");
        }
    }
    assert_eq!(UpstreamFailure::Redirect.name(), "redirect");
    // A `304` without a `Location` answers a conditional request: it passes.
    let addr = canned("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n").await;
    let (status, _, failure, _) =
        through_upstream(&addr, Api::OpenAi, RouteKind::Passthrough, "/v1/files/f").await;
    assert_eq!((status, failure), (304, None));
}

// ---- F2: error bodies read whole ----

/// Found by the nineteenth session's red team: in an error body, `error.type`, `type`, `id`,
/// `model`, `status`, `object`, `error.id` and `signature` went unread, and the SDKs print the
/// whole body. An error is read whole: a rejecting rule replaces it, a masking rule masks.
#[tokio::test]
async fn every_string_of_an_error_body_is_read() {
    let v = "Project Bluebird";
    for body in [
        format!(r#"{{"type":"error","error":{{"type":"{v}","message":"x"}}}}"#),
        format!(r#"{{"type":"{v}","error":{{"type":"overloaded_error","message":"x"}}}}"#),
        format!(r#"{{"type":"error","id":"{v}","error":{{"type":"x","message":"x"}}}}"#),
        format!(r#"{{"error":{{"message":"x","type":"x","id":"{v}"}},"model":"m"}}"#),
        format!(r#"{{"error":{{"message":"x","status":"{v}"}}}}"#),
        format!(r#"{{"object":"{v}","error":{{"message":"x"}}}}"#),
        format!(r#"{{"error":{{"message":"x"}},"signature":"{v}"}}"#),
        format!(r#"{{"error":{{"message":"x"}},"model":"{v}"}}"#),
    ] {
        for (path, status) in [
            ("/v1/messages", StatusCode::BAD_REQUEST),
            ("/v1/chat/completions", StatusCode::INTERNAL_SERVER_ERROR),
            ("/v1/vector_stores/vs_1/search", StatusCode::NOT_FOUND),
        ] {
            let up = upstream("application/json", &body).status(status);
            let (got, text, outcome) = call(up, request(Method::POST, path, MESSAGES)).await;
            assert!(
                !text.contains(v) && text.contains("blocked bluebird"),
                "{path} {body}: {got} {text}"
            );
            assert_eq!(outcome.unwrap().action(), "reject");
        }
    }
    // A mask masks in place: a card in `error.type`, a long number.
    let body = format!(
        r#"{{"type":"error","error":{{"type":"{CARD}","message":"x","code":4111111111111111}}}}"#
    );
    let up = upstream("application/json", &body).status(StatusCode::BAD_REQUEST);
    let (status, text, outcome) = call(up, request(Method::POST, "/v1/messages", MESSAGES)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!text.contains("4111"), "{text}");
    assert!(text.contains("\"message\":\"x\""), "{text}");
    assert_eq!(outcome.unwrap().action(), "mask");
    // A successful body's identifiers stay as they were: a model name trips nothing.
    let ok = r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let (status, text, _) = call(
        MemoryUpstream::json(ok),
        request(Method::POST, "/v1/messages", MESSAGES),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, ok));
}

/// The same in a stream's error event: Anthropic's `event: error`, a chat chunk's `error`.
#[tokio::test]
async fn every_string_of_a_stream_error_event_is_read() {
    let v = "Project Bluebird";
    let start = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}

"#;
    for error in [
        format!(
            r#"{{"type":"error","error":{{"type":"overloaded_error","message":"x"}},"id":"{v}"}}"#
        ),
        format!(r#"{{"type":"error","error":{{"type":"{v}","message":"x"}}}}"#),
    ] {
        let stream = format!("{start}event: error\ndata: {error}\n\n");
        let (status, text, outcome) = call(
            upstream("text/event-stream", &stream),
            request(Method::POST, "/v1/messages", MESSAGES),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !text.contains(v) && text.contains("blocked bluebird"),
            "{text}"
        );
        assert_eq!(outcome.unwrap().action(), "reject");
    }
    let chunk = format!(
        r#"data: {{"id":"{v}","object":"chat.completion.chunk","choices":[],"error":{{"message":"x"}}}}"#
    );
    let (_, text, _) = call(
        upstream("text/event-stream", &format!("{chunk}\n\n")),
        request(
            Method::POST,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true,"messages":[]}"#,
        ),
    )
    .await;
    assert!(
        !text.contains(v) && text.contains("blocked bluebird"),
        "{text}"
    );
}

// ---- F3: what a stream carries outside its data ----

fn anthropic_events(text: &str) -> String {
    format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}}}\n\n\
         event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n\
         event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    )
}

const STREAMING: &str = r#"{"model":"claude-x","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// Found by the nineteenth session's red team: comments, `id`, `retry` and an event name
/// without data reached the client unread (curl, the SDKs' raw events and google-genai's
/// error message show them). Read: a rejecting rule's hit ends the stream, and so does a
/// masking rule's in an event name; a comment, `id` or `retry` line a masking rule matches is
/// dropped; a clean keep-alive passes as it came.
#[tokio::test]
async fn comments_ids_retries_and_event_names_are_read() {
    for side in [
        ": Project Bluebird\n\n".to_owned(),
        ": SECRET-1234\n\n".to_owned(),
        "retry: Project Bluebird\n\n".to_owned(),
        "id: Project Bluebird\n\n".to_owned(),
        "event: Project Bluebird\n\n".to_owned(),
        "event: Project Bluebird\ndata: {}\n\n".to_owned(),
        format!("event: card {CARD}\n\n"),
    ] {
        let stream = format!("{side}{}", anthropic_events("hello"));
        let (status, text, outcome) = call(
            upstream("text/event-stream", &stream),
            request(Method::POST, "/v1/messages", STREAMING),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !text.contains("Bluebird")
                && !text.contains("SECRET-1234")
                && !text.contains("4111")
                && text.contains("event: error"),
            "{side:?}: {text}"
        );
        assert_eq!(outcome.unwrap().action(), "reject", "{side:?}");
    }
    // A masking rule's hit in a comment, `id` or `retry`: the line is dropped, the rest passes.
    for (side, left) in [
        (format!(": card {CARD}\n\n"), String::new()),
        (format!("id: {CARD}\n\n"), String::new()),
        (
            format!("event: ping\nid: {CARD}\ndata: {{\"type\":\"ping\"}}\n\n"),
            "event: ping\ndata: {\"type\":\"ping\"}\n\n".to_owned(),
        ),
    ] {
        let events = anthropic_events("hello");
        let stream = format!("{side}{events}");
        let (status, text, _) = call(
            upstream("text/event-stream", &stream),
            request(Method::POST, "/v1/messages", STREAMING),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, format!("{left}{events}"), "{side:?}");
    }
    // OpenRouter's keep-alive, again and again, and an `id`: as they came.
    let stream = format!(
        ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\nid: 7\nretry: 3000\n\n{}",
        anthropic_events("hello")
    );
    let (status, text, _) = call(
        upstream("text/event-stream", &stream),
        request(Method::POST, "/v1/messages", STREAMING),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, stream.as_str()));
}

/// Found by the nineteenth session's red team: the Anthropic and OpenAI Python SDKs return an
/// event stream that answers a request for none as a string, raw events and all. On a prompt
/// route, a request that asked for no stream is refused such an answer; one that asked for
/// a stream gets it.
#[tokio::test]
async fn a_stream_answering_a_request_for_none_is_refused() {
    let stream = anthropic_events("hello");
    for (path, body) in [
        ("/v1/messages", MESSAGES),
        (
            "/v1/messages",
            r#"{"model":"claude-x","max_tokens":10,"stream":false,"messages":[]}"#,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ] {
        let mut req = request(Method::POST, path, body);
        req.extensions_mut().insert(Collected {
            plain: Bytes::from(body.to_owned()),
        });
        let (status, text, outcome) = call(upstream("text/event-stream", &stream), req).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path} {body}: {text}");
        assert!(
            text.contains("no stream") && !text.contains("hello"),
            "{text}"
        );
        assert_eq!(outcome.unwrap().action(), "reject");
    }
    let mut req = request(Method::POST, "/v1/messages", STREAMING);
    req.extensions_mut().insert(Collected {
        plain: Bytes::from_static(STREAMING.as_bytes()),
    });
    let (status, text, _) = call(upstream("text/event-stream", &stream), req).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, stream.as_str()));
}

// ---- F4: text responses ----

/// Found by the nineteenth session's red team: a transcription with `response_format` `text`,
/// `srt` or `vtt` (`text/plain`) passed unread as a file, and so did JSON labelled
/// `text/plain` or without a type on passthrough paths. Text is read as text (masked in place,
/// refused by a rejecting rule), JSON as JSON whatever its label; binary downloads and files'
/// contents pass as they are.
#[tokio::test]
async fn text_responses_on_passthrough_paths_are_read() {
    let path = "/v1/audio/transcriptions";
    let (status, text, outcome) = call(
        upstream(
            "text/plain; charset=utf-8",
            &format!("my card is {CARD}, thanks\n"),
        ),
        request(Method::POST, path, "{}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, "my card is <CREDIT_CARD>, thanks\n");
    assert_eq!(outcome.unwrap().action(), "mask");
    let srt = "1\n00:00:00,000 --> 00:00:02,000\nProject Bluebird\n\n";
    for (ct, path) in [
        ("text/plain", "/v1/audio/translations"),
        ("text/vtt", "/v1/audio/transcriptions"),
        ("application/x-subrip", "/v1/audio/transcriptions"),
        ("text/html", "/v1/assistants"),
    ] {
        let (status, text, _) = call(upstream(ct, srt), request(Method::POST, path, "{}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ct} {path}: {text}");
        assert!(
            text.contains("blocked bluebird") && !text.contains("Bluebird\n"),
            "{text}"
        );
    }
    // JSON labelled as text: read as JSON, masked in place.
    let json = format!(r#"{{"text":"card {CARD}","id":"x"}}"#);
    for ct in ["text/plain", "text/html"] {
        let (status, text, _) = call(
            upstream(ct, &json),
            request(Method::GET, "/v1/batches/b_1", ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, r#"{"text":"card <CREDIT_CARD>","id":"x"}"#, "{ct}");
    }
    // No type at all.
    let untyped = tower::service_fn(|_req: Request<String>| async {
        let res = http::Response::new(Full::new(Bytes::from_static(
            b"{\"revised_prompt\":\"Project Bluebird\"}",
        )));
        Ok::<_, std::convert::Infallible>(res)
    });
    let svc = ResponseGuardLayer::new(policy()).layer(untyped);
    let res = svc
        .oneshot(request(Method::POST, "/v1/images/generations", "{}"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Binary downloads and files' contents pass unread, as before.
    for (ct, path) in [
        ("audio/mpeg", "/v1/audio/speech"),
        ("application/octet-stream", "/v1/files/file-1/content"),
        ("text/plain", "/v1/files/file-1/content"),
        ("image/png", "/v1/images/x"),
    ] {
        let body = format!("Project Bluebird {CARD}");
        let (status, text, _) = call(upstream(ct, &body), request(Method::GET, path, "")).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, body.as_str()),
            "{ct}"
        );
    }
}
