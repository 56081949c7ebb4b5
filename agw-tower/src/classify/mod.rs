//! Classifies requests by path into a [`RouteKind`], stored in the request extensions.
//!
//! Later layers (guard, provider, upstream) read the [`Classified`] extension to know how to
//! read the body and which error shape the client expects.
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
//!     Ok::<_, std::convert::Infallible>(req.extensions().get::<Classified>().unwrap().kind)
//! });
//! let mut svc = ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic).layer(svc);
//! let req = http::Request::post("/v1/messages?beta=true").body(()).unwrap();
//! assert_eq!(svc.call(req).await.unwrap(), RouteKind::Messages);
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

mod layer;
mod service;

pub use layer::ClassifyLayer;
pub use service::Classify;

use agw_core::api::Api;
use agw_core::route::RouteKind;

/// What [`ClassifyLayer`] found out about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// The route kind.
    pub kind: RouteKind,
    /// The error shape the client expects.
    pub api: Api,
}

impl Classified {
    /// Reads the classification of a request, defaulting to `fallback` with the kind's API.
    pub fn of<B>(req: &http::Request<B>, fallback: RouteKind) -> Classified {
        req.extensions()
            .get::<Classified>()
            .copied()
            .unwrap_or(Classified {
                kind: fallback,
                api: fallback.api().unwrap_or(Api::Anthropic),
            })
    }
}
