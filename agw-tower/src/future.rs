use crate::body::Body;
use http::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Boxed<ResB, E> = Pin<Box<dyn Future<Output = Result<Response<Body<ResB>>, E>> + Send>>;

pin_project! {
    /// Response future of [`Classify`](crate::classify::Classify),
    /// [`RequestGuard`](crate::guard::RequestGuard) and [`Provider`](crate::provider::Provider).
    ///
    /// Requests that are not inspected go straight to the inner future; an answer agw gives
    /// itself is ready at once; inspected requests need an `async` body collection first,
    /// which is boxed.
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        kind: Kind<F, ResB, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, ResB, E> {
        Direct { #[pin] future: F, report: Option<crate::guard::GuardReport> },
        Ready { res: Option<Response<Body<ResB>>> },
        Inspect { future: Boxed<ResB, E> },
    }
}

impl<F, ResB, E> ResponseFuture<F, ResB, E> {
    pub(crate) fn direct(future: F, report: Option<crate::guard::GuardReport>) -> Self {
        Self {
            kind: Kind::Direct { future, report },
        }
    }

    pub(crate) fn ready(res: Response<Body<ResB>>) -> Self {
        Self {
            kind: Kind::Ready { res: Some(res) },
        }
    }

    pub(crate) fn inspect(future: Boxed<ResB, E>) -> Self {
        Self {
            kind: Kind::Inspect { future },
        }
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Body<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Direct { future, report } => {
                let res = std::task::ready!(future.poll(cx))?;
                let mut res = res.map(Body::inner);
                if let Some(r) = report.take() {
                    res.extensions_mut().insert(r);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Ready { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Inspect { future } => future.as_mut().poll(cx),
        }
    }
}
