//! The account page: who you are, sessions, API keys, password, each form
//! with the login page's protections.

use crate::forward::{csrf, enc, post_form, session, set_cookie, FA_CONFIG};
use crate::support::*;
use latch::Clock;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const ORIGIN: (&str, &str) = ("Origin", "http://auth.example.test");

fn start(extra: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new("account");
    let server = InProcess::start(&dir, &format!("{FA_CONFIG}{extra}"), Clock::system());
    server.client().register("alice", "alice-password");
    server.set_groups("alice", &["admins", "media"]);
    server.client().register("bob", "bob-password");
    (dir, server)
}

/// The account page as `cookie` sees it: (page, form cookie, form token).
fn open(c: &Client, cookie: &str) -> (String, String, String) {
    let res = c.get("/", &[BROWSER, ("Cookie", cookie)]);
    assert_eq!(res.status, 200, "{}", res.text());
    let page = res.text();
    let form = match set_cookie(&res, "latch_form") {
        Some((nonce, _)) => format!("latch_form={nonce}"),
        None => String::new(),
    };
    let token = csrf(&page);
    (page, form, token)
}

/// Posts an account form with the session and form cookies.
fn post(c: &Client, path: &str, cookie: &str, form: &str, fields: &str) -> Response {
    post_form(c, path, &format!("{cookie}; {form}"), fields)
}

fn jti_of(cookie: &str) -> String {
    let token = cookie.trim_start_matches("latch_session=");
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&latch::crypto::b64url_decode(payload.as_bytes()).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

#[test]
fn the_page_shows_the_user_groups_sessions_and_keys() {
    let (_dir, server) = start("[ui]\ntitle = \"Homelab <gate>\"\n");
    let c = server.client();
    let first = session(&c, "alice", "alice-password");
    let second = session(&c, "alice", "alice-password");
    c.new_key(&basic("alice", "alice-password"), "backup-script");
    let res = c.get("/", &[BROWSER, ("Cookie", &first)]);
    let page = res.text();
    assert!(
        page.contains(r#"<strong id="user">alice</strong>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<span id="groups">admins, media</span>"#),
        "{page}"
    );
    assert!(
        page.contains("<title>Your account · Homelab &lt;gate&gt;</title>"),
        "{page}"
    );
    assert!(page.contains(r#"<p class="product" id="product">Homelab &lt;gate&gt;</p>"#));
    // Both sessions, this one marked.
    let this = format!(r#"<li id="session-{}">"#, jti_of(&first));
    let other = format!(r#"<li id="session-{}">"#, jti_of(&second));
    let this_item = &page[page.find(&this).expect("this session")..];
    let this_item = &this_item[..this_item.find("</li>").unwrap()];
    assert!(this_item.contains("(this session)"), "{this_item}");
    let other_item = &page[page.find(&other).expect("the other session")..];
    let other_item = &other_item[..other_item.find("</li>").unwrap()];
    assert!(!other_item.contains("(this session)"), "{other_item}");
    assert!(this_item.contains("; ends "), "{this_item}");
    assert!(page.contains("<strong>backup-script</strong>"), "{page}");
    // Every input has its label; no script; a strict policy.
    for id in ["key-name", "key-password", "old-password", "new-password"] {
        assert!(page.contains(&format!(r#"<label for="{id}">"#)), "{id}");
        assert!(page.contains(&format!(r#"id="{id}""#)), "{id}");
    }
    assert!(!page.contains("<script"));
    let csp = res.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    // The login page carries the name too.
    let login = c.get("/login", &[BROWSER]).text();
    assert!(
        login.contains("<title>Sign in · Homelab &lt;gate&gt;</title>"),
        "{login}"
    );
    // Not signed in: to the login page.
    let res = c.get("/", &[BROWSER]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
}

#[test]
fn sessions_are_ended_from_the_page() {
    let (_dir, server) = start("");
    let c = server.client();
    let here = session(&c, "alice", "alice-password");
    let there = session(&c, "alice", "alice-password");
    let bobs = session(&c, "bob", "bob-password");
    let (_, form, token) = open(&c, &here);
    // Another user's session: 404, and it keeps working.
    let fields = format!("csrf={}&id={}", enc(&token), jti_of(&bobs));
    let res = post(&c, "/account/sessions/end", &here, &form, &fields);
    assert_eq!(res.status, 404);
    assert_eq!(c.get("/auth", &[("Cookie", &bobs)]).status, 200);
    // Another of mine: ended, back to the page.
    let fields = format!("csrf={}&id={}", enc(&token), jti_of(&there));
    let res = post(&c, "/account/sessions/end", &here, &form, &fields);
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("http://auth.example.test/"));
    assert_eq!(c.get("/auth", &[("Cookie", &there)]).status, 401);
    assert_eq!(c.get("/auth", &[("Cookie", &here)]).status, 200);
    let (page, _, _) = open(&c, &here);
    assert!(!page.contains(&jti_of(&there)), "{page}");
    // This one: signed out, the cookie cleared.
    let fields = format!("csrf={}&id={}", enc(&token), jti_of(&here));
    let res = post(&c, "/account/sessions/end", &here, &form, &fields);
    assert_eq!(res.status, 303);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
    let (_, cleared) = set_cookie(&res, "latch_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(c.get("/auth", &[("Cookie", &here)]).status, 401);
}

#[test]
fn keys_are_made_with_the_password_and_revoked_from_the_page() {
    let (_dir, server) = start("");
    let c = server.client();
    let cookie = session(&c, "alice", "alice-password");
    let (_, form, token) = open(&c, &cookie);
    let fields = |name: &str, password: &str| {
        format!(
            "csrf={}&name={}&password={}",
            enc(&token),
            enc(name),
            enc(password)
        )
    };
    // A wrong password: the page again, with why, and no key.
    let res = post(&c, "/account/keys", &cookie, &form, &fields("k", "wrong"));
    assert_eq!(res.status, 403);
    assert!(res
        .text()
        .contains("The password is wrong; no key was made."));
    let res = post(
        &c,
        "/account/keys",
        &cookie,
        &form,
        &fields("", "alice-password"),
    );
    assert_eq!(res.status, 400);
    assert!(res.text().contains(r#"role="alert""#), "{}", res.text());
    // The right one: the key, shown once.
    let res = post(
        &c,
        "/account/keys",
        &cookie,
        &form,
        &fields("deploy", "alice-password"),
    );
    assert_eq!(res.status, 201, "{}", res.text());
    let page = res.text();
    let start = page.find(r#"<code id="new-key">"#).unwrap() + r#"<code id="new-key">"#.len();
    let key = &page[start..start + page[start..].find('<').unwrap()];
    assert!(key.starts_with("latch_"), "{key}");
    assert_eq!(c.resource(&bearer(key)).status, 200);
    let (page, _, _) = open(&c, &cookie);
    assert!(page.contains("<strong>deploy</strong>"));
    assert!(!page.contains(key), "the key is shown only once");
    // Revoked from the page.
    let id = page
        .split(r#"<li id="key-"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let res = post(
        &c,
        "/account/keys/revoke",
        &cookie,
        &form,
        &format!("csrf={}&id={id}", enc(&token)),
    );
    assert_eq!(res.status, 303);
    c.resource(&bearer(key)).assert_challenges(true);
    let res = post(
        &c,
        "/account/keys/revoke",
        &cookie,
        &form,
        &format!("csrf={}&id={id}", enc(&token)),
    );
    assert_eq!(res.status, 404);
}

#[test]
fn the_password_is_changed_from_the_page() {
    let (_dir, server) = start("");
    let c = server.client();
    let cookie = session(&c, "alice", "alice-password");
    let other = session(&c, "alice", "alice-password");
    let (_, form, token) = open(&c, &cookie);
    let fields = |old: &str, new: &str| {
        format!(
            "csrf={}&old_password={}&new_password={}",
            enc(&token),
            enc(old),
            enc(new)
        )
    };
    let res = post(
        &c,
        "/account/password",
        &cookie,
        &form,
        &fields("wrong", "new-password-1"),
    );
    assert_eq!(res.status, 403);
    assert!(
        res.text().contains("The old password is wrong."),
        "{}",
        res.text()
    );
    let res = post(
        &c,
        "/account/password",
        &cookie,
        &form,
        &fields("alice-password", "x"),
    );
    assert_eq!(res.status, 400);
    let res = post(
        &c,
        "/account/password",
        &cookie,
        &form,
        &fields("alice-password", "new-password-1"),
    );
    assert_eq!(res.status, 303);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
    for s in [&cookie, &other] {
        assert_eq!(c.get("/auth", &[("Cookie", s)]).status, 401);
    }
    c.assert_alive("alice", "new-password-1");
}

#[test]
fn account_forms_need_the_form_token_the_origin_and_a_session() {
    let (_dir, server) = start("");
    let c = server.client();
    let cookie = session(&c, "alice", "alice-password");
    let other = session(&c, "alice", "alice-password");
    let (_, form, token) = open(&c, &cookie);
    let good = format!("csrf={}&id={}", enc(&token), jti_of(&other));
    let cookies = format!("{cookie}; {form}");
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, u16);
    let cases: [Case; 5] = [
        // No form token.
        (&[ORIGIN, form_type, ("Cookie", &cookies)], "id=x", 403),
        // Another site.
        (
            &[
                ("Origin", "https://evil.example"),
                form_type,
                ("Cookie", &cookies),
            ],
            &good,
            403,
        ),
        // No session cookie: who would it be?
        (&[ORIGIN, form_type, ("Cookie", &form)], &good, 401),
        // Not a form.
        (
            &[
                ORIGIN,
                ("Content-Type", "application/json"),
                ("Cookie", &cookies),
            ],
            "{}",
            415,
        ),
        // A broken form.
        (&[ORIGIN, form_type, ("Cookie", &cookies)], "csrf=%zz", 400),
    ];
    for (headers, body, status) in cases {
        for path in [
            "/account/sessions/end",
            "/account/keys",
            "/account/keys/revoke",
            "/account/password",
        ] {
            let res = c.request("POST", path, headers, Some(body.as_bytes()));
            assert_eq!(
                res.status,
                status,
                "{path} {headers:?} {body}: {}",
                res.text()
            );
        }
    }
    // The other session survived all of it.
    assert_eq!(c.get("/auth", &[("Cookie", &other)]).status, 200);
    for (method, path, status) in [
        ("GET", "/account/keys", 404),
        ("POST", "/account", 404),
        ("POST", "/account/nope", 404),
        ("DELETE", "/account/password", 404),
    ] {
        let res = c.request(method, path, &[("Cookie", &cookie)], None);
        assert_eq!(res.status, status, "{method} {path}");
    }
    c.assert_alive("alice", "alice-password");
}
