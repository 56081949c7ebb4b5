//! Turning agw's own errors into provider-shaped responses — in one place.

use crate::body::Body;
use agw_core::api::{Api, ErrorBody};
use http::{HeaderValue, Response, header};

/// A provider-shaped JSON error response.
pub fn error_response<B>(api: Api, err: &ErrorBody) -> Response<Body<B>> {
    let mut res = Response::new(Body::full(err.to_json(api)));
    *res.status_mut() = err.status();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert("x-agw-error", HeaderValue::from_static("1"));
    res
}
