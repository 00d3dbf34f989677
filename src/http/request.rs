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

/// A request body latch can read: hyper's `Incoming`, or `Full` when tests
/// call the router directly.
pub trait ReadBody:
    HttpBody<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
{
}

impl<T> ReadBody for T where
    T: HttpBody<Data = Bytes, Error: std::error::Error + Send + Sync + 'static>
{
}

/// The Flask-Security token header.
pub static AUTHENTICATION_TOKEN: HeaderName = HeaderName::from_static("authentication-token");

/// Reads a JSON body of at most `limit` bytes within `timeout`. A declared
/// `Content-Length` over the limit is refused before anything is read.
pub async fn json<T: DeserializeOwned, B: ReadBody>(
    parts: &Parts,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<T> {
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
pub async fn read_body<B: ReadBody>(
    parts: &Parts,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes> {
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

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization` or `Authentication-Token`.
    Header,
    /// `?auth_token=`.
    Query,
    /// The session cookie.
    Cookie,
}

/// Which optional credential places to look in.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// `?auth_token=` (config `query_token`).
    pub query: bool,
    /// The session cookie's name, where cookies count.
    pub cookie: Option<&'a str>,
}

/// The credential a request carries, looked for in this order:
/// `Authorization` (Bearer or Basic), `Authentication-Token`, then
/// `?auth_token=` and the session cookie when `lookup` allows. `None` when
/// there is none; an unparsable one is a 401.
pub fn credential<'a>(
    parts: &'a Parts,
    lookup: Lookup<'_>,
) -> Result<Option<(Credential<'a>, Source)>> {
    let found = if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        credentials::parse_authorization(v.as_bytes()).map(|c| (c, Source::Header))
    } else if let Some(v) = parts.headers.get(&AUTHENTICATION_TOKEN) {
        credentials::parse_token(v.as_bytes()).map(|t| (Credential::Token(t), Source::Header))
    } else if let Some(found) = lookup
        .query
        .then(|| parts.uri.query().and_then(credentials::query_token))
        .flatten()
    {
        found.map(|t| (Credential::Token(t), Source::Query))
    } else if let Some(value) = lookup.cookie.and_then(|name| session_cookie(parts, name)) {
        credentials::parse_token(value.as_bytes()).map(|t| (Credential::Token(t), Source::Cookie))
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

/// The non-empty value of cookie `name` (a cleared cookie may linger as
/// an empty value: that is no credential).
pub fn session_cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .find_map(|v| credentials::cookie(v.as_bytes(), name))
        .filter(|v| !v.is_empty())
}

/// Whether a browser request comes from latch's own pages: its `Origin`
/// (else its `Referer`) names latch's origin, which is `public_url`'s when
/// set, else the request's own `Host`. With neither header there is no
/// evidence either way and this returns true; callers that need more
/// demand a form token too.
pub fn same_origin(parts: &Parts, public_url: Option<&str>) -> bool {
    let own_authority = match public_url {
        Some(url) => authority_of(url).map(str::to_owned),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
    };
    let Some(own) = own_authority else {
        return false;
    };
    let claimed = parts
        .headers
        .get(header::ORIGIN)
        .or_else(|| parts.headers.get(header::REFERER))
        .map(|v| v.to_str().ok().and_then(authority_of));
    match claimed {
        None => true,
        Some(Some(authority)) => authority.eq_ignore_ascii_case(&own),
        Some(None) => false,
    }
}

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub async fn form<B: ReadBody>(
    parts: &Parts,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<(String, String)>> {
    let bytes = read_body(parts, body, limit, timeout).await?;
    credentials::parse_form(&bytes).ok_or_else(|| Error::bad_request("the form is malformed"))
}

/// Whether the request body is a form (`application/x-www-form-urlencoded`).
pub fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| {
            ct.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}
