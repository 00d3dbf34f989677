//! Sessions: records people can see and end, lifetimes, inactivity.

use crate::forward::{csrf, set_cookie, FA_CONFIG};
use crate::support::*;
use latch::Clock;
use serde_json::Value;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

/// Signs in through the login page as `user`; returns the cookie
/// (`latch_session=...`) and the whole `Set-Cookie`.
fn sign_in(
    c: &Client,
    user: &str,
    password: &str,
    remember: bool,
    agent: &str,
) -> (String, String) {
    let page = c.get("/login", &[BROWSER]);
    let (nonce, _) = set_cookie(&page, "latch_form").unwrap();
    let mut body = format!(
        "csrf={}&username={user}&password={password}",
        latch::redirect::encode_query_value(&csrf(&page.text()))
    );
    if remember {
        body.push_str("&remember=1");
    }
    let form_cookie = format!("latch_form={nonce}");
    let res = c.request(
        "POST",
        "/login",
        &[
            ("Origin", "http://auth.example.test"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &form_cookie),
            ("User-Agent", agent),
            ("X-Forwarded-For", "198.51.100.4"),
            BROWSER,
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 303, "{}", res.text());
    let (value, header) = set_cookie(&res, "latch_session").unwrap();
    (format!("latch_session={value}"), header.to_owned())
}

fn auth(c: &Client, cookie: &str) -> u16 {
    c.get("/auth", &[("Cookie", cookie)]).status
}

fn sessions(c: &Client, token: &str) -> Vec<Value> {
    let res = c.get("/api/sessions", &[("Authorization", &bearer(token))]);
    assert_eq!(res.status, 200, "{}", res.text());
    res.json().as_array().unwrap().clone()
}

fn start(extra: &str, clock: Clock) -> (TempDir, InProcess) {
    let dir = TempDir::new("sessions");
    let server = InProcess::start(&dir, &format!("{FA_CONFIG}{extra}"), clock);
    server.client().register("alice", "alice-password");
    server.client().register("bob", "bob-password");
    (dir, server)
}

#[test]
fn sessions_are_listed_and_ended_one_by_one() {
    let (_dir, server) = start("", Clock::frozen());
    let c = server.client();
    let (laptop, laptop_header) = sign_in(&c, "alice", "alice-password", false, "Laptop/1.0");
    let (phone, phone_header) = sign_in(&c, "alice", "alice-password", true, "Phone/2.0");
    assert!(laptop_header.contains("Max-Age=43200"), "{laptop_header}");
    assert!(phone_header.contains("Max-Age=2592000"), "{phone_header}");
    let (bobs, _) = sign_in(&c, "bob", "bob-password", false, "Bob/1");
    let token = c.token("alice", "alice-password");

    let list = sessions(&c, &token);
    assert_eq!(list.len(), 2, "{list:?}");
    let by_agent = |agent: &str| {
        list.iter()
            .find(|s| s["user_agent"] == agent)
            .unwrap_or_else(|| panic!("{agent} in {list:?}"))
            .clone()
    };
    let (l, p) = (by_agent("Laptop/1.0"), by_agent("Phone/2.0"));
    assert_eq!(l["remember_me"], false);
    assert_eq!(p["remember_me"], true);
    assert_eq!(l["address"], "198.51.100.4");
    assert_eq!(
        p["expires_at"].as_u64().unwrap() - p["created_at"].as_u64().unwrap(),
        30 * 86400
    );
    // An API key lists them too; the session cookie is no API credential.
    let key = c.new_key(&basic("alice", "alice-password"), "k");
    let res = c.get("/api/sessions", &[("Authorization", &bearer(&key))]);
    assert_eq!(res.json().as_array().unwrap().len(), 2);
    let res = c.get("/api/sessions", &[("Cookie", laptop.as_str())]);
    assert_eq!(res.status, 401);

    // Ending one refuses its cookie at once; the other keeps working.
    let id = l["id"].as_str().unwrap();
    assert_eq!(id.len(), 22);
    let path = format!("/api/sessions/{id}");
    let bob_token = c.token("bob", "bob-password");
    let res = c.request(
        "DELETE",
        &path,
        &[("Authorization", &bearer(&bob_token))],
        None,
    );
    assert_eq!(res.status, 404, "bob ends alice's session");
    assert_eq!(auth(&c, &laptop), 200);
    let res = c.request("DELETE", &path, &[("Authorization", &bearer(&token))], None);
    assert_eq!(res.status, 204);
    assert_eq!(auth(&c, &laptop), 401);
    assert_eq!(auth(&c, &phone), 200);
    assert_eq!(auth(&c, &bobs), 200);
    let res = c.request("DELETE", &path, &[("Authorization", &bearer(&token))], None);
    assert_eq!(res.status, 404, "ended twice");
    assert_eq!(sessions(&c, &token).len(), 1);
    // Bad ids: 404 with JSON, never a 500.
    for bad in [
        "x",
        "%00",
        &"A".repeat(23),
        &id.to_lowercase(),
        "..",
        "AAAAAAAAAAAAAAAAAAAAAB",
    ] {
        let res = c.request(
            "DELETE",
            &format!("/api/sessions/{bad}"),
            &[("Authorization", &bearer(&token))],
            None,
        );
        assert!(
            res.status == 404 || res.status == 400,
            "{bad}: {}",
            res.status
        );
        assert!(!res.error_code().is_empty());
    }
    let res = c.request(
        "POST",
        "/api/sessions",
        &[("Authorization", &bearer(&token))],
        None,
    );
    assert_eq!(res.status, 405);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn logout_everywhere_and_password_changes_end_every_session() {
    let clock = Clock::frozen();
    let (_dir, server) = start("", clock.clone());
    let c = server.client();
    let (first, _) = sign_in(&c, "alice", "alice-password", true, "A");
    let (second, _) = sign_in(&c, "alice", "alice-password", false, "B");
    let token = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/api/logout-all", &bearer(&token)).status, 200);
    assert_eq!(auth(&c, &first), 401);
    assert_eq!(auth(&c, &second), 401);
    let token = c.token("alice", "alice-password");
    assert!(sessions(&c, &token).is_empty());

    // A remembered session outlives session_ttl; pruning after that must
    // not revive it through a lost cutoff.
    let (third, _) = sign_in(&c, "alice", "alice-password", true, "C");
    clock.advance(1);
    assert_eq!(c.post_auth("/api/logout-all", &bearer(&token)).status, 200);
    clock.advance(2 * 86400);
    tokio_block_on(server.app.service.prune()).unwrap();
    assert_eq!(auth(&c, &third), 401);

    let (fourth, _) = sign_in(&c, "alice", "alice-password", false, "D");
    let token = c.token("alice", "alice-password");
    let res = c.request(
        "PUT",
        "/api/users/me/password",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"old_password":"alice-password","new_password":"alice-password-2"}"#),
    );
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(auth(&c, &fourth), 401);
    let token = c.token("alice", "alice-password-2");
    assert!(sessions(&c, &token).is_empty());
}

#[test]
fn an_idle_session_is_refused_and_last_use_is_kept() {
    // A use is noted for all to see at most every tenth of the window
    // (10 s here): a session in use is never taken for idle.
    let clock = Clock::frozen();
    let (dir, server) = start("session_inactivity = \"100s\"\n", clock.clone());
    let c = server.client();
    let (cookie, _) = sign_in(&c, "alice", "alice-password", false, "A");
    let created = clock.now();
    // Used within the window, it stays alive however long it lives.
    for _ in 0..3 {
        clock.advance(90);
        assert_eq!(auth(&c, &cookie), 200);
    }
    // Housekeeping writes the last use; one less than a minute after it
    // is kept in memory, and written at shutdown (found by review: it was
    // lost).
    server.app.service.flush_session_uses(false).unwrap();
    clock.advance(30);
    assert_eq!(auth(&c, &cookie), 200);
    let last = created + 3 * 90 + 30;
    let token = c.token("alice", "alice-password");
    let list = sessions(&c, &token);
    assert_eq!(list[0]["last_seen_at"], last);

    // Last use survives a restart once written (housekeeping, or the
    // flush at shutdown).
    let server = server.restart();
    let c = server.client();
    let list = sessions(&c, &token);
    assert_eq!(list[0]["last_seen_at"], last, "{list:?}");
    drop(dir);

    // Unused for longer than the window: refused, and no longer listed.
    clock.advance(101);
    assert_eq!(auth(&c, &cookie), 401);
    let token = c.token("alice", "alice-password");
    assert!(sessions(&c, &token).is_empty());
}

#[test]
fn remember_me_can_be_hidden() {
    let (_dir, server) = start("remember_me_ttl = 0\n", Clock::frozen());
    let c = server.client();
    let page = c.get("/login", &[BROWSER]).text();
    assert!(!page.contains("remember"), "{page}");
    // A forged field gives the ordinary lifetime.
    let (_, header) = sign_in(&c, "alice", "alice-password", true, "A");
    assert!(header.contains("Max-Age=43200"), "{header}");
    let (_dir2, server2) = start("", Clock::frozen());
    let page = server2.client().get("/login", &[BROWSER]).text();
    assert!(
        page.contains(r#"<input type="checkbox" id="remember" name="remember" value="1">"#),
        "{page}"
    );
    assert!(page.contains(r#"<label for="remember">Remember me for 30 days</label>"#));
}

#[test]
fn the_cli_lists_and_ends_sessions() {
    let dir = TempDir::new("sessions-cli");
    let server = Server::start(&dir, FA_CONFIG);
    let c = server.client();
    c.register("alice", "alice-password");
    let (first, _) = sign_in(&c, "alice", "alice-password", false, "Firefox/1");
    let (second, _) = sign_in(&c, "alice", "alice-password", false, "Chromium/2");
    let (status, out, err) = latch_with(&["user", "sessions", "alice"], &server.config_path);
    assert!(status.success(), "{err}");
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains("Firefox/1") && out.contains("Chromium/2"),
        "{out}"
    );
    assert!(out.contains("198.51.100.4"), "{out}");
    // Session ids are base64url: some start with `-`, which must still
    // read as the value of --revoke.
    let id = out
        .lines()
        .find(|l| l.contains("Firefox/1"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (status, out, err) = latch_with(
        &["user", "sessions", "alice", "--revoke", &id],
        &server.config_path,
    );
    assert!(status.success(), "{err}");
    assert!(
        out.contains(&format!("ended session {id} of alice")),
        "{out}"
    );
    assert_eq!(auth(&c, &first), 401);
    assert_eq!(auth(&c, &second), 200);
    let (status, _, err) = latch_with(
        &["user", "sessions", "alice", "--revoke", &id],
        &server.config_path,
    );
    assert!(!status.success());
    assert!(err.contains("has no session"), "{err}");
    let (status, _, err) = latch_with(
        &[
            "user",
            "sessions",
            "alice",
            "--revoke",
            "-AAAAAAAAAAAAAAAAAAAAA",
        ],
        &server.config_path,
    );
    assert!(!status.success());
    assert!(err.contains("has no session"), "{err}");
    let (status, _, err) = latch_with(
        &["user", "sessions", "alice", "--revoke", "nope"],
        &server.config_path,
    );
    assert!(!status.success());
    assert!(
        err.starts_with("latch: invalid value 'nope' for '--revoke <ID>'"),
        "{err}"
    );
    assert!(err.contains("For more information, try '--help'"), "{err}");
    let (status, out, _) = latch_with(&["user", "sessions", "alice", "--all"], &server.config_path);
    assert!(status.success());
    assert!(out.contains("ended 1 sessions of alice"), "{out}");
    assert_eq!(auth(&c, &second), 401);
}
