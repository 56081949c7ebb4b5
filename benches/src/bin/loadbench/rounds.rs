//! What the rounds measure and with what: the load plan, the request bodies, the checks and
//! warm-up before the rounds, one round, and the soak mode for profilers.

use std::time::Duration;

use bytes::Bytes;

use crate::load::{self, Body, SERIAL_MARK, Target};
use crate::procs::{self, Server};
use crate::report::{self, AGW, Latency, Round, Streaming, TARGETS, TEAM, TEAM_REDIS, Throughput};

/// Redis `PING`s timed per round.
const PINGS: usize = 300;

/// Concurrency of the throughput runs.
pub const CONCURRENCY: usize = 32;

/// How much load each round applies.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Latency at c=1: blocks of `per_block` requests, cycling the targets block by block.
    latency_2k_blocks: usize,
    latency_cc_blocks: usize,
    per_block: usize,
    /// Throughput: slices of `slice` per target, cycling the targets slice by slice.
    slices: usize,
    slice: Duration,
    /// Streams: blocks of `per_block / 4` streams.
    stream_blocks: usize,
}

impl Plan {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                latency_2k_blocks: 6,
                latency_cc_blocks: 3,
                per_block: 100,
                slices: 1,
                slice: Duration::from_millis(500),
                stream_blocks: 3,
            }
        } else {
            Self {
                latency_2k_blocks: 30,
                latency_cc_blocks: 15,
                per_block: 100,
                slices: 3,
                slice: Duration::from_secs(1),
                stream_blocks: 12,
            }
        }
    }
}

/// The request bodies, built once.
#[derive(Debug)]
pub struct Bodies {
    pub chat_2k: Body,
    pub claude_code: Body,
    /// A 2 KB chat whose reply streams back in many events.
    pub stream: Body,
    /// A 2 KB chat whose stream the mock holds open after its first text delta.
    pub hold: Body,
    /// A 2 KB chat the default policy rejects.
    pub reject: Body,
}

impl Bodies {
    /// Each body but the rejected one ends in a prompt with [`SERIAL_MARK`]: every request is
    /// the same conversation with a new final prompt, as a client's next turn is.
    pub fn new() -> Self {
        let chat = agw_benches::chat_2k();
        let next = format!(r#"{{"role":"user","content":"And what comes next? {SERIAL_MARK}"}}"#);
        let echo = format!(
            r#"{{"role":"user","content":"Repeat after me {SERIAL_MARK}, mock:echo {}"}}"#,
            "the quick brown fox jumps over the lazy dog "
                .repeat(12)
                .trim_end()
        );
        let prompt = "fix the failing test.";
        let claude_code = String::from_utf8(agw_benches::claude_code_first_turn())
            .expect("the bench bodies are UTF-8")
            .replacen(prompt, &format!("fix the failing test {SERIAL_MARK}."), 1);
        assert!(
            claude_code.contains(SERIAL_MARK),
            "the first turn's prompt moved"
        );
        Self {
            chat_2k: Body::new(amend(&chat, Some(&next), false)),
            claude_code: Body::new(amend(claude_code.as_bytes(), None, false)),
            stream: Body::new(amend(&chat, Some(&echo), true)),
            hold: Body::new(amend(
                &chat,
                Some(&format!(
                    r#"{{"role":"user","content":"Wait for it {SERIAL_MARK}. mock:hold"}}"#
                )),
                true,
            )),
            reject: Body::new(amend(
                &chat,
                Some(r#"{"role":"user","content":"My credit card is on file."}"#),
                false,
            )),
        }
    }
}

/// `body` (a Messages request ending in its `messages` array) with one more message and the
/// `stream` flag; the original bytes are kept as they are.
fn amend(body: &[u8], message: Option<&str>, stream: bool) -> Bytes {
    let head = body
        .strip_suffix(b"]}")
        .expect("the bench bodies end with the messages array");
    let mut out = head.to_vec();
    if let Some(message) = message {
        out.push(b',');
        out.extend_from_slice(message.as_bytes());
    }
    out.extend_from_slice(format!(r#"],"stream":{stream}}}"#).as_bytes());
    Bytes::from(out)
}

/// Load on one proxy alone, one line per second, for a profiler to watch.
#[derive(Debug)]
pub struct Soak {
    /// `2k` or `cc` (the Claude Code first turn).
    pub body: String,
    /// `AGW`, `MINPROXY` or `DIRECT`.
    pub via: usize,
    pub concurrency: usize,
    pub duration: Duration,
}

impl Soak {
    pub async fn run(
        &self,
        target: &Target,
        proxy: &Server,
        bodies: &Bodies,
    ) -> Result<(), String> {
        let body = match self.body.as_str() {
            "2k" => &bodies.chat_2k,
            _ => &bodies.claude_code,
        };
        eprintln!(
            "loadbench: {} pid {}: {} byte body at c={} for {} s",
            proxy.name,
            proxy.pid(),
            body.len(),
            self.concurrency,
            self.duration.as_secs()
        );
        for second in 0..self.duration.as_secs() {
            let cpu = proxy.cpu_seconds()?;
            let (n, took) = target
                .saturate(body, self.concurrency, Duration::from_secs(1))
                .await?;
            let seconds = took.as_secs_f64();
            let cpu = proxy.cpu_seconds()? - cpu;
            eprintln!(
                "loadbench: {:>4} s: {:.0} requests/s, {} {:.0}% of a core, {:.1} µs CPU per request",
                second + 1,
                n as f64 / seconds,
                proxy.name,
                cpu * 100.0 / seconds,
                cpu * 1e6 / n.max(1) as f64
            );
        }
        Ok(())
    }
}

/// Every target answers; every agw's policy is live (it rejects the seed's phrase); the team
/// configurations refuse a wrong key and count the request against a limit.
pub async fn check(targets: &[Target; TARGETS], bodies: &Bodies) -> Result<(), String> {
    for target in targets {
        target.request(&bodies.chat_2k).await?;
        target.request(&bodies.claude_code).await?;
    }
    for t in [AGW, TEAM, TEAM_REDIS] {
        let name = targets[t].name;
        match targets[t].request(&bodies.reject).await {
            Err(e)
                if e.contains("status 400")
                    && e.contains("Rejected due to inappropriate content") => {}
            Err(e) => return Err(format!("{name}'s policy did not reject as expected: {e}")),
            Ok(_) => {
                return Err(format!(
                    "{name} forwarded a body its policy must reject; is the guard on?"
                ));
            }
        }
    }
    for t in [TEAM, TEAM_REDIS] {
        let target = &targets[t];
        match target
            .with_key("agw_loadbench_wrong")
            .request(&bodies.chat_2k)
            .await
        {
            Err(e) if e.contains("status 401") => {}
            Err(e) => return Err(format!("{}: a wrong key: {e}", target.name)),
            Ok(_) => return Err(format!("{} let a wrong key through", target.name)),
        }
        let limit = "x-agw-ratelimit-requests-limit";
        if target.header(&bodies.chat_2k, limit).await?.is_none() {
            return Err(format!(
                "{}: no {limit} header; is the limiter on?",
                target.name
            ));
        }
    }
    Ok(())
}

/// Fills the connection pools (also agw's and minproxy's upstream pools) and the allocators;
/// returns the number of events in the measured stream.
pub async fn warm_up(targets: &[Target; TARGETS], bodies: &Bodies) -> Result<usize, String> {
    let mut events = None;
    for target in targets {
        for _ in 0..200 {
            target.request(&bodies.chat_2k).await?;
        }
        for _ in 0..50 {
            target.request(&bodies.claude_code).await?;
        }
        target
            .saturate(&bodies.chat_2k, CONCURRENCY, Duration::from_millis(300))
            .await?;
        for _ in 0..20 {
            let n = target.stream(&bodies.stream).await?.events;
            if *events.get_or_insert(n) != n {
                return Err(format!(
                    "{} streamed {n} events, expected {events:?}",
                    target.name
                ));
            }
        }
    }
    events.ok_or_else(|| "no stream measured".into())
}

pub async fn measure_round(
    targets: &[Target; TARGETS],
    servers: &[Server; TARGETS],
    bodies: &Bodies,
    plan: &Plan,
    order: [usize; TARGETS],
    events: usize,
    redis: &str,
) -> Result<Round, String> {
    Ok(Round {
        redis_rtt: report::median(load::redis_pings(redis, PINGS).await?),
        latency_2k: latency(
            targets,
            order,
            &bodies.chat_2k,
            plan.latency_2k_blocks,
            plan.per_block,
        )
        .await?,
        latency_cc: latency(
            targets,
            order,
            &bodies.claude_code,
            plan.latency_cc_blocks,
            plan.per_block,
        )
        .await?,
        throughput_2k: throughput(targets, servers, order, &bodies.chat_2k, plan).await?,
        throughput_cc: throughput(targets, servers, order, &bodies.claude_code, plan).await?,
        streaming: streaming(targets, order, &bodies.stream, plan, events).await?,
    })
}

async fn latency(
    targets: &[Target; TARGETS],
    order: [usize; TARGETS],
    body: &Body,
    blocks: usize,
    per_block: usize,
) -> Result<[Latency; TARGETS], String> {
    let mut samples: [Vec<f64>; TARGETS] = Default::default();
    for _ in 0..blocks {
        for t in order {
            for _ in 0..per_block {
                samples[t].push(micros(targets[t].request(body).await?));
            }
        }
    }
    Ok(samples.map(Latency::of))
}

async fn throughput(
    targets: &[Target; TARGETS],
    servers: &[Server; TARGETS],
    order: [usize; TARGETS],
    body: &Body,
    plan: &Plan,
) -> Result<[Throughput; TARGETS], String> {
    let mut requests = [0u64; TARGETS];
    let mut elapsed = [Duration::ZERO; TARGETS];
    let mut cpu = [0f64; TARGETS];
    let mut generator = [0f64; TARGETS];
    for _ in 0..plan.slices {
        for t in order {
            let (server_before, self_before) =
                (servers[t].cpu_seconds()?, procs::cpu_seconds("self")?);
            let (n, took) = targets[t].saturate(body, CONCURRENCY, plan.slice).await?;
            cpu[t] += servers[t].cpu_seconds()? - server_before;
            generator[t] += procs::cpu_seconds("self")? - self_before;
            requests[t] += n;
            elapsed[t] += took;
        }
    }
    Ok(std::array::from_fn(|t| {
        let seconds = elapsed[t].as_secs_f64();
        Throughput {
            rps: requests[t] as f64 / seconds,
            cpu_us: cpu[t] * 1e6 / requests[t].max(1) as f64,
            generator_load: generator[t] / seconds,
        }
    }))
}

async fn streaming(
    targets: &[Target; TARGETS],
    order: [usize; TARGETS],
    body: &Body,
    plan: &Plan,
    events: usize,
) -> Result<[Streaming; TARGETS], String> {
    let mut ttfb: [Vec<f64>; TARGETS] = Default::default();
    let mut total: [Vec<f64>; TARGETS] = Default::default();
    for _ in 0..plan.stream_blocks {
        for t in order {
            for _ in 0..plan.per_block / 4 {
                let s = targets[t].stream(body).await?;
                if s.events != events {
                    return Err(format!(
                        "{} streamed {} events, expected {events}",
                        targets[t].name, s.events
                    ));
                }
                ttfb[t].push(micros(s.ttfb));
                total[t].push(micros(s.total));
            }
        }
    }
    Ok(std::array::from_fn(|t| Streaming {
        ttfb: report::median(ttfb[t].iter().copied()),
        total: report::median(total[t].iter().copied()),
    }))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
