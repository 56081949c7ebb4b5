//! Backend dispatch: the proxy as one tower service. A request is answered locally
//! (`/healthz`, `HEAD /`, no route) or handed to the stack of the backend whose path prefix
//! matches, under the configuration that was current when it arrived.

use super::conn::{Activity, BODY_TIMEOUT, Busy, IDLE_TIMEOUT, RequestBody, Tracked};
use super::reload::ConfigHandle;
use crate::config::Gateway;
use crate::log::{AccessLog, Entry, LogBody, LoggedUsage, WithResponse};
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_core::route::RouteKind;
use agw_tower::after::AfterResponse;
use agw_tower::auth::AccessLayer;
use agw_tower::body::{Body, BoxError};
use agw_tower::guard::GuardReport;
use agw_tower::limits::{BodyBudget, BodyLimits};
use agw_tower::metrics::{Metrics, UpstreamTimerLayer};
use agw_tower::response::ResponseOutcome;
use agw_tower::stack::StackConfig;
use agw_tower::team::Team;
use agw_tower::upstream::{StreamCut, Upstream, UpstreamFailure};
use agw_tower::usage::UsageHooks;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tower_layer::Layer;
use tower_service::Service;

/// The response body of the proxy.
pub type ResBody = UnsyncBoxBody<Bytes, BoxError>;

/// The request body every backend stack receives.
pub type ReqBody = RequestBody<Incoming>;

type UpstreamClient = Upstream<Body<Body<ReqBody>>>;
type Stack = agw_tower::stack::Stack<UpstreamClient>;

/// The `request-id` header agw sets on responses that do not carry the upstream's own.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("request-id");

/// agw's id for a request: in the request's extensions, on the response (unless the upstream
/// sent its own `request-id`) and in the access-log line, as `agw_` and 20 hex digits. A
/// per-process random prefix and a counter: unique without a random draw per request, and
/// formatted only where it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    prefix: u32,
    seq: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agw_{:08x}{:012x}", self.prefix, self.seq)
    }
}

impl RequestId {
    #[cfg(test)]
    pub(crate) fn new(prefix: u32, seq: u64) -> Self {
        Self { prefix, seq }
    }

    /// The id as a header value: formatted once, into one shared buffer that clones of the
    /// value (request extension, upstream header, response header) only count references to.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_maybe_shared(Bytes::from_owner(self.ascii()))
            .expect("hex is a valid header value")
    }

    /// The id's text, `agw_` and 20 hex digits, without `core::fmt`.
    pub(crate) fn ascii(&self) -> [u8; 24] {
        let mut buf = *b"agw_00000000000000000000";
        agw_tower::request_id::write_hex(&mut buf[4..12], u64::from(self.prefix));
        agw_tower::request_id::write_hex(&mut buf[12..], self.seq);
        buf
    }
}

#[derive(Debug)]
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        Self {
            prefix: h.finish() as u32,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> RequestId {
        RequestId {
            prefix: self.prefix,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// A backend's service with the team layers (identity, access, limits, usage): type-erased,
/// as which of them are on depends on the configuration.
type TeamSvc = tower::util::BoxCloneSyncService<Request<ReqBody>, Response<ResBody>, Infallible>;

/// A backend's service: the plain stack (no box on the hot path), or with the team layers.
#[derive(Clone)]
enum Svc {
    Plain(Stack),
    Team(TeamSvc),
}

impl std::fmt::Debug for Svc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Svc::Plain(s) => s.fmt(f),
            Svc::Team(_) => f.write_str("Team(..)"),
        }
    }
}

/// One backend's layered service.
#[derive(Clone, Debug)]
pub(crate) struct BackendService {
    name: Arc<str>,
    /// How the stack classifies, so that the log and the metrics name the kind the request
    /// was guarded as (the base URL's path included).
    classifier: agw_tower::classify::Classifier,
    svc: Svc,
    /// The upstream client, kept across reloads while the backend's upstream settings stay.
    upstream: Arc<UpstreamClient>,
    upstream_key: String,
}

/// A built configuration: the gateway description and every backend's stack. Swapped whole on
/// reload; a request holds the stacks it started with.
#[derive(Debug)]
pub struct Runtime {
    /// The configuration this runtime was built from.
    pub gateway: Arc<Gateway>,
    backends: Box<[BackendService]>,
    /// Bytes of request bodies held in memory, across all backends; kept across reloads while
    /// its size stays.
    budget: BodyBudget,
    /// Identity, limits, usage and metrics: built once at start, kept across reloads.
    team: Option<Arc<Team>>,
    /// Ends the open upstream bodies of every backend (shutdown grace expired).
    cut: StreamCut,
}

impl Runtime {
    /// The handle that ends every open upstream body of this server.
    pub fn stream_cut(&self) -> &StreamCut {
        &self.cut
    }
}

impl Runtime {
    /// Builds every backend's stack. Upstream clients (and so their connection pools) are
    /// taken from `previous` for backends of the same name whose upstream settings are
    /// unchanged.
    pub fn build(gateway: Gateway, previous: Option<&Runtime>) -> std::io::Result<Runtime> {
        let team = previous.and_then(|p| p.team.clone());
        Self::build_with(gateway, previous, team)
    }

    /// [`Runtime::build`] with the team pieces the backends use.
    pub fn build_with(
        gateway: Gateway,
        previous: Option<&Runtime>,
        team: Option<Arc<Team>>,
    ) -> std::io::Result<Runtime> {
        let mut backends = Vec::with_capacity(gateway.backends.len());
        // One handle for every backend's upstream bodies, kept across reloads: the accept
        // loop cuts open streams through it when the shutdown grace period runs out.
        let cut = previous.map_or_else(StreamCut::new, |p| p.cut.clone());
        let budget = match previous {
            Some(p) if p.budget.total() == gateway.max_buffered_bytes => p.budget.clone(),
            _ => BodyBudget::new(gateway.max_buffered_bytes),
        };
        for b in &gateway.backends {
            let mut upstream_config = b.upstream.clone().injecting(&b.spec);
            upstream_config.cut = cut.clone();
            // `UpstreamConfig` has no `PartialEq`; its `Debug` lists every setting.
            let upstream_key = format!("{:?}", upstream_config);
            let kept = previous.and_then(|p| {
                p.backends
                    .iter()
                    .find(|o| *o.name == *b.name && o.upstream_key == upstream_key)
                    .map(|o| o.upstream.clone())
            });
            let upstream = match kept {
                Some(u) => u,
                None => Arc::new(Upstream::new(upstream_config.clone())?),
            };
            // The body stage answers a trickled upload with a 408 at the body deadline; the
            // connection's own timer, a little later, is the backstop for bodies it does not
            // read (tenth red-team review: the connection closed first, with no answer).
            let limits = BodyLimits::new(gateway.max_body_bytes)
                .budget(budget.clone())
                .read_timeout(
                    gateway
                        .body_timeout_secs
                        .map_or(agw_tower::limits::DEFAULT_READ_TIMEOUT, Duration::from_secs),
                );
            let stack = StackConfig::new(&b.name, b.spec.clone())
                .routes(b.routes.clone())
                .policy(b.policy.clone())
                .response_policy(b.response_policy.clone())
                .response_window(b.response_window)
                .model_policy(b.model.clone())
                .limits(limits)
                .read_always(team.is_some())
                // A model allow-list checks what any body names, on every route.
                .read_bodies(
                    team.is_some()
                        && b.access
                            .as_ref()
                            .is_some_and(agw_tower::auth::Access::restricts_models),
                )
                // Token limits and budgets hold what a generation on a passthrough path may
                // use (Ollama's `/api/chat`), which only its body tells; uploads pass unread.
                .read_json_bodies(
                    team.as_ref()
                        .is_some_and(|t| t.limiter.as_ref().is_some_and(|l| l.holds_tokens())),
                )
                .upstream(upstream_config.clone());
            let svc = match &team {
                None => Svc::Plain(stack.layer().layer(UpstreamClient::clone(&upstream))),
                Some(team) => Svc::Team(team_service(
                    &stack,
                    team,
                    b,
                    UpstreamClient::clone(&upstream),
                )),
            };
            backends.push(BackendService {
                name: b.name.as_str().into(),
                classifier: stack.classifier(),
                svc,
                upstream,
                upstream_key,
            });
        }
        Ok(Runtime {
            gateway: Arc::new(gateway),
            backends: backends.into(),
            budget,
            team,
            cut,
        })
    }

    /// True when backend `name` uses the same upstream client (and so the same connection
    /// pool) in both runtimes.
    pub fn shares_upstream_pool(&self, other: &Runtime, name: &str) -> bool {
        let find = |r: &Runtime| {
            r.backends
                .iter()
                .find(|b| &*b.name == name)
                .map(|b| b.upstream.clone())
        };
        match (find(self), find(other)) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a, &b),
            _ => false,
        }
    }
}

/// The whole proxy as a tower service: health checks, `HEAD /`, and path-prefix dispatch to
/// each backend's stack (classify → request guard → provider → upstream).
#[derive(Clone)]
pub struct App {
    handle: ConfigHandle,
    log: AccessLog,
    ids: Arc<RequestIds>,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_timeout: Duration,
    /// The connection this clone serves (each connection gets its own clone).
    pub(crate) conn: Option<Arc<Activity>>,
    /// Where log lines (and, with team features, usage reports before them) are written once
    /// the response is.
    pub(crate) after: AfterResponse,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rt = self.handle.load();
        f.debug_struct("App")
            .field("listen", &rt.gateway.listen)
            .field("backends", &rt.backends.len())
            .finish_non_exhaustive()
    }
}

/// The team layers around one backend's stack: authentication before the request guard (a
/// refused request is never read), access lists, limits and usage after it (they need the
/// body's model and `max_tokens`, and count only what the guard let through), and the
/// upstream timer around the client (agw's added latency).
fn team_service(
    stack: &StackConfig,
    team: &Arc<Team>,
    b: &crate::config::Backend,
    upstream: UpstreamClient,
) -> TeamSvc {
    use agw_tower::optional::Optional;
    use tower::ServiceExt;
    let name: Arc<str> = b.name.as_str().into();
    let usage = team.usage_layer(&b.name, b.spec.kind().name(), None);
    let limit = Optional(team.limit_layer());
    // Whether callers are authenticated is the team's, built at start, not the new file's: a
    // reload that removed `auth:` took the authentication off every backend while the log
    // said auth changes wait for a restart (review of the tenth review's fixes).
    let authenticates = team.authenticates;
    let access = Optional(match (&b.access, authenticates) {
        (Some(a), _) => Some(AccessLayer::new(a.clone(), name.clone())),
        // Authenticated callers: every one may use the backend, but the layer still names it.
        (None, true) => Some(AccessLayer::new(
            agw_tower::auth::Access::any(),
            name.clone(),
        )),
        (None, false) => None,
    });
    // One concrete type whichever layers are on (`Optional`), boxed once at the top: a box
    // per layer costs an allocation per request for its clone, its future and its body, and
    // one more indirection per body frame.
    // OpenAI's API takes `stream_options`: a chat stream whose client did not ask for its
    // usage is asked for it, and charged what it used rather than its output cap (red-team
    // rt4). Other servers that speak OpenAI's API may refuse the field: left as they are.
    let include = Optional(
        (b.spec.kind() == agw_core::provider::ProviderKind::OpenAi)
            .then_some(agw_tower::usage::IncludeUsageLayer),
    );
    let middle = tower_layer::layer_fn(move |inner| {
        access.layer(limit.layer(include.layer(usage.layer(inner))))
    });
    // With `allow_unauthenticated` too: a request without a credential goes on as anonymous,
    // but one that presents a credential is checked (a revoked key is refused, a valid one
    // counted against its limits) and the credential never goes upstream.
    let outer = Optional(authenticates.then(|| team.auth_layer()));
    let timed = UpstreamTimerLayer.layer(upstream);
    tower::util::BoxCloneSyncService::new(
        stack
            .layer()
            .layer_with(&outer, &middle, timed)
            .map_response(|res| res.map(|b| b.map_err(Into::into).boxed_unsync())),
    )
}

impl App {
    /// Builds every backend's stack.
    pub fn new(gateway: Gateway, log: AccessLog) -> std::io::Result<App> {
        Self::with_team(gateway, log, None)
    }

    /// Builds every backend's stack with the team layers (`team` built from the gateway's
    /// team sections).
    pub fn with_team(
        gateway: Gateway,
        log: AccessLog,
        team: Option<Arc<Team>>,
    ) -> std::io::Result<App> {
        let after = team.as_ref().map(|t| t.after.clone()).unwrap_or_default();
        let runtime = Runtime::build_with(gateway, None, team)?;
        Ok(App {
            after,
            handle: ConfigHandle::new(runtime),
            log,
            ids: Arc::new(RequestIds::new()),
            idle_timeout: IDLE_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            conn: None,
        })
    }

    /// Sets how long an idle connection is kept open ([`IDLE_TIMEOUT`] by default).
    pub fn idle_timeout(mut self, timeout: Duration) -> App {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how long a client may take to send a request body ([`BODY_TIMEOUT`] by default).
    pub fn body_timeout(mut self, timeout: Duration) -> App {
        self.body_timeout = timeout;
        self
    }

    /// The handle through which a new configuration is installed.
    pub fn handle(&self) -> &ConfigHandle {
        &self.handle
    }
}

/// A complete response body (admin routes answer with it).
pub fn full_body(body: impl Into<Bytes>) -> ResBody {
    http_body_util::Full::new(body.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResBody> {
    let mut res = Response::new(
        http_body_util::Full::new(body.into())
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    if !content_type.is_empty() {
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
    }
    res
}

impl Service<Request<Incoming>> for App {
    type Response = Response<ResBody>;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let path = req.uri().path();
        let method = req.method();
        let is_head_or_get = method == Method::GET || method == Method::HEAD;
        if path == "/healthz" && is_head_or_get {
            // Probes are not logged and get no id: they would drown the log.
            return self.local(
                full(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
                None,
            );
        }
        let id = self.ids.next();
        if method == Method::HEAD && matches!(path, "/" | "/api/hello") {
            // Claude Code's connection warm-up (`/api/hello` in 2.1.x, without a key: a 401
            // from team authentication would count as a failed login at every start).
            let entry = self.log.entry(
                || (method.clone(), path.to_owned(), RouteKind::Passthrough),
                "-",
                &id,
            );
            return self
                .local(full(StatusCode::OK, "", Bytes::new()), entry)
                .id(id);
        }
        let rt = self.handle.load();
        let Some(i) = rt.gateway.backend_for(path) else {
            let entry = self.log.entry(
                || (method.clone(), path.to_owned(), RouteKind::Passthrough),
                "-",
                &id,
            );
            let err = ErrorBody::new(ErrorKind::NotFound, format!("no route for {path}"));
            let res = full(
                err.status(),
                "application/json",
                err.to_json(Api::Anthropic),
            );
            return self.local(res, entry).id(id);
        };
        let backend = &rt.backends[i];
        let mut svc = backend.svc.clone();
        let mut entry = self.log.entry(
            || {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                (
                    method.clone(),
                    path.to_owned(),
                    backend.classifier.kind_of(pq),
                )
            },
            backend.name.clone(),
            &id,
        );
        if let Some(e) = entry.as_mut() {
            e.cut_by(&rt.cut);
        }
        let busy = self.conn.as_ref().map(Busy::start);
        let (mut parts, body) = req.into_parts();
        // The stack's request-id layer sends this id upstream and answers with it.
        parts
            .extensions
            .insert(agw_tower::request_id::RequestId(id.header_value()));
        let mut req = Request::from_parts(parts, RequestBody::new(body, self.conn.as_ref()));
        // Team features on: the metrics count guard outcomes and upstream failures, and the
        // usage layer tells the log line who called and what it used.
        let metrics = match (&svc, &rt.team) {
            (Svc::Team(_), Some(team)) => {
                if let Some(e) = entry.as_mut() {
                    let slot = e.usage_slot();
                    UsageHooks::push(&mut req, move |r| {
                        let _ = slot.set(LoggedUsage::from(r));
                    });
                }
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let kind = backend.classifier.kind_of(pq);
                Some((team.metrics.clone(), backend.name.clone(), kind))
            }
            _ => None,
        };
        AppFuture {
            kind: match &mut svc {
                Svc::Plain(svc) => AppKind::Proxied {
                    future: svc.call(req),
                },
                Svc::Team(svc) => AppKind::Team {
                    future: svc.call(req),
                },
            },
            after: (entry.is_some() || metrics.is_some()).then(|| self.after.clone()),
            entry,
            busy,
            id: Some(id),
            metrics,
        }
    }
}

impl App {
    fn local(&self, res: Response<ResBody>, entry: Option<Box<Entry>>) -> AppFuture {
        // A local answer counts as activity; a proxied request is busy until its response
        // body is done with, and then counts.
        if let Some(conn) = &self.conn {
            conn.touch();
        }
        AppFuture {
            kind: AppKind::Local { res: Some(res) },
            after: entry.is_some().then(|| self.after.clone()),
            entry,
            busy: None,
            id: None,
            metrics: None,
        }
    }
}

type StackFuture = <Stack as Service<Request<ReqBody>>>::Future;
type TeamFuture = <TeamSvc as Service<Request<ReqBody>>>::Future;

pin_project_lite::pin_project! {
    /// Response future of [`App`]: an answer agw gives itself, or a backend's response with
    /// its body wrapped for the access log and the connection's idle tracking. Dropped before
    /// the response is ready (the client went away, or the body deadline closed the
    /// connection), it still writes the request's log line.
    pub struct AppFuture {
        #[pin]
        kind: AppKind,
        entry: Option<Box<Entry>>,
        busy: Option<Busy>,
        id: Option<RequestId>,
        // The team's metrics, the backend's name and the route, when team features are on.
        metrics: Option<(Arc<Metrics>, Arc<str>, RouteKind)>,
        // Where the log line goes when the body ends (with a line or metrics to write).
        after: Option<AfterResponse>,
    }

    impl PinnedDrop for AppFuture {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(e) = this.entry.take() {
                let timed_out = this.busy.as_ref().is_some_and(|b| b.0.body_expired());
                let close = move || {
                    if timed_out {
                        e.closed(408, "body_timeout");
                    } else {
                        e.closed(499, "client_closed");
                    }
                };
                // Written after the stack's future is dropped (after this function returns):
                // the usage layer then reports the abandoned request, and the line names who
                // called.
                match this.after.take() {
                    Some(after) => after.run(close),
                    None => close(),
                }
            }
        }
    }
}

impl AppFuture {
    fn id(mut self, id: RequestId) -> Self {
        self.id = Some(id);
        self
    }
}

pin_project_lite::pin_project! {
    #[project = AppKindProj]
    enum AppKind {
        Local { res: Option<Response<ResBody>> },
        Proxied {
            #[pin]
            future: StackFuture,
        },
        Team {
            #[pin]
            future: TeamFuture,
        },
    }
}

impl Future for AppFuture {
    type Output = Result<Response<ResBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (entry, busy) = (this.entry.take(), this.busy.take());
        let res = match this.kind.project() {
            AppKindProj::Local { res } => {
                let res = res.take().expect("AppFuture polled after completion");
                match entry {
                    Some(_) => finish(res, entry, busy, None, this.after.take()),
                    None => res,
                }
            }
            AppKindProj::Proxied { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => {
                    finish(res, entry, busy, this.metrics.take(), this.after.take())
                }
                Poll::Ready(Err(e)) => match e {},
                Poll::Pending => {
                    *this.entry = entry;
                    *this.busy = busy;
                    return Poll::Pending;
                }
            },
            AppKindProj::Team { future } => match future.poll(cx) {
                Poll::Ready(Ok(res)) => {
                    finish(res, entry, busy, this.metrics.take(), this.after.take())
                }
                Poll::Ready(Err(e)) => match e {},
                Poll::Pending => {
                    *this.entry = entry;
                    *this.busy = busy;
                    return Poll::Pending;
                }
            },
        };
        let (mut parts, body) = res.into_parts();
        if let Some(id) = this.id.take()
            && !parts.headers.contains_key(&REQUEST_ID)
        {
            parts.headers.insert(REQUEST_ID, id.header_value());
        }
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}

/// Wraps a response body for the access log and the connection's in-flight count, and counts
/// the request guard's rules and an upstream failure in the metrics (the response guard's rules
/// are counted when the body ends).
fn finish<B>(
    res: Response<B>,
    entry: Option<Box<Entry>>,
    busy: Option<Busy>,
    metrics: Option<(Arc<Metrics>, Arc<str>, RouteKind)>,
    after: Option<AfterResponse>,
) -> Response<ResBody>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
{
    let (parts, body) = res.into_parts();
    let at_end = metrics.and_then(|(metrics, backend, kind)| {
        if parts
            .extensions
            .get::<agw_tower::usage::Reported>()
            .is_none()
        {
            let who = parts.extensions.get::<agw_tower::auth::Identity>();
            metrics.answered(kind, &backend, parts.status.as_u16(), who);
        }
        if let Some(g) = parts.extensions.get::<GuardReport>() {
            for (i, rule) in g.rules.iter().enumerate() {
                if !g.rules[..i].contains(rule) {
                    metrics.guard_outcome(rule, g.outcome.name(), "request");
                }
            }
        }
        if let Some(f) = parts.extensions.get::<UpstreamFailure>() {
            metrics.upstream_error(&backend, f.name());
        }
        let outcome = parts.extensions.get::<ResponseOutcome>()?.clone();
        Some((metrics, outcome))
    });
    let body = match (entry, at_end) {
        (None, None) => Tracked { body, busy }.boxed_unsync(),
        (entry, at_end) => Tracked {
            body: LogBody::new(body, entry.with_response(&parts), at_end, after),
            busy,
        }
        .boxed_unsync(),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_header_value_is_its_display() {
        for (prefix, seq) in [
            (0, 0),
            (1, 1),
            (0xdead_beef, 0x0123_4567_89ab),
            (u32::MAX, u64::MAX >> 16),
        ] {
            let id = RequestId::new(prefix, seq);
            assert_eq!(id.header_value().to_str().unwrap(), id.to_string());
        }
        assert_eq!(
            RequestId::new(0xdead_beef, 0x2a).to_string(),
            "agw_deadbeef00000000002a"
        );
    }
}
