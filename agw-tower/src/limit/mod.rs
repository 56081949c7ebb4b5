//! Limits and budgets per key, per team and global: requests and tokens per minute, token and
//! spend budgets per UTC day and month — in memory for one instance, in Redis for many.
//!
//! [`LimitLayer`] admits a request through a [`Limiter`] before it goes on: every applicable
//! counter is checked and charged in one atomic store operation (one Redis round trip, a Lua
//! script; a busy replica admits most requests against rate limits it leased ahead, see
//! `RedisStore`). An admitted request holds its token estimate (`max_tokens` from
//! [`RequestFacts`](crate::auth::RequestFacts), else
//! [`LimitPolicy::default_estimate`]) in the tokens-per-minute counters; when its response
//! ends, the [`UsageLayer`](crate::usage::UsageLayer) (which must sit *inside* this layer)
//! reports the actual usage and the limiter corrects the minute counters and charges the day
//! and month totals, off the response path (with a shared store, totals no limit reads wait up
//! to 100 ms, so that many requests share one store operation: see
//! [`Limiter::settle_later`]).
//!
//! Refusals (see [`Rejection::error`]): a rate limit gives **429** with `retry-after`; an
//! exhausted budget gives **400** naming the budget and when it resets (UTC), because a
//! budget that resets next month must not be retried. Admitted responses carry
//! `x-agw-ratelimit-{requests,tokens}-{limit,remaining,reset}` for the tightest scope.
//!
//! Only routes whose responses carry usage are limited (Messages, chat and legacy
//! completions, Responses, embeddings); token counting, model listing and passthrough are not.
//!
//! Windows are fixed UTC minutes (a burst across a minute boundary can reach twice the rate).
//! When the store fails or does not answer within [`LimitPolicy::timeout`], rate limits and
//! budgets each fail open or closed as configured, and the failure goes to the
//! [`Limiter::on_store_failure`] hook.
//!
//! # Example
//!
//! ```
//! use agw_tower::limit::{LimitPolicy, Limiter, Limits, MemoryStore};
//! use std::sync::Arc;
//!
//! # async fn run() {
//! let policy = LimitPolicy {
//!     per_key: Limits { requests_per_minute: Some(2), ..Limits::default() },
//!     ..LimitPolicy::default()
//! };
//! let limiter = Limiter::new(policy, Arc::new(MemoryStore::new()));
//! let alice = agw_tower::auth::Identity { name: "alice".into(), team: None,
//!     kind: agw_tower::auth::IdentityKind::Key, groups: vec![] };
//! let now = 1_800_000_000;
//! assert!(limiter.admit(Some(&alice), None, now).await.is_ok());
//! assert!(limiter.admit(Some(&alice), None, now).await.is_ok());
//! let refused = limiter.admit(Some(&alice), None, now).await.unwrap_err();
//! assert_eq!(refused.error().status().as_u16(), 429);
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run());
//! ```

mod clock;
mod layer;
#[cfg(feature = "redis")]
mod lease;
mod limiter;
#[cfg(feature = "redis")]
mod redis;
mod rejection;
mod service;
mod settle;
mod store;

pub use clock::rfc3339 as utc_time;
pub use layer::LimitLayer;
pub use limiter::{
    DEFAULT_ESTIMATE_TOKENS, FailMode, LimitPolicy, Limiter, Limits, MAX_OUTPUT_ESTIMATE, Spent,
    StoreFailure, Ticket, output_of,
};
#[cfg(feature = "redis")]
pub(crate) use redis::describe as describe_redis_error;
#[cfg(feature = "redis")]
pub use redis::{RedisConnection, RedisStore};
pub use rejection::{Fit, LimitKind, Rejection, Scope};
pub use service::Limit;
pub use store::{Acquired, Add, Check, CounterKey, LimitStore, LimitStoreError, MemoryStore};
