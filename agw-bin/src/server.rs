//! The proxy: the configured backends behind one listener, with health checks, access logs and
//! graceful shutdown.

use crate::config::Gateway;
use crate::log::{AccessLog, Entry, LogBody, WithResponse};
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_tower::body::{Body, BoxError};
use agw_tower::limits::{BodyLimits, DEFAULT_READ_TIMEOUT};
use agw_tower::stack::StackConfig;
use agw_tower::upstream::Upstream;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower_service::Service;

/// The response body of the proxy.
pub type ResBody = UnsyncBoxBody<Bytes, BoxError>;

type Stack = agw_tower::stack::Stack<Upstream<Body<Body<Incoming>>>>;

/// One backend's layered service.
#[derive(Clone, Debug)]
struct BackendService {
    name: Arc<str>,
    routes: Arc<agw_core::route::RouteTable>,
    svc: Stack,
}

/// The whole proxy as a tower service: health checks, `HEAD /`, and path-prefix dispatch to
/// each backend's stack (classify → request guard → provider → upstream).
#[derive(Clone)]
pub struct App {
    gateway: Arc<Gateway>,
    backends: Arc<[BackendService]>,
    log: AccessLog,
    idle_timeout: Duration,
    /// The connection this clone serves (each connection gets its own clone).
    conn: Option<Arc<Activity>>,
}

/// How long a connection may sit with no request in flight (waiting for, or receiving, the next
/// request's head) before agw closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection's activity: requests in flight, and when it last went idle. The idle
/// timeout is one timer per connection, re-armed at most once per timeout, rather than
/// hyper's header-read timer, which is armed and cancelled (an allocation and two timer-wheel
/// updates) for every request.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    busy: AtomicUsize,
    /// Nanoseconds from `origin` to when the connection last went idle or got a request.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.idle_since.store(nanos, Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.origin + Duration::from_nanos(self.idle_since.load(Ordering::Relaxed))
    }

    /// Resolves when the connection has been idle for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let mut deadline = self.idle_since() + timeout;
        loop {
            tokio::time::sleep_until(deadline.into()).await;
            if self.busy.load(Ordering::Acquire) > 0 {
                deadline = Instant::now() + timeout;
                continue;
            }
            let due = self.idle_since() + timeout;
            if Instant::now() >= due {
                return;
            }
            deadline = due;
        }
    }
}

/// A request in flight on a connection, until its response body is done with.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn start(conn: &Arc<Activity>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight.
    struct Tracked<B> {
        #[pin]
        body: B,
        busy: Option<Busy>,
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if frame.is_none() {
            this.busy.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("listen", &self.gateway.listen)
            .field("backends", &self.backends.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds every backend's stack.
    pub fn new(gateway: Gateway, log: AccessLog) -> std::io::Result<App> {
        let mut backends = Vec::new();
        for b in &gateway.backends {
            let stack = StackConfig::new(&b.name, b.spec.clone())
                .routes(b.routes.clone())
                .policy(b.policy.clone())
                .response_policy(b.response_policy.clone())
                .response_window(b.response_window)
                .model_policy(b.model.clone())
                .limits(BodyLimits::new(gateway.max_body_bytes).read_timeout(DEFAULT_READ_TIMEOUT))
                .upstream(b.upstream.clone());
            let svc = stack.build()?;
            backends.push(BackendService {
                name: b.name.as_str().into(),
                routes: Arc::new(stack.route_table().clone()),
                svc,
            });
        }
        Ok(App {
            gateway: Arc::new(gateway),
            backends: backends.into(),
            log,
            idle_timeout: IDLE_TIMEOUT,
            conn: None,
        })
    }

    /// Sets how long an idle connection is kept open ([`IDLE_TIMEOUT`] by default).
    pub fn idle_timeout(mut self, timeout: Duration) -> App {
        self.idle_timeout = timeout;
        self
    }
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
        // A local answer counts as activity; a proxied request is busy until its response
        // body is done with, and then counts.
        let local = |res| {
            if let Some(conn) = &self.conn {
                conn.touch();
            }
            AppFuture {
                kind: AppKind::Local { res: Some(res) },
            }
        };
        let path = req.uri().path();
        let method = req.method();
        let is_head_or_get = method == Method::GET || method == Method::HEAD;
        if path == "/healthz" && is_head_or_get {
            return local(full(
                StatusCode::OK,
                "application/json",
                r#"{"status":"ok"}"#,
            ));
        }
        if path == "/" && method == Method::HEAD {
            // Claude Code's connection warm-up.
            return local(full(StatusCode::OK, "", Bytes::new()));
        }
        let Some(i) = self.gateway.backend_for(path) else {
            let err = ErrorBody::new(ErrorKind::NotFound, format!("no route for {path}"));
            return local(full(
                err.status(),
                "application/json",
                err.to_json(Api::Anthropic),
            ));
        };
        let backend = &self.backends[i];
        let mut svc = backend.svc.clone();
        let entry = self.log.entry(
            || {
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                (method.clone(), path.to_owned(), backend.routes.classify(pq))
            },
            &backend.name,
        );
        let busy = self.conn.as_ref().map(Busy::start);
        AppFuture {
            kind: AppKind::Proxied {
                future: svc.call(req),
                entry,
                busy,
            },
        }
    }
}

type StackFuture = <Stack as Service<Request<Incoming>>>::Future;

pin_project_lite::pin_project! {
    /// Response future of [`App`]: an answer agw gives itself, or a backend's response with
    /// its body wrapped for the access log and the connection's idle tracking.
    pub struct AppFuture {
        #[pin]
        kind: AppKind,
    }
}

pin_project_lite::pin_project! {
    #[project = AppKindProj]
    enum AppKind {
        Local { res: Option<Response<ResBody>> },
        Proxied {
            #[pin]
            future: StackFuture,
            entry: Option<Box<Entry>>,
            busy: Option<Busy>,
        },
    }
}

impl Future for AppFuture {
    type Output = Result<Response<ResBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            AppKindProj::Local { res } => {
                Poll::Ready(Ok(res.take().expect("AppFuture polled after completion")))
            }
            AppKindProj::Proxied {
                future,
                entry,
                busy,
            } => {
                let res = std::task::ready!(future.poll(cx))?;
                let (parts, body) = res.into_parts();
                let busy = busy.take();
                let body = match entry.take() {
                    Some(entry) => Tracked {
                        body: LogBody::new(body, Some(entry).with_response(&parts)),
                        busy,
                    }
                    .boxed_unsync(),
                    None => Tracked { body, busy }.boxed_unsync(),
                };
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets open
/// requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slow or idle clients are cut off by the per-connection idle timeout instead.
    builder.http1().header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let idle_timeout = app.idle_timeout;
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let mut app = app.clone();
        app.conn = Some(activity.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                () = activity.idle_for(idle_timeout) => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {}
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
