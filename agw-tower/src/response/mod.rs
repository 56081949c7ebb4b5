//! The response guard: runs a [`Policy`](agw_core::guard::Policy) — text rules and tool-call
//! rules — over what the model sends back, streamed or not.
//!
//! What is read follows the route's [`ResponseReading`](agw_core::route::ResponseReading):
//! every kind but `Embeddings` (vectors) and `Unguarded` (an opt-out) is read, because any JSON
//! response may carry text a model wrote once providers store their output. Whatever the
//! status:
//! - **streams** (`text/event-stream`, any case, any parameters) are read event by event with a
//!   [`StreamGuard`](agw_core::stream::StreamGuard) for the route's dialect: text is held back
//!   only while it could still become a match (at most the window, 256 bytes by default), tool
//!   calls until they are complete and checked, reasoning is read but never changed; masks are
//!   applied in the held text; a rejecting rule, an event agw cannot read, or a line that is
//!   no field a provider's stream has (a JSON body labelled as a stream) ends the stream with an
//!   error event in the client's dialect. Only 2xx streams are read this way.
//! - **JSON responses** (`application/json` or `application/*+json`, any case) are collected
//!   (up to the limit) and inspected whole: masked in place, byte for byte, or replaced by the
//!   rule's provider-shaped error — which is what blocks Claude Code's non-streaming retry
//!   after a stream was cut off. A body that does not parse, or has a duplicate key, is refused.
//! - **JSON lines** — every body of a `BatchResults` route, whatever its content type, and a
//!   body labelled JSON lines elsewhere — are collected (up to the limit) and inspected line by
//!   line: masked inside each line, rejected whole, refused when a line is not a JSON object.
//! - **anything else** is refused with a provider-shaped 502 (an upstream error status is
//!   kept) on the routes whose responses are model output (prompt routes, stored responses and
//!   completions): a response agw cannot read is never forwarded. On the other routes
//!   (passthrough paths, model listings) it is a file or the like and passes untouched,
//!   unbuffered. An empty body there passes too; HEAD responses are not read.
//!
//! Token log probabilities repeat the response's text in pieces no rule reads one at a time (a
//! masked card would come back token by token), so where the policy masks or refuses text, a
//! request that asks for them (`logprobs`, `top_logprobs`, Responses' `include` of
//! `message.output_text.logprobs`) is refused with a 400 before it is sent; so is one asking
//! for spoken audio (chat's `modalities: ["audio"]`, `audio`), whose transcript is guarded but
//! whose sound says the same unread. This reads the
//! body the body stage collected ([`Collected`](crate::limits::Collected)); the stack builder
//! collects it for such a policy.
//!
//! To read what the provider sends, the layer asks for uncompressed responses (it removes
//! `Accept-Encoding` from guarded requests); a compressed stream is refused. Every inspected
//! response carries a [`ResponseOutcome`] extension saying what the guard did.
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
pub(crate) use service::hides_text;
pub use service::{ResponseFuture, ResponseGuard};

/// In the extensions of the error a response guard answers instead of a JSON response it
/// refused: that response's decoded body, which the provider billed all the same. The usage
/// layer counts its usage (Claude Code re-sends a request whose stream was refused without
/// `stream`, a few times: each refusal is billed).
#[derive(Debug, Clone)]
pub struct ReplacedResponse(pub bytes::Bytes);

/// The default hold-back window for streamed text, in bytes.
pub const DEFAULT_WINDOW: usize = 256;
