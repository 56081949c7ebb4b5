//! Collecting a request body into memory, up to a limit.

use crate::body::BoxError;
use crate::limits::{BodyBudget, BodyLimits, BudgetPermit, Collected};
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

/// Why a body could not be collected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error("the request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the request body could not be read: {0}")]
    Read(BoxError),
    #[error("the shared budget for buffered bodies is used up")]
    Busy,
}

/// [`collect_within`] without a budget (the tests' entry).
#[cfg(test)]
async fn collect<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    collect_within(headers, body, limit, None).await
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` up front, or
/// while reading), reserving every byte held from `permit`'s budget.
async fn collect_within<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    mut permit: Option<&mut BudgetPermit>,
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
    // A body in one chunk (most requests under ~64 KB) is kept as it is; a longer one is
    // copied once into a buffer sized from `Content-Length`.
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CollectError::Read(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            return Err(CollectError::TooLarge(limit));
        }
        if let Some(p) = permit.as_deref_mut()
            && !p.grow(data.len())
        {
            return Err(CollectError::Busy);
        }
        if let Some(buf) = &mut joined {
            buf.extend_from_slice(&data);
        } else if first.is_empty() {
            first = data;
        } else if !data.is_empty() {
            let expected = declared.map_or(0, |n| usize::try_from(n).unwrap_or(0));
            let mut buf = BytesMut::with_capacity(expected.clamp(total, limit));
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&data);
            joined = Some(buf);
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

/// Whether a request has no body to inspect (known from its framing, without reading).
pub(crate) fn has_no_body<B: http_body::Body>(body: &B) -> bool {
    body.is_end_stream() || body.size_hint().upper() == Some(0)
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
    /// An unknown encoding, more codings than agw decodes, or corrupt data.
    #[error("could not be inspected: {0}")]
    Decode(crate::decode::DecodeError),
    /// The client did not send the whole body in time.
    #[error("was not received within {} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// The budget shared by all buffered bodies is used up.
    #[error("cannot be buffered now: agw's budget of {0} bytes for buffered bodies is in use")]
    Busy(usize),
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
            ReadError::TimedOut(t) => ErrorBody::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body was not received within {} s",
                    t.as_secs_f64()
                ),
            ),
            ReadError::Busy(total) => ErrorBody::new(
                ErrorKind::Overloaded,
                format!(
                    "agw is buffering too many request bodies right now (its budget of {total} bytes is in use); retry shortly"
                ),
            ),
        }
    }
}

/// Reads a whole body within `limit` bytes (received and decoded) and decodes it: the body
/// stage without a timeout or a shared budget (for responses).
pub(crate) async fn read_plain<B>(
    headers: &mut HeaderMap,
    body: B,
    limit: usize,
) -> Result<Collected, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    read_request(headers, body, &BodyLimits::new(limit))
        .await
        .map(|(collected, _)| collected)
}

/// The body stage: reads a request body once within `limits` (size, time, shared budget) and
/// decodes it; a body that came encoded goes on decoded, so its `Content-Encoding` is removed
/// from `headers` and its length set. The permit holds the bytes' share of the budget: keep it
/// until the body is sent.
pub(crate) async fn read_request<B>(
    headers: &mut HeaderMap,
    body: B,
    limits: &BodyLimits,
) -> Result<(Collected, Option<BudgetPermit>), ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    // A charset other than UTF-8 is refused; one that reads ASCII as ASCII (Latin-1, a
    // Windows code page: some HTTP clients' default label) only when the body is not ASCII.
    let charset = crate::decode::foreign_charset(headers);
    if let Some(c) = &charset
        && !crate::decode::ascii_superset(c)
    {
        return Err(ReadError::Decode(crate::decode::DecodeError::Charset(
            c.clone(),
        )));
    }
    let limit = limits.max_bytes();
    let mut permit = limits.shared_budget().map(BodyBudget::permit);
    let busy = || ReadError::Busy(limits.shared_budget().map_or(0, BodyBudget::total));
    let raw = {
        let mut read = std::pin::pin!(collect_within(headers, body, limit, permit.as_mut()));
        // A body that has already arrived (most small ones) is read without arming a timer.
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        match (first, limits.timeout()) {
            (Poll::Ready(r), _) => r,
            (Poll::Pending, Some(t)) => match tokio::time::timeout(t, read).await {
                Ok(r) => r,
                Err(_) => return Err(ReadError::TimedOut(t)),
            },
            (Poll::Pending, None) => read.await,
        }
    };
    let raw = match raw {
        Ok(b) => b,
        Err(CollectError::TooLarge(limit)) => return Err(ReadError::TooLarge(limit)),
        Err(CollectError::Read(e)) => return Err(ReadError::Read(e)),
        Err(CollectError::Busy) => return Err(busy()),
    };
    let refused = |plain: &Bytes| match &charset {
        Some(c) if !plain.is_ascii() => Err(ReadError::Decode(
            crate::decode::DecodeError::Charset(c.clone()),
        )),
        _ => Ok(()),
    };
    let Some(list) = crate::decode::encodings(headers) else {
        refused(&raw)?;
        // An `identity` coding names none: the header goes all the same.
        forward_decoded(headers, raw.len());
        return Ok((Collected { plain: raw }, permit));
    };
    // Every layer's output is reserved before the next layer is decoded, so a short budget
    // stops the work early. An intermediate layer is freed once decoded but its share stays
    // reserved until the permit drops: decoding writes at most `limit` bytes in all, so this
    // holds no more than a single-layer body at the limit would.
    let plain = crate::decode::decode_reserving(&raw, &list, limit, |n| {
        if permit.as_mut().is_some_and(|p| !p.grow(n)) {
            return Err(busy());
        }
        Ok(())
    })?;
    refused(&plain)?;
    // What was inspected is what goes on: the decoded bytes, not the encoded ones another
    // decoder might read differently (a deflate body that is valid both as zlib and as raw
    // deflate, found by a black-box review; concatenated gzip members; trailing bytes).
    drop(raw);
    forward_decoded(headers, plain.len());
    // Only the decoded bytes are held from here on.
    if let Some(p) = permit.as_mut() {
        p.shrink_to(plain.len());
    }
    Ok((Collected { plain }, permit))
}

/// A body forwarded as it was read and inspected, decoded: any `Content-Encoding` it came with
/// goes, and its length is what is sent.
fn forward_decoded(headers: &mut HeaderMap, len: usize) {
    if headers.remove(http::header::CONTENT_ENCODING).is_some() {
        set_length(headers, len);
    }
}

impl From<crate::decode::DecodeError> for ReadError {
    fn from(e: crate::decode::DecodeError) -> Self {
        match e {
            crate::decode::DecodeError::TooLarge(limit) => ReadError::TooLarge(limit),
            e => ReadError::Decode(e),
        }
    }
}

/// Sets the headers of a request whose body is now `len` bytes held in memory.
pub(crate) fn set_length(headers: &mut HeaderMap, len: usize) {
    let te = http::header::TRANSFER_ENCODING;
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    if declared.and_then(|v| v.parse::<usize>().ok()) == Some(len) && !headers.contains_key(&te) {
        return; // already right (the usual case for a body forwarded as it came)
    }
    headers.remove(te);
    headers.insert(CONTENT_LENGTH, len.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_ENCODING;
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body that yields its chunks one per poll.
    struct Chunks(VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = len {
            h.insert(CONTENT_LENGTH, n.into());
        }
        h
    }

    #[test]
    fn bodies_are_joined_in_order_and_bounded() {
        let parts = ["", "{\"a\":", "", "\"bc\"", "}"];
        let whole: String = parts.concat();
        for declared in [None, Some(whole.len()), Some(3)] {
            let body = Chunks(
                parts
                    .iter()
                    .map(|p| Bytes::from_static(p.as_bytes()))
                    .collect(),
            );
            let got = run(collect(&headers(declared), body, 100)).unwrap();
            assert_eq!(got, whole.as_bytes(), "{declared:?}");
        }
        // Over the limit: by Content-Length up front, or while reading without one.
        let body = || {
            Chunks(
                parts
                    .iter()
                    .map(|p| Bytes::from_static(p.as_bytes()))
                    .collect(),
            )
        };
        for declared in [Some(whole.len()), None] {
            let err = run(collect(&headers(declared), body(), whole.len() - 1)).unwrap_err();
            assert!(matches!(err, CollectError::TooLarge(n) if n == whole.len() - 1));
        }
        assert_eq!(
            run(collect(&headers(None), body(), whole.len())).unwrap(),
            whole.as_bytes()
        );
    }

    #[test]
    fn lengths_are_set_for_the_body_sent() {
        let te = http::header::TRANSFER_ENCODING;
        for (declared, chunked) in [
            (None, true),
            (Some("5"), false),
            (Some("7"), false),
            (Some("x"), false),
            (Some("5"), true),
        ] {
            let mut h = HeaderMap::new();
            if let Some(d) = declared {
                h.insert(CONTENT_LENGTH, d.parse().unwrap());
            }
            if chunked {
                h.insert(&te, "chunked".parse().unwrap());
            }
            set_length(&mut h, 5);
            assert_eq!(h[CONTENT_LENGTH], "5", "{declared:?} {chunked}");
            assert!(!h.contains_key(&te));
            assert_eq!(h.get_all(CONTENT_LENGTH).iter().count(), 1);
        }
    }

    /// The shared budget is charged for every layer decoded, not only the last: an
    /// intermediate layer is memory held too.
    #[test]
    fn the_budget_counts_every_decoded_layer() {
        use crate::limits::{BodyBudget, BodyLimits};
        use std::io::Write;
        let gzip = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
            e.write_all(data).unwrap();
            Bytes::from(e.finish().unwrap())
        };
        let plain = Bytes::from(vec![b'x'; 3000]);
        let inner = gzip(&plain);
        let raw = gzip(&inner);
        let mut h = headers(Some(raw.len()));
        h.insert(CONTENT_ENCODING, "gzip, gzip".parse().unwrap());
        let held = raw.len() + inner.len() + plain.len();
        let body = || Chunks(VecDeque::from([raw.clone()]));
        let budget = BodyBudget::new(held);
        let limits = BodyLimits::new(1 << 20).budget(budget.clone());
        let (got, permit) = run(read_request(&mut h.clone(), body(), &limits)).unwrap();
        assert_eq!(got.plain, plain);
        // Decoded, only the decoded bytes stay held (the compressed ones and the layer
        // between are freed: the body goes on decoded).
        assert_eq!(budget.available(), held - plain.len());
        drop(permit);
        assert_eq!(budget.available(), held);
        // One byte short: refused as busy, and nothing stays reserved.
        let budget = BodyBudget::new(held - 1);
        let limits = BodyLimits::new(1 << 20).budget(budget.clone());
        let err = run(read_request(&mut h.clone(), body(), &limits)).unwrap_err();
        assert!(
            matches!(err, ReadError::Busy(n) if n == held - 1),
            "{err:?}"
        );
        assert_eq!(budget.available(), held - 1);
    }

    #[test]
    fn a_body_in_one_chunk_is_not_copied() {
        let data = Bytes::from(vec![b'x'; 5000]);
        let body = Chunks(VecDeque::from([Bytes::new(), data.clone()]));
        let got = run(collect(&headers(Some(5000)), body, 10_000)).unwrap();
        assert_eq!(got.as_ptr(), data.as_ptr());
        assert!(
            run(collect(&headers(None), Chunks(VecDeque::new()), 10))
                .unwrap()
                .is_empty()
        );
    }
}
