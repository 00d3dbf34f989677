//! API keys: created once, stored as a hash, accepted wherever a token is.

use latch::Clock;

use crate::support::*;

fn create(c: &Client, auth: &str, body: Value) -> Response {
    c.post_json("/api/keys", &body, &[("Authorization", auth)])
}

#[test]
fn keys_work_everywhere_a_token_does_and_die_when_deleted() {
    let dir = TempDir::new("keys");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let token = c.token("alice", "alice-password");

    let res = create(&c, &bearer(&token), json!({"name": "backup script"}));
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    assert_eq!(body["name"], "backup script");
    assert_eq!(body.as_object().unwrap().len(), 3);
    let key = body["key"].as_str().unwrap().to_owned();
    let id = body["id"].as_u64().unwrap();
    assert!(key.starts_with("latch_") && key.len() >= 40, "{key}");

    for res in [
        c.resource(&bearer(&key)),
        c.resource(&basic(&key, "")),
        c.resource(&basic(&key, "anything")),
        c.get("/api/resource", &[("Authentication-Token", &key)]),
        c.get(&format!("/api/resource?auth_token={key}"), &[]),
    ] {
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.json()["data"], "Hello, alice!");
    }

    // Listed without the secret.
    let res = c.get(
        "/api/keys",
        &[("Authorization", &basic("alice", "alice-password"))],
    );
    assert_eq!(res.status, 200);
    assert!(!res.text().contains(&key));
    let list = res.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let entry = &list[0];
    assert_eq!(entry["id"], id);
    assert_eq!(entry["name"], "backup script");
    assert!(entry["created_at"].as_u64().is_some());
    assert!(entry["expires_at"].is_null());
    assert!(entry["last_used_at"].as_u64().is_some(), "{entry}");
    let keys: std::collections::BTreeSet<_> = entry.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["created_at", "expires_at", "id", "last_used_at", "name"]
            .map(String::from)
            .into()
    );

    // A key cannot manage keys.
    assert_eq!(create(&c, &bearer(&key), json!({"name": "x"})).status, 403);
    assert_eq!(
        c.get("/api/keys", &[("Authorization", &bearer(&key))])
            .status,
        403
    );
    // A wrong or made-up key is refused like a bad token.
    c.resource(&bearer("latch_nope")).assert_challenges(true);
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push('A');
    if wrong == key {
        wrong.pop();
        wrong.push('B');
    }
    c.resource(&bearer(&wrong)).assert_challenges(true);

    // Bob cannot delete or see Alice's key.
    let bob = bearer(&c.token("bob", "bob-password"));
    assert_eq!(
        c.request(
            "DELETE",
            &format!("/api/keys/{id}"),
            &[("Authorization", &bob)],
            None
        )
        .status,
        404
    );
    assert_eq!(
        c.get("/api/keys", &[("Authorization", &bob)]).json(),
        json!([])
    );
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    assert_eq!(
        c.request(
            "DELETE",
            "/api/keys/99999",
            &[("Authorization", &bearer(&token))],
            None
        )
        .status,
        404
    );
    assert_eq!(
        c.request(
            "DELETE",
            "/api/keys/abc",
            &[("Authorization", &bearer(&token))],
            None
        )
        .status,
        404
    );

    // Survives a restart; stored only as a hash.
    let server = server.restart();
    let c = server.client();
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    server.stop().unwrap();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "the key is stored in clear in {}",
                path.display()
            );
        }
    }
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let res = c.request(
        "DELETE",
        &format!("/api/keys/{id}"),
        &[(
            "Authorization",
            &bearer(&c.token("alice", "alice-password")),
        )],
        None,
    );
    assert_eq!(res.status, 204);
    c.resource(&bearer(&key)).assert_challenges(true);
    c.resource(&basic(&key, "")).assert_challenges(true);
}

#[test]
fn bad_key_requests() {
    let dir = TempDir::new("badkeys");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let auth = bearer(&c.token("alice", "alice-password"));
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x".repeat(65)}),
        json!({"name": "a\nb"}),
        json!({"name": 5}),
        json!({"name": "x", "expires_in": 0}),
        json!({"name": "x", "expires_in": -5}),
        json!({"name": "x", "expires_in": "soon"}),
        json!({"name": "x", "expires_in": 400_000_000u64}),
    ] {
        let res = create(&c, &auth, body.clone());
        assert_eq!(res.status, 400, "{body}: {}", res.text());
    }
    assert_eq!(create(&c, "", json!({"name": "x"})).status, 401);
    c.post_json("/api/keys", &json!({"name": "x"}), &[])
        .assert_challenges(false);
    assert_eq!(
        c.request("PUT", "/api/keys", &[], None).header("allow"),
        Some("GET, HEAD, POST")
    );
    assert_eq!(
        c.request("GET", "/api/keys/1", &[], None).header("allow"),
        Some("DELETE")
    );
    assert_eq!(
        c.get("/api/keys", &[("Authorization", &auth)]).json(),
        json!([])
    );
}

#[test]
fn keys_expire_and_record_their_last_use_at_most_once_a_minute() {
    let dir = TempDir::new("keyclock");
    let clock = Clock::frozen();
    let server = InProcess::start(&dir, "", clock.clone());
    let c = server.client;
    c.register("alice", "alice-password");
    let auth = basic("alice", "alice-password");
    let res = create(&c, &auth, json!({"name": "short", "expires_in": 100}));
    let body = res.json();
    let key = body["key"].as_str().unwrap().to_owned();
    let listed = |c: &Client| c.get("/api/keys", &[("Authorization", &auth)]).json()[0].clone();
    let entry = listed(&c);
    let created = entry["created_at"].as_u64().unwrap();
    assert_eq!(entry["expires_at"].as_u64().unwrap(), created + 100);
    assert!(entry["last_used_at"].is_null());

    assert_eq!(c.resource(&bearer(&key)).status, 200);
    let first_use = listed(&c)["last_used_at"].as_u64().unwrap();
    assert!(first_use >= created);
    // Written out by the housekeeping task; forced here.
    server.app.service.flush_key_uses().unwrap();
    clock.advance(30);
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    server.app.service.flush_key_uses().unwrap();
    assert_eq!(
        listed(&c)["last_used_at"].as_u64().unwrap(),
        first_use,
        "recorded again within a minute"
    );
    clock.advance(31);
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    server.app.service.flush_key_uses().unwrap();
    assert_eq!(listed(&c)["last_used_at"].as_u64().unwrap(), first_use + 61);

    // Expiry: refused from expires_at on, before and after pruning.
    clock.advance(100 - 61 - 1);
    assert_eq!(c.resource(&bearer(&key)).status, 200);
    clock.advance(1);
    c.resource(&bearer(&key)).assert_challenges(true);
    assert_eq!(listed(&c)["name"], "short");
    let removed = tokio_block_on(server.app.service.prune()).unwrap();
    assert!(removed >= 1, "{removed}");
    assert_eq!(
        c.get("/api/keys", &[("Authorization", &auth)]).json(),
        json!([])
    );
    c.resource(&bearer(&key)).assert_challenges(true);
}

#[test]
fn a_user_holds_at_most_100_live_keys() {
    // Listing and pruning a user's keys walks all of them on a worker: a
    // user may not make that walk as long as they like.
    let dir = TempDir::new("keycap");
    let clock = Clock::frozen();
    let server = InProcess::start(&dir, "", clock.clone());
    let c = &server.client;
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let alice = basic("alice", "alice-password");
    let keys: Vec<String> = (0..99)
        .map(|i| c.new_key(&alice, &format!("k{i}")))
        .collect();
    let res = create(c, &alice, json!({"name": "short", "expires_in": 100}));
    assert_eq!(res.status, 201, "{}", res.text());
    let res = create(c, &alice, json!({"name": "one too many"}));
    assert_eq!(res.status, 409, "{}", res.text());
    assert_eq!(res.error_code(), "conflict");
    // The others still work, and so does someone else's first key.
    assert_eq!(c.resource(&bearer(&keys[98])).status, 200);
    c.new_key(&basic("bob", "bob-password"), "bob's");
    // Deleting one makes room for one.
    let listed = c
        .get("/api/keys", &[("Authorization", alice.as_str())])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 100);
    let id = listed[0]["id"].as_u64().unwrap();
    let res = c.request(
        "DELETE",
        &format!("/api/keys/{id}"),
        &[("Authorization", alice.as_str())],
        None,
    );
    assert_eq!(res.status, 204);
    c.new_key(&alice, "room again");
    assert_eq!(create(c, &alice, json!({"name": "full"})).status, 409);
    // An expired key no longer counts, before pruning removes it.
    clock.advance(101);
    c.new_key(&alice, "in place of the expired one");
    assert_eq!(create(c, &alice, json!({"name": "full again"})).status, 409);
    c.assert_alive("alice", "alice-password");
}
