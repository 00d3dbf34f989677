//! Start-up, restart and shutdown: what survives, what refuses to start.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::*;

#[test]
fn restart_keeps_users_and_revocations() {
    let dir = TempDir::new("restart");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let revoked = c.token("alice", "alice-password");
    let live = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/logout", &bearer(&revoked)).status, 200);

    let server = server.restart();
    let c = server.client();
    c.assert_alive("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&live)).status, 200);
    c.resource(&bearer(&revoked)).assert_challenges(true);
    // The name is still taken, ids keep counting.
    let res = c.post_json(
        "/api/users",
        &json!({"username": "alice", "password": "other-password"}),
        &[],
    );
    assert_eq!(res.status, 409);
    assert!(c.register("bob", "bob-password") > 1);
}

/// `[limits] workers` is how many threads serve requests: asked for more
/// than the cores (the default is half of them), the server runs that
/// many (tokio names its workers `tokio-rt-worker`; its blocking threads,
/// which share the name, only add to the count).
#[test]
fn workers_sets_the_threads_that_serve_requests() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores + 3;
    let dir = TempDir::new("workers");
    let server = Server::start(&dir, &format!("[limits]\nworkers = {workers}\n"));
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count();
    assert!(
        threads >= workers,
        "{threads} threads for workers = {workers}"
    );
    server.client().register("alice", "alice-password");
    server.client().assert_alive("alice", "alice-password");
}

#[test]
fn sigterm_exits_zero() {
    let dir = TempDir::new("sigterm");
    let server = Server::start(&dir, "");
    server.client().register("alice", "alice-password");
    let status = server.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_server_on_the_same_data_is_refused() {
    let dir = TempDir::new("locked");
    let first = Server::start(&dir, "");
    let log = match Server::try_start(&first.config_path) {
        Ok(_) => panic!("a second server started on the same data directory"),
        Err(log) => log,
    };
    assert!(log.contains("in use by another process"), "{log}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("latch: ")).count(),
        1,
        "{log}"
    );
    // The first one is unharmed.
    first.client().register("alice", "alice-password");
}

#[test]
fn default_key_file_is_created_with_mode_0600_and_reused() {
    let dir = TempDir::new("keyfile");
    let data = dir.path().join("data");
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nregistration = \"open\"\n[scrypt]\n\
             log_n = 4\n[ops]\nlisten = \"\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_with(&config);
    let key_path = data.join("secret.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(server.log().contains("wrote a new secret key"));
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert_eq!(
        latch::crypto::b64_decode(key.trim().as_bytes())
            .unwrap()
            .len(),
        32
    );
    server.client().register("alice", "alice-password");
    let token = server.client().token("alice", "alice-password");
    // Restarted, the same key verifies the old token.
    let server = server.restart();
    assert!(!server.log().contains("wrote a new secret key"));
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    assert_eq!(server.client().resource(&bearer(&token)).status, 200);
}

/// Starting with this config fails with one line containing `expect`.
fn refuses_to_start(config_text: &str, expect: &str) {
    let dir = TempDir::new("refuse");
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        config_text.replace("DIR", &dir.path().display().to_string()),
    )
    .unwrap();
    let (status, _, stderr) = latch_cmd(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("latch: "), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in {stderr}");
}

#[test]
fn bad_configs_stop_start_up_with_one_line() {
    refuses_to_start("listen = \"127.0.0.1:0\"\nlisten_port = 3\n", "listen_port");
    refuses_to_start("[scrypt]\nlog_n = 4\nmemory = 3\n", "memory");
    refuses_to_start("secret_key = \"c2hvcnQ=\"\n", "at least 32");
    refuses_to_start("secret_key = \"***not base64***\"\n", "not valid base64");
    refuses_to_start(
        "data_dir = \"DIR/data\"\nsecret_key_file = \"DIR\"\n",
        "cannot read key file",
    );
    refuses_to_start("listen = \"not an address\"\n", "listen");
    refuses_to_start("registration = \"sometimes\"\n", "registration");
    refuses_to_start("token_ttl = -5\n", "token_ttl");
    refuses_to_start("[scrypt]\nlog_n = 25\n", "ceiling");
    refuses_to_start("[limits]\nworkers = 0\n", "workers must be from 1 to 1024");
    refuses_to_start("this is not toml", "config");
}

#[test]
fn a_short_key_file_is_refused() {
    let dir = TempDir::new("shortkey");
    let key = dir.path().join("short.key");
    std::fs::write(&key, latch::crypto::b64_encode(&[1u8; 16])).unwrap();
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nsecret_key_file = {:?}\n",
            dir.path().join("data").display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let (status, _, stderr) = latch_cmd(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert!(!status.success());
    assert!(stderr.contains("at least 32"), "{stderr}");
}

#[test]
fn login_upgrades_a_weaker_stored_hash() {
    let dir = TempDir::new("rehash");
    let cost_of = |server: &InProcess| {
        let user = server.app.service.user_named("alice").unwrap();
        latch::crypto::stored_cost(&user.password_hash)
            .unwrap()
            .log_n
    };
    let server = InProcess::start(&dir, "", latch::Clock::system());
    server.client.register("alice", "alice-password");
    assert_eq!(cost_of(&server), 4);
    drop(server);

    // Restarted with a higher cost: the next login rehashes.
    let stronger = "[scrypt]\nlog_n = 6";
    let server = InProcess::start(&dir, stronger, latch::Clock::system());
    assert_eq!(cost_of(&server), 4, "nothing changes before a login");
    server.client.assert_alive("alice", "alice-password");
    assert_eq!(cost_of(&server), 6);
    drop(server);

    // The upgraded hash still checks the same password, and only it.
    let server = InProcess::start(&dir, stronger, latch::Clock::system());
    let c = &server.client;
    c.assert_alive("alice", "alice-password");
    c.resource(&basic("alice", "wrong-password"))
        .assert_challenges(false);
}

#[test]
fn env_overrides_the_file() {
    let dir = TempDir::new("env");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, config_text(dir.path(), "registration = \"open\"")).unwrap();
    let (status, stdout, stderr) = latch_cmd(
        &["check-config", "--config", config.to_str().unwrap()],
        &[
            ("LATCH_REGISTRATION", "closed"),
            ("LATCH_SCRYPT__LOG_N", "5"),
            ("LATCH_TEST_STRICT", "1"),
        ],
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("registration = \"closed\""), "{stdout}");
    assert!(stdout.contains("log_n = 5"), "{stdout}");
    let (status, _, stderr) = latch_cmd(
        &["check-config", "--config", config.to_str().unwrap()],
        &[("LATCH_NO_SUCH_KEY", "1")],
    );
    assert!(!status.success());
    assert!(stderr.contains("no_such_key"), "{stderr}");
}

#[test]
fn a_damaged_database_is_a_clear_error() {
    let dir = TempDir::new("corrupt");
    let server = Server::start(&dir, "");
    server.client().register("alice", "alice-password");
    assert!(server.stop().success());
    let db = dir.path().join("data").join("db");
    let size = std::fs::metadata(&db).unwrap().len() as usize;
    for damage in [Vec::new(), vec![0x5a; size]] {
        std::fs::write(&db, &damage).unwrap();
        let config = dir.path().join("latch.toml");
        let log = match Server::try_start(&config) {
            Ok(_) => panic!("started on a damaged database ({} bytes)", damage.len()),
            Err(log) => log,
        };
        assert!(log.contains("corrupt"), "{log}");
        assert!(!log.contains("panicked"), "{log}");
        assert_eq!(log.lines().count(), 1, "{log}");
    }
}

#[test]
fn a_full_hashing_queue_answers_503_quickly() {
    let dir = TempDir::new("busy");
    let server = InProcess::new(
        &dir,
        "[scrypt]\nlog_n = 15\nmax_concurrent = 1\nmax_queue = 0\n",
    );
    let c = server.client();
    // Different accounts: identical checks in flight together would share
    // one hash.
    for i in 0..4 {
        c.register(&format!("user{i}"), "user-password");
    }
    let results: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    let res = c.resource(&basic(&format!("user{i}"), "user-password"));
                    (res.status, res.header("retry-after").map(str::to_owned))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(ok >= 1, "{results:?}");
    assert!(!busy.is_empty(), "{results:?}");
    assert_eq!(ok + busy.len(), results.len(), "{results:?}");
    assert!(
        busy.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{results:?}"
    );
    c.assert_alive("user0", "user-password");
}

#[test]
fn a_data_directory_made_beforehand_is_made_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("dirmode");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = InProcess::new(&dir, "");
    server.client().register("alice", "alice-password");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the password hashes are in there");
}
