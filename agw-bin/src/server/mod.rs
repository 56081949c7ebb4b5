//! The proxy server: the configured backends behind one listener (plain or TLS), an admin
//! listener, hot reload, access logs and graceful drain.
//!
//! - [`dispatch`]: [`App`], the tower service that answers health checks and hands each request
//!   to its backend's stack, under the configuration current when it arrived.
//! - [`conn`]: per-connection idle and request-body deadlines, one timer per connection.
//! - [`accept`]: the accept loop, graceful drain (`drain.rs`: connections asked to close, then
//!   waited for), and [`run`] which starts everything. Each connection's task runs the work
//!   after its responses at the end of the poll that wrote them
//!   ([`RunAfter`](agw_tower::after::RunAfter)), and is polled again at once when it wakes
//!   itself (`repoll.rs`): a request stays on one worker thread.
//! - [`fds`]: the open-file limit, raised at start.
//! - [`admin`]: `/healthz`, `/readyz`, `/config` and hooked routes on the admin address.
//! - [`reload`]: the swappable [`ConfigHandle`] and the SIGHUP / file watcher.
//! - [`tls`]: rustls on the listener, certificate reload, optional client certificates.
//!
//! # Example
//!
//! The gateway with an admin listener, hot reload of its config file and a 5 s drain delay:
//!
//! ```no_run
//! use agw_bin::config::{Env, Gateway};
//! use agw_bin::log::AccessLog;
//! use agw_bin::server::{App, ServeOptions, run, shutdown_signal};
//! use std::path::PathBuf;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # async fn example() -> std::io::Result<()> {
//! let path = PathBuf::from("/etc/agw/config.yaml");
//! let load = {
//!     let path = path.clone();
//!     move || Gateway::load(&path, &Env::process())
//! };
//! let gateway = load().map_err(|e| std::io::Error::other(e.to_string()))?;
//! let listener = tokio::net::TcpListener::bind(gateway.listen).await?;
//! let mut opts = ServeOptions {
//!     admin: Some(tokio::net::TcpListener::bind("0.0.0.0:9091").await?),
//!     grace: Duration::from_secs(gateway.shutdown_grace_secs),
//!     drain_delay: Duration::from_secs(5),
//!     loader: Some(Arc::new(load)),
//!     watch: vec![path],
//!     ..ServeOptions::default()
//! };
//! let _reloads = opts.reload_stats(); // for the metrics registry
//! let app = App::new(gateway, AccessLog::Stderr)?;
//! run(listener, app, opts, shutdown_signal()).await
//! # }
//! ```

pub mod accept;
pub mod admin;
pub mod conn;
pub mod dispatch;
mod drain;
pub mod fds;
pub mod reload;
mod repoll;
pub mod tls;

pub use accept::{ServeOptions, Serving, WATCH_INTERVAL, run, serve, serve_with, shutdown_signal};
pub use admin::{Admin, AdminRoutes, DEFAULT_ADMIN_LISTEN, Health, ReadyCheck};
pub use conn::{BODY_TIMEOUT, IDLE_TIMEOUT, RequestBody};
pub use dispatch::{App, AppFuture, REQUEST_ID, ReqBody, RequestId, ResBody, Runtime, full_body};
pub use reload::{ConfigHandle, Loader, ReloadStats, Reloader};
pub use tls::{TlsFiles, TlsHandle};
