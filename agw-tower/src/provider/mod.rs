//! The provider layer: points a request at its provider and applies the model policy.
//!
//! It rewrites the URI to the provider's base URL (path and query kept, so Claude Code's
//! `?beta=true` arrives), removes hop-by-hop headers and `Host`, applies the credentials mode
//! (inject the gateway's key, or pass the client's through) and default headers
//! (`anthropic-version` only when the client sent none), and applies the
//! [`ModelPolicy`](agw_core::model::ModelPolicy): pin, aliases, allow-list — editing only the
//! bytes of the `model` value. Every other header (`anthropic-beta`, `x-claude-code-session-id`,
//! unknown ones) is forwarded untouched.
//!
//! A request of a kind the provider does not speak (an OpenAI chat completion sent to an
//! Anthropic backend) gets a provider-shaped 404 naming the backend.
//!
//! # Example
//!
//! ```
//! use agw_core::{model::ModelPolicy, provider::ProviderSpec};
//! use agw_tower::provider::ProviderLayer;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let upstream = tower::service_fn(|req: http::Request<_>| async move {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(req.uri().to_string()))
//! });
//! let spec = ProviderSpec::anthropic().with_base_url("http://127.0.0.1:9000")?;
//! let mut svc = ProviderLayer::new("anthropic", spec)
//!     .model_policy(ModelPolicy::pin("claude-opus-4-6")?)
//!     .layer(upstream);
//! let req = http::Request::post("/v1/messages?beta=true")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"model":"x","messages":[]}"#)))?;
//! let res = svc.call(req).await?;
//! assert_eq!(res.into_body().to_string_lossy(), "http://127.0.0.1:9000/v1/messages?beta=true");
//! # Ok(()) }
//! # trait Lossy { fn to_string_lossy(self) -> String; }
//! # impl<B> Lossy for agw_tower::body::Body<B> where B: Into<String> { fn to_string_lossy(self) -> String {
//! #   match self { agw_tower::body::Body::Inner { body } => body.into(), _ => String::new() } } }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

mod layer;
mod service;

pub use crate::future::ResponseFuture;
pub use layer::ProviderLayer;
pub use service::Provider;

/// Inserted into response extensions when the model was rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRewrite {
    /// The model the client asked for.
    pub from: String,
    /// The model sent upstream.
    pub to: String,
}
