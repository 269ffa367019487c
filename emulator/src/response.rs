//! Response bodies and the JSON responses every emulated service writes.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use std::io;

/// Body of every response: a complete buffer or a stream fed by a fault task.
pub(crate) type Body = BoxBody<Bytes, io::Error>;

pub(crate) const JSON: &str = "application/json; charset=utf-8";

/// A handler's decision about a request.
pub(crate) enum Outcome {
    Reply(Response<Body>),
    /// Reset the TCP connection without a response.
    Reset,
    /// Keep the request open without a response until the emulator stops.
    NoResponse,
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// Builds a response with `status`, a JSON content type and `json` as the body.
pub(crate) fn json(status: u16, json: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(json).expect("serializing a JSON value cannot fail");
    json_text(status, body)
}

/// Builds a JSON response from text that is already serialized, valid JSON or not.
pub(crate) fn json_text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status_code(status);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

pub(crate) fn status(status: u16) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status_code(status);
    response
}

pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Sets a header whose value the emulator built itself. Values from configuration that are
/// not valid header text are left out rather than failing the response.
pub(crate) fn set_header(response: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

pub(crate) fn set_retry_after(response: &mut Response<Body>, retry_after: Option<u64>) {
    if let Some(seconds) = retry_after {
        set_header(response, "retry-after", &seconds.to_string());
    }
}
