use super::{Classifier, Classify};
use agw_core::api::Api;
use agw_core::route::RouteTable;
use tower_layer::Layer;

/// Applies [`Classify`] to a service.
#[derive(Debug, Clone)]
pub struct ClassifyLayer {
    classifier: Classifier,
}

impl ClassifyLayer {
    /// Classifies with `table`; `api` is the error shape for kinds that do not imply one
    /// (models, passthrough): the backend provider's.
    pub fn new(table: RouteTable, api: Api) -> Self {
        Self::with_classifier(Classifier::new(table, api))
    }

    /// Classifies with `classifier`.
    pub fn with_classifier(classifier: Classifier) -> Self {
        Self { classifier }
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }
}

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify::new(inner, self.classifier.clone())
    }
}
