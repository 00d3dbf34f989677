//! Every credential form on a protected route, and the switches around them.

use crate::support::*;

#[test]
fn every_form_is_accepted() {
    let dir = TempDir::new("forms");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    /// A name, the headers to send, the path.
    type Form<'a> = (&'a str, Vec<(&'a str, String)>, String);
    let forms: Vec<Form> = vec![
        (
            "bearer",
            vec![("Authorization", bearer(&token))],
            "/api/resource".into(),
        ),
        (
            "bearer lowercase",
            vec![("Authorization", format!("bearer {token}"))],
            "/api/resource".into(),
        ),
        (
            "basic token",
            vec![("Authorization", basic(&token, ""))],
            "/api/resource".into(),
        ),
        (
            "basic password",
            vec![("Authorization", basic("alice", "alice-password"))],
            "/api/resource".into(),
        ),
        (
            "basic any case",
            vec![("Authorization", basic("ALICE", "alice-password"))],
            "/api/resource".into(),
        ),
        (
            "header",
            vec![("Authentication-Token", token.clone())],
            "/api/resource".into(),
        ),
        ("query", vec![], format!("/api/resource?auth_token={token}")),
        (
            "query among others",
            vec![],
            format!("/api/resource?a=1&auth_token={token}&b"),
        ),
    ];
    for (name, headers, path) in forms {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let res = c.get(&path, &headers);
        assert_eq!(res.status, 200, "{name}: {}", res.text());
        assert_eq!(res.json()["data"], "Hello, alice!", "{name}");
    }
}

#[test]
fn authorization_header_wins() {
    let dir = TempDir::new("precedence");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let alice = c.token("alice", "alice-password");
    let bob = c.token("bob", "bob-password");
    let res = c.get(
        &format!("/api/resource?auth_token={bob}"),
        &[
            ("Authorization", &bearer(&alice)),
            ("Authentication-Token", &bob),
        ],
    );
    assert_eq!(res.json()["data"], "Hello, alice!");
    let res = c.get(
        &format!("/api/resource?auth_token={bob}"),
        &[("Authentication-Token", &alice)],
    );
    assert_eq!(res.json()["data"], "Hello, alice!");
    // A bad Authorization header is not rescued by a good token elsewhere.
    let res = c.get(
        "/api/resource",
        &[
            ("Authorization", "Bearer nonsense"),
            ("Authentication-Token", &alice),
        ],
    );
    res.assert_challenges(true);
}

#[test]
fn query_token_can_be_switched_off() {
    let dir = TempDir::new("noquery");
    let server = InProcess::new(&dir, "query_token = false");
    let c = server.client();
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    c.get(&format!("/api/resource?auth_token={token}"), &[])
        .assert_challenges(false);
    assert_eq!(
        c.get("/api/resource", &[("Authentication-Token", &token)])
            .status,
        200
    );
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = TempDir::new("secrets");
    let server = Server::start(&dir, "log_level = \"trace\"");
    let c = server.client();
    c.register("alice", "sekrit-password-1");
    let token = c.token("alice", "sekrit-password-1");
    c.get(&format!("/api/resource?auth_token={token}"), &[]);
    c.resource(&basic("alice", "wrong-password-2"));
    c.post_json(
        "/login",
        &json!({"username": "alice", "password": "sekrit-password-1"}),
        &[],
    );
    c.request("POST", "/logout", &[("Authentication-Token", &token)], None);
    c.get(&format!("/api/resource?auth_token={token}"), &[]);
    // Log lines arrive through a pipe; wait for the last event's.
    let log = server.log_containing("revoked a token at logout");
    assert!(
        log.contains("registered a user"),
        "the log is being captured: {log}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for secret in [
        "sekrit-password-1",
        "wrong-password-2",
        signature,
        "auth_token",
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} leaked into the log:\n{log}"
        );
    }
}
