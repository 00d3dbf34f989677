//! `latch user ...`, with the server running (over the admin socket) and
//! stopped (on the database directly).

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::support::*;

/// Runs `latch user ARGS --config CONFIG` with `stdin` piped in:
/// (success, stdout, stderr without the config line).
pub fn user(config: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(&*LATCH)
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LATCH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        without_config_line(&String::from_utf8_lossy(&out.stderr)),
    )
}

fn ok(config: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let (success, stdout, stderr) = user(config, args, stdin);
    assert!(success, "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{args:?}: {stderr}");
    stdout
}

fn fails(config: &std::path::Path, args: &[&str], stdin: &str, expect: &str) {
    let (success, _, stderr) = user(config, args, stdin);
    assert!(!success, "{args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("latch: "), "{stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: expected {expect:?} in {stderr}"
    );
}

/// The whole command set, against a server that is `running` or not.
fn lifecycle(running: bool) {
    let dir = TempDir::new(if running { "cli-live" } else { "cli-offline" });
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), "registration = \"closed\""),
    )
    .unwrap();
    // Create the database (and check it starts) either way.
    let server = Server::start_with(&config);
    let server = if running {
        Some(server)
    } else {
        assert!(server.stop().success());
        None
    };
    // A server for HTTP checks: the running one, or one started afterwards.
    let with_server = |check: &dyn Fn(&Client)| match &server {
        Some(s) => check(&s.client()),
        None => {
            let s = Server::start_with(&config);
            check(&s.client());
            assert!(s.stop().success());
        }
    };

    let out = ok(
        &config,
        &[
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--group",
            "admins",
            "--group",
            "media",
            "--password-stdin",
        ],
        "alice-password\n",
    );
    assert!(out.starts_with("added user alice (id "), "{out}");
    ok(
        &config,
        &["add", "bob", "--password-stdin"],
        "bob-password\r\n",
    );
    fails(
        &config,
        &["add", "ALICE", "--password-stdin"],
        "another-password\n",
        "username is taken",
    );
    fails(
        &config,
        &["add", "carol", "--password-stdin"],
        "short\n",
        "8 to 1024",
    );
    fails(
        &config,
        &["add", "carol", "--password-stdin"],
        "",
        "no password",
    );
    fails(
        &config,
        &["add", "a b", "--password-stdin"],
        "carol-password\n",
        "username must be",
    );
    fails(
        &config,
        &[
            "add",
            "carol",
            "--email",
            "x@y",
            "--group",
            "a,b",
            "--password-stdin",
        ],
        "carol-password\n",
        "group names",
    );
    fails(
        &config,
        &[
            "add",
            "carol",
            "--email",
            "ALICE@example.com",
            "--password-stdin",
        ],
        "carol-password\n",
        "email is taken",
    );
    // Without a terminal there is nothing to prompt on.
    fails(&config, &["add", "carol"], "", "--password-stdin");

    let list = ok(&config, &["list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("ID"), "{list}");
    assert!(
        lines[1].contains("alice")
            && lines[1].contains("alice@example.com")
            && lines[1].contains("admins,media"),
        "{list}"
    );
    assert!(lines[2].contains("bob"), "{list}");
    assert!(!list.contains("password"), "{list}");

    let token = std::cell::RefCell::new(String::new());
    with_server(&|c| {
        c.assert_alive("alice", "alice-password");
        c.assert_alive("bob", "bob-password");
        let t = c.token("alice", "alice-password");
        let me = c
            .get("/api/users/me", &[("Authorization", &bearer(&t))])
            .json();
        assert_eq!(me["groups"], json!(["admins", "media"]));
        assert_eq!(me["email"], "alice@example.com");
        *token.borrow_mut() = t;
    });

    let out = ok(&config, &["groups", "alice", "ops"], "");
    assert!(out.contains("ops"), "{out}");
    ok(&config, &["groups", "bob"], "");
    fails(
        &config,
        &["groups", "nobody", "x"],
        "",
        "no user named \"nobody\"",
    );

    let out = ok(
        &config,
        &["passwd", "alice", "--password-stdin"],
        "alice-new-password\n",
    );
    assert!(out.contains("changed the password of alice"), "{out}");
    fails(
        &config,
        &["passwd", "alice", "--password-stdin"],
        "short\n",
        "8 to 1024",
    );
    fails(
        &config,
        &["passwd", "nobody", "--password-stdin"],
        "whatever-password\n",
        "no user named",
    );
    with_server(&|c| {
        // The token from before the change is refused at once.
        c.resource(&bearer(&token.borrow())).assert_challenges(true);
        c.resource(&basic("alice", "alice-password"))
            .assert_challenges(false);
        c.assert_alive("alice", "alice-new-password");
        let t = c.token("alice", "alice-new-password");
        let me = c
            .get("/api/users/me", &[("Authorization", &bearer(&t))])
            .json();
        assert_eq!(me["groups"], json!(["ops"]));
        *token.borrow_mut() = t;
    });

    let out = ok(&config, &["del", "alice"], "");
    assert!(out.contains("deleted user alice"), "{out}");
    fails(&config, &["del", "alice"], "", "no user named \"alice\"");
    with_server(&|c| {
        c.resource(&bearer(&token.borrow())).assert_challenges(true);
        c.resource(&basic("alice", "alice-new-password"))
            .assert_challenges(false);
        c.assert_alive("bob", "bob-password");
    });
    let list = ok(&config, &["list"], "");
    assert_eq!(list.lines().count(), 2, "{list}");
    // The name can be taken again.
    ok(
        &config,
        &["add", "alice", "--password-stdin"],
        "third-password\n",
    );

    // Non-ASCII passwords and emails arrive exactly as typed.
    ok(
        &config,
        &[
            "add",
            "jurgen",
            "--email",
            "jürgen@exämple.net",
            "--password-stdin",
        ],
        "pässwörd-ü-x\n",
    );
    fails(
        &config,
        &["add", "jürgen", "--password-stdin"],
        "pässwörd-ü-x\n",
        "username must be",
    );
    let list = ok(&config, &["list"], "");
    assert!(list.contains("jürgen@exämple.net"), "{list}");
    with_server(&|c| {
        c.assert_alive("jurgen", "pässwörd-ü-x");
        assert_eq!(
            c.resource(&basic("jürgen@exämple.net", "pässwörd-ü-x"))
                .status,
            200
        );
        c.resource(&basic("jurgen", "pÃ¤sswÃ¶rd-Ã¼-x"))
            .assert_challenges(false);
    });
    ok(
        &config,
        &["passwd", "jurgen", "--password-stdin"],
        "nöuveau-mot-dé-passe\n",
    );
    with_server(&|c| c.assert_alive("jurgen", "nöuveau-mot-dé-passe"));

    // API keys: listed (never the secret) and revoked from the CLI.
    let keys = std::cell::RefCell::new(Vec::<String>::new());
    with_server(&|c| {
        for name in ["backup", "ci"] {
            let res = c.post_json(
                "/api/keys",
                &json!({"name": name}),
                &[("Authorization", &basic("bob", "bob-password"))],
            );
            assert_eq!(res.status, 201, "{}", res.text());
            keys.borrow_mut()
                .push(res.json()["key"].as_str().unwrap().to_owned());
        }
    });
    let list = ok(&config, &["keys", "bob"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST_USED"),
        "{list}"
    );
    assert!(
        lines[1].contains("backup") && lines[2].contains("ci"),
        "{list}"
    );
    assert!(!list.contains("latch_"), "{list}");
    let first_id = lines[1].split_whitespace().next().unwrap().to_owned();
    let out = ok(&config, &["keys", "bob", "--revoke", &first_id], "");
    assert!(
        out.contains(&format!("revoked key {first_id} of bob")),
        "{out}"
    );
    fails(
        &config,
        &["keys", "bob", "--revoke", &first_id],
        "",
        "has no key",
    );
    fails(&config, &["keys", "nobody"], "", "no user named");
    with_server(&|c| {
        let keys = keys.borrow();
        c.resource(&bearer(&keys[0])).assert_challenges(true);
        assert_eq!(c.resource(&bearer(&keys[1])).status, 200);
    });
    let out = ok(&config, &["keys", "bob", "--all"], "");
    assert!(out.contains("revoked 1 key of bob"), "{out}");
    with_server(&|c| {
        c.resource(&bearer(&keys.borrow()[1]))
            .assert_challenges(true)
    });
    assert_eq!(ok(&config, &["keys", "bob"], "").lines().count(), 1);

    if let Some(server) = server {
        assert!(server.stop().success());
    }
}

#[test]
fn user_commands_with_the_server_running() {
    lifecycle(true);
}

#[test]
fn user_commands_with_the_server_stopped() {
    lifecycle(false);
}

#[test]
fn user_help() {
    for sub in ["add", "list", "passwd", "del", "groups", "keys"] {
        let (status, stdout, _) = latch_cmd(&["user", sub, "--help"], &[]);
        assert!(status.success(), "{sub}");
        assert!(stdout.contains("Usage: latch user"), "{sub}: {stdout}");
    }
}

#[test]
fn the_admin_socket_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("sockmode");
    let server = Server::start(&dir, "");
    let sock = dir.path().join("data").join("admin.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Garbage on the socket is refused, and the server carries on.
    let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    stream.write_all(b"{\"op\":\"drop_tables\"}\n").unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
    assert!(reply.contains("malformed admin request"), "{reply}");
    // Not UTF-8, or longer than a line may be (8 MiB): refused whole.
    for garbage in [
        b"{\"op\":\"list\"\xff}\n".to_vec(),
        [
            b"{\"op\":\"list\",\"x\":\"".to_vec(),
            vec![b'a'; 9 * 1024 * 1024],
            b"\"}\n".to_vec(),
        ]
        .concat(),
        b"{\"op\":\"list\"}".to_vec(),
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let _ = stream.write_all(&garbage);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut stream, &mut reply).unwrap();
        assert!(reply.contains("malformed admin request"), "{reply}");
    }
    server.client().register("alice", "alice-password");
    // Removed on shutdown.
    assert!(server.stop().success());
    assert!(!sock.exists());
}
