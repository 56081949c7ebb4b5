//! What the response guard did to one response, readable by an access log.

use agw_core::guard::{ActionKind, Hit};
use agw_core::stream::StreamHit;
use std::sync::{Arc, Mutex};

/// What the response guard did to one response: the strongest action taken and the rules that
/// matched. [`ResponseGuard`](super::ResponseGuard) puts one in the extensions of every
/// response it inspects. For a stream it keeps changing while the body is read, so read it
/// when the body is done (clones share the state).
///
/// # Example
///
/// ```
/// use agw_tower::response::ResponseOutcome;
///
/// let outcome = ResponseOutcome::default();
/// assert_eq!(outcome.action(), "allow");
/// assert!(outcome.rules().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResponseOutcome {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// 0 allow, 1 audit, 2 mask, 3 reject.
    level: u8,
    rules: Vec<Arc<str>>,
}

fn level(action: ActionKind) -> u8 {
    match action {
        ActionKind::Audit => 1,
        ActionKind::Mask => 2,
        ActionKind::Reject => 3,
    }
}

impl ResponseOutcome {
    /// The strongest action taken: `allow`, `audit`, `mask` or `reject` (a response agw could
    /// not inspect and refused counts as `reject`, rule `agw:unreadable`).
    pub fn action(&self) -> &'static str {
        match self.lock().level {
            0 => "allow",
            1 => "audit",
            2 => "mask",
            _ => "reject",
        }
    }

    /// The names of the rules that matched, each once, in the order first seen.
    pub fn rules(&self) -> Vec<Arc<str>> {
        self.lock().rules.clone()
    }

    pub(crate) fn record(&self, rule: &Arc<str>, action: ActionKind) {
        let mut s = self.lock();
        s.level = s.level.max(level(action));
        if !s.rules.iter().any(|r| r == rule) {
            s.rules.push(rule.clone());
        }
    }

    pub(crate) fn record_hits(&self, hits: &[Hit]) {
        for h in hits {
            self.record(&h.rule, h.action);
        }
    }

    pub(crate) fn record_stream(&self, hits: &[StreamHit]) {
        for h in hits {
            self.record(&h.rule, h.action);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
