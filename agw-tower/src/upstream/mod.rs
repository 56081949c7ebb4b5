//! The upstream service: sends requests to providers over pooled connections.
//!
//! HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS), TLS by rustls with the bundled Mozilla
//! roots or the system's, keep-alive connections in agw's own pool (an HTTP/1.1 connection goes
//! back when its response body ends, read by the task that serves the client; an HTTP/2 one is
//! shared), a connect timeout and a timeout for the response headers. Response bodies stream
//! through frame by frame — server-sent events reach the client as the provider sends them,
//! compressed responses pass as they are. When the client goes away, the response body is
//! dropped and with it the upstream request.
//!
//! Failures become provider-shaped responses, never errors: an unreachable upstream is a 502,
//! a timeout a 504, both naming the backend and the cause — refused, DNS, TLS, connect timeout,
//! reset — which is also in an [`UpstreamFailure`] response extension for the access log. A
//! body that goes silent for [`UpstreamConfig::stream_idle_timeout`], or is cut by the
//! upstream, ends: an event stream with a provider-shaped error event in the client's dialect,
//! anything else with an error ([`UpstreamBody`]). Idle pooled connections are closed after
//! [`UpstreamConfig::pool_idle_timeout`]. The service is `Clone + Send + Sync` with an
//! `Infallible` error.
//!
//! # Example
//!
//! ```no_run
//! use agw_tower::upstream::{Upstream, UpstreamConfig};
//! use agw_tower::body::Body;
//! use tower_service::Service;
//!
//! # async fn run() {
//! let mut upstream: Upstream<Body<http_body_util::Empty<bytes::Bytes>>> =
//!     Upstream::new(UpstreamConfig::new("anthropic")).unwrap();
//! let req = http::Request::get("https://api.anthropic.com/v1/models")
//!     .body(Body::empty())
//!     .unwrap();
//! let res = upstream.call(req).await.unwrap(); // a 502 response, not an error, if offline
//! # }
//! ```

mod body;
mod failure;
mod pool;
mod service;

pub use body::{CutListener, StreamCut, StreamEnd, UpstreamBody, UpstreamBodyError};
pub use failure::UpstreamFailure;
pub use pool::PooledBody;
pub use service::{TlsRoots, Upstream, UpstreamConfig, UpstreamFuture, UpstreamTiming};
