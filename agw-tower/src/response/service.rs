use super::SseGuardBody;
use super::layer::Config;
use crate::body::{Body, BoxError};
use crate::classify::Classified;
use crate::collect::{Plain, read_plain, set_length};
use crate::decode::encodings;
use crate::error::error_response;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::guard::Decision;
use agw_core::route::RouteKind;
use agw_core::stream::StreamGuard;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

type Boxed<ResB, E> =
    Pin<Box<dyn Future<Output = Result<Response<Body<SseGuardBody<ResB>>>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`ResponseGuard`]: responses of routes it does not guard come
    /// straight from the inner future; guarded ones need an `async` step, which is boxed.
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        kind: Kind<F, ResB, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, ResB, E> {
        Passthrough { #[pin] future: F },
        Guarded { future: Boxed<ResB, E> },
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Body<SseGuardBody<ResB>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let res = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(|b| Body::inner(SseGuardBody::passthrough(b)))))
            }
            KindProj::Guarded { future } => future.as_mut().poll(cx),
        }
    }
}

/// Guards responses with a policy. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ResponseGuard<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

fn content_type(res: &Response<impl Sized>) -> &str {
    res.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

impl<S, B, ResB> Service<Request<B>> for ResponseGuard<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body<SseGuardBody<ResB>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let class = match req.extensions().get::<Classified>() {
            Some(c) => *c,
            None => {
                let kind = config
                    .routes
                    .classify(req.uri().path_and_query().map_or("/", |p| p.as_str()));
                Classified::of(&req, kind)
            }
        };
        let guarded = !config.policy.is_empty()
            && matches!(class.kind, RouteKind::Messages | RouteKind::Completions);
        if !guarded {
            return ResponseFuture {
                kind: Kind::Passthrough {
                    future: self.inner.call(req),
                },
            };
        }
        // Ask for a response agw can read.
        req.headers_mut().remove(ACCEPT_ENCODING);
        let fut = self.inner.call(req);
        let future = Box::pin(async move {
            let res = fut.await?;
            if !res.status().is_success() {
                return Ok(res.map(|b| Body::inner(SseGuardBody::passthrough(b))));
            }
            let encoded = encodings(res.headers());
            if content_type(&res).starts_with("text/event-stream") {
                if encoded.is_some() {
                    let err = ErrorBody::new(
                        ErrorKind::BadGateway,
                        "the provider sent a compressed stream that agw cannot inspect",
                    );
                    return Ok(error_response(class.api, &err));
                }
                let guard = StreamGuard::new(config.policy.clone(), class.api, config.window);
                let (mut parts, body) = res.into_parts();
                parts.headers.remove(CONTENT_LENGTH);
                return Ok(Response::from_parts(
                    parts,
                    Body::inner(SseGuardBody::guarded(body, guard)),
                ));
            }
            if !content_type(&res).starts_with("application/json") {
                return Ok(res.map(|b| Body::inner(SseGuardBody::passthrough(b))));
            }
            let (mut parts, body) = res.into_parts();
            let fail = |msg: String| {
                Ok(error_response(
                    class.api,
                    &ErrorBody::new(ErrorKind::BadGateway, msg),
                ))
            };
            let Plain { raw, plain } = match read_plain(&parts.headers, body, config.limit).await {
                Ok(p) => p,
                Err(e) => return fail(format!("the provider's response {e}")),
            };
            let verdict = match config.policy.inspect_response(class.api, &plain) {
                Ok(v) => v,
                Err(e) => {
                    return fail(format!(
                        "the provider's response could not be inspected: {e}"
                    ));
                }
            };
            let body = match verdict.into_decision() {
                Decision::Allow => raw,
                Decision::Reject(r) => return Ok(error_response(class.api, &r.error_body())),
                Decision::Rewrite(masked) => {
                    parts.headers.remove(CONTENT_ENCODING);
                    Bytes::from(masked)
                }
            };
            set_length(&mut parts.headers, body.len());
            Ok(Response::from_parts(parts, Body::full(body)))
        });
        ResponseFuture {
            kind: Kind::Guarded { future },
        }
    }
}
