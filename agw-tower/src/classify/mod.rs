//! Classification: the one place a request becomes what every later layer reads.
//!
//! [`Classify`] puts the request path in its [canonical form](agw_core::route::canonical_path)
//! (and forwards that form), looks it up in the backend's route table, and stores a
//! [`Classified`] extension: the route kind, the client's dialect (its error shape) and the
//! upstream's dialect (the format its responses are parsed in), plus a [`Backend`] extension
//! naming the backend. A path with no canonical form (`%2F`, a backslash, an encoded control
//! byte) gets a provider-shaped 400; `CONNECT` and `TRACE` a 405 — neither reaches the inner
//! service.
//!
//! Later layers read the extension and never re-derive it. Used without `Classify`, a layer
//! classifies with its own [`Classifier`] — the same function over the same table the stack
//! would use — so it never silently skips a policy.
//!
//! # Example
//!
//! ```
//! use agw_core::{api::Api, route::{RouteKind, RouteTable}};
//! use agw_tower::classify::{Classified, ClassifyLayer};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() {
//! let svc = tower::service_fn(|req: http::Request<()>| async move {
//!     let c = *req.extensions().get::<Classified>().unwrap();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("{:?} {}", c.kind, req.uri())))
//! });
//! let mut svc = ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic).layer(svc);
//! let req = http::Request::post("//v1/message%73/?beta=true").body(()).unwrap();
//! let res = svc.call(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//! # use http_body_util::BodyExt;
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, "Messages /v1/messages?beta=true");
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

mod classifier;
mod layer;
mod service;

pub use classifier::Classifier;
pub use layer::ClassifyLayer;
pub use service::Classify;

use agw_core::api::Api;
use agw_core::route::RouteKind;
use std::sync::Arc;

/// What classification found out about a request; a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The route kind.
    pub kind: RouteKind,
    /// The client's dialect: the shape of the errors and error events it expects.
    pub api: Api,
    /// The upstream's dialect: the format its responses and streams are parsed in. Equal to
    /// `api` until agw translates between dialects.
    pub upstream: Api,
}

impl Classified {
    /// Reads the classification of a request, defaulting to `fallback` with the kind's API.
    ///
    /// Prefer a [`Classifier`]: a fallback here is a second opinion the stack would not share.
    pub fn of<B>(req: &http::Request<B>, fallback: RouteKind) -> Classified {
        req.extensions()
            .get::<Classified>()
            .copied()
            .unwrap_or_else(|| {
                let api = fallback.api().unwrap_or(Api::Anthropic);
                Classified {
                    kind: fallback,
                    api,
                    upstream: api,
                }
            })
    }
}

/// The backend a request was classified for; a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend(pub Arc<str>);
