use super::Provider;
use crate::guard::DEFAULT_LIMIT;
use agw_core::model::ModelPolicy;
use agw_core::provider::ProviderSpec;
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
    pub limit: usize,
    /// The upstream's `Host` header, built once (the client would format it per request).
    pub host: Option<http::HeaderValue>,
}

impl ProviderLayer {
    /// Sends requests to `spec`; `name` names the backend in errors and logs.
    pub fn new(name: impl Into<String>, spec: ProviderSpec) -> Self {
        let host = spec
            .base_url()
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
        Self {
            config: Arc::new(Config {
                name: name.into(),
                spec,
                model: ModelPolicy::any(),
                limit: DEFAULT_LIMIT,
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
        Arc::make_mut(&mut self.config).limit = bytes;
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
