//! What limits, budgets and access lists cannot read for certain is refused, not let through
//! unheld: a `model` key a server could read otherwise than agw, and OpenAI work whose usage
//! agw never sees (found by the fourteenth review).
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_core::api::Api;
use agw_core::guard::Policy;
use agw_core::price::{Price, PriceTable};
use agw_core::route::RouteTable;
use agw_tower::auth::{Access, AccessLayer, AuthLayer, Authenticator, FileKeyStore};
use agw_tower::classify::ClassifyLayer;
use agw_tower::guard::RequestGuardLayer;
use agw_tower::limit::{LimitLayer, LimitPolicy, Limiter, Limits, MemoryStore};
use agw_tower::usage::UsageLayer;
use std::sync::Arc;

/// The message of a provider-shaped 400 `invalid_request_error` (`what` names the case).
fn invalid_request(r: &support::Reply, what: &str) -> String {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    let j = r.json();
    assert_eq!(
        j["error"]["type"], "invalid_request_error",
        "{what}: {}",
        r.body
    );
    j["error"]["message"].as_str().unwrap().to_owned()
}

fn prices() -> Arc<PriceTable> {
    let price = |input, output| Price {
        input,
        output,
        ..Price::default()
    };
    Arc::new(
        PriceTable::new([
            ("claude-haiku-*", price(1.0, 5.0)),
            ("claude-opus-*", price(15.0, 75.0)),
            ("*", price(15.0, 75.0)),
        ])
        .unwrap(),
    )
}

fn reply() -> &'static str {
    r#"{"model":"claude-opus-4-6","content":[],"usage":{"input_tokens":10,"output_tokens":10}}"#
}

/// The team layers as `agw serve` stacks them, over `api`'s classification: an access list
/// (`access`, if any) and the limiter inside the body stage, key authentication outside it.
/// Its address and the secrets of alice's key (no team) and of bob's (team `platform`).
async fn serve(
    limits: LimitPolicy,
    access: Option<Access>,
    api: Api,
) -> (std::net::SocketAddr, String, String) {
    let store = FileKeyStore::in_memory();
    let alice = support::add_key(&store, "alice", None).await;
    let bob = support::add_key(&store, "bob", Some("platform")).await;
    let limiter =
        Arc::new(Limiter::new(limits, Arc::new(MemoryStore::new())).with_prices(prices()));
    let reads_all = access.as_ref().is_some_and(Access::restricts_models);
    let routes = axum::Router::new().fallback(|| async { reply() });
    let app = routes
        .layer(UsageLayer::new(prices()))
        .layer(LimitLayer::new(limiter))
        .layer(AccessLayer::new(
            access.unwrap_or_else(Access::any),
            "anthropic",
        ))
        .layer(
            RequestGuardLayer::new(Policy::empty())
                .read_always(true)
                .read_bodies(reads_all)
                .read_json_bodies(true),
        )
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(RouteTable::claude_code(), api));
    (support::serve(app).await, alice, bob)
}

fn dollars_per_day(usd: f64) -> LimitPolicy {
    LimitPolicy {
        per_key: Limits {
            usd_per_day: Some(usd),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }
}

/// Fourteenth review: `{"model":"claude-haiku-4-5",…,"model":"claude-opus-4-6"}` was
/// admitted under a $1 budget (held at haiku's price, or none), and the provider ran opus,
/// the last key: eight such requests spent $6. A second top-level `model` — escaped, or in
/// another case — is refused (400), with or without a model list.
#[tokio::test]
async fn a_second_model_key_is_refused_under_a_budget() {
    let (addr, alice, _) = serve(dollars_per_day(1.0), None, Api::Anthropic).await;
    let h = [("x-api-key", alice.as_str())];
    let body = |model: &str| {
        format!(
            r#"{{"model":"{model}","max_tokens":20000,"messages":[{{"role":"user","content":"hi"}}]}}"#
        )
    };
    // Opus's 20,000 output tokens hold $1.50: more than the whole budget.
    let r = support::post(addr, "/v1/messages", &h, &body("claude-opus-4-6")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("budget"), "{}", r.body);
    for second in [
        r#""model":"claude-opus-4-6""#,
        r#""mod\u0065l":"claude-opus-4-6""#,
        r#""MODEL":"claude-opus-4-6""#,
    ] {
        let twice =
            body("claude-haiku-4-5").replace(r#""messages""#, &format!(r#"{second},"messages""#));
        let r = support::post(addr, "/v1/messages", &h, &twice).await;
        let message = invalid_request(&r, second);
        assert!(message.contains("`model` twice"), "{message}");
    }
    // The same on OpenAI's chat route, in its error shape.
    let twice = r#"{"model":"gpt-4o-mini","max_tokens":10,"Model":"o1-pro","messages":[]}"#;
    let mut h = vec![("authorization", format!("Bearer {alice}"))];
    h.push(("content-type", "application/json".into()));
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = support::post(addr, "/v1/chat/completions", &h, twice).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("`model` twice"), "{}", r.body);
    // One model: admitted (haiku's 20,000 tokens hold $0.10).
    let r = support::post(
        addr,
        "/v1/messages",
        &[("x-api-key", alice.as_str())],
        &body("claude-haiku-4-5"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Fourteenth review: under a model list, a duplicate or non-string `model` was told
/// "model `(none)` is not allowed", though the client had named an allowed one.
#[tokio::test]
async fn a_model_list_says_what_is_wrong_with_the_model_key() {
    let access = Access::any().models(["claude-sonnet-*"]).unwrap();
    let (addr, alice, _) = serve(LimitPolicy::default(), Some(access), Api::Anthropic).await;
    let h = [("x-api-key", alice.as_str())];
    for (body, says) in [
        (
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"model":"claude-sonnet-4-5"}"#,
            "`model` twice",
        ),
        (
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"MODEL":"claude-sonnet-4-5"}"#,
            "`model` twice",
        ),
        (
            r#"{"model":["claude-sonnet-4-5"],"max_tokens":9,"messages":[]}"#,
            "`model` is not a string",
        ),
    ] {
        let r = support::post(addr, "/v1/messages", &h, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(says), "{body}: {}", r.body);
        assert!(!r.body.contains("(none)"), "{body}: {}", r.body);
    }
    let ok = r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#;
    assert_eq!(
        support::post(addr, "/v1/messages", &h, ok).await.status,
        200
    );
}

/// Fourteenth review: `POST /v1/batches` and Assistants runs were admitted under token and
/// dollar budgets and charged nothing (a batch runs up to 50,000 requests; a run's usage shows
/// only on a later `GET`). Refused where a token or dollar limit applies to the caller, with
/// the reason; reading and cancelling them is not.
#[tokio::test]
async fn openai_work_whose_usage_agw_never_reads_is_refused_under_token_limits() {
    // bob's team has a tokens-per-minute limit; alice has no team, so no limit applies to her.
    let limits = LimitPolicy {
        per_team: Limits {
            tokens_per_minute: Some(1_000_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    };
    let (addr, alice, bob) = serve(limits, None, Api::OpenAi).await;
    let batch =
        r#"{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}"#;
    let run = r#"{"assistant_id":"asst_1"}"#;
    for (path, body, why) in [
        ("/v1/batches", batch, "uploaded file"),
        ("/v1/threads/runs", run, "Assistants run"),
        ("/v1/threads/thread_1/runs", run, "Assistants run"),
        (
            "/v1/threads/thread_1/runs/run_1/submit_tool_outputs",
            r#"{"tool_outputs":[]}"#,
            "Assistants run",
        ),
    ] {
        let h = [("authorization", format!("Bearer {bob}"))];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = support::post(addr, path, &h, body).await;
        let message = invalid_request(&r, path);
        assert!(
            message.contains("cannot be charged") && message.contains(why),
            "{path}: {message}"
        );
        // No token or dollar limit applies to alice: admitted.
        let h = [("authorization", format!("Bearer {alice}"))];
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = support::post(addr, path, &h, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // Cancelling a batch or a run is not refused.
    let h = [("authorization", format!("Bearer {bob}"))];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for path in [
        "/v1/batches/batch_1/cancel",
        "/v1/threads/thread_1/runs/run_1/cancel",
    ] {
        let r = support::post(addr, path, &h, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}
