//! One structured access-log line per request, emitted as a `tracing` event (target
//! `agw::access`) when the response body ends or is dropped — so streamed responses are logged
//! with their whole duration — and when the client goes away before the response headers
//! (`status=499 cause=client_closed`) or the body deadline closes the connection
//! (`status=408 cause=body_timeout`).
//!
//! A line carries the method, the path (never the query string), the route kind, the backend,
//! the model, the status, the request guard's verdict and rule names, the response guard's
//! (`response_guard`, `response_rules`: read when the body ends, so a stream masked halfway
//! says `mask`), upstream and total latency, the response bytes, agw's request id, why agw
//! ended the request (`cause`: `client_closed`, `body_timeout`, or an upstream failure such as
//! `refused`), and with team features on who called and what it used (`identity`, `team`,
//! the four token counts, `cost_usd`). Never keys, never matched text.
//!
//! [`init`] installs the process's subscriber: logfmt lines (the default) or JSON objects, one
//! per line, on standard error.
//!
//! ```text
//! ts=1764331200.123 method=POST path=/v1/messages kind=messages backend=anthropic model=claude-sonnet-4-5 status=200 guard=allow rules=- upstream_ms=412.50 total_ms=1203.77 bytes=5120 request_id=agw_5f3a9c1e000000000001
//! {"ts":1764331200.123,"method":"POST","path":"/v1/messages",...,"request_id":"agw_5f3a9c1e000000000001"}
//! ```

use crate::config::redact::{
    known_secrets_in_identity, known_secrets_in_path, known_secrets_repeated,
};
use crate::server::RequestId;
use agw_core::route::RouteKind;
use agw_tower::after::AfterResponse;
use agw_tower::guard::GuardReport;
use agw_tower::metrics::Metrics;
use agw_tower::provider::ModelRewrite;
use agw_tower::response::ResponseOutcome;
use agw_tower::upstream::{UpstreamFailure, UpstreamTiming};
use agw_tower::usage::UsageReport;
use bytes::Bytes;
use http::HeaderValue;
use http::Method;
use http::response::Parts;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where access-log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// Standard error.
    Stderr,
    /// Nowhere.
    Off,
}

impl AccessLog {
    pub(crate) fn entry(
        self,
        request: impl FnOnce() -> (Method, String, RouteKind),
        backend: impl Into<Arc<str>>,
        id: &crate::server::RequestId,
    ) -> Option<Box<Entry>> {
        (self == AccessLog::Stderr).then(|| {
            let start = Instant::now();
            let (method, path, kind) = request();
            let backend = backend.into();
            Box::new(Entry {
                id: *id,
                upstream_id: None,
                cause: None,
                method,
                path,
                kind,
                backend,
                start,
                status: 0,
                guard: None,
                model: None,
                upstream: None,
                bytes: 0,
                response: None,
                usage: None,
                cut: None,
            })
        })
    }
}

/// What the access log keeps of a request's [`UsageReport`]: who called and what it used.
/// Never the credential (an [`Identity`](agw_tower::auth::Identity) holds only names).
#[derive(Debug, Clone, Default)]
pub struct LoggedUsage {
    identity: Option<Arc<str>>,
    team: Option<Arc<str>>,
    usage: Option<agw_core::usage::Usage>,
    cost_micros: Option<u64>,
    /// The model the usage layer read (requested, else the response's): the line's model
    /// when no request guard read the body.
    model: Option<String>,
    /// The output count is agw's estimate (a stream cut before its final usage).
    estimated: bool,
}

impl From<&UsageReport> for LoggedUsage {
    fn from(r: &UsageReport) -> Self {
        LoggedUsage {
            identity: r.identity.as_ref().map(|i| i.name.clone()),
            team: r.identity.as_ref().and_then(|i| i.team.clone()),
            usage: r.usage,
            cost_micros: r.cost_micros,
            model: r.request_model.clone().or_else(|| r.response_model.clone()),
            estimated: r.estimated,
        }
    }
}

/// Where a request's usage hook leaves its report for the log line (the usage body sits inside
/// the log body, so it reports first).
pub type UsageSlot = Arc<OnceLock<LoggedUsage>>;

/// A request's log line in the making.
#[derive(Debug)]
pub struct Entry {
    id: RequestId,
    /// The upstream's `request-id`, when it sent one.
    upstream_id: Option<HeaderValue>,
    /// Why agw ended the request itself (`client_closed`, `body_timeout`, or an upstream
    /// failure cause).
    cause: Option<&'static str>,
    method: Method,
    path: String,
    kind: RouteKind,
    backend: Arc<str>,
    start: Instant,
    status: u16,
    guard: Option<GuardReport>,
    model: Option<String>,
    upstream: Option<f64>,
    bytes: u64,
    /// The response guard's outcome, final when the body ends.
    response: Option<ResponseOutcome>,
    /// Filled by the usage layer's per-request hook (team features on).
    usage: Option<UsageSlot>,
    /// The server's shutdown cut: a response still open when it came was cut short.
    cut: Option<agw_tower::upstream::StreamCut>,
}

/// Fills a log entry from the response head.
pub trait WithResponse {
    /// Takes the status and what the layers left in the response extensions.
    fn with_response(self, parts: &Parts) -> Self;
}

impl WithResponse for Option<Box<Entry>> {
    fn with_response(mut self, parts: &Parts) -> Self {
        if let Some(e) = &mut self {
            e.status = parts.status.as_u16();
            // The provider's id (Anthropic's header, or OpenAI's); agw's own answers carry
            // agw's id there: not an upstream's.
            let ours = e.id.ascii();
            e.upstream_id = [
                crate::server::REQUEST_ID,
                http::HeaderName::from_static("x-request-id"),
            ]
            .iter()
            .find_map(|name| parts.headers.get(name).filter(|v| v.as_bytes() != ours))
            .cloned();
            e.guard = parts.extensions.get::<GuardReport>().cloned();
            e.model = match parts.extensions.get::<ModelRewrite>() {
                Some(r) => Some(format!("{}->{}", r.from, r.to)),
                None => e.guard.as_ref().and_then(|g| g.model.clone()),
            };
            e.upstream = parts
                .extensions
                .get::<UpstreamTiming>()
                .map(|t| t.0.as_secs_f64() * 1e3);
            e.response = parts.extensions.get::<ResponseOutcome>().cloned();
            if let Some(f) = parts.extensions.get::<UpstreamFailure>() {
                e.cause = Some(f.name());
            }
            if let Some(r) = parts.extensions.get::<agw_tower::auth::AuthRefused>() {
                e.cause = Some(r.0);
            }
            // A request refused before the usage layer (by the request guard, the access list
            // or the limiter) has no usage report, but its response names who called.
            let reported = parts
                .extensions
                .get::<agw_tower::usage::Reported>()
                .is_some();
            if let Some(who) = parts
                .extensions
                .get::<agw_tower::auth::Identity>()
                .filter(|_| !reported)
            {
                let slot = e.usage_slot();
                let _ = slot.set(LoggedUsage {
                    identity: Some(who.name.clone()),
                    team: who.team.clone(),
                    ..LoggedUsage::default()
                });
            }
        }
        self
    }
}

impl Entry {
    /// A slot for the request's usage report, read when the line is written.
    pub(crate) fn usage_slot(&mut self) -> UsageSlot {
        self.usage.get_or_insert_with(Default::default).clone()
    }

    /// Marks the line `cause=shutdown` and aborted when `cut` has come by the time the
    /// response ends (its stream was cut at the end of the shutdown grace period).
    pub(crate) fn cut_by(&mut self, cut: &agw_tower::upstream::StreamCut) {
        self.cut = Some(cut.clone());
    }

    /// Writes the line of a request that ended before its response headers.
    pub(crate) fn closed(mut self: Box<Self>, status: u16, cause: &'static str) {
        self.status = status;
        self.cause = Some(cause);
        self.write(false, Instant::now());
    }

    /// Writes the line of a request whose response ended at `ended`.
    fn write(&self, complete: bool, ended: Instant) {
        // A response that has no body (to HEAD, or 204/304) is never read to its end.
        let complete = complete || self.method == Method::HEAD || matches!(self.status, 204 | 304);
        let cut = self.cut.as_ref().is_some_and(|c| c.is_cut());
        let complete = complete && !cut;
        let cause = match (self.cause, cut) {
            (None, true) => Some("shutdown"),
            (cause, _) => cause,
        };
        let (verdict, rules) = match &self.guard {
            Some(g) if !g.rules.is_empty() => {
                let mut rules: Vec<&str> = g.rules.iter().map(|r| &**r).collect();
                rules.dedup();
                (g.outcome.name(), rules.join(","))
            }
            Some(g) => (g.outcome.name(), String::new()),
            None => ("skip", String::new()),
        };
        let id = self.id.ascii();
        let id = std::str::from_utf8(&id).expect("a request id is ASCII");
        let total = ended.saturating_duration_since(self.start).as_secs_f64() * 1e3;
        let response_rules = self.response.as_ref().map(|o| {
            let rules = o.rules();
            if rules.is_empty() {
                "-".to_owned()
            } else {
                rules.join(",")
            }
        });
        let used = self.usage.as_ref().and_then(|s| s.get());
        let tokens = used.and_then(|u| u.usage);
        // Text a rule matched in the URL or the model name is not written out (eighth review:
        // a rejected `model` was logged as sent).
        let (matched_model, matched_url) = self
            .guard
            .as_ref()
            .map_or((false, false), |g| (g.matched_model, g.matched_url));
        let path = if matched_url {
            std::borrow::Cow::Borrowed("***")
        } else {
            known_secrets_in_path(&self.path)
        };
        let model = if matched_model {
            std::borrow::Cow::Borrowed("***")
        } else {
            known_secrets_repeated(
                self.model
                    .as_deref()
                    .or_else(|| used.and_then(|u| u.model.as_deref()))
                    .unwrap_or("-"),
            )
        };
        let identity = used
            .and_then(|u| u.identity.as_deref())
            .map(known_secrets_in_identity);
        tracing::info!(
            target: ACCESS,
            method = self.method.as_str(),
            path = &*path,
            kind = self.kind.name(),
            backend = &*self.backend,
            model = &*model,
            status = u64::from(self.status),
            guard = verdict,
            rules = if rules.is_empty() { "-" } else { rules.as_str() },
            response_guard = self.response.as_ref().map(ResponseOutcome::action),
            response_rules = response_rules.as_deref(),
            upstream_ms = self.upstream.unwrap_or(f64::NAN),
            total_ms = total,
            bytes = self.bytes,
            request_id = id,
            upstream_request_id = self.upstream_id.as_ref().and_then(|v| v.to_str().ok()),
            cause,
            identity = identity.as_deref(),
            team = used.and_then(|u| u.team.as_deref()),
            input_tokens = tokens.map(|t| t.input),
            output_tokens = tokens.map(|t| t.output),
            cache_write_tokens = tokens.map(|t| t.cache_write),
            cache_read_tokens = tokens.map(|t| t.cache_read),
            cost_usd = used.and_then(|u| u.cost_micros).map(|c| c as f64 / 1e6),
            estimated = used.is_some_and(|u| u.estimated).then_some(true),
            aborted = (!complete).then_some(true),
        );
    }
}

/// The `tracing` target of access-log events.
pub const ACCESS: &str = "agw::access";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `key=value` pairs, one line per event (the default).
    #[default]
    Logfmt,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("log format `{s}`: expected logfmt or json")),
        }
    }
}

/// Installs the process-wide subscriber writing `format` lines to standard error (info level
/// and above). Returns false when a subscriber was already installed.
pub fn init(format: LogFormat) -> bool {
    tracing::subscriber::set_global_default(Lines { format, sink: None }).is_ok()
}

/// A minimal `tracing` subscriber: events only (agw opens no spans), formatted as one line.
#[derive(Debug)]
struct Lines {
    format: LogFormat,
    /// Where lines go instead of standard error (tests).
    sink: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

impl tracing::Subscriber for Lines {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::INFO
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let line = format_event(self.format, event);
        match &self.sink {
            Some(sink) => sink.lock().unwrap_or_else(|e| e.into_inner()).push(line),
            None => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn format_event(format: LogFormat, event: &tracing::Event<'_>) -> String {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let meta = event.metadata();
    let access = meta.target() == ACCESS;
    let mut v = Visitor {
        format,
        line: String::with_capacity(256),
    };
    match format {
        LogFormat::Logfmt => {
            v.line.push_str("ts=");
            push_timestamp(&mut v.line, ts);
            if !access {
                let _ = write!(
                    v.line,
                    " level={} target={}",
                    meta.level().as_str().to_ascii_lowercase(),
                    meta.target()
                );
            }
        }
        LogFormat::Json => {
            v.line.push_str("{\"ts\":");
            push_timestamp(&mut v.line, ts);
            if !access {
                let _ = write!(
                    v.line,
                    ",\"level\":\"{}\",\"target\":",
                    meta.level().as_str().to_ascii_lowercase()
                );
                push_json_str(&mut v.line, meta.target());
            }
        }
    }
    event.record(&mut v);
    if format == LogFormat::Json {
        v.line.push('}');
    }
    v.line.push('\n');
    v.line
}

struct Visitor {
    format: LogFormat,
    line: String,
}

impl Visitor {
    fn key(&mut self, field: &tracing::field::Field) {
        let name = match field.name() {
            "message" => "msg",
            n => n,
        };
        let (before, after) = match self.format {
            LogFormat::Logfmt => (" ", "="),
            LogFormat::Json => (",\"", "\":"),
        };
        self.line.push_str(before);
        self.line.push_str(name);
        self.line.push_str(after);
    }

    /// Writes an integer without `core::fmt` (every access line has several).
    fn integer(&mut self, value: impl itoa::Integer) {
        self.line.push_str(itoa::Buffer::new().format(value));
    }
}

impl tracing::field::Visit for Visitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.key(field);
        match self.format {
            LogFormat::Logfmt => push_value(&mut self.line, value),
            LogFormat::Json => push_json_str(&mut self.line, value),
        }
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.key(field);
        // NaN stands for "not measured".
        match (value.is_nan(), self.format) {
            (true, LogFormat::Logfmt) => self.line.push('-'),
            (true, LogFormat::Json) => self.line.push_str("null"),
            // Dollars to the micro-dollar the usage layer counts in.
            (false, _) if field.name() == "cost_usd" => push_fixed(&mut self.line, value, 6),
            (false, _) => push_fixed(&mut self.line, value, 2),
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.key(field);
        self.integer(value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.key(field);
        self.integer(value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        // Formatted in place; quoted or escaped afterwards only when it needs it.
        let at = self.line.len();
        let _ = write!(self.line, "{value:?}");
        let plain = match self.format {
            LogFormat::Logfmt => is_bare(&self.line[at..]),
            LogFormat::Json => false,
        };
        if !plain {
            let text = self.line.split_off(at);
            match self.format {
                LogFormat::Logfmt => push_value(&mut self.line, &text),
                LogFormat::Json => push_json_str(&mut self.line, &text),
            }
        }
    }
}

/// Seconds since the epoch, to the millisecond: `1764331200.123`.
fn push_timestamp(line: &mut String, since_epoch: std::time::Duration) {
    line.push_str(itoa::Buffer::new().format(since_epoch.as_secs()));
    let millis = since_epoch.subsec_millis();
    line.push('.');
    for digit in [millis / 100, millis / 10 % 10, millis % 10] {
        line.push(char::from(b'0' + digit as u8));
    }
}

/// Whether a logfmt value can go unquoted.
fn is_bare(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=')
}

fn push_value(line: &mut String, v: &str) {
    if is_bare(v) {
        line.push_str(v);
    } else {
        let _ = write!(line, "{v:?}");
    }
}

fn push_json_str(line: &mut String, v: &str) {
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.push('"');
        line.push_str(v);
        line.push('"');
        return;
    }
    match serde_json::to_string(v) {
        Ok(s) => line.push_str(&s),
        Err(_) => line.push_str("null"),
    }
}

/// Writes a non-negative `value` with `decimals` places, as `{value:.decimals$}` would, without
/// `core::fmt`'s exact float formatting (latencies and costs are on every line).
fn push_fixed(line: &mut String, value: f64, decimals: u32) {
    let unit = 10u64.pow(decimals);
    let scaled = (value * unit as f64).round();
    if !(0.0..1e18).contains(&scaled) {
        let _ = write!(line, "{value:.*}", decimals as usize);
        return;
    }
    let scaled = scaled as u64;
    let mut buf = itoa::Buffer::new();
    line.push_str(buf.format(scaled / unit));
    line.push('.');
    let frac = buf.format(scaled % unit);
    for _ in frac.len()..decimals as usize {
        line.push('0');
    }
    line.push_str(frac);
}

pin_project! {
    /// A response body that writes the access-log line when it ends or is dropped, and counts
    /// the response guard's rules in the metrics then.
    pub struct LogBody<B> {
        #[pin]
        inner: B,
        // Dropped after `inner`: the usage report and the response guard's outcome of a body
        // dropped halfway are final once the layers inside have seen the drop.
        end: End,
    }
}

/// What [`LogBody`] does when the body ends: at most once, at the end or on drop.
struct End {
    entry: Option<Box<Entry>>,
    metrics: Option<(Arc<Metrics>, ResponseOutcome)>,
    /// Where the line is written, after the response (else at once).
    after: Option<AfterResponse>,
}

impl End {
    fn finish(&mut self, complete: bool) {
        let (metrics, entry) = (self.metrics.take(), self.entry.take());
        if metrics.is_none() && entry.is_none() {
            return;
        }
        let ended = Instant::now();
        let write = move || {
            if let Some((metrics, outcome)) = metrics {
                let action = outcome.action();
                for rule in outcome.rules() {
                    metrics.guard_outcome(&rule, action, "response");
                }
            }
            if let Some(e) = entry {
                e.write(complete, ended);
            }
        };
        match self.after.take() {
            Some(after) => after.run(write),
            None => write(),
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.finish(false);
    }
}

impl<B> LogBody<B> {
    /// `metrics`: where the response guard's rules are counted when the body ends (team
    /// features on and a response the guard inspected).
    pub(crate) fn new(
        inner: B,
        entry: Option<Box<Entry>>,
        metrics: Option<(Arc<Metrics>, ResponseOutcome)>,
        after: Option<AfterResponse>,
    ) -> Self {
        Self {
            inner,
            end: End {
                entry,
                metrics,
                after,
            },
        }
    }
}

impl<B> http_body::Body for LogBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let res = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        match &res {
            Some(Ok(frame)) => {
                if let (Some(e), Some(d)) = (this.end.entry.as_mut(), frame.data_ref()) {
                    e.bytes += d.len() as u64;
                }
                // Servers stop polling a body that says it has ended.
                if this.inner.is_end_stream() {
                    this.end.finish(true);
                }
            }
            None => this.end.finish(true),
            Some(Err(_)) => {}
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn capture(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let lines = Lines {
            format,
            sink: Some(sink.clone()),
        };
        tracing::subscriber::with_default(lines, f);
        sink.lock().unwrap().clone()
    }

    fn entry() -> Box<Entry> {
        let id = crate::server::RequestId::new(1, 1);
        let mut e = AccessLog::Stderr
            .entry(
                || (Method::POST, "/v1/my path".to_owned(), RouteKind::Messages),
                "anthropic",
                &id,
            )
            .unwrap();
        e.status = 200;
        e.bytes = 42;
        e
    }

    /// The hand-written number formatting writes what `core::fmt` would.
    #[test]
    fn numbers_are_written_as_core_fmt_writes_them() {
        for value in [
            0.0, 0.004, 0.005, 0.29, 1.0, 12.5, 412.5, 1203.77, 99999.999, 1e17,
        ] {
            let mut line = String::new();
            push_fixed(&mut line, value, 2);
            assert_eq!(line, format!("{value:.2}"), "{value}");
        }
        for micros in [0u64, 1, 1234, 999_999, 1_000_000, 123_456_789] {
            let value = micros as f64 / 1e6;
            let mut line = String::new();
            push_fixed(&mut line, value, 6);
            assert_eq!(line, format!("{value:.6}"), "{value}");
        }
        for huge in [1e19, f64::INFINITY, -1.5] {
            let mut line = String::new();
            push_fixed(&mut line, huge, 2);
            assert_eq!(line, format!("{huge:.2}"));
        }
        for (secs, millis, text) in [
            (1, 5, "1.005"),
            (1764331200, 123, "1764331200.123"),
            (0, 0, "0.000"),
        ] {
            let mut line = String::new();
            push_timestamp(
                &mut line,
                std::time::Duration::new(secs, millis * 1_000_000 + 999),
            );
            assert_eq!(line, text);
        }
    }

    #[test]
    fn responses_without_a_body_are_not_logged_as_aborted() {
        let mut head = entry();
        head.method = Method::HEAD;
        let lines = capture(LogFormat::Logfmt, || head.write(false, Instant::now()));
        assert!(!lines[0].contains("aborted"), "{}", lines[0]);
        let mut no_content = entry();
        no_content.status = 204;
        let lines = capture(LogFormat::Logfmt, || {
            no_content.write(false, Instant::now())
        });
        assert!(!lines[0].contains("aborted"), "{}", lines[0]);
        let lines = capture(LogFormat::Logfmt, || entry().write(false, Instant::now()));
        assert!(lines[0].contains("aborted=true"), "{}", lines[0]);
    }

    #[test]
    fn logfmt_keeps_todays_line_and_quotes_what_needs_it() {
        let lines = capture(LogFormat::Logfmt, || entry().write(true, Instant::now()));
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.starts_with("ts="), "{line}");
        let rest = &line[line.find(' ').unwrap()..];
        let rest = rest.replace(|c: char| c.is_ascii_digit(), "0");
        assert_eq!(
            rest,
            " method=POST path=\"/v0/my path\" kind=Messages backend=anthropic model=- \
             status=000 guard=skip rules=- upstream_ms=- total_ms=0.00 bytes=00 request_id=agw_00000000000000000000\n"
        );
    }

    #[test]
    fn json_lines_parse_and_carry_the_same_fields() {
        let lines = capture(LogFormat::Json, || {
            entry().closed(499, "client_closed");
            tracing::error!(target: "agw", "reload failed: \"x\"");
        });
        assert_eq!(lines.len(), 2);
        let access: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(access["status"], 499);
        assert_eq!(access["cause"], "client_closed");
        assert_eq!(access["aborted"], true);
        assert_eq!(access["path"], "/v1/my path");
        assert_eq!(access["upstream_ms"], serde_json::Value::Null);
        assert_eq!(access["request_id"], "agw_00000001000000000001");
        let msg: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(msg["level"], "error");
        assert_eq!(msg["msg"], "reload failed: \"x\"");
    }

    /// A request the limiter or an access list refused has no usage report; its response
    /// names who called, and the line says so (found by the third red-team review: an operator
    /// could not tell who was throttled).
    #[test]
    fn a_refused_request_is_logged_with_who_called() {
        let mut res = http::Response::builder().status(429).body(()).unwrap();
        res.extensions_mut().insert(agw_tower::auth::Identity {
            name: "alice".into(),
            team: Some("platform".into()),
            kind: agw_tower::auth::IdentityKind::Key,
            groups: Vec::new(),
        });
        let (parts, ()) = res.into_parts();
        let lines = capture(LogFormat::Json, || {
            let e = Some(entry()).with_response(&parts).unwrap();
            e.write(true, Instant::now());
        });
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["status"], 429);
        assert_eq!(line["identity"], "alice");
        assert_eq!(line["team"], "platform");
        assert!(line.get("input_tokens").is_none(), "{line}");
        // A token's `sub` an identity provider made look like a key is masked, as metrics
        // redact it (twelfth session's black-box review).
        let mut res = http::Response::builder().status(200).body(()).unwrap();
        res.extensions_mut().insert(agw_tower::auth::Identity {
            name: "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123".into(),
            team: None,
            kind: agw_tower::auth::IdentityKind::Jwt,
            groups: Vec::new(),
        });
        let (parts, ()) = res.into_parts();
        let lines = capture(LogFormat::Json, || {
            let e = Some(entry()).with_response(&parts).unwrap();
            e.write(true, Instant::now());
        });
        assert!(!lines[0].contains("sk-ant-api03"), "{}", lines[0]);
        assert!(lines[0].contains("\"identity\":\"***\""), "{}", lines[0]);
    }

    #[test]
    fn usage_fields_come_from_the_report_and_cost_keeps_micro_dollars() {
        let report = UsageReport {
            identity: Some(agw_tower::auth::Identity {
                name: "alice".into(),
                team: Some("platform".into()),
                kind: agw_tower::auth::IdentityKind::Key,
                groups: Vec::new(),
            }),
            backend: None,
            provider: None,
            route: RouteKind::Messages,
            api: agw_core::api::Api::Anthropic,
            status: http::StatusCode::OK,
            request_model: None,
            response_model: None,
            usage: Some(agw_core::usage::Usage {
                input: 10,
                output: 3,
                cache_write: 2,
                cache_read: 1,
            }),
            cost_micros: Some(1234),
            estimate: None,
            estimated_cost_micros: None,
            estimated: false,
            streamed: false,
            complete: true,
            duration: std::time::Duration::ZERO,
            time_to_first_byte: None,
            time_to_headers: None,
            upstream: None,
        };
        let lines = capture(LogFormat::Json, || {
            let mut e = entry();
            let slot = e.usage_slot();
            slot.set(LoggedUsage::from(&report)).unwrap();
            e.write(true, Instant::now());
            // Without a report (and without a response guard) the fields are absent.
            entry().write(true, Instant::now());
        });
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["identity"], "alice");
        assert_eq!(line["team"], "platform");
        assert_eq!(line["input_tokens"], 10);
        assert_eq!(line["output_tokens"], 3);
        assert_eq!(line["cache_write_tokens"], 2);
        assert_eq!(line["cache_read_tokens"], 1);
        assert!(lines[0].contains("\"cost_usd\":0.001234"), "{}", lines[0]);
        let logfmt = capture(LogFormat::Logfmt, || {
            let mut e = entry();
            e.usage_slot().set(LoggedUsage::from(&report)).unwrap();
            e.write(true, Instant::now());
        });
        assert!(
            logfmt[0].contains(
                " identity=alice team=platform input_tokens=10 output_tokens=3 \
                 cache_write_tokens=2 cache_read_tokens=1 cost_usd=0.001234\n"
            ),
            "{}",
            logfmt[0]
        );
        let bare: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        for key in ["identity", "input_tokens", "cost_usd", "response_guard"] {
            assert!(bare.get(key).is_none(), "{key}: {bare}");
        }
        assert!(!lines[0].contains("estimated"), "{}", lines[0]);
        // A stream cut before its final usage: the line says its output is an estimate.
        let cut = UsageReport {
            estimated: true,
            complete: false,
            ..report
        };
        let logfmt = capture(LogFormat::Logfmt, || {
            let mut e = entry();
            e.usage_slot().set(LoggedUsage::from(&cut)).unwrap();
            e.write(false, Instant::now());
        });
        assert!(
            logfmt[0].contains(" cost_usd=0.001234 estimated=true aborted=true\n"),
            "{}",
            logfmt[0]
        );
    }
}
