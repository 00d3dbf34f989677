//! Operations: health, metrics.

use crate::support::*;

#[test]
fn healthz_answers_while_the_store_does() {
    let dir = TempDir::new("healthz");
    let server = InProcess::new(&dir, "");
    // On both listeners.
    for c in [server.client(), server.ops()] {
        let res = c.get("/healthz", &[]);
        assert_eq!(res.status, 200);
        assert_eq!(res.json(), json!({"status": "ok"}));
        let res = c.request("POST", "/healthz", &[], None);
        assert_eq!(res.status, 405);
        assert_eq!(res.header("allow"), Some("GET, HEAD"));
        let head = c.raw(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }
}

#[test]
fn operations_have_their_own_listener() {
    let dir = TempDir::new("opslisten");
    let server = Server::start(&dir, "");
    let (main, ops) = (server.client(), server.ops());
    assert_ne!(server.addr, server.ops_addr.unwrap());
    for path in ["/metrics", "/openapi.yaml"] {
        assert_eq!(
            main.get(path, &[]).status,
            404,
            "{path} on the public listener"
        );
        assert_eq!(ops.get(path, &[]).status, 200, "{path}");
        assert_eq!(ops.request("POST", path, &[], None).status, 405, "{path}");
    }
    // The operations listener serves nothing else.
    for path in ["/api/resource", "/login", "/auth", "/"] {
        assert_eq!(ops.get(path, &[]).status, 404, "{path}");
    }
    let log = server.log();
    assert!(
        log.contains(&format!("ops listening on {}", server.ops_addr.unwrap())),
        "{log}"
    );
}

#[test]
fn an_empty_ops_listen_turns_it_off_and_a_busy_port_stops_start_up() {
    let dir = TempDir::new("opsoff");
    let server = Server::start(&dir, "[ops]\nlisten = \"\"\n");
    assert_eq!(server.ops_addr, None);
    assert!(!server.log().contains("ops listening"));
    assert_eq!(server.client().get("/healthz", &[]).status, 200);
    // Another server whose ops port is the first one's main port.
    let busy = TempDir::new("opsbusy");
    let config = busy.path().join("latch.toml");
    std::fs::write(
        &config,
        config_text(
            busy.path(),
            &format!("[ops]\nlisten = \"{}\"\n", server.addr),
        ),
    )
    .unwrap();
    let log = Server::try_start(&config).err().expect("start-up stops");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].starts_with("latch: cannot listen on") && lines[0].contains("[ops] listen"),
        "{log}"
    );
}

/// The value of one exposition line, e.g. `latch_users 2`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_what_happens() {
    let dir = TempDir::new("metrics");
    let server = InProcess::new(&dir, "[regulation]\nmax_retries = 2\n[scrypt]\nlog_n = 4\n");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let token = c.token("alice", "alice-password");
    c.resource(&bearer(&token));
    c.resource(&bearer("eyJ.nope.nope"));
    c.post_auth("/logout", &bearer(&token));
    c.resource(&basic("bob", "wrong-password"));
    c.resource(&basic("bob", "wrong-password"));
    // Not on the public listener: only on the operations one.
    assert_eq!(c.get("/metrics", &[]).status, 404);
    let res = server.ops().get("/metrics", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = res.text();
    assert_eq!(value(&text, "latch_users"), 2.0);
    assert_eq!(value(&text, "latch_logins_total{result=\"success\"}"), 1.0);
    assert_eq!(value(&text, "latch_logins_total{result=\"failure\"}"), 2.0);
    assert_eq!(value(&text, "latch_bans_total"), 1.0);
    assert_eq!(value(&text, "latch_tokens_issued_total"), 1.0);
    assert_eq!(value(&text, "latch_revocations_total"), 1.0);
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"token\",result=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"token\",result=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"password\",result=\"refused\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_requests_total{route=\"/api/users\",status=\"2xx\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_requests_total{route=\"/api/resource\",status=\"4xx\"}"
        ),
        3.0
    );
    assert_eq!(value(&text, "latch_hash_queue_depth"), 0.0);
    // 9 requests before this one (the 404 for /metrics on the public
    // listener too), all in the histogram.
    assert_eq!(
        value(&text, "latch_http_request_duration_seconds_count"),
        9.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        9.0
    );
    // Every sample line is well formed: name{labels} number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, number) = line.rsplit_once(' ').unwrap();
        assert!(number.parse::<f64>().is_ok(), "{line}");
        assert!(line.starts_with("latch_"), "{line}");
    }
}

fn kid_of(token: &str) -> String {
    let header = latch::crypto::b64url_decode(token.split('.').next().unwrap().as_bytes()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn key_rotation() {
    let dir = TempDir::new("rotation");
    let config = dir.path().join("latch.toml");
    let write = |keys: &str| {
        std::fs::write(&config, config_text(dir.path(), keys)).unwrap();
    };
    let key_b = latch::crypto::b64_encode(&[0xbb; 32]);
    // Signed with A.
    let server = InProcess::new(&dir, "");
    server.client().register("alice", "alice-password");
    let token_a = server.client().token("alice", "alice-password");
    server.stop().unwrap();

    // B signs, A still verifies.
    let b_then_a = format!("secret_key = \"{key_b}\"\nprevious_keys = [\"{TEST_KEY}\"]");
    let server = InProcess::new(&dir, &b_then_a);
    let c = server.client();
    assert_eq!(c.resource(&bearer(&token_a)).status, 200);
    let token_b = c.token("alice", "alice-password");
    assert_ne!(kid_of(&token_a), kid_of(&token_b));
    assert_eq!(c.resource(&bearer(&token_b)).status, 200);
    server.stop().unwrap();

    // The same from a file.
    let old = dir.path().join("old.key");
    std::fs::write(&old, TEST_KEY).unwrap();
    let from_file = format!(
        "secret_key = \"{key_b}\"\nprevious_key_files = [{:?}]",
        old.display().to_string()
    );
    let server = InProcess::new(&dir, &from_file);
    assert_eq!(server.client().resource(&bearer(&token_a)).status, 200);
    server.stop().unwrap();

    // A dropped: its tokens are refused, B's still work.
    let server = InProcess::new(&dir, &format!("secret_key = \"{key_b}\""));
    let c = server.client();
    c.resource(&bearer(&token_a)).assert_challenges(true);
    assert_eq!(c.resource(&bearer(&token_b)).status, 200);
    server.stop().unwrap();

    // A short or missing previous key stops start-up with one line.
    for bad in [
        "previous_keys = [\"c2hvcnQ=\"]".to_owned(),
        format!(
            "previous_key_files = [{:?}]",
            dir.path().join("nope.key").display().to_string()
        ),
    ] {
        write(&format!("secret_key = \"{key_b}\"\n{bad}"));
        let log = match Server::try_start(&config) {
            Ok(_) => panic!("started with {bad}"),
            Err(log) => log,
        };
        assert_eq!(log.lines().count(), 1, "{log}");
    }
}

#[test]
fn systemd_readiness_notifications() {
    use std::os::unix::net::UnixDatagram;
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, config_text(dir.path(), "")).unwrap();
    let server = Server::try_start_in(
        &config,
        None,
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: it answers at once.
    assert_eq!(server.client().get("/healthz", &[]).status, 200);
    assert!(server.stop().success());
    let n = socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");

    // An abstract socket (@name), as systemd often uses.
    use std::os::linux::net::SocketAddrExt as _;
    let name = format!("latch-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abstract_socket = UnixDatagram::bind_addr(&addr).unwrap();
    abstract_socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let server =
        Server::try_start_in(&config, None, &[("NOTIFY_SOCKET", &format!("@{name}"))]).unwrap();
    let n = abstract_socket.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    assert!(server.stop().success());
}
