//! Metrics: the exposition parses with a real Prometheus parser and holds what happened.
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_core::api::Api;
use agw_core::price::{Price, PriceTable};
use agw_core::route::RouteTable;
use agw_tower::auth::{AuthLayer, Authenticator, FileKeyStore};
use agw_tower::classify::ClassifyLayer;
use agw_tower::metrics::{Metrics, UpstreamTimerLayer};
use agw_tower::usage::UsageLayer;
use prometheus_parse::{Sample, Scrape, Value};
use std::sync::Arc;

fn parse(text: &str) -> Scrape {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap()
}

fn find<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect()
}

/// Every `gen_ai_request_model` label value in a scrape.
fn requested_models(s: &Scrape) -> std::collections::HashSet<&str> {
    s.samples
        .iter()
        .filter_map(|x| x.labels.get("gen_ai_request_model"))
        .collect()
}

fn counter(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(s, metric, labels).as_slice() {
        [one] => match &one.value {
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) => *v,
            other => panic!("{metric}: {other:?}"),
        },
        other => panic!("{metric} {labels:?}: {} samples", other.len()),
    }
}

async fn stack(metrics: Arc<Metrics>) -> (std::net::SocketAddr, String) {
    let store = FileKeyStore::in_memory();
    let secret = support::add_key(&store, "alice", Some("platform")).await;
    let upstream = |_req: axum::extract::Request| async {
        http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(axum::body::Body::from(concat!(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5-20250929\",\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":900,\"output_tokens\":1}}}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":50}}\n\n",
            )))
            .unwrap()
    };
    let prices = PriceTable::new([(
        "claude-sonnet-*",
        Price {
            input: 3.0,
            output: 15.0,
            cache_write: 3.75,
            cache_read: 0.3,
        },
    )])
    .unwrap();
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(upstream))
        .layer(UpstreamTimerLayer)
        .layer(
            UsageLayer::new(Arc::new(prices))
                .sink(metrics)
                .backend("anthropic")
                .provider("anthropic"),
        )
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    (support::serve(app).await, secret)
}

async fn wait_for(metrics: &Metrics, needle: &str) -> String {
    for _ in 0..200 {
        let text = metrics.encode();
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{needle} never appeared:\n{}", metrics.encode());
}

#[tokio::test]
async fn the_exposition_parses_and_counts_requests_tokens_and_cost() {
    let metrics = Arc::new(Metrics::new(false));
    let (addr, key) = stack(metrics.clone()).await;
    for _ in 0..2 {
        let r = support::post(addr, "/v1/messages", &[("x-api-key", &key)], "{}").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    metrics.guard_outcome("credit-card", "reject", "request");
    metrics.guard_outcome("aws-key", "mask", "response");
    metrics.limit_rejection("tokens_per_minute", "key");
    metrics.upstream_error("anthropic", "connect");
    metrics.reload(true, 1_800_000_000);
    metrics.reload(false, 1_800_000_100);
    let text = wait_for(&metrics, "agw_cost_usd_total").await;
    let s = parse(&text);

    let route = [
        ("route", "Messages"),
        ("backend", "anthropic"),
        ("status", "200"),
    ];
    assert_eq!(counter(&s, "agw_requests_total", &route), 2.0);
    assert!(
        find(&s, "agw_requests_total", &[("identity", "alice")]).is_empty(),
        "no identity label by default"
    );
    let sonnet = [("model", "claude-sonnet-4-5-20250929")];
    assert_eq!(
        counter(&s, "agw_tokens_total", &[sonnet[0], ("kind", "input")]),
        200.0
    );
    assert_eq!(
        counter(&s, "agw_tokens_total", &[sonnet[0], ("kind", "cache_read")]),
        1800.0
    );
    assert_eq!(
        counter(&s, "agw_tokens_total", &[sonnet[0], ("kind", "output")]),
        100.0
    );
    // 2 × (100×3 + 900×0.3 + 50×15) µ$ = 2 × 1320 µ$
    let cost = counter(&s, "agw_cost_usd_total", &sonnet);
    assert!((cost - 0.00264).abs() < 1e-9, "{cost}");

    // GenAI histograms, with the conventions' labels.
    let genai = [
        ("gen_ai_operation_name", "chat"),
        ("gen_ai_provider_name", "anthropic"),
        ("gen_ai_response_model", "claude-sonnet-4-5-20250929"),
    ];
    let input: Vec<_> = find(
        &s,
        "gen_ai_client_token_usage",
        &[genai[0], genai[1], genai[2], ("gen_ai_token_type", "input")],
    );
    match &input.as_slice() {
        [one] => match &one.value {
            Value::Histogram(h) => {
                let count = h.iter().map(|b| b.count).fold(0.0, f64::max);
                assert_eq!(count, 2.0, "{h:?}");
                // 1000 input tokens each: not in the bucket ≤ 256, in the one ≤ 1024.
                let le = |x: f64| h.iter().find(|b| b.less_than == x).unwrap().count;
                assert_eq!(le(256.0), 0.0);
                assert_eq!(le(1024.0), 2.0);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{} samples:\n{text}", other.len()),
    }
    assert!(!find(&s, "gen_ai_client_operation_duration_seconds", &genai).is_empty());
    assert!(!find(&s, "gen_ai_server_time_to_first_token_seconds", &genai).is_empty());
    assert!(!find(&s, "agw_added_latency_seconds", &[("route", "Messages")]).is_empty());

    assert_eq!(
        counter(
            &s,
            "agw_guard_outcomes_total",
            &[
                ("rule", "credit-card"),
                ("action", "reject"),
                ("direction", "request")
            ]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            "agw_guard_outcomes_total",
            &[("rule", "aws-key"), ("direction", "response")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            "agw_limit_rejections_total",
            &[("limit", "tokens_per_minute"), ("scope", "key")]
        ),
        1.0
    );
    assert_eq!(
        counter(&s, "agw_upstream_errors_total", &[("cause", "connect")]),
        1.0
    );
    assert_eq!(counter(&s, "agw_reloads_total", &[("result", "ok")]), 1.0);
    assert_eq!(
        counter(&s, "agw_reloads_total", &[("result", "error")]),
        1.0
    );
    assert_eq!(
        counter(&s, "agw_last_reload_success_timestamp_seconds", &[]),
        1_800_000_000.0
    );
}

#[tokio::test]
async fn identity_labels_only_when_configured() {
    let metrics = Arc::new(Metrics::new(true));
    let (addr, key) = stack(metrics.clone()).await;
    let r = support::post(addr, "/v1/messages", &[("x-api-key", &key)], "{}").await;
    assert_eq!(r.status, 200);
    let text = wait_for(&metrics, "agw_cost_usd_total").await;
    let s = parse(&text);
    assert_eq!(
        counter(
            &s,
            "agw_requests_total",
            &[("identity", "alice"), ("team", "platform")]
        ),
        1.0
    );
    assert!(counter(&s, "agw_cost_usd_total", &[("identity", "alice")]) > 0.0);
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_that_exist() {
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/agw-dashboard.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let text = Metrics::new(true).encode();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !(word.starts_with("agw_")
                    || word.starts_with("gen_ai_client")
                    || word.starts_with("gen_ai_server"))
                {
                    continue;
                }
                let base = ["_bucket", "_total", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                assert!(
                    families.contains(&base),
                    "{word} in {:?} is not exposed",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15);
}

fn report(request_model: &str, response_model: Option<&str>) -> agw_tower::usage::UsageReport {
    agw_tower::usage::UsageReport {
        identity: None,
        backend: Some("b".into()),
        provider: Some("anthropic".into()),
        route: agw_core::route::RouteKind::Messages,
        api: Api::Anthropic,
        status: http::StatusCode::OK,
        request_model: Some(request_model.to_owned()),
        response_model: response_model.map(str::to_owned),
        usage: Some(agw_core::usage::Usage {
            input: 1,
            output: 1,
            cache_write: 0,
            cache_read: 0,
        }),
        cost_micros: Some(1),
        estimate: None,
        estimated_cost_micros: None,
        estimated: false,
        streamed: false,
        complete: true,
        duration: std::time::Duration::from_millis(1),
        time_to_first_byte: None,
        time_to_headers: None,
        upstream: None,
    }
}

/// Found by the audit: the text exposition does not escape label values, so a model name with
/// `"` and a newline wrote its own lines into the scrape; a key sent as a model name was shown.
#[test]
fn client_chosen_label_values_cannot_inject_or_leak() {
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(false);
    metrics.report(&report("x\"} injected_metric 1\n# HELP", Some("y\\\"\r\n")));
    metrics.report(&report(
        "AKIAIOSFODNN7EXAMPLE",
        Some("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"),
    ));
    // Glued to a model name, where the detectors see no word boundary (red-team review).
    metrics.report(&report(
        "claude-sonnet-agw_kjnyQ0123456789abcdefghijKLMN",
        Some("claude-sonnet-xsk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"),
    ));
    // A card in a model name (twelfth session: the access log masked it, metrics did not).
    metrics.report(&report("claude-sonnet-4111111111111111", None));
    let text = metrics.encode();
    // The name stays inside its quoted value; no line of the client's own.
    assert!(
        text.lines()
            .all(|l| l.starts_with('#') || l.starts_with("gen_ai_") || l.starts_with("agw_")),
        "{text}"
    );
    assert!(
        !text.contains("AKIA")
            && !text.contains("sk-ant")
            && !text.contains("agw_kjny")
            && !text.contains("4111111111111111"),
        "{text}"
    );
    let s = parse(&text);
    assert!(!s.samples.iter().any(|x| x.metric.contains("injected")));
    assert!(
        s.samples
            .iter()
            .any(|x| x.labels.get("gen_ai_request_model") == Some("redacted"))
    );
}

/// Red-team rt4: a label value's newline was written `_`, so a token whose `sub` is
/// `eve\nidentity=alice` and one whose `sub` is `eve_identity=alice` shared a series (the log
/// kept them apart). Values are escaped as OpenMetrics escapes them: one to one.
#[test]
fn label_values_are_escaped_so_two_identities_never_share_a_series() {
    use agw_tower::auth::{Identity, IdentityKind};
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(true);
    let who = |name: &str| Identity {
        name: name.into(),
        team: Some("t\"x".into()),
        kind: IdentityKind::Jwt,
        groups: Vec::new(),
    };
    for name in [
        "eve\nidentity=alice",
        "eve_identity=alice",
        "eve\\nidentity=alice",
    ] {
        let mut r = report("claude-sonnet-4-5", None);
        r.identity = Some(who(name));
        metrics.report(&r);
    }
    let text = metrics.encode();
    let series = |label: &str| {
        text.lines()
            .filter(|l| l.starts_with("agw_requests_total{") && l.contains(label))
            .count()
    };
    // Each written as OpenMetrics reads it back: `\n`, `\\`, `\"` escaped; a series each.
    assert_eq!(
        series(r#"identity="eve\nidentity=alice",team="t\"x""#),
        1,
        "{text}"
    );
    assert_eq!(series(r#"identity="eve_identity=alice""#), 1, "{text}");
    assert_eq!(series(r#"identity="eve\\nidentity=alice""#), 1, "{text}");
    assert!(text.lines().all(|l| !l.starts_with("identity=")), "{text}");
}

/// Clients choose the model they ask for: past `MAX_MODELS` names, new ones are `other`, so
/// random names cannot grow the registry without end.
#[test]
fn model_labels_are_bounded() {
    use agw_tower::metrics::MAX_MODELS;
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(false);
    for i in 0..MAX_MODELS + 50 {
        metrics.report(&report(&format!("model-{i}"), None));
    }
    let s = parse(&metrics.encode());
    let mut models: Vec<&str> = find(&s, "agw_tokens_total", &[("kind", "input")])
        .iter()
        .map(|x| x.labels.get("model").unwrap())
        .collect();
    models.sort_unstable();
    models.dedup();
    assert_eq!(models.len(), MAX_MODELS + 1, "{models:?}");
    assert!(models.contains(&"other") && models.contains(&"model-0"));
    assert_eq!(
        counter(
            &s,
            "agw_tokens_total",
            &[("kind", "input"), ("model", "other")]
        ),
        50.0
    );
    let requested = requested_models(&s);
    assert_eq!(requested.len(), MAX_MODELS + 1);
}

/// Only a successful response gives a new model name a label: junk names the provider refuses
/// (a 404 costs nothing) cannot use up the slots, so a real model after them keeps its name
/// (found by the fifth review).
#[test]
fn refused_model_names_take_no_label_slot() {
    use agw_tower::metrics::MAX_MODELS;
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(false);
    metrics.report(&report("claude-known", None));
    for i in 0..MAX_MODELS + 5 {
        let mut r = report(&format!("claude-junk-{i}"), None);
        r.status = http::StatusCode::NOT_FOUND;
        r.usage = None;
        metrics.report(&r);
    }
    metrics.report(&report("claude-sonnet-4-6", None));
    let mut failed = report("claude-known", None);
    failed.status = http::StatusCode::TOO_MANY_REQUESTS;
    metrics.report(&failed);
    let s = parse(&metrics.encode());
    let requested = requested_models(&s);
    assert!(requested.contains("claude-sonnet-4-6"), "{requested:?}");
    assert!(!requested.iter().any(|m| m.starts_with("claude-junk")));
    // A failure of a model already named keeps its name.
    assert!(s.samples.iter().any(|x| {
        x.labels.get("gen_ai_request_model") == Some("claude-known")
            && x.labels.get("error_type") == Some("429")
    }));
}

/// A model name longer than any model's takes no label (its length would be in every scrape),
/// and a request the provider layer rewrote is labelled with the model sent upstream: a pinned
/// backend answers any name a client makes up (sixth review).
#[tokio::test]
async fn long_and_rewritten_model_names_take_no_label() {
    use agw_tower::metrics::MAX_MODEL_LABEL;
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(false);
    metrics.report(&report(&"m".repeat(MAX_MODEL_LABEL + 1), None));
    metrics.report(&report(&"n".repeat(MAX_MODEL_LABEL), None));
    let s = parse(&metrics.encode());
    let requested = requested_models(&s);
    assert!(requested.contains("other"), "{requested:?}");
    assert!(requested.contains("n".repeat(MAX_MODEL_LABEL).as_str()));
    assert!(!requested.iter().any(|m| m.starts_with("mmm")));

    // Through the usage layer: the provider layer's `ModelRewrite` on the response.
    let metrics = Arc::new(Metrics::new(false));
    let upstream = |_req: axum::extract::Request| async {
        let mut res = http::Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                r#"{"type":"message","model":"claude-opus-4-6","content":[],"usage":{"input_tokens":3,"output_tokens":4}}"#,
            ))
            .unwrap();
        res.extensions_mut()
            .insert(agw_tower::provider::ModelRewrite {
                from: "junk-7".into(),
                to: "claude-opus-4-6".into(),
            });
        res
    };
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(upstream))
        .layer(UsageLayer::new(Arc::new(PriceTable::default())).sink(metrics.clone()))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    let addr = support::serve(app).await;
    let r = support::post(
        addr,
        "/v1/messages",
        &[],
        r#"{"model":"junk-7","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let text = wait_for(&metrics, "gen_ai_request_model").await;
    assert!(
        text.contains(r#"gen_ai_request_model="claude-opus-4-6""#),
        "{text}"
    );
    assert!(!text.contains("junk-7"), "{text}");
}

/// Reports of alternating and repeated kinds (the metrics remember the last kind to skip
/// hashing its labels): each is counted in its own series, as often as it was reported.
#[test]
fn alternating_report_kinds_are_counted_in_their_own_series() {
    use agw_tower::usage::UsageSink;
    let metrics = Metrics::new(false);
    let kinds = [
        ("claude-sonnet-4-5", None),
        ("claude-sonnet-4-5", Some("claude-sonnet-4-5-20250929")),
        ("claude-opus-4-1", None),
    ];
    // 0, 0, 1, 0, 2, 2, 2, 1, ...: runs and switches.
    let order = [0, 0, 1, 0, 2, 2, 2, 1, 1, 0, 2, 0];
    for &k in &order {
        let (req, res) = kinds[k];
        metrics.report(&report(req, res));
    }
    let s = parse(&metrics.encode());
    for (k, (req, res)) in kinds.iter().enumerate() {
        let want = order.iter().filter(|&&o| o == k).count() as f64;
        // One input token per report, counted under the model the report is priced as.
        let model = res.unwrap_or(req);
        let got = counter(
            &s,
            "agw_tokens_total",
            &[("kind", "input"), ("model", model)],
        );
        assert_eq!(got, want, "{req} {res:?}");
    }
}

/// Before any reload, both reload series exist at 0 and the last success is the start (a
/// dashboard's `time() - last success` showed 56 years; found by the fourth review).
#[test]
fn reload_series_exist_from_the_start() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let s = parse(&Metrics::new(false).encode());
    assert_eq!(counter(&s, "agw_reloads_total", &[("result", "ok")]), 0.0);
    assert_eq!(
        counter(&s, "agw_reloads_total", &[("result", "error")]),
        0.0
    );
    let at = counter(&s, "agw_last_reload_success_timestamp_seconds", &[]);
    assert!((now - 5.0..=now + 5.0).contains(&at), "{at} vs {now}");
}
