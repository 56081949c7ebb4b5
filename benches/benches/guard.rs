//! Guard engine benchmarks: inspection throughput per body and policy, policy compilation,
//! masking, route classification, and `memchr` over the body as the physical floor.

use agw_benches::*;
use agw_core::guard::Policy;
use agw_core::route::{RouteKind, RouteTable};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("chat_2k", chat_2k()),
        ("claude_code_76k", claude_code_first_turn()),
        ("session_2m", long_session(2 << 20, false)),
    ]
}

fn policies() -> Vec<(&'static str, Policy)> {
    vec![
        ("a_seed_rule", policy_seed()),
        ("b_all_builtins", policy_builtins()),
        ("c_100_keywords", policy_keywords()),
        ("d_20_regexes", policy_regexes()),
    ]
}

fn inspect(c: &mut Criterion) {
    let bodies = bodies();
    for (pname, policy) in policies() {
        let mut g = c.benchmark_group(format!("inspect/{pname}"));
        for (bname, body) in &bodies {
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(bname), body, |b, body| {
                b.iter(|| {
                    policy
                        .inspect(RouteKind::Messages, black_box(body))
                        .unwrap()
                })
            });
        }
        g.finish();
    }
}

fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("floor/memchr");
    for (bname, body) in &bodies() {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(bname), body, |b, body| {
            b.iter(|| memchr::memchr_iter(b'\x01', black_box(body)).count())
        });
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.bench_function("a_seed_rule", |b| b.iter(policy_seed));
    g.bench_function("b_all_builtins", |b| b.iter(policy_builtins));
    g.bench_function("c_100_keywords", |b| b.iter(policy_keywords));
    g.bench_function("d_20_regexes", |b| b.iter(policy_regexes));
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask/all_builtins");
    let policy = policy_builtins_mask();
    let body = long_session(2 << 20, true);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("session_2m_with_hits", |b| {
        b.iter(|| {
            policy
                .inspect(RouteKind::Messages, black_box(&body))
                .unwrap()
        })
    });
    g.finish();
}

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream/per_event");
    let policy = policy_builtins_mask();
    for (name, hit) in [("clean", false), ("with_hit", true)] {
        let events = reply_stream(200, hit);
        let wire: Vec<u8> = events.concat();
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(format!("decode_and_guard_all_builtins/{name}"), |b| {
            b.iter(|| guard_stream(&policy, &wire))
        });
    }
    g.finish();
}

fn classify(c: &mut Criterion) {
    let t = RouteTable::claude_code();
    c.bench_function("classify/claude_code", |b| {
        b.iter(|| {
            (
                t.classify(black_box("/v1/messages?beta=true")),
                t.classify(black_box("/v1/messages/count_tokens?beta=true")),
                t.classify(black_box("/api/oauth/profile")),
            )
        })
    });
}

criterion_group!(benches, inspect, floor, compile, mask, stream, classify);
criterion_main!(benches);
