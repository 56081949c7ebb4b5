//! Shared helpers for the integration tests: an in-process agw in front of the mock provider,
//! and a small HTTP client. Everything listens on 127.0.0.1 with a free port.
#![allow(dead_code)]

pub mod process;

use agw_bin::config::{Env, Gateway, Overrides};
use agw_bin::log::AccessLog;
use agw_bin::server::{App, serve};
use agw_mock::MockProvider;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub struct Agw {
    pub addr: SocketAddr,
    pub mock: MockProvider,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Agw {
    /// agw with `config` (native YAML or manifests), every backend pointed at a fresh mock.
    pub async fn start(config: &str) -> Agw {
        Self::start_env(config, Env::default()).await
    }

    pub async fn start_env(config: &str, env: Env) -> Agw {
        let mock = MockProvider::start().await.unwrap();
        Self::start_with_mock(config, env, mock).await
    }

    pub async fn start_with_mock(config: &str, env: Env, mock: MockProvider) -> Agw {
        let base = mock.base_url();
        Self::start_raw(config, env, Some(base), mock).await
    }

    pub async fn start_raw(
        config: &str,
        env: Env,
        base: Option<String>,
        mock: MockProvider,
    ) -> Agw {
        Self::start_idle(config, env, base, mock, agw_bin::server::IDLE_TIMEOUT).await
    }

    /// [`Agw::start_raw`] with connections closed after `idle` without a request in flight.
    pub async fn start_idle(
        config: &str,
        env: Env,
        base: Option<String>,
        mock: MockProvider,
        idle: Duration,
    ) -> Agw {
        let mut gw = Gateway::parse("test.yaml", config, &env).unwrap();
        gw.apply(&Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            base_urls: base.map(|b| vec![(None, b)]).unwrap_or_default(),
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind(gw.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = App::new(gw, AccessLog::Off).unwrap().idle_timeout(idle);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        Agw {
            addr,
            mock,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(TIMEOUT, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends a request and returns the response with its whole body.
pub async fn send(req: Request<Full<Bytes>>) -> (Response<()>, Bytes) {
    let res = tokio::time::timeout(TIMEOUT, client().request(req))
        .await
        .expect("response in time")
        .expect("request sent");
    let (parts, body) = res.into_parts();
    let bytes = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("body in time")
        .expect("body read")
        .to_bytes();
    (Response::from_parts(parts, ()), bytes)
}

pub async fn open(req: Request<Full<Bytes>>) -> Response<Incoming> {
    tokio::time::timeout(TIMEOUT, client().request(req))
        .await
        .expect("response in time")
        .expect("request sent")
}

pub fn json_post(url: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .header("x-api-key", "sk-client")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

pub const SEED_DEFAULT: &str = include_str!("../../src/config/builtin.yaml");
