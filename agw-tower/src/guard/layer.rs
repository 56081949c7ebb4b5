use super::{DEFAULT_LIMIT, RequestGuard};
use agw_core::guard::Policy;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`RequestGuard`] to a service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct RequestGuardLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(super) struct Config {
    pub policy: Policy,
    pub limit: usize,
    pub routes: agw_core::route::RouteTable,
}

impl RequestGuardLayer {
    /// Guards with `policy`, a 32 MiB body limit, and — for requests that no
    /// [`ClassifyLayer`](crate::classify::ClassifyLayer) classified — Claude Code's route table.
    pub fn new(policy: Policy) -> Self {
        Self {
            config: Arc::new(Config {
                policy,
                limit: DEFAULT_LIMIT,
                routes: agw_core::route::RouteTable::claude_code(),
            }),
        }
    }

    /// Sets the body limit in bytes (applied to the received and to the decoded body).
    pub fn limit(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.config).limit = bytes;
        self
    }

    /// Sets the route table used for requests without a classification.
    pub fn routes(mut self, table: agw_core::route::RouteTable) -> Self {
        Arc::make_mut(&mut self.config).routes = table;
        self
    }
}

impl<S> Layer<S> for RequestGuardLayer {
    type Service = RequestGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestGuard {
            inner,
            config: self.config.clone(),
        }
    }
}
