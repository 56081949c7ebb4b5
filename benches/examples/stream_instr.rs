//! The `stream/per_event` bench's body, N times, for counting instructions per event under
//! callgrind (deterministic, unlike time on a shared machine):
//!
//! ```sh
//! cargo build --release -p agw-benches --example stream_instr
//! for n in 20 40; do valgrind --tool=callgrind target/release/examples/stream_instr $n [hit]; done
//! ```
//!
//! (instructions at 40 − at 20) / (20 × 202) is the cost of one event.

use agw_benches::*;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let hit = std::env::args().nth(2).is_some_and(|a| a == "hit");
    let policy = policy_builtins_mask();
    let events = reply_stream(200, hit);
    let wire: Vec<u8> = events.concat();
    let total: usize = (0..n).map(|_| guard_stream(&policy, &wire)).sum();
    println!("events {} out {total}", events.len());
}
