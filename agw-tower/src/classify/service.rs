use super::{Classifier, ClassifyLayer};
use crate::body::Body;
use crate::error::error_response;
use crate::future::ResponseFuture;
use http::{Request, Response};
use std::task::{Context, Poll};
use tower_service::Service;

/// Classifies each request (see the [module docs](super)).
#[derive(Debug, Clone)]
pub struct Classify<S> {
    inner: S,
    classifier: Classifier,
}

impl<S> Classify<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, classifier: Classifier) -> Self {
        Self { inner, classifier }
    }

    /// A [`ClassifyLayer`] with `classifier`.
    pub fn layer(classifier: Classifier) -> ClassifyLayer {
        ClassifyLayer::with_classifier(classifier)
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

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }
}

impl<S, B, ResB> Service<Request<B>> for Classify<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<Body<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.classifier.classify(&mut req) {
            Ok(_) => ResponseFuture::direct(self.inner.call(req), None),
            Err((api, err)) => ResponseFuture::ready(error_response(api, &err)),
        }
    }
}
