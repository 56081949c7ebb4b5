//! The proxy server: the configured backends behind one listener (plain or TLS), an admin
//! listener, hot reload, access logs and graceful drain.
//!
//! - [`dispatch`]: [`App`], the tower service that answers health checks and hands each request
//!   to its backend's stack, under the configuration current when it arrived.
//! - [`conn`]: per-connection idle and request-body deadlines, one timer per connection.
//! - [`accept`]: the accept loop, graceful drain, and [`run`] which starts everything.
//! - [`admin`]: `/healthz`, `/readyz`, `/config` and hooked routes on the admin address.
//! - [`reload`]: the swappable [`ConfigHandle`] and the SIGHUP / file watcher.
//! - [`tls`]: rustls on the listener, certificate reload, optional client certificates.

pub mod accept;
pub mod admin;
pub mod conn;
pub mod dispatch;
pub mod reload;
pub mod tls;

pub use accept::{ServeOptions, Serving, WATCH_INTERVAL, run, serve, serve_with, shutdown_signal};
pub use admin::{Admin, AdminRoutes, DEFAULT_ADMIN_LISTEN, Health, ReadyCheck};
pub use conn::{BODY_TIMEOUT, IDLE_TIMEOUT, RequestBody};
pub use dispatch::{App, AppFuture, REQUEST_ID, ReqBody, RequestId, ResBody, Runtime};
pub use reload::{ConfigHandle, Loader, ReloadStats, Reloader};
pub use tls::{TlsFiles, TlsHandle};
