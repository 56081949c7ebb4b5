//! The listener and the state its connections share.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::{MockOptions, Recorded, control, routes};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (Anthropic itself accepts 32 MB), before and after gzip.
pub(crate) const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by every connection.
pub(crate) struct State {
    recorder: Mutex<Recorder>,
    /// Bumped by every release; a held stream waits for a change.
    release: watch::Sender<u64>,
    next_id: AtomicU64,
}

impl State {
    pub(crate) fn new(options: &MockOptions) -> Self {
        Self {
            recorder: Mutex::new(Recorder {
                requests: VecDeque::new(),
                bytes: 0,
                max_count: options.max_recorded,
                max_bytes: options.max_recorded_bytes,
            }),
            release: watch::Sender::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        // A panic elsewhere while holding the lock leaves the list consistent enough to read.
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.recorder().requests.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        let mut recorder = self.recorder();
        recorder.requests.clear();
        recorder.bytes = 0;
    }

    pub(crate) fn release(&self) {
        self.release.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn next_id(&self, prefix: &str) -> String {
        format!(
            "{prefix}{:06}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The most recent requests, within a count and a body-bytes budget.
struct Recorder {
    requests: VecDeque<Recorded>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl Recorder {
    fn push(&mut self, request: Recorded) {
        if self.max_count == 0 || request.body.len() > self.max_bytes {
            return;
        }
        self.bytes += request.body.len();
        self.requests.push_back(request);
        while self.requests.len() > self.max_count || self.bytes > self.max_bytes {
            let oldest = self
                .requests
                .pop_front()
                .expect("over budget means not empty");
            self.bytes -= oldest.body.len();
        }
    }
}

/// Accepts connections (HTTP/1.1 and h2c) until `stop` fires or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Small SSE frames must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |request| handle(state.clone(), request));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    state.release();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    if parts.uri.path().starts_with("/__mock/") {
        return Ok(control::respond(&state, &parts));
    }
    // Subscribe first, so that a release sent at any time while this request is in flight
    // frees its hold, even one sent before the hold begins.
    let release = state.release.subscribe();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let message = format!("request body larger than {MAX_REQUEST_BODY} bytes");
            return Ok(routes::anthropic_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &message,
            ));
        }
        Err(error) => {
            let message = format!("request body could not be read: {error}");
            return Ok(routes::anthropic_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
            ));
        }
    };
    state.recorder().push(Recorded {
        method: parts.method.clone(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), ToString::to_string),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let mut response = routes::route(&state, &parts, &body, release).await;
    let request_id = state.next_id("req_mock_");
    let request_id = HeaderValue::from_str(&request_id).expect("ascii id");
    response
        .headers_mut()
        .insert("request-id", request_id.clone());
    response.headers_mut().insert("x-request-id", request_id);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method};

    use super::*;

    #[test]
    fn recorder_keeps_most_recent_within_budget() {
        let mut recorder = Recorder {
            requests: VecDeque::new(),
            bytes: 0,
            max_count: 2,
            max_bytes: 10,
        };
        for body in ["aaaa", "bbbb", "cccc", "ddddddddddd", "ee"] {
            recorder.push(Recorded {
                method: Method::POST,
                uri: "/".into(),
                headers: HeaderMap::new(),
                body: Bytes::from(body),
            });
        }
        let bodies: Vec<_> = recorder.requests.iter().map(|r| r.body.clone()).collect();
        assert_eq!(bodies, ["cccc", "ee"]);
        assert_eq!(recorder.bytes, 6);
    }
}
