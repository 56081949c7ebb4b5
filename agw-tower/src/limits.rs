//! Bounds on reading request bodies: size, time, and a budget shared across requests.
//!
//! Every layer that reads a body (the request guard, the provider's model policy) reads it
//! through the same [`BodyLimits`], and only once per request: the first reader leaves the
//! bytes in a [`Collected`] request extension for the next.
//!
//! # Example
//!
//! ```
//! use agw_tower::limits::{BodyBudget, BodyLimits};
//! use std::time::Duration;
//!
//! let budget = BodyBudget::new(256 << 20); // at most 256 MiB buffered across all requests
//! let limits = BodyLimits::new(32 << 20)
//!     .read_timeout(Duration::from_secs(60))
//!     .budget(budget.clone());
//! assert_eq!(limits.max_bytes(), 32 << 20);
//! assert_eq!(budget.available(), 256 << 20);
//! ```

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The default body limit: 32 MiB, what Anthropic accepts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// The default time a client has to send a whole request body.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How request bodies may be read.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    max_bytes: usize,
    read_timeout: Option<Duration>,
    budget: Option<BodyBudget>,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY_BYTES)
    }
}

impl BodyLimits {
    /// At most `max_bytes` per body (received and decoded), no read timeout (it needs a tokio
    /// runtime with its timer enabled; [`StackConfig`](crate::stack::StackConfig) sets
    /// [`DEFAULT_READ_TIMEOUT`]), no shared budget.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            read_timeout: None,
            budget: None,
        }
    }

    /// Sets the largest body, in bytes (a larger one gets a 413).
    pub fn max_bytes_limit(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets how long a client may take to send a body (a slower one gets a 408). Needs a tokio
    /// runtime with its timer enabled.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// Lets clients take as long as they like (not for untrusted clients).
    pub fn no_read_timeout(mut self) -> Self {
        self.read_timeout = None;
        self
    }

    /// Shares `budget` for buffered bytes with every layer and request that uses it.
    pub fn budget(mut self, budget: BodyBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The largest body.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The read timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The shared budget, if any.
    pub fn shared_budget(&self) -> Option<&BodyBudget> {
        self.budget.as_ref()
    }
}

/// A budget of bytes that all requests' buffered bodies share. When it is used up, further
/// requests that need their body buffered get a retryable 529 until memory is freed.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    inner: Arc<Budget>,
}

#[derive(Debug)]
struct Budget {
    total: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            inner: Arc::new(Budget {
                total: bytes,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// Bytes not held by any request now.
    pub fn available(&self) -> usize {
        self.inner
            .total
            .saturating_sub(self.inner.used.load(Ordering::Acquire))
    }

    /// An empty reservation, grown as bytes arrive.
    pub(crate) fn permit(&self) -> BudgetPermit {
        BudgetPermit {
            budget: self.inner.clone(),
            bytes: 0,
        }
    }
}

/// Bytes reserved from a [`BodyBudget`], given back when dropped.
#[derive(Debug)]
pub struct BudgetPermit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl BudgetPermit {
    /// Reserves `n` more bytes; `false` (and nothing reserved) when the budget is short.
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let b = &self.budget;
        let mut used = b.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(n).filter(|x| *x <= b.total) else {
                return false;
            };
            match b
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.bytes += n;
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }
}

impl BudgetPermit {
    /// Gives back all but `n` of the bytes reserved (what is no longer held: a compressed body
    /// and its intermediate layers once decoded).
    pub(crate) fn shrink_to(&mut self, n: usize) {
        if let Some(back) = self.bytes.checked_sub(n).filter(|b| *b > 0) {
            self.budget.used.fetch_sub(back, Ordering::AcqRel);
            self.bytes = n;
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A request body read whole, left in the request extensions by the layer that read it so that
/// no later layer reads or decodes it again. The request's body is then exactly `plain`.
///
/// A layer that changes the body (masking, a model rewrite) replaces it with the new bytes.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The body as read, decoded from its `Content-Encoding`: the bytes inspected and the bytes
    /// forwarded (without the coding: what is inspected is what goes on).
    pub plain: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_given_back() {
        let budget = BodyBudget::new(100);
        let mut a = budget.permit();
        let mut b = budget.clone().permit();
        assert!(a.grow(60));
        assert!(!b.grow(41));
        assert!(b.grow(40));
        assert_eq!(budget.available(), 0);
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(budget.available(), 60);
        drop(b);
        assert_eq!(budget.available(), 100);
    }
}
