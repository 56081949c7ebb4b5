//! Anthropic Messages (and count_tokens, batches, legacy complete): paths, error shapes, model,
//! usage and credentials.
//!
//! # Example
//!
//! ```
//! use agw_core::dialect::{anthropic, ErrorBody, ErrorKind};
//!
//! let err = ErrorBody::new(ErrorKind::Overloaded, "agw is busy");
//! assert_eq!(
//!     anthropic::error_json(&err),
//!     r#"{"type":"error","error":{"type":"overloaded_error","message":"agw is busy"}}"#,
//! );
//! ```

use super::{ErrorBody, ErrorKind};
use crate::provider::AuthScheme;
use crate::route::RouteKind;

/// Endpoints and their route kinds.
pub const PATHS: &[(&str, RouteKind)] = &[
    ("/v1/messages", RouteKind::Messages),
    ("/v1/messages/count_tokens", RouteKind::CountTokens),
    ("/v1/messages/batches", RouteKind::MessageBatches),
    ("/v1/complete", RouteKind::Complete),
    ("/v1/messages/batches/{id}/results", RouteKind::BatchResults),
];

/// Endpoints whose answer is a credential, or that manage credentials: the Admin API
/// (`/v1/organizations/...`: API keys, workspaces, users, invites). See
/// [`Api::hands_out_credentials`](super::Api::hands_out_credentials).
pub const CREDENTIAL_PATHS: &[&str] = &["/v1/organizations"];

/// The request field naming the model.
pub const MODEL_FIELD: &str = "model";

/// Where usage is in a message (`usage.input_tokens`, `usage.output_tokens`).
pub const USAGE_PATH: &[&str] = &["usage"];

/// Anthropic keys travel in `x-api-key` (OAuth tokens in `Authorization: Bearer`).
pub const AUTH: AuthScheme = AuthScheme::XApiKey;

/// The `error.type` for a kind.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed | ErrorKind::RequestTimeout => {
            "invalid_request_error"
        }
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Forbidden => "permission_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::BadGateway | ErrorKind::GatewayTimeout | ErrorKind::Internal => "api_error",
    }
}

/// `{"type":"error","error":{"type":...,"message":...}}`; a policy refusal
/// ([`ErrorBody::policy_denial`]) adds `"details":{"error_code":"dlp_request_denied"}` to
/// `error`, the code Claude Code knows a data-loss-prevention refusal by.
pub fn error_json(err: &ErrorBody) -> String {
    let message = serde_json::Value::from(err.message());
    let ty = error_type(err.kind());
    let details = if err.is_policy_denial() {
        r#","details":{"error_code":"dlp_request_denied"}"#
    } else {
        ""
    };
    format!(r#"{{"type":"error","error":{{"type":"{ty}","message":{message}{details}}}}}"#)
}

/// `event: error` with the error body as its data.
pub fn error_event(err: &ErrorBody) -> String {
    format!("event: error\ndata: {}\n\n", error_json(err))
}
