//! Handlers for the JSON API. Each parses its input, calls one service
//! method and shapes the answer. They own the API's JSON shapes and its
//! rules on which credential may do what; they never run a domain flow
//! themselves (no password checks, no record reloads).

use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::extract::{self, Surface};
use super::request::ReadBody;
use super::request::{self};
use super::response::{self, Body};
use crate::credentials::{Credential, Presented};
use crate::error::{Error, Kind, Refusal, Result};
use crate::model::{Identity, Issued, KeyId, SessionId, User, UserId, Via};
use crate::App;

/// The request's API credential (headers, and the query when enabled;
/// never the session cookie); 401 when there is none.
fn credential<'a>(app: &App, parts: &'a Parts) -> Result<Presented<'a>> {
    extract::required(parts, Surface::api(&app.config))
}

/// Who the request is, from any API credential form; 401 when none or
/// refused. A state-changing request from another site's page is refused
/// first: a browser may hold cached Basic credentials for latch and send
/// them along (scripts send no `Origin`).
pub async fn authenticate(app: &App, parts: &Parts) -> Result<Identity> {
    // Only a change is checked for its origin; a read does not look up
    // the site (that costs every Bearer request a host lookup).
    if !parts.method.is_safe()
        && !request::same_origin(parts, super::pages::site(app, parts).public_url)
    {
        return Err(Error::new(Kind::Forbidden("cross-site request refused")));
    }
    app.service.authenticate(&credential(app, parts)?).await
}

/// Like [`authenticate`], but the password must have been proven within
/// `[api] reauth_window`: Basic, or a token minted that recently. For the
/// changes a stolen token must not make (new API keys, a new email).
async fn authenticate_recent(app: &App, parts: &Parts) -> Result<Identity> {
    let who = authenticate(app, parts).await?;
    if let Via::ApiKey(_) = who.via {
        return Err(Error::new(Kind::Forbidden(
            "API keys cannot do this; use a token or the password",
        )));
    }
    recent(app, who)
}

/// `who`, if their password was proven within `[api] reauth_window`.
pub(super) fn recent(app: &App, who: Identity) -> Result<Identity> {
    let window = app.config.api.reauth_window.as_secs();
    if !who.password_proven_within(app.service.now(), window) {
        return Err(Error::unauthorized(Refusal::Stale));
    }
    Ok(who)
}

/// A JSON body within the configured size and time limits.
pub(super) async fn read_json<T: serde::de::DeserializeOwned, B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<T> {
    let limits = &app.config.limits;
    request::json(parts, body, limits.max_body, limits.header_read_timeout).await
}

#[derive(Deserialize)]
struct Registration {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
}

/// `POST /api/users`: 201 `{"id","username"}` with `Location`.
pub async fn register<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    // Closed is 403 whatever the body says; do not even read it.
    app.service.check_registration_open()?;
    let input: Registration = read_json(app, parts, body).await?;
    let (Some(username), Some(password)) = (input.username, input.password) else {
        return Err(Error::invalid("username and password are required"));
    };
    let user = app
        .service
        .register(&username, &password, input.email.as_deref())
        .await?;
    let mut res = response::json(
        StatusCode::CREATED,
        &json!({"id": user.id, "username": user.username}),
    );
    let location = format!(
        "{}/api/users/{}",
        app.config.public_url.as_deref().unwrap_or(""),
        user.id
    );
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(Error::internal)?,
    );
    Ok(res)
}

/// `GET /api/users/<id>`: 200 `{"id","username"}`; 404 when absent. Needs
/// a credential unless `[api] public_profiles` (ids are sequential, so
/// anonymous lookups would list every username).
pub async fn user(app: &App, parts: &Parts, id: &str) -> Result<Response<Body>> {
    if !app.config.api.public_profiles {
        authenticate(app, parts).await?;
    }
    let user = UserId::parse(id)
        .map(|id| app.service.user(id))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::new(Kind::NotFound))?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"id": user.id, "username": user.username}),
    ))
}

/// `GET /api/token`: a username and password buy a token; a token cannot.
pub async fn token(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let presented = credential(app, parts)?;
    let Credential::Password { username, password } = &presented.credential else {
        return Err(Error::unauthorized(Refusal::PasswordRequired));
    };
    let proven = app
        .service
        .sign_in(username, password, presented.otp)
        .await?;
    let Issued {
        token, duration, ..
    } = app.service.issue(&proven).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"token": token, "duration": duration}),
    ))
}

/// `GET /api/resource`: the REST-auth greeting, for any credential.
pub async fn resource(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    Ok(response::json_raw(
        StatusCode::OK,
        greeting(&who.username).into(),
    ))
}

#[derive(Deserialize)]
struct Login {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    /// The one-time code, for a user with a second factor.
    otp: Option<String>,
}

/// `POST /login` with JSON: the Flask-Security answer, plus `token` and
/// `duration` at the top level.
pub async fn login_json<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let input: Login = read_json(app, parts, body).await?;
    let (Some(login), Some(password)) = (input.username.or(input.email), input.password) else {
        return Err(Error::invalid(
            "username (or email) and password are required",
        ));
    };
    let proven = app
        .service
        .sign_in(&login, &password, input.otp.as_deref())
        .await?;
    let Issued {
        token, duration, ..
    } = app.service.issue(&proven).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "meta": {"code": 200},
            "response": {"user": {"id": proven.user.id.to_string(), "authentication_token": token}},
            "token": token,
            "duration": duration,
        }),
    ))
}

/// `POST /logout`: revokes the token the request carries.
pub async fn logout(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let Via::Token(token) = who.via else {
        return Err(Error::invalid(
            "logout revokes a token: send the token, not a password or an API key",
        ));
    };
    app.service.revoke(who.user_id, token).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"message": "logged out"}),
    ))
}

/// The caller's own record; 401 if it vanished (deleted meanwhile).
fn own_record(app: &App, who: &Identity) -> Result<User> {
    app.service
        .user(who.user_id)?
        .ok_or_else(|| Error::unauthorized(Refusal::BadToken))
}

/// The caller's own record as the API shows it.
fn own_view(user: &User) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "groups": user.groups,
    })
}

/// `GET /api/users/me`: `{"id","username","email","groups"}`.
pub async fn me(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let user = own_record(app, &who)?;
    Ok(response::json(StatusCode::OK, &own_view(&user)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogoutAll {
    #[serde(default)]
    revoke_keys: bool,
}

/// `POST /api/logout-all` (optionally `{"revoke_keys": true}`): every token
/// and session issued to the caller before now is refused from now on;
/// with `revoke_keys`, the API keys are deleted too.
pub async fn logout_all<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    // A key may not end the sessions and keys it was made beside.
    let who = key_manager(app, parts).await?;
    let input: LogoutAll = read_optional_json(app, parts, body).await?;
    app.service.logout_all(who.user_id).await?;
    let keys = if input.revoke_keys {
        app.service.delete_all_keys(who.user_id).await?
    } else {
        0
    };
    Ok(response::json(
        StatusCode::OK,
        &json!({"message": "every earlier token is revoked", "keys_revoked": keys}),
    ))
}

/// A JSON body that may be absent (no body, or an empty one: the defaults).
async fn read_optional_json<T: serde::de::DeserializeOwned + Default, B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<T> {
    let limits = &app.config.limits;
    let bytes =
        request::read_body(parts, body, limits.max_body, limits.header_read_timeout).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    request::check_json_type(parts)?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Error::invalid("the body is not valid JSON of the expected shape"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileChange {
    /// `Some(None)`: remove the email.
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/users/me` `{"email": "..." | null}`: 200 with the record.
/// Needs a password proven recently (see `authenticate_recent`).
pub async fn update_me<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let who = authenticate_recent(app, parts).await?;
    let input: ProfileChange = read_json(app, parts, body).await?;
    let Some(email) = input.email else {
        return Err(Error::invalid("nothing to change: send email"));
    };
    let user = app.service.set_email(who.user_id, email.as_deref()).await?;
    Ok(response::json(StatusCode::OK, &own_view(&user)))
}

#[derive(Deserialize)]
struct PasswordChange {
    old_password: Option<String>,
    new_password: Option<String>,
}

/// `PUT /api/users/me/password`: 204; the old password and every earlier
/// token are refused afterwards. A wrong old password is 403.
pub async fn change_password<B: ReadBody>(
    app: &App,
    parts: &Parts,
    body: B,
) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let input: PasswordChange = read_json(app, parts, body).await?;
    let (Some(old), Some(new)) = (input.old_password, input.new_password) else {
        return Err(Error::invalid("old_password and new_password are required"));
    };
    app.service.change_password(who.user_id, &old, &new).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /api/users/me` with Basic username:password: 204. A token or
/// key alone is not enough.
pub async fn delete_me(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let presented = credential(app, parts)?;
    let Credential::Password { username, password } = &presented.credential else {
        return Err(Error::unauthorized(Refusal::PasswordRequired));
    };
    app.service
        .delete_account(username, password, presented.otp)
        .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize)]
struct NewKeyRequest {
    name: Option<String>,
    expires_in: Option<u64>,
}

/// Keys (and sessions: logout everywhere) are managed with a password or
/// a token, never with an API key, so a leaked key cannot mint more or
/// wipe the others.
async fn key_manager(app: &App, parts: &Parts) -> Result<Identity> {
    let who = authenticate(app, parts).await?;
    if let Via::ApiKey(_) = who.via {
        return Err(Error::new(Kind::Forbidden(
            "API keys cannot manage API keys or log out everywhere; use a token or the password",
        )));
    }
    Ok(who)
}

/// `POST /api/keys`: 201 `{"id","name","key"}`, the key shown this once.
/// Needs a password proven recently, so a stolen token cannot leave a
/// key behind that outlives it.
pub async fn create_key<B: ReadBody>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>> {
    let who = recent(app, key_manager(app, parts).await?)?;
    let input: NewKeyRequest = read_json(app, parts, body).await?;
    let name = input
        .name
        .ok_or_else(|| Error::invalid("name is required"))?;
    let new = app
        .service
        .create_key(&who, &name, input.expires_in)
        .await?;
    Ok(response::json(
        StatusCode::CREATED,
        &json!({"id": new.key.id, "name": new.key.name, "key": new.secret}),
    ))
}

/// `GET /api/keys`: the caller's keys, never the secrets.
pub async fn list_keys(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = key_manager(app, parts).await?;
    let keys: Vec<_> = app
        .service
        .list_keys(who.user_id)?
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "created_at": k.created_at,
                "expires_at": k.expires_at,
                "last_used_at": k.last_used_at,
            })
        })
        .collect();
    Ok(response::json(StatusCode::OK, &keys))
}

/// `DELETE /api/keys/<id>`: 204; 404 for a key that is not the caller's.
pub async fn delete_key(app: &App, parts: &Parts, id: &str) -> Result<Response<Body>> {
    let who = key_manager(app, parts).await?;
    let id = KeyId::parse(id).ok_or_else(|| Error::new(Kind::NotFound))?;
    if app.service.delete_key(who.user_id, id).await? {
        Ok(response::empty(StatusCode::NO_CONTENT))
    } else {
        Err(Error::new(Kind::NotFound))
    }
}

/// A session as the API lists it.
pub fn session_json(s: &crate::model::Session) -> serde_json::Value {
    json!({
        "id": s.id,
        "created_at": s.created_at,
        "last_seen_at": s.last_seen_at,
        "expires_at": s.expires_at,
        "address": s.address,
        "user_agent": s.user_agent,
        "remember_me": s.remember,
    })
}

/// `GET /api/sessions`: the caller's live login-page sessions. A token or
/// an API key lists them; the session cookie is no API credential.
pub async fn list_sessions(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let sessions: Vec<_> = app
        .service
        .list_sessions(who.user_id)?
        .iter()
        .map(session_json)
        .collect();
    Ok(response::json(StatusCode::OK, &sessions))
}

/// `DELETE /api/sessions/<id>`: 204, its cookie refused from now on; 404
/// for a session that is not the caller's (or already ended).
pub async fn end_session(app: &App, parts: &Parts, id: &str) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let id = SessionId::parse(id).ok_or_else(|| Error::new(Kind::NotFound))?;
    if app.service.end_session(who.user_id, id).await? {
        Ok(response::empty(StatusCode::NO_CONTENT))
    } else {
        Err(Error::new(Kind::NotFound))
    }
}

/// `{"data":"Hello, <name>!"}`, written directly: this is the hot path of
/// the REST-auth flow. Names that would need JSON escaping (none that
/// latch accepts do) go through serde.
fn greeting(name: &str) -> Vec<u8> {
    if name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        let mut body = Vec::with_capacity(name.len() + 24);
        body.extend_from_slice(b"{\"data\":\"Hello, ");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"!\"}");
        body
    } else {
        serde_json::to_vec(&json!({"data": format!("Hello, {name}!")})).expect("serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_is_json() {
        for name in [
            "alice",
            "a.b-c_d",
            "quote\"me",
            "back\\slash",
            "sp ace",
            "é",
        ] {
            let v: serde_json::Value = serde_json::from_slice(&greeting(name)).unwrap();
            assert_eq!(v, json!({"data": format!("Hello, {name}!")}), "{name}");
        }
    }
}
