//! The account calls: me, logout everywhere, password change, deletion.

use crate::support::*;

fn start(tag: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new(tag);
    let server = InProcess::new(&dir, "");
    (dir, server)
}

#[test]
fn me_shows_id_username_email_and_groups() {
    let (_dir, server) = start("me");
    let c = server.client();
    let res = c.post_json(
        "/api/users",
        &json!({"username": "alice", "password": "alice-password", "email": "a@example.com"}),
        &[],
    );
    let id = res.json()["id"].as_u64().unwrap();
    let token = c.token("alice", "alice-password");
    let res = c.get("/api/users/me", &[("Authorization", &bearer(&token))]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json(),
        json!({"id": id, "username": "alice", "email": "a@example.com", "groups": []})
    );
    // Any credential form will do; none is a 401.
    let res = c.get(
        "/api/users/me",
        &[("Authorization", &basic("alice", "alice-password"))],
    );
    assert_eq!(res.json()["username"], "alice");
    c.get("/api/users/me", &[]).assert_challenges(false);
    // Groups set through the CLI (server running) show up at once.
    server.set_groups("alice", &["admins", "media"]);
    let res = c.get("/api/users/me", &[("Authorization", &bearer(&token))]);
    assert_eq!(res.json()["groups"], json!(["admins", "media"]));
}

#[test]
fn logout_all_refuses_every_earlier_token_only() {
    let (_dir, server) = start("logoutall");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let first = c.token("alice", "alice-password");
    let second = c.token("alice", "alice-password");
    let bobs = c.token("bob", "bob-password");
    let res = c.post_auth("/api/logout-all", &bearer(&first));
    assert_eq!(res.status, 200, "{}", res.text());
    for t in [&first, &second] {
        c.resource(&bearer(t)).assert_challenges(true);
        c.resource(&basic(t, "")).assert_challenges(true);
    }
    // Tokens issued after it work, even within the same second.
    let after = c.token("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&after)).status, 200);
    let login = c.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice-password"}),
        &[],
    );
    let after_login = login.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(c.resource(&bearer(&after_login)).status, 200);
    // Other users are untouched; the password still works.
    assert_eq!(c.resource(&bearer(&bobs)).status, 200);
    c.assert_alive("alice", "alice-password");
    // It survives a restart.
    let server = server.restart();
    let c = server.client();
    c.resource(&bearer(&first)).assert_challenges(true);
    assert_eq!(c.resource(&bearer(&after)).status, 200);
    // Unauthenticated: 401; wrong method: 405.
    c.request("POST", "/api/logout-all", &[], None)
        .assert_challenges(false);
    assert_eq!(c.get("/api/logout-all", &[]).status, 405);
}

#[test]
fn password_change() {
    let (_dir, server) = start("passwd");
    let c = server.client();
    c.register("alice", "old-password");
    let token = c.token("alice", "old-password");
    let other = c.token("alice", "old-password");
    let auth = bearer(&token);
    let put = |body: Value| {
        c.request(
            "PUT",
            "/api/users/me/password",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    };
    let res = put(json!({"old_password": "wrong-password", "new_password": "new-password"}));
    assert_eq!(res.status, 403, "{}", res.text());
    let res = put(json!({"old_password": "old-password", "new_password": "short"}));
    assert_eq!(res.status, 400);
    let res = put(json!({"old_password": "old-password"}));
    assert_eq!(res.status, 400);
    // Nothing changed so far.
    assert_eq!(c.resource(&bearer(&other)).status, 200);
    c.assert_alive("alice", "old-password");

    let res = put(json!({"old_password": "old-password", "new_password": "new-password"}));
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());
    c.resource(&basic("alice", "old-password"))
        .assert_challenges(false);
    c.resource(&bearer(&token)).assert_challenges(true);
    c.resource(&bearer(&other)).assert_challenges(true);
    c.assert_alive("alice", "new-password");
    let fresh = c.token("alice", "new-password");
    assert_eq!(c.resource(&bearer(&fresh)).status, 200);
    // Not logged in: 401.
    let res = c.request(
        "PUT",
        "/api/users/me/password",
        &[("Content-Type", "application/json")],
        Some(br#"{"old_password":"new-password","new_password":"newer-password"}"#),
    );
    res.assert_challenges(false);
}

#[test]
fn account_deletion() {
    let (dir, server) = start("delete");
    let c = server.client();
    let id = c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let token = c.token("alice", "alice-password");
    let key = c
        .post_json(
            "/api/keys",
            &json!({"name": "ci"}),
            &[("Authorization", &bearer(&token))],
        )
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(c.resource(&bearer(&key)).status, 200);

    // A token or key alone is not enough, nor a wrong password.
    c.request(
        "DELETE",
        "/api/users/me",
        &[("Authorization", &bearer(&token))],
        None,
    )
    .assert_challenges(false);
    c.request(
        "DELETE",
        "/api/users/me",
        &[("Authorization", &bearer(&key))],
        None,
    )
    .assert_challenges(false);
    c.request(
        "DELETE",
        "/api/users/me",
        &[("Authorization", &basic("alice", "wrong-password"))],
        None,
    )
    .assert_challenges(false);
    c.request("DELETE", "/api/users/me", &[], None)
        .assert_challenges(false);
    assert_eq!(c.resource(&bearer(&token)).status, 200);

    let res = c.request(
        "DELETE",
        "/api/users/me",
        &[("Authorization", &basic("alice", "alice-password"))],
        None,
    );
    assert_eq!(res.status, 204, "{}", res.text());
    c.resource(&bearer(&token)).assert_challenges(true);
    c.resource(&bearer(&key)).assert_challenges(true);
    c.resource(&basic("alice", "alice-password"))
        .assert_challenges(false);
    c.register("carol", "carol-password");
    let carol = basic("carol", "carol-password");
    assert_eq!(
        c.get(&format!("/api/users/{id}"), &[("Authorization", &carol)])
            .status,
        404
    );
    // The name is free again, under a new id; the old token stays dead.
    let new_id = c.register("alice", "another-password");
    assert_ne!(new_id, id);
    c.resource(&bearer(&token)).assert_challenges(true);
    c.assert_alive("alice", "another-password");
    c.assert_alive("bob", "bob-password");
    // And after a restart.
    let server = server.restart();
    let c = server.client();
    c.resource(&bearer(&token)).assert_challenges(true);
    c.resource(&bearer(&key)).assert_challenges(true);
    c.assert_alive("alice", "another-password");
    drop(dir);
}
