//! Work that follows a response, run once its last bytes are written.
//!
//! What a response's end triggers — the usage report, its hooks (the limiter's settle), the
//! metrics, the access-log line — would otherwise run inside the connection task's poll when
//! the body ends, which is before the server writes the body's last bytes: the client would
//! wait for the gateway's bookkeeping. [`AfterResponse`] queues that work to one task instead.
//! Woken from the connection's task, that task runs as soon as the connection's task has
//! written and yielded (tokio runs the task woken last on a worker next), so the client has
//! the response first and the work is done a few microseconds later.
//!
//! Jobs run in the order they were queued, so a log line queued after the usage report sees
//! it. A job that cannot be queued (no tokio runtime) runs at once; one still queued when its
//! runtime shuts down runs when the queue is dropped: nothing is lost.
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

use std::sync::{Arc, Mutex};
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

    /// Runs `job` after the current task yields, on the queue's task (started on the current
    /// runtime when there is none yet, or its runtime has gone, as between tests). Outside a
    /// runtime, `job` runs now.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let job = Job(Some(Box::new(job)));
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
}
