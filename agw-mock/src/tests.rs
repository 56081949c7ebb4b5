//! The mock over real sockets on 127.0.0.1, with hyper's client (HTTP/1.1 and h2c).

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::time::timeout;

use super::stream::{self, Plan};
use super::trigger::{AFTER_TOOL_TEXT, DEFAULT_TEXT, TOOL_USE_ID};
use super::{MockProvider, anthropic, openai};

/// Generous bound for anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(10);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn h2c() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Incoming> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    timeout(PROMPT, client.request(request))
        .await
        .expect("response in time")
        .expect("response")
}

async fn post_json(client: &HttpClient, url: String, body: &Value) -> Response<Incoming> {
    send(
        client,
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

async fn read_all(response: Response<Incoming>) -> Bytes {
    timeout(PROMPT, response.into_body().collect())
        .await
        .expect("body in time")
        .unwrap()
        .to_bytes()
}

async fn read_json(response: Response<Incoming>) -> Value {
    serde_json::from_slice(&read_all(response).await).expect("JSON body")
}

/// The next data frame, or `None` at the end of the body.
async fn next_data(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = timeout(PROMPT, body.frame())
            .await
            .expect("frame in time")?
            .unwrap();
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

/// One SSE event: its `event:` name (if any) and `data:`; comments come as `(":", text)`.
fn parse_sse(text: &str) -> Vec<(String, String)> {
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "stream ends mid-event: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|block| {
            if let Some(comment) = block.strip_prefix(':') {
                return (":".to_owned(), comment.trim().to_owned());
            }
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data)
        })
        .collect()
}

/// Anthropic events as `(name, data JSON)`, checking that each `type` matches its name.
fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    parse_sse(text)
        .into_iter()
        .filter(|(name, _)| name != ":")
        .map(|(name, data)| {
            let data: Value = serde_json::from_str(&data).expect("event data is JSON");
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "text_delta")
        .map(|(_, data)| data["delta"]["text"].as_str().unwrap())
        .collect()
}

fn messages_request(text: &str, stream: bool) -> Value {
    json!({
        "model": "claude-test-1",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    })
}

fn chat_request(text: &str, stream: bool) -> Value {
    json!({
        "model": "gpt-test-1",
        "stream": stream,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": text}],
    })
}

const TEXT_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
];

#[tokio::test]
async fn root_count_tokens_models_and_unknown_paths() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = mock.base_url();

    for (method, path) in [
        (Method::HEAD, "/"),
        (Method::GET, "/"),
        (Method::HEAD, "/api/hello"),
    ] {
        let response = send(&client, method, format!("{url}{path}"), &[], "").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(read_all(response).await.is_empty());
    }

    let response = send(
        &client,
        Method::POST,
        format!("{url}/v1/messages/count_tokens?beta=true"),
        &[],
        "x".repeat(40),
    )
    .await;
    assert_eq!(read_json(response).await, json!({"input_tokens": 10}));

    let response = send(
        &client,
        Method::GET,
        format!("{url}/v1/models?limit=1000"),
        &[],
        "",
    )
    .await;
    let models = read_json(response).await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["has_more"], false);
    assert_eq!(models["first_id"], models["data"][0]["id"]);
    for model in models["data"].as_array().unwrap() {
        for key in [
            "id",
            "type",
            "display_name",
            "created_at",
            "object",
            "created",
            "owned_by",
        ] {
            assert!(!model[key].is_null(), "{key} in {model}");
        }
    }

    let response = send(&client, Method::GET, format!("{url}/v2/nothing"), &[], "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error = read_json(response).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn anthropic_message_json() {
    let mock = MockProvider::start().await.unwrap();
    let response = post_json(
        &http1(),
        format!("{}/v1/messages", mock.base_url()),
        &messages_request("hi", false),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("request-id"));
    let message = read_json(response).await;
    assert!(message["id"].as_str().unwrap().starts_with("msg_mock"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-test-1");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": DEFAULT_TEXT}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    let usage = &message["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert!(usage["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["cache_creation_input_tokens"], 0);
    assert_eq!(usage["cache_read_input_tokens"], 0);
}

#[tokio::test]
async fn anthropic_stream_events() {
    let mock = MockProvider::start().await.unwrap();
    let url = format!("{}/v1/messages?beta=true", mock.base_url());
    let response = post_json(&http1(), url, &messages_request("hi", true)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = read_all(response).await;
    let events = anthropic_events(std::str::from_utf8(&body).unwrap());
    assert_eq!(names(&events), TEXT_EVENTS);
    assert_eq!(text_of(&events), DEFAULT_TEXT);

    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_mock"));
    assert_eq!(start["model"], "claude-test-1");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let delta = &events[7].1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn stream_body_is_one_frame_per_event() {
    let (events, first_delta) = anthropic::events(
        anthropic::Meta {
            id: "msg_mock_x",
            model: "m",
            input_tokens: 1,
            thinking: None,
        },
        &super::trigger::Reply::Text(DEFAULT_TEXT.into()),
    );
    let (release, watch) = tokio::sync::watch::channel(0);
    let plan = Plan {
        events: events.clone(),
        hold_after: Some(first_delta),
        ping_comment: false,
        gzip: false,
    };
    let mut body = stream::body(plan, watch);
    let mut frames = Vec::new();
    while let Some(frame) = timeout(PROMPT, body.frame()).await.unwrap() {
        frames.push(frame.unwrap().into_data().unwrap());
        if frames.len() == first_delta + 1 {
            release.send_modify(|g| *g += 1);
        }
    }
    assert_eq!(frames, events);
}

#[tokio::test]
async fn read_tool_then_tool_result() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/messages?beta=true", mock.base_url());
    let prompt = "please mock:read=/tmp/notes.txt thanks";

    let message =
        read_json(post_json(&client, url.clone(), &messages_request(prompt, false)).await).await;
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([
            {"type": "text", "text": "I'll read it."},
            {"type": "tool_use", "id": TOOL_USE_ID, "name": "Read", "input": {"file_path": "/tmp/notes.txt"}},
        ])
    );

    let body =
        read_all(post_json(&client, url.clone(), &messages_request(prompt, true)).await).await;
    let events = anthropic_events(std::str::from_utf8(&body).unwrap());
    let tool_start = events
        .iter()
        .find(|(name, data)| name == "content_block_start" && data["index"] == 1)
        .expect("tool_use block");
    assert_eq!(
        tool_start.1["content_block"],
        json!({"type": "tool_use", "id": TOOL_USE_ID, "name": "Read", "input": {}})
    );
    let input: String = events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "input_json_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        json!({"file_path": "/tmp/notes.txt"})
    );
    let stop = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(names(&events).last(), Some(&"message_stop"));

    // Claude Code's follow-up: the last user turn is the tool result (the trigger is further up).
    let follow_up = json!({
        "model": "claude-test-1",
        "stream": true,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": TOOL_USE_ID, "content": "the file"},
            ]},
        ],
    });
    let body = read_all(post_json(&client, url, &follow_up).await).await;
    let events = anthropic_events(std::str::from_utf8(&body).unwrap());
    assert_eq!(text_of(&events), AFTER_TOOL_TEXT);
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
}

#[tokio::test]
async fn echo_and_status_triggers() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/messages", mock.base_url());

    let request = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>ignored</system-reminder>"},
            {"type": "text", "text": "mock:echo secret sk-ant-XYZ"},
        ]}],
    });
    let message = read_json(post_json(&client, url.clone(), &request).await).await;
    assert_eq!(message["content"][0]["text"], "mock:echo secret sk-ant-XYZ");

    let response = post_json(&client, url, &messages_request("mock:status=400", true)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        read_json(response).await,
        json!({"type": "error", "error": {"type": "api_error", "message": "mock error 400"}})
    );
}

#[tokio::test]
async fn hold_until_release() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    for via_http in [false, true] {
        let url = format!("{}/v1/messages?beta=true", mock.base_url());
        let response = post_json(&client, url, &messages_request("mock:hold", true)).await;
        let mut body = response.into_body();
        let mut text = String::new();
        while !text.contains("content_block_delta") {
            let data = next_data(&mut body)
                .await
                .expect("first delta before release");
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        // Held: nothing more comes until released.
        assert!(
            timeout(Duration::from_millis(200), body.frame())
                .await
                .is_err()
        );
        assert!(!text.contains("content_block_stop"));
        if via_http {
            let release = format!("{}/__mock/release", mock.base_url());
            let response = send(&client, Method::POST, release, &[], "").await;
            assert_eq!(response.status(), StatusCode::OK);
        } else {
            mock.release();
        }
        while let Some(data) = next_data(&mut body).await {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        let events = anthropic_events(&text);
        assert_eq!(names(&events), TEXT_EVENTS);
    }
    // The release request is not recorded.
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn gzip_stream_decodes_incrementally_to_the_same_events() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/messages?beta=true", mock.base_url());
    let prompt = "mock:gzip mock:ping_comment";

    let plain =
        read_all(post_json(&client, url.clone(), &messages_request(prompt, true)).await).await;
    let plain = String::from_utf8(plain.to_vec()).unwrap();

    let request = messages_request(prompt, true).to_string();
    let headers = [
        ("content-type", "application/json"),
        ("accept-encoding", "gzip, br"),
    ];
    let response = send(&client, Method::POST, url, &headers, request).await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let mut body = response.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    while let Some(data) = next_data(&mut body).await {
        decoder.write_all(&data).unwrap();
        decoder.flush().unwrap();
        // Every piece received decodes to whole events.
        let so_far = decoder.get_ref();
        assert!(so_far.is_empty() || so_far.ends_with(b"\n\n"));
    }
    let gzipped = String::from_utf8(decoder.finish().unwrap()).unwrap();

    let strip_ids = |text: &str| {
        let mut events = anthropic_events(text);
        for (_, data) in &mut events {
            if let Some(message) = data.get_mut("message") {
                message["id"] = Value::Null;
            }
        }
        events
    };
    assert_eq!(strip_ids(&gzipped), strip_ids(&plain));
    assert_eq!(names(&strip_ids(&plain)), TEXT_EVENTS);

    // Keep-alive comments sit between events, never after the last.
    let sse = parse_sse(&gzipped);
    assert_eq!(
        sse.iter().filter(|(name, _)| name == ":").count(),
        TEXT_EVENTS.len() - 1
    );
    assert_eq!(sse.last().unwrap().0, "message_stop");
    assert_eq!(sse[1], (":".to_owned(), "keep-alive".to_owned()));
}

#[tokio::test]
async fn gzip_json_and_gzip_request_bodies() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/messages", mock.base_url());
    let request = messages_request("mock:gzip mock:echo", false).to_string();
    let compressed = stream::gzip_all(request.as_bytes());
    let headers = [("content-encoding", "gzip"), ("accept-encoding", "gzip")];
    let response = send(&client, Method::POST, url, &headers, compressed.clone()).await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let body = read_all(response).await;
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded).unwrap();
    let message: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(message["content"][0]["text"], "mock:gzip mock:echo");

    let recorded = &mock.requests()[0];
    assert_eq!(recorded.body, compressed);
    assert_eq!(
        recorded.json().unwrap(),
        serde_json::from_str::<Value>(&request).unwrap()
    );
}

#[tokio::test]
async fn records_exact_requests_and_control_endpoints() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let body = "{ \"model\" :\"m\",\n \"messages\": [] }  ";
    let url = format!("{}/v1/messages?beta=true&x=%20y", mock.base_url());
    let headers = [
        ("x-api-key", "sk-client"),
        ("anthropic-beta", "a"),
        ("anthropic-beta", "b"),
    ];
    let response = send(&client, Method::POST, url, &headers, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    read_all(response).await;
    let binary = vec![0xff, 0x00, 0x10];
    read_all(
        send(
            &client,
            Method::POST,
            format!("{}/other", mock.base_url()),
            &[],
            binary.clone(),
        )
        .await,
    )
    .await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, Method::POST);
    assert_eq!(requests[0].uri, "/v1/messages?beta=true&x=%20y");
    assert_eq!(requests[0].body, body);
    assert_eq!(requests[0].headers["x-api-key"], "sk-client");
    let betas: Vec<_> = requests[0]
        .headers
        .get_all("anthropic-beta")
        .iter()
        .collect();
    assert_eq!(betas, ["a", "b"]);
    assert_eq!(requests[1].body, binary);

    let listing = read_json(
        send(
            &client,
            Method::GET,
            format!("{}/__mock/requests", mock.base_url()),
            &[],
            "",
        )
        .await,
    )
    .await;
    assert_eq!(listing[0]["method"], "POST");
    assert_eq!(listing[0]["uri"], "/v1/messages?beta=true&x=%20y");
    assert_eq!(listing[0]["headers"]["x-api-key"], "sk-client");
    assert_eq!(listing[0]["headers"]["anthropic-beta"], json!(["a", "b"]));
    assert_eq!(listing[0]["body"], body);
    assert_eq!(listing[1]["body_base64"], "/wAQ");
    assert!(listing[1].get("body").is_none());
    assert_eq!(
        listing.as_array().unwrap().len(),
        2,
        "control requests are not recorded"
    );

    let response = send(
        &client,
        Method::POST,
        format!("{}/__mock/reset", mock.base_url()),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(mock.requests().is_empty());
    let listing = read_json(
        send(
            &client,
            Method::GET,
            format!("{}/__mock/requests", mock.base_url()),
            &[],
            "",
        )
        .await,
    )
    .await;
    assert_eq!(listing, json!([]));

    read_all(
        send(
            &client,
            Method::HEAD,
            format!("{}/", mock.base_url()),
            &[],
            "",
        )
        .await,
    )
    .await;
    assert_eq!(mock.requests().len(), 1);
    mock.clear();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn delay_comes_before_headers() {
    let mock = MockProvider::start().await.unwrap();
    let started = Instant::now();
    let url = format!("{}/v1/messages", mock.base_url());
    let response = post_json(&http1(), url, &messages_request("mock:delay_ms=60", false)).await;
    // A lower bound only: the sleep cannot end early.
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn openai_completion_json_and_errors() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let completion =
        read_json(post_json(&client, url.clone(), &chat_request("hi", false)).await).await;
    assert!(
        completion["id"]
            .as_str()
            .unwrap()
            .starts_with("chatcmpl-mock")
    );
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].as_u64().unwrap() > 0);
    assert_eq!(completion["model"], "gpt-test-1");
    let choice = &completion["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], DEFAULT_TEXT);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert!(completion["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let parts = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "mock:echo 42"}]}]});
    let completion = read_json(post_json(&client, url.clone(), &parts).await).await;
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "mock:echo 42"
    );

    let response = post_json(&client, url, &chat_request("mock:status=429", false)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let error = read_json(response).await;
    assert_eq!(error["error"]["message"], "mock error 429");
    assert_eq!(error["error"]["type"], "api_error");
    assert_eq!(error["error"]["code"], Value::Null);
}

#[tokio::test]
async fn openai_stream_ends_with_done() {
    let mock = MockProvider::start().await.unwrap();
    let client = http1();
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let mut request = chat_request("hi", true);
    request["stream_options"] = json!({"include_usage": true});
    let response = post_json(&client, url.clone(), &request).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = read_all(response).await;
    let sse = parse_sse(std::str::from_utf8(&body).unwrap());
    assert_eq!(sse.last().unwrap(), &(String::new(), "[DONE]".to_owned()));
    let chunks: Vec<Value> = sse[..sse.len() - 1]
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gpt-test-1")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, DEFAULT_TEXT);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // A tool call, streamed as OpenAI does.
    let body =
        read_all(post_json(&client, url, &chat_request("mock:read=/etc/hosts", true)).await).await;
    let sse = parse_sse(std::str::from_utf8(&body).unwrap());
    let chunks: Vec<Value> = sse[..sse.len() - 1]
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&arguments).unwrap(),
        json!({"file_path": "/etc/hosts"})
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn h2c_plain_and_stream() {
    let mock = MockProvider::start().await.unwrap();
    let client = h2c();
    let url = format!("{}/v1/messages?beta=true", mock.base_url());
    let response = post_json(&client, url.clone(), &messages_request("hi", false)).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(
        read_json(response).await["content"][0]["text"],
        DEFAULT_TEXT
    );
    let body = read_all(post_json(&client, url, &messages_request("hi", true)).await).await;
    assert_eq!(
        names(&anthropic_events(std::str::from_utf8(&body).unwrap())),
        TEXT_EVENTS
    );
}

#[tokio::test]
async fn shutdown_stops_listening_and_frees_holds() {
    let mock = MockProvider::start().await.unwrap();
    let addr = mock.addr();
    let url = format!("{}/v1/messages", mock.base_url());
    let response = post_json(&http1(), url, &messages_request("mock:hold", true)).await;
    let reader = tokio::spawn(read_all(response));
    timeout(PROMPT, mock.shutdown())
        .await
        .expect("shutdown in time");
    let body = timeout(PROMPT, reader).await.unwrap().unwrap();
    assert!(
        std::str::from_utf8(&body)
            .unwrap()
            .ends_with("data: {\"type\":\"message_stop\"}\n\n")
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn openai_error_shape() {
    let error: Value = serde_json::from_slice(&openai::error("boom")).unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "boom", "type": "api_error", "param": null, "code": null}})
    );
}

#[tokio::test]
async fn tool_and_thinking_triggers() {
    let mock = MockProvider::start().await.unwrap();
    let c = http1();
    let prompt = "go mock:think mock:tool=Bash:echo kubectl delete > /dev/null; touch /tmp/m";
    let url = format!("{}/v1/messages", mock.base_url());
    let body = read_json(post_json(&c, url.clone(), &messages_request(prompt, false)).await).await;
    assert_eq!(body["content"][0]["type"], "thinking");
    assert_eq!(body["content"][0]["thinking"], prompt);
    assert_eq!(body["content"][2]["type"], "tool_use");
    assert_eq!(body["content"][2]["name"], "Bash");
    assert_eq!(
        body["content"][2]["input"]["command"],
        "echo kubectl delete > /dev/null; touch /tmp/m"
    );
    assert_eq!(body["stop_reason"], "tool_use");
    let text = read_all(post_json(&c, url, &messages_request(prompt, true)).await).await;
    let events = anthropic_events(std::str::from_utf8(&text).unwrap());
    let thinking: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "thinking_delta")
        .map(|(_, d)| d["delta"]["thinking"].as_str().unwrap())
        .collect();
    assert_eq!(thinking, prompt);
    let input: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(
        input["command"],
        "echo kubectl delete > /dev/null; touch /tmp/m"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn openai_choices_and_tool_calls() {
    let mock = MockProvider::start().await.unwrap();
    let c = http1();
    let url = format!("{}/v1/chat/completions", mock.base_url());
    let req = chat_request("mock:choices=2 mock:tool=Bash:ls", true);
    let text = read_all(post_json(&c, url.clone(), &req).await).await;
    let text = std::str::from_utf8(&text).unwrap();
    let mut args = [String::new(), String::new()];
    for (_, data) in parse_sse(text) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        let choice = &v["choices"][0];
        let i = choice["index"].as_u64().unwrap() as usize;
        if let Some(a) = choice["delta"]["tool_calls"][0]["function"]["arguments"].as_str() {
            args[i].push_str(a);
        }
    }
    assert_eq!(args[0], r#"{"command":"ls"}"#);
    assert_eq!(args[1], args[0]);
    let body = read_json(post_json(&c, url, &chat_request("mock:choices=2", false)).await).await;
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    mock.shutdown().await;
}

#[tokio::test]
async fn responses_endpoint_json_and_stream() {
    let mock = MockProvider::start().await.unwrap();
    let c = http1();
    let url = format!("{}/v1/responses", mock.base_url());
    let req = |stream| json!({"model": "gpt-test", "stream": stream, "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi mock:echo"}]}]});
    let body = read_json(post_json(&c, url.clone(), &req(false)).await).await;
    assert_eq!(body["object"], "response");
    assert_eq!(body["output"][0]["content"][0]["text"], "hi mock:echo");
    let text = read_all(post_json(&c, url.clone(), &req(true)).await).await;
    let events = anthropic_events(std::str::from_utf8(&text).unwrap());
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "hi mock:echo");
    assert_eq!(events.last().unwrap().0, "response.completed");
    let tool = json!({"model": "m", "stream": true, "input": "mock:tool=Bash:ls"});
    let text = read_all(post_json(&c, url, &tool).await).await;
    let events = anthropic_events(std::str::from_utf8(&text).unwrap());
    assert!(names(&events).contains(&"response.function_call_arguments.delta"));
    mock.shutdown().await;
}

#[tokio::test]
async fn framing_triggers() {
    let mock = MockProvider::start().await.unwrap();
    let c = http1();
    let url = format!("{}/v1/messages", mock.base_url());
    let res = post_json(
        &c,
        url.clone(),
        &messages_request("mock:content_type=Application/JSON; charset=utf-8", false),
    )
    .await;
    assert_eq!(
        res.headers()["content-type"],
        "Application/JSON; charset=utf-8"
    );
    let body =
        read_all(post_json(&c, url.clone(), &messages_request("mock:dup_key", false)).await).await;
    assert!(body.starts_with(br#"{"content":[{"type":"text","text":"decoy"}],"id""#));
    let text = read_all(post_json(&c, url, &messages_request("mock:trailing", true)).await).await;
    assert!(std::str::from_utf8(&text).unwrap().contains("} x\n\n"));
    mock.shutdown().await;
}
