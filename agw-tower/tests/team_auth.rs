//! Client keys and the auth and access layers, over real sockets.
#![cfg(feature = "team")]

#[path = "team_support/mod.rs"]
mod support;

use agw_core::api::Api;
use agw_core::route::RouteTable;
use agw_tower::auth::key::{self, KeyHash, KeyRecord};
use agw_tower::auth::{
    Access, AccessLayer, AuthLayer, Authenticator, FileKeyStore, Identity, KeyStore, RequestFacts,
};
use agw_tower::classify::ClassifyLayer;
use axum::routing::post;
use std::sync::Arc;
use support::{post as send, serve};

fn record(name: &str, team: Option<&str>, hash: &KeyHash) -> KeyRecord {
    KeyRecord {
        name: name.into(),
        team: team.map(Into::into),
        hash: hash.to_hex(),
        created: key::unix_now(),
        expires: None,
        revoked: false,
    }
}

/// The upstream stand-in: tells what reached it.
async fn echo(req: http::Request<axum::body::Body>) -> String {
    let who = req.extensions().get::<Identity>();
    let other = ["proxy-authorization", "x-goog-api-key", "api-key"]
        .iter()
        .any(|h| req.headers().get(*h).is_some());
    serde_json::json!({
        "identity": who.map(|i| i.name.clone()),
        "team": who.and_then(|i| i.team.clone()),
        "groups": who.map(|i| i.groups.clone()),
        "x-api-key": req.headers().get("x-api-key").is_some(),
        "authorization": req.headers().get("authorization").is_some(),
        "other": other,
    })
    .to_string()
}

fn app(auth: Authenticator) -> axum::Router {
    axum::Router::new()
        .route("/v1/messages", post(echo))
        .route("/v1/chat/completions", post(echo))
        .layer(AuthLayer::new(Arc::new(auth)))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ))
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes_in_a_private_file() {
    let dir = support::temp_dir("keys-hashed");
    let path = dir.join("keys.json");
    let store = FileKeyStore::open(&path).unwrap();
    let (secret, hash) = key::generate().unwrap();
    store
        .insert(record("alice", Some("platform"), &hash))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&secret), "the key itself is never written");
    assert!(!text.contains(&secret["agw_".len()..]));
    assert!(text.contains(&hash.to_hex()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second name clash is refused; another process sees the key after reload.
    assert!(store.insert(record("alice", None, &hash)).await.is_err());
    let other = FileKeyStore::open(&path).unwrap();
    let found = other.lookup(KeyHash::of(&secret)).await.unwrap().unwrap();
    assert_eq!(found.team.as_deref(), Some("platform"));
    assert!(store.revoke("alice".into()).await.unwrap());
    assert!(!store.revoke("nobody".into()).await.unwrap());
    // The other instance notices the changed file by itself (checked once a second).
    let mut revoked = false;
    for _ in 0..300 {
        if other.lookup(hash).await.unwrap().unwrap().revoked {
            revoked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        revoked,
        "a revocation by another process is seen without a restart"
    );
}

#[tokio::test]
async fn a_hash_sharing_the_lookup_prefix_is_compared_in_full() {
    let store = FileKeyStore::in_memory();
    let (secret, hash) = key::generate().unwrap();
    let mut near = hash;
    near.0[31] ^= 1; // same 8-byte index prefix, different hash
    store.insert(record("near", None, &near)).await.unwrap();
    assert_eq!(store.lookup(hash).await.unwrap(), None);
    let auth = Authenticator::new().keys(Arc::new(store));
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", secret.parse().unwrap());
    assert!(auth.authenticate(&h, key::unix_now()).await.is_err());
}

#[tokio::test]
async fn credentials_resolve_and_never_reach_the_upstream() {
    let store = FileKeyStore::in_memory();
    let (secret, hash) = key::generate().unwrap();
    store
        .insert(record("alice", Some("platform"), &hash))
        .await
        .unwrap();
    let addr = serve(app(Authenticator::new().keys(Arc::new(store)))).await;
    let bearer = format!("Bearer {secret}");
    for headers in [
        vec![("x-api-key", secret.as_str())],
        vec![("authorization", bearer.as_str())],
        // Both: x-api-key wins, and neither is forwarded.
        vec![
            ("x-api-key", secret.as_str()),
            ("authorization", "Bearer sk-ant-other"),
        ],
    ] {
        let r = send(addr, "/v1/messages?beta=true", &headers, "{}").await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.body);
        let j = r.json();
        assert_eq!(j["identity"], "alice");
        assert_eq!(j["team"], "platform");
        assert_eq!(j["x-api-key"], false);
        assert_eq!(j["authorization"], false);
    }
}

#[tokio::test]
async fn missing_and_wrong_credentials_get_a_provider_shaped_401() {
    let store = FileKeyStore::in_memory();
    let addr = serve(app(Authenticator::new().keys(Arc::new(store)))).await;
    let r = send(addr, "/v1/messages", &[], "{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    // It says what to set, in words Claude Code shows (it replaces a 401's message that
    // names the `x-api-key` header with its own).
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("ANTHROPIC_API_KEY"), "{message}");
    assert!(!message.contains("x-api-key"), "{message}");

    let wrong = "agw_notarealkeynotarealkeynotarealkeynotareal";
    let r = send(addr, "/v1/messages", &[("x-api-key", wrong)], "{}").await;
    assert_eq!(r.status, 401);
    assert!(!r.body.contains(wrong), "the credential is never echoed");
    // A provider key sent to agw is refused too (and not forwarded): as no agw credential,
    // with the message that says what to send (fourteenth review's client check: it read as
    // an unknown agw key).
    let r = send(
        addr,
        "/v1/messages",
        &[("x-api-key", "sk-ant-api03-xyz")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no client credential"),
        "{}",
        r.body
    );

    let r = send(
        addr,
        "/v1/chat/completions",
        &[("authorization", "Bearer nope")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 401);
    let j = r.json();
    assert_eq!(j["error"]["code"], "invalid_api_key", "OpenAI shape: {j}");
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused() {
    let store = FileKeyStore::in_memory();
    let (revoked, h1) = key::generate().unwrap();
    let (expired, h2) = key::generate().unwrap();
    let (valid, h3) = key::generate().unwrap();
    store.insert(record("revoked", None, &h1)).await.unwrap();
    store.revoke("revoked".into()).await.unwrap();
    let mut rec = record("expired", None, &h2);
    rec.expires = Some(key::unix_now() - 1);
    store.insert(rec).await.unwrap();
    let mut rec = record("valid", None, &h3);
    rec.expires = Some(key::unix_now() + 3600);
    store.insert(rec).await.unwrap();
    // A key named like callers without a credential (a key file edited by hand: `agw keys`
    // refuses the name) is refused too; it would share their limits (sixth review).
    let (anonymous, h4) = key::generate().unwrap();
    store.insert(record("Anonymous", None, &h4)).await.unwrap();
    let addr = serve(app(Authenticator::new().keys(Arc::new(store)))).await;
    for (k, want) in [
        (&revoked, 401),
        (&expired, 401),
        (&anonymous, 401),
        (&valid, 200),
    ] {
        let r = send(addr, "/v1/messages", &[("x-api-key", k)], "{}").await;
        assert_eq!(r.status, want, "{}", r.body);
    }
}

#[tokio::test]
async fn unauthenticated_requests_pass_only_when_allowed() {
    let auth = Authenticator::new()
        .keys(Arc::new(FileKeyStore::in_memory()))
        .allow_unauthenticated(true);
    let addr = serve(app(auth)).await;
    let r = send(addr, "/v1/messages", &[], "{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["identity"], "anonymous");
    // A presented but wrong or unreadable credential is still refused.
    for h in [
        ("x-api-key", "agw_bad"),
        ("x-api-key", ""),
        ("authorization", "Basic YWxpY2U6cHc="),
        ("authorization", "Bearer"),
    ] {
        let r = send(addr, "/v1/messages", &[h], "{}").await;
        assert_eq!(r.status, 401, "{h:?}");
    }
}

/// With keys required, the agw credential in either header is the one checked: a developer's
/// own provider key in the other header (Claude Code sends both when `ANTHROPIC_API_KEY` and
/// `ANTHROPIC_AUTH_TOKEN` are both set) neither hides it nor gets it refused; two different
/// agw credentials are refused, and neither header goes upstream (found by the fourth
/// red-team review: a valid Bearer key beside a personal `x-api-key` got a 401).
#[tokio::test]
async fn with_keys_required_the_agw_credential_in_either_header_is_checked() {
    let store = FileKeyStore::in_memory();
    let (alice, h1) = key::generate().unwrap();
    let (bob, h2) = key::generate().unwrap();
    store.insert(record("alice", None, &h1)).await.unwrap();
    store.insert(record("bob", None, &h2)).await.unwrap();
    let addr = serve(app(Authenticator::new().keys(Arc::new(store)))).await;
    let bearer = |k: &str| format!("Bearer {k}");
    for headers in [
        [
            ("x-api-key", "sk-ant-personal".to_owned()),
            ("authorization", bearer(&alice)),
        ],
        [
            ("x-api-key", alice.clone()),
            ("authorization", bearer("sk-ant-personal")),
        ],
        [
            ("x-api-key", alice.clone()),
            ("authorization", bearer(&alice)),
        ],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(addr, "/v1/messages", &h, "{}").await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.body);
        let v = r.json();
        assert_eq!(v["identity"], "alice");
        assert_eq!(
            (v["x-api-key"].as_bool(), v["authorization"].as_bool()),
            (Some(false), Some(false))
        );
    }
    for headers in [
        [
            ("x-api-key", alice.clone()),
            ("authorization", bearer(&bob)),
        ],
        [
            ("x-api-key", alice.clone()),
            ("authorization", bearer("agw_notakeynotakeynotakeynotakey")),
        ],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(addr, "/v1/messages", &h, "{}").await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
        assert!(
            r.body.contains("two different agw credentials"),
            "{}",
            r.body
        );
    }
    // No agw credential at all: the provider key is refused as unknown.
    let r = send(
        addr,
        "/v1/messages",
        &[
            ("x-api-key", "sk-ant-personal"),
            ("authorization", "Bearer sk-other"),
        ],
        "{}",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// Where requests without an agw credential are allowed, an agw credential in either header is
/// still checked and never passed on, whatever the other header holds (a client's own provider
/// key beside it must not hide it; found by the third red-team review).
#[tokio::test]
async fn an_agw_credential_beside_a_provider_key_is_checked_and_removed() {
    let store = FileKeyStore::in_memory();
    let (alice, h1) = key::generate().unwrap();
    let (revoked, h2) = key::generate().unwrap();
    store
        .insert(record("alice", Some("platform"), &h1))
        .await
        .unwrap();
    store.insert(record("dave", None, &h2)).await.unwrap();
    store.revoke("dave".into()).await.unwrap();
    let auth = Authenticator::new()
        .keys(Arc::new(store))
        .allow_unauthenticated(true);
    let addr = serve(app(auth)).await;
    let bearer = |k: &str| format!("Bearer {k}");
    // The provider key stays for the provider; the agw key is checked and removed.
    let r = send(
        addr,
        "/v1/messages",
        &[
            ("x-api-key", "sk-ant-client"),
            ("authorization", &bearer(&alice)),
        ],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["identity"], "alice");
    assert_eq!(
        (v["x-api-key"].as_bool(), v["authorization"].as_bool()),
        (Some(true), Some(false))
    );
    // The other way round.
    let r = send(
        addr,
        "/v1/messages",
        &[
            ("x-api-key", &alice),
            ("authorization", "Bearer sk-ant-client"),
        ],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["identity"], "alice");
    assert_eq!(
        (v["x-api-key"].as_bool(), v["authorization"].as_bool()),
        (Some(false), Some(true))
    );
    // A revoked key, an upper-case prefix, or two different agw keys: refused.
    let upper = alice.replacen("agw_", "AGW_", 1);
    for headers in [
        vec![
            ("x-api-key", "sk-ant-client".to_owned()),
            ("authorization", bearer(&revoked)),
        ],
        vec![("x-api-key", upper.clone())],
        vec![("authorization", bearer(&upper))],
        vec![
            ("x-api-key", alice.clone()),
            ("authorization", bearer(&revoked)),
        ],
        // A header given twice: which value a server takes is its choice.
        vec![
            ("x-api-key", "sk-ant-client".to_owned()),
            ("x-api-key", alice.clone()),
        ],
        vec![
            ("authorization", "Bearer sk-ant-client".to_owned()),
            ("authorization", bearer(&alice)),
        ],
        // An agw key in a shape no key has (twenty-first session's red team: taken for the
        // client's own provider key, it went upstream as anonymous).
        vec![("x-api-key", bearer(&alice))],
        vec![("x-api-key", format!("\"{alice}\""))],
        vec![("x-api-key", format!("key={alice}"))],
        vec![("authorization", format!("Bearer Bearer {alice}"))],
        vec![("authorization", format!("Bearer '{alice}'"))],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = send(addr, "/v1/messages", &h, "{}").await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
    }
    // A provider key that holds `agw_` inside it is still the client's own.
    let r = send(
        addr,
        "/v1/messages",
        &[("x-api-key", "sk-ant-api03-Xq3vagw_B7mN2pL9-kR4t.agw_Y8wE")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["identity"], "anonymous");
    assert_eq!(r.json()["x-api-key"], true);
    // The same key twice is one key.
    let r = send(
        addr,
        "/v1/messages",
        &[("x-api-key", &alice), ("x-api-key", &alice)],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // An agw key in another credential header never goes upstream.
    for name in ["proxy-authorization", "x-goog-api-key", "api-key"] {
        let value = if name == "proxy-authorization" {
            bearer(&alice)
        } else {
            alice.clone()
        };
        let r = send(
            addr,
            "/v1/messages",
            &[("x-api-key", "sk-ant-client"), (name, &value)],
            "{}",
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.json()["other"], false, "{name} reached the upstream");
    }
}

/// A message batch is checked request by request (each is a billed call; a decoy top-level
/// `model` does not stand for them), and a route whose request names no model — a model
/// listing, a batch's results, a file — is not refused for naming none (found by the third
/// red-team review).
#[tokio::test]
async fn batches_are_checked_per_request_and_routes_without_a_model_pass() {
    use agw_core::guard::Policy;
    use agw_tower::guard::RequestGuardLayer;
    let access = Access::any().models(["claude-sonnet-*"]).unwrap();
    let store = FileKeyStore::in_memory();
    let (secret, hash) = key::generate().unwrap();
    store.insert(record("alice", None, &hash)).await.unwrap();
    let app = axum::Router::new()
        .route("/v1/messages/batches", post(echo))
        .route("/v1/messages/batches/{id}/cancel", post(echo))
        .route("/v1/models", post(echo))
        .route("/v1/messages", post(echo))
        .fallback(echo)
        .layer(AccessLayer::new(access, "anthropic"))
        // As the stack reads bodies for a model list: every route's.
        .layer(
            RequestGuardLayer::new(Policy::empty())
                .read_always(true)
                .read_bodies(true),
        )
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    let addr = serve(app).await;
    let h = [("x-api-key", secret.as_str())];
    let batch = |models: &[&str]| {
        let requests: Vec<String> = models
            .iter()
            .enumerate()
            .map(|(i, m)| format!(r#"{{"custom_id":"{i}","params":{{"model":"{m}","max_tokens":8,"messages":[]}}}}"#))
            .collect();
        format!(
            r#"{{"model":"claude-sonnet-4-5","requests":[{}]}}"#,
            requests.join(",")
        )
    };
    for (body, status) in [
        (batch(&["claude-sonnet-4-5", "claude-sonnet-4-5"]), 200),
        (batch(&["claude-sonnet-4-5", "claude-opus-4-1"]), 400),
        (batch(&["claude-opus-4-1"]), 400),
        (
            r#"{"requests":[{"custom_id":"a","params":{"messages":[]}}]}"#.to_owned(),
            400,
        ),
    ] {
        let r = send(addr, "/v1/messages/batches", &h, &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        if status == 400 {
            assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        }
    }
    let r = send(
        addr,
        "/v1/messages/batches",
        &h,
        &batch(&["claude-opus-4-1"]),
    )
    .await;
    assert!(r.body.contains("claude-opus-4-1"), "{}", r.body);
    // No model to check: a listing passes, so does cancelling a batch; a prompt without a
    // model does not.
    assert_eq!(send(addr, "/v1/models", &h, "").await.status, 200);
    let r = send(addr, "/v1/messages/batches/msgbatch_1/cancel", &h, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        send(addr, "/v1/messages", &h, r#"{"messages":[]}"#)
            .await
            .status,
        400
    );
    // A model the path chooses is checked whatever the body names (twelfth session's
    // black-box review: Gemini, Bedrock and Azure calls ran any model).
    let prompt = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
    for (path, body, status) in [
        ("/v1beta/models/gemini-2.5-pro:generateContent", prompt, 400),
        (
            "/v1beta/models/claude-sonnet-4-5:generateContent",
            prompt,
            200,
        ),
        (
            "/model/anthropic.claude-opus-4/converse",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            400,
        ),
        (
            "/openai/deployments/o1-pro/chat/completions",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            400,
        ),
        // Second round: Bedrock's `modelId`, a tuning job's `baseModel`, a Vertex endpoint
        // (whatever is deployed), Gemini's `models/` prefix in a body.
        (
            "/async-invoke",
            r#"{"modelId":"amazon.nova-reel-v1:0"}"#,
            400,
        ),
        (
            "/model-invocation-job",
            r#"{"modelId":"claude-sonnet-4-5"}"#,
            200,
        ),
        (
            "/v1/projects/p/locations/l/tuningJobs",
            r#"{"baseModel":"gemini-2.5-pro"}"#,
            400,
        ),
        (
            "/v1/projects/p/locations/l/endpoints/123:generateContent",
            prompt,
            400,
        ),
        (
            "/v1beta/cachedContents",
            r#"{"model":"models/claude-sonnet-4-5"}"#,
            200,
        ),
        // Third round: a Vertex endpoint's OpenAI-compatible path, Agent Engine, more keys.
        (
            "/v1/projects/p/locations/l/endpoints/123/chat/completions",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            400,
        ),
        (
            "/v1/projects/p/locations/l/reasoningEngines/1:query",
            r#"{"input":{}}"#,
            400,
        ),
        (
            "/v1/projects/p/locations/l/endpoints/openapi/chat/completions",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            200,
        ),
        ("/async-invoke", r#"{"modelArn":"arn:x:opus"}"#, 400),
        (
            "/model-customization-jobs",
            r#"{"baseModelIdentifier":"opus"}"#,
            400,
        ),
    ] {
        let r = send(addr, path, &h, body).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn access_lists_admit_teams_and_models() {
    let access = Access::any()
        .teams(["platform"])
        .identities(["bob"])
        .models(["claude-sonnet-*", "claude-haiku-*"])
        .unwrap();
    let app = axum::Router::new()
        .route("/v1/messages", post(echo))
        .layer(AccessLayer::new(access, "anthropic"))
        .layer(axum::middleware::from_fn(
            |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
                // Stands in for the body stage: the model from a header for this test.
                let model = req
                    .headers()
                    .get("x-test-model")
                    .map(|v| v.to_str().unwrap().to_owned());
                if model.is_some() {
                    req.extensions_mut().insert(RequestFacts {
                        model,
                        ..Default::default()
                    });
                }
                next.run(req).await
            },
        ));
    let store = FileKeyStore::in_memory();
    let mut keys = Vec::new();
    for (name, team) in [
        ("alice", Some("platform")),
        ("bob", None),
        ("carol", Some("sales")),
    ] {
        let (secret, hash) = key::generate().unwrap();
        store.insert(record(name, team, &hash)).await.unwrap();
        keys.push(secret);
    }
    let app = app
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(
            RouteTable::claude_code(),
            Api::Anthropic,
        ));
    let addr = serve(app).await;
    let cases = [
        (0, Some("claude-sonnet-4-5"), 200, ""),
        (1, Some("claude-haiku-4-5"), 200, ""),
        (2, Some("claude-sonnet-4-5"), 403, "permission_error"),
        (0, Some("claude-opus-4-6"), 400, "invalid_request_error"),
        (0, None, 400, "invalid_request_error"), // model unknown: refused
    ];
    for (who, model, status, ty) in cases {
        let mut h = vec![("x-api-key", keys[who].as_str())];
        if let Some(m) = model {
            h.push(("x-test-model", m));
        }
        let r = send(addr, "/v1/messages", &h, "{}").await;
        assert_eq!(r.status, status, "{who} {model:?}: {}", r.body);
        if !ty.is_empty() {
            assert_eq!(r.json()["error"]["type"], ty);
        }
    }
    let r = send(
        addr,
        "/v1/messages",
        &[("x-api-key", &keys[0]), ("x-test-model", "claude-opus-4-6")],
        "{}",
    )
    .await;
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("claude-opus-4-6") && msg.contains("claude-sonnet-*"),
        "{msg}"
    );
}

/// A tool that runs a model of its own (Responses' `image_generation`) is checked against the
/// model list too: each image is billed at that model's price (eighth red-team review).
#[tokio::test]
async fn access_lists_check_a_tools_own_model() {
    let access = Access::any().models(["gpt-5*"]).unwrap();
    let app = axum::Router::new()
        .route("/v1/responses", post(echo))
        .layer(AccessLayer::new(access, "openai"))
        .layer(axum::middleware::from_fn(
            |req: axum::extract::Request, next: axum::middleware::Next| async move {
                // The body stage's part: the body read whole, its facts read.
                use http_body_util::BodyExt;
                let (mut parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                parts.extensions.insert(RequestFacts::from_body(&bytes));
                parts.extensions.insert(agw_tower::limits::Collected {
                    plain: bytes.clone(),
                });
                next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                    .await
            },
        ));
    let store = FileKeyStore::in_memory();
    let (secret, hash) = key::generate().unwrap();
    store.insert(record("alice", None, &hash)).await.unwrap();
    let app = app
        .layer(AuthLayer::new(Arc::new(
            Authenticator::new().keys(Arc::new(store)),
        )))
        .layer(ClassifyLayer::new(RouteTable::claude_code(), Api::OpenAi));
    let addr = serve(app).await;
    let h = [("authorization", format!("Bearer {secret}"))];
    let h = [("authorization", h[0].1.as_str())];
    for (tools, status) in [
        (
            r#"[{"type":"image_generation","model":"gpt-image-1"}]"#,
            400,
        ),
        (
            r#"[{"type":"image_generation","model":"gpt-5-image"}]"#,
            200,
        ),
        (r#"[{"type":"image_generation"}]"#, 200),
        (
            r#"[{"type":"image_generation","model":"gpt-5-image","MODEL":"x"}]"#,
            400,
        ),
        // A router's fallbacks (OpenRouter's `models`, LiteLLM's `fallbacks`).
        (r#"[],"models":["gpt-5-mini","claude-opus-4-6"]"#, 400),
        (r#"[],"fallbacks":["gpt-5-mini"]"#, 200),
    ] {
        let body = format!(r#"{{"model":"gpt-5","input":"draw","tools":{tools}}}"#);
        let r = send(addr, "/v1/responses", &h, &body).await;
        assert_eq!(r.status, status, "{tools}: {}", r.body);
    }
}

/// A key store that never answers usefully (Redis down).
#[derive(Debug)]
struct DownStore;

impl KeyStore for DownStore {
    fn lookup(
        &self,
        _: KeyHash,
    ) -> agw_tower::auth::BoxFuture<'_, Result<Option<KeyRecord>, agw_tower::auth::StoreError>>
    {
        Box::pin(async {
            Err(agw_tower::auth::StoreError::Unavailable(
                "connection refused".into(),
            ))
        })
    }
    fn insert(
        &self,
        _: KeyRecord,
    ) -> agw_tower::auth::BoxFuture<'_, Result<(), agw_tower::auth::StoreError>> {
        Box::pin(async { Err(agw_tower::auth::StoreError::Unavailable("down".into())) })
    }
    fn list(
        &self,
    ) -> agw_tower::auth::BoxFuture<'_, Result<Vec<KeyRecord>, agw_tower::auth::StoreError>> {
        Box::pin(async { Err(agw_tower::auth::StoreError::Unavailable("down".into())) })
    }
    fn revoke(
        &self,
        _: String,
    ) -> agw_tower::auth::BoxFuture<'_, Result<bool, agw_tower::auth::StoreError>> {
        Box::pin(async { Err(agw_tower::auth::StoreError::Unavailable("down".into())) })
    }
}

/// Found by the red-team review: a key store that is down answered 401, which Claude Code
/// takes for a wrong key (it stops and asks to log in); a 503 is retried.
#[tokio::test]
async fn a_key_store_that_is_down_answers_503_not_401() {
    let addr = serve(app(Authenticator::new().keys(Arc::new(DownStore)))).await;
    let key = "agw_notarealkeynotarealkeynotarealkeynotareal";
    let r = send(addr, "/v1/messages", &[("x-api-key", key)], "{}").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["type"], "error");
    // As the limit store's 503 (fourteenth review: it had none).
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        !r.body.contains(key) && !r.body.contains("refused"),
        "{}",
        r.body
    );
}

/// An agw credential in the query string, a cookie or `Proxy-Authorization` (Basic) goes no
/// further either, also where requests without one pass (found by the sixth review: on a
/// backend passing clients' credentials through, the provider received the agw key). Other
/// parameters and cookies are kept as sent, a dotted version number among them.
#[tokio::test]
async fn an_agw_credential_in_the_query_a_cookie_or_proxy_auth_is_removed() {
    async fn seen(req: http::Request<axum::body::Body>) -> String {
        let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        serde_json::json!({
            "query": req.uri().query(),
            "cookie": h("cookie"),
            "proxy": h("proxy-authorization"),
        })
        .to_string()
    }
    let store = FileKeyStore::in_memory();
    let (alice, h1) = key::generate().unwrap();
    store.insert(record("alice", None, &h1)).await.unwrap();
    for allow in [false, true] {
        let auth = Authenticator::new()
            .keys(Arc::new(store.clone()))
            .allow_unauthenticated(allow);
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(seen))
            .layer(AuthLayer::new(Arc::new(auth)))
            .layer(ClassifyLayer::new(RouteTable::claude_code(), Api::OpenAi));
        let addr = serve(app).await;
        let basic = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(format!("{alice}:"))
        };
        let escaped = alice.replace('_', "%5F");
        let path = format!(
            "/v1/chat/completions?key={alice}&v=1.2.3&api-key={escaped}&access_token=Bearer+{alice}&beta=true"
        );
        let r = send(
            addr,
            &path,
            &[
                ("authorization", &format!("Bearer {alice}")),
                // Two fields, as HTTP/2 clients send cookies.
                ("cookie", &format!("session=abc; key={alice}")),
                ("cookie", "theme=dark"),
                ("proxy-authorization", &format!("Basic {basic}")),
            ],
            "{}",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.contains(&alice[4..]), "{}", r.body);
        let v = r.json();
        assert_eq!(v["query"], "v=1.2.3&beta=true", "{}", r.body);
        assert_eq!(v["cookie"], "session=abc; theme=dark");
        assert_eq!(v["proxy"], serde_json::Value::Null);
    }
}

/// Red-team rt4: a Gemini-style client sends its key only in `x-goog-api-key` or `?key=`, an
/// Azure-style one in `api-key`; with an agw key there it was refused as "no client
/// credential". The agw key is read there too, and never forwarded; two different agw keys
/// are refused; a provider key there is not an agw credential.
#[tokio::test]
async fn an_agw_key_in_a_gemini_or_azure_clients_place_is_read_and_removed() {
    async fn seen(req: http::Request<axum::body::Body>) -> String {
        let who = req.extensions().get::<Identity>();
        serde_json::json!({
            "identity": who.map(|i| i.name.clone()),
            "query": req.uri().query(),
            "goog": req.headers().get("x-goog-api-key").is_some(),
            "azure": req.headers().get("api-key").is_some(),
        })
        .to_string()
    }
    let store = FileKeyStore::in_memory();
    let (alice, h1) = key::generate().unwrap();
    let (bob, h2) = key::generate().unwrap();
    store.insert(record("alice", None, &h1)).await.unwrap();
    store.insert(record("bob", None, &h2)).await.unwrap();
    for allow in [false, true] {
        let auth = Authenticator::new()
            .keys(Arc::new(store.clone()))
            .allow_unauthenticated(allow);
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(seen))
            .layer(AuthLayer::new(Arc::new(auth)))
            .layer(ClassifyLayer::new(RouteTable::claude_code(), Api::OpenAi));
        let addr = serve(app).await;
        let escaped = alice.replace('_', "%5F");
        let bearer = format!("Bearer {alice}");
        let cases: [(String, Vec<(&str, &str)>); 4] = [
            (
                "/v1/chat/completions?alt=sse".into(),
                vec![("x-goog-api-key", &alice)],
            ),
            ("/v1/chat/completions".into(), vec![("api-key", &alice)]),
            (
                format!("/v1/chat/completions?alt=sse&key={escaped}"),
                vec![],
            ),
            // The same key in two places is one credential.
            (
                format!("/v1/chat/completions?key={alice}"),
                vec![("x-goog-api-key", &alice), ("authorization", &bearer)],
            ),
        ];
        for (path, headers) in &cases {
            let r = send(addr, path, headers, "{}").await;
            assert_eq!(r.status, 200, "{allow} {path} {headers:?}: {}", r.body);
            let v = r.json();
            assert_eq!(v["identity"], "alice", "{allow} {path}");
            assert!(!r.body.contains(&alice[4..]), "{}", r.body);
            assert_eq!(v["goog"], false);
            assert_eq!(v["azure"], false);
        }
        // Two different agw keys: whose request is it?
        for (path, headers) in [
            (
                "/v1/chat/completions".to_owned(),
                vec![
                    ("x-goog-api-key", alice.as_str()),
                    ("x-api-key", bob.as_str()),
                ],
            ),
            (
                format!("/v1/chat/completions?key={bob}"),
                vec![("api-key", alice.as_str())],
            ),
        ] {
            let r = send(addr, &path, &headers, "{}").await;
            assert_eq!(r.status, 401, "{allow}: {}", r.body);
            assert!(r.body.contains("two different"), "{}", r.body);
        }
        // A provider key there is the client's own: not an agw credential.
        let r = send(
            addr,
            "/v1/chat/completions",
            &[("x-goog-api-key", "AIzaSyD-not-an-agw-key")],
            "{}",
        )
        .await;
        if allow {
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.json()["identity"], "anonymous");
            assert_eq!(r.json()["goog"], true, "left for the provider");
        } else {
            assert_eq!(r.status, 401);
            assert!(r.body.contains("no client credential"), "{}", r.body);
        }
    }
}

/// A refused credential's reason reaches the access log (`cause`), not the client: an
/// expired token and an unknown key looked the same to operators (twelfth session).
#[tokio::test]
async fn a_refusal_names_its_reason_for_the_log() {
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;
    let store = FileKeyStore::in_memory();
    let (secret, hash) = key::generate().unwrap();
    store.insert(record("alice", None, &hash)).await.unwrap();
    let inner = service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let svc = AuthLayer::new(Arc::new(Authenticator::new().keys(Arc::new(store)))).layer(inner);
    let unknown = format!("{}x", &secret[..secret.len() - 1]);
    for (headers, cause) in [
        (vec![], "auth_missing"),
        (vec![("x-api-key", unknown.as_str())], "auth_unknown_key"),
        (
            vec![
                ("x-api-key", secret.as_str()),
                ("authorization", "Bearer agw_other"),
            ],
            "auth_conflicting",
        ),
    ] {
        let mut req = http::Request::post("/v1/messages");
        for (n, v) in &headers {
            req = req.header(*n, *v);
        }
        let res = svc.clone().oneshot(req.body(()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 401, "{cause}");
        let refused = res.extensions().get::<agw_tower::auth::AuthRefused>();
        assert_eq!(refused.map(|r| r.0), Some(cause));
    }
}
