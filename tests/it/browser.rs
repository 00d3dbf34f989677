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

/// The second factor in the browser, through Caddy, with latch in process
/// on a frozen clock (moved a time step between codes, never slept): a
/// one-factor session stepped up on a `two_factor` path once the user has
/// a factor; enrolment on the account page (the key read from the page,
/// the code computed here); sign-in with password and code, a replayed
/// code refused; a recovery code signing in once and refused the second
/// time.
#[test]
fn two_factor_enrolment_sign_in_step_up_and_recovery_in_headless_chromium() {
    use latch::otp::{self, Secret};

    if !require_program("caddy")
        || !require_program("python3")
        || !require_program("chromium")
        || !require_program("chromedriver")
    {
        return;
    }
    let dir = TempDir::new("browser-totp");
    let upstream = Upstream::start();
    let port = free_port();
    let clock = latch::Clock::frozen();
    let config = format!(
        "public_url = \"http://auth.example.test:{port}\"\n[forward_auth]\n\
         cookie_domain = \"example.test\"\ncookie_secure = false\n\
         trusted_proxies = [\"127.0.0.1\"]\n\
         [access_control]\ndefault_policy = \"one_factor\"\n\
         [[access_control.rules]]\ndomain = \"app.example.test\"\n\
         resources = [\"^/secure(/.*)?$\"]\npolicy = \"two_factor\"\n"
    );
    let server = InProcess::start(&dir, &config, clock.clone());
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let _caddy = start_caddy(&dir, port, server.addr.port(), upstream.port);
    let browser = Browser::start();
    let auth = format!("http://auth.example.test:{port}");
    let app = format!("http://app.example.test:{port}");
    let account = format!("{auth}/");
    let login = format!("{auth}/login?rd=");
    let code = |secret: &Secret| format!("{:06}", otp::code_at(secret, otp::step(clock.now())));
    let next_step = || clock.advance(otp::PERIOD as i64);
    // The login page's first step, from a protected URL: the password.
    let password_step = |url: &str, user: &str, password: &str| {
        browser.go(url);
        let at = browser.wait_for_url(&login);
        assert!(at.contains("example.test"), "{at}");
        browser.wait_for_text("Sign in");
        browser.type_into("#username", user);
        browser.type_into("#password", password);
        browser.click("button[type=submit]");
    };
    // Lands on the code form of a sign-in in two steps (no cookie yet).
    let code_form = || {
        let page = browser.wait_for_text(r#"id="verify""#);
        assert!(page.contains("Enter your code"), "{page}");
        assert!(page.contains(r#"name="pending""#), "{page}");
        assert!(browser.url().starts_with(&auth), "{}", browser.url());
    };
    let sign_out = || {
        browser.go(&account);
        browser.wait_for_text(r#"id="sign-out""#);
        browser.click("#sign-out");
        browser.wait_for_url(&format!("{auth}/login"));
    };
    // The app behind Caddy was reached at `path` and told `user`.
    let at_app = |path: &str, user: &str| {
        browser.wait_for_url(&format!("{app}{path}"));
        let page = browser.wait_for_text(&format!(r#""HTTP_REMOTE_USER":"{user}""#));
        assert!(page.contains(&format!(r#""path":"{path}""#)), "{page}");
    };
    let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // 1. alice, no second factor yet: the password alone lets her in
        //    on a one_factor path.
        password_step(&format!("{app}/dashboard"), "alice", "alice-password");
        at_app("/dashboard", "alice");

        // 2. She sets up a factor (over the API, outside the browser): the
        //    browser's session is now a one-factor one of a TOTP user.
        let basic_auth = basic("alice", "alice-password");
        let res = c.post_json("/api/totp", &json!({}), &[("Authorization", &basic_auth)]);
        assert_eq!(res.status, 200, "{}", res.text());
        let text = res.json()["secret"].as_str().unwrap().to_owned();
        let alice = Secret(otp::base32_decode(&text).unwrap().try_into().unwrap());
        let res = c.post_json(
            "/api/totp/confirm",
            &json!({"code": code(&alice)}),
            &[("Authorization", &basic_auth)],
        );
        assert_eq!(res.status, 200, "{}", res.text());
        next_step();
        // one_factor paths still let the session in; a two_factor path
        // sends it to the code form (step-up: no pending sign-in).
        browser.go(&format!("{app}/dashboard"));
        at_app("/dashboard", "alice");
        browser.go(&format!("{app}/secure/x?y=1"));
        let at = browser.wait_for_url(&format!("{auth}/login/otp?rd="));
        assert!(at.contains("secure"), "{at}");
        let page = browser.wait_for_text(r#"id="verify""#);
        assert!(!page.contains(r#"name="pending""#), "{page}");
        browser.type_into("#code", &code(&alice));
        browser.click("#verify");
        at_app("/secure/x?y=1", "alice");
        // The stepped-up session passes two_factor paths from now on.
        browser.go(&format!("{app}/secure/again"));
        at_app("/secure/again", "alice");
        sign_out();

        // 3. bob enrols on the account page.
        password_step(&format!("{app}/dashboard"), "bob", "bob-password");
        at_app("/dashboard", "bob");
        browser.go(&account);
        let page = browser.wait_for_text("Two-factor sign-in");
        assert!(page.contains("Off: you sign in with your password alone."));
        browser.type_into("#totp-password", "bob-password");
        browser.click("#enrol");
        browser.wait_for_text("Scan this code");
        assert_eq!(browser.url(), format!("{auth}/login/otp/enrol"));
        // The QR code is drawn (an inline SVG the strict CSP allows).
        let qr = browser.run(
            "const svg = document.querySelectorAll('#qr svg'); \
             if (svg.length !== 1) return null; \
             const box = svg[0].getBoundingClientRect(); \
             return [box.width, box.height];",
        );
        let sides: Vec<f64> = qr
            .as_array()
            .expect("one QR code")
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            sides.iter().all(|&side| side >= 150.0),
            "the QR code is too small: {qr}"
        );
        let text = browser.run("return document.getElementById('secret').textContent;");
        let bob = otp::base32_decode(text.as_str().unwrap()).expect("a base32 key");
        let bob = Secret(bob.try_into().expect("20 bytes"));
        browser.type_into("#code", &code(&bob));
        browser.click("#confirm");
        browser.wait_for_text(r#"id="recovery-codes""#);
        let codes = browser.run(
            "return Array.from(document.querySelectorAll('#recovery-codes code'))\
             .map(e => e.textContent);",
        );
        let codes: Vec<String> = codes
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(codes.len(), 10, "{codes:?}");
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
        }
        browser.click("#continue");
        browser.wait_for_url(&account);
        browser.wait_for_text("On: 10 recovery codes left.");
        // Enrolment made this session a two-factor one.
        browser.go(&format!("{app}/secure/enrolled"));
        at_app("/secure/enrolled", "bob");
        sign_out();

        // Password and code: in, at the two_factor path asked for.
        next_step();
        let used = code(&bob);
        password_step(&format!("{app}/secure/report"), "bob", "bob-password");
        code_form();
        browser.type_into("#code", &used);
        browser.click("#verify");
        at_app("/secure/report", "bob");
        sign_out();
        // The same code again within its step: refused, the form again;
        // the next step's code then signs in from that form.
        password_step(&format!("{app}/secure/report"), "bob", "bob-password");
        code_form();
        browser.type_into("#code", &used);
        browser.click("#verify");
        let page = browser.wait_for_text("Invalid or already used code.");
        assert!(page.contains(r#"id="error""#), "{page}");
        assert!(page.contains(r#"name="pending""#), "{page}");
        next_step();
        browser.type_into("#code", &code(&bob));
        browser.click("#verify");
        at_app("/secure/report", "bob");
        sign_out();

        // 4. A recovery code in place of a code: in, once.
        password_step(&format!("{app}/secure/recovered"), "bob", "bob-password");
        code_form();
        browser.type_into("#code", &codes[0]);
        browser.click("#verify");
        at_app("/secure/recovered", "bob");
        browser.go(&account);
        browser.wait_for_text("On: 9 recovery codes left.");
        sign_out();
        password_step(&format!("{app}/secure/recovered"), "bob", "bob-password");
        code_form();
        browser.type_into("#code", &codes[0]);
        browser.click("#verify");
        let page = browser.wait_for_text("Invalid or already used code.");
        assert!(page.contains(r#"id="error""#), "{page}");
        assert!(browser.url().starts_with(&auth), "{}", browser.url());
        // No session: the app sends the browser to sign in again.
        browser.go(&format!("{app}/dashboard"));
        browser.wait_for_url(&login);
        browser.go(&account);
        browser.wait_for_url(&format!("{auth}/login"));
    }));
    if let Err(panic) = steps {
        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-failure.png");
        browser.screenshot(&shot);
        std::panic::resume_unwind(panic);
    }
}
