//! The upstream connection pool against a keep-alive HTTP/1.1 server on 127.0.0.1 that counts
//! its connections: reuse, concurrency, connections the server closed, idle timeout, bodies
//! dropped before their end.

use agw_core::api::Api;
use agw_core::route::RouteKind;
use agw_tower::classify::Classified;
use agw_tower::upstream::{Upstream, UpstreamConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// How the test server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `200` with a small JSON body, keep-alive.
    Json,
    /// The same after a pause (requests overlap).
    Slow,
    /// The same, then the server closes the connection (no `connection: close` header).
    CloseAfter,
    /// `200` with an empty body.
    Empty,
    /// A chunked body that never ends (one chunk, then silence).
    Endless,
}

#[derive(Default)]
struct Seen {
    /// Connections accepted.
    conns: AtomicUsize,
    /// Request heads received, in order.
    heads: Mutex<Vec<String>>,
    /// Connections the client closed (EOF while waiting for a request).
    closed: AtomicUsize,
}

async fn server(mode: Mode) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            s.conns.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(conn, mode, s.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut conn: TcpStream, mode: Mode, seen: Arc<Seen>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    for _ in 0..64 {
        // One request: its head, then its content-length body.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    seen.closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < end + len {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        seen.heads.lock().unwrap().push(head);
        if mode == Mode::Slow {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let reply: &[u8] = match mode {
            Mode::Empty => b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            Mode::Endless => {
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
            }
            _ => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}",
        };
        if conn.write_all(reply).await.is_err() {
            return;
        }
        match mode {
            Mode::CloseAfter => return,
            Mode::Endless => {
                // Silent until the client goes.
                let _ = conn.read(&mut chunk).await;
                seen.closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            _ => {}
        }
    }
}

fn upstream(idle: Duration) -> Upstream<Full<Bytes>> {
    let mut config = UpstreamConfig::new("test");
    config.pool_idle_timeout = idle;
    Upstream::new(config).unwrap()
}

fn request(addr: &str) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::post(format!("http://{addr}/v1/messages?beta=true"))
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .unwrap();
    req.extensions_mut().insert(Classified {
        kind: RouteKind::Messages,
        api: Api::Anthropic,
        upstream: Api::Anthropic,
    });
    req
}

/// One exchange, the body read to its end.
async fn exchange(up: &Upstream<Full<Bytes>>, addr: &str) -> (u16, Bytes) {
    let res = up.clone().oneshot(request(addr)).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

/// Polls `f` until it holds (bounded: 5 s).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection_in_origin_form_with_the_host() {
    let (addr, seen) = server(Mode::Json).await;
    let up = upstream(Duration::from_secs(90));
    for _ in 0..5 {
        assert_eq!(
            exchange(&up, &addr).await,
            (200, Bytes::from_static(b"{\"ok\":true}"))
        );
    }
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        1,
        "one keep-alive connection"
    );
    let heads = seen.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 5);
    for h in heads {
        assert!(
            h.starts_with("POST /v1/messages?beta=true HTTP/1.1\r\n"),
            "{h}"
        );
        assert!(
            h.to_ascii_lowercase()
                .contains(&format!("\r\nhost: {addr}\r\n")),
            "{h}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_requests_open_connections_that_are_reused_afterwards() {
    let (addr, seen) = server(Mode::Slow).await;
    let up = upstream(Duration::from_secs(90));
    let all = futures_join(&up, &addr, 4).await;
    assert!(all.iter().all(|(s, _)| *s == 200));
    let opened = seen.conns.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&opened),
        "{opened} connections for 4 overlapping requests"
    );
    for _ in 0..4 {
        assert_eq!(exchange(&up, &addr).await.0, 200);
    }
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        opened,
        "reused, none opened"
    );
}

async fn futures_join(up: &Upstream<Full<Bytes>>, addr: &str, n: usize) -> Vec<(u16, Bytes)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let up = up.clone();
            let addr = addr.to_owned();
            tokio::spawn(async move { exchange(&up, &addr).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced_and_the_request_still_goes() {
    let (addr, seen) = server(Mode::CloseAfter).await;
    let up = upstream(Duration::from_secs(90));
    for _ in 0..3 {
        assert_eq!(exchange(&up, &addr).await.0, 200);
    }
    assert_eq!(
        seen.heads.lock().unwrap().len(),
        3,
        "each request reached the server once"
    );
    assert_eq!(seen.conns.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_empty_body_gives_its_connection_back() {
    let (addr, seen) = server(Mode::Empty).await;
    let up = upstream(Duration::from_secs(90));
    for _ in 0..3 {
        assert_eq!(exchange(&up, &addr).await, (200, Bytes::new()));
    }
    assert_eq!(seen.conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (addr, seen) = server(Mode::Json).await;
    let up = upstream(Duration::from_millis(100));
    assert_eq!(exchange(&up, &addr).await.0, 200);
    // Nothing else happens: the reaper closes the idle connection.
    eventually("the idle connection closed", || {
        seen.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(exchange(&up, &addr).await.0, 200);
    assert_eq!(
        seen.conns.load(Ordering::SeqCst),
        2,
        "a new connection after the timeout"
    );
}

#[tokio::test]
async fn a_body_dropped_before_its_end_closes_its_connection() {
    let (addr, seen) = server(Mode::Endless).await;
    let up = upstream(Duration::from_secs(90));
    let res = up.clone().oneshot(request(&addr)).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from_static(b"hello"));
    drop(body);
    eventually("the connection closed", || {
        seen.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // The next request does not wait on the abandoned exchange.
    let res = up.clone().oneshot(request(&addr)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.conns.load(Ordering::SeqCst), 2);
}

/// A request body that streams what the test sends through a channel.
struct Chan(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for Chan {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn a_connection_still_uploading_is_not_handed_to_the_next_request() {
    // The upstream answers as soon as it has the head (an early 401 or 413) and keeps the
    // connection open, reading whatever comes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    let mut config = UpstreamConfig::new("test");
    config.response_timeout = Duration::from_secs(5);
    let up: Upstream<Chan> = Upstream::new(config).unwrap();
    let post = |body: Chan| {
        let mut req = http::Request::post(format!("http://{addr}/v1/files"))
            .body(body)
            .unwrap();
        req.extensions_mut().insert(Classified {
            kind: RouteKind::Passthrough,
            api: Api::Anthropic,
            upstream: Api::Anthropic,
        });
        req
    };
    // Request 1: answered in full while its upload stalls.
    let (upload, rx) = tokio::sync::mpsc::channel(1);
    upload.send(Bytes::from_static(b"partial")).await.unwrap();
    let res = up.clone().oneshot(post(Chan(rx))).await.unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
    // Request 2 goes at once, on a connection of its own.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(Bytes::from_static(b"{}")).await.unwrap();
    drop(tx);
    let res = tokio::time::timeout(Duration::from_secs(2), up.clone().oneshot(post(Chan(rx))))
        .await
        .expect("not queued behind the stalled upload")
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    drop(upload);
}

#[test]
fn the_reaper_starts_again_on_a_new_runtime_after_its_own_ended() {
    let first = tokio::runtime::Runtime::new().unwrap();
    let (addr, seen) = first.block_on(server(Mode::Json));
    let up = upstream(Duration::from_millis(100));
    // A request on one runtime starts the reaper there; the runtime ends with it unfinished.
    let second = tokio::runtime::Runtime::new().unwrap();
    {
        let up = up.clone();
        let addr = addr.clone();
        let once = tokio::runtime::Runtime::new().unwrap();
        // The test server lives on `first`; the request runs on `once`, then `once` ends.
        let (status, _) = once.block_on(async move { exchange(&up, &addr).await });
        assert_eq!(status, 200);
    }
    // On another runtime, a connection given back is reaped after the idle timeout.
    second.block_on(async {
        // The first connection's task ended with its runtime.
        eventually("the first connection closed", || {
            seen.closed.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(exchange(&up, &addr).await.0, 200);
        eventually("the second connection reaped", || {
            seen.closed.load(Ordering::SeqCst) == 2
        })
        .await;
    });
}
