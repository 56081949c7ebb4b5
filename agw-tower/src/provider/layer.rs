use super::Provider;
use crate::classify::Classifier;
use crate::limits::BodyLimits;
use agw_core::model::ModelPolicy;
use agw_core::provider::ProviderSpec;
use agw_core::route::RouteTable;
use std::sync::Arc;
use tower_layer::Layer;

/// Applies [`Provider`] to a service. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ProviderLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(super) struct Config {
    pub name: String,
    pub spec: ProviderSpec,
    pub model: ModelPolicy,
    pub limits: BodyLimits,
    pub classifier: Classifier,
    /// The upstream's `Host` header, built once (the client would format it per request).
    pub host: Option<http::HeaderValue>,
}

impl ProviderLayer {
    /// Sends requests to `spec`; `name` names the backend in errors and logs. Requests no
    /// [`ClassifyLayer`](crate::classify::ClassifyLayer) classified are classified with the
    /// provider's default route table ([`Classifier::for_provider`]).
    pub fn new(name: impl Into<String>, spec: ProviderSpec) -> Self {
        let name = name.into();
        let host = spec
            .base_url()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
        let classifier = Classifier::for_provider(&spec).backend(name.as_str());
        Self {
            config: Arc::new(Config {
                name,
                spec,
                model: ModelPolicy::any(),
                limits: BodyLimits::default(),
                classifier,
                host,
            }),
        }
    }

    /// Sets the model policy.
    pub fn model_policy(mut self, model: ModelPolicy) -> Self {
        Arc::make_mut(&mut self.config).model = model;
        self
    }

    /// Sets the body limit used when the model policy has to read a body.
    pub fn limit(mut self, bytes: usize) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.limits = c.limits.clone().max_bytes_limit(bytes);
        self
    }

    /// Sets every body bound (used when no earlier layer read the body).
    pub fn limits(mut self, limits: BodyLimits) -> Self {
        Arc::make_mut(&mut self.config).limits = limits;
        self
    }

    /// Sets the route table used for requests without a classification.
    pub fn routes(mut self, table: RouteTable) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.classifier = c.classifier.clone().with_table(table);
        self
    }

    /// Sets the classifier used for requests without a classification.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        Arc::make_mut(&mut self.config).classifier = classifier;
        self
    }
}

impl<S> Layer<S> for ProviderLayer {
    type Service = Provider<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Provider {
            inner,
            config: self.config.clone(),
        }
    }
}
