//! Request ids: one per request, sent upstream as `x-request-id` and put on every response that
//! has none of its own as `request-id` (Claude Code shows it as `request_id`).
//!
//! Responses from the provider keep the provider's `request-id`; the ones agw makes itself (a
//! guard rejection, a 502) carry agw's. The id is also a [`RequestId`] extension on the request
//! and the response, for the access log.
//!
//! # Example
//!
//! ```
//! use agw_tower::request_id::{RequestId, RequestIdLayer};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # async fn run() {
//! let svc = tower::service_fn(|req: http::Request<()>| async move {
//!     assert!(req.headers()["x-request-id"].to_str().unwrap().starts_with("req_agw_"));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let mut svc = RequestIdLayer::new().layer(svc);
//! let res = svc.call(http::Request::new(())).await.unwrap();
//! let id = res.extensions().get::<RequestId>().unwrap();
//! assert_eq!(res.headers()["request-id"], id.0);
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

mod service;

pub use service::{RequestIdFuture, RequestIdService};

use http::HeaderValue;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_layer::Layer;

/// A request's id; in request and response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// A new id: `req_agw_` and 24 hex digits, unique within the process and unpredictable
    /// across processes.
    pub fn generate() -> RequestId {
        static SEED: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(u64::from(std::process::id()));
            h.finish()
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // `req_agw_`, 16 hex digits of a mixed seed and counter, 8 of the counter: formatted
        // into one shared buffer (clones of the value only count references).
        let mut buf = *b"req_agw_000000000000000000000000";
        write_hex(&mut buf[8..24], splitmix(seed ^ n));
        write_hex(&mut buf[24..], n);
        RequestId(
            HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
                .expect("hex is a valid header value"),
        )
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Applies [`RequestIdService`] to a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl RequestIdLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService::new(inner)
    }
}

/// Fills `out` (at most 16 bytes) with the lowest `out.len()` hex digits of `value` (lower
/// case, most significant first): ids formatted into a fixed buffer, without `format!`.
pub fn write_hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    assert!(out.len() <= 16, "a u64 has 16 hex digits");
    let n = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[(value >> (4 * (n - 1 - i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_the_lowest_most_significant_first() {
        let mut b = [0u8; 8];
        write_hex(&mut b, 0x1234_5678_9abc_def0);
        assert_eq!(&b, b"9abcdef0");
        let mut b = [0u8; 16];
        write_hex(&mut b, 0xfe);
        assert_eq!(&b, b"00000000000000fe");
    }

    #[test]
    fn generated_ids_are_distinct_hex_with_the_counter_last() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        for id in [&a, &b] {
            let s = id.0.to_str().unwrap();
            assert_eq!(s.len(), 32, "{s}");
            assert!(s.starts_with("req_agw_"), "{s}");
            assert!(
                s[8..]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(a, b);
        let counter =
            |id: &RequestId| u32::from_str_radix(&id.0.to_str().unwrap()[24..], 16).unwrap();
        // Other tests generate ids concurrently: later, not necessarily next.
        assert!(counter(&b) > counter(&a));
    }
}
