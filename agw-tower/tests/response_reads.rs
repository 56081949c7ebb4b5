//! What the response guard reads, over the in-memory upstream: a body that is not the event
//! stream it claims to be, and the endpoints that give stored model output back (batch results,
//! stored responses and completions, any JSON on other paths) — both found by an audit.

use agw_core::detect::Detector;
use agw_core::guard::{Policy, Rule};
use agw_tower::response::{ResponseGuardLayer, ResponseOutcome};
use agw_tower::test_util::{MemoryUpstream, seed_policy};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;
use tower_layer::Layer;

/// The audit's body: a non-streaming Messages response, sent as `text/event-stream`.
const MESSAGE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"my credit card"}],"model":"claude-sonnet-4-5","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":4}}"#;

/// Batch results as Anthropic sends them: one JSON object per line.
const RESULTS: &str = concat!(
    r#"{"custom_id":"req-1","result":{"type":"succeeded","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"my credit card is AKIAIOSFODNN7EXAMPLE"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":8}}}}"#,
    "\n",
    r#"{"custom_id":"req-2","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}}}"#,
    "\n",
);

fn mask() -> Policy {
    Policy::builder()
        .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
        .build()
        .unwrap()
}

fn request(method: Method, path: &str, body: &'static str) -> Request<String> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .unwrap()
}

/// Status, body and the guard's outcome (if it read the response).
async fn call(
    policy: Policy,
    upstream: MemoryUpstream,
    req: Request<String>,
) -> (StatusCode, String, Option<ResponseOutcome>) {
    let svc = ResponseGuardLayer::new(policy).layer(upstream);
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let outcome = res.extensions().get::<ResponseOutcome>().cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), outcome)
}

fn chunked(content_type: &'static str, body: &str, size: usize) -> MemoryUpstream {
    let chunks = body
        .as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect();
    MemoryUpstream::new(content_type, chunks)
}

/// Found by the audit: `/v1/messages` with `"stream": false` answered with a JSON body labelled
/// `text/event-stream` was allowed and forwarded; the SDK reads it as JSON. Whether or not a
/// rule would match, the stream ends in Anthropic's error event.
#[tokio::test]
async fn a_json_body_labelled_as_an_event_stream_ends_in_an_error_event() {
    for policy in [seed_policy(), mask()] {
        for size in [7, MESSAGE.len()] {
            let req = request(
                Method::POST,
                "/v1/messages",
                r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":false,"messages":[{"role":"user","content":"hi"}]}"#,
            );
            let (status, body, outcome) = call(
                policy.clone(),
                chunked("text/event-stream", MESSAGE, size),
                req,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                body.starts_with("event: error\ndata: {\"type\":\"error\"")
                    && !body.contains("credit"),
                "{body}"
            );
            let outcome = outcome.unwrap();
            assert_eq!(outcome.action(), "reject");
            assert_eq!(&*outcome.rules()[0], "agw:unreadable");
        }
    }
    // The Responses API's own error event, for its clients.
    let req = request(
        Method::POST,
        "/v1/responses",
        r#"{"model":"gpt-5","input":"hi"}"#,
    );
    let (_, body, _) = call(seed_policy(), chunked("text/event-stream", MESSAGE, 5), req).await;
    assert!(
        body.starts_with("event: error\ndata: {\"type\":\"error\",\"code\""),
        "{body}"
    );
}

/// Found by the audit: batch results went through unread (the route was a passthrough). They
/// are read line by line whatever the content type says.
#[tokio::test]
async fn batch_results_are_read_line_by_line_whatever_their_content_type() {
    let path = "/v1/messages/batches/msgbatch_1/results";
    for ct in [
        "application/x-jsonl",
        "application/jsonl",
        "application/x-ndjson",
        "application/octet-stream",
        "application/binary",
    ] {
        let (status, body, outcome) = call(
            mask(),
            chunked(ct, RESULTS, 33),
            request(Method::GET, path, ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{ct}");
        assert_eq!(
            body,
            RESULTS.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            "{ct}"
        );
        for line in body.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(outcome.unwrap().action(), "mask");

        let (status, body, _) = call(
            seed_policy(),
            chunked(ct, RESULTS, 33),
            request(Method::GET, path, ""),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ct}");
        assert!(
            body.contains("Rejected due to inappropriate content") && !body.contains("credit card"),
            "{body}"
        );

        // A line agw cannot read: refused whole.
        let broken = format!("{RESULTS}my credit card\n");
        let (status, body, _) = call(
            mask(),
            chunked(ct, &broken, 64),
            request(Method::GET, path, ""),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{ct}");
        assert!(
            !body.contains("credit card") && !body.contains("AKIA"),
            "{body}"
        );
    }
}

/// Found by the audit: stored responses and completions, read back by id, went through unread.
#[tokio::test]
async fn stored_responses_and_completions_are_guarded() {
    let response = r#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","id":"msg_1","role":"assistant","content":[{"type":"output_text","text":"key AKIAIOSFODNN7EXAMPLE","annotations":[]}]}]}"#;
    let completion = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"key AKIAIOSFODNN7EXAMPLE"},"finish_reason":"stop"}]}"#;
    let list = r#"{"object":"list","data":[{"id":"m1","role":"assistant","content":"key AKIAIOSFODNN7EXAMPLE"}],"has_more":false}"#;
    for (path, body) in [
        ("/v1/responses/resp_1", response),
        ("/v1/responses/resp_1/input_items?limit=10", list),
        ("/v1/chat/completions/chatcmpl-1", completion),
        ("/v1/chat/completions/chatcmpl-1/messages", list),
        // Any JSON, on any other path: the walker is generic.
        ("/v1/responses/resp_1/cancel", response),
        ("/v1/some/future/store", completion),
    ] {
        let (status, out, outcome) = call(
            mask(),
            MemoryUpstream::json(body),
            request(Method::GET, path, ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            out,
            body.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>"),
            "{path}"
        );
        assert_eq!(outcome.unwrap().action(), "mask", "{path}");
    }
    // A stored response streamed again (`stream=true`) is read as a Responses stream.
    let events = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"my credit card\"}\n\n";
    let (_, out, _) = call(
        seed_policy(),
        MemoryUpstream::new("text/event-stream", vec![Bytes::from(events)]),
        request(Method::GET, "/v1/responses/resp_1?stream=true", ""),
    )
    .await;
    assert!(
        out.starts_with("event: error\ndata: {\"type\":\"error\",\"code\""),
        "{out}"
    );
    // Where model output is expected, a body agw cannot read is refused.
    let (status, _, _) = call(
        mask(),
        MemoryUpstream::new("text/plain", vec![Bytes::from("key AKIAIOSFODNN7EXAMPLE")]),
        request(Method::GET, "/v1/responses/resp_1", ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

/// Found by a security review (for requests; responses share the decoder): a provider's
/// response with two codings is read, one with more fails closed with 502.
#[tokio::test]
async fn responses_with_more_than_two_codings_are_refused() {
    use std::io::Write;
    let completion = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"key AKIAIOSFODNN7EXAMPLE"},"finish_reason":"stop"}]}"#;
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let twice = Bytes::from(gzip(&gzip(completion.as_bytes())));
    let thrice = Bytes::from(gzip(&twice));
    let upstream = |coding: &'static str, body: &Bytes| {
        MemoryUpstream::new("application/json", vec![body.clone()])
            .header("content-encoding", coding)
    };
    let path = "/v1/chat/completions/chatcmpl-1";
    let (status, out, _) = call(
        mask(),
        upstream("gzip, identity, gzip", &twice),
        request(Method::GET, path, ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        out,
        completion.replace("AKIAIOSFODNN7EXAMPLE", "<AWS_ACCESS_KEY>")
    );
    let (status, out, outcome) = call(
        mask(),
        upstream("gzip, gzip, gzip", &thrice),
        request(Method::GET, path, ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{out}");
    assert!(
        out.contains("3 stacked content-encodings, more than the 2 agw decodes"),
        "{out}"
    );
    assert_eq!(outcome.unwrap().action(), "reject");
}

/// A compressed response that was read goes to the client as it was inspected: decoded,
/// without its coding (found by a black-box review for requests: bytes another decoder reads
/// differently, a deflate body valid as zlib and as raw deflate, went on as received).
#[tokio::test]
async fn a_read_compressed_response_goes_on_decoded() {
    use std::io::Write;
    let completion = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"nothing secret"},"finish_reason":"stop"}]}"#;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(completion.as_bytes()).unwrap();
    let gz = Bytes::from(e.finish().unwrap());
    let upstream =
        MemoryUpstream::new("application/json", vec![gz]).header("content-encoding", "gzip");
    let svc = ResponseGuardLayer::new(mask()).layer(upstream);
    let res = svc
        .oneshot(request(Method::GET, "/v1/chat/completions/chatcmpl-1", ""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(
        res.headers()["content-length"],
        completion.len().to_string()
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, completion.as_bytes());
}

/// A provider's response labelled with a charset other than UTF-8 cannot be read as the client
/// reads it (a client honouring `charset=utf-7` reads `+AGM-redit card` as `credit card`): it
/// fails closed, JSON and streams alike (black-box review).
#[tokio::test]
async fn a_response_in_a_charset_other_than_utf8_is_refused() {
    let json = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"my +AGM-redit card"},"finish_reason":"stop"}]}"#;
    let upstream = MemoryUpstream::new(
        "application/json; charset=utf-7",
        vec![Bytes::from_static(json.as_bytes())],
    );
    let (status, out, _) = call(
        seed_policy(),
        upstream,
        request(Method::GET, "/v1/chat/completions/chatcmpl-1", ""),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{out}");
    assert!(out.contains("is not UTF-8"), "{out}");
    let sse =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"my +AGM-redit card\"}}]}\n\n";
    let upstream = MemoryUpstream::new(
        "text/event-stream; charset=utf-7",
        vec![Bytes::from_static(sse.as_bytes())],
    );
    let (_, out, _) = call(
        seed_policy(),
        upstream,
        request(
            Method::POST,
            "/v1/chat/completions",
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    )
    .await;
    assert!(!out.contains("AGM"), "{out}");
    assert!(out.contains("is not UTF-8"), "{out}");
}

/// Embeddings answer with vectors, which pass unread; an error on the route is read as any
/// error is (black-box review: an upstream's error reached the client unread).
#[tokio::test]
async fn embeddings_errors_are_read_and_vectors_pass() {
    let error = r#"{"error":{"message":"bad input: key AKIAIOSFODNN7EXAMPLE","type":"invalid_request_error"}}"#;
    let upstream = MemoryUpstream::new(
        "application/json",
        vec![Bytes::from_static(error.as_bytes())],
    )
    .status(StatusCode::BAD_REQUEST);
    let body = r#"{"model":"e","input":"hi"}"#;
    let (status, out, _) = call(
        mask(),
        upstream,
        request(Method::POST, "/v1/embeddings", body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        !out.contains("AKIA") && out.contains("<AWS_ACCESS_KEY>"),
        "{out}"
    );
    // A success is vectors: forwarded as it came, whatever it holds.
    let vectors = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"AKIAIOSFODNN7EXAMPLE"}"#;
    let upstream = MemoryUpstream::new(
        "application/json",
        vec![Bytes::from_static(vectors.as_bytes())],
    );
    let (status, out, _) = call(
        mask(),
        upstream,
        request(Method::POST, "/v1/embeddings", body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out, vectors);
}

/// A body that yields one chunk and then waits: only what is forwarded unbuffered arrives.
struct FirstThenWait(Option<Bytes>);

impl http_body::Body for FirstThenWait {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

/// Model listings and JSON on other paths are read; file downloads and embeddings are not.
#[tokio::test]
async fn models_are_read_files_pass_untouched_and_unbuffered() {
    let models = r#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}"#;
    let (status, out, outcome) = call(
        mask(),
        MemoryUpstream::json(models),
        request(Method::GET, "/v1/models?limit=1000", ""),
    )
    .await;
    assert_eq!((status, out.as_str()), (StatusCode::OK, models));
    assert_eq!(outcome.unwrap().action(), "allow");

    // A binary download: the same bytes, no outcome (not read).
    let file: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let chunks = file.chunks(1000).map(Bytes::copy_from_slice).collect();
    let svc = ResponseGuardLayer::new(mask())
        .layer(MemoryUpstream::new("application/octet-stream", chunks));
    let res = svc
        .oneshot(request(Method::GET, "/v1/files/file_1/content", ""))
        .await
        .unwrap();
    assert!(res.extensions().get::<ResponseOutcome>().is_none());
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), file);

    // Unbuffered: the first chunk arrives while the upstream is still sending.
    let upstream = tower::service_fn(|_req: Request<String>| async {
        let res = http::Response::builder()
            .header("content-type", "application/pdf")
            .body(FirstThenWait(Some(Bytes::from_static(b"%PDF-1.7"))))
            .unwrap();
        Ok::<_, std::convert::Infallible>(res)
    });
    let svc = ResponseGuardLayer::new(mask()).layer(upstream);
    let res = svc
        .oneshot(request(Method::GET, "/v1/files/file_1/content", ""))
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first chunk is forwarded before the body ends")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "%PDF-1.7");

    // Embeddings carry vectors, no text; a HEAD response no body; an empty body nothing.
    let vectors = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AKIAIOSFODNN7EXAMPLE"}]}"#;
    let (_, out, outcome) = call(
        mask(),
        MemoryUpstream::json(vectors),
        request(Method::POST, "/v1/embeddings", r#"{"input":"x"}"#),
    )
    .await;
    assert_eq!(out, vectors);
    assert!(outcome.is_none());
    let svc = ResponseGuardLayer::new(mask()).layer(MemoryUpstream::json(""));
    let res = svc
        .oneshot(
            Request::head("/v1/some/thing")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(res.extensions().get::<ResponseOutcome>().is_none());
    let (status, out, _) = call(
        mask(),
        MemoryUpstream::json("").status(StatusCode::NO_CONTENT),
        request(Method::DELETE, "/v1/some/thing", ""),
    )
    .await;
    assert_eq!((status, out.as_str()), (StatusCode::NO_CONTENT, ""));
}
