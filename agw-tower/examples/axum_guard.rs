//! agw in an axum app, two ways: one layer alone in front of your own handler, and a whole
//! guarded gateway built by the stack builder.
//!
//! ```sh
//! cargo run -p agw-tower --example axum_guard
//! # one layer alone, in front of a local handler:
//! curl -s localhost:3000/v1/messages -d '{"messages":[{"role":"user","content":"my credit card"}]}'
//! # the whole stack, forwarding to Anthropic (set ANTHROPIC_API_KEY where this runs):
//! curl -s localhost:3000/anthropic/v1/messages -H 'content-type: application/json' \
//!   -d '{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
//! ```

use agw_core::guard::{Policy, Rule};
use agw_core::provider::{Credentials, ProviderSpec, Secret};
use agw_tower::guard::RequestGuardLayer;
use agw_tower::stack::StackConfig;
use axum::{Router, routing::post};

/// One layer alone: the request guard in front of a handler that stands in for a model call.
pub fn app(policy: Policy) -> Router {
    Router::new()
        .route(
            "/v1/messages",
            post(|body: String| async move { format!("model saw {} bytes", body.len()) }),
        )
        .layer(RequestGuardLayer::new(policy))
}

/// The whole stack (classify, request and response guards, provider, upstream) for one
/// backend — `config.layer().layer(upstream)` — nested under `/anthropic` next to the app's own
/// routes.
pub fn gateway<T>(app: Router, stack: T) -> Router
where
    T: tower_service::Service<http::Request<axum::body::Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    T::Response: axum::response::IntoResponse,
    T::Future: Send,
{
    app.nest_service("/anthropic", stack)
}

/// The seed article's rule.
pub fn policy() -> Policy {
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .expect("a valid policy")
}

/// The backend: Anthropic, with the gateway's key when one is set.
pub fn config() -> StackConfig {
    let mut spec = ProviderSpec::anthropic();
    if let Ok(key) = std::env::var("ANTHROPIC_API_KEY") {
        spec = spec.with_credentials(Credentials::Inject(Secret::new(key)));
    }
    StackConfig::new("anthropic", spec).policy(policy())
}

#[tokio::main]
async fn main() {
    let stack = config().build().expect("the bundled roots load");
    let router = gateway(app(policy()), stack);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, router).await.unwrap();
}
