//! Audit events: one line per authentication attempt, ban, revocation,
//! account change and admin command; text or JSON; no forged lines.

use crate::forward::{open_login, submit_login, FA_CONFIG};
use crate::support::*;

#[test]
fn json_audit_lines_name_user_method_result_and_source() {
    let dir = TempDir::new("auditjson");
    let server = Server::start(
        &dir,
        &format!(
            "log_format = \"json\"\n{FA_CONFIG}[regulation]\nmax_retries = 2\n[scrypt]\n\
                  log_n = 4\n"
        ),
    );
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    c.resource(&basic("alice", "alice-password"));
    // Through a trusted proxy, the client's own address is recorded.
    c.get(
        "/api/resource",
        &[
            ("Authorization", &basic("alice", "wrong-password")),
            // The client wrote the left entry; the proxy (loopback,
            // trusted) appended the address it saw.
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.9"),
        ],
    );
    c.resource(&bearer("eyJ.forged.token"));
    c.resource(&basic("bob", "wrong-password"));
    c.resource(&basic("bob", "wrong-password"));
    c.resource(&basic("bob", "bob-password"));
    let token = c.token("alice", "alice-password");
    let key = c
        .post_json(
            "/api/keys",
            &json!({"name": "k"}),
            &[("Authorization", &bearer(&token))],
        )
        .json();
    c.request(
        "DELETE",
        &format!("/api/keys/{}", key["id"]),
        &[("Authorization", &bearer(&token))],
        None,
    );
    c.post_auth("/api/logout-all", &bearer(&token));
    let (status, _, _) = latch_cmd(
        &[
            "user",
            "groups",
            "alice",
            "admins",
            "--config",
            server.config_path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success());
    let log = server.log_containing("changed a user's groups");
    let mut events = Vec::new();
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].as_str().unwrap().ends_with('Z'),
            "UTC: {line}"
        );
        if v["target"] == "audit" {
            events.push(v["fields"].clone());
        }
    }
    let find = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .unwrap_or_else(|| panic!("no such event in {events:#?}"))
            .clone()
    };
    let ok =
        find(&|e| e["event"] == "auth" && e["result"] == "success" && e["user"] == "\"alice\"");
    assert_eq!(ok["method"], "password");
    assert_eq!(ok["source"], "127.0.0.1");
    let proxied =
        find(&|e| e["event"] == "auth" && e["result"] == "failure" && e["user"] == "\"alice\"");
    assert_eq!(proxied["source"], "203.0.113.9");
    let forged = find(&|e| e["event"] == "auth" && e["method"] == "token");
    assert_eq!(forged["result"], "failure");
    find(&|e| e["event"] == "ban" && e["user_id"] == 2);
    find(&|e| e["event"] == "auth" && e["result"] == "banned");
    find(&|e| e["event"] == "register" && e["user_id"] == 1);
    find(&|e| e["event"] == "key_created");
    find(&|e| e["event"] == "key_deleted");
    find(&|e| e["event"] == "logout_all" && e["user_id"] == 1);
    let admin = find(&|e| e["event"] == "admin");
    assert_eq!(admin["op"], "groups");
    assert_eq!(find(&|e| e["event"] == "groups")["source"], "local");
    for secret in [
        "alice-password",
        "wrong-password",
        key["key"].as_str().unwrap(),
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} leaked");
    }
}

#[test]
fn user_supplied_strings_cannot_forge_lines() {
    let dir = TempDir::new("audittext");
    let server = Server::start(&dir, FA_CONFIG);
    let c = server.client();
    c.register("alice", "alice-password");
    let form = open_login(&c, "");
    let evil = "nobody\r\n\
                2026-01-01T00:00:00Z  INFO audit: event=\"auth\" result=\"success\" user=\"admin\"";
    let res = submit_login(
        &c,
        &form,
        evil,
        "whatever-password",
        None,
        &[("Origin", "http://auth.example.test")],
    );
    assert_eq!(res.status, 401);
    let log = server.log_containing("password refused");
    for line in log.lines() {
        assert!(!line.starts_with("2026-01-01"), "a forged line: {line}");
    }
    let refused = log
        .lines()
        .find(|l| l.contains("password refused"))
        .unwrap();
    // No account has that name: it is shown as a fingerprint.
    assert!(
        refused.contains(r#"user="unknown:"#) && !refused.contains("nobody"),
        "{refused}"
    );
    assert!(
        refused.contains("source=127.0.0.1") && refused.contains("result=\"failure\""),
        "{refused}"
    );
}

/// A login name no account has may be a password typed into the wrong
/// field: it is logged as a fingerprint, never as typed (found by a
/// review: `S3cr3t-Passw0rd!` as the Basic username was logged whole).
/// One name gets one fingerprint; an account's name is logged as given.
#[test]
fn a_password_typed_as_the_username_is_not_logged() {
    let dir = TempDir::new("auditcut");
    let server = Server::start(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let long = format!("{}-the-end-of-a-long-passphrase", "x".repeat(80));
    for typed in [
        "S3cr3t-Passw0rd!",
        &long,
        "S3cr3t-Passw0rd!",
        "alice@example",
    ] {
        let res = c.resource(&basic(typed, "anything"));
        assert_eq!(res.status, 401);
    }
    c.resource(&basic("alice", "wrong-password"));
    let log = server.log_containing(r#"user="alice""#);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("password refused"))
        .collect();
    assert_eq!(refused.len(), 5, "{log}");
    for secret in ["S3cr3t", "xxxxxxxx", "passphrase", "alice@example"] {
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
    let shown = |line: &str| line.split("user=\"").nth(1).unwrap()[..16].to_owned();
    assert!(shown(refused[0]).starts_with("unknown:"), "{}", refused[0]);
    assert_eq!(
        shown(refused[0]),
        shown(refused[2]),
        "one name, one fingerprint"
    );
    assert_ne!(shown(refused[0]), shown(refused[1]));
    assert_ne!(shown(refused[1]), shown(refused[3]));
    assert!(refused[4].contains(r#"user="alice""#), "{}", refused[4]);
}
