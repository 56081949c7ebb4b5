//! The request guard: runs a [`Policy`](agw_core::guard::Policy) over each prompt-carrying
//! request before it reaches the inner service.
//!
//! For routes that carry prompts (Messages, CountTokens, Completions; see
//! [`classify`](crate::classify)) the body is collected up to a limit (32 MiB by default, what
//! Anthropic accepts), decoded if it has a `Content-Encoding` (gzip, deflate, br, zstd), and
//! inspected. Then:
//!
//! - **allow**: the original bytes go on, exactly as received (still compressed, if they were);
//! - **mask**: the masked body goes on, uncompressed, with a new `Content-Length`;
//! - **reject**: the inner service is not called; the client gets the rule's status and
//!   message in its provider's error shape;
//! - a body that cannot be inspected (not JSON, the wrong shape, an unknown encoding) gets a
//!   400, an oversized one a 413 — never forwarded unguarded.
//!
//! Other routes stream through untouched, as does everything when the policy has no rules.
//! Every response carries a [`GuardReport`] extension for logging.
//!
//! # Example
//!
//! ```
//! use agw_core::guard::{Policy, Rule};
//! use agw_tower::guard::RequestGuardLayer;
//! use axum::{Router, routing::post};
//!
//! let policy = Policy::builder()
//!     .rule(Rule::regex("cards", ["credit card"]).reject("Rejected due to inappropriate content"))
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/v1/messages", post(|| async { "model reply" }))
//!     .layer(RequestGuardLayer::new(policy));
//! ```

mod layer;
mod service;

pub use crate::future::ResponseFuture;
pub use layer::RequestGuardLayer;
pub use service::RequestGuard;

use std::sync::Arc;

/// The default body limit: 32 MiB, what Anthropic accepts.
pub const DEFAULT_LIMIT: usize = 32 << 20;

/// What the guard did with a request; inserted into request and response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardReport {
    /// The outcome.
    pub outcome: GuardOutcome,
    /// Names of the rules that matched (never the matched text).
    pub rules: Vec<Arc<str>>,
    /// The request's model, when the body was read.
    pub model: Option<String>,
}

/// The guard's outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardOutcome {
    /// Not inspected: a route without prompts, or a policy without rules.
    Skipped,
    /// Inspected; no rule matched.
    Allowed,
    /// Only audit rules matched; forwarded unchanged.
    Audited,
    /// Forwarded with masked spans.
    Masked,
    /// Rejected by a rule.
    Rejected,
    /// Rejected: the body could not be inspected.
    Invalid,
    /// Rejected: the body is over the limit.
    TooLarge,
}

impl GuardOutcome {
    /// A short lowercase name for logs.
    pub fn name(self) -> &'static str {
        match self {
            GuardOutcome::Skipped => "skip",
            GuardOutcome::Allowed => "allow",
            GuardOutcome::Audited => "audit",
            GuardOutcome::Masked => "mask",
            GuardOutcome::Rejected => "reject",
            GuardOutcome::Invalid => "invalid",
            GuardOutcome::TooLarge => "too_large",
        }
    }
}
