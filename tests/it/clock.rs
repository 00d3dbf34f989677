//! Expiry, with the library's `run` in-process so the test can move the
//! server's clock instead of sleeping.

use std::time::Duration;

use latch::{App, Clock, Config};

use crate::support::*;

/// A server running `latch::run` on a 127.0.0.1:0 listener with `clock`.
pub struct InProcess {
    pub client: Client,
    /// The server's state, for what only the library can reach (pruning).
    pub app: std::sync::Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<latch::Result<()>>>,
}

impl InProcess {
    pub fn start(dir: &TempDir, extra: &str, clock: Clock) -> InProcess {
        let config = Config::from_toml(&config_text(dir.path(), extra)).unwrap();
        let app = std::sync::Arc::new(App::open(config, clock).unwrap());
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
            app: handle,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

#[test]
fn tokens_expire_when_the_clock_passes_exp() {
    let dir = TempDir::new("expiry");
    let clock = Clock::system();
    let server = InProcess::start(&dir, "token_ttl = 600", clock.clone());
    let c = server.client;
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    let login = c.post_json(
        "/login",
        &json!({"username": "alice", "password": "alice-password"}),
        &[],
    );
    let flask = login.json()["token"].as_str().unwrap().to_owned();

    clock.advance(598);
    assert_eq!(c.resource(&bearer(&token)).status, 200);
    assert_eq!(c.resource(&bearer(&flask)).status, 200);
    clock.advance(2);
    for t in [&token, &flask] {
        let res = c.resource(&bearer(t));
        res.assert_challenges(true);
        assert_eq!(res.error_code(), "invalid_token");
        c.get("/api/resource", &[("Authentication-Token", t)])
            .assert_challenges(true);
    }
    // The password still works, and buys a token valid from the new now.
    let fresh = c.token("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&fresh)).status, 200);
    clock.advance(599);
    assert_eq!(c.resource(&bearer(&fresh)).status, 200);
    clock.advance(1);
    c.resource(&bearer(&fresh)).assert_challenges(true);
}

#[test]
fn shutdown_drains_and_returns() {
    let dir = TempDir::new("drain");
    let server = InProcess::start(&dir, "", Clock::system());
    server.client.register("alice", "alice-password");
    let start = std::time::Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(5));
    // The data is on disk: the store reopens with the user in it.
    let store = latch::store::Store::open(&dir.path().join("data")).unwrap();
    assert!(store.user_by_name("alice").unwrap().is_some());
}
