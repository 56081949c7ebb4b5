//! Every layer alone over the in-memory upstream, then composed by the stack builder
//! (tower-http style: no sockets).

use agw_core::api::Api;
use agw_core::detect::Detector;
use agw_core::guard::{Policy, Rule};
use agw_core::model::ModelPolicy;
use agw_core::provider::ProviderSpec;
use agw_core::route::{RouteKind, RouteTable};
use agw_tower::classify::ClassifyLayer;
use agw_tower::guard::{GuardOutcome, GuardReport, RequestGuardLayer};
use agw_tower::limits::{BodyBudget, BodyLimits, Collected};
use agw_tower::provider::{ModelRewrite, ProviderLayer};
use agw_tower::request_id::{RequestId, RequestIdLayer};
use agw_tower::stack::StackConfig;
use agw_tower::test_util::{MemoryUpstream, seed_policy};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::ServiceExt;
use tower_layer::Layer;

const CARD: &str =
    r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"my credit card"}]}"#;
const CLEAN: &str =
    r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hello"}]}"#;

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

async fn text<B>(res: http::Response<B>) -> (StatusCode, String)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn up() -> MemoryUpstream {
    MemoryUpstream::json(r#"{"content":[]}"#)
}

// ---- classify ----

#[tokio::test]
async fn classify_alone_forwards_the_canonical_path_and_its_kind() {
    let upstream = up();
    let svc = ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic).layer(upstream.clone());
    let res = svc
        .oneshot(post("//v1/./message%73/?beta=true", CLEAN))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen[0].uri, "/v1/messages?beta=true");
}

#[tokio::test]
async fn classify_refuses_connect_trace_and_encoded_slashes() {
    let upstream = up();
    let svc = ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic).layer(upstream.clone());
    for (method, path, status) in [
        (Method::CONNECT, "/", 405),
        (Method::TRACE, "/v1/messages", 405),
        (Method::POST, "/v1%2fmessages", 400),
        (Method::POST, "/v1%5Cmessages", 400),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (got, body) = text(svc.clone().oneshot(req).await.unwrap()).await;
        assert_eq!(got.as_u16(), status, "{method} {path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "error", "{body}");
    }
    assert!(upstream.seen().is_empty());
}

// ---- request guard ----

#[tokio::test]
async fn request_guard_alone_classifies_like_the_stack() {
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy()).layer(upstream.clone());
    for path in [
        "/v1/messages",
        "/v1/message%73",
        "/V1/MESSAGES/",
        "/v1/messages;x",
    ] {
        let (status, body) = text(svc.clone().oneshot(post(path, CARD)).await.unwrap()).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            body.contains("Rejected due to inappropriate content"),
            "{body}"
        );
    }
    assert!(upstream.seen().is_empty());
}

fn outcome<B>(res: &http::Response<B>) -> GuardOutcome {
    res.extensions().get::<GuardReport>().unwrap().outcome
}

#[tokio::test]
async fn bodies_on_unknown_paths_are_inspected_unless_unguarded() {
    let mut table = RouteTable::claude_code();
    table.insert("/v1/open/*", RouteKind::Unguarded).unwrap();
    let svc = RequestGuardLayer::new(seed_policy())
        .routes(table)
        .layer(up());
    // A JSON body on a passthrough path reaches the policy.
    let res = svc
        .clone()
        .oneshot(post("/v1/files", r#"{"purpose":"x"}"#))
        .await
        .unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Allowed);
    // No body: nothing to read.
    let get = Request::get("/v1/models")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = svc.clone().oneshot(get).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Skipped);
    // An explicit opt-out is not read.
    let res = svc.clone().oneshot(post("/v1/open/x", CARD)).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Skipped);
}

/// The URL reaches the provider too (fifth review): the seed rule refuses `credit card` in a
/// path or a query, with or without a body; an `Unguarded` route is not read; a clean URL
/// passes as before.
#[tokio::test]
async fn a_url_is_read_by_the_request_guard() {
    let mut table = RouteTable::claude_code();
    table.insert("/v1/open/*", RouteKind::Unguarded).unwrap();
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy())
        .routes(table)
        .layer(upstream.clone());
    for uri in [
        "/v1/models?q=credit%20card",
        "/v1/files/my%20credit%20card%20file",
        "/v1/messages?note=credit+card",
    ] {
        let get = Request::get(uri).body(Empty::<Bytes>::new()).unwrap();
        let res = svc.clone().oneshot(get).await.unwrap();
        assert_eq!(outcome(&res), GuardOutcome::Rejected, "{uri}");
        let (status, body) = text(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            body.contains("Rejected due to inappropriate content"),
            "{body}"
        );
    }
    let res = svc
        .clone()
        .oneshot(post("/v1/messages?note=credit%20card", CLEAN))
        .await
        .unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Rejected);
    assert_eq!(upstream.seen().len(), 0, "nothing refused went upstream");
    let res = svc
        .clone()
        .oneshot(post("/v1/messages?beta=true", CLEAN))
        .await
        .unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Allowed);
    let get = Request::get("/v1/open/credit%20card")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = svc.clone().oneshot(get).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Skipped);
    assert_eq!(upstream.seen().len(), 2);
}

/// A body of the shape the endpoint at `path` takes, with `prompt` where a model reads it.
fn shaped(path: &str, prompt: &str) -> String {
    let chat = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
    match path {
        "/v1/messages/batches" => {
            format!(r#"{{"requests":[{{"custom_id":"a","params":{chat}}}]}}"#)
        }
        "/v1/complete" | "/v1/completions" => format!(r#"{{"model":"m","prompt":"{prompt}"}}"#),
        "/v1/responses" | "/v1/embeddings" => format!(r#"{{"model":"m","input":"{prompt}"}}"#),
        _ => chat,
    }
}

#[tokio::test]
async fn every_prompt_endpoint_reaches_the_request_guard_as_its_kind() {
    for (spec, paths) in [
        (
            ProviderSpec::anthropic(),
            &[
                "/v1/messages",
                "/v1/messages/count_tokens",
                "/v1/messages/batches",
                "/v1/complete",
                "/v1/chat/completions",
            ][..],
        ),
        (
            ProviderSpec::openai(),
            &[
                "/v1/chat/completions",
                "/v1/completions",
                "/v1/responses",
                "/v1/embeddings",
            ][..],
        ),
    ] {
        let upstream = up();
        let svc = StackConfig::new("b", spec)
            .policy(seed_policy())
            .layer()
            .layer(upstream.clone());
        for path in paths {
            let res = svc
                .clone()
                .oneshot(post(path, shaped(path, "my credit card")))
                .await
                .unwrap();
            assert_eq!(res.status(), 400, "{path}");
            let res = svc
                .clone()
                .oneshot(post(path, shaped(path, "hello")))
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(outcome(&res), GuardOutcome::Allowed, "{path}");
        }
        assert_eq!(upstream.seen().len(), paths.len());
    }
}

#[tokio::test]
async fn an_exhausted_budget_is_a_retryable_529_and_is_given_back() {
    let budget = BodyBudget::new(CLEAN.len() - 1);
    let limits = BodyLimits::new(1 << 20).budget(budget.clone());
    let svc = RequestGuardLayer::new(seed_policy())
        .limits(limits.clone())
        .layer(up());
    let (status, body) = text(
        svc.clone()
            .oneshot(post("/v1/messages", CLEAN))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status.as_u16(), 529, "{body}");
    assert!(body.contains("overloaded_error"), "{body}");
    assert_eq!(budget.available(), budget.total());
    // Room for one body: the request goes through and gives its share back.
    let budget = BodyBudget::new(1 << 10);
    let svc = RequestGuardLayer::new(seed_policy())
        .limits(BodyLimits::new(1 << 20).budget(budget.clone()))
        .layer(up());
    let res = svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(budget.available(), budget.total());
}

/// Found by a security review: any number of stacked codings was decoded, layer after layer,
/// on the worker thread. Two are read and inspected; more are refused like an unknown coding.
#[tokio::test]
async fn stacked_content_encodings_beyond_two_are_refused() {
    use std::io::Write;
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    };
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy()).layer(upstream.clone());
    let encoded = |body: &str, codings: &[&str]| {
        let data = codings.iter().fold(Bytes::from(body.to_owned()), |b, c| {
            if c.trim() == "identity" { b } else { gzip(&b) }
        });
        let mut req = post("/v1/messages", data);
        for c in codings {
            req.headers_mut()
                .append("content-encoding", c.parse().unwrap());
        }
        req
    };
    // Two codings, with `identity` (no coding) around them: decoded and inspected.
    let two = ["identity", "gzip", "identity, gzip"];
    let res = svc.clone().oneshot(encoded(CARD, &two)).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Rejected);
    let res = svc.clone().oneshot(encoded(CLEAN, &two)).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Allowed);
    assert_eq!(upstream.seen().len(), 1);
    // Three: refused before the upstream, whatever the body says.
    let res = svc
        .clone()
        .oneshot(encoded(CLEAN, &["gzip", "gzip", "gzip"]))
        .await
        .unwrap();
    assert_eq!(outcome(&res), GuardOutcome::Invalid);
    let (status, body) = text(res).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_request_error"), "{body}");
    assert!(
        body.contains("3 stacked content-encodings, more than the 2 agw decodes"),
        "{body}"
    );
    assert_eq!(upstream.seen().len(), 1);
}

/// Found by a black-box review: `charset=utf-7` on a JSON body. agw read it as UTF-8 (plain
/// ASCII, harmless), a receiver honouring the charset decoded `+ACI-` to a quote and read new
/// keys: a model, a cap and a card past the guard, the access list and the budget. A body
/// labelled with any charset but UTF-8 (or ASCII) is refused, in any `Content-Type` header;
/// the UTF-8 labels pass, quoted or not, in any case.
#[tokio::test]
async fn a_body_in_a_charset_other_than_utf8_is_refused() {
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy()).layer(upstream.clone());
    let with = |types: &[&str]| {
        let mut req = post("/v1/messages", Bytes::from_static(CLEAN.as_bytes()));
        req.headers_mut().remove("content-type");
        for t in types {
            req.headers_mut().append("content-type", t.parse().unwrap());
        }
        req
    };
    for types in [
        &["application/json; charset=utf-7"][..],
        &["application/json;charset=\"UTF-7\""],
        &["application/json", "text/plain; charset=utf-16le"],
        &["application/json; x=y; CharSet = utf-16"],
        // RFC 2231's form names a charset too (review).
        &["application/json; charset*=utf-8''utf-7"],
    ] {
        let res = svc.clone().oneshot(with(types)).await.unwrap();
        assert_eq!(outcome(&res), GuardOutcome::Invalid, "{types:?}");
        let (status, body) = text(res).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("invalid_request_error"), "{body}");
        assert!(body.contains("is not UTF-8"), "{body}");
    }
    assert!(upstream.seen().is_empty());
    for types in [
        &["application/json; charset=utf-8"][..],
        &["application/json; charset=\"UTF-8\""],
        &["application/json; charset='utf-8'"],
        &["application/json;charset=us-ascii"],
        &["application/json"],
        // A charset that reads ASCII as ASCII, on an ASCII body: the same text (some HTTP
        // clients label everything ISO-8859-1).
        &["application/json; charset=ISO-8859-1"],
    ] {
        let res = svc.clone().oneshot(with(types)).await.unwrap();
        assert_eq!(outcome(&res), GuardOutcome::Allowed, "{types:?}");
    }
    assert_eq!(upstream.seen().len(), 6);
    // Not on a body with other bytes: Latin-1 reads them as other characters, and a receiver
    // that drops them under an ASCII label reads other text.
    for label in ["iso-8859-1", "us-ascii"] {
        let mut req = post(
            "/v1/messages",
            Bytes::from_static(r#"{"messages":[{"role":"user","content":"café"}]}"#.as_bytes()),
        );
        req.headers_mut().insert(
            "content-type",
            format!("application/json; charset={label}")
                .parse()
                .unwrap(),
        );
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(outcome(&res), GuardOutcome::Invalid, "{label}");
    }
    assert_eq!(upstream.seen().len(), 6);
}

/// A body that sends one chunk and then nothing, forever.
struct Trickle(bool);

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
        }
    }
}

#[tokio::test]
async fn a_trickled_body_times_out_with_408() {
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy())
        .limits(BodyLimits::new(1 << 20).read_timeout(Duration::from_millis(20)))
        .layer(upstream.clone());
    let req = Request::post("/v1/messages").body(Trickle(false)).unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(outcome(&res), GuardOutcome::TimedOut);
    assert_eq!(res.status(), 408);
    assert!(upstream.seen().is_empty());
}

// ---- provider ----

#[tokio::test]
async fn provider_alone_applies_the_model_policy() {
    for (spec, path) in [
        (ProviderSpec::anthropic(), "/v1/messages"),
        (ProviderSpec::openai(), "/v1/chat/completions"),
    ] {
        let upstream = up();
        let svc = ProviderLayer::new("b", spec)
            .model_policy(ModelPolicy::pin("pinned-model").unwrap())
            .layer(upstream.clone());
        let res = svc.oneshot(post(path, CLEAN)).await.unwrap();
        assert_eq!(
            res.extensions().get::<ModelRewrite>(),
            Some(&ModelRewrite {
                from: "claude-sonnet-4-5".into(),
                to: "pinned-model".into()
            })
        );
        let seen = upstream.seen();
        let body = std::str::from_utf8(&seen[0].body).unwrap();
        assert!(body.starts_with(r#"{"model":"pinned-model","#), "{body}");
        assert_eq!(seen[0].headers["content-length"], body.len().to_string());
    }
}

#[tokio::test]
async fn provider_reuses_the_body_an_earlier_layer_read() {
    let upstream = up();
    let svc = ProviderLayer::new("b", ProviderSpec::anthropic())
        .model_policy(ModelPolicy::pin("pinned-model").unwrap())
        .layer(upstream.clone());
    // The request as the guard leaves it: its body is the collected bytes.
    let mut req = post("/v1/messages", CLEAN);
    req.extensions_mut().insert(Collected {
        plain: Bytes::from_static(CLEAN.as_bytes()),
    });
    svc.clone().oneshot(req).await.unwrap();
    assert!(
        std::str::from_utf8(&upstream.seen()[0].body)
            .unwrap()
            .contains("pinned-model")
    );
    // Composed: the guard reads once and the pin still applies.
    let upstream = up();
    let svc = RequestGuardLayer::new(seed_policy()).layer(
        ProviderLayer::new("b", ProviderSpec::anthropic())
            .model_policy(ModelPolicy::pin("pinned-model").unwrap())
            .layer(upstream.clone()),
    );
    let res = svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        std::str::from_utf8(&upstream.seen()[0].body)
            .unwrap()
            .contains("pinned-model")
    );
}

#[tokio::test]
async fn an_upstream_error_after_a_model_rewrite_says_so() {
    let upstream = MemoryUpstream::json(
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"thinking mode isn't enabled"}}"#,
    )
    .status(StatusCode::BAD_REQUEST)
    .header("request-id", "req_upstream_1");
    let svc = ProviderLayer::new("anthropic", ProviderSpec::anthropic())
        .model_policy(ModelPolicy::pin("claude-opus-4-6").unwrap())
        .layer(upstream);
    let res = svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap();
    assert_eq!(res.headers()["request-id"], "req_upstream_1");
    let (status, body) = text(res).await;
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    for part in [
        "claude-sonnet-4-5",
        "claude-opus-4-6",
        "thinking mode isn't enabled",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    // Rate limits are not about the model: passed as they are.
    let upstream = MemoryUpstream::json(r#"{"error":{"message":"slow down"}}"#)
        .status(StatusCode::TOO_MANY_REQUESTS);
    let svc = ProviderLayer::new("anthropic", ProviderSpec::anthropic())
        .model_policy(ModelPolicy::pin("claude-opus-4-6").unwrap())
        .layer(upstream);
    let (status, body) = text(svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap()).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (429, r#"{"error":{"message":"slow down"}}"#)
    );
}

#[tokio::test]
async fn provider_refuses_kinds_its_backend_does_not_speak() {
    let upstream = up();
    let svc = ProviderLayer::new("anthropic", ProviderSpec::anthropic()).layer(upstream.clone());
    let (status, body) = text(svc.oneshot(post("/v1/responses", CLEAN)).await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body.contains("backend `anthropic`"), "{body}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn the_injected_key_never_mints_a_credential() {
    use agw_core::provider::{Credentials, Secret};
    let inject = || ProviderSpec::openai().with_credentials(Credentials::Inject(Secret::new("gw")));
    let session = r#"{"session":{"type":"realtime","model":"gpt-realtime"}}"#;
    for path in [
        "/v1/realtime/client_secrets",
        "/v1/realtime/sessions",
        "/v1/realtime/calls",
        "/v1/chatkit/sessions",
        "/v1/organization/admin_api_keys",
        "/v1/organizations/api_keys",
    ] {
        let upstream = up();
        let svc = StackConfig::new("openai", inject())
            .layer()
            .layer(upstream.clone());
        let (status, body) = text(svc.oneshot(post(path, session)).await.unwrap()).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("hand out provider credentials"), "{body}");
        assert!(upstream.seen().is_empty(), "{path} reached the upstream");
    }
    // A base URL with a path: the path the upstream gets is what counts (regression round).
    for (base, path) in [
        ("http://127.0.0.1:9/v1", "/realtime/client_secrets"),
        ("http://127.0.0.1:9/v1", "/organization/admin_api_keys"),
        ("http://127.0.0.1:9/openai", "/realtime/sessions"),
        ("http://127.0.0.1:9/v1alpha", "/auth_tokens"),
    ] {
        let upstream = up();
        let spec = ProviderSpec::openai_compatible(base)
            .unwrap()
            .with_credentials(Credentials::Inject(Secret::new("gw")));
        let svc = StackConfig::new("local", spec)
            .layer()
            .layer(upstream.clone());
        let (status, body) = text(svc.oneshot(post(path, session)).await.unwrap()).await;
        assert_eq!(status, 403, "{base} {path}: {body}");
        assert!(upstream.seen().is_empty());
    }
    // With the client's own credentials there is no key of the gateway's to hand out.
    let upstream = up();
    let svc = StackConfig::new("openai", ProviderSpec::openai())
        .layer()
        .layer(upstream.clone());
    let res = svc
        .oneshot(post("/v1/realtime/client_secrets", session))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A route the operator names `Unguarded` is forwarded.
    let upstream = up();
    let mut table = RouteTable::openai();
    table
        .insert("/v1/realtime/client_secrets", RouteKind::Unguarded)
        .unwrap();
    let svc = StackConfig::new("openai", inject())
        .routes(table)
        .layer()
        .layer(upstream.clone());
    let res = svc
        .oneshot(post("/v1/realtime/client_secrets", session))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(upstream.seen().len(), 1);
}

// ---- request id ----

#[tokio::test]
async fn request_ids_reach_the_upstream_and_every_answer() {
    let upstream = up();
    let svc = RequestIdLayer::new().layer(upstream.clone());
    let res = svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap();
    let id = res.extensions().get::<RequestId>().unwrap().clone();
    assert_eq!(res.headers()["request-id"], id.0);
    assert_eq!(upstream.seen()[0].headers["x-request-id"], id.0);
    // An upstream's own id is kept.
    let svc = RequestIdLayer::new().layer(up().header("request-id", "req_up"));
    let res = svc.oneshot(post("/v1/messages", CLEAN)).await.unwrap();
    assert_eq!(res.headers()["request-id"], "req_up");
    // agw's own answers carry one.
    let svc = StackConfig::new("a", ProviderSpec::anthropic())
        .policy(seed_policy())
        .layer()
        .layer(up());
    let res = svc.oneshot(post("/v1/messages", CARD)).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_agw_")
    );
    // Under OpenAI's name too (its SDK reads `x-request-id`).
    assert_eq!(res.headers()["x-request-id"], res.headers()["request-id"]);
    // An OpenAI upstream's own id is kept.
    let svc = RequestIdLayer::new().layer(up().header("x-request-id", "req_openai"));
    let res = svc
        .oneshot(post("/v1/chat/completions", CLEAN))
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req_openai");
}

// ---- composed ----

#[tokio::test]
async fn the_stack_classifies_once_for_every_layer() {
    let upstream = up();
    let svc = StackConfig::new("anthropic", ProviderSpec::anthropic())
        .policy(seed_policy())
        .model_policy(ModelPolicy::pin("pinned-model").unwrap())
        .layer()
        .layer(upstream.clone());
    for path in [
        "/v1/message%73",
        "//v1/messages",
        "/v1/./messages",
        "/V1/MESSAGES",
    ] {
        let res = svc.clone().oneshot(post(path, CARD)).await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
    }
    let res = svc
        .clone()
        .oneshot(post("/v1/messages/?beta=true", CLEAN))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].uri,
        "https://api.anthropic.com/v1/messages?beta=true"
    );
    assert!(
        std::str::from_utf8(&seen[0].body)
            .unwrap()
            .contains("pinned-model")
    );
}

/// The response guard used alone classifies as the stack does: the canonical path decides what
/// is guarded, and a path with no canonical form is refused before anything goes upstream.
#[tokio::test]
async fn response_guard_alone_classifies_canonical_paths() {
    use agw_tower::response::ResponseGuardLayer;
    let policy = Policy::builder()
        .rule(Rule::regex("credit-card", ["credit card"]).mask())
        .build()
        .unwrap();
    let upstream =
        MemoryUpstream::json(r#"{"content":[{"type":"text","text":"your credit card is safe"}]}"#);
    let svc = ResponseGuardLayer::new(policy).layer(upstream.clone());
    for path in ["/v1/messages", "/v1/message%73", "//v1/./messages/"] {
        let res = svc.clone().oneshot(post(path, "{}")).await.unwrap();
        let (status, body) = text(res).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.contains("credit card"), "{path}: {body}");
    }
    let seen = upstream.seen().len();
    let res = svc.oneshot(post("/v1%2fmessages", "{}")).await.unwrap();
    assert_eq!(text(res).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        upstream.seen().len(),
        seen,
        "a refused path never goes upstream"
    );
}

// ---- log probabilities ----

/// Found by a black-box review: Vertex streams a tool call's arguments in pieces when asked
/// (`toolConfig.functionCallingConfig.streamFunctionCallArguments`), each in an event of its
/// own, which no tool rule or mask reads whole. Where the response policy has tool rules or
/// masks, such a request is refused before it is sent; without, it goes through.
#[tokio::test]
async fn streamed_tool_arguments_are_refused_where_responses_are_guarded() {
    use agw_core::guard::ToolRule;
    let tools = Policy::builder()
        .tool_rule(ToolRule::new("rm", "*").argument("", "rm -rf").reject("no"))
        .build()
        .unwrap();
    let auditing = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";
    let asks = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO","streamFunctionCallArguments":true}}}"#;
    let plain = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO"}}}"#;
    for (policy, body, refused) in [
        (&tools, asks, true),
        (&tools, plain, false),
        (&auditing, asks, false),
    ] {
        let named = refused.then_some("streamFunctionCallArguments");
        refused_before_sent(policy, path, body, named).await;
    }
}

/// Sends `body` to `path` through an OpenAI stack whose response policy is `policy`: refused
/// (400, an invalid request error naming `named`) and nothing sent upstream, or (`None`) sent
/// and answered.
async fn refused_before_sent(policy: &Policy, path: &str, body: &'static str, named: Option<&str>) {
    let upstream = MemoryUpstream::json("{}");
    let svc = StackConfig::new("openai", ProviderSpec::openai())
        .response_policy(policy.clone())
        .layer()
        .layer(upstream.clone());
    let (status, text) = text(svc.oneshot(post(path, body)).await.unwrap()).await;
    match named {
        Some(named) => {
            assert_eq!(status, 400, "{path} {body}");
            assert!(
                text.contains("\"invalid_request_error\"") && text.contains(named),
                "{text}"
            );
            assert!(upstream.seen().is_empty(), "{path}: sent upstream");
        }
        None => {
            assert_eq!(status, 200, "{path} {body}: {text}");
            assert_eq!(upstream.seen().len(), 1);
        }
    }
}

/// Where the response policy masks or refuses text, a request for token log probabilities or
/// spoken audio is refused before it is sent (the tokens would carry what the guard masks,
/// piece by piece; the audio says it);
/// without such a policy, or on Anthropic's APIs (which have none), it goes through.
#[tokio::test]
async fn log_probabilities_and_audio_are_refused_where_responses_are_masked() {
    let masking = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
        .build()
        .unwrap();
    let auditing = Policy::builder()
        .rule(Rule::detectors("cards", [Detector::CreditCard]).audit())
        .build()
        .unwrap();
    let chat = r#"{"model":"m","logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"hi"}]}"#;
    let responses = r#"{"model":"m","input":"hi","include":["message.output_text.logprobs"]}"#;
    // Spoken audio says the answer again, unread: refused the same way.
    let audio = r#"{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[{"role":"user","content":"hi"}]}"#;
    for (policy, path, body, refused) in [
        (&masking, "/v1/chat/completions", chat, true),
        (&masking, "/v1/responses", responses, true),
        (
            &masking,
            "/v1/completions",
            r#"{"model":"m","prompt":"hi","logprobs":0}"#,
            true,
        ),
        (
            &masking,
            "/v1/chat/completions",
            r#"{"model":"m","messages":[]}"#,
            false,
        ),
        (
            &masking,
            "/v1/chat/completions?include%5B%5D=message.output_text.log%70robs",
            r#"{"model":"m","messages":[]}"#,
            true,
        ),
        (&auditing, "/v1/chat/completions", chat, false),
        (&masking, "/v1/chat/completions", audio, true),
        (&auditing, "/v1/chat/completions", audio, false),
    ] {
        let named = if body == audio {
            "modalities"
        } else {
            "logprobs"
        };
        refused_before_sent(policy, path, body, refused.then_some(named)).await;
    }
    // Whatever the backend's dialect: a passthrough path on an Anthropic backend may reach a
    // llama.cpp server, whose `n_probs` lists the tokens (regression round).
    let upstream = up();
    let svc = StackConfig::new("anthropic", ProviderSpec::anthropic())
        .response_policy(masking)
        .layer()
        .layer(upstream.clone());
    let res = svc
        .oneshot(post("/completion", r#"{"prompt":"hi","n_probs":5}"#))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(upstream.seen().is_empty());
}
