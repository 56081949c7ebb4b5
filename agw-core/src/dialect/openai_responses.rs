//! OpenAI Responses (`POST /v1/responses`, what Codex CLI speaks): paths, the model and usage
//! fields, and its stream error event. Errors outside a stream use the chat shape
//! ([`openai_chat::error_json`](super::openai_chat::error_json)).
//!
//! # Example
//!
//! ```
//! use agw_core::dialect::{openai_responses, ErrorBody, ErrorKind};
//!
//! let ev = openai_responses::error_event(&ErrorBody::new(ErrorKind::GatewayTimeout, "slow"));
//! assert!(ev.starts_with("event: error\ndata: {\"type\":\"error\""));
//! ```

use super::ErrorBody;
use crate::route::RouteKind;

/// Endpoints and their route kinds.
pub const PATHS: &[(&str, RouteKind)] = &[
    ("/v1/responses", RouteKind::Responses),
    // A stored response (or its events, with `stream=true`) and its input items, read back.
    ("/v1/responses/{id}", RouteKind::StoredResponses),
    ("/v1/responses/{id}/input_items", RouteKind::StoredResponses),
];

/// The request field naming the model.
pub const MODEL_FIELD: &str = "model";

/// Where usage is in a response object (`usage.input_tokens`, `usage.output_tokens`).
pub const USAGE_PATH: &[&str] = &["usage"];

/// The Responses stream's `error` event: `{"type":"error","code":...,"message":...,"param":null}`.
pub fn error_event(err: &ErrorBody) -> String {
    let message = serde_json::Value::from(err.message());
    let code = serde_json::Value::from(err.code());
    format!(
        "event: error\ndata: {{\"type\":\"error\",\"code\":{code},\"message\":{message},\"param\":null}}\n\n"
    )
}
