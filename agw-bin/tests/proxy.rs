//! The proxy end to end: real sockets on 127.0.0.1, agw in front of the mock provider.

mod common;

use agw_bin::config::Env;
use agw_mock::MockProvider;
use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::io::Write;

const PROMPT: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":false,
  "messages":[{"role":"user","content":[{"type":"text","text":"Say \u0068ello  ✓"}]}],
  "unknown_field": {"x": [1.50, 2e3]}}"#;

/// The body with the mock's message id (which counts requests) replaced by `N`.
fn without_message_id(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).into_owned();
    let i = s.find("msg_mock_").expect("a mock message id") + 9;
    let j = i + s[i..].find('"').expect("the id ends");
    format!("{}N{}", &s[..i], &s[j..])
}

#[tokio::test]
async fn head_root_and_healthz_are_answered_locally() {
    let agw = Agw::start(SEED_DEFAULT).await;
    // Claude Code's warm-ups: `HEAD /` (CLIENTS.md) and `HEAD /api/hello` (2.1.x), without a
    // key, answered here (a team gateway would otherwise answer 401 and count a failed login).
    for path in ["/", "/api/hello"] {
        let (res, _) = send(Request::head(agw.url(path)).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), 200, "{path}");
    }
    let (res, body) = send(
        Request::get(agw.url("/healthz"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(&body)["status"], "ok");
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

#[tokio::test]
async fn body_query_and_headers_arrive_untouched() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let req = Request::post(agw.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .header("x-claude-code-session-id", "3f0c")
        .header("x-unknown-thing", "kept")
        .header("x-api-key", "sk-client")
        .header("connection", "x-hop")
        .header("x-hop", "dropped")
        .body(Full::new(Bytes::from_static(PROMPT.as_bytes())))
        .unwrap();
    let (res, body) = send(req).await;
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["type"], "message");
    let got = agw.mock.requests();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.uri, "/v1/messages?beta=true");
    assert_eq!(
        r.body,
        PROMPT.as_bytes(),
        "the body must be forwarded byte for byte"
    );
    let h = &r.headers;
    assert_eq!(
        h["anthropic-beta"],
        "claude-code-20250219,interleaved-thinking-2025-05-14"
    );
    assert_eq!(h["anthropic-version"], "2023-06-01");
    assert_eq!(h["x-claude-code-session-id"], "3f0c");
    assert_eq!(h["x-unknown-thing"], "kept");
    assert_eq!(
        h["x-api-key"], "sk-client",
        "passthrough keeps the client's key"
    );
    assert!(
        h.get("x-hop").is_none(),
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(h["host"], agw.mock.addr().to_string().as_str());
    agw.stop().await;
}

#[tokio::test]
async fn anthropic_version_is_added_only_when_missing() {
    let agw = Agw::start(SEED_DEFAULT).await;
    send(json_post(&agw.url("/v1/messages"), PROMPT)).await;
    assert_eq!(
        agw.mock.requests()[0].headers["anthropic-version"],
        "2023-06-01"
    );
    agw.stop().await;
}

#[tokio::test]
async fn credentials_inject_and_passthrough() {
    let env = Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-gateway")]);
    let agw = Agw::start_env(SEED_DEFAULT, env).await;
    for (name, value) in [
        ("x-api-key", "sk-client"),
        ("authorization", "Bearer oauth-client"),
    ] {
        let req = Request::post(agw.url("/v1/messages?beta=true"))
            .header(name, value)
            .body(Full::new(Bytes::from_static(PROMPT.as_bytes())))
            .unwrap();
        let (res, _) = send(req).await;
        assert_eq!(res.status(), 200);
    }
    for r in agw.mock.requests() {
        assert_eq!(r.headers["x-api-key"], "sk-ant-gateway");
        assert!(r.headers.get("authorization").is_none());
        let all = format!("{:?}", r.headers);
        assert!(!all.contains("client"), "a client credential leaked: {all}");
    }
    agw.stop().await;

    let agw = Agw::start(SEED_DEFAULT).await;
    let req = Request::post(agw.url("/v1/messages"))
        .header("authorization", "Bearer oauth-client")
        .body(Full::new(Bytes::from_static(PROMPT.as_bytes())))
        .unwrap();
    send(req).await;
    let r = &agw.mock.requests()[0];
    assert_eq!(r.headers["authorization"], "Bearer oauth-client");
    assert!(r.headers.get("x-api-key").is_none());
    agw.stop().await;
}

#[tokio::test]
async fn rejection_is_provider_shaped_and_never_reaches_upstream() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let body = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"What is a credit card"}]}"#;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages?beta=true"), body)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        bytes,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content","details":{"error_code":"dlp_request_denied"}}}"#
    );
    // count_tokens is guarded too, with the same shape.
    let (res, _) = send(json_post(
        &agw.url("/v1/messages/count_tokens?beta=true"),
        body,
    ))
    .await;
    assert_eq!(res.status(), 400);
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

/// A request's headers reach the provider and its logs: the seed's rule reads them as it reads
/// the URL (seventeenth session's red-team review: `x-note: … credit card …` went upstream).
/// A clean request with a client's own key goes through, the key untouched.
#[tokio::test]
async fn a_guarded_phrase_in_a_request_header_is_refused_before_the_upstream() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hello"}]}"#;
    for (name, value) in [
        ("x-note", "my credit card is on file"),
        ("user-agent", "credit card scraper/1.0"),
        ("anthropic-beta", "credit%20card"),
    ] {
        let mut req = json_post(&agw.url("/v1/messages?beta=true"), body);
        req.headers_mut().insert(
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
        let (res, bytes) = send(req).await;
        assert_eq!(res.status(), 400, "{name}");
        assert_eq!(
            bytes,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content","details":{"error_code":"dlp_request_denied"}}}"#
        );
    }
    assert!(agw.mock.requests().is_empty());
    let mut req = json_post(&agw.url("/v1/messages?beta=true"), body);
    req.headers_mut().insert(
        "x-api-key",
        http::HeaderValue::from_static("sk-ant-credit card-client"),
    );
    req.headers_mut()
        .insert("x-note", http::HeaderValue::from_static("nothing to see"));
    let (res, _) = send(req).await;
    assert_eq!(res.status(), 200);
    let got = agw.mock.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["x-api-key"], "sk-ant-credit card-client");
    assert_eq!(got[0].headers["x-note"], "nothing to see");
    agw.stop().await;
}

/// An upload (a form, a raw file) is read as one, not refused as "not valid JSON" (eighteenth
/// session's red team: every SDK upload was); a clean one reaches the provider byte for byte,
/// one with the guarded phrase in a field or a file does not.
#[tokio::test]
async fn uploads_are_read_as_forms_and_files() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let form = |file: &str| {
        format!(
            "--b0\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nuser_data\r\n\
             --b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n{file}\r\n--b0--\r\n"
        )
    };
    let post = |path: &str, ct: &str, body: String| {
        Request::post(agw.url(path))
            .header("content-type", ct)
            .header("x-api-key", "sk-client")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let clean = form("quarterly notes");
    let (res, _) = send(post(
        "/v1/files",
        "multipart/form-data; boundary=b0",
        clean.clone(),
    ))
    .await;
    assert_ne!(res.status(), 400);
    let got = agw.mock.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, clean.as_bytes());
    for (ct, body) in [
        ("multipart/form-data; boundary=b0", form("my credit card")),
        (
            "multipart/form-data; boundary=b0",
            form("\u{1}my cred\u{1}it card\u{1}\u{1}\u{1}"),
        ),
        ("application/octet-stream", "my credit card".to_owned()),
        (
            "application/x-www-form-urlencoded",
            "note=my+credit+card".to_owned(),
        ),
    ] {
        let (res, bytes) = send(post("/v1/files", ct, body)).await;
        assert_eq!(res.status(), 400, "{ct}");
        assert_eq!(
            bytes,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content","details":{"error_code":"dlp_request_denied"}}}"#
        );
    }
    // A form that parsers split differently is refused, named.
    let (res, bytes) = send(post(
        "/v1/files",
        "multipart/form-data; boundary=b0",
        "--b0\r\nno header block".to_owned(),
    ))
    .await;
    assert_eq!(res.status(), 400);
    assert!(String::from_utf8_lossy(&bytes).contains("multipart"));
    assert_eq!(agw.mock.requests().len(), 1);
    agw.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let config = SEED_DEFAULT.replace(
        "listen: 127.0.0.1:8080",
        "listen: 127.0.0.1:8080\nlimits: {max_body_bytes: 2000}",
    );
    let agw = Agw::start(&config).await;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), "{\"messages\": [")).await;
    assert_eq!(res.status(), 400);
    let v = json(&bytes);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    let big = format!(
        r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(5000)
    );
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), &big)).await;
    assert_eq!(res.status(), 413);
    assert_eq!(json(&bytes)["error"]["type"], "request_too_large");
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

#[tokio::test]
async fn masking_changes_only_the_masked_spans() {
    let config = r#"
backends:
  - name: anthropic
    provider: anthropic
    guards:
      request:
        - name: secrets
          detectors: [aws_access_key, credit_card]
          action: mask
"#;
    let agw = Agw::start(config).await;
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"key=AKIAIOSFODNN7EXAMPLE\ncard: 4111-1111-1111-1111"}]}],"z":  true}"#;
    let (res, _) = send(json_post(&agw.url("/v1/messages"), body)).await;
    assert_eq!(res.status(), 200);
    let got = &agw.mock.requests()[0];
    let expected = body
        .replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>")
        .replace("4111-1111-1111-1111", "<CREDIT_CARD>");
    assert_eq!(std::str::from_utf8(&got.body).unwrap(), expected);
    assert_eq!(
        got.headers["content-length"],
        expected.len().to_string().as_str()
    );
    agw.stop().await;
}

#[tokio::test]
async fn compressed_request_bodies_are_inspected() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let gz = |s: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(s).unwrap();
        Bytes::from(e.finish().unwrap())
    };
    let bad = gz(br#"{"messages":[{"role":"user","content":"credit card"}]}"#);
    let req = Request::post(agw.url("/v1/messages"))
        .header("content-encoding", "gzip")
        .body(Full::new(bad))
        .unwrap();
    assert_eq!(send(req).await.0.status(), 400);
    let good = gz(PROMPT.as_bytes());
    let req = Request::post(agw.url("/v1/messages"))
        .header("content-encoding", "gzip")
        .body(Full::new(good.clone()))
        .unwrap();
    assert_eq!(send(req).await.0.status(), 200);
    let got = agw.mock.requests();
    assert_eq!(got.len(), 1);
    // What was inspected goes on: the decoded bytes, without the coding (a black-box review
    // made a deflate body valid both as zlib and as raw deflate: agw read the one, an upstream
    // decoding raw deflate the other).
    assert_eq!(got[0].body, PROMPT.as_bytes(), "forwarded decoded");
    assert!(got[0].headers.get("content-encoding").is_none());
    assert_eq!(got[0].headers["content-length"], PROMPT.len().to_string());
    // Deflate (zlib-wrapped) and two stacked codings alike.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&gz(PROMPT.as_bytes())).unwrap();
    let req = Request::post(agw.url("/v1/messages"))
        .header("content-encoding", "gzip, deflate")
        .body(Full::new(Bytes::from(z.finish().unwrap())))
        .unwrap();
    assert_eq!(send(req).await.0.status(), 200);
    let got = agw.mock.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body, PROMPT.as_bytes());
    assert!(got[1].headers.get("content-encoding").is_none());
    // An encoding agw cannot read is refused, not forwarded unguarded.
    let req = Request::post(agw.url("/v1/messages"))
        .header("content-encoding", "compress")
        .body(Full::new(Bytes::from_static(b"xx")))
        .unwrap();
    assert_eq!(send(req).await.0.status(), 400);
    // So are more than two stacked codings (each layer would be decoded in turn).
    let thrice = gz(&gz(&good));
    let req = Request::post(agw.url("/v1/messages"))
        .header("content-encoding", "gzip, gzip")
        .header("content-encoding", "gzip")
        .body(Full::new(thrice))
        .unwrap();
    assert_eq!(send(req).await.0.status(), 400);
    assert_eq!(agw.mock.requests().len(), 2);
    agw.stop().await;
}

#[tokio::test]
async fn streams_arrive_event_by_event() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let body = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"mock:hold mock:ping_comment hi"}]}"#;
    let res = open(json_post(&agw.url("/v1/messages?beta=true"), body)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut seen = Vec::new();
    // Everything up to the first delta arrives while the provider still holds the stream.
    while !String::from_utf8_lossy(&seen).contains("content_block_delta") {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .expect("an event before the provider releases the stream")
            .unwrap()
            .unwrap();
        if let Some(d) = frame.data_ref() {
            seen.extend_from_slice(d);
        }
    }
    assert!(!String::from_utf8_lossy(&seen).contains("message_stop"));
    agw.mock.release();
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    seen.extend_from_slice(&rest);
    let text = String::from_utf8(seen).unwrap();
    assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
    assert!(text.contains("event: ping\n"));
    assert!(
        text.contains("\n: keep-alive\n"),
        "SSE comments pass: {text}"
    );
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#),
        "{text}"
    );
    agw.stop().await;
}

#[tokio::test]
async fn streams_through_agw_equal_streams_direct() {
    let mock = MockProvider::start().await.unwrap();
    let body = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"mock:ping_comment hi"}]}"#;
    let (_, direct) = send(json_post(&format!("{}/v1/messages", mock.base_url()), body)).await;
    let agw = Agw::start_with_mock(SEED_DEFAULT, Env::default(), mock).await;
    let (_, proxied) = send(json_post(&agw.url("/v1/messages"), body)).await;
    let norm = |b: &Bytes| without_message_id(b);
    assert_eq!(norm(&direct), norm(&proxied));
    agw.stop().await;
}

#[tokio::test]
async fn compressed_responses_pass_intact() {
    let agw = Agw::start(SEED_DEFAULT).await;
    let body = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"mock:gzip hi"}]}"#;
    let mut req = json_post(&agw.url("/v1/messages"), body);
    req.headers_mut()
        .insert("accept-encoding", "gzip".parse().unwrap());
    let (res, bytes) = send(req).await;
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    agw.stop().await;
}

#[tokio::test]
async fn upstream_failures_are_502_and_504_naming_the_backend() {
    // Nothing listens on port 1 (tcpmux, unused): a connection is refused at once. (A port
    // bound and dropped here could be taken meanwhile by another test's server, which then
    // answered or held the request: seen once as a 20 s timeout in a full run.)
    let dead = "127.0.0.1:1";
    assert!(
        std::net::TcpStream::connect(dead).is_err(),
        "something listens on {dead}"
    );
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start_raw(
        SEED_DEFAULT,
        Env::default(),
        Some(format!("http://{dead}")),
        mock,
    )
    .await;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), PROMPT)).await;
    assert_eq!(res.status(), 502);
    let v = json(&bytes);
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`anthropic`"),
        "{v}"
    );
    agw.stop().await;

    let config = SEED_DEFAULT.replace(
        "provider: anthropic",
        "provider: anthropic\n    timeouts: {response_secs: 0.3}",
    );
    let agw = Agw::start(&config).await;
    let body = r#"{"model":"m","messages":[{"role":"user","content":"mock:delay_ms=3000"}]}"#;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), body)).await;
    assert_eq!(res.status(), 504);
    assert!(
        json(&bytes)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`anthropic`")
    );
    agw.stop().await;
}

#[tokio::test]
async fn model_pin_and_allow_list() {
    let config = r#"
backends:
  - name: anthropic
    provider: anthropic
    model: {pin: claude-opus-4-6}
"#;
    let agw = Agw::start(config).await;
    let (res, _) = send(json_post(&agw.url("/v1/messages"), PROMPT)).await;
    assert_eq!(res.status(), 200);
    let got = std::str::from_utf8(&agw.mock.requests()[0].body)
        .unwrap()
        .to_owned();
    assert_eq!(got, PROMPT.replace("claude-sonnet-4-5", "claude-opus-4-6"));
    agw.stop().await;

    let config = r#"
backends:
  - name: anthropic
    provider: anthropic
    model: {allow: [claude-opus-4-6, claude-haiku-*]}
"#;
    let agw = Agw::start(config).await;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), PROMPT)).await;
    assert_eq!(res.status(), 400);
    let msg = json(&bytes)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("claude-sonnet-4-5") && msg.contains("claude-opus-4-6, claude-haiku-*"),
        "{msg}"
    );
    assert!(agw.mock.requests().is_empty());
    agw.stop().await;
}

/// agw with `config`, its backends pointed at a fresh mock under the path `under` (a base
/// URL with a path).
async fn agw_under(config: &str, under: &str) -> Agw {
    let mock = MockProvider::start().await.unwrap();
    let base = format!("{}{under}", mock.base_url());
    Agw::start_raw(config, Env::default(), Some(base), mock).await
}

/// A JSON POST of `body` to `path` on `agw`.
fn post_json(agw: &Agw, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(agw.url(path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// A backend whose base URL has a path (`…/v1`, as OpenAI's URL is usually written): a client
/// sending `/chat/completions` reaches the provider's `/v1/chat/completions`, and agw reads it
/// as the chat completions it is — the pin applies, a rule for tool output masks it (review:
/// it went upstream as an unread passthrough with the client's model).
#[tokio::test]
async fn paths_under_a_base_urls_path_are_read_as_the_upstream_gets_them() {
    let config = r#"
backends:
  - name: openai
    provider: openai
    api_key: sk-gateway
    model: {pin: gpt-4o-mini}
    guards:
      request:
        - name: card-in-tools
          detectors: [credit_card]
          action: mask
          fields: [tool_output]
"#;
    let agw = agw_under(config, "/v1").await;
    let body = r#"{"model":"o3-pro","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"c1","content":"card 4111 1111 1111 1111"}]}"#;
    let (res, _) = send(post_json(&agw, "/chat/completions", body)).await;
    assert_eq!(res.status(), 200);
    let got = &agw.mock.requests()[0];
    assert_eq!(got.uri, "/v1/chat/completions");
    let sent = json(&got.body);
    assert_eq!(sent["model"], "gpt-4o-mini", "{sent}");
    assert_eq!(
        sent["messages"][1]["content"], "card <CREDIT_CARD>",
        "{sent}"
    );
    agw.stop().await;
}

/// An upstream error after a model rewrite is blamed on the model only when the upstream names
/// it: a 404 for a path the upstream does not serve says the upstream refused the request,
/// and still says which model agw sent (real-client review: a doubled `/v1` read as a refused
/// pin).
#[tokio::test]
async fn an_error_after_a_pin_names_the_model_only_when_the_upstream_does() {
    let config = r#"
backends:
  - name: openai
    provider: openai
    api_key: sk-gateway
    model: {pin: gpt-4o-mini}
"#;
    let agw = agw_under(config, "/v1beta").await;
    let body = r#"{"model":"o3-pro","messages":[{"role":"user","content":"hi"}]}"#;
    let (res, bytes) = send(post_json(&agw, "/v1/chat/completions", body)).await;
    assert_eq!(res.status(), 404);
    let message = json(&bytes)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("the upstream refused the request (404)"),
        "{message}"
    );
    assert!(message.contains("mock: no route"), "{message}");
    assert!(
        message.contains("`gpt-4o-mini` instead of the requested `o3-pro`"),
        "{message}"
    );
    agw.stop().await;
}

#[tokio::test]
async fn openai_compatible_backend() {
    let config = r#"
backends:
  - name: local
    provider: openai_compatible
    base_url: http://127.0.0.1:1
    api_key: sk-local-gateway
    routes:
      /v1/chat/completions: Completions
      /v1/messages: Messages
      "*": Passthrough
    guards:
      request:
        - regex: ["credit card"]
          message: Rejected due to inappropriate content
"#;
    let agw = Agw::start(config).await;
    let body = r#"{"model":"qwen","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = Request::post(agw.url("/v1/chat/completions"))
        .header("authorization", "Bearer sk-client")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let (res, bytes) = send(req).await;
    assert_eq!(res.status(), 200);
    assert!(
        String::from_utf8_lossy(&bytes)
            .trim_end()
            .ends_with("data: [DONE]")
    );
    assert_eq!(
        agw.mock.requests()[0].headers["authorization"],
        "Bearer sk-local-gateway"
    );
    let bad = r#"{"model":"qwen","messages":[{"role":"user","content":"credit card"}]}"#;
    let (res, bytes) = send(json_post(&agw.url("/v1/chat/completions"), bad)).await;
    assert_eq!(res.status(), 400);
    let v = json(&bytes);
    assert_eq!(
        v["error"]["message"],
        "Rejected due to inappropriate content"
    );
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // Such servers serve Anthropic's Messages too (vLLM, llama.cpp, Ollama, LiteLLM): read as
    // Messages, a phrase split over text blocks is refused in Anthropic's shape (eighteenth
    // session's red team: read generically, it passed).
    let before = agw.mock.requests().len();
    let (res, _) = send(json_post(&agw.url("/v1/messages"), PROMPT)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(agw.mock.requests().len(), before + 1);
    let split = r#"{"model":"qwen","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"my credit "},{"type":"text","text":"card"}]}]}"#;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), split)).await;
    assert_eq!(res.status(), 400);
    let v = json(&bytes);
    assert_eq!(v["type"], "error");
    assert_eq!(agw.mock.requests().len(), before + 1);
    agw.stop().await;
}

#[tokio::test]
async fn seed_manifests_work_as_config() {
    let manifests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed/manifests-guard-pinned.yaml"
    ))
    .unwrap();
    let env = Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-seed")]);
    let agw = Agw::start_env(&manifests, env).await;
    let bad = r#"{"model":"claude-opus-4-6","messages":[{"role":"user","content":"What is a credit card"}]}"#;
    let (res, bytes) = send(json_post(&agw.url("/v1/messages?beta=true"), bad)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        json(&bytes)["error"]["message"],
        "Rejected due to inappropriate content"
    );
    let (res, _) = send(json_post(&agw.url("/v1/messages?beta=true"), PROMPT)).await;
    assert_eq!(res.status(), 200);
    let r = &agw.mock.requests()[0];
    assert_eq!(r.headers["x-api-key"], "sk-ant-seed");
    assert!(
        std::str::from_utf8(&r.body)
            .unwrap()
            .contains(r#""model":"claude-opus-4-6""#)
    );
    agw.stop().await;
}

const RESPONSE_GUARDS: &str = r#"
backends:
  - name: anthropic
    provider: anthropic
    guards:
      response_window_bytes: 64
      response:
        - name: cards
          detectors: [credit_card]
          action: mask
        - name: codename
          keywords: [project zebra]
          case_insensitive: true
          message: The reply mentioned a code name
"#;

fn sse_text(stream: &[u8]) -> String {
    String::from_utf8_lossy(stream)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn streamed_responses_are_masked_in_flight() {
    let agw = Agw::start(RESPONSE_GUARDS).await;
    let body = r#"{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"mock:echo your card 4111 1111 1111 1111 is on file"}]}"#;
    let mut req = json_post(&agw.url("/v1/messages?beta=true"), body);
    req.headers_mut()
        .insert("accept-encoding", "gzip".parse().unwrap());
    let (res, bytes) = send(req).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none());
    let text = sse_text(&bytes);
    assert_eq!(text, "mock:echo your card <CREDIT_CARD> is on file");
    let s = String::from_utf8_lossy(&bytes);
    assert!(
        s.starts_with("event: message_start\n") && s.contains("event: message_stop"),
        "{s}"
    );
    // agw asked the provider for an uncompressed stream, so it can read it.
    assert!(
        agw.mock.requests()[0]
            .headers
            .get("accept-encoding")
            .is_none()
    );
    agw.stop().await;
}

#[tokio::test]
async fn rejected_streams_end_with_an_error_event_and_the_retry_is_blocked() {
    let agw = Agw::start(RESPONSE_GUARDS).await;
    let prompt = "mock:echo the plan is called Project Zebra, keep it quiet";
    let body = format!(
        r#"{{"model":"m","max_tokens":50,"stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), &body)).await;
    assert_eq!(res.status(), 200);
    let s = String::from_utf8_lossy(&bytes);
    assert!(!s.contains("Zebra"), "{s}");
    assert!(s.contains("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"The reply mentioned a code name\"}}"), "{s}");
    assert!(!s.contains("message_stop"));
    // Claude Code retries without streaming: that answer is blocked too.
    let body = body.replace(r#""stream":true"#, r#""stream":false"#);
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), &body)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        json(&bytes)["error"]["message"],
        "The reply mentioned a code name"
    );
    agw.stop().await;
}

#[tokio::test]
async fn json_responses_are_masked_byte_faithfully() {
    let agw = Agw::start(RESPONSE_GUARDS).await;
    let body = r#"{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"mock:echo card 5555 5555 5555 4444."}]}"#;
    let direct = {
        let (_, b) = send(json_post(
            &format!("{}/v1/messages", agw.mock.base_url()),
            body,
        ))
        .await;
        b
    };
    let (res, bytes) = send(json_post(&agw.url("/v1/messages"), body)).await;
    assert_eq!(res.status(), 200);
    let norm = without_message_id;
    assert_eq!(
        norm(&bytes),
        norm(&direct).replace("5555 5555 5555 4444", "<CREDIT_CARD>")
    );
    assert_eq!(
        res.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    agw.stop().await;
}

/// When the client goes away mid-stream, agw drops the upstream request: the provider sees its
/// connection close. The provider here is a raw socket, so nothing but agw can close it.
#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", upstream.local_addr().unwrap());
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<bool>();
    tokio::spawn(async move {
        let (mut conn, _) = upstream.accept().await.unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = Vec::new();
        // Read the request head and body (small; until the JSON closes).
        while !seen.ends_with(b"}]}") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "agw closed before sending the request");
            seen.extend_from_slice(&buf[..n]);
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let event = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
        conn.write_all(format!("{:x}\r\n", event.len()).as_bytes())
            .await
            .unwrap();
        conn.write_all(event).await.unwrap();
        conn.write_all(b"\r\n").await.unwrap();
        // Hold the stream open; agw must close the connection once its client is gone.
        let closed = tokio::time::timeout(TIMEOUT, conn.read(&mut buf))
            .await
            .map(|r| matches!(r, Ok(0) | Err(_)))
            .unwrap_or(false);
        let _ = closed_tx.send(closed);
    });
    let mock = MockProvider::start().await.unwrap();
    let agw = Agw::start_raw(SEED_DEFAULT, Env::default(), Some(base), mock).await;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let res = open(json_post(&agw.url("/v1/messages"), body)).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.data_ref().is_some());
    drop(body); // The client goes away (its pooled connection is closed with the body).
    let closed = tokio::time::timeout(TIMEOUT, closed_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(
        closed,
        "the upstream connection stayed open after the client left"
    );
    agw.stop().await;
}

/// Reads from `conn` until the server closes it (or `TIMEOUT` passes, which fails).
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(TIMEOUT, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after {TIMEOUT:?}"),
        }
    }
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_but_slow_responses_are_not() {
    use tokio::io::AsyncWriteExt;
    let mock = MockProvider::start().await.unwrap();
    let base = mock.base_url();
    let idle = std::time::Duration::from_millis(300);
    let agw = Agw::start_idle(SEED_DEFAULT, Env::default(), Some(base), mock, idle).await;

    // A connection that never sends anything.
    let mut silent = tokio::net::TcpStream::connect(agw.addr).await.unwrap();
    // One that sends half a request head and stalls (slowloris).
    let mut slow = tokio::net::TcpStream::connect(agw.addr).await.unwrap();
    slow.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: agw\r\nx-a: 1\r\n")
        .await
        .unwrap();
    // A request whose response takes three idle timeouts to start: not cut off.
    let waiting = tokio::spawn(send(json_post(
        &agw.url("/v1/messages"),
        r#"{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"mock:delay_ms=900"}]}"#,
    )));

    assert!(closed_by_server(&mut silent).await.is_empty());
    assert!(closed_by_server(&mut slow).await.is_empty());
    let (res, body) = waiting.await.unwrap();
    assert_eq!(res.status(), 200, "{}", String::from_utf8_lossy(&body));

    // A keep-alive connection after a complete exchange is closed once idle.
    let mut kept = tokio::net::TcpStream::connect(agw.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: agw\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(&mut kept).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    agw.stop().await;
}
