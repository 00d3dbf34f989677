//! A per-thread memory of tokens whose signature was already checked, so
//! a client presenting the same token on every request pays for the MAC
//! and the claims decoding once, not each time.
//!
//! Only the signature check and the decoding are skipped: expiry,
//! revocation and the user's cutoff are checked on every request as
//! before. An entry is used only for the exact token text it was made
//! from (looked up by the signature segment, then compared whole), and
//! only by the [`super::Service`] that made it (tests run several in
//! one process). Per thread, so lookups take no lock.
//!
//! It never decides validity (expiry, revocation, epoch): the service checks
//! those every time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::token::Verified;

/// Most entries per thread; beyond it the thread's memory starts over.
const MAX_ENTRIES: usize = 4096;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// Signature segment → (the whole token, what it says).
type Entries = HashMap<Box<str>, (Box<str>, Verified)>;

thread_local! {
    /// The owner whose entries these are, and the entries.
    static ENTRIES: RefCell<(u64, Entries)> = RefCell::new((0, HashMap::new()));
}

/// A handle naming one owner's entries.
pub struct VerifiedCache {
    owner: u64,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache {
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
        }
    }
}

fn signature(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(_, sig)| sig)
}

impl VerifiedCache {
    /// What `token` says, if this thread verified exactly it before and it
    /// has not expired at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Verified> {
        ENTRIES.with(|entries| {
            let entries = entries.borrow();
            if entries.0 != self.owner {
                return None;
            }
            let (text, verified) = entries.1.get(signature(token))?;
            (&**text == token && verified.exp > now).then(|| verified.clone())
        })
    }

    /// Remembers a token whose signature and claims were just verified.
    pub fn put(&self, token: &str, verified: &Verified) {
        ENTRIES.with(|entries| {
            let mut entries = entries.borrow_mut();
            if entries.0 != self.owner || entries.1.len() >= MAX_ENTRIES {
                entries.0 = self.owner;
                entries.1.clear();
            }
            entries
                .1
                .insert(signature(token).into(), (token.into(), verified.clone()));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64) -> Verified {
        Verified {
            user_id: crate::model::UserId::new(1),
            name: "alice".into(),
            audience: crate::token::Audience::Api,
            iat: 0,
            exp,
            auth_time: 0,
            epoch: 0,
            jti: [1; 16],
        }
    }

    #[test]
    fn exact_token_same_owner_unexpired_only() {
        let a = VerifiedCache::default();
        let b = VerifiedCache::default();
        assert!(a.get("h.p.sig", 0).is_none());
        a.put("h.p.sig", &verified(100));
        assert_eq!(a.get("h.p.sig", 99), Some(verified(100)));
        assert!(a.get("h.p.sig", 100).is_none(), "expired");
        assert!(
            a.get("h.other.sig", 0).is_none(),
            "same signature, other text"
        );
        assert!(b.get("h.p.sig", 0).is_none(), "another owner");
        // Another thread has its own memory.
        std::thread::scope(|s| {
            s.spawn(|| assert!(a.get("h.p.sig", 0).is_none()));
        });
    }
}
