//! The stack builder: one backend's configuration in, its whole service out.
//!
//! [`StackConfig`] holds everything the layers need — route table, request and response
//! policies, stream window, provider spec, model policy, body limits and (with the `client`
//! feature) the upstream client's settings — and builds each layer from the same values, so
//! the route table is given once and every layer classifies alike. In request order:
//!
//! request id → classify → request guard → response guard → provider → upstream
//!
//! # Example
//!
//! ```
//! use agw_core::guard::{Policy, Rule};
//! use agw_core::provider::ProviderSpec;
//! use agw_tower::stack::StackConfig;
//! use agw_tower::test_util::MemoryUpstream;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::builder()
//!     .rule(Rule::regex("cards", ["credit card"]).reject("Rejected due to inappropriate content"))
//!     .build()?;
//! let config = StackConfig::new("anthropic", ProviderSpec::anthropic()).policy(policy);
//! let mut svc = config.layer().layer(MemoryUpstream::json(r#"{"content":[]}"#));
//! let req = http::Request::post("/v1/messages")
//!     .body(r#"{"messages":[{"role":"user","content":"my credit card"}]}"#.to_owned())?;
//! let res = svc.call(req).await?;
//! assert_eq!(res.status(), 400);
//! assert!(res.headers().contains_key("request-id"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run()).unwrap();
//! ```

use crate::classify::{Classifier, Classify, ClassifyLayer};
use crate::guard::{RequestGuard, RequestGuardLayer};
use crate::limits::{BodyLimits, DEFAULT_READ_TIMEOUT};
use crate::provider::{Provider, ProviderLayer};
use crate::request_id::{RequestIdLayer, RequestIdService};
use crate::response::{DEFAULT_WINDOW, ResponseGuard, ResponseGuardLayer};
use agw_core::guard::Policy;
use agw_core::model::ModelPolicy;
use agw_core::provider::ProviderSpec;
use agw_core::route::RouteTable;
use tower_layer::Layer;

/// One backend's service over the upstream `S`.
pub type Stack<S> = RequestIdService<Classify<RequestGuard<ResponseGuard<Provider<S>>>>>;

/// One backend's configuration. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct StackConfig {
    name: String,
    spec: ProviderSpec,
    routes: RouteTable,
    policy: Policy,
    response_policy: Policy,
    response_window: usize,
    model: ModelPolicy,
    limits: BodyLimits,
    read_always: bool,
    read_bodies: bool,
    read_json: bool,
    #[cfg(feature = "client")]
    upstream: crate::upstream::UpstreamConfig,
}

impl StackConfig {
    /// A backend named `name` at `spec`: the provider's default route table, no guards, any
    /// model, default body limits (32 MiB, 60 s to read, no shared budget) and upstream
    /// settings. The stack's timers need a tokio runtime with time enabled.
    pub fn new(name: impl Into<String>, spec: ProviderSpec) -> Self {
        let name = name.into();
        let routes = Classifier::for_provider(&spec).table().clone();
        Self {
            #[cfg(feature = "client")]
            upstream: crate::upstream::UpstreamConfig::new(name.as_str()),
            name,
            spec,
            routes,
            policy: Policy::empty(),
            response_policy: Policy::empty(),
            response_window: DEFAULT_WINDOW,
            model: ModelPolicy::any(),
            limits: BodyLimits::default().read_timeout(DEFAULT_READ_TIMEOUT),
            read_always: false,
            read_bodies: false,
            read_json: false,
        }
    }

    /// Sets the route table (path → kind). The endpoints the provider's dialects define that
    /// `routes` does not list are added with their kinds
    /// ([`RouteTable::with_defaults`]), so they are guarded as what they are rather than
    /// passed through.
    pub fn routes(mut self, routes: RouteTable) -> Self {
        let defaults = Classifier::for_provider(&self.spec).table().clone();
        self.routes = routes.with_defaults(&defaults);
        self
    }

    /// Sets the request guard's policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the response guard's policy.
    pub fn response_policy(mut self, policy: Policy) -> Self {
        self.response_policy = policy;
        self
    }

    /// Sets how many bytes of streamed text the response guard holds back.
    pub fn response_window(mut self, bytes: usize) -> Self {
        self.response_window = bytes;
        self
    }

    /// Sets the model policy.
    pub fn model_policy(mut self, model: ModelPolicy) -> Self {
        self.model = model;
        self
    }

    /// Reads prompt bodies even without request rules, for layers put inside the request
    /// guard with [`StackLayer::layer_with`] that need them (access lists, limits).
    pub fn read_always(mut self, yes: bool) -> Self {
        self.read_always = yes;
        self
    }

    /// Reads every request body, on any route but `Unguarded`, even without request rules:
    /// for an access list that restricts models (see [`RequestGuardLayer::read_bodies`]).
    pub fn read_bodies(mut self, yes: bool) -> Self {
        self.read_bodies = yes;
        self
    }

    /// Reads every request body that may be JSON, on any route but `Unguarded`, even without
    /// request rules: for a limiter that holds what a generation on a passthrough route may
    /// use (see [`RequestGuardLayer::read_json_bodies`]).
    pub fn read_json_bodies(mut self, yes: bool) -> Self {
        self.read_json = yes;
        self
    }

    /// Sets the body limits: size, read timeout, shared budget (replacing the default 60 s read
    /// timeout with the one `limits` has, if any).
    pub fn limits(mut self, limits: BodyLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the upstream client's settings (its `name` is replaced by the backend's).
    #[cfg(feature = "client")]
    pub fn upstream(mut self, mut upstream: crate::upstream::UpstreamConfig) -> Self {
        upstream.name.clone_from(&self.name);
        self.upstream = upstream;
        self
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The route table.
    pub fn route_table(&self) -> &RouteTable {
        &self.routes
    }

    /// The classifier every layer of this stack uses.
    pub fn classifier(&self) -> Classifier {
        Classifier::new(self.routes.clone(), self.spec.kind().api())
            .base_path(self.spec.base_url().path())
            .backend(self.name.as_str())
    }

    /// The layers, to put over any upstream service.
    pub fn layer(&self) -> StackLayer {
        let classifier = self.classifier();
        StackLayer {
            classify: ClassifyLayer::with_classifier(classifier.clone()),
            guard: RequestGuardLayer::new(self.policy.clone())
                .limits(self.limits.clone())
                .read_always(self.read_always)
                // A response policy that masks or refuses text, or has tool rules, needs the
                // request body too, on every route: it refuses requests for log probabilities
                // (a passthrough path may reach a llama.cpp server's `n_probs`) and for tool
                // arguments streamed in pieces.
                .read_bodies(
                    self.read_bodies
                        || crate::response::hides_text(&self.response_policy)
                        || !self.response_policy.tool_rules().is_empty(),
                )
                .read_json_bodies(self.read_json)
                .classifier(classifier.clone()),
            response: ResponseGuardLayer::new(self.response_policy.clone())
                .window(self.response_window)
                .limit(self.limits.max_bytes())
                .classifier(classifier.clone()),
            provider: ProviderLayer::new(self.name.as_str(), self.spec.clone())
                .model_policy(self.model.clone())
                .limits(self.limits.clone())
                .classifier(classifier),
        }
    }

    /// The whole stack over a pooled upstream client. Fails only when the system trust store
    /// is asked for and unreadable.
    #[cfg(feature = "client")]
    pub fn build<B>(&self) -> std::io::Result<Stack<crate::upstream::Upstream<B>>>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        let upstream = crate::upstream::Upstream::new(self.upstream.clone().injecting(&self.spec))?;
        Ok(self.layer().layer(upstream))
    }
}

/// Every agw layer of one backend, built by [`StackConfig::layer`].
#[derive(Debug, Clone)]
pub struct StackLayer {
    classify: ClassifyLayer,
    guard: RequestGuardLayer,
    response: ResponseGuardLayer,
    provider: ProviderLayer,
}

impl StackLayer {
    /// The stack with two more layers in it: `outer` between classification and the request
    /// guard (client authentication needs the route, not the body; a request it refuses is
    /// never read), and `middle` between the request guard and the response guard (access
    /// lists, limits and usage need what the body stage read, and must only count requests
    /// the guard let through).
    pub fn layer_with<S, O, M>(
        &self,
        outer: &O,
        middle: &M,
        inner: S,
    ) -> RequestIdService<Classify<O::Service>>
    where
        M: Layer<ResponseGuard<Provider<S>>>,
        O: Layer<RequestGuard<M::Service>>,
    {
        RequestIdLayer.layer(
            self.classify.layer(
                outer.layer(
                    self.guard
                        .layer(middle.layer(self.response.layer(self.provider.layer(inner)))),
                ),
            ),
        )
    }
}

impl<S> Layer<S> for StackLayer {
    type Service = Stack<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdLayer.layer(
            self.classify.layer(
                self.guard
                    .layer(self.response.layer(self.provider.layer(inner))),
            ),
        )
    }
}
