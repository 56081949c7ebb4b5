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
//! Anthropic backend) gets a provider-shaped 404 naming the backend. Requests that no
//! [`ClassifyLayer`](crate::classify::ClassifyLayer) classified are classified with the
//! provider's default route table, so the model policy applies to the layer used alone too.
//!
//! When the model was rewritten and the upstream answers with an error about the request
//! (4xx other than 401, 403 and 429), the client gets an error that says so: the requested
//! model, the model sent, and the upstream's message, in the client's dialect.
//!
//! # Example
//!
//! ```
//! use agw_core::{model::ModelPolicy, provider::ProviderSpec};
//! use agw_tower::provider::ProviderLayer;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // An upstream that answers with the URI and body it was sent.
//! let upstream = tower::service_fn(|req: http::Request<agw_tower::body::Body<Full<Bytes>>>| async move {
//!     let uri = req.uri().to_string();
//!     let body = req.into_body().collect().await.unwrap().to_bytes();
//!     let echo = format!("{uri} {}", String::from_utf8_lossy(&body));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(echo))))
//! });
//! let spec = ProviderSpec::anthropic().with_base_url("http://127.0.0.1:9000")?;
//! let mut svc = ProviderLayer::new("anthropic", spec)
//!     .model_policy(ModelPolicy::pin("claude-opus-4-6")?)
//!     .layer(upstream);
//! let req = http::Request::post("/v1/messages?beta=true")
//!     .body(Full::new(Bytes::from_static(br#"{"model":"x","messages":[]}"#)))?;
//! let res = svc.call(req).await?;
//! let echo = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     echo,
//!     r#"http://127.0.0.1:9000/v1/messages?beta=true {"model":"claude-opus-4-6","messages":[]}"#
//! );
//! # Ok(()) }
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
