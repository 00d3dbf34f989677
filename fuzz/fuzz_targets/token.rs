//! `Keys::verify` on arbitrary text: never panics, and never accepts a token
//! that the same keys did not sign. An `Ok` is only allowed when re-signing
//! the verified claims reproduces the input byte for byte (the seed token);
//! anything else that verifies is a forgery.
#![no_main]

use latch::crypto::{self, SigningKey};
use latch::token::{Claims, Keys};
use libfuzzer_sys::fuzz_target;

/// "Now" for verification: before the seed token's expiry (4_000_000_000).
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = Keys::new(SigningKey::new(&[7u8; 32]), vec![]);
    if let Ok(v) = keys.verify(text, NOW) {
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
        assert!(v.exp > NOW, "expired token accepted: {v:?}");
        assert_eq!(
            keys.sign(&claims),
            text,
            "accepted a token the keys did not sign (forgery or non-canonical spelling)"
        );
    }
});
