//! Times the upstream, so agw's own latency can be told apart from the provider's.

use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tower_layer::Layer;
use tower_service::Service;

/// A request extension the [`UsageLayer`](crate::usage::UsageLayer) inserts and
/// [`UpstreamTimer`] fills: nanoseconds from sending the request upstream to its response
/// headers (0: not timed).
#[derive(Debug, Clone, Default)]
pub struct UpstreamTiming(pub Arc<AtomicU64>);

impl UpstreamTiming {
    /// The upstream's time, if it was measured.
    pub fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

/// Put directly around the upstream client (innermost) to measure it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamTimerLayer;

impl<S> Layer<S> for UpstreamTimerLayer {
    type Service = UpstreamTimer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UpstreamTimer { inner }
    }
}

/// The service of [`UpstreamTimerLayer`].
#[derive(Debug, Clone)]
pub struct UpstreamTimer<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for UpstreamTimer<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = TimerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let slot = req.extensions().get::<UpstreamTiming>().cloned();
        TimerFuture {
            future: self.inner.call(req),
            slot,
            start: Instant::now(),
        }
    }
}

pin_project! {
    /// Response future of [`UpstreamTimer`].
    pub struct TimerFuture<F> {
        #[pin]
        future: F,
        slot: Option<UpstreamTiming>,
        start: Instant,
    }
}

impl<F, T> Future for TimerFuture<F>
where
    F: Future<Output = T>,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.project();
        let out = ready!(this.future.poll(cx));
        if let Some(slot) = this.slot.take() {
            let n = this
                .start
                .elapsed()
                .as_nanos()
                .clamp(1, u128::from(u64::MAX)) as u64;
            slot.0.store(n, Ordering::Relaxed);
        }
        Poll::Ready(out)
    }
}
