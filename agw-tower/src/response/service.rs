use super::layer::Config;
use super::{ResponseOutcome, SseGuardBody};
use crate::body::{Body, BoxError};
use crate::collect::{read_plain, set_length};
use crate::decode::encodings;
use crate::error::error_response;
use crate::framing::{Framing, framing};
use crate::limits::Collected;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::guard::{ActionKind, Decision};
use agw_core::route::RouteKind;
use agw_core::stream::StreamGuard;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{Request, Response, StatusCode};
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
        Ready { res: Option<Response<Body<SseGuardBody<ResB>>>> },
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
            KindProj::Ready { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

/// Guards responses with a policy. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ResponseGuard<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

/// Whether responses of this kind carry model output that the response guard inspects.
pub(crate) fn is_guarded(kind: RouteKind) -> bool {
    matches!(
        kind,
        RouteKind::Messages
            | RouteKind::Completions
            | RouteKind::Responses
            | RouteKind::Complete
            | RouteKind::LegacyCompletions
    )
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
        // Classified as the stack's other layers classify (canonical path, refusals).
        let class = match config.classifier.classify(&mut req) {
            Ok(c) => c,
            Err((api, err)) => {
                return ResponseFuture {
                    kind: Kind::Ready {
                        res: Some(crate::error::error_response(api, &err)),
                    },
                };
            }
        };
        let guarded = !config.policy.is_empty() && is_guarded(class.kind);
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
            let outcome = ResponseOutcome::default();
            let refuse = |status: Option<StatusCode>, msg: String| {
                outcome.record(&Arc::from("agw:unreadable"), ActionKind::Reject);
                let mut err = ErrorBody::new(ErrorKind::BadGateway, msg);
                if let Some(s) = status {
                    err = err.with_status(s);
                }
                let mut res = error_response(class.api, &err);
                res.extensions_mut().insert(outcome.clone());
                Ok(res)
            };
            let status = res.status();
            // An error the provider answered keeps its status when agw must replace it.
            let keep = (!status.is_success()).then_some(status);
            match framing(res.headers()) {
                Framing::EventStream if status.is_success() => {
                    if encodings(res.headers()).is_some() {
                        return refuse(
                            None,
                            "the provider sent a compressed stream that agw cannot inspect".into(),
                        );
                    }
                    let guard = StreamGuard::for_route(
                        config.policy.clone(),
                        class.kind,
                        class.api,
                        config.window,
                    );
                    let (mut parts, body) = res.into_parts();
                    parts.headers.remove(CONTENT_LENGTH);
                    parts.extensions.insert(outcome.clone());
                    Ok(Response::from_parts(
                        parts,
                        Body::inner(SseGuardBody::guarded(body, guard, outcome)),
                    ))
                }
                Framing::Json => {
                    let (mut parts, body) = res.into_parts();
                    let Collected { raw, plain } =
                        match read_plain(&parts.headers, body, config.limit).await {
                            Ok(p) => p,
                            Err(e) => return refuse(keep, format!("the provider's response {e}")),
                        };
                    let verdict = match config.policy.inspect_response(class.api, &plain) {
                        Ok(v) => v,
                        Err(e) => {
                            return refuse(
                                keep,
                                format!("the provider's response could not be inspected: {e}"),
                            );
                        }
                    };
                    outcome.record_hits(verdict.hits());
                    let body = match verdict.into_decision() {
                        Decision::Allow => raw,
                        Decision::Reject(r) => {
                            let mut res = error_response(class.api, &r.error_body());
                            res.extensions_mut().insert(outcome);
                            return Ok(res);
                        }
                        Decision::Rewrite(masked) => {
                            parts.headers.remove(CONTENT_ENCODING);
                            Bytes::from(masked)
                        }
                    };
                    set_length(&mut parts.headers, body.len());
                    parts.extensions.insert(outcome);
                    Ok(Response::from_parts(parts, Body::full(body)))
                }
                _ => {
                    let what = match keep {
                        Some(s) => format!(
                            "the provider answered {} with a body agw cannot inspect",
                            s.as_u16()
                        ),
                        None => "the provider's response is neither JSON nor an event stream, so agw cannot inspect it".into(),
                    };
                    refuse(keep, what)
                }
            }
        });
        ResponseFuture {
            kind: Kind::Guarded { future },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_kinds_are_those_whose_responses_carry_model_output() {
        for kind in RouteKind::ALL {
            // Only a kind with a prompt gets model output back.
            assert!(!is_guarded(kind) || kind.has_prompt(), "{kind:?}");
        }
        for kind in [
            RouteKind::Messages,
            RouteKind::Complete,
            RouteKind::Completions,
            RouteKind::LegacyCompletions,
            RouteKind::Responses,
        ] {
            assert!(is_guarded(kind), "{kind:?}");
        }
        // Prompts whose responses carry no text the model wrote: token counts, vectors, a
        // batch's id.
        for kind in [
            RouteKind::CountTokens,
            RouteKind::Embeddings,
            RouteKind::MessageBatches,
        ] {
            assert!(kind.has_prompt() && !is_guarded(kind), "{kind:?}");
        }
    }
}

#[cfg(test)]
mod outcome_tests {
    use crate::response::{ResponseGuardLayer, ResponseOutcome};
    use agw_core::detect::Detector;
    use agw_core::guard::{Policy, Rule, ToolRule};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    async fn through(
        content_type: &'static str,
        body: &'static str,
    ) -> (u16, String, ResponseOutcome) {
        let policy = Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .tool_rule(ToolRule::new("no-bash", "Bash").reject("no Bash"))
            .build()
            .unwrap();
        let upstream = service_fn(move |_req: http::Request<()>| async move {
            let res = http::Response::builder()
                .header("content-type", content_type)
                .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                .unwrap();
            Ok::<_, std::convert::Infallible>(res)
        });
        let svc = ResponseGuardLayer::new(policy).layer(upstream);
        let req = http::Request::post("/v1/messages").body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let outcome = res.extensions().get::<ResponseOutcome>().cloned().unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8_lossy(&bytes).into_owned(),
            outcome,
        )
    }

    #[tokio::test]
    async fn the_outcome_names_what_the_guard_did() {
        let (status, body, outcome) = through(
            "Text/Event-Stream",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"AKIAIOSFODNN7EXAMPLE\"}}\n\n",
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.contains("<AWS_ACCESS_KEY>"), "{body}");
        assert_eq!(outcome.action(), "mask");
        assert_eq!(outcome.rules().len(), 1);
        assert_eq!(&*outcome.rules()[0], "keys");

        let (status, _, outcome) = through(
            "application/json",
            r#"{"content":[{"type":"tool_use","name":"Bash","input":{}}]}"#,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(outcome.action(), "reject");
        assert_eq!(&*outcome.rules()[0], "no-bash");

        let (status, body, outcome) = through("text/html", "<p>AKIAIOSFODNN7EXAMPLE</p>").await;
        assert_eq!(status, 502);
        assert!(!body.contains("AKIA"));
        assert_eq!(outcome.action(), "reject");
        assert_eq!(&*outcome.rules()[0], "agw:unreadable");

        let (_, _, outcome) = through("application/json", r#"{"content":[]}"#).await;
        assert_eq!(outcome.action(), "allow");
    }
}
