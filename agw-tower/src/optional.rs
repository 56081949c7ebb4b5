//! A layer that configuration turns on or off, without boxing the stack: [`Optional`].
//!
//! tower's `Option<L>` layer gives an `Either` of the two services, which must answer with the
//! same type. An agw layer answers with [`Body<B>`] (its own error responses are held bytes)
//! while the service it wraps answers with `B`; [`Optional`] passes the inner response on as
//! [`Body::inner`] when the layer is off, so both arms have one type and a stack whose layers
//! are chosen at run time stays one concrete type (no box, and so no allocation per request
//! for the service's clone, its future and its body).
//!
//! ```
//! use agw_core::{api::Api, route::RouteTable};
//! use agw_tower::classify::{Classified, ClassifyLayer};
//! use agw_tower::optional::Optional;
//! use http_body_util::BodyExt;
//! use tower::{Service, ServiceExt};
//! use tower_layer::Layer;
//!
//! # async fn run() {
//! // Answers whether the request reached it classified.
//! let svc = tower::service_fn(|req: http::Request<String>| async move {
//!     let classified = req.extensions().get::<Classified>().is_some();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(classified.to_string()))
//! });
//! for on in [false, true] {
//!     let layer = on.then(|| ClassifyLayer::new(RouteTable::claude_code(), Api::Anthropic));
//!     // One type either way.
//!     let mut svc: agw_tower::optional::OptionalService<_, _> = Optional(layer).layer(svc.clone());
//!     let req = http::Request::post("/v1/messages").body(String::new()).unwrap();
//!     let res = svc.ready().await.unwrap().call(req).await.unwrap();
//!     let body = res.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, on.to_string());
//! }
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run());
//! ```

use crate::body::Body;
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

/// A layer that is on (`Some`) or off (`None`). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Optional<L>(pub Option<L>);

impl<L, S> Layer<S> for Optional<L>
where
    L: Layer<S>,
{
    type Service = OptionalService<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.0 {
            Some(l) => OptionalService::On(l.layer(inner)),
            None => OptionalService::Off(inner),
        }
    }
}

/// The service of an [`Optional`] layer: the layer's service, or the inner one alone.
#[derive(Debug, Clone)]
pub enum OptionalService<T, S> {
    /// The layer is on.
    On(T),
    /// The layer is off: requests go straight to the inner service.
    Off(S),
}

impl<T, S, B, ResB> Service<Request<B>> for OptionalService<T, S>
where
    T: Service<Request<B>, Response = Response<Body<ResB>>>,
    S: Service<Request<B>, Response = Response<ResB>, Error = T::Error>,
{
    type Response = Response<Body<ResB>>;
    type Error = T::Error;
    type Future = OptionalFuture<T::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            OptionalService::On(s) => s.poll_ready(cx),
            OptionalService::Off(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self {
            OptionalService::On(s) => OptionalFuture::On {
                future: s.call(req),
            },
            OptionalService::Off(s) => OptionalFuture::Off {
                future: s.call(req),
            },
        }
    }
}

pin_project! {
    /// Response future of [`OptionalService`].
    #[project = OptionalFutureProj]
    #[allow(missing_docs)] // Fields: the future of the arm taken.
    pub enum OptionalFuture<A, B> {
        /// The layer's future.
        On { #[pin] future: A },
        /// The inner service's future.
        Off { #[pin] future: B },
    }
}

impl<A, B, ResB, E> Future for OptionalFuture<A, B>
where
    A: Future<Output = Result<Response<Body<ResB>>, E>>,
    B: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Body<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            OptionalFutureProj::On { future } => future.poll(cx),
            OptionalFutureProj::Off { future } => {
                Poll::Ready(ready!(future.poll(cx)).map(|res| res.map(Body::inner)))
            }
        }
    }
}
