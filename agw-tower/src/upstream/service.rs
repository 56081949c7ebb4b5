use super::PooledBody;
use super::pool::{Pool, SendFuture};
use super::{StreamEnd, UpstreamBody, UpstreamFailure};
use crate::body::{Body, BoxError};
use crate::classify::Classified;
use crate::error::error_response;
use crate::hop::strip_hop_by_hop;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::route::RouteKind;
use bytes::Bytes;
use http::{Request, Response, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower_service::Service;

/// Which certificate authorities the TLS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// The Mozilla roots bundled into the binary (works in minimal containers).
    #[default]
    Bundled,
    /// The operating system's trust store (for private CAs).
    System,
}

/// Settings of an [`Upstream`].
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The backend's name, used in error messages.
    pub name: String,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long to wait for the response headers (not the whole body: streams may run long).
    pub response_timeout: Duration,
    /// Trusted roots.
    pub roots: TlsRoots,
    /// How long a response body may stay silent before agw ends it (`None`: never). A cut
    /// event stream ends with a provider-shaped error event.
    pub stream_idle_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept before it is closed.
    pub pool_idle_timeout: Duration,
    /// Ends open bodies early when the server's shutdown grace period runs out.
    pub cut: super::StreamCut,
    /// The key agw injects for this backend, if it does ([`UpstreamConfig::injecting`]).
    pub injected: Option<InjectedKey>,
}

/// The key agw injects for a backend, which its responses must never carry back: a response
/// header that holds it and the provider's cookies are dropped, and a 401 — the provider
/// refusing the gateway's own key — becomes agw's 400 naming the backend, its body (which an
/// echoing upstream or debug page may fill with the key) unread. Found by the twelfth
/// session's black-box review: an upstream echoing `x-api-key` showed the gateway's key to
/// every client, and a refused gateway key showed developers Claude Code's "Invalid API key"
/// about a key they never sent.
#[derive(Clone)]
pub struct InjectedKey(Arc<[u8]>);

impl InjectedKey {
    /// The key as injected.
    pub fn new(key: &agw_core::provider::Secret) -> Self {
        Self(Arc::from(key.expose().as_bytes()))
    }

    /// Whether `bytes` (a header value: short) hold the key, or its first half or more, in
    /// any case.
    fn is_in(&self, bytes: &[u8]) -> bool {
        let head = &self.0[..self.head().min(self.0.len())];
        !head.is_empty()
            && bytes.len() >= head.len()
            && bytes
                .windows(head.len())
                .any(|w| w.eq_ignore_ascii_case(head))
    }

    /// The key's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// How much of the key's start an echo of it has at least: half of it and 16 bytes, or
    /// all of a shorter key (at least 1).
    pub(crate) fn head(&self) -> usize {
        (self.0.len() / 2).max(16).min(self.0.len()).max(1)
    }
}

impl std::fmt::Debug for InjectedKey {
    /// Never the key: its length and a fingerprint, so that a changed key tells configurations
    /// apart.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.0;
        let print = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        write!(f, "InjectedKey({} bytes, {:04x})", key.len(), print >> 48)
    }
}

impl UpstreamConfig {
    /// Defaults: 10 s to connect, 300 s to the response headers, 300 s of silence in a
    /// body, idle pooled connections closed after 90 s, bundled roots.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            roots: TlsRoots::Bundled,
            stream_idle_timeout: Some(Duration::from_secs(300)),
            pool_idle_timeout: Duration::from_secs(90),
            cut: super::StreamCut::new(),
            injected: None,
        }
    }

    /// Keeps the key a provider spec injects (none for passthrough credentials) out of what
    /// its responses carry back (see [`InjectedKey`]).
    pub fn injecting(mut self, spec: &agw_core::provider::ProviderSpec) -> Self {
        self.injected = match spec.credentials() {
            agw_core::provider::Credentials::Inject(key) => Some(InjectedKey::new(key)),
            agw_core::provider::Credentials::Passthrough => None,
        };
        self
    }
}

/// How long the upstream took to answer with headers; in response extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTiming(pub Duration);

/// Sends requests upstream. See the [module docs](super).
#[derive(Debug)]
pub struct Upstream<B> {
    // Shared: the stack is cloned per request.
    pool: Arc<Pool<B>>,
    config: Arc<UpstreamConfig>,
}

impl<B> Clone for Upstream<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            config: self.config.clone(),
        }
    }
}

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// Builds the client. Fails only when the system trust store is asked for and unreadable.
    pub fn new(config: UpstreamConfig) -> std::io::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match config.roots {
            TlsRoots::Bundled => builder.with_webpki_roots(),
            TlsRoots::System => builder.with_native_roots()?,
        };
        let https = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self {
            pool: Arc::new(Pool::new(https, config.pool_idle_timeout)),
            config: Arc::new(config),
        })
    }
}

impl<B> Service<Request<B>> for Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body<UpstreamBody<PooledBody>>>;
    type Error = Infallible;
    type Future = UpstreamFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The upstream is the one layer that does not classify: it has no route table. Without
        // a classification, errors take Anthropic's shape.
        let class = Classified::of(&req, RouteKind::Passthrough);
        // ALPN decides the upstream protocol; the client's own version does not carry over.
        *req.version_mut() = Version::HTTP_11;
        if self.config.injected.is_some() {
            // An error body that echoes the injected key is only found uncompressed: ask for
            // bodies as they are (second review round: a gzip 400 passed with the key).
            req.headers_mut().remove(http::header::ACCEPT_ENCODING);
        }
        let config = self.config.clone();
        UpstreamFuture {
            inner: tokio::time::timeout(config.response_timeout, self.pool.send(req)),
            start: Instant::now(),
            config,
            class,
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Upstream`]: the response headers, or a provider-shaped 502/504.
    pub struct UpstreamFuture {
        #[pin]
        inner: tokio::time::Timeout<SendFuture>,
        start: Instant,
        config: Arc<UpstreamConfig>,
        class: Classified,
    }
}

impl Future for UpstreamFuture {
    type Output = Result<Response<Body<UpstreamBody<PooledBody>>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        let elapsed = this.start.elapsed();
        let config = &**this.config;
        let (failure, err) = match res {
            Ok(Ok(res)) => {
                let (mut parts, body) = res.into_parts();
                if is_redirect(&parts) {
                    // A client following it would send its prompt around the gateway and show
                    // the answer there unguarded (the SDKs follow redirects): a 502 naming the
                    // cause, never the `Location` (nineteenth session's red team). The body is
                    // dropped unread.
                    let failure = UpstreamFailure::Redirect;
                    let err = ErrorBody::new(
                        ErrorKind::BadGateway,
                        format!(
                            "upstream `{}` answered {}: {}",
                            config.name,
                            parts.status.as_u16(),
                            failure.describe()
                        ),
                    );
                    let mut res = error_response(this.class.api, &err);
                    // A misconfiguration a retry cannot fix: the SDKs read this header (Claude
                    // Code retried the 502 ten times before showing it).
                    res.headers_mut().insert(
                        http::HeaderName::from_static("x-should-retry"),
                        http::HeaderValue::from_static("false"),
                    );
                    res.extensions_mut().insert(UpstreamTiming(elapsed));
                    res.extensions_mut().insert(failure);
                    return Poll::Ready(Ok(res));
                }
                if parts.status.is_informational() {
                    // A final answer cannot be a 1xx (hyper hands one on only for a 101, an
                    // upgrade agw never asked for): relayed, it left the client a bodiless
                    // `101` on a dead connection (twenty-fifth session's red team).
                    let err = ErrorBody::new(
                        ErrorKind::BadGateway,
                        format!(
                            "upstream `{}` answered {}, which is no answer to the request",
                            config.name,
                            parts.status.as_u16()
                        ),
                    );
                    let mut res = error_response(this.class.api, &err);
                    res.extensions_mut().insert(UpstreamTiming(elapsed));
                    return Poll::Ready(Ok(res));
                }
                // Read before the hop-by-hop headers go.
                let transfer_coded = config.injected.is_some() && transfer_coded(&parts.headers);
                strip_hop_by_hop(&mut parts.headers);
                if let Some(key) = &config.injected {
                    if parts.status == http::StatusCode::UNAUTHORIZED {
                        // A 400, which clients show at once: as a 502, Claude Code retried
                        // it ten times and then called it temporary (third round).
                        let err = ErrorBody::new(
                            ErrorKind::BadGateway,
                            format!(
                                "upstream `{name}` refused the API key this gateway sends for \
                                 it (401); the gateway's operator must set a valid key for \
                                 backend `{name}`",
                                name = config.name
                            ),
                        )
                        .with_status(http::StatusCode::BAD_REQUEST);
                        let mut res = error_response(this.class.api, &err);
                        res.extensions_mut().insert(UpstreamTiming(elapsed));
                        res.extensions_mut().insert(UpstreamFailure::KeyRefused);
                        return Poll::Ready(Ok(res));
                    }
                    scrub_headers(&mut parts.headers, key);
                }
                parts.extensions.insert(UpstreamTiming(elapsed));
                let sse = is_event_stream(&parts.headers).then(|| StreamEnd {
                    api: this.class.api,
                    kind: this.class.kind,
                    backend: config.name.as_str().into(),
                });
                let mut body = UpstreamBody::with_cut(
                    body,
                    config.stream_idle_timeout,
                    sse,
                    config.cut.clone(),
                );
                if config.injected.is_some()
                    && (crate::decode::encodings(&parts.headers).is_some() || transfer_coded)
                {
                    // Compressed all the same (agw asked for bodies as they are), as content
                    // or in transfer (`Transfer-Encoding: gzip, chunked`, which reaches agw
                    // still compressed): the key cannot be looked for in it. The status stays
                    // (clients retry a 429 or a 5xx as they would); the body is agw's.
                    let err = ErrorBody::new(
                        ErrorKind::BadGateway,
                        format!(
                            "upstream `{}` answered {} with a compressed body, which agw does \
                             not pass on while it sends its own key",
                            config.name,
                            parts.status.as_u16()
                        ),
                    );
                    // A success that cannot be passed on is agw's 502.
                    let err = if parts.status.is_success() {
                        err
                    } else {
                        err.with_status(parts.status)
                    };
                    let mut res = error_response(this.class.api, &err);
                    res.extensions_mut().insert(UpstreamTiming(elapsed));
                    return Poll::Ready(Ok(res));
                }
                if let Some(key) = &config.injected {
                    // A body that echoes the key (a proxy's or a debug page's "invalid key:
                    // …", with any status: twenty-fifth session's red team got it back in a
                    // 200): taken out as it passes (second round), its length kept.
                    body = body.scrubbing(key.clone());
                }
                return Poll::Ready(Ok(Response::from_parts(parts, Body::inner(body))));
            }
            Ok(Err(e)) => {
                let failure = UpstreamFailure::of(&e);
                if failure == UpstreamFailure::NoDescriptors {
                    // Out of descriptors (a request accepted with the last one): a moment
                    // later there are some again, so a status clients retry (seventeenth
                    // session's second review: this was a 502 logged `cause=other`).
                    let err = ErrorBody::new(
                        ErrorKind::Overloaded,
                        format!(
                            "agw could not connect to upstream `{}`: {}; retry shortly",
                            config.name,
                            failure.describe()
                        ),
                    );
                    let mut res = error_response(this.class.api, &err);
                    res.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("1"),
                    );
                    res.extensions_mut().insert(UpstreamTiming(elapsed));
                    res.extensions_mut().insert(failure);
                    return Poll::Ready(Ok(res));
                }
                let verb = if e.connect {
                    "agw could not connect to upstream"
                } else {
                    "agw's request to upstream failed:"
                };
                let err = ErrorBody::new(
                    ErrorKind::BadGateway,
                    format!("{verb} `{}`: {}", config.name, failure.describe()),
                );
                (failure, err)
            }
            Err(_) => (
                UpstreamFailure::ResponseTimeout,
                ErrorBody::new(
                    ErrorKind::GatewayTimeout,
                    format!(
                        "upstream `{}` did not answer within {} s",
                        config.name,
                        config.response_timeout.as_secs_f64()
                    ),
                ),
            ),
        };
        let mut res = error_response(this.class.api, &err);
        res.extensions_mut().insert(UpstreamTiming(elapsed));
        res.extensions_mut().insert(failure);
        Poll::Ready(Ok(res))
    }
}

/// Whether `Transfer-Encoding` names a coding besides `chunked` (a compressed body hyper
/// passes on as it came).
fn transfer_coded(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|c| {
            !c.is_empty()
                && !c.eq_ignore_ascii_case("chunked")
                && !c.eq_ignore_ascii_case("identity")
        })
}

/// Drops the response headers that carry the injected key, and the provider's cookies
/// (agw drops the client's `Cookie` when it injects its key: they would only tie clients to
/// the gateway's account).
fn scrub_headers(headers: &mut http::HeaderMap, key: &InjectedKey) {
    // One pass to find out (most responses carry neither), then the removals.
    if !headers
        .iter()
        .any(|(n, v)| n == http::header::SET_COOKIE || key.is_in(v.as_bytes()))
    {
        return;
    }
    headers.remove(http::header::SET_COOKIE);
    let carrying: Vec<http::HeaderName> = headers
        .iter()
        .filter(|(_, v)| key.is_in(v.as_bytes()))
        .map(|(n, _)| n.clone())
        .collect();
    for name in carrying {
        headers.remove(&name);
    }
}

/// Whether an upstream's response is a redirect agw must not pass on: any 3xx with a
/// `Location` (which clients follow), and any 3xx but `304 Not Modified` without one. A
/// `304` without a `Location` answers a conditional request and passes.
fn is_redirect(parts: &http::response::Parts) -> bool {
    parts.status.is_redirection()
        && (parts.status != http::StatusCode::NOT_MODIFIED
            || parts.headers.contains_key(http::header::LOCATION))
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    crate::framing::framing(headers) == crate::framing::Framing::EventStream
}
