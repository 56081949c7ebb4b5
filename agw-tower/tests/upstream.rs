//! The upstream client against misbehaving servers on 127.0.0.1: failure causes told apart,
//! silent and cut streams ended with an error event in the client's dialect.

use agw_core::api::Api;
use agw_core::route::RouteKind;
use agw_tower::classify::Classified;
use agw_tower::upstream::{Upstream, UpstreamConfig, UpstreamFailure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves each connection with `script` (bounded: the test ends, the task is dropped).
async fn server<F, Fut>(script: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(script(s));
        }
    });
    addr.to_string()
}

async fn read_head(s: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

fn request(url: String, api: Api, kind: RouteKind) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post(url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    req.extensions_mut().insert(Classified {
        kind,
        api,
        upstream: api,
    });
    req
}

fn upstream(config: UpstreamConfig) -> Upstream<Full<Bytes>> {
    Upstream::new(config).unwrap()
}

async fn failure(url: String, config: UpstreamConfig) -> (u16, String, UpstreamFailure) {
    let res = upstream(config)
        .oneshot(request(url, Api::Anthropic, RouteKind::Messages))
        .await
        .unwrap();
    let failure = *res.extensions().get::<UpstreamFailure>().unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), failure)
}

#[tokio::test]
async fn refused_connections_are_named() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (status, body, why) = failure(
        format!("http://{addr}/v1/messages"),
        UpstreamConfig::new("up"),
    )
    .await;
    assert_eq!((status, why), (502, UpstreamFailure::Refused));
    assert!(
        body.contains("upstream `up`: the connection was refused"),
        "{body}"
    );
}

#[tokio::test]
async fn tls_failures_are_named() {
    // A plain HTTP server answers the TLS client hello.
    let addr = server(|mut s| async move {
        let mut hello = [0u8; 512];
        let _ = s.read(&mut hello).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    })
    .await;
    let mut config = UpstreamConfig::new("up");
    config.response_timeout = Duration::from_secs(20);
    let (status, body, why) = failure(format!("https://{addr}/v1/messages"), config).await;
    assert_eq!((status, why), (502, UpstreamFailure::Tls), "{body}");
    assert!(body.contains("TLS handshake failed"), "{body}");
}

#[tokio::test]
async fn resets_are_named() {
    let addr = server(|mut s| async move {
        read_head(&mut s).await;
        drop(s);
    })
    .await;
    let (status, body, why) = failure(
        format!("http://{addr}/v1/messages"),
        UpstreamConfig::new("up"),
    )
    .await;
    assert_eq!((status, why), (502, UpstreamFailure::Reset), "{body}");
}

#[tokio::test]
async fn silent_upstreams_time_out() {
    let addr = server(|mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let mut config = UpstreamConfig::new("up");
    config.response_timeout = Duration::from_millis(50);
    let (status, _, why) = failure(format!("http://{addr}/v1/messages"), config).await;
    assert_eq!((status, why), (504, UpstreamFailure::ResponseTimeout));
}

const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
const EVENT: &str = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";

fn chunk(s: &str) -> Vec<u8> {
    format!("{:x}\r\n{s}\r\n", s.len()).into_bytes()
}

async fn stream_body(addr: &str, api: Api, kind: RouteKind, idle: Duration) -> String {
    let mut config = UpstreamConfig::new("up");
    config.stream_idle_timeout = Some(idle);
    let res = upstream(config)
        .oneshot(request(format!("http://{addr}/v1/x"), api, kind))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_an_error_event_in_the_clients_dialect() {
    let addr = server(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(SSE_HEAD).await;
        let _ = s.write_all(&chunk(EVENT)).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let body = stream_body(
        &addr,
        Api::Anthropic,
        RouteKind::Messages,
        Duration::from_millis(30),
    )
    .await;
    assert!(body.starts_with(EVENT), "{body}");
    let tail = &body[EVENT.len()..];
    assert!(
        tail.starts_with("event: error\ndata: {\"type\":\"error\""),
        "{tail}"
    );
    assert!(tail.contains("went silent"), "{tail}");
    let body = stream_body(
        &addr,
        Api::OpenAi,
        RouteKind::Completions,
        Duration::from_millis(30),
    )
    .await;
    assert!(
        body[EVENT.len()..].starts_with("data: {\"error\":"),
        "{body}"
    );
    let body = stream_body(
        &addr,
        Api::OpenAi,
        RouteKind::Responses,
        Duration::from_millis(30),
    )
    .await;
    assert!(
        body[EVENT.len()..].starts_with("event: error\ndata: {\"type\":\"error\",\"code\""),
        "{body}"
    );
}

#[tokio::test]
async fn a_stream_the_upstream_cuts_ends_with_an_error_event() {
    let addr = server(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(SSE_HEAD).await;
        let _ = s.write_all(&chunk(EVENT)).await;
        let _ = s.flush().await;
        drop(s); // no terminating chunk
    })
    .await;
    let body = stream_body(
        &addr,
        Api::Anthropic,
        RouteKind::Messages,
        Duration::from_secs(30),
    )
    .await;
    let tail = &body[EVENT.len()..];
    assert!(tail.starts_with("event: error\n"), "{body}");
    assert!(tail.contains("the connection was reset"), "{tail}");
}

#[tokio::test]
async fn a_silent_json_body_ends_with_an_error() {
    let addr = server(|mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let mut config = UpstreamConfig::new("up");
    config.stream_idle_timeout = Some(Duration::from_millis(30));
    let res = upstream(config)
        .oneshot(request(
            format!("http://{addr}/v1/x"),
            Api::Anthropic,
            RouteKind::Messages,
        ))
        .await
        .unwrap();
    let err = res.into_body().collect().await.unwrap_err();
    assert!(err.to_string().contains("went silent"), "{err}");
}

/// Found by the twelfth session's black-box review: an upstream echoing `x-api-key` showed the
/// key agw injects to every client, and a refused gateway key showed developers a 401 about
/// a key they never sent. A header carrying the injected key and the provider's cookies are
/// dropped; a 401 becomes agw's 400 naming the backend, the upstream's body unread. Without
/// an injected key, nothing changes.
#[tokio::test]
async fn responses_never_carry_the_injected_key_back() {
    const KEY: &str = "sk-ant-api03-GATEWAYKEY0123456789abcdef";
    let addr = server(|mut s| async move {
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        // Whether the request asked for compressed bodies (said in every answer).
        let asked = head.to_ascii_lowercase().contains("accept-encoding");
        if head.starts_with("POST /gzipped") {
            // Compressed whatever was asked.
            let body = format!("asked={asked} {KEY}");
            let reply = format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-encoding: gzip\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
            return;
        }
        if head.starts_with("POST /switching") {
            let _ = s
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                .await;
            return;
        }
        if head.starts_with("POST /transfer-gzipped") {
            // Compressed in transfer: hyper takes the chunks apart and passes the rest on.
            let body = format!("{KEY} {KEY}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
            return;
        }
        let (status, body) = if head.starts_with("POST /refused") {
            (
                "401 Unauthorized",
                format!("{{\"error\":\"invalid x-api-key: {KEY}\"}}"),
            )
        } else if head.starts_with("POST /forbidden") {
            (
                "403 Forbidden",
                format!("{{\"error\":\"key {KEY} lacks scope; {KEY}\"}}"),
            )
        } else if head.starts_with("POST /echo") {
            // A debug answer with the key, and with all but its last characters.
            (
                "200 OK",
                format!(
                    "{{\"key\":\"{KEY}\",\"cut\":\"{}\"}}",
                    &KEY[..KEY.len() - 6]
                ),
            )
        } else {
            ("200 OK", "{}".to_owned())
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-echo-api-key: {KEY}\r\n\
             set-cookie: __cf_bm=abc\r\nrequest-id: req_1\r\nx-asked-encoding: {asked}\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        // In two writes, the last key cut in the middle: the body comes in two frames.
        let cut = reply.rfind(KEY).map_or(reply.len(), |at| at + 10);
        let _ = s.write_all(&reply.as_bytes()[..cut]).await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = s.write_all(&reply.as_bytes()[cut..]).await;
    })
    .await;
    let spec = agw_core::provider::ProviderSpec::anthropic().with_credentials(
        agw_core::provider::Credentials::Inject(agw_core::provider::Secret::new(KEY)),
    );
    let injecting = UpstreamConfig::new("anthropic").injecting(&spec);
    let passthrough = UpstreamConfig::new("anthropic");
    let send = |config: UpstreamConfig, path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            let mut req = request(url, Api::Anthropic, RouteKind::Messages);
            req.headers_mut()
                .insert("accept-encoding", "gzip, br".parse().unwrap());
            let res = upstream(config).oneshot(req).await.unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let head = format!("{:?}", parts.headers);
            (
                parts.status.as_u16(),
                head,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    let (status, head, body) = send(injecting.clone(), "/ok").await;
    assert_eq!(status, 200);
    assert!(!head.contains(KEY) && !head.contains("__cf_bm"), "{head}");
    // Bodies asked for uncompressed, where the key could be looked for.
    assert!(head.contains(r#""x-asked-encoding": "false""#), "{head}");
    assert!(head.contains("req_1"), "{head}");
    assert_eq!(body, "{}");
    let (status, head, body) = send(injecting.clone(), "/refused").await;
    assert_eq!(status, 400, "{body}");
    assert!(!head.contains(KEY) && !body.contains(KEY), "{head} {body}");
    assert!(
        body.contains("refused the API key") && body.contains("`anthropic`"),
        "{body}"
    );
    // A compressed error body cannot be searched: its status stays, its body is agw's.
    let (status, head, body) = send(injecting.clone(), "/gzipped").await;
    assert_eq!(status, 429, "{body}");
    assert!(!head.contains(KEY) && !body.contains(KEY), "{head} {body}");
    assert!(body.contains("compressed body"), "{body}");
    // Any other error: the key taken out of the body, wherever its frames cut it.
    let (status, head, body) = send(injecting.clone(), "/forbidden").await;
    assert_eq!(status, 403, "{body}");
    assert!(!head.contains(KEY) && !body.contains(KEY), "{head} {body}");
    let stars = "*".repeat(KEY.len());
    assert_eq!(
        body,
        format!(r#"{{"error":"key {stars} lacks scope; {stars}"}}"#)
    );
    // A success too (twenty-fifth session's red team: a 200 gave the key back), with an echo
    // cut short; the body keeps its length.
    let (status, head, body) = send(injecting.clone(), "/echo").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !head.contains(KEY) && !body.contains(&KEY[..16]),
        "{head} {body}"
    );
    assert_eq!(
        body,
        format!(r#"{{"key":"{stars}","cut":"{}"}}"#, &stars[6..])
    );
    // An upgrade agw never asked for is no answer: agw's 502, with a body.
    for config in [injecting.clone(), passthrough.clone()] {
        let (status, _, body) = send(config, "/switching").await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("no answer to the request"), "{body}");
    }
    // Compressed in transfer, a success cannot be searched either: agw's 502.
    let (status, head, body) = send(injecting.clone(), "/transfer-gzipped").await;
    assert_eq!(status, 502, "{head} {body}");
    assert!(
        !body.contains(KEY) && body.contains("compressed body"),
        "{body}"
    );
    // The client's own key (passthrough) is the client's: its 401 is its to see.
    let (status, head, body) = send(passthrough, "/refused").await;
    assert_eq!(status, 401, "{body}");
    assert!(head.contains("__cf_bm"), "{head}");
    assert!(head.contains(r#""x-asked-encoding": "true""#), "{head}");
}
