//! Bad input: each case gets its exact 4xx with a JSON error, and the
//! server stays up with nothing lost.

use crate::support::*;

fn setup(tag: &str, extra: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new(tag);
    let server = InProcess::new(&dir, extra);
    server.client().register("alice", "alice-password");
    (dir, server)
}

#[test]
fn malformed_json_bodies() {
    let (_dir, server) = setup("badjson", "");
    let c = server.client();
    let json_ct = [("Content-Type", "application/json")];
    let cases: [(&str, &[u8]); 7] = [
        ("/api/users", b"{"),
        ("/api/users", b"not json"),
        ("/api/users", b""),
        (
            "/api/users",
            b"{\"username\": \"\xff\xfe\", \"password\": \"password1\"}",
        ),
        ("/login", b"{\"username\": \"alice\", \"password\": }"),
        ("/login", b"\xc3\x28"),
        ("/login", b"[]"),
    ];
    for (path, body) in cases {
        let res = c.request("POST", path, &json_ct, Some(body));
        assert_eq!(res.status, 400, "{path} {body:?}: {}", res.text());
        assert_eq!(res.error_code(), "invalid_request");
        assert_eq!(res.header("content-type"), Some("application/json"));
    }
    // Missing fields in a well-formed login.
    let res = c.post_json("/login", &json!({"username": "alice"}), &[]);
    assert_eq!(res.status, 400);
    // Not JSON at all.
    let res = c.request(
        "POST",
        "/api/users",
        &[("Content-Type", "text/plain")],
        Some(b"username=x"),
    );
    assert_eq!(res.status, 415);
    assert_eq!(res.error_code(), "unsupported_media_type");
    // No Content-Type is read as JSON (curl -d without -H sends a form type,
    // which is refused above; scripts that send none still work).
    let res = c.request(
        "POST",
        "/api/users",
        &[],
        Some(br#"{"username":"bob","password":"bob-password"}"#),
    );
    assert_eq!(res.status, 201);
    c.assert_alive("alice", "alice-password");
    c.assert_alive("bob", "bob-password");
}

#[test]
fn malformed_credentials() {
    let (_dir, server) = setup("badcreds", "");
    let c = server.client();
    for value in [
        "Basic !!!!",
        "Basic bm9jb2xvbg==",     // no colon
        "Basic /w==",             // not UTF-8
        "Basic OnBhc3N3b3JkMQ==", // empty username
        "Basic",
        "Digest username=\"alice\"",
        "NoSchemeAtAll",
    ] {
        let res = c.resource(value);
        res.assert_challenges(false);
        assert_eq!(res.json()["message"], "malformed credentials", "{value}");
    }
    // Raw bytes that are not UTF-8 inside the header value.
    let res = c.raw(
        b"GET /api/resource HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xff\xfe\r\n\
                      Connection: close\r\n\r\n",
    );
    assert_eq!(res.status, 401);
    let res = c.raw(
        b"GET /api/resource HTTP/1.1\r\nHost: x\r\nAuthentication-Token: \xff\xfe\r\n\
                      Connection: close\r\n\r\n",
    );
    res.assert_challenges(true);
    // Bad percent-escapes in the query token.
    c.get("/api/resource?auth_token=%zz", &[])
        .assert_challenges(true);
    c.get("/api/resource?auth_token=%ff%fe", &[])
        .assert_challenges(true);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn oversize_bodies() {
    let (_dir, server) = setup("oversize", "");
    let c = server.client();
    // Declared too big: refused without reading it. (The client sends no
    // body and says so by closing its side, or the server would linger a
    // few seconds for a body to drain: pages.rs tests that.)
    let res = c.raw_then_close(
        b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000000\r\n\r\n",
    );
    assert_eq!(res.status, 413);
    assert_eq!(res.error_code(), "payload_too_large");
    // Chunked and too big: refused once the limit is crossed.
    let chunk = "a".repeat(8000);
    let mut req = String::from(
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..3 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let res = c.raw(req.as_bytes());
    assert_eq!(res.status, 413);
    // Just under the limit is read (and refused as JSON, not as size).
    let body = format!("\"{}\"", "a".repeat(16 * 1024 - 2));
    let res = c.request(
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(res.status, 400);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let (_dir, server) = setup("routes", "");
    let c = server.client();
    for path in [
        "/nope",
        "/api",
        "/api/nope",
        "/api/users/1/extra",
        "/a/b/c/d/e/f",
        "/api/token/",
    ] {
        let res = c.get(path, &[]);
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(res.error_code(), "not_found");
    }
    for (method, path, allow) in [
        ("GET", "/api/users", "POST"),
        ("DELETE", "/api/users/1", "GET, HEAD"),
        ("POST", "/api/token", "GET, HEAD"),
        ("PUT", "/api/resource", "GET, HEAD"),
        ("PUT", "/login", "GET, HEAD, POST"),
        ("DELETE", "/", "GET, HEAD"),
        ("PUT", "/logout", "GET, HEAD, POST"),
        ("PUT", "/api/users/me", "GET, HEAD, PATCH, DELETE"),
        ("GET", "/api/logout-all", "POST"),
    ] {
        let res = c.request(method, path, &[], None);
        assert_eq!(res.status, 405, "{method} {path}");
        assert_eq!(res.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(res.error_code(), "method_not_allowed");
    }
    c.assert_alive("alice", "alice-password");
}

#[test]
fn garbage_requests_do_not_hurt() {
    let (_dir, server) = setup("garbage", "");
    let c = server.client();
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/resource HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let res = c.raw(raw);
        assert!((400..500).contains(&res.status), "{raw:?}: {}", res.status);
    }
    c.assert_alive("alice", "alice-password");
}

#[test]
fn slow_senders_are_cut_off() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let (_dir, server) = setup(
        "slow",
        "[limits]\nheader_read_timeout = 1\n[scrypt]\nlog_n = 4\n",
    );
    // Both at once, so the test waits out one timeout, not two.
    let connect = || {
        let stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    };
    let (mut head, mut body) = (connect(), connect());
    let start = Instant::now();
    // Headers never finished: the connection is closed after the timeout.
    head.write_all(b"GET /api/resource HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // A body that never arrives: 408, then closed.
    body.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    )
    .unwrap();
    let res = read_response(&mut body).unwrap();
    assert_eq!(res.status, 408);
    assert_eq!(res.error_code(), "request_timeout");
    let mut buf = Vec::new();
    let _ = head.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.client().assert_alive("alice", "alice-password");
}

#[test]
fn keep_alive_serves_many_requests() {
    use std::io::Write;
    let (_dir, server) = setup("keepalive", "");
    let token = server.client().token("alice", "alice-password");
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    let request =
        format!("GET /api/resource HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    for _ in 0..20 {
        // One write per request (several small ones would wait on Nagle).
        stream.write_all(request.as_bytes()).unwrap();
        let res = read_response(&mut stream).unwrap();
        assert_eq!(res.status, 200);
    }
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn hundreds_of_random_malformed_requests() {
    let (_dir, server) = setup("fuzzreq", "");
    let c = server.client();
    let token = c.token("alice", "alice-password");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let methods: &[&[u8]] = &[
        b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"G\xffT", b"", b"TRACE",
    ];
    let paths: &[&[u8]] = &[
        b"/",
        b"/api/users",
        b"/api/users/1",
        b"/api/users/me",
        b"/api/token",
        b"/api/resource",
        b"/login",
        b"/logout",
        b"/auth",
        b"/auth/nginx",
        b"/api/keys",
        b"/api/keys/1",
        b"/api/users/me/password",
        b"/api/logout-all",
        b"/%00",
        b"/../../etc/passwd",
        b"*",
        b"/api/resource?auth_token=%",
        b"/login?rd=%zz",
        b"/auth?group=%ff",
    ];
    let headers: &[&[u8]] = &[
        b"Authorization: Bearer ",
        b"Authorization: Basic ",
        b"Authentication-Token: ",
        b"Cookie: latch_session=",
        b"Content-Type: application/json",
        b"Content-Type: application/x-www-form-urlencoded",
        b"X-Forwarded-Uri: ",
        b"X-Original-URL: ",
        b"Accept: text/html",
        b"Origin: ",
        b"Content-Type: ",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..400 {
        let mut req = Vec::new();
        req.extend_from_slice(rng.pick(methods));
        req.push(b' ');
        req.extend_from_slice(rng.pick(paths));
        if rng.next() % 4 == 0 {
            req.extend_from_slice(&rng.bytes(8));
        }
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for _ in 0..rng.next() % 4 {
            req.extend_from_slice(rng.pick(headers));
            match rng.next() % 3 {
                0 => req.extend_from_slice(token.as_bytes()),
                1 => req.extend_from_slice(
                    &rng.bytes(30)
                        .iter()
                        .map(|b| (*b).clamp(32, 126))
                        .collect::<Vec<_>>(),
                ),
                _ => req.extend_from_slice(&rng.bytes(30)),
            }
            req.extend_from_slice(b"\r\n");
        }
        let body = if rng.next() % 2 == 0 {
            rng.bytes(64)
        } else {
            let pick = [
                &br#"{"username":"alice","password":"alice-password"}"#[..],
                b"{",
                b"[]",
                b"null",
                br#"{"name":"k","expires_in":1e400}"#,
            ];
            rng.pick(&pick).to_vec()
        };
        req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(&body);
        let res = c.try_raw(&req).unwrap_or_else(|e| {
            panic!(
                "request {i} got no answer ({e}): {:?}",
                String::from_utf8_lossy(&req)
            )
        });
        assert!(
            res.status < 500,
            "request {i} got {}: {:?}",
            res.status,
            String::from_utf8_lossy(&req)
        );
        *statuses.entry(res.status).or_insert(0) += 1;
    }
    eprintln!("statuses: {statuses:?}");
    assert!(statuses.len() >= 4, "too little variety: {statuses:?}");
    c.assert_alive("alice", "alice-password");
}
