//! The team sections of `agw-bin/examples/team.yaml` deserialize into `TeamConfig` and build.
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_tower::auth::key;
use agw_tower::team::{AccessConfig, TeamConfig};

fn example() -> serde_norway::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agw-bin/examples/team.yaml"
    ))
    .unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// The team sections only (the rest is the binary's), with the key file moved to `dir`.
fn team_sections(dir: &std::path::Path, redis_url: Option<&str>) -> TeamConfig {
    let mut v = example();
    let map = v.as_mapping_mut().unwrap();
    for k in ["listen", "admin_listen", "backends"] {
        map.remove(k);
    }
    let mut config: TeamConfig = serde_norway::from_value(v).unwrap();
    config.auth.keys.as_mut().unwrap().file = Some(dir.join("keys.json"));
    config.redis.as_mut().unwrap().url = redis_url.map(str::to_owned);
    config
}

#[tokio::test]
async fn the_example_builds_in_memory() {
    let dir = support::temp_dir("team-config");
    let config = team_sections(&dir, None);
    assert_eq!(config.limits.per_key.requests_per_minute, Some(60));
    assert_eq!(config.prices.len(), 5);
    let team = config.build().await.unwrap();
    assert!(team.requires_credentials);
    assert!(team.key_file.is_some());
    let limiter = team.limiter.as_ref().unwrap();
    assert_eq!(limiter.policy().per_key.usd_per_month, Some(300.0));
    assert_eq!(limiter.policy().per_team.requests_per_minute, Some(600));
    assert!(team.prices.price("claude-sonnet-4-5").is_some());
    // Every backend's access list builds.
    for b in example()["backends"].as_sequence().unwrap() {
        let access: AccessConfig = serde_norway::from_value(b["access"].clone()).unwrap();
        assert!(access.build().unwrap().restricts_models());
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn with_redis_the_keys_live_in_redis() {
    let redis = support::Redis::start();
    let dir = support::temp_dir("team-config-redis");
    let team = team_sections(&dir, Some(&redis.url()))
        .build()
        .await
        .unwrap();
    assert!(
        team.key_file.is_none(),
        "keys are in Redis, not in the file"
    );
    let secret = support::add_key(team.keys.as_deref().unwrap(), "alice", None).await;
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", secret.parse().unwrap());
    let who = team
        .authenticator
        .authenticate(&h, key::unix_now())
        .await
        .unwrap();
    assert_eq!(&*who.name, "alice");
    assert!(!dir.join("keys.json").exists());
}

#[tokio::test]
async fn bad_sections_are_refused_with_one_line_naming_them() {
    let cases = [
        (
            r#"{"limits":{"per_key":{"requests_per_minute":0}}}"#,
            "limits.per_key.requests_per_minute: 0",
        ),
        (
            r#"{"limits":{"global":{"budget":{"usd_per_day":-1}}}}"#,
            "limits.global.budget.usd_per_day: -1",
        ),
        (
            r#"{"prices":[{"model":"","input":1,"output":1}]}"#,
            "prices: invalid model pattern",
        ),
        (
            r#"{"auth":{"jwt":{"issuer":"i","audience":"a"}}}"#,
            "auth.jwt: set exactly one of jwks_file and jwks_url",
        ),
        (r#"{"auth":{"keys":{}}}"#, "auth.keys: set `file`"),
        (
            r#"{"limits":{"per_key":{"budget":{"usd_per_month":5}}}}"#,
            "limits: a dollar budget (usd_per_day, usd_per_month) needs `prices`",
        ),
    ];
    for (json, want) in cases {
        let config: TeamConfig = serde_json::from_str(json).unwrap();
        let err = config.build().await.unwrap_err().to_string();
        assert!(err.starts_with(want), "{json}: {err}");
        assert_eq!(err.lines().count(), 1);
    }
    // Unknown fields are refused at parse time (a typo never silently disables a limit).
    assert!(
        serde_json::from_str::<TeamConfig>(r#"{"limits":{"per_key":{"request_per_minute":5}}}"#)
            .is_err()
    );
}

/// A Redis that does not answer does not fail the build (a gateway starting during an outage
/// runs, not ready, instead of exiting into a restart loop): the build waits a bounded time,
/// then the connection is made in the background. A URL that is not Redis's is refused.
#[tokio::test]
async fn an_unreachable_redis_is_left_to_connect_in_the_background() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config: TeamConfig = serde_json::from_str(&format!(
        r#"{{"redis":{{"url":"redis://127.0.0.1:{port}/","timeout_ms":100}},"limits":{{"per_key":{{"requests_per_minute":5}}}}}}"#
    ))
    .unwrap();
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), config.build())
        .await
        .expect("bounded");
    if cfg!(feature = "redis") {
        #[cfg(feature = "redis")]
        {
            let team = r.unwrap();
            let redis = team.redis.as_ref().expect("a connection in the making");
            assert!(redis.get().is_err());
            assert!(
                redis
                    .ping(std::time::Duration::from_millis(100))
                    .await
                    .is_err()
            );
        }
        let bad: TeamConfig =
            serde_json::from_str(r#"{"redis":{"url":"http://127.0.0.1:1/"}}"#).unwrap();
        let e = bad.build().await.unwrap_err().to_string();
        assert!(e.starts_with("redis.url: "), "{e}");
    } else {
        assert!(r.is_err());
    }
}

/// With a dollar budget, a model the price table does not name is charged its highest rates,
/// not nothing (found by the third red-team review: unpriced models spent budgets for free);
/// without one it stays free, as documented.
#[tokio::test]
async fn with_a_dollar_budget_an_unpriced_model_costs_the_highest_rates() {
    let usage = agw_core::usage::Usage {
        input: 1_000_000,
        output: 1_000_000,
        ..Default::default()
    };
    let prices = r#""prices":[{"model":"claude-sonnet-*","input":3,"output":15},{"model":"claude-opus-*","input":15,"output":75}]"#;
    let budget: TeamConfig = serde_json::from_str(&format!(
        r#"{{"limits":{{"per_key":{{"budget":{{"usd_per_day":1}}}}}},{prices}}}"#
    ))
    .unwrap();
    let team = budget.build().await.unwrap();
    assert_eq!(
        team.prices
            .cost_micros("claude-3-7-sonnet-20250219", &usage),
        Some(90_000_000)
    );
    assert_eq!(
        team.prices.cost_micros("claude-sonnet-4-5", &usage),
        Some(18_000_000)
    );
    let free: TeamConfig = serde_json::from_str(&format!("{{{prices}}}")).unwrap();
    let team = free.build().await.unwrap();
    assert_eq!(
        team.prices
            .cost_micros("claude-3-7-sonnet-20250219", &usage),
        None
    );
}

/// `agw check` and a reload validate what `serve` builds: a key file `serve` refuses to start
/// on is refused by `validate` with the same line (fourteenth review: check said ok to
/// `garbage{`). A key file that does not exist yet is an empty store, for both.
#[tokio::test]
async fn validate_reads_the_key_file_as_build_does() {
    let dir = support::temp_dir("team-config-keyfile");
    let config = team_sections(&dir, None);
    config.validate().unwrap();
    std::fs::write(dir.join("keys.json"), "garbage{").unwrap();
    let checked = config.validate().unwrap_err().to_string();
    let built = config.build().await.unwrap_err().to_string();
    assert_eq!(checked, built);
    assert!(
        checked.starts_with("auth.keys.file: key file ") && checked.contains("not valid JSON"),
        "{checked}"
    );
    assert_eq!(checked.lines().count(), 1);
}
