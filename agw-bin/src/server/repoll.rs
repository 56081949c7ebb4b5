//! A connection's future polled again at once when it woke itself while being polled.
//!
//! hyper's server hands a request body to the service through a channel whose sender is the
//! connection's own dispatcher. agw reads the body inside the service (the request guard reads
//! it whole), so taking each chunk wakes the task that is being polled. Tokio treats a task
//! woken during its own poll as yielding: it goes to the back of the run queue and a parked
//! worker is woken to share the work. That worker wakes (a futex), finds the connection's task
//! and runs the rest of the request on the other core: every request hops threads once or
//! twice, which costs system calls and cold caches (and minproxy, whose body is read by the
//! upstream connection's task, never pays it).
//!
//! [`Repoll`] gives the inner future a waker of its own. A wake that comes while the inner
//! future is being polled only marks it for another poll, which follows at once (a few times
//! at most, and not once the task has used up tokio's budget, so a future that yields on
//! purpose still yields); any other wake goes to the task.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// How many times in a row a future that woke itself is polled again before its task yields.
const REPOLLS: usize = 4;

/// Not being polled: a wake goes to the task.
const IDLE: u8 = 0;
/// Being polled: a wake asks for another poll.
const POLLING: u8 = 1;
/// Woken while being polled.
const WOKEN: u8 = 2;

pin_project_lite::pin_project! {
    /// `inner`, polled again at once when it wakes itself during a poll. See the module docs.
    pub(crate) struct Repoll<F> {
        #[pin]
        inner: F,
        relay: Arc<Relay>,
        waker: Waker,
    }
}

impl<F> Repoll<F> {
    pub(crate) fn new(inner: F) -> Self {
        let relay = Arc::new(Relay {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        Repoll {
            inner,
            waker: Waker::from(relay.clone()),
            relay,
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        this.relay.set_task(cx.waker());
        let mut inner_cx = Context::from_waker(this.waker);
        for _ in 0..REPOLLS {
            this.relay.state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = this.inner.as_mut().poll(&mut inner_cx) {
                this.relay.state.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            let done = this.relay.state.compare_exchange(
                POLLING,
                IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            if done.is_ok() {
                return Poll::Pending;
            }
            // Out of tokio's budget for this poll: its resources would only say so again.
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Still waking itself: let the task yield to others.
        this.relay.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The inner future's waker: the task's waker, unless the inner future is being polled.
struct Relay {
    state: AtomicU8,
    task: Mutex<Option<Waker>>,
}

impl Relay {
    fn set_task(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        match task.as_ref() {
            Some(t) if t.will_wake(waker) => {}
            _ => *task = Some(waker.clone()),
        }
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => break,
                POLLING => WOKEN,
                _ => return,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes that reach the task.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(waker))
    }

    fn task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_self_wake_is_polled_again_at_once_without_waking_the_task() {
        let mut polls = 0;
        let fut = std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        let (count, waker) = task();
        let mut fut = std::pin::pin!(Repoll::new(fut));
        let out = poll(fut.as_mut(), &waker);
        assert_eq!(out, Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields() {
        let mut polls = 0;
        let fut = std::future::poll_fn(|cx| {
            polls += 1;
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let (count, waker) = task();
        let mut fut = std::pin::pin!(Repoll::new(fut));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the task is woken to run again"
        );
        assert!(poll(fut.as_mut(), &waker).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task() {
        let stored: Arc<Mutex<Option<Waker>>> = Arc::default();
        let mut polls = 0;
        let fut = std::future::poll_fn({
            let stored = stored.clone();
            move |cx| {
                polls += 1;
                *stored.lock().unwrap() = Some(cx.waker().clone());
                if polls == 2 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        });
        let (count, waker) = task();
        let mut fut = Box::pin(Repoll::new(fut));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "no wake yet");
        // The waker the inner future kept, woken later from another thread.
        let inner = stored.lock().unwrap().take().unwrap();
        std::thread::spawn(move || inner.wake()).join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(fut.as_mut(), &waker).is_ready());
    }

    #[test]
    fn a_new_task_waker_replaces_the_old_one() {
        let fut = std::future::pending::<()>();
        let (first, first_waker) = task();
        let (second, second_waker) = task();
        let mut fut = Box::pin(Repoll::new(fut));
        assert!(poll(fut.as_mut(), &first_waker).is_pending());
        assert!(poll(fut.as_mut(), &second_waker).is_pending());
        fut.waker.wake_by_ref();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
