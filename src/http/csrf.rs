//! The login and logout forms' tokens: a double-submit nonce (in a
//! cookie and in the form) bound by a MAC to the time it was issued.
//! Web-only, so it lives with the pages; it owns no state beyond its key
//! and never touches the service.

use crate::crypto::{self, SigningKey};
use crate::error::Result;

/// How long a login or logout form stays valid, in seconds.
pub const FORM_TTL: u64 = 3600;

/// Signs and checks form tokens.
pub struct Forms {
    /// Derived from the signing key, so a form token is never a token.
    key: SigningKey,
}

impl Forms {
    /// Form tokens keyed from the token signing key.
    pub fn new(signing_key: &[u8]) -> Forms {
        Forms {
            key: SigningKey::new(signing_key).derive(b"latch login form"),
        }
    }

    /// A token for a form served at `now`, bound to `nonce` (a random value
    /// the browser also holds in a cookie): valid for [`FORM_TTL`] seconds.
    pub fn token(&self, nonce: &str, now: u64) -> String {
        let input = format!("{now}.{nonce}");
        let tag = self.key.sign(input.as_bytes());
        format!("{input}.{}", crypto::b64url_encode(tag.as_ref()))
    }

    /// Whether `token` came from [`Forms::token`] for this `nonce` and is
    /// still fresh at `now`.
    pub fn check(&self, token: &str, nonce: &str, now: u64) -> bool {
        let Some((input, tag)) = token.rsplit_once('.') else {
            return false;
        };
        let Some((issued, token_nonce)) = input.split_once('.') else {
            return false;
        };
        let Some(tag) = crypto::b64url_decode(tag.as_bytes()) else {
            return false;
        };
        token_nonce == nonce
            && !nonce.is_empty()
            && issued
                .parse::<u64>()
                .is_ok_and(|t| t <= now && now - t <= FORM_TTL)
            && self.key.verify(input.as_bytes(), &tag)
    }

    /// A fresh random nonce for the form cookie.
    pub fn new_nonce() -> Result<String> {
        Ok(crypto::b64url_encode(&crypto::random_bytes::<16>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_for_its_nonce_and_its_hour_only() {
        let forms = Forms::new(&[7; 32]);
        let t = forms.token("n1", 1000);
        assert!(forms.check(&t, "n1", 1000));
        assert!(forms.check(&t, "n1", 1000 + FORM_TTL));
        assert!(!forms.check(&t, "n1", 1001 + FORM_TTL), "expired");
        assert!(!forms.check(&t, "n1", 999), "from the future");
        assert!(!forms.check(&t, "n2", 1000), "another nonce");
        assert!(!forms.check(&t, "", 1000));
        let other = Forms::new(&[8; 32]);
        assert!(!other.check(&t, "n1", 1000), "another key");
        let forged = t.replacen("1000", "2000", 1);
        assert!(!forms.check(&forged, "n1", 2000), "the time is signed");
        let token = crate::crypto::SigningKey::new(&[7; 32]).sign(b"1000.n1");
        let raw = format!("1000.n1.{}", crypto::b64url_encode(token.as_ref()));
        assert!(
            !forms.check(&raw, "n1", 1000),
            "the token key is not the form key"
        );
    }
}
