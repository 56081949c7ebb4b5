//! An in-memory upstream for tests and benchmarks: no sockets, canned responses.
//!
//! Not part of the stable API (enabled by the `test-util` feature and in agw-tower's own tests).
//!
//! # Example
//!
//! ```
//! use agw_tower::test_util::MemoryUpstream;
//! use tower_service::Service;
//!
//! # async fn run() {
//! let mut up = MemoryUpstream::json(r#"{"ok":true}"#);
//! let res = up.call(http::Request::post("/v1/messages").body(String::from("{}")).unwrap()).await.unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(up.seen().len(), 1);
//! assert_eq!(up.seen()[0].body, "{}");
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run());
//! ```

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A response body that yields its chunks one per poll, like a socket would.
#[derive(Debug, Clone, Default)]
pub struct Chunks(pub VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The URI.
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// The upstream: reads the whole request body, records the request, answers with a canned
/// response. Clones share the record.
#[derive(Debug, Clone)]
pub struct MemoryUpstream {
    status: StatusCode,
    content_type: &'static str,
    chunks: Vec<Bytes>,
    headers: HeaderMap,
    seen: Arc<Mutex<Vec<Seen>>>,
    record: bool,
}

impl MemoryUpstream {
    /// Answers 200 with `content_type` and these chunks.
    pub fn new(content_type: &'static str, chunks: Vec<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            content_type,
            chunks,
            headers: HeaderMap::new(),
            seen: Arc::default(),
            record: true,
        }
    }

    /// Answers 200 with a JSON body.
    pub fn json(body: &str) -> Self {
        Self::new("application/json", vec![Bytes::from(body.to_owned())])
    }

    /// Answers with `status` instead of 200.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(
            http::header::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        );
        self
    }

    /// Does not keep the requests (for benchmarks).
    pub fn unrecorded(mut self) -> Self {
        self.record = false;
        self
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

impl<B> tower_service::Service<Request<B>> for MemoryUpstream
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Chunks>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.expect("request body").to_bytes();
            if this.record {
                this.seen.lock().expect("not poisoned").push(Seen {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                });
            }
            let mut res = Response::new(Chunks(this.chunks.into()));
            *res.status_mut() = this.status;
            res.headers_mut().extend(this.headers);
            res.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(this.content_type),
            );
            Ok(res)
        })
    }
}

/// The seed article's one rule: reject a prompt that says `credit card`, with its message.
pub fn seed_policy() -> agw_core::guard::Policy {
    use agw_core::guard::{Policy, Rule};
    Policy::builder()
        .rule(
            Rule::regex("credit-card", ["credit card"])
                .reject("Rejected due to inappropriate content"),
        )
        .build()
        .expect("the seed rule compiles")
}
