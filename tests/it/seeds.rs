//! The seed flows, as the REST-auth article and the Flask-Security answer
//! run them.

use crate::support::*;

#[test]
fn rest_auth_walkthrough() {
    let dir = TempDir::new("restauth");
    // As the example config: profiles are public, as in the article.
    let server = InProcess::new(&dir, "[api]\npublic_profiles = true\n");
    let c = server.client();

    // Register.
    let res = c.post_json(
        "/api/users",
        &json!({"username": "miguel", "password": "python-rocks"}),
        &[],
    );
    assert_eq!(res.status, 201, "{}", res.text());
    let body = res.json();
    assert_eq!(body["username"], "miguel");
    let id = body["id"].as_u64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/users/{id}").as_str())
    );

    // The new user is visible.
    let res = c.get(&format!("/api/users/{id}"), &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"id": id, "username": "miguel"}));
    assert_eq!(c.get("/api/users/999", &[]).status, 404);
    assert_eq!(c.get("/api/users/abc", &[]).status, 404);

    // Basic with the password.
    let res = c.resource(&basic("miguel", "python-rocks"));
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"data": "Hello, miguel!"}));

    // Wrong password.
    let res = c.resource(&basic("miguel", "ruby-rocks"));
    res.assert_challenges(false);
    assert_eq!(res.error_code(), "unauthorized");

    // A token, with its duration and no-store.
    let res = c.get(
        "/api/token",
        &[("Authorization", &basic("miguel", "python-rocks"))],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.json()["duration"], 600);
    let token = res.json()["token"].as_str().unwrap().to_owned();

    // The token as the Basic username, and as a Bearer token.
    let res = c.resource(&basic(&token, "unused"));
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["data"], "Hello, miguel!");
    let res = c.resource(&bearer(&token));
    assert_eq!(res.status, 200);

    // A token cannot mint a token.
    let res = c.get("/api/token", &[("Authorization", &bearer(&token))]);
    res.assert_challenges(false);
    let res = c.get("/api/token", &[("Authorization", &basic(&token, "unused"))]);
    res.assert_challenges(false);
    // Nor can nothing.
    c.get("/api/token", &[]).assert_challenges(false);
    c.get("/api/resource", &[]).assert_challenges(false);
}

#[test]
fn flask_security_json_login() {
    let dir = TempDir::new("flask");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let res = c.post_json(
        "/api/users",
        &json!({"username": "matt", "password": "password1234", "email": "matt@example.com"}),
        &[],
    );
    assert_eq!(res.status, 201);
    let id = res.json()["id"].as_u64().unwrap();

    for login in [
        json!({"email": "matt@example.com", "password": "password1234"}),
        json!({"email": "MATT@example.com", "password": "password1234"}),
        json!({"username": "matt", "password": "password1234"}),
    ] {
        let res = c.post_json("/login", &login, &[]);
        assert_eq!(res.status, 200, "{login}: {}", res.text());
        assert_eq!(res.header("cache-control"), Some("no-store"));
        let body = res.json();
        assert_eq!(body["meta"]["code"], 200);
        assert_eq!(body["response"]["user"]["id"], id.to_string());
        let token = body["response"]["user"]["authentication_token"]
            .as_str()
            .unwrap();
        assert_eq!(body["token"], token);
        assert_eq!(body["duration"], 600);

        // The Flask-Security ways to present it.
        let res = c.get("/api/resource", &[("Authentication-Token", token)]);
        assert_eq!(res.status, 200);
        assert_eq!(res.json()["data"], "Hello, matt!");
        let res = c.get(&format!("/api/resource?auth_token={token}"), &[]);
        assert_eq!(res.status, 200);
    }

    for bad in [
        json!({"email": "matt@example.com", "password": "wrong-password"}),
        json!({"email": "nobody@example.com", "password": "password1234"}),
        json!({"username": "nobody", "password": "password1234"}),
    ] {
        let res = c.post_json("/login", &bad, &[]);
        res.assert_challenges(false);
        assert_eq!(res.json()["message"], "invalid username or password");
    }
    // The Basic password also accepts the email as the username.
    let res = c.resource(&basic("matt@example.com", "password1234"));
    assert_eq!(res.status, 200);
}

#[test]
fn logout_revokes_the_token() {
    let dir = TempDir::new("logout");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    let other = c.token("alice", "alice-password");

    let res = c.post_auth("/logout", &bearer(&token));
    assert_eq!(res.status, 200, "{}", res.text());

    // Every way of presenting the revoked token is refused.
    c.resource(&bearer(&token)).assert_challenges(true);
    c.resource(&basic(&token, "x")).assert_challenges(true);
    c.get("/api/resource", &[("Authentication-Token", &token)])
        .assert_challenges(true);
    c.get(&format!("/api/resource?auth_token={token}"), &[])
        .assert_challenges(true);
    // Logging out twice is refused too.
    c.post_auth("/logout", &bearer(&token))
        .assert_challenges(true);
    // Other tokens of the same user still work.
    assert_eq!(c.resource(&bearer(&other)).status, 200);
    // Logout with a password has no token to revoke.
    let res = c.post_auth("/logout", &basic("alice", "alice-password"));
    assert_eq!(res.status, 400);
    assert_eq!(res.error_code(), "invalid_request");
    // Logout with nothing is a 401.
    c.request("POST", "/logout", &[], None)
        .assert_challenges(false);
}

#[test]
fn closed_registration() {
    let dir = TempDir::new("closed");
    let server = InProcess::new(&dir, "registration = \"closed\"");
    let res = server.client().post_json(
        "/api/users",
        &json!({"username": "eve", "password": "eve-password"}),
        &[],
    );
    assert_eq!(res.status, 403);
    assert_eq!(res.error_code(), "forbidden");
    // Closed is 403 whatever the body: it is not even read.
    for (ct, body) in [
        ("application/json", &b"{not json"[..]),
        ("text/plain", b"hello"),
        ("application/json", b""),
    ] {
        let res =
            server
                .client()
                .request("POST", "/api/users", &[("Content-Type", ct)], Some(body));
        assert_eq!(res.status, 403, "{ct} {body:?}");
    }
    // No user, and no credential: 401 before anything is looked up.
    server
        .client()
        .get("/api/users/1", &[])
        .assert_challenges(false);
}

#[test]
fn registration_rules() {
    let dir = TempDir::new("regrules");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("bob", "bob-password");
    let cases = [
        (
            json!({"username": "bob", "password": "another-password"}),
            409,
        ),
        (
            json!({"username": "BOB", "password": "another-password"}),
            409,
        ),
        (json!({"username": "carol", "password": "short"}), 400),
        (
            json!({"username": "carol", "password": "x".repeat(1025)}),
            400,
        ),
        (json!({"username": "carol"}), 400),
        (json!({"password": "carol-password"}), 400),
        (json!({"username": "", "password": "carol-password"}), 400),
        (
            json!({"username": "a b", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "a@b", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "latch_x", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "LATCH_x", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "ａｄｍｉｎ", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "Émile", "password": "carol-password"}),
            400,
        ),
        (
            json!({"username": "carol", "password": "carol-password", "email": "nope"}),
            400,
        ),
        (json!({"username": 5, "password": "carol-password"}), 400),
        (json!([1, 2]), 400),
    ];
    for (body, status) in cases {
        let res = c.post_json("/api/users", &body, &[]);
        assert_eq!(res.status, status, "{body}: {}", res.text());
        assert!(res.json()["message"].is_string());
    }
    // Emails are unique too, in any case.
    let first = c.post_json(
        "/api/users",
        &json!({"username": "dave", "password": "dave-password", "email": "d@example.com"}),
        &[],
    );
    assert_eq!(first.status, 201);
    let dup = c.post_json(
        "/api/users",
        &json!({"username": "dave2", "password": "dave-password", "email": "D@example.com"}),
        &[],
    );
    assert_eq!(dup.status, 409);
    // The refused ones left nothing behind: dave2 can register without the email.
    c.register("dave2", "dave-password");
    // Passwords may be any 8 characters, Unicode included.
    c.register("erin", "pässwörd");
    c.assert_alive("erin", "pässwörd");
    c.assert_alive("bob", "bob-password");
}

#[test]
fn concurrent_registrations_of_one_email() {
    let dir = TempDir::new("emailrace");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let statuses = register_at_once(c, 12, |i| {
        json!({
            "username": format!("racer{i}"),
            "password": "password-1",
            "email": "same@example.com",
        })
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        11,
        "{statuses:?}"
    );
    // The losers left nothing behind: their names are still free.
    let taken: Vec<u64> = (0..12)
        .filter(|i| {
            c.post_json(
                "/api/users",
                &json!({"username": format!("racer{i}"), "password": "password-1"}),
                &[],
            )
            .status
                == 409
        })
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
}

#[test]
fn concurrent_registrations_of_one_name() {
    let dir = TempDir::new("race");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let statuses = register_at_once(
        c,
        16,
        |i| json!({"username": "racer", "password": format!("password-{i}")}),
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
}

/// Sends `n` registrations at once, the i-th with `body(i)`; their statuses.
fn register_at_once(c: Client, n: usize, body: impl Fn(usize) -> Value + Sync) -> Vec<u16> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let body = &body;
                s.spawn(move || c.post_json("/api/users", &body(i), &[]).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
