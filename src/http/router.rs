//! The router: one `match` on method and path segments. `HEAD` is
//! answered wherever `GET` is (hyper sends the head without the body).
//!
//! | route | handler |
//! |---|---|
//! | `POST /api/users` | register |
//! | `GET /api/users/<id>` | a user's public record (a credential unless `public_profiles`) |
//! | `GET /api/token` | trade Basic username:password for a token |
//! | `GET /api/resource` | the REST-auth protected resource |
//! | `GET /login` | the login page |
//! | `POST /login` | form login (session cookie) or JSON login (Flask-Security shape) |
//! | `POST /logout` | revoke the presented token, or the session (form) |
//! | `GET /logout?rd=` | sign out and follow `rd` |
//! | `GET /` | the signed-in page |
//! | any `/auth` | forward auth for Traefik and Caddy (redirects browsers) |
//! | any `/auth/nginx` | forward auth for nginx `auth_request` (never redirects) |
//! | `GET /healthz` | 200 while the store answers, else 503 |
//! | `GET /api/users/me` | the caller's record with email and groups |
//! | `PATCH /api/users/me` | change the email (recent password) |
//! | `DELETE /api/users/me` | delete the caller's account (Basic password) |
//! | `PUT /api/users/me/password` | change the password, revoke earlier tokens |
//! | `POST /api/logout-all` | revoke every earlier token (and, asked, every key) of the caller |
//! | `POST /api/keys`, `GET /api/keys` | create (recent password) and list API keys |
//! | `DELETE /api/keys/<id>` | delete an API key |
//!
//! `/metrics` and `/openapi.yaml` are on the operations listener (see
//! [`super::ops`]). Browsers (by `Accept`) get an HTML page instead of a
//! JSON error on forward auth and latch's own pages.
//!
//! It owns the route table and the metrics and audit context of each request;
//! it never reads a body or a credential.

use hyper::{Method, Request, Response};

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use hyper::header;
use hyper::http::request::Parts;

use super::extract::{self, Surface};
use super::forward::{self, Flavor};
use super::request::ReadBody;
use super::response::{self, Body};
use super::{account, api, pages, request, second};
use crate::audit;
use crate::error::{Error, Kind, Result};
use crate::metrics::Route::{self, *};
use crate::App;

/// Paths deeper than this are 404 without further thought.
const MAX_SEGMENTS: usize = 4;

/// Answers one request. Never fails: errors become their JSON responses
/// (or, for browsers on the pages and forward auth, HTML pages) here.
pub async fn route<B: ReadBody>(app: &App, req: Request<B>, peer: SocketAddr) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let started = Instant::now();
    let mut buf = [""; MAX_SEGMENTS];
    let segments = segments(parts.uri.path(), &mut buf);
    let trusted_proxy = app.config.forward_auth.trusts(peer.ip());
    let context = audit::Context {
        source: client_address(app, &parts, peer.ip(), trusted_proxy),
        trusted_proxy,
    };
    // HEAD is GET without the body (hyper leaves the body out).
    let method = match parts.method {
        Method::HEAD => &Method::GET,
        ref m => m,
    };
    // Every handler but the hot ones (forward auth, the resource,
    // who-am-I) is boxed: this future is as large as its largest inline
    // arm and is moved on every request, so a big login or page future
    // inline would cost every forward-auth check a copy of it (2.2 KB
    // before; forward auth's own is 552 bytes).
    let (route, result): (Route, Result<Response<Body>>) = audit::scope(context, async {
        match (method, segments) {
            (&Method::POST, Some(["api", "users"])) => {
                (Users, Box::pin(api::register(app, &parts, body)).await)
            }
            (_, Some(["api", "users"])) => (Users, Err(not_allowed("POST"))),
            (&Method::GET, Some(["api", "users", "me"])) => (Me, api::me(app, &parts).await),
            (&Method::PATCH, Some(["api", "users", "me"])) => {
                (Me, Box::pin(api::update_me(app, &parts, body)).await)
            }
            (&Method::DELETE, Some(["api", "users", "me"])) => {
                (Me, Box::pin(api::delete_me(app, &parts)).await)
            }
            (_, Some(["api", "users", "me"])) => (Me, Err(not_allowed("GET, HEAD, PATCH, DELETE"))),
            (&Method::PUT, Some(["api", "users", "me", "password"])) => (
                Password,
                Box::pin(api::change_password(app, &parts, body)).await,
            ),
            (_, Some(["api", "users", "me", "password"])) => (Password, Err(not_allowed("PUT"))),
            (&Method::GET, Some(["api", "users", id])) => {
                (User, Box::pin(api::user(app, &parts, id)).await)
            }
            (_, Some(["api", "users", _])) => (User, Err(not_allowed("GET, HEAD"))),
            (&Method::GET, Some(["api", "token"])) => {
                (Token, Box::pin(api::token(app, &parts)).await)
            }
            (_, Some(["api", "token"])) => (Token, Err(not_allowed("GET, HEAD"))),
            (&Method::GET, Some(["api", "resource"])) => {
                (Resource, api::resource(app, &parts).await)
            }
            (_, Some(["api", "resource"])) => (Resource, Err(not_allowed("GET, HEAD"))),
            (&Method::POST, Some(["api", "logout-all"])) => (
                LogoutAll,
                Box::pin(api::logout_all(app, &parts, body)).await,
            ),
            (_, Some(["api", "logout-all"])) => (LogoutAll, Err(not_allowed("POST"))),
            (&Method::POST, Some(["api", "keys"])) => {
                (Keys, Box::pin(api::create_key(app, &parts, body)).await)
            }
            (&Method::GET, Some(["api", "keys"])) => {
                (Keys, Box::pin(api::list_keys(app, &parts)).await)
            }
            (_, Some(["api", "keys"])) => (Keys, Err(not_allowed("GET, HEAD, POST"))),
            (&Method::DELETE, Some(["api", "keys", id])) => {
                (Key, Box::pin(api::delete_key(app, &parts, id)).await)
            }
            (_, Some(["api", "keys", _])) => (Key, Err(not_allowed("DELETE"))),
            (&Method::GET, Some(["api", "sessions"])) => {
                (Sessions, Box::pin(api::list_sessions(app, &parts)).await)
            }
            (_, Some(["api", "sessions"])) => (Sessions, Err(not_allowed("GET, HEAD"))),
            (&Method::DELETE, Some(["api", "sessions", id])) => {
                (Session, Box::pin(api::end_session(app, &parts, id)).await)
            }
            (_, Some(["api", "sessions", _])) => (Session, Err(not_allowed("DELETE"))),
            (&Method::POST, Some(["api", "totp"])) => {
                (Totp, Box::pin(second::api_begin(app, &parts)).await)
            }
            (&Method::DELETE, Some(["api", "totp"])) => {
                (Totp, Box::pin(second::api_remove(app, &parts, body)).await)
            }
            (_, Some(["api", "totp"])) => (Totp, Err(not_allowed("POST, DELETE"))),
            (&Method::POST, Some(["api", "totp", "confirm"])) => {
                (Totp, Box::pin(second::api_confirm(app, &parts, body)).await)
            }
            (&Method::POST, Some(["api", "totp", "recovery"])) => (
                Totp,
                Box::pin(second::api_recovery(app, &parts, body)).await,
            ),
            (_, Some(["api", "totp", "confirm" | "recovery"])) => (Totp, Err(not_allowed("POST"))),
            (&Method::GET, Some(["login", "otp"])) => {
                (LoginOtp, Box::pin(second::form(app, &parts)).await)
            }
            (&Method::POST, Some(["login", "otp"])) => {
                (LoginOtp, Box::pin(second::submit(app, &parts, body)).await)
            }
            (&Method::POST, Some(["login", "otp", "enrol"])) => {
                (LoginOtp, Box::pin(second::enrol(app, &parts, body)).await)
            }
            (&Method::POST, Some(["login", "otp", "confirm"])) => {
                (LoginOtp, Box::pin(second::confirm(app, &parts, body)).await)
            }
            (_, Some(["login", "otp"])) => (LoginOtp, Err(not_allowed("GET, HEAD, POST"))),
            (_, Some(["login", "otp", "enrol" | "confirm"])) => {
                (LoginOtp, Err(not_allowed("POST")))
            }
            (&Method::POST, Some(["account", "totp", "remove"])) => {
                (Account, Box::pin(second::remove(app, &parts, body)).await)
            }
            (&Method::POST, Some(["account", "totp", "recovery"])) => {
                (Account, Box::pin(second::recovery(app, &parts, body)).await)
            }
            (&Method::GET, Some(["login"])) => {
                (Login, Box::pin(pages::login_form(app, &parts)).await)
            }
            (&Method::POST, Some(["login"])) if request::is_form(&parts) => (
                Login,
                Box::pin(pages::login_submit(app, &parts, body)).await,
            ),
            (&Method::POST, Some(["login"])) => {
                (Login, Box::pin(api::login_json(app, &parts, body)).await)
            }
            (_, Some(["login"])) => (Login, Err(not_allowed("GET, HEAD, POST"))),
            (&Method::GET, Some(["logout"])) => {
                (Logout, Box::pin(pages::logout_link(app, &parts)).await)
            }
            (&Method::POST, Some(["logout"])) => {
                (Logout, Box::pin(logout(app, &parts, body)).await)
            }
            (_, Some(["logout"])) => (Logout, Err(not_allowed("GET, HEAD, POST"))),
            (&Method::GET, Some([""])) => (Home, Box::pin(account::home(app, &parts)).await),
            (&Method::POST, Some(["account", "sessions", "end"])) => (
                Account,
                Box::pin(account::end_session(app, &parts, body)).await,
            ),
            (&Method::POST, Some(["account", "keys"])) => (
                Account,
                Box::pin(account::create_key(app, &parts, body)).await,
            ),
            (&Method::POST, Some(["account", "keys", "revoke"])) => (
                Account,
                Box::pin(account::revoke_key(app, &parts, body)).await,
            ),
            (&Method::POST, Some(["account", "password"])) => (
                Account,
                Box::pin(account::change_password(app, &parts, body)).await,
            ),
            (_, Some(["account", ..])) => (Account, Err(Error::new(Kind::NotFound))),
            (_, Some([""])) => (Home, Err(not_allowed("GET, HEAD"))),
            (_, Some(["auth"])) => (
                Auth,
                forward::check(app, &parts, peer, Flavor::Redirecting).await,
            ),
            (_, Some(["auth", "nginx"])) => (
                AuthNginx,
                forward::check(app, &parts, peer, Flavor::Nginx).await,
            ),
            (&Method::GET, Some(["healthz"])) => {
                (Healthz, Box::pin(super::ops::healthz(app)).await)
            }
            (_, Some(["healthz"])) => (Healthz, Err(not_allowed("GET, HEAD"))),
            _ => (Other, Err(Error::new(Kind::NotFound))),
        }
    })
    .await;
    // The error page is shaped in the request's context too: which domain
    // it links to depends on whether a trusted proxy sent the request.
    let res = result.unwrap_or_else(|e| {
        audit::sync_scope(context, || {
            log_refusal(&parts, &e);
            if route.is_page() && request::is_browser(&parts) && !is_json_body(&parts) {
                pages::error_page(app, &parts, &e)
            } else {
                response::error(&e)
            }
        })
    });
    app.service
        .metrics()
        .request(route, res.status().as_u16(), started.elapsed());
    res
}

/// `POST /logout`: a token in a header is the API's logout (the
/// Flask-Security one); anything else is the pages' (a form, or the
/// session cookie).
async fn logout<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    if !request::is_form(parts) && extract::credential(parts, Surface::api(&app.config))?.is_some()
    {
        return api::logout(app, parts).await;
    }
    pages::logout(app, parts, body).await
}

/// Logs a refused request: our own failures at error level (with the
/// cause), a full hashing queue not at all (it is load, counted in
/// `latch_hash_queue_depth`), anything else at debug level.
pub fn log_refusal(parts: &Parts, e: &Error) {
    let (method, path) = (&parts.method, parts.uri.path());
    let status = response::status(e.kind()).as_u16();
    let cause = e.cause();
    match status {
        503 if e.kind() == Kind::Busy => tracing::debug!(%method, path, "busy"),
        500.. => tracing::error!(%method, path, cause, "request failed"),
        status => tracing::debug!(%method, path, status, cause, "request refused"),
    }
}

fn is_json_body(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

/// The client's address for the audit log and regulation (see
/// [`request::client_address`]); `trusted` is whether `peer` is a
/// trusted proxy. A peer that sends forwarding headers but is not in
/// `trusted_proxies` is warned about once.
fn client_address(app: &App, parts: &Parts, peer: IpAddr, trusted: bool) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted {
        if forwards(parts) {
            app.warn_untrusted_proxy(peer);
        }
        return peer;
    }
    let fa = &app.config.forward_auth;
    request::forwarded_client(&parts.headers, peer, |ip| fa.trusts(ip))
}

/// Whether the request carries a proxy's forwarding headers.
fn forwards(parts: &Parts) -> bool {
    [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-uri",
        "x-original-url",
    ]
    .iter()
    .any(|h| parts.headers.contains_key(*h))
}

fn not_allowed(allow: &'static str) -> Error {
    Error::new(Kind::MethodNotAllowed(allow))
}

/// Splits `/a/b/c` into `["a", "b", "c"]` without allocating; `None` when
/// there are more than [`MAX_SEGMENTS`]. (A byte search: `str::split`
/// took 200 instructions a request.)
fn segments<'a>(path: &'a str, buf: &'a mut [&'a str; MAX_SEGMENTS]) -> Option<&'a [&'a str]> {
    let mut rest = path.strip_prefix('/').unwrap_or(path);
    let mut n = 0;
    loop {
        let slot = buf.get_mut(n)?;
        n += 1;
        match rest.bytes().position(|b| b == b'/') {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                return Some(&buf[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_segments() {
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(
            segments("/api/users/3", &mut buf),
            Some(&["api", "users", "3"][..])
        );
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(segments("/", &mut buf), Some(&[""][..]));
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(segments("/a/b/c/d/e", &mut buf), None);
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(
            segments("/a/b/c/d", &mut buf),
            Some(&["a", "b", "c", "d"][..])
        );
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(
            segments("/api/users/", &mut buf),
            Some(&["api", "users", ""][..])
        );
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(segments("/é/ü", &mut buf), Some(&["é", "ü"][..]));
        let mut buf = [""; MAX_SEGMENTS];
        assert_eq!(segments("", &mut buf), Some(&[""][..]));
    }
}
