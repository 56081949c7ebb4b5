//! A mock Anthropic/OpenAI provider on 127.0.0.1, for tests and benches.
//!
//! It answers `HEAD /` and `HEAD /api/hello` (warm-ups), `POST /v1/messages` (JSON and SSE), `POST /v1/messages/count_tokens`,
//! `GET /v1/models`, `POST /v1/chat/completions` and `POST /v1/responses` (JSON and SSE) in
//! the real APIs' shapes,
//! serves HTTP/1.1 and h2c, and records every request it receives (method, path and query,
//! headers, exact body bytes). Run it in-process with [`MockProvider::start`], or as the
//! `agw-mock` binary and read the recording over HTTP.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use agw_mock::MockProvider;
//!
//! let mock = MockProvider::start().await?;
//! assert!(mock.base_url().starts_with("http://127.0.0.1:"));
//! assert!(mock.requests().is_empty());
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Triggers
//!
//! Words in the text of the last `user` message steer the reply (several may be combined):
//!
//! | word | effect |
//! | --- | --- |
//! | `mock:read=PATH` | a `Read` tool call (`toolu_mock_1`) on PATH; once the turn carries its result, the reply is `I read the file.` |
//! | `mock:echo` | the reply is the last text block of that message |
//! | `mock:hold` | a stream stops after its first text delta until [`MockProvider::release`] (at most 10 s) |
//! | `mock:status=NNN` | status NNN with a provider-shaped error, message `mock error NNN` |
//! | `mock:delay_ms=N` | wait N ms (at most 30 s) before the response headers |
//! | `mock:gzip` | gzip the response if `accept-encoding` allows; streams are sync-flushed per event |
//! | `mock:ping_comment` | an SSE comment `: keep-alive` between stream events |
//! | `mock:tool=NAME:ARG` | a call of tool NAME (id `toolu_mock_1` / `call_mock_1`) with input `{"command": ARG}`, ARG running to the end of the line (`mock:tool=Bash:ls -l /tmp`); streamed as `input_json_delta` / `arguments` / `function_call_arguments` pieces; once the turn carries its result, the reply is `I read the file.` |
//! | `mock:think` | Messages: a `thinking` block (the last text block as its thinking, streamed as `thinking_delta`s, then a `signature_delta`) before the reply |
//! | `mock:choices=N` | chat completions: N identical choices (at most 4), streamed as one chunk per choice per step |
//! | `mock:content_type=VALUE` | the response's `Content-Type` is VALUE (to the end of the line) |
//! | `mock:dup_key` | a JSON response repeats its first key (`content`, `choices` or `output`) with a decoy value before the real one |
//! | `mock:trailing` | streamed events from the first delta on carry ` x` after their JSON |
//!
//! Without any, the reply is `Hello from the mock provider.`
//!
//! # Control endpoints
//!
//! Not recorded: `GET /__mock/requests` (JSON array of `{method, uri, headers, body}`; a body
//! that is not UTF-8 comes as `body_base64`, a gzip-encoded one also as `decoded_body`),
//! `POST /__mock/reset` and `POST /__mock/release`.
//!
//! # Limits
//!
//! Request bodies up to 64 MiB (also after gzip decoding). The recording keeps the most recent
//! requests within [`MockOptions`]' count and byte budgets, so a long benchmark does not grow
//! without bound.

mod anthropic;
mod control;
mod openai;
mod responses;
mod routes;
mod server;
mod stream;
mod trigger;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use server::State;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    /// Path and query exactly as received.
    pub uri: String,
    pub headers: http::HeaderMap,
    /// The body bytes exactly as received (still gzip'd if the client sent them so).
    pub body: Bytes,
}

impl Recorded {
    /// The body decoded (`content-encoding: gzip` undone) and parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        let body = routes::decode_request_body(&self.headers, &self.body).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// Knobs for [`MockProvider::start_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MockOptions {
    /// Most requests kept in the recording (oldest dropped first); 0 records nothing.
    pub max_recorded: usize,
    /// Most body bytes kept in the recording (oldest dropped first).
    pub max_recorded_bytes: usize,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            max_recorded: 10_000,
            max_recorded_bytes: 512 * 1024 * 1024,
        }
    }
}

/// A running mock provider. Clones share the server; it stops when [`MockProvider::shutdown`]
/// is called or the last clone is dropped.
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    state: Arc<State>,
    /// Dropping it (with the last clone) also stops the server.
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        Self::start_with(addr, MockOptions::default()).await
    }

    /// Starts on `addr` with `options`.
    pub async fn start_with(addr: SocketAddr, options: MockOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(&options));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, state.clone(), stopped));
        Ok(Self {
            inner: Arc::new(Inner {
                addr,
                state,
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// Every request received (within the recording budget), oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.state.requests()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.inner.state.clear();
    }

    /// Lets every stream in flight that is or will be held by `mock:hold` go on.
    pub fn release(&self) {
        self.inner.state.release();
    }

    /// Stops accepting, releases held streams, and waits (at most 5 s) for open connections.
    pub async fn shutdown(self) {
        let stop = self
            .inner
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
