//! The second factor over HTTP, in process with a frozen clock (moved,
//! never slept): enrolment, codes at sign-in in every form (the JSON
//! login, `X-Latch-OTP` beside Basic, the code form after the login
//! page), replays, recovery codes, brute force, step-up on a `two_factor`
//! rule, and the secret sealed at rest.

use crate::forward::{
    csrf, enc, open_login, post_form, session, set_cookie, submit_login, FA_CONFIG,
};
use crate::support::*;
use latch::otp::{self, Secret};
use latch::Clock;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const ORIGIN: (&str, &str) = ("Origin", "http://auth.example.test");

/// Three wrong guesses ban for ten minutes.
const REGULATION: &str = "[regulation]\nmax_retries = 3\nban_time = 600\nfind_time = 600\n";

/// A `two_factor` rule on app.example.test/secure, one_factor elsewhere.
const RULES: &str = "[access_control]
default_policy = \"one_factor\"
[[access_control.rules]]
domain = \"app.example.test\"
resources = [\"^/secure(/.*)?$\"]
policy = \"two_factor\"
";

struct Setup {
    _dir: TempDir,
    server: InProcess,
    clock: Clock,
}

fn start(extra: &str) -> Setup {
    let dir = TempDir::new("totp");
    let clock = Clock::frozen();
    let config = format!("{FA_CONFIG}{REGULATION}{RULES}{extra}");
    let server = InProcess::start(&dir, &config, clock.clone());
    server.client().register("alice", "alice-password");
    server.client().register("carol", "carol-password");
    Setup {
        _dir: dir,
        server,
        clock,
    }
}

impl Setup {
    fn c(&self) -> Client {
        self.server.client()
    }

    /// The code for `secret` now.
    fn code(&self, secret: &Secret) -> String {
        format!("{:06}", otp::code_at(secret, otp::step(self.clock.now())))
    }

    /// Moves to the next time step (a code is good once per step).
    fn next_step(&self) {
        self.clock.advance(otp::PERIOD as i64);
    }

    /// Enrols `user` over the API; returns the secret and recovery codes.
    fn enrol(&self, user: &str, password: &str) -> (Secret, Vec<String>) {
        let c = self.c();
        let auth = basic(user, password);
        let res = c.post_json("/api/totp", &json!({}), &[("Authorization", &auth)]);
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        let text = body["secret"].as_str().unwrap();
        let uri = body["otpauth_uri"].as_str().unwrap();
        assert!(
            uri.starts_with(&format!("otpauth://totp/latch:{user}?secret={text}")),
            "{uri}"
        );
        assert!(
            uri.ends_with("&issuer=latch&algorithm=SHA1&digits=6&period=30"),
            "{uri}"
        );
        let secret = secret_from(text);
        // Until confirmed, the password alone still signs in.
        assert_eq!(json_login(&c, user, password, None).status, 200);
        let res = c.post_json(
            "/api/totp/confirm",
            &json!({"code": self.code(&secret)}),
            &[("Authorization", &auth)],
        );
        assert_eq!(res.status, 200, "{}", res.text());
        let codes: Vec<String> = res.json()["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10);
        self.next_step();
        (secret, codes)
    }
}

fn json_login(c: &Client, user: &str, password: &str, otp: Option<&str>) -> Response {
    let mut body = json!({"username": user, "password": password});
    if let Some(otp) = otp {
        body["otp"] = json!(otp);
    }
    c.post_json("/login", &body, &[])
}

/// The `amr` claim of a token.
fn amr(token: &str) -> Value {
    let payload = token
        .trim_start_matches("latch_session=")
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value =
        serde_json::from_slice(&latch::crypto::b64url_decode(payload.as_bytes()).unwrap()).unwrap();
    claims["amr"].clone()
}

#[test]
fn a_user_with_a_second_factor_signs_in_with_password_and_code_in_every_form() {
    let s = start("");
    let c = s.c();
    let (secret, _) = s.enrol("alice", "alice-password");

    // The JSON login: no code, a wrong one, then the right one.
    let res = json_login(&c, "alice", "alice-password", None);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    let res = json_login(&c, "alice", "alice-password", Some("000000"));
    let wrong = if s.code(&secret) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let res2 = json_login(&c, "alice", "alice-password", Some(wrong));
    assert_eq!(res2.status, 401);
    assert_eq!(res2.error_code(), "invalid_otp");
    drop(res);
    let code = s.code(&secret);
    let res = json_login(&c, "alice", "alice-password", Some(&code));
    assert_eq!(res.status, 200, "{}", res.text());
    let token = res.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(amr(&token), json!(["pwd", "otp"]));
    // The same code again, within its step: a replay.
    let res = json_login(&c, "alice", "alice-password", Some(&code));
    assert_eq!((res.status, res.error_code()), (401, "invalid_otp".into()));

    // Basic on /api/token: the code in X-Latch-OTP.
    s.next_step();
    let auth = basic("alice", "alice-password");
    let res = c.get("/api/token", &[("Authorization", &auth)]);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    let code = s.code(&secret);
    let res = c.get(
        "/api/token",
        &[("Authorization", &auth), ("X-Latch-OTP", &code)],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        amr(res.json()["token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );

    // Basic anywhere else is a sign-in too: a password alone is refused.
    let res = c.resource(&auth);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    let res = c.request("DELETE", "/api/users/me", &[("Authorization", &auth)], None);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));

    // The token it bought works; a user without a second factor is as before.
    assert_eq!(c.resource(&bearer(&token)).status, 200);
    let res = json_login(&c, "carol", "carol-password", None);
    assert_eq!(res.status, 200);
    assert_eq!(amr(res.json()["token"].as_str().unwrap()), json!(["pwd"]));
    c.assert_alive("carol", "carol-password");
}

#[test]
fn each_recovery_code_works_once_and_new_ones_replace_them() {
    let s = start("");
    let c = s.c();
    let (secret, codes) = s.enrol("alice", "alice-password");
    let res = json_login(&c, "alice", "alice-password", Some(&codes[0]));
    assert_eq!(res.status, 200, "{}", res.text());
    // Typed by hand: upper case, spaces instead of hyphens.
    let typed = codes[1].replace('-', " ").to_uppercase();
    assert_eq!(
        json_login(&c, "alice", "alice-password", Some(&typed)).status,
        200
    );
    let res = json_login(&c, "alice", "alice-password", Some(&codes[0]));
    assert_eq!((res.status, res.error_code()), (401, "invalid_otp".into()));

    // New codes: the password and a code; the old ones stop working.
    let token = json_login(&c, "alice", "alice-password", Some(&codes[2])).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = bearer(&token);
    let body = json!({"password": "wrong-password", "code": s.code(&secret)});
    let res = c.post_json("/api/totp/recovery", &body, &[("Authorization", &auth)]);
    assert_eq!((res.status, res.error_code()), (403, "forbidden".into()));
    let body = json!({"password": "alice-password", "code": s.code(&secret)});
    let res = c.post_json("/api/totp/recovery", &body, &[("Authorization", &auth)]);
    assert_eq!(res.status, 200, "{}", res.text());
    let fresh = res.json()["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(fresh.len(), 10);
    let res = json_login(&c, "alice", "alice-password", Some(&codes[3]));
    assert_eq!(res.status, 401, "an old code after regeneration");
    let res = json_login(&c, "alice", "alice-password", fresh[0].as_str());
    assert_eq!(res.status, 200);
}

#[test]
fn enrolment_and_removal_refuse_what_they_must() {
    let s = start("");
    let c = s.c();
    let auth = basic("alice", "alice-password");
    // Confirming before starting; starting with an API key.
    let res = c.post_json(
        "/api/totp/confirm",
        &json!({"code": "123456"}),
        &[("Authorization", &auth)],
    );
    assert_eq!(
        (res.status, res.error_code()),
        (400, "invalid_request".into())
    );
    let key = c.new_key(&auth, "script");
    let res = c.post_json("/api/totp", &json!({}), &[("Authorization", &bearer(&key))]);
    assert_eq!(res.status, 403);
    // A token older than reauth_window may not start enrolment.
    let token = c.token("alice", "alice-password");
    s.clock.advance(301);
    let res = c.post_json(
        "/api/totp",
        &json!({}),
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(
        (res.status, res.error_code()),
        (401, "reauthentication_required".into())
    );
    // A wrong first code: still inactive, the password alone still signs in.
    let res = c.post_json("/api/totp", &json!({}), &[("Authorization", &auth)]);
    assert_eq!(res.status, 200);
    let res = c.post_json("/api/totp/confirm", &json!({}), &[("Authorization", &auth)]);
    assert_eq!(res.status, 400, "no code");
    let res = c.post_json(
        "/api/totp/confirm",
        &json!({"code": "12345x"}),
        &[("Authorization", &auth)],
    );
    assert_eq!((res.status, res.error_code()), (401, "invalid_otp".into()));
    assert_eq!(json_login(&c, "alice", "alice-password", None).status, 200);

    let (secret, _) = s.enrol("alice", "alice-password");
    let with_code = |code: &str| -> Vec<(String, String)> {
        vec![
            ("Authorization".into(), basic("alice", "alice-password")),
            ("X-Latch-OTP".into(), code.into()),
        ]
    };
    // Already on: starting again is a conflict.
    let h = with_code(&s.code(&secret));
    let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let res = c.post_json("/api/totp", &json!({}), &h);
    assert_eq!((res.status, res.error_code()), (409, "conflict".into()));
    s.next_step();
    // Removal: the password and a code.
    let token = json_login(&c, "alice", "alice-password", Some(&s.code(&secret))).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.next_step();
    let auth = bearer(&token);
    for (body, status) in [
        (json!({"password": "alice-password"}), 400),
        (
            json!({"password": "nope-nope-nope", "code": s.code(&secret)}),
            403,
        ),
        (json!({"password": "alice-password", "code": "nope"}), 401),
    ] {
        let res = c.request(
            "DELETE",
            "/api/totp",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(res.status, status, "{body}: {}", res.text());
    }
    let body = json!({"password": "alice-password", "code": s.code(&secret)});
    let res = c.request(
        "DELETE",
        "/api/totp",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(json_login(&c, "alice", "alice-password", None).status, 200);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn wrong_codes_ban_like_wrong_passwords_even_between_right_passwords() {
    let s = start("");
    let c = s.c();
    let (secret, _) = s.enrol("alice", "alice-password");
    let wrong = |s: &Setup| {
        let right = s.code(&secret);
        if right == "000000" {
            "111111".to_owned()
        } else {
            "000000".to_owned()
        }
    };
    // Each attempt has the right password: that must not clear the count
    // of wrong codes.
    for _ in 0..3 {
        let res = json_login(&c, "alice", "alice-password", Some(&wrong(&s)));
        assert_eq!(res.status, 401);
    }
    // Banned: the right code is refused too, and so is the password.
    let res = json_login(&c, "alice", "alice-password", Some(&s.code(&secret)));
    assert_eq!(res.status, 401, "{}", res.text());
    let res = json_login(&c, "carol", "carol-password", None);
    assert_eq!(res.status, 200, "another account is not banned");
    // After the ban: in again.
    s.clock.advance(601);
    let res = json_login(&c, "alice", "alice-password", Some(&s.code(&secret)));
    assert_eq!(res.status, 200, "{}", res.text());
}

#[test]
fn wrong_codes_in_parallel_are_all_counted() {
    let s = start("");
    let (secret, _) = s.enrol("alice", "alice-password");
    let right = s.code(&secret);
    let c = s.c();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let guess = format!("{:06}", (right.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
                scope.spawn(move || json_login(&c, "alice", "alice-password", Some(&guess)).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let res = json_login(&c, "alice", "alice-password", Some(&right));
    assert_eq!(res.status, 401, "banned after the parallel guesses");
}

/// Signs in on the login page as a user with a second factor: the code
/// form (with its pending token) comes instead of the cookie.
fn sign_in_with_code(
    s: &Setup,
    user: &str,
    password: &str,
    code: &str,
    rd: Option<&str>,
) -> Response {
    let c = s.c();
    let form = open_login(&c, "");
    let res = submit_login(&c, &form, user, password, rd, &[ORIGIN]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        set_cookie(&res, "latch_session").is_none(),
        "no session yet"
    );
    let page = res.text();
    assert!(page.contains(r#"action="/login/otp""#), "{page}");
    let pending = hidden(&page, "pending");
    let mut body = format!(
        "csrf={}&pending={}&code={}",
        enc(&csrf(&page)),
        enc(&pending),
        enc(code)
    );
    if let Some(rd) = rd {
        body.push_str(&format!("&rd={}", enc(rd)));
    }
    post_form(&c, "/login/otp", &form.cookie, &body)
}

fn hidden(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// Forward auth for GET https://app.example.test`path` with `cookie`.
fn auth(c: &Client, path: &str, cookie: &str, browser: bool) -> Response {
    let mut headers = vec![
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.test"),
        ("X-Forwarded-Uri", path),
        ("Cookie", cookie),
    ];
    if browser {
        headers.push(BROWSER);
    }
    c.get("/auth", &headers)
}

#[test]
fn the_login_page_asks_for_the_code_and_the_session_passes_two_factor_rules() {
    let s = start("");
    let (secret, _) = s.enrol("alice", "alice-password");
    let rd = "https://app.example.test/secure/x";
    // A wrong code: the form again, the same pending sign-in.
    let res = sign_in_with_code(&s, "alice", "alice-password", "000001", Some(rd));
    assert_eq!(res.status, 401);
    assert!(
        res.text().contains("Invalid or already used code."),
        "{}",
        res.text()
    );
    let res = sign_in_with_code(&s, "alice", "alice-password", &s.code(&secret), Some(rd));
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some(rd));
    let (value, _) = set_cookie(&res, "latch_session").unwrap();
    let cookie = format!("latch_session={value}");
    assert_eq!(amr(&cookie), json!(["pwd", "otp"]));
    let res = auth(&s.c(), "/secure/x", &cookie, true);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("remote-user"), Some("alice"));
    // A pending token is accepted as no credential anywhere.
    let form = open_login(&s.c(), "");
    let page = submit_login(&s.c(), &form, "alice", "alice-password", None, &[ORIGIN]).text();
    let pending = hidden(&page, "pending");
    assert_eq!(s.c().resource(&bearer(&pending)).status, 401);
    let res = auth(&s.c(), "/", &format!("latch_session={pending}"), false);
    assert_eq!(res.status, 401);
}

#[test]
fn a_one_factor_session_is_stepped_up_on_a_two_factor_rule() {
    let s = start("");
    let c = s.c();
    // Signed in with the password alone, before a second factor existed.
    let old = session(&c, "alice", "alice-password");
    assert_eq!(
        auth(&c, "/open", &old, true).status,
        200,
        "one_factor is fine"
    );
    let (secret, _) = s.enrol("alice", "alice-password");
    // A two_factor path: a browser goes to the code form, a script gets 401.
    let res = auth(&c, "/secure/x?y=1", &old, true);
    assert_eq!(res.status, 302);
    let code_form = "http://auth.example.test/login/otp?rd=";
    let location = res.header("location").unwrap().to_owned();
    assert!(location.starts_with(code_form), "{location}");
    let res = auth(&c, "/secure/x?y=1", &old, false);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    assert!(res.header("location").unwrap().starts_with(code_form));
    // The code form, from the redirect.
    let path = location.trim_start_matches("http://auth.example.test");
    let res = c.get(path, &[BROWSER, ("Cookie", &old)]);
    assert_eq!(res.status, 200, "{}", res.text());
    let form_cookie = set_cookie(&res, "latch_form").map(|(v, _)| format!("latch_form={v}"));
    let page = res.text();
    assert!(
        !page.contains(r#"name="pending""#),
        "a step-up has no pending token"
    );
    let cookies = format!("{old}; {}", form_cookie.unwrap());
    let body = format!(
        "csrf={}&rd={}&code={}",
        enc(&csrf(&page)),
        enc("https://app.example.test/secure/x?y=1"),
        s.code(&secret)
    );
    let res = post_form(&c, "/login/otp", &cookies, &body);
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(
        res.header("location"),
        Some("https://app.example.test/secure/x?y=1")
    );
    let (value, _) = set_cookie(&res, "latch_session").unwrap();
    let new = format!("latch_session={value}");
    assert_eq!(auth(&c, "/secure/x?y=1", &new, true).status, 200);
    // The one-factor session is over.
    assert_eq!(auth(&c, "/open", &old, false).status, 401);
}

#[test]
fn a_user_without_a_second_factor_is_sent_to_set_one_up_or_refused() {
    let s = start("");
    let c = s.c();
    let carol = session(&c, "carol", "carol-password");
    let res = auth(&c, "/secure", &carol, true);
    assert_eq!(res.status, 302);
    let path = res
        .header("location")
        .unwrap()
        .trim_start_matches("http://auth.example.test")
        .to_owned();
    let res = c.get(&path, &[BROWSER, ("Cookie", &carol)]);
    assert_eq!(res.status, 200);
    let form_cookie = format!("latch_form={}", set_cookie(&res, "latch_form").unwrap().0);
    let page = res.text();
    assert!(page.contains(r#"action="/login/otp/enrol""#), "{page}");
    let cookies = format!("{carol}; {form_cookie}");
    // The password again, then a secret and its QR code.
    let body = format!(
        "csrf={}&password=wrong-password&rd={}",
        enc(&csrf(&page)),
        enc("https://app.example.test/secure")
    );
    assert_eq!(
        post_form(&c, "/login/otp/enrol", &cookies, &body).status,
        403
    );
    let body = format!(
        "csrf={}&password=carol-password&rd={}",
        enc(&csrf(&page)),
        enc("https://app.example.test/secure")
    );
    let res = post_form(&c, "/login/otp/enrol", &cookies, &body);
    assert_eq!(res.status, 200, "{}", res.text());
    let page = res.text();
    assert!(
        page.contains("<svg") && page.contains(r#"id="qr""#),
        "a QR code"
    );
    let uri = r#"id="otpauth">otpauth://totp/latch:carol?secret="#;
    assert!(page.contains(uri), "{page}");
    let secret = secret_of(&page);
    // The page's CSP still forbids everything but latch's style.
    assert!(res
        .header("content-security-policy")
        .unwrap()
        .starts_with("default-src 'none'"));
    let body = format!(
        "csrf={}&code={}&rd={}&ticket={}",
        enc(&csrf(&page)),
        s.code(&secret),
        enc("https://app.example.test/secure"),
        enc(&hidden(&page, "ticket"))
    );
    let res = post_form(&c, "/login/otp/confirm", &cookies, &body);
    assert_eq!(res.status, 200, "{}", res.text());
    let page = res.text();
    assert_eq!(page.matches("<li><code>").count(), 10, "{page}");
    assert!(page.contains(r#"href="https://app.example.test/secure""#));
    let (value, _) = set_cookie(&res, "latch_session").expect("an upgraded session");
    let upgraded = format!("latch_session={value}");
    assert_eq!(auth(&c, "/secure", &upgraded, true).status, 200);
    assert_eq!(
        auth(&c, "/secure", &carol, false).status,
        401,
        "the old session ended"
    );

    // With enrol_on_demand off: 403 instead.
    drop(s);
    let s = start("[totp]\nenrol_on_demand = false\n");
    let c = s.c();
    let carol = session(&c, "carol", "carol-password");
    let res = auth(&c, "/secure", &carol, false);
    assert_eq!((res.status, res.error_code()), (403, "forbidden".into()));
    let res = auth(&c, "/secure", &carol, true);
    assert_eq!(res.status, 403);
    assert!(res.text().contains("needs a second factor"));
}

#[test]
fn a_password_alone_never_satisfies_two_factor_and_keys_carry_their_sign_in() {
    let s = start("");
    let c = s.c();
    let (secret, _) = s.enrol("alice", "alice-password");
    // Basic with the code on forward auth is two factors; alone, refused.
    let headers = |extra: Vec<(&'static str, String)>| {
        let mut h: Vec<(&'static str, String)> = vec![
            ("X-Forwarded-Method", "GET".into()),
            ("X-Forwarded-Proto", "https".into()),
            ("X-Forwarded-Host", "app.example.test".into()),
            ("X-Forwarded-Uri", "/secure".into()),
        ];
        h.extend(extra);
        h
    };
    let send = |h: Vec<(&'static str, String)>| {
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (*a, b.as_str())).collect();
        c.get("/auth", &h)
    };
    let res = send(headers(vec![(
        "Authorization",
        basic("alice", "alice-password"),
    )]));
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    let res = send(headers(vec![
        ("Authorization", basic("alice", "alice-password")),
        ("X-Latch-OTP", s.code(&secret)),
    ]));
    assert_eq!(res.status, 200, "{}", res.text());
    s.next_step();
    // A token of a two-factor sign-in makes a two-factor key; carol's
    // one-factor key stays one-factor.
    let token = json_login(&c, "alice", "alice-password", Some(&s.code(&secret))).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = c.new_key(&bearer(&token), "two");
    let res = send(headers(vec![("Authorization", bearer(&key))]));
    assert_eq!(res.status, 200, "{}", res.text());
    let carol_key = c.new_key(&basic("carol", "carol-password"), "one");
    let res = send(headers(vec![("Authorization", bearer(&carol_key))]));
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
}

#[test]
fn the_secret_is_sealed_at_rest_and_a_restore_needs_its_key() {
    let s = start("");
    let (secret, _) = s.enrol("alice", "alice-password");
    let base32 = secret.base32();
    let data = s._dir.path().join("data");
    tokio_block_on(s.server.app.service.flush()).unwrap();
    let mut seen = 0;
    for entry in walk(&data) {
        if entry.ends_with("storage.key") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        seen += bytes.len();
        assert!(
            !contains(&bytes, &secret.0),
            "the raw secret in {}",
            entry.display()
        );
        assert!(
            !contains(&bytes, base32.as_bytes()),
            "the base32 secret in {}",
            entry.display()
        );
    }
    assert!(seen > 0);
    // A backup carries the sealed secret: restored with another storage
    // key it is refused whole, with the same key it is taken.
    let mut backup = Vec::new();
    s.server.app.service.export(&mut backup).unwrap();
    let into = TempDir::new("totp-restore");
    let e =
        latch::service::restore_offline(&into.path().join("a"), &backup[..], Some(&[1; 32]), false)
            .unwrap_err();
    assert!(
        e.to_string().contains("do not open with this storage key"),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
    let e = latch::service::restore_offline(&into.path().join("b"), &backup[..], None, false)
        .unwrap_err();
    assert!(e.to_string().contains("storage key"), "{e}");
    let key = std::fs::read_to_string(data.join("storage.key")).unwrap();
    let key: [u8; 32] = latch::crypto::b64_decode(key.trim().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    let n = latch::service::restore_offline(&into.path().join("c"), &backup[..], Some(&key), false)
        .unwrap();
    assert!(n > 0);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The real binary: `latch user totp` over the admin socket, the reset's
/// warning in the log, and `latch restore` with a wrong or missing storage
/// key (one line, nothing written) and with the right one.
#[test]
fn the_cli_shows_and_resets_a_second_factor_and_restore_needs_the_storage_key() {
    let dir = TempDir::new("totp-cli");
    let server = Server::start(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let secret = enrol_on_the_system_clock(&c, "alice", "alice-password");
    let config = server.config_path.clone();
    let (status, stdout, stderr) = latch_with(&["user", "totp", "alice"], &config);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("alice has a second factor, with 10 recovery codes left"),
        "{stdout}"
    );

    // A backup carries the sealed secret.
    let file = dir.path().join("with-totp.backup");
    let (status, _, stderr) = latch_with(&["backup", file.to_str().unwrap()], &config);
    assert!(status.success(), "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&secret.base32()), "the secret in the clear");
    for (name, key) in [("wrong", Some([5u8; 32])), ("missing", None)] {
        let target = dir.path().join(name);
        std::fs::create_dir_all(&target).unwrap();
        let target_config = target.join("latch.toml");
        let data = target.join("data");
        std::fs::write(&target_config, config_text(&target, "")).unwrap();
        let key_path = latch::Config::from_toml(&config_text(&target, ""))
            .unwrap()
            .storage_key_file;
        assert!(key_path.starts_with(&data), "{}", key_path.display());
        if let Some(key) = key {
            std::fs::create_dir_all(&data).unwrap();
            let text = format!("{}\n", latch::crypto::b64_encode(&key));
            std::fs::write(&key_path, text).unwrap();
        }
        let (status, _, stderr) = latch_with(&["restore", file.to_str().unwrap()], &target_config);
        assert!(!status.success(), "{name}: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("latch: "))
            .unwrap_or_default();
        assert!(
            line.contains("do not open with this storage key"),
            "{name}: {stderr}"
        );
        if key.is_none() {
            assert!(line.contains("there is no storage key at"), "{stderr}");
        }
        // Nothing was written, not even an empty database: a restore with
        // the right key then works.
        assert!(!data.join("db").exists(), "{name}: a database was made");
        let key_text =
            std::fs::read_to_string(dir.path().join("data").join("storage.key")).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(&key_path, key_text).unwrap();
        let (status, stdout, stderr) =
            latch_with(&["restore", file.to_str().unwrap()], &target_config);
        assert!(status.success(), "{name}: {stderr}");
        assert!(stdout.contains("restored"), "{stdout}");
        assert!(data.exists());
    }

    // The reset: the password alone signs in again, and the log warns.
    let (status, stdout, stderr) = latch_with(&["user", "totp", "alice", "--reset"], &config);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("removed the second factor of alice"),
        "{stdout}"
    );
    let log = server.log_containing("an administrator removed a user's second factor");
    assert!(log.contains("WARN"), "{log}");
    assert_eq!(json_login(&c, "alice", "alice-password", None).status, 200);
    let (_, stdout, _) = latch_with(&["user", "totp", "alice", "--reset"], &config);
    assert!(stdout.contains("alice has no second factor"), "{stdout}");
    let (status, _, stderr) = latch_with(&["user", "totp", "nobody"], &config);
    assert!(!status.success());
    assert!(stderr.contains("no user named \"nobody\""), "{stderr}");
}

/// A lost or replaced storage key stops `serve` with one line (a new key
/// would open none of the secrets, and every sign-in of those users would
/// fail); `latch restore --without-second-factors` is the way out when the
/// key is gone; a set-up never confirmed is told apart.
#[test]
fn serve_refuses_a_lost_or_replaced_storage_key() {
    let dir = TempDir::new("totp-key");
    let server = Server::start(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("frank", "frank-password");
    enrol_on_the_system_clock(&c, "alice", "alice-password");
    // frank starts setting one up and never confirms.
    let frank = basic("frank", "frank-password");
    assert_eq!(
        c.post_json("/api/totp", &json!({}), &[("Authorization", &frank)])
            .status,
        200
    );
    let config = server.config_path.clone();
    let (_, stdout, _) = latch_with(&["user", "totp", "frank"], &config);
    assert!(
        stdout.contains("frank has no second factor (one is being set up"),
        "{stdout}"
    );
    let file = dir.path().join("all.backup");
    let (status, _, stderr) = latch_with(&["backup", file.to_str().unwrap()], &config);
    assert!(status.success(), "{stderr}");
    server.stop();

    let key_path = dir.path().join("data").join("storage.key");
    let key = std::fs::read(&key_path).unwrap();
    // Lost: serve stops, and makes no new key.
    std::fs::remove_file(&key_path).unwrap();
    let log = Server::try_start(&config)
        .err()
        .expect("serve refuses to start");
    let line = log
        .lines()
        .find(|l| l.starts_with("latch: "))
        .unwrap_or_default();
    assert!(
        line.contains("no storage key at") && line.contains("put that key back"),
        "{log}"
    );
    assert!(!key_path.exists(), "no new key was made");
    // Replaced: serve stops, naming how many do not open.
    let other = format!("{}\n", latch::crypto::b64_encode(&[3u8; 32]));
    std::fs::write(&key_path, other).unwrap();
    let log = Server::try_start(&config)
        .err()
        .expect("serve refuses to start");
    let line = log
        .lines()
        .find(|l| l.starts_with("latch: "))
        .unwrap_or_default();
    assert!(
        line.contains("2 of 2 second factors in the database do not open"),
        "{log}"
    );
    // The right key: in again, and alice still needs her code.
    std::fs::write(&key_path, &key).unwrap();
    let server = Server::start_with(&config);
    let c = server.client();
    let res = json_login(&c, "alice", "alice-password", None);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    let (_, stdout, _) = latch_with(&["user", "totp", "frank", "--reset"], &config);
    assert!(
        stdout.contains("removed the second factor frank was setting up"),
        "{stdout}"
    );
    server.stop();

    // The key is gone for good: restore without the second factors.
    let target = dir.path().join("fresh");
    std::fs::create_dir_all(&target).unwrap();
    let target_config = target.join("latch.toml");
    std::fs::write(&target_config, config_text(&target, "")).unwrap();
    let (status, _, stderr) = latch_with(&["restore", file.to_str().unwrap()], &target_config);
    assert!(!status.success(), "{stderr}");
    let (status, stdout, stderr) = latch_with(
        &[
            "restore",
            file.to_str().unwrap(),
            "--without-second-factors",
        ],
        &target_config,
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("every second factor was left out"),
        "{stderr}"
    );
    assert!(stdout.contains("restored"), "{stdout}");
    let server = Server::start_with(&target_config);
    let c = server.client();
    assert_eq!(json_login(&c, "alice", "alice-password", None).status, 200);
    let (_, stdout, _) = latch_with(&["user", "totp", "alice"], &target_config);
    assert!(stdout.contains("alice has no second factor"), "{stdout}");
}

/// The secret of an enrolment page.
fn secret_of(page: &str) -> Secret {
    let at = page.find(r#"<code id="secret">"#).unwrap() + r#"<code id="secret">"#.len();
    secret_from(&page[at..at + page[at..].find('<').unwrap()])
}

/// A secret from its base32 text.
fn secret_from(text: &str) -> Secret {
    Secret(otp::base32_decode(text).unwrap().try_into().unwrap())
}

/// Turns on a second factor for `user` of a server on the system clock
/// (the real binary): the code of the step before now's, which the window
/// takes and which leaves now's and the next for later. The secret.
fn enrol_on_the_system_clock(c: &Client, user: &str, password: &str) -> Secret {
    let auth = basic(user, password);
    let text = c
        .post_json("/api/totp", &json!({}), &[("Authorization", &auth)])
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = secret_from(&text);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = format!("{:06}", otp::code_at(&secret, otp::step(now) - 1));
    let res = c.post_json(
        "/api/totp/confirm",
        &json!({"code": code}),
        &[("Authorization", &auth)],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    secret
}

/// A form page for `cookie`: (the page, cookies with the form nonce).
fn form_page(c: &Client, path: &str, cookie: &str) -> (String, String) {
    let res = c.get(path, &[BROWSER, ("Cookie", cookie)]);
    assert_eq!(res.status, 200, "{}", res.text());
    let form = set_cookie(&res, "latch_form").map(|(v, _)| format!("latch_form={v}"));
    (res.text(), format!("{cookie}; {}", form.unwrap()))
}

/// Found by review: a stolen one-factor cookie, without the password, read
/// an unfinished enrolment's secret (the page shown again after a wrong
/// first code) and completed it. The confirmation and that page now need
/// the ticket the enrolment page carries (given for the password), and an
/// enrolment waits ten minutes at most.
#[test]
fn a_session_cookie_alone_neither_reads_nor_completes_an_enrolment() {
    let s = start("");
    let c = s.c();
    let device = session(&c, "carol", "carol-password");
    let (page, cookies) = form_page(&c, "/login/otp", &device);
    let body = format!("csrf={}&password=carol-password", enc(&csrf(&page)));
    let res = post_form(&c, "/login/otp/enrol", &cookies, &body);
    assert_eq!(res.status, 200);
    let real = secret_of(&res.text());
    let ticket = hidden(&res.text(), "ticket");
    // Another one-factor cookie of carol's, and no password.
    let stolen = session(&c, "carol", "carol-password");
    let (page, cookies) = form_page(&c, "/login", &stolen);
    for body in [
        format!("csrf={}&code=000000", enc(&csrf(&page))),
        format!("csrf={}&code={}", enc(&csrf(&page)), s.code(&real)),
        format!("csrf={}&code=000000&ticket=junk", enc(&csrf(&page))),
    ] {
        let res = post_form(&c, "/login/otp/confirm", &cookies, &body);
        assert_eq!(res.status, 401, "{body}");
        assert!(
            !res.text().contains(&real.base32()),
            "the secret, to a cookie alone"
        );
        assert!(set_cookie(&res, "latch_session").is_none());
    }
    assert_eq!(
        json_login(&c, "carol", "carol-password", None).status,
        200,
        "still off"
    );
    // Another user's ticket is no ticket for carol.
    let alice = session(&c, "alice", "alice-password");
    let (alice_page, alice_cookies) = form_page(&c, "/login/otp", &alice);
    let body = format!("csrf={}&password=alice-password", enc(&csrf(&alice_page)));
    let alice_ticket = hidden(
        &post_form(&c, "/login/otp/enrol", &alice_cookies, &body).text(),
        "ticket",
    );
    let body = format!(
        "csrf={}&code={}&ticket={}",
        enc(&csrf(&page)),
        s.code(&real),
        enc(&alice_ticket)
    );
    assert_eq!(
        post_form(&c, "/login/otp/confirm", &cookies, &body).status,
        401
    );
    // The ticket is no credential either.
    assert_eq!(c.resource(&bearer(&ticket)).status, 401);
    // Ten minutes on, the enrolment and its ticket are over.
    s.clock.advance(601);
    let (page, cookies) = form_page(&c, "/login", &device);
    let body = format!(
        "csrf={}&code={}&ticket={}",
        enc(&csrf(&page)),
        s.code(&real),
        enc(&ticket)
    );
    assert_eq!(
        post_form(&c, "/login/otp/confirm", &cookies, &body).status,
        401
    );
    let auth = basic("carol", "carol-password");
    let res = c.post_json(
        "/api/totp/confirm",
        &json!({"code": s.code(&real)}),
        &[("Authorization", &auth)],
    );
    assert_eq!(
        (res.status, res.error_code()),
        (400, "invalid_request".into()),
        "expired"
    );
    assert_eq!(
        json_login(&c, "carol", "carol-password", None).status,
        200,
        "still off"
    );
}

/// Found by review: once a logout-everywhere's cutoff was pruned (a month
/// on), the sessions of its epoch were taken for stale: hidden from their
/// owner, not ended by "end all", and a step-up or enrolment in them spent
/// the code and signed out. One rule for epochs now (`Cutoff::admits`).
#[test]
fn a_pruned_cutoff_leaves_the_sessions_of_its_epoch_whole() {
    let s = start("");
    let c = s.c();
    let t = c.token("carol", "carol-password");
    assert_eq!(c.post_auth("/api/logout-all", &bearer(&t)).status, 200);
    s.clock.advance(30 * 86400);
    let carol = session(&c, "carol", "carol-password");
    let spare = session(&c, "carol", "carol-password");
    let alice_old = session(&c, "alice", "alice-password");
    let t = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/api/logout-all", &bearer(&t)).status, 200);
    let alice = session(&c, "alice", "alice-password");
    let (secret, _) = s.enrol("alice", "alice-password");
    s.clock.advance(3600);
    assert!(tokio_block_on(s.server.app.service.prune()).unwrap() >= 1);
    assert_eq!(auth(&c, "/open", &carol, false).status, 200, "still live");
    // Listed.
    let fresh = c.token("carol", "carol-password");
    let listed = c.get("/api/sessions", &[("Authorization", &bearer(&fresh))]);
    assert_eq!(
        listed.json().as_array().unwrap().len(),
        2,
        "{}",
        listed.text()
    );
    // An API key from a token of that epoch.
    c.new_key(&bearer(&fresh), "after-prune");
    // Enrolment in such a session shows the recovery codes and upgrades it.
    let (page, cookies) = form_page(&c, "/login/otp", &carol);
    let body = format!("csrf={}&password=carol-password", enc(&csrf(&page)));
    let res = post_form(&c, "/login/otp/enrol", &cookies, &body);
    let carol_secret = secret_of(&res.text());
    let body = format!(
        "csrf={}&code={}&ticket={}",
        enc(&csrf(&res.text())),
        s.code(&carol_secret),
        enc(&hidden(&res.text(), "ticket"))
    );
    let res = post_form(&c, "/login/otp/confirm", &cookies, &body);
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.text().matches("<li><code>").count(), 10);
    // A step-up in such a session works.
    let (page, cookies) = form_page(&c, "/login/otp", &alice);
    let body = format!("csrf={}&code={}", enc(&csrf(&page)), s.code(&secret));
    let res = post_form(&c, "/login/otp", &cookies, &body);
    assert_eq!(res.status, 303, "{}", res.text());
    // "End all" ends the sessions of that epoch, and the old epoch's stay
    // refused.
    let user = s.server.app.service.user_named("carol").unwrap();
    let ended = tokio_block_on(s.server.app.service.end_all_sessions(user.id)).unwrap();
    assert_eq!(ended, 2, "the spare session and the upgraded one");
    assert_eq!(auth(&c, "/open", &spare, false).status, 401);
    assert_eq!(auth(&c, "/open", &alice_old, false).status, 401);
    assert_eq!(
        c.get("/api/sessions", &[("Authorization", &bearer(&fresh))])
            .json(),
        json!([])
    );
}

/// Found by review: a code used once, sent again (a retry, a double
/// submit), counted as a wrong guess and banned the account. A replay is
/// refused and not counted.
#[test]
fn a_replayed_code_is_refused_and_not_counted() {
    let s = start("");
    let c = s.c();
    let (secret, _) = s.enrol("alice", "alice-password");
    let code = s.code(&secret);
    let headers = [
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example.test"),
        ("X-Forwarded-Uri", "/secure"),
    ];
    let auth = basic("alice", "alice-password");
    let send = |code: &str| {
        let mut h = headers.to_vec();
        h.push(("Authorization", &auth));
        h.push(("X-Latch-OTP", code));
        c.get("/auth", &h)
    };
    assert_eq!(send(&code).status, 200);
    for _ in 0..6 {
        let res = send(&code);
        assert_eq!((res.status, res.error_code()), (401, "invalid_otp".into()));
    }
    s.next_step();
    assert_eq!(send(&s.code(&secret)).status, 200, "not banned");
    // Counted apart, on /metrics.
    let text = s.server.ops().get("/metrics", &[]).text();
    for (line, n) in [("ok", 3), ("wrong", 0), ("replayed", 6)] {
        let sample = format!("latch_one_time_codes_total{{result=\"{line}\"}} {n}\n");
        assert!(text.contains(&sample), "{sample} in\n{text}");
    }
}

/// Each 415 says what the endpoint reads: the code form a form, the API
/// JSON (found by review: the forms said "expected a JSON body").
#[test]
fn a_wrong_body_type_is_told_what_is_expected() {
    let s = start("");
    let c = s.c();
    let carol = session(&c, "carol", "carol-password");
    let res = c.request(
        "POST",
        "/login/otp",
        &[
            ORIGIN,
            ("Content-Type", "application/json"),
            ("Cookie", &carol),
        ],
        Some(b"{}"),
    );
    assert_eq!(res.status, 415);
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("expected a form"));
    let res = c.request(
        "POST",
        "/api/totp/confirm",
        &[
            ("Authorization", &basic("carol", "carol-password")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(b"code=123456"),
    );
    assert_eq!(res.status, 415);
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("expected a JSON body"));
    c.assert_alive("carol", "carol-password");
}

/// A code header that cannot be read as text is no code (401
/// `otp_required`); one of any length or shape is a wrong code (401
/// `invalid_otp`); the account still signs in with the right one.
#[test]
fn a_malformed_code_header_is_a_401() {
    let s = start("");
    let c = s.c();
    let (secret, _) = s.enrol("alice", "alice-password");
    let auth = basic("alice", "alice-password");
    let mut raw = format!(
        "GET /api/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\
         X-Latch-OTP: "
    )
    .into_bytes();
    raw.extend_from_slice(b"\xff\xfe12\r\n\r\n");
    let res = c.raw(&raw);
    assert_eq!((res.status, res.error_code()), (401, "otp_required".into()));
    // Two wrong ones (a third would ban, REGULATION).
    for junk in ["1".repeat(5000), "12 34 5".into()] {
        let res = c.get(
            "/api/token",
            &[("Authorization", &auth), ("X-Latch-OTP", &junk)],
        );
        assert_eq!(
            (res.status, res.error_code()),
            (401, "invalid_otp".into()),
            "{junk:.20}"
        );
    }
    let code = s.code(&secret);
    let res = c.get(
        "/api/token",
        &[("Authorization", &auth), ("X-Latch-OTP", &code)],
    );
    assert_eq!(res.status, 200, "{}", res.text());
}
