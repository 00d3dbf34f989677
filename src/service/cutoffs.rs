//! Credential epochs. Each logout everywhere, password change and account
//! deletion sets a new cutoff for the user, starting a new epoch (the
//! cutoff's unique `seq`); a token carries the epoch its password was
//! proven in, and only the current epoch's tokens pass. The cutoffs are
//! mirrored in memory, so verifying a token reads no store.
//!
//! Owns the in-memory map; writes go through the store first, and the map
//! follows the committed change even if the flush after it fails.

use std::collections::HashMap;
use std::sync::RwLock;

use super::store::Store;
use super::Service;
use crate::audit;
use crate::error::Result;
use crate::model::{Cutoff, UserId};

/// Cutoffs by user, mirrored from the store.
pub(super) struct Cutoffs {
    /// A std lock: held for a map lookup, never across an await.
    map: RwLock<HashMap<UserId, Cutoff>>,
    /// The longest token lifetime ever configured; cutoffs older than this
    /// (plus a margin) can refuse nothing that has not already expired.
    pub(super) max_ttl: u64,
    /// Bumped after every change to the map: an epoch found current at one
    /// generation is still current while it holds.
    generation: std::sync::atomic::AtomicU64,
}

impl Cutoffs {
    /// Loads the stored cutoffs and raises the stored longest lifetime to
    /// `ttl` (the longest this configuration issues).
    pub(super) fn load(store: &Store, ttl: u64) -> Result<Cutoffs> {
        Ok(Cutoffs {
            max_ttl: store.raise_max_ttl(ttl)?,
            map: RwLock::new(store.cutoffs()?.into_iter().collect()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(super) fn get(&self, user: UserId) -> Option<Cutoff> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
            .copied()
    }

    pub(super) fn remember(&self, user: UserId, cutoff: Cutoff) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, cutoff);
        self.bump();
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The generation: read it before a check of an epoch, and the check
    /// holds while it is unchanged.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets the cutoffs a prune removed, unless a newer one replaced
    /// them meanwhile (a cutoff set while the store was walked stays).
    pub(super) fn forget_pruned(&self, pruned: &[(UserId, u64)]) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (user, seq) in pruned {
            if map.get(user).is_some_and(|c| c.seq == *seq) {
                map.remove(user);
            }
        }
        drop(map);
        self.bump();
    }
}

impl Service {
    /// The user's cutoff, if any.
    pub fn cutoff(&self, user: UserId) -> Option<Cutoff> {
        self.cutoffs.get(user)
    }

    /// The user's credential epoch: the sequence number of the cutoff in
    /// force (0 before any).
    pub fn epoch(&self, user: UserId) -> u64 {
        self.cutoffs.get(user).map_or(0, |c| c.seq)
    }

    /// Whether a token of `epoch` is still good for `user`: only the
    /// current epoch's are (none of a deleted account). A pruned cutoff
    /// (older than every token it could refuse) leaves no epoch to compare.
    pub(super) fn token_allowed(&self, user: UserId, epoch: u64) -> bool {
        Cutoff::admits(self.cutoffs.get(user).as_ref(), epoch)
    }

    /// Whether the account was deleted (its API keys are refused).
    pub(super) fn is_deleted(&self, user: UserId) -> bool {
        self.cutoffs.get(user).is_some_and(|c| c.deleted)
    }

    /// A cutoff at the current second, starting a new epoch.
    pub(super) fn new_cutoff(&self, deleted: bool) -> Result<Cutoff> {
        Ok(Cutoff {
            at: self.clock.now(),
            deleted,
            seq: self.store.new_id()?,
        })
    }

    /// Refuses every token and session issued to `user` before now.
    pub async fn logout_all(&self, user: UserId) -> Result<()> {
        let cutoff = self.new_cutoff(false)?;
        let stored = self.store.set_cutoff(user, cutoff).await;
        self.cutoffs.remember(user, cutoff);
        stored?;
        self.forget_sessions(user).await?;
        self.metrics.revocation();
        audit::user_event("logout_all", user, "logged out everywhere");
        Ok(())
    }
}
