//! Shared helpers: start the real `latch` binary (or the library's `run`
//! in-process), and a tiny HTTP/1.1 client over `std::net` that can send
//! arbitrary bytes, malformed ones included.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// The latch binary the tests spawn: this build's, or the one named by
/// `LATCH_TEST_BINARY` (CI runs the suite again against the static
/// binary, to show it works as the package's does).
pub static LATCH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("LATCH_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_latch").to_owned())
});

/// A fixed test key (base64 of 32 bytes), so tests can forge tokens with it.
pub const TEST_KEY: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0=";

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "latch-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The config every test server starts from: port 0, data in `dir`, cheap
/// scrypt, open registration, the fixed key. `extra` lines are appended
/// (top-level keys must come before any table, so `extra` goes first).
pub fn config_text(dir: &Path, extra: &str) -> String {
    // Top-level keys only: those before the first table.
    let has = |key: &str| {
        extra
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .any(|l| l.trim_start().starts_with(key))
    };
    let mut text = String::new();
    text.push_str(extra);
    text.push('\n');
    let mut top = String::new();
    if !has("listen") {
        top.push_str("listen = \"127.0.0.1:0\"\n");
    }
    if !has("data_dir") {
        top.push_str(&format!(
            "data_dir = {:?}\n",
            dir.join("data").display().to_string()
        ));
    }
    if !has("secret_key") {
        top.push_str(&format!("secret_key = \"{TEST_KEY}\"\n"));
    }
    if !has("registration") {
        top.push_str("registration = \"open\"\n");
    }
    if !has("log_level") {
        top.push_str("log_level = \"debug\"\n");
    }
    let mut out = top;
    out.push_str(&text);
    if !extra.contains("[scrypt]") {
        out.push_str("\n[scrypt]\nlog_n = 4\n");
    }
    // Several servers run at once: each picks its own operations port.
    if !extra.contains("[ops]") {
        out.push_str("\n[ops]\nlisten = \"127.0.0.1:0\"\n");
    }
    out
}

/// A running `latch serve`.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The operations listener, when the server said it has one.
    pub ops_addr: Option<SocketAddr>,
    /// Everything the server wrote to stderr so far.
    log: Arc<Mutex<String>>,
    pub config_path: PathBuf,
}

impl Server {
    /// Starts a server on a fresh data directory inside `dir`.
    pub fn start(dir: &TempDir, extra: &str) -> Server {
        let config_path = dir.path().join("latch.toml");
        std::fs::write(&config_path, config_text(dir.path(), extra)).unwrap();
        Server::start_with(&config_path)
    }

    /// Starts a server on an existing config file.
    pub fn start_with(config_path: &Path) -> Server {
        Self::try_start(config_path).unwrap_or_else(|log| panic!("latch did not start:\n{log}"))
    }

    /// Starts a server, or returns what it printed before exiting.
    pub fn try_start(config_path: &Path) -> Result<Server, String> {
        Self::try_start_in(config_path, None, &[])
    }

    /// Starts a server in working directory `cwd` with extra environment.
    pub fn try_start_in(
        config_path: &Path,
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let mut command = Command::new(&*LATCH);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .args(["serve", "--config"])
            .arg(config_path)
            .env_remove("LATCH_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                // "ops listening on" (when there is an ops listener) comes
                // just before "listening on".
                let mut ops = None;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("ops listening on ") {
                        ops = Some(addr.parse::<SocketAddr>().unwrap());
                    } else if let Some(addr) = line.strip_prefix("listening on ") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send((addr.parse::<SocketAddr>().unwrap(), ops));
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok((addr, ops_addr)) => Ok(Server {
                child: Some(child),
                addr,
                ops_addr,
                log,
                config_path: config_path.to_owned(),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                Err(without_config_line(&log.lock().unwrap()))
            }
        }
    }

    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }

    /// A client for the operations listener.
    pub fn ops(&self) -> Client {
        Client {
            addr: self.ops_addr.expect("the server has an ops listener"),
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log, once it contains `needle` (lines arrive through a pipe, a
    /// moment after the request that caused them); panics after 10 s.
    pub fn log_containing(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "{needle:?} never logged:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server stopped").id()
    }

    /// Sends SIGHUP (reload the access rules).
    pub fn hangup(&self) {
        let child = self.child.as_ref().expect("server stopped");
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("latch did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server with SIGKILL (no drain, no flush) and waits.
    pub fn crash(mut self) {
        let mut child = self.child.take().expect("server already stopped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sets `user`'s groups with `latch user groups` (over the admin socket).
    pub fn set_groups(&self, user: &str, groups: &[&str]) {
        let mut args = vec!["user", "groups", user];
        args.extend_from_slice(groups);
        args.extend_from_slice(&["--config", self.config_path.to_str().unwrap()]);
        let (status, _, stderr) = latch_cmd(&args, &[]);
        assert!(status.success(), "{stderr}");
    }

    /// Stops and starts again on the same config (same data directory).
    pub fn restart(mut self) -> Server {
        assert!(self.terminate().success());
        Server::start_with(&self.config_path.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of this name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON `error` code of an error response.
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts a 401 with only the Bearer challenge, as forward auth answers
    /// a browser (a Basic challenge would pop up a dialog on the app's page).
    pub fn assert_browser_challenge(&self, invalid_token: bool) {
        assert_eq!(self.status, 401, "{}", self.text());
        let expected = if invalid_token {
            r#"Bearer realm="latch", error="invalid_token""#
        } else {
            r#"Bearer realm="latch""#
        };
        assert_eq!(self.headers_named("www-authenticate"), [expected]);
    }

    /// Asserts a 401 with both challenges; `invalid_token` says whether the
    /// Bearer challenge carries `error="invalid_token"`.
    pub fn assert_challenges(&self, invalid_token: bool) {
        assert_eq!(self.status, 401, "{}", self.text());
        let challenges = self.headers_named("www-authenticate");
        let bearer = if invalid_token {
            r#"Bearer realm="latch", error="invalid_token""#
        } else {
            r#"Bearer realm="latch""#
        };
        assert!(challenges.contains(&bearer), "{challenges:?}");
        assert!(
            challenges.contains(&r#"Basic realm="latch", charset="UTF-8""#),
            "{challenges:?}"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// Reads one response from `stream`.
pub fn read_response(stream: &mut impl Read) -> std::io::Result<Response> {
    read_response_to(stream, false)
}

/// Reads one response; `head` when it answers a HEAD request (no body,
/// whatever `Content-Length` says).
pub fn read_response_to(stream: &mut impl Read, is_head: bool) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} bytes", buf.len()),
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("response head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = vec![0u8; if is_head { 0 } else { len.unwrap_or(0) }];
    stream.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A client for one server.
#[derive(Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn raw(&self, bytes: &[u8]) -> Response {
        self.try_raw(bytes).unwrap()
    }

    pub fn try_raw(&self, bytes: &[u8]) -> std::io::Result<Response> {
        let mut stream = self.connect();
        stream.write_all(bytes)?;
        read_response_to(&mut stream, bytes.starts_with(b"HEAD "))
    }

    /// Sends raw bytes on a new connection, closes the sending side, and
    /// reads one response.
    pub fn raw_then_close(&self, bytes: &[u8]) -> Response {
        let mut stream = self.connect();
        stream.write_all(bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        read_response(&mut stream).unwrap()
    }

    /// A request with these headers and an optional body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        // A `Host` among `headers` replaces the default one.
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.raw(&bytes)
    }

    /// A bodiless POST with this `Authorization` value (logout, logout-all).
    pub fn post_auth(&self, path: &str, authorization: &str) -> Response {
        self.request("POST", path, &[("Authorization", authorization)], None)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, None)
    }

    pub fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, Some(body.to_string().as_bytes()))
    }

    /// Registers a user and asserts 201; returns the id.
    pub fn register(&self, username: &str, password: &str) -> u64 {
        let res = self.post_json(
            "/api/users",
            &json!({"username": username, "password": password}),
            &[],
        );
        assert_eq!(res.status, 201, "{}", res.text());
        res.json()["id"].as_u64().unwrap()
    }

    /// Trades a username and password for a token via `GET /api/token`.
    pub fn token(&self, username: &str, password: &str) -> String {
        let res = self.get(
            "/api/token",
            &[("Authorization", &basic(username, password))],
        );
        assert_eq!(res.status, 200, "{}", res.text());
        res.json()["token"].as_str().unwrap().to_owned()
    }

    /// Creates an API key named `name` with this `Authorization` value,
    /// asserting 201; returns the key.
    pub fn new_key(&self, authorization: &str, name: &str) -> String {
        let res = self.post_json(
            "/api/keys",
            &json!({"name": name}),
            &[("Authorization", authorization)],
        );
        assert_eq!(res.status, 201, "{}", res.text());
        res.json()["key"].as_str().unwrap().to_owned()
    }

    /// `GET /api/resource` with this `Authorization` value.
    pub fn resource(&self, authorization: &str) -> Response {
        self.get("/api/resource", &[("Authorization", authorization)])
    }

    /// Asserts the server still answers and `username` can still log in.
    pub fn assert_alive(&self, username: &str, password: &str) {
        let res = self.resource(&basic(username, password));
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["data"], format!("Hello, {username}!"));
    }
}

/// An HTTP Basic `Authorization` value.
pub fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        latch::crypto::b64_encode(format!("{username}:{password}").as_bytes())
    )
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Runs `latch` with these arguments; returns (status, stdout, stderr).
pub fn latch_cmd(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let out = Command::new(&*LATCH)
        .args(args)
        .env_remove("LATCH_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        without_config_line(&stderr),
    )
}

/// `stderr` without the line every command that reads a configuration
/// prints first ("using config ..."), which must come at most once
/// (`tests/it/cli.rs` checks it comes, and which file it names).
pub fn without_config_line(stderr: &str) -> String {
    let is_config = |l: &str| l.starts_with("using config ") || l.starts_with("using no config");
    assert!(
        stderr.lines().filter(|l| is_config(l)).count() <= 1,
        "the config line more than once:\n{stderr}"
    );
    stderr
        .split_inclusive('\n')
        .filter(|l| !is_config(l))
        .collect()
}

/// Whether `program` is on PATH. When it is not, the test is skipped with
/// a printed reason, unless `LATCH_TEST_STRICT=1` (CI), where it fails.
pub fn require_program(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("LATCH_TEST_STRICT").as_deref() == Ok("1") {
            panic!("{program} is required (LATCH_TEST_STRICT=1) but not installed");
        }
        eprintln!("skipped: {program} is not installed");
    }
    found
}

/// A server running `latch::run` in this process on a 127.0.0.1:0
/// listener with `clock`: what the protocol tests use (the binary is for
/// signals, crashes, the CLI, the admin socket and the proxies).
pub struct InProcess {
    pub client: Client,
    pub addr: SocketAddr,
    /// The operations listener.
    pub ops_addr: Option<SocketAddr>,
    /// The server's state, for what only the library can reach (pruning).
    pub app: std::sync::Arc<latch::App>,
    /// How to start it again on the same data.
    config: String,
    clock: latch::Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<latch::Result<()>>>,
}

impl InProcess {
    /// Starts a server on the data directory inside `dir`, with the test
    /// configuration plus `extra` (see [`config_text`]) and the system clock.
    pub fn new(dir: &TempDir, extra: &str) -> InProcess {
        Self::start(dir, extra, latch::Clock::system())
    }

    /// Like [`InProcess::new`], with `clock`.
    pub fn start(dir: &TempDir, extra: &str, clock: latch::Clock) -> InProcess {
        Self::start_config(config_text(dir.path(), extra), clock)
    }

    fn start_config(text: String, clock: latch::Clock) -> InProcess {
        let config = latch::Config::from_toml(&text).unwrap();
        // After a restart, sled's background threads may hold the
        // directory's lock for a moment after the last handle is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        let app = loop {
            match latch::App::open(config.clone(), clock.clone()) {
                Ok(app) => break std::sync::Arc::new(app),
                Err(e) if e.kind() == latch::error::Kind::Locked && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("latch did not start: {e}"),
            }
        };
        let handle = app.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                latch::run(listener, app, async {
                    let _ = rx.await;
                })
                .await
            })
        });
        InProcess {
            client: Client { addr },
            addr,
            ops_addr: handle.ops_addr(),
            app: handle,
            config: text,
            clock,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Client {
        self.client
    }

    /// A client for the operations listener.
    pub fn ops(&self) -> Client {
        Client {
            addr: self.ops_addr.expect("the server has an ops listener"),
        }
    }

    /// Shuts down (drain, flush) and returns what `run` returned.
    pub fn stop(mut self) -> latch::Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> latch::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().unwrap(),
            None => Ok(()),
        }
    }

    /// Shuts down and starts again on the same configuration and data.
    pub fn restart(mut self) -> InProcess {
        self.shut_down().unwrap();
        let (config, clock) = (std::mem::take(&mut self.config), self.clock.clone());
        // The store's lock goes with the last reference to the app.
        drop(self);
        Self::start_config(config, clock)
    }

    /// Sets `user`'s groups (as `latch user groups` would).
    pub fn set_groups(&self, user: &str, groups: &[&str]) {
        let service = &self.app.service;
        let record = service.user_named(user).unwrap();
        let groups = groups.iter().map(|g| g.to_string()).collect();
        tokio_block_on(service.set_groups(&record, groups)).unwrap();
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shut_down().unwrap();
        } else {
            let _ = self.shut_down();
        }
    }
}

/// Runs a future to completion on a throwaway runtime (for library calls
/// such as pruning, made from a synchronous test).
pub fn tokio_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `latch ARGS --config CONFIG`; returns (status, stdout, stderr).
pub fn latch_with(args: &[&str], config: &Path) -> (ExitStatus, String, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", config.to_str().unwrap()]);
    latch_cmd(&all, &[])
}
