//! The request guard: runs a [`Policy`](agw_core::guard::Policy) over each prompt-carrying
//! request before it reaches the inner service.
//!
//! For routes that carry prompts (Messages, CountTokens, batches, completions, Responses,
//! embeddings; see [`classify`](crate::classify)) — and for a body on any other route except an
//! explicit [`Unguarded`](agw_core::route::RouteKind::Unguarded) one, which the policy inspects
//! generically — the body is read once within the [`BodyLimits`](crate::limits::BodyLimits)
//! (32 MiB and 60 s by default, an optional budget shared across requests), decoded if it has a
//! `Content-Encoding` (gzip, deflate, br, zstd), and inspected. The bytes are left in a
//! [`Collected`](crate::limits::Collected) extension, so the provider's model policy does not
//! read them again. Then:
//!
//! - **allow**: the bytes go on as received, decoded if they came compressed (without their
//!   `Content-Encoding`: what was inspected is what is sent);
//! - **mask**: the masked body goes on, uncompressed, with a new `Content-Length`;
//! - **reject**: the inner service is not called; the client gets the rule's status and
//!   message in its provider's error shape;
//! - a body that cannot be inspected (not JSON, the wrong shape, an unknown encoding) gets a
//!   400, an oversized one a 413 — never forwarded unguarded.
//!
//! Requests without a body, and everything when the policy has no rules, stream through
//! untouched.
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
pub const DEFAULT_LIMIT: usize = crate::limits::DEFAULT_MAX_BODY_BYTES;

/// What the guard did with a request; inserted into request and response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardReport {
    /// The outcome.
    pub outcome: GuardOutcome,
    /// Names of the rules that matched (never the matched text).
    pub rules: Vec<Arc<str>>,
    /// The request's model, when the body was read.
    pub model: Option<String>,
    /// The request's output cap, completions and `stream`, read with `model` (see
    /// [`agw_core::usage::request_shape`]); the default (no cap, one, no stream) when the
    /// body was not read.
    pub shape: agw_core::usage::RequestShape,
    /// A rule matched text in the request's model name: a log must not show it.
    pub matched_model: bool,
    /// A rule matched text in the request's URL: a log must not show it.
    pub matched_url: bool,
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
    /// Rejected: the body was not received in time.
    TimedOut,
    /// Rejected: the shared budget for buffered bodies is used up.
    Busy,
    /// Rejected before inspection: the path or method is refused.
    Refused,
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
            GuardOutcome::TimedOut => "timeout",
            GuardOutcome::Busy => "busy",
            GuardOutcome::Refused => "refused",
        }
    }
}
