//! The on-disk encoding: versioned record types and the byte layouts of
//! keys and small values. Owns nothing but conversions; never opens a tree.
//!
//! A record is a version byte, then a bincode body. An unknown version is
//! an error, never a panic. Record types are their own (`UserRecordV1`),
//! never the domain's: a change to [`crate::model`] cannot silently change
//! what is on disk.

use std::net::IpAddr;

use bincode::{Decode, Encode};

use crate::error::{Error, Result};
use crate::model::{ApiKey, Ban, Cutoff, Factors, KeyId, Session, SessionId, Totp, User, UserId};

const USER_V1: u8 = 1;
pub(super) const EXPIRY_V1: u8 = 1;
const CUTOFF_V1: u8 = 1;
const KEY_V1: u8 = 1;
/// Adds what the sign-in that made the key proved.
const KEY_V2: u8 = 2;
const SESSION_V1: u8 = 1;
/// Adds what the sign-in proved.
const SESSION_V2: u8 = 2;
const TOTP_V1: u8 = 1;

/// Records are small; a damaged length prefix must not make a decode
/// allocate without bound.
const MAX_RECORD: usize = 1 << 20;

/// Version 1 of the stored user record. Never change it: add a version.
#[derive(Encode, Decode)]
struct UserRecordV1 {
    username: String,
    email: Option<String>,
    password_hash: String,
    groups: Vec<String>,
    created_at: u64,
}

#[derive(Encode, Decode)]
struct CutoffRecordV1 {
    at: u64,
    deleted: bool,
    seq: u64,
}

#[derive(Encode, Decode)]
struct ApiKeyRecordV1 {
    id: u64,
    user_id: u64,
    username: String,
    name: String,
    created_at: u64,
    expires_at: Option<u64>,
    last_used_at: Option<u64>,
}

#[derive(Encode, Decode)]
struct SessionRecordV1 {
    user_id: u64,
    created_at: u64,
    last_seen_at: u64,
    expires_at: u64,
    epoch: u64,
    address: Option<IpAddr>,
    user_agent: String,
    remember: bool,
    domain: Option<String>,
}

/// Version 2 of the API key record: version 1 and the factors (0: a
/// password, 1: a password and a code).
#[derive(Encode, Decode)]
struct ApiKeyRecordV2 {
    v1: ApiKeyRecordV1,
    factors: u8,
}

/// Version 2 of the session record: version 1 and the factors.
#[derive(Encode, Decode)]
struct SessionRecordV2 {
    v1: SessionRecordV1,
    factors: u8,
}

/// A user's second factor: the secret sealed with the storage key (never
/// in the clear), whether it was confirmed, the newest time step a code
/// was accepted for, and the hashes of unused recovery codes.
#[derive(Encode, Decode)]
struct TotpRecordV1 {
    sealed_secret: Vec<u8>,
    active: bool,
    created_at: u64,
    last_step: Option<u64>,
    recovery: Vec<[u8; 32]>,
}

fn factors_byte(f: Factors) -> u8 {
    match f {
        Factors::Password => 0,
        Factors::PasswordAndOtp => 1,
    }
}

fn byte_factors(b: u8, what: &str) -> Result<Factors> {
    match b {
        0 => Ok(Factors::Password),
        1 => Ok(Factors::PasswordAndOtp),
        _ => Err(Error::store(format_args!(
            "{what} names unknown factors {b}"
        ))),
    }
}

/// The version byte of a record, if any.
fn version_of(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// A version byte, then the bincode body.
fn encode<T: Encode>(version: u8, record: &T) -> Vec<u8> {
    let mut out = vec![version];
    bincode::encode_into_std_write(record, &mut out, bincode_config())
        .expect("writing to a Vec cannot fail");
    out
}

/// Decodes a record written by [`encode`] with `version`; `what` names it
/// in errors.
fn decode<T: Decode<()>>(version: u8, bytes: &[u8], what: &dyn Fn() -> String) -> Result<T> {
    match bytes.split_first() {
        Some((&v, body)) if v == version => bincode::decode_from_slice(body, bincode_config())
            .map(|(record, _)| record)
            .map_err(|e| Error::store(format_args!("{} is corrupt: {e}", what()))),
        Some((v, _)) => Err(Error::store(format_args!(
            "{} has unknown version {v}; is this database from a newer latch?",
            what()
        ))),
        None => Err(Error::store(format_args!("{} is empty", what()))),
    }
}

pub(super) fn encode_user(user: &User) -> Vec<u8> {
    encode(
        USER_V1,
        &UserRecordV1 {
            username: user.username.clone(),
            email: user.email.clone(),
            password_hash: user.password_hash.clone(),
            groups: user.groups.clone(),
            created_at: user.created_at,
        },
    )
}

pub(super) fn decode_user(id: UserId, bytes: &[u8]) -> Result<User> {
    let r: UserRecordV1 = decode(USER_V1, bytes, &|| format!("user record {id}"))?;
    Ok(User {
        id,
        username: r.username,
        email: r.email,
        password_hash: r.password_hash,
        groups: r.groups,
        created_at: r.created_at,
    })
}

pub(super) fn encode_key(key: &ApiKey) -> Vec<u8> {
    encode(
        KEY_V2,
        &ApiKeyRecordV2 {
            v1: ApiKeyRecordV1 {
                id: key.id.get(),
                user_id: key.user_id.get(),
                username: key.username.clone(),
                name: key.name.clone(),
                created_at: key.created_at,
                expires_at: key.expires_at,
                last_used_at: key.last_used_at,
            },
            factors: factors_byte(key.factors),
        },
    )
}

pub(super) fn decode_key(bytes: &[u8]) -> Result<ApiKey> {
    let what = || "an API key record".to_owned();
    let (r, factors) = if version_of(bytes) == Some(KEY_V1) {
        let r: ApiKeyRecordV1 = decode(KEY_V1, bytes, &what)?;
        (r, Factors::Password)
    } else {
        let r: ApiKeyRecordV2 = decode(KEY_V2, bytes, &what)?;
        (r.v1, byte_factors(r.factors, "an API key record")?)
    };
    Ok(ApiKey {
        id: KeyId::new(r.id),
        user_id: UserId::new(r.user_id),
        username: r.username,
        name: r.name,
        created_at: r.created_at,
        expires_at: r.expires_at,
        last_used_at: r.last_used_at,
        factors,
    })
}

pub(super) fn encode_session(s: &Session) -> Vec<u8> {
    encode(
        SESSION_V2,
        &SessionRecordV2 {
            v1: SessionRecordV1 {
                user_id: s.user_id.get(),
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                epoch: s.epoch,
                address: s.address,
                user_agent: s.user_agent.clone(),
                remember: s.remember,
                domain: s.domain.clone(),
            },
            factors: factors_byte(s.factors),
        },
    )
}

/// A session record stored under `id`.
pub(super) fn decode_session(id: &[u8], bytes: &[u8]) -> Result<Session> {
    let id = SessionId(
        id.try_into()
            .map_err(|_| Error::store("a session key is corrupt"))?,
    );
    let what = || "a session record".to_owned();
    let (r, factors) = if version_of(bytes) == Some(SESSION_V1) {
        let r: SessionRecordV1 = decode(SESSION_V1, bytes, &what)?;
        (r, Factors::Password)
    } else {
        let r: SessionRecordV2 = decode(SESSION_V2, bytes, &what)?;
        (r.v1, byte_factors(r.factors, "a session record")?)
    };
    Ok(Session {
        id,
        user_id: UserId::new(r.user_id),
        created_at: r.created_at,
        last_seen_at: r.last_seen_at,
        expires_at: r.expires_at,
        epoch: r.epoch,
        address: r.address,
        user_agent: r.user_agent,
        remember: r.remember,
        domain: r.domain,
        factors,
    })
}

pub(super) fn encode_totp(t: &Totp) -> Vec<u8> {
    encode(
        TOTP_V1,
        &TotpRecordV1 {
            sealed_secret: t.sealed_secret.clone(),
            active: t.active,
            created_at: t.created_at,
            last_step: t.last_step,
            recovery: t.recovery.clone(),
        },
    )
}

pub(super) fn decode_totp(user_id: UserId, bytes: &[u8]) -> Result<Totp> {
    let r: TotpRecordV1 = decode(TOTP_V1, bytes, &|| {
        format!("the second factor of user {user_id}")
    })?;
    Ok(Totp {
        user_id,
        sealed_secret: r.sealed_secret,
        active: r.active,
        created_at: r.created_at,
        last_step: r.last_step,
        recovery: r.recovery,
    })
}

pub(super) fn encode_cutoff(c: Cutoff) -> Vec<u8> {
    encode(
        CUTOFF_V1,
        &CutoffRecordV1 {
            at: c.at,
            deleted: c.deleted,
            seq: c.seq,
        },
    )
}

pub(super) fn decode_cutoff(bytes: &[u8]) -> Result<Cutoff> {
    let r: CutoffRecordV1 = decode(CUTOFF_V1, bytes, &|| "a cutoff record".to_owned())?;
    Ok(Cutoff {
        at: r.at,
        deleted: r.deleted,
        seq: r.seq,
    })
}

/// An expiry (revocations, bans): a version byte, then a u64 BE.
pub(super) fn encode_expiry(exp: u64) -> [u8; 9] {
    let mut value = [0u8; 9];
    value[0] = EXPIRY_V1;
    value[1..].copy_from_slice(&exp.to_be_bytes());
    value
}

pub(super) fn decode_expiry(bytes: &[u8]) -> Result<u64> {
    match bytes {
        [EXPIRY_V1, rest @ ..] => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| Error::store("an expiry record is corrupt")),
        _ => Err(Error::store("an expiry record has an unknown version")),
    }
}

/// The `bans` key of a ban, and its end.
pub(super) fn ban_key(ban: Ban) -> (Vec<u8>, u64) {
    match ban {
        Ban::User(id, until) => ([&b"u"[..], &id.get().to_be_bytes()].concat(), until),
        Ban::Source(IpAddr::V4(ip), until) => ([&b"s"[..], &ip.octets()].concat(), until),
        Ban::Source(IpAddr::V6(ip), until) => ([&b"s"[..], &ip.octets()].concat(), until),
    }
}

pub(super) fn decode_ban(key: &[u8], until: u64) -> Result<Ban> {
    let corrupt = || Error::store("a ban key is corrupt");
    match key {
        [b'u', id @ ..] => Ok(Ban::User(UserId::new(be_u64(id, "a ban key")?), until)),
        [b's', ip @ ..] => {
            let ip = match ip.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(ip).map_err(|_| corrupt())?),
                16 => IpAddr::from(<[u8; 16]>::try_from(ip).map_err(|_| corrupt())?),
                _ => return Err(corrupt()),
            };
            Ok(Ban::Source(ip, until))
        }
        _ => Err(corrupt()),
    }
}

/// A u64 stored big-endian.
pub(super) fn be_u64(bytes: &[u8], what: &str) -> Result<u64> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Error::store(format_args!("{what} is corrupt")))
}

/// The entries of a packed bucket or list (record buckets, index buckets,
/// session lists), read front to back: fixed fields and fields behind a
/// big-endian length; `None` where the bytes run out.
pub(super) struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields(bytes)
    }

    /// Whether every byte was read.
    pub(super) fn done(&self) -> bool {
        self.0.is_empty()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (field, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(field)
    }

    /// The next `N` bytes, as an array.
    pub(super) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A field behind a two-byte length.
    pub(super) fn with_u16_len(&mut self) -> Option<&'a [u8]> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }

    /// A field behind a four-byte length.
    pub(super) fn with_u32_len(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(len).ok()?)
    }
}

/// Appends `field` behind its two-byte length; `too_long` when it has
/// 64 KiB or more.
pub(super) fn put_with_u16_len(out: &mut Vec<u8>, field: &[u8], too_long: &str) -> Result<()> {
    let len = u16::try_from(field.len()).map_err(|_| Error::internal(too_long))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

/// Appends `field` behind its four-byte length; `too_long` when it has
/// 4 GiB or more.
pub(super) fn put_with_u32_len(out: &mut Vec<u8>, field: &[u8], too_long: &str) -> Result<()> {
    let len = u32::try_from(field.len()).map_err(|_| Error::internal(too_long))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

/// The key of the unique indexes: case-insensitive.
pub(super) fn index_key(name: &str) -> Vec<u8> {
    name.to_lowercase().into_bytes()
}

/// The `users`, `cutoffs` key of a user.
pub(super) fn user_key(id: UserId) -> [u8; 8] {
    id.get().to_be_bytes()
}

/// The `user_keys` key: user id then key id, so a user's keys are a prefix.
pub(super) fn user_key_index(user_id: UserId, key_id: KeyId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&user_id.get().to_be_bytes());
    k[8..].copy_from_slice(&key_id.get().to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: UserId::new(3),
            username: "alice".into(),
            email: Some("a@example.com".into()),
            password_hash: "$scrypt$x".into(),
            groups: vec!["admins".into()],
            created_at: 5,
        }
    }

    #[test]
    fn records_round_trip() {
        let u = user();
        assert_eq!(decode_user(u.id, &encode_user(&u)).unwrap(), u);
        let k = ApiKey {
            id: KeyId::new(9),
            user_id: UserId::new(3),
            username: "alice".into(),
            name: "ci".into(),
            created_at: 1,
            expires_at: Some(2),
            last_used_at: None,
            factors: Factors::PasswordAndOtp,
        };
        assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        // A version 1 record (before the second factor) is a password's.
        let v1 = encode(
            KEY_V1,
            &ApiKeyRecordV1 {
                id: 9,
                user_id: 3,
                username: "alice".into(),
                name: "ci".into(),
                created_at: 1,
                expires_at: Some(2),
                last_used_at: None,
            },
        );
        let old = decode_key(&v1).unwrap();
        assert_eq!(old.factors, Factors::Password);
        assert_eq!(old.name, "ci");
        let mut unknown = encode_key(&k);
        *unknown.last_mut().unwrap() = 7;
        assert!(decode_key(&unknown).is_err(), "unknown factors");
        let t = Totp {
            user_id: UserId::new(3),
            sealed_secret: vec![1, 2, 3],
            active: true,
            created_at: 4,
            last_step: Some(5),
            recovery: vec![[6; 32]],
        };
        assert!(decode_totp(UserId::new(3), &encode_totp(&t)).unwrap() == t);
        let c = Cutoff {
            at: 7,
            deleted: true,
            seq: 9,
        };
        assert_eq!(decode_cutoff(&encode_cutoff(c)).unwrap(), c);
        assert_eq!(decode_expiry(&encode_expiry(42)).unwrap(), 42);
        for ban in [
            Ban::User(UserId::new(7), 9),
            Ban::Source("203.0.113.7".parse().unwrap(), 9),
            Ban::Source("2001:db8::".parse().unwrap(), 9),
        ] {
            let (key, until) = ban_key(ban);
            assert_eq!(decode_ban(&key, until).unwrap(), ban);
        }
    }

    #[test]
    fn unknown_versions_and_damage_are_errors() {
        let mut bytes = encode_user(&user());
        bytes[0] = 99;
        let e = decode_user(UserId::new(3), &bytes).unwrap_err();
        assert!(e.to_string().contains("unknown version 99"), "{e}");
        assert!(decode_user(UserId::new(3), &[]).is_err());
        assert!(decode_user(UserId::new(3), &[USER_V1, 0xff]).is_err());
        assert!(decode_expiry(&[2, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_expiry(&[EXPIRY_V1, 0]).is_err());
        assert!(decode_key(&[KEY_V1 + 1]).is_err());
        assert!(decode_cutoff(&[]).is_err());
        assert!(decode_ban(b"s123", 1).is_err());
        assert!(decode_ban(b"x", 1).is_err());
        assert!(be_u64(b"short", "x").is_err());
    }
}
