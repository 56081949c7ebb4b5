//! Provider-shaped error bodies: what a client sees when agw answers instead of the provider.
//!
//! Claude Code and the SDKs parse error bodies in their provider's shape and show the message
//! (Claude Code prints `API Error: 400 <message>`). Every response agw makes itself goes through
//! [`ErrorBody`], so every client gets an error it understands.
//!
//! # Example
//!
//! ```
//! use agw_core::api::{Api, ErrorBody, ErrorKind};
//!
//! let body = ErrorBody::new(ErrorKind::InvalidRequest, "Rejected due to inappropriate content");
//! assert_eq!(
//!     body.to_json(Api::Anthropic),
//!     r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content"}}"#,
//! );
//! assert_eq!(body.status().as_u16(), 400);
//! ```

use http::StatusCode;

/// The wire API a client speaks, which decides the shape of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `{"type":"error","error":{"type":...,"message":...}}`
    Anthropic,
    /// `{"error":{"message":...,"type":...,"param":null,"code":...}}`
    OpenAi,
}

/// The class of an error agw answers with; it fixes the default status and the error type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: a policy rejection, malformed JSON, a model that is not allowed.
    InvalidRequest,
    /// 404: nothing is routed here.
    NotFound,
    /// 413: the body exceeds the configured limit.
    RequestTooLarge,
    /// 502: the upstream could not be reached or broke the connection.
    BadGateway,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
    /// 500: a failure inside agw.
    Internal,
    /// 401: no valid client credential.
    Authentication,
    /// 403: the caller may not use this backend.
    Forbidden,
    /// 429: a rate limit or budget is exhausted.
    RateLimited,
}

impl ErrorKind {
    /// The HTTP status this kind maps to by default.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn type_name(self, api: Api) -> &'static str {
        match (self, api) {
            (ErrorKind::InvalidRequest, _) => "invalid_request_error",
            (ErrorKind::NotFound, Api::Anthropic) => "not_found_error",
            (ErrorKind::NotFound, Api::OpenAi) => "invalid_request_error",
            (ErrorKind::RequestTooLarge, Api::Anthropic) => "request_too_large",
            (ErrorKind::RequestTooLarge, Api::OpenAi) => "invalid_request_error",
            (ErrorKind::BadGateway | ErrorKind::GatewayTimeout | ErrorKind::Internal, _) => {
                "api_error"
            }
            (ErrorKind::Authentication, Api::Anthropic) => "authentication_error",
            (ErrorKind::Authentication, Api::OpenAi) => "invalid_request_error",
            (ErrorKind::Forbidden, Api::Anthropic) => "permission_error",
            (ErrorKind::Forbidden, Api::OpenAi) => "invalid_request_error",
            (ErrorKind::RateLimited, Api::Anthropic) => "rate_limit_error",
            (ErrorKind::RateLimited, Api::OpenAi) => "rate_limit_exceeded",
        }
    }

    fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::GatewayTimeout => "gateway_timeout",
            ErrorKind::Internal => "internal_error",
            ErrorKind::Authentication => "invalid_api_key",
            ErrorKind::Forbidden => "permission_denied",
            ErrorKind::RateLimited => "rate_limit_exceeded",
        }
    }
}

/// An error agw answers with: kind, status and a message for the person behind the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    kind: ErrorKind,
    status: StatusCode,
    message: String,
    code: Option<String>,
}

impl ErrorBody {
    /// An error of `kind` with its default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.status(),
            message: message.into(),
            code: None,
        }
    }

    /// Overrides the status (a guard rule may reject with, say, 422).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Sets the OpenAI `code` field (defaults to a name derived from the kind).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message shown to the person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body in `api`'s shape.
    pub fn to_json(&self, api: Api) -> String {
        let message = serde_json::Value::from(self.message.as_str());
        let ty = self.kind.type_name(api);
        match api {
            Api::Anthropic => {
                format!(r#"{{"type":"error","error":{{"type":"{ty}","message":{message}}}}}"#)
            }
            Api::OpenAi => {
                let code =
                    serde_json::Value::from(self.code.as_deref().unwrap_or(self.kind.code()));
                format!(
                    r#"{{"error":{{"message":{message},"type":"{ty}","param":null,"code":{code}}}}}"#
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_escape() {
        let e = ErrorBody::new(ErrorKind::RequestTooLarge, "too \"big\"\n");
        let a: serde_json::Value = serde_json::from_str(&e.to_json(Api::Anthropic)).unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "request_too_large");
        assert_eq!(a["error"]["message"], "too \"big\"\n");
        let o: serde_json::Value = serde_json::from_str(&e.to_json(Api::OpenAi)).unwrap();
        assert_eq!(o["error"]["message"], "too \"big\"\n");
        assert_eq!(o["error"]["type"], "invalid_request_error");
        assert_eq!(o["error"]["code"], "request_too_large");
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn status_override_and_code() {
        let e = ErrorBody::new(ErrorKind::InvalidRequest, "no")
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)
            .with_code("guard_rejected");
        assert_eq!(e.status().as_u16(), 422);
        let o: serde_json::Value = serde_json::from_str(&e.to_json(Api::OpenAi)).unwrap();
        assert_eq!(o["error"]["code"], "guard_rejected");
    }
}
