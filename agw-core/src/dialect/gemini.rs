//! Google Gemini (`:streamGenerateContent?alt=sse`, read by agw generically): the shape of
//! the error event that ends a stream, as Google's clients read an error.
//!
//! # Example
//!
//! ```
//! use agw_core::dialect::{gemini, ErrorBody, ErrorKind};
//!
//! let err = ErrorBody::new(ErrorKind::InvalidRequest, "no");
//! assert_eq!(
//!     gemini::error_json(&err),
//!     r#"{"error":{"code":400,"message":"no","status":"INVALID_ARGUMENT"}}"#,
//! );
//! assert!(gemini::error_event(&err).starts_with("data: {\"error\":{\"code\":400"));
//! ```

use super::ErrorBody;

/// The `google.rpc.Code` name Google's APIs answer an HTTP status with.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        408 | 504 => "DEADLINE_EXCEEDED",
        s if s < 500 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// `{"error":{"code":...,"message":...,"status":...}}`, Google's error shape.
pub fn error_json(err: &ErrorBody) -> String {
    let code = err.status().as_u16();
    let message = serde_json::Value::from(err.message());
    let status = status_name(code);
    format!(r#"{{"error":{{"code":{code},"message":{message},"status":"{status}"}}}}"#)
}

/// A `data:` event with the error body, as a Gemini stream ends with an error.
pub fn error_event(err: &ErrorBody) -> String {
    format!("data: {}\n\n", error_json(err))
}
