//! The whole tower stack, request to response, with an in-memory upstream (no sockets): what
//! agw's layers cost per request on top of the guard engine — classify, request guard (collect,
//! inspect, forward), response guard (JSON inspected whole, or SSE event by event), provider
//! (upstream URI, credentials, headers) — built by the stack builder, as `agw serve` builds them.

use agw_benches::*;
use agw_core::guard::Policy;
use agw_core::provider::{Credentials, ProviderSpec, Secret};
use agw_core::route::RouteTable;
use agw_tower::stack::StackConfig;
use agw_tower::test_util::MemoryUpstream;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use tower_layer::Layer;
use tower_service::Service;

fn json_reply() -> MemoryUpstream {
    let reply = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The function returns the parsed configuration; the tests cover the error cases."}],"stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":21}}"#;
    MemoryUpstream::json(reply).unrecorded()
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
    MemoryUpstream::new("text/event-stream", chunks).unrecorded()
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
    let spec = ProviderSpec::anthropic()
        .with_credentials(Credentials::Inject(Secret::new("sk-ant-bench-key")));
    StackConfig::new("anthropic", spec)
        .routes(RouteTable::claude_code())
        .policy(policy.clone())
        .response_policy(policy)
        .layer()
        .layer(upstream)
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
        .enable_time()
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
