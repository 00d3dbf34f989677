//! Building responses. Each status has its body and headers decided here,
//! in one place.
//!
//! It owns statuses, error bodies, challenges and security headers, including
//! the one map from an error's kind to a status; it never runs a flow.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::{Error, Kind, Refusal};

/// Every response body latch sends.
pub type Body = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const BEARER: HeaderValue = HeaderValue::from_static(r#"Bearer realm="latch""#);
const BEARER_INVALID: HeaderValue =
    HeaderValue::from_static(r#"Bearer realm="latch", error="invalid_token""#);
const BASIC: HeaderValue = HeaderValue::from_static(r#"Basic realm="latch", charset="UTF-8""#);

/// A JSON response. Every JSON response is `Cache-Control: no-store`: many
/// carry tokens, and none is worth caching.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    json_raw(
        status,
        serde_json::to_vec(value)
            .expect("response bodies serialize")
            .into(),
    )
}

/// A JSON response from bytes already serialized.
pub fn json_raw(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    res
}

/// An empty response with this status.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    res
}

/// The HTTP status for each kind of error.
pub fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid(_) => StatusCode::BAD_REQUEST,
        Kind::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Kind::Forbidden(_) => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Kind::Conflict(_) => StatusCode::CONFLICT,
        Kind::Timeout => StatusCode::REQUEST_TIMEOUT,
        Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::Busy | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal | Kind::Config | Kind::Store | Kind::Locked => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The short machine-readable code of an error's JSON body.
pub fn code(kind: Kind) -> &'static str {
    match kind {
        Kind::Invalid(_) => "invalid_request",
        Kind::Unauthorized(Refusal::BadToken) => "invalid_token",
        Kind::Unauthorized(Refusal::Stale) => "reauthentication_required",
        Kind::Unauthorized(Refusal::OtpRequired) => "otp_required",
        Kind::Unauthorized(Refusal::BadCode) => "invalid_otp",
        Kind::Unauthorized(_) => "unauthorized",
        Kind::Forbidden(_) => "forbidden",
        Kind::NotFound => "not_found",
        Kind::MethodNotAllowed(_) => "method_not_allowed",
        Kind::Conflict(_) => "conflict",
        Kind::Timeout => "request_timeout",
        Kind::PayloadTooLarge => "payload_too_large",
        Kind::UnsupportedMediaType(_) => "unsupported_media_type",
        Kind::Busy => "busy",
        Kind::Unavailable => "unavailable",
        Kind::Internal | Kind::Config | Kind::Store | Kind::Locked => "internal_error",
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: &'static str,
}

/// The response for an error: JSON `{"error","message"}`, the right status,
/// and the headers that status calls for. Never includes the cause.
pub fn error(e: &Error) -> Response<Body> {
    let mut res = json(
        status(e.kind()),
        &ErrorBody {
            error: code(e.kind()),
            message: e.public_message(),
        },
    );
    let h = res.headers_mut();
    match e.kind() {
        Kind::Unauthorized(why) => {
            let bearer = if why == Refusal::BadToken {
                BEARER_INVALID
            } else {
                BEARER
            };
            h.append(header::WWW_AUTHENTICATE, bearer);
            h.append(header::WWW_AUTHENTICATE, BASIC);
        }
        Kind::MethodNotAllowed(allow) => {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        Kind::PayloadTooLarge | Kind::Timeout => {
            // The body was not read; the connection cannot be reused.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Kind::Busy => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    res
}

/// Leaves only the Bearer challenge on a 401 that a browser will see on
/// someone else's page (a Basic one pops up a password dialog there).
pub fn bearer_challenge_only(res: &mut Response<Body>) {
    let bearer: Vec<HeaderValue> = res
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter(|v| v.as_bytes().starts_with(b"Bearer"))
        .cloned()
        .collect();
    res.headers_mut().remove(header::WWW_AUTHENTICATE);
    for value in bearer {
        res.headers_mut().append(header::WWW_AUTHENTICATE, value);
    }
}

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// An HTML page. Never cached, never framed, no scripts or external
/// resources allowed. (No `form-action`: browsers apply it to the redirect
/// after the login form too, which goes to the protected app.)
pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(page)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HTML);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// A redirect with this status to `location` (already validated).
pub fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut res = empty(status);
    if let Ok(value) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, value);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, NO_STORE);
    res
}

/// Adds a `Set-Cookie` header.
pub fn set_cookie(res: &mut Response<Body>, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
}
