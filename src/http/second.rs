//! The second factor over HTTP: the code form after a password
//! (`/login/otp`), step-up of a one-factor session, enrolment (a secret,
//! its QR code, a first code, recovery codes), and the API's `/api/totp`.
//!
//! The pages are plain HTML forms with the login page's protections (a
//! form token, latch's own origin, no JavaScript); the QR code is an
//! inline SVG drawn on the server. Every decision is the service's: this
//! module reads forms and JSON and shapes the answers.
//!
//! | route | handler |
//! |---|---|
//! | `GET /login/otp?rd=` | the code form (step-up), or enrolment |
//! | `POST /login/otp` | a code: finishes a sign-in (`pending`) or steps up a session |
//! | `POST /login/otp/enrol` | the password again: a new secret and its QR code |
//! | `POST /login/otp/confirm` | the first code: active, recovery codes shown once |
//! | `POST /account/totp/remove` | password and code: the second factor goes |
//! | `POST /account/totp/recovery` | password and code: new recovery codes |
//! | `POST /api/totp` | start enrolment (a recent password) |
//! | `POST /api/totp/confirm` | `{"code"}`: active; `{"recovery_codes"}` |
//! | `DELETE /api/totp` | `{"password","code"}`: removed |
//! | `POST /api/totp/recovery` | `{"password","code"}`: new recovery codes |

use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::pages::{self, escape, field, own_url, page, site};
use super::request::ReadBody;
use super::response::{self, Body};
use crate::error::{Error, Kind, Refusal, Result};
use crate::model::{Identity, Issued, SessionMeta, Via};
use crate::otp;
use crate::App;

/// What a code form carries besides the code.
pub(super) struct Carry<'a> {
    /// Where to go afterwards.
    pub rd: Option<&'a str>,
    /// The pending token of a sign-in in two steps (none for a step-up).
    pub pending: Option<&'a str>,
    /// "Remember me", from the first step.
    pub remember: bool,
}

/// Hidden fields for what a form carries on.
fn hidden(carry: &Carry<'_>) -> String {
    let mut out = String::new();
    if let Some(rd) = carry.rd {
        out.push_str(&format!(
            r#"<input type="hidden" name="rd" value="{}">"#,
            escape(rd)
        ));
    }
    if let Some(pending) = carry.pending {
        out.push_str(&format!(
            r#"<input type="hidden" name="pending" value="{}">"#,
            escape(pending)
        ));
    }
    if carry.remember {
        out.push_str(r#"<input type="hidden" name="remember" value="1">"#);
    }
    out
}

fn alert(message: Option<&str>) -> String {
    message
        .map(|m| {
            format!(
                r#"<p class="error" role="alert" id="error">{}</p>"#,
                escape(m)
            )
        })
        .unwrap_or_default()
}

/// The code form.
pub(super) fn code_page(
    product: &str,
    token: &str,
    carry: &Carry<'_>,
    message: Option<&str>,
) -> String {
    let body = format!(
        concat!(
            "<h1>Enter your code</h1>\n{alert}",
            "<p>Type the six-digit code your authenticator app shows, or one of your ",
            "recovery codes.</p>\n",
            r#"<form method="post" action="/login/otp">"#,
            r#"<input type="hidden" name="csrf" value="{token}">{hidden}"#,
            "\n",
            r#"<label for="code">Code</label>"#,
            r#"<input type="text" id="code" name="code" inputmode="numeric" "#,
            r#"autocomplete="one-time-code" autocapitalize="none" spellcheck="false" "#,
            r#"required autofocus>"#,
            "\n",
            r#"<button type="submit" id="verify">Verify</button></form>"#
        ),
        alert = alert(message),
        token = escape(token),
        hidden = hidden(carry),
    );
    page(product, "Enter your code", &body, false)
}

/// The start of enrolment: the password again.
fn enrol_start_page(product: &str, token: &str, rd: Option<&str>, message: Option<&str>) -> String {
    let carry = Carry {
        rd,
        pending: None,
        remember: false,
    };
    let body = format!(
        concat!(
            "<h1>Set up two-factor sign-in</h1>\n{alert}",
            "<p>This address asks for a one-time code from an authenticator app as well ",
            "as your password. Type your password to set one up.</p>\n",
            r#"<form method="post" action="/login/otp/enrol">"#,
            r#"<input type="hidden" name="csrf" value="{token}">{hidden}"#,
            "\n",
            r#"<label for="password">Password</label>"#,
            r#"<input type="password" id="password" name="password" "#,
            r#"autocomplete="current-password" required autofocus>"#,
            "\n",
            r#"<button type="submit" id="enrol">Set up</button></form>"#
        ),
        alert = alert(message),
        token = escape(token),
        hidden = hidden(&carry),
    );
    page(product, "Set up two-factor sign-in", &body, false)
}

/// The secret, its QR code and the first code.
fn enrol_page(
    product: &str,
    token: &str,
    enrolment: &crate::service::Enrolment,
    ticket: &str,
    rd: Option<&str>,
    message: Option<&str>,
) -> String {
    let carry = Carry {
        rd,
        pending: None,
        remember: false,
    };
    let qr = otp::qr_svg(&enrolment.uri).unwrap_or_default();
    let body = format!(
        concat!(
            "<h1>Scan this code</h1>\n{alert}",
            "<p>Scan it with your authenticator app, or type the key by hand.</p>\n",
            r#"<div id="qr" role="img" aria-label="QR code of the key">{qr}</div>"#,
            "\n",
            r#"<p>Key: <code id="secret">{secret}</code></p>"#,
            "\n",
            r#"<p>On this device: <a href="{uri}" id="otpauth">{uri}</a></p>"#,
            "\n",
            r#"<form method="post" action="/login/otp/confirm">"#,
            r#"<input type="hidden" name="csrf" value="{token}">{hidden}"#,
            r#"<input type="hidden" name="ticket" value="{ticket}">"#,
            "\n",
            r#"<label for="code">Code from the app</label>"#,
            r#"<input type="text" id="code" name="code" inputmode="numeric" "#,
            r#"autocomplete="one-time-code" required autofocus>"#,
            "\n",
            r#"<button type="submit" id="confirm">Turn on</button></form>"#
        ),
        alert = alert(message),
        qr = qr,
        secret = escape(&enrolment.secret),
        uri = escape(&enrolment.uri),
        ticket = escape(ticket),
        token = escape(token),
        hidden = hidden(&carry),
    );
    page(product, "Set up two-factor sign-in", &body, true)
}

/// Recovery codes, shown once.
fn recovery_page(product: &str, codes: &[String], next: &str, title: &str) -> String {
    let list: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>\n", escape(c)))
        .collect();
    let body = format!(
        concat!(
            "<h1>{title}</h1>\n",
            r#"<p role="status">Keep these recovery codes somewhere safe: each signs you in "#,
            "once in place of a code, should you lose your phone. They are not shown again.</p>\n",
            r#"<ul class="list" id="recovery-codes">"#,
            "\n{list}</ul>\n",
            r#"<p><a href="{next}" id="continue">Continue</a></p>"#
        ),
        title = escape(title),
        list = list,
        next = escape(next),
    );
    page(product, title, &body, false)
}

/// Where a finished form goes: `rd` when safe, else the account page.
fn next_url(app: &App, parts: &Parts, rd: Option<&str>) -> String {
    let site = site(app, parts);
    pages::safe_rd(app, site, rd)
        .map(str::to_owned)
        .unwrap_or_else(|| own_url(site, "/"))
}

/// A session's metadata from the request.
pub(super) fn session_meta(app: &App, parts: &Parts, remember: bool) -> SessionMeta {
    let site = site(app, parts);
    SessionMeta {
        address: crate::audit::current_source(),
        user_agent: parts
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        remember,
        // With several domains, the session lets in on this one only.
        domain: (!app.config.forward_auth.domains.is_empty())
            .then(|| site.cookie_domain.map(str::to_owned))
            .flatten(),
    }
}

/// Signs the browser in with `session` and sends it on.
fn signed_in_to(app: &App, parts: &Parts, session: &Issued, next: &str) -> Response<Body> {
    let mut res = response::redirect(StatusCode::SEE_OTHER, next);
    pages::set_issued_session(app, site(app, parts), &mut res, session);
    res
}

/// `GET /login/otp?rd=`: for a session signed in with a password alone,
/// the code form (step-up) or, for a user without a second factor,
/// enrolment. Not signed in: the login page; two factors already: on to
/// `rd`.
pub async fn form(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let rd = pages::query_param(parts, "rd");
    let Some(who) = pages::signed_in(app, parts).await else {
        let login = own_url(site(app, parts), "/login");
        let to = match &rd {
            Some(rd) => format!("{login}?rd={}", crate::redirect::encode_query_value(rd)),
            None => login,
        };
        return Ok(response::redirect(StatusCode::FOUND, &to));
    };
    if who.factors.two() {
        return Ok(response::redirect(
            StatusCode::FOUND,
            &next_url(app, parts, rd.as_deref()),
        ));
    }
    let product = &app.config.ui.title;
    if app.service.has_totp(who.user_id)? {
        let carry = Carry {
            rd: rd.as_deref(),
            pending: None,
            remember: false,
        };
        return pages::with_form(app, parts, StatusCode::OK, |token| {
            code_page(product, token, &carry, None)
        });
    }
    if !app.config.totp.enrol_on_demand {
        return Err(Error::new(Kind::Forbidden(
            "this address needs a second factor: set one up on your account page",
        )));
    }
    pages::with_form(app, parts, StatusCode::OK, |token| {
        enrol_start_page(product, token, rd.as_deref(), None)
    })
}

/// `POST /login/otp`: a code. With `pending` (the second step of a
/// sign-in) it signs in; without, it steps up the session. A wrong code
/// shows the form again (401) with the same hidden fields.
pub async fn submit<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let fields = pages::posted_form(app, parts, body).await?;
    let code = field(&fields, "code").unwrap_or("");
    let carry = Carry {
        rd: field(&fields, "rd"),
        pending: field(&fields, "pending").filter(|p| !p.is_empty()),
        remember: field(&fields, "remember").is_some_and(|v| !v.is_empty()),
    };
    let outcome = match carry.pending {
        Some(pending) => match app.service.finish_pending(pending, code).await {
            Ok(proven) => {
                let meta = session_meta(app, parts, carry.remember);
                app.service.issue_session(&proven, meta).await
            }
            Err(e) => Err(e),
        },
        None => {
            let who = pages::signed_in_or_refused(app, parts).await?;
            let meta = session_meta(app, parts, false);
            app.service.step_up(&who, code, meta).await
        }
    };
    match outcome {
        Ok(session) => Ok(signed_in_to(
            app,
            parts,
            &session,
            &next_url(app, parts, carry.rd),
        )),
        Err(e) if e.kind() == Kind::Unauthorized(Refusal::BadCode) => {
            let product = &app.config.ui.title;
            let message = "Invalid or already used code.";
            pages::with_form(app, parts, StatusCode::UNAUTHORIZED, |token| {
                code_page(product, token, &carry, Some(message))
            })
        }
        Err(e) => Err(e),
    }
}

/// `POST /login/otp/enrol`: the password again, then a fresh secret and
/// its QR code.
pub async fn enrol<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let fields = pages::posted_form(app, parts, body).await?;
    let who = pages::signed_in_or_refused(app, parts).await?;
    let rd = field(&fields, "rd");
    let product = &app.config.ui.title;
    let password = field(&fields, "password").unwrap_or("");
    if let Err(e) = app.service.reconfirm(&who, password).await {
        if !matches!(e.kind(), Kind::Unauthorized(_)) {
            return Err(e);
        }
        return pages::with_form(app, parts, StatusCode::FORBIDDEN, |token| {
            enrol_start_page(product, token, rd, Some("The password is wrong."))
        });
    }
    let enrolment = app
        .service
        .totp_begin(who.user_id, &who.username, &app.config.totp.issuer)
        .await?;
    let ticket = app.service.enrolment_ticket(&who)?;
    pages::with_form(app, parts, StatusCode::OK, |token| {
        enrol_page(product, token, &enrolment, &ticket, rd, None)
    })
}

/// `POST /login/otp/confirm`: the first code, with the ticket the enrolment
/// page carries (a session alone is not enough). Good: the factor is on, the
/// session becomes a two-factor one, and the recovery codes are shown
/// once. Wrong: the same secret again, with a message.
pub async fn confirm<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let fields = pages::posted_form(app, parts, body).await?;
    let who = pages::signed_in_or_refused(app, parts).await?;
    let rd = field(&fields, "rd");
    let code = field(&fields, "code").unwrap_or("");
    let ticket = field(&fields, "ticket").unwrap_or("");
    let product = &app.config.ui.title;
    let meta = session_meta(app, parts, false);
    match app
        .service
        .totp_confirm_session(&who, ticket, code, meta)
        .await
    {
        Ok((codes, session)) => {
            let next = next_url(app, parts, rd);
            let title = "Two-factor sign-in is on";
            let mut res = pages::html(StatusCode::OK, recovery_page(product, &codes, &next, title));
            if let Some(session) = session {
                pages::set_issued_session(app, site(app, parts), &mut res, &session);
            }
            Ok(res)
        }
        Err(e) if e.kind() == Kind::Unauthorized(Refusal::BadCode) => {
            let issuer = &app.config.totp.issuer;
            let Some(enrolment) = app.service.totp_enrolment_for(&who, ticket, issuer)? else {
                return Err(e);
            };
            let message = "That code is not right; check the time on your phone and try again.";
            pages::with_form(app, parts, StatusCode::UNAUTHORIZED, |token| {
                enrol_page(product, token, &enrolment, ticket, rd, Some(message))
            })
        }
        Err(e) => Err(e),
    }
}

/// The account page's section on the second factor.
/// `recovery_left` is `None` without an active second factor.
pub(super) fn account_section(recovery_left: Option<usize>, token: &str) -> String {
    let token = escape(token);
    let Some(left) = recovery_left else {
        return format!(
            concat!(
                "<p id=\"totp-state\">Off: you sign in with your password alone.</p>\n",
                r#"<form method="post" action="/login/otp/enrol">"#,
                r#"<input type="hidden" name="csrf" value="{token}">"#,
                "\n",
                r#"<label for="totp-password">Password</label>"#,
                r#"<input type="password" id="totp-password" name="password" "#,
                r#"autocomplete="current-password" required>"#,
                "\n",
                r#"<button type="submit" id="enrol">Set up two-factor sign-in</button></form>"#
            ),
            token = token,
        );
    };
    let form = |action: &str, id: &str, label: &str| {
        format!(
            concat!(
                r#"<form method="post" action="{action}">"#,
                r#"<input type="hidden" name="csrf" value="{token}">"#,
                "\n",
                r#"<label for="{id}-password">Password</label>"#,
                r#"<input type="password" id="{id}-password" name="password" "#,
                r#"autocomplete="current-password" required>"#,
                "\n",
                r#"<label for="{id}-code">Code</label>"#,
                r#"<input type="text" id="{id}-code" name="code" inputmode="numeric" "#,
                r#"autocomplete="one-time-code" required>"#,
                "\n",
                r#"<button type="submit" id="{id}">{label}</button></form>"#,
                "\n"
            ),
            action = action,
            token = token,
            id = id,
            label = label,
        )
    };
    format!(
        "<p id=\"totp-state\">On: {left} recovery code{s} left.</p>\n{regen}{remove}",
        s = if left == 1 { "" } else { "s" },
        regen = form(
            "/account/totp/recovery",
            "new-recovery",
            "New recovery codes"
        ),
        remove = form(
            "/account/totp/remove",
            "remove-totp",
            "Turn off two-factor sign-in"
        ),
    )
}

/// The password and code of an account-page form, checked: the password
/// again (a wrong one counts), the code by the service call that follows.
async fn password_and_code<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<(Identity, String)> {
    let fields = pages::posted_form(app, parts, body).await?;
    let who = pages::signed_in_or_refused(app, parts).await?;
    let password = field(&fields, "password").unwrap_or("");
    app.service
        .reconfirm(&who, password)
        .await
        .map_err(|e| match e.kind() {
            Kind::Unauthorized(_) => Error::new(Kind::Forbidden("the password is wrong")),
            _ => e,
        })?;
    Ok((who, field(&fields, "code").unwrap_or("").to_owned()))
}

/// `POST /account/totp/remove`: password and code; the factor goes.
pub async fn remove<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (who, code) = password_and_code(app, parts, body).await?;
    app.service.totp_remove(who.user_id, &code).await?;
    Ok(response::redirect(
        StatusCode::SEE_OTHER,
        &own_url(site(app, parts), "/"),
    ))
}

/// `POST /account/totp/recovery`: password and code; new recovery codes,
/// shown once.
pub async fn recovery<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (who, code) = password_and_code(app, parts, body).await?;
    let codes = app.service.recovery_regenerate(who.user_id, &code).await?;
    let next = own_url(site(app, parts), "/");
    let title = "New recovery codes";
    Ok(pages::html(
        StatusCode::OK,
        recovery_page(&app.config.ui.title, &codes, &next, title),
    ))
}

#[derive(Deserialize)]
struct CodeRequest {
    code: Option<String>,
    password: Option<String>,
}

/// The API's caller for the second factor: a token or a password, never
/// an API key (a key must not add or remove a factor).
async fn caller(app: &App, parts: &Parts) -> Result<Identity> {
    let who = super::api::authenticate(app, parts).await?;
    if let Via::ApiKey(_) = who.via {
        return Err(Error::new(Kind::Forbidden(
            "API keys cannot manage the second factor; use a token or the password",
        )));
    }
    Ok(who)
}

/// `POST /api/totp`: starts enrolment (a password proven within
/// `[api] reauth_window`): `{"secret","otpauth_uri"}`. Confirm with a code.
pub async fn api_begin(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = super::api::recent(app, caller(app, parts).await?)?;
    let enrolment = app
        .service
        .totp_begin(who.user_id, &who.username, &app.config.totp.issuer)
        .await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"secret": enrolment.secret, "otpauth_uri": enrolment.uri}),
    ))
}

/// `POST /api/totp/confirm` `{"code"}`: the factor is on;
/// `{"recovery_codes": [...]}`, shown this once.
pub async fn api_confirm<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let who = caller(app, parts).await?;
    let input: CodeRequest = super::api::read_json(app, parts, body).await?;
    let code = input
        .code
        .ok_or_else(|| Error::invalid("code is required"))?;
    let codes = app.service.totp_confirm(who.user_id, &code).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"recovery_codes": codes}),
    ))
}

/// The password and code of an API call, checked as the account page does.
async fn api_password_and_code<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<(Identity, String)> {
    let who = caller(app, parts).await?;
    let input: CodeRequest = super::api::read_json(app, parts, body).await?;
    let (Some(password), Some(code)) = (input.password, input.code) else {
        return Err(Error::invalid("password and code are required"));
    };
    app.service
        .reconfirm(&who, &password)
        .await
        .map_err(|e| match e.kind() {
            Kind::Unauthorized(_) => Error::new(Kind::Forbidden("the password is wrong")),
            _ => e,
        })?;
    Ok((who, code))
}

/// `DELETE /api/totp` `{"password","code"}`: 204, the factor is gone.
pub async fn api_remove<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (who, code) = api_password_and_code(app, parts, body).await?;
    app.service.totp_remove(who.user_id, &code).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// `POST /api/totp/recovery` `{"password","code"}`: new recovery codes.
pub async fn api_recovery<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Response<Body>> {
    let (who, code) = api_password_and_code(app, parts, body).await?;
    let codes = app.service.recovery_regenerate(who.user_id, &code).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"recovery_codes": codes}),
    ))
}
