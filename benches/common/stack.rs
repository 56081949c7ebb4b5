//! The stack bench's setup, shared with the `allocs` example (`#[path]`-included: agw-tower is
//! only a dev-dependency of this package, so it cannot live in its library): the stack
//! `agw serve` builds for one backend over an in-memory upstream, its replies and its request.

use agw_core::guard::Policy;
use agw_core::provider::{Credentials, ProviderSpec, Secret};
use agw_core::route::RouteTable;
use agw_tower::stack::StackConfig;
use agw_tower::test_util::MemoryUpstream;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use tower_layer::Layer;
use tower_service::Service;

pub fn json_reply() -> MemoryUpstream {
    let reply = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The function returns the parsed configuration; the tests cover the error cases."}],"stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":21}}"#;
    MemoryUpstream::json(reply).unrecorded()
}

/// 60 text deltas between `message_start` and `message_stop`, one event per chunk.
pub fn sse_reply() -> MemoryUpstream {
    let mut chunks = vec![Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\n\n",
    )];
    for i in 0..60 {
        chunks.push(Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" the function returns {i} values when\"}}}}\n\n"
        )));
    }
    chunks.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    MemoryUpstream::new("text/event-stream", chunks).unrecorded()
}

/// The stack `agw serve` builds for one backend, over `upstream`.
pub fn stack(
    policy: Policy,
    upstream: MemoryUpstream,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug> + use<>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    let spec = ProviderSpec::anthropic()
        .with_credentials(Credentials::Inject(Secret::new("sk-ant-bench-key")));
    StackConfig::new("anthropic", spec)
        .routes(RouteTable::claude_code())
        .policy(policy.clone())
        .response_policy(policy)
        .layer()
        .layer(upstream)
}

pub fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-ant-client-key")
        .header("user-agent", "claude-cli/2.1.332 (external, cli)")
        .body(Full::new(body.clone()))
        .unwrap()
}
