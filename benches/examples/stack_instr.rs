//! N round trips through the stack bench's stack (benches/benches/stack.rs), for counting
//! instructions per request under callgrind (deterministic, unlike time on a shared machine):
//!
//! ```sh
//! cargo build --release -p agw-benches --example stack_instr
//! for n in 200 400; do valgrind --tool=callgrind target/release/examples/stack_instr a 2k json $n; done
//! ```
//!
//! Arguments: POLICY (`a` the seed rule, `b` all built-ins), BODY (`2k`, `76k`),
//! REPLY (`json`, `sse` — 60 events), N.

#[path = "../common/stack.rs"]
mod setup;

use agw_benches::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use setup::{json_reply, request, sse_reply, stack};
use tower_service::Service;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("stack_instr: usage: stack_instr a|b 2k|76k json|sse N (got {args:?})");
        std::process::exit(2)
    };
    let [policy, body, reply, n] = args.as_slice() else {
        usage()
    };
    let policy = match policy.as_str() {
        "a" => policy_seed(),
        "b" => policy_builtins(),
        _ => usage(),
    };
    let body = match body.as_str() {
        "2k" => Bytes::from(chat_2k()),
        "76k" => Bytes::from(claude_code_first_turn()),
        _ => usage(),
    };
    let reply = match reply.as_str() {
        "json" => json_reply(),
        "sse" => sse_reply(),
        _ => usage(),
    };
    let Ok(n) = n.parse::<usize>() else { usage() };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let svc = stack(policy, reply);
    let mut sum = 0usize;
    for _ in 0..n {
        sum += rt.block_on(async {
            // A clone per request, as the server (and the bench) does.
            let mut svc = svc.clone();
            let res = svc.call(request(&body)).await.unwrap();
            assert_eq!(res.status(), 200);
            res.into_body().collect().await.unwrap().to_bytes().len()
        });
    }
    println!("{sum}");
}
