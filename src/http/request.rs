//! Reading requests: bounded JSON bodies and the credential a request carries.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Body as HttpBody;
use hyper::header::{self, HeaderName};
use hyper::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::credentials::{self, Credential, Malformed};
use crate::error::{Error, Kind, Refusal, Result};

/// The Flask-Security token header.
pub static AUTHENTICATION_TOKEN: HeaderName = HeaderName::from_static("authentication-token");

/// Reads a JSON body of at most `limit` bytes within `timeout`. A declared
/// `Content-Length` over the limit is refused before anything is read.
pub async fn json<T, B>(parts: &Parts, body: B, limit: usize, timeout: Duration) -> Result<T>
where
    T: DeserializeOwned,
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")) {
            return Err(Error::new(Kind::UnsupportedMediaType));
        }
    }
    let bytes = read_body(parts, body, limit, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Error::bad_request("the body is not valid JSON of the expected shape"))
}

/// Reads the whole body, at most `limit` bytes, within `timeout` (408
/// after it, so a slow sender cannot hold a connection open).
pub async fn read_body<B>(parts: &Parts, body: B, limit: usize, timeout: Duration) -> Result<Bytes>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::new(Kind::PayloadTooLarge));
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| Error::new(Kind::Timeout))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Error::new(Kind::PayloadTooLarge))
        }
        Err(e) => Err(Error::with_cause(
            Kind::BadRequest("the request body could not be read"),
            e,
        )),
    }
}

/// The credential a request carries, looked for in this order:
/// `Authorization` (Bearer or Basic), `Authentication-Token`, then
/// `?auth_token=` when `query_token` is on. `None` when there is none; an
/// unparsable one is a 401.
pub fn credential(parts: &Parts, query_token: bool) -> Result<Option<Credential<'_>>> {
    let found = if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        credentials::parse_authorization(v.as_bytes())
    } else if let Some(v) = parts.headers.get(&AUTHENTICATION_TOKEN) {
        credentials::parse_token(v.as_bytes()).map(Credential::Token)
    } else if let Some(found) = query_token
        .then(|| parts.uri.query().and_then(credentials::query_token))
        .flatten()
    {
        found.map(Credential::Token)
    } else {
        return Ok(None);
    };
    found.map(Some).map_err(|m| {
        Error::unauthorized(match m {
            Malformed::Basic => Refusal::Malformed,
            Malformed::Token => Refusal::BadToken,
        })
    })
}
