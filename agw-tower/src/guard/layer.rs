use super::RequestGuard;
use crate::classify::Classifier;
use crate::limits::BodyLimits;
use agw_core::api::Api;
use agw_core::guard::Policy;
use agw_core::route::RouteTable;
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
    pub limits: BodyLimits,
    pub classifier: Classifier,
    /// Read prompt bodies even without rules, for later layers (access lists, limits).
    pub read_always: bool,
    /// Read every body (any route but `Unguarded`) even without rules: an access list that
    /// restricts models must see the model a body on any route names.
    pub read_bodies: bool,
    /// Read every body that may be JSON (not multipart, not a binary media type) even without
    /// rules: the limiter holds what a generation on a passthrough route may use.
    pub read_json: bool,
}

impl RequestGuardLayer {
    /// Guards with `policy`, the default [`BodyLimits`] (32 MiB, 60 s), and — for requests
    /// that no [`ClassifyLayer`](crate::classify::ClassifyLayer) classified — Claude Code's
    /// route table with Anthropic errors.
    pub fn new(policy: Policy) -> Self {
        Self {
            config: Arc::new(Config {
                policy,
                limits: BodyLimits::default(),
                classifier: Classifier::new(RouteTable::claude_code(), Api::Anthropic),
                read_always: false,
                read_bodies: false,
                read_json: false,
            }),
        }
    }

    /// Sets the body limit in bytes (applied to the received and to the decoded body).
    pub fn limit(mut self, bytes: usize) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.limits = c.limits.clone().max_bytes_limit(bytes);
        self
    }

    /// Sets every body bound: size, read timeout, shared budget.
    pub fn limits(mut self, limits: BodyLimits) -> Self {
        Arc::make_mut(&mut self.config).limits = limits;
        self
    }

    /// Reads the body of prompt routes even when the policy has no rules, leaving it in the
    /// [`Collected`](crate::limits::Collected) extension for later layers (an access list on
    /// models, a token estimate for limits). Nothing is inspected then.
    pub fn read_always(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).read_always = yes;
        self
    }

    /// Reads every request body (on any route but `Unguarded`) even when the policy has no
    /// rules, as [`read_always`](Self::read_always) does for prompt routes: an access list
    /// that restricts models checks the model any body names (an image, audio or fine-tuning
    /// request on a passthrough route). A body that is not JSON is handed on unread.
    pub fn read_bodies(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).read_bodies = yes;
        self
    }

    /// Reads, on any route but `Unguarded` and even when the policy has no rules, every request
    /// body that may be JSON — one whose `Content-Type` is not `multipart/…`,
    /// `application/octet-stream` or an audio, image, video, PDF or archive type — for a
    /// limiter that holds what a generation on a passthrough route (Ollama's `/api/chat`) may
    /// use. Uploads pass unread and unbuffered.
    pub fn read_json_bodies(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.config).read_json = yes;
        self
    }

    /// Sets the route table used for requests without a classification.
    pub fn routes(mut self, table: RouteTable) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.classifier = c.classifier.clone().with_table(table);
        self
    }

    /// Sets the classifier used for requests without a classification (give it the one the
    /// stack's [`ClassifyLayer`](crate::classify::ClassifyLayer) uses).
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        Arc::make_mut(&mut self.config).classifier = classifier;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.config.policy
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
