//! Revoked token ids, mirrored in memory so verifying a token reads no disk.
//!
//! The store stays the truth: a revocation is written and flushed there
//! first, then added here. At start-up the set is filled from the store in
//! the background (a million revocations take a moment); until it is
//! complete, lookups go to the store, so nothing revoked is ever missed.
//!
//! It never writes: revocations are written by the service through the store
//! first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use super::store::Store;
use crate::error::Result;
use crate::token::JTI_LEN;

/// The in-memory mirror of the store's `revoked` tree.
pub struct Revoked {
    /// jti → expiry. A std lock: held for a hash lookup or insert only.
    ids: RwLock<HashMap<[u8; JTI_LEN], u64>>,
    /// Set once every stored revocation has been loaded.
    complete: AtomicBool,
    /// Bumped after every revocation is added: a token found not revoked
    /// at one generation is still not revoked while it holds.
    generation: AtomicU64,
}

impl Default for Revoked {
    fn default() -> Self {
        Revoked {
            ids: RwLock::new(HashMap::new()),
            complete: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }
}

impl Revoked {
    /// Loads every stored revocation (run on a blocking thread at start).
    pub fn load(&self, store: &Store) -> Result<usize> {
        let stored = store.revocations()?;
        let n = stored.len();
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        ids.reserve(n);
        for (jti, exp) in stored {
            ids.insert(jti, exp);
        }
        drop(ids);
        self.complete.store(true, Ordering::Release);
        Ok(n)
    }

    /// Whether `jti` is revoked: from memory once loaded, else the store.
    pub fn contains(&self, jti: &[u8; JTI_LEN], store: &Store) -> Result<bool> {
        if self
            .ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
        {
            return Ok(true);
        }
        if self.complete.load(Ordering::Acquire) {
            Ok(false)
        } else {
            store.is_revoked(jti)
        }
    }

    /// Records a revocation already made durable in the store.
    pub fn insert(&self, jti: [u8; JTI_LEN], exp: u64) {
        self.ids
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, exp);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The generation, once every stored revocation is in memory (before,
    /// lookups go to the store and nothing may be remembered): read it
    /// before a lookup, and the lookup's "not revoked" holds while it is
    /// unchanged.
    pub fn generation(&self) -> Option<u64> {
        self.complete
            .load(Ordering::Acquire)
            .then(|| self.generation.load(Ordering::Acquire))
    }

    /// Forgets revocations of tokens expired at `now` (as the store prunes).
    pub fn prune(&self, now: u64) {
        self.ids
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, exp| *exp > now);
    }

    /// Revocations held in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_store_until_loaded() {
        let t = super::super::store::TempStore::new();
        let store = &t.store;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.revoke(&[1u8; JTI_LEN], 100)).unwrap();
        let revoked = Revoked::default();
        // Not loaded yet: the store answers.
        assert!(revoked.contains(&[1u8; JTI_LEN], store).unwrap());
        assert!(!revoked.contains(&[2u8; JTI_LEN], store).unwrap());
        assert_eq!(revoked.load(store).unwrap(), 1);
        assert_eq!(revoked.len(), 1);
        // Loaded: memory answers, and sees new revocations.
        revoked.insert([3u8; JTI_LEN], 200);
        assert!(revoked.contains(&[1u8; JTI_LEN], store).unwrap());
        assert!(revoked.contains(&[3u8; JTI_LEN], store).unwrap());
        assert!(!revoked.contains(&[2u8; JTI_LEN], store).unwrap());
        revoked.prune(150);
        assert_eq!(revoked.len(), 1);
    }
}
