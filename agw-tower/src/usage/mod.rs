//! Usage and cost: counts the tokens of every response as it streams past, and reports them
//! when the body ends.
//!
//! [`UsageLayer`] wraps the response body in a [`UsageBody`] that forwards every frame at
//! once — time to first token never waits — and feeds a copy to an
//! [`UsageCounter`](agw_core::usage::UsageCounter): server-sent events through the SSE
//! decoder (only events carrying `"usage"` are parsed), JSON bodies held up to
//! [`MAX_JSON`] bytes and read at the end. When the body ends (or is dropped, say by a client
//! that went away) one [`UsageReport`] — identity, models, tokens, cost from the
//! [`PriceTable`], status, duration, time to first byte — goes to every [`UsageSink`] of the
//! layer (access log, metrics) and to the per-request [`UsageHooks`] (the limiter's settle).
//!
//! To count, the layer asks the upstream for an uncompressed response (it removes
//! `accept-encoding` from requests of routes with usage).
//!
//! # Example
//!
//! ```
//! use agw_core::price::{Price, PriceTable};
//! use agw_core::{api::Api, route::RouteKind};
//! use agw_tower::body::Body;
//! use agw_tower::classify::Classified;
//! use agw_tower::usage::{UsageLayer, UsageReport, UsageSink};
//! use http_body_util::BodyExt;
//! use std::sync::{Arc, Mutex};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! #[derive(Debug, Default)]
//! struct Last(Mutex<Option<UsageReport>>);
//! impl UsageSink for Last {
//!     fn report(&self, r: &UsageReport) { *self.0.lock().unwrap() = Some(r.clone()); }
//! }
//!
//! # async fn run() {
//! let prices = PriceTable::new([("claude-*", Price { input: 3.0, output: 15.0, cache_write: 3.75, cache_read: 0.3 })]).unwrap();
//! let last = Arc::new(Last::default());
//! let upstream = tower::service_fn(|_req: http::Request<String>| async move {
//!     let json = r#"{"model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":100,"output_tokens":10}}"#;
//!     let res = http::Response::builder().header("content-type", "application/json")
//!         .body(Body::<http_body_util::Empty<bytes::Bytes>>::full(json)).unwrap();
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//! let mut svc = UsageLayer::new(Arc::new(prices)).sink(last.clone()).layer(upstream);
//! let mut req = http::Request::post("/v1/messages").body(String::new()).unwrap();
//! // What `ClassifyLayer` decides; only routes with usage are counted.
//! req.extensions_mut().insert(Classified {
//!     kind: RouteKind::Messages,
//!     api: Api::Anthropic,
//!     upstream: Api::Anthropic,
//! });
//! let res = svc.call(req).await.unwrap();
//! res.into_body().collect().await.unwrap();
//! let report = last.0.lock().unwrap().clone().unwrap();
//! assert_eq!(report.usage.unwrap().total(), 110);
//! assert_eq!(report.cost_micros, Some(100 * 3 + 10 * 15));
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run());
//! ```

mod body;
mod include;
mod layer;
pub(crate) mod service;

pub use body::{MAX_JSON, UsageBody};
pub use include::{IncludeUsage, IncludeUsageLayer};

/// In the extensions of a request agw asked for a usage chunk its client did not ask for
/// ([`IncludeUsageLayer`]): the usage layer counts that chunk and drops it from the stream.
#[derive(Debug, Clone, Copy)]
pub struct UsageChunkAdded;

/// The status a request is reported with when its client went away before the response
/// headers (nginx's 499): the usage layer reports it so, the limiter settles it so.
pub const CLIENT_CLOSED: http::StatusCode = match http::StatusCode::from_u16(499) {
    Ok(s) => s,
    Err(_) => panic!("499 is a valid status code"),
};
pub use layer::UsageLayer;
pub use service::UsageService;

use crate::auth::Identity;
use agw_core::api::Api;
use agw_core::price::PriceTable;
use agw_core::route::RouteKind;
use agw_core::usage::Usage;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// In the extensions of every response the usage layer reports (and so counts in its sinks,
/// metrics among them): an answer without it was made before the usage layer (a refused
/// credential, request or limit), and whoever counts requests counts it themselves.
#[derive(Debug, Clone, Copy)]
pub struct Reported;

/// What one request used, reported once when its response body ends.
#[derive(Debug, Clone)]
pub struct UsageReport {
    /// Who called ([`AuthLayer`](crate::auth::AuthLayer) outside the usage layer).
    pub identity: Option<Identity>,
    /// The backend's name (the classifier's [`Backend`](crate::classify::Backend), or the
    /// layer's).
    pub backend: Option<Arc<str>>,
    /// The provider kind (`anthropic`, `openai`, ...), when the layer was told.
    pub provider: Option<Arc<str>>,
    /// The route kind.
    pub route: RouteKind,
    /// The wire format of the response.
    pub api: Api,
    /// The response status.
    pub status: StatusCode,
    /// The model the request asked for ([`RequestFacts`](crate::auth::RequestFacts)), or,
    /// when the provider layer rewrote it ([`ModelRewrite`](crate::provider::ModelRewrite)),
    /// the model it asked the provider for.
    pub request_model: Option<String>,
    /// The model the response names.
    pub response_model: Option<String>,
    /// Tokens, when the response carried usage, or a stream delivered output before it was
    /// cut (see [`Self::estimated`]).
    pub usage: Option<Usage>,
    /// Micro-dollars, when usage and a price for the model are known.
    pub cost_micros: Option<u64>,
    /// What agw charges limits and budgets when a successful response of a prompt route
    /// carried no usage (an OpenAI stream the client did not ask `include_usage` for, a
    /// provider that reports none): input tokens estimated from the request's size (a token
    /// per 4 bytes), output tokens at the request's cap (4,096 without one). Never reported as
    /// usage.
    pub estimate: Option<Usage>,
    /// [`Self::estimate`] priced, when the model has a price.
    pub estimated_cost_micros: Option<u64>,
    /// Whether [`Self::usage`] is partly agw's estimate: a stream that ended before its final
    /// usage (the client went away, the connection broke, an error event — a response
    /// guard's refusal — ended it) is charged the output it delivered, a token per
    /// [`BYTES_PER_TOKEN`](agw_core::usage::BYTES_PER_TOKEN) bytes of generated content (at
    /// least one per delta) when that is more than the provider's count so far, and, if it
    /// reported no usage at all, an input of a token per 4 bytes of the request.
    pub estimated: bool,
    /// Whether the response was a stream.
    pub streamed: bool,
    /// Whether the body was read to its end (false: the client went away, or it broke).
    pub complete: bool,
    /// From the request entering the layer to the body's end.
    pub duration: Duration,
    /// From the request entering the layer to the first body bytes.
    pub time_to_first_byte: Option<Duration>,
    /// From the request entering the layer to the response headers.
    pub time_to_headers: Option<Duration>,
    /// The upstream's own time to response headers, when an
    /// [`UpstreamTimerLayer`](crate::metrics::UpstreamTimerLayer) measured it.
    pub upstream: Option<Duration>,
}

impl UsageReport {
    /// The model to price and label: the response's, else the request's.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }
}

/// Receives every report of a layer (an access log, metrics). Called on the task that polls
/// the body: keep it quick and never block.
pub trait UsageSink: Send + Sync + std::fmt::Debug + 'static {
    /// One finished request.
    fn report(&self, report: &UsageReport);
}

/// Per-request callbacks, in the request extensions: layers outside [`UsageLayer`] (the
/// limiter) add theirs; the report is passed to each once.
#[derive(Clone, Default)]
pub struct UsageHooks(pub Vec<UsageHook>);

/// One per-request usage callback.
pub type UsageHook = Arc<dyn Fn(&UsageReport) + Send + Sync>;

impl std::fmt::Debug for UsageHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UsageHooks({})", self.0.len())
    }
}

impl UsageHooks {
    /// Adds a hook to a request's extensions.
    pub fn push<B>(
        req: &mut http::Request<B>,
        hook: impl Fn(&UsageReport) + Send + Sync + 'static,
    ) {
        let hooks = req.extensions_mut().get_or_insert_default::<UsageHooks>();
        hooks.0.push(Arc::new(hook));
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub prices: Arc<PriceTable>,
    pub sinks: Vec<Arc<dyn UsageSink>>,
    pub backend: Option<Arc<str>>,
    pub provider: Option<Arc<str>>,
    pub upstream_api: Option<Api>,
    /// Output tokens assumed for a request without a cap ([`UsageLayer::default_estimate`]).
    pub default_estimate: u64,
    /// Where the end-of-body work goes, when it runs after the response
    /// ([`UsageLayer::after`]).
    pub after: Option<crate::after::AfterResponse>,
}
