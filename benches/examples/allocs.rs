//! Heap allocations per guard inspection:
//! `cargo run --release -p agw-benches --example allocs`.

#[path = "../common/stack.rs"]
#[allow(dead_code)] // (the SSE reply is the bench's alone)
mod setup;

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
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use tower_service::Service;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = Bytes::from(chat_2k());
    let svc = setup::stack(policy_seed(), setup::json_reply());
    // As the bench does: one stack clone per request.
    let once = || {
        rt.block_on(async {
            let mut svc = svc.clone();
            let res = svc.call(setup::request(&body)).await.unwrap();
            res.into_body().collect().await.unwrap();
        });
    };
    once();
    let region = Region::new(GLOBAL);
    once();
    let s = region.change();
    println!(
        "stack request, seed rule, chat_2k, JSON reply: {} allocations + {} reallocations, {} bytes",
        s.allocations, s.reallocations, s.bytes_allocated
    );
}
