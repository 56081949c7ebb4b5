//! The errors agw answers with, independent of the dialect that writes them.

use super::Api;
use http::StatusCode;

/// The class of an error agw answers with; it fixes the default status and the error type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: a policy rejection, malformed JSON, a model that is not allowed.
    InvalidRequest,
    /// 404: nothing is routed here.
    NotFound,
    /// 405: a method agw never forwards (`CONNECT`, `TRACE`).
    MethodNotAllowed,
    /// 408: the client did not send its body in time.
    RequestTimeout,
    /// 413: the body exceeds the configured limit.
    RequestTooLarge,
    /// 502: the upstream could not be reached or broke the connection.
    BadGateway,
    /// 504: the upstream did not answer in time.
    GatewayTimeout,
    /// 529: agw is out of capacity for now (the buffered-body budget); clients retry it.
    Overloaded,
    /// 500: a failure inside agw.
    Internal,
    /// 401: no valid client credential.
    Authentication,
    /// 403: the caller may not use this backend.
    Forbidden,
    /// 429: a rate limit is exhausted (with `retry-after`).
    RateLimited,
}

impl ErrorKind {
    /// The HTTP status this kind maps to by default.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Overloaded => StatusCode::from_u16(529).expect("529 is a valid status"),
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A snake_case name (OpenAI's `code` field).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::GatewayTimeout => "gateway_timeout",
            ErrorKind::Overloaded => "overloaded",
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
    denied: bool,
}

impl ErrorBody {
    /// An error of `kind` with its default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.status(),
            message: message.into(),
            code: None,
            denied: false,
        }
    }

    /// Marks the error as a refusal by the organisation's data-loss-prevention policy (a guard
    /// rule): Anthropic-shaped bodies then carry `"details":{"error_code":"dlp_request_denied"}`,
    /// which Claude Code reads as terminal for that request body. It sends the refused request
    /// once instead of about six times, does not fall back to a non-streaming retry (billed)
    /// after a stream ended with it, and tells the user how to go on in the session.
    pub fn policy_denial(mut self) -> Self {
        self.denied = true;
        self
    }

    /// Whether this is a policy refusal ([`ErrorBody::policy_denial`]).
    pub fn is_policy_denial(&self) -> bool {
        self.denied
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

    /// The OpenAI `code`: the one set, or the kind's name.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or(self.kind.code())
    }

    /// The JSON body in `api`'s shape (the same as [`Api::error_json`]).
    pub fn to_json(&self, api: Api) -> String {
        api.error_json(self)
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

    #[test]
    fn overloaded_is_a_retryable_529() {
        let e = ErrorBody::new(ErrorKind::Overloaded, "busy");
        assert_eq!(e.status().as_u16(), 529);
        let a: serde_json::Value = serde_json::from_str(&e.to_json(Api::Anthropic)).unwrap();
        assert_eq!(a["error"]["type"], "overloaded_error");
    }
}
