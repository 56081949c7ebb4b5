//! Limits and keys in a real Redis: two limiters enforce one limit in total; a slow or dead
//! Redis never hangs a request.
#![cfg(feature = "redis")]

#[path = "team_support/mod.rs"]
mod support;

use agw_tower::auth::key::{self, KeyHash, KeyRecord};
use agw_tower::auth::{Identity, IdentityKind, KeyStore, RedisKeyStore};
use agw_tower::limit::{
    FailMode, LimitPolicy, Limiter, Limits, RedisConnection, RedisStore, Rejection, Scope,
    StoreFailure,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Redis;

const NOW: u64 = 1_795_869_296;
const TIMEOUT: Duration = Duration::from_millis(250);

fn alice() -> Identity {
    Identity {
        name: "alice".into(),
        team: None,
        kind: IdentityKind::Key,
        groups: vec![],
    }
}

/// Another key of alice's kind: `dev{n}`.
fn dev(n: usize) -> Identity {
    Identity {
        name: format!("dev{n}").into(),
        ..alice()
    }
}

fn policy(limits: Limits) -> LimitPolicy {
    LimitPolicy {
        per_key: limits,
        timeout: TIMEOUT,
        prefix: format!("agw-test-{}", std::process::id()),
        ..LimitPolicy::default()
    }
}

async fn limiter(redis: &Redis, limits: Limits) -> Limiter {
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    Limiter::new(policy(limits), Arc::new(RedisStore::new(con)))
}

#[tokio::test]
async fn two_limiters_against_one_redis_enforce_one_limit_in_total() {
    let redis = Redis::start();
    let rpm = Limits {
        requests_per_minute: Some(7),
        ..Limits::default()
    };
    // Two independent stacks: separate connections, separate limiters.
    let a = Arc::new(limiter(&redis, rpm).await);
    let b = Arc::new(limiter(&redis, rpm).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            l.admit(Some(&alice()), None, NOW).await.is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 7, "one limit across both limiters");
}

/// A Redis that speaks TLS (`rediss://`), with a certificate of a private CA: reached with that
/// CA's file, refused with the bundled Mozilla roots (the server is not who they vouch for),
/// and a CA file for a `redis://` URL is a configuration error.
#[tokio::test]
async fn rediss_with_a_private_ca() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/redis_tls");
    let (cert, key) = (format!("{dir}/server.pem"), format!("{dir}/server.key"));
    let ca = std::fs::read(format!("{dir}/ca.pem")).unwrap();
    let mut started = None;
    for _ in 0..10 {
        let tls_port = support::free_port().to_string();
        let more = [
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-auth-clients",
            "no",
        ];
        if let Some(redis) = Redis::start_with(support::free_port(), &more) {
            started = Some((redis, tls_port));
            break;
        }
    }
    let (_redis, tls_port) = started.expect("redis-server with TLS starts");
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let con = RedisConnection::open_with_ca(&url, &ca, TIMEOUT).unwrap();
    con.wait(Duration::from_secs(5)).await.unwrap();
    let rpm = Limits {
        requests_per_minute: Some(2),
        ..Limits::default()
    };
    let l = Limiter::new(policy(rpm), Arc::new(RedisStore::new(con)));
    let mut admitted = Vec::new();
    for _ in 0..3 {
        admitted.push(l.admit(Some(&alice()), None, NOW).await.is_ok());
    }
    assert_eq!(admitted, [true, true, false]);
    // The bundled roots do not vouch for a private CA's server.
    let untrusted = RedisConnection::open(&url, TIMEOUT).unwrap();
    assert!(untrusted.wait(Duration::from_millis(1500)).await.is_err());
    let e = RedisConnection::check_url_with_ca("redis://127.0.0.1:1/", &ca).unwrap_err();
    assert!(e.0.contains("no rediss:// URL"), "{}", e.0);
    let e = RedisConnection::check_url_with_ca(&url, b"not a certificate").unwrap_err();
    assert!(e.0.contains("no PEM certificate"), "{}", e.0);
}

/// A connection of the test's own, beside the limiters' (to look at or disturb Redis).
async fn admin(redis: &Redis) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// Script runs so far (`EVALSHA` and `EVAL` calls), from `INFO commandstats`.
async fn script_runs(con: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .map(|l| {
            let calls = l.split("calls=").nth(1).unwrap().split(',').next().unwrap();
            calls.parse::<u64>().unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_are_batched_and_each_key_keeps_its_own_limit() {
    let redis = Redis::start();
    let mut admin = admin(&redis).await;
    let l = Arc::new(
        limiter(
            &redis,
            Limits {
                requests_per_minute: Some(3),
                tokens_per_minute: Some(10_000),
                ..Limits::default()
            },
        )
        .await,
    );
    let before = script_runs(&mut admin).await;
    // 8 keys, 25 requests each, all at once: each key admits exactly 3, and a refused
    // request charges nothing (its key's tokens hold 3 estimates, no more).
    let mut tasks = Vec::new();
    for i in 0..200 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            (
                i % 8,
                l.admit(Some(&dev(i % 8)), Some(100), NOW).await.is_ok(),
            )
        }));
    }
    let mut admitted = [0; 8];
    for t in tasks {
        let (k, ok) = t.await.unwrap();
        admitted[k] += usize::from(ok);
    }
    assert_eq!(admitted, [3; 8], "each key's own limit, exactly");
    let runs = script_runs(&mut admin).await - before;
    assert!(
        runs < 100,
        "200 concurrent acquires in {runs} script runs: not batched"
    );
    // What the limiter leased for its next requests goes back to Redis.
    l.give_back().await.unwrap();
    let tokens: Vec<Option<u64>> = redis::cmd("MGET")
        .arg(
            (0..8)
                .map(|k| format!("agw-test-{}:k:dev{k}:tpm:{}", std::process::id(), NOW / 60))
                .collect::<Vec<_>>(),
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(tokens, vec![Some(300); 8], "refused requests hold nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_share_script_runs_with_acquires_and_all_are_charged() {
    let redis = Redis::start();
    let mut admin = admin(&redis).await;
    let l = Arc::new(
        limiter(
            &redis,
            Limits {
                tokens_per_minute: Some(1_000_000),
                ..Limits::default()
            },
        )
        .await,
    );
    let before = script_runs(&mut admin).await;
    // 100 requests, each admitted holding 500 tokens and settled at 7: the minute counter
    // ends at 700 and the month's spend at 100 × 3 µ$, however the operations were batched.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let t = l.admit(Some(&alice()), Some(500), NOW).await.unwrap();
            l.settle(&t, Some(7), Some(3), true).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let runs = script_runs(&mut admin).await - before;
    assert!(
        runs < 60,
        "200 operations in {runs} script runs: not batched"
    );
    l.give_back().await.unwrap();
    let tpm: Option<u64> = redis::cmd("GET")
        .arg(format!(
            "agw-test-{}:k:alice:tpm:{}",
            std::process::id(),
            NOW / 60
        ))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(tpm, Some(700));
    let spent = l.spent(&Scope::Key("alice".into()), NOW).await.unwrap();
    assert_eq!((spent.usd_micros_month, spent.tokens_month), (300, 700));
}

#[tokio::test]
async fn a_script_redis_forgot_is_loaded_again() {
    let redis = Redis::start();
    let mut admin = admin(&redis).await;
    let l = limiter(
        &redis,
        Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        },
    )
    .await;
    assert!(l.admit(Some(&alice()), None, NOW).await.is_ok());
    // As after a Redis restart without persistence: the script cache is empty.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(l.admit(Some(&alice()), None, NOW).await.is_ok());
    assert!(
        l.admit(Some(&alice()), None, NOW).await.is_err(),
        "the count survived: 2 admitted, the third refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_max_tokens_fails_nothing_for_itself_or_its_batch() {
    let redis = Redis::start();
    let (seen, hook) = recorder();
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let l = Arc::new(
        Limiter::new(
            policy(Limits {
                tokens_per_minute: Some(1_000_000),
                ..Limits::default()
            }),
            Arc::new(RedisStore::new(con)),
        )
        .on_store_failure(hook),
    );
    // A client's `max_tokens` of u64::MAX, among others admitted in the same batches.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let estimate = if i == 7 { u64::MAX } else { 100 };
            l.admit(Some(&dev(i % 4)), Some(estimate), NOW)
                .await
                .is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the store failed: {:?}",
        seen.lock().unwrap()
    );
    // dev3's counter took the huge estimate when it came first (then dev3's other nine are
    // refused: 31 admitted) or refused it (the rest fit: 37 to 40, by how the batches fell);
    // the other keys' 30 always fit. (The first form allowed only the second outcome, and
    // failed when the scheduler ran the huge request first.)
    assert!(
        admitted == 31 || (37..=40).contains(&admitted),
        "{admitted}"
    );
}

#[tokio::test]
async fn tokens_and_spend_are_shared_and_counters_expire() {
    let redis = Redis::start();
    let limits = Limits {
        tokens_per_minute: Some(1000),
        usd_per_month: Some(0.05),
        ..Limits::default()
    };
    let a = limiter(&redis, limits).await;
    let b = limiter(&redis, limits).await;
    let t = a.admit(Some(&alice()), Some(800), NOW).await.unwrap();
    // Held on a, seen by b.
    assert!(b.admit(Some(&alice()), Some(800), NOW).await.is_err());
    a.settle(&t, Some(200), Some(60_000), true).await;
    // The spend ($0.06) passed the monthly budget: b refuses, naming it.
    let e = b.admit(Some(&alice()), Some(10), NOW).await.unwrap_err();
    assert!(
        e.error().message().contains("monthly budget of $0.05"),
        "{}",
        e.error().message()
    );
    // Counters carry a TTL: minute counters go, month totals stay about a year.
    let mut con = admin(&redis).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("agw-test-*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&k)
            .query_async(&mut con)
            .await
            .unwrap();
        if k.contains(":tpm:") {
            assert!((1..=120).contains(&ttl), "{k}: {ttl}");
        } else {
            assert!(ttl > 86_400, "{k}: {ttl}");
        }
    }
}

async fn names(redis: &Redis) -> Vec<String> {
    let mut con = admin(redis).await;
    redis::cmd("KEYS")
        .arg(format!("agw-test-{}*", std::process::id()))
        .query_async(&mut con)
        .await
        .unwrap()
}

/// The sum of the values of the counters whose names contain `part`.
async fn counted(redis: &Redis, part: &str) -> i64 {
    let mut con = admin(redis).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("agw-test-{}*", std::process::id()))
        .query_async(&mut con)
        .await
        .unwrap();
    let mut sum = 0;
    for k in keys.iter().filter(|k| k.contains(part)) {
        let v: Option<i64> = redis::cmd("GET")
            .arg(k)
            .query_async(&mut con)
            .await
            .unwrap();
        sum += v.unwrap_or(0);
    }
    sum
}

/// Admissions sent while Redis stalls time out (budgets fail closed: 503s a client retries),
/// but Redis runs them when it resumes. What they charged is given back once their late
/// answers come: a stall must not leave holds standing as spend until the day ends
/// (seventeenth session's red-team review: three 503s spent $0.30 of a $1 day, for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_charged_after_their_requests_timed_out_are_given_back() {
    let redis = Redis::start();
    let limits = Limits {
        requests_per_minute: Some(1000),
        usd_per_day: Some(1.0),
        ..Limits::default()
    };
    let l = limiter(&redis, limits).await;
    // One request settled before the stall: its spend stays.
    let t = l
        .admit_costing(Some(&alice()), Some(100), 200_000, NOW)
        .await
        .unwrap();
    l.settle(&t, Some(100), Some(770), true).await;
    let mut settled = 0;
    for _ in 0..100 {
        settled = counted(&redis, ":k:alice:usd:d:").await;
        if settled == 770 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(settled, 770, "{:?}", names(&redis).await);
    let rpm = counted(&redis, ":k:alice:rpm:").await;
    let mut a = admin(&redis).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .query_async(&mut a)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            l.admit_costing(Some(&alice()), Some(100), 100_000, NOW),
        )
        .await
        .expect("never hangs");
        assert_eq!(
            r.unwrap_err(),
            Rejection::Unavailable,
            "budgets fail closed"
        );
    }
    // Redis resumes and runs the three admissions; their answers come late, and the token
    // and dollar holds they charged are given back: the day's spend is what was used. (Each
    // stays counted against the minute's requests: it may have run, failing open.)
    let mut after = (0, 0);
    for _ in 0..250 {
        after = (
            counted(&redis, ":k:alice:usd:d:").await,
            counted(&redis, ":k:alice:tok:d:").await,
        );
        if after == (770, 100) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(after, (770, 100), "(spend today, tokens today)");
    assert!(counted(&redis, ":k:alice:rpm:").await >= rpm);
    // And the budget admits as before the stall.
    let t = l
        .admit_costing(Some(&alice()), Some(100), 900_000, NOW)
        .await
        .expect("the stall spent nothing");
    l.settle(&t, Some(100), Some(770), true).await;
}

/// An admission Redis reaches after its deadline — a stall that outlasts the wait for its
/// answer (fifty times the timeout, at least 5 s) — charges nothing: its caller gave up long
/// before, and its answer may never be read (seventeenth session's second review: a 7 s
/// stall still spent the 503s' holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_that_reaches_redis_after_its_deadline_charges_nothing() {
    let redis = Redis::start();
    let timeout = Duration::from_millis(50);
    let mut p = policy(Limits {
        usd_per_day: Some(1.0),
        ..Limits::default()
    });
    p.timeout = timeout;
    let con = RedisConnection::connect(&redis.url(), timeout)
        .await
        .unwrap();
    let l = Limiter::new(p, Arc::new(RedisStore::new(con)));
    let t = l
        .admit_costing(Some(&alice()), Some(100), 200_000, NOW)
        .await
        .unwrap();
    l.settle(&t, Some(100), Some(770), true).await;
    for _ in 0..100 {
        if counted(&redis, ":k:alice:usd:d:").await == 770 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut a = admin(&redis).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(8000)
        .query_async(&mut a)
        .await
        .unwrap();
    let r = l
        .admit_costing(Some(&alice()), Some(100), 100_000, NOW)
        .await;
    assert_eq!(r.unwrap_err(), Rejection::Unavailable);
    // Redis resumes after 8 s, past the admission's 5 s deadline and the 7 s wait for its
    // answer, and runs it: nothing is charged (without the deadline, nothing would come back).
    tokio::time::sleep(Duration::from_millis(8500)).await;
    let mut spent = 0;
    for _ in 0..150 {
        spent = counted(&redis, ":k:alice:usd:d:").await;
        if spent != 770 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(spent, 770);
}

fn recorder() -> (
    Arc<Mutex<Vec<StoreFailure>>>,
    impl Fn(&StoreFailure) + Send + Sync + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |f: &StoreFailure| {
        s.lock().unwrap().push(f.clone())
    })
}

#[tokio::test]
async fn a_dead_redis_fails_limits_open_and_budgets_closed() {
    let mut redis = Redis::start();
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let (seen, hook) = recorder();
    let rates = Limiter::new(
        policy(Limits {
            requests_per_minute: Some(10),
            ..Limits::default()
        }),
        Arc::new(RedisStore::new(con.clone())),
    )
    .on_store_failure(hook);
    let budgets = Limiter::new(
        policy(Limits {
            usd_per_day: Some(10.0),
            ..Limits::default()
        }),
        Arc::new(RedisStore::new(con)),
    );
    assert!(rates.admit(Some(&alice()), None, NOW).await.is_ok());
    redis.stop();
    // Bounded by the policy's timeout (the outer bound only guards the test itself).
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        rates.admit(Some(&alice()), None, NOW),
    )
    .await
    .expect("never hangs");
    assert!(r.is_ok(), "rate limits fail open");
    let f = seen.lock().unwrap().clone();
    assert_eq!(f.len(), 1);
    assert!(f[0].admitted && f[0].operation == "acquire");
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        budgets.admit(Some(&alice()), None, NOW),
    )
    .await
    .expect("never hangs");
    let e = r.unwrap_err();
    assert_eq!(e, Rejection::Unavailable);
    assert_eq!(e.error().status().as_u16(), 503);
}

#[tokio::test]
async fn a_stalled_redis_times_out_and_the_configured_mode_applies() {
    let redis = Redis::start();
    let (seen, hook) = recorder();
    let mut p = policy(Limits {
        requests_per_minute: Some(10),
        ..Limits::default()
    });
    p.on_error_limits = FailMode::Closed;
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let l = Limiter::new(p, Arc::new(RedisStore::new(con))).on_store_failure(hook);
    // Another client pauses every client for 3 s: Redis is up but answers nobody.
    let mut admin = admin(&redis).await;
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), l.admit(Some(&alice()), None, NOW))
        .await
        .expect("never hangs");
    assert_eq!(
        r.unwrap_err(),
        Rejection::Unavailable,
        "limits configured to fail closed"
    );
    let f = seen.lock().unwrap().clone();
    assert_eq!(f.len(), 1);
    assert!(!f[0].admitted);
}

#[tokio::test]
async fn a_key_created_on_one_replica_works_on_another() {
    let redis = Redis::start();
    let prefix = format!("agw-keys-{}", std::process::id());
    let con_a = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let con_b = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let a = RedisKeyStore::new(con_a, prefix.clone(), TIMEOUT);
    let b = RedisKeyStore::new(con_b, prefix, TIMEOUT).cache_ttl(Duration::ZERO);
    let (secret, hash) = key::generate().unwrap();
    a.insert(KeyRecord {
        name: "alice".into(),
        team: Some("platform".into()),
        hash: hash.to_hex(),
        created: key::unix_now(),
        expires: None,
        revoked: false,
    })
    .await
    .unwrap();
    let found = b.lookup(KeyHash::of(&secret)).await.unwrap().unwrap();
    assert_eq!(&*found.name, "alice");
    assert!(found.is_valid_at(key::unix_now()));
    // Names are unique across replicas.
    let (_, other) = key::generate().unwrap();
    let dup = KeyRecord {
        hash: other.to_hex(),
        ..found.clone()
    };
    assert!(b.insert(dup).await.is_err());
    assert_eq!(b.list().await.unwrap().len(), 1);
    // Revoked on a: b (without a cache) refuses it at once.
    assert!(a.revoke("alice".into()).await.unwrap());
    assert!(b.lookup(hash).await.unwrap().unwrap().revoked);
    // Redis stores only the hash.
    let mut con = admin(&redis).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    for k in keys {
        let t: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut con)
            .await
            .unwrap();
        let dump = if t == "hash" {
            let m: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap();
            format!("{m:?}")
        } else {
            redis::cmd("GET")
                .arg(&k)
                .query_async::<String>(&mut con)
                .await
                .unwrap()
        };
        assert!(!dump.contains(&secret[4..]), "{k}");
    }
}

/// agw starts while Redis is down: the connection is made in the background once Redis
/// answers, and operations fail (never hang) until then.
#[tokio::test]
async fn a_connection_opened_before_redis_starts_connects_once_it_does() {
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let con = RedisConnection::open(&url, TIMEOUT).unwrap();
    assert!(con.get().is_err());
    assert!(con.ping(TIMEOUT).await.is_err());
    let store = RedisStore::new(con.clone());
    let l = Limiter::new(
        policy(Limits {
            requests_per_minute: Some(5),
            ..Limits::default()
        }),
        Arc::new(store),
    );
    assert!(
        l.admit(Some(&alice()), None, NOW).await.is_ok(),
        "limits fail open"
    );
    let Some(_redis) = support::Redis::start_on(port) else {
        panic!("redis-server did not start on port {port}");
    };
    con.wait(Duration::from_secs(10)).await.unwrap();
    con.ping(TIMEOUT).await.unwrap();
    for _ in 0..5 {
        assert!(l.admit(Some(&alice()), None, NOW).await.is_ok());
    }
    assert!(
        l.admit(Some(&alice()), None, NOW).await.is_err(),
        "counted in Redis now"
    );
    // A URL that is not a Redis URL is refused at once.
    assert!(RedisConnection::open("http://127.0.0.1:1/", TIMEOUT).is_err());
}

/// While Redis is down, a key looked up before keeps its last answer (for an hour by
/// default), so an outage does not lock out every developer; an unknown key fails as before.
#[tokio::test]
async fn a_key_seen_before_an_outage_keeps_working_while_redis_is_down() {
    let mut redis = Redis::start();
    let prefix = format!("agw-stale-{}", std::process::id());
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let store = RedisKeyStore::new(con.clone(), prefix.clone(), TIMEOUT).cache_ttl(Duration::ZERO);
    let strict = RedisKeyStore::new(con, prefix, TIMEOUT)
        .cache_ttl(Duration::ZERO)
        .stale_ttl(Duration::ZERO);
    let (secret, hash) = key::generate().unwrap();
    store
        .insert(KeyRecord {
            name: "alice".into(),
            team: None,
            hash: hash.to_hex(),
            created: key::unix_now(),
            expires: None,
            revoked: false,
        })
        .await
        .unwrap();
    assert!(store.lookup(KeyHash::of(&secret)).await.unwrap().is_some());
    assert!(strict.lookup(KeyHash::of(&secret)).await.unwrap().is_some());
    redis.stop();
    let found = tokio::time::timeout(Duration::from_secs(10), store.lookup(KeyHash::of(&secret)))
        .await
        .expect("never hangs")
        .unwrap()
        .expect("the last answer stands");
    assert_eq!(&*found.name, "alice");
    let (unknown, _) = key::generate().unwrap();
    assert!(store.lookup(KeyHash::of(&unknown)).await.is_err());
    assert!(strict.lookup(KeyHash::of(&secret)).await.is_err());
}

/// A record for `name` created at `created`, with a new key; returns the key too.
fn new_key(name: &str, created: u64, expires: Option<u64>) -> (String, KeyRecord) {
    let (secret, hash) = key::generate().unwrap();
    let record = KeyRecord {
        name: name.into(),
        team: None,
        hash: hash.to_hex(),
        created,
        expires,
        revoked: false,
    };
    (secret, record)
}

/// A revoked or expired name takes a new key in Redis too; an active one does not, and the
/// replaced key stays refused (operations review: a leaked key's name was lost for good).
#[tokio::test]
async fn a_revoked_or_expired_name_is_issued_again_in_redis() {
    let redis = Redis::start();
    let prefix = format!("agw-reissue-{}", std::process::id());
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let store = RedisKeyStore::new(con, prefix, TIMEOUT).cache_ttl(Duration::ZERO);
    let (old_secret, old) = new_key("frank", NOW, None);
    store.insert(old).await.unwrap();
    let (new_secret, new) = new_key("frank", NOW + 10, None);
    let e = store.insert(new.clone()).await.unwrap_err();
    assert_eq!(e.to_string(), "an active key named `frank` exists already");
    assert!(store.revoke("frank".into()).await.unwrap());
    store.insert(new.clone()).await.unwrap();
    assert_eq!(
        store.lookup(KeyHash::of(&new_secret)).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        store.lookup(KeyHash::of(&old_secret)).await.unwrap(),
        None,
        "the revoked key does not come back"
    );
    assert_eq!(store.list().await.unwrap(), vec![new]);

    // Expired at the new record's creation: replaced too; not yet expired: refused.
    let (expired_secret, expiring) = new_key("grace", NOW, Some(NOW + 100));
    store.insert(expiring).await.unwrap();
    assert!(
        store
            .insert(new_key("grace", NOW + 99, None).1)
            .await
            .is_err()
    );
    let (late_secret, late) = new_key("grace", NOW + 100, None);
    store.insert(late.clone()).await.unwrap();
    assert_eq!(
        store.lookup(KeyHash::of(&expired_secret)).await.unwrap(),
        None
    );
    assert_eq!(
        store.lookup(KeyHash::of(&late_secret)).await.unwrap(),
        Some(late)
    );
}

/// A limiter of 10 requests a minute (too small to lease: every admission asks Redis) that
/// fails closed when Redis does not answer.
fn asking_limiter(con: RedisConnection) -> Limiter {
    let mut p = policy(Limits {
        requests_per_minute: Some(10),
        ..Limits::default()
    });
    p.on_error_limits = FailMode::Closed;
    Limiter::new(p, Arc::new(RedisStore::new(con)))
}

/// Admits alice once, within 10 s (`Err` when it hangs).
async fn admit_alice(
    limiter: &Limiter,
) -> Result<Result<agw_tower::limit::Ticket, Rejection>, tokio::time::error::Elapsed> {
    tokio::time::timeout(
        Duration::from_secs(10),
        limiter.admit(Some(&alice()), None, NOW),
    )
    .await
}

/// After Redis restarts, the first operations succeed, whether or not any was tried while it
/// was down (operations review: the connection manager reconnects only when a command fails,
/// so each replica's first request after an outage got a 503).
#[tokio::test]
async fn the_first_operations_after_redis_comes_back_succeed() {
    let mut redis = Redis::start();
    let port = redis.port;
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let (seen, hook) = recorder();
    // A limit too small to lease (see `two_limiters_…`): every admission asks Redis.
    let limiter = asking_limiter(con.clone()).on_store_failure(hook);
    let prefix = format!("agw-restart-{}", std::process::id());
    // No cache, no stale answers: every lookup goes to Redis.
    let keys = RedisKeyStore::new(con, prefix, TIMEOUT)
        .cache_ttl(Duration::ZERO)
        .stale_ttl(Duration::ZERO);
    let (secret, _) = key::generate().unwrap();
    let lookup =
        || tokio::time::timeout(Duration::from_secs(10), keys.lookup(KeyHash::of(&secret)));
    let admit = || admit_alice(&limiter);
    assert!(admit().await.expect("never hangs").is_ok());
    assert!(lookup().await.expect("never hangs").is_ok());

    for tried_while_down in [true, false] {
        redis.stop();
        if tried_while_down {
            assert!(admit().await.expect("never hangs").is_err());
            assert!(lookup().await.expect("never hangs").is_err());
        }
        redis = Redis::start_on(port).expect("redis-server starts again on its port");
        seen.lock().unwrap().clear();
        let admitted = admit().await.expect("never hangs");
        assert!(
            admitted.is_ok(),
            "tried while down: {tried_while_down}: {admitted:?} {:?}",
            seen.lock().unwrap()
        );
        let found = lookup().await.expect("never hangs");
        assert!(
            matches!(found, Ok(None)),
            "tried while down: {tried_while_down}: {found:?}"
        );
    }
}

/// A reconnection that timed out while Redis was busy (it was restarted, then ran a long
/// command) is not answered, as an instant timeout, to the next command once Redis is back
/// (operations review: a healthy Redis gave the first request after it an instant 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_that_timed_out_is_not_the_next_commands_answer() {
    let port = support::free_port();
    let args = ["--enable-debug-command", "yes"];
    let mut redis = Redis::start_with(port, &args).expect("redis-server starts");
    let con = RedisConnection::connect(&redis.url(), TIMEOUT)
        .await
        .unwrap();
    let limiter = asking_limiter(con);
    let admit = || admit_alice(&limiter);
    assert!(admit().await.expect("never hangs").is_ok());
    redis.stop();
    redis = Redis::start_with(port, &args).expect("redis-server starts again on its port");
    let mut busy = admin(&redis).await;
    let sleep = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1")
            .query_async::<()>(&mut busy)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        admit().await.expect("never hangs").is_err(),
        "Redis is busy"
    );
    sleep.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admitted = admit().await.expect("never hangs");
    assert!(admitted.is_ok(), "{admitted:?}");
    drop(redis);
}

/// A wrong password is reported as such (operations review: "no connection within 2s" hid
/// it), without the password; a URL that is not a Redis URL is one clean line.
#[tokio::test]
async fn a_wrong_password_and_a_non_redis_url_are_named() {
    let port = support::free_port();
    let Some(_redis) = Redis::start_with(port, &["--requirepass", "right-one"]) else {
        panic!("redis-server did not start on port {port}");
    };
    let e = RedisConnection::connect(&format!("redis://:wrong-one@127.0.0.1:{port}/"), TIMEOUT)
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        format!(
            "redis 127.0.0.1:{port}: authentication failed (the server refused the user or \
             password of redis.url)"
        )
    );
    assert!(!e.contains("wrong-one"));
    // The right one connects.
    RedisConnection::connect(&format!("redis://:right-one@127.0.0.1:{port}/"), TIMEOUT)
        .await
        .unwrap();

    let e = RedisConnection::open("http://x", TIMEOUT).unwrap_err().0;
    assert_eq!(e, "`http://x` is not a redis:// or rediss:// URL");
    let e = RedisConnection::open("https://u:s3cret@x/0", TIMEOUT)
        .unwrap_err()
        .0;
    assert_eq!(e, "`https://***@x/0` is not a redis:// or rediss:// URL");
    let e = RedisConnection::open("redis://:s3cret@x:port/", TIMEOUT)
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("`redis://***@x:port/` is not a valid Redis URL"),
        "{e}"
    );
}

/// The requests a ticket's `x-agw-ratelimit-requests-remaining` header says are left.
fn requests_left(t: &agw_tower::limit::Ticket) -> u64 {
    let mut h = http::HeaderMap::new();
    t.headers(&mut h);
    h["x-agw-ratelimit-requests-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_busy_replica_leases_its_rate_and_counts_every_request_exactly() {
    let redis = Redis::start();
    let mut admin = admin(&redis).await;
    let l = limiter(
        &redis,
        Limits {
            requests_per_minute: Some(1_000_000),
            ..Limits::default()
        },
    )
    .await;
    let before = script_runs(&mut admin).await;
    for n in 1..=500u64 {
        let t = l.admit(Some(&alice()), None, NOW).await.unwrap();
        assert_eq!(requests_left(&t), 1_000_000 - n, "request {n}");
    }
    let runs = script_runs(&mut admin).await - before;
    assert!(
        runs < 30,
        "500 requests one after another in {runs} script runs"
    );
    let counter = format!("agw-test-{}:k:alice:rpm:{}", std::process::id(), NOW / 60);
    let held: u64 = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(held > 500, "{held}: nothing leased ahead");
    l.give_back().await.unwrap();
    let after: u64 = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        after, 500,
        "given back: the counter holds what was admitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leasing_replicas_admit_exactly_their_shared_limit() {
    let redis = Redis::start();
    let rpm = Limits {
        requests_per_minute: Some(300),
        ..Limits::default()
    };
    let a = Arc::new(limiter(&redis, rpm).await);
    let b = Arc::new(limiter(&redis, rpm).await);
    // One after another, alternating: both lease, and the last requests of the minute are
    // checked in Redis one by one.
    let mut admitted = 0;
    for i in 0..700 {
        let l = if i % 3 == 0 { &a } else { &b };
        admitted += usize::from(l.admit(Some(&alice()), None, NOW).await.is_ok());
    }
    assert_eq!(admitted, 300, "one limit across both replicas, exactly");
    // All at once, on a fresh key: never more than the limit.
    let mut tasks = Vec::new();
    for i in 0..700 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            l.admit(Some(&dev(1)), None, NOW).await.is_ok()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert!(admitted <= 300, "{admitted} admitted past a limit of 300");
    // What a replica still holds counts for it: more requests there use it up.
    for l in [&a, &b] {
        for _ in 0..50 {
            admitted += usize::from(l.admit(Some(&dev(1)), None, NOW).await.is_ok());
        }
    }
    assert_eq!(
        admitted, 300,
        "leases held at the end are used by their replica"
    );
}

#[tokio::test]
async fn a_token_lease_takes_corrections_and_a_refusal_charges_nothing() {
    let redis = Redis::start();
    let mut admin = admin(&redis).await;
    let l = limiter(
        &redis,
        Limits {
            tokens_per_minute: Some(100_000),
            ..Limits::default()
        },
    )
    .await;
    // Each request holds 1,000 and uses 100: the 900 it gives back serve the next ones.
    for _ in 0..50 {
        let t = l.admit(Some(&alice()), Some(1000), NOW).await.unwrap();
        l.settle(&t, Some(100), None, true).await;
    }
    // A request larger than what is left is refused, and holds nothing.
    assert!(l.admit(Some(&alice()), Some(200_000), NOW).await.is_err());
    l.give_back().await.unwrap();
    let tpm: u64 = redis::cmd("GET")
        .arg(format!(
            "agw-test-{}:k:alice:tpm:{}",
            std::process::id(),
            NOW / 60
        ))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(tpm, 50 * 100, "exactly what was used");
}

#[tokio::test]
async fn tokens_given_back_never_become_a_lease_past_the_limit() {
    let redis = Redis::start();
    let l = limiter(
        &redis,
        Limits {
            tokens_per_minute: Some(10_000),
            ..Limits::default()
        },
    )
    .await;
    // An empty counter admits one request larger than the limit; it fails upstream and
    // gives everything back.
    let big = l.admit(Some(&alice()), Some(200_000), NOW).await.unwrap();
    l.settle(&big, None, None, false).await;
    let mut admitted = 0;
    for _ in 0..40 {
        if let Ok(t) = l.admit(Some(&alice()), Some(1000), NOW).await {
            admitted += 1000;
            l.settle(&t, Some(1000), None, true).await;
        }
    }
    assert_eq!(admitted, 10_000, "the limit, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_one_replica_leaves_the_room_to_the_others() {
    let redis = Redis::start();
    let rpm = Limits {
        requests_per_minute: Some(10_000),
        ..Limits::default()
    };
    let a = Arc::new(limiter(&redis, rpm).await);
    let b = limiter(&redis, rpm).await;
    for _ in 0..50 {
        a.admit(Some(&alice()), None, NOW).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.admit(Some(&alice()), None, NOW).await.is_ok()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    // Replica A holds at most one grant's worth, not the room: B admits what is left.
    let mut admitted = 0;
    for _ in 0..5_000 {
        admitted += usize::from(b.admit(Some(&alice()), None, NOW).await.is_ok());
    }
    assert_eq!(admitted, 5_000, "replica B admitted {admitted} of 5,000");
}
