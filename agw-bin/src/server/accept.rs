//! The accept loop: one task per connection (TLS handshake first when configured), a watchdog
//! task per connection for its idle and body-read timer, and graceful drain.
//!
//! Drain, on the shutdown signal: readiness turns false at once (load balancers stop sending),
//! the listener keeps accepting for the drain delay, then closes; open requests and streams
//! get the grace period to finish.

use super::admin::{Admin, AdminRoutes, Health, ReadyCheck, serve_admin};
use super::conn::Activity;
use super::dispatch::App;
use super::drain::Drain;
use super::reload::{Loader, ReloadStats, Reloader};
use super::repoll::Repoll;
use super::tls::{TlsFiles, TlsHandle};
use agw_tower::after::RunAfter;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How the accept loop drains and what it wraps connections in.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// How long open requests may take to finish once the listener is closed.
    pub grace: Duration,
    /// How long the listener keeps accepting after the shutdown signal, with readiness false.
    pub drain_delay: Duration,
    /// TLS on the listener.
    pub tls: Option<TlsHandle>,
    /// Readiness state shared with the admin listener.
    pub health: Arc<Health>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets open
/// requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let serving = Serving {
        grace,
        ..Serving::default()
    };
    serve_with(listener, app, shutdown, serving).await
}

/// [`serve`] with drain delay, TLS and shared readiness.
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
    serving: Serving,
) -> std::io::Result<()> {
    let conns = Drain::new();
    let mut builder = auto::Builder::new(StreamExecutor {
        drain: conns.clone(),
    });
    // Slow or idle clients are cut off by the per-connection idle timeout instead.
    builder.http1().header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    // Kept across reloads: the same handle ends every backend's open streams.
    let app_cut = app.handle().current().stream_cut().clone();
    let after = app.after.clone();
    tokio::pin!(shutdown);
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    let mut draining = false;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown, if !draining => {
                draining = true;
                serving.health.start_draining();
                drain.as_mut().reset(tokio::time::Instant::now() + serving.drain_delay);
                continue;
            }
            () = &mut drain, if draining => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let mut app = app.clone();
        app.conn = Some(activity.clone());
        // The body stage answers a late body with a 408 at the deadline; the connection is
        // closed a little after it, for a body the stage does not read.
        let (idle, body) = (
            app.idle_timeout,
            app.body_timeout
                .saturating_add(body_grace(app.body_timeout)),
        );
        match &serving.tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                    .into_owned();
                let conn = conns.watch(conn, |c| c.graceful_shutdown());
                spawn_watched(&conns, conn, activity, idle, body);
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let builder = builder.clone();
                let conns = conns.clone();
                // The handshake on a task of its own, bounded as an idle connection is; the
                // connection is watched from its end (one cut short by a shutdown would not
                // be served anyway, and a half-open one does not hold the drain).
                tokio::spawn(async move {
                    let Ok(Ok(stream)) = tokio::time::timeout(idle, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                        .into_owned();
                    let conn = conns.watch(conn, |c| c.graceful_shutdown());
                    spawn_watched(&conns, conn, activity, idle, body);
                });
            }
        }
    }
    drop(listener);
    let cut = app_cut;
    let drained = conns.shutdown();
    tokio::pin!(drained);
    tokio::select! {
        () = &mut drained => {}
        () = tokio::time::sleep(serving.grace) => {
            // Streams still open end with an error event their clients understand, rather
            // than a dropped connection; they get a moment to be written.
            tracing::warn!(
                target: "agw",
                "shutdown: the grace period of {} s is over; open requests are cut",
                serving.grace.as_secs()
            );
            cut.cut();
            let _ = tokio::time::timeout(CUT_WRITE, drained).await;
        }
    }
    // The last responses' log lines and usage reports, queued to run after them.
    let _ = tokio::time::timeout(CUT_WRITE, after.flush()).await;
    Ok(())
}

/// How long streams cut at the end of the grace period get to write their error event.
const CUT_WRITE: Duration = Duration::from_millis(500);

/// How long after the body deadline the connection's timer closes a connection whose upload
/// is still running: time for the body stage's 408 to be written first.
fn body_grace(body: Duration) -> Duration {
    (body / 10).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// Runs a connection on its own task, ended by a second task when `activity` says the
/// connection expired (idle for `idle`, or a request body arriving for longer than `body`).
/// The connection's task polls nothing but the connection: it wakes on every read and write,
/// and a timer polled beside it would be polled on each of those wake-ups. The watchdog wakes
/// only on its timer, and ends with the connection.
fn spawn_watched<F>(drain: &Drain, conn: F, activity: Arc<Activity>, idle: Duration, body: Duration)
where
    F: Future + Send + 'static,
{
    // Polled again at once when it wakes itself (reading a request body does): see `repoll`.
    // The work after each response (usage, limits, metrics, log line) runs at the end of the
    // poll that wrote it, on this task, which holds the drain until that work is done.
    let mut task = tokio::spawn(drain.hold(RunAfter::new(Repoll::new(async move {
        conn.await;
    }))));
    tokio::spawn(async move {
        tokio::select! {
            // Aborting drops the connection, as the end of a `select!` over both did.
            () = activity.expired(idle, body) => task.abort(),
            // The connection ended.
            _ = &mut task => {}
        }
    });
}

/// Spawns HTTP/2 streams as [`spawn_watched`] does connections: the work after each response
/// runs at the end of the poll that wrote it, and a stream that wakes itself is polled again.
/// Each stream's task holds the drain until its work after the response is done.
#[derive(Clone)]
struct StreamExecutor {
    drain: Drain,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(self.drain.hold(RunAfter::new(Repoll::new(fut))));
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while the server is still starting is not
/// lost (nor does it kill the process with the default action). Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            signal(SignalKind::interrupt()).expect("install SIGINT handler"),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = signals.0.recv() => {}
            _ = signals.1.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Everything the running server needs besides the proxy listener and the app: the options
/// that are not part of the gateway configuration.
#[derive(Default)]
pub struct ServeOptions {
    /// The admin listener, already bound (`None`: no admin endpoints).
    pub admin: Option<TcpListener>,
    /// Extra admin routes (`/metrics`).
    pub admin_routes: Option<AdminRoutes>,
    /// Readiness checks for `/readyz` (e.g. Redis reachable).
    pub ready_checks: Vec<ReadyCheck>,
    /// TLS on the proxy listener.
    pub tls: Option<TlsFiles>,
    /// How long open requests may take to finish once the listener is closed.
    pub grace: Duration,
    /// How long readiness is false before the listener closes (Kubernetes: ~5 s).
    pub drain_delay: Duration,
    /// Reloads the configuration on SIGHUP and file changes; `None`: no reload.
    pub loader: Option<Loader>,
    /// Files whose change triggers a reload (the config file and what it references; the TLS
    /// files are added automatically).
    pub watch: Vec<PathBuf>,
    /// How often watched files are checked ([`WATCH_INTERVAL`] when zero).
    pub watch_interval: Duration,
    /// Reload counts, filled in by [`run`] when a loader is given, for the metrics registry.
    pub stats: Option<Arc<ReloadStats>>,
}

/// How often watched files are checked by default.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("admin", &self.admin)
            .field("tls", &self.tls)
            .field("grace", &self.grace)
            .field("drain_delay", &self.drain_delay)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Loads the TLS files, if any: call before [`run`] to fail early with a clear message.
    pub fn tls_handle(&self) -> Result<Option<TlsHandle>, String> {
        self.tls.as_ref().map(TlsHandle::load).transpose()
    }

    /// The reload counts [`run`] will update, created on first call (hand them to metrics).
    pub fn reload_stats(&mut self) -> Arc<ReloadStats> {
        self.stats.get_or_insert_with(Arc::default).clone()
    }
}

/// Runs the gateway: the proxy (with TLS when configured), the admin listener and the reload
/// watcher, until `shutdown` resolves; then drains.
pub async fn run(
    listener: TcpListener,
    app: App,
    mut opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = opts
        .tls_handle()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let stats = opts.reload_stats();
    if let Some(loader) = opts.loader.take() {
        let mut reloader = Reloader::new(app.handle().clone(), loader).with_stats(stats.clone());
        if let (Some(handle), Some(files)) = (&tls, &opts.tls) {
            reloader = reloader.tls(handle.clone(), files.clone());
        }
        let interval = if opts.watch_interval.is_zero() {
            WATCH_INTERVAL
        } else {
            opts.watch_interval
        };
        tokio::spawn(reloader.watch(std::mem::take(&mut opts.watch), interval, stopped()));
    }
    if let Some(admin_listener) = opts.admin.take() {
        let mut admin = Admin::new(app.handle().clone(), health.clone()).with_stats(stats);
        admin.routes = opts.admin_routes.take();
        admin.ready_checks = std::mem::take(&mut opts.ready_checks);
        tokio::spawn(serve_admin(admin_listener, admin, stopped()));
    }
    let serving = Serving {
        grace: opts.grace,
        drain_delay: opts.drain_delay,
        tls,
        health,
    };
    let result = serve_with(listener, app, shutdown, serving).await;
    let _ = stop_tx.send(true);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks still alive on this runtime, waited for (bounded) to fall to `want`.
    async fn alive_settles_at(want: usize) -> usize {
        let metrics = tokio::runtime::Handle::current().metrics();
        for _ in 0..200 {
            if metrics.num_alive_tasks() == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        metrics.num_alive_tasks()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_watchdog_ends_with_its_connection_and_ends_an_expired_one() {
        let long = Duration::from_secs(3600);
        // A connection that ends: its watchdog ends too, long before its timer.
        let (close, closed) = tokio::sync::oneshot::channel::<()>();
        let drain = Drain::new();
        spawn_watched(
            &drain,
            async move {
                let _ = closed.await;
            },
            Arc::new(Activity::new()),
            long,
            long,
        );
        assert_eq!(alive_settles_at(2).await, 2);
        close.send(()).unwrap();
        assert_eq!(alive_settles_at(0).await, 0);

        // A connection idle past its timeout is dropped (here: a future that never ends).
        let (dropped, gone) = tokio::sync::oneshot::channel::<()>();
        spawn_watched(
            &drain,
            async move {
                let _held = dropped;
                std::future::pending::<()>().await;
            },
            Arc::new(Activity::new()),
            Duration::from_millis(20),
            long,
        );
        assert!(
            tokio::time::timeout(Duration::from_secs(5), gone)
                .await
                .is_ok()
        );
        assert_eq!(alive_settles_at(0).await, 0);
        // Both held the drain until they were gone.
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown())
            .await
            .unwrap();
    }
}
