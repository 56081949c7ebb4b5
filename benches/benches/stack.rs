//! The whole tower stack, request to response, with an in-memory upstream (no sockets): what
//! agw's layers cost per request on top of the guard engine — classify, request guard (collect,
//! inspect, forward), response guard (JSON inspected whole, or SSE event by event), provider
//! (upstream URI, credentials, headers) — in the order `agw serve` composes them.

use agw_benches::*;
use agw_core::api::Api;
use agw_core::guard::Policy;
use agw_core::provider::{Credentials, ProviderSpec, Secret};
use agw_core::route::RouteTable;
use agw_tower::classify::ClassifyLayer;
use agw_tower::guard::RequestGuardLayer;
use agw_tower::provider::ProviderLayer;
use agw_tower::response::ResponseGuardLayer;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A response body that yields its chunks one per poll, like a socket would.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// The upstream: reads the whole request body, answers with a canned response.
#[derive(Clone)]
struct MemoryUpstream {
    content_type: &'static str,
    chunks: Vec<Bytes>,
}

impl<B> Service<Request<B>> for MemoryUpstream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Chunks>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (content_type, chunks) = (self.content_type, self.chunks.clone());
        Box::pin(async move {
            let body = req.into_body().collect().await.expect("request body");
            assert!(!body.to_bytes().is_empty());
            let mut res = Response::new(Chunks(chunks.into()));
            res.headers_mut()
                .insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
            Ok(res)
        })
    }
}

fn json_reply() -> MemoryUpstream {
    let reply = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The function returns the parsed configuration; the tests cover the error cases."}],"stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":21}}"#;
    MemoryUpstream {
        content_type: "application/json",
        chunks: vec![Bytes::from_static(reply.as_bytes())],
    }
}

/// 60 text deltas between `message_start` and `message_stop`, one event per chunk.
fn sse_reply() -> MemoryUpstream {
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
    MemoryUpstream {
        content_type: "text/event-stream",
        chunks,
    }
}

/// The stack `agw serve` builds for one backend, over `upstream`.
fn stack(
    policy: Policy,
    upstream: MemoryUpstream,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<impl http_body::Body<Data = Bytes, Error: std::fmt::Debug> + use<>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    let routes = RouteTable::claude_code();
    let spec = ProviderSpec::anthropic()
        .with_credentials(Credentials::Inject(Secret::new("sk-ant-bench-key")));
    let limit = 32 << 20;
    let provider = ProviderLayer::new("anthropic", spec).limit(limit);
    let response = ResponseGuardLayer::new(policy.clone())
        .limit(limit)
        .routes(routes.clone());
    let guard = RequestGuardLayer::new(policy)
        .limit(limit)
        .routes(routes.clone());
    let classify = ClassifyLayer::new(routes, Api::Anthropic);
    classify.layer(guard.layer(response.layer(provider.layer(upstream))))
}

fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-ant-client-key")
        .header("user-agent", "claude-cli/2.1.332 (external, cli)")
        .body(Full::new(body.clone()))
        .unwrap()
}

fn roundtrip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bodies = [
        ("chat_2k", Bytes::from(chat_2k())),
        ("claude_code_76k", Bytes::from(claude_code_first_turn())),
    ];
    let replies = [("json", json_reply()), ("sse_60_events", sse_reply())];
    for (pname, policy) in [
        ("a_seed_rule", policy_seed()),
        ("b_all_builtins", policy_builtins()),
    ] {
        for (rname, reply) in &replies {
            let mut g = c.benchmark_group(format!("stack/{pname}/{rname}"));
            let svc = stack(policy.clone(), reply.clone());
            for (bname, body) in &bodies {
                g.throughput(Throughput::Bytes(body.len() as u64));
                g.bench_with_input(BenchmarkId::from_parameter(bname), body, |b, body| {
                    b.iter(|| {
                        rt.block_on(async {
                            // A clone per request, as the server does.
                            let mut svc = svc.clone();
                            let res = svc.call(request(body)).await.unwrap();
                            assert_eq!(res.status(), 200);
                            res.into_body().collect().await.unwrap().to_bytes().len()
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, roundtrip);
criterion_main!(benches);
