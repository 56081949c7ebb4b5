//! Figures per round, their medians over rounds, and the Markdown table with the targets.

use std::fmt::Write;

/// The targets, in this order everywhere: the mock alone, through minproxy, through agw (the
/// built-in default), through agw for a team with the limiter in memory, and in Redis.
pub const TARGETS: usize = 5;
pub const DIRECT: usize = 0;
pub const MINPROXY: usize = 1;
pub const AGW: usize = 2;
pub const TEAM: usize = 3;
pub const TEAM_REDIS: usize = 4;

/// Targets of the main table.
const MAIN: usize = 3;

/// Latency percentiles of one target in one round, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
        }
    }
}

/// Throughput of one target in one round.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub rps: f64,
    /// CPU time of the target's own process (the mock for direct) per request, µs.
    pub cpu_us: f64,
    /// CPU the load generator used, as a share of one core.
    pub generator_load: f64,
}

/// A stream's timing of one target in one round (medians of its streams), µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streaming {
    pub ttfb: f64,
    pub total: f64,
}

/// Everything one round measured, per target.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub latency_2k: [Latency; TARGETS],
    pub latency_cc: [Latency; TARGETS],
    pub throughput_2k: [Throughput; TARGETS],
    pub throughput_cc: [Throughput; TARGETS],
    pub streaming: [Streaming; TARGETS],
    /// Median round trip of a Redis `PING` from the load generator, µs.
    pub redis_rtt: f64,
}

/// Resident memory of one proxy, bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS` right after start, before any request.
    pub idle: u64,
    /// `VmRSS` once the timed rounds are over and the proxy is quiet again.
    pub idle_after_load: u64,
    /// `VmRSS` with the held streams open, and how many were.
    pub held: u64,
    pub held_streams: usize,
    /// `VmHWM` at the end of the run.
    pub peak: u64,
}

/// All the bench found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rounds: Vec<Round>,
    /// Events in each measured stream.
    pub events: usize,
    pub concurrency: usize,
    pub minproxy: Memory,
    pub agw: Memory,
    /// `VmRSS` of the two team configurations right after start.
    pub team_idle: [u64; 2],
    /// CPU other processes on the machine used during the timed rounds, as a share of one core.
    pub other_load: f64,
    /// The bench and its servers ran under a real-time policy, ahead of other processes.
    pub realtime: bool,
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One row: a measure, the three targets' figures, the comparison, the target, and whether it
/// is met (`None`: informational).
struct Row {
    measure: String,
    cells: [String; MAIN],
    comparison: String,
    target: String,
    met: Option<bool>,
}

impl Report {
    /// Median over rounds of `f` applied to each round.
    fn med(&self, f: impl Fn(&Round) -> f64) -> f64 {
        median(self.rounds.iter().map(f))
    }

    fn latency_rows(&self, rows: &mut Vec<Row>) {
        type Pick = fn(&Round) -> &[Latency; TARGETS];
        // Per body: the most agw may add, as a multiple of what minproxy adds, at p50 and p99.
        let cases: [(&str, Pick, [Option<f64>; 2]); 2] = [
            ("2 KB chat", |r| &r.latency_2k, [Some(1.15), Some(1.25)]),
            ("80 KB Claude Code", |r| &r.latency_cc, [Some(1.3), None]),
        ];
        for (size, pick, limits) in cases {
            for (pct, limit) in ["p50", "p99"].into_iter().zip(limits) {
                let at = |r: &Round, t: usize| match pct {
                    "p50" => pick(r)[t].p50,
                    _ => pick(r)[t].p99,
                };
                let direct = self.med(|r| at(r, DIRECT));
                let added = |t: usize| self.med(|r| at(r, t) - at(r, DIRECT));
                let (min, agw) = (added(MINPROXY), added(AGW));
                let ratio = (min > 0.0).then(|| agw / min);
                rows.push(Row {
                    measure: format!("added latency {pct}, {size}, c=1"),
                    cells: [us(direct), plus_us(min), plus_us(agw)],
                    comparison: ratio.map_or("n/a".into(), times),
                    target: limit.map_or("—".into(), |l| format!("≤ {l}×")),
                    met: limit.map(|l| ratio.is_some_and(|r| r <= l)),
                });
            }
        }
    }

    fn throughput_rows(&self, rows: &mut Vec<Row>) {
        type Pick = fn(&Round) -> &[Throughput; TARGETS];
        let c = self.concurrency;
        let cases: [(&str, Pick); 2] = [
            ("2 KB chat", |r| &r.throughput_2k),
            ("80 KB Claude Code", |r| &r.throughput_cc),
        ];
        for (size, pick) in cases {
            let rps = |t: usize| self.med(|r| pick(r)[t].rps);
            let ratio = rps(AGW) / rps(MINPROXY);
            rows.push(Row {
                measure: format!("requests/s, {size}, c={c}"),
                cells: [0, 1, 2].map(|t| format!("{:.0}", rps(t))),
                comparison: times(ratio),
                target: "≥ 0.93×".into(),
                met: Some(ratio >= 0.93),
            });
        }
        for (size, pick) in cases {
            let cpu = |t: usize| self.med(|r| pick(r)[t].cpu_us);
            rows.push(Row {
                measure: format!("CPU per request of the process, {size}, c={c}"),
                cells: [0, 1, 2].map(|t| us(cpu(t))),
                comparison: times(cpu(AGW) / cpu(MINPROXY)),
                target: "—".into(),
                met: None,
            });
        }
    }

    fn streaming_rows(&self, rows: &mut Vec<Row>) {
        let direct = self.med(|r| r.streaming[DIRECT].ttfb);
        let added = |t: usize| self.med(|r| r.streaming[t].ttfb - r.streaming[DIRECT].ttfb);
        let (min, agw) = (added(MINPROXY), added(AGW));
        rows.push(Row {
            measure: "stream time to first byte, added".into(),
            cells: [us(direct), plus_us(min), plus_us(agw)],
            comparison: format!("{:+.0} µs", agw - min),
            target: "≤ minproxy + 10 µs".into(),
            met: Some(agw - min <= 10.0),
        });
        let events = self.events.max(1) as f64;
        let direct = self.med(|r| r.streaming[DIRECT].total) / events;
        let per_event =
            |t: usize| self.med(|r| r.streaming[t].total - r.streaming[DIRECT].total) / events;
        let (min, agw) = (per_event(MINPROXY), per_event(AGW));
        rows.push(Row {
            measure: format!(
                "per-event overhead (stream time added / {} events)",
                self.events
            ),
            cells: [
                format!("{direct:.1} µs"),
                format!("+{min:.1} µs"),
                format!("+{agw:.1} µs"),
            ],
            comparison: if min > 0.0 {
                times(agw / min)
            } else {
                "n/a".into()
            },
            target: "—".into(),
            met: None,
        });
    }

    fn memory_rows(&self, rows: &mut Vec<Row>) {
        rows.push(Row {
            measure: "RSS idle (VmRSS after start)".into(),
            cells: ["—".into(), mb(self.minproxy.idle), mb(self.agw.idle)],
            comparison: times(self.agw.idle as f64 / self.minproxy.idle as f64),
            target: "agw ≤ 10 MB".into(),
            met: Some(self.agw.idle <= 10 << 20),
        });
        rows.push(Row {
            measure: format!("RSS with {} open streams (VmRSS)", self.agw.held_streams),
            cells: ["—".into(), mb(self.minproxy.held), mb(self.agw.held)],
            comparison: times(self.agw.held as f64 / self.minproxy.held as f64),
            target: "agw ≤ 64 MB".into(),
            met: Some(self.agw.held <= 64 << 20 && self.agw.held_streams >= 1000),
        });
        rows.push(Row {
            measure: "RSS idle after the load / peak over the run (VmHWM)".into(),
            cells: [
                "—".into(),
                format!(
                    "{} / {}",
                    mb(self.minproxy.idle_after_load),
                    mb(self.minproxy.peak)
                ),
                format!("{} / {}", mb(self.agw.idle_after_load), mb(self.agw.peak)),
            ],
            comparison: String::new(),
            target: "—".into(),
            met: None,
        });
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        self.latency_rows(&mut rows);
        self.throughput_rows(&mut rows);
        self.streaming_rows(&mut rows);
        self.memory_rows(&mut rows);
        rows
    }

    /// The Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| measure | direct (mock) | via minproxy | via agw | agw vs minproxy | target | met |\n\
             | --- | ---: | ---: | ---: | ---: | --- | --- |\n",
        );
        for row in self.rows() {
            let [direct, min, agw] = &row.cells;
            let _ = writeln!(
                out,
                "| {} | {direct} | {min} | {agw} | {} | {} | {} |",
                row.measure,
                row.comparison,
                row.target,
                met(row.met)
            );
        }
        out
    }

    /// The Markdown table of the team configurations, against minproxy.
    pub fn team_table(&self) -> String {
        let mut out = String::from(
            "| measure | via minproxy | team, limits in memory | vs minproxy | target | met \
             | team, limits in Redis | vs minproxy | target | met |\n\
             | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | --- | --- |\n",
        );
        for row in self.team_rows() {
            let _ = write!(out, "| {} | {} |", row.measure, row.minproxy);
            for c in &row.configs {
                let _ = write!(
                    out,
                    " {} | {} | {} | {} |",
                    c.cell,
                    c.comparison,
                    c.target,
                    met(c.met)
                );
            }
            out.push('\n');
        }
        out
    }

    fn team_rows(&self) -> Vec<TeamRow> {
        let rtt = self.med(|r| r.redis_rtt);
        let mut rows = Vec::new();
        type Pick = fn(&Round) -> &[Latency; TARGETS];
        let latencies: [(&str, Pick, bool); 3] = [
            ("added latency p50, 2 KB chat, c=1", |r| &r.latency_2k, true),
            (
                "added latency p99, 2 KB chat, c=1",
                |r| &r.latency_2k,
                false,
            ),
            (
                "added latency p50, 80 KB Claude Code, c=1",
                |r| &r.latency_cc,
                true,
            ),
        ];
        for (i, (measure, pick, p50)) in latencies.into_iter().enumerate() {
            let at = |r: &Round, t: usize| {
                let l = pick(r)[t];
                if p50 { l.p50 } else { l.p99 }
            };
            let added = |t: usize| self.med(|r| at(r, t) - at(r, DIRECT));
            let min = added(MINPROXY);
            // Only the 2 KB p50 has a target (issue 11).
            let targeted = i == 0;
            let (team, redis) = (added(TEAM), added(TEAM_REDIS));
            rows.push(TeamRow {
                measure: measure.into(),
                minproxy: plus_us(min),
                configs: [
                    TeamCell {
                        cell: plus_us(team),
                        comparison: times(team / min),
                        target: if targeted { "≤ 1.2×" } else { "—" }.into(),
                        met: targeted.then_some(team / min <= 1.2),
                    },
                    TeamCell {
                        cell: plus_us(redis),
                        comparison: format!("{:+.0} µs", redis - min),
                        target: if targeted {
                            format!("≤ minproxy + RTT ({rtt:.0} µs)")
                        } else {
                            "—".into()
                        },
                        met: targeted.then_some(redis - min <= rtt),
                    },
                ],
            });
        }
        type Through = fn(&Round) -> &[Throughput; TARGETS];
        let throughputs: [(&str, Through); 2] = [
            ("2 KB chat", |r| &r.throughput_2k),
            ("80 KB Claude Code", |r| &r.throughput_cc),
        ];
        for (size, pick) in throughputs {
            let rps = |t: usize| self.med(|r| pick(r)[t].rps);
            let cell = |t: usize, limit: f64| {
                let ratio = rps(t) / rps(MINPROXY);
                TeamCell {
                    cell: format!("{:.0}", rps(t)),
                    comparison: times(ratio),
                    target: format!("≥ {limit}×"),
                    met: Some(ratio >= limit),
                }
            };
            rows.push(TeamRow {
                measure: format!("requests/s, {size}, c={}", self.concurrency),
                minproxy: format!("{:.0}", rps(MINPROXY)),
                configs: [cell(TEAM, 0.9), cell(TEAM_REDIS, 0.85)],
            });
        }
        for (size, pick) in throughputs {
            let cpu = |t: usize| self.med(|r| pick(r)[t].cpu_us);
            let cell = |t: usize| TeamCell {
                cell: us(cpu(t)),
                comparison: times(cpu(t) / cpu(MINPROXY)),
                target: "—".into(),
                met: None,
            };
            rows.push(TeamRow {
                measure: format!(
                    "CPU per request of the process, {size}, c={}",
                    self.concurrency
                ),
                minproxy: us(cpu(MINPROXY)),
                configs: [cell(TEAM), cell(TEAM_REDIS)],
            });
        }
        let ttfb = |t: usize| self.med(|r| r.streaming[t].ttfb - r.streaming[DIRECT].ttfb);
        let min = ttfb(MINPROXY);
        let cell = |t: usize, allowance: f64, target: String| TeamCell {
            cell: plus_us(ttfb(t)),
            comparison: format!("{:+.0} µs", ttfb(t) - min),
            target,
            met: Some(ttfb(t) - min <= allowance),
        };
        rows.push(TeamRow {
            measure: "stream time to first byte, added".into(),
            minproxy: plus_us(min),
            configs: [
                cell(TEAM, 10.0, "≤ minproxy + 10 µs".into()),
                cell(
                    TEAM_REDIS,
                    rtt + 10.0,
                    format!("≤ minproxy + RTT + 10 µs ({:.0} µs)", rtt + 10.0),
                ),
            ],
        });
        let info = |cell: String| TeamCell {
            cell,
            comparison: String::new(),
            target: "—".into(),
            met: None,
        };
        rows.push(TeamRow {
            measure: "Redis round trip (PING from the load generator, median)".into(),
            minproxy: "—".into(),
            configs: [info("—".into()), info(us(rtt))],
        });
        rows.push(TeamRow {
            measure: "RSS idle (VmRSS after start)".into(),
            minproxy: mb(self.minproxy.idle),
            configs: self.team_idle.map(|rss| info(mb(rss))),
        });
        rows
    }

    /// The measures whose target agw misses, in either table.
    pub fn misses(&self) -> Vec<String> {
        let main = self
            .rows()
            .into_iter()
            .filter(|r| r.met == Some(false))
            .map(|r| format!("{}: {} (target {})", r.measure, r.comparison, r.target));
        let team = self.team_rows().into_iter().flat_map(|r| {
            let measure = r.measure;
            r.configs
                .into_iter()
                .zip(["team, limits in memory", "team, limits in Redis"])
                .filter(|(c, _)| c.met == Some(false))
                .map(move |(c, config)| {
                    format!(
                        "{config}: {measure}: {} (target {})",
                        c.comparison, c.target
                    )
                })
        });
        main.chain(team).collect()
    }

    /// The load generator's busiest share of its core during the timed c=N runs against
    /// `targets`.
    pub fn generator_load(&self, targets: &[usize]) -> f64 {
        self.rounds
            .iter()
            .flat_map(|r| {
                targets
                    .iter()
                    .flat_map(|&t| [r.throughput_2k[t], r.throughput_cc[t]])
            })
            .map(|t| t.generator_load)
            .fold(0.0, f64::max)
    }
}

/// A row of the team table: a measure, minproxy's figure, and each team configuration's.
struct TeamRow {
    measure: String,
    minproxy: String,
    configs: [TeamCell; 2],
}

/// One team configuration's figure, its comparison with minproxy, the target, and whether it
/// is met (`None`: informational).
struct TeamCell {
    cell: String,
    comparison: String,
    target: String,
    met: Option<bool>,
}

fn met(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    }
}

fn us(v: f64) -> String {
    format!("{v:.0} µs")
}

fn plus_us(v: f64) -> String {
    format!("{v:+.0} µs")
}

/// Three decimals, so that a ratio shown next to its limit never looks rounded into it.
fn times(v: f64) -> String {
    format!("{v:.3}×")
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), 50.0);
        assert_eq!(percentile(&s, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
