//! The load generator: a pooled keep-alive hyper client per target, and the four kinds of load
//! the bench applies (one request at a time, N at a time for a while, streams, held streams).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Upper bound on the requests one task sends in a timed run, so the loop ends even if the
/// clock misbehaves.
const MAX_REQUESTS_PER_TASK: u64 = 10_000_000;

/// How long one request may take before the run is declared broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections opened at once when setting up held streams (a burst of 1,000 SYNs would only
/// measure the listen backlog).
const HOLD_CONNECT_BURST: usize = 64;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The `x-api-key` sent to servers that take any key (the mock, minproxy, agw without client
/// authentication).
pub const ANY_KEY: &str = "sk-ant-loadbench";

/// Where a body's final prompt carries its serial number: `#` and eight digits and `#`.
pub const SERIAL_MARK: &str = "#00000000#";

/// The serial number of the next body sent, over all targets.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A request body. One with [`SERIAL_MARK`] in it is sent with a new number there each time,
/// as a client's next turn is: the conversation so far byte for byte, a new final prompt (so
/// that a proxy that remembers what it read, as agw does, reads each request's new text).
#[derive(Debug, Clone)]
pub struct Body {
    bytes: Bytes,
    serial: Option<usize>,
}

impl Body {
    pub fn new(bytes: Bytes) -> Self {
        let mark = SERIAL_MARK.as_bytes();
        let serial = bytes.windows(mark.len()).position(|w| w == mark);
        Self { bytes, serial }
    }

    /// The body's length (every request's).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes to send next.
    fn next(&self) -> Bytes {
        let Some(at) = self.serial else {
            return self.bytes.clone();
        };
        let n = SERIAL.fetch_add(1, Ordering::Relaxed) % 100_000_000;
        let mut out = BytesMut::from(&self.bytes[..]);
        let digits = format!("{n:08}");
        out[at + 1..at + 9].copy_from_slice(digits.as_bytes());
        out.freeze()
    }
}

/// One server to send load to: the mock itself, or a proxy in front of it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    url: String,
    /// Sent as `x-api-key`.
    key: HeaderValue,
    client: HttpClient,
}

impl Target {
    pub fn new(name: &'static str, url: &str, key: &str) -> Result<Self, String> {
        Ok(Self {
            name,
            url: format!("{url}/v1/messages"),
            key: HeaderValue::from_str(key).map_err(|e| format!("{name}: the key: {e}"))?,
            client: client(),
        })
    }

    /// The same server and pool, sending `key` instead.
    pub fn with_key(&self, key: &'static str) -> Self {
        Self {
            key: HeaderValue::from_static(key),
            ..self.clone()
        }
    }

    /// The same server with a fresh pool (for held streams: each needs its own connection, and
    /// they should not stay around in the shared pool afterwards).
    pub fn with_new_pool(&self) -> Self {
        Self {
            client: client(),
            ..self.clone()
        }
    }

    async fn send(&self, body: &Body) -> Result<Response<Incoming>, String> {
        let request = Request::post(&self.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("anthropic-version", HeaderValue::from_static("2023-06-01"))
            .header("x-api-key", self.key.clone())
            .body(Full::new(body.next()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{}: {e}", self.name))?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let body = body.unwrap_or_default();
            return Err(format!(
                "{}: status {status}: {}",
                self.name,
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok(response)
    }

    /// Sends `body` and reads the whole response; returns the time from sending to the last
    /// byte.
    pub async fn request(&self, body: &Body) -> Result<Duration, String> {
        let start = Instant::now();
        let exchange = async {
            let response = self.send(body).await?;
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{}: reading the body: {e}", self.name))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{}: no answer within {REQUEST_TIMEOUT:?}", self.name))??;
        Ok(start.elapsed())
    }

    /// Sends `body`, reads the whole response and returns the value of its header `name`.
    pub async fn header(&self, body: &Body, name: &str) -> Result<Option<String>, String> {
        let exchange = async {
            let response = self.send(body).await?;
            let value = response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{}: reading the body: {e}", self.name))?;
            Ok(value)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{}: no answer within {REQUEST_TIMEOUT:?}", self.name))?
    }

    /// Sends a streaming request and reads the stream to its end.
    pub async fn stream(&self, body: &Body) -> Result<Stream, String> {
        let start = Instant::now();
        let exchange = async {
            let mut body = self.send(body).await?.into_body();
            let mut ttfb = None;
            let mut events = Events::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("{}: reading the stream: {e}", self.name))?;
                if let Some(data) = frame.data_ref() {
                    ttfb.get_or_insert_with(|| start.elapsed());
                    events.feed(data);
                }
            }
            let ttfb = ttfb.ok_or_else(|| format!("{}: empty stream", self.name))?;
            Ok::<_, String>(Stream {
                ttfb,
                total: start.elapsed(),
                events: events.count,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{}: stream not done within {REQUEST_TIMEOUT:?}", self.name))?
    }

    /// `concurrency` tasks, each sending `body` one request after another until `duration` has
    /// passed; returns the number of requests completed and the time it took.
    pub async fn saturate(
        &self,
        body: &Body,
        concurrency: usize,
        duration: Duration,
    ) -> Result<(u64, Duration), String> {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let target = self.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0u64;
                while done < MAX_REQUESTS_PER_TASK && Instant::now() < deadline {
                    target.request(&body).await?;
                    done += 1;
                }
                Ok::<_, String>(done)
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.map_err(|e| e.to_string())??;
        }
        Ok((total, start.elapsed()))
    }

    /// Opens `n` streams that the mock holds open (`body` must carry `mock:hold`), waits until
    /// each has delivered its first bytes, calls `measure`, then releases them through
    /// `release` and reads them to the end.
    pub async fn hold<T>(
        &self,
        body: &Body,
        n: usize,
        release: &Release,
        measure: impl FnOnce() -> T,
    ) -> Result<Held<T>, String> {
        let opened = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let burst = Arc::new(Semaphore::new(HOLD_CONNECT_BURST));
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (target, body) = (self.clone(), body.clone());
            let (opened, finished, burst) = (opened.clone(), finished.clone(), burst.clone());
            tasks.push(tokio::spawn(async move {
                let mut permit = Some(burst.acquire_owned().await.map_err(|e| e.to_string())?);
                let mut body = target.send(&body).await?.into_body();
                while let Some(frame) = body.frame().await {
                    frame.map_err(|e| format!("{}: held stream: {e}", target.name))?;
                    // The first bytes: this stream is open, let the next connection start.
                    if permit.take().is_some() {
                        opened.fetch_add(1, Ordering::SeqCst);
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            }));
        }
        // The mock lets a held stream go after 10 s anyway; opening must be well within that.
        let open_deadline = start + Duration::from_secs(8);
        while opened.load(Ordering::SeqCst) < n && Instant::now() < open_deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let open_after = start.elapsed();
        // Let the servers settle (buffers handed back, timers armed) before reading memory.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let open_now = opened.load(Ordering::SeqCst) - finished.load(Ordering::SeqCst);
        let measured = measure();
        release.send().await?;
        let mut errors = Vec::new();
        for task in tasks {
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, task)
                .await
                .map_err(|_| format!("{}: a held stream did not end after release", self.name))?;
            if let Err(e) = outcome.map_err(|e| e.to_string()).and_then(|r| r) {
                errors.push(e);
            }
        }
        if let Some(e) = errors.first() {
            return Err(format!(
                "{} of {n} held streams failed, first: {e}",
                errors.len()
            ));
        }
        Ok(Held {
            open: open_now,
            open_after,
            measured,
        })
    }
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(300))
        .build(connector)
}

/// What one stream looked like from the client.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Time to the first body byte.
    pub ttfb: Duration,
    /// Time to the end of the stream.
    pub total: Duration,
    /// Server-sent events received.
    pub events: usize,
}

/// Counts SSE events (each ends in a blank line) across arbitrary frame splits.
#[derive(Debug, Default)]
struct Events {
    count: usize,
    last: u8,
}

impl Events {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' && self.last == b'\n' {
                self.count += 1;
            }
            self.last = b;
        }
    }
}

/// Streams held open at once, and what `measure` returned while they were.
#[derive(Debug)]
pub struct Held<T> {
    /// Streams open (first bytes received, not finished) when measured.
    pub open: usize,
    /// Time it took to open them.
    pub open_after: Duration,
    pub measured: T,
}

/// `POST /__mock/release` on the mock.
#[derive(Debug)]
pub struct Release {
    url: String,
    client: HttpClient,
}

impl Release {
    pub fn new(mock_url: &str) -> Self {
        Self {
            url: format!("{mock_url}/__mock/release"),
            client: client(),
        }
    }

    pub async fn send(&self) -> Result<(), String> {
        let request = Request::post(&self.url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("release: {e}"))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("release: status {s}")),
        }
    }
}

/// Round trips of `n` Redis `PING`s on one connection to `addr`, one at a time, in µs: what
/// one Redis command costs agw at the least (a raw client: no library overhead counted).
pub async fn redis_pings(addr: &str, n: usize) -> Result<Vec<f64>, String> {
    let exchange = async {
        let mut conn = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("redis {addr}: {e}"))?;
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut samples = Vec::with_capacity(n);
        let mut reply = [0u8; 7];
        for _ in 0..n {
            let start = Instant::now();
            conn.write_all(b"PING\r\n")
                .await
                .map_err(|e| format!("redis {addr}: {e}"))?;
            conn.read_exact(&mut reply)
                .await
                .map_err(|e| format!("redis {addr}: {e}"))?;
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            if &reply != b"+PONG\r\n" {
                return Err(format!(
                    "redis {addr}: PING answered {:?}",
                    String::from_utf8_lossy(&reply)
                ));
            }
        }
        Ok(samples)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("redis {addr}: {n} PINGs not done within {REQUEST_TIMEOUT:?}"))?
}
