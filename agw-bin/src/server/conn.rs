//! Per-connection activity: one idle timer per connection, which also enforces the request-body
//! read deadline, so a client that trickles its upload cannot hold a connection (and the buffer
//! its guarded request fills) forever.
//!
//! The timer is re-armed at most once per timeout rather than per request: hyper's own
//! header-read timer is armed and cancelled (an allocation and two timer-wheel updates) for every
//! request, which the load bench shows.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long a connection may sit with no request in flight (waiting for, or receiving, the next
/// request's head) before agw closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client may take to send a request body, from the first body read until its end.
/// The body stage answers a body it reads with a 408 then; a connection whose upload runs past
/// it (plus a short grace, for that answer) is closed (the request is logged with status 408
/// and `cause=body_timeout`). Checked by the connection's own timer, which wakes at most every
/// `min(idle timeout, body timeout)`, so the cut comes that much after the deadline at the
/// latest. The clock restarts whenever one of the connection's bodies completes (HTTP/2).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// One connection's activity: requests in flight, request bodies being received, and when it
/// last went idle.
#[derive(Debug)]
pub(crate) struct Activity {
    origin: Instant,
    busy: AtomicUsize,
    /// Nanoseconds from `origin` to when the connection last went idle or got a request.
    idle_since: AtomicU64,
    /// Request bodies being received.
    reading: AtomicUsize,
    /// Nanoseconds from `origin` to when the oldest body read without progress began.
    reading_since: AtomicU64,
    /// Set when the body deadline closed the connection.
    body_expired: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            reading: AtomicUsize::new(0),
            reading_since: AtomicU64::new(0),
            body_expired: AtomicBool::new(false),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn touch(&self) {
        self.idle_since.store(self.now_nanos(), Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.origin + Duration::from_nanos(self.idle_since.load(Ordering::Relaxed))
    }

    /// True once the body deadline has closed this connection.
    pub(crate) fn body_expired(&self) -> bool {
        self.body_expired.load(Ordering::Relaxed)
    }

    fn start_reading(&self) {
        if self.reading.fetch_add(1, Ordering::AcqRel) == 0 {
            self.reading_since
                .store(self.now_nanos(), Ordering::Relaxed);
        }
    }

    fn stop_reading(&self) {
        // A finished body is progress: the bodies still being read get a fresh deadline.
        self.reading_since
            .store(self.now_nanos(), Ordering::Relaxed);
        self.reading.fetch_sub(1, Ordering::AcqRel);
    }

    /// Resolves when the connection has been idle for `idle`, or a request body has been
    /// arriving for longer than `body`. The timer wakes at most every `min(idle, body)`.
    pub(crate) async fn expired(&self, idle: Duration, body: Duration) {
        let period = idle.min(body);
        let mut deadline = (self.idle_since() + idle).min(Instant::now() + period);
        loop {
            tokio::time::sleep_until(deadline.into()).await;
            let now = Instant::now();
            if self.busy.load(Ordering::Acquire) > 0 {
                deadline = now + period;
                if self.reading.load(Ordering::Acquire) > 0 {
                    let since = self.origin
                        + Duration::from_nanos(self.reading_since.load(Ordering::Relaxed));
                    if now >= since + body {
                        self.body_expired.store(true, Ordering::Relaxed);
                        return;
                    }
                    deadline = deadline.min(since + body);
                }
                continue;
            }
            let due = self.idle_since() + idle;
            if now >= due {
                return;
            }
            deadline = due.min(now + period);
        }
    }
}

/// A request in flight on a connection, until its response body is done with.
#[derive(Debug)]
pub(crate) struct Busy(pub(crate) Arc<Activity>);

impl Busy {
    pub(crate) fn start(conn: &Arc<Activity>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight.
    pub(crate) struct Tracked<B> {
        #[pin]
        pub(crate) body: B,
        pub(crate) busy: Option<Busy>,
    }
}

impl<B: http_body::Body> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.body.poll_frame(cx));
        if frame.is_none() {
            this.busy.take();
        }
        Poll::Ready(frame)
    }

    #[inline(always)]
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body counted as being received until it ends or is dropped, so the connection's
/// timer can enforce [`BODY_TIMEOUT`]. Bodies that are empty from the start are not counted.
#[derive(Debug)]
pub struct RequestBody<B> {
    inner: B,
    conn: Option<Arc<Activity>>,
}

impl<B: http_body::Body> RequestBody<B> {
    pub(crate) fn new(inner: B, conn: Option<&Arc<Activity>>) -> Self {
        let conn = conn.filter(|_| !inner.is_end_stream()).map(|c| {
            c.start_reading();
            c.clone()
        });
        Self { inner, conn }
    }

    fn done(&mut self) {
        if let Some(c) = self.conn.take() {
            c.stop_reading();
        }
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.stop_reading();
        }
    }
}

impl<B> http_body::Body for RequestBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let res = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &res {
            None | Some(Err(_)) => self.done(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.done(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    async fn within(f: impl std::future::Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("the connection timer fired");
    }

    #[tokio::test]
    async fn an_idle_connection_expires_without_a_body_timeout() {
        let a = Arc::new(Activity::new());
        within(a.expired(50 * MS, 5_000 * MS)).await;
        assert!(!a.body_expired());
    }

    #[tokio::test]
    async fn a_trickling_body_expires_the_busy_connection() {
        let a = Arc::new(Activity::new());
        let _busy = Busy::start(&a);
        let body = RequestBody::new(Trickle, Some(&a));
        within(a.expired(5_000 * MS, 50 * MS)).await;
        assert!(a.body_expired());
        drop(body);
        assert_eq!(a.reading.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_busy_connection_without_a_body_in_flight_does_not_expire() {
        let a = Arc::new(Activity::new());
        let busy = Busy::start(&a);
        // An empty body is not counted as being received.
        let _body = RequestBody::new(http_body_util::Empty::<Bytes>::new(), Some(&a));
        let timer = a.expired(20 * MS, 20 * MS);
        tokio::pin!(timer);
        assert!(
            tokio::time::timeout(200 * MS, timer.as_mut())
                .await
                .is_err(),
            "a request in flight kept the connection"
        );
        drop(busy);
        within(timer).await;
        assert!(!a.body_expired());
    }

    /// A body that never ends.
    struct Trickle;

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }
}
