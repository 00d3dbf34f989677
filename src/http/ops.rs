//! The operations listener (`[ops] listen`, loopback by default): a
//! router of its own for what an operator's tools read and the public
//! should not.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 while the store answers, else 503 (also on the main listener) |
//! | `GET /metrics` | the Prometheus text exposition |
//! | `GET /openapi.yaml` | the OpenAPI 3 description of the main listener |
//!
//! It owns what the operator's tools read; it never changes state.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::request::ReadBody;
use super::response::{self, Body};
use crate::error::{Error, Kind, Result};
use crate::metrics::Route;
use crate::App;

/// Answers one request on the operations listener.
pub async fn route<B: ReadBody>(app: &App, req: Request<B>) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    let started = std::time::Instant::now();
    let get = matches!(parts.method, Method::GET | Method::HEAD);
    let (route, result) = match (get, parts.uri.path()) {
        (true, "/healthz") => (Route::Healthz, healthz(app).await),
        (true, "/metrics") => (Route::Metrics, Ok(metrics(app))),
        (true, "/openapi.yaml") => (Route::OpenApi, Ok(openapi())),
        (false, "/healthz") => (Route::Healthz, Err(not_allowed())),
        (false, "/metrics") => (Route::Metrics, Err(not_allowed())),
        (false, "/openapi.yaml") => (Route::OpenApi, Err(not_allowed())),
        _ => (Route::Other, Err(Error::new(Kind::NotFound))),
    };
    let res = result.unwrap_or_else(|e| {
        super::router::log_refusal(&parts, &e);
        response::error(&e)
    });
    app.service
        .metrics()
        .request(route, res.status().as_u16(), started.elapsed());
    res
}

fn not_allowed() -> Error {
    Error::new(Kind::MethodNotAllowed("GET, HEAD"))
}

/// `GET /healthz`: 200 while the store answers (a read and a flush), else 503.
pub async fn healthz(app: &App) -> Result<Response<Body>> {
    match app.service.check_store().await {
        Ok(()) => Ok(response::json(StatusCode::OK, &json!({"status": "ok"}))),
        Err(e) => {
            tracing::error!("health check failed: {e}");
            Err(Error::new(Kind::Unavailable))
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(app: &App) -> Response<Body> {
    let mut res = Response::new(Body::from(app.service.metrics_text()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// The OpenAPI document, compiled in from the repository's `openapi.yaml`.
const OPENAPI: &str = include_str!("../../openapi.yaml");

/// `GET /openapi.yaml`.
pub fn openapi() -> Response<Body> {
    let mut res = Response::new(Body::from(OPENAPI));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    res
}
