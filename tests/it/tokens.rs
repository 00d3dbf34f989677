//! Forged, expired and malformed tokens, against the real server.

use latch::crypto::{self, SigningKey};
use latch::token::{Audience, Claims, Keys};

use crate::support::*;

fn test_keys() -> Keys {
    Keys::new(
        SigningKey::new(&crypto::b64_decode(TEST_KEY.as_bytes()).unwrap()),
        vec![],
    )
}

fn claims(sub: u64, name: &str, iat: u64, exp: u64) -> Claims {
    Claims {
        sub: sub.to_string(),
        name: name.into(),
        aud: Audience::Api,
        iat,
        exp,
        auth_time: iat,
        amr: vec!["pwd".into()],
        epoch: 0,
        jti: crypto::b64url_encode(&[7u8; 16]),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(text: &str) -> String {
    crypto::b64url_encode(text.as_bytes())
}

#[test]
fn forged_tokens_are_refused() {
    let dir = TempDir::new("forged");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let id = c.register("alice", "alice-password");
    c.register("mallory", "mallory-password");
    let real = c.token("mallory", "mallory-password");
    let parts: Vec<&str> = real.split('.').collect();

    // The test holds the server's key: a token it signs is accepted, which
    // shows the refusals below are about the forgery, not the harness.
    let keys = test_keys();
    let good = keys.sign(&claims(id, "alice", now(), now() + 60));
    assert_eq!(c.resource(&bearer(&good)).json()["data"], "Hello, alice!");

    let edited_payload = format!(
        "{}.{}.{}",
        parts[0],
        crypto::b64url_encode(
            serde_json::to_string(&claims(id, "alice", now(), now() + 600))
                .unwrap()
                .as_bytes()
        ),
        parts[2]
    );
    let kid = keys.kid().to_owned();
    let alg_none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let alg_none_kid = format!(
        "{}.{}.",
        b64(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#)),
        parts[1]
    );
    let hs512 = {
        let header = b64(&format!(r#"{{"alg":"HS512","typ":"JWT","kid":"{kid}"}}"#));
        let signing_input = format!("{header}.{}", parts[1]);
        let tag = SigningKey::new(&crypto::b64_decode(TEST_KEY.as_bytes()).unwrap())
            .sign(signing_input.as_bytes());
        format!("{signing_input}.{}", crypto::b64url_encode(tag.as_ref()))
    };
    let other_key = Keys::new(SigningKey::new(&[42u8; 32]), vec![]).sign(&claims(
        id,
        "alice",
        now(),
        now() + 600,
    ));
    let expired = keys.sign(&claims(id, "alice", now() - 1200, now() - 600));
    let expires_now = keys.sign(&claims(id, "alice", now() - 600, now()));
    let extra_claim = {
        let payload = b64(&format!(
            r#"{{"sub":"{id}","name":"alice","iat":{},"exp":{},"jti":"{}","admin":true}}"#,
            now(),
            now() + 600,
            crypto::b64url_encode(&[8u8; 16])
        ));
        let input = format!("{}.{payload}", parts[0]);
        let tag = SigningKey::new(&crypto::b64_decode(TEST_KEY.as_bytes()).unwrap())
            .sign(input.as_bytes());
        format!("{input}.{}", crypto::b64url_encode(tag.as_ref()))
    };
    let padded = format!("{real}=");
    let truncated = real[..real.len() - 1].to_owned();

    let forgeries = [
        ("edited payload", edited_payload),
        ("alg none", alg_none),
        ("alg none with kid", alg_none_kid),
        ("HS512 header", hs512),
        ("another key", other_key),
        ("expired", expired),
        ("expires this second", expires_now),
        ("unknown claim", extra_claim),
        ("padded", padded),
        ("truncated", truncated),
        ("garbage", "eyJhbGciOi.garbage.garbage".into()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{real}.{}", parts[2])),
    ];
    for (name, token) in &forgeries {
        for res in [
            c.resource(&bearer(token)),
            c.get("/api/resource", &[("Authentication-Token", token)]),
        ] {
            res.assert_challenges(true);
            assert_eq!(res.error_code(), "invalid_token", "{name}");
        }
    }
    // Empty and whitespace tokens.
    for value in ["Bearer", "Bearer ", "Bearer  "] {
        let res = c.resource(value);
        assert_eq!(res.status, 401, "{value:?}");
    }
    c.get("/api/resource", &[("Authentication-Token", "")])
        .assert_challenges(true);
    c.get("/api/resource?auth_token=", &[])
        .assert_challenges(true);
    // Still up, nothing lost.
    c.assert_alive("alice", "alice-password");
    assert_eq!(c.resource(&bearer(&real)).status, 200);
}

#[test]
fn a_revoked_signature_spelled_differently_is_still_refused() {
    let dir = TempDir::new("respell");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    assert_eq!(c.post_auth("/logout", &bearer(&token)).status, 200);
    // The 43rd character of a 32-byte signature carries two unused bits;
    // setting them spells the same bytes differently.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = token.chars().last().unwrap();
    let idx = alphabet.find(last).unwrap();
    for flip in [1, 2, 3] {
        let twin = alphabet.as_bytes()[idx ^ flip] as char;
        let respelled = format!("{}{twin}", &token[..token.len() - 1]);
        c.resource(&bearer(&respelled)).assert_challenges(true);
        c.resource(&basic(&respelled, "")).assert_challenges(true);
    }
    c.resource(&bearer(&token)).assert_challenges(true);
}

#[test]
fn revocation_is_keyed_on_jti_not_on_the_token_text() {
    let dir = TempDir::new("jtikey");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    let id = c.register("alice", "alice-password");
    let keys = test_keys();
    let original = keys.sign(&claims(id, "alice", now(), now() + 600));
    let twin = keys.sign(&claims(id, "alice", now() - 5, now() + 300));
    assert_ne!(original, twin);
    assert_eq!(c.resource(&bearer(&twin)).status, 200);
    assert_eq!(c.post_auth("/logout", &bearer(&original)).status, 200);
    // A different token text with the same jti is refused too.
    c.resource(&bearer(&twin)).assert_challenges(true);
    // Another jti is not.
    let other = Claims {
        jti: crypto::b64url_encode(&[8u8; 16]),
        ..claims(id, "alice", now(), now() + 600)
    };
    assert_eq!(c.resource(&bearer(&keys.sign(&other))).status, 200);
}

#[test]
fn tokens_are_standard_jwts() {
    let dir = TempDir::new("jwt");
    let server = InProcess::new(&dir, "token_ttl = \"5m\"");
    let c = server.client();
    let id = c.register("alice", "alice-password");
    let before = now();
    let token = c.token("alice", "alice-password");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&crypto::b64url_decode(parts[0].as_bytes()).unwrap()).unwrap();
    assert_eq!(
        header,
        json!({"alg": "HS256", "typ": "JWT", "kid": test_keys().kid()})
    );
    let claims: Value =
        serde_json::from_slice(&crypto::b64url_decode(parts[1].as_bytes()).unwrap()).unwrap();
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["name"], "alice");
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat >= before && iat <= now());
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
    let jti = crypto::b64url_decode(claims["jti"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(jti.len(), 16);
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["auth_time"], iat);
    assert_eq!(claims["epoch"], 0);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims.as_object().unwrap().len(), 9);
    // Verifiable by anyone holding the key: plain HMAC-SHA256 over the
    // first two segments.
    let key = SigningKey::new(&crypto::b64_decode(TEST_KEY.as_bytes()).unwrap());
    let input = format!("{}.{}", parts[0], parts[1]);
    assert_eq!(
        crypto::b64url_encode(key.sign(input.as_bytes()).as_ref()),
        parts[2]
    );
    // Every token is different.
    assert_ne!(c.token("alice", "alice-password"), token);
}
