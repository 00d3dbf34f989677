//! Acknowledged means durable: kill -9 right after each acknowledged write
//! and check, after a restart, that none was lost.

use crate::support::*;

/// Rounds of write, SIGKILL, restart, check (`LATCH_KILL_ROUNDS`, default 20).
fn rounds() -> usize {
    std::env::var("LATCH_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[test]
fn no_acknowledged_write_is_lost_to_kill_9() {
    let dir = TempDir::new("kill9");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, config_text(dir.path(), "")).unwrap();
    let mut server = Server::start_with(&config);
    server.client().register("alice", "password-0");
    let mut alice_password = "password-0".to_owned();
    let mut registered = Vec::new();
    let mut dead_tokens = Vec::new();
    let mut dead_keys = Vec::new();
    for round in 0..rounds() {
        let c = server.client();
        let auth = bearer(&c.token("alice", &alice_password));
        let kind = round % 5;
        match kind {
            0 => {
                let name = format!("user{round}");
                c.register(&name, &format!("secret-{round}-pw"));
                registered.push((name, format!("secret-{round}-pw")));
            }
            1 => {
                let new = format!("password-{round}");
                let res = c.request(
                    "PUT",
                    "/api/users/me/password",
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    Some(
                        json!({"old_password": alice_password, "new_password": new})
                            .to_string()
                            .as_bytes(),
                    ),
                );
                assert_eq!(res.status, 204, "round {round}: {}", res.text());
                dead_tokens.push(auth.clone());
                alice_password = new;
            }
            2 => {
                let res = c.request("POST", "/logout", &[("Authorization", &auth)], None);
                assert_eq!(res.status, 200, "round {round}");
                dead_tokens.push(auth.clone());
            }
            3 => {
                let res = c.request("POST", "/api/logout-all", &[("Authorization", &auth)], None);
                assert_eq!(res.status, 200, "round {round}");
                dead_tokens.push(auth.clone());
            }
            _ => {
                let created = c.post_json(
                    "/api/keys",
                    &json!({"name": format!("k{round}")}),
                    &[("Authorization", &auth)],
                );
                let key = created.json()["key"].as_str().unwrap().to_owned();
                let id = created.json()["id"].as_u64().unwrap();
                let res = c.request(
                    "DELETE",
                    &format!("/api/keys/{id}"),
                    &[("Authorization", &auth)],
                    None,
                );
                assert_eq!(res.status, 204, "round {round}");
                dead_keys.push(key);
            }
        }
        // No drain, no flush: only what was flushed before the answer survives.
        server.crash();
        server = Server::start_with(&config);
        let c = server.client();
        c.assert_alive("alice", &alice_password);
        for (name, password) in &registered {
            c.assert_alive(name, password);
        }
        for (i, token) in dead_tokens.iter().enumerate() {
            let res = c.resource(token);
            assert_eq!(
                res.status, 401,
                "round {round}: dead token {i} came back to life"
            );
            res.assert_challenges(true);
        }
        for key in &dead_keys {
            c.resource(&bearer(key)).assert_challenges(true);
        }
    }
    assert_eq!(registered.len(), rounds().div_ceil(5));
}
