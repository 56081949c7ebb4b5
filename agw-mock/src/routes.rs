//! The provider routes: parse the request, find the triggers, answer in the API's shape.

use std::io::Read;
use std::time::SystemTime;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde_json::Value;
use tokio::sync::watch;

use super::server::{Body, MAX_REQUEST_BODY, State};
use super::stream::{self, Plan};
use super::trigger::{LastUserTurn, Reply, Triggers};
use super::{anthropic, openai, responses};

const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";
const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";

pub(crate) async fn route(
    state: &State,
    parts: &Parts,
    body: &Bytes,
    release: watch::Receiver<u64>,
) -> Response<Body> {
    match (&parts.method, parts.uri.path()) {
        // Connection warm-ups: Claude Code sends `HEAD /api/hello` unless
        // CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is set.
        (&Method::HEAD | &Method::GET, "/" | "/api/hello") => empty(StatusCode::OK),
        (&Method::POST, "/v1/messages") => messages(state, parts, body, release).await,
        (&Method::POST, "/v1/messages/count_tokens") => {
            let count = serde_json::json!({ "input_tokens": body.len() / 4 });
            json(StatusCode::OK, count.to_string().into_bytes(), false)
        }
        (&Method::GET, "/v1/models") => json(StatusCode::OK, anthropic::models(), false),
        (&Method::POST, "/v1/chat/completions") => {
            chat_completions(state, parts, body, release).await
        }
        (&Method::POST, "/v1/responses") => responses_api(state, parts, body, release).await,
        (method, path) => {
            let message = format!("mock: no route for {method} {path}");
            anthropic_error(StatusCode::NOT_FOUND, "not_found_error", &message)
        }
    }
}

/// Everything a provider route needs from the request.
struct Parsed {
    request: Value,
    turn: LastUserTurn,
    triggers: Triggers,
    gzip: bool,
}

/// Parses the JSON body and the triggers, and applies `mock:delay_ms`.
async fn parse(
    parts: &Parts,
    body: &Bytes,
    last_user_turn: fn(&Value) -> LastUserTurn,
) -> Result<Parsed, String> {
    let decoded = decode_request_body(&parts.headers, body)?;
    let request: Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("invalid JSON body: {e}"))?;
    let turn = last_user_turn(&request);
    let triggers = Triggers::parse(&turn.text());
    let gzip = triggers.gzip && accepts_gzip(&parts.headers);
    if let Some(delay) = triggers.delay {
        tokio::time::sleep(delay).await;
    }
    Ok(Parsed {
        request,
        turn,
        triggers,
        gzip,
    })
}

fn is_stream(request: &Value) -> bool {
    request.get("stream").and_then(Value::as_bool) == Some(true)
}

async fn messages(
    state: &State,
    parts: &Parts,
    body: &Bytes,
    release: watch::Receiver<u64>,
) -> Response<Body> {
    let parsed = match parse(parts, body, LastUserTurn::anthropic).await {
        Ok(parsed) => parsed,
        Err(message) => {
            return anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    if let Some(status) = parsed.triggers.status {
        let message = format!("mock error {}", status.as_u16());
        return json(status, anthropic::error("api_error", &message), parsed.gzip);
    }
    let reply = Reply::choose(&parsed.turn, &parsed.triggers);
    let id = state.next_id("msg_mock_");
    let model = parsed
        .request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_ANTHROPIC_MODEL);
    let thinking = parsed
        .triggers
        .think
        .then(|| parsed.turn.texts.last().cloned().unwrap_or_default());
    let meta = anthropic::Meta {
        id: &id,
        model,
        input_tokens: body.len() as u64 / 4,
        thinking: thinking.as_deref(),
    };
    if is_stream(&parsed.request) {
        let (events, first_delta) = anthropic::events(meta, &reply);
        sse(events, first_delta, &parsed, release)
    } else {
        let body = dup_key(
            &parsed,
            "content",
            r#"[{"type":"text","text":"decoy"}]"#,
            anthropic::message(meta, &reply),
        );
        shaped(json(StatusCode::OK, body, parsed.gzip), &parsed)
    }
}

async fn responses_api(
    state: &State,
    parts: &Parts,
    body: &Bytes,
    release: watch::Receiver<u64>,
) -> Response<Body> {
    let parsed = match parse(parts, body, LastUserTurn::responses).await {
        Ok(parsed) => parsed,
        Err(message) => return json(StatusCode::BAD_REQUEST, openai::error(&message), false),
    };
    if let Some(status) = parsed.triggers.status {
        let message = format!("mock error {}", status.as_u16());
        return json(status, openai::error(&message), parsed.gzip);
    }
    let reply = Reply::choose(&parsed.turn, &parsed.triggers);
    let id = state.next_id("resp_mock_");
    let model = parsed
        .request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_OPENAI_MODEL);
    let meta = responses::Meta {
        id: &id,
        model,
        created: unix_now(),
        input_tokens: body.len() as u64 / 4,
    };
    if is_stream(&parsed.request) {
        let (events, first_delta) = responses::events(meta, &reply);
        sse(events, first_delta, &parsed, release)
    } else {
        let body = dup_key(&parsed, "output", "[]", responses::body(meta, &reply));
        shaped(json(StatusCode::OK, body, parsed.gzip), &parsed)
    }
}

/// `mock:dup_key`: the body with `"key": decoy` repeated before its real members.
fn dup_key(parsed: &Parsed, key: &str, decoy: &str, body: Vec<u8>) -> Vec<u8> {
    if !parsed.triggers.dup_key || body.first() != Some(&b'{') {
        return body;
    }
    let mut out = format!("{{\"{key}\":{decoy},").into_bytes();
    out.extend_from_slice(&body[1..]);
    out
}

/// `mock:content_type`: the response with that `Content-Type`.
fn shaped(mut response: Response<Body>, parsed: &Parsed) -> Response<Body> {
    if let Some(ct) = &parsed.triggers.content_type
        && let Ok(v) = HeaderValue::from_str(ct)
    {
        response.headers_mut().insert(CONTENT_TYPE, v);
    }
    response
}

async fn chat_completions(
    state: &State,
    parts: &Parts,
    body: &Bytes,
    release: watch::Receiver<u64>,
) -> Response<Body> {
    let parsed = match parse(parts, body, LastUserTurn::openai).await {
        Ok(parsed) => parsed,
        Err(message) => return json(StatusCode::BAD_REQUEST, openai::error(&message), false),
    };
    if let Some(status) = parsed.triggers.status {
        let message = format!("mock error {}", status.as_u16());
        return json(status, openai::error(&message), parsed.gzip);
    }
    let reply = Reply::choose(&parsed.turn, &parsed.triggers);
    let id = state.next_id("chatcmpl-mock-");
    let model = parsed
        .request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_OPENAI_MODEL);
    let include_usage = parsed
        .request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool);
    let meta = openai::Meta {
        id: &id,
        model,
        created: unix_now(),
        prompt_tokens: body.len() as u64 / 4,
        include_usage: include_usage == Some(true),
        choices: parsed.triggers.choices.unwrap_or(1),
    };
    if is_stream(&parsed.request) {
        let (events, first_delta) = openai::chunks(meta, &reply);
        sse(events, first_delta, &parsed, release)
    } else {
        let body = dup_key(&parsed, "choices", "[]", openai::completion(meta, &reply));
        shaped(json(StatusCode::OK, body, parsed.gzip), &parsed)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sse(
    events: Vec<Bytes>,
    first_delta: usize,
    parsed: &Parsed,
    release: watch::Receiver<u64>,
) -> Response<Body> {
    let events = if parsed.triggers.trailing {
        // Bytes after the JSON of every data event from the first delta on.
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                if i < first_delta || e.starts_with(b"data: [DONE]") {
                    return e;
                }
                let mut v = e[..e.len().saturating_sub(2)].to_vec();
                v.extend_from_slice(b" x\n\n");
                Bytes::from(v)
            })
            .collect()
    } else {
        events
    };
    let plan = Plan {
        events,
        hold_after: parsed.triggers.hold.then_some(first_delta),
        ping_comment: parsed.triggers.ping_comment,
        gzip: parsed.gzip,
    };
    let mut response = Response::new(stream::body(plan, release));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if parsed.gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    shaped(response, parsed)
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().boxed_unsync());
    *response.status_mut() = status;
    response
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>, gzip: bool) -> Response<Body> {
    let body = if gzip { stream::gzip_all(&body) } else { body };
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if gzip {
        response
            .headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

pub(crate) fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json(status, anthropic::error(kind, message), false)
}

/// Whether `accept-encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut params = coding.split(';').map(str::trim);
            let name = params.next().unwrap_or_default();
            let refused = params
                .any(|p| p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The request body as sent before any `content-encoding` (only gzip is understood).
pub(crate) fn decode_request_body(headers: &HeaderMap, body: &Bytes) -> Result<Bytes, String> {
    let Some(encoding) = headers.get(CONTENT_ENCODING) else {
        return Ok(body.clone());
    };
    let encoding = encoding.to_str().unwrap_or_default().trim();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(body.clone());
    }
    if !(encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")) {
        return Err(format!("mock cannot decode content-encoding {encoding:?}"));
    }
    let mut decoded = Vec::new();
    MultiGzDecoder::new(&body[..])
        .take(MAX_REQUEST_BODY as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if decoded.len() > MAX_REQUEST_BODY {
        return Err(format!("gzip body inflates past {MAX_REQUEST_BODY} bytes"));
    }
    Ok(Bytes::from(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_table() {
        let cases = [
            ("gzip", true),
            ("gzip, deflate, br, zstd", true),
            ("br;q=1.0, GZIP;q=0.5", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("*", true),
            ("", false),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            assert_eq!(accepts_gzip(&headers), want, "{value:?}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
