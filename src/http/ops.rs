//! Operations endpoints: `/healthz`, `/metrics` and `/openapi.yaml`.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::response::{self, Body};
use crate::error::{Error, Kind, Result};
use crate::App;

/// `GET /healthz`: 200 while the store answers (a read and a flush), else 503.
pub async fn healthz(app: &App) -> Result<Response<Body>> {
    match app.auth.check_store().await {
        Ok(()) => Ok(response::json(StatusCode::OK, &json!({"status": "ok"}))),
        Err(e) => {
            tracing::error!("health check failed: {e}");
            Err(Error::new(Kind::Unavailable))
        }
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(app: &App) -> Response<Body> {
    let accounts = app.auth.accounts();
    let text = app
        .auth
        .metrics()
        .render(accounts.hasher().queue_depth(), accounts.user_count());
    let mut res = Response::new(Body::from(text));
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
