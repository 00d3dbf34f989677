//! The part of `Keys::verify` after the MAC, which the `token` target can
//! only reach through its signed seeds: the input is the payload segment's
//! bytes (the claims JSON), signed here with the target's key, so the fuzzer
//! drives the claims decoder, `parse_id` and the `jti` check directly.
//! Never panics; an accepted token has `exp > NOW`, a canonical decimal
//! `sub` and a 16-byte `jti`, and re-signing its claims gives a token that
//! verifies to the same result.
#![no_main]

use latch::crypto::{self, SigningKey};
use latch::token::{Claims, Keys};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

fuzz_target!(|payload: &[u8]| {
    let key = SigningKey::new(&[7u8; 32]);
    let keys = Keys::new(key.clone(), vec![]);
    let probe = Claims {
        sub: "1".into(),
        name: String::new(),
        aud: latch::token::Audience::Api,
        iat: 0,
        exp: 1,
        auth_time: 0,
        epoch: 0,
        jti: String::new(),
    };
    let signed = keys.sign(&probe);
    let header = signed.split('.').next().unwrap();
    let mut token = format!("{header}.{}", crypto::b64url_encode(payload));
    let tag = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&crypto::b64url_encode(tag.as_ref()));

    if let Ok(v) = keys.verify(&token, NOW) {
        assert!(v.exp > NOW, "expired token accepted: {v:?}");
        assert!(token.len() <= latch::token::MAX_TOKEN_LEN);
        let claims = Claims {
            sub: v.user_id.to_string(),
            name: v.name.clone(),
            aud: v.audience,
            iat: v.iat,
            exp: v.exp,
            auth_time: v.auth_time,
            epoch: v.epoch,
            jti: crypto::b64url_encode(&v.jti),
        };
        let resigned = keys.sign(&claims);
        if resigned.len() <= latch::token::MAX_TOKEN_LEN {
            assert_eq!(keys.verify(&resigned, NOW).as_ref(), Ok(&v), "{resigned}");
        }
    }
});
