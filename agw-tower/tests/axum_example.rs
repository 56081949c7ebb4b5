//! The axum example works: the guard alone rejects before the handler runs and passes clean
//! requests; the stack-built gateway next to it guards and forwards.

#[path = "../examples/axum_guard.rs"]
#[allow(dead_code)]
mod example;

use http_body_util::BodyExt;
use tower::ServiceExt;

async fn call(body: &'static str) -> (u16, String) {
    let app = example::app(example::policy());
    let req = http::Request::post("/v1/messages")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn guard_rejects_before_the_handler() {
    let (status, body) = call(r#"{"messages":[{"role":"user","content":"my credit card"}]}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content","details":{"error_code":"dlp_request_denied"}}}"#
    );
}

#[tokio::test]
async fn clean_requests_reach_the_handler_unchanged() {
    let req = r#"{"messages":[{"role":"user","content":"hello"}]}"#;
    let (status, body) = call(req).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("model saw {} bytes", req.len()));
}

async fn call_gateway(
    path: &str,
    body: &'static str,
) -> (u16, String, Vec<agw_tower::test_util::Seen>) {
    use tower_layer::Layer;
    let upstream = agw_tower::test_util::MemoryUpstream::json(r#"{"content":[]}"#);
    let stack = example::config().layer().layer(upstream.clone());
    let router = example::gateway(example::app(example::policy()), stack);
    let req = http::Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let res = router.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(bytes.to_vec()).unwrap(),
        upstream.seen(),
    )
}

#[tokio::test]
async fn the_stack_guards_and_forwards_under_its_prefix() {
    let (status, _, seen) = call_gateway(
        "/anthropic/v1/message%73",
        r#"{"messages":[{"role":"user","content":"my credit card"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(seen.is_empty());
    let (status, body, seen) = call_gateway(
        "/anthropic/v1/messages",
        r#"{"messages":[{"role":"user","content":"hello"}]}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"content":[]}"#));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "https://api.anthropic.com/v1/messages");
    assert!(seen[0].headers.contains_key("x-request-id"));
}
