//! Heap allocations per guard inspection:
//! `cargo run --release -p agw-benches --example allocs`.

use agw_benches::*;
use agw_core::route::RouteKind;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    for (bname, body) in [
        ("chat_2k", chat_2k()),
        ("claude_code_76k", claude_code_first_turn()),
    ] {
        for (pname, policy) in [
            ("a_seed_rule", policy_seed()),
            ("b_all_builtins", policy_builtins()),
        ] {
            policy.inspect(RouteKind::Messages, &body).unwrap();
            let region = Region::new(GLOBAL);
            let v = policy.inspect(RouteKind::Messages, &body).unwrap();
            let s = region.change();
            drop(v);
            println!(
                "inspect {pname} {bname}: {} allocations + {} reallocations, {} bytes",
                s.allocations, s.reallocations, s.bytes_allocated
            );
        }
    }
    stack_allocations();
}

/// Heap allocations of one request through the stack `agw serve` builds for a backend
/// (request-id, classify, request guard, response guard, provider) over an in-memory upstream
/// with a JSON reply, body read to the end. Sockets, hyper and the access log excluded.
fn stack_allocations() {
    use agw_core::provider::{Credentials, ProviderSpec, Secret};
    use agw_core::route::RouteTable;
    use agw_tower::stack::StackConfig;
    use agw_tower::test_util::MemoryUpstream;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower_layer::Layer;
    use tower_service::Service;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let reply = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The function returns the parsed configuration."}],"stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":21}}"#;
    let spec = ProviderSpec::anthropic()
        .with_credentials(Credentials::Inject(Secret::new("sk-ant-bench-key")));
    let svc = StackConfig::new("anthropic", spec)
        .routes(RouteTable::claude_code())
        .policy(policy_seed())
        .response_policy(policy_seed())
        .layer()
        .layer(MemoryUpstream::json(reply).unrecorded());
    let body = Bytes::from(chat_2k());
    let once = |svc: &mut _| {
        let req = http::Request::post("/v1/messages")
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "sk-ant-client-key")
            .body(Full::new(body.clone()))
            .unwrap();
        rt.block_on(async {
            let svc: &mut agw_tower::stack::Stack<MemoryUpstream> = svc;
            let res = svc.clone().call(req).await.unwrap();
            res.into_body().collect().await.unwrap();
        });
    };
    let mut svc = svc;
    once(&mut svc);
    let region = Region::new(GLOBAL);
    once(&mut svc);
    let s = region.change();
    println!(
        "stack request, seed rule, chat_2k, JSON reply: {} allocations + {} reallocations, {} bytes \
         (the request itself: about 8 of them)",
        s.allocations, s.reallocations, s.bytes_allocated
    );
}
