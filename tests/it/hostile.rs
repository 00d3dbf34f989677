//! The attacker's requests from the forward-auth security review, each
//! against the behaviour that let it through: forward auth reads only what
//! the proxy vouches for, an unreadable query fails closed, `rd` stays on
//! latch's own host when there is no cookie domain, anything with an `@`
//! logs in as an email, and profiles are not public by default.

use latch::Clock;

use crate::forward::{open_login, session, submit_login, FA_CONFIG};
use crate::support::*;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

fn start(extra: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new("hostile");
    let server = InProcess::start(&dir, &format!("{FA_CONFIG}{extra}"), Clock::system());
    let c = server.client;
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    (dir, server)
}

#[test]
fn forward_auth_never_reads_a_credential_from_the_query() {
    let (_dir, server) = start("");
    let c = server.client;
    let victim = session(&c, "alice", "alice-password");
    let attacker = c.token("bob", "bob-password");
    for flavor in ["/auth", "/auth/nginx"] {
        // Login CSRF: the victim follows a link carrying the attacker's
        // token; the app must still see the victim.
        let res = c.get(
            &format!("{flavor}?auth_token={attacker}"),
            &[BROWSER, ("Cookie", &victim)],
        );
        assert_eq!(res.status, 200, "{flavor}");
        assert_eq!(res.header("remote-user"), Some("alice"), "{flavor}");
        // Without a cookie the query token is not a credential at all.
        let res = c.get(&format!("{flavor}?auth_token={attacker}"), &[]);
        res.assert_challenges(false);
        assert_eq!(res.header("remote-user"), None);
    }
    // The API still takes it (query_token = true), as Flask-Security does.
    let res = c.get(&format!("/api/resource?auth_token={attacker}"), &[]);
    assert_eq!(res.json()["data"], "Hello, bob!");
}

#[test]
fn an_explicit_header_wins_over_the_cookie_on_forward_auth() {
    let (_dir, server) = start("");
    let c = server.client;
    let cookie = session(&c, "alice", "alice-password");
    let token = c.token("bob", "bob-password");
    // As the README says: Authorization, then Authentication-Token, then
    // the cookie. (A browser cannot be made to send the first two.)
    let res = c.get(
        "/auth",
        &[("Cookie", &cookie), ("Authorization", &bearer(&token))],
    );
    assert_eq!(res.header("remote-user"), Some("bob"));
    let res = c.get(
        "/auth",
        &[("Cookie", &cookie), ("Authentication-Token", &token)],
    );
    assert_eq!(res.header("remote-user"), Some("bob"));
    let res = c.get("/auth", &[("Cookie", &cookie)]);
    assert_eq!(res.header("remote-user"), Some("alice"));
}

#[test]
fn an_unreadable_forward_auth_query_fails_closed() {
    let (_dir, server) = start("");
    let c = server.client;
    let alice = session(&c, "alice", "alice-password");
    let bob = session(&c, "bob", "bob-password");
    // bob is in no group: the plain requirement refuses him.
    assert_eq!(c.get("/auth?group=admins", &[("Cookie", &bob)]).status, 403);
    for query in [
        "group=admins&x=%zz",
        "group=admins&x=%ff",
        "group=admins%zz",
        "x=%C3&group=admins",
        "group=admins&x=%",
        "group=admins&x=%4",
        "%zz=1&group=admins",
    ] {
        for flavor in ["/auth", "/auth/nginx"] {
            for cookie in [&bob, &alice] {
                let res = c.get(&format!("{flavor}?{query}"), &[("Cookie", cookie)]);
                assert_eq!(res.status, 400, "{flavor}?{query}: {}", res.text());
                assert_eq!(res.header("remote-user"), None);
                assert_eq!(res.error_code(), "invalid_request");
            }
        }
    }
    // Readable queries still work, escapes included.
    assert_eq!(
        c.get("/auth?group=ad%6Dins", &[("Cookie", &bob)]).status,
        403
    );
    server.client.assert_alive("alice", "alice-password");
}

#[test]
fn without_a_cookie_domain_rd_goes_to_the_public_url_host_only() {
    let dir = TempDir::new("rdhost");
    let server = InProcess::start(
        &dir,
        "public_url = \"https://auth.example.com\"\n",
        Clock::system(),
    );
    let c = server.client;
    c.register("alice", "alice-password");
    let form = open_login(&c, "");
    let origin = ("Origin", "https://auth.example.com");
    for (rd, followed) in [
        ("https://evil.auth.example.com/", false),
        ("https://x.auth.example.com/steal", false),
        ("https://example.com/", false),
        ("https://app.example.com/", false),
        ("https://auth.example.com/", true),
        ("https://auth.example.com/account", true),
    ] {
        let res = submit_login(&c, &form, "alice", "alice-password", Some(rd), &[origin]);
        assert_eq!(res.status, 303, "{rd}: {}", res.text());
        let expected = if followed {
            rd
        } else {
            "https://auth.example.com/"
        };
        assert_eq!(res.header("location"), Some(expected), "{rd}");
    }
}

#[test]
fn anything_with_an_at_sign_logs_in_as_an_email() {
    let (_dir, server) = start("");
    let c = server.client;
    for (name, email) in [
        ("fan", "latch_fan@example.net"),
        ("jane", "eyJane.doe@example.net"),
        ("dots", "eyJ.a.b@example.net"),
    ] {
        let res = c.post_json(
            "/api/users",
            &json!({"username": name, "password": "the-password", "email": email}),
            &[],
        );
        assert_eq!(res.status, 201, "{email}: {}", res.text());
        // Basic with the email: a password login, never read as a key or
        // a token.
        let res = c.resource(&basic(email, "the-password"));
        assert_eq!(res.status, 200, "{email}: {}", res.text());
        assert_eq!(res.json()["data"], format!("Hello, {name}!"));
        let res = c.get(
            "/api/token",
            &[("Authorization", &basic(email, "the-password"))],
        );
        assert_eq!(res.status, 200, "{email}");
        let res = c.get("/auth", &[("Authorization", &basic(email, "the-password"))]);
        assert_eq!(res.header("remote-user"), Some(name));
        // The JSON login agrees.
        let res = c.post_json(
            "/login",
            &json!({"email": email, "password": "the-password"}),
            &[],
        );
        assert_eq!(res.status, 200, "{email}");
    }
}

#[test]
fn profiles_need_a_credential_unless_made_public() {
    let (_dir, server) = start("");
    let c = server.client;
    for id in ["1", "2", "3", "999", "abc"] {
        c.get(&format!("/api/users/{id}"), &[])
            .assert_challenges(false);
    }
    let bob = basic("bob", "bob-password");
    let res = c.get("/api/users/1", &[("Authorization", &bob)]);
    assert_eq!(res.json(), json!({"id": 1, "username": "alice"}));
    assert_eq!(
        c.get("/api/users/999", &[("Authorization", &bob)]).status,
        404
    );

    let dir = TempDir::new("public");
    let open = InProcess::start(&dir, "[api]\npublic_profiles = true\n", Clock::system());
    open.client.register("alice", "alice-password");
    let res = open.client.get("/api/users/1", &[]);
    assert_eq!(res.json(), json!({"id": 1, "username": "alice"}));
}

#[test]
fn untrusted_proxies_are_named_once_in_the_log() {
    let dir = TempDir::new("untrusted-warn");
    let server = Server::start(
        &dir,
        &format!("{FA_CONFIG}trusted_proxies = [\"10.0.0.0/8\"]\n"),
    );
    let c = server.client();
    for _ in 0..3 {
        c.get(
            "/auth",
            &[
                ("X-Forwarded-Host", "app.example.test"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Uri", "/x"),
                BROWSER,
            ],
        );
    }
    let log = server.log_containing("trusted_proxies");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not in [forward_auth] trusted_proxies"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN") && warnings[0].contains("127.0.0.1"),
        "{log}"
    );
    // A plain request from the same peer (no forwarding headers) says nothing.
    c.get("/healthz", &[]);
    c.get("/auth", &[BROWSER]);
    assert_eq!(
        server
            .log()
            .matches("not in [forward_auth] trusted_proxies")
            .count(),
        1
    );
}

#[test]
fn each_endpoint_reads_only_its_own_proxys_headers() {
    let (_dir, server) = start("");
    let c = server.client;
    // Caddy and Traefik pass a client's own X-Original-URL through, beside
    // the X-Forwarded-* they set: /auth ignores it.
    let res = c.get(
        "/auth",
        &[
            BROWSER,
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.test"),
            ("X-Forwarded-Uri", "/real"),
            ("X-Forwarded-Method", "GET"),
            ("X-Original-URL", "https://other.example.test/chosen"),
            ("X-Original-Method", "POST"),
        ],
    );
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login?rd=https%3A%2F%2Fapp.example.test%2Freal")
    );
    // nginx passes a client's X-Forwarded-* through: /auth/nginx reads
    // only X-Forwarded-Host and X-Forwarded-Server, which the README's
    // block sets, to check the URL's host (here they differ: no rules,
    // so the login redirect still names the URL nginx said).
    let res = c.get(
        "/auth/nginx",
        &[
            ("X-Original-URL", "https://app.example.test/real"),
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "other.example.test"),
            ("X-Forwarded-Uri", "/chosen"),
        ],
    );
    res.assert_challenges(false);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login?rd=https%3A%2F%2Fapp.example.test%2Freal")
    );
    // Only X-Forwarded-* on /auth/nginx: no original URL at all.
    let res = c.get(
        "/auth/nginx",
        &[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.test"),
        ],
    );
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
}
