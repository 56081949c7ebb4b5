//! The response guard: runs a [`Policy`](agw_core::guard::Policy) over what the model sends
//! back — streamed or not.
//!
//! For Messages and Completions routes:
//! - **streams** (`text/event-stream`) are guarded event by event with a
//!   [`StreamGuard`](agw_core::stream::StreamGuard): text deltas are held back by a small window
//!   (256 bytes by default) so matches split across deltas are found; masks are applied in the
//!   held text; a rejecting rule ends the stream with a provider-shaped error event. Every other
//!   event passes in order with its bytes unchanged, and nothing else is buffered.
//! - **JSON responses** are collected (up to the limit) and inspected like request bodies:
//!   masked in place, byte for byte, or replaced by the rule's provider-shaped error — which is
//!   what blocks Claude Code's non-streaming retry after a stream was cut off.
//!
//! To read what the provider sends, the layer asks for uncompressed responses (it removes
//! `Accept-Encoding` from guarded requests). A compressed stream it cannot read is cut off with
//! an error event rather than passed unguarded. Error responses (non-2xx) pass untouched.
//!
//! # Example
//!
//! ```
//! use agw_core::detect::Detector;
//! use agw_core::guard::{Policy, Rule};
//! use agw_tower::response::ResponseGuardLayer;
//! use axum::{Router, routing::post};
//!
//! let policy = Policy::builder()
//!     .rule(Rule::detectors("secrets", [Detector::AwsAccessKey]).mask())
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/v1/messages", post(|| async { "model reply" }))
//!     .layer(ResponseGuardLayer::new(policy));
//! ```

mod body;
mod layer;
mod outcome;
mod service;

pub use body::SseGuardBody;
pub use layer::ResponseGuardLayer;
pub use outcome::ResponseOutcome;
pub use service::{ResponseFuture, ResponseGuard};

/// The default hold-back window for streamed text, in bytes.
pub const DEFAULT_WINDOW: usize = 256;
