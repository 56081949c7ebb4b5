//! Prompt guards: rules compiled once into an immutable [`Policy`] that inspects request bodies.
//!
//! A policy reads the text a model reads — system prompt, message text, tool results, tool-call
//! inputs — and decides: forward the body as it is, forward it with matches masked, or reject it
//! with a provider-shaped error.
//!
//! # Example
//!
//! ```
//! use agw_core::detect::Detector;
//! use agw_core::guard::{Decision, Policy, Rule};
//! use agw_core::route::RouteKind;
//!
//! let policy = Policy::builder()
//!     .rule(Rule::regex("no-cards-talk", ["credit card"]).reject("Rejected due to inappropriate content"))
//!     .rule(Rule::detectors("secrets", [Detector::AwsAccessKey]).mask())
//!     .build()?;
//!
//! let body = br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLE"}]}"#;
//! let verdict = policy.inspect(RouteKind::Messages, body)?;
//! match verdict.decision() {
//!     Decision::Rewrite(masked) => assert_eq!(
//!         masked.as_slice(),
//!         br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"key <AWS_ACCESS_KEY>"}]}"#,
//!     ),
//!     other => panic!("{other:?}"),
//! }
//! assert_eq!(verdict.hits()[0].path, "messages[0].content");
//!
//! let body = br#"{"messages":[{"role":"user","content":"What is a \u0063redit card?"}]}"#;
//! assert!(matches!(policy.inspect(RouteKind::Messages, body)?.decision(), Decision::Reject(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is matched
//!
//! Text is matched after JSON unescaping, with invisible and format characters removed and NFKC
//! normalisation applied (see [`json`](crate::json)); case folding applies where a rule asks for
//! it. The text blocks of one message are matched as one text, so a phrase split across two
//! adjacent blocks is found. `thinking` and `redacted_thinking` blocks, images and other binary
//! sources are neither read nor modified. Unknown fields and block types pass untouched; the
//! `text` and `content` of an unknown block type are read.
//!
//! Every prompt-bearing [`RouteKind`](crate::route::RouteKind) is read in its own shape:
//! Messages and count tokens, message batches (`requests[].params`, each request a conversation
//! of its own), chat completions, legacy completions (`prompt`, `suffix`), Responses
//! (`instructions`, `input` items), embeddings (`input`). A passthrough body is read
//! generically: every string of a JSON document, object keys included, as [`Field::Messages`];
//! a body that is not JSON is an [`InspectError`]. In JSON the model reads as data (tool inputs,
//! tool results) object keys are text as well, matched and masked like values.
//!
//! Keys agw reads may not appear twice in one object, and are compared as a case-insensitive
//! parser such as Go's `encoding/json` compares them (`MESSAGES` is `messages`, so the two
//! together are a duplicate): a server that reads a key agw skipped would read unguarded text.
//!
//! # Decisions
//!
//! Any matching `reject` rule rejects (the first one found decides the message); otherwise
//! `mask` matches are replaced; `audit` matches are reported in every case.
//!
//! A rejecting rule rejects only for a hit in the *final prompt*: the last block of the latest
//! user message when it is a text block, or that whole message otherwise. A hit elsewhere in text
//! the client wrote (earlier blocks, earlier user or tool messages) replaces each string it
//! touches with `[removed by agw: rule NAME]` instead, and the request goes on: clients such as
//! Claude Code keep a rejected prompt in the conversation, and the session must survive it
//! without the rejected text ever being forwarded. So does a hit in an earlier assistant turn
//! (one a user turn follows): what the model once said comes back in every later request. The
//! system prompt, and an assistant message the client puts last (a prefill), are never edited
//! this way; hits there reject. A [`Verdict`] names
//! the rule, the action and the field path of each hit — never the matched text, so verdicts
//! can be logged.
//!
//! # Untrusted input
//!
//! Bodies are validated while scanned; invalid UTF-8 or JSON, the wrong shape, or nesting deeper
//! than [`json::MAX_DEPTH`](crate::json::MAX_DEPTH) is an [`InspectError`] (callers reject it —
//! an uninspectable body is never forwarded). Scanning is linear in the body size; regular
//! expressions use the `regex` crate (no backtracking) with compiled-size limits
//! ([`REGEX_SIZE_LIMIT`]).

mod clean;
mod containers;
mod encoded;
mod engine;
pub(crate) mod extract;
mod files;
pub(crate) mod keys;
mod kinds;
pub(crate) mod leaves;
mod lines;
mod policy;
pub(crate) mod response;
mod rule;
mod seen;
pub mod tool;
pub(crate) mod widen;

pub use engine::{REGEX_DFA_LIMIT, REGEX_SIZE_LIMIT};

/// Forgets the conversation units this thread's inspections found clean and kept (see
/// `guard/seen.rs`), so that the next inspection reads every unit: for benchmarks measuring
/// a body read for the first time.
#[doc(hidden)]
pub fn forget_clean_units() {
    seen::forget();
}
pub use policy::{
    Decision, Hit, InspectError, Policy, PolicyBuilder, PolicyError, Rejection, TextMatch, Verdict,
};
pub use rule::{Action, ActionKind, Field, Fields, Matcher, Rule, Scope};
pub use tool::{MAX_TOOL_INPUT, ToolAction, ToolHit, ToolRule};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_kinds;
