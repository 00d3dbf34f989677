//! Pruning: dropping what can no longer refuse anything. Never revives a
//! token: a revocation goes only after its token's expiry, a cutoff only
//! after every token it could refuse has expired.

use super::records::{be_u64, decode_cutoff, decode_expiry, decode_key, user_key_index};
use super::Store;
use crate::error::Result;
use crate::model::UserId;

/// What a prune removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Entries removed, of every kind.
    pub removed: usize,
    /// The cutoffs removed (user, seq), so the caller forgets exactly those.
    pub cutoffs: Vec<(UserId, u64)>,
}

impl Store {
    /// Drops what can no longer matter at `now`: revocations (and legacy
    /// fresh records) of expired tokens, cutoffs older than every token they
    /// could refuse (`max_ttl`), ended bans, expired API keys and sessions.
    pub async fn prune(&self, now: u64, max_ttl: u64) -> Result<Pruned> {
        let gate = self.shared();
        let mut pruned = Pruned::default();
        pruned.removed += self.prune_revocations(now)?;
        pruned.removed += self.prune_expiries(now)?;
        self.prune_cutoffs(now, max_ttl, &mut pruned)?;
        pruned.removed += self.prune_keys(now)?;
        pruned.removed += self.prune_sessions(now)?;
        drop(gate);
        if pruned.removed > 0 {
            self.flush().await?;
        }
        Ok(pruned)
    }

    /// Fresh records and bans whose expiry has passed.
    fn prune_expiries(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for tree in [&self.fresh, &self.bans] {
            for entry in tree.iter() {
                let (key, value) = entry?;
                // A fresh record starts with the same 9 bytes as an expiry.
                if decode_expiry(value.get(..9).unwrap_or(&value))? <= now {
                    // Only if unchanged meanwhile (a ban may be renewed).
                    let _ = tree.compare_and_swap(key, Some(value), None::<&[u8]>)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Cutoffs older than every token they could refuse.
    fn prune_cutoffs(&self, now: u64, max_ttl: u64, pruned: &mut Pruned) -> Result<()> {
        for entry in self.cutoffs.iter() {
            let (id, value) = entry?;
            let cutoff = decode_cutoff(&value)?;
            // Every token of an earlier epoch has exp <= cutoff.at + max_ttl.
            if cutoff.at.saturating_add(max_ttl) < now {
                // Only if unchanged meanwhile.
                let swapped = self
                    .cutoffs
                    .compare_and_swap(&id, Some(value), None::<&[u8]>)?;
                if swapped.is_ok() {
                    let user = UserId::new(be_u64(&id, "a cutoff key")?);
                    pruned.cutoffs.push((user, cutoff.seq));
                }
                pruned.removed += 1;
            }
        }
        Ok(())
    }

    /// Expired API keys and their index entries.
    fn prune_keys(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for entry in self.keys.iter() {
            let (hash, value) = entry?;
            let key = decode_key(&value)?;
            if key.expired(now) {
                self.keys.remove(&hash)?;
                self.user_keys.remove(user_key_index(key.user_id, key.id))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cutoff, TempStore};
    use super::*;
    use crate::model::Ban;

    #[tokio::test]
    async fn pruning_keeps_whatever_can_still_refuse_something() {
        let t = TempStore::new();
        let s = &t.store;
        s.revoke(&[1; 16], 100).await.unwrap();
        s.set_cutoff(UserId::new(4), cutoff(50, 9)).await.unwrap();
        s.put_ban(Ban::User(UserId::new(4), 80)).await.unwrap();
        // At 99: the token lives (exp 100), the cutoff may refuse tokens
        // until 50 + max_ttl 60 = 110, the ban holds until 80.
        let p = s.prune(99, 60).await.unwrap();
        assert_eq!(p.removed, 1, "only the ended ban");
        assert!(s.is_revoked(&[1; 16]).unwrap());
        assert_eq!(s.cutoffs().unwrap().len(), 1);
        let p = s.prune(111, 60).await.unwrap();
        assert_eq!(p.removed, 2);
        assert_eq!(p.cutoffs, vec![(UserId::new(4), 9)]);
        assert!(!s.is_revoked(&[1; 16]).unwrap());
        assert!(s.cutoffs().unwrap().is_empty());
    }
}
