//! API keys: made from a current password proof (never from another key),
//! listed without their secrets, deleted one or all, verified with one
//! store read. A key's use is noted in memory and written off the request
//! path by housekeeping, so verifying never writes.
//!
//! It never stores a secret (only its hash) and never lets a key make a key.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Service;
use crate::audit;
use crate::credentials::API_KEY_PREFIX;
use crate::crypto;
use crate::error::{Error, Kind, Refusal, Result};
use crate::model::{ApiKey, Identity, KeyId, NewKey, UserId, Via};

/// A key's last use is written at most this often (seconds).
pub const LAST_USED_EVERY: u64 = 60;

/// Longest accepted `expires_in` for an API key: ten years.
pub const MAX_KEY_LIFETIME: u64 = 10 * 365 * 86400;

/// Most API keys one user may hold (sessions are bounded alike): listing
/// and pruning them must stay cheap, whoever asks.
pub const MAX_KEYS_PER_USER: usize = 100;
// The refusal names the figure in a static message: they change together.
const _: () = assert!(MAX_KEYS_PER_USER == 100, "update \"at most 100\" below");

/// API key uses not yet written, by key hash: (key id, time).
#[derive(Default)]
pub(super) struct KeyUses(Mutex<HashMap<[u8; 32], (KeyId, u64)>>);

impl KeyUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (KeyId, u64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service {
    /// Creates an API key for `who`. A key outlives password changes by
    /// design, so it is made only from a proof of the current credential
    /// epoch, checked in the same transaction that stores it.
    pub async fn create_key(
        &self,
        who: &Identity,
        name: &str,
        expires_in: Option<u64>,
    ) -> Result<NewKey> {
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name must be 1 to 64 characters without control characters",
            ));
        }
        if expires_in.is_some_and(|s| s == 0 || s > MAX_KEY_LIFETIME) {
            return Err(Error::invalid(
                "expires_in must be a number of seconds between 1 and ten years",
            ));
        }
        let epoch = who
            .epoch
            .ok_or_else(|| Error::new(Kind::Forbidden("API keys cannot create API keys")))?;
        let now = self.now();
        // Expired keys no longer count (pruning removes them later).
        let keys = self.store.user_keys(who.user_id)?;
        if keys.iter().filter(|k| !k.expired(now)).count() >= MAX_KEYS_PER_USER {
            return Err(Error::new(Kind::Conflict(
                "too many API keys (at most 100); delete one first",
            )));
        }
        let secret = format!(
            "{API_KEY_PREFIX}{}",
            crypto::b64url_encode(&crypto::random_bytes::<32>()?)
        );
        let key = ApiKey {
            id: KeyId::new(self.store.new_id()?),
            user_id: who.user_id,
            username: who.username.to_string(),
            name: name.to_owned(),
            created_at: now,
            expires_at: expires_in.map(|s| now + s),
            last_used_at: None,
            factors: who.factors,
        };
        self.store
            .create_key(&key, &crypto::sha256(secret.as_bytes()), epoch)
            .await
            .map_err(|e| match e.kind() {
                Kind::NotFound => Error::unauthorized(Refusal::BadToken),
                _ => e,
            })?;
        audit::user_event("key_created", who.user_id, "created an API key");
        Ok(NewKey { key, secret })
    }

    /// Verifies an API key: one store read; its use is noted in memory.
    pub(super) fn verify_key(&self, secret: &str) -> Result<Identity> {
        let refused = |why: &'static str| {
            audit::refused("api_key", why);
            Error::with_cause(Kind::Unauthorized(Refusal::BadToken), why)
        };
        let hash = crypto::sha256(secret.as_bytes());
        let key = self
            .store
            .key_by_hash(&hash)?
            .ok_or_else(|| refused("unknown API key"))?;
        let now = self.now();
        if key.expired(now) {
            return Err(refused("expired API key"));
        }
        if self.is_deleted(key.user_id) {
            return Err(refused("API key of a deleted account"));
        }
        if key.last_used_at.is_none_or(|t| now >= t + LAST_USED_EVERY) {
            self.key_uses.lock().entry(hash).or_insert((key.id, now));
        }
        Ok(Identity {
            user_id: key.user_id,
            username: key.username.into(),
            via: Via::ApiKey(key.id),
            auth_time: None,
            epoch: None,
            factors: key.factors,
        })
    }

    /// A user's keys, with uses not yet written folded in: one pass over
    /// the pending uses (of every user), not one per key.
    pub fn list_keys(&self, user: UserId) -> Result<Vec<ApiKey>> {
        let mut keys = self.store.user_keys(user)?;
        let index: HashMap<KeyId, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.id, i)).collect();
        let pending: Vec<(usize, u64)> = self
            .key_uses
            .lock()
            .values()
            .filter_map(|(id, at)| index.get(id).map(|&i| (i, *at)))
            .collect();
        for (i, at) in pending {
            let key = &mut keys[i];
            key.last_used_at = Some(key.last_used_at.map_or(at, |t| t.max(at)));
        }
        Ok(keys)
    }

    /// Deletes one of the user's keys; false when they have no such key.
    pub async fn delete_key(&self, user: UserId, key: KeyId) -> Result<bool> {
        let deleted = self.store.delete_key(user, key).await?;
        if deleted {
            audit::user_event("key_deleted", user, "deleted an API key");
        }
        Ok(deleted)
    }

    /// Deletes every API key of the user; returns how many.
    pub async fn delete_all_keys(&self, user: UserId) -> Result<usize> {
        let deleted = self.store.delete_user_keys(user).await?;
        if deleted > 0 {
            audit::user_event("keys_revoked", user, "deleted every API key");
        }
        Ok(deleted)
    }

    /// Writes pending key uses to the store.
    pub fn flush_key_uses(&self) -> Result<()> {
        let pending: Vec<([u8; 32], u64)> = self
            .key_uses
            .lock()
            .drain()
            .map(|(hash, (_, at))| (hash, at))
            .collect();
        self.store.touch_keys(&pending)
    }
}
