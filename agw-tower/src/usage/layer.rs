use super::service::UsageService;
use super::{Shared, UsageSink};
use agw_core::api::Api;
use agw_core::price::PriceTable;
use std::sync::Arc;
use tower_layer::Layer;

/// Counts usage of responses. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct UsageLayer {
    shared: Shared,
}

impl Clone for Shared {
    fn clone(&self) -> Self {
        Shared {
            prices: self.prices.clone(),
            sinks: self.sinks.clone(),
            backend: self.backend.clone(),
            provider: self.provider.clone(),
            upstream_api: self.upstream_api,
            default_estimate: self.default_estimate,
            after: self.after.clone(),
        }
    }
}

impl UsageLayer {
    /// A layer pricing with `prices` (an empty table: costs unknown, tokens still counted).
    pub fn new(prices: Arc<PriceTable>) -> Self {
        Self {
            shared: Shared {
                prices,
                sinks: Vec::new(),
                backend: None,
                provider: None,
                upstream_api: None,
                default_estimate: crate::limit::DEFAULT_ESTIMATE_TOKENS,
                after: None,
            },
        }
    }

    /// Reports (to the sinks and the per-request hooks) after the response instead of when its
    /// body ends: the report is then made on `after`'s task once the server has written the
    /// body's last bytes, so the client never waits for it (see [`AfterResponse`]). Share one
    /// queue with other end-of-response work that must see the report (an access log).
    ///
    /// [`AfterResponse`]: crate::after::AfterResponse
    pub fn after(mut self, after: crate::after::AfterResponse) -> Self {
        self.shared.after = Some(after);
        self
    }

    /// Adds a sink that receives every report.
    pub fn sink(mut self, sink: Arc<dyn UsageSink>) -> Self {
        self.shared.sinks.push(sink);
        self
    }

    /// The output tokens a request without a cap (`max_tokens`) is assumed to generate, for
    /// the estimate charged when its response reports no usage: the limiter's
    /// [`LimitPolicy::default_estimate`](crate::limit::LimitPolicy::default_estimate), so what
    /// is charged matches what was held. Default [`DEFAULT_ESTIMATE_TOKENS`](crate::limit::DEFAULT_ESTIMATE_TOKENS).
    pub fn default_estimate(mut self, tokens: u64) -> Self {
        self.shared.default_estimate = tokens;
        self
    }

    /// Names the backend in reports (the [`Backend`](crate::classify::Backend) a classifier
    /// named takes precedence).
    pub fn backend(mut self, name: impl Into<Arc<str>>) -> Self {
        self.shared.backend = Some(name.into());
        self
    }

    /// Names the provider kind in reports (`anthropic`, `openai`).
    pub fn provider(mut self, name: impl Into<Arc<str>>) -> Self {
        self.shared.provider = Some(name.into());
        self
    }

    /// The upstream's wire format, when it differs from the client's (a translating backend).
    pub fn upstream_api(mut self, api: Api) -> Self {
        self.shared.upstream_api = Some(api);
        self
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = UsageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageService {
            inner,
            shared: Arc::new(self.shared.clone()),
        }
    }
}
