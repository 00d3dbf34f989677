//! Browsers get pages, clients get answers they can read: HTML refusals on
//! forward auth and latch's pages, a sign-out link, HEAD wherever GET, a
//! message that names `cookie_secure`, and a 413 that clients which send
//! the whole body first still read.

use latch::Clock;

use crate::forward::{open_login, session, set_cookie, submit_login, Form, FA_CONFIG};
use crate::support::*;

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

fn start(extra: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new("pages");
    let server = InProcess::start(&dir, &format!("{FA_CONFIG}{extra}"), Clock::system());
    server.client.register("alice", "alice-password");
    server.client.register("bob", "bob-password");
    (dir, server)
}

#[test]
fn a_group_denial_is_a_page_for_browsers_and_json_for_scripts() {
    let (_dir, server) = start("");
    let c = server.client;
    let bob = session(&c, "bob", "bob-password");
    for flavor in ["/auth", "/auth/nginx"] {
        let url = format!("{flavor}?group=admins");
        let res = c.get(&url, &[BROWSER, ("Cookie", &bob)]);
        assert_eq!(res.status, 403);
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        let page = res.text();
        assert!(
            page.contains("This account is not in a group allowed here."),
            "{page}"
        );
        // Ways forward, on latch's own host (the page is shown on the app's).
        assert!(
            page.contains(concat!(
                r#"href="http://auth.example.test/logout"#,
                r#"?rd=http%3A%2F%2Fauth.example.test%2Flogin""#
            )),
            "{page}"
        );
        assert!(
            page.contains(r#"href="http://auth.example.test/""#),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(res.header("content-security-policy").is_some());
        // Signing in as someone else comes back to the refused page.
        if flavor == "/auth" {
            let res = c.get(
                &url,
                &[
                    BROWSER,
                    ("Cookie", &bob),
                    ("X-Forwarded-Proto", "https"),
                    ("X-Forwarded-Host", "app.example.test"),
                    ("X-Forwarded-Uri", "/admin/x"),
                ],
            );
            let page = res.text();
            let back = latch::redirect::encode_query_value(&format!(
                "http://auth.example.test/login?rd={}",
                latch::redirect::encode_query_value("https://app.example.test/admin/x")
            ));
            assert!(
                page.contains(&format!(
                    "href=\"http://auth.example.test/logout?rd={back}\""
                )),
                "{page}"
            );
            // Followed, the link signs out and lands on the login page
            // that returns there.
            let res = c.get(
                &format!("/logout?rd={back}"),
                &[BROWSER, ("Cookie", &session(&c, "bob", "bob-password"))],
            );
            assert_eq!(
                res.header("location"),
                Some(
                    "http://auth.example.test/login?rd=https%3A%2F%2Fapp.example.test%2Fadmin%2Fx"
                )
            );
        }
        // Scripts and XHRs keep the JSON.
        for extra in [&[][..], &[("X-Requested-With", "XMLHttpRequest")]] {
            let mut headers = vec![("Cookie", bob.as_str())];
            headers.extend_from_slice(extra);
            if !extra.is_empty() {
                headers.push(BROWSER);
            }
            let res = c.get(&url, &headers);
            assert_eq!(res.status, 403);
            assert_eq!(res.error_code(), "forbidden");
        }
    }
}

#[test]
fn refusals_on_the_login_page_are_pages_and_name_cookie_secure_on_plain_http() {
    // latch on plain http with the default cookie_secure = true: the
    // browser drops the Secure form cookie, and the post arrives without.
    let dir = TempDir::new("plainhttp");
    let server = InProcess::start(&dir, "public_url = \"http://auth.lan\"\n", Clock::system());
    let c = server.client;
    c.register("alice", "alice-password");
    let form = open_login(&c, "");
    let without = Form {
        cookie: String::new(),
        token: form.token.clone(),
    };
    let res = submit_login(
        &c,
        &without,
        "alice",
        "alice-password",
        None,
        &[("Origin", "http://auth.lan")],
    );
    assert_eq!(res.status, 403);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let page = res.text();
    assert!(page.contains("cookie_secure"), "{page}");
    assert!(set_cookie(&res, "latch_session").is_none());
    // Over https the same refusal stays the generic one.
    let res = submit_login(
        &c,
        &without,
        "alice",
        "alice-password",
        None,
        &[("Origin", "https://auth.lan")],
    );
    assert_eq!(res.status, 403);
    assert!(!res.text().contains("cookie_secure"));
    // A script posting the form gets JSON.
    let res = c.request(
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "http://auth.lan"),
        ],
        Some(b"username=alice&password=alice-password"),
    );
    assert_eq!(res.status, 403);
    assert!(res.json()["message"]
        .as_str()
        .unwrap()
        .contains("cookie_secure"));
}

#[test]
fn a_sign_out_link_ends_the_session_and_follows_a_safe_rd() {
    let (_dir, server) = start("");
    let c = server.client;
    for (rd, expected) in [
        (
            "?rd=https%3A%2F%2Fapp.example.test%2Fbye",
            "https://app.example.test/bye",
        ),
        (
            "?rd=https%3A%2F%2Fevil.test%2F",
            "http://auth.example.test/login",
        ),
        ("?rd=%2F%2Fevil.test", "http://auth.example.test/login"),
        ("", "http://auth.example.test/login"),
    ] {
        let cookie = session(&c, "alice", "alice-password");
        assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
        let res = c.get(&format!("/logout{rd}"), &[BROWSER, ("Cookie", &cookie)]);
        assert_eq!(res.status, 302, "{rd}");
        assert_eq!(res.header("location"), Some(expected), "{rd}");
        let (value, header) = set_cookie(&res, "latch_session").unwrap();
        assert_eq!(value, "");
        assert!(header.contains("Max-Age=0") && header.contains("Domain=example.test"));
        assert_eq!(
            c.get("/auth", &[("Cookie", &cookie)]).status,
            401,
            "revoked"
        );
    }
    // Not signed in, or with junk: still a redirect, nothing to revoke.
    let res = c.get("/logout", &[("Cookie", "latch_session=junk")]);
    assert_eq!(res.status, 302);
    let res = c.get("/logout?rd=%zz", &[]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some("http://auth.example.test/login")
    );
}

#[test]
fn head_works_wherever_get_does() {
    let (_dir, server) = start("");
    let c = server.client;
    let token = c.token("alice", "alice-password");
    let cookie = session(&c, "alice", "alice-password");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cookie_line = format!("Cookie: {cookie}\r\n");
    for (path, extra, status) in [
        ("/login", "", 200),
        ("/", cookie_line.as_str(), 200),
        ("/healthz", "", 200),
        ("/api/resource", auth.as_str(), 200),
        ("/api/users/me", auth.as_str(), 200),
        ("/api/keys", auth.as_str(), 200),
        ("/api/users/1", auth.as_str(), 200),
        ("/auth", cookie_line.as_str(), 200),
        ("/logout?rd=%2F", "", 302),
        ("/api/resource", "", 401),
    ] {
        let head = c.raw(
            format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
                .as_bytes(),
        );
        let get = c.raw(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
                .as_bytes(),
        );
        assert_eq!(head.status, status, "HEAD {path}");
        assert_eq!(get.status, status, "GET {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    // HEAD /logout, even with the cookie (a link checker), signs nobody out.
    let head = c.raw(
        format!("HEAD /logout HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{cookie_line}\r\n")
            .as_bytes(),
    );
    assert_eq!(head.status, 302);
    assert_eq!(c.get("/auth", &[("Cookie", &cookie)]).status, 200);
}

/// Python's `http.client` sends the whole body before it reads anything.
#[test]
fn a_413_is_read_by_clients_that_send_the_whole_body_first() {
    if !require_program("python3") {
        return;
    }
    let (_dir, server) = start("");
    let addr = server.client.addr;
    let script = format!(
        r#"
import http.client, json, sys
for size in (64 * 1024, 1024 * 1024):
    conn = http.client.HTTPConnection("{host}", {port}, timeout=20)
    body = b"{{" + b" " * size + b"}}"
    conn.request("POST", "/api/users", body=body, headers={{"Content-Type": "application/json"}})
    res = conn.getresponse()
    data = json.loads(res.read())
    print(res.status, data["error"], res.getheader("Connection"))
    conn.close()
# Chunked, no Content-Length: the limit is found while reading.
conn = http.client.HTTPConnection("{host}", {port}, timeout=20)
conn.request("POST", "/api/users", body=iter([b"x" * 8192] * 64),
             headers={{"Content-Type": "application/json"}}, encode_chunked=True)
res = conn.getresponse()
print(res.status, json.loads(res.read())["error"], res.getheader("Connection"))
"#,
        host = addr.ip(),
        port = addr.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["413 payload_too_large close"; 3], "{stdout}");
    server.client.assert_alive("alice", "alice-password");
}

#[test]
fn a_client_waiting_to_continue_is_refused_before_it_sends() {
    let (_dir, server) = start("");
    let mut stream = std::net::TcpStream::connect(server.client.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let res = read_response(&mut stream).unwrap();
    assert_eq!(res.status, 413, "no 100 Continue first");
    server.client.assert_alive("alice", "alice-password");
}
