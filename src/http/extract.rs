//! Which credential a request carries, and from where: the one place that
//! decides where each surface looks.
//!
//! Each surface looks at, in this order:
//!
//! - the API (`/api/*`, the JSON login and logout): `Authorization`,
//!   `Authentication-Token`, `?auth_token=` (when enabled);
//! - forward auth (`/auth`, `/auth/nginx`): `Authorization`,
//!   `Authentication-Token`, the session cookie;
//! - latch's pages (`/`, `/login`, `/logout`): the session cookie.
//!
//! The API never reads the cookie, and forward auth never reads the query
//! (a link carrying `?auth_token=` would sign the victim in as someone else).
//! What a credential found in each place may be is the domain's rule
//! ([`crate::service::Service::authenticate`]): a session token only as the
//! cookie, never elsewhere; the cookie holds nothing else.

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;

use crate::config::Config;
use crate::credentials::{self, Credential, Malformed, Place, Presented};
use crate::error::{Error, Refusal, Result};

/// The Flask-Security token header.
pub static AUTHENTICATION_TOKEN: HeaderName = HeaderName::from_static("authentication-token");

/// A one-time code beside a Basic password.
pub static X_LATCH_OTP: HeaderName = HeaderName::from_static("x-latch-otp");

/// Which of latch's surfaces is asking.
#[derive(Debug, Clone, Copy)]
pub enum Surface<'a> {
    /// The JSON API; `query` says whether `?auth_token=` is accepted.
    Api {
        /// `query_token` from the config.
        query: bool,
    },
    /// Forward auth: headers, then the session cookie of this name.
    Forward {
        /// The session cookie's name.
        cookie: &'a str,
    },
    /// latch's own pages: the session cookie of this name only.
    Page {
        /// The session cookie's name.
        cookie: &'a str,
    },
}

impl Surface<'_> {
    /// The API's: headers, and the query when `query_token` is on.
    pub fn api(config: &Config) -> Surface<'static> {
        Surface::Api {
            query: config.query_token,
        }
    }

    /// Forward auth's: headers, then the session cookie.
    pub fn forward(config: &Config) -> Surface<'_> {
        Surface::Forward {
            cookie: &config.forward_auth.cookie_name,
        }
    }

    /// The pages': the session cookie only.
    pub fn page(config: &Config) -> Surface<'_> {
        Surface::Page {
            cookie: &config.forward_auth.cookie_name,
        }
    }
}

/// The credential a request carries on `surface`; `None` when there is
/// none; an unparsable one is a 401.
pub fn credential<'a>(parts: &'a Parts, surface: Surface<'_>) -> Result<Option<Presented<'a>>> {
    let (headers, query, cookie) = match surface {
        Surface::Api { query } => (true, query, None),
        Surface::Forward { cookie } => (true, false, Some(cookie)),
        Surface::Page { cookie } => (false, false, Some(cookie)),
    };
    let seen = Seen::scan(parts, headers, cookie);
    let found = if let Some(v) = seen.authorization {
        credentials::parse_authorization(v.as_bytes()).map(|c| (c, Place::Header))
    } else if let Some(v) = seen.token {
        credentials::parse_token(v.as_bytes()).map(|t| (Credential::Token(t), Place::Header))
    } else if let Some(found) = query
        .then(|| parts.uri.query().and_then(credentials::query_token))
        .flatten()
    {
        found.map(|t| (Credential::Token(t), Place::Query))
    } else if let Some(value) = seen.cookie.filter(|v| !v.is_empty()) {
        credentials::parse_token_str(value).map(|t| (Credential::Token(t), Place::Cookie))
    } else {
        return Ok(None);
    };
    found
        .map(|(credential, place)| {
            // Only a password has a second half; only the headers carry it.
            let otp = matches!(credential, Credential::Password { .. })
                .then(|| parts.headers.get(&X_LATCH_OTP))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(str::trim);
            Some(Presented {
                credential,
                place,
                otp,
            })
        })
        .map_err(|m| {
            Error::unauthorized(match m {
                Malformed::Basic => Refusal::Malformed,
                Malformed::Token => Refusal::BadToken,
            })
        })
}

/// Where a credential may be, found in one pass over the headers: the
/// first `Authorization` and `Authentication-Token` (as `HeaderMap::get`
/// answers), and the session cookie as [`cookie_value`] reads it before
/// its empty check. Cheaper than a hashed lookup per name: forward auth
/// reads them on every request.
struct Seen<'a> {
    authorization: Option<&'a HeaderValue>,
    token: Option<&'a HeaderValue>,
    /// The value from the first `Cookie` header that held the cookie
    /// (`Some("")` when empty: that header decides); only looked for when
    /// the surface reads a cookie.
    cookie: Option<&'a str>,
}

impl<'a> Seen<'a> {
    fn scan(parts: &'a Parts, headers: bool, cookie: Option<&str>) -> Seen<'a> {
        let mut seen = Seen {
            authorization: None,
            token: None,
            cookie: None,
        };
        for (name, value) in &parts.headers {
            if *name == header::COOKIE {
                if let (Some(cookie), None) = (cookie, seen.cookie) {
                    seen.cookie = credentials::cookie(value.as_bytes(), cookie);
                }
            } else if headers && *name == header::AUTHORIZATION {
                seen.authorization.get_or_insert(value);
            } else if headers && *name == AUTHENTICATION_TOKEN {
                seen.token.get_or_insert(value);
            }
        }
        seen
    }
}

/// Like [`credential`], but 401 when there is none.
pub fn required<'a>(parts: &'a Parts, surface: Surface<'_>) -> Result<Presented<'a>> {
    credential(parts, surface)?.ok_or_else(|| Error::unauthorized(Refusal::Missing))
}

/// The non-empty value of cookie `name` (a cleared cookie may linger as
/// an empty value: that is no credential).
pub fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .find_map(|v| credentials::cookie(v.as_bytes(), name))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    const API: Surface = Surface::Api { query: true };
    const FORWARD: Surface = Surface::Forward { cookie: "s" };
    const PAGE: Surface = Surface::Page { cookie: "s" };

    fn place(p: &Parts, surface: Surface) -> Option<Place> {
        credential(p, surface).unwrap().map(|c| c.place)
    }

    #[test]
    fn each_surface_looks_only_where_it_may() {
        let cookie = parts("/x", &[("Cookie", "a=1; s=tok")]);
        assert_eq!(place(&cookie, API), None, "the API never reads the cookie");
        assert_eq!(place(&cookie, FORWARD), Some(Place::Cookie));
        assert_eq!(place(&cookie, PAGE), Some(Place::Cookie));

        let query = parts("/x?auth_token=tok", &[]);
        assert_eq!(place(&query, API), Some(Place::Query));
        assert_eq!(place(&query, Surface::Api { query: false }), None);
        assert_eq!(
            place(&query, FORWARD),
            None,
            "forward auth never reads the query"
        );
        assert_eq!(place(&query, PAGE), None);

        let header = parts("/x", &[("Authorization", "Bearer tok")]);
        assert_eq!(place(&header, API), Some(Place::Header));
        assert_eq!(place(&header, FORWARD), Some(Place::Header));
        assert_eq!(place(&header, PAGE), None, "pages read the cookie only");
    }

    #[test]
    fn headers_win_over_the_cookie_on_forward_auth() {
        let both = parts(
            "/auth?auth_token=q",
            &[("Cookie", "s=c"), ("Authentication-Token", "h")],
        );
        let found = credential(&both, FORWARD).unwrap().unwrap();
        assert_eq!(found.place, Place::Header);
        assert_eq!(found.credential, Credential::Token("h".into()));
    }

    #[test]
    fn the_one_pass_finds_what_header_lookups_find() {
        let token = |p: &Parts, surface| match credential(p, surface).unwrap() {
            Some(Presented {
                credential: Credential::Token(t),
                ..
            }) => Some(t.into_owned()),
            _ => None,
        };
        // The first of each name, as `HeaderMap::get` answers.
        let p = parts(
            "/",
            &[
                ("Authentication-Token", "first"),
                ("Authentication-Token", "second"),
            ],
        );
        assert_eq!(token(&p, FORWARD).as_deref(), Some("first"));
        let p = parts(
            "/",
            &[
                ("Authorization", "Bearer one"),
                ("Authorization", "Bearer two"),
            ],
        );
        assert_eq!(token(&p, API).as_deref(), Some("one"));
        // The cookie from the first `Cookie` header that has it, as
        // `cookie_value` reads it (another header's bytes do not matter).
        let mut p = parts("/", &[("Cookie", "a=1"), ("Cookie", "s=tok; b=2")]);
        p.headers.insert("x-other", "x".parse().unwrap());
        assert_eq!(cookie_value(&p, "s"), Some("tok"));
        assert_eq!(token(&p, FORWARD).as_deref(), Some("tok"));
        assert_eq!(token(&p, PAGE).as_deref(), Some("tok"));
        let p = parts("/", &[("Cookie", "s="), ("Cookie", "s=late")]);
        assert_eq!(cookie_value(&p, "s"), None);
        assert_eq!(token(&p, PAGE), None, "the first decides, empty or not");
        let mut p = parts("/", &[]);
        let bad = HeaderValue::from_bytes(b"s=\xff").unwrap();
        p.headers.append(header::COOKIE, bad);
        p.headers
            .append(header::COOKIE, HeaderValue::from_static("s=ok"));
        assert_eq!(cookie_value(&p, "s"), Some("ok"));
        assert_eq!(token(&p, PAGE).as_deref(), Some("ok"));
    }

    #[test]
    fn an_empty_cookie_is_no_credential() {
        let p = parts("/", &[("Cookie", "s=")]);
        assert_eq!(place(&p, PAGE), None);
        assert!(required(&p, PAGE).is_err());
    }
}
