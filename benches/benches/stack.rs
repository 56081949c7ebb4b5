//! The whole tower stack, request to response, with an in-memory upstream (no sockets): what
//! agw's layers cost per request on top of the guard engine — classify, request guard (collect,
//! inspect, forward), response guard (JSON inspected whole, or SSE event by event), provider
//! (upstream URI, credentials, headers) — built by the stack builder, as `agw serve` builds them.

#[path = "../common/stack.rs"]
mod setup;

use agw_benches::*;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use setup::{json_reply, request, sse_reply, stack};
use tower_service::Service;

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
