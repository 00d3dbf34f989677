//! The forward-auth profile cache: what `Remote-*` says about a user, kept
//! in memory so an allowed forward-auth request reads no store.
//!
//! Every change to a user goes through the service, which drops the entry
//! ([`Profiles::forget`]); a generation number bumped on each drop keeps a
//! lookup that read the store before a change from caching the old value.
//!
//! It never writes the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::Service;
use crate::error::Result;
use crate::model::{Profile, UserId};

/// Most profiles kept in memory; beyond it the cache starts over.
const MAX_PROFILES: usize = 10_000;

/// Profiles by user.
#[derive(Default)]
pub(super) struct Profiles {
    /// A std lock: held for a map operation, never across an await.
    map: RwLock<HashMap<UserId, Arc<Profile>>>,
    /// Bumped (under the map's write lock) whenever an entry is dropped.
    generation: AtomicU64,
}

impl Profiles {
    /// Drops `user`'s entry (its record changed).
    pub(super) fn forget(&self, user: UserId) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(&user);
    }
}

impl Service {
    /// Bumped by every change to any user: a copy of a profile made at one
    /// value is current while this still reads the same.
    pub fn profile_generation(&self) -> u64 {
        self.profiles.generation.load(Ordering::Acquire)
    }

    /// The user's profile, from memory when it can; `None` for no user.
    pub fn profile(&self, user: UserId) -> Result<Option<Arc<Profile>>> {
        let cache = &self.profiles;
        if let Some(p) = cache
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user)
        {
            return Ok(Some(p.clone()));
        }
        let generation = cache.generation.load(Ordering::Acquire);
        let Some(record) = self.store.user(user)? else {
            return Ok(None);
        };
        let profile = Arc::new(Profile {
            username: Bytes::from(record.username),
            email: Bytes::from(record.email.unwrap_or_default()),
            groups_joined: Bytes::from(record.groups.join(",")),
            groups: record.groups,
        });
        let mut map = cache.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_PROFILES {
            map.clear();
        }
        // A change racing this read must win: cache only if none happened.
        if cache.generation.load(Ordering::Acquire) == generation && !self.is_deleted(user) {
            map.insert(user, profile.clone());
        }
        Ok(Some(profile))
    }
}
