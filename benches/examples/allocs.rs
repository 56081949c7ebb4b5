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
}
