use super::ResponseOutcome;
use crate::body::BoxError;
use agw_core::stream::{SseDecoder, StreamGuard};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest single server-sent event accepted from upstream.
const MAX_EVENT: usize = 4 << 20;

pin_project! {
    /// A response body passed through, or — for a guarded stream — decoded into events, run
    /// through a [`StreamGuard`] and re-emitted event by event.
    pub struct SseGuardBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<State>>,
    }
}

struct State {
    decoder: SseDecoder,
    guard: StreamGuard,
    events: Vec<Bytes>,
    out: VecDeque<Bytes>,
    done: bool,
    outcome: ResponseOutcome,
    /// How many of the guard's hits are in `outcome`.
    recorded: usize,
}

impl<B> std::fmt::Debug for SseGuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseGuardBody")
            .field("guarded", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> SseGuardBody<B> {
    /// Passes `inner` through untouched.
    pub fn passthrough(inner: B) -> Self {
        Self { inner, state: None }
    }

    /// Guards the event stream `inner` with `guard`, recording what it does in `outcome`.
    pub fn guarded(inner: B, guard: StreamGuard, outcome: ResponseOutcome) -> Self {
        Self {
            inner,
            state: Some(Box::new(State {
                decoder: SseDecoder::new(MAX_EVENT),
                guard,
                events: Vec::new(),
                out: VecDeque::new(),
                done: false,
                outcome,
                recorded: 0,
            })),
        }
    }
}

impl State {
    fn feed(&mut self, chunk: &[u8]) {
        let mut out = Vec::new();
        if self.decoder.push(chunk, &mut self.events).is_err() {
            // An event too large to inspect: stop the stream, in the client's dialect.
            self.events.clear();
            self.guard.fail(
                "agw could not inspect an oversized event in the response stream",
                &mut out,
            );
            self.done = true;
        } else {
            for e in self.events.drain(..) {
                self.guard.event(e, &mut out);
            }
            if self.guard.is_rejected() {
                self.done = true;
            }
        }
        self.out.extend(out);
        self.record();
    }

    fn end(&mut self) {
        let mut out = Vec::new();
        if let Some(tail) = self.decoder.finish() {
            self.guard.event(tail, &mut out);
        }
        self.guard.finish(&mut out);
        self.out.extend(out);
        self.done = true;
        self.record();
    }

    fn record(&mut self) {
        let hits = self.guard.hits();
        if hits.len() > self.recorded {
            self.outcome.record_stream(&hits[self.recorded..]);
            self.recorded = hits.len();
        }
    }
}

/// The next frame of a guarded stream: what the guard has released, else more from `inner`.
fn poll_guarded<B>(
    state: &mut State,
    mut inner: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    loop {
        if let Some(b) = state.out.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if state.done {
            return Poll::Ready(None);
        }
        match std::task::ready!(inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    state.feed(d);
                }
            }
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => state.end(),
        }
    }
}

impl<B> http_body::Body for SseGuardBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    // Inlined: a passed-through body is a call to its inner body, not a call of its own.
    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.state.as_mut() {
            None => this.inner.poll_frame(cx).map_err(Into::into),
            Some(state) => poll_guarded(state, this.inner, cx),
        }
    }

    #[inline(always)]
    fn is_end_stream(&self) -> bool {
        match &self.state {
            None => self.inner.is_end_stream(),
            Some(s) => s.done && s.out.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            None => self.inner.size_hint(),
            // Masking changes sizes.
            Some(_) => SizeHint::default(),
        }
    }
}
