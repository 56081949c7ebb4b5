//! Graceful drain of open connections: on shutdown every connection is asked to finish the
//! requests it has and close, and [`Drain::shutdown`] resolves once all have.
//!
//! hyper-util's `GracefulShutdown` does this with a `watch` channel that each connection polls
//! on every wake-up (every read and write, every event of a stream), and each poll takes the
//! channel's lock. Here the start of the drain is a [`StreamCut`], and each connection a
//! [`CutListener`] on it: one flag read per wake-up, the waker registered only when it changes
//! (as open upstream bodies wait for the end of the grace period).

use agw_tower::upstream::{CutListener, StreamCut};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// Drains the connections it watches. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Drain {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Cut when the drain starts.
    start: StreamCut,
    /// Connections watched and not yet dropped.
    active: AtomicUsize,
    /// Notified when `active` falls to zero.
    idle: Notify,
}

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain::default()
    }

    /// Watches `conn`: once the drain starts, `shutdown` is called on it (hyper's
    /// `graceful_shutdown`), and the drain waits until the returned future is dropped.
    pub(crate) fn watch<C, F>(&self, conn: C, shutdown: F) -> Watched<C, F>
    where
        F: FnOnce(Pin<&mut C>),
    {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        Watched {
            conn,
            shutdown: Some(shutdown),
            started: self.inner.start.listener(),
            drain: self.inner.clone(),
        }
    }

    /// Holds the drain open until `task` (a connection's or an HTTP/2 stream's whole task) is
    /// dropped: after the work queued to run at the end of its last poll (usage reports,
    /// settlements, log lines), which runs after the connection itself is done. Without it the
    /// drain could end on another thread in between, and the settlements flushed at shutdown
    /// miss the last request's (black-box review: its spend was lost in one run of three).
    pub(crate) fn hold<T>(&self, task: T) -> Holding<T> {
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        Holding {
            task,
            drain: self.inner.clone(),
        }
    }

    /// Asks every watched connection to close once its requests are done, and resolves when
    /// all of them have been dropped.
    pub(crate) async fn shutdown(&self) {
        self.inner.start.cut();
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read: a last drop in between still wakes us.
            idle.as_mut().enable();
            if self.inner.active.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection watched by a [`Drain`]; see [`Drain::watch`].
    pub(crate) struct Watched<C, F> {
        #[pin]
        conn: C,
        shutdown: Option<F>,
        started: CutListener,
        drain: Arc<Inner>,
    }

    impl<C, F> PinnedDrop for Watched<C, F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().drain.release();
        }
    }
}

pin_project_lite::pin_project! {
    /// A task holding a [`Drain`] open; see [`Drain::hold`].
    pub(crate) struct Holding<T> {
        #[pin]
        task: T,
        drain: Arc<Inner>,
    }

    impl<T> PinnedDrop for Holding<T> {
        fn drop(this: Pin<&mut Self>) {
            this.project().drain.release();
        }
    }
}

impl<T: Future> Future for Holding<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        self.project().task.poll(cx)
    }
}

impl Inner {
    /// One watched connection or held task is gone.
    fn release(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl<C, F> Future for Watched<C, F>
where
    C: Future,
    F: FnOnce(Pin<&mut C>),
{
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if this.shutdown.is_some()
            && this.started.poll_cut(cx)
            && let Some(shutdown) = this.shutdown.take()
        {
            shutdown(this.conn.as_mut());
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::Waker;
    use std::time::Duration;

    /// A connection that ends only after it was asked to shut down; counts its polls.
    struct Conn {
        asked: Arc<AtomicBool>,
        polls: Arc<AtomicUsize>,
    }

    impl Future for Conn {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.asked.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn conn() -> (Conn, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let (asked, polls) = (Arc::default(), Arc::default());
        let c = Conn {
            asked: Arc::clone(&asked),
            polls: Arc::clone(&polls),
        };
        (c, asked, polls)
    }

    fn ask(c: Pin<&mut Conn>) {
        c.asked.store(true, Ordering::SeqCst);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_connection_is_asked_to_close_and_the_drain_waits_for_all() {
        let drain = Drain::new();
        // No connections: done at once.
        tokio::time::timeout(Duration::from_secs(5), drain.clone().shutdown())
            .await
            .unwrap();

        let drain = Drain::new();
        let mut asked = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (c, a, polls) = conn();
            asked.push(a);
            tasks.push(tokio::spawn(drain.watch(c, ask)));
            // Polled (and registered) before the drain starts.
            while polls.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        }
        // One watched but never polled before the drain: asked at its first poll.
        let (late, late_asked, _) = conn();
        let late = drain.watch(late, ask);
        // One dropped without finishing (an aborted connection) also counts as done.
        let (gone, gone_asked, _) = conn();
        drop(drain.watch(gone, ask));

        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown().await }
        });
        tokio::task::yield_now().await;
        assert!(!shutdown.is_finished(), "the late connection is still open");
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .unwrap()
                .unwrap();
        }
        assert!(asked.iter().all(|a| a.load(Ordering::SeqCst)));
        late.await;
        assert!(late_asked.load(Ordering::SeqCst));
        assert!(!gone_asked.load(Ordering::SeqCst));
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .unwrap()
            .unwrap();
    }

    /// A held task keeps the drain open after the connection it watches is done, until the
    /// task itself is dropped (its work after the last response has run by then).
    #[tokio::test(flavor = "current_thread")]
    async fn a_held_task_keeps_the_drain_open_until_it_is_dropped() {
        let drain = Drain::new();
        let (c, asked, _) = conn();
        let held = drain.hold(drain.watch(c, ask));
        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown().await }
        });
        let mut held = Box::pin(held);
        // The connection finishes (asked to close at its poll)...
        std::future::poll_fn(|cx| held.as_mut().poll(cx)).await;
        assert!(asked.load(Ordering::SeqCst));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // ...but the task around it is not dropped yet.
        assert!(!shutdown.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .unwrap()
            .unwrap();
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_polled_by_a_new_waker_is_woken_there() {
        let drain = Drain::new();
        let (c, asked, _) = conn();
        let mut watched = Box::pin(drain.watch(c, ask));
        let waker = |w: &Arc<Wakes>| Waker::from(w.clone());
        let (a, b) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
        for w in [&a, &a, &b, &b] {
            assert!(
                watched
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker(w)))
                    .is_pending()
            );
        }
        let shutdown = drain.shutdown();
        tokio::pin!(shutdown);
        assert!(futures_poll(shutdown.as_mut()).is_pending());
        // The drain's start woke the waker the connection was last polled with, once.
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        let wb = waker(&b);
        assert!(
            watched
                .as_mut()
                .poll(&mut Context::from_waker(&wb))
                .is_ready()
        );
        assert!(asked.load(Ordering::SeqCst));
        drop(watched);
        assert!(futures_poll(shutdown.as_mut()).is_ready());
    }

    fn futures_poll<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }
}
