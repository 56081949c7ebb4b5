//! Provider-shaped error bodies: what a client sees when agw answers instead of the provider.
//!
//! A compatibility facade over [`dialect`](crate::dialect), which owns the shapes.
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

pub use crate::dialect::{Api, ErrorBody, ErrorKind};
