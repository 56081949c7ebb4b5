//! The pure core of agw, a guarding AI gateway: route kinds, provider specs, model policy and
//! the prompt-guard engine — data and functions over bytes and `http` types, with no I/O, no
//! async runtime and no tower.
//!
//! # Example
//!
//! ```
//! use agw_core::guard::{Decision, Policy, Rule};
//! use agw_core::route::{RouteKind, RouteTable};
//!
//! let routes = RouteTable::claude_code();
//! let policy = Policy::builder()
//!     .rule(Rule::regex("credit-card", ["credit card"]).reject("Rejected due to inappropriate content"))
//!     .build()?;
//!
//! let kind = routes.classify("/v1/messages?beta=true");
//! let body = br#"{"model":"claude-opus-4-6","messages":[{"role":"user","content":"What is a credit card?"}]}"#;
//! match policy.inspect(kind, body)?.decision() {
//!     Decision::Reject(r) => assert_eq!(r.message, "Rejected due to inappropriate content"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//!
//! - [`route`]: which API a request speaks ([`route::RouteKind`]) and the path table.
//! - [`provider`]: providers as data — base URL, how the key is sent, credentials mode.
//! - [`model`]: pin, aliases and allow-lists, editing only the `model` value.
//! - [`guard`]: rules compiled into a [`guard::Policy`] that inspects request (and response)
//!   bodies and decides allow, mask or reject — byte-faithfully.
//! - [`detect`]: the validated built-in detectors (cards, SSNs, IBANs, keys, tokens, ...).
//! - [`stream`]: guarding streamed (SSE) responses.
//! - [`dialect`]: one module per wire dialect — paths, error bodies and stream error events,
//!   model, usage and credentials; [`api`] is its compatibility facade for error bodies.
//! - [`edit`]: byte-range edits; [`json`]: the scanner's
//!   error type and limits.
#![warn(missing_docs)]

pub mod api;
pub mod detect;
pub mod dialect;
pub mod edit;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod json;
pub mod model;
pub mod price;
pub mod provider;
pub mod route;
pub mod stream;
pub mod usage;
