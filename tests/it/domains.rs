//! Several cookie domains from one latch: `[[forward_auth.domains]]`.

use crate::forward::{csrf, set_cookie};
use crate::support::*;

const DOMAINS: &str = r#"
[forward_auth]
cookie_secure = false

[[forward_auth.domains]]
cookie_domain = "example.test"
public_url = "http://auth.example.test"

[[forward_auth.domains]]
cookie_domain = "example.org"
public_url = "http://auth.example.org"
login_url = "http://login.example.org/sign-in"
"#;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

fn asked(host: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Forwarded-Method", "GET".into()),
        ("X-Forwarded-Proto", "http".into()),
        ("X-Forwarded-Host", host.into()),
        ("X-Forwarded-Uri", "/x".into()),
    ]
}

fn auth(c: &Client, host: &str, extra: &[(&str, &str)]) -> Response {
    let headers = asked(host);
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    c.get("/auth", &all)
}

/// Signs in on the login host `host`; returns the response of the post.
fn sign_in(c: &Client, host: &str, rd: Option<&str>) -> Response {
    let page = c.get("/login", &[("Host", host), BROWSER]);
    assert_eq!(page.status, 200);
    let (nonce, _) = set_cookie(&page, "latch_form").unwrap();
    let form_cookie = format!("latch_form={nonce}");
    let mut body = format!(
        "csrf={}&username=alice&password=alice-password",
        latch::redirect::encode_query_value(&csrf(&page.text()))
    );
    if let Some(rd) = rd {
        body.push_str(&format!("&rd={}", latch::redirect::encode_query_value(rd)));
    }
    let origin = format!("http://{host}");
    c.request(
        "POST",
        "/login",
        &[
            ("Host", host),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", form_cookie.as_str()),
            BROWSER,
        ],
        Some(body.as_bytes()),
    )
}

#[test]
fn each_domain_has_its_login_page_cookie_and_rd() {
    let dir = TempDir::new("domains");
    let server = InProcess::new(&dir, DOMAINS);
    let c = server.client();
    c.register("alice", "alice-password");

    // /auth sends a browser to the login page of the host's domain.
    let res = auth(&c, "app.example.test", &[BROWSER]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login?rd=http%3A%2F%2Fapp.example.test%2Fx")
    );
    let res = auth(&c, "media.EXAMPLE.org:8443", &[BROWSER]);
    assert_eq!(res.status, 302);
    assert!(res
        .header("location")
        .unwrap()
        .starts_with("http://login.example.org/sign-in?rd="));
    // A host under none: 403, signed in or not.
    let token = c.token("alice", "alice-password");
    for extra in [&[BROWSER][..], &[("Authorization", &bearer(&token))]] {
        let res = auth(&c, "app.example.net", extra);
        assert_eq!(res.status, 403, "{}", res.text());
    }
    let res = auth(&c, "example.test.evil.net", &[]);
    assert_eq!(res.status, 403);

    // The login page on each host sets its own domain's cookie and follows
    // rd only within it.
    let res = sign_in(&c, "auth.example.org", Some("http://app.example.org/back"));
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("http://app.example.org/back"));
    let (value, header) = set_cookie(&res, "latch_session").unwrap();
    assert!(header.contains("Domain=example.org"), "{header}");
    let org_cookie = format!("latch_session={value}");
    let res = sign_in(&c, "auth.example.org", Some("http://app.example.test/back"));
    assert_eq!(res.header("location"), Some("http://auth.example.org/"));
    let res = sign_in(
        &c,
        "auth.example.test",
        Some("http://app.example.test/back"),
    );
    assert_eq!(res.header("location"), Some("http://app.example.test/back"));
    let (_, header) = set_cookie(&res, "latch_session").unwrap();
    assert!(header.contains("Domain=example.test"), "{header}");

    // The session from example.org lets in on example.org.
    let res = auth(&c, "media.example.org", &[("Cookie", org_cookie.as_str())]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("remote-user"), Some("alice"));
    // ... and only there: an app under example.org that sees the cookie
    // cannot replay it against example.test (found by review), neither on
    // forward auth nor on that domain's account page.
    let res = auth(
        &c,
        "app.example.test",
        &[("Cookie", org_cookie.as_str()), BROWSER],
    );
    assert_eq!(res.status, 302, "{}", res.text());
    assert!(res
        .header("location")
        .unwrap()
        .starts_with("http://auth.example.test/login?rd="));
    let res = c.get(
        "/",
        &[
            ("Host", "auth.example.test"),
            ("Cookie", org_cookie.as_str()),
            BROWSER,
        ],
    );
    assert_eq!(res.status, 302);
    let res = c.get(
        "/",
        &[
            ("Host", "auth.example.org"),
            ("Cookie", org_cookie.as_str()),
            BROWSER,
        ],
    );
    assert_eq!(res.status, 200);

    // A form from one login host is refused on the other.
    let page = c.get("/login", &[("Host", "auth.example.org"), BROWSER]);
    let (nonce, _) = set_cookie(&page, "latch_form").unwrap();
    let body = format!(
        "csrf={}&username=alice&password=alice-password",
        latch::redirect::encode_query_value(&csrf(&page.text()))
    );
    let res = c.request(
        "POST",
        "/login",
        &[
            ("Host", "auth.example.org"),
            ("Origin", "http://auth.example.test"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("latch_form={nonce}")),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 403);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn a_host_under_no_domain_is_warned_about_once() {
    let dir = TempDir::new("domains-warn");
    let server = Server::start(&dir, DOMAINS);
    let c = server.client();
    for _ in 0..3 {
        assert_eq!(auth(&c, "app.example.net", &[]).status, 403);
    }
    assert_eq!(auth(&c, "other.example.net", &[]).status, 403);
    let log = server.log_containing("other.example.net");
    let warnings = log
        .lines()
        .filter(|l| l.contains("under none of [[forward_auth.domains]]"))
        .count();
    assert_eq!(warnings, 2, "{log}");
}

#[test]
fn bad_domain_lists_stop_start_up() {
    for (toml, wanted) in [
        (
            "[[forward_auth.domains]]\ncookie_domain = \"example.test\"\n\
             public_url = \"https://auth.example.org\"\n",
            "[[forward_auth.domains]] 1 public_url \"https://auth.example.org\" is not within",
        ),
        (
            "[[forward_auth.domains]]\npublic_url = \"https://auth.example.org\"\n",
            "[[forward_auth.domains]] 1 cookie_domain is missing",
        ),
        (
            "[forward_auth]\ncookie_domain = \"example.test\"\n[[forward_auth.domains]]\n\
             cookie_domain = \"example.test\"\npublic_url = \"https://auth.example.test\"\n",
            "cannot be set beside [[forward_auth.domains]]",
        ),
        (
            "[[forward_auth.domains]]\ncookie_domain = \"example.test\"\n\
             public_url = \"https://auth.example.test\"\n[[forward_auth.domains]]\n\
             cookie_domain = \"Example.test\"\npublic_url = \"https://a.example.test\"\n",
            "[[forward_auth.domains]] 2 cookie_domain \"example.test\" is listed twice",
        ),
    ] {
        let e = latch::Config::from_toml(toml).unwrap_err().to_string();
        assert!(e.contains(wanted), "{e}\nwanted: {wanted}");
    }
    // check-config prints them back, and the API's URL defaults to the first.
    let c = latch::Config::from_toml(DOMAINS).unwrap();
    assert_eq!(c.public_url.as_deref(), Some("http://auth.example.test"));
    let text = c.to_string();
    assert!(
        text.contains(
            "[[forward_auth.domains]]\ncookie_domain = \"example.org\"\npublic_url = \
             \"http://auth.example.org\"\nlogin_url = \"http://login.example.org/sign-in\""
        ),
        "{text}"
    );
    assert!(latch::Config::from_toml(&text).is_ok(), "{text}");
}

#[test]
fn a_trusted_proxys_forwarded_host_picks_the_login_domain() {
    for (trusted, wanted) in [(true, "example.org"), (false, "example.test")] {
        let dir = TempDir::new("domains-xfh");
        let extra = if trusted {
            DOMAINS.to_owned()
        } else {
            DOMAINS.replace(
                "cookie_secure = false",
                "cookie_secure = false\ntrusted_proxies = [\"10.9.9.9/32\"]",
            )
        };
        let server = InProcess::new(&dir, &extra);
        let c = server.client();
        c.register("alice", "alice-password");
        // nginx's default: Host is latch's own address; the browser's host
        // comes in X-Forwarded-Host.
        let page = c.get(
            "/login",
            &[("X-Forwarded-Host", "auth.example.org"), BROWSER],
        );
        let (nonce, _) = set_cookie(&page, "latch_form").unwrap();
        let body = format!(
            "csrf={}&username=alice&password=alice-password",
            latch::redirect::encode_query_value(&csrf(&page.text()))
        );
        let origin = format!("http://auth.{wanted}");
        let res = c.request(
            "POST",
            "/login",
            &[
                ("X-Forwarded-Host", "auth.example.org"),
                ("Origin", origin.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &format!("latch_form={nonce}")),
            ],
            Some(body.as_bytes()),
        );
        assert_eq!(res.status, 303, "trusted {trusted}: {}", res.text());
        let (_, header) = set_cookie(&res, "latch_session").unwrap();
        assert!(header.contains(&format!("Domain={wanted}")), "{header}");
    }
}

#[test]
fn an_error_page_links_to_the_domain_a_trusted_proxy_names() {
    // Found by review: the error page was shaped outside the request's
    // context, so behind nginx (Host = latch's own address) it linked to
    // the first domain's login page.
    let dir = TempDir::new("domains-errpage");
    let server = InProcess::new(&dir, DOMAINS);
    let c = server.client();
    let res = c.request(
        "POST",
        "/login",
        &[
            ("X-Forwarded-Host", "auth.example.org"),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            BROWSER,
        ],
        Some(b"csrf=x&username=a&password=b"),
    );
    assert_eq!(res.status, 403);
    let page = res.text();
    assert!(page.contains("http://auth.example.org/login"), "{page}");
    assert!(!page.contains("auth.example.test"), "{page}");
}
