//! `latch user import` and `latch user export`: users as a TOML file,
//! imported all or nothing, a second time changing nothing, with the
//! server running (over the admin socket) and stopped.

use std::path::Path;

use crate::support::*;
use crate::user_cli::user;

/// Imports `file` (from standard input); its lines.
fn import(config: &Path, file: &str) -> String {
    let (ok, out, err) = user(config, &["import", "-"], file);
    assert!(ok && err.is_empty(), "{file}\n{err}");
    out
}

fn export(config: &Path) -> String {
    let (ok, out, err) = user(config, &["export"], "");
    assert!(ok && err.is_empty(), "{err}");
    out
}

fn bob_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(make_bob_hash).clone()
}

fn make_bob_hash() -> String {
    let cost = latch::crypto::Cost {
        log_n: 4,
        r: 8,
        p: 1,
    };
    latch::crypto::hash_password("bob-password", cost).unwrap()
}

/// The story, with the server `running` or not.
fn story(running: bool) {
    let dir = TempDir::new(if running { "file-live" } else { "file-offline" });
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), "registration = \"closed\""),
    )
    .unwrap();
    // Without a database, import needs --create.
    let first = format!(
        "[[user]]\nname = \"alice\"\nemail = \"alice@example.test\"\ngroups = [\"admins\"]\n\
         password = \"alice-password\"\n\n[[user]]\nname = \"bob\"\npassword_hash = \"{}\"\n",
        bob_hash()
    );
    let (ok, _, err) = user(&config, &["import", "-"], &first);
    assert!(!ok);
    assert!(err.contains("--create"), "{err}");
    let server = running.then(|| {
        let (ok, _, err) = user(&config, &["list", "--create"], "");
        assert!(ok, "{err}");
        Server::start_with(&config)
    });
    let client = || server.as_ref().map(Server::client);
    let args: &[&str] = if running {
        &["import", "-"]
    } else {
        &["import", "-", "--create"]
    };
    let (ok, out, err) = user(&config, args, &first);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "alice: added (groups: admins)\nbob: added (no groups)\n"
    );
    if let Some(c) = client() {
        c.token("alice", "alice-password");
        c.token("bob", "bob-password");
    }

    // Export: every user, hashes and no other secret; and it imports as
    // nothing to change, as does the first file again.
    let exported = export(&config);
    assert!(!exported.contains("password ="), "{exported}");
    assert_eq!(exported.matches("password_hash = \"$scrypt$").count(), 2);
    assert!(exported.contains(&bob_hash()[..20]));
    for file in [&first, &exported] {
        assert_eq!(
            import(&config, file),
            "nothing to change: the 2 users of the file are as it says\n"
        );
    }
    assert_eq!(export(&config), exported);
    let alice_token = client().map(|c| c.token("alice", "alice-password"));

    // A change: alice's groups, email and password; bob left as he is.
    let changed = format!(
        "[[user]]\nname = \"Alice\"\ngroups = [\"admins\", \"media\"]\n\
         password = \"new-alice-password\"\n\
         [[user]]\nname = \"bob\"\npassword_hash = \"{}\"\n",
        bob_hash()
    );
    let out = import(&config, &changed);
    assert_eq!(
        out,
        "alice: email alice@example.test -> (none)\nalice: groups admins -> admins,media\n\
         alice: password changed (earlier tokens refused)\n"
    );
    assert_eq!(
        import(&config, &changed),
        "nothing to change: the 2 users of the file are as it says\n"
    );
    if let (Some(c), Some(token)) = (client(), alice_token) {
        assert_eq!(c.resource(&bearer(&token)).status, 401);
        let res = c.get(
            "/api/token",
            &[("Authorization", &basic("alice", "alice-password"))],
        );
        assert_eq!(res.status, 401);
        c.token("alice", "new-alice-password");
        c.token("bob", "bob-password");
    }

    // All or nothing: carol would be added, but bob's new email is erin's.
    let (ok, _, err) = user(
        &config,
        &[
            "add",
            "erin",
            "--email",
            "erin@example.test",
            "--password-stdin",
        ],
        "erin-password\n",
    );
    assert!(ok, "{err}");
    let before = export(&config);
    let clash = format!(
        "[[user]]\nname = \"carol\"\npassword = \"carol-password\"\n\
         [[user]]\nname = \"bob\"\nemail = \"ERIN@example.test\"\npassword_hash = \"{}\"\n",
        bob_hash()
    );
    let (ok, out, err) = user(&config, &["import", "-"], &clash);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("user \"bob\": the email ERIN@example.test is another user's"),
        "{err}"
    );
    assert_eq!(export(&config), before, "a refused import wrote something");

    // Every bad file: one line, exit 1, nothing written, no password shown.
    let hash = bob_hash();
    let x = |fields: &str| format!("[[user]]\nname = \"x\"\n{fields}");
    let good = "password = \"p4ssw0rd-x\"\n";
    let bad: [(String, &str); 15] = [
        (x("password = "), "line 3"),
        (x("pasword = \"p4ssw0rd-x\"\n"), "unknown field"),
        ("[[users]]\nname = \"x\"\n".into(), "unknown field"),
        (x(""), "give either password or password_hash"),
        (
            x(&format!("{good}password_hash = \"{hash}\"\n")),
            "give either password or password_hash",
        ),
        (
            x("password_hash = \"p4ssw0rd-x\"\n"),
            "is not one latch can use",
        ),
        (
            x(&format!(
                "password_hash = \"{}\"\n",
                hash.replace("ln=4", "ln=30")
            )),
            "above the ceiling",
        ),
        // Above the configured cost (log_n = 4 here): every failed login
        // on it would cost more than latch's own.
        (
            x(&format!(
                "password_hash = \"{}\"\n",
                hash.replace("ln=4", "ln=12")
            )),
            "than [scrypt] allows",
        ),
        // Hashes that never verify: another algorithm, no output.
        (
            x(&format!(
                "password_hash = \"{}\"\n",
                hash.replace("$scrypt$", "$argon2id$")
            )),
            "not scrypt",
        ),
        (
            x(&format!(
                "password_hash = \"{}\"\n",
                &hash[..hash.rfind('$').unwrap()]
            )),
            "not a 32-byte hash",
        ),
        (x("password = 12345678\n"), "a bad password"),
        (
            format!("[[user]]\nname = \"x y\"\n{good}"),
            "username must be",
        ),
        (x("password = \"short\"\n"), "8 to 1024 characters"),
        (
            format!("{}[[user]]\nname = \"X\"\n{good}", x(good)),
            "in the file twice",
        ),
        (x(&format!("groups = [\"a,b\"]\n{good}")), "group names"),
    ];
    for (file, expect) in &bad {
        let (ok, out, err) = user(&config, &["import", "-"], file);
        assert!(!ok, "{file}: {out}");
        assert_eq!(err.lines().count(), 1, "{file}: {err}");
        assert!(err.contains(expect), "{file}: expected {expect:?} in {err}");
        assert!(
            !err.contains("p4ssw0rd") && !err.contains("12345678"),
            "{err}"
        );
    }
    assert_eq!(export(&config), before);
    let (ok, _, err) = user(&config, &["import", "/nonexistent/users.toml"], "");
    assert!(
        !ok && err.contains("cannot read /nonexistent/users.toml"),
        "{err}"
    );
    if let Some(server) = &server {
        server.client().assert_alive("bob", "bob-password");
        let log = server.log();
        for secret in ["p4ssw0rd", "alice-password", "carol-password", &hash[20..]] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        }
    }
}

#[test]
fn users_file_with_the_server_running() {
    story(true);
}

#[test]
fn users_file_with_the_server_stopped() {
    story(false);
}
