//! The domain's types, shared by every layer: ids, users, API keys, the
//! identities credentials prove.
//!
//! Owns no behaviour beyond small accessors. The store keeps its own
//! versioned record types and converts; the HTTP layer shapes its own JSON
//! from these. Ids are newtypes, so a user id and a key id cannot be
//! swapped by accident.

use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::token::JTI_LEN;

/// A user id: stable, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(u64);

/// An API key id, unique across users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(u64);

macro_rules! id_type {
    ($name:ident) => {
        impl $name {
            /// Wraps a raw id (from the store's id generator or a record).
            pub fn new(raw: u64) -> Self {
                $name(raw)
            }

            /// The raw number.
            pub fn get(self) -> u64 {
                self.0
            }

            /// Parses an id as written in URLs and claims: canonical
            /// decimal, no sign, no leading zeros.
            pub fn parse(text: &str) -> Option<Self> {
                parse_decimal(text).map($name)
            }
        }

        /// Any decimal `u64`, as the command line has always taken ids
        /// (URLs and claims use the stricter [`Self::parse`]).
        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(UserId);
id_type!(KeyId);

/// Canonical decimal: digits only, no leading zero, fits a u64.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A user as the rest of latch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id, never reused.
    pub id: UserId,
    /// The name as registered (lookups ignore case).
    pub username: String,
    /// Optional email, unique when present.
    pub email: Option<String>,
    /// scrypt PHC string.
    pub password_hash: String,
    /// Group names, passed on by forward auth.
    pub groups: Vec<String>,
    /// Registration time, seconds since the epoch.
    pub created_at: u64,
}

/// A user's token cutoff: the start of a new credential epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// When it was set (seconds); pruned once every token it could refuse
    /// has expired.
    pub at: u64,
    /// The account was deleted: its API keys are refused too.
    pub deleted: bool,
    /// Unique per cutoff: the epoch it starts. Tokens carry the epoch
    /// their password was proven in; only the current one's pass.
    pub seq: u64,
}

impl Cutoff {
    /// The one rule for credential epochs: with no cutoff (none was ever
    /// set, or it was pruned once every token it could refuse had expired)
    /// every epoch is admitted; else only the cutoff's own, and none of a
    /// deleted account. Tokens, sessions, new tokens from a proof and new
    /// API keys are all judged by it: pruning a cutoff must not make the
    /// current epoch's credentials look stale.
    pub fn admits(cutoff: Option<&Cutoff>, epoch: u64) -> bool {
        cutoff.is_none_or(|c| !c.deleted && c.seq == epoch)
    }
}

/// An API key, without its secret (only a hash of that is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id.
    pub id: KeyId,
    /// Owner.
    pub user_id: UserId,
    /// Owner's username (usernames never change), so verifying a key is
    /// one read.
    pub username: String,
    /// Name the owner gave it.
    pub name: String,
    /// Creation time.
    pub created_at: u64,
    /// Refused from this second on, if set.
    pub expires_at: Option<u64>,
    /// Last successful use, recorded at most about once a minute.
    pub last_used_at: Option<u64>,
    /// What the sign-in that made it proved.
    pub factors: Factors,
}

impl ApiKey {
    /// Whether the key is refused at `now` for its age.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A brute-force ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ban {
    /// An account, until this second (exclusive).
    User(UserId, u64),
    /// A client address (IPv6 by its /64), until this second (exclusive).
    Source(IpAddr, u64),
}

/// How a user proved who they are: a password, and perhaps a one-time
/// code on top (a TOTP code or a recovery code). Written into tokens as
/// RFC 8176's `amr` claim: `["pwd"]` or `["pwd", "otp"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Factors {
    /// A password alone.
    #[default]
    Password,
    /// A password and a one-time code.
    PasswordAndOtp,
}

impl Factors {
    /// The `amr` values.
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            Factors::Password => &["pwd"],
            Factors::PasswordAndOtp => &["pwd", "otp"],
        }
    }

    /// Reads `amr` values as [`Factors::amr`] writes them.
    pub fn from_amr(amr: &[&str]) -> Option<Factors> {
        match amr {
            ["pwd"] => Some(Factors::Password),
            ["pwd", "otp"] => Some(Factors::PasswordAndOtp),
            _ => None,
        }
    }

    /// Whether a second factor was proven.
    pub fn two(self) -> bool {
        self == Factors::PasswordAndOtp
    }
}

/// A user's second factor as stored: the TOTP secret sealed with the
/// storage key, never in the clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    /// Whose.
    pub user_id: UserId,
    /// The 20-byte secret, sealed (AES-256-GCM, bound to the user id).
    pub sealed_secret: Vec<u8>,
    /// Confirmed with a code: asked for at every sign-in. Until then it is
    /// an enrolment under way and asks for nothing.
    pub active: bool,
    /// When enrolment began.
    pub created_at: u64,
    /// The newest time step a code was accepted for (older and equal ones
    /// are replays).
    pub last_step: Option<u64>,
    /// SHA-256 of each unused recovery code.
    pub recovery: Vec<[u8; 32]>,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("user_id", &self.user_id)
            .field("active", &self.active)
            .field("recovery_left", &self.recovery.len())
            .finish_non_exhaustive()
    }
}

/// A password that checked out: the user, and the credential epoch that
/// held when the check began. Tokens and keys made from it belong to that
/// epoch, so a password change or logout everywhere that lands while the
/// check runs still refuses them.
#[derive(Debug, Clone)]
pub struct Proven {
    /// Who.
    pub user: User,
    /// The user's credential epoch when the check began.
    pub epoch: u64,
    /// What was proven: a password, then perhaps a code.
    pub factors: Factors,
}

impl Proven {
    /// A password alone.
    pub fn password(user: User, epoch: u64) -> Proven {
        Proven {
            user,
            epoch,
            factors: Factors::Password,
        }
    }
}

/// Who a request is, once a credential was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user_id: UserId,
    /// The username.
    pub username: std::sync::Arc<str>,
    /// What proved it.
    pub via: Via,
    /// When the password behind the credential was checked: now for a
    /// password, the token's `auth_time` for a token, never for an API key.
    pub auth_time: Option<u64>,
    /// The user's credential epoch the credential belongs to (a password's
    /// when its check began, a token's own); none for an API key. A key
    /// is made only if the epoch is still current when it is stored.
    pub epoch: Option<u64>,
    /// What the sign-in behind the credential proved (a key's or token's
    /// are those of the sign-in that made it).
    pub factors: Factors,
}

impl Identity {
    /// Whether the password was proven within `window` seconds of `now`
    /// (sensitive changes need this).
    pub fn password_proven_within(&self, now: u64, window: u64) -> bool {
        self.auth_time
            .is_some_and(|t| t <= now && now - t <= window)
    }
}

/// The kind of credential that proved an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A username and password.
    Password,
    /// A token, with enough of it to revoke it.
    Token(TokenRef),
    /// An API key, by id.
    ApiKey(KeyId),
}

/// Enough of a verified token to revoke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's `jti`.
    pub jti: [u8; JTI_LEN],
    /// The token's expiry.
    pub exp: u64,
}

/// A login-page session: the record behind a session cookie, named by
/// its token's `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session token's `jti`.
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// Signed in at.
    pub created_at: u64,
    /// Last used (about to the minute).
    pub last_seen_at: u64,
    /// When its token expires.
    pub expires_at: u64,
    /// The user's credential epoch it was made in.
    pub epoch: u64,
    /// The client's address at sign-in, when known.
    pub address: Option<IpAddr>,
    /// The browser's `User-Agent` at sign-in, truncated.
    pub user_agent: String,
    /// Whether "remember me" was ticked.
    pub remember: bool,
    /// The cookie domain it was signed in for, with several domains; its
    /// cookie lets in there only.
    pub domain: Option<String>,
    /// What the sign-in proved.
    pub factors: Factors,
}

/// A session's id: its token's `jti`, written as base64url (22 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; JTI_LEN]);

impl SessionId {
    /// Parses the canonical base64url form; anything else is `None`.
    pub fn parse(text: &str) -> Option<SessionId> {
        let bytes = crate::crypto::b64url_decode(text.as_bytes())?;
        let id = SessionId(bytes.try_into().ok()?);
        (id.to_string() == text).then_some(id)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::crypto::b64url_encode(&self.0))
    }
}

impl std::str::FromStr for SessionId {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<SessionId, String> {
        SessionId::parse(text).ok_or_else(|| format!("{text:?} is not a session id"))
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<SessionId, D::Error> {
        let text = String::deserialize(d)?;
        SessionId::parse(&text).ok_or_else(|| serde::de::Error::custom("not a session id"))
    }
}

/// What the login page knows of a new session's browser.
#[derive(Debug, Clone, Default)]
pub struct SessionMeta {
    /// The client's address.
    pub address: Option<IpAddr>,
    /// Its `User-Agent`.
    pub user_agent: String,
    /// "Remember me".
    pub remember: bool,
    /// The cookie domain of the login page it was signed in on.
    pub domain: Option<String>,
}

/// A freshly issued token.
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub duration: u64,
    /// Its `jti` (a session's id).
    pub jti: [u8; JTI_LEN],
}

/// A freshly created API key: the record, and the secret shown this once.
pub struct NewKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret (`latch_...`); only its hash is stored.
    pub secret: String,
}

/// What forward auth passes on about a user, ready to be sent: the byte
/// strings are shared, not copied, into every response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Username.
    pub username: Bytes,
    /// Email, or empty.
    pub email: Bytes,
    /// Groups, comma-separated.
    pub groups_joined: Bytes,
    /// Groups, for membership checks.
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_decimals() {
        assert_eq!(UserId::parse("42"), Some(UserId::new(42)));
        assert_eq!(KeyId::parse("7").map(KeyId::get), Some(7));
        for bad in [
            "",
            "042",
            "-1",
            "+1",
            "1e3",
            " 1",
            "99999999999999999999999",
        ] {
            assert_eq!(UserId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UserId::new(5).to_string(), "5");
        assert_eq!(serde_json::to_string(&KeyId::new(9)).unwrap(), "9");
    }
}
