//! Per-backend access: which identities may use a backend, and which models.

use super::Identity;
use crate::body::Body;
use crate::classify::Classified;
use crate::error::error_response;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::model::{ModelPattern, ModelPolicyError};
use agw_core::route::RouteKind;
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// What agw learned about a request body, for the layers that need it (the model for access
/// checks, limits and the price; its shape for the in-flight token estimate). The stage that
/// reads the body puts it in the request extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The requested model, after aliasing.
    pub model: Option<String>,
    /// The output cap, the completions asked for and `stream`
    /// ([`agw_core::usage::request_shape`]).
    pub shape: agw_core::usage::RequestShape,
    /// Why the body's `model` cannot be read for certain (then `model` is `None`): see
    /// [`RequestFacts::refusal`].
    pub model_error: Option<agw_core::model::ModelKeyError>,
}

impl RequestFacts {
    /// Reads the facts from a request body (decoded, as the body stage hands it on in
    /// [`Collected`](crate::limits::Collected)).
    pub fn from_body(body: &[u8]) -> RequestFacts {
        let (model, model_error) = match agw_core::model::request_model(body) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e)),
        };
        RequestFacts {
            model,
            shape: agw_core::usage::request_shape(body),
            model_error,
        }
    }

    /// The facts of a body the body stage read: the model and shape the request guard found
    /// when it inspected the body, else read from `plain`.
    pub(crate) fn read(report: Option<&crate::guard::GuardReport>, plain: &[u8]) -> RequestFacts {
        match report.filter(|g| g.model.is_some()) {
            Some(g) => RequestFacts {
                model: g.model.clone(),
                shape: g.shape,
                model_error: None,
            },
            None => RequestFacts::from_body(plain),
        }
    }

    /// The 400 for a request whose model cannot be read for certain, whatever the
    /// configuration: `model` twice on any route (a server may run either, while limits,
    /// budgets, access lists and usage would read one), or not a string on a route that
    /// carries a prompt (there it must name the model; elsewhere a `model` of another shape is
    /// the endpoint's own data). The message says which (fourteenth review: a model list
    /// answered "model `(none)` is not allowed").
    pub fn refusal(&self, kind: RouteKind) -> Option<ErrorBody> {
        use agw_core::model::ModelKeyError;
        match self.model_error? {
            ModelKeyError::NotString if !kind.has_prompt() => None,
            e => Some(ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("agw: {e}"),
            )),
        }
    }

    /// Makes sure `req` carries its facts: kept when a stage put them there, otherwise read
    /// once from the body the body stage collected. Later layers read the extension.
    pub fn ensure<B>(req: &mut Request<B>) {
        if req.extensions().get::<RequestFacts>().is_some() {
            return;
        }
        let Some(c) = req.extensions().get::<crate::limits::Collected>() else {
            return;
        };
        // The request guard already read the model and the output cap when it inspected the
        // body.
        let facts = RequestFacts::read(
            req.extensions().get::<crate::guard::GuardReport>(),
            &c.plain,
        );
        req.extensions_mut().insert(facts);
    }
}

/// Who may use one backend, and which models. Empty `identities`, `teams` and `groups` admit
/// every authenticated caller; empty `models` admits every model.
///
/// Outcomes, chosen for how Claude Code shows them: a caller who may not use the backend gets
/// **403** `permission_error` (Claude Code then suggests `/login`, which fits: another
/// credential is needed); a model that is not allowed gets **400** `invalid_request_error`
/// naming the model and the allowed patterns, shown as is and not retried.
#[derive(Debug, Clone, Default)]
pub struct Access {
    identities: Vec<String>,
    teams: Vec<String>,
    groups: Vec<String>,
    models: Vec<ModelPattern>,
}

impl Access {
    /// Admits everyone to every model.
    pub fn any() -> Self {
        Self::default()
    }

    /// What the list admits, for a summary: `teams [platform], models [claude-*]`; `None`
    /// for a list that admits everyone to every model.
    pub fn describe(&self) -> Option<String> {
        let models: Vec<&str> = self.models.iter().map(ModelPattern::as_str).collect();
        let parts: Vec<String> = [
            (
                "identities",
                self.identities.iter().map(String::as_str).collect(),
            ),
            ("teams", self.teams.iter().map(String::as_str).collect()),
            ("groups", self.groups.iter().map(String::as_str).collect()),
            ("models", models),
        ]
        .into_iter()
        .filter(|(_, v): &(&str, Vec<&str>)| !v.is_empty())
        .map(|(k, v)| format!("{k} [{}]", v.join(", ")))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Admits these identity names (key names or JWT subjects).
    pub fn identities<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.identities.extend(names.into_iter().map(Into::into));
        self
    }

    /// Admits members of these teams.
    pub fn teams<I: IntoIterator<Item = S>, S: Into<String>>(mut self, teams: I) -> Self {
        self.teams.extend(teams.into_iter().map(Into::into));
        self
    }

    /// Admits holders of these JWT groups.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Allows only models matching these patterns (`*` globs).
    ///
    /// # Errors
    ///
    /// An empty or padded pattern.
    pub fn models<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        patterns: I,
    ) -> Result<Self, ModelPolicyError> {
        for p in patterns {
            self.models.push(ModelPattern::new(p)?);
        }
        Ok(self)
    }

    /// Whether the access list restricts models (so the model must be known).
    pub fn restricts_models(&self) -> bool {
        !self.models.is_empty()
    }

    /// Checks a caller against the backend's list.
    ///
    /// # Errors
    ///
    /// A 403 naming the backend.
    pub fn check_caller(&self, who: &Identity, backend: &str) -> Result<(), ErrorBody> {
        let open = self.identities.is_empty() && self.teams.is_empty() && self.groups.is_empty();
        let admitted = open
            || self.identities.iter().any(|n| **n == *who.name)
            || who
                .team
                .as_ref()
                .is_some_and(|t| self.teams.iter().any(|n| **n == **t))
            || who.groups.iter().any(|g| self.groups.contains(g));
        if admitted {
            Ok(())
        } else {
            Err(ErrorBody::new(
                ErrorKind::Forbidden,
                format!("agw: `{}` may not use backend `{backend}`", who.name),
            ))
        }
    }

    /// Checks a model; an unknown model is refused when models are restricted (fail closed).
    ///
    /// # Errors
    ///
    /// A 400 naming the model and the allowed patterns.
    pub fn check_model(&self, model: Option<&str>, backend: &str) -> Result<(), ErrorBody> {
        // Gemini names models `models/{model}` in bodies (`cachedContents`, `baseModel`), and
        // `{model}` in paths: one list serves both (second round).
        let model = model.map(|m| {
            m.strip_prefix("models/")
                .or_else(|| m.strip_prefix("tunedModels/"))
                .unwrap_or(m)
        });
        if self.models.is_empty() || model.is_some_and(|m| self.models.iter().any(|p| p.matches(m)))
        {
            return Ok(());
        }
        let allowed: Vec<&str> = self.models.iter().map(ModelPattern::as_str).collect();
        Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!(
                "agw: model `{}` is not allowed for you on backend `{backend}`; allowed: {}",
                model.unwrap_or("(none)"),
                allowed.join(", ")
            ),
        ))
    }
}

/// Applies an [`Access`] list: reads [`Identity`] (required: put [`AuthLayer`](super::AuthLayer)
/// outside it) and, when models are restricted, [`RequestFacts`] (absent: refused).
#[derive(Debug, Clone)]
pub struct AccessLayer {
    access: Arc<Access>,
    backend: Arc<str>,
}

impl AccessLayer {
    /// The layer for backend `backend`.
    pub fn new(access: Access, backend: impl Into<Arc<str>>) -> Self {
        Self {
            access: Arc::new(access),
            backend: backend.into(),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            access: self.access.clone(),
            backend: self.backend.clone(),
        }
    }
}

/// The service of [`AccessLayer`].
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    access: Arc<Access>,
    backend: Arc<str>,
}

impl<S> AccessService<S> {
    /// The model check of one request. A prompt route's request must name an allowed model;
    /// a message batch, one per request inside it (each is a billed call; a top-level
    /// `model` beside them is not what runs). Other routes are checked when their body names a
    /// model — a JSON body's `model` at any depth (an eval run's `data_source.model`), a form's
    /// `model` field (image edits, audio) —
    /// and pass without one: a model listing, a batch's results, a file upload. A JSON or form
    /// body whose model cannot be read for certain is refused, and so is creating an OpenAI
    /// batch: it runs the models an uploaded file names, which agw never sees.
    fn check_models<B>(&self, req: &Request<B>, kind: RouteKind) -> Result<(), ErrorBody> {
        // With or without a model list: limits, budgets and usage read this model too.
        let facts = req.extensions().get::<RequestFacts>();
        if let Some(refusal) = facts.and_then(|f| f.refusal(kind)) {
            return Err(refusal);
        }
        if !self.access.restricts_models() {
            return Ok(());
        }
        // A model the path chooses (Gemini, Vertex, Bedrock, Azure deployments) runs
        // whatever the body says: checked too.
        if let Some(m) = agw_core::model::path_model(req.uri().path()) {
            self.access.check_model(Some(&m), &self.backend)?;
        }
        // A Vertex endpoint (`…/endpoints/{id}:generateContent`) serves whatever model is
        // deployed to it: no model to check, so not let through a model list (second round).
        // Any call under `…/endpoints/{id}` (its `:generateContent`, its OpenAI-compatible
        // `…/chat/completions`, the bare endpoint) but the shared `endpoints/openapi`, which
        // routes by the body's model; Agent Engine's `reasoningEngines` too (third round).
        let path = req.uri().path();
        let segments: Vec<&str> = path.split('/').collect();
        if segments.windows(2).any(|w| {
            (w[0].eq_ignore_ascii_case("endpoints")
                && !w[1].is_empty()
                && !w[1].eq_ignore_ascii_case("openapi"))
                || w[0].eq_ignore_ascii_case("reasoningEngines")
        }) {
            return Err(ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "agw: a Vertex endpoint serves whatever model is deployed to it, so its \
                     model cannot be checked against backend `{}`'s list; call the model by \
                     name (`…/publishers/google/models/{{model}}:…`)",
                    self.backend
                ),
            ));
        }
        let facts = req.extensions().get::<RequestFacts>();
        let model = facts.and_then(|f| f.model.as_deref());
        if kind == RouteKind::MessageBatches {
            let body = req
                .extensions()
                .get::<crate::limits::Collected>()
                .map(|c| &c.plain[..])
                .unwrap_or_default();
            // Listing, retrieving or cancelling batches: no body, no model to check.
            if body.iter().all(u8::is_ascii_whitespace) && *req.method() != http::Method::POST
                || req.uri().path().ends_with("/cancel")
            {
                return Ok(());
            }
            let models = agw_core::model::batch_models(body).map_err(|e| {
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!("agw: the batch's models cannot be read: {e}"),
                )
            })?;
            if models.is_empty() {
                return self.access.check_model(None, &self.backend);
            }
            for m in model.into_iter().chain(models.iter().map(String::as_str)) {
                self.access.check_model(Some(m), &self.backend)?;
            }
            return Ok(());
        }
        if kind.has_prompt() {
            self.access.check_model(model, &self.backend)?;
            // A tool that runs a model of its own (Responses' `image_generation`), a router's
            // fallbacks (`models`, `fallbacks`).
            let body = req
                .extensions()
                .get::<crate::limits::Collected>()
                .map(|c| &c.plain[..])
                .unwrap_or_default();
            let tools = agw_core::model::extra_models(body).map_err(|e| {
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!("agw: the models the request may run cannot be read: {e}"),
                )
            })?;
            for m in &tools {
                self.access.check_model(Some(m), &self.backend)?;
            }
            return Ok(());
        }
        for model in other_route_models(req)? {
            self.access.check_model(Some(&model), &self.backend)?;
        }
        Ok(())
    }
}

/// The models a request on a route without a prompt names, at any depth of a JSON body (and
/// under Ollama's own keys on its `/api/...` paths), for an access list that restricts models
/// (see [`AccessService::check_models`]).
fn other_route_models<B>(req: &Request<B>) -> Result<Vec<String>, ErrorBody> {
    let refuse = |why: &str| {
        Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("agw: {why}, so its model cannot be checked against this backend's list"),
        ))
    };
    let path = req.uri().path();
    // The path is canonical here (classified), but its case is the client's.
    let batches =
        path.len() >= 8 && path.as_bytes()[path.len() - 8..].eq_ignore_ascii_case(b"/batches");
    if *req.method() == http::Method::POST && batches {
        return refuse("a batch runs the models named in an uploaded file");
    }
    let Some(c) = req.extensions().get::<crate::limits::Collected>() else {
        // Not read: a request without a body (a listing, a retrieval).
        return Ok(Vec::new());
    };
    let body = &c.plain[..];
    // One readable content type: two, or one that is not text, a server may read otherwise.
    let mut types = req.headers().get_all(http::header::CONTENT_TYPE).iter();
    let content_type = match (types.next(), types.next()) {
        (None, _) => "",
        (Some(v), None) => match v.to_str() {
            Ok(v) => v,
            Err(_) => return refuse("its Content-Type is not readable text"),
        },
        (Some(_), Some(_)) => return refuse("it has two Content-Type headers"),
    };
    match agw_core::model::body_models(body, content_type, path) {
        Ok(models) => Ok(models),
        Err(e) => refuse(&e),
    }
}

impl<S, B, ResB> Service<Request<B>> for AccessService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = AccessFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let class = Classified::of(&req, RouteKind::Passthrough);
        let api = class.api;
        RequestFacts::ensure(&mut req);
        let who = req.extensions().get::<Identity>();
        let verdict = match who {
            None => Err(ErrorBody::new(
                ErrorKind::Authentication,
                "agw: no client identity (the access check runs after authentication)",
            )),
            Some(who) => self
                .access
                .check_caller(who, &self.backend)
                .and_then(|()| self.check_models(&req, class.kind)),
        };
        match verdict {
            Ok(()) => AccessFuture::Inner {
                future: self.inner.call(req),
            },
            Err(e) => {
                let mut response = error_response(api, &e);
                // Who was refused, for the access log.
                if let Some(who) = req.extensions().get::<Identity>() {
                    response.extensions_mut().insert(who.clone());
                }
                AccessFuture::Refused {
                    response: Some(response),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`AccessService`]: the inner future, or the refusal.
    #[project = AccessFutureProj]
    #[allow(missing_docs)]
    pub enum AccessFuture<F, R> {
        /// Admitted.
        Inner { #[pin] future: F },
        /// Refused (taken on the first poll).
        Refused { response: Option<Response<Body<R>>> },
    }
}

impl<F, R, E> std::future::Future for AccessFuture<F, R>
where
    F: std::future::Future<Output = Result<Response<R>, E>>,
{
    type Output = Result<Response<Body<R>>, E>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AccessFutureProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(Body::inner)),
            AccessFutureProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
