//! Collecting a request body into memory, up to a limit.

use crate::body::BoxError;
use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error("the request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read: {0}")]
    Read(BoxError),
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or
/// while reading).
pub(crate) async fn collect<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, CollectError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(CollectError::TooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(CollectError::TooLarge(limit)),
        Err(e) => Err(CollectError::Read(e)),
    }
}

/// A body read whole: the bytes as received, and decoded from its `Content-Encoding` for
/// inspection (the same bytes when it has none).
#[derive(Debug)]
pub(crate) struct Plain {
    pub raw: Bytes,
    pub plain: Bytes,
}

/// Why a body could not be read for inspection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Received or decoded, it is larger than the limit.
    #[error("exceeds agw's limit of {0} bytes")]
    TooLarge(usize),
    /// The connection failed while reading.
    #[error("could not be read: {0}")]
    Read(BoxError),
    /// An unknown encoding or corrupt data.
    #[error("could not be inspected: {0}")]
    Decode(crate::decode::DecodeError),
}

impl ReadError {
    /// The error a client gets for its request body.
    pub fn request_error(&self) -> agw_core::api::ErrorBody {
        use agw_core::api::{ErrorBody, ErrorKind};
        match self {
            ReadError::TooLarge(limit) => ErrorBody::new(
                ErrorKind::RequestTooLarge,
                format!("Request body exceeds agw's limit of {limit} bytes"),
            ),
            ReadError::Read(e) => ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("the request body could not be read: {e}"),
            ),
            ReadError::Decode(e) => ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("agw could not inspect the request body: {e}"),
            ),
        }
    }
}

/// Collects a body (see [`collect`]) and decodes its `Content-Encoding`, both within `limit`.
pub(crate) async fn read_plain<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Plain, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let raw = match collect(headers, body, limit).await {
        Ok(b) => b,
        Err(CollectError::TooLarge(limit)) => return Err(ReadError::TooLarge(limit)),
        Err(CollectError::Read(e)) => return Err(ReadError::Read(e)),
    };
    let Some(list) = crate::decode::encodings(headers) else {
        let plain = raw.clone();
        return Ok(Plain { raw, plain });
    };
    match crate::decode::decode(&raw, &list, limit) {
        Ok(plain) => Ok(Plain { raw, plain }),
        Err(crate::decode::DecodeError::TooLarge(limit)) => Err(ReadError::TooLarge(limit)),
        Err(e) => Err(ReadError::Decode(e)),
    }
}

/// Sets the headers of a request whose body is now `len` bytes held in memory.
pub(crate) fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, len.into());
}
