//! Headless Chromium, driven over WebDriver (chromedriver): open a
//! protected URL through Caddy, land on latch's login page, fill the form,
//! arrive back at the app, which shows the user. A screenshot is saved to
//! `target/browser-failure.png` when a step fails.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::forward::{open_login, set_cookie, submit_login};
use crate::proxies::{free_port, latch_for, start_caddy, via, Upstream};
use crate::support::*;

/// A chromedriver process and one browser session, ended on drop.
struct Browser {
    driver: Child,
    client: Client,
    session: String,
    _profile: TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        let client = Client { addr };
        let profile = TempDir::new("chromium-profile");
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
            format!("--user-data-dir={}", profile.path().display()),
            "--host-resolver-rules=MAP *.example.test 127.0.0.1",
            "--window-size=1024,768",
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let res = client.post_json("/session", &caps, &[]);
        assert_eq!(res.status, 200, "no browser session: {}", res.text());
        let session = res.json()["value"]["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        Browser {
            driver,
            client,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let res = match body {
            Some(body) => self.client.post_json(&path, &body, &[]),
            None => self.client.request(method, &path, &[], None),
        };
        assert_eq!(res.status, 200, "{method} {path}: {}", res.text());
        res.json()["value"].clone()
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_owned()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Waits until the current URL starts with `prefix`.
    fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url();
            if url.starts_with(prefix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "stuck at {url}, expected {prefix}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the page source contains `text`; returns the source.
    fn wait_for_text(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.source();
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared in:\n{source}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` in the page; returns its value.
    fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Renders as a phone `width` CSS pixels wide would.
    fn narrow(&self, width: u32) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": 640, "deviceScaleFactor": 1, "mobile": true,
                }}),
            ),
        );
    }

    fn screenshot(&self, path: &std::path::Path) {
        let path_url = format!("/session/{}/screenshot", self.session);
        if let Ok(res) = self.client.try_raw(
            format!(
                "GET {path_url} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.client.addr
            )
            .as_bytes(),
        ) {
            if let Some(png) = serde_json::from_slice::<Value>(&res.body)
                .ok()
                .and_then(|v| v["value"].as_str().map(str::to_owned))
                .and_then(|b64| latch::crypto::b64_decode(b64.as_bytes()))
            {
                let _ = std::fs::write(path, png);
                eprintln!("screenshot saved to {}", path.display());
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.client.try_raw(
            format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.session, self.client.addr
            )
            .as_bytes(),
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn sign_in_through_caddy_in_headless_chromium() {
    if !require_program("caddy")
        || !require_program("python3")
        || !require_program("chromium")
        || !require_program("chromedriver")
    {
        return;
    }
    let dir = TempDir::new("browser");
    let upstream = Upstream::start();
    let port = free_port();
    let server = latch_for(&dir, port);
    let _caddy = start_caddy(&dir, port, server.addr.port(), upstream.port);
    let browser = Browser::start();
    let app = format!("http://app.example.test:{port}/dashboard?tab=1");
    let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // 1. The protected URL sends us to the login page, rd attached.
        browser.go(&app);
        let login = browser.wait_for_url(&format!("http://auth.example.test:{port}/login?rd="));
        assert!(login.contains("dashboard"), "{login}");
        browser.wait_for_text("Sign in");
        // 2. A wrong password: the form again, one generic message.
        browser.type_into("#username", "alice");
        browser.type_into("#password", "not-her-password");
        browser.click("button[type=submit]");
        browser.wait_for_text("Invalid username or password.");
        // 3. The right one: back at the app, which sees the user.
        browser.type_into("#username", "alice");
        browser.type_into("#password", "alice-password");
        browser.click("button[type=submit]");
        browser.wait_for_url(&app);
        let page = browser.wait_for_text(r#""HTTP_REMOTE_USER":"alice""#);
        assert!(
            page.contains(r#""HTTP_REMOTE_GROUPS":"admins,media""#),
            "{page}"
        );
        // 4. The cookie covers the admin area too (alice is an admin).
        browser.go(&format!("http://app.example.test:{port}/admin/"));
        browser.wait_for_url(&format!("http://app.example.test:{port}/admin/"));
        browser.wait_for_text(r#""HTTP_REMOTE_USER":"alice""#);
        // 5. Signing out on latch's page ends the session everywhere.
        browser.go(&format!("http://auth.example.test:{port}/"));
        browser.wait_for_text(r#"<strong id="user">alice</strong>"#);
        browser.click("button[type=submit]");
        browser.wait_for_url(&format!("http://auth.example.test:{port}/login"));
        browser.go(&app);
        browser.wait_for_url(&format!("http://auth.example.test:{port}/login?rd="));
    }));
    if let Err(panic) = steps {
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-failure.png");
        browser.screenshot(&shot);
        std::panic::resume_unwind(panic);
    }
}

/// "Remember me", the account page at 320 px, and a second session ended
/// from the first, which loses access on its next request through Caddy.
#[test]
fn sessions_on_the_account_page_in_headless_chromium() {
    if !require_program("caddy")
        || !require_program("python3")
        || !require_program("chromium")
        || !require_program("chromedriver")
    {
        return;
    }
    let dir = TempDir::new("browser-sessions");
    let upstream = Upstream::start();
    let port = free_port();
    let server = latch_for(&dir, port);
    let caddy = start_caddy(&dir, port, server.addr.port(), upstream.port);
    let browser = Browser::start();
    let app = format!("http://app.example.test:{port}/dashboard");
    let account = format!("http://auth.example.test:{port}/");
    let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // 1. Sign in with "remember me".
        browser.go(&app);
        browser.wait_for_url(&format!("http://auth.example.test:{port}/login?rd="));
        browser.type_into("#username", "alice");
        browser.type_into("#password", "alice-password");
        browser.click("#remember");
        browser.click("button[type=submit]");
        browser.wait_for_url(&app);
        browser.wait_for_text(r#""HTTP_REMOTE_USER":"alice""#);
        // 2. The account page lists this session, remembered.
        browser.go(&account);
        let page = browser.wait_for_text("(this session)");
        assert!(page.contains(" (remembered)."), "{page}");
        // 3. Readable at 320 px: nothing wider than the screen, and the
        // style sheet allowed by its hash (the policy would block it
        // otherwise).
        browser.narrow(320);
        browser.go(&account);
        browser.wait_for_text("(this session)");
        let widths = browser.run(
            "return [document.documentElement.scrollWidth, window.innerWidth, \
             getComputedStyle(document.querySelector('main')).borderTopLeftRadius];",
        );
        assert_eq!(widths[1], 320, "{widths}");
        assert!(widths[0].as_u64().unwrap() <= 320, "{widths}");
        assert_eq!(widths[2], "8px", "the style sheet did not apply: {widths}");
        // 4. A second session (another device) ...
        let c = server.client();
        let form = open_login(&c, "");
        let origin = format!("http://auth.example.test:{port}");
        let res = submit_login(
            &c,
            &form,
            "alice",
            "alice-password",
            None,
            &[("Origin", &origin), ("User-Agent", "OtherDevice/1.0")],
        );
        assert_eq!(res.status, 303, "{}", res.text());
        let (value, _) = set_cookie(&res, "latch_session").unwrap();
        let other = format!("latch_session={value}");
        let cookie: &[(&str, &str)] = &[("Cookie", &other), ("Accept", "text/html")];
        assert_eq!(
            via(&caddy, "app", "GET", "/dashboard", cookie, b"").status,
            200
        );
        // ... is ended from the first.
        browser.go(&account);
        browser.wait_for_text("OtherDevice/1.0");
        let payload = value.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&latch::crypto::b64url_decode(payload.as_bytes()).unwrap())
                .unwrap();
        let id = claims["jti"].as_str().unwrap();
        browser.click(&format!("li[id=\"session-{id}\"] button"));
        browser.wait_for_url(&account);
        let deadline = Instant::now() + Duration::from_secs(15);
        while browser.source().contains("OtherDevice/1.0") {
            assert!(Instant::now() < deadline, "the session is still listed");
            std::thread::sleep(Duration::from_millis(50));
        }
        let res = via(&caddy, "app", "GET", "/dashboard", cookie, b"");
        assert_eq!(res.status, 302, "the ended session still gets in");
        // The first one still does.
        browser.go(&app);
        browser.wait_for_text(r#""HTTP_REMOTE_USER":"alice""#);
    }));
    if let Err(panic) = steps {
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-failure.png");
        browser.screenshot(&shot);
        std::panic::resume_unwind(panic);
    }
}
