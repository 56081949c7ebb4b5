//! N inspections of one bench body with one policy, for counting instructions per inspection
//! under callgrind (deterministic, unlike time on a shared machine):
//!
//! ```sh
//! cargo build --release -p agw-benches --example inspect_instr
//! for n in 200 400; do valgrind --tool=callgrind target/release/examples/inspect_instr $n 2k a; done
//! ```
//!
//! Bodies `2k`, `76k`, `2m`; policies `a` (the seed rule), `b` (all built-ins), `c` (the seed
//! rule as agw's configuration builds it: look-alike letters on), `d` (`c`, case-insensitive).

use agw_benches::*;
use agw_core::guard::{Policy, Rule};
use agw_core::route::RouteKind;

/// The seed rule with look-alike letters (as `credit card` gets them by default in a config).
fn seed_confusables(case_insensitive: bool) -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .confusables(true)
                .case_insensitive(case_insensitive)
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let body = match args.next().as_deref() {
        Some("76k") => claude_code_first_turn(),
        Some("2m") => long_session(2 << 20, false),
        _ => chat_2k(),
    };
    let policy = match args.next().as_deref() {
        Some("b") => policy_builtins(),
        Some("c") => seed_confusables(false),
        Some("d") => seed_confusables(true),
        _ => policy_seed(),
    };
    let mut hits = 0;
    for _ in 0..n {
        hits += policy
            .inspect(RouteKind::Messages, &body)
            .unwrap()
            .hits()
            .len();
    }
    println!("{hits}");
}
