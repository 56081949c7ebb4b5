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
//! Every event is read. Its `data` must be one JSON object with no duplicate key, and an
//! Anthropic event's name must agree with its `type`; an event that fails this (trailing bytes,
//! invalid UTF-8, a lying name) ends the stream with an error event — it is never forwarded.
//! Comments, events without data and OpenAI's `[DONE]` pass as they are.
//!
//! Deltas are sorted into *channels* — text, reasoning and tool input — one per Anthropic
//! content block, per OpenAI choice (and tool call), per Responses output item:
//!
//! - **text** (`text_delta`; `choices[].delta.content` and `refusal` in every choice; legacy
//!   `choices[].text` and `completion`; `response.output_text.delta`) is matched across its
//!   deltas. A delta is held only while a match could still be growing into it: a lazy DFA
//!   built once per policy from every rule's patterns (and broader expressions for the
//!   detectors) finds the earliest position where a match could start and still be alive at
//!   the end of the text; everything before that goes out at once. `window` bounds the hold: a
//!   delta with at least `window` bytes of text after it goes regardless (a match longer than
//!   that which began in text already sent cannot be recalled: its unsent part is masked) —
//!   except a detector's key, token or private key block that has started and may still grow
//!   (a known prefix in the run of token characters ending the text, a key block not closed):
//!   it is held from its start until it ends, so a JWT or a PEM key read from `cat -n` output
//!   is masked exactly as in one piece, within [`MAX_OPEN_MATCH`] bytes (more fails closed).
//! - **reasoning**: signed reasoning (Anthropic `thinking_delta`s and the text a thinking
//!   block starts with) is held and matched the same way, and never modified, so thinking
//!   signatures stay valid: a mask rule's hit in it ends the stream. Reasoning without a
//!   signature (`reasoning_content`, `response.reasoning*` deltas, Mistral's thinking parts)
//!   is text of its own, masked.
//! - **tool input** (`input_json_delta`, `tool_calls[].function.arguments` in every choice,
//!   `response.function_call_arguments.delta`) is held, together with the call's start and
//!   every event after it, until the call completes (`content_block_stop`, `finish_reason`,
//!   the item's `.done` event) — clients run a tool when its block completes. Then the tool
//!   rules ([`ToolRule`](crate::guard::ToolRule)) and the text rules decide on the whole input
//!   (at most [`MAX_TOOL_INPUT`](crate::guard::MAX_TOOL_INPUT) bytes, more fails closed). A
//!   masked input goes out as one delta carrying the masked JSON, still valid JSON: masks are
//!   placed inside its string values only.
//!
//! Any other event with data (`message_start`, `content_block_start`, `response.completed`, an
//! event type agw has never seen) is inspected as a JSON document: every string that is not
//! an identifier, masked in place, tool calls checked. In a stream none of whose events agw
//! recognised so far (llama.cpp, TGI, Gemini, any JSON events), an event's strings are pieces
//! of texts continued by JSON path (`guard::leaves`), held back and masked
//! as text deltas are, at most 64 paths at once.
//!
//! - **mask** replaces each match when the text it starts in is decided, so a longer match
//!   still arriving (`credit card` after `credit ca`) wins over a shorter one, and any split of
//!   a text gives what the whole text gives.
//! - **reject** ends the stream with an error event in the client's dialect (`event: error`
//!   for Anthropic, `data: {"error":...}` for chat completions, an `error` event for
//!   Responses). Clients may then retry without streaming; the non-streaming response is
//!   guarded by [`Policy::inspect_response`](crate::guard::Policy::inspect_response) the same
//!   way, tool rules included.
//! - **audit** records the hit.
//!
//! Token log probabilities (chat chunks' `logprobs`, Responses deltas' `logprobs`, Gemini's
//! `logprobsResult`) are the text again in pieces no rule reads whole: agw-tower's response
//! guard refuses requests for them where text is masked or refused, and an event that carries
//! any ends the stream. Memory is bounded:
//! an event larger than the decoder's limit is an error, held text never exceeds the window
//! (or [`MAX_OPEN_MATCH`] for a secret still growing) plus one delta per channel, and all
//! events held at once at most [`MAX_HELD`] bytes.

mod events;
mod guard;
pub(crate) mod prefix;
mod sse;

pub use guard::{MAX_HELD, MAX_OPEN_MATCH, StreamGuard, StreamHit};
pub use sse::{SseDecoder, SseError};

/// Whether a request body asks for no stream: a JSON object whose top-level `stream` is
/// absent, `false` or `null` (any other value a lenient server may read as a stream). An SDK
/// that asked for no stream and gets one back hands the raw event stream to its caller as a
/// string (the Anthropic and OpenAI Python SDKs: nineteenth session's red team), where every
/// identifier, type and event name shows; the response guard refuses such an answer on the
/// prompt routes. Read only when an event stream comes back to a request the guard found
/// asking for none. A body that is no JSON object is `false`: agw cannot tell.
pub fn asks_for_no_stream(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => matches!(
            o.get("stream"),
            None | Some(serde_json::Value::Null | serde_json::Value::Bool(false))
        ),
        _ => false,
    }
}
