//! The real nginx (`auth_request`) and the real Caddy (`forward_auth` with
//! `copy_headers`) in front of an upstream that echoes the headers it
//! receives, with latch behind `/auth` and `/auth/nginx`. The proxy
//! configurations are the README's, with ports filled in.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::forward::{open_login, set_cookie, submit_login};
use crate::support::*;

/// An upstream app that answers every request with the headers it got.
pub struct Upstream {
    pub port: u16,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = echo(stream, &counter);
                });
            }
        });
        Upstream { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn echo(mut stream: TcpStream, hits: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut headers = serde_json::Map::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                let entry = headers.entry(n).or_insert_with(|| Value::Array(vec![]));
                entry.as_array_mut().unwrap().push(Value::String(v));
            }
        }
        let mut body = vec![0u8; length];
        std::io::Read::read_exact(&mut reader, &mut body)?;
        hits.fetch_add(1, Ordering::SeqCst);
        let body = json!({"request": line.trim_end(), "headers": headers}).to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}

/// A proxy process, killed on drop.
pub struct Proxy {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "proxy exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "proxy did not listen on {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The README's Caddyfile, with ports filled in.
pub fn caddyfile(port: u16, latch: u16, upstream: u16) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- caddyfile:begin -->")
        .expect("README has the Caddyfile");
    let block = &readme[start..];
    let code = &block[block.find("```caddyfile\n").unwrap() + 13..];
    let code = &code[..code.find("```").unwrap()];
    let global = "{\n\tadmin off\n\tauto_https off\n}\n\n";
    format!("{global}{code}")
        .replace(
            "app.example.com {",
            &format!("http://app.example.test:{port} {{"),
        )
        .replace(
            "auth.example.com {",
            &format!("http://auth.example.test:{port} {{"),
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{latch}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
}

pub fn start_caddy(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let config = dir.path().join("Caddyfile");
    std::fs::write(&config, caddyfile(port, latch, upstream)).unwrap();
    let log = dir.path().join("caddy.log");
    let home = dir.path().join("caddy-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&config)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, &log);
    Proxy { child, port, log }
}

/// The README's nginx server block, inside a minimal nginx.conf.
pub fn nginx_conf(dir: &Path, port: u16, latch: u16, upstream: u16) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- nginx:begin -->")
        .expect("README has the nginx block");
    let block = &readme[start..];
    let code = &block[block.find("```nginx\n").unwrap() + 9..];
    let code = &code[..code.find("```").unwrap()];
    let d = dir.display();
    let code = code
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
        .replace(
            "server_name app.example.com;",
            "server_name app.example.test;",
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{latch}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/nginx-tmp/body;\n proxy_temp_path {d}/nginx-tmp/proxy;\n\
         fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n scgi_temp_path {d}/nginx-tmp/scgi;\n\
         {code}\n}}\n"
    )
}

fn start_nginx(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    std::fs::create_dir_all(dir.path().join("nginx-tmp")).unwrap();
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, nginx_conf(dir.path(), port, latch, upstream)).unwrap();
    let log = dir.path().join("nginx-error.log");
    let mut child = Command::new("nginx")
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, &log);
    Proxy { child, port, log }
}

/// A request to the proxy for `host` (app or auth) at `path`.
fn via(proxy: &Proxy, host: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let host = format!("{host}.example.test:{}", proxy.port);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    Client {
        addr: format!("127.0.0.1:{}", proxy.port).parse().unwrap(),
    }
    .raw(req.as_bytes())
}

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

/// What the upstream saw of a request header, if anything.
fn seen(res: &Response, header: &str) -> Vec<String> {
    assert_eq!(res.status, 200, "{}", res.text());
    res.json()["headers"][header]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// The whole protected-app story through `proxy`.
fn story(proxy: &Proxy, server: &Server, upstream: &Upstream, rd_scheme: &str) {
    let c = server.client();
    let port = proxy.port;
    let log = || std::fs::read_to_string(&proxy.log).unwrap_or_default();

    // Not signed in: a browser goes to the login page, with the right rd.
    let res = via(proxy, "app", "GET", "/some/page?x=1", &[BROWSER]);
    assert_eq!(res.status, 302, "{}\n{}", res.text(), log());
    let rd = format!("{rd_scheme}://app.example.test:{port}/some/page?x=1");
    let expected = format!(
        "http://auth.example.test:{port}/login?rd={}",
        latch::redirect::encode_query_value(&rd)
    );
    assert_eq!(res.header("location"), Some(expected.as_str()));
    // A script gets 401.
    let res = via(
        proxy,
        "app",
        "GET",
        "/api/data",
        &[("Accept", "application/json")],
    );
    assert_eq!(res.status, 401, "{}", res.text());
    assert_eq!(
        upstream.hits(),
        0,
        "the upstream was reached without a login"
    );

    // The login page sets the cookie and sends the browser back.
    let form = open_login(&c, "");
    let origin = format!("http://auth.example.test:{port}");
    let res = submit_login(
        &c,
        &form,
        "alice",
        "alice-password",
        Some(&rd),
        &[("Origin", &origin)],
    );
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some(rd.as_str()));
    let cookie = format!(
        "latch_session={}",
        set_cookie(&res, "latch_session").unwrap().0
    );

    // With the cookie the upstream sees who it is; forged headers are gone.
    let res = via(
        proxy,
        "app",
        "GET",
        "/some/page?x=1",
        &[
            BROWSER,
            ("Cookie", &cookie),
            ("Remote-User", "admin"),
            ("Remote-Email", "boss@evil.test"),
            ("Remote-Groups", "admins,root"),
        ],
    );
    assert_eq!(seen(&res, "remote-user"), ["alice"], "{}", log());
    assert_eq!(seen(&res, "remote-groups"), ["admins,media"]);
    assert_eq!(seen(&res, "remote-name"), ["alice"]);
    assert!(
        seen(&res, "remote-email").iter().all(|e| e.is_empty()),
        "{:?}",
        seen(&res, "remote-email")
    );
    // Forged headers without a login never reach the upstream at all.
    let before = upstream.hits();
    let res = via(
        proxy,
        "app",
        "GET",
        "/",
        &[("Remote-User", "alice"), ("Accept", "application/json")],
    );
    assert_eq!(res.status, 401);
    assert_eq!(upstream.hits(), before);

    // Bearer through the proxy, for scripts.
    let token = c.token("bob", "bob-password");
    let res = via(
        proxy,
        "app",
        "GET",
        "/api/data",
        &[("Authorization", &bearer(&token)), ("Remote-User", "alice")],
    );
    assert_eq!(seen(&res, "remote-user"), ["bob"]);
    assert_eq!(seen(&res, "remote-email"), ["bob@example.test"]);
    // Basic with the password, too.
    let res = via(
        proxy,
        "app",
        "GET",
        "/api/data",
        &[("Authorization", &basic("bob", "bob-password"))],
    );
    assert_eq!(seen(&res, "remote-user"), ["bob"]);

    // Groups: /admin needs "admins".
    let res = via(
        proxy,
        "app",
        "GET",
        "/admin/panel",
        &[BROWSER, ("Cookie", &cookie)],
    );
    assert_eq!(seen(&res, "remote-user"), ["alice"]);
    let res = via(
        proxy,
        "app",
        "GET",
        "/admin/panel",
        &[("Authorization", &bearer(&token))],
    );
    assert_eq!(res.status, 403, "{}", res.text());

    // Logout kills the old cookie value.
    let res = c.request("POST", "/logout", &[("Cookie", &cookie)], None);
    assert_eq!(res.status, 200);
    let res = via(
        proxy,
        "app",
        "GET",
        "/some/page?x=1",
        &[BROWSER, ("Cookie", &cookie)],
    );
    assert_eq!(res.status, 302);
    let res = via(proxy, "app", "GET", "/api/data", &[("Cookie", &cookie)]);
    assert_eq!(res.status, 401);
}

pub fn latch_for(dir: &TempDir, port: u16) -> Server {
    let server = Server::start(
        dir,
        &format!(
            "public_url = \"http://auth.example.test:{port}\"\n[forward_auth]\ncookie_domain = \"example.test\"\ncookie_secure = false\n"
        ),
    );
    let c = server.client();
    c.register("alice", "alice-password");
    c.post_json(
        "/api/users",
        &json!({"username": "bob", "password": "bob-password", "email": "bob@example.test"}),
        &[],
    );
    server.set_groups("alice", &["admins", "media"]);
    server
}

#[test]
fn caddy_forward_auth() {
    if !require_program("caddy") {
        return;
    }
    let dir = TempDir::new("caddy");
    let upstream = Upstream::start();
    // The proxy port must be known before latch starts (public_url).
    let port = free_port();
    let server = latch_for(&dir, port);
    let proxy = start_caddy(&dir, port, server.addr.port(), upstream.port);
    story(&proxy, &server, &upstream, "http");
}

#[test]
fn nginx_auth_request() {
    if !require_program("nginx") {
        return;
    }
    let dir = TempDir::new("nginx");
    let upstream = Upstream::start();
    let port = free_port();
    let server = latch_for(&dir, port);
    let proxy = start_nginx(&dir, port, server.addr.port(), upstream.port);
    story(&proxy, &server, &upstream, "http");
}
