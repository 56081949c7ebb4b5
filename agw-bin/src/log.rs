//! One structured (logfmt) access-log line per request, written when the response body ends or
//! is dropped — so streamed responses are logged with their whole duration.
//!
//! A line carries the method, the path (never the query string), the route kind, the backend,
//! the model, the status, the guard's verdict and rule names, upstream and total latency and the
//! response bytes. Never keys, never matched text.

use agw_core::route::RouteKind;
use agw_tower::guard::GuardReport;
use agw_tower::provider::ModelRewrite;
use agw_tower::upstream::UpstreamTiming;
use bytes::Bytes;
use http::Method;
use http::response::Parts;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where access-log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard error.
    Stderr,
    /// Nowhere.
    Off,
}

impl AccessLog {
    pub(crate) fn entry(
        self,
        request: impl FnOnce() -> (Method, String, RouteKind),
        backend: &Arc<str>,
    ) -> Option<Box<Entry>> {
        (self == AccessLog::Stderr).then(|| {
            let start = Instant::now();
            let (method, path, kind) = request();
            let backend = backend.clone();
            Box::new(Entry {
                method,
                path,
                kind,
                backend,
                start,
                status: 0,
                guard: None,
                model: None,
                upstream: None,
                bytes: 0,
            })
        })
    }
}

/// A request's log line in the making.
#[derive(Debug)]
pub struct Entry {
    method: Method,
    path: String,
    kind: RouteKind,
    backend: Arc<str>,
    start: Instant,
    status: u16,
    guard: Option<GuardReport>,
    model: Option<String>,
    upstream: Option<f64>,
    bytes: u64,
}

pub trait WithResponse {
    fn with_response(self, parts: &Parts) -> Self;
}

impl WithResponse for Option<Box<Entry>> {
    fn with_response(mut self, parts: &Parts) -> Self {
        if let Some(e) = &mut self {
            e.status = parts.status.as_u16();
            e.guard = parts.extensions.get::<GuardReport>().cloned();
            e.model = match parts.extensions.get::<ModelRewrite>() {
                Some(r) => Some(format!("{}->{}", r.from, r.to)),
                None => e.guard.as_ref().and_then(|g| g.model.clone()),
            };
            e.upstream = parts
                .extensions
                .get::<UpstreamTiming>()
                .map(|t| t.0.as_secs_f64() * 1e3);
        }
        self
    }
}

fn push_value(line: &mut String, v: &str) {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=')
    {
        line.push_str(v);
    } else {
        let _ = write!(line, "{v:?}");
    }
}

impl Entry {
    fn write(&self, complete: bool) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut line = String::with_capacity(256);
        let _ = write!(line, "ts={ts:.3} method={} path=", self.method);
        push_value(&mut line, &self.path);
        let _ = write!(line, " kind={} backend=", self.kind);
        push_value(&mut line, &self.backend);
        line.push_str(" model=");
        push_value(&mut line, self.model.as_deref().unwrap_or("-"));
        let _ = write!(line, " status={}", self.status);
        let (verdict, rules) = match &self.guard {
            Some(g) => {
                let mut rules: Vec<&str> = g.rules.iter().map(|r| &**r).collect();
                rules.dedup();
                (g.outcome.name(), rules.join(","))
            }
            None => ("skip", String::new()),
        };
        let _ = write!(line, " guard={verdict} rules=");
        push_value(&mut line, if rules.is_empty() { "-" } else { &rules });
        match self.upstream {
            Some(u) => {
                let _ = write!(line, " upstream_ms={u:.2}");
            }
            None => line.push_str(" upstream_ms=-"),
        }
        let total = self.start.elapsed().as_secs_f64() * 1e3;
        let _ = write!(line, " total_ms={total:.2} bytes={}", self.bytes);
        if !complete {
            line.push_str(" aborted=true");
        }
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

pin_project! {
    /// A response body that writes the access-log line when it ends or is dropped.
    pub struct LogBody<B> {
        #[pin]
        inner: B,
        entry: Option<Box<Entry>>,
    }

    impl<B> PinnedDrop for LogBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(e) = this.project().entry.take() {
                e.write(false);
            }
        }
    }
}

impl<B> LogBody<B> {
    pub(crate) fn new(inner: B, entry: Option<Box<Entry>>) -> Self {
        Self { inner, entry }
    }
}

impl<B> http_body::Body for LogBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let res = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        match &res {
            Some(Ok(frame)) => {
                if let (Some(e), Some(d)) = (this.entry.as_mut(), frame.data_ref()) {
                    e.bytes += d.len() as u64;
                }
                // Servers stop polling a body that says it has ended.
                if this.inner.is_end_stream() {
                    if let Some(e) = this.entry.take() {
                        e.write(true);
                    }
                }
            }
            None => {
                if let Some(e) = this.entry.take() {
                    e.write(true);
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
