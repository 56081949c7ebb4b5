//! The upstream connection pool: keep-alive HTTP/1.1 connections and shared HTTP/2 ones.
//!
//! An HTTP/1.1 connection is taken out of the pool for one exchange and given back when its
//! response body ends (by [`PooledBody`], on the task that reads the body: no task per
//! request waits for the connection to become idle). An HTTP/2 connection (negotiated by ALPN)
//! stays in the pool and carries every request to its origin. A connection that has been idle
//! for the idle timeout is closed by a reaper task, which runs only while the pool holds any.
//! A request that a reused connection could not start (the upstream closed it meanwhile) is
//! sent again on another.

use crate::body::BoxError;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, header::HOST};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_service::Service;

/// How often a request is tried on a reused connection that turned out closed.
const ATTEMPTS: usize = 3;

/// Why the pool could not deliver a request.
#[derive(Debug)]
pub(super) struct PoolError {
    /// No connection could be made (refused, DNS, TLS, connect timeout).
    pub connect: bool,
    source: BoxError,
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.connect {
            write!(f, "connect error: {}", self.source)
        } else {
            write!(f, "request error: {}", self.source)
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

enum Sender<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

impl<B> Sender<B> {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

struct Entry<B> {
    scheme: Scheme,
    authority: Authority,
    sender: Sender<B>,
    /// When it was last given back or used.
    used: Instant,
}

impl<B> Entry<B> {
    /// Free for a request: an HTTP/2 connection always, an HTTP/1.1 one once hyper has
    /// finished its last exchange (its request body can outlast the response).
    fn is_ready(&self) -> bool {
        match &self.sender {
            Sender::H1(tx) => tx.is_ready(),
            Sender::H2(_) => true,
        }
    }

    /// To be dropped: closed, or free and idle for `timeout`.
    fn is_stale(&self, now: Instant, timeout: Duration) -> bool {
        self.sender.is_closed() || (self.is_ready() && now.duration_since(self.used) >= timeout)
    }

    fn is_for(&self, scheme: &Scheme, authority: &Authority) -> bool {
        // Exact bytes: requests to one backend carry its base URL's authority.
        self.authority.as_str() == authority.as_str() && self.scheme == *scheme
    }
}

struct Conns<B> {
    entries: Vec<Entry<B>>,
    /// A reaper task is running.
    reaping: bool,
}

/// A pool of connections to any number of origins.
pub(super) struct Pool<B> {
    connector: HttpsConnector<HttpConnector>,
    idle_timeout: Duration,
    conns: Mutex<Conns<B>>,
}

impl<B> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

type Exchange = Result<Response<PooledBody>, PoolError>;

/// The response future of [`Pool::send`].
pub(super) type SendFuture = Pin<Box<dyn Future<Output = Exchange> + Send>>;

impl<B> Pool<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(connector: HttpsConnector<HttpConnector>, idle_timeout: Duration) -> Self {
        Self {
            connector,
            idle_timeout,
            conns: Mutex::new(Conns {
                entries: Vec::new(),
                reaping: false,
            }),
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Conns<B>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `req` (absolute-form URI) on a pooled connection, or a new one.
    pub fn send(self: &Arc<Self>, req: Request<B>) -> SendFuture {
        Box::pin(self.clone().exchange(req))
    }

    async fn exchange(self: Arc<Self>, mut req: Request<B>) -> Exchange {
        let (Some(scheme), Some(authority)) =
            (req.uri().scheme().cloned(), req.uri().authority().cloned())
        else {
            return Err(PoolError {
                connect: false,
                source: "the upstream URI has no scheme or authority".into(),
            });
        };
        // Sends that failed before the request went out.
        let mut attempt = 0;
        loop {
            let (sender, reused) = match self.checkout(&scheme, &authority) {
                Some(s) => (s, true),
                // Boxed: connecting (DNS, TCP, TLS, the HTTP handshake) is a large state
                // machine, and inline it would make every exchange's future that large, to be
                // copied into its box on every request.
                None => (Box::pin(self.connect(&scheme, &authority)).await?, false),
            };
            let mut failed = match sender {
                Sender::H1(mut tx) => {
                    // Ready when checked out; closed since, it is dropped for another.
                    if reused && tx.ready().await.is_err() {
                        continue;
                    }
                    if !req.headers().contains_key(HOST) {
                        req.headers_mut().insert(HOST, host_header(&authority));
                    }
                    origin_form(req.uri_mut());
                    match tx.try_send_request(req).await {
                        Ok(res) => return Ok(self.pooled(res, scheme, authority, tx)),
                        Err(e) => e,
                    }
                }
                Sender::H2(mut tx) => match tx.try_send_request(req).await {
                    Ok(res) => return Ok(res.map(PooledBody::new)),
                    Err(e) => e,
                },
            };
            attempt += 1;
            let message = failed.take_message();
            match message {
                // Not sent: the connection was closed under it. Another one may take it.
                Some(back) if reused && attempt < ATTEMPTS => {
                    req = back;
                    if req.uri().scheme().is_none() {
                        let mut parts = req.uri().clone().into_parts();
                        parts.scheme = Some(scheme.clone());
                        parts.authority = Some(authority.clone());
                        if let Ok(uri) = Uri::from_parts(parts) {
                            *req.uri_mut() = uri;
                        }
                    }
                }
                _ => {
                    return Err(PoolError {
                        connect: false,
                        source: failed.into_error().into(),
                    });
                }
            }
        }
    }

    /// An HTTP/1.1 response whose body gives the connection back when it ends.
    fn pooled(
        self: &Arc<Self>,
        res: Response<Incoming>,
        scheme: Scheme,
        authority: Authority,
        tx: http1::SendRequest<B>,
    ) -> Response<PooledBody> {
        let pool = Arc::downgrade(self);
        let give_back: GiveBack = Box::new(move || {
            if let Some(pool) = pool.upgrade() {
                pool.put(Entry {
                    scheme,
                    authority,
                    sender: Sender::H1(tx),
                    used: Instant::now(),
                });
            }
        });
        res.map(|body| PooledBody::with_give_back(body, give_back))
    }

    /// A pooled connection to the origin: an HTTP/2 one (shared), or the ready HTTP/1.1 one
    /// given back last (taken out). An HTTP/1.1 connection still busy (the upstream answered
    /// before it had read the whole request body, which hyper is still writing) stays for
    /// later: a request never waits behind another's upload. Closed and expired connections
    /// met on the way are dropped.
    fn checkout(&self, scheme: &Scheme, authority: &Authority) -> Option<Sender<B>> {
        let mut conns = self.conns();
        let now = Instant::now();
        let mut i = conns.entries.len();
        while i > 0 {
            i -= 1;
            let e = &mut conns.entries[i];
            if !e.is_for(scheme, authority) {
                continue;
            }
            if e.is_stale(now, self.idle_timeout) {
                conns.entries.swap_remove(i);
                continue;
            }
            match &e.sender {
                Sender::H2(tx) => {
                    e.used = now;
                    return Some(Sender::H2(tx.clone()));
                }
                Sender::H1(_) if e.is_ready() => {
                    return Some(conns.entries.swap_remove(i).sender);
                }
                Sender::H1(_) => {}
            }
        }
        None
    }

    fn put(self: &Arc<Self>, entry: Entry<B>) {
        if entry.sender.is_closed() {
            return;
        }
        let mut conns = self.conns();
        conns.entries.push(entry);
        self.reap_later(&mut conns);
    }

    /// Starts the reaper unless it runs.
    fn reap_later(self: &Arc<Self>, conns: &mut Conns<B>) {
        if !conns.reaping
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            conns.reaping = true;
            rt.spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }

    async fn connect(
        self: &Arc<Self>,
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<Sender<B>, PoolError> {
        let connect_error = |source: BoxError| PoolError {
            connect: true,
            source,
        };
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| connect_error(e.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let io = connector.call(uri).await.map_err(connect_error)?;
        if io.connected().is_negotiated_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await
                .map_err(|e| connect_error(e.into()))?;
            let mut conns = self.conns();
            // Requests that raced to a new origin each connected: the first connection to
            // be shared serves them all, the others close (their sender is dropped).
            let shared = conns.entries.iter_mut().find_map(|e| match &e.sender {
                Sender::H2(tx) if e.is_for(scheme, authority) && !tx.is_closed() => {
                    e.used = Instant::now();
                    Some(tx.clone())
                }
                _ => None,
            });
            if let Some(shared) = shared {
                return Ok(Sender::H2(shared));
            }
            tokio::spawn(async move {
                let _ = conn.await;
            });
            // Shared from the start: concurrent requests to this origin multiplex over it.
            conns.entries.push(Entry {
                scheme: scheme.clone(),
                authority: authority.clone(),
                sender: Sender::H2(tx.clone()),
                used: Instant::now(),
            });
            self.reap_later(&mut conns);
            Ok(Sender::H2(tx))
        } else {
            let (tx, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|e| connect_error(e.into()))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Sender::H1(tx))
        }
    }
}

/// Closes connections idle for `timeout`, every `timeout`, while the pool holds any.
fn reap<B>(pool: Weak<Pool<B>>, timeout: Duration) -> impl Future<Output = ()> {
    // A reaper dropped unfinished (its runtime shut down while the pool lives on), even before
    // its first poll, lets the next connection given back start another.
    struct Cancelled<B>(Option<Weak<Pool<B>>>);
    impl<B> Cancelled<B> {
        /// The reaper ended by itself, having cleared the flag.
        fn disarm(&mut self) {
            self.0 = None;
        }
    }
    impl<B> Drop for Cancelled<B> {
        fn drop(&mut self) {
            if let Some(pool) = self.0.take().and_then(|p| p.upgrade()) {
                pool.conns.lock().unwrap_or_else(|e| e.into_inner()).reaping = false;
            }
        }
    }
    let mut cancelled = Cancelled(Some(pool.clone()));
    async move {
        loop {
            tokio::time::sleep(timeout).await;
            let Some(pool) = pool.upgrade() else {
                cancelled.disarm();
                return;
            };
            let mut conns = pool.conns.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            conns.entries.retain(|e| !e.is_stale(now, timeout));
            if conns.entries.is_empty() {
                conns.reaping = false;
                cancelled.disarm();
                return;
            }
        }
    }
}

/// `/path?query` for an HTTP/1.1 request line.
fn origin_form(uri: &mut Uri) {
    *uri = match uri.path_and_query() {
        Some(p) if p.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(p.clone());
            Uri::from_parts(parts).unwrap_or_default()
        }
        _ => Uri::default(),
    };
}

/// `Host` for an HTTP/1.1 request: the authority as the URI gives it (as the provider layer
/// sets it from the base URL).
fn host_header(authority: &Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header value")
}

type GiveBack = Box<dyn FnOnce() + Send + Sync>;

/// A response body from the pool: an HTTP/1.1 body gives its connection back when it ends
/// (a body dropped before its end closes the connection).
pub struct PooledBody {
    inner: Incoming,
    give_back: Option<GiveBack>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl PooledBody {
    fn new(inner: Incoming) -> Self {
        Self {
            inner,
            give_back: None,
        }
    }

    fn with_give_back(inner: Incoming, give_back: GiveBack) -> Self {
        let mut body = Self {
            inner,
            give_back: Some(give_back),
        };
        // An empty body is never polled: its connection goes back at once.
        if body.inner.is_end_stream() {
            body.end();
        }
        body
    }

    fn end(&mut self) {
        if let Some(give_back) = self.give_back.take() {
            give_back();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            None => self.end(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.end(),
            Some(Ok(_)) => {}
            // A failed connection is not given back.
            Some(Err(_)) => self.give_back = None,
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to its end by a wrapper that stopped at the last frame: still reusable.
        if self.inner.is_end_stream() {
            self.end();
        }
    }
}
