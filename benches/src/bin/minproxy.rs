//! `minproxy`: the smallest correct HTTP reverse proxy, the floor the load bench measures agw
//! against.
//!
//! It forwards method, path and query, headers (less the hop-by-hop ones) and the body to one
//! upstream over a pooled keep-alive hyper client, and streams the response back frame by frame.
//! It parses nothing: no JSON, no routing, no guard, no logging. The server side is set up as
//! agw's is (hyper-util `auto` builder, HTTP/1.1 and h2c, `TCP_NODELAY`, a multi-threaded tokio
//! runtime), so the difference between the two is what agw does on top.
//!
//! ```text
//! minproxy --upstream http://127.0.0.1:PORT [--listen 127.0.0.1:0]
//! ```
//!
//! Prints `minproxy listening on http://IP:PORT` once bound and serves until killed or
//! interrupted (SIGINT ends it normally, so a profiling build writes its counters: pgo/train).

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: minproxy --upstream http://HOST:PORT [--listen IP:PORT]

A minimal passthrough reverse proxy (the load bench's baseline): forwards every request to the
upstream and streams the response back, parsing nothing.

  --upstream URL     where to forward (http only)
  --listen IP:PORT   address to listen on (default 127.0.0.1:0, a free port)

Prints `minproxy listening on http://IP:PORT` once bound; serves until killed or interrupted.";

type Upstream = Client<HttpConnector, Incoming>;
type ResBody = Either<Incoming, Empty<Bytes>>;

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn main() -> ExitCode {
    let (listen, upstream) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("minproxy: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("minproxy: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        tokio::select! {
            served = serve(listen, upstream) => served,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("minproxy: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<(SocketAddr, Uri)>, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut upstream = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?;
            }
            "--upstream" => {
                let v = value("--upstream")?;
                let uri: Uri = v.parse().map_err(|e| format!("--upstream {v:?}: {e}"))?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(format!("--upstream {v:?}: expected http://HOST:PORT"));
                }
                upstream = Some(uri);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let upstream = upstream.ok_or("--upstream is required")?;
    Ok(Some((listen, upstream)))
}

async fn serve(listen: SocketAddr, upstream: Uri) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "minproxy listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let authority = upstream.authority().expect("checked in parse_args").clone();

    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors and the like: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        let service =
            service_fn(move |request| forward(client.clone(), authority.clone(), request));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

async fn forward(
    client: Upstream,
    authority: hyper::http::uri::Authority,
    request: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let mut uri = Uri::builder().scheme("http").authority(authority);
    if let Some(path_and_query) = parts.uri.path_and_query() {
        uri = uri.path_and_query(path_and_query.clone());
    }
    parts.uri = match uri.build() {
        Ok(uri) => uri,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    // The client speaks HTTP/1.1 upstream whatever the downstream protocol was.
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn status(code: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(Either::Right(Empty::new()));
    *response.status_mut() = code;
    response
}
