use super::{Shared, UsageHooks, UsageReport};
use agw_core::stream::SseDecoder;
use agw_core::usage::UsageCounter;
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The most bytes of a JSON response held to read its usage at the end; a larger body is
/// forwarded uncounted (the limiter keeps its estimate).
pub const MAX_JSON: usize = 8 << 20;
/// The largest server-sent event read for usage (OpenAI's `response.completed` repeats the
/// whole response).
const MAX_EVENT: usize = 8 << 20;

/// What the layer knows before the response: the report to fill and where it goes.
#[derive(Debug)]
pub(crate) struct Pending {
    pub report: UsageReport,
    pub hooks: UsageHooks,
    pub shared: Arc<Shared>,
    pub start: Instant,
    pub counted: bool,
    /// A passthrough call: its usage is read in any shape a server reports it, and nothing is
    /// estimated without it ([`UsageCounter::any_shape`]).
    pub any_shape: bool,
    pub timing: crate::metrics::UpstreamTiming,
    /// The request body's size and its output cap, for [`UsageReport::estimate`].
    pub request_bytes: u64,
    pub cap: Option<u64>,
    /// A request rule matched text in the model name: priced by it, reported without it
    /// (metrics labels, like the access log, must not show it).
    pub hide_model: bool,
    /// agw asked for the stream's usage chunk ([`UsageChunkAdded`](super::UsageChunkAdded)):
    /// counted, not forwarded.
    pub drop_usage_chunk: bool,
}

#[derive(Debug)]
enum Reader {
    None,
    Json(JsonBody),
    Sse(SseDecoder, Vec<Bytes>),
    /// JSON lines (Ollama's streams): the line read so far.
    Lines(Vec<u8>),
    /// The provider's JSON response that a response guard replaced with its own error: its
    /// usage is counted, the error's bytes are not read.
    Replaced(Bytes),
}

/// A JSON body held to its end: the common one-frame body is kept as it came (no copy).
#[derive(Debug, Default)]
enum JsonBody {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl JsonBody {
    fn len(&self) -> usize {
        match self {
            JsonBody::Empty => 0,
            JsonBody::One(b) => b.len(),
            JsonBody::Many(b) => b.len(),
        }
    }

    fn push(&mut self, chunk: &Bytes) {
        match self {
            JsonBody::Empty => *self = JsonBody::One(chunk.clone()),
            JsonBody::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + chunk.len());
                all.extend_from_slice(first);
                all.extend_from_slice(chunk);
                *self = JsonBody::Many(all);
            }
            JsonBody::Many(all) => all.extend_from_slice(chunk),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            JsonBody::Empty => &[],
            JsonBody::One(b) => b,
            JsonBody::Many(b) => b,
        }
    }
}

#[derive(Debug)]
struct State {
    pending: Pending,
    counter: UsageCounter,
    reader: Reader,
}

impl State {
    /// Whether the body forwards the events the reader completes (`out` of [`Self::data`])
    /// instead of the frames: a stream whose usage chunk agw asked for, while it is read.
    fn filters(&self) -> bool {
        self.pending.drop_usage_chunk && matches!(self.reader, Reader::Sse(..))
    }

    /// The bytes of an unfinished event the stream ended with, counted, to forward.
    fn tail(&mut self) -> Option<Bytes> {
        let Reader::Sse(dec, _) = &mut self.reader else {
            return None;
        };
        let tail = dec.finish()?;
        self.counter.event(&tail);
        Some(tail)
    }

    /// Reads a chunk. When [`Self::filters`], the events it completes go to `out` (not the
    /// usage chunk agw asked for); an event too large to read ends the filtering, and what
    /// was held goes to `out`.
    fn data(&mut self, chunk: &Bytes, mut out: Option<&mut Vec<Bytes>>) {
        if self.pending.report.time_to_first_byte.is_none() {
            self.pending.report.time_to_first_byte = Some(self.pending.start.elapsed());
        }
        match &mut self.reader {
            Reader::None | Reader::Replaced(_) => {}
            Reader::Json(buf) => {
                if buf.len() + chunk.len() > MAX_JSON {
                    self.reader = Reader::None;
                } else {
                    buf.push(chunk);
                }
            }
            Reader::Sse(dec, events) => {
                if dec.push(chunk, events).is_err() {
                    if let Some(out) = out {
                        out.extend(dec.finish());
                    }
                    self.reader = Reader::None;
                    return;
                }
                for e in events.drain(..) {
                    self.counter.event(&e);
                    if let Some(out) = out.as_deref_mut()
                        && !agw_core::usage::is_usage_chunk(&e)
                    {
                        out.push(e);
                    }
                }
            }
            Reader::Lines(line) => {
                let mut rest = &chunk[..];
                while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                    if line.is_empty() {
                        self.counter.line(&rest[..i]);
                    } else {
                        line.extend_from_slice(&rest[..i]);
                        self.counter.line(line);
                        line.clear();
                    }
                    rest = &rest[i + 1..];
                }
                if line.len() + rest.len() > MAX_EVENT {
                    self.reader = Reader::None;
                } else {
                    line.extend_from_slice(rest);
                }
            }
        }
    }

    /// Reports now, or queues the report to run after the response
    /// ([`UsageLayer::after`](super::UsageLayer::after)); the duration ends now either way.
    fn end(self: Box<Self>, complete: bool) {
        let ended = Instant::now();
        match self.pending.shared.after.clone() {
            Some(after) => after.run(move || self.finish(complete, ended)),
            None => self.finish(complete, ended),
        }
    }

    fn finish(mut self, complete: bool, ended: Instant) {
        // A token per 4 bytes of the request: what stands for input no response reported.
        let input_estimate = self.pending.request_bytes.div_ceil(4);
        let mut estimated = false;
        // A stream that ended before its final usage: charged what it delivered (below).
        let mut cut = false;
        match &mut self.reader {
            Reader::Json(buf) => self.counter.json(buf.bytes()),
            Reader::Replaced(body) => self.counter.json(body),
            Reader::Sse(dec, _) => {
                if let Some(e) = dec.finish() {
                    self.counter.event(&e);
                }
                // Cut before its final usage — read to its end or not: a response guard's
                // refusal ends the body in an error event — the stream is charged the output
                // it delivered (the one place this is decided: limits and budgets settle
                // what the report says).
                if !self.counter.ended() {
                    cut = true;
                    estimated = self.counter.cut_capped(input_estimate, self.pending.cap);
                }
            }
            Reader::Lines(line) => self.counter.line(line),
            Reader::None => {}
        }
        let Pending {
            mut report,
            hooks,
            shared,
            start,
            counted,
            cap,
            hide_model,
            ..
        } = self.pending;
        report.complete = complete;
        report.estimated = estimated;
        report.duration = ended.saturating_duration_since(start);
        // What a stream's deltas amount to (nothing for other bodies), at most the request's
        // cap where the upstream kept to it.
        let delivered = self.counter.output_estimate_capped(cap);
        // A stream cut before its end was charged what it delivered (above); one that ended,
        // or a JSON body, with usage but no output count is charged the estimate.
        let output_counted = self.counter.output_counted() || cut;
        if let Some((usage, model)) = self.counter.finish() {
            report.usage = Some(usage);
            report.response_model = model;
        }
        // A usage report without an output count, on a route that generates: the output is
        // charged as a response without usage is, its cap (or the default) or what a stream
        // delivered, whichever is more — not as none.
        if let Some(usage) = report.usage.as_mut()
            && !output_counted
            && counted
            && report.status.is_success()
            && generates(report.route)
        {
            usage.output = cap.unwrap_or(shared.default_estimate).max(delivered);
            report.estimated = true;
        }
        if let (Some(usage), Some(model)) = (&report.usage, report.model()) {
            report.cost_micros = shared.prices.cost_micros(model, usage);
        }
        if report.usage.is_none() && counted && report.status.is_success() {
            // No usage to charge: limits and budgets are charged an estimate, not nothing (a
            // stream without usage would otherwise spend no budget).
            // No cap: what the limiter holds for a request without one. Never less than the
            // stream delivered (regression round: `n: 8`, or no cap, streamed past it).
            let estimate = agw_core::usage::Usage {
                input: input_estimate,
                output: cap.unwrap_or(shared.default_estimate).max(delivered),
                ..Default::default()
            };
            report.estimated_cost_micros = report
                .model()
                .and_then(|m| shared.prices.cost_micros(m, &estimate));
            report.estimate = Some(estimate);
        }
        if hide_model {
            report.request_model = None;
            report.response_model = None;
        }
        for sink in &shared.sinks {
            sink.report(&report);
        }
        for hook in &hooks.0 {
            hook(&report);
        }
    }
}

/// Whether responses of `route` report output a model generated (not embeddings, token
/// counts or listings, nor a passthrough call, which is charged what it reports).
fn generates(route: agw_core::route::RouteKind) -> bool {
    use agw_core::route::RouteKind;
    matches!(
        route,
        RouteKind::Messages
            | RouteKind::Completions
            | RouteKind::Responses
            | RouteKind::LegacyCompletions
            | RouteKind::Complete
    )
}

pin_project! {
    /// A response body that counts usage as it streams and reports once at its end (or
    /// drop). Frames pass unchanged, so `Content-Length`, `is_end_stream` and `size_hint` are
    /// the inner body's — except in a stream whose usage chunk agw asked for
    /// ([`UsageChunkAdded`](super::UsageChunkAdded)): there the complete events of each frame
    /// go on (an unfinished one waits for its end, at most [`MAX_EVENT`] bytes), without that
    /// chunk, and the length is unknown.
    pub struct UsageBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<State>>,
        // The unfinished event a filtered stream ended with, to send before its end.
        tail: Option<Bytes>,
        // A filtered stream's inner body has ended.
        done: bool,
    }

    impl<B> PinnedDrop for UsageBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                state.end(false);
            }
        }
    }
}

impl<B> std::fmt::Debug for UsageBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageBody").finish_non_exhaustive()
    }
}

/// Reports a request that got no response to count: the client went away before the response
/// headers (status 499, as proxies log it), or the upstream call failed (502). The report is
/// incomplete and carries no usage, so a limiter hook gives back what the request held, and the
/// access log and metrics still see the request. Reported at once: there is no response to
/// keep the work off.
pub(crate) fn abandon(mut pending: Pending, status: http::StatusCode) {
    pending.report.status = status;
    let counter = UsageCounter::new(pending.report.api);
    State {
        pending,
        counter,
        reader: Reader::None,
    }
    .finish(false, Instant::now());
}

impl<B> UsageBody<B> {
    pub(crate) fn new(inner: B, mut pending: Pending, parts: &mut http::response::Parts) -> Self {
        pending.report.status = parts.status;
        let encoded = parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() != b"identity");
        let replaced = parts.extensions.get::<crate::response::ReplacedResponse>();
        let reads = pending.counted || pending.any_shape;
        let reader = if let (true, Some(r)) = (reads, replaced) {
            Reader::Replaced(r.0.clone())
        } else if !reads || encoded {
            Reader::None
        } else {
            match crate::framing::framing(&parts.headers) {
                crate::framing::Framing::EventStream => {
                    pending.report.streamed = true;
                    Reader::Sse(SseDecoder::new(MAX_EVENT), Vec::new())
                }
                crate::framing::Framing::Json => Reader::Json(JsonBody::Empty),
                crate::framing::Framing::JsonLines if pending.any_shape => {
                    pending.report.streamed = true;
                    Reader::Lines(Vec::new())
                }
                crate::framing::Framing::JsonLines
                | crate::framing::Framing::Other
                | crate::framing::Framing::Opaque
                | crate::framing::Framing::Conflicting => Reader::None,
            }
        };
        let counter = if pending.any_shape {
            UsageCounter::any_shape(pending.report.api)
        } else {
            UsageCounter::new(pending.report.api)
        };
        let state = Box::new(State {
            pending,
            counter,
            reader,
        });
        if state.filters() {
            // Bytes are dropped: the length the upstream gave no longer holds.
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        Self {
            inner,
            state: Some(state),
            tail: None,
            done: false,
        }
    }
}

/// One frame of the events read from one input frame.
fn joined(mut events: Vec<Bytes>) -> Option<Bytes> {
    match events.len() {
        0 => None,
        1 => events.pop(),
        _ => {
            let mut all = BytesMut::with_capacity(events.iter().map(Bytes::len).sum());
            for e in &events {
                all.extend_from_slice(e);
            }
            Some(all.freeze())
        }
    }
}

impl<B> http_body::Body for UsageBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let filters = self.state.as_ref().is_some_and(|s| s.filters());
        if filters || self.done || self.tail.is_some() {
            return self.poll_filtered(cx);
        }
        let this = self.project();
        let mut inner = this.inner;
        let frame = std::task::ready!(inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(state)) = (f.data_ref(), this.state.as_mut()) {
                    state.data(data, None);
                }
                // A body that knows it has ended may not be polled again.
                if inner.is_end_stream()
                    && let Some(state) = this.state.take()
                {
                    state.end(true);
                }
            }
            Some(Err(_)) => {
                if let Some(state) = this.state.take() {
                    state.end(false);
                }
            }
            None => {
                if let Some(state) = this.state.take() {
                    state.end(true);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return self.tail.is_none();
        }
        // A filtered stream ends after its tail is sent: polled once more at least.
        self.inner.is_end_stream() && !self.state.as_ref().is_some_and(|s| s.filters())
    }

    fn size_hint(&self) -> SizeHint {
        if self.state.as_ref().is_some_and(|s| s.filters()) || self.done {
            return SizeHint::default();
        }
        self.inner.size_hint()
    }
}

impl<B> UsageBody<B>
where
    B: http_body::Body<Data = Bytes>,
{
    /// [`http_body::Body::poll_frame`] of a stream whose usage chunk agw asked for: each
    /// frame's complete events, without that chunk; a frame that completes none is not sent.
    fn poll_filtered(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(this.tail.take().map(|t| Ok(Frame::data(t))));
            }
            let Some(state) = this.state.as_mut().filter(|s| s.filters()) else {
                // Filtering ended (an event too large to read): frames pass as they come.
                let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
                if frame.is_none() {
                    *this.done = true;
                    if let Some(state) = this.state.take() {
                        state.end(true);
                    }
                    continue;
                }
                if let (Some(Err(_)), Some(state)) = (&frame, this.state.take()) {
                    state.end(false);
                }
                return Poll::Ready(frame);
            };
            let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
            let out = match frame {
                Some(Ok(f)) => match f.into_data() {
                    Ok(data) => {
                        let mut events = Vec::new();
                        state.data(&data, Some(&mut events));
                        joined(events)
                    }
                    // Trailers pass as they are.
                    Err(f) => return Poll::Ready(Some(Ok(f))),
                },
                Some(Err(e)) => {
                    if let Some(state) = this.state.take() {
                        state.end(false);
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    *this.done = true;
                    None
                }
            };
            if *this.done || this.inner.is_end_stream() {
                *this.done = true;
                if let Some(mut state) = this.state.take() {
                    *this.tail = state.tail();
                    state.end(true);
                }
            }
            if let Some(out) = out {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }
}
