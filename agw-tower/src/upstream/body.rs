use super::UpstreamFailure;
use crate::body::BoxError;
use agw_core::api::{Api, ErrorBody, ErrorKind};
use agw_core::route::RouteKind;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Ends open upstream bodies early, all at once: a server calls [`StreamCut::cut`] when its
/// shutdown grace period runs out, so that every stream still open ends with an error event in
/// its client's dialect (the client can tell it was cut) rather than a dropped connection.
/// Cloned into every backend's [`UpstreamConfig`](super::UpstreamConfig) of one server.
#[derive(Clone, Default)]
pub struct StreamCut {
    notify: Arc<tokio::sync::Notify>,
    set: Arc<std::sync::atomic::AtomicBool>,
}

impl StreamCut {
    /// A handle no body is cut by yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every open body that has this handle: event streams with an error event ("agw is
    /// shutting down"), other bodies with an error. Bodies created afterwards end at once.
    pub fn cut(&self) {
        self.set.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether the cut came (a body that ends now was cut, or created after it).
    pub fn is_cut(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A listener that wakes its task when this handle is cut (also a cut that comes before the
    /// listener is first polled).
    pub fn listener(&self) -> CutListener {
        CutListener {
            notified: Box::pin(self.notify.clone().notified_owned()),
            registered: None,
            cut: self.clone(),
        }
    }
}

/// Waits for a [`StreamCut`] on behalf of a task polled many times (a connection, a body): it
/// registers the task's waker with the cut only when the waker changes, and otherwise just reads
/// the cut's flag. (Polling the notification each time takes its lock.)
pub struct CutListener {
    notified: Pin<Box<tokio::sync::futures::OwnedNotified>>,
    // The waker `notified` was last polled with.
    registered: Option<std::task::Waker>,
    cut: StreamCut,
}

impl CutListener {
    /// Whether the cut came; if not, the task polling with `cx` is woken when it does.
    pub fn poll_cut(&mut self, cx: &mut Context<'_>) -> bool {
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // Registers this waker (or sees that the cut came already).
            let _ = self.notified.as_mut().poll(cx);
            self.registered = Some(cx.waker().clone());
        }
        self.cut.is_cut()
    }
}

impl std::fmt::Debug for CutListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutListener")
            .field("cut", &self.cut.is_cut())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StreamCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Constant: upstream settings are compared by their Debug text.
        f.write_str("StreamCut")
    }
}

pin_project! {
    /// An upstream response body with a bound on silence.
    ///
    /// When the upstream sends nothing for the idle timeout, or breaks the connection, in the
    /// middle of a body, the body ends: an event stream with a provider-shaped error event in
    /// the client's dialect (so the client can tell truncation from completion), any other body
    /// with an error. Dropping the body drops the upstream request.
    ///
    /// The idle timer is armed once and re-armed only when it fires after progress, so a busy
    /// stream costs no timer work per frame; silence is detected after between one and two
    /// timeouts.
    pub struct UpstreamBody<B> {
        #[pin]
        inner: B,
        idle: Option<Duration>,
        sleep: Option<Pin<Box<Sleep>>>,
        cut: StreamCut,
        // Listens to `cut` once the body waits on the upstream.
        listener: Option<CutListener>,
        // The waker `sleep` last armed itself with: while the body is polled with the same one,
        // the timer is not polled again (each poll re-registers), only its deadline checked.
        timer_waker: Option<std::task::Waker>,
        progressed: bool,
        // How to end an event stream that is cut.
        sse: Option<StreamEnd>,
        done: bool,
        // Replaces the key agw injects, where an error body echoes it.
        scrub: Option<Box<Scrub>>,
    }
}

/// Takes an injected key out of a body as it passes: each occurrence of it, or of its first
/// half or more (an echo cut short, `sk-ant-api03-…` less its last characters), becomes as
/// many `*` (so a `Content-Length` stays true).
/// A frame without one goes out as it came; only a frame's last bytes that may be the start
/// of the key wait for the next frame, where it may go on (so an event stream's events are not
/// held back).
pub(crate) struct Scrub {
    key: super::service::InjectedKey,
    /// The key's first half (at least 16 bytes, or all of a shorter key): what counts as an
    /// echo.
    head: memchr::memmem::Finder<'static>,
    carry: Vec<u8>,
}

impl Scrub {
    pub(crate) fn new(key: super::service::InjectedKey) -> Self {
        let head = key.head().min(key.bytes().len());
        Self {
            head: memchr::memmem::Finder::new(&key.bytes()[..head]).into_owned(),
            key,
            carry: Vec::new(),
        }
    }

    /// What of `data` can go out now.
    fn feed(&mut self, data: Bytes) -> Bytes {
        if self.head.needle().is_empty() {
            return data;
        }
        if self.carry.is_empty() && self.head.find(&data).is_none() {
            let hold = self.start_at_end(&data);
            if hold == 0 {
                return data;
            }
            self.carry.extend_from_slice(&data[data.len() - hold..]);
            return data.slice(..data.len() - hold);
        }
        self.carry.extend_from_slice(&data);
        let mut carry = std::mem::take(&mut self.carry);
        let (out, held) = self.scan(&carry, false);
        carry.drain(..held);
        self.carry = carry;
        out
    }

    /// The rest, at the body's end.
    fn finish(&mut self) -> Option<Bytes> {
        if self.carry.is_empty() {
            return None;
        }
        let carry = std::mem::take(&mut self.carry);
        Some(self.scan(&carry, true).0)
    }

    /// `buf` with each echo replaced, and where what waits for more starts (`buf.len()` at
    /// the end, or when nothing may go on).
    fn scan(&self, buf: &[u8], end: bool) -> (Bytes, usize) {
        let key = self.key.bytes();
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while let Some(p) = self.head.find(&buf[i..]) {
            let s = i + p;
            let mut e = s + self.head.needle().len();
            while e < buf.len() && e - s < key.len() && buf[e] == key[e - s] {
                e += 1;
            }
            out.extend_from_slice(&buf[i..s]);
            if e == buf.len() && e - s < key.len() && !end {
                // The key may go on in the next frame.
                return (Bytes::from(out), s);
            }
            // As many stars as the bytes they hide: the body keeps its length.
            out.resize(out.len() + (e - s), b'*');
            i = e;
        }
        let hold = if end { 0 } else { self.start_at_end(&buf[i..]) };
        out.extend_from_slice(&buf[i..buf.len() - hold]);
        (Bytes::from(out), buf.len() - hold)
    }

    /// The length of the longest end of `data` that is a start of the key's head (shorter
    /// than the head: a whole head is an echo).
    fn start_at_end(&self, data: &[u8]) -> usize {
        let head = self.head.needle();
        let from = data.len().saturating_sub(head.len() - 1);
        memchr::memchr_iter(head[0], &data[from..])
            .map(|p| from + p)
            .find(|&p| head.starts_with(&data[p..]))
            .map_or(0, |p| data.len() - p)
    }
}

impl<B> std::fmt::Debug for UpstreamBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("idle", &self.idle)
            .field("sse", &self.sse.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> UpstreamBody<B> {
    /// Wraps `inner`; `idle` bounds silence; `sse` says how to end a cut event stream (`None`
    /// for other bodies, which end with an error).
    pub fn new(inner: B, idle: Option<Duration>, sse: Option<StreamEnd>) -> Self {
        Self::with_cut(inner, idle, sse, StreamCut::new())
    }

    /// [`UpstreamBody::new`], ended early by `cut`.
    pub fn with_cut(
        inner: B,
        idle: Option<Duration>,
        sse: Option<StreamEnd>,
        cut: StreamCut,
    ) -> Self {
        Self {
            inner,
            idle,
            sleep: None,
            cut,
            listener: None,
            timer_waker: None,
            progressed: false,
            sse,
            done: false,
            scrub: None,
        }
    }

    /// Takes `key` out of the body (see [`Scrub`]).
    pub(crate) fn scrubbing(mut self, key: super::service::InjectedKey) -> Self {
        self.scrub = Some(Box::new(Scrub::new(key)));
        self
    }
}

/// How a cut event stream ends: an error event in the client's dialect naming the backend.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    /// The client's dialect.
    pub api: Api,
    /// The route kind (OpenAI Responses streams have their own error event).
    pub kind: RouteKind,
    /// The backend's name.
    pub backend: Arc<str>,
}

impl StreamEnd {
    /// The error event for a stream cut because of `why`.
    pub fn event(&self, why: UpstreamFailure) -> Bytes {
        let err = ErrorBody::new(
            ErrorKind::BadGateway,
            format!(
                "upstream `{}` stream ended early: {}; agw closed it",
                self.backend,
                why.describe()
            ),
        );
        Bytes::from(self.api.stream_error_event(self.kind, &err))
    }
}

/// The error a non-stream body ends with.
#[derive(Debug, thiserror::Error)]
#[error("upstream body cut: {}", .0.describe())]
pub struct UpstreamBodyError(pub UpstreamFailure);

impl<B> http_body::Body for UpstreamBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let cut = |sse: &Option<StreamEnd>, why: UpstreamFailure, err: BoxError| match sse {
            Some(end) => Poll::Ready(Some(Ok(Frame::data(end.event(why))))),
            None => Poll::Ready(Some(Err(err))),
        };
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.progressed = true;
                match (this.scrub.as_mut(), frame.into_data()) {
                    (Some(scrub), Ok(data)) => Poll::Ready(Some(Ok(Frame::data(scrub.feed(data))))),
                    (_, Ok(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
                    (_, Err(frame)) => Poll::Ready(Some(Ok(frame))),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                let e: BoxError = e.into();
                let why = match UpstreamFailure::of(&*e) {
                    UpstreamFailure::Other => UpstreamFailure::Reset,
                    w => w,
                };
                cut(this.sse, why, e)
            }
            Poll::Ready(None) => {
                *this.done = true;
                match this.scrub.as_mut().and_then(|s| s.finish()) {
                    Some(rest) => Poll::Ready(Some(Ok(Frame::data(rest)))),
                    None => Poll::Ready(None),
                }
            }
            Poll::Pending => {
                let shared = &*this.cut;
                let listener = this.listener.get_or_insert_with(|| shared.listener());
                if listener.poll_cut(cx) {
                    *this.done = true;
                    let why = UpstreamFailure::Shutdown;
                    return cut(this.sse, why, Box::new(UpstreamBodyError(why)));
                }
                let Some(idle) = *this.idle else {
                    return Poll::Pending;
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if this
                    .timer_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                    && !sleep.is_elapsed()
                {
                    // Armed with this waker and not due: nothing to look at.
                    return Poll::Pending;
                }
                loop {
                    if sleep.as_mut().poll(cx).is_pending() {
                        // A task out of its coop budget gets `Pending` without the timer armed:
                        // then the next poll must poll the timer again.
                        if tokio::task::coop::has_budget_remaining() {
                            *this.timer_waker = Some(cx.waker().clone());
                        }
                        return Poll::Pending;
                    }
                    if std::mem::take(this.progressed) {
                        sleep.as_mut().reset(Instant::now() + idle);
                        continue;
                    }
                    *this.done = true;
                    let why = UpstreamFailure::IdleTimeout;
                    return cut(this.sse, why, Box::new(UpstreamBodyError(why)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A scrubbed body keeps its last bytes until its inner body ends: not over before.
        let held = self.scrub.as_ref().is_some_and(|s| !s.carry.is_empty());
        self.done || (self.inner.is_end_stream() && !held)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.sse {
            // An error event may be added. A key replaced keeps the length.
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    const KEY: &str = "sk-ant-api03-PROVIDERSECRETKEY0123456789abcdefghijklmnopqrstuvwxyz-AAAAAA";

    /// What a scrub of `frames` lets out, frame by frame, and in all.
    fn scrubbed(frames: &[&str]) -> (Vec<String>, String) {
        let key = super::super::service::InjectedKey::new(&agw_core::provider::Secret::new(KEY));
        let mut scrub = Scrub::new(key);
        let mut out: Vec<String> = frames
            .iter()
            .map(|f| String::from_utf8(scrub.feed(Bytes::from(f.to_string())).to_vec()).unwrap())
            .collect();
        out.extend(
            scrub
                .finish()
                .map(|b| String::from_utf8(b.to_vec()).unwrap()),
        );
        let all = out.concat();
        (out, all)
    }

    #[test]
    fn a_key_or_its_first_half_is_taken_out_across_frames() {
        let half = &KEY[..KEY.len() / 2];
        let cut = &KEY[..KEY.len() - 6];
        for frames in [
            vec![format!("{{\"ok\":true,\"key\":\"{KEY}\"}}")],
            vec![format!("key={cut}!")],
            vec![format!("key={half} and more")],
            vec![
                "data: bad key sk-ant".to_owned(),
                format!("{} end", &KEY[6..]),
            ],
            vec![format!("x {}", &KEY[..30]), format!("{}\n", &KEY[30..])],
            vec![
                "s".to_owned(),
                "k".to_owned(),
                format!("{} twice {KEY}", &KEY[2..]),
            ],
            vec![format!("ends with the key {KEY}")],
            vec![format!("ends with a cut echo {cut}")],
        ] {
            let refs: Vec<&str> = frames.iter().map(String::as_str).collect();
            let (_, all) = scrubbed(&refs);
            assert!(!all.contains(&KEY[..16]), "{frames:?} -> {all}");
            assert!(all.contains("***"), "{frames:?} -> {all}");
        }
    }

    #[test]
    fn frames_without_the_key_go_out_as_they_came() {
        // Event stream frames are not held back: each goes out whole.
        let events = [
            "event: content_block_delta\ndata: {\"delta\":{\"text\":\"sk-ant is a prefix\"}}\n\n",
            "event: message_stop\ndata: {}\n\n",
        ];
        let (out, all) = scrubbed(&events);
        assert_eq!(out[..2], events);
        assert_eq!(all, events.concat());
        // Only an end that may start the key waits, and goes out when it does not.
        let (out, all) = scrubbed(&["text then sk-an", "other words"]);
        assert_eq!(out[0], "text then ");
        assert_eq!(all, "text then sk-another words");
        let (_, all) = scrubbed(&["at the end: sk-ant-api"]);
        assert_eq!(all, "at the end: sk-ant-api");
    }

    /// A body that never sends anything.
    struct Silent;

    impl http_body::Body for Silent {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn poll(body: &mut Pin<Box<UpstreamBody<Silent>>>, waker: &Waker) -> Poll<Option<String>> {
        let mut cx = Context::from_waker(waker);
        http_body::Body::poll_frame(body.as_mut(), &mut cx).map(|f| {
            f.map(|f| match f {
                Ok(frame) => String::from_utf8_lossy(&frame.into_data().unwrap()).into_owned(),
                Err(e) => format!("error: {e}"),
            })
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_body_polled_again_with_the_same_waker_still_sees_the_cut() {
        let cut = StreamCut::new();
        let mut body = Box::pin(UpstreamBody::with_cut(Silent, None, None, cut.clone()));
        let (a, wa) = waker();
        for _ in 0..3 {
            assert!(poll(&mut body, &wa).is_pending());
        }
        // Polled by another task now: that task's waker is the one woken.
        let (b, wb) = waker();
        assert!(poll(&mut body, &wb).is_pending());
        cut.cut();
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(Some(end)) = poll(&mut body, &wb) else {
            panic!("the cut ends the body");
        };
        assert!(end.contains("shutting down"), "{end}");
        assert!(poll(&mut body, &wb).is_ready());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_first_polled_out_of_budget_still_times_out() {
        use tokio::task::coop;
        let mut body = Box::pin(UpstreamBody::new(
            Silent,
            Some(Duration::from_millis(30)),
            None,
        ));
        // The task's coop budget is spent: the timer's first poll cannot arm it.
        std::future::poll_fn(|cx| {
            while coop::has_budget_remaining() {
                match coop::poll_proceed(cx) {
                    Poll::Ready(r) => r.made_progress(),
                    Poll::Pending => break,
                }
            }
            assert!(http_body::Body::poll_frame(body.as_mut(), cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // Polled on by the same task: the timer is armed now, and fires.
        let end = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| http_body::Body::poll_frame(body.as_mut(), cx)),
        )
        .await
        .expect("the idle timeout fires");
        assert!(matches!(end, Some(Err(_))));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_body_polled_again_with_the_same_waker_still_times_out() {
        let idle = Duration::from_millis(30);
        let mut body = Box::pin(UpstreamBody::new(Silent, Some(idle), None));
        let (a, wa) = waker();
        assert!(poll(&mut body, &wa).is_pending());
        assert!(poll(&mut body, &wa).is_pending());
        for _ in 0..200 {
            if a.0.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(a.0.load(Ordering::SeqCst), 1, "the timer wakes the body");
        let Poll::Ready(Some(end)) = poll(&mut body, &wa) else {
            panic!("silence ends the body");
        };
        assert!(end.starts_with("error: "), "{end}");
    }
}
