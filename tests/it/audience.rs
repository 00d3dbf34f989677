//! A leaked session cookie or token cannot leave a backdoor: session tokens
//! are cookie-only, never an API credential in any spelling; new API keys
//! and a new email need a password proven recently; logout everywhere can
//! take the keys too. In-process, with the clock moved.

use latch::Clock;

use crate::forward::{session, FA_CONFIG};
use crate::support::*;

fn start() -> (TempDir, Clock, InProcess) {
    let dir = TempDir::new("audience");
    let clock = Clock::frozen();
    let server = InProcess::start(&dir, FA_CONFIG, clock.clone());
    server.client.register("alice", "alice-password");
    (dir, clock, server)
}

/// One way of presenting a token: its name, the headers, and the query
/// parameter (empty for none).
struct Spelling {
    name: &'static str,
    headers: Vec<(String, String)>,
    query: &'static str,
}

/// Every way a token can be presented to the API, for `token`.
fn spellings(token: &str) -> Vec<Spelling> {
    let h = |name, header: &str, value: String| Spelling {
        name,
        headers: vec![(header.to_owned(), value)],
        query: "",
    };
    vec![
        h("Bearer", "Authorization", bearer(token)),
        h("Basic username", "Authorization", basic(token, "x")),
        h(
            "Authentication-Token",
            "Authentication-Token",
            token.to_owned(),
        ),
        Spelling {
            name: "query",
            headers: vec![],
            query: "auth_token",
        },
        h("cookie", "Cookie", format!("latch_session={token}")),
    ]
}

/// Every authenticated route of the JSON API (and the Flask logout), as
/// (method, path, JSON body).
const API_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/resource", None),
    ("GET", "/api/users/me", None),
    (
        "PATCH",
        "/api/users/me",
        Some(r#"{"email":"mallory@evil.test"}"#),
    ),
    ("DELETE", "/api/users/me", None),
    (
        "PUT",
        "/api/users/me/password",
        Some(r#"{"old_password":"alice-password","new_password":"owned-by-mallory"}"#),
    ),
    ("GET", "/api/users/1", None),
    ("GET", "/api/token", None),
    ("GET", "/api/keys", None),
    (
        "POST",
        "/api/keys",
        Some(r#"{"name":"backdoor","expires_in":315360000}"#),
    ),
    ("DELETE", "/api/keys/1", None),
    ("POST", "/api/logout-all", None),
    ("POST", "/logout", None),
];

fn send(
    c: &Client,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    query: &str,
    token: &str,
) -> Response {
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}={token}")
    };
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if body.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    c.request(method, &path, &all, body.map(str::as_bytes))
}

#[test]
fn a_session_token_is_no_api_credential_in_any_spelling_on_any_route() {
    let (_dir, _clock, server) = start();
    let c = server.client;
    let cookie = session(&c, "alice", "alice-password");
    let token = cookie.strip_prefix("latch_session=").unwrap();
    // The session is good where it belongs: forward auth.
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
    for Spelling {
        name: spelling,
        headers,
        query,
    } in spellings(token)
    {
        for (method, path, body) in API_ROUTES {
            if spelling == "cookie" && *path == "/logout" {
                // latch's own logout page takes the cookie: that is a
                // sign-out, tested with the pages.
                continue;
            }
            let res = send(&c, method, path, &headers, *body, query, token);
            assert_eq!(
                res.status,
                401,
                "{spelling} on {method} {path}: {}",
                res.text()
            );
        }
    }
    // Nothing changed: no key was made, the password and the email stand,
    // and the session itself still works where it belongs.
    let real = c.token("alice", "alice-password");
    let keys = c.get("/api/keys", &[("Authorization", &bearer(&real))]);
    assert_eq!(keys.json(), json!([]));
    let me = c.get("/api/users/me", &[("Authorization", &bearer(&real))]);
    assert_eq!(me.json()["email"], Value::Null);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn the_reported_attack_a_cookie_as_bearer_mints_no_key() {
    let (_dir, _clock, server) = start();
    let c = server.client;
    let cookie = session(&c, "alice", "alice-password");
    let stolen = cookie.strip_prefix("latch_session=").unwrap();
    let res = c.post_json(
        "/api/keys",
        &json!({"name": "backdoor", "expires_in": 315_360_000}),
        &[("Authorization", &bearer(stolen))],
    );
    res.assert_challenges(true);
    assert!(!res.text().contains("latch_"), "{}", res.text());
}

#[test]
fn an_api_token_is_no_session_cookie() {
    let (_dir, _clock, server) = start();
    let c = server.client;
    let token = c.token("alice", "alice-password");
    // As a header on forward auth (scripts): fine. As the cookie: refused.
    assert_eq!(
        c.get("/auth", &[("Authorization", &bearer(&token))]).status,
        200
    );
    let cookie = format!("latch_session={token}");
    c.get("/auth/nginx", &[("Cookie", &cookie)])
        .assert_challenges(true);
    assert_eq!(
        c.get("/", &[("Accept", "text/html"), ("Cookie", &cookie)])
            .status,
        302,
        "the signed-in page does not take it either"
    );
}

#[test]
fn new_keys_and_emails_need_a_recent_password() {
    let (_dir, clock, server) = start();
    let c = server.client;
    let token = c.token("alice", "alice-password");
    let new_key = |auth: &str| {
        c.post_json(
            "/api/keys",
            &json!({"name": "k"}),
            &[("Authorization", auth)],
        )
    };
    let new_email = |auth: &str, email: &str| {
        c.request(
            "PATCH",
            "/api/users/me",
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            Some(json!({"email": email}).to_string().as_bytes()),
        )
    };
    // Within the window (5 minutes by default): a fresh token will do.
    assert_eq!(new_key(&bearer(&token)).status, 201);
    assert_eq!(new_email(&bearer(&token), "alice@example.test").status, 200);
    clock.advance(300);
    assert_eq!(
        new_key(&bearer(&token)).status,
        201,
        "the window's last second"
    );
    clock.advance(1);
    // The token still works for everything else, but not for these.
    assert_eq!(c.resource(&bearer(&token)).status, 200);
    for res in [
        new_key(&bearer(&token)),
        new_email(&bearer(&token), "x@evil.test"),
    ] {
        res.assert_challenges(false);
        assert_eq!(res.error_code(), "reauthentication_required");
        assert!(res.json()["message"].as_str().unwrap().contains("password"));
    }
    // Basic proves the password now; so does a new token.
    assert_eq!(new_key(&basic("alice", "alice-password")).status, 201);
    let fresh = c.token("alice", "alice-password");
    let res = new_email(&bearer(&fresh), "alice@example.org");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["email"], "alice@example.org");
    // An API key never will.
    let key = new_key(&bearer(&fresh)).json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_key(&bearer(&key)).status, 403);
    assert_eq!(new_email(&bearer(&key), "k@evil.test").status, 403);
    // The email moved: the old one is free, the new one logs in.
    let res = c.post_json(
        "/login",
        &json!({"email": "alice@example.org", "password": "alice-password"}),
        &[],
    );
    assert_eq!(res.status, 200);
    c.register("bob", "bob-password");
    let bob = basic("bob", "bob-password");
    assert_eq!(new_email(&bob, "alice@example.test").status, 200, "freed");
    assert_eq!(new_email(&bob, "ALICE@example.org").status, 409, "taken");
    // Bad bodies are 400 and change nothing.
    for body in [
        r#"{}"#,
        r#"{"email":"no-at-sign"}"#,
        r#"{"email":3}"#,
        r#"{"name":"x"}"#,
    ] {
        let res = c.request(
            "PATCH",
            "/api/users/me",
            &[
                ("Authorization", &bob),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
        );
        assert_eq!(res.status, 400, "{body}");
    }
    // null removes the email.
    let res = c.request(
        "PATCH",
        "/api/users/me",
        &[
            ("Authorization", &bob),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"email":null}"#),
    );
    assert_eq!(res.json()["email"], Value::Null);
}

#[test]
fn logout_everywhere_can_take_the_keys_too() {
    let (_dir, _clock, server) = start();
    let c = server.client;
    let token = c.token("alice", "alice-password");
    let key = c.new_key(&bearer(&token), "k");
    let cookie = session(&c, "alice", "alice-password");
    // Without revoke_keys: tokens and sessions go, keys stay.
    let res = c.post_auth("/api/logout-all", &basic("alice", "alice-password"));
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["keys_revoked"], 0);
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    c.resource(&bearer(&token)).assert_challenges(true);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 401);
    // Malformed asks change nothing.
    for (ct, body) in [
        ("application/json", "{not json"),
        ("application/json", r#"{"revoke_keys":"yes"}"#),
        ("application/json", r#"{"revoke":true}"#),
        ("text/plain", r#"{"revoke_keys":true}"#),
    ] {
        let res = c.request(
            "POST",
            "/api/logout-all",
            &[
                ("Authorization", &basic("alice", "alice-password")),
                ("Content-Type", ct),
            ],
            Some(body.as_bytes()),
        );
        assert!(matches!(res.status, 400 | 415), "{body}: {}", res.status);
        assert_eq!(c.resource(&bearer(&key)).status, 200, "{body}");
    }
    // With it: the keys go too.
    let res = c.post_json(
        "/api/logout-all",
        &json!({"revoke_keys": true}),
        &[("Authorization", &basic("alice", "alice-password"))],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["keys_revoked"], 1);
    c.resource(&bearer(&key)).assert_challenges(true);
    c.assert_alive("alice", "alice-password");
}

/// One user's credentials: two of each kind.
struct Held {
    user: String,
    tokens: [String; 2],
    sessions: [String; 2],
    keys: [(u64, String); 2],
}

fn hold(c: &Client, user: &str) -> Held {
    c.register(user, "first-password");
    let token = || c.token(user, "first-password");
    let key = |name: &str| {
        let res = c.post_json(
            "/api/keys",
            &json!({"name": name}),
            &[("Authorization", &basic(user, "first-password"))],
        );
        let v = res.json();
        (
            v["id"].as_u64().unwrap(),
            v["key"].as_str().unwrap().to_owned(),
        )
    };
    Held {
        user: user.to_owned(),
        tokens: [token(), token()],
        sessions: [
            session(c, user, "first-password"),
            session(c, user, "first-password"),
        ],
        keys: [key("one"), key("two")],
    }
}

/// Whether each of a pair still works: (first, second).
fn alive(c: &Client, held: &Held, kind: &str) -> (bool, bool) {
    let ok = |res: Response| res.status == 200;
    let check = |i: usize| match kind {
        "API tokens" => ok(c.resource(&bearer(&held.tokens[i]))),
        "sessions" => ok(c.get("/auth", &[("Cookie", &held.sessions[i])])),
        "API keys" => ok(c.resource(&bearer(&held.keys[i].1))),
        other => panic!("unknown column {other}"),
    };
    (check(0), check(1))
}

/// The `jti` of the token in a `latch_session=<token>` cookie: the
/// session's id.
fn jti_of(cookie: &str) -> String {
    let token = cookie.trim_start_matches("latch_session=");
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&latch::crypto::b64url_decode(payload.as_bytes()).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// The README's "what survives what" table, checked row by row: the event
/// is done with the first of each pair, and each cell says what becomes
/// of the pair.
#[test]
fn what_survives_what_is_what_the_readme_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- survives:begin -->").unwrap();
    let end = readme.find("<!-- survives:end -->").unwrap();
    let rows: Vec<Vec<String>> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    let header = &rows[0];
    assert_eq!(header, &["event", "API tokens", "sessions", "API keys"]);
    let dir = TempDir::new("survives");
    let text = config_text(dir.path(), FA_CONFIG);
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, &text).unwrap();
    let server = InProcess::start(&dir, FA_CONFIG, Clock::system());
    let c = server.client;
    let mut checked = 0;
    for (n, row) in rows[2..].iter().enumerate() {
        let held = hold(&c, &format!("user{n}"));
        let user = held.user.as_str();
        let password = basic(user, "first-password");
        let event = row[0].as_str();
        let done = match event {
            "`POST /logout` with a token" => {
                c.post_auth("/logout", &bearer(&held.tokens[0])).status
            }
            "sign-out from the page, or `GET /logout`" => {
                c.get("/logout", &[("Cookie", &held.sessions[0])]).status
            }
            "`POST /api/logout-all`" => c.post_auth("/api/logout-all", &password).status,
            "`POST /api/logout-all` with `{\"revoke_keys\": true}`" => {
                c.post_json(
                    "/api/logout-all",
                    &json!({"revoke_keys": true}),
                    &[("Authorization", &password)],
                )
                .status
            }
            "password change (`PUT /api/users/me/password`, `latch user passwd`)" => {
                c.request(
                    "PUT",
                    "/api/users/me/password",
                    &[
                        ("Authorization", &bearer(&held.tokens[0])),
                        ("Content-Type", "application/json"),
                    ],
                    Some(br#"{"old_password":"first-password","new_password":"second-password"}"#),
                )
                .status
            }
            "`DELETE /api/keys/<id>`, `latch user keys NAME --revoke ID`" => {
                c.request(
                    "DELETE",
                    &format!("/api/keys/{}", held.keys[0].0),
                    &[("Authorization", &password)],
                    None,
                )
                .status
            }
            "`DELETE /api/sessions/<id>`, `latch user sessions NAME --revoke ID`, \"End\" on \
             the account page" => {
                let id = jti_of(&held.sessions[0]);
                c.request(
                    "DELETE",
                    &format!("/api/sessions/{id}"),
                    &[("Authorization", &password)],
                    None,
                )
                .status
            }
            "`latch user sessions NAME --all`" => {
                let (status, _, stderr) = latch_with(&["user", "sessions", user, "--all"], &config);
                assert!(status.success(), "{stderr}");
                200
            }
            "`latch user keys NAME --all`" => {
                let (status, _, stderr) = latch_with(&["user", "keys", user, "--all"], &config);
                assert!(status.success(), "{stderr}");
                200
            }
            "account deleted (`DELETE /api/users/me`, `latch user del`)" => {
                c.request(
                    "DELETE",
                    "/api/users/me",
                    &[("Authorization", &password)],
                    None,
                )
                .status
            }
            other => panic!("the test does not know the README's event {other:?}"),
        };
        assert!(matches!(done, 200 | 204 | 302), "{event}: {done}");
        for (column, cell) in header.iter().zip(row).skip(1) {
            let expected = match cell.as_str() {
                "kept" => (true, true),
                "that one refused" | "that one deleted" => (false, true),
                "all refused" | "all deleted" => (false, false),
                other => panic!("unknown cell {other:?}"),
            };
            assert_eq!(
                alive(&c, &held, column),
                expected,
                "{event}: {column} should be {cell}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn an_api_key_cannot_end_sessions_or_wipe_keys() {
    let (_dir, _clock, server) = start();
    let c = server.client;
    let password = basic("alice", "alice-password");
    let key = c.new_key(&password, "script");
    let cookie = session(&c, "alice", "alice-password");
    for body in [None, Some(json!({"revoke_keys": true}))] {
        let res = match &body {
            None => c.post_auth("/api/logout-all", &bearer(&key)),
            Some(b) => c.post_json("/api/logout-all", b, &[("Authorization", &bearer(&key))]),
        };
        assert_eq!(res.status, 403, "{body:?}: {}", res.text());
    }
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
}

#[test]
fn a_cross_site_page_cannot_spend_cached_basic_credentials() {
    // A browser that once answered latch's Basic challenge sends the
    // credentials again, even on another site's form post or fetch.
    let (_dir, _clock, server) = start();
    let c = server.client;
    let password = basic("alice", "alice-password");
    let evil = ("Origin", "https://evil.test");
    let res = c.request(
        "POST",
        "/api/keys",
        &[
            ("Authorization", &password),
            evil,
            ("Content-Type", "text/plain"),
        ],
        Some(br#"{"name":"csrf"}"#),
    );
    assert_eq!(res.status, 403, "{}", res.text());
    let res = c.request(
        "POST",
        "/api/logout-all",
        &[("Authorization", &password), evil],
        None,
    );
    assert_eq!(res.status, 403);
    let res = c.request(
        "PATCH",
        "/api/users/me",
        &[
            ("Authorization", &password),
            ("Referer", "https://evil.test/page"),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"email":"evil@evil.test"}"#),
    );
    assert_eq!(res.status, 403);
    // Not taken for latch's own, in either header: an origin that no
    // browser writes (the scheme in capitals), and latch's host in the
    // other scheme (a plain-http page on it, for an https latch; review:
    // the scheme was not compared).
    for header in ["Origin", "Referer"] {
        for origin in ["HTTP://auth.example.test/", "https://auth.example.test/"] {
            let res = c.request(
                "POST",
                "/api/logout-all",
                &[("Authorization", &password), (header, origin)],
                None,
            );
            assert_eq!(res.status, 403, "{header}: {origin}");
        }
    }
    let keys = c.get("/api/keys", &[("Authorization", &password)]);
    assert_eq!(keys.json(), json!([]));
    // From latch's own origin, or from a script (no Origin), it works.
    let res = c.post_json(
        "/api/keys",
        &json!({"name": "own"}),
        &[
            ("Authorization", &password),
            ("Origin", "http://auth.example.test"),
        ],
    );
    assert_eq!(res.status, 201);
    let res = c.post_json(
        "/api/keys",
        &json!({"name": "script"}),
        &[("Authorization", &password)],
    );
    assert_eq!(res.status, 201);
}
