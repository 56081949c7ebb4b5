//! The exposition as a scraper reads it (black-box review: labels without a length cap,
//! empty identity labels on every series, a token counter that went down).

use super::*;
use crate::auth::{Identity, IdentityKind};
use agw_core::usage::Usage;

fn report(identity: Option<Identity>, output: u64) -> UsageReport {
    UsageReport {
        identity,
        backend: Some("b".into()),
        provider: Some("anthropic".into()),
        route: RouteKind::Messages,
        api: agw_core::api::Api::Anthropic,
        status: http::StatusCode::OK,
        request_model: Some("m".to_owned()),
        response_model: None,
        usage: Some(Usage {
            input: 1,
            output,
            cache_write: 0,
            cache_read: 0,
        }),
        cost_micros: Some(1),
        estimate: None,
        estimated_cost_micros: None,
        estimated: false,
        streamed: false,
        complete: true,
        duration: Duration::from_millis(1),
        time_to_first_byte: None,
        time_to_headers: None,
        upstream: None,
    }
}

fn who(name: &str, team: Option<&str>) -> Identity {
    Identity {
        name: name.into(),
        team: team.map(Into::into),
        kind: IdentityKind::Jwt,
        groups: Vec::new(),
    }
}

/// Every sample of `metric`, with its labels.
fn samples(text: &str, metric: &str) -> Vec<prometheus_parse::Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .unwrap()
        .samples
        .into_iter()
        .filter(|s| s.metric == metric)
        .collect()
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn without_identity_labels_no_series_has_them() {
    let m = Metrics::new(false);
    m.report(&report(Some(who("alice", Some("platform"))), 5));
    m.answered(RouteKind::Messages, "b", 401, None);
    let text = m.encode();
    assert!(
        !text.contains("identity=") && !text.contains("team="),
        "{text}"
    );
    for metric in [
        "agw_requests_total",
        "agw_tokens_total",
        "agw_cost_usd_total",
    ] {
        let found = samples(&text, metric);
        assert!(!found.is_empty(), "{metric}: {text}");
        for s in found {
            assert!(
                s.labels.get("identity").is_none(),
                "{metric}: {:?}",
                s.labels
            );
        }
    }
}

#[test]
fn identity_and_team_labels_are_capped_like_model_names() {
    let m = Metrics::new(true);
    let long = "u".repeat(5000);
    m.report(&report(Some(who(&long, Some(&"t".repeat(300)))), 5));
    m.report(&report(Some(who("alice", None)), 5));
    let text = m.encode();
    assert!(text.lines().all(|l| l.len() < 1024), "a line is too long");
    let requests = samples(&text, "agw_requests_total");
    let label = |s: &prometheus_parse::Sample, k: &str| s.labels.get(k).map(str::to_owned);
    let mut got: Vec<_> = requests
        .iter()
        .map(|s| (label(s, "identity"), label(s, "team")))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (Some("alice".to_owned()), Some(String::new())),
            (Some("other".to_owned()), Some("other".to_owned())),
        ]
    );
}

/// A counter never goes down, whatever one report says.
#[test]
fn token_counters_saturate_and_never_decrease() {
    let m = Metrics::new(false);
    let mut last = 0.0;
    for output in [u64::MAX - 1, 5, u64::MAX] {
        m.report(&report(None, output));
        let text = m.encode();
        let out = samples(&text, "agw_tokens_total")
            .into_iter()
            .find(|s| s.labels.get("kind") == Some("output"))
            .unwrap();
        let v = value(&out);
        assert!(v >= last, "{v} < {last}");
        last = v;
    }
    assert_eq!(last, u64::MAX as f64);
    let c = Count::default();
    c.inc_by(u64::MAX);
    c.inc_by(1);
    assert_eq!(c.get(), u64::MAX);
}
