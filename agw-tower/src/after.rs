//! Work that follows a response, run once its last bytes are written.
//!
//! What a response's end triggers — the usage report, its hooks (the limiter's settle), the
//! metrics, the access-log line — would otherwise run inside the connection task's poll when
//! the body ends, which is before the server writes the body's last bytes: the client would
//! wait for the gateway's bookkeeping. [`AfterResponse`] defers that work:
//!
//! - Inside a future wrapped in [`RunAfter`] (agw's server wraps each connection), a job runs
//!   when the wrapped future's current poll ends: the server has written the response by then,
//!   and the work stays on the connection's thread, hot in its caches, with no other task to
//!   wake. (Waking one from a worker that is about to run another task wakes a second worker
//!   to share the work: a futex and a thread hop per request.)
//! - Elsewhere, jobs are queued to one task. Woken from the connection's task, it runs as soon
//!   as the connection's task has written and yielded.
//!
//! Jobs run in the order they were queued on each thread's poll or on the queue, so a log line
//! queued after the usage report sees it. A job that cannot be queued (no tokio runtime) runs
//! at once; one still queued when its runtime shuts down runs when the queue is dropped:
//! nothing is lost.
//!
//! # Example
//!
//! ```
//! use agw_tower::after::AfterResponse;
//! use std::sync::{Arc, Mutex};
//!
//! # async fn run() {
//! let after = AfterResponse::new();
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! for i in 0..3 {
//!     let seen = seen.clone();
//!     after.run(move || seen.lock().unwrap().push(i));
//! }
//! after.flush().await; // every job queued so far has run
//! assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The most jobs taken from the queue at once.
const BATCH: usize = 64;

/// A queue of work to run after responses. Cheap to clone: clones share the queue (and so the
/// order of their jobs). See the [module docs](self).
#[derive(Clone, Default)]
pub struct AfterResponse(Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>);

impl std::fmt::Debug for AfterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterResponse")
    }
}

/// One queued job: run by the queue's task, or when dropped unrun.
struct Job(Option<Box<dyn FnOnce() + Send>>);

impl Job {
    /// Runs the job (dropping it does).
    fn run(self) {
        drop(self);
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl AfterResponse {
    /// An empty queue; its task starts with the first job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `job` when the poll of the enclosing [`RunAfter`] ends; without one, after the
    /// current task yields, on the queue's task (started on the current runtime when there is
    /// none yet, or its runtime has gone, as between tests). Outside a runtime, `job` runs now.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job = Job(Some(Box::new(job)));
        let Some(job) = defer(job) else {
            return;
        };
        let mut tx = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let job = match tx.as_ref() {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let (new_tx, rx) = mpsc::unbounded_channel();
                let _ = new_tx.send(job);
                *tx = Some(new_tx);
                // Spawned after the lock is let go: a runtime that is shutting down drops the
                // task at once, and with it the queue, which runs the job (which may queue).
                drop(tx);
                rt.spawn(drain(rx));
            }
            Err(_) => {
                // Not under the lock: the job may queue more.
                drop(tx);
                job.run();
            }
        }
    }

    /// Waits until every job queued before the call has run (at shutdown, so that the last
    /// requests' log lines and reports are out before the process ends).
    pub async fn flush(&self) {
        let (done, ran) = tokio::sync::oneshot::channel();
        self.run(move || {
            let _ = done.send(());
        });
        let _ = ran.await;
    }
}

thread_local! {
    /// Whether a [`RunAfter`] is being polled on this thread.
    static SCOPED: Cell<bool> = const { Cell::new(false) };
    /// The jobs queued during that poll.
    static DEFERRED: RefCell<Vec<Job>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `job` for the end of the enclosing [`RunAfter`]'s poll, or gives it back.
fn defer(job: Job) -> Option<Job> {
    if !SCOPED.get() {
        return Some(job);
    }
    DEFERRED.with_borrow_mut(|jobs| jobs.push(job));
    None
}

pin_project_lite::pin_project! {
    /// `inner`, with the [`AfterResponse`] jobs queued during each of its polls run when that
    /// poll ends, on the same thread. See the [module docs](self).
    ///
    /// ```
    /// use agw_tower::after::{AfterResponse, RunAfter};
    /// use std::sync::{Arc, Mutex};
    ///
    /// # async fn run() {
    /// let after = AfterResponse::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let job = {
    ///     let seen = seen.clone();
    ///     move || seen.lock().unwrap().push("after")
    /// };
    /// let work = async {
    ///     after.run(job);
    ///     seen.lock().unwrap().push("response");
    /// };
    /// RunAfter::new(work).await;
    /// assert_eq!(*seen.lock().unwrap(), ["response", "after"]);
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
    /// ```
    #[derive(Debug)]
    pub struct RunAfter<F> {
        #[pin]
        inner: F,
    }
}

impl<F> RunAfter<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        RunAfter { inner }
    }
}

impl<F: Future> Future for RunAfter<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if SCOPED.get() {
            // Nested: the outer poll runs the jobs.
            return self.project().inner.poll(cx);
        }
        let _scope = Scope::enter();
        self.project().inner.poll(cx)
    }
}

/// The poll of a [`RunAfter`]: runs the jobs queued meanwhile when it ends, even by a panic.
struct Scope;

impl Scope {
    fn enter() -> Scope {
        SCOPED.set(true);
        Scope
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        /// Leaves the scope even when a job panics.
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                SCOPED.set(false);
            }
        }
        let _leave = Leave;
        // Jobs may queue more: they run in this loop too, in order.
        while let Some(mut jobs) =
            DEFERRED.with_borrow_mut(|jobs| (!jobs.is_empty()).then(|| std::mem::take(jobs)))
        {
            for job in jobs.drain(..) {
                job.run();
            }
            // Keep the allocation for the next poll unless more were queued meanwhile.
            DEFERRED.with_borrow_mut(|queued| {
                if queued.is_empty() {
                    *queued = jobs;
                }
            });
        }
    }
}

async fn drain(mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for job in batch.drain(..) {
            job.run();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Box<dyn FnOnce() + Send>) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            })
        })
    }

    #[test]
    fn jobs_run_after_the_task_yields_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let after = AfterResponse::new();
            let order = Arc::new(Mutex::new(Vec::new()));
            for i in 0..200 {
                let order = order.clone();
                after.run(move || order.lock().unwrap().push(i));
            }
            // Nothing has run yet: the queuing task has not yielded.
            assert!(order.lock().unwrap().is_empty());
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
        });
    }

    #[test]
    fn outside_a_runtime_jobs_run_at_once() {
        let (n, job) = counter();
        let after = AfterResponse::new();
        after.run(job());
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn jobs_queued_when_the_runtime_ends_still_run_and_a_new_runtime_gets_a_new_task() {
        let (n, job) = counter();
        let after = AfterResponse::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            after.run(job());
            after.run(job());
        });
        // The queue's task never ran: dropping the runtime drops the queue, which runs them.
        drop(rt);
        assert_eq!(n.load(Ordering::SeqCst), 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            after.run(job());
            after.flush().await;
        });
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_job_may_queue_another() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (n, job) = counter();
        rt.block_on(async {
            let after = AfterResponse::new();
            let again = after.clone();
            let second = job();
            after.run(move || again.run(second));
            after.flush().await;
            // The second job was queued after the flush marker: flush again.
            after.flush().await;
        });
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // Outside a runtime the nested job runs inline, without deadlocking on the queue.
        let after = AfterResponse::new();
        let again = after.clone();
        let second = job();
        after.run(move || again.run(second));
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn under_run_after_jobs_run_when_the_poll_ends_in_order_with_the_jobs_they_queue() {
        let after = AfterResponse::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let push = |what: &'static str| {
            let order = order.clone();
            move || order.lock().unwrap().push(what)
        };
        let mut polls = 0;
        let fut = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                after.run(push("first"));
                let again = after.clone();
                let nested = push("queued by a job");
                after.run(move || again.run(nested));
                after.run(push("second"));
                // Nested: the outer poll runs the jobs.
                let mut inner = std::pin::pin!(RunAfter::new(std::future::ready(())));
                assert!(inner.as_mut().poll(cx).is_ready());
                order.lock().unwrap().push("poll");
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        let mut fut = std::pin::pin!(RunAfter::new(fut));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // No runtime: had the jobs not been deferred, they would have run at once.
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            *order.lock().unwrap(),
            ["poll", "first", "second", "queued by a job"]
        );
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        // Outside the scope again: a job runs at once (no runtime).
        after.run(push("outside"));
        assert_eq!(order.lock().unwrap().last(), Some(&"outside"));
    }

    #[test]
    fn a_panicking_job_leaves_the_scope_and_the_others_still_run() {
        let after = AfterResponse::new();
        let (n, job) = counter();
        let fut = {
            let after = after.clone();
            let job = job();
            async move {
                after.run(|| panic!("job failed"));
                after.run(job);
            }
        };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut fut = std::pin::pin!(RunAfter::new(fut));
            let _ = fut
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()));
        }));
        assert!(caught.is_err());
        // The job queued after the panicking one ran all the same (a job dropped unrun runs).
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // And the scope was left: outside one, a job runs at once.
        after.run(job());
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }
}
