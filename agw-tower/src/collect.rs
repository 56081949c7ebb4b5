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

/// Sets the headers of a request whose body is now `len` bytes held in memory.
pub(crate) fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, len.into());
}
