use super::Classify;
use agw_core::api::Api;
use agw_core::route::RouteTable;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`Classify`] to a service.
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    table: Arc<RouteTable>,
    api: Api,
}

impl ClassifyLayer {
    /// Classifies with `table`; `api` is the error shape for kinds that do not imply one
    /// (models, passthrough): the backend provider's.
    pub fn new(table: RouteTable, api: Api) -> Self {
        Self {
            table: Arc::new(table),
            api,
        }
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify {
            inner,
            table: self.table.clone(),
            api: self.api,
        }
    }
}
