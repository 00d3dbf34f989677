//! Handlers for the JSON API. Each parses its input, calls the domain, and
//! shapes the answer; none touches the store or the crypto directly.

use bytes::Bytes;
use hyper::body::Body as HttpBody;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::request;
use super::response::{self, Body};
use crate::auth::{Identity, Issued};
use crate::credentials::Credential;
use crate::error::{Error, Refusal, Result};
use crate::token;
use crate::App;

/// Who the request is, from any credential form; 401 when none or refused.
pub async fn authenticate(app: &App, parts: &Parts) -> Result<Identity> {
    let credential = request::credential(parts, app.config.query_token)?
        .ok_or_else(|| Error::unauthorized(Refusal::Missing))?;
    app.auth.authenticate(&credential).await
}

#[derive(Deserialize)]
struct Registration {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
}

/// `POST /api/users`: 201 `{"id","username"}` with `Location`.
pub async fn register<B>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let input: Registration = request::json(parts, body, app.config.limits.max_body).await?;
    let (Some(username), Some(password)) = (input.username, input.password) else {
        return Err(Error::bad_request("username and password are required"));
    };
    let user = app
        .auth
        .register(&username, &password, input.email.as_deref())
        .await?;
    tracing::info!(user_id = user.id, "registered a user");
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

/// `GET /api/users/<id>`: 200 `{"id","username"}`; 404 when absent.
pub fn user(app: &App, id: &str) -> Result<Response<Body>> {
    let user = token::parse_id(id)
        .map(|id| app.auth.user(id))
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::new(crate::error::Kind::NotFound))?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"id": user.id, "username": user.username}),
    ))
}

/// `GET /api/token`: a username and password buy a token; a token cannot.
pub async fn token(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let credential = request::credential(parts, app.config.query_token)?
        .ok_or_else(|| Error::unauthorized(Refusal::Missing))?;
    let Credential::Password { username, password } = credential else {
        return Err(Error::unauthorized(Refusal::PasswordRequired));
    };
    let user = app.auth.login(&username, &password).await?;
    let Issued { token, duration } = app.auth.issue(&user)?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"token": token, "duration": duration}),
    ))
}

/// `GET /api/resource`: the REST-auth greeting, for any credential.
pub async fn resource(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    Ok(response::json(
        StatusCode::OK,
        &json!({"data": format!("Hello, {}!", who.username)}),
    ))
}

#[derive(Deserialize)]
struct Login {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// `POST /login` with JSON: the Flask-Security answer, plus `token` and
/// `duration` at the top level.
pub async fn login_json<B>(app: &App, parts: &Parts, body: B) -> Result<Response<Body>>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let input: Login = request::json(parts, body, app.config.limits.max_body).await?;
    let (Some(login), Some(password)) = (input.username.or(input.email), input.password) else {
        return Err(Error::bad_request(
            "username (or email) and password are required",
        ));
    };
    let user = app.auth.login(&login, &password).await?;
    let Issued { token, duration } = app.auth.issue(&user)?;
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "meta": {"code": 200},
            "response": {"user": {"id": user.id.to_string(), "authentication_token": token}},
            "token": token,
            "duration": duration,
        }),
    ))
}

/// `POST /logout`: revokes the token the request carries.
pub async fn logout(app: &App, parts: &Parts) -> Result<Response<Body>> {
    let who = authenticate(app, parts).await?;
    let Some(token) = who.token else {
        return Err(Error::bad_request(
            "logout revokes a token: send the token, not a password",
        ));
    };
    app.auth.revoke(token).await?;
    tracing::info!(user_id = who.user_id, "revoked a token at logout");
    Ok(response::json(
        StatusCode::OK,
        &json!({"message": "logged out"}),
    ))
}
