//! tower layers for agw, the guarding AI gateway: compose them into any axum, tonic or hyper
//! service.
//!
//! [`stack::StackConfig`] builds one backend's whole stack from its configuration; each layer
//! also works alone. In request order (the names follow pingora's phases):
//!
//! 1. [`request_id::RequestIdLayer`] — a request id, sent upstream and put on agw's answers;
//! 2. [`classify::ClassifyLayer`] — canonical path → [`RouteKind`](agw_core::route::RouteKind),
//!    the client's and the upstream's dialect, into the request extensions (decided once);
//! 3. [`guard::RequestGuardLayer`] — the request body filter: reads the body once within the
//!    [`limits`] (size, time, shared budget), decodes `Content-Encoding`, runs the policy,
//!    rejects or forwards the original or masked bytes;
//! 4. [`response::ResponseGuardLayer`] — the response body filter: streams guarded event by
//!    event, JSON responses inspected whole;
//! 5. [`provider::ProviderLayer`] — the upstream request filter: base URL, credentials, default
//!    headers, model policy (on the bytes the guard already read);
//! 6. `upstream::Upstream` (feature `client`) — the pooled hyper client (HTTP/1.1 and HTTP/2,
//!    rustls), with failure causes told apart and a stream idle timeout.
//!
//! # Features
//!
//! - `client` (default): the upstream client and the stack builder's `build`. Without it the
//!   guard layers build without hyper's client and TLS.
//! - `test-util`: `test_util`, an in-memory upstream for tests and benchmarks.
//!
//! Every rejection or failure is a provider-shaped *response*, never an error, so the layers keep
//! an `Infallible` service infallible and drop into `axum::Router::layer` as they are.
//!
//! # Example
//!
//! ```
//! use agw_core::guard::{Policy, Rule};
//! use agw_tower::guard::RequestGuardLayer;
//! use axum::{Router, routing::post};
//!
//! let policy = Policy::builder()
//!     .rule(Rule::regex("cards", ["credit card"]).reject("Rejected due to inappropriate content"))
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/v1/messages", post(|body: String| async move { body }))
//!     .layer(RequestGuardLayer::new(policy));
//! ```
#![warn(missing_docs)]

pub mod body;
pub mod classify;
mod collect;
pub mod decode;
pub mod error;
mod framing;
mod future;
pub mod guard;
pub mod hop;
pub mod limits;
pub mod optional;
pub mod provider;
pub mod request_id;
pub mod response;
pub mod stack;
#[cfg(any(test, feature = "test-util"))]
#[doc(hidden)]
pub mod test_util;
#[cfg(feature = "client")]
pub mod upstream;

#[cfg(feature = "team")]
pub mod after;
#[cfg(feature = "team")]
pub mod auth;
#[cfg(feature = "team")]
mod hash;
#[cfg(feature = "team")]
pub mod limit;
#[cfg(feature = "team")]
pub mod metrics;
#[cfg(feature = "team")]
pub mod team;
#[cfg(feature = "team")]
pub mod usage;
