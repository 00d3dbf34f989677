//! A short-lived memory of successful password checks, so a script that
//! sends the same Basic `username:password` on every request pays for one
//! scrypt hash, not one per request (Apache's mod_authn_socache and
//! Authelia's basic-auth cache do the same).
//!
//! Entries are keyed by HMAC-SHA256, under a key made fresh for each
//! process, of the user id, the password, the user's stored hash and the
//! client address: the password itself is never kept, a password change
//! (a new stored hash) or an account deletion (no stored hash to read)
//! makes every old entry unreachable at once, and the same password from
//! another address costs a hash and an audit line of its own. Bans are
//! checked before the cache.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::crypto::{self, SigningKey};
use crate::error::Result;
use crate::model::UserId;

/// Most entries kept; beyond it expired ones go, then everything.
const MAX_ENTRIES: usize = 10_000;

/// Remembered successful checks.
pub struct PasswordCache {
    /// Per-process HMAC key: entries mean nothing outside this process.
    key: SigningKey,
    /// How long an entry lasts, in seconds; zero disables the cache.
    ttl: u64,
    /// Entry key → expiry. A std lock: held for one map operation.
    entries: Mutex<HashMap<[u8; 32], u64>>,
}

impl PasswordCache {
    /// An empty cache whose entries last `ttl` seconds.
    pub fn new(ttl: u64) -> Result<PasswordCache> {
        Ok(PasswordCache {
            key: SigningKey::new(&crypto::random_bytes::<32>()?),
            ttl,
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn entry_key(
        &self,
        user_id: UserId,
        password: &str,
        stored_hash: &str,
        source: Option<IpAddr>,
    ) -> [u8; 32] {
        let mut input = Vec::with_capacity(33 + password.len() + stored_hash.len());
        push_source(&mut input, source);
        input.extend_from_slice(&user_id.get().to_be_bytes());
        input.extend_from_slice(&(password.len() as u64).to_be_bytes());
        input.extend_from_slice(password.as_bytes());
        input.extend_from_slice(stored_hash.as_bytes());
        self.mac(&input)
    }

    /// HMAC-SHA256 under this process's key.
    fn mac(&self, input: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.key.sign(input).as_ref());
        out
    }

    /// The key under which identical checks in flight are shared (see
    /// [`super::flights`]): an HMAC of the login as given (case folded),
    /// the password and the client address.
    pub fn flight_key(&self, login: &str, password: &str, source: Option<IpAddr>) -> [u8; 32] {
        let login = login.to_lowercase();
        let mut input = Vec::with_capacity(25 + login.len() + password.len());
        push_source(&mut input, source);
        input.extend_from_slice(&(login.len() as u64).to_be_bytes());
        input.extend_from_slice(login.as_bytes());
        input.extend_from_slice(password.as_bytes());
        self.mac(&input)
    }

    /// Whether this password was checked successfully against this stored
    /// hash, from this address, less than `ttl` ago.
    pub fn hit(
        &self,
        user_id: UserId,
        password: &str,
        stored_hash: &str,
        source: Option<IpAddr>,
        now: u64,
    ) -> bool {
        if self.ttl == 0 {
            return false;
        }
        let key = self.entry_key(user_id, password, stored_hash, source);
        self.lock().get(&key).is_some_and(|&until| now < until)
    }

    /// Remembers a successful check from `source`.
    pub fn remember(
        &self,
        user_id: UserId,
        password: &str,
        stored_hash: &str,
        source: Option<IpAddr>,
        now: u64,
    ) {
        if self.ttl == 0 {
            return;
        }
        let key = self.entry_key(user_id, password, stored_hash, source);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, &mut until| now < until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, now.saturating_add(self.ttl));
    }

    /// Drops expired entries.
    pub fn prune(&self, now: u64) {
        self.lock().retain(|_, &mut until| now < until);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], u64>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Appends an address (or its absence) in a fixed-width form.
fn push_source(input: &mut Vec<u8>, source: Option<IpAddr>) {
    match source.map(|ip| ip.to_canonical()) {
        None => input.push(0),
        Some(IpAddr::V4(ip)) => {
            input.push(4);
            input.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            input.push(6);
            input.extend_from_slice(&ip.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8)));

    #[test]
    fn remembers_only_the_same_user_password_and_hash() {
        let c = PasswordCache::new(60).unwrap();
        assert!(!c.hit(UserId::new(1), "pw", "$h1", A, 0));
        c.remember(UserId::new(1), "pw", "$h1", A, 0);
        assert!(c.hit(UserId::new(1), "pw", "$h1", A, 59));
        assert!(!c.hit(UserId::new(1), "pw", "$h1", A, 60), "expired");
        assert!(!c.hit(UserId::new(1), "pw2", "$h1", A, 1));
        assert!(!c.hit(UserId::new(2), "pw", "$h1", A, 1));
        assert!(
            !c.hit(UserId::new(1), "pw", "$h2", A, 1),
            "a new stored hash invalidates"
        );
        assert!(
            !c.hit(UserId::new(1), "pw", "$h1", B, 1),
            "another address pays (and is audited)"
        );
        assert!(!c.hit(UserId::new(1), "pw", "$h1", None, 1));
        c.prune(61);
        assert!(c.lock().is_empty());
    }

    #[test]
    fn zero_ttl_disables_and_size_is_bounded() {
        let off = PasswordCache::new(0).unwrap();
        off.remember(UserId::new(1), "pw", "$h", A, 0);
        assert!(!off.hit(UserId::new(1), "pw", "$h", A, 0));
        let c = PasswordCache::new(10).unwrap();
        for i in 0..(MAX_ENTRIES as u64 + 10) {
            c.remember(UserId::new(i), "pw", "$h", A, 0);
        }
        assert!(c.lock().len() <= MAX_ENTRIES);
    }

    #[test]
    fn never_stores_the_password() {
        let c = PasswordCache::new(10).unwrap();
        c.remember(UserId::new(1), "hunter2-secret", "$h", A, 0);
        let debug = format!("{:?}", c.lock());
        assert!(!debug.contains("hunter2"));
    }
}
