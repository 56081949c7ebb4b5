use super::layer::Config;
use super::{ModelRewrite, ProviderLayer};
use crate::body::{Body, BoxError};
use crate::collect::{has_no_body, read_plain, read_request, set_length};
use crate::error::error_response;
use crate::guard::ResponseFuture;
use crate::hop::strip_hop_by_hop;
use crate::limits::Collected;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::dialect::Api;
use agw_core::model::ModelOutcome;
use agw_core::provider::{Credentials, ProviderSpec};
use agw_core::route::RouteKind;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// The most of an upstream error body read to explain it after a model rewrite.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// Points requests at a provider. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct Provider<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S> Provider<S> {
    /// Sends `inner`'s requests to `spec` with the layer's defaults.
    pub fn new(inner: S, name: impl Into<String>, spec: ProviderSpec) -> Self {
        tower_layer::Layer::layer(&ProviderLayer::new(name, spec), inner)
    }

    /// A [`ProviderLayer`].
    pub fn layer(name: impl Into<String>, spec: ProviderSpec) -> ProviderLayer {
        ProviderLayer::new(name, spec)
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

impl<S, B, ResB> Service<Request<B>> for Provider<S>
where
    S: Service<Request<Body<B>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let class = match config.classifier.classify(&mut req) {
            Ok(c) => c,
            Err((api, err)) => return ResponseFuture::ready(error_response(api, &err)),
        };
        let fail = |err: ErrorBody| ResponseFuture::ready(error_response(class.api, &err));
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
        // Only a passthrough request on a backend that injects its key can mint one.
        let guarded = class.kind == RouteKind::Passthrough
            && matches!(config.spec.credentials(), Credentials::Inject(_));
        let client_path = guarded
            .then(|| Api::hands_out_credentials(parts.uri.path()))
            .flatten();
        parts.uri = match config.spec.rebase(&parts.uri) {
            Ok(u) => u,
            Err(_) => {
                return fail(ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    "the request target cannot be forwarded",
                ));
            }
        };
        // The gateway's key is never spent on minting a key that works without agw (see
        // `Api::hands_out_credentials`), whether the client's path or the base URL's names the
        // endpoint (a base of `…/v1` and a path of `/realtime/client_secrets`: regression
        // round); a route the operator names `Unguarded` is their call.
        if guarded
            && let Some(listed) =
                client_path.or_else(|| Api::hands_out_credentials(parts.uri.path()))
        {
            return fail(ErrorBody::new(
                ErrorKind::Forbidden,
                format!(
                    "agw does not forward `{listed}` requests on backend `{}`: they hand out \
                     provider credentials or open a session that bypasses the gateway, and this \
                     backend injects the gateway's key",
                    config.name
                ),
            ));
        }
        strip_hop_by_hop(&mut parts.headers);
        // The upstream's host, never the client's (which names agw).
        match &config.host {
            Some(host) => parts.headers.insert(HOST, host.clone()),
            None => parts.headers.remove(HOST),
        };
        config.spec.prepare_headers(&mut parts.headers);

        let read = parts.extensions.get::<Collected>().cloned();
        if !class.kind.has_prompt()
            || config.model.is_noop()
            || (read.is_none() && has_no_body(&body))
        {
            let req = Request::from_parts(parts, Body::inner(body));
            return ResponseFuture::direct(self.inner.call(req), None);
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inspect(Box::pin(async move {
            // Read once: an earlier layer's collection is reused; then the body is those bytes.
            let (collected, _permit, body) = match read {
                Some(c) => (c, None, Some(body)),
                None => match read_request(&mut parts.headers, body, &config.limits).await {
                    Ok((c, permit)) => (c, permit, None),
                    Err(e) => return Ok(error_response(class.api, &e.request_error())),
                },
            };
            let (body, rewrite) = match config.model.apply(&collected.plain) {
                Err(e) => return Ok(error_response(class.api, &e.error_body())),
                Ok(ModelOutcome::Unchanged { .. }) => match body {
                    Some(body) => (Body::inner(body), None),
                    None => (Body::full(collected.plain.clone()), None),
                },
                Ok(ModelOutcome::Rewritten { from, to, body }) => {
                    parts.headers.remove(CONTENT_ENCODING);
                    let body = Bytes::from(body);
                    set_length(&mut parts.headers, body.len());
                    parts.extensions.insert(Collected {
                        plain: body.clone(),
                    });
                    (Body::full(body), Some(ModelRewrite { from, to }))
                }
            };
            if rewrite.is_none() {
                set_length(&mut parts.headers, collected.plain.len());
            }
            let res = inner.call(Request::from_parts(parts, body)).await?;
            let Some(rewrite) = rewrite else {
                return Ok(res.map(Body::inner));
            };
            let mut res = if explains_model(res.status()) {
                explain_rewrite(res, &rewrite, &config.name, class.upstream, class.api).await
            } else {
                res.map(Body::inner)
            };
            res.extensions_mut().insert(rewrite);
            Ok(res)
        }))
    }
}

/// Upstream errors that may be about the model (not credentials or rate limits).
fn explains_model(status: StatusCode) -> bool {
    status.is_client_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        )
}

/// Replaces an upstream error after a model rewrite with one that says so: the requested
/// model, the pinned one and the upstream's message, in the client's dialect. The upstream's
/// status and other headers (`request-id`, ...) are kept.
async fn explain_rewrite<ResB>(
    res: Response<ResB>,
    rewrite: &ModelRewrite,
    backend: &str,
    upstream: agw_core::api::Api,
    client: agw_core::api::Api,
) -> Response<Body<ResB>>
where
    ResB: http_body::Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    // An unreadable error body explains nothing: then only agw's part is said.
    let plain = read_plain(&mut parts.headers, body, ERROR_BODY_LIMIT)
        .await
        .map(|c| c.plain)
        .unwrap_or_default();
    let upstream_message = upstream
        .error_message(&plain)
        .unwrap_or_else(|| "(no message)".to_owned());
    // Blamed on the model only when the upstream names it: a 404 for a wrong path is no
    // model's fault (real-client review: a doubled `/v1` was reported as a refused pin).
    let message = if upstream_message.contains(&*rewrite.to) {
        format!(
            "the upstream rejected model `{to}`, which agw's backend `{backend}` sends instead of \
             the requested `{from}`: {upstream_message}",
            to = rewrite.to,
            from = rewrite.from,
        )
    } else {
        format!(
            "the upstream refused the request ({status}): {upstream_message} (agw's backend \
             `{backend}` sent model `{to}` instead of the requested `{from}`)",
            status = parts.status.as_u16(),
            to = rewrite.to,
            from = rewrite.from,
        )
    };
    let err = ErrorBody::new(ErrorKind::InvalidRequest, message).with_status(parts.status);
    let json = err.to_json(client);
    parts.headers.remove(CONTENT_ENCODING);
    parts.headers.insert(CONTENT_LENGTH, json.len().into());
    parts.headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::full(json))
}
