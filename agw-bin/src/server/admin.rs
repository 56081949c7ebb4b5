//! The admin listener, apart from the proxy port: `/healthz` (alive), `/readyz` (ready for
//! traffic: configuration loaded, readiness checks pass, not draining), `/config` (the
//! configuration in force with secrets redacted, and `pending_restart`: what a reload read that
//! waits for a restart) and any routes a hook adds (`/metrics`).

use super::dispatch::ResBody;
use super::reload::{ConfigHandle, ReloadStats};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};
use tokio::net::TcpListener;

/// The default admin address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9091";

/// Serving state shared by the proxy's accept loop and the admin listener.
#[derive(Debug, Default)]
pub struct Health {
    draining: AtomicBool,
}

impl Health {
    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A readiness check (e.g. Redis reachable): `Err` names what is not ready.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Extra admin routes (e.g. `/metrics`): `Some` answers the request, `None` passes.
pub type AdminRoutes = Arc<dyn Fn(&Request<Incoming>) -> Option<Response<ResBody>> + Send + Sync>;

/// What the admin listener serves.
#[derive(Clone, Default)]
pub struct Admin {
    pub(crate) config: Option<ConfigHandle>,
    pub(crate) health: Arc<Health>,
    pub(crate) stats: Option<Arc<ReloadStats>>,
    /// Extra routes, asked first.
    pub routes: Option<AdminRoutes>,
    /// Readiness checks, each given [`CHECK_TIMEOUT`].
    pub ready_checks: Vec<ReadyCheck>,
}

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("health", &self.health)
            .field("ready_checks", &self.ready_checks.len())
            .finish_non_exhaustive()
    }
}

fn json(status: StatusCode, body: String) -> Response<ResBody> {
    let mut res = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

impl Admin {
    /// Admin endpoints for the gateway behind `config`, with readiness from `health`.
    pub fn new(config: ConfigHandle, health: Arc<Health>) -> Admin {
        Admin {
            config: Some(config),
            health,
            ..Admin::default()
        }
    }

    /// Shows reload counts in `/config`.
    pub fn with_stats(mut self, stats: Arc<ReloadStats>) -> Admin {
        self.stats = Some(stats);
        self
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<ResBody> {
        if let Some(routes) = &self.routes
            && let Some(res) = routes(&req)
        {
            return res;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"error":"method not allowed"}"#.into(),
            );
        }
        match req.uri().path() {
            "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
            "/readyz" => self.ready().await,
            "/config" => self.config(),
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.into()),
        }
    }

    async fn ready(&self) -> Response<ResBody> {
        if self.health.is_draining() {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"draining"}"#.into(),
            );
        }
        if self.config.is_none() {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"no configuration"}"#.into(),
            );
        }
        for check in &self.ready_checks {
            let reason = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => "readiness check timed out".to_owned(),
            };
            let body = serde_json::json!({"status": "not ready", "reason": reason});
            return json(StatusCode::SERVICE_UNAVAILABLE, body.to_string());
        }
        json(StatusCode::OK, r#"{"status":"ready"}"#.into())
    }

    fn config(&self) -> Response<ResBody> {
        let Some(handle) = &self.config else {
            return json(StatusCode::SERVICE_UNAVAILABLE, "{}".into());
        };
        let rt = handle.current();
        let gw = &rt.gateway;
        let mut body = serde_json::json!({
            "listen": gw.listen.to_string(),
            "max_body_bytes": gw.max_body_bytes,
            "shutdown_grace_secs": gw.shutdown_grace_secs,
            "backends": gw.summary().iter().map(|l| redact(l)).collect::<Vec<_>>(),
            "notes": gw.notes.iter().map(|l| redact(l)).collect::<Vec<_>>(),
        });
        if let Some(team) = &gw.team {
            body["team"] = team.summary().iter().map(|l| redact(l)).collect();
        }
        // What a reload read but a restart applies: the values above are the ones in force.
        if !gw.pending_restart.is_empty() {
            body["pending_restart"] = gw.pending_restart.clone().into();
        }
        if let Some(s) = &self.stats {
            body["reloads"] = serde_json::json!({
                "ok": s.ok(),
                "failed": s.failed(),
                "last_ok_unix": s.last_ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
            });
        }
        json(StatusCode::OK, body.to_string())
    }
}

/// Hides what may be a secret in a configuration line: the user-info of URLs
/// (`scheme://user:pass@host`) and the values of query parameters whose names suggest one
/// (`key`, `token`, `secret`, `password`, `sig`, `auth`).
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&redact_word(word));
    }
    out
}

fn redact_word(word: &str) -> String {
    let Some(scheme_end) = word.find("://") else {
        return word.to_owned();
    };
    let (head, rest) = word.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = head.to_owned();
    match authority.rfind('@') {
        Some(at) => {
            out.push_str("[redacted]");
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let Some(q) = tail.find('?') else {
        out.push_str(tail);
        return out;
    };
    out.push_str(&tail[..=q]);
    let query = &tail[q + 1..];
    let (query, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if secret_name(k) => {
                out.push_str(k);
                out.push_str("=[redacted]");
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
    out
}

fn secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "key", "token", "secret", "password", "passwd", "sig", "auth",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Serves `admin` on `listener` until `stop` resolves.
pub async fn serve_admin(listener: TcpListener, admin: Admin, stop: impl Future<Output = ()>) {
    let admin = Arc::new(admin);
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let admin = admin.clone();
        let svc = hyper::service::service_fn(move |req| {
            let admin = admin.clone();
            async move { Ok::<_, std::convert::Infallible>(admin.answer(req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            // Probes are short; an admin connection gets a minute at most.
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_userinfo_and_secret_query_values() {
        let cases = [
            (
                "at http://user:pass@host:80/v1, x",
                "at http://[redacted]@host:80/v1, x",
            ),
            (
                "https://h/p?key=abc&x=1#f",
                "https://h/p?key=[redacted]&x=1#f",
            ),
            (
                "https://h/p?api_token=t",
                "https://h/p?api_token=[redacted]",
            ),
            ("https://api.anthropic.com", "https://api.anthropic.com"),
            ("no url here", "no url here"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
