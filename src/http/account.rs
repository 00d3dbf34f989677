//! The account page at `/`: who you are, your groups, your sessions (end
//! any), your API keys (create with the password re-entered, revoke), a
//! password change and sign-out. Plain HTML forms with the login page's
//! protections (a per-form token and latch's own origin); no JavaScript.
//!
//! It owns the page and its forms; every change is one service call.

use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use super::pages::{self, escape, field, own_url, page, site};
use super::request::ReadBody;
use super::response::{self, Body};
use crate::error::{Error, Kind, Result};
use crate::model::{ApiKey, Identity, KeyId, Session, SessionId, Via};
use crate::App;

/// `GET /`: the account page; not signed in, the login page.
pub async fn home(app: &App, parts: &Parts) -> Result<Response<Body>> {
    match pages::signed_in(app, parts).await {
        Some(who) => show(app, parts, &who, StatusCode::OK, None).await,
        None => Ok(response::redirect(
            StatusCode::FOUND,
            &own_url(site(app, parts), "/login"),
        )),
    }
}

/// Renders the account page for `who`.
async fn show(
    app: &App,
    parts: &Parts,
    who: &Identity,
    status: StatusCode,
    error: Option<&str>,
) -> Result<Response<Body>> {
    let user = app
        .service
        .user(who.user_id)?
        .ok_or_else(|| Error::unauthorized(crate::error::Refusal::BadToken))?;
    let sessions = app.service.list_sessions(who.user_id)?;
    let keys = app.service.list_keys(who.user_id)?;
    let current = match who.via {
        Via::Token(token) => Some(SessionId(token.jti)),
        _ => None,
    };
    let now = app.service.now();
    let product = app.config.ui.title.clone();
    let recovery_left = app.service.recovery_left(who.user_id)?;
    pages::with_form(app, parts, status, |token| {
        let notice = error
            .map(|m| {
                format!(
                    r#"<p class="error" role="alert" id="notice">{}</p>"#,
                    escape(m)
                )
            })
            .unwrap_or_default();
        let groups = if user.groups.is_empty() {
            "none".to_owned()
        } else {
            escape(&user.groups.join(", "))
        };
        let body = format!(
            concat!(
                "<h1>Your account</h1>\n{notice}",
                r#"<p>Signed in as <strong id="user">{user}</strong>. "#,
                r#"Groups: <span id="groups">{groups}</span>.</p>"#,
                "\n",
                r#"<form method="post" action="/logout">"#,
                r#"<input type="hidden" name="csrf" value="{token}">"#,
                r#"<button type="submit" id="sign-out">Sign out</button></form>"#,
                "\n<h2>Sessions</h2>\n{sessions}\n<h2>API keys</h2>\n{keys}\n{new_key}",
                "\n<h2>Two-factor sign-in</h2>\n{second}",
                "\n<h2>Change password</h2>\n{password}"
            ),
            second = super::second::account_section(recovery_left, token),
            notice = notice,
            user = escape(&user.username),
            groups = groups,
            token = escape(token),
            sessions = session_list(&sessions, current, token, now),
            keys = key_list(&keys, token),
            new_key = new_key_form(token),
            password = password_form(token),
        );
        page(&product, "Your account", &body, true)
    })
}

/// `2026-11-30 01:02 UTC`.
fn when(secs: u64) -> String {
    let full = crate::clock::utc(secs);
    format!("{} {} UTC", &full[..10], &full[11..16])
}

fn session_list(sessions: &[Session], current: Option<SessionId>, token: &str, now: u64) -> String {
    let mut out = String::from(r#"<ul class="list" id="sessions">"#);
    for s in sessions {
        let this = if Some(s.id) == current {
            r#" <strong class="current">(this session)</strong>"#
        } else {
            ""
        };
        let from = s.address.map(|a| format!(" from {a}")).unwrap_or_default();
        let agent = if s.user_agent.is_empty() {
            "an unknown browser".to_owned()
        } else {
            escape(&s.user_agent)
        };
        out.push_str(&format!(
            concat!(
                "\n<li id=\"session-{id}\">Signed in {created}{from}, {agent}; last seen ",
                "{seen}; ends {expires}{remember}.{this}\n",
                r#"<form method="post" action="/account/sessions/end">"#,
                r#"<input type="hidden" name="csrf" value="{token}">"#,
                r#"<input type="hidden" name="id" value="{id}">"#,
                r#"<button type="submit" class="small" aria-label="End the session signed "#,
                r#"in {created}">End</button></form></li>"#
            ),
            id = s.id,
            created = when(s.created_at),
            from = escape(&from),
            agent = agent,
            seen = if now.saturating_sub(s.last_seen_at) < 60 {
                "just now".to_owned()
            } else {
                when(s.last_seen_at)
            },
            expires = when(s.expires_at),
            remember = if s.remember { " (remembered)" } else { "" },
            this = this,
            token = escape(token),
        ));
    }
    if sessions.is_empty() {
        out.push_str("\n<li>None.</li>");
    }
    out.push_str("\n</ul>");
    out
}

fn key_list(keys: &[ApiKey], token: &str) -> String {
    let mut out = String::from(r#"<ul class="list" id="keys">"#);
    for k in keys {
        out.push_str(&format!(
            concat!(
                "\n<li id=\"key-{id}\"><strong>{name}</strong>, created {created}; {used}",
                "{expires}.\n",
                r#"<form method="post" action="/account/keys/revoke">"#,
                r#"<input type="hidden" name="csrf" value="{token}">"#,
                r#"<input type="hidden" name="id" value="{id}">"#,
                r#"<button type="submit" class="small" aria-label="Revoke the key {name}">"#,
                "Revoke</button></form></li>"
            ),
            id = k.id,
            name = escape(&k.name),
            created = when(k.created_at),
            used = k.last_used_at.map_or_else(
                || "never used".to_owned(),
                |t| format!("last used {}", when(t))
            ),
            expires = k
                .expires_at
                .map(|t| format!("; expires {}", when(t)))
                .unwrap_or_default(),
            token = escape(token),
        ));
    }
    if keys.is_empty() {
        out.push_str("\n<li>None.</li>");
    }
    out.push_str("\n</ul>");
    out
}

fn new_key_form(token: &str) -> String {
    format!(
        concat!(
            r#"<form method="post" action="/account/keys">"#,
            r#"<input type="hidden" name="csrf" value="{token}">"#,
            "\n",
            r#"<label for="key-name">New key's name</label>"#,
            r#"<input type="text" id="key-name" name="name" maxlength="64" required>"#,
            "\n",
            r#"<label for="key-password">Your password</label>"#,
            r#"<input type="password" id="key-password" name="password" "#,
            r#"autocomplete="current-password" required>"#,
            "\n",
            r#"<button type="submit" id="create-key">Create API key</button></form>"#
        ),
        token = escape(token),
    )
}

fn password_form(token: &str) -> String {
    format!(
        concat!(
            r#"<form method="post" action="/account/password">"#,
            r#"<input type="hidden" name="csrf" value="{token}">"#,
            "\n",
            r#"<label for="old-password">Current password</label>"#,
            r#"<input type="password" id="old-password" name="old_password" "#,
            r#"autocomplete="current-password" required>"#,
            "\n",
            r#"<label for="new-password">New password</label>"#,
            r#"<input type="password" id="new-password" name="new_password" "#,
            r#"autocomplete="new-password" required>"#,
            "\n",
            r#"<button type="submit" id="change-password">Change password</button></form>"#,
            "\n<p>Changing it signs out every session and token (API keys stay).</p>"
        ),
        token = escape(token),
    )
}

/// A form post to the account page: its fields, once the form token and
/// origin check out, and who is signed in (else 401).
async fn posted<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<(Vec<(String, String)>, Identity)> {
    let fields = pages::posted_form(app, parts, body).await?;
    let who = pages::signed_in_or_refused(app, parts).await?;
    Ok((fields, who))
}

/// Back to the account page (303), after a change.
fn back(app: &App, parts: &Parts) -> Response<Body> {
    response::redirect(StatusCode::SEE_OTHER, &own_url(site(app, parts), "/"))
}

/// `POST /account/sessions/end`: ends one of the user's sessions; ending
/// this one signs out.
pub async fn end_session<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (fields, who) = posted(app, parts, body).await?;
    let id = field(&fields, "id")
        .and_then(SessionId::parse)
        .ok_or_else(|| Error::new(Kind::NotFound))?;
    if !app.service.end_session(who.user_id, id).await? {
        return Err(Error::new(Kind::NotFound));
    }
    if matches!(who.via, Via::Token(t) if SessionId(t.jti) == id) {
        let site = site(app, parts);
        let mut res = response::redirect(StatusCode::SEE_OTHER, &own_url(site, "/login"));
        pages::set_session(app, site, &mut res, "", 0);
        return Ok(res);
    }
    Ok(back(app, parts))
}

/// `POST /account/keys`: creates an API key with the password re-entered
/// and shows it this once.
pub async fn create_key<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (fields, who) = posted(app, parts, body).await?;
    let name = field(&fields, "name").unwrap_or("");
    let password = field(&fields, "password").unwrap_or("");
    let identity = match app.service.reconfirm(&who, password).await {
        Ok(identity) => identity,
        Err(_) => {
            let notice = "The password is wrong; no key was made.";
            return show(app, parts, &who, StatusCode::FORBIDDEN, Some(notice)).await;
        }
    };
    let new = match app.service.create_key(&identity, name, None).await {
        Ok(new) => new,
        Err(e) if matches!(e.kind(), Kind::Invalid(_)) => {
            let notice = format!("{}.", pages::capitalised(e.public_message()));
            return show(app, parts, &who, StatusCode::BAD_REQUEST, Some(&notice)).await;
        }
        Err(e) => return Err(e),
    };
    let body = format!(
        concat!(
            "<h1>Your new API key</h1>\n",
            r#"<p role="status">The key <strong>{name}</strong>: copy it now, it is not "#,
            r#"shown again.</p>"#,
            "\n",
            r#"<p><code id="new-key">{key}</code></p>"#,
            "\n",
            r#"<p><a href="{home}">Back to your account</a></p>"#
        ),
        name = escape(&new.key.name),
        key = escape(&new.secret),
        home = escape(&own_url(site(app, parts), "/")),
    );
    Ok(pages::html(
        StatusCode::CREATED,
        page(&app.config.ui.title, "Your new API key", &body, true),
    ))
}

/// `POST /account/keys/revoke`: deletes one of the user's keys.
pub async fn revoke_key<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let (fields, who) = posted(app, parts, body).await?;
    let id = field(&fields, "id")
        .and_then(KeyId::parse)
        .ok_or_else(|| Error::new(Kind::NotFound))?;
    if !app.service.delete_key(who.user_id, id).await? {
        return Err(Error::new(Kind::NotFound));
    }
    Ok(back(app, parts))
}

/// `POST /account/password`: changes the password with the old one; every
/// session ends, this one too, so it is the login page next.
pub async fn change_password<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Response<Body>> {
    let (fields, who) = posted(app, parts, body).await?;
    let old = field(&fields, "old_password").unwrap_or("");
    let new = field(&fields, "new_password").unwrap_or("");
    match app.service.change_password(who.user_id, old, new).await {
        Ok(()) => {
            let site = site(app, parts);
            let mut res = response::redirect(StatusCode::SEE_OTHER, &own_url(site, "/login"));
            pages::set_session(app, site, &mut res, "", 0);
            Ok(res)
        }
        Err(e) if matches!(e.kind(), Kind::Forbidden(_) | Kind::Invalid(_)) => {
            let status = super::response::status(e.kind());
            let notice = format!("{}.", pages::capitalised(e.public_message()));
            show(app, parts, &who, status, Some(&notice)).await
        }
        Err(e) => Err(e),
    }
}
