//! Forward auth and the login page, against the proxy contracts: the
//! headers Traefik, Caddy and nginx send, sent here by hand. (The real
//! nginx and Caddy are in `proxies.rs`, the real browser in `browser.rs`.)

use crate::support::*;

/// latch at auth.example.test, protecting *.example.test over plain http.
pub const FA_CONFIG: &str = "public_url = \"http://auth.example.test\"
[forward_auth]
cookie_domain = \"example.test\"
cookie_secure = false
";

const ORIGIN: (&str, &str) = ("Origin", "http://auth.example.test");
const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

/// The `name=value` of the first `Set-Cookie` for `name`, and the whole header.
pub fn set_cookie<'a>(res: &'a Response, name: &str) -> Option<(&'a str, &'a str)> {
    res.headers_named("set-cookie").into_iter().find_map(|h| {
        let value = h.strip_prefix(&format!("{name}="))?;
        Some((value.split(';').next().unwrap(), h))
    })
}

/// The hidden `csrf` field of a page.
pub fn csrf(page: &str) -> String {
    let start =
        page.find(r#"name="csrf" value=""#).expect("a form token") + r#"name="csrf" value=""#.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// A value percent-encoded for a form body or a query.
pub fn enc(text: &str) -> String {
    latch::redirect::encode_query_value(text)
}

/// Posts a form of latch's pages from a browser on latch's own origin,
/// with these cookies.
pub fn post_form(c: &Client, path: &str, cookies: &str, body: &str) -> Response {
    c.request(
        "POST",
        path,
        &[
            ORIGIN,
            BROWSER,
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", cookies),
        ],
        Some(body.as_bytes()),
    )
}

/// A browser session: the form cookie and token from `GET /login`.
pub struct Form {
    pub cookie: String,
    pub token: String,
}

pub fn open_login(c: &Client, query: &str) -> Form {
    let res = c.get(&format!("/login{query}"), &[BROWSER]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let (nonce, header) = set_cookie(&res, "latch_form").expect("a form cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    Form {
        cookie: format!("latch_form={nonce}"),
        token: csrf(&res.text()),
    }
}

/// Posts the login form; returns the response.
pub fn submit_login(
    c: &Client,
    form: &Form,
    username: &str,
    password: &str,
    rd: Option<&str>,
    extra: &[(&str, &str)],
) -> Response {
    let mut body = format!(
        "csrf={}&username={}&password={}",
        latch::redirect::encode_query_value(&form.token),
        latch::redirect::encode_query_value(username),
        latch::redirect::encode_query_value(password)
    );
    if let Some(rd) = rd {
        body.push_str(&format!("&rd={}", latch::redirect::encode_query_value(rd)));
    }
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", form.cookie.as_str()),
        BROWSER,
    ];
    headers.extend_from_slice(extra);
    c.request("POST", "/login", &headers, Some(body.as_bytes()))
}

/// Signs in through the login page; returns `latch_session=<token>`.
pub fn session(c: &Client, username: &str, password: &str) -> String {
    let form = open_login(c, "");
    let res = submit_login(c, &form, username, password, None, &[ORIGIN]);
    assert_eq!(res.status, 303, "{}", res.text());
    let (value, _) = set_cookie(&res, "latch_session").expect("a session cookie");
    format!("latch_session={value}")
}

fn start() -> (TempDir, InProcess) {
    let dir = TempDir::new("fwd");
    let server = InProcess::new(&dir, FA_CONFIG);
    let c = server.client();
    c.register("alice", "alice-password");
    server.set_groups("alice", &["admins", "media"]);
    c.post_json(
        "/api/users",
        &json!({"username": "bob", "password": "bob-password", "email": "bob@example.test"}),
        &[],
    );
    (dir, server)
}

/// Headers Traefik sends for GET https://app.example.test/path?x=1.
fn traefik(method: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("X-Forwarded-Method", method),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.test"),
        ("X-Forwarded-Uri", "/path?x=1"),
        ("X-Forwarded-For", "203.0.113.7"),
    ]
}

const LOGIN_WITH_RD: &str =
    "http://auth.example.test/login?rd=https%3A%2F%2Fapp.example.test%2Fpath%3Fx%3D1";

fn with<'a>(
    mut base: Vec<(&'a str, &'a str)>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.extend_from_slice(extra);
    base
}

#[test]
fn traefik_and_caddy_contract_unauthenticated() {
    let (_dir, server) = start();
    let c = server.client();
    // A browser is redirected to the login page with the original URL.
    let res = c.get("/auth", &with(traefik("GET"), &[BROWSER]));
    assert_eq!(res.status, 302);
    assert_eq!(res.header("location"), Some(LOGIN_WITH_RD));
    let res = c.get("/auth", &with(traefik("HEAD"), &[BROWSER]));
    assert_eq!(res.status, 302);
    // Other methods get 303 so the browser follows with GET.
    let res = c.get("/auth", &with(traefik("POST"), &[BROWSER]));
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some(LOGIN_WITH_RD));
    // Scripts get a 401 with the challenges, and the login page named.
    for extra in [&[("Accept", "application/json")][..], &[]] {
        let res = c.get("/auth", &with(traefik("GET"), extra));
        res.assert_challenges(false);
        assert_eq!(res.header("location"), Some(LOGIN_WITH_RD), "{extra:?}");
    }
    // A page's fetch or XHR gets the 401 too, with no Basic challenge (it
    // would pop up a password dialog on the app's site).
    for extra in [
        &[BROWSER, ("X-Requested-With", "XMLHttpRequest")][..],
        &[("Sec-Fetch-Mode", "cors"), ("Accept", "*/*")],
    ] {
        let res = c.get("/auth", &with(traefik("GET"), extra));
        res.assert_browser_challenge(false);
        assert_eq!(res.header("location"), Some(LOGIN_WITH_RD), "{extra:?}");
    }
    // A refused token: the same, with invalid_token for scripts.
    let res = c.get(
        "/auth",
        &with(traefik("GET"), &[("Authorization", "Bearer eyJ.bad.token")]),
    );
    res.assert_challenges(true);
    let res = c.get(
        "/auth",
        &with(
            traefik("GET"),
            &[BROWSER, ("Cookie", "latch_session=eyJ.bad.token")],
        ),
    );
    assert_eq!(res.status, 302);
    // Any method is accepted on /auth itself.
    let res = c.request("POST", "/auth", &with(traefik("GET"), &[BROWSER]), None);
    assert_eq!(res.status, 302);
}

#[test]
fn traefik_and_caddy_contract_authenticated() {
    let (_dir, server) = start();
    let c = server.client();
    let cookie = session(&c, "alice", "alice-password");
    let token = c.token("alice", "alice-password");
    let key = c.new_key(&bearer(&token), "k");
    let credentials = [
        ("Cookie", cookie.clone()),
        ("Cookie", format!("theme=dark; {cookie}; other=1")),
        ("Authorization", bearer(&token)),
        ("Authorization", basic("alice", "alice-password")),
        ("Authorization", basic(&token, "")),
        ("Authentication-Token", token.clone()),
        ("Authorization", bearer(&key)),
    ];
    for (name, value) in &credentials {
        let res = c.get(
            "/auth",
            &with(traefik("GET"), &[BROWSER, (name, value.as_str())]),
        );
        assert_eq!(res.status, 200, "{name}: {value}: {}", res.text());
        assert_eq!(res.header("remote-user"), Some("alice"));
        assert_eq!(res.header("remote-groups"), Some("admins,media"));
        assert_eq!(res.header("remote-email"), Some(""));
        assert_eq!(res.header("remote-name"), Some("alice"));
    }
    let bob = session(&c, "bob", "bob-password");
    let res = c.get("/auth", &[("Cookie", &bob)]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("remote-user"), Some("bob"));
    assert_eq!(res.header("remote-groups"), Some(""));
    assert_eq!(res.header("remote-email"), Some("bob@example.test"));

    // Groups: any of the listed ones.
    for (query, alice, bob_status) in [
        ("?group=admins", 200, 403),
        ("?group=ops", 403, 403),
        ("?group=ops&group=media", 200, 403),
        ("?group=", 200, 200),
    ] {
        let res = c.get(&format!("/auth{query}"), &[("Cookie", &cookie)]);
        assert_eq!(res.status, alice, "alice {query}");
        let res = c.get(&format!("/auth{query}"), &[("Cookie", &bob)]);
        assert_eq!(res.status, bob_status, "bob {query}");
        if bob_status == 403 {
            assert_eq!(res.error_code(), "forbidden");
        }
    }
}

#[test]
fn nginx_contract_never_redirects() {
    let (_dir, server) = start();
    let c = server.client();
    let nginx = [
        ("X-Original-URL", "https://app.example.test/path?x=1"),
        ("X-Original-Method", "GET"),
    ];
    let res = c.get("/auth/nginx", &with(nginx.to_vec(), &[BROWSER]));
    res.assert_browser_challenge(false);
    assert_eq!(res.header("location"), Some(LOGIN_WITH_RD));
    let res = c.get(
        "/auth/nginx",
        &with(nginx.to_vec(), &[BROWSER, ("Cookie", "latch_session=nope")]),
    );
    res.assert_browser_challenge(true);
    let res = c.get("/auth/nginx", &with(nginx.to_vec(), &[]));
    res.assert_challenges(false);
    let cookie = session(&c, "alice", "alice-password");
    let res = c.get("/auth/nginx", &with(nginx.to_vec(), &[("Cookie", &cookie)]));
    assert_eq!(res.status, 200);
    assert_eq!(res.header("remote-user"), Some("alice"));
    assert_eq!(
        c.get("/auth/nginx?group=ops", &[("Cookie", &cookie)])
            .status,
        403
    );
}

#[test]
fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let dir = TempDir::new("untrusted");
    let server = InProcess::new(
        &dir,
        &format!("{FA_CONFIG}trusted_proxies = [\"10.0.0.0/8\"]\n"),
    );
    let c = server.client();
    let res = c.get("/auth", &with(traefik("POST"), &[BROWSER]));
    // No rd from headers we do not believe, and the method is our own.
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
    let res = c.get(
        "/auth/nginx",
        &[("X-Original-URL", "https://evil.test/"), BROWSER],
    );
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
}

#[test]
fn login_page_sets_the_session_cookie_and_follows_only_safe_rd() {
    let (_dir, server) = start();
    let c = server.client();
    let form = open_login(&c, "?rd=https%3A%2F%2Fapp.example.test%2Fx");
    let page = c
        .get("/login?rd=https%3A%2F%2Fapp.example.test%2Fx", &[BROWSER])
        .text();
    assert!(
        page.contains(r#"name="rd" value="https://app.example.test/x""#),
        "{page}"
    );
    assert!(
        page.contains(r#"<label for="username">"#)
            && page.contains(r#"autocomplete="current-password""#)
    );
    assert!(!page.contains("<script"), "{page}");

    let res = submit_login(
        &c,
        &form,
        "alice",
        "alice-password",
        Some("https://app.example.test/x"),
        &[ORIGIN],
    );
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("https://app.example.test/x"));
    let (token, header) = set_cookie(&res, "latch_session").unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Domain=example.test",
        "Max-Age=43200",
    ] {
        assert!(header.contains(attr), "{attr} missing: {header}");
    }
    assert!(!header.contains("Secure"), "{header}");
    // The cookie holds a token of the usual format, with the session lifetime.
    let claims: Value = serde_json::from_slice(
        &latch::crypto::b64url_decode(token.split('.').nth(1).unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        43200
    );
    // A session token, not an API token: no use on the API.
    assert_eq!(claims["aud"], "session");
    c.resource(&bearer(token)).assert_challenges(true);

    let good = [
        "https://app.example.test/x",
        "https://example.test/",
        "http://app.example.test/plain",
        "https://deep.sub.example.test:8443/p?q=1",
    ];
    for rd in good {
        let res = submit_login(&c, &form, "alice", "alice-password", Some(rd), &[ORIGIN]);
        assert_eq!(res.header("location"), Some(rd), "{rd}");
    }
    let bad = [
        "//evil.test",
        "/\\evil.test",
        "https://evil.test",
        "https://example.test.evil.test",
        "https://evilexample.test",
        "https://example.test@evil.test",
        "javascript:alert(1)",
        "https://app.example.test\\@evil.test",
        "/relative",
        "",
    ];
    for rd in bad {
        let res = submit_login(&c, &form, "alice", "alice-password", Some(rd), &[ORIGIN]);
        assert_eq!(res.status, 303, "{rd}");
        assert_eq!(
            res.header("location"),
            Some("http://auth.example.test/"),
            "{rd:?}"
        );
    }
    // Already signed in: the login page sends a browser straight back.
    let cookie = format!("latch_session={token}");
    let res = c.get(
        "/login?rd=https%3A%2F%2Fapp.example.test%2Fy",
        &[BROWSER, ("Cookie", &cookie)],
    );
    assert_eq!(res.status, 302);
    assert_eq!(res.header("location"), Some("https://app.example.test/y"));
    let res = c.get(
        "/login?rd=https%3A%2F%2Fevil.test%2F",
        &[BROWSER, ("Cookie", &cookie)],
    );
    assert_eq!(res.status, 200);
}

#[test]
fn scheme_downgrade_is_refused_when_the_cookie_is_secure() {
    let dir = TempDir::new("secure");
    let server = InProcess::new(
        &dir,
        "public_url = \"https://auth.example.test\"\n[forward_auth]\n\
         cookie_domain = \"example.test\"\n",
    );
    let c = server.client();
    c.register("alice", "alice-password");
    let form = open_login(&c, "");
    let origin = ("Origin", "https://auth.example.test");
    let res = submit_login(
        &c,
        &form,
        "alice",
        "alice-password",
        Some("http://app.example.test/"),
        &[origin],
    );
    assert_eq!(res.header("location"), Some("https://auth.example.test/"));
    let (_, header) = set_cookie(&res, "latch_session").unwrap();
    assert!(header.contains("; Secure"), "{header}");
    let res = submit_login(
        &c,
        &form,
        "alice",
        "alice-password",
        Some("https://app.example.test/"),
        &[origin],
    );
    assert_eq!(res.header("location"), Some("https://app.example.test/"));
}

#[test]
fn failed_logins_rerender_the_form_with_one_message() {
    let (_dir, server) = start();
    let c = server.client();
    let form = open_login(&c, "");
    let mut bodies = Vec::new();
    for (user, password) in [
        ("alice", "wrong-password"),
        ("nobody", "alice-password"),
        ("", ""),
    ] {
        let res = submit_login(
            &c,
            &form,
            user,
            password,
            Some("https://app.example.test/"),
            &[ORIGIN],
        );
        assert_eq!(res.status, 401, "{user}");
        assert!(set_cookie(&res, "latch_session").is_none());
        assert_eq!(
            res.headers_named("www-authenticate"),
            vec![r#"Bearer realm="latch""#]
        );
        let text = res.text();
        assert!(text.contains("Invalid username or password."), "{text}");
        assert!(
            text.contains(r#"value="https://app.example.test/""#),
            "rd kept: {text}"
        );
        // Apart from the fresh form token, the pages are identical.
        bodies.push(text.replace(&csrf(&text), "TOKEN"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
}

#[test]
fn cross_site_form_posts_are_refused() {
    let (_dir, server) = start();
    let c = server.client();
    let form = open_login(&c, "");
    let other = open_login(&c, "");
    /// A name, the form as sent, extra headers.
    type Case<'a> = (&'a str, Form, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "foreign origin",
            Form {
                cookie: form.cookie.clone(),
                token: form.token.clone(),
            },
            vec![("Origin", "http://evil.test")],
        ),
        (
            "sibling origin",
            Form {
                cookie: form.cookie.clone(),
                token: form.token.clone(),
            },
            vec![("Origin", "http://app.example.test")],
        ),
        (
            "null origin",
            Form {
                cookie: form.cookie.clone(),
                token: form.token.clone(),
            },
            vec![("Origin", "null")],
        ),
        (
            "foreign referer",
            Form {
                cookie: form.cookie.clone(),
                token: form.token.clone(),
            },
            vec![("Referer", "http://evil.test/page")],
        ),
        (
            "no token",
            Form {
                cookie: form.cookie.clone(),
                token: String::new(),
            },
            vec![ORIGIN],
        ),
        (
            "forged token",
            Form {
                cookie: form.cookie.clone(),
                token: "1.abc.def".into(),
            },
            vec![ORIGIN],
        ),
        (
            "token of another form",
            Form {
                cookie: form.cookie.clone(),
                token: other.token.clone(),
            },
            vec![ORIGIN],
        ),
        (
            "no form cookie",
            Form {
                cookie: String::new(),
                token: form.token.clone(),
            },
            vec![ORIGIN],
        ),
    ];
    for (name, f, extra) in cases {
        let res = submit_login(&c, &f, "alice", "alice-password", None, &extra);
        assert_eq!(res.status, 403, "{name}: {}", res.text());
        assert!(set_cookie(&res, "latch_session").is_none(), "{name}");
    }
    // The real form, from our own origin or with no origin header at all.
    assert_eq!(
        submit_login(&c, &form, "alice", "alice-password", None, &[ORIGIN]).status,
        303
    );
    assert_eq!(
        submit_login(
            &c,
            &form,
            "alice",
            "alice-password",
            None,
            &[("Referer", "http://auth.example.test/login?rd=x")]
        )
        .status,
        303
    );
    assert_eq!(
        submit_login(&c, &form, "alice", "alice-password", None, &[]).status,
        303
    );
    // The JSON login on the same path still works, told apart by Content-Type.
    let res = c.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice-password"}),
        &[],
    );
    assert_eq!(res.status, 200);
    assert!(res.json()["token"].is_string());
}

#[test]
fn the_signed_in_page_and_logout() {
    let (_dir, server) = start();
    let c = server.client();
    let res = c.get("/", &[BROWSER]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
    let cookie = session(&c, "alice", "alice-password");
    let res = c.get("/", &[BROWSER, ("Cookie", &cookie)]);
    assert_eq!(res.status, 200);
    let page = res.text();
    assert!(
        page.contains(r#"<strong id="user">alice</strong>"#),
        "{page}"
    );
    let token = csrf(&page);
    let (form_cookie, _) = set_cookie(&res, "latch_form").unwrap();
    let cookies = format!("{cookie}; latch_form={form_cookie}");
    // The session cookie is no API credential.
    c.get("/api/users/me", &[("Cookie", &cookie)])
        .assert_challenges(false);
    let res = c.request("POST", "/api/logout-all", &[("Cookie", &cookie)], None);
    res.assert_challenges(false);
    // A cross-site logout form is refused and changes nothing.
    let body = format!("csrf={}", latch::redirect::encode_query_value(&token));
    let form_ct = ("Content-Type", "application/x-www-form-urlencoded");
    let res = c.request(
        "POST",
        "/logout",
        &[
            form_ct,
            ("Cookie", &cookies),
            ("Origin", "http://evil.test"),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 403);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
    // Our own logout form revokes the session and clears the cookie.
    let res = c.request(
        "POST",
        "/logout",
        &[form_ct, ("Cookie", &cookies), ORIGIN],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
    let (value, header) = set_cookie(&res, "latch_session").unwrap();
    assert_eq!(value, "");
    assert!(
        header.contains("Max-Age=0") && header.contains("Domain=example.test"),
        "{header}"
    );
    // The old cookie value is dead everywhere.
    assert_eq!(
        c.get(
            "/auth",
            &with(traefik("GET"), &[BROWSER, ("Cookie", &cookie)])
        )
        .status,
        302
    );
    c.get("/auth/nginx", &[("Cookie", &cookie)])
        .assert_challenges(true);
    // (The API never reads the cookie at all.)
    c.get("/api/resource", &[("Cookie", &cookie)])
        .assert_challenges(false);
    assert_eq!(c.get("/", &[BROWSER, ("Cookie", &cookie)]).status, 302);

    // An API-style logout with the cookie revokes it and clears it too.
    let cookie = session(&c, "alice", "alice-password");
    let res = c.request("POST", "/logout", &[("Cookie", &cookie)], None);
    assert_eq!(res.status, 200);
    assert_eq!(set_cookie(&res, "latch_session").unwrap().0, "");
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 401);
    // Logout everywhere kills sessions too.
    let cookie = session(&c, "alice", "alice-password");
    let token = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/api/logout-all", &bearer(&token)).status, 200);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 401);
}
