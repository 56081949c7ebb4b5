use super::layer::Config;
use super::{ResponseOutcome, SseGuardBody};
use crate::body::{Body, BoxError};
use crate::collect::{read_plain, set_length};
use crate::decode::encodings;
use crate::error::error_response;
use crate::framing::{Framing, framing};
use crate::limits::Collected;
use agw_core::api::{ErrorBody, ErrorKind};
use agw_core::guard::Policy;
use agw_core::guard::{ActionKind, Decision};
use agw_core::route::ResponseReading;
use agw_core::stream::StreamGuard;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH};
use http::{HeaderName, Request, Response, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// The provider's request id (Anthropic's header, then OpenAI's; agw's own errors carry
/// agw's).
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

type Boxed<ResB, E> =
    Pin<Box<dyn Future<Output = Result<Response<Body<SseGuardBody<ResB>>>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`ResponseGuard`]: responses of routes it does not guard come
    /// straight from the inner future; guarded ones need an `async` step, which is boxed.
    pub struct ResponseFuture<F, ResB, E> {
        #[pin]
        kind: Kind<F, ResB, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, ResB, E> {
        Passthrough { #[pin] future: F },
        Guarded { future: Boxed<ResB, E> },
        Ready { res: Option<Response<Body<SseGuardBody<ResB>>>> },
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, ResB, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<Body<SseGuardBody<ResB>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let res = std::task::ready!(future.poll(cx))?;
                Poll::Ready(Ok(res.map(|b| Body::inner(SseGuardBody::passthrough(b)))))
            }
            KindProj::Guarded { future } => future.as_mut().poll(cx),
            KindProj::Ready { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}

/// Guards responses with a policy. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct ResponseGuard<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

/// How the guard treats one response, from its route's reading, its content type and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Event by event.
    Stream,
    /// Collected and inspected whole.
    Json,
    /// Collected and inspected line by line.
    Lines,
    /// Collected and inspected as text (a `text/*` body, or one without a type, on a generic
    /// route): as JSON when it is a JSON object or list, else as plain text.
    Text,
    /// Forwarded untouched, unread (a file download on a generic route).
    Pass,
    /// Refused: a body agw cannot read where model output is expected.
    Refuse,
}

/// `model_call`: a generic route's request is a model call agw knows by its path (Gemini and
/// Vertex `…/models/{m}:…`, Bedrock `/model/{id}/…`, Azure deployments, Ollama's
/// `/api/chat` and `/api/generate`): its answer is model output, so a body that is neither
/// JSON, JSON lines nor an event stream is refused there, not passed as a file (second
/// round: `text/plain`, `application/octet-stream` or no type at all passed unread).
/// `text`: a body of another type (`Framing::Other`) is text, not a file download
/// ([`is_text`]).
fn read(
    reading: ResponseReading,
    framing: Framing,
    success: bool,
    model_call: bool,
    text: bool,
) -> Read {
    if model_call && reading == ResponseReading::Generic && framing == Framing::Other {
        return Read::Refuse;
    }
    match (reading, framing) {
        // Batch results come as `application/jsonl`, `application/octet-stream`, ...: every
        // body is read as lines (a JSON error body is one line).
        (ResponseReading::Lines, _) => Read::Lines,
        // Embeddings: vectors pass; an error is read as any other.
        (ResponseReading::Errors, _) if success => Read::Pass,
        (ResponseReading::Errors, Framing::Json) => Read::Json,
        (ResponseReading::Errors, Framing::JsonLines) => Read::Lines,
        (_, Framing::Json) => Read::Json,
        (_, Framing::EventStream) if success => Read::Stream,
        (ResponseReading::Generic, Framing::JsonLines) => Read::Lines,
        // A file download passes; an error in plain text or HTML may repeat what it was sent
        // (`invalid input: …`), and is refused unread like any body agw cannot read
        // (fourteenth session's review: it passed on embeddings, token counts and passthrough
        // paths).
        // Text a model may have written (a transcription's `text`, `srt` or `vtt`; JSON
        // labelled `text/plain` or with no type, which SDKs parse all the same): read
        // (nineteenth session's red team: it passed unread as a file).
        (ResponseReading::Generic, Framing::Other) if success && text => Read::Text,
        (ResponseReading::Generic, Framing::Other) if success => Read::Pass,
        _ => Read::Refuse,
    }
}

/// Whether a response policy masks or refuses text (a policy that only audits changes no
/// response). The stack reads request bodies for such a policy, for [`refuse_unread_output`].
pub(crate) fn hides_text(policy: &Policy) -> bool {
    policy
        .rules()
        .any(|r| r.action_ref().kind() != ActionKind::Audit)
}

/// A request for token log probabilities or spoken audio, where the policy masks or refuses
/// text: the tokens repeat the response's text in pieces no rule reads one at a time (a masked
/// card would come back digit group by digit group), the audio says it aloud, so the request
/// is refused before it is sent, whatever the route's dialect; the body is the one the body
/// stage read (a layer used without it has none to look at).
fn refuse_unread_output<B>(policy: &Policy, req: &Request<B>) -> Option<ErrorBody> {
    // Whatever the route's dialect: a passthrough path may reach a server of another (a
    // llama.cpp `/completion` behind an `anthropic` backend: regression round).
    let hides = hides_text(policy);
    if !hides && policy.tool_rules().is_empty() {
        return None;
    }
    // A stored response fetched with `?include[]=message.output_text.logprobs` carries them too.
    let mut asks = req
        .extensions()
        .get::<Collected>()
        .map(|c| agw_core::usage::unread_output(&c.plain))
        .unwrap_or_default();
    if asks.streamed_arguments {
        // Tool rules and masks read a call's arguments whole; in pieces, each in an event of
        // its own, neither could.
        return Some(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "tool-call arguments streamed in pieces are not available through this gateway: \
             its response guard reads a call's arguments whole; remove \
             `streamFunctionCallArguments` from `toolConfig.functionCallingConfig`",
        ));
    }
    if !hides {
        return None;
    }
    if let Some(param) = req
        .uri()
        .query()
        .and_then(agw_core::usage::query_picks_unread_format)
    {
        return Some(ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!(
                "the query parameter `{param}` asks for a response format this gateway cannot \
                 inspect: its response guard masks or refuses text; remove it (JSON and \
                 `alt=sse` are read)"
            ),
        ));
    }
    if is_bedrock_stream(req.uri().path()) {
        return Some(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "Bedrock's streaming APIs answer with AWS event streams, which this gateway's \
             response guard cannot inspect: use `converse` or `invoke` (not \
             `converse-stream` or `invoke-with-response-stream`)",
        ));
    }
    asks.logprobs |= req
        .uri()
        .query()
        .is_some_and(agw_core::usage::query_asks_for_logprobs);
    if asks.logprobs {
        return Some(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "log probabilities are not available through this gateway: its response guard \
             masks or refuses text, which the returned tokens would carry unguarded; remove \
             `logprobs`, `top_logprobs` and `include: [\"…logprobs\"]`",
        ));
    }
    asks.audio.then(|| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            "audio output is not available through this gateway: its response guard masks or \
             refuses text, which spoken audio would carry unguarded; remove `audio` and \
             \"audio\" from `modalities`",
        )
    })
}

/// Whether a body of no type agw reads otherwise (`Framing::Other`) is text, read as such on a
/// generic route (see [`read`]): no `Content-Type` at all, `text/*`, or an `application/`
/// type whose name says text (`xml`, `yaml`, `csv`, `x-subrip`, ...). Binary types
/// (`audio/*`, `image/*`, `application/octet-stream`, `application/pdf`) pass as they are, and
/// so do files' contents whatever their type ([`is_file_content`]).
fn is_text(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let media = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.is_empty() {
        return true;
    }
    let (major, minor) = media.split_once('/').unwrap_or((media.as_str(), ""));
    match major {
        "text" => true,
        "application" => [
            "json", "xml", "yaml", "csv", "toml", "text", "sql", "subrip", "vtt", "markdown",
        ]
        .iter()
        .any(|t| minor.contains(t)),
        _ => false,
    }
}

/// Whether `path` downloads a file's contents (`/v1/files/{id}/content`, a container's
/// `…/files/{id}/content`): a file as it was stored, whatever its type.
fn is_file_content(path: &str) -> bool {
    let p = path.trim_end_matches('/').as_bytes();
    let ends = p.len() >= 8 && p[p.len() - 8..].eq_ignore_ascii_case(b"/content");
    ends && p.windows(7).any(|w| w.eq_ignore_ascii_case(b"/files/"))
}

/// Whether a generic route's `path` is a model call agw knows (see [`read`]).
fn is_model_call(path: &str) -> bool {
    // Ollama's, llama.cpp's and TGI's generation endpoints, chat and completions without a
    // version prefix, Anthropic's Messages on a compatible server; any case (third round).
    const ENDS: [&str; 11] = [
        "/api/chat",
        "/api/generate",
        "/completion",
        "/completions",
        "/generate",
        "/generate_stream",
        "/infer",
        "/messages",
        "/v1/generate",
        ":generateContent",
        ":streamGenerateContent",
    ];
    // Assistants threads and runs, Conversations' items and eval runs' output items: model
    // output stored or streamed (fourteenth session's review: labelled `text/plain`, it passed
    // unread as a file).
    const UNDER: [&[u8]; 3] = [b"/threads/", b"/conversations/", b"/evals/"];
    let trimmed = path.trim_end_matches('/').as_bytes();
    let under = |u: &[u8]| {
        path.as_bytes()
            .windows(u.len())
            .any(|w| w.eq_ignore_ascii_case(u))
    };
    if UNDER.iter().any(|u| under(u))
        || trimmed.len() >= 8 && trimmed[trimmed.len() - 8..].eq_ignore_ascii_case(b"/threads")
    {
        return true;
    }
    let known = ENDS.iter().any(|e| {
        trimmed.len() >= e.len()
            && trimmed[trimmed.len() - e.len()..].eq_ignore_ascii_case(e.as_bytes())
    });
    known || agw_core::model::path_model(path).is_some_and(|_| !path.ends_with("/models"))
}

/// Whether `path` calls a Gemini or Vertex model (`…:generateContent`,
/// `…:streamGenerateContent`).
fn is_gemini_call(path: &str) -> bool {
    let method = path.rsplit(':').next().unwrap_or("");
    path.contains(':')
        && (method.eq_ignore_ascii_case("generateContent")
            || method.eq_ignore_ascii_case("streamGenerateContent"))
}

/// Whether `path` is a Bedrock runtime streaming call (`/model/{id}/converse-stream`,
/// `/model/{id}/invoke-with-response-stream`), whose answer is an AWS binary event stream.
fn is_bedrock_stream(path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    last.eq_ignore_ascii_case("converse-stream")
        || last.eq_ignore_ascii_case("invoke-with-response-stream")
}

impl<S, B, ResB> Service<Request<B>> for ResponseGuard<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body<SseGuardBody<ResB>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let config = self.config.clone();
        // Classified as the stack's other layers classify (canonical path, refusals).
        let class = match config.classifier.classify(&mut req) {
            Ok(c) => c,
            Err((api, err)) => {
                return ResponseFuture {
                    kind: Kind::Ready {
                        res: Some(crate::error::error_response(api, &err)),
                    },
                };
            }
        };
        let reading = class.kind.response_reading();
        // A HEAD response has no body to read.
        let guarded = !config.policy.is_empty()
            && reading != ResponseReading::Unread
            && req.method() != http::Method::HEAD;
        if !guarded {
            return ResponseFuture {
                kind: Kind::Passthrough {
                    future: self.inner.call(req),
                },
            };
        }
        if let Some(err) = refuse_unread_output(&config.policy, &req) {
            return ResponseFuture {
                kind: Kind::Ready {
                    res: Some(error_response(class.api, &err)),
                },
            };
        }
        // The completions a chat request asked for: a streamed choice past them ends the
        // stream (see `StreamGuard::with_choices`). The request guard's reading, else the
        // body's (read here only for chat routes).
        let choices = matches!(
            class.kind,
            agw_core::route::RouteKind::Completions | agw_core::route::RouteKind::LegacyCompletions
        )
        .then(|| {
            let ext = req.extensions();
            // (A report with a model is one of a body the guard read.)
            match ext
                .get::<crate::guard::GuardReport>()
                .filter(|g| g.model.is_some())
            {
                Some(g) => Some(g.shape.choices),
                None => ext
                    .get::<Collected>()
                    .map(|c| agw_core::usage::request_shape(&c.plain).choices),
            }
        })
        .flatten();
        let model_call = reading == ResponseReading::Generic && is_model_call(req.uri().path());
        // A file's contents pass as a file whatever their type (see [`is_text`]).
        let file_content = reading == ResponseReading::Generic && is_file_content(req.uri().path());
        // A prompt route's request that asked for no stream: its body, to look at again if an
        // event stream comes back (see `agw_core::stream::asks_for_no_stream`). Shared bytes,
        // no copy.
        let no_stream_body = matches!(
            class.kind,
            agw_core::route::RouteKind::Messages
                | agw_core::route::RouteKind::Complete
                | agw_core::route::RouteKind::Completions
                | agw_core::route::RouteKind::LegacyCompletions
                | agw_core::route::RouteKind::Responses
        )
        .then(|| {
            let ext = req.extensions();
            let streams = ext
                .get::<crate::guard::GuardReport>()
                .filter(|g| g.model.is_some())
                .map(|g| g.shape.stream);
            ext.get::<Collected>()
                .filter(|_| streams != Some(true))
                .map(|c| c.plain.clone())
        })
        .flatten();
        // A Gemini call: the candidates it asked for (see `StreamGuard::with_candidates`).
        let candidates = (reading == ResponseReading::Generic && is_gemini_call(req.uri().path()))
            .then(|| {
                req.extensions()
                    .get::<Collected>()
                    .map_or(1, |c| agw_core::usage::candidate_count(&c.plain))
            });
        // Ask for a response agw can read.
        req.headers_mut().remove(ACCEPT_ENCODING);
        let fut = self.inner.call(req);
        let future = Box::pin(async move {
            let res = fut.await?;
            let outcome = ResponseOutcome::default();
            let refuse = |status: Option<StatusCode>, msg: String| {
                outcome.record(&Arc::from("agw:unreadable"), ActionKind::Reject);
                let mut err = ErrorBody::new(ErrorKind::BadGateway, msg);
                if let Some(s) = status {
                    err = err.with_status(s);
                }
                let mut res = error_response(class.api, &err);
                res.extensions_mut().insert(outcome.clone());
                Ok(res)
            };
            let status = res.status();
            // An error the provider answered keeps its status when agw must replace it.
            let keep = (!status.is_success()).then_some(status);
            // A redirect or `304 Not Modified` is no error; an error without a body has
            // nothing to read.
            // (The header is looked at only for an error.)
            let nothing_to_refuse = !(status.is_client_error() || status.is_server_error())
                || res
                    .headers()
                    .get(CONTENT_LENGTH)
                    .is_some_and(|l| l.as_bytes() == b"0");
            let framing = framing(res.headers());
            // (The type is looked at again only where it could be text.)
            let text = reading == ResponseReading::Generic
                && framing == Framing::Other
                && !file_content
                && is_text(res.headers());
            match read(reading, framing, nothing_to_refuse, model_call, text) {
                Read::Stream => {
                    if no_stream_body
                        .as_deref()
                        .is_some_and(agw_core::stream::asks_for_no_stream)
                    {
                        // The SDKs hand such a body to their caller as a string, raw events,
                        // ids and all (nineteenth session's red team).
                        return refuse(
                            None,
                            "the provider answered a request for no stream with an event \
                             stream"
                                .into(),
                        );
                    }
                    if encodings(res.headers()).is_some() {
                        return refuse(
                            None,
                            "the provider sent a compressed stream that agw cannot inspect".into(),
                        );
                    }
                    if let Some(charset) = crate::decode::foreign_charset(res.headers()) {
                        return refuse(
                            None,
                            format!(
                                "the provider's stream could not be inspected: {}",
                                crate::decode::DecodeError::Charset(charset)
                            ),
                        );
                    }
                    let mut guard = StreamGuard::for_route(
                        config.policy.clone(),
                        class.kind,
                        class.api,
                        config.window,
                    );
                    if let Some(n) = choices {
                        guard = guard.with_choices(n);
                    }
                    if let Some(n) = candidates {
                        guard = guard.with_candidates(n);
                    }
                    let (mut parts, body) = res.into_parts();
                    parts.headers.remove(CONTENT_LENGTH);
                    parts.extensions.insert(outcome.clone());
                    Ok(Response::from_parts(
                        parts,
                        Body::inner(SseGuardBody::guarded(body, guard, outcome)),
                    ))
                }
                Read::Pass => Ok(res.map(|b| Body::inner(SseGuardBody::passthrough(b)))),
                how @ (Read::Json | Read::Lines | Read::Text) => {
                    let (mut parts, body) = res.into_parts();
                    // The client gets the bytes that were inspected, decoded.
                    let Collected { plain } =
                        match read_plain(&mut parts.headers, body, config.limit).await {
                            Ok(p) => p,
                            Err(e) => return refuse(keep, format!("the provider's response {e}")),
                        };
                    if reading != ResponseReading::Model
                        && plain.iter().all(u8::is_ascii_whitespace)
                    {
                        // Nothing to read (a 204, an empty listing): forwarded as it came.
                        parts.extensions.insert(outcome);
                        return Ok(Response::from_parts(parts, Body::full(plain)));
                    }
                    if let Some(n) = candidates
                        && agw_core::usage::unasked_candidates(&plain, n)
                    {
                        return refuse(
                            None,
                            "the provider's response has a candidate the request did not ask for"
                                .into(),
                        );
                    }
                    // An error body is read whole, identifiers and types too (the SDKs print all
                    // of it: nineteenth session's red team).
                    let error = status.is_client_error() || status.is_server_error();
                    let verdict = match how {
                        Read::Lines if error => config
                            .policy
                            .inspect_response_error(&plain)
                            .or_else(|_| config.policy.inspect_response_lines(&plain)),
                        Read::Lines => config.policy.inspect_response_lines(&plain),
                        Read::Text => config.policy.inspect_response_text(&plain),
                        _ if error => config.policy.inspect_response_error(&plain),
                        _ => config.policy.inspect_response(class.api, &plain),
                    };
                    let verdict = match verdict {
                        Ok(v) => v,
                        Err(e) => {
                            return refuse(
                                keep,
                                format!("the provider's response could not be inspected: {e}"),
                            );
                        }
                    };
                    outcome.record_hits(verdict.hits());
                    let body = match verdict.into_decision() {
                        Decision::Allow => plain,
                        Decision::Reject(r) => {
                            // The refusal is the outcome, whatever the hits were (a mask's hit
                            // in signed reasoning, escapes spelling a match): the log said
                            // `mask` or `allow` (third round).
                            outcome.record(&r.rule, ActionKind::Reject);
                            let mut res = error_response(class.api, &r.error_body());
                            // The error stands in for the provider's response: what the layers
                            // below left on it (its timing) and its request id stay.
                            *res.extensions_mut() = std::mem::take(&mut parts.extensions);
                            for name in [REQUEST_ID, X_REQUEST_ID] {
                                if let Some(id) = parts.headers.remove(&name) {
                                    res.headers_mut().insert(name, id);
                                }
                            }
                            res.extensions_mut().insert(outcome);
                            if how != Read::Lines {
                                res.extensions_mut().insert(super::ReplacedResponse(plain));
                            }
                            return Ok(res);
                        }
                        Decision::Rewrite(masked) => Bytes::from(masked),
                    };
                    set_length(&mut parts.headers, body.len());
                    parts.extensions.insert(outcome);
                    Ok(Response::from_parts(parts, Body::full(body)))
                }
                Read::Refuse => {
                    let what = match keep {
                        Some(s) => format!(
                            "the provider answered {} with a body agw cannot inspect",
                            s.as_u16()
                        ),
                        None => "the provider's response is neither JSON nor an event stream, so agw cannot inspect it".into(),
                    };
                    refuse(keep, what)
                }
            }
        });
        ResponseFuture {
            kind: Kind::Guarded { future },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_core::route::RouteKind;

    #[test]
    fn what_is_read_follows_the_route_then_the_content_type() {
        use Framing::{Conflicting, EventStream as Sse, Json, JsonLines, Opaque, Other};
        use ResponseReading::{Errors, Generic, Lines, Model};
        for (reading, framing, success, want) in [
            (Model, Json, true, Read::Json),
            (Model, Json, false, Read::Json),
            (Model, Sse, true, Read::Stream),
            (Model, Sse, false, Read::Refuse),
            (Model, JsonLines, true, Read::Refuse),
            (Model, Other, true, Read::Refuse),
            // Batch results: lines whatever the label.
            (Lines, Json, true, Read::Lines),
            (Lines, JsonLines, true, Read::Lines),
            (Lines, Other, true, Read::Lines),
            (Lines, Sse, true, Read::Lines),
            (Lines, Other, false, Read::Lines),
            // Elsewhere: what can carry text is read, files pass.
            (Generic, Json, true, Read::Json),
            (Generic, JsonLines, true, Read::Lines),
            (Generic, Sse, true, Read::Stream),
            (Generic, Sse, false, Read::Refuse),
            (Generic, Other, true, Read::Pass),
            (Generic, Other, false, Read::Refuse),
            // Model output in a format agw does not read is never passed unread.
            (Generic, Opaque, true, Read::Refuse),
            (Generic, Opaque, false, Read::Refuse),
            (Model, Opaque, true, Read::Refuse),
            (Errors, Opaque, false, Read::Refuse),
            // Embeddings: vectors pass unread, errors are read.
            (Errors, Json, true, Read::Pass),
            (Errors, Sse, true, Read::Pass),
            (Errors, Json, false, Read::Json),
            (Errors, Other, false, Read::Refuse),
            (Errors, Sse, false, Read::Refuse),
            // Two `Content-Type`s: the client may read the body as the other one says.
            (Model, Conflicting, true, Read::Refuse),
            (Generic, Conflicting, true, Read::Refuse),
            (Lines, Conflicting, true, Read::Lines),
        ] {
            assert_eq!(
                read(reading, framing, success, false, false),
                want,
                "{reading:?} {framing:?}"
            );
        }
        // Text (`text/*`, no type) on a generic route is read; elsewhere it is what it was.
        for (reading, framing, success, want) in [
            (Generic, Other, true, Read::Text),
            (Generic, Other, false, Read::Refuse),
            (Model, Other, true, Read::Refuse),
            (Errors, Other, true, Read::Pass),
            (Lines, Other, true, Read::Lines),
            (Generic, Json, true, Read::Json),
        ] {
            assert_eq!(
                read(reading, framing, success, false, true),
                want,
                "{reading:?} {framing:?}"
            );
        }
        // A model call's body agw cannot read stays refused, text or not.
        assert_eq!(read(Generic, Other, true, true, true), Read::Refuse);
    }

    #[test]
    fn every_kind_that_can_carry_model_text_is_read() {
        for kind in RouteKind::ALL {
            let unread = matches!(kind, RouteKind::Unguarded);
            assert_eq!(
                kind.response_reading() == ResponseReading::Unread,
                unread,
                "{kind:?}"
            );
            // Embeddings: only errors.
            assert_eq!(
                kind.response_reading() == ResponseReading::Errors,
                kind == RouteKind::Embeddings,
                "{kind:?}"
            );
        }
    }
}

#[cfg(test)]
mod outcome_tests {
    use crate::response::{ResponseGuardLayer, ResponseOutcome};
    use agw_core::detect::Detector;
    use agw_core::guard::{Policy, Rule, ToolRule};
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    async fn through(
        content_type: &'static str,
        body: &'static str,
    ) -> (u16, String, ResponseOutcome) {
        let policy = Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .tool_rule(ToolRule::new("no-bash", "Bash").reject("no Bash"))
            .build()
            .unwrap();
        let upstream = service_fn(move |_req: http::Request<()>| async move {
            let res = http::Response::builder()
                .header("content-type", content_type)
                .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                .unwrap();
            Ok::<_, std::convert::Infallible>(res)
        });
        let svc = ResponseGuardLayer::new(policy).layer(upstream);
        let req = http::Request::post("/v1/messages").body(()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        let outcome = res.extensions().get::<ResponseOutcome>().cloned().unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8_lossy(&bytes).into_owned(),
            outcome,
        )
    }

    #[tokio::test]
    async fn the_outcome_names_what_the_guard_did() {
        let (status, body, outcome) = through(
            "Text/Event-Stream",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"AKIAIOSFODNN7EXAMPLE\"}}\n\n",
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.contains("<AWS_ACCESS_KEY>"), "{body}");
        assert_eq!(outcome.action(), "mask");
        assert_eq!(outcome.rules().len(), 1);
        assert_eq!(&*outcome.rules()[0], "keys");

        let (status, _, outcome) = through(
            "application/json",
            r#"{"content":[{"type":"tool_use","name":"Bash","input":{}}]}"#,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(outcome.action(), "reject");
        assert_eq!(&*outcome.rules()[0], "no-bash");

        let (status, body, outcome) = through("text/html", "<p>AKIAIOSFODNN7EXAMPLE</p>").await;
        assert_eq!(status, 502);
        assert!(!body.contains("AKIA"));
        assert_eq!(outcome.action(), "reject");
        assert_eq!(&*outcome.rules()[0], "agw:unreadable");

        let (_, _, outcome) = through("application/json", r#"{"content":[]}"#).await;
        assert_eq!(outcome.action(), "allow");
    }

    /// A client that picks a response format agw does not read (Google's `alt=proto`, JSONP,
    /// Bedrock's event streams) is refused before anything is sent, and such a response on a
    /// generic route is not passed unread (twelfth session's black-box review: the answer came
    /// back unmasked as protocol buffers, a script or an AWS event stream).
    #[tokio::test]
    async fn formats_agw_does_not_read_are_refused_not_passed() {
        let policy = Policy::builder()
            .rule(Rule::detectors("keys", [Detector::AwsAccessKey]).mask())
            .build()
            .unwrap();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = sent.clone();
        let upstream = service_fn(move |req: http::Request<()>| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ty = match req.uri().query() {
                Some("t=events") => "application/vnd.amazon.eventstream",
                Some("t=script") => "text/javascript",
                Some("t=plain" | "t=error" | "t=empty") => "text/plain",
                _ => "application/x-protobuf",
            };
            let status = match req.uri().query() {
                Some("t=error" | "t=empty") => 400,
                _ => 200,
            };
            let empty = req.uri().query() == Some("t=empty");
            async move {
                let res = http::Response::builder()
                    .status(status)
                    .header("content-type", ty);
                let res = if empty {
                    res.header("content-length", "0")
                } else {
                    res
                };
                let body: &'static [u8] = if empty { b"" } else { b"AKIAIOSFODNN7EXAMPLE" };
                let res = res
                    .body(Full::new(bytes::Bytes::from_static(body)))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(res)
            }
        });
        let svc = ResponseGuardLayer::new(policy).layer(upstream);
        let call = |uri: &'static str| {
            let svc = svc.clone();
            async move {
                let req = http::Request::post(uri).body(()).unwrap();
                let res = svc.oneshot(req).await.unwrap();
                let status = res.status().as_u16();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        for uri in [
            "/v1beta/models/gemini-2.5-flash:generateContent?alt=proto",
            "/v1beta/models/gemini-2.5-flash:generateContent?%24alt=proto",
            "/v1beta/models/gemini-2.5-flash:generateContent?callback=cb",
            "/model/anthropic.claude-3-5-sonnet/converse-stream",
            "/model/anthropic.claude-3-5-sonnet/invoke-with-response-stream",
        ] {
            let (status, body) = call(uri).await;
            assert_eq!(status, 400, "{uri}");
            assert!(body.contains("cannot inspect"), "{uri}: {body}");
        }
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 0);
        for uri in ["/v1/foo", "/v1/foo?t=events", "/v1/foo?t=script"] {
            let (status, body) = call(uri).await;
            assert_eq!(status, 502, "{uri}");
            assert!(!body.contains("AKIA"), "{uri}: {body}");
        }
        // JSON and SSE stay readable and read.
        let (status, _) = call("/v1beta/models/m:streamGenerateContent?alt=sse").await;
        assert_eq!(status, 502, "the upstream here answers protocol buffers");
        // On a path agw knows for a model call, any body it cannot read is refused; elsewhere
        // a file passes (second round: `text/plain` model output passed unread).
        for uri in [
            "/v1beta/models/gemini-2.5-flash:generateContent?t=plain",
            "/model/anthropic.claude-3/converse?t=plain",
            "/api/chat?t=plain",
            "/API/CHAT?t=plain",
            "/completion?t=plain",
            "/generate_stream?t=plain",
            // Assistants runs and Conversations' items (fourteenth session's review).
            "/v1/threads/runs?t=plain",
            "/v1/threads/thread_1/runs?t=plain",
            "/v1/Threads/thread_1/messages/msg_1?t=plain",
            "/v1/conversations/conv_1/items?t=plain",
            "/v1/evals/e/runs/r/output_items?t=plain",
        ] {
            let (status, body) = call(uri).await;
            assert_eq!(status, 502, "{uri}");
            assert!(!body.contains("AKIA"), "{uri}: {body}");
        }
        let (status, body) = call("/v1/files/file-1/content?t=plain").await;
        assert_eq!((status, body.as_str()), (200, "AKIAIOSFODNN7EXAMPLE"));
        // An error in plain text may repeat what it was sent: refused unread, its status kept
        // (it passed on passthrough paths: fourteenth session's review); one without a body
        // passes.
        let (status, body) = call("/v1/files/file-1/content?t=error").await;
        assert_eq!(status, 400);
        assert!(
            body.contains("cannot inspect") && !body.contains("AKIA"),
            "{body}"
        );
        let (status, body) = call("/v1/files/file-1/content?t=empty").await;
        assert_eq!((status, body.as_str()), (400, ""));
    }
}
