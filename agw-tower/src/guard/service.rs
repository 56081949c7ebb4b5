use super::layer::Config;
use super::{GuardOutcome, GuardReport, ResponseFuture};
use crate::body::{Body, BoxError};
use crate::classify::Classified;
use crate::collect::{Plain, ReadError, read_plain, set_length};
use crate::error::error_response;
use agw_core::api::{Api, ErrorBody};
use agw_core::guard::{ActionKind, Decision};
use bytes::Bytes;
use http::header::CONTENT_ENCODING;
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// Guards requests with a policy. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct RequestGuard<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S, B, ResB> Service<Request<B>> for RequestGuard<S>
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
        let class = match req.extensions().get::<Classified>() {
            Some(c) => *c,
            None => {
                let kind = config
                    .routes
                    .classify(req.uri().path_and_query().map_or("/", |p| p.as_str()));
                Classified {
                    kind,
                    api: kind.api().unwrap_or(Api::Anthropic),
                }
            }
        };
        if config.policy.is_empty() || !class.kind.has_prompt() {
            let report = GuardReport {
                outcome: GuardOutcome::Skipped,
                rules: Vec::new(),
                model: None,
            };
            let mut req = req.map(Body::inner);
            req.extensions_mut().insert(report.clone());
            return ResponseFuture::direct(self.inner.call(req), Some(report));
        }
        // The ready service handles this request; a clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inspect(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let reject = |outcome, err: &ErrorBody, rules, model| {
                let mut res = error_response(class.api, err);
                res.extensions_mut().insert(GuardReport {
                    outcome,
                    rules,
                    model,
                });
                Ok(res)
            };
            let Plain { raw, plain } = match read_plain(&parts.headers, body, config.limit).await {
                Ok(p) => p,
                Err(e) => {
                    let outcome = match e {
                        ReadError::TooLarge(_) => GuardOutcome::TooLarge,
                        _ => GuardOutcome::Invalid,
                    };
                    return reject(outcome, &e.request_error(), Vec::new(), None);
                }
            };
            let mut verdict = match config.policy.inspect(class.kind, &plain) {
                Ok(v) => v,
                Err(e) => return reject(GuardOutcome::Invalid, &e.error_body(), Vec::new(), None),
            };
            let rules: Vec<Arc<str>> = verdict.hits().iter().map(|h| h.rule.clone()).collect();
            let model = verdict.take_model();
            let audited = verdict.hits().iter().any(|h| h.action == ActionKind::Audit);
            let (outcome, forward) = match verdict.into_decision() {
                Decision::Reject(r) => {
                    return reject(GuardOutcome::Rejected, &r.error_body(), rules, model);
                }
                Decision::Allow if audited => (GuardOutcome::Audited, raw),
                Decision::Allow => (GuardOutcome::Allowed, raw),
                Decision::Rewrite(masked) => {
                    // The masked body is sent uncompressed.
                    parts.headers.remove(CONTENT_ENCODING);
                    (GuardOutcome::Masked, Bytes::from(masked))
                }
            };
            set_length(&mut parts.headers, forward.len());
            let report = GuardReport {
                outcome,
                rules,
                model,
            };
            parts.extensions.insert(report.clone());
            let req = Request::from_parts(parts, Body::full(forward));
            let res = inner.call(req).await?;
            let mut res = res.map(Body::inner);
            res.extensions_mut().insert(report);
            Ok(res)
        }))
    }
}
