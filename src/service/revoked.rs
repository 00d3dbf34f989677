//! Revoked token ids, mirrored in memory so verifying a token reads no disk.
//!
//! The store stays the truth: a revocation is written and flushed there
//! first, then added here. At start-up the set is filled from the store in
//! the background (a million revocations take a moment); until it is
//! complete, lookups go to the store, so nothing revoked is ever missed.
//!
//! Compact: memory holds the first four bytes of each `jti` and its
//! expiry in seconds (u32, until 2106), 8 bytes a revocation where the
//! whole `jti` and a u64 expiry took 24 (a million: 18 MiB of table, was
//! 34 with eight-byte prefixes). A token whose prefix is held is looked up
//! in the store, which holds the whole `jti`: a prefix shared by chance
//! refuses nothing it should not, and costs one store read (at a million
//! revocations, for one token in 4,300). The map keeps std's keyed hash:
//! revocations can come from a backup file, whose ids need not be random.
//!
//! It never writes: revocations are written by the service through the store
//! first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use super::store::Store;
use crate::error::Result;
use crate::token::JTI_LEN;

/// The in-memory mirror of the store's revocations.
pub struct Revoked {
    /// First four bytes of a jti → the latest expiry of the revocations
    /// with them. A std lock: held for a hash lookup or insert only.
    ids: RwLock<HashMap<u32, u32>>,
    /// Set once every stored revocation has been loaded, while `ids` is
    /// held for writing, and read while it is held: a lookup sees the
    /// full map whenever it sees this set.
    complete: AtomicBool,
    /// Bumped after every revocation is added: a token found not revoked
    /// at one generation is still not revoked while it holds.
    generation: AtomicU64,
}

impl Default for Revoked {
    fn default() -> Self {
        Revoked {
            ids: RwLock::new(HashMap::default()),
            complete: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }
}

impl Revoked {
    /// Loads every stored revocation (run on a blocking thread at start).
    pub fn load(&self, store: &Store) -> Result<usize> {
        // Filled aside, then swapped in: lookups meanwhile go to the store.
        let mut loaded = HashMap::default();
        let n = store.each_revocation(|(jti, exp)| {
            hold(&mut loaded, prefix(&jti), exp);
            Ok(())
        })?;
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        // Revocations made during the load are in both: keep them.
        for (&held, &exp) in ids.iter() {
            hold(&mut loaded, held, u64::from(exp));
        }
        *ids = loaded;
        self.complete.store(true, Ordering::Release);
        drop(ids);
        Ok(n)
    }

    /// Whether `jti` is revoked: from memory once loaded, else the store.
    pub fn contains(&self, jti: &[u8; JTI_LEN], store: &Store) -> Result<bool> {
        let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
        let (held, complete) = (
            ids.contains_key(&prefix(jti)),
            self.complete.load(Ordering::Acquire),
        );
        drop(ids);
        if !held && complete {
            return Ok(false);
        }
        store.is_revoked(jti)
    }

    /// Records a revocation already made durable in the store.
    pub fn insert(&self, jti: [u8; JTI_LEN], exp: u64) {
        hold(
            &mut self.ids.write().unwrap_or_else(|e| e.into_inner()),
            prefix(&jti),
            exp,
        );
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
            .retain(|_, exp| u64::from(*exp) > now);
    }

    /// Revocations held in memory.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The key memory holds for `jti`.
fn prefix(jti: &[u8; JTI_LEN]) -> u32 {
    u32::from_ne_bytes([jti[0], jti[1], jti[2], jti[3]])
}

/// Holds the prefix `held` until `exp` (or later, if it already is); an
/// expiry past 2106 is held until then.
fn hold(ids: &mut HashMap<u32, u32>, held: u32, exp: u64) {
    let exp = u32::try_from(exp).unwrap_or(u32::MAX);
    let at = ids.entry(held).or_insert(exp);
    *at = (*at).max(exp);
}

#[cfg(test)]
mod tests {
    use super::super::store::TempStore;
    use super::*;

    /// Revokes `jti` in the store, as the service does first.
    fn revoke(store: &Store, jti: &[u8; JTI_LEN], exp: u64) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(store.revoke(jti, exp))
            .unwrap();
    }

    #[test]
    fn falls_back_to_the_store_until_loaded() {
        let t = TempStore::new();
        let store = &t.store;
        revoke(store, &[1u8; JTI_LEN], 100);
        let revoked = Revoked::default();
        // Not loaded yet: the store answers.
        assert!(revoked.contains(&[1u8; JTI_LEN], store).unwrap());
        assert!(!revoked.contains(&[2u8; JTI_LEN], store).unwrap());
        assert_eq!(revoked.load(store).unwrap(), 1);
        assert_eq!(revoked.len(), 1);
        // Loaded: memory answers, and sees new revocations (the store's
        // first, as always).
        revoke(store, &[3u8; JTI_LEN], 200);
        revoked.insert([3u8; JTI_LEN], 200);
        assert!(revoked.contains(&[1u8; JTI_LEN], store).unwrap());
        assert!(revoked.contains(&[3u8; JTI_LEN], store).unwrap());
        assert!(!revoked.contains(&[2u8; JTI_LEN], store).unwrap());
        revoked.prune(150);
        assert_eq!(revoked.len(), 1);
    }

    #[test]
    fn a_shared_prefix_refuses_only_the_revoked_token() {
        let t = TempStore::new();
        let store = &t.store;
        let revoked = Revoked::default();
        revoked.load(store).unwrap();
        let gone = [5u8; JTI_LEN];
        let mut twin = gone;
        twin[4] = 6;
        revoke(store, &gone, 100);
        revoked.insert(gone, 100);
        assert_eq!(prefix(&gone), prefix(&twin));
        assert!(revoked.contains(&gone, store).unwrap());
        assert!(!revoked.contains(&twin, store).unwrap());
    }

    #[test]
    fn a_lookup_racing_the_load_never_misses_a_revocation() {
        let t = TempStore::new();
        let store = &t.store;
        let gone = [9u8; JTI_LEN];
        revoke(store, &gone, 100);
        let misses = AtomicU64::new(0);
        for _ in 0..1_500 {
            let revoked = Revoked::default();
            let go = std::sync::Barrier::new(4);
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    scope.spawn(|| {
                        go.wait();
                        loop {
                            let loaded = revoked.generation().is_some();
                            if !revoked.contains(&gone, store).unwrap() {
                                misses.fetch_add(1, Ordering::Relaxed);
                            }
                            if loaded {
                                break;
                            }
                        }
                    });
                }
                go.wait();
                revoked.load(store).unwrap();
            });
        }
        assert_eq!(
            misses.into_inner(),
            0,
            "a revoked token passed while revocations loaded"
        );
    }

    #[test]
    fn revocations_made_during_the_load_are_kept() {
        let t = TempStore::new();
        let store = &t.store;
        revoke(store, &[1u8; JTI_LEN], 100);
        revoke(store, &[2u8; JTI_LEN], 100);
        let revoked = Revoked::default();
        // Made while the load runs: in the store and in memory already.
        revoked.insert([2u8; JTI_LEN], 300);
        assert_eq!(revoked.load(store).unwrap(), 2);
        revoked.prune(200);
        assert!(revoked.contains(&[2u8; JTI_LEN], store).unwrap());
        assert_eq!(revoked.len(), 1);
    }
}
