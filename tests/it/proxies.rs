//! The real Caddy (`forward_auth`), nginx (`auth_request`) and Traefik
//! (ForwardAuth) in front of a WSGI app (Python's `wsgiref`) that answers
//! with what it received, with latch behind `/auth` and `/auth/nginx`. The
//! proxy configurations are what `latch proxy-snippet` prints (the
//! README's blocks, which `readme.rs` checks are the same text), with only
//! the listening port and TLS changed; the `*_access_rules` tests put
//! latch on the README's policy example.
//! The test client connects from 127.0.0.2, so the client's address can be
//! told apart from the proxies' (127.0.0.1, latch's only trusted proxy).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::forward::{csrf, set_cookie};
use crate::support::*;

/// The upstream app: stdlib `wsgiref`, threaded and quiet. Every request
/// gets JSON with the WSGI environ entries an app reads identity and paths
/// from, and the raw header list as received. `GET /__upstream_hits`
/// (asked directly, never through a proxy) tells how many requests it
/// answered, itself not counted.
const WSGI_APP: &str = r#"
import json, sys, threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, WSGIRequestHandler, make_server

class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        env["test.raw_headers"] = [[k, v] for k, v in self.headers.items()]
        env["test.raw_path"] = self.path
        return env

    def log_message(self, *args):
        pass

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

hits = 0
lock = threading.Lock()
KEEP = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR")

def app(environ, start_response):
    global hits
    if environ["test.raw_path"] == "/__upstream_hits":
        with lock:
            body = str(hits)
    else:
        with lock:
            hits += 1
        env = {k: v for k, v in environ.items() if k.startswith("HTTP_") or k in KEEP}
        body = json.dumps(
            {"environ": env, "headers": environ["test.raw_headers"],
             "path": environ["test.raw_path"]},
            separators=(",", ":"),
        )
    body = body.encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// The upstream app process, killed on drop.
pub struct Upstream {
    pub port: u16,
    child: Child,
}

impl Upstream {
    pub fn start() -> Upstream {
        let mut child = Command::new("python3")
            .args(["-c", WSGI_APP])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the upstream app");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the upstream app did not start: {line:?}"));
        Upstream { port, child }
    }

    /// How many requests reached the app so far.
    pub fn hits(&self) -> u64 {
        let res = Client {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
        }
        .get("/__upstream_hits", &[]);
        assert_eq!(res.status, 200);
        res.text().parse().unwrap()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proxy process, stopped on drop.
pub struct Proxy {
    child: Child,
    /// "caddy", "nginx" or "traefik".
    pub name: &'static str,
    pub port: u16,
    log: PathBuf,
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM first: nginx's master then stops its workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port for a proxy, which must be known before the proxy (or latch's
/// `public_url`) starts. Taken below the kernel's ephemeral range, where
/// every `:0` bind of the other tests running beside this one lands: a
/// port from there could be handed to one of them between this check and
/// the proxy's own bind (Caddy then failed with "address already in
/// use"). Each port is handed out once per run, and only if it is free
/// on every address now.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const LOW: u32 = 10_000;
    if ephemeral_low <= LOW + 1_000 {
        // An unusual range: fall back to what the kernel hands out.
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let span = ephemeral_low - LOW;
    // Runs side by side (two checkouts) start apart.
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (start + n) % span).unwrap();
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port in {LOW}..{ephemeral_low}");
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

/// What `latch proxy-snippet PROXY --app app.example.test` prints, with
/// latch's host `auth.example.test` and latch and the app on these ports
/// (`--group` for each of `groups`).
pub fn printed(proxy: &str, latch: u16, upstream: u16, groups: &[&str]) -> String {
    let (latch, upstream) = (
        format!("127.0.0.1:{latch}"),
        format!("127.0.0.1:{upstream}"),
    );
    let mut args = vec!["proxy-snippet", proxy, "--app", "app.example.test"];
    args.extend(["--auth", "auth.example.test", "--latch", &latch]);
    args.extend(["--upstream", &upstream]);
    for group in groups {
        args.extend(["--group", group]);
    }
    let dir = TempDir::new("snippet");
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        "[forward_auth]\ncookie_domain = \"example.test\"\n",
    )
    .unwrap();
    args.extend(["--config", config.to_str().unwrap()]);
    let (status, out, err) = latch_cmd(&args, &[]);
    assert!(
        status.success() && err.is_empty(),
        "{args:?}: {status}: {err}"
    );
    out
}

/// The printed Caddyfile, over plain http on `port`.
pub fn caddyfile(port: u16, latch: u16, upstream: u16) -> String {
    caddyfile_for(port, &printed("caddy", latch, upstream, &[]))
}

fn caddyfile_for(port: u16, code: &str) -> String {
    let global = "{\n\tadmin off\n\tauto_https off\n}\n\n";
    let mut caddyfile = format!("{global}{code}");
    for name in ["app", "auth"] {
        caddyfile = edited(
            &caddyfile,
            &format!("\n{name}.example.test {{"),
            &format!("\nhttp://{name}.example.test:{port} {{"),
        );
    }
    caddyfile
}

pub fn start_caddy(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    spawn_caddy(dir, port, &caddyfile(port, latch, upstream))
}

/// Caddy on this Caddyfile, listening on `port`.
fn spawn_caddy(dir: &TempDir, port: u16, caddyfile: &str) -> Proxy {
    let config = dir.path().join("Caddyfile");
    std::fs::write(&config, caddyfile).unwrap();
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
    Proxy {
        child,
        name: "caddy",
        port,
        log,
    }
}

/// The printed nginx blocks, inside a minimal nginx.conf, over plain http
/// on `port`.
pub fn nginx_conf(dir: &Path, port: u16, latch: u16, upstream: u16) -> String {
    nginx_conf_for(dir, port, &printed("nginx", latch, upstream, &[]))
}

fn nginx_conf_for(dir: &Path, port: u16, code: &str) -> String {
    let code = edited(
        code,
        "listen 443 ssl;",
        &format!("listen 127.0.0.1:{port};"),
    )
    .lines()
    .filter(|l| !l.trim_start().starts_with("ssl_"))
    .collect::<Vec<_>>()
    .join("\n");
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n\
         client_body_temp_path {d}/nginx-tmp/body;\n proxy_temp_path {d}/nginx-tmp/proxy;\n\
         fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n\
         scgi_temp_path {d}/nginx-tmp/scgi;\n\
         {code}\n}}\n"
    )
}

fn start_nginx(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    spawn_nginx(dir, port, &nginx_conf(dir.path(), port, latch, upstream))
}

/// nginx on this nginx.conf, listening on `port`.
fn spawn_nginx(dir: &TempDir, port: u16, conf: &str) -> Proxy {
    std::fs::create_dir_all(dir.path().join("nginx-tmp")).unwrap();
    let config = dir.path().join("nginx.conf");
    std::fs::write(&config, conf).unwrap();
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
    Proxy {
        child,
        name: "nginx",
        port,
        log,
    }
}

/// Drops the TLS lines (`tls: {}` and the certificate files), since the
/// tests speak plain http, like the `ssl_` lines of the nginx block.
fn without_tls(code: &str) -> String {
    code.lines()
        .filter(|l| {
            let l = l.trim_start();
            !["tls:", "certificates:", "- certFile:", "keyFile:"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The printed Traefik static and dynamic configurations, over plain http
/// on `port`, the dynamic one in `dir`.
pub fn traefik_configs(dir: &Path, port: u16, latch: u16, upstream: u16) -> (String, String) {
    traefik_configs_for(dir, port, &printed("traefik", latch, upstream, &[]))
}

/// `latch proxy-snippet traefik-static` and `dynamic` (what `latch
/// proxy-snippet traefik` printed), over plain http on `port`.
fn traefik_configs_for(dir: &Path, port: u16, dynamic: &str) -> (String, String) {
    let (status, static_config, err) = latch_cmd(&["proxy-snippet", "traefik-static"], &[]);
    assert!(status.success(), "{err}");
    let static_config = edited(
        &edited(
            &without_tls(&static_config),
            "\":443\"",
            &format!("\"127.0.0.1:{port}\""),
        ),
        "/etc/traefik/latch.yml",
        dir.join("latch.yml").to_str().expect("a UTF-8 path"),
    );
    (static_config, without_tls(dynamic))
}

fn start_traefik(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let (static_config, dynamic) = traefik_configs(dir.path(), port, latch, upstream);
    spawn_traefik(dir, port, &static_config, &dynamic)
}

/// Traefik on these static and dynamic configurations (the dynamic one
/// where the static one's file provider looks), listening on `port`.
fn spawn_traefik(dir: &TempDir, port: u16, static_config: &str, dynamic: &str) -> Proxy {
    let config = dir.path().join("traefik.yml");
    std::fs::write(&config, static_config).unwrap();
    std::fs::write(dir.path().join("latch.yml"), dynamic).unwrap();
    spawn_traefik_with(dir, port, &[format!("--configFile={}", config.display())])
}

/// Traefik with these arguments, listening on `port`; it must start
/// without a warning.
fn spawn_traefik_with(dir: &TempDir, port: u16, args: &[String]) -> Proxy {
    let log = dir.path().join("traefik.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("traefik")
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, &log);
    let proxy = Proxy {
        child,
        name: "traefik",
        port,
        log,
    };
    // The routers come from the file provider a moment after the port
    // opens; until then every request gets Traefik's 404.
    let deadline = Instant::now() + Duration::from_secs(20);
    while via(&proxy, "app", "GET", "/", &[JSON], b"").status == 404 {
        assert!(Instant::now() < deadline, "no routers:\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The README's configuration starts without a single warning.
    let log = proxy.log();
    for level in ["WRN", "ERR", "FTL", "PNC"] {
        assert!(!log.contains(level), "Traefik logged {level}:\n{log}");
    }
    proxy
}

/// Where the test client connects from: not the proxies' address.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A TCP connection to `to` from `source` (bound before connecting).
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let stream = tokio_block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        socket.connect(to).await?.into_std()
    })
    .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// A request from 127.0.0.2 to the proxy for `host` (app or auth, under
/// example.test, or a full name).
pub fn via(
    proxy: &Proxy,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    // `app` is app.example.test; a full name (`app.example.org`) is itself.
    let host = if host.contains('.') {
        format!("{host}:{}", proxy.port)
    } else {
        format!("{host}.example.test:{}", proxy.port)
    };
    with_host_header(proxy, &host, method, path, headers, body)
}

/// A request from 127.0.0.2 to the proxy with this `Host` header, as is.
fn with_host_header(
    proxy: &Proxy,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, proxy.port));
    let mut stream = connect_from(CLIENT_IP, to);
    stream.write_all(&bytes).unwrap();
    read_response_to(&mut stream, method == "HEAD").unwrap()
}

const BROWSER: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");
const JSON: (&str, &str) = ("Accept", "application/json");
const XHR: (&str, &str) = ("X-Requested-With", "XMLHttpRequest");

/// Request headers, name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// The four identity headers, as latch and the README spell them.
const IDENTITY: [&str; 4] = [
    "Remote-User",
    "Remote-Groups",
    "Remote-Email",
    "Remote-Name",
];

/// A header name the way CGI, WSGI, PHP and nginx FastCGI turn it into a
/// variable: uppercase, every character but a letter or digit as `_`.
fn cgi_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Every spelling of `name` (such as `Remote-User`) that such a backend
/// reads as the same variable: other cases, and each separator HTTP allows.
fn spellings(name: &str) -> Vec<String> {
    let (remote, rest) = name.split_once('-').unwrap();
    let mut all = vec![
        name.to_owned(),
        name.to_ascii_lowercase().replace('-', "_"),
        name.to_ascii_uppercase(),
    ];
    for sep in "_.~!+|#$%&'*^`".chars() {
        all.push(format!("{remote}{sep}{rest}"));
    }
    all
}

/// Forged identity headers in every spelling, all four of them. Every
/// value contains "evil".
fn forged() -> Vec<(String, String)> {
    let values = ["evil", "admins,evil", "evil@evil.test", "evil-name"];
    IDENTITY
        .iter()
        .zip(values)
        .flat_map(|(name, value)| spellings(name).into_iter().map(move |n| (n, value.into())))
        .collect()
}

/// Forwarding headers a client has no business sending: those through
/// which frameworks learn the client's address, scheme, host or path
/// prefix, each in its usual spelling, with `_` for every `-` (the same
/// variable to CGI and WSGI), in lower case, and a few mixed or dotted
/// spellings (PHP reads `.` as `_`).
fn forged_forwarding() -> Vec<(String, String)> {
    let headers = [
        ("X-Forwarded-Host", "evil.example.net"),
        ("X-Forwarded-Proto", "gopher"),
        ("X-Forwarded-Port", "6666"),
        ("X-Forwarded-Prefix", "/evil"),
        ("X-Forwarded-Server", "evil"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Ssl", "gopher"),
        ("X-Forwarded-Scheme", "gopher"),
        ("X-Forwarded-Protocol", "gopher"),
        ("X-Forwarded-Uri", "/evil"),
        ("X-Forwarded-Method", "evil"),
        ("X-Forwarded", "for=6.6.6.6"),
        ("X-Real-IP", "6.6.6.6"),
        (
            "Forwarded",
            "for=6.6.6.6;host=evil.example.net;proto=gopher",
        ),
        ("Forwarded-For", "6.6.6.6"),
        ("X-Original-URL", "/evil"),
        ("X-Original-Host", "evil.example.net"),
        ("X-Original-For", "6.6.6.6"),
        ("X-Original-Proto", "gopher"),
        ("X-Rewrite-URL", "/evil"),
        ("X-Url-Scheme", "gopher"),
        ("Front-End-Https", "gopher"),
        ("X-Host", "evil.example.net"),
        ("Script-Name", "/evil"),
        ("X-Script-Name", "/evil"),
        ("Client-IP", "6.6.6.6"),
        ("X-Client-IP", "6.6.6.6"),
        ("True-Client-IP", "6.6.6.6"),
        ("CF-Connecting-IP", "6.6.6.6"),
        ("Fastly-Client-IP", "6.6.6.6"),
        ("X-Cluster-Client-IP", "6.6.6.6"),
    ];
    let mut all: Vec<(String, String)> = headers
        .iter()
        .flat_map(|(name, value)| {
            [
                name.to_string(),
                name.replace('-', "_"),
                name.to_ascii_lowercase(),
            ]
            .into_iter()
            .map(move |n| (n, value.to_string()))
        })
        .collect();
    for (name, value) in [
        ("X-Real_IP", "6.6.6.6"),
        ("X.Forwarded.Host", "evil.example.net"),
        ("X.Real.IP", "6.6.6.6"),
        ("x-forwarded_port", "6666"),
    ] {
        all.push((name.to_owned(), value.to_owned()));
    }
    all
}

fn with_forged<'a>(
    base: &[(&'a str, &'a str)],
    forged: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = base.to_vec();
    all.extend(forged.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    all
}

/// Asserts the app got exactly latch's identity, `expected` in the order
/// of [`IDENTITY`] (an empty value may also be absent), and nothing else
/// that a backend would read as one of those four variables.
fn assert_identity(res: &Response, expected: [&str; 4], what: &str) {
    assert_eq!(res.status, 200, "{what}: {}", res.text());
    let body = res.json();
    for (name, value) in IDENTITY.iter().zip(expected) {
        let var = format!("HTTP_{}", cgi_name(name));
        let seen = body["environ"][&var].as_str().unwrap_or_default();
        assert_eq!(seen, value, "{what}: {var} in {}", body["environ"]);
    }
    let mut seen = Vec::new();
    for pair in body["headers"].as_array().unwrap() {
        let (name, value) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        let var = cgi_name(name);
        assert!(
            !(var.starts_with("REMOTE") && value.contains("evil")),
            "{what}: a forged header reached the app: {name}: {value}"
        );
        if let Some(i) = IDENTITY.iter().position(|n| cgi_name(n) == var) {
            assert_eq!(name, IDENTITY[i], "{what}: an alias reached the app");
            assert_eq!(value, expected[i], "{what}: {name}");
            seen.push(name);
        }
    }
    seen.sort_unstable();
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen, unique, "{what}: a header came twice");
    for (name, value) in IDENTITY.iter().zip(expected) {
        assert!(
            value.is_empty() || seen.contains(name),
            "{what}: {name} missing"
        );
    }
}

/// Signs in on latch's login page, reached through the proxy; returns
/// `latch_session=<token>`.
fn sign_in(proxy: &Proxy, username: &str, password: &str, rd: &str) -> String {
    let res = via(
        proxy,
        "auth",
        "GET",
        &format!("/login?rd={}", latch::redirect::encode_query_value(rd)),
        &[BROWSER],
        b"",
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let (nonce, _) = set_cookie(&res, "latch_form").expect("a form cookie");
    let form_cookie = format!("latch_form={nonce}");
    let enc = latch::redirect::encode_query_value;
    let body = format!(
        "csrf={}&username={}&password={}&rd={}",
        enc(&csrf(&res.text())),
        enc(username),
        enc(password),
        enc(rd)
    );
    let origin = format!("http://auth.example.test:{}", proxy.port);
    let res = via(
        proxy,
        "auth",
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &form_cookie),
            ("Origin", &origin),
            BROWSER,
        ],
        body.as_bytes(),
    );
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some(rd));
    let (token, _) = set_cookie(&res, "latch_session").expect("a session cookie");
    format!("latch_session={token}")
}

/// Paths an app reads as its admin area (`/admin` or under it, once
/// decoded and cleaned, in any case; with `;` path parameters and `..;`
/// as Java servlet containers read them; with `\` as Node does; cut at a
/// raw `#`, as Node's `url.parse` reads it).
const ADMIN_PATHS: [&str; 18] = [
    "/admin;/secret",
    "/admin;jsessionid=x/secret",
    "/admin;x",
    "/x/..;/admin/secret",
    "/..;/admin/secret",
    "/admin\\secret",
    "/admin",
    "/admin/",
    "/admin/panel",
    "//admin/x",
    "/admin/../admin/x",
    "/%61dmin/x",
    "/./admin/x",
    "/ADMIN/x",
    "/admin%2Fx",
    "/x/../admin",
    "/Admin/",
    "/admin#x",
];

/// The whole protected-app story through `proxy`.
fn story(proxy: &Proxy, server: &Server, upstream: &Upstream) {
    let c = server.client();
    let port = proxy.port;
    let app = |method: &str, path: &str, headers: &[(&str, &str)]| {
        via(proxy, "app", method, path, headers, b"")
    };

    // Not signed in: browsers go to the login page with the right rd (302,
    // or 303 for other methods); scripts and XHRs get the 401.
    let rd = format!("http://app.example.test:{port}/some/page?x=1");
    let login = format!(
        "http://auth.example.test:{port}/login?rd={}",
        latch::redirect::encode_query_value(&rd)
    );
    let cases: [(&str, Headers, u16); 9] = [
        ("GET", &[BROWSER], 302),
        ("HEAD", &[BROWSER], 302),
        ("POST", &[BROWSER], 303),
        ("DELETE", &[BROWSER], 303),
        ("GET", &[JSON], 401),
        ("GET", &[], 401),
        ("POST", &[JSON], 401),
        ("GET", &[BROWSER, XHR], 401),
        ("POST", &[BROWSER, XHR], 401),
    ];
    for (method, headers, status) in cases {
        let what = format!("{method} {headers:?}");
        let res = app(method, "/some/page?x=1", headers);
        assert_eq!(
            res.status,
            status,
            "{what}: {}\n{}",
            res.text(),
            proxy.log()
        );
        assert_eq!(res.header("location"), Some(login.as_str()), "{what}");
        if status == 401 {
            let challenges = res.headers_named("www-authenticate");
            assert!(
                challenges
                    .iter()
                    .any(|c| c.starts_with(r#"Bearer realm="latch""#)),
                "{what}: {challenges:?}"
            );
            if method != "HEAD" {
                assert_eq!(res.error_code(), "unauthorized", "{what}");
            }
        }
    }
    // A long link (nginx passes request lines up to 8 KiB): still a sign-in,
    // without `rd` (a Location that long overflows nginx's 4 KiB buffer for
    // the auth answer: that was a 500).
    let long = format!("/{}", "a".repeat(6000));
    for (headers, status) in [(&[BROWSER][..], 302), (&[][..], 401)] {
        let res = app("GET", &long, headers);
        assert_eq!(res.status, status, "{}\n{}", res.text(), proxy.log());
        let bare = format!("http://auth.example.test:{port}/login");
        assert_eq!(res.header("location"), Some(bare.as_str()));
    }
    assert_eq!(
        upstream.hits(),
        0,
        "the upstream was reached without a login"
    );

    // Signing in on latch's page, through the proxied auth host.
    let alice = sign_in(proxy, "alice", "alice-password", &rd);
    let bob = sign_in(proxy, "bob", "bob-password", &rd);
    let bob_is = ["bob", "", "bob@example.test", "bob"];
    let alice_is = ["alice", "admins,media", "", "alice"];

    // Signed in, the app sees exactly who it is, whatever the client forged.
    let forged = forged();
    let token = c.token("bob", "bob-password");
    let logins: [(&str, (&str, &str), [&str; 4]); 5] = [
        ("bob's cookie", ("Cookie", &bob), bob_is),
        ("alice's cookie", ("Cookie", &alice), alice_is),
        ("bob's token", ("Authorization", &bearer(&token)), bob_is),
        (
            "bob's password",
            ("Authorization", &basic("bob", "bob-password")),
            bob_is,
        ),
        (
            "alice's password",
            ("Authorization", &basic("alice", "alice-password")),
            alice_is,
        ),
    ];
    for (what, credential, expected) in &logins {
        let res = app(
            "GET",
            "/some/page?x=1",
            &with_forged(&[BROWSER, *credential], &forged),
        );
        assert_identity(&res, *expected, what);
        let environ = &res.json()["environ"];
        assert_eq!(environ["PATH_INFO"], "/some/page");
        assert_eq!(environ["QUERY_STRING"], "x=1");
    }

    // The proxy is the edge: no forwarding header of the client's reaches
    // the app, in any spelling a backend reads as one (an app that trusts
    // its proxy would build links from X-Forwarded-Host, or take
    // X-Real-IP for the client).
    let forwarding = forged_forwarding();
    let res = app(
        "GET",
        "/some/page",
        &with_forged(&[("Cookie", &bob)], &forwarding),
    );
    assert_identity(&res, bob_is, "forwarding headers");
    let body = res.json();
    for pair in body["headers"].as_array().unwrap() {
        let value = pair[1].as_str().unwrap();
        assert!(
            !["evil", "6.6.6.6", "gopher", "6666"]
                .iter()
                .any(|m| value.contains(m)),
            "a client's forwarding header reached the app: {pair}"
        );
    }

    // Forged headers without a login never reach the upstream at all.
    let before = upstream.hits();
    let res = app("GET", "/", &with_forged(&[JSON], &forged));
    assert_eq!(res.status, 401, "{}", res.text());
    let res = app("GET", "/", &with_forged(&[BROWSER], &forged));
    assert_eq!(res.status, 302, "{}", res.text());
    // Nor does a credential in the query: the client's query stays off /auth.
    let res = app("GET", &format!("/?auth_token={token}"), &[JSON]);
    assert_eq!(res.status, 401, "{}", res.text());
    assert_eq!(upstream.hits(), before);
    // ... so a client's ?group= does not change what is required either.
    let res = app("GET", "/some/page?group=admins", &[("Cookie", &bob)]);
    assert_identity(&res, bob_is, "bob with ?group=admins");

    // The client's address, not its own X-Forwarded-For, in latch's audit
    // log: through the app's forward auth and through the auth host.
    let spoof = ("X-Forwarded-For", "6.6.6.6");
    let res = app(
        "GET",
        "/some/page",
        &[JSON, spoof, ("Authorization", &basic("alice", "xff-wrong"))],
    );
    assert_eq!(res.status, 401, "{}", res.text());
    let res = via(
        proxy,
        "auth",
        "GET",
        "/api/resource",
        &[spoof, ("Authorization", &basic("bob", "xff-wrong"))],
        b"",
    );
    assert_eq!(res.status, 401, "{}", res.text());
    for user in ["alice", "bob"] {
        let needle = format!("user=\"{user}\" result=\"failure\"");
        let log = server.log_containing(&needle);
        for line in log.lines().filter(|l| l.contains(&needle)) {
            assert!(line.contains("source=127.0.0.2"), "{line}");
        }
    }
    assert!(!server.log().contains("6.6.6.6"), "{}", server.log());

    // Logout (through the auth host) kills the cookie.
    let origin = format!("http://auth.example.test:{port}");
    let res = via(
        proxy,
        "auth",
        "POST",
        "/logout",
        &[("Cookie", &alice), ("Origin", &origin)],
        b"",
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let res = app("GET", "/some/page?x=1", &[BROWSER, ("Cookie", &alice)]);
    assert_eq!(res.status, 302);
    let res = app("GET", "/some/page?x=1", &[JSON, ("Cookie", &alice)]);
    assert_eq!(res.status, 401);
}

pub fn latch_for(dir: &TempDir, port: u16) -> Server {
    latch_with(dir, port, "")
}

/// [`latch_for`] with `extra` appended to its configuration (after its
/// `[forward_auth]` table: a table of its own, such as `[access_control]`).
fn latch_with(dir: &TempDir, port: u16, extra: &str) -> Server {
    let server = Server::start(
        dir,
        &format!(
            "public_url = \"http://auth.example.test:{port}\"\n[forward_auth]\n\
             cookie_domain = \"example.test\"\ncookie_secure = false\n\
                               trusted_proxies = [\"127.0.0.1\"]\n{extra}"
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

/// latch, the app and `start`'s proxy, then the story.
fn run(name: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) {
    if !require_program(name) || !require_program("python3") {
        return;
    }
    let dir = TempDir::new(name);
    let upstream = Upstream::start();
    // The proxy port must be known before latch starts (public_url).
    let port = free_port();
    let server = latch_for(&dir, port);
    let proxy = start(&dir, port, server.addr.port(), upstream.port);
    story(&proxy, &server, &upstream);
}

#[test]
fn caddy_forward_auth() {
    run("caddy", start_caddy);
}

#[test]
fn nginx_auth_request() {
    run("nginx", start_nginx);
}

#[test]
fn traefik_forward_auth() {
    run("traefik", start_traefik);
}

// `latch proxy-snippet ... --group admins`: the whole app for the admins
// group, through each proxy.

fn start_caddy_admins(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let code = printed("caddy", latch, upstream, &["admins"]);
    spawn_caddy(dir, port, &caddyfile_for(port, &code))
}

fn start_nginx_admins(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let code = printed("nginx", latch, upstream, &["admins"]);
    spawn_nginx(dir, port, &nginx_conf_for(dir.path(), port, &code))
}

fn start_traefik_admins(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let code = printed("traefik", latch, upstream, &["admins"]);
    let (static_config, dynamic) = traefik_configs_for(dir.path(), port, &code);
    spawn_traefik(dir, port, &static_config, &dynamic)
}

/// Only alice (in admins) reaches the app, on every path; bob is refused
/// and a visitor sent to sign in, and a client's own `?group=` changes
/// nothing.
fn group_story(proxy: &Proxy, upstream: &Upstream) {
    let port = proxy.port;
    let rd = format!("http://app.example.test:{port}/");
    let alice = sign_in(proxy, "alice", "alice-password", &rd);
    let bob = sign_in(proxy, "bob", "bob-password", &rd);
    let app = |path: &str, headers: Headers| via(proxy, "app", "GET", path, headers, b"");
    for path in ["/", "/some/page?x=1", "/some/page?group=media"] {
        let res = app(path, &[BROWSER, ("Cookie", &alice)]);
        assert_identity(&res, ["alice", "admins,media", "", "alice"], path);
    }
    let before = upstream.hits();
    for path in ["/", "/some/page", "/?group=media", "/?group=admins"] {
        let res = app(path, &[BROWSER, ("Cookie", &bob)]);
        assert_eq!(res.status, 403, "bob {path}: {}", res.text());
        let res = app(
            path,
            &[JSON, ("Authorization", &basic("bob", "bob-password"))],
        );
        assert_eq!(res.status, 403, "bob's password {path}: {}", res.text());
        let res = app(path, &[BROWSER]);
        assert_eq!(res.status, 302, "a visitor {path}: {}", res.text());
        let res = app(path, &[JSON]);
        assert_eq!(res.status, 401, "a script {path}: {}", res.text());
    }
    assert_eq!(upstream.hits(), before, "bob or a visitor reached the app");
}

fn run_group(name: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) {
    if !require_program(name) || !require_program("python3") {
        return;
    }
    let dir = TempDir::new(&format!("{name}-group"));
    let upstream = Upstream::start();
    let port = free_port();
    let server = latch_for(&dir, port);
    let proxy = start(&dir, port, server.addr.port(), upstream.port);
    group_story(&proxy, &upstream);
}

#[test]
fn caddy_group() {
    run_group("caddy", start_caddy_admins);
}

#[test]
fn nginx_group() {
    run_group("nginx", start_nginx_admins);
}

#[test]
fn traefik_group() {
    run_group("traefik", start_traefik_admins);
}

// Access rules through the real proxies.

/// The README's policy example: the code block of "Access rules" that
/// starts with `[access_control]`, on example.test as the proxies' hosts
/// are (`app.example.com` is `app.example.test`, and so on).
fn readme_policy() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let fence = "```toml\n";
    let start = readme
        .find(&format!("{fence}[access_control]\n"))
        .expect("README has a toml block starting with [access_control]")
        + fence.len();
    let code = &readme[start..];
    let policy = code[..code.find("```").expect("the block's end")]
        .replace(".example.com\"", ".example.test\"");
    assert!(
        !policy.contains("example.com"),
        "a host left unmapped:\n{policy}"
    );
    policy
}

/// The README's network rule reaches only `192.168.1.0/24`, and the test
/// client is 127.0.0.2 (as latch hears from the proxies, which connect from
/// 127.0.0.1): the test's copy of the policy adds `127.0.0.0/8` to that
/// rule's networks, so that the rule can be shown to work through them.
fn with_loopback_lan(policy: &str) -> String {
    let lan = r#"networks = ["192.168.1.0/24"]"#;
    assert_eq!(policy.matches(lan).count(), 1, "{policy}");
    policy.replace(lan, r#"networks = ["192.168.1.0/24", "127.0.0.0/8"]"#)
}

/// `text` with `from` (which it must contain) replaced by `to`.
fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no {from:?} in:\n{text}");
    text.replace(from, to)
}

// The policy's bypass rule is for status.example.test. Each proxy serves it
// exactly as app.example.test (the same forward auth and the same upstream):
// the tests name it beside app.example.test and change nothing else in the
// README's blocks.

fn start_caddy_with_status(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let caddyfile = edited(
        &caddyfile(port, latch, upstream),
        &format!("http://app.example.test:{port} {{"),
        &format!("http://app.example.test:{port}, http://status.example.test:{port} {{"),
    );
    spawn_caddy(dir, port, &caddyfile)
}

/// The app's printed `server` block once more for status.example.test: one
/// name per block, as the README asks (`X-Forwarded-Host $server_name`
/// names the block's first name only).
fn start_nginx_with_status(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let conf = nginx_conf(dir.path(), port, latch, upstream);
    let conf = with_app_block_for(&conf, "app.example.test", "status.example.test");
    spawn_nginx(dir, port, &conf)
}

/// `conf` with the `server` block named `name` copied, after it, for `other`.
fn with_app_block_for(conf: &str, name: &str, other: &str) -> String {
    let named = format!("server_name {name};");
    let at = conf.find(&named).expect("the block's name");
    let start = conf[..at].rfind("server {").expect("its start");
    let end = at + conf[at..].find("\n}\n").expect("its end") + 3;
    let copy = edited(&conf[start..end], &named, &format!("server_name {other};"));
    format!("{}{copy}{}", &conf[..end], &conf[end..])
}

fn start_traefik_with_status(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let (static_config, dynamic) = traefik_configs(dir.path(), port, latch, upstream);
    // In both routers, the app-admin one's `&& PathRegexp(...)` included.
    let dynamic = edited(
        &dynamic,
        "Host(`app.example.test`)",
        "(Host(`app.example.test`) || Host(`status.example.test`))",
    );
    spawn_traefik(dir, port, &static_config, &dynamic)
}

/// Asserts the request reached the app (200 from the upstream) and the app
/// was told of nobody: each identity header absent or empty, in no other
/// spelling, with nothing the client forged.
fn assert_anonymous(res: &Response, what: &str) {
    assert_identity(res, ["", "", "", ""], what);
}

/// How many times latch logged that rule 3 of the README's policy
/// (`/admin` on app.example.com: deny) refused a request. The proxies' own
/// `?group=admins` refuses bob on `/admin` too, with a 403 that looks the
/// same through nginx: the log tells which of the two refused.
fn rule_3_denials(server: &Server) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("forward auth: denied by an access rule") && l.contains(" rule=3"))
        .count()
}

/// Waits until latch has logged `count` denials by rule 3 (lines arrive
/// through a pipe, a moment after the answer); panics after 10 s.
fn assert_rule_3_denials(server: &Server, count: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = rule_3_denials(server);
        if seen == count {
            return;
        }
        assert!(
            seen < count && Instant::now() < deadline,
            "{what}: {seen} denials by rule 3 logged, not {count}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The README's policy through `proxy`, with `server` started on it.
fn access_story(proxy: &Proxy, server: &Server, upstream: &Upstream) {
    let port = proxy.port;
    let to = |host: &str, method: &str, path: &str, headers: Headers| {
        via(proxy, host, method, path, headers, b"")
    };
    let rd = format!("http://app.example.test:{port}/admin/x");
    let alice = sign_in(proxy, "alice", "alice-password", &rd);
    let bob = sign_in(proxy, "bob", "bob-password", &rd);
    let alice_is = ["alice", "admins,media", "", "alice"];
    let bob_is = ["bob", "", "bob@example.test", "bob"];
    let as_alice = ("Cookie", alice.as_str());
    let as_bob = ("Cookie", bob.as_str());
    let forged = forged();

    // Rule 1, bypass (status.example.test): anyone reaches the app, which
    // is told of nobody: not the client's forged headers, not even who is
    // signed in. (Before 2.9, Caddy's copy_headers sets a header that the
    // auth answer lacks to its placeholder, `{http.reverse_proxy.header.
    // Remote-User}`, caddyserver/caddy#6610: hence latch's "always all
    // four, empty when there is no value" in the README's Caddy table.)
    // The rules see the host the proxy routes by: an absolute-form request
    // line naming the app, with a Host header naming the bypassed host,
    // is the app's (found by review: through nginx, whose X-Original-URL
    // has the Host header, it was a bypass).
    let before = upstream.hits();
    for target in ["/internal/", "/admin/x"] {
        let absolute = format!("http://app.example.test:{port}{target}");
        let res = to("status", "GET", &absolute, &[JSON]);
        assert!(
            matches!(res.status, 400 | 401 | 403),
            "absolute-form {absolute} with Host status: {} {}",
            res.status,
            res.text()
        );
    }
    assert_eq!(
        upstream.hits(),
        before,
        "an absolute-form request reached the app"
    );
    // A host with a non-numeric port is no host (Go's proxies route on
    // the part before the colon): never matched by what it ends with.
    for host in [
        "app.example.test:x.media.example.test",
        "app.example.test:1.media.example.test",
    ] {
        let res = with_host_header(proxy, host, "GET", "/internal/", &[JSON, as_bob], b"");
        assert!(
            matches!(res.status, 400 | 403),
            "Host {host}: {}",
            res.status
        );
    }
    assert_eq!(
        upstream.hits(),
        before,
        "a host with a junk port reached the app"
    );

    let anyone: [(&str, Headers); 3] = [
        ("a browser", &[BROWSER]),
        ("a script", &[JSON]),
        ("alice", &[BROWSER, as_alice]),
    ];
    for (who, headers) in anyone {
        for method in ["GET", "POST"] {
            let res = to("status", method, "/", &with_forged(headers, &forged));
            assert_anonymous(&res, &format!("{who}: {method} status /"));
        }
    }

    // Rules 2 and 3 (/admin on app.example.test): group admins or nobody.
    // alice is in admins: the rule and the proxy's ?group=admins let her in.
    for path in ["/admin/x", "/%61dmin/x", "//admin/x"] {
        let res = to("app", "GET", path, &[BROWSER, as_alice]);
        assert_identity(&res, alice_is, &format!("alice {path}"));
        assert_eq!(
            res.json()["environ"]["PATH_INFO"],
            "/admin/x",
            "alice {path}"
        );
    }
    // bob is not: refused by rule 3, however the path is spelled, and not
    // merely by the proxy's ?group=admins.
    let before = upstream.hits();
    let mut denials = rule_3_denials(server);
    for path in ["/admin/x", "/%61dmin/x", "//admin/x"] {
        for (client, accept) in [("a browser", BROWSER), ("a script", JSON)] {
            let what = format!("bob ({client}) {path}");
            let res = to("app", "GET", path, &[accept, as_bob]);
            assert_eq!(res.status, 403, "{what}: {}", res.text());
            denials += 1;
            assert_rule_3_denials(server, denials, &what);
        }
    }
    // A visitor is sent to sign in (the rule names a group: who they are
    // decides), not refused: a browser to the login page, a script a 401.
    let login = format!(
        "http://auth.example.test:{port}/login?rd={}",
        latch::redirect::encode_query_value(&rd)
    );
    let cases: [(&str, Headers, u16); 4] = [
        ("GET", &[BROWSER], 302),
        ("POST", &[BROWSER], 303),
        ("GET", &[JSON], 401),
        ("POST", &[], 401),
    ];
    for (method, headers, status) in cases {
        let what = format!("a visitor: {method} /admin/x {headers:?}");
        let res = to("app", method, "/admin/x", headers);
        assert_eq!(res.status, status, "{what}: {}", res.text());
        assert_eq!(res.header("location"), Some(login.as_str()), "{what}");
    }
    for path in ["/%61dmin/x", "//admin/x"] {
        let res = to("app", "GET", path, &[BROWSER]);
        assert_eq!(res.status, 302, "a visitor: {path}: {}", res.text());
        let res = to("app", "GET", path, &[JSON]);
        assert_eq!(res.status, 401, "a visitor: {path}: {}", res.text());
    }
    assert_eq!(upstream.hits(), before, "bob or a visitor reached /admin");

    // Every spelling of /admin is rule 3's: bob is refused, alice let in.
    // Traefik itself refuses (400) the encoded characters of its
    // encodedCharacters, a raw backslash and a raw `#`.
    let mut alice_in = 0;
    for path in ADMIN_PATHS {
        let res = to("app", "GET", path, &[BROWSER, as_bob]);
        let refused =
            proxy.name == "traefik" && ["/admin%2Fx", "/admin\\secret", "/admin#x"].contains(&path);
        let status = if refused { 400 } else { 403 };
        assert_eq!(res.status, status, "bob {path}: {}", res.text());
        if !refused {
            denials += 1;
            assert_rule_3_denials(server, denials, &format!("bob {path}"));
        }
        let res = to("app", "GET", path, &[BROWSER, as_alice]);
        if refused {
            assert_eq!(res.status, 400, "alice {path}: {}", res.text());
        } else {
            assert_identity(&res, alice_is, &format!("alice {path}"));
            alice_in += 1;
        }
    }
    // A longer name is not the admin area.
    let res = to("app", "GET", "/administrator", &[as_bob]);
    assert_identity(&res, bob_is, "bob /administrator");
    assert_eq!(
        upstream.hits(),
        before + alice_in + 1,
        "bob reached a spelling of /admin"
    );

    // Rule 4 (GET and HEAD from 192.168.1.0/24: bypass) as the README has
    // it: the client, 127.0.0.2, is not on that network, so rule 5
    // (one_factor) asks a visitor to sign in.
    let res = to("app", "GET", "/some/page", &[JSON]);
    assert_eq!(res.status, 401, "GET before the reload: {}", res.text());

    // Now with 127.0.0.0/8 among that rule's networks (see
    // with_loopback_lan), reloaded with SIGHUP.
    let text = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(&server.config_path, with_loopback_lan(&text)).unwrap();
    server.hangup();
    server.log_containing("reloaded: the access rules");

    // GET and HEAD get through without a sign-in, and the app is told of
    // nobody (even when someone is signed in: bypass names nobody).
    let readers: [(&str, Headers); 3] = [
        ("a browser", &[BROWSER]),
        ("a script", &[JSON]),
        ("bob", &[BROWSER, as_bob]),
    ];
    for (who, headers) in readers {
        let res = to(
            "app",
            "GET",
            "/some/page?x=1",
            &with_forged(headers, &forged),
        );
        assert_anonymous(&res, &format!("{who}: GET /some/page from the network"));
        assert_eq!(res.json()["environ"]["QUERY_STRING"], "x=1");
        let res = to("app", "HEAD", "/some/page", headers);
        assert_eq!(res.status, 200, "{who}: HEAD /some/page from the network");
    }
    // Other methods do not: a visitor's POST is sent to sign in, ...
    let before = upstream.hits();
    let res = to("app", "POST", "/some/page", &[JSON]);
    assert_eq!(res.status, 401, "a script's POST: {}", res.text());
    let res = to("app", "POST", "/some/page", &[BROWSER]);
    assert_eq!(res.status, 303, "a browser's POST: {}", res.text());
    assert_eq!(upstream.hits(), before, "a visitor's POST reached the app");
    // ... and a signed-in user's POST gets in as who they are (rule 5).
    let res = to("app", "POST", "/some/page", &[JSON, as_bob]);
    assert_identity(&res, bob_is, "bob: POST /some/page from the network");
    // The network rule comes after the /admin rules: it opens nothing there.
    let res = to("app", "GET", "/admin/x", &[JSON]);
    assert_eq!(res.status, 401, "a visitor: /admin/x from the network");
    let res = to("app", "GET", "/admin/x", &[JSON, as_bob]);
    assert_eq!(res.status, 403, "bob: /admin/x from the network");
    assert_rule_3_denials(server, denials + 1, "bob: /admin/x from the network");
    assert_eq!(
        upstream.hits(),
        before + 1,
        "only bob's POST reached the app"
    );
}

/// latch on the README's policy, the app and a proxy in front of both
/// (fields drop in order: the proxy first, the directory last).
struct OnReadmePolicy {
    proxy: Proxy,
    server: Server,
    upstream: Upstream,
    _dir: TempDir,
}

impl OnReadmePolicy {
    /// Started behind `start`'s proxy (`name`), or `None`, said, when a
    /// program is missing.
    fn start(name: &str, what: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) -> Option<Self> {
        if !require_program(name) || !require_program("python3") {
            return None;
        }
        let dir = TempDir::new(&format!("{name}-{what}"));
        let upstream = Upstream::start();
        let port = free_port();
        let server = latch_with(&dir, port, &readme_policy());
        let proxy = start(&dir, port, server.addr.port(), upstream.port);
        Some(OnReadmePolicy {
            proxy,
            server,
            upstream,
            _dir: dir,
        })
    }
}

/// latch on the README's policy, the app and `start`'s proxy (serving
/// status.example.test too), then the access story.
fn run_access(name: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) {
    if let Some(on) = OnReadmePolicy::start(name, "access", start) {
        access_story(&on.proxy, &on.server, &on.upstream);
    }
}

#[test]
fn caddy_access_rules() {
    run_access("caddy", start_caddy_with_status);
}

#[test]
fn nginx_access_rules() {
    run_access("nginx", start_nginx_with_status);
}

#[test]
fn traefik_access_rules() {
    run_access("traefik", start_traefik_with_status);
}

/// latch on the README's policy behind `start`'s printed blocks (the app's
/// host only): a `Host` header naming a host the proxy does not serve, or
/// the app's host with an empty label, never reaches the app under another
/// host's rules. Found by review: nginx serves an unknown host from its
/// default server, the app's block; with `X-Forwarded-Host $host` latch
/// then judged the client's host, and a visitor reached the app as
/// status.example.test, which the policy bypasses.
fn run_unserved(name: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) {
    let Some(on) = OnReadmePolicy::start(name, "unserved", start) else {
        return;
    };
    let (proxy, upstream) = (&on.proxy, &on.upstream);
    let port = proxy.port;
    let rd = format!("http://app.example.test:{port}/");
    let bob = sign_in(proxy, "bob", "bob-password", &rd);
    let as_bob = ("Cookie", bob.as_str());
    for host in [
        "status.example.test",
        "unknown.example.test",
        "localhost",
        "10.0.0.1",
        ".app.example.test",
        "app..example.test",
        "app.example.test..",
    ] {
        let host = format!("{host}:{port}");
        for headers in [&[BROWSER, as_bob][..], &[BROWSER], &[JSON]] {
            for path in ["/admin/x", "/internal/"] {
                let res = with_host_header(proxy, &host, "GET", path, headers, b"");
                assert_ne!(res.status, 500, "Host {host} {path}");
                assert_eq!(upstream.hits(), 0, "Host {host} {path} {headers:?}");
            }
        }
    }
    others_spelled(proxy, upstream, as_bob);
    // The app's own host still works: bob is signed in (rule 5).
    let res = via(proxy, "app", "GET", "/internal/", &[as_bob], b"");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(upstream.hits(), 1);
}

/// No request reaches the app through `proxy` in the spellings below, even
/// as `as_bob`, signed in (the app's rules would let him in at `/internal/`).
fn others_spelled(proxy: &Proxy, upstream: &Upstream, as_bob: (&str, &str)) {
    let port = proxy.port;
    // The app's host with a raw `#` or `?` after it (nginx checks a Host
    // header only up to its `:`), and a raw `#` in the path: the rules see
    // what the app is sent (found by a review: through nginx,
    // `Host: app.example.test:PORT#` read as the path `/`, and
    // `/public/#/../../admin/x` as `/public/`, so bob reached `/admin`).
    let hosts = [
        format!("app.example.test:{port}#"),
        format!("app.example.test:{port}?"),
        "app.example.test#".to_owned(),
        "app.example.test?".to_owned(),
    ];
    for host in &hosts {
        let res = with_host_header(proxy, host, "GET", "/admin/x", &[as_bob], b"");
        assert_ne!(res.status, 500, "Host {host}");
        assert_eq!(upstream.hits(), 0, "Host {host}");
    }
    // An absolute-form request line names the host a proxy routes by;
    // the Host header names the app (found by a review: nginx took it
    // into the app's default block, latch judged the app's host, and the
    // app was told of the other).
    for other in ["anything.invalid", "status.example.test"] {
        let line = format!("http://{other}:{port}/internal/");
        let host = format!("app.example.test:{port}");
        let res = with_host_header(proxy, &host, "GET", &line, &[as_bob], b"");
        assert_ne!(res.status, 500, "{line}");
        assert_eq!(upstream.hits(), 0, "{line}: {}", res.status);
    }
    for path in ["/public/#/../../admin/x", "/x#/../admin/x", "/admin/x?y#z"] {
        let res = via(proxy, "app", "GET", path, &[as_bob], b"");
        assert_ne!(res.status, 500, "{path}");
        assert_eq!(upstream.hits(), 0, "{path}: {}", res.status);
    }
}

#[test]
fn caddy_serves_no_other_host() {
    run_unserved("caddy", start_caddy);
}

#[test]
fn nginx_serves_no_other_host() {
    run_unserved("nginx", start_nginx);
}

#[test]
fn traefik_serves_no_other_host() {
    run_unserved("traefik", start_traefik);
}

// Two cookie domains through the real proxies: the README's blocks serve
// app and auth under example.org beside example.test (the tests name the
// second hosts beside the first and change nothing else), and latch lists
// both domains.

fn two_domain_latch(dir: &TempDir, port: u16) -> Server {
    let server = Server::start(
        dir,
        &format!(
            "[forward_auth]\ncookie_secure = false\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [[forward_auth.domains]]\ncookie_domain = \"example.test\"\n\
             public_url = \"http://auth.example.test:{port}\"\n\
             [[forward_auth.domains]]\ncookie_domain = \"example.org\"\n\
             public_url = \"http://auth.example.org:{port}\"\n"
        ),
    );
    server.client().register("alice", "alice-password");
    server
}

fn start_caddy_two_domains(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let mut caddyfile = caddyfile(port, latch, upstream);
    for name in ["app", "auth"] {
        caddyfile = edited(
            &caddyfile,
            &format!("http://{name}.example.test:{port} {{"),
            &format!("http://{name}.example.test:{port}, http://{name}.example.org:{port} {{"),
        );
    }
    spawn_caddy(dir, port, &caddyfile)
}

/// The app's block copied for app.example.org (one name per block: see
/// the README's nginx table); latch's own block names both login hosts.
fn start_nginx_two_domains(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let conf = nginx_conf(dir.path(), port, latch, upstream);
    let conf = with_app_block_for(&conf, "app.example.test", "app.example.org");
    let conf = edited(
        &conf,
        "server_name auth.example.test;",
        "server_name auth.example.test auth.example.org;",
    );
    spawn_nginx(dir, port, &conf)
}

fn start_traefik_two_domains(dir: &TempDir, port: u16, latch: u16, upstream: u16) -> Proxy {
    let (static_config, mut dynamic) = traefik_configs(dir.path(), port, latch, upstream);
    for name in ["app", "auth"] {
        dynamic = edited(
            &dynamic,
            &format!("Host(`{name}.example.test`)"),
            &format!("(Host(`{name}.example.test`) || Host(`{name}.example.org`))"),
        );
    }
    spawn_traefik(dir, port, &static_config, &dynamic)
}

/// Each domain's visitors go to its own login host, sign in there for its
/// own cookie domain, come back only within it, and reach the app.
fn two_domains_story(proxy: &Proxy, upstream: &Upstream) {
    let port = proxy.port;
    for domain in ["example.test", "example.org"] {
        let app = format!("app.{domain}");
        let auth = format!("auth.{domain}");
        // Not signed in: to this domain's login page.
        let res = via(proxy, &app, "GET", "/x", &[BROWSER], b"");
        assert_eq!(res.status, 302, "{domain}: {}", res.text());
        let rd = format!("http://{app}:{port}/x");
        let login = format!(
            "http://{auth}:{port}/login?rd={}",
            latch::redirect::encode_query_value(&rd)
        );
        assert_eq!(res.header("location"), Some(login.as_str()), "{domain}");
        // Signing in there sets this domain's cookie and follows rd back.
        let page = via(proxy, &auth, "GET", "/login", &[BROWSER], b"");
        assert_eq!(page.status, 200, "{domain}");
        let (nonce, _) = set_cookie(&page, "latch_form").expect("a form cookie");
        let enc = latch::redirect::encode_query_value;
        let other = if domain == "example.test" {
            "example.org"
        } else {
            "example.test"
        };
        for (target, lands) in [
            (
                format!("http://app.{other}:{port}/y"),
                format!("http://{auth}:{port}/"),
            ),
            (rd.clone(), rd.clone()),
        ] {
            let body = format!(
                "csrf={}&username=alice&password=alice-password&rd={}",
                enc(&csrf(&page.text())),
                enc(&target)
            );
            let origin = format!("http://{auth}:{port}");
            let form_cookie = format!("latch_form={nonce}");
            let res = via(
                proxy,
                &auth,
                "POST",
                "/login",
                &[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Cookie", &form_cookie),
                    ("Origin", &origin),
                    BROWSER,
                ],
                body.as_bytes(),
            );
            assert_eq!(res.status, 303, "{domain}: {}", res.text());
            assert_eq!(
                res.header("location"),
                Some(lands.as_str()),
                "{domain}: rd {target}"
            );
            let (value, header) = set_cookie(&res, "latch_session").expect("a cookie");
            assert!(header.contains(&format!("Domain={domain}")), "{header}");
            let cookie = format!("latch_session={value}");
            let res = via(proxy, &app, "GET", "/x", &[("Cookie", &cookie)], b"");
            assert_eq!(res.status, 200, "{domain}: {}", res.text());
            assert_identity(
                &res,
                ["alice", "", "", "alice"],
                &format!("{domain}: signed in"),
            );
        }
    }
    assert!(upstream.hits() >= 4);
}

fn run_two_domains(name: &str, start: fn(&TempDir, u16, u16, u16) -> Proxy) {
    if !require_program(name) || !require_program("python3") {
        return;
    }
    let dir = TempDir::new(&format!("{name}-domains"));
    let upstream = Upstream::start();
    let port = free_port();
    let server = two_domain_latch(&dir, port);
    let proxy = start(&dir, port, server.addr.port(), upstream.port);
    two_domains_story(&proxy, &upstream);
}

#[test]
fn caddy_two_domains() {
    run_two_domains("caddy", start_caddy_two_domains);
}

#[test]
fn nginx_two_domains() {
    run_two_domains("nginx", start_nginx_two_domains);
}

#[test]
fn traefik_two_domains() {
    run_two_domains("traefik", start_traefik_two_domains);
}

// The README's compose example: Traefik configured by its `command` flags
// and by the other services' labels.

/// Reads the compose file (argv[1]) as compose and Traefik's docker
/// provider would, for a run without containers. Writes `dynamic.yml` (the
/// labels of each service with `traefik.enable`, as the file provider's
/// nested keys; each service's address 127.0.0.1 and the test's port for
/// it) and `run.json` into argv[2]: Traefik's flags (the docker provider
/// replaced by that file, the entry point on argv[3], plain http), latch's
/// environment, and checks of the trusted proxy.
const COMPOSE_TO_FILE: &str = r#"
import ipaddress, json, re, sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
out, proxy_port = sys.argv[2], sys.argv[3]
ports = json.loads(sys.argv[4])
services = compose["services"]
dynamic = {}

def put(path, value):
    node = dynamic
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value

def address(name):
    return "127.0.0.1:" + str(ports[name])

for name, service in services.items():
    labels = service.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(label.split("=", 1) for label in labels)
    if labels.get("traefik.enable") != "true":
        continue
    assert "ports" not in service, name + " publishes a port: only Traefik may"
    own, routers = [], []
    for key, value in labels.items():
        path = key.split(".")
        assert path[0] == "traefik", key
        if path[1] == "enable":
            continue
        if path[1:3] == ["http", "services"] and path[4:] == ["loadbalancer", "server", "port"]:
            own.append(path[3])
            put(path[1:5] + ["servers"], [{"url": "http://" + address(name)}])
            continue
        if path[1:3] == ["http", "routers"]:
            routers.append(path[3])
        # A service's address, as another container reaches it.
        value = re.sub(r"http://(\w+):\d+", lambda m: "http://" + address(m.group(1)), value)
        put(path[1:], value.replace(".example.com`", ".example.test`"))
    for router in routers:
        assert len(own) == 1, name + ": a router without a service needs exactly one"
        dynamic["http"]["routers"][router].setdefault("service", own[0])

args = []
replaced = set()
for flag in services["traefik"]["command"]:
    if flag.startswith("--providers.docker"):
        replaced.add("docker")
        continue
    if flag == "--entryPoints.websecure.address=:443":
        replaced.add("address")
        flag = "--entryPoints.websecure.address=127.0.0.1:" + proxy_port
    if flag == "--entryPoints.websecure.http.tls=true":
        replaced.add("tls")
        continue
    args.append(flag)
assert replaced == {"docker", "address", "tls"}, replaced
args.append("--providers.file.filename=" + out + "/dynamic.yml")
with open(out + "/dynamic.yml", "w") as f:
    yaml.safe_dump(dynamic, f)

env = services["latch"]["environment"]
trusted = env["LATCH_FORWARD_AUTH__TRUSTED_PROXIES"]
traefik_ip = services["traefik"]["networks"]["edge"]["ipv4_address"]
ipam = compose["networks"]["edge"]["ipam"]["config"][0]
assert trusted == traefik_ip, (trusted, traefik_ip)
# Traefik's address is on the network, and no other container can get it.
assert ipaddress.ip_address(traefik_ip) in ipaddress.ip_network(ipam["subnet"])
assert ipaddress.ip_address(traefik_ip) not in ipaddress.ip_network(ipam["ip_range"])
# The docker provider's network is compose's name for "edge".
assert "--providers.docker.network=%s_edge" % compose["name"] in services["traefik"]["command"]
json.dump({"args": args, "env": env}, open(out + "/run.json", "w"))
"#;

#[test]
fn traefik_compose_labels() {
    if !require_program("traefik") || !require_program("python3") {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- compose:begin -->")
        .expect("a compose block");
    let block = &readme[start..];
    let code = &block[block.find("```yaml\n").unwrap() + 8..];
    let code = &code[..code.find("```").unwrap()];
    let dir = TempDir::new("compose");
    let compose = dir.path().join("compose.yaml");
    std::fs::write(&compose, code).unwrap();
    let upstream = Upstream::start();
    let port = free_port();
    let server = latch_for(&dir, port);
    let ports = serde_json::json!({"latch": server.addr.port(), "app": upstream.port});
    let out = Command::new("python3")
        .args(["-c", COMPOSE_TO_FILE])
        .arg(&compose)
        .arg(dir.path())
        .arg(port.to_string())
        .arg(ports.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    // latch's environment in the file is one latch accepts.
    let env: Vec<(String, String)> = run["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let (status, printed, err) = latch_cmd(&["check-config"], &env);
    assert!(status.success(), "{err}");
    assert!(
        printed.contains("trusted_proxies = [\"10.89.7.2/32\"]"),
        "{printed}"
    );
    let args: Vec<String> = run["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let proxy = spawn_traefik_with(&dir, port, &args);
    story(&proxy, &server, &upstream);
}
