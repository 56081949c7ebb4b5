use super::layer::Config;
use super::{GuardOutcome, GuardReport, RequestGuardLayer, ResponseFuture};
use crate::body::{Body, BoxError};
use crate::collect::{ReadError, has_no_body, read_request, set_length};
use crate::error::error_response;
use crate::limits::Collected;
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_core::guard::{ActionKind, Decision, Policy};
use agw_core::route::RouteKind;
use bytes::Bytes;
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

impl<S> RequestGuard<S> {
    /// Guards `inner` with `policy` and the layer's defaults.
    pub fn new(inner: S, policy: Policy) -> Self {
        tower_layer::Layer::layer(&RequestGuardLayer::new(policy), inner)
    }

    /// A [`RequestGuardLayer`] with `policy`.
    pub fn layer(policy: Policy) -> RequestGuardLayer {
        RequestGuardLayer::new(policy)
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

fn skipped() -> GuardReport {
    GuardReport {
        outcome: GuardOutcome::Skipped,
        rules: Vec::new(),
        model: None,
        shape: Default::default(),
        matched_model: false,
        matched_url: false,
    }
}

/// The guard's own answer: the dialect's error for `err`, with the report saying why.
fn refused<ResB>(
    api: Api,
    outcome: GuardOutcome,
    err: &ErrorBody,
    rules: Vec<Arc<str>>,
    model: Option<String>,
    matched: (bool, bool),
) -> Response<Body<ResB>> {
    let mut res = error_response(api, err);
    res.extensions_mut().insert(GuardReport {
        outcome,
        rules,
        model,
        shape: Default::default(),
        matched_model: matched.0,
        matched_url: matched.1,
    });
    res
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        let class = match config.classifier.classify(&mut req) {
            Ok(c) => c,
            Err((api, err)) => {
                let res = refused(
                    api,
                    GuardOutcome::Refused,
                    &err,
                    Vec::new(),
                    None,
                    (false, false),
                );
                return ResponseFuture::ready(res);
            }
        };
        // The URL and the headers reach the provider too: read by the rules that read message
        // text (neither is rewritten, so a hit refuses where its rule refuses or masks).
        let mut url_rules: Vec<Arc<str>> = Vec::new();
        // Whether a rule matched the URL: the access log must not show it.
        let mut url_matched = false;
        if !config.policy.is_empty() && class.kind != RouteKind::Unguarded {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let url = config.policy.inspect_target(pq);
            url_matched = !url.hits().is_empty();
            for verdict in [url, config.policy.inspect_headers(req.headers())] {
                url_rules.extend(verdict.hits().iter().map(|h| h.rule.clone()));
                if let Decision::Reject(r) = verdict.into_decision() {
                    let res = refused(
                        class.api,
                        GuardOutcome::Rejected,
                        &r.error_body(),
                        url_rules,
                        None,
                        (false, url_matched),
                    );
                    return ResponseFuture::ready(res);
                }
            }
        }
        // A body on a path no dialect knows is inspected generically; only an explicit
        // `Unguarded` route, or a request without a body, is not read.
        // A prompt route's request is read when its method sends a prompt (a POST; a body it
        // claims to lack is read as empty and refused as not JSON); listing, retrieving or
        // cancelling message batches (a GET, a POST to `…/cancel`) is read only with a body.
        let sends = matches!(
            *req.method(),
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ) && !req.uri().path().ends_with("/cancel");
        let inspect = (!config.policy.is_empty()
            || config.read_bodies
            || (config.read_json && may_be_json(req.headers()))
            || (config.read_always && class.kind.has_prompt()))
            && class.kind != RouteKind::Unguarded
            && ((class.kind.has_prompt() && sends) || !has_no_body(req.body()));
        if !inspect {
            let report = with_url_audits(skipped(), url_rules, url_matched);
            let mut req = req.map(Body::inner);
            req.extensions_mut().insert(report.clone());
            return ResponseFuture::direct(self.inner.call(req), Some(report));
        }
        let inspect_as = if class.kind.has_prompt() {
            class.kind
        } else {
            RouteKind::Passthrough
        };
        // The ready service handles this request; a clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::inspect(Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let audited_url = !url_rules.is_empty();
            let reject = |outcome, err: &ErrorBody, rules, model, matched_model| {
                Ok(refused(
                    class.api,
                    outcome,
                    err,
                    rules,
                    model,
                    (matched_model, url_matched),
                ))
            };
            let (collected, _permit) =
                match read_request(&mut parts.headers, body, &config.limits).await {
                    Ok(c) => c,
                    Err(e) => {
                        let outcome = match e {
                            ReadError::TooLarge(_) => GuardOutcome::TooLarge,
                            ReadError::TimedOut(_) => GuardOutcome::TimedOut,
                            ReadError::Busy(_) => GuardOutcome::Busy,
                            _ => GuardOutcome::Invalid,
                        };
                        return reject(outcome, &e.request_error(), Vec::new(), None, false);
                    }
                };
            let Collected { plain } = collected;
            if config.policy.is_empty() || (plain.is_empty() && !class.kind.has_prompt()) {
                // No rules (the body was read for later layers), or a body that turned out
                // empty (chunked, zero bytes): nothing to inspect.
                let report = with_url_audits(skipped(), url_rules, url_matched);
                parts.extensions.insert(report.clone());
                parts.extensions.insert(Collected {
                    plain: plain.clone(),
                });
                let req = Request::from_parts(parts, Body::full(plain));
                let mut res = inner.call(req).await?.map(Body::inner);
                res.extensions_mut().insert(report);
                return Ok(res);
            }
            // An upload (a form, a file: no JSON by its type, or no JSON by its bytes without
            // a JSON type) on a path without a prompt is read as one ([`Policy::inspect_upload`]).
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let upload = || {
                config
                    .policy
                    .inspect_upload(&plain, content_type)
                    .map_err(|why| {
                        ErrorBody::new(
                            ErrorKind::InvalidRequest,
                            format!("agw could not inspect the request body: {why}"),
                        )
                    })
            };
            let verdict = if !class.kind.has_prompt() && !may_be_json(&parts.headers) {
                upload()
            } else {
                match config.policy.inspect(inspect_as, &plain) {
                    Ok(v) => Ok(v),
                    Err(_) if !class.kind.has_prompt() && !declares_json(&parts.headers) => {
                        upload()
                    }
                    Err(e) => Err(e.error_body()),
                }
            };
            let mut verdict = match verdict {
                Ok(v) => v,
                Err(body) => {
                    return reject(GuardOutcome::Invalid, &body, Vec::new(), None, false);
                }
            };
            let mut rules: Vec<Arc<str>> = verdict.hits().iter().map(|h| h.rule.clone()).collect();
            let matched_model = verdict.hits().iter().any(|h| h.path == "model");
            rules.extend(url_rules);
            let model = verdict.take_model();
            let shape = verdict.shape();
            let audited =
                audited_url || verdict.hits().iter().any(|h| h.action == ActionKind::Audit);
            let (outcome, collected) = match verdict.into_decision() {
                Decision::Reject(r) => {
                    return reject(
                        GuardOutcome::Rejected,
                        &r.error_body(),
                        rules,
                        model,
                        matched_model,
                    );
                }
                Decision::Allow if audited => (GuardOutcome::Audited, Collected { plain }),
                Decision::Allow => (GuardOutcome::Allowed, Collected { plain }),
                Decision::Rewrite(masked) => (
                    GuardOutcome::Masked,
                    Collected {
                        plain: Bytes::from(masked),
                    },
                ),
            };
            set_length(&mut parts.headers, collected.plain.len());
            let report = GuardReport {
                outcome,
                rules,
                model,
                shape,
                matched_model,
                matched_url: url_matched,
            };
            parts.extensions.insert(report.clone());
            let forward = collected.plain.clone();
            parts.extensions.insert(collected);
            let req = Request::from_parts(parts, Body::full(forward));
            // `_permit` holds the buffered bytes' budget until the upstream has answered.
            let res = inner.call(req).await?;
            let mut res = res.map(Body::inner);
            res.extensions_mut().insert(report);
            Ok(res)
        }))
    }
}

/// Whether a request's `Content-Type` says its body is JSON (`application/json`, `…+json`).
fn declares_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let media = ct.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/json")
                || media.len() > 5 && media[media.len() - 5..].eq_ignore_ascii_case("+json")
        })
}

/// Whether a request body may be JSON by its `Content-Type`: not an upload (multipart, octet
/// stream, audio, image, video, PDF, archive). A body without one may be.
fn may_be_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    !(media.starts_with("multipart/")
        || media == "application/x-www-form-urlencoded"
        || media.starts_with("audio/")
        || media.starts_with("image/")
        || media.starts_with("video/")
        || matches!(
            media.as_str(),
            "application/octet-stream"
                | "application/pdf"
                | "application/zip"
                | "application/gzip"
                | "application/x-tar"
        ))
}

/// A report of a request whose body was not inspected, with the audit rules its URL and
/// headers matched.
fn with_url_audits(
    report: GuardReport,
    url_rules: Vec<Arc<str>>,
    url_matched: bool,
) -> GuardReport {
    if url_rules.is_empty() {
        return report;
    }
    GuardReport {
        outcome: GuardOutcome::Audited,
        rules: url_rules,
        matched_url: url_matched,
        ..report
    }
}

#[cfg(test)]
mod tests {
    use super::may_be_json;

    /// With token limits every body that may be JSON is read for the limiter; uploads are not
    /// (review of the tenth review's fixes: buffering them all refused large uploads).
    #[test]
    fn uploads_are_not_taken_for_json() {
        for (ct, json) in [
            (None, true),
            (Some("application/json"), true),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("text/plain; charset=utf-8"), true),
            (Some("Multipart/Form-Data; boundary=x"), false),
            (Some("application/octet-stream"), false),
            (Some("audio/mpeg"), false),
            (Some("image/png"), false),
            (Some("video/mp4"), false),
            (Some("application/pdf"), false),
        ] {
            let mut h = http::HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            assert_eq!(may_be_json(&h), json, "{ct:?}");
        }
    }
}
