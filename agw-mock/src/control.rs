//! The `/__mock/*` control endpoints, for tests that run the mock as another process.

use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::Recorded;
use super::routes::{anthropic_error, decode_request_body, json};
use super::server::{Body, State};

/// Answers a request under `/__mock/`.
pub(crate) fn respond(state: &State, parts: &Parts) -> Response<Body> {
    let ok = || json(StatusCode::OK, br#"{"ok":true}"#.to_vec(), false);
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/__mock/requests") => {
            json(StatusCode::OK, requests_json(&state.requests()), false)
        }
        (&Method::POST, "/__mock/reset") => {
            state.clear();
            ok()
        }
        (&Method::POST, "/__mock/release") => {
            state.release();
            ok()
        }
        (method, path) => {
            let message = format!("mock: no control endpoint {method} {path}");
            anthropic_error(StatusCode::NOT_FOUND, "not_found_error", &message)
        }
    }
}

/// `GET /__mock/requests`: `[{method, uri, headers, body | body_base64, [decoded_body]}]`.
///
/// A header sent once is a string, one sent several times an array of strings. A body that is
/// not UTF-8 comes as `body_base64`; a gzip-encoded one also as `decoded_body` when that is
/// UTF-8.
pub(crate) fn requests_json(requests: &[Recorded]) -> Vec<u8> {
    let list: Vec<Value> = requests.iter().map(request_json).collect();
    serde_json::to_vec(&list).expect("recorded requests serialize")
}

fn request_json(request: &Recorded) -> Value {
    let mut headers = Map::new();
    for name in request.headers.keys() {
        let mut values: Vec<Value> = request
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = if values.len() == 1 {
            values.remove(0)
        } else {
            Value::Array(values)
        };
        headers.insert(name.as_str().to_owned(), value);
    }
    let mut object = json!({
        "method": request.method.as_str(),
        "uri": request.uri,
        "headers": headers,
    });
    match std::str::from_utf8(&request.body) {
        Ok(text) => object["body"] = Value::from(text),
        Err(_) => object["body_base64"] = Value::from(base64(&request.body)),
    }
    if let Ok(decoded) = decode_request_body(&request.headers, &request.body)
        && decoded != request.body
        && let Ok(text) = std::str::from_utf8(&decoded)
    {
        object["decoded_body"] = Value::from(text);
    }
    object
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
