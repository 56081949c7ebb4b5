//! The axum example works: the guard rejects before the handler runs and passes clean requests.

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
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content"}}"#
    );
}

#[tokio::test]
async fn clean_requests_reach_the_handler_unchanged() {
    let req = r#"{"messages":[{"role":"user","content":"hello"}]}"#;
    let (status, body) = call(req).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("model saw {} bytes", req.len()));
}
