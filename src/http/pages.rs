//! The browser pages: `GET /login`, `POST /login` (form), `GET /` (the
//! signed-in page), `POST /logout` and `GET /logout?rd=`, and the HTML
//! page browsers get instead of a JSON error.
//!
//! Plain HTML forms: no JavaScript, no external assets. Forms carry a
//! per-form token bound to a cookie (`latch_form`), and form posts must
//! come from latch's own origin; either failing is a 403. The pages read
//! only the session cookie, never a header or query credential.
//!
//! It owns the HTML and its cookies; it never checks a password itself (the
//! service does) and never reads a header credential.

use hyper::header::{self};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::csrf::{Forms, FORM_TTL};
use super::extract::{self, Surface};
use super::request::ReadBody;
use super::request::{self};
use super::response::{self, Body};
use crate::config::SiteRef;
use crate::credentials;
use crate::error::{Error, Kind, Result};
use crate::model::{Identity, Via};
use crate::redirect::{self, Scope};
use crate::service::FirstStep;
use crate::App;

/// The cookie holding the nonce that form tokens are bound to.
const FORM_COOKIE: &str = "latch_form";

/// HTML-escapes text for element content and quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title · product` in the tab, the product's name above
/// the body; `wide` for the account page.
pub(super) fn page(product: &str, title: &str, body: &str, wide: bool) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {product}</title>
<style>
{STYLE}</style>
</head>
<body>
<main{class}>
<p class="product" id="product">{product}</p>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
        product = escape(product),
        class = if wide { r#" class="wide""# } else { "" },
    )
}

/// An HTML response whose style sheet is allowed by its hash: no inline
/// style or script other than latch's own runs on its pages.
pub(super) fn html(status: StatusCode, page: String) -> Response<Body> {
    static CSP: std::sync::OnceLock<header::HeaderValue> = std::sync::OnceLock::new();
    let csp = CSP.get_or_init(|| {
        let hash =
            crate::crypto::b64_encode(&crate::crypto::sha256(format!("\n{STYLE}").as_bytes()));
        let policy = format!(
            "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; \
             base-uri 'none'"
        );
        header::HeaderValue::from_str(&policy).expect("a policy of ASCII")
    });
    let mut res = response::html(status, page);
    res.headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    res
}

/// The pages' style sheet, a rule a line.
const STYLE: &str = concat!(
    "body { font: 16px/1.5 system-ui, sans-serif; margin: 0; display: flex; ",
    "min-height: 100vh; align-items: center; justify-content: center; background: #f4f4f5; ",
    "color: #18181b; }\n",
    "main { background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 3px #0002; ",
    "width: min(22rem, 90vw); box-sizing: border-box; margin: 1rem 0; }\n",
    "main.wide { width: min(40rem, 96vw); padding: 1.2rem; }\n",
    ".product { margin: 0 0 .3rem; color: #52525b; font-weight: 600; }\n",
    "h1 { font-size: 1.4rem; margin: 0 0 1rem; }\n",
    "h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }\n",
    "ul.list { list-style: none; padding: 0; margin: 0; }\n",
    "ul.list li { border-top: 1px solid #e4e4e7; padding: .6rem 0; overflow-wrap: anywhere; }\n",
    "ul.list form { display: inline; } button.small { width: auto; margin: .3rem 0 0; ",
    "padding: .3rem .8rem; background: #52525b; }\n",
    "code { overflow-wrap: anywhere; background: #f4f4f5; padding: .2rem; }\n",
    "#otpauth { overflow-wrap: anywhere; }\n",
    "label { display: block; margin-top: .8rem; font-weight: 600; }\n",
    "input[type=text], input[type=password] { width: 100%; box-sizing: border-box; ",
    "padding: .5rem; font: inherit; border: 1px solid #a1a1aa; border-radius: 4px; }\n",
    "button { margin-top: 1.2rem; width: 100%; padding: .6rem; font: inherit; ",
    "font-weight: 600; border: 0; border-radius: 4px; background: #1d4ed8; color: #fff; ",
    "cursor: pointer; }\n",
    "button:focus, input:focus { outline: 3px solid #93c5fd; }\n",
    ".error { color: #b91c1c; margin: 0 0 .5rem; }\n",
    ".check { margin: .8rem 0 0; } .check label { display: inline; font-weight: 400; }\n",
);

/// The sign-in form. `remember` offers "remember me" (for that many days).
fn login_page(
    product: &str,
    rd: Option<&str>,
    form_token: &str,
    message: Option<&str>,
    remember: Option<u64>,
) -> String {
    let message = message
        .map(|m| {
            format!(
                r#"<p class="error" role="alert" id="error">{}</p>"#,
                escape(m)
            )
        })
        .unwrap_or_default();
    let rd = rd
        .map(|rd| format!(r#"<input type="hidden" name="rd" value="{}">"#, escape(rd)))
        .unwrap_or_default();
    page(
        product,
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
{message}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{token}">
{rd}<label for="username">Username or email</label>
{username_input}
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
{remember}<button type="submit">Sign in</button>
</form>"#,
            token = escape(form_token),
            remember = remember
                .map(|days| {
                    format!(
                        concat!(
                            r#"<p class="check"><input type="checkbox" id="remember" "#,
                            r#"name="remember" value="1"> <label for="remember">Remember me "#,
                            r#"for {} days</label></p>"#,
                            "\n"
                        ),
                        days
                    )
                })
                .unwrap_or_default(),
            username_input = concat!(
                r#"<input type="text" id="username" name="username" autocomplete="username" "#,
                r#"autocapitalize="none" spellcheck="false" required autofocus>"#,
            ),
        ),
        false,
    )
}

/// The domain whose login host the request came to (`X-Forwarded-Host`
/// from a trusted proxy, else `Host`; either only picks among the
/// configured domains).
pub(super) fn site<'a>(app: &'a App, parts: &Parts) -> SiteRef<'a> {
    let header = |name| parts.headers.get(name).and_then(|h| h.to_str().ok());
    let trusted = crate::audit::from_trusted_proxy();
    // A proxy that passes its own address as Host (nginx's default) says
    // which host the browser asked for in X-Forwarded-Host.
    let forwarded = trusted.then(|| header("x-forwarded-host")).flatten();
    app.config
        .site_for_page(forwarded.or(header(header::HOST.as_str())))
}

/// `Secure` when configured, `Domain` when the site has one.
fn cookie_attributes(app: &App, site: SiteRef<'_>) -> String {
    let fa = &app.config.forward_auth;
    let mut attrs = String::from("; HttpOnly; SameSite=Lax; Path=/");
    if let Some(domain) = site.cookie_domain {
        attrs.push_str("; Domain=");
        attrs.push_str(domain);
    }
    if fa.cookie_secure {
        attrs.push_str("; Secure");
    }
    attrs
}

/// Sets the session cookie to `value` for `max_age` seconds (0 clears it).
pub(super) fn set_session(
    app: &App,
    site: SiteRef<'_>,
    res: &mut Response<Body>,
    value: &str,
    max_age: u64,
) {
    let cookie = format!(
        "{}={value}; Max-Age={max_age}{}",
        app.config.forward_auth.cookie_name,
        cookie_attributes(app, site)
    );
    response::set_cookie(res, &cookie);
}

/// Sets the session cookie to a freshly issued session.
pub(super) fn set_issued_session(
    app: &App,
    site: SiteRef<'_>,
    res: &mut Response<Body>,
    session: &crate::model::Issued,
) {
    set_session(app, site, res, &session.token, session.duration);
}

/// A form post to latch's pages: its fields, once its type, form token and
/// origin check out.
pub(super) async fn posted_form<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Vec<(String, String)>> {
    if !request::is_form(parts) {
        return Err(Error::new(Kind::UnsupportedMediaType(
            request::EXPECTED_FORM,
        )));
    }
    let limits = &app.config.limits;
    let fields = request::form(parts, body, limits.max_body, limits.header_read_timeout).await?;
    check_form(app, parts, &fields)?;
    Ok(fields)
}

/// Who is signed in on the pages, for a form post: 401 when nobody is.
pub(super) async fn signed_in_or_refused(app: &App, parts: &Parts) -> Result<Identity> {
    signed_in(app, parts)
        .await
        .ok_or_else(|| Error::unauthorized(crate::error::Refusal::BadToken))
}

/// How long "remember me" keeps a session, in whole days (rounded up),
/// when it is offered.
fn remember_days(app: &App) -> Option<u64> {
    let secs = app.config.forward_auth.remember_me_ttl.as_secs();
    (secs > 0).then(|| secs.div_ceil(86400))
}

/// The form nonce from the browser's cookie, or a new one to set.
fn form_nonce(parts: &Parts) -> Result<(String, bool)> {
    match extract::cookie_value(parts, FORM_COOKIE) {
        Some(nonce)
            if nonce.len() <= 64
                && nonce
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok((nonce.to_owned(), false))
        }
        _ => Ok((Forms::new_nonce()?, true)),
    }
}

/// Renders a page with a fresh form token, setting the form cookie when new.
pub(super) fn with_form(
    app: &App,
    parts: &Parts,
    status: StatusCode,
    render: impl FnOnce(&str) -> String,
) -> Result<Response<Body>> {
    let (nonce, new) = form_nonce(parts)?;
    let mut res = html(status, render(&app.forms.token(&nonce, app.service.now())));
    if new {
        let secure = if app.config.forward_auth.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        response::set_cookie(
            &mut res,
            &format!(
                "{FORM_COOKIE}={nonce}; Max-Age={}; HttpOnly; SameSite=Strict; Path=/{secure}",
                FORM_TTL
            ),
        );
    }
    Ok(res)
}

/// One of latch's own pages: under `public_url` when it is set (latch never
/// trusts `Host` for a `Location`), else the bare path.
pub(super) fn own_url(site: SiteRef<'_>, path: &str) -> String {
    format!("{}{path}", site.public_url.unwrap_or(""))
}

/// Where `rd` may send the browser, if anywhere: within the cookie's
/// domain when one is set, else to the `public_url` host exactly (the
/// host-only cookie goes nowhere else).
pub(super) fn safe_rd<'a>(app: &App, site: SiteRef<'_>, rd: Option<&'a str>) -> Option<&'a str> {
    let fa = &app.config.forward_auth;
    let scope = match site.cookie_domain {
        Some(domain) => Scope::Domain(domain.to_owned()),
        None => Scope::Host(crate::config::net::url_host(site.public_url?)?),
    };
    redirect::safe_redirect(rd?, &scope, !fa.cookie_secure)
}

pub(super) fn query_param(parts: &Parts, name: &str) -> Option<String> {
    credentials::parse_form(parts.uri.query()?.as_bytes())?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// With several domains, whether the session behind a session cookie was
/// signed in for `site`'s domain (other credentials fit everywhere).
pub(super) fn session_fits(
    app: &App,
    site: SiteRef<'_>,
    who: &crate::model::Identity,
) -> Result<bool> {
    if app.config.forward_auth.domains.is_empty() {
        return Ok(true);
    }
    let crate::model::Via::Token(token) = who.via else {
        return Ok(true);
    };
    Ok(match app.service.session_domain(who.user_id, &token)? {
        Some(domain) => domain.as_deref() == site.cookie_domain,
        None => true,
    })
}

/// The identity behind a valid session cookie, if any (with several
/// domains, a session of this page's domain).
pub(super) async fn signed_in(app: &App, parts: &Parts) -> Option<Identity> {
    let presented = extract::credential(parts, Surface::page(&app.config)).ok()??;
    let who = app.service.authenticate(&presented).await.ok()?;
    session_fits(app, site(app, parts), &who)
        .ok()?
        .then_some(who)
}

/// `GET /login?rd=...`: the form; already signed in with a safe `rd`,
/// straight back to it.
pub async fn login_form(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let rd = query_param(parts, "rd");
    if let Some(target) = safe_rd(app, site(app, parts), rd.as_deref()) {
        if signed_in(app, parts).await.is_some() {
            return Ok(response::redirect(StatusCode::FOUND, target));
        }
    }
    with_form(app, parts, StatusCode::OK, |token| {
        login_page(
            &app.config.ui.title,
            rd.as_deref(),
            token,
            None,
            remember_days(app),
        )
    })
}

/// A form post must come from our own pages and carry a valid form token.
pub(super) fn check_form(app: &App, parts: &Parts, fields: &[(String, String)]) -> Result<()> {
    let forbidden = || Error::new(Kind::Forbidden("cross-site form post refused"));
    if !request::same_origin(parts, site(app, parts).public_url) {
        return Err(forbidden());
    }
    let token = field(fields, "csrf").unwrap_or("");
    let Some(nonce) = extract::cookie_value(parts, FORM_COOKIE) else {
        // The commonest cause by far: a Secure cookie set over plain http,
        // which the browser silently dropped.
        if app.config.forward_auth.cookie_secure && request::posted_over_http(parts) {
            return Err(Error::new(Kind::Forbidden(
                "the sign-in form's cookie was not kept: this page is plain http while \
                 [forward_auth] cookie_secure = true; serve latch over https, or set \
                 cookie_secure = false on a plain-http network",
            )));
        }
        return Err(forbidden());
    };
    if app.forms.check(token, nonce, app.service.now()) {
        Ok(())
    } else {
        Err(forbidden())
    }
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /login` with a form: sets the session cookie and answers 303 to
/// `rd` (when safe) or to the signed-in page. A failed login re-renders the
/// form with one generic message and status 401.
pub async fn login_submit<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Response<Body>> {
    let fields = posted_form(app, parts, body).await?;
    let rd = field(&fields, "rd");
    let (username, password) = (
        field(&fields, "username").unwrap_or(""),
        field(&fields, "password").unwrap_or(""),
    );
    let proven = match app.service.password_step(username, password).await {
        Ok(FirstStep::Done(proven)) => proven,
        Ok(FirstStep::CodeNeeded(proven)) => {
            // The password is right; the code comes next, on its own form.
            let pending = app.service.issue_pending(&proven)?;
            let carry = super::second::Carry {
                rd,
                pending: Some(&pending),
                remember: field(&fields, "remember").is_some_and(|v| !v.is_empty()),
            };
            let product = &app.config.ui.title;
            return with_form(app, parts, StatusCode::OK, |token| {
                super::second::code_page(product, token, &carry, None)
            });
        }
        Err(e) if matches!(e.kind(), Kind::Unauthorized(_)) => {
            let mut res = with_form(app, parts, StatusCode::UNAUTHORIZED, |token| {
                login_page(
                    &app.config.ui.title,
                    rd,
                    token,
                    Some("Invalid username or password."),
                    remember_days(app),
                )
            })?;
            // A Bearer challenge, as every 401 carries; not Basic, which
            // would make the browser pop up its own password dialog.
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(r#"Bearer realm="latch""#),
            );
            return Ok(res);
        }
        Err(e) => return Err(e),
    };
    let site = site(app, parts);
    let remember = field(&fields, "remember").is_some_and(|v| !v.is_empty());
    let meta = super::second::session_meta(app, parts, remember);
    let session = app.service.issue_session(&proven, meta).await?;
    let home = own_url(site, "/");
    let target = safe_rd(app, site, rd).unwrap_or(&home);
    let mut res = response::redirect(StatusCode::SEE_OTHER, target);
    set_issued_session(app, site, &mut res, &session);
    Ok(res)
}

/// `POST /logout` without a header credential (the router sends those to
/// the API's logout): a form post from the signed-in page revokes the
/// session and clears the cookie (303 to the login page); a script's call
/// from latch's own origin revokes the session cookie (200 JSON).
pub async fn logout<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let site = site(app, parts);
    if !request::is_form(parts) {
        if !request::same_origin(parts, site.public_url) {
            return Err(Error::new(Kind::Forbidden("cross-site request refused")));
        }
        let presented = extract::required(parts, Surface::page(&app.config))?;
        let who = app.service.authenticate(&presented).await?;
        if let Via::Token(token) = who.via {
            app.service.sign_out(who.user_id, token).await?;
        }
        let mut res = response::json(
            StatusCode::OK,
            &serde_json::json!({"message": "logged out"}),
        );
        set_session(app, site, &mut res, "", 0);
        return Ok(res);
    }
    posted_form(app, parts, body).await?;
    end_session(app, parts).await?;
    let mut res = response::redirect(StatusCode::SEE_OTHER, &own_url(site, "/login"));
    set_session(app, site, &mut res, "", 0);
    Ok(res)
}

/// `GET /logout?rd=`: signs out (the session cookie is revoked and
/// cleared) and follows `rd` under the login page's rules, else goes to
/// the login page. For apps that offer a plain sign-out link.
pub async fn logout_link(app: &App, parts: &Parts) -> Result<Response<Body>> {
    // HEAD (link checkers, some prefetchers) answers without signing out.
    if parts.method != hyper::Method::HEAD {
        end_session(app, parts).await?;
    }
    let rd = query_param(parts, "rd");
    let site = site(app, parts);
    let login = own_url(site, "/login");
    let target = safe_rd(app, site, rd.as_deref()).unwrap_or(&login);
    let mut res = response::redirect(StatusCode::FOUND, target);
    set_session(app, site, &mut res, "", 0);
    Ok(res)
}

/// Revokes the session the cookie holds, if it holds a live one.
async fn end_session(app: &App, parts: &Parts) -> Result<()> {
    let Ok(Some(presented)) = extract::credential(parts, Surface::page(&app.config)) else {
        return Ok(());
    };
    if let Ok(who) = app.service.authenticate(&presented).await {
        if let Via::Token(token) = who.via {
            app.service.sign_out(who.user_id, token).await?;
        }
    }
    Ok(())
}

/// The page a browser gets instead of a JSON error: the status, the
/// reason, and ways forward (latch's own pages, when `public_url` says
/// where they are: these pages are often served on the app's host).
pub fn error_page(app: &App, parts: &Parts, e: &Error) -> Response<Body> {
    let cookie = extract::cookie_value(parts, &app.config.forward_auth.cookie_name);
    error_page_back_to(app, site(app, parts), e, None, cookie.is_some())
}

/// [`error_page`], whose "sign in as someone else" (or, for a visitor
/// not `signed_in`, "sign in") comes back to `back` (the page that was
/// refused) after the sign-in.
pub fn error_page_back_to(
    app: &App,
    site: SiteRef<'_>,
    e: &Error,
    back: Option<&str>,
    signed_in: bool,
) -> Response<Body> {
    let json = response::error(e);
    let status = json.status();
    let links = match site.public_url {
        Some(url) => {
            let login = match back {
                Some(back) => format!("{url}/login?rd={}", redirect::encode_query_value(back)),
                None => format!("{url}/login"),
            };
            if signed_in {
                format!(
                    concat!(
                        r#"<p><a href="{url}/logout?rd={login}">Sign in as someone else</a> · "#,
                        r#"<a href="{url}/">Your account</a></p>"#,
                    ),
                    url = escape(url),
                    login = escape(&redirect::encode_query_value(&login)),
                )
            } else {
                format!(r#"<p><a href="{}">Sign in</a></p>"#, escape(&login))
            }
        }
        None => String::new(),
    };
    let title = status.canonical_reason().unwrap_or("Refused");
    let body = format!(
        r#"<h1>{title}</h1>
<p role="alert" id="reason">{reason}.</p>
{links}"#,
        title = escape(title),
        reason = escape(&capitalised(e.public_message())),
    );
    let mut res = html(status, page(&app.config.ui.title, title, &body, false));
    // Keep what the status calls for (challenges, Allow, Retry-After).
    for name in [
        header::WWW_AUTHENTICATE,
        header::ALLOW,
        header::RETRY_AFTER,
        header::CONNECTION,
    ] {
        for value in json.headers().get_all(&name) {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    res
}

pub(super) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
