//! API keys (`keys`: SHA-256 of the secret → record; `user_keys`: user id
//! ++ key id → that hash). The secret itself is never stored.
//!
//! It never decides who may make a key; the epoch check runs in the same
//! transaction, for the service.

use sled::transaction::{abort, ConflictableTransactionError, Transactional as _};

use super::records::{decode_cutoff, decode_key, encode_key, user_key, user_key_index};
use super::Store;
use crate::error::{Error, Kind, Result};
use crate::model::{ApiKey, Cutoff, KeyId, UserId};

impl Store {
    /// Stores a new key under the hash of its secret, if the owner still
    /// exists and its cutoff still admits `epoch` ([`Cutoff::admits`]):
    /// [`Kind::NotFound`] otherwise. A key must not
    /// outlive the account or the proof it was made with.
    pub async fn create_key(&self, key: &ApiKey, hash: &[u8; 32], epoch: u64) -> Result<()> {
        let record = encode_key(key);
        let index = user_key_index(key.user_id, key.id);
        let owner = user_key(key.user_id);
        let gate = self.shared();
        let trees = (&self.users.tree, &self.cutoffs, &self.keys, &self.user_keys);
        trees.transaction(|(users, cutoffs, keys, user_keys)| {
            if super::by_id::ById::get_tx(users, key.user_id.get())?.is_none() {
                return abort(Error::new(Kind::NotFound));
            }
            let cutoff = match cutoffs.get(owner)? {
                Some(bytes) => {
                    Some(decode_cutoff(&bytes).map_err(ConflictableTransactionError::Abort)?)
                }
                None => None,
            };
            if !Cutoff::admits(cutoff.as_ref(), epoch) {
                return abort(Error::new(Kind::NotFound));
            }
            keys.insert(hash, record.as_slice())?;
            user_keys.insert(&index, hash)?;
            Ok(())
        })?;
        drop(gate);
        self.flush().await
    }

    /// The key whose secret hashes to `hash`. One sled read.
    pub fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        self.keys.get(hash)?.map(|b| decode_key(&b)).transpose()
    }

    /// A user's keys, by id.
    pub fn user_keys(&self, user_id: UserId) -> Result<Vec<ApiKey>> {
        let mut out = Vec::new();
        for entry in self.user_keys.scan_prefix(user_key(user_id)) {
            let (_, hash) = entry?;
            if let Some(bytes) = self.keys.get(&hash)? {
                out.push(decode_key(&bytes)?);
            }
        }
        Ok(out)
    }

    /// Deletes a user's key; false when that user has no such key.
    pub async fn delete_key(&self, user_id: UserId, key_id: KeyId) -> Result<bool> {
        let index = user_key_index(user_id, key_id);
        let gate = self.shared();
        let deleted = (&self.keys, &self.user_keys).transaction(|(keys, user_keys)| {
            let Some(hash) = user_keys.remove(&index)? else {
                return Ok(false);
            };
            keys.remove(hash)?;
            Ok(true)
        })?;
        drop(gate);
        if deleted {
            self.flush().await?;
        }
        Ok(deleted)
    }

    /// Deletes every key of a user; returns how many.
    pub async fn delete_user_keys(&self, user_id: UserId) -> Result<usize> {
        let entries: Vec<(sled::IVec, sled::IVec)> = self
            .user_keys
            .scan_prefix(user_key(user_id))
            .collect::<std::result::Result<_, _>>()?;
        if entries.is_empty() {
            return Ok(0);
        }
        let gate = self.shared();
        (&self.keys, &self.user_keys).transaction(|(keys, user_keys)| {
            for (index, hash) in &entries {
                keys.remove(hash)?;
                user_keys.remove(index)?;
            }
            Ok::<_, ConflictableTransactionError<Error>>(())
        })?;
        drop(gate);
        self.flush().await?;
        Ok(entries.len())
    }

    /// Records last-use times (off the request path; not acknowledged to
    /// anyone, so sled's periodic flush is enough). Keys deleted meanwhile
    /// stay deleted.
    pub fn touch_keys(&self, uses: &[([u8; 32], u64)]) -> Result<()> {
        let _gate = self.shared();
        for (hash, at) in uses {
            let _ = self.keys.fetch_and_update(hash, |old| {
                let mut key = decode_key(old?).ok()?;
                key.last_used_at = Some(key.last_used_at.map_or(*at, |t| t.max(*at)));
                Some(encode_key(&key))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cutoff, NewUser, TempStore};
    use super::*;

    async fn owner(t: &TempStore) -> UserId {
        let new = NewUser {
            username: "alice",
            email: None,
            password_hash: "$scrypt$x".into(),
            groups: vec![],
            created_at: 1,
        };
        t.store.create_user(new).await.unwrap().id
    }

    fn key(t: &TempStore, user_id: UserId) -> ApiKey {
        ApiKey {
            id: KeyId::new(t.store.new_id().unwrap()),
            user_id,
            username: "alice".into(),
            name: "k".into(),
            created_at: 1,
            expires_at: None,
            last_used_at: None,
            factors: crate::model::Factors::Password,
        }
    }

    #[tokio::test]
    async fn a_key_is_made_only_for_the_current_epoch_of_a_live_owner() {
        let t = TempStore::new();
        let s = &t.store;
        let alice = owner(&t).await;
        let k = key(&t, alice);
        s.create_key(&k, &[1; 32], 0).await.unwrap();
        assert_eq!(s.key_by_hash(&[1; 32]).unwrap(), Some(k.clone()));
        // A new epoch: a proof of the old one makes nothing.
        s.set_cutoff(alice, cutoff(5, 77)).await.unwrap();
        let e = s
            .create_key(&key(&t, alice), &[2; 32], 0)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Kind::NotFound);
        s.create_key(&key(&t, alice), &[2; 32], 77).await.unwrap();
        // No owner, no key.
        let ghost = key(&t, UserId::new(999_999));
        assert!(s.create_key(&ghost, &[3; 32], 0).await.is_err());
        assert_eq!(s.user_keys(alice).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn keys_are_deleted_only_by_their_owner() {
        let t = TempStore::new();
        let s = &t.store;
        let alice = owner(&t).await;
        let k = key(&t, alice);
        s.create_key(&k, &[1; 32], 0).await.unwrap();
        assert!(!s.delete_key(UserId::new(12345), k.id).await.unwrap());
        assert!(s.key_by_hash(&[1; 32]).unwrap().is_some());
        s.touch_keys(&[([1; 32], 40)]).unwrap();
        assert_eq!(
            s.key_by_hash(&[1; 32]).unwrap().unwrap().last_used_at,
            Some(40)
        );
        assert!(s.delete_key(alice, k.id).await.unwrap());
        assert!(s.key_by_hash(&[1; 32]).unwrap().is_none());
        s.create_key(&key(&t, alice), &[2; 32], 0).await.unwrap();
        s.create_key(&key(&t, alice), &[3; 32], 0).await.unwrap();
        assert_eq!(s.delete_user_keys(alice).await.unwrap(), 2);
        assert!(s.user_keys(alice).unwrap().is_empty());
    }
}
