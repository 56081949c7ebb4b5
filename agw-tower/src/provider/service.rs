use super::ModelRewrite;
use super::layer::Config;
use crate::body::{Body, BoxError};
use crate::classify::Classified;
use crate::collect::{Plain, read_plain, set_length};
use crate::error::error_response;
use crate::guard::ResponseFuture;
use crate::hop::strip_hop_by_hop;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::model::ModelOutcome;
use agw_core::route::RouteKind;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, HOST};
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Points requests at a provider. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Provider<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S, B, ResB> Service<Request<B>> for Provider<S>
where
    S: Service<Request<Body<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: Send + 'static,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let class = Classified::of(&req, RouteKind::Passthrough);
        let fail = |err: ErrorBody| -> Self::Future {
            let res = error_response(class.api, &err);
            ResponseFuture::inspect(Box::pin(async move { Ok(res) }))
        };
        if !config.spec.speaks(class.kind) {
            return fail(ErrorBody::new(
                ErrorKind::NotFound,
                format!(
                    "backend `{}` ({}) does not serve {} requests",
                    config.name,
                    config.spec.kind().name(),
                    class.kind
                ),
            ));
        }
        let (mut parts, body) = req.into_parts();
        parts.uri = match config.spec.rebase(&parts.uri) {
            Ok(u) => u,
            Err(_) => {
                return fail(ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    "the request target cannot be forwarded",
                ));
            }
        };
        strip_hop_by_hop(&mut parts.headers);
        // The upstream's host, never the client's (which names agw).
        match &config.host {
            Some(host) => parts.headers.insert(HOST, host.clone()),
            None => parts.headers.remove(HOST),
        };
        config.spec.prepare_headers(&mut parts.headers);

        if !class.kind.has_prompt() || config.model.is_noop() {
            let req = Request::from_parts(parts, Body::inner(body));
            return ResponseFuture::direct(self.inner.call(req), None);
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inspect(Box::pin(async move {
            let Plain { raw, plain } = match read_plain(&parts.headers, body, config.limit).await {
                Ok(p) => p,
                Err(e) => return Ok(error_response(class.api, &e.request_error())),
            };
            let (forward, rewrite) = match config.model.apply(&plain) {
                Err(e) => return Ok(error_response(class.api, &e.error_body())),
                Ok(ModelOutcome::Unchanged { .. }) => (raw, None),
                Ok(ModelOutcome::Rewritten { from, to, body }) => {
                    parts.headers.remove(CONTENT_ENCODING);
                    (Bytes::from(body), Some(ModelRewrite { from, to }))
                }
            };
            set_length(&mut parts.headers, forward.len());
            let res = inner
                .call(Request::from_parts(parts, Body::full(forward)))
                .await?;
            let mut res = res.map(Body::inner);
            if let Some(r) = rewrite {
                res.extensions_mut().insert(r);
            }
            Ok(res)
        }))
    }
}
