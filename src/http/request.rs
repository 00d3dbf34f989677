//! Reading requests: bounded bodies (JSON, forms) and the same-origin check.
//!
//! It owns limits on what a client sends (size, time, type); it never decides
//! who the client is.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Body as HttpBody;
use hyper::header;
use hyper::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::config::net::authority_of;
use crate::credentials;
use crate::error::{Error, Kind, Result};

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

/// Reads a JSON body of at most `limit` bytes within `timeout`. A declared
/// `Content-Length` over the limit is refused before anything is read.
pub async fn json<T: DeserializeOwned, B: ReadBody>(
    parts: &Parts,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<T> {
    check_json_type(parts)?;
    let bytes = read_body(parts, body, limit, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Error::invalid("the body is not valid JSON of the expected shape"))
}

/// The 415 of an endpoint that reads JSON.
pub const EXPECTED_JSON: &str = "expected a JSON body (application/json)";

/// The 415 of an endpoint that reads a form.
pub const EXPECTED_FORM: &str = "expected a form (application/x-www-form-urlencoded)";

/// 415 unless the body is declared JSON (or its type is not declared).
pub fn check_json_type(parts: &Parts) -> Result<()> {
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")) {
            return Err(Error::new(Kind::UnsupportedMediaType(EXPECTED_JSON)));
        }
    }
    Ok(())
}

/// How much of a refused body is read and thrown away before the 413, so
/// that clients which send the whole body before reading (Python's
/// `http.client`, `requests`) get to read the answer instead of a reset
/// connection; nginx's lingering close does the same.
const LINGER_BYTES: usize = 8 << 20;
/// How long that may take.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads the whole body, at most `limit` bytes, within `timeout` (408
/// after it, so a slow sender cannot hold a connection open). Over the
/// limit, declared or sent: 413, after draining what is left (bounded).
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
    let mut body = std::pin::pin!(body);
    if declared.is_some_and(|n| n > limit as u64) {
        // A client waiting for `100 Continue` has sent nothing yet: reading
        // would invite the body in just to throw it away.
        let waiting = parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waiting {
            drain(body.as_mut()).await;
        }
        return Err(Error::new(Kind::PayloadTooLarge));
    }
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Error::with_cause(Kind::Invalid("the request body could not be read"), e)
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Ok(None);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Some(buf.freeze()))
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(Error::new(Kind::Timeout)),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => {
            drain(body.as_mut()).await;
            Err(Error::new(Kind::PayloadTooLarge))
        }
    }
}

/// Reads and discards the rest of a body, up to [`LINGER_BYTES`] within
/// [`LINGER_TIME`].
async fn drain<B: ReadBody>(mut body: std::pin::Pin<&mut B>) {
    let discard = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > LINGER_BYTES {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

/// Whether a browser request comes from latch's own pages: its `Origin`
/// (else its `Referer`) names latch's origin, which is `public_url`'s when
/// set (its scheme too: a plain-http page on latch's host is another
/// origin), else the request's own `Host`. With neither header there is
/// no evidence either way and this returns true; callers that need more
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
        // Browsers write the scheme in lowercase: anything else is not a
        // browser's origin, and is refused.
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|v| is_lowercase_http(v))
                .filter(|v| public_url.is_none_or(|u| scheme_of(u) == scheme_of(v)))
                .and_then(authority_of)
        });
    match claimed {
        None => true,
        Some(Some(authority)) => authority.eq_ignore_ascii_case(&own),
        Some(None) => false,
    }
}

fn is_lowercase_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// The scheme of an http(s) URL, as written before `://`.
fn scheme_of(url: &str) -> &str {
    url.split_once("://").map_or("", |(scheme, _)| scheme)
}

/// Whether a form was posted from a plain-http page, as its `Origin` (else
/// its `Referer`) says.
pub fn posted_over_http(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::ORIGIN)
        .or_else(|| parts.headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
}

/// A browser: it accepts HTML and is not a script's XHR.
pub fn is_browser(parts: &Parts) -> bool {
    let accepts_html = parts.headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("text/html"))
    });
    let xhr = parts
        .headers
        .get("x-requested-with")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("xmlhttprequest"));
    accepts_html && !xhr
}

static X_FORWARDED_FOR: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-forwarded-for");

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the rightmost `X-Forwarded-For` entry that is not a trusted proxy
/// itself. Entries to its left were written by the client (or proxies
/// nobody vouches for) and are never believed; an entry that is not an
/// address stops the walk at the last believed hop.
pub fn client_address(
    headers: &hyper::HeaderMap,
    peer: IpAddr,
    trusts: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    if !trusts(peer) {
        return peer;
    }
    forwarded_client(headers, peer, trusts)
}

/// [`client_address`] for a peer already known to be a trusted proxy
/// (the router asks once per request).
pub fn forwarded_client(
    headers: &hyper::HeaderMap,
    peer: IpAddr,
    trusts: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    let mut client = peer;
    let values = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok());
    for entry in values.flat_map(|v| v.rsplit(',')) {
        let Some(ip) = parse_forwarded_address(entry.trim()) else {
            return client;
        };
        client = ip;
        if !trusts(ip) {
            return ip;
        }
    }
    client
}

/// An address as proxies write it in `X-Forwarded-For`: bare, or (some)
/// with a port: `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:4711`.
fn parse_forwarded_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    text.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub async fn form<B: ReadBody>(
    parts: &Parts,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<(String, String)>> {
    let bytes = read_body(parts, body, limit, timeout).await?;
    credentials::parse_form(&bytes).ok_or_else(|| Error::invalid("the form is malformed"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Trusted: loopback and 10.0.0.0/8.
    fn trusted(ip: IpAddr) -> bool {
        ip.is_loopback() || matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10)
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let lo = ip("127.0.0.1");
        for (values, expected) in [
            (&["6.6.6.6, 203.0.113.7"][..], "203.0.113.7"),
            (&["203.0.113.7"], "203.0.113.7"),
            (&["6.6.6.6, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
            (&["6.6.6.6", "203.0.113.7"], "203.0.113.7"),
            (&["6.6.6.6,203.0.113.7:4711"], "203.0.113.7"),
            (&["[2001:db8::7]:4711"], "2001:db8::7"),
            (&["::ffff:203.0.113.7"], "203.0.113.7"),
            // All trusted: the leftmost trusted hop.
            (&["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            // Garbage where a proxy should have written: the last believed hop.
            (&["6.6.6.6, garbage"], "127.0.0.1"),
            (&["6.6.6.6, garbage, 10.0.0.2"], "10.0.0.2"),
            (&[], "127.0.0.1"),
        ] {
            assert_eq!(
                client_address(&xff(values), lo, trusted),
                ip(expected),
                "{values:?}"
            );
        }
        // From an untrusted peer the header is not read at all.
        assert_eq!(
            client_address(&xff(&["6.6.6.6"]), ip("198.51.100.1"), trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn plain_http_posts_are_recognised() {
        let parts = |h: &[(&str, &str)]| {
            let mut b = hyper::Request::builder();
            for (n, v) in h {
                b = b.header(*n, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert!(posted_over_http(&parts(&[("Origin", "http://auth.lan")])));
        assert!(posted_over_http(&parts(&[(
            "Referer",
            "HTTP://auth.lan/login"
        )])));
        assert!(!posted_over_http(&parts(&[("Origin", "https://auth.lan")])));
        assert!(!posted_over_http(&parts(&[("Origin", "null")])));
        assert!(!posted_over_http(&parts(&[])));
    }
}
