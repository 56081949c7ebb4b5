//! OpenAI chat completions (and legacy completions, embeddings; OpenAI-compatible servers):
//! paths, error shapes, model, usage and credentials.
//!
//! # Example
//!
//! ```
//! use agw_core::dialect::{openai_chat, ErrorBody, ErrorKind};
//!
//! let err = ErrorBody::new(ErrorKind::InvalidRequest, "no");
//! assert_eq!(
//!     openai_chat::error_json(&err),
//!     r#"{"error":{"message":"no","type":"invalid_request_error","param":null,"code":"invalid_request"}}"#,
//! );
//! ```

use super::{ErrorBody, ErrorKind};
use crate::provider::AuthScheme;
use crate::route::RouteKind;

/// Endpoints and their route kinds (Responses has its own module for its shapes, but shares
/// these errors; its paths are [`openai_responses::PATHS`](super::openai_responses::PATHS)).
pub const PATHS: &[(&str, RouteKind)] = &[
    ("/v1/chat/completions", RouteKind::Completions),
    ("/v1/completions", RouteKind::LegacyCompletions),
    ("/v1/embeddings", RouteKind::Embeddings),
    // Stored completions (`store: true`), read back.
    ("/v1/chat/completions/{id}", RouteKind::StoredCompletions),
    (
        "/v1/chat/completions/{id}/messages",
        RouteKind::StoredCompletions,
    ),
];

/// Endpoints whose answer is a credential, or opens a session that then runs between the
/// client and the provider, or that manage credentials: Realtime (client secrets, sessions,
/// WebRTC calls — the conversation then goes to OpenAI directly, with a short-lived key),
/// ChatKit sessions (a client secret), the Admin API (`/v1/organization/...`: admin and
/// project keys, service accounts), and Azure OpenAI's Realtime paths. See
/// [`Api::hands_out_credentials`](super::Api::hands_out_credentials).
pub const CREDENTIAL_PATHS: &[&str] = &[
    "/v1/realtime",
    "/v1/chatkit",
    "/v1/organization",
    "/openai/realtime",
    "/openai/realtimeapi",
    "/openai/v1/realtime",
];

/// The request field naming the model.
pub const MODEL_FIELD: &str = "model";

/// Where usage is in a completion (`usage.prompt_tokens`, `usage.completion_tokens`).
pub const USAGE_PATH: &[&str] = &["usage"];

/// OpenAI keys travel in `Authorization: Bearer`.
pub const AUTH: AuthScheme = AuthScheme::Bearer;

/// The `error.type` for a kind.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest
        | ErrorKind::NotFound
        | ErrorKind::MethodNotAllowed
        | ErrorKind::RequestTimeout
        | ErrorKind::RequestTooLarge
        | ErrorKind::Authentication
        | ErrorKind::Forbidden => "invalid_request_error",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::Overloaded => "server_error",
        ErrorKind::BadGateway | ErrorKind::GatewayTimeout | ErrorKind::Internal => "api_error",
    }
}

/// `{"error":{"message":...,"type":...,"param":null,"code":...}}`
pub fn error_json(err: &ErrorBody) -> String {
    let message = serde_json::Value::from(err.message());
    let ty = error_type(err.kind());
    let code = serde_json::Value::from(err.code());
    format!(r#"{{"error":{{"message":{message},"type":"{ty}","param":null,"code":{code}}}}}"#)
}

/// A `data:` event with the error body (what the OpenAI SDKs raise on mid-stream).
pub fn error_event(err: &ErrorBody) -> String {
    format!("data: {}\n\n", error_json(err))
}
