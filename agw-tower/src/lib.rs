//! tower layers for agw, the guarding AI gateway: compose them into any axum, tonic or hyper
//! service.
//!
//! In request order (the names follow pingora's phases):
//!
//! 1. [`classify::ClassifyLayer`] — path → [`RouteKind`](agw_core::route::RouteKind), into the
//!    request extensions;
//! 2. [`guard::RequestGuardLayer`] — the request body filter: collects (bounded), decodes
//!    `Content-Encoding`, runs the policy, rejects or forwards the original or masked bytes;
//! 3. [`response::ResponseGuardLayer`] — the response body filter: streams guarded event by
//!    event, JSON responses inspected whole;
//! 4. [`provider::ProviderLayer`] — the upstream request filter: base URL, credentials, default
//!    headers, model policy;
//! 5. [`upstream::Upstream`] — the pooled hyper client (HTTP/1.1 and HTTP/2, rustls).
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
mod future;
pub mod guard;
pub mod hop;
pub mod provider;
pub mod response;
pub mod upstream;

#[cfg(feature = "team")]
pub mod auth;
#[cfg(feature = "team")]
pub mod limit;
#[cfg(feature = "team")]
pub mod metrics;
#[cfg(feature = "team")]
pub mod team;
#[cfg(feature = "team")]
pub mod usage;
