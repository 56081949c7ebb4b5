use super::Limiter;
use super::service::Limit;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies limits and budgets. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct LimitLayer {
    limiter: Arc<Limiter>,
}

impl LimitLayer {
    /// A layer admitting requests through `limiter`.
    pub fn new(limiter: Arc<Limiter>) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}
