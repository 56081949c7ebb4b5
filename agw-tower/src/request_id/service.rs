use super::{RequestId, RequestIdLayer};
use http::header::HeaderName;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// Gives each request an id. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S> RequestIdService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// A [`RequestIdLayer`].
    pub fn layer() -> RequestIdLayer {
        RequestIdLayer
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, ResB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // An id given by whoever serves the connection (agw's App logs under it) is kept.
        let id = match req.extensions().get::<RequestId>() {
            Some(id) => id.clone(),
            None => {
                let id = RequestId::generate();
                req.extensions_mut().insert(id.clone());
                id
            }
        };
        req.headers_mut().insert(X_REQUEST_ID, id.0.clone());
        RequestIdFuture {
            future: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project! {
    /// Response future of [`RequestIdService`].
    pub struct RequestIdFuture<F> {
        #[pin]
        future: F,
        id: Option<RequestId>,
    }
}

impl<F, ResB, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.future.poll(cx))?;
        if let Some(id) = this.id.take() {
            if !res.headers().contains_key(&REQUEST_ID) {
                // An answer of agw's own carries the id under both names: Anthropic's SDK reads
                // `request-id`, OpenAI's `x-request-id`.
                if !res.headers().contains_key(&X_REQUEST_ID) {
                    res.headers_mut().insert(X_REQUEST_ID, id.0.clone());
                }
                res.headers_mut().insert(REQUEST_ID, id.0.clone());
            }
            res.extensions_mut().insert(id);
        }
        Poll::Ready(Ok(res))
    }
}
