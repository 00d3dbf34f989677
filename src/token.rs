//! The token codec: JWT (RFC 7519) signed HS256, nothing else.
//!
//! A token is `header.payload.signature`, each part strict base64url. The
//! header is exactly `{"alg":"HS256","typ":"JWT","kid":"<kid>"}`; since latch
//! only verifies tokens it issued, the verifier compares the header segment
//! byte for byte with the one each known key produces, so `alg: none`,
//! other algorithms and unknown keys are refused before any JSON is parsed.
//! The MAC is checked (in constant time) before the claims are decoded.
//!
//! Every token names its audience (`aud`): `api` for tokens handed to
//! clients (`/api/token`, the JSON login), `session` for the login page's
//! cookie. The two are not interchangeable: a session token is accepted
//! only as the cookie, an API token never as the cookie (see
//! [`Audience`]).
//!
//! It owns the codec; it never decides whether a valid token is still good
//! (revocation, epoch): the service does.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, SigningKey};
use crate::model::{Factors, UserId};

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Longest decoded claims accepted (latch's own are about 150 bytes).
const MAX_CLAIMS_LEN: usize = 768;

/// Bytes of randomness in a `jti`.
pub const JTI_LEN: usize = 16;

/// Who a token is for. A leaked session cookie must not work as an API
/// credential (it would mint API keys), and an API token must not work as
/// a browser session; the audience is signed, so neither can be relabelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// A token for clients: accepted in headers (and `?auth_token=`), on
    /// the API and on forward auth.
    Api,
    /// The login page's session: accepted only as the session cookie, on
    /// forward auth and latch's own pages.
    Session,
    /// Half a sign-in: the password checked out and the one-time code is
    /// still to come. Accepted as a credential nowhere; only the code form
    /// reads it (from its own hidden field), for a few minutes.
    #[serde(rename = "otp_pending")]
    Pending,
}

impl Audience {
    /// The `aud` claim's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Api => "api",
            Audience::Session => "session",
            Audience::Pending => "otp_pending",
        }
    }

    fn parse(text: &str) -> Option<Audience> {
        match text {
            "api" => Some(Audience::Api),
            "session" => Some(Audience::Session),
            "otp_pending" => Some(Audience::Pending),
            _ => None,
        }
    }
}

/// The claims latch writes, in the order it writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// The username at the time of issue.
    pub name: String,
    /// Who the token is for.
    pub aud: Audience,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch; refused from this second on.
    pub exp: u64,
    /// When the password behind this token was checked (OpenID Connect's
    /// `auth_time`): sensitive changes need it to be recent.
    pub auth_time: u64,
    /// How the sign-in behind it was proven (RFC 8176): `["pwd"]` or
    /// `["pwd", "otp"]`. Tokens from before the second factor have none:
    /// a password.
    pub amr: Vec<String>,
    /// The user's credential epoch when the password was checked: each
    /// logout everywhere, password change or deletion starts a new one, and
    /// only tokens of the current epoch are accepted. (A login whose check
    /// began before a password reset yields a token of the old epoch.)
    pub epoch: u64,
    /// A unique id: base64url of 16 random bytes. Revocation is keyed on it.
    pub jti: String,
}

/// [`Claims`] as read, borrowing from the decoded payload where it can.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsRef<'a> {
    sub: &'a str,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    aud: &'a str,
    iat: u64,
    exp: u64,
    auth_time: u64,
    #[serde(default)]
    amr: Option<Vec<&'a str>>,
    epoch: u64,
    jti: &'a str,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user id from `sub`.
    pub user_id: UserId,
    /// The username from `name`.
    pub name: std::sync::Arc<str>,
    /// Who the token is for; callers compare it with where the token was
    /// presented.
    pub audience: Audience,
    /// Issued at.
    pub iat: u64,
    /// Expiry, kept so a revocation can be dropped once it no longer matters.
    pub exp: u64,
    /// When the password behind the token was checked.
    pub auth_time: u64,
    /// What the sign-in behind it proved.
    pub factors: Factors,
    /// The user's credential epoch it belongs to.
    pub epoch: u64,
    /// The decoded `jti`.
    pub jti: [u8; JTI_LEN],
}

/// Why a token was refused. Clients are only ever told "invalid token"; the
/// reason is for tests and debug logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not three strict base64url segments, or too long.
    Malformed,
    /// The header is not one this server writes (other `alg`, unknown `kid`).
    Header,
    /// The MAC does not match.
    Signature,
    /// The claims do not decode.
    Claims,
    /// `exp` has passed.
    Expired,
}

/// A key that signs, plus earlier keys that still verify.
pub struct Keys {
    /// Signs new tokens; verifies too.
    current: KeyEntry,
    /// Verify only (key rotation).
    previous: Vec<KeyEntry>,
}

struct KeyEntry {
    key: SigningKey,
    /// The base64url header segment this key writes, precomputed so that
    /// verification is a byte comparison.
    header: String,
}

impl KeyEntry {
    fn new(key: SigningKey) -> Self {
        let json = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, key.kid());
        KeyEntry {
            header: crypto::b64url_encode(json.as_bytes()),
            key,
        }
    }
}

impl Keys {
    /// `current` signs; `previous` only verify.
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Self {
        Keys {
            current: KeyEntry::new(current),
            previous: previous.into_iter().map(KeyEntry::new).collect(),
        }
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        self.current.key.kid()
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let mut token =
            String::with_capacity(self.current.header.len() + payload.len() * 4 / 3 + 48);
        token.push_str(&self.current.header);
        token.push('.');
        token.push_str(&crypto::b64url_encode(&payload));
        let tag = self.current.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&crypto::b64url_encode(tag.as_ref()));
        token
    }

    /// Verifies `token` at time `now`: header, MAC, then claims and expiry.
    /// Revocation is the caller's business (it needs the store).
    pub fn verify(&self, token: &str, now: u64) -> Result<Verified, Invalid> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Invalid::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::Malformed);
        };
        let entry = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|e| e.header == header)
            .ok_or(Invalid::Header)?;
        // Decoded into stack buffers: the verify path allocates only the
        // username it returns.
        let mut tag = [0u8; 32];
        if crypto::b64url_decode_into(signature.as_bytes(), &mut tag) != Some(tag.len()) {
            return Err(Invalid::Malformed);
        }
        let signed = &token[..header.len() + 1 + payload.len()];
        if !entry.key.verify(signed.as_bytes(), &tag) {
            return Err(Invalid::Signature);
        }
        // Our claims are well under this; a larger payload is not ours.
        let mut json = [0u8; MAX_CLAIMS_LEN];
        let len =
            crypto::b64url_decode_into(payload.as_bytes(), &mut json).ok_or(Invalid::Malformed)?;
        let claims: ClaimsRef<'_> =
            serde_json::from_slice(&json[..len]).map_err(|_| Invalid::Claims)?;
        if claims.exp <= now {
            return Err(Invalid::Expired);
        }
        let user_id = UserId::parse(claims.sub).ok_or(Invalid::Claims)?;
        let factors = match &claims.amr {
            None => Factors::Password,
            Some(amr) => Factors::from_amr(amr).ok_or(Invalid::Claims)?,
        };
        let audience = Audience::parse(claims.aud).ok_or(Invalid::Claims)?;
        let mut jti = [0u8; JTI_LEN];
        if crypto::b64url_decode_into(claims.jti.as_bytes(), &mut jti) != Some(JTI_LEN) {
            return Err(Invalid::Claims);
        }
        Ok(Verified {
            user_id,
            name: claims.name.into(),
            audience,
            iat: claims.iat,
            exp: claims.exp,
            auth_time: claims.auth_time,
            factors,
            epoch: claims.epoch,
            jti,
        })
    }
}

/// Whether `text` has the shape of a token (three dot-separated segments,
/// the first starting like a JSON object). Used to tell a token passed as a
/// Basic username from a real username; usernames of this shape are refused
/// at registration.
pub fn looks_like_token(text: &str) -> bool {
    text.starts_with("eyJ") && text.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> Keys {
        Keys::new(SigningKey::new(&[seed; 32]), vec![])
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "7".into(),
            name: "alice".into(),
            aud: Audience::Api,
            iat: 1000,
            exp,
            auth_time: 1000,
            amr: vec!["pwd".into(), "otp".into()],
            epoch: 0,
            jti: crypto::b64url_encode(&[9u8; JTI_LEN]),
        }
    }

    #[test]
    fn every_audience_is_read_back_as_written() {
        let k = keys(1);
        for aud in [Audience::Api, Audience::Session, Audience::Pending] {
            let token = k.sign(&Claims {
                aud,
                ..claims(2000)
            });
            assert_eq!(k.verify(&token, 1500).unwrap().audience, aud);
            assert_eq!(Audience::parse(aud.as_str()), Some(aud));
        }
    }

    #[test]
    fn amr_is_read_back_and_absent_means_a_password() {
        let k = keys(1);
        let v = k.verify(&k.sign(&claims(2000)), 1500).unwrap();
        assert_eq!(v.factors, Factors::PasswordAndOtp);
        // A token signed before the second factor existed has no `amr`.
        let old = concat!(
            r#"{"sub":"7","name":"a","aud":"api","iat":1,"exp":2000,"auth_time":1,"#,
            r#""epoch":0,"jti":"CQkJCQkJCQkJCQkJCQkJCQ"}"#
        );
        assert_eq!(
            sign_raw(&k, old)
                .and_then(|t| k.verify(&t, 1500).ok())
                .unwrap()
                .factors,
            Factors::Password
        );
        for amr in [
            r#"["otp"]"#,
            r#"["pwd","pwd"]"#,
            r#"[]"#,
            r#"["otp","pwd"]"#,
        ] {
            let bad = old.replace(r#""epoch""#, &format!(r#""amr":{amr},"epoch""#));
            let t = sign_raw(&k, &bad).unwrap();
            assert_eq!(k.verify(&t, 1500), Err(Invalid::Claims), "{amr}");
        }
    }

    /// Signs a raw JSON payload with `k` (the header and MAC as latch writes them).
    fn sign_raw(k: &Keys, json: &str) -> Option<String> {
        let mut token = k.current.header.clone();
        token.push('.');
        token.push_str(&crypto::b64url_encode(json.as_bytes()));
        let tag = k.current.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&crypto::b64url_encode(tag.as_ref()));
        Some(token)
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn round_trip() {
        let k = keys(1);
        let token = k.sign(&claims(2000));
        let v = k.verify(&token, 1500).unwrap();
        assert_eq!(v.user_id, UserId::new(7));
        assert_eq!(&*v.name, "alice");
        assert_eq!(v.jti, [9u8; JTI_LEN]);
        assert_eq!(v.audience, Audience::Api);
        assert_eq!(v.auth_time, 1000);
        let header = crypto::b64url_decode(segments(&token)[0].as_bytes()).unwrap();
        let header = String::from_utf8(header).unwrap();
        assert_eq!(
            header,
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, k.kid())
        );
    }

    #[test]
    fn expiry_is_exclusive() {
        let k = keys(1);
        let token = k.sign(&claims(2000));
        assert!(k.verify(&token, 1999).is_ok());
        assert_eq!(k.verify(&token, 2000), Err(Invalid::Expired));
    }

    #[test]
    fn wrong_key_is_refused() {
        let token = keys(1).sign(&claims(2000));
        // Different key, different kid: the header no longer matches.
        assert_eq!(keys(2).verify(&token, 1500), Err(Invalid::Header));
    }

    #[test]
    fn same_kid_wrong_mac_is_refused() {
        let k = keys(1);
        let mut s = segments(&k.sign(&claims(2000)));
        s[2] = crypto::b64url_encode(&[0u8; 32]);
        assert_eq!(k.verify(&s.join("."), 1500), Err(Invalid::Signature));
    }

    #[test]
    fn edited_payload_is_refused() {
        let k = keys(1);
        let mut s = segments(&k.sign(&claims(2000)));
        let mut edited = claims(2000);
        edited.sub = "1".into();
        s[1] = crypto::b64url_encode(&serde_json::to_vec(&edited).unwrap());
        assert_eq!(k.verify(&s.join("."), 1500), Err(Invalid::Signature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let k = keys(1);
        let s = segments(&k.sign(&claims(2000)));
        for alg in ["none", "HS512", "RS256", "hs256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{}"}}"#, k.kid());
            let forged = format!("{}.{}.", crypto::b64url_encode(header.as_bytes()), s[1]);
            assert_eq!(k.verify(&forged, 1500), Err(Invalid::Header), "{alg}");
            let forged = format!(
                "{}.{}.{}",
                crypto::b64url_encode(header.as_bytes()),
                s[1],
                s[2]
            );
            assert_eq!(k.verify(&forged, 1500), Err(Invalid::Header), "{alg}");
        }
    }

    #[test]
    fn non_canonical_base64_signature_is_refused() {
        let k = keys(1);
        let token = k.sign(&claims(2000));
        // 32 bytes -> 43 chars; the last char carries 2 unused bits. Setting
        // one gives another spelling of the same bytes, which strict
        // decoding refuses.
        let last = token.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let twin = alphabet.as_bytes()[idx ^ 1] as char;
        let respelled = format!("{}{}", &token[..token.len() - 1], twin);
        assert_ne!(respelled, token);
        assert_eq!(k.verify(&respelled, 1500), Err(Invalid::Malformed));
    }

    #[test]
    fn garbage_is_refused() {
        let k = keys(1);
        for t in [
            "", ".", "..", "a.b.c", "a.b.c.d", "eyJ.eyJ.", "\u{0}", "ü.ü.ü",
        ] {
            assert!(k.verify(t, 1500).is_err(), "{t:?}");
        }
        assert_eq!(
            k.verify(&"a".repeat(MAX_TOKEN_LEN + 1), 0),
            Err(Invalid::Malformed)
        );
    }

    #[test]
    fn previous_keys_verify_but_do_not_sign() {
        let old = keys(1);
        let token = old.sign(&claims(2000));
        let rotated = Keys::new(SigningKey::new(&[2; 32]), vec![SigningKey::new(&[1; 32])]);
        assert!(rotated.verify(&token, 1500).is_ok());
        assert_ne!(
            segments(&rotated.sign(&claims(2000)))[0],
            segments(&token)[0]
        );
    }

    #[test]
    fn audience_is_signed_and_required() {
        let k = keys(1);
        let mut session = claims(2000);
        session.aud = Audience::Session;
        assert_eq!(
            k.verify(&k.sign(&session), 1500).unwrap().audience,
            Audience::Session
        );
        // A token without `aud` or `auth_time` (as latch wrote before
        // audiences existed), or with another audience, is refused.
        let sign = |json: &str| {
            let header = segments(&k.sign(&claims(2000)))[0].clone();
            let signed = format!("{header}.{}", crypto::b64url_encode(json.as_bytes()));
            let tag = SigningKey::new(&[1; 32]).sign(signed.as_bytes());
            format!("{signed}.{}", crypto::b64url_encode(tag.as_ref()))
        };
        let jti = crypto::b64url_encode(&[9u8; JTI_LEN]);
        let base = r#""sub":"7","name":"a","iat":1,"exp":2000"#;
        let fresh = r#""auth_time":1,"epoch":0"#;
        for json in [
            format!(r#"{{{base},"jti":"{jti}"}}"#),
            format!(r#"{{{base},"aud":"api","jti":"{jti}"}}"#),
            format!(r#"{{{base},"aud":"admin",{fresh},"jti":"{jti}"}}"#),
            format!(r#"{{{base},"aud":["api"],{fresh},"jti":"{jti}"}}"#),
        ] {
            assert_eq!(k.verify(&sign(&json), 1500), Err(Invalid::Claims), "{json}");
        }
        let ok = format!(r#"{{{base},"aud":"api",{fresh},"jti":"{jti}"}}"#);
        assert!(k.verify(&sign(&ok), 1500).is_ok());
    }
}
