//! Guarding streamed responses: an incremental server-sent-events decoder and a stream guard
//! that masks or cuts off text deltas as they pass.
//!
//! # Example
//!
//! ```
//! use agw_core::api::Api;
//! use agw_core::detect::Detector;
//! use agw_core::guard::{Policy, Rule};
//! use agw_core::stream::{SseDecoder, StreamGuard};
//!
//! let policy = Policy::builder()
//!     .rule(Rule::detectors("cards", [Detector::CreditCard]).mask())
//!     .build()?;
//! let mut guard = StreamGuard::new(policy, Api::Anthropic, 64);
//! let mut decoder = SseDecoder::new(1 << 20);
//! let delta = |t: &str| format!(
//!     "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n"
//! );
//! let stream = [delta("card 4111 1111 "), delta("1111 1111 ok"),
//!     "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".into()];
//! let (mut events, mut out) = (Vec::new(), Vec::new());
//! for chunk in &stream {
//!     decoder.push(chunk.as_bytes(), &mut events)?;
//! }
//! for e in events.drain(..) {
//!     guard.event(e, &mut out);
//! }
//! guard.finish(&mut out);
//! let text: String = out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
//! assert!(text.contains("card <CREDIT_CARD>") && !text.contains("4111"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it works, and its limits
//!
//! Text deltas (Anthropic `text_delta`, OpenAI `choices[0].delta.content`) are held back until
//! `window` bytes of newer text have arrived, or the block ends — so a match split across deltas
//! is still seen whole, at the cost of that much delay before text reaches the client. Matches
//! are found on normalized text (invisible characters removed, NFKC), like in requests. Events
//! that are not text deltas keep their place in the stream and their bytes; a delta is
//! re-serialized only when masking changed it.
//!
//! - **mask** replaces each match as the text it starts in is sent — by then at least `window`
//!   bytes of newer text are known, so a longer match still arriving (`credit card` after
//!   `credit ca`) wins over a shorter one, and any split of a text gives what the whole text
//!   gives. A match longer than the window that began in text already sent cannot be
//!   recalled: its unsent part is masked.
//! - **reject** ends the stream with a provider-shaped error event (`event: error` for
//!   Anthropic). Clients may then retry without streaming; the non-streaming response is
//!   guarded by [`Policy::inspect_response`](crate::guard::Policy::inspect_response) the same
//!   way.
//! - **audit** records the hit.
//!
//! Thinking deltas and tool-call argument deltas pass unguarded. Memory is bounded: an event
//! larger than the decoder's limit is an error, and held text never exceeds the window plus one
//! delta.

mod events;
mod guard;
pub(crate) mod prefix;
mod sse;

pub use guard::{StreamGuard, StreamHit};
pub use sse::{SseDecoder, SseError};
