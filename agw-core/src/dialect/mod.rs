//! Wire dialects: one module per API shape a client or provider speaks.
//!
//! Each dialect module owns what is specific to its wire format: the paths its endpoints live
//! at, the shape of error bodies and of stream error events, where the model and the usage are
//! in a body, and how credentials are sent. [`Api`] names the dialect; its methods dispatch to
//! the modules, so a `match` on the dialect stays inside this folder.
//!
//! Guard text extraction (`guard::extract`) and stream parsing (`stream`) call into the dialect
//! for the shapes they read and write (error bodies and error events today).
//!
//! # Example
//!
//! ```
//! use agw_core::dialect::{Api, ErrorBody, ErrorKind};
//!
//! let err = ErrorBody::new(ErrorKind::InvalidRequest, "Rejected due to inappropriate content");
//! assert_eq!(
//!     Api::Anthropic.error_json(&err),
//!     r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content"}}"#,
//! );
//! // A guard rule's refusal says so in Claude Code's terms: terminal for that request body.
//! assert_eq!(
//!     Api::Anthropic.error_json(&err.clone().policy_denial()),
//!     r#"{"type":"error","error":{"type":"invalid_request_error","message":"Rejected due to inappropriate content","details":{"error_code":"dlp_request_denied"}}}"#,
//! );
//! assert!(Api::Anthropic.error_event(&err).starts_with("event: error\ndata: {"));
//! assert!(Api::OpenAi.error_event(&err).starts_with("data: {\"error\""));
//! assert_eq!(Api::OpenAi.model_field(), "model");
//! ```
//!
//! # Adding a dialect
//!
//! Write a module with the same functions as [`anthropic`], register it in [`Api`]'s methods,
//! and give the route kinds it serves a dialect in [`RouteKind::api`](crate::route::RouteKind::api).

pub mod anthropic;
mod error;
pub mod gemini;
pub mod openai_chat;
pub mod openai_responses;

pub use error::{ErrorBody, ErrorKind};

use crate::provider::AuthScheme;
use crate::route::RouteKind;

/// The wire API a client (or an upstream) speaks: the shape of its errors, stream error events,
/// model and usage fields, and credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// Anthropic: Messages, count_tokens, batches, legacy complete
    /// (`{"type":"error","error":{"type":...,"message":...}}`).
    Anthropic,
    /// OpenAI: chat completions, legacy completions, Responses, embeddings
    /// (`{"error":{"message":...,"type":...,"param":null,"code":...}}`).
    OpenAi,
}

/// A dialect is the same thing as the error-shape [`Api`]; the name reads better in new code.
pub type Dialect = Api;

impl Api {
    /// A short name for logs: `anthropic`, `openai`.
    pub fn name(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::OpenAi => "openai",
        }
    }

    /// The JSON error body for `err` in this dialect's shape.
    pub fn error_json(self, err: &ErrorBody) -> String {
        match self {
            Api::Anthropic => anthropic::error_json(err),
            Api::OpenAi => openai_chat::error_json(err),
        }
    }

    /// A server-sent event that ends a stream with `err`, as this dialect's clients read it.
    pub fn error_event(self, err: &ErrorBody) -> String {
        match self {
            Api::Anthropic => anthropic::error_event(err),
            Api::OpenAi => openai_chat::error_event(err),
        }
    }

    /// The event that ends a stream of route `kind` with `err`, for a client speaking this
    /// dialect (OpenAI Responses streams have their own `error` event).
    pub fn stream_error_event(self, kind: RouteKind, err: &ErrorBody) -> String {
        match (self, kind) {
            (Api::OpenAi, RouteKind::Responses | RouteKind::StoredResponses) => {
                openai_responses::error_event(err)
            }
            _ => self.error_event(err),
        }
    }

    /// The top-level request field naming the model.
    pub fn model_field(self) -> &'static str {
        match self {
            Api::Anthropic => anthropic::MODEL_FIELD,
            Api::OpenAi => openai_chat::MODEL_FIELD,
        }
    }

    /// The path of the usage object in a non-streaming response.
    pub fn usage_path(self) -> &'static [&'static str] {
        match self {
            Api::Anthropic => anthropic::USAGE_PATH,
            Api::OpenAi => openai_chat::USAGE_PATH,
        }
    }

    /// How this dialect's providers expect their key.
    pub fn auth_scheme(self) -> AuthScheme {
        match self {
            Api::Anthropic => anthropic::AUTH,
            Api::OpenAi => openai_chat::AUTH,
        }
    }

    /// The message of a provider's error body in this dialect (`error.message` in both), if
    /// the body is one.
    pub fn error_message(self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v.get("error")?.get("message")?.as_str().map(str::to_owned)
    }

    /// Whether `path` (canonical) names an endpoint that hands out a credential or opens a
    /// session agw cannot see into, in any dialect (and Gemini's ephemeral tokens,
    /// `/v1alpha/auth_tokens`): called with the gateway's injected key, it would give a client
    /// a key of the organisation's that works without agw — every guard, access list, limit
    /// and budget bypassed (found by the seventh red-team review: `POST
    /// /v1/realtime/client_secrets` returned an `ek_…` key good for a Realtime session
    /// straight to OpenAI). A path matches a listed one, or goes below it; case is ignored.
    /// Returns the listed path it falls under.
    pub fn hands_out_credentials(path: &str) -> Option<&'static str> {
        /// Other providers' endpoints of the same sort.
        const OTHERS: &[&str] = &[
            "/v1alpha/auth_tokens",
            "/v1beta/auth_tokens",
            "/v1/auth_tokens",
        ];
        anthropic::CREDENTIAL_PATHS
            .iter()
            .chain(openai_chat::CREDENTIAL_PATHS)
            .chain(OTHERS)
            .find(|p| {
                path.len() >= p.len()
                    && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
            })
            .copied()
    }

    /// The endpoints this dialect defines: default path and route kind.
    pub fn paths(self) -> impl Iterator<Item = (&'static str, RouteKind)> {
        let (own, responses): (_, &[_]) = match self {
            Api::Anthropic => (anthropic::PATHS, &[]),
            // OpenAI's dialect is chat completions and the Responses API's own module.
            Api::OpenAi => (openai_chat::PATHS, openai_responses::PATHS),
        };
        own.iter().chain(responses).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_that_hand_out_credentials_are_known() {
        for p in [
            "/v1/realtime/client_secrets",
            "/v1/realtime/sessions",
            "/v1/realtime/transcription_sessions",
            "/v1/realtime/calls",
            "/v1/realtime",
            "/V1/Realtime/Client_Secrets",
            "/v1/chatkit/sessions",
            "/v1/organization/admin_api_keys",
            "/v1/organization/projects/p/service_accounts",
            "/v1/organizations/api_keys",
            "/openai/v1/realtime/client_secrets",
            "/openai/realtimeapi/sessions",
            "/v1alpha/auth_tokens",
        ] {
            assert!(Api::hands_out_credentials(p).is_some(), "{p}");
        }
        for p in [
            "/v1/messages",
            "/v1/realtimes",
            "/v1/organizationx",
            "/v1/chat/completions",
            "/v1/files/realtime",
            "/v1/models",
        ] {
            assert_eq!(Api::hands_out_credentials(p), None, "{p}");
        }
    }

    #[test]
    fn every_dialect_path_classifies_as_its_kind() {
        let table = crate::route::RouteTable::claude_code();
        for api in [Api::Anthropic, Api::OpenAi] {
            for (path, kind) in api.paths() {
                assert_eq!(table.classify(path), kind, "{path}");
                assert_eq!(kind.api(), Some(api), "{path}");
            }
        }
    }

    #[test]
    fn error_events_carry_the_error_body() {
        let err = ErrorBody::new(ErrorKind::GatewayTimeout, "upstream went quiet");
        for api in [Api::Anthropic, Api::OpenAi] {
            let ev = api.error_event(&err);
            assert!(ev.ends_with("\n\n"), "{ev}");
            let data = ev.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            assert_eq!(data, api.error_json(&err));
            assert_eq!(
                api.error_message(data.as_bytes()).as_deref(),
                Some("upstream went quiet")
            );
        }
        assert_eq!(Api::Anthropic.error_message(b"nope"), None);
    }
}
