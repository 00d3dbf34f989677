//! Expiry, with the library's `run` in-process so the test can move the
//! server's clock instead of sleeping.

use std::time::Duration;

use latch::model::UserId;
use latch::Clock;

use crate::support::*;

#[test]
fn tokens_expire_when_the_clock_passes_exp() {
    let dir = TempDir::new("expiry");
    let clock = Clock::frozen();
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
    // The data is on disk: the server reopens with the user in it.
    let server = InProcess::start(&dir, "", Clock::system());
    assert!(server.app.service.user_named("alice").is_ok());
}

#[test]
fn shutdown_answers_the_request_in_flight_and_closes_idle_connections() {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    let dir = TempDir::new("drain-inflight");
    let server = InProcess::new(&dir, "");
    let addr = server.addr;
    // An idle keep-alive connection, one request answered on it.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // A registration whose handler waits for its body when shutdown
    // begins: hyper answers `100 Continue` once the handler reads it.
    let body = br#"{"username":"alice","password":"alice-password"}"#;
    let mut busy = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).unwrap();
    let n = busy.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", &buf[..n]);
    busy.write_all(&body[..10]).unwrap();

    let stopping = std::thread::spawn(move || server.stop());
    // Shutdown has begun once the listener is closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        std::thread::yield_now();
    }
    busy.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    busy.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        idle.read(&mut buf).unwrap(),
        0,
        "the idle connection is closed"
    );
    stopping.join().unwrap().unwrap();

    let server = InProcess::new(&dir, "");
    assert!(server.app.service.user_named("alice").is_ok());
}

#[test]
fn pruning_never_revives_a_live_token() {
    let dir = TempDir::new("prune");
    let clock = Clock::frozen();
    let server = InProcess::start(
        &dir,
        "token_ttl = 600\n[forward_auth]\nsession_ttl = 600\nremember_me_ttl = 0",
        clock.clone(),
    );
    let c = server.client;
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let revoked = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/logout", &bearer(&revoked)).status, 200);
    let before_cutoff = c.token("bob", "bob-password");
    assert_eq!(
        c.post_auth("/api/logout-all", &bearer(&before_cutoff))
            .status,
        200
    );
    let prune = || tokio_block_on(server.app.service.prune()).unwrap();

    // While the tokens live, pruning keeps what refuses them.
    for step in [0, 300, 299] {
        clock.advance(step);
        assert_eq!(prune(), 0, "pruned something live after +{step}");
        c.resource(&bearer(&revoked)).assert_challenges(true);
        c.resource(&bearer(&before_cutoff)).assert_challenges(true);
    }
    let bob = UserId::new(2);
    assert!(server.app.service.cutoff(bob).is_some());

    // Once they expired, the revocation goes; the cutoff stays for a
    // margin more (a login under way when it came may issue its token a
    // little later), then goes too. The tokens stay refused throughout.
    clock.advance(2);
    assert_eq!(prune(), 1, "the revocation goes");
    assert!(server.app.service.cutoff(bob).is_some());
    c.resource(&bearer(&before_cutoff)).assert_challenges(true);
    clock.advance(599);
    assert_eq!(prune(), 0);
    clock.advance(1);
    assert_eq!(prune(), 1, "the cutoff goes");
    assert!(server.app.service.cutoff(bob).is_none());
    c.resource(&bearer(&revoked)).assert_challenges(true);
    c.resource(&bearer(&before_cutoff)).assert_challenges(true);
    c.assert_alive("bob", "bob-password");
}

#[test]
fn a_shorter_ttl_after_restart_does_not_prune_early() {
    let dir = TempDir::new("prunettl");
    let clock = Clock::frozen();
    let server = InProcess::start(
        &dir,
        "token_ttl = 3600\n[forward_auth]\nsession_ttl = 3600\nremember_me_ttl = 0",
        clock.clone(),
    );
    server.client.register("alice", "alice-password");
    let long = server.client.token("alice", "alice-password");
    assert_eq!(
        server
            .client
            .request(
                "POST",
                "/api/logout-all",
                &[("Authorization", &bearer(&long))],
                None
            )
            .status,
        200
    );
    drop(server);
    // Restarted with tokens ten times shorter: the cutoff must still
    // outlive the hour-long token issued before it.
    let server = InProcess::start(
        &dir,
        "token_ttl = 360\n[forward_auth]\nsession_ttl = 360\nremember_me_ttl = 0",
        clock.clone(),
    );
    clock.advance(1000);
    assert_eq!(tokio_block_on(server.app.service.prune()).unwrap(), 0);
    server
        .client
        .resource(&bearer(&long))
        .assert_challenges(true);
    clock.advance(2601);
    assert_eq!(tokio_block_on(server.app.service.prune()).unwrap(), 0);
    clock.advance(600);
    assert_eq!(tokio_block_on(server.app.service.prune()).unwrap(), 1);
    server
        .client
        .resource(&bearer(&long))
        .assert_challenges(true);
}

#[test]
fn a_second_cutoff_in_the_same_second_refuses_tokens_issued_between() {
    let dir = TempDir::new("samesecond");
    let server = InProcess::start(&dir, "", Clock::frozen());
    let c = server.client;
    c.register("alice", "alice-password");
    let first = c.token("alice", "alice-password");
    let logout_all = |token: &str| c.post_auth("/api/logout-all", &bearer(token)).status;
    assert_eq!(logout_all(&first), 200);
    // Issued after the first cutoff, in its second: of the new epoch,
    // accepted.
    let between = c.token("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&between)).status, 200);
    assert_eq!(logout_all(&between), 200);
    // The second cutoff, in the same second, refuses it.
    c.resource(&bearer(&between)).assert_challenges(true);
    c.resource(&bearer(&first)).assert_challenges(true);
    let after = c.token("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&after)).status, 200);
}

#[test]
fn a_login_under_way_when_the_password_changes_yields_nothing_that_lasts() {
    // The login's check began before the change (it read the old epoch);
    // the change lands while it hashes. Simulated exactly: a proof made,
    // then the password changed, then the token issued from the proof.
    let dir = TempDir::new("loginrace");
    let server = InProcess::start(&dir, "", Clock::frozen());
    let c = server.client;
    c.register("alice", "alice-password");
    let service = &server.app.service;
    let proven = tokio_block_on(service.sign_in("alice", "alice-password", None)).unwrap();
    tokio_block_on(service.set_password(&proven.user, "reset-by-admin")).unwrap();
    // No token is handed out from the stale proof...
    let e = tokio_block_on(service.issue(&proven)).err().unwrap();
    assert_eq!(status(&e), 401);
    let e = tokio_block_on(service.issue_session(&proven, Default::default()))
        .err()
        .unwrap();
    assert_eq!(status(&e), 401);
    // ...nor a key, however recent the proof.
    let who = service.password_identity(proven.clone());
    let e = tokio_block_on(service.create_key(&who, "backdoor", None))
        .err()
        .unwrap();
    assert_eq!(status(&e), 401);
    // And a token of the old epoch, were one signed, is refused.
    let keys = latch::token::Keys::new(
        latch::crypto::SigningKey::new(&latch::crypto::b64_decode(TEST_KEY.as_bytes()).unwrap()),
        vec![],
    );
    let now = Clock::frozen().now();
    let stale = keys.sign(&latch::token::Claims {
        sub: proven.user.id.to_string(),
        name: "alice".into(),
        aud: latch::token::Audience::Api,
        iat: now + 5,
        exp: now + 600,
        auth_time: now + 5,
        amr: vec!["pwd".into()],
        epoch: proven.epoch,
        jti: latch::crypto::b64url_encode(&[3u8; 16]),
    });
    c.resource(&bearer(&stale)).assert_challenges(true);
    c.assert_alive("alice", "reset-by-admin");
}

/// The HTTP status an error maps to.
fn status(e: &latch::Error) -> u16 {
    latch::http::response::status(e.kind()).as_u16()
}
