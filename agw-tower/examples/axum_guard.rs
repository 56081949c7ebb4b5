//! Adding agw's prompt guard to an existing axum app.
//!
//! ```sh
//! cargo run -p agw-tower --example axum_guard
//! curl -s localhost:3000/v1/messages -d '{"messages":[{"role":"user","content":"my credit card"}]}'
//! ```

use agw_core::guard::{Policy, Rule};
use agw_tower::guard::RequestGuardLayer;
use axum::{Router, routing::post};

/// The app: a stand-in for a handler that calls a model.
pub fn app(policy: Policy) -> Router {
    Router::new()
        .route(
            "/v1/messages",
            post(|body: String| async move { format!("model saw {} bytes", body.len()) }),
        )
        .layer(RequestGuardLayer::new(policy))
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

#[tokio::main]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app(policy())).await.unwrap();
}
