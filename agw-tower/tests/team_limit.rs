//! Limits and budgets with the in-memory store: the limiter, and the layer over sockets.
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_core::api::Api;
use agw_core::price::{Price, PriceTable};
use agw_core::route::RouteTable;
use agw_tower::auth::BoxFuture;
use agw_tower::auth::{AuthLayer, Authenticator, FileKeyStore, Identity, IdentityKind};
use agw_tower::classify::ClassifyLayer;
use agw_tower::limit::{
    Acquired, Add, Check, CounterKey, Fit, LimitKind, LimitLayer, LimitPolicy, LimitStore,
    LimitStoreError, Limiter, Limits, MemoryStore, Rejection, Scope,
};
use agw_tower::usage::UsageLayer;
use std::sync::Arc;

const NOW: u64 = 1_795_869_296; // 2026-11-28T12:34:56Z

fn alice() -> Identity {
    Identity {
        name: "alice".into(),
        team: Some("platform".into()),
        kind: IdentityKind::Key,
        groups: vec![],
    }
}

fn bob() -> Identity {
    Identity {
        name: "bob".into(),
        team: Some("platform".into()),
        ..alice()
    }
}

fn limiter(policy: LimitPolicy) -> Limiter {
    Limiter::new(policy, Arc::new(MemoryStore::new()))
}

#[tokio::test]
async fn requests_per_minute_per_key_and_per_team() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        },
        per_team: Limits {
            requests_per_minute: Some(3),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    assert!(l.admit(Some(&alice()), None, NOW).await.is_ok());
    assert!(l.admit(Some(&alice()), None, NOW).await.is_ok());
    let e = l.admit(Some(&alice()), None, NOW).await.unwrap_err();
    assert!(
        matches!(&e, Rejection::Limited { scope: Scope::Key(k), kind: LimitKind::Requests, .. } if &**k == "alice"),
        "{e:?}"
    );
    assert_eq!(e.error().status().as_u16(), 429);
    let mut h = http::HeaderMap::new();
    e.headers(&mut h);
    assert_eq!(h["retry-after"], "4"); // 12:34:56 → the next minute
    // Bob has his own key limit but shares the team's: one more for the team.
    assert!(l.admit(Some(&bob()), None, NOW).await.is_ok());
    let e = l.admit(Some(&bob()), None, NOW).await.unwrap_err();
    assert!(
        matches!(
            e,
            Rejection::Limited {
                scope: Scope::Team(_),
                ..
            }
        ),
        "{e:?}"
    );
    // A refused request charged nothing: the next minute starts fresh.
    assert!(l.admit(Some(&alice()), None, NOW + 60).await.is_ok());
}

#[tokio::test]
async fn the_limit_headers_name_the_scope_with_the_least_left() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            requests_per_minute: Some(50),
            tokens_per_minute: Some(3000),
            ..Limits::default()
        },
        per_team: Limits {
            requests_per_minute: Some(7),
            tokens_per_minute: Some(20_000),
            ..Limits::default()
        },
        global: Limits {
            requests_per_minute: Some(1000),
            tokens_per_minute: Some(4000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let headers = |t: &agw_tower::limit::Ticket| {
        let mut h = http::HeaderMap::new();
        t.headers(&mut h);
        let get = |n: &str| h[n].to_str().unwrap().to_owned();
        [
            get("x-agw-ratelimit-requests-limit"),
            get("x-agw-ratelimit-requests-remaining"),
            get("x-agw-ratelimit-tokens-limit"),
            get("x-agw-ratelimit-tokens-remaining"),
        ]
    };
    // Requests: the team's 7 has the least left; tokens: alice's key.
    let t = l.admit(Some(&alice()), Some(100), NOW).await.unwrap();
    assert_eq!(headers(&t), ["7", "6", "3000", "2900"]);
    // Bob's own key, the shared team.
    let t = l.admit(Some(&bob()), Some(2000), NOW).await.unwrap();
    assert_eq!(headers(&t), ["7", "5", "3000", "1000"]);
    // Alice's key still has 1400, but all keys together leave the global 400.
    let t = l.admit(Some(&alice()), Some(1500), NOW).await.unwrap();
    assert_eq!(headers(&t), ["7", "4", "4000", "400"]);
}

#[tokio::test]
async fn in_flight_requests_hold_their_estimate_until_settled() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_minute: Some(1000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let a = l.admit(Some(&alice()), Some(600), NOW).await.unwrap();
    // 600 held + 600 more would pass 1000. The first request is in flight: the second is told
    // to retry in seconds, when the first may give its hold back, not at the minute's end
    // (found by the fourth review: Claude Code's parallel requests, each holding its 128k
    // cap, waited a minute).
    let e = l.admit(Some(&alice()), Some(600), NOW).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Rejection::Limited {
                fit: Fit::Held {
                    left: 400,
                    hold: 600
                },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.error().status(), 429);
    assert!(
        e.error().message().contains("requests in flight hold"),
        "{}",
        e.error().message()
    );
    let mut h = http::HeaderMap::new();
    e.headers(&mut h);
    assert_eq!(
        h["retry-after"], "4",
        "the minute ends sooner than 10 s: {h:?}"
    );
    // Early in a minute (12:33:00), the same wait is 10 s rather than the minute's 60.
    let early = NOW - 116;
    let other = l.admit(Some(&alice()), Some(600), early).await.unwrap();
    let e = l.admit(Some(&alice()), Some(600), early).await.unwrap_err();
    let mut h = http::HeaderMap::new();
    e.headers(&mut h);
    assert_eq!(h["retry-after"], "10", "{h:?}");
    drop(other);
    // The first used only 100: the correction frees 500.
    l.settle(&a, Some(100), None, true).await;
    let b = l.admit(Some(&alice()), Some(600), NOW).await.unwrap();
    let mut h = http::HeaderMap::new();
    b.headers(&mut h);
    assert_eq!(h["x-agw-ratelimit-tokens-limit"], "1000");
    assert_eq!(h["x-agw-ratelimit-tokens-remaining"], "300");
    assert_eq!(h["x-agw-ratelimit-tokens-reset"], "2026-11-28T12:35:00Z");
    // A failed request without usage gives its estimate back.
    l.settle(&b, None, None, false).await;
    assert!(l.admit(Some(&alice()), Some(850), NOW).await.is_ok());
    // An empty window admits one request larger than the limit (never refused forever).
    assert!(l.admit(Some(&bob()), Some(5000), NOW).await.is_ok());
}

#[tokio::test]
async fn spend_budgets_refuse_with_a_clear_non_retryable_error() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            usd_per_day: Some(0.01),
            ..Limits::default()
        },
        per_team: Limits {
            usd_per_month: Some(1.0),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let t = l.admit(Some(&alice()), None, NOW).await.unwrap();
    l.settle(&t, Some(1000), Some(12_000), true).await; // $0.012
    let e = l.admit(Some(&alice()), None, NOW).await.unwrap_err();
    let body = e.error();
    assert_eq!(body.status().as_u16(), 400);
    assert_eq!(
        body.message(),
        "agw: the daily budget of $0.01 of key `alice` is used up; it resets at 2026-11-29T00:00:00Z"
    );
    let mut h = http::HeaderMap::new();
    e.headers(&mut h);
    assert_eq!(h["x-agw-budget-reset"], "2026-11-29T00:00:00Z");
    assert!(h.get("retry-after").is_none());
    // The next day alice may spend again; the team's month continues.
    assert!(l.admit(Some(&alice()), None, NOW + 86_400).await.is_ok());
    let spent = l.spent(&Scope::Team("platform".into()), NOW).await.unwrap();
    assert_eq!(spent.usd_micros_month, 12_000);
    assert_eq!(spent.tokens_today, 1000);
}

#[tokio::test]
async fn token_budgets_per_month() {
    let l = limiter(LimitPolicy {
        global: Limits {
            tokens_per_month: Some(10_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let t = l.admit(None, None, NOW).await.unwrap();
    l.settle(&t, Some(10_000), None, true).await;
    let e = l.admit(Some(&alice()), None, NOW).await.unwrap_err();
    assert!(
        e.error()
            .message()
            .contains("monthly budget of 10000 tokens of this gateway")
            && e.error().message().contains("2026-12-01T00:00:00Z"),
        "{}",
        e.error().message()
    );
}

/// A token budget holds each request's estimate while it is in flight: requests admitted
/// together cannot overrun it (found by the third red-team review: forty concurrent requests
/// spent 80 times a day's budget). The response's usage then replaces the estimate, and a
/// failed request gives it back.
#[tokio::test]
async fn token_budgets_hold_requests_in_flight() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(5_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    // A 40 KB prompt with `max_tokens: 1`, about 10,000 tokens, can never fit a budget of
    // 5,000: refused before anything is held, as not retryable (400).
    let estimate = l.estimate(Some(1), 10_000);
    assert_eq!(estimate, 10_001);
    let e = l
        .admit(Some(&alice()), Some(estimate), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Rejection::Limited {
                fit: Fit::TooLarge { hold: 10_001 },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.error().status(), 400);
    assert!(
        e.error()
            .message()
            .contains("more than the whole daily budget of 5000 tokens"),
        "{}",
        e.error().message()
    );
    // Two of 3,000: the second does not fit while the first holds its part; it is told to
    // retry (429 with `retry-after`), not that the budget is spent.
    let first = l.admit(Some(&alice()), Some(3_000), NOW).await.unwrap();
    let e = l.admit(Some(&alice()), Some(3_000), NOW).await.unwrap_err();
    assert!(
        matches!(
            &e,
            Rejection::Limited {
                fit: Fit::Held {
                    left: 2_000,
                    hold: 3_000
                },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.error().status(), 429);
    let mut h = http::HeaderMap::new();
    e.headers(&mut h);
    assert!(h.contains_key("retry-after"), "{h:?}");
    // It failed (no usage): the estimate is given back.
    l.settle(&first, None, None, false).await;
    let second = l.admit(Some(&alice()), Some(100), NOW).await.unwrap();
    let third = l.admit(Some(&alice()), Some(100), NOW).await.unwrap();
    // Actual usage replaces the estimates: 2 × 40 tokens spent.
    l.settle(&second, Some(40), None, true).await;
    l.settle(&third, Some(40), None, true).await;
    let spent = l.spent(&Scope::Key("alice".into()), NOW).await.unwrap();
    assert_eq!(spent.tokens_today, 80, "{spent:?}");
    // A `max_tokens` no model produces holds at most `MAX_OUTPUT_ESTIMATE`.
    assert_eq!(
        l.estimate(Some(1_000_000_000_000_000), 7),
        agw_tower::limit::MAX_OUTPUT_ESTIMATE + 7
    );
}

/// A dollar budget holds each request's estimated cost while it is in flight (its estimated
/// tokens at its model's price), and settling replaces it with the actual cost.
#[tokio::test]
async fn dollar_budgets_hold_the_estimated_cost_in_flight() {
    let prices = PriceTable::new([(
        "claude-sonnet-*",
        Price {
            input: 3.0,
            output: 15.0,
            ..Price::default()
        },
    )])
    .unwrap();
    let l = limiter(LimitPolicy {
        per_key: Limits {
            usd_per_day: Some(1.0),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    })
    .with_prices(Arc::new(prices));
    let model = Some("claude-sonnet-4-5");
    let tokens = l.estimate(Some(20_000), 100_000);
    // 100k input at $3/M and 20k output at $15/M: $0.60.
    let cost = l.cost_estimate(model, 100_000, tokens);
    assert_eq!(cost, 600_000);
    let first = l
        .admit_costing(Some(&alice()), Some(tokens), cost, NOW)
        .await
        .unwrap();
    // $0.60 held of $1.00: the same request again would pass the budget.
    let e = l
        .admit_costing(Some(&alice()), Some(tokens), cost, NOW)
        .await
        .unwrap_err();
    assert!(
        e.error().message().contains("daily budget of $1.00"),
        "{}",
        e.error().message()
    );
    // The first cost $0.10 in the end: the hold is replaced, and the second now fits.
    l.settle(&first, Some(30_000), Some(100_000), true).await;
    let spent = l.spent(&Scope::Key("alice".into()), NOW).await.unwrap();
    assert_eq!(spent.usd_micros_today, 100_000);
    assert!(
        l.admit_costing(Some(&alice()), Some(tokens), cost, NOW)
            .await
            .is_ok()
    );
    // Without a model or prices nothing is held.
    assert_eq!(l.cost_estimate(None, 100_000, tokens), 0);
}

async fn spent(l: &Limiter) -> Vec<agw_tower::limit::Spent> {
    let mut out = Vec::new();
    for s in [
        Scope::Key("alice".into()),
        Scope::Key("bob".into()),
        Scope::Team("platform".into()),
        Scope::Global,
    ] {
        out.push(l.spent(&s, NOW).await.unwrap());
    }
    out
}

/// The in-memory store behind a store that does not settle inline: settling goes through the
/// batching task, as with Redis.
#[derive(Debug, Default)]
struct Queued(MemoryStore);

impl LimitStore for Queued {
    fn acquire(&self, checks: Vec<Check>) -> BoxFuture<'_, Result<Acquired, LimitStoreError>> {
        self.0.acquire(checks)
    }
    fn add(&self, adds: Vec<Add>) -> BoxFuture<'_, Result<(), LimitStoreError>> {
        self.0.add(adds)
    }
    fn get(&self, keys: Vec<CounterKey>) -> BoxFuture<'_, Result<Vec<u64>, LimitStoreError>> {
        self.0.get(keys)
    }
}

/// The in-memory store settles at once, on the caller's thread, with no runtime needed.
#[test]
fn settling_later_in_memory_charges_at_once() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            usd_per_day: Some(1.0),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ticket = rt.block_on(l.admit(Some(&alice()), Some(10), NOW)).unwrap();
    drop(rt);
    l.settle_later(Arc::new(ticket), Some(40), Some(250_000), true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let spent = rt
        .block_on(l.spent(&Scope::Key("alice".into()), NOW))
        .unwrap();
    assert_eq!(spent.usd_micros_today, 250_000, "{spent:?}");
    assert_eq!(spent.tokens_today, 40, "{spent:?}");
}

/// Settling later charges a batch of one request and a batch of several as settling each at
/// once does (a lone request takes a path without the per-batch sums), inline (the in-memory
/// store) and through the batching task (a store that waits, as Redis does).
#[tokio::test]
async fn settling_later_charges_as_settling_at_once() {
    // A store that waits says so, and applies nothing without waiting.
    let queued = Queued::default();
    assert!(!queued.adds_now() && queued.add_now(Vec::new()).is_err());
    assert!(MemoryStore::new().adds_now());
    settling_later_matches(|p| Limiter::new(p, Arc::new(MemoryStore::new()))).await;
    settling_later_matches(|p| Limiter::new(p, Arc::new(Queued::default()))).await;
}

async fn settling_later_matches(new: impl Fn(LimitPolicy) -> Limiter) {
    let policy = LimitPolicy {
        per_key: Limits {
            tokens_per_minute: Some(100_000),
            ..Limits::default()
        },
        per_team: Limits {
            usd_per_month: Some(100.0),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    };
    let (now, later) = (limiter(policy.clone()), Arc::new(new(policy)));
    // (who, tokens, cost): one request alone, then three queued together.
    let alone = [(alice(), Some(100), Some(7))];
    let together = [
        (alice(), Some(50), Some(3)),
        (bob(), None, None),
        (alice(), Some(2), None),
    ];
    for round in [&alone[..], &together[..]] {
        let mut tickets = Vec::new();
        for (who, tokens, cost) in round {
            let a = now.admit(Some(who), Some(10), NOW).await.unwrap();
            let b = later.admit(Some(who), Some(10), NOW).await.unwrap();
            tickets.push((a, b, *tokens, *cost));
        }
        for (a, b, tokens, cost) in tickets {
            now.settle(&a, tokens, cost, true).await;
            later.settle_later(Arc::new(b), tokens, cost, true);
        }
        let want = spent(&now).await;
        let mut waited = 0;
        while spent(&later).await != want {
            assert!(
                waited < 1000,
                "settled later: {:?}, at once: {want:?}",
                spent(&later).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            waited += 1;
        }
    }
    // The minute's token counters were corrected alike: the same remaining tokens.
    let remaining = |t: agw_tower::limit::Ticket| {
        let mut h = http::HeaderMap::new();
        t.headers(&mut h);
        h["x-agw-ratelimit-tokens-remaining"].clone()
    };
    let a = now.admit(Some(&alice()), Some(1), NOW).await.unwrap();
    let b = later.admit(Some(&alice()), Some(1), NOW).await.unwrap();
    assert_eq!(remaining(a), remaining(b));
}

async fn upstream(req: axum::extract::Request) -> http::Response<axum::body::Body> {
    let _ = req;
    http::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            r#"{"model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":300,"output_tokens":100}}"#,
        ))
        .unwrap()
}

/// `routes` under usage (every model free), `limiter`, key authentication and classification,
/// served: its address and the secret of alice's key.
async fn serve_limited(
    limiter: &Arc<Limiter>,
    routes: axum::Router,
) -> (std::net::SocketAddr, String) {
    let store = FileKeyStore::in_memory();
    let secret = support::add_key(&store, "alice", None).await;
    let prices = PriceTable::new([("*", Price::default())]).unwrap();
    let app = routes
        .layer(UsageLayer::new(Arc::new(prices)))
        .layer(LimitLayer::new(limiter.clone()))
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    (support::serve(app).await, secret)
}

/// A message batch's usage comes back with its results, later: the batch holds and is charged
/// the sum of its requests' estimates against the token budgets (found by the third red-team
/// review: a thousand 64k-token requests cost nothing).
#[tokio::test]
async fn a_batch_is_charged_the_estimates_of_its_requests() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(100_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let prices = Arc::new(PriceTable::new([("*", Price::default())]).unwrap());
    let routes = axum::Router::new()
        .route(
            "/v1/messages/batches",
            axum::routing::post(|| async { r#"{"id":"msgbatch_1","type":"message_batch"}"# }),
        )
        .route(
            "/v1/messages/batches/{id}/cancel",
            axum::routing::post(|| async { r#"{"id":"msgbatch_1","type":"message_batch"}"# }),
        );
    let (addr, secret) = serve_read(&limiter, prices, Api::Anthropic, routes).await;
    let h = [("x-api-key", secret.as_str())];
    let one = r#"{"custom_id":"a","params":{"model":"m","max_tokens":30000,"messages":[]}}"#;
    let batch = format!(r#"{{"requests":[{one},{one}]}}"#);
    let r = support::post(addr, "/v1/messages/batches", &h, &batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let want = 60_000 + batch.len().div_ceil(4) as u64;
    assert_eq!(alice_tokens_reaching(&limiter, want).await, want);
    // The day's budget now holds 60k of 100k: the same batch again would pass it, and nothing
    // in flight will give any back (400: less is left than it may use).
    let r = support::post(addr, "/v1/messages/batches", &h, &batch).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("daily budget of 100000 tokens") && r.body.contains("39959 tokens left"),
        "{}",
        r.body
    );
    // Cancelling a batch is not held to the budget: a user can stop what is spending it.
    let r = support::post(addr, "/v1/messages/batches/msgbatch_1/cancel", &h, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A client that goes away before the response headers (Esc in Claude Code during a slow
/// first token) is charged the input its request sent on, and a stream gives back the output
/// it held: the usage layer reports the request as abandoned (status 499). Found by the third
/// red-team review (the whole hold stayed in the day's budget for good) and the ops review
/// (charged nothing, a client with a short timeout spent outside every budget). A request that
/// did not ask for a stream keeps its hold: its provider may finish it (tenth review).
#[tokio::test]
async fn a_request_abandoned_before_its_response_is_charged_its_input_or_its_hold() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(1_000_000),
            ..Limits::default()
        },
        default_estimate: 500_000,
        ..LimitPolicy::default()
    }));
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            "{}"
        }),
    );
    // The body stage's part: the body read whole and handed on, as the stack does.
    let store = FileKeyStore::in_memory();
    let secret = support::add_key(&store, "alice", None).await;
    let app = app
        .layer(UsageLayer::new(Arc::new(PriceTable::default())))
        .layer(LimitLayer::new(limiter.clone()))
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                use http_body_util::BodyExt;
                let (mut parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                parts.extensions.insert(agw_tower::limits::Collected {
                    plain: bytes.clone(),
                });
                next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                    .await
            },
        ))
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    let addr = support::serve(app).await;
    let h = [("x-api-key", secret.as_str())];
    let alice = Scope::Key("alice".into());
    let spent = || async {
        limiter
            .spent(&alice, agw_tower::auth::key::unix_now())
            .await
            .unwrap()
            .tokens_today
    };
    let body = format!(
        r#"{{"model":"m","stream":true,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4000)
    );
    let input = agw_core::usage::input_estimate(body.as_bytes());
    assert!(input > 900, "{input}");
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        support::post(addr, "/v1/messages", &h, &body),
    )
    .await;
    assert!(cut.is_err(), "the request should still be in flight");
    // Held while in flight, then settled to its input once the server sees the client gone.
    let mut held = spent().await;
    assert!(held > 200_000, "{held}");
    for _ in 0..400 {
        if held == input {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        held = spent().await;
    }
    assert_eq!(
        held, input,
        "the abandoned request was not settled to its input"
    );
    // One that did not ask for a stream keeps what it held (tenth red-team review): its
    // provider may finish and bill it whole.
    let plain = body.replace(r#""stream":true,"#, "");
    let hold =
        agw_tower::limit::MAX_OUTPUT_ESTIMATE + agw_core::usage::input_estimate(plain.as_bytes());
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        support::post(addr, "/v1/messages", &h, &plain),
    )
    .await;
    assert!(cut.is_err(), "the request should still be in flight");
    // A streamed one cut after it settles to its input once the server sees its client gone;
    // by then the first was seen gone too, and its hold stayed its charge (the old rule gave
    // back all but its input).
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        support::post(addr, "/v1/messages", &h, &body),
    )
    .await;
    assert!(cut.is_err(), "the request should still be in flight");
    let want = input + hold + input;
    let mut now = spent().await;
    for _ in 0..400 {
        if now == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        now = spent().await;
    }
    assert_eq!(now, want);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(spent().await, want, "nothing settled later");
}

/// A batch's dollar hold is its requests' estimates at their models' prices, kept as its
/// charge (their usage comes later, with the results); a batch whose requests cannot be read is
/// refused where a limit would charge it.
#[tokio::test]
async fn a_batch_is_priced_against_dollar_budgets() {
    let prices = Arc::new(
        PriceTable::new([(
            "claude-opus-*",
            Price {
                input: 15.0,
                output: 75.0,
                ..Price::default()
            },
        )])
        .unwrap(),
    );
    let limiter = Arc::new(
        limiter(LimitPolicy {
            per_key: Limits {
                usd_per_day: Some(5.0),
                ..Limits::default()
            },
            ..LimitPolicy::default()
        })
        .with_prices(prices.clone()),
    );
    let routes = axum::Router::new().route(
        "/v1/messages/batches",
        axum::routing::post(|| async { r#"{"id":"msgbatch_1","type":"message_batch"}"# }),
    );
    let (addr, secret) = serve_read(&limiter, prices, Api::Anthropic, routes).await;
    let h = [("x-api-key", secret.as_str())];
    let one = r#"{"custom_id":"a","params":{"model":"claude-opus-4-1","max_tokens":30000,"messages":[]}}"#;
    let batch = format!(r#"{{"requests":[{one},{one}]}}"#);
    let r = support::post(addr, "/v1/messages/batches", &h, &batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // 2 × 30,000 output tokens at $75/M, and the input: just over $4.50.
    let mut usd = 0;
    for _ in 0..200 {
        usd = limiter
            .spent(
                &Scope::Key("alice".into()),
                agw_tower::auth::key::unix_now(),
            )
            .await
            .unwrap()
            .usd_micros_today;
        if usd > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!((4_500_000..4_600_000).contains(&usd), "{usd}");
    let r = support::post(addr, "/v1/messages/batches", &h, &batch).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("$0.50 left"), "{}", r.body);
    // A request without a model: the batch cannot be charged, and is refused.
    let bad = format!(r#"{{"requests":[{one},{{"custom_id":"b","params":{{"max_tokens":9}}}}]}}"#);
    let r = support::post(addr, "/v1/messages/batches", &h, &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("cannot be read"), "{}", r.body);
}

/// A response body that sends one frame and then nothing, for as long as it is read.
struct OneThenNothing(Option<bytes::Bytes>);

impl http_body::Body for OneThenNothing {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

/// A stream cut off mid-way is charged at least its input's estimate: the provider bills the
/// input whatever the client read, and OpenAI reports usage only in the last chunk (found by
/// the third red-team review: such a stream cost its deltas only).
#[tokio::test]
async fn a_stream_cut_off_is_charged_at_least_its_input() {
    use http_body_util::BodyExt;
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(10_000_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let prices = Arc::new(PriceTable::new([("*", Price::default())]).unwrap());
    let routes =
        axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(|| async {
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::new(OneThenNothing(Some(bytes::Bytes::from_static(
                        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
                    )))))
                    .unwrap()
            }),
        );
    let (addr, secret) = serve_read(&limiter, prices, Api::OpenAi, routes).await;
    let prompt = "x ".repeat(20_000);
    let body = format!(
        r#"{{"model":"gpt-4o","max_tokens":10,"stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    );
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-api-key", secret.as_str())
        .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.into_body();
    let first = stream.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some());
    drop(stream);
    drop(client);
    let input = body.len().div_ceil(4) as u64;
    let mut spent = 0;
    for _ in 0..400 {
        spent = limiter
            .spent(
                &Scope::Key("alice".into()),
                agw_tower::auth::key::unix_now(),
            )
            .await
            .unwrap()
            .tokens_today;
        if spent >= input && spent < input + 1000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        spent >= input,
        "charged {spent} tokens for an input of about {input}"
    );
}

/// Found by the security review: a client that read a long answer and left just before
/// `message_delta` spent its input only (`message_start` says one output token). Budgets and
/// the minute's tokens are charged the output it read.
#[tokio::test]
async fn a_stream_left_before_its_final_usage_spends_the_output_it_delivered() {
    use http_body_util::BodyExt;
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_minute: Some(10_000_000),
            tokens_per_day: Some(10_000_000),
            usd_per_day: Some(1000.0),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let price = Price {
        input: 3.0,
        output: 15.0,
        cache_write: 3.75,
        cache_read: 0.3,
    };
    let prices = Arc::new(PriceTable::new([("*", price)]).unwrap());
    let mut events = vec![bytes::Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n",
    )];
    let text = "all work and no play makes a long answer ".repeat(10);
    for _ in 0..300 {
        events.push(bytes::Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
        )));
    }
    let wire: usize = events.iter().map(bytes::Bytes::len).sum();
    let read = 300 * text.len() as u64;
    let routes = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move || {
            let events = events.clone();
            async move {
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(axum::body::Body::new(ThenNothing(events.into())))
                    .unwrap()
            }
        }),
    );
    let (addr, secret) = serve_read(&limiter, prices, Api::Anthropic, routes).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::post(format!("http://{addr}/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", secret.as_str())
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"claude-sonnet-4-5","max_tokens":64000,"stream":true,"messages":[{"role":"user","content":"write a long answer"}]}"#,
        )))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.into_body();
    let mut got = 0;
    while got < wire {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), stream.frame())
            .await
            .expect("a frame")
            .unwrap()
            .unwrap();
        got += frame.data_ref().map_or(0, bytes::Bytes::len);
    }
    drop(stream);
    drop(client);
    // At least 80% of a token per 4 bytes of the text read, and its input.
    let least = 100 + read * 8 / 10 / 4;
    let who = Scope::Key("alice".into());
    let mut spent = None;
    for _ in 0..400 {
        let s = limiter
            .spent(&who, agw_tower::auth::key::unix_now())
            .await
            .unwrap();
        // Settled: the 64,000-token hold is replaced.
        if s.tokens_today < 64_000 {
            spent = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let spent = spent.expect("the stream is settled");
    assert!(
        spent.tokens_today >= least,
        "charged {} tokens, at least {least} read",
        spent.tokens_today
    );
    assert!(
        spent.usd_micros_today >= 100 * 3 + (least - 100) * 15,
        "charged {} micro-dollars",
        spent.usd_micros_today
    );
}

/// A response body that sends its frames, then never ends (an upstream still generating).
struct ThenNothing(std::collections::VecDeque<bytes::Bytes>);

impl http_body::Body for ThenNothing {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        match self.0.pop_front() {
            Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

/// `routes` as `agw serve` stacks the team layers: usage and the limiter inside the body stage
/// (so the limiter reads the collected body; with token limits every body that may be JSON), then key authentication and classification for
/// `api`, served: its address and the secret of alice's key.
async fn serve_read(
    limiter: &Arc<Limiter>,
    prices: Arc<PriceTable>,
    api: Api,
    routes: axum::Router,
) -> (std::net::SocketAddr, String) {
    use agw_core::guard::Policy;
    use agw_tower::guard::RequestGuardLayer;
    let store = FileKeyStore::in_memory();
    let secret = support::add_key(&store, "alice", None).await;
    let app = routes
        .layer(UsageLayer::new(prices))
        .layer(LimitLayer::new(limiter.clone()))
        .layer(
            RequestGuardLayer::new(Policy::empty())
                .read_always(true)
                .read_json_bodies(true),
        )
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(RouteTable::claude_code(), api));
    (support::serve(app).await, secret)
}

#[tokio::test]
async fn the_layer_answers_429_and_reports_what_remains() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            requests_per_minute: Some(100),
            tokens_per_minute: Some(1000),
            ..Limits::default()
        },
        default_estimate: 500,
        ..LimitPolicy::default()
    }));
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(upstream))
        .route("/v1/messages/count_tokens", axum::routing::post(upstream));
    let (addr, secret) = serve_limited(&limiter, app).await;
    let h = [("x-api-key", secret.as_str())];
    // Each request holds 500 and settles at 400 tokens after its end.
    let r = support::post(addr, "/v1/messages", &h, "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-agw-ratelimit-requests-remaining"), Some("99"));
    assert_eq!(r.header("x-agw-ratelimit-tokens-remaining"), Some("500"));
    // The settle runs after the body ended; poll (bounded) until the correction is in.
    let mut seen = None;
    for _ in 0..200 {
        let r = support::post(addr, "/v1/messages", &h, "{}").await;
        if r.status == 429 {
            assert_eq!(r.json()["error"]["type"], "rate_limit_error");
            assert!(r.header("retry-after").is_some());
            seen = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Within one minute 1000 tokens allow at most two or three such requests: a 429 comes.
    let r = seen.expect("a 429 within the minute's token limit");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 tokens per minute for key `alice`")
    );
}

/// Found by the audit: message batches and passthrough endpoints (files, images, OpenAI
/// batches) were never limited — a batch holds many billed requests. Every route but model
/// listing and token counting counts against the request limits.
#[tokio::test]
async fn batches_and_passthrough_count_against_request_limits() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            requests_per_minute: Some(3),
            tokens_per_minute: Some(1000),
            ..Limits::default()
        },
        default_estimate: 800,
        ..LimitPolicy::default()
    }));
    // A reply without usage (as a batch's creation or a file upload gets).
    let no_usage = |_req: axum::extract::Request| async {
        http::Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"id":"x"}"#))
            .unwrap()
    };
    let app = axum::Router::new()
        .route("/v1/messages/batches", axum::routing::post(no_usage))
        .route("/v1/messages/count_tokens", axum::routing::post(upstream))
        .route("/v1/files", axum::routing::post(no_usage))
        .route("/v1/models", axum::routing::get(upstream));
    let (addr, secret) = serve_limited(&limiter, app).await;
    let h = [("x-api-key", secret.as_str())];
    // Free: token counting and model listing, however often.
    for _ in 0..5 {
        let r = support::post(addr, "/v1/messages/count_tokens", &h, "{}").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("x-agw-ratelimit-requests-remaining").is_none());
    }
    let batch = r#"{"requests":[{"custom_id":"a","params":{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}}]}"#;
    let r = support::post(addr, "/v1/messages/batches", &h, batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-agw-ratelimit-requests-remaining"), Some("2"));
    // Such a request holds no tokens: the minute's 1000 stay whole.
    assert_eq!(r.header("x-agw-ratelimit-tokens-remaining"), Some("1000"));
    let r = support::post(addr, "/v1/files", &h, "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-agw-ratelimit-requests-remaining"), Some("1"));
    let r = support::post(addr, "/v1/messages/batches", &h, batch).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = support::post(addr, "/v1/messages/batches", &h, batch).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
}

/// The request guard reads `max_tokens` with the model; the limiter holds that (taken from the
/// guard's report, not read again), not the default, with the input's estimate.
#[tokio::test]
async fn the_estimate_is_the_max_tokens_the_request_guard_read() {
    use agw_core::guard::{Policy, Rule};
    use agw_tower::guard::RequestGuardLayer;
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_minute: Some(1000),
            ..Limits::default()
        },
        default_estimate: 500,
        ..LimitPolicy::default()
    }));
    let policy = Policy::builder()
        .rule(Rule::literals("k", ["credit card"]).reject("no"))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(upstream))
        .layer(LimitLayer::new(limiter))
        .layer(RequestGuardLayer::new(policy))
        .layer(axum::middleware::from_fn(
            |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
                req.extensions_mut().insert(alice());
                next.run(req).await
            },
        ))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    let addr = support::serve(app).await;
    let body = r#"{"model":"m","max_tokens":300,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = support::post(addr, "/v1/messages", &[], body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // 300 output tokens and the input's estimate, a token per four bytes.
    let held = 300 + body.len().div_ceil(4);
    let left = (1000 - held).to_string();
    assert_eq!(
        r.header("x-agw-ratelimit-tokens-remaining"),
        Some(left.as_str())
    );
}

/// A request refused while others are in flight is told to retry soon only when it would fit
/// once they settle; when what is already spent leaves it no room anyway, the answer is the
/// window's end (found by the fourth review's regression round: a 429 said 10 s, then 59 s).
#[tokio::test]
async fn a_refusal_says_retry_soon_only_when_in_flight_requests_can_make_room() {
    let l = limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_minute: Some(5000),
            tokens_per_day: Some(1_000_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    });
    let early = NOW - 56; // 12:34:00, a minute to go
    let spent = l.admit(Some(&alice()), Some(100), early).await.unwrap();
    l.settle(&spent, Some(3538), None, true).await;
    let _flying = l.admit(Some(&alice()), Some(300), early).await.unwrap();
    // 3538 spent + 300 held: 2500 more would not fit even if the 300 came back (the minute's
    // end); 1200 would once they do (retry soon).
    for (tokens, held, retry) in [(2500, false, "60"), (1200, true, "10")] {
        let e = l
            .admit(Some(&alice()), Some(tokens), early)
            .await
            .unwrap_err();
        let Rejection::Limited { fit, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(matches!(fit, Fit::Held { .. }), held, "{tokens}: {e:?}");
        let mut h = http::HeaderMap::new();
        e.headers(&mut h);
        assert_eq!(h["retry-after"], retry, "{tokens}: {h:?}");
    }
}

/// Found by the tenth red-team review: a request asking for `n` completions (or `best_of`)
/// held one completion's output (`n: 128` spent 120 times a budget), and a cap written as
/// `4e4`, `40000.0` or `"40000"` — 40000 to the servers that accept it — or as legacy
/// completions' `max_tokens_to_sample` held the default estimate. Each now holds what it may
/// generate: more than the budget has left is refused before it goes upstream.
#[tokio::test]
async fn completions_asked_for_and_caps_in_any_form_are_held() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(100_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let prices = Arc::new(PriceTable::new([("*", Price::default())]).unwrap());
    let answer = || async {
        r#"{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#
    };
    let routes = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(answer))
        .route("/v1/completions", axum::routing::post(answer))
        .route("/v1/complete", axum::routing::post(answer));
    let (addr, secret) = serve_read(&limiter, prices, Api::OpenAi, routes).await;
    let h = [("authorization", format!("Bearer {secret}"))];
    let h = [("authorization", h[0].1.as_str())];
    let chat = |extra: &str| {
        format!(r#"{{"model":"m",{extra}"messages":[{{"role":"user","content":"hi"}}]}}"#)
    };
    for (path, body) in [
        ("/v1/chat/completions", chat(r#""max_tokens":16000,"n":8,"#)),
        ("/v1/chat/completions", chat(r#""n":"30","#)),
        (
            "/v1/chat/completions",
            chat(r#""max_completion_tokens":2e5,"#),
        ),
        ("/v1/chat/completions", chat(r#""max_tokens":200000.0,"#)),
        ("/v1/chat/completions", chat(r#""max_tokens":"200000","#)),
        (
            "/v1/completions",
            r#"{"model":"m","prompt":"hi","max_tokens":1000,"best_of":128,"n":1}"#.to_owned(),
        ),
        (
            "/v1/complete",
            r#"{"model":"m","prompt":"\n\nHuman: hi\n\nAssistant:","max_tokens_to_sample":200000}"#
                .to_owned(),
        ),
        // Twelfth session: each prompt of a list is answered (fifty prompts held one).
        (
            "/v1/completions",
            format!(
                r#"{{"model":"m","prompt":{:?},"max_tokens":5000}}"#,
                ["hi"; 50]
            ),
        ),
    ] {
        let r = support::post(addr, path, &h, &body).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(
            r.body.contains("daily budget of 100000 tokens"),
            "{}",
            r.body
        );
    }
    // What fits is admitted: two completions of 16000, one of 40000 written as a float.
    for body in [
        chat(r#""max_tokens":16000,"n":2,"#),
        chat(r#""max_tokens":4e4,"#),
    ] {
        let r = support::post(addr, "/v1/chat/completions", &h, &body).await;
        assert_eq!(r.status, 200, "{body}: {}", r.body);
    }
    let five = format!(
        r#"{{"model":"m","prompt":{:?},"max_tokens":5000}}"#,
        ["hi"; 5]
    );
    let r = support::post(addr, "/v1/completions", &h, &five).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Found by the tenth red-team review: a generation on a passthrough path (Ollama's
/// `/api/chat` behind an OpenAI-compatible backend) held nothing while it ran, so twenty at
/// once were all admitted against a budget for two. It now holds its cap (`options.num_predict`
/// or a top-level cap; the default without one) and its input, and is charged what its
/// response reports — nothing without a report, as any passthrough call.
#[tokio::test]
async fn a_generation_on_a_passthrough_path_holds_what_it_may_use() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(10_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let prices = Arc::new(PriceTable::new([("*", Price::default())]).unwrap());
    let routes = axum::Router::new()
        .route(
            "/api/chat",
            axum::routing::post(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"model":"llama3","message":{"role":"assistant","content":"hi"},"done":true,"prompt_eval_count":30,"eval_count":12}"#,
                )
            }),
        )
        .route(
            "/api/quiet",
            axum::routing::post(|| async {
                ([("content-type", "application/json")], r#"{"ok":true}"#)
            }),
        )
        .route(
            "/v1/moderations",
            axum::routing::post(|| async {
                ([("content-type", "application/json")], r#"{"results":[]}"#)
            }),
        )
        .route(
            "/api/slow",
            axum::routing::post(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                ([("content-type", "application/json")], r#"{"ok":true}"#)
            }),
        );
    let (addr, secret) = serve_read(&limiter, prices, Api::OpenAi, routes).await;
    let h = [("x-api-key", secret.as_str())];
    let chat = |options: &str| {
        format!(r#"{{"model":"llama3","messages":[{{"role":"user","content":"hi"}}]{options}}}"#)
    };
    // More than the budget has: refused before it goes upstream.
    for body in [
        chat(r#","options":{"num_predict":20000}"#),
        chat(r#","max_tokens":"20000""#),
    ] {
        let r = support::post(addr, "/api/chat", &h, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.body.contains("daily budget of 10000 tokens"),
            "{}",
            r.body
        );
    }
    // An endpoint that generates no tokens is not held as a generation, whatever it names.
    let r = support::post(
        addr,
        "/v1/moderations",
        &h,
        r#"{"model":"omni-moderation-latest","input":"hi","max_tokens":20000}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Charged what the response reports (30 + 12), the hold given back.
    let r = support::post(
        addr,
        "/api/chat",
        &h,
        &chat(r#","options":{"num_predict":5000}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(alice_tokens_reaching(&limiter, 42).await, 42);
    // A generation whose response reports nothing is charged nothing once it ends: its hold
    // (the default 4,096 and its input) is given back, so one that needs all but the 42 spent
    // fits again (while the hold stands it is told to retry).
    let r = support::post(addr, "/api/quiet", &h, &chat("")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let big = chat(r#","options":{"num_predict":9900}"#);
    assert_eq!(post_past_429(addr, &h, "/api/chat", &big).await, 200);
    assert_eq!(
        alice_tokens_reaching(&limiter, 84).await,
        84,
        "the quiet call charged nothing"
    );
    // One whose client goes away before its response is charged nothing either (its response
    // reports nothing), not its hold (review of the tenth review's fixes).
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        support::post(
            addr,
            "/api/slow",
            &h,
            &chat(r#","options":{"num_predict":5000}"#),
        ),
    )
    .await;
    assert!(cut.is_err(), "the request should still be in flight");
    // 84 spent: 6,000 fits only once the abandoned call's 5,000 is given back.
    let big = chat(r#","options":{"num_predict":6000}"#);
    assert_eq!(
        post_past_429(addr, &h, "/api/chat", &big).await,
        200,
        "the abandoned call's hold was given back"
    );
    assert_eq!(
        alice_tokens_reaching(&limiter, 126).await,
        126,
        "the abandoned call charged nothing"
    );
}

/// Found by the twelfth session's black-box review: a Gemini or Bedrock call, whose model is
/// in the path and whose counts are in their own names, held nothing and was charged nothing.
#[tokio::test]
async fn gemini_and_bedrock_calls_are_held_and_charged() {
    let limiter = Arc::new(limiter(LimitPolicy {
        per_key: Limits {
            tokens_per_day: Some(10_000),
            ..Limits::default()
        },
        ..LimitPolicy::default()
    }));
    let prices = Arc::new(PriceTable::new([("*", Price::default())]).unwrap());
    let routes = axum::Router::new()
        .route(
            "/v1beta/models/{call}",
            axum::routing::post(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"candidates":[],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":10,"thoughtsTokenCount":2}}"#,
                )
            }),
        )
        .route(
            "/model/{id}/converse",
            axum::routing::post(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"output":{},"usage":{"inputTokens":20,"outputTokens":5}}"#,
                )
            }),
        );
    let (addr, secret) = serve_read(&limiter, prices, Api::OpenAi, routes).await;
    let h = [("x-api-key", secret.as_str())];
    let gemini = "/v1beta/models/gemini-2.5-pro:generateContent";
    let r = support::post(
        addr,
        gemini,
        &h,
        r#"{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":20000}}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("daily budget of 10000 tokens"),
        "{}",
        r.body
    );
    let r = support::post(
        addr,
        gemini,
        &h,
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(alice_tokens_reaching(&limiter, 42).await, 42);
    let r = support::post(
        addr,
        "/model/anthropic.claude-opus-4/converse",
        &h,
        r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":100}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(alice_tokens_reaching(&limiter, 67).await, 67);
}

/// Alice's tokens today once they reach `want` (settling runs after the response; polled,
/// bounded at about four seconds), or what they are then.
async fn alice_tokens_reaching(limiter: &Limiter, want: u64) -> u64 {
    let mut now = 0;
    for _ in 0..400 {
        now = limiter
            .spent(
                &Scope::Key("alice".into()),
                agw_tower::auth::key::unix_now(),
            )
            .await
            .unwrap()
            .tokens_today;
        if now == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    now
}

/// The status of `body` posted to `path` once it is not told to retry (a hold it waits on is
/// given back after the response; polled, bounded at about four seconds).
async fn post_past_429(
    addr: std::net::SocketAddr,
    h: &[(&str, &str)],
    path: &str,
    body: &str,
) -> u16 {
    let mut status = 0;
    for _ in 0..400 {
        status = support::post(addr, path, h, body).await.status;
        if status != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    status
}
