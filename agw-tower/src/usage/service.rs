use super::body::{Pending, UsageBody};
use super::{Shared, UsageHooks, UsageReport};
use crate::auth::{Identity, RequestFacts};
use crate::classify::{Backend, Classified};
use agw_core::route::RouteKind;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tower_service::Service;

/// Counts usage of responses. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct UsageService<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

/// Routes whose responses carry token usage (and so are counted and limited).
pub(crate) fn has_usage(kind: RouteKind) -> bool {
    matches!(
        kind,
        RouteKind::Messages
            | RouteKind::Complete
            | RouteKind::Completions
            | RouteKind::LegacyCompletions
            | RouteKind::Responses
            | RouteKind::Embeddings
    )
}

impl<S, B, ResB> Service<Request<B>> for UsageService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<UsageBody<ResB>>;
    type Error = S::Error;
    type Future = UsageFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let class = Classified::of(&req, RouteKind::Passthrough);
        let counted = has_usage(class.kind);
        // A passthrough call that may generate (Ollama's `/api/chat`, an image, an eval run)
        // is charged what its response reports, in whatever shape (seventh review).
        let any_shape = class.kind == RouteKind::Passthrough && req.method() == http::Method::POST;
        if counted || any_shape {
            req.headers_mut().remove(http::header::ACCEPT_ENCODING);
            // The model and the output cap, read once (kept when an access list or a limit
            // read them): without limits or an access list, the estimates had no cap.
            RequestFacts::ensure(&mut req);
        }
        let ext = req.extensions();
        let report = UsageReport {
            identity: ext.get::<Identity>().cloned(),
            backend: ext
                .get::<Backend>()
                .map(|b| b.0.clone())
                .or_else(|| self.shared.backend.clone()),
            provider: self.shared.provider.clone(),
            route: class.kind,
            api: self.shared.upstream_api.unwrap_or(class.api),
            status: http::StatusCode::OK,
            request_model: ext.get::<RequestFacts>().and_then(|f| f.model.clone()),
            response_model: None,
            usage: None,
            cost_micros: None,
            estimate: None,
            estimated_cost_micros: None,
            estimated: false,
            streamed: false,
            complete: false,
            duration: Duration::ZERO,
            time_to_first_byte: None,
            time_to_headers: None,
            upstream: None,
        };
        let request_bytes = ext
            .get::<crate::limits::Collected>()
            .map_or(0, |c| c.plain.len() as u64);
        // The output all the request's completions may generate (`n`, `best_of`).
        let cap = ext
            .get::<RequestFacts>()
            .and_then(|f| match f.shape.choices {
                0 | 1 => f.shape.max_tokens,
                _ => Some(crate::limit::output_of(
                    &f.shape,
                    self.shared.default_estimate,
                )),
            });
        let drop_usage_chunk = ext.get::<super::UsageChunkAdded>().is_some();
        let hide_model = ext
            .get::<crate::guard::GuardReport>()
            .is_some_and(|g| g.matched_model);
        let timing = crate::metrics::UpstreamTiming::default();
        req.extensions_mut().insert(timing.clone());
        // Taken, not cloned: the hooks are called once, with this layer's report.
        let hooks = req
            .extensions_mut()
            .remove::<UsageHooks>()
            .unwrap_or_default();
        UsageFuture {
            future: self.inner.call(req),
            pending: Some(Pending {
                report,
                hooks,
                shared: self.shared.clone(),
                start,
                counted,
                any_shape,
                timing,
                request_bytes,
                cap,
                hide_model,
                drop_usage_chunk,
            }),
        }
    }
}

pin_project! {
    /// Response future of [`UsageService`]. Dropped before the response (the client went
    /// away), or failed, it still reports the request (see `body::abandon`).
    pub struct UsageFuture<F> {
        #[pin]
        future: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for UsageFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                super::body::abandon(pending, super::CLIENT_CLOSED);
            }
        }
    }
}

impl<F, ResB, E> Future for UsageFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<UsageBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.future.poll(cx));
        let mut pending = this.pending.take().expect("polled after completion");
        pending.report.time_to_headers = Some(pending.start.elapsed());
        pending.report.upstream = pending.timing.get();
        match res {
            Ok(res) => {
                let (mut parts, body) = res.into_parts();
                parts.extensions.insert(super::Reported);
                if let Some(r) = parts.extensions.get::<crate::provider::ModelRewrite>() {
                    // The model agw asked the provider for is what the request was for (its
                    // series, its price): a pinned backend answers any name a client makes
                    // up, which would otherwise each take a metrics label (sixth review).
                    pending.report.request_model = Some(r.to.clone());
                }
                let body = UsageBody::new(body, pending, &mut parts);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            Err(e) => {
                super::body::abandon(pending, http::StatusCode::BAD_GATEWAY);
                Poll::Ready(Err(e))
            }
        }
    }
}
