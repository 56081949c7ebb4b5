use super::{DEFAULT_WINDOW, ResponseGuard};
use crate::classify::Classifier;
use crate::guard::DEFAULT_LIMIT;
use agw_core::api::Api;
use agw_core::guard::Policy;
use agw_core::route::RouteTable;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`ResponseGuard`] to a service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ResponseGuardLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(super) struct Config {
    pub policy: Policy,
    pub window: usize,
    pub limit: usize,
    pub classifier: Classifier,
}

impl ResponseGuardLayer {
    /// Guards responses with `policy`: a 256-byte window, a 32 MiB limit for JSON responses,
    /// and Claude Code's route table for requests no classify layer classified.
    pub fn new(policy: Policy) -> Self {
        Self {
            config: Arc::new(Config {
                policy,
                window: DEFAULT_WINDOW,
                limit: DEFAULT_LIMIT,
                classifier: Classifier::new(RouteTable::claude_code(), Api::Anthropic),
            }),
        }
    }

    /// Sets how many bytes of streamed text are held back (the longest match that can still be
    /// masked whole when it is split across deltas).
    pub fn window(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).window = bytes;
        self
    }

    /// Sets the largest JSON response inspected; larger ones are refused with a 502.
    pub fn limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).limit = bytes;
        self
    }

    /// Sets the route table used for requests without a classification.
    pub fn routes(mut self, table: RouteTable) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.classifier = c.classifier.clone().with_table(table);
        self
    }

    /// Sets the classifier used for requests without a classification (give it the one the
    /// stack's other layers use, as [`StackConfig`](crate::stack::StackConfig) does).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        Arc::make_mut(&mut self.config).classifier = classifier;
        self
    }
}

impl<S> Layer<S> for ResponseGuardLayer {
    type Service = ResponseGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseGuard {
            inner,
            config: self.config.clone(),
        }
    }
}
