//! A per-thread memory of tokens whose signature was already checked, so
//! a client presenting the same token on every request pays for the MAC
//! and the claims decoding once, not each time.
//!
//! The signature check and the decoding are skipped; expiry is checked
//! every time. Revocation and the user's cutoff are checked again
//! whenever either changed since this thread last found them good (each
//! has a generation, bumped on every change; an entry keeps the pair it
//! was found good at), so a revocation is seen by the very next request.
//! An entry is used only for the exact token text it was made
//! from (looked up by its signature, the last 43 characters, then compared whole), and
//! only by the [`super::Service`] that made it (tests run several in
//! one process). Per thread, so lookups take no lock.
//!
//! It never decides validity (expiry, revocation, epoch): the service
//! does, and says when to remember that it did ([`VerifiedCache::mark`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::token::Verified;

/// Most entries per thread; beyond it the thread's memory starts over.
const MAX_ENTRIES: usize = 4096;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// The revocation and cutoff generations a token was found good at.
pub type Stamp = (u64, u64);

/// One token this thread verified.
struct Entry {
    /// The whole token.
    text: Box<str>,
    /// What it says.
    verified: Verified,
    /// When it was last found neither revoked nor of an earlier epoch.
    good_at: Option<Stamp>,
}

/// Signature (a token's last 43 characters) → entry.
type Entries = HashMap<Box<str>, Entry, SignatureHash>;

thread_local! {
    /// The owner whose entries these are, and the entries.
    static ENTRIES: RefCell<(u64, Entries)> =
        const { RefCell::new((0, HashMap::with_hasher(SignatureHash))) };
}

/// Hashes a key by its first eight bytes. The keys are MAC signatures
/// (base64url of HMAC-SHA256 output), inserted only once verified: their
/// first eight characters are already 48 random bits no one can choose,
/// so SipHash's defence against chosen keys buys nothing here. A lookup
/// of a chosen signature only probes among the verified ones.
#[derive(Clone, Copy, Default)]
struct SignatureHash;

impl std::hash::BuildHasher for SignatureHash {
    type Hasher = SignatureHasher;

    fn build_hasher(&self) -> SignatureHasher {
        SignatureHasher(0)
    }
}

struct SignatureHasher(u64);

impl std::hash::Hasher for SignatureHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(first);
    }

    fn write_u8(&mut self, byte: u8) {
        self.0 = self.0.rotate_left(5) ^ u64::from(byte);
    }

    fn finish(&self) -> u64 {
        // Fibonacci hashing: the table reads the high bits too.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
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

/// The key of `token`'s entry: its last 43 characters, which in a token
/// that verified are its signature (HMAC-SHA256 in base64url), found
/// without a search for the last `.` (its cost showed on every request).
/// Any other text gets some key too: entries are compared whole.
fn signature(token: &str) -> &str {
    const SIGNATURE_LEN: usize = 43;
    token
        .len()
        .checked_sub(SIGNATURE_LEN)
        .and_then(|at| token.get(at..))
        .unwrap_or(token)
}

impl VerifiedCache {
    /// What `token` says, if this thread verified exactly it before and it
    /// has not expired at `now`, with the generations it was last found
    /// good at.
    pub fn get(&self, token: &str, now: u64) -> Option<(Verified, Option<Stamp>)> {
        ENTRIES.with(|entries| {
            let entries = entries.borrow();
            if entries.0 != self.owner {
                return None;
            }
            let entry = entries.1.get(signature(token))?;
            (&*entry.text == token && entry.verified.exp > now)
                .then(|| (entry.verified.clone(), entry.good_at))
        })
    }

    /// Notes that `token` (put before) was found good at `stamp`.
    pub fn mark(&self, token: &str, stamp: Stamp) {
        ENTRIES.with(|entries| {
            let mut entries = entries.borrow_mut();
            if entries.0 != self.owner {
                return;
            }
            if let Some(entry) = entries.1.get_mut(signature(token)) {
                if &*entry.text == token {
                    entry.good_at = Some(stamp);
                }
            }
        });
    }

    /// Remembers a token whose signature and claims were just verified.
    pub fn put(&self, token: &str, verified: &Verified) {
        ENTRIES.with(|entries| {
            let mut entries = entries.borrow_mut();
            if entries.0 != self.owner || entries.1.len() >= MAX_ENTRIES {
                entries.0 = self.owner;
                entries.1.clear();
            }
            let entry = Entry {
                text: token.into(),
                verified: verified.clone(),
                good_at: None,
            };
            entries.1.insert(signature(token).into(), entry);
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
            factors: crate::model::Factors::Password,
            epoch: 0,
            jti: [1; 16],
        }
    }

    #[test]
    fn exact_token_same_owner_unexpired_only() {
        let a = VerifiedCache::default();
        let b = VerifiedCache::default();
        // Two texts with one signature, of a real one's length: they share
        // an entry's key, and only the one put is found.
        let sig = "S".repeat(43);
        let (token, other) = (format!("h.p.{sig}"), format!("h.other.{sig}"));
        let (token, other) = (token.as_str(), other.as_str());
        assert_eq!(signature(token), signature(other));
        // Any text has a key, and no text panics (a cut inside a character).
        assert_eq!(signature("h.p.short"), "h.p.short");
        let wide = format!("x{}", "\u{e9}".repeat(30));
        assert_eq!(signature(&wide), wide);
        assert!(a.get(token, 0).is_none());
        a.put(token, &verified(100));
        assert_eq!(a.get(token, 99), Some((verified(100), None)));
        a.mark(token, (3, 4));
        assert_eq!(a.get(token, 99), Some((verified(100), Some((3, 4)))));
        a.mark(other, (5, 6));
        assert_eq!(
            a.get(token, 99).unwrap().1,
            Some((3, 4)),
            "another token marks nothing"
        );
        assert!(a.get(token, 100).is_none(), "expired");
        assert!(a.get(other, 0).is_none(), "same signature, other text");
        assert!(b.get(token, 0).is_none(), "another owner");
        // Another thread has its own memory.
        std::thread::scope(|s| {
            s.spawn(|| assert!(a.get(token, 0).is_none()));
        });
    }
}
