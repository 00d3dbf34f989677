//! Second factors (`totp`: user id → record). The secret inside is sealed
//! by the service before it gets here: the store never sees it in the
//! clear.
//!
//! It never checks a code; the service does.

use super::records::{decode_totp, encode_totp, user_key};
use super::Store;
use crate::error::Result;
use crate::model::{Totp, UserId};

impl Store {
    /// A user's second factor (active or being set up), if any.
    pub fn totp(&self, user: UserId) -> Result<Option<Totp>> {
        self.totp
            .get(user_key(user))?
            .map(|bytes| decode_totp(user, &bytes))
            .transpose()
    }

    /// Stores a user's second factor, durably.
    pub async fn put_totp(&self, totp: &Totp) -> Result<()> {
        let gate = self.shared();
        self.totp
            .insert(user_key(totp.user_id), encode_totp(totp))?;
        drop(gate);
        self.flush().await
    }

    /// Replaces `old` by `new` only if the stored record is still `old`
    /// (a code or a recovery code is used once even when two requests
    /// race), durably. Whether it was replaced.
    pub async fn swap_totp(&self, old: &Totp, new: &Totp) -> Result<bool> {
        let gate = self.shared();
        let swapped = self
            .totp
            .compare_and_swap(
                user_key(old.user_id),
                Some(encode_totp(old)),
                Some(encode_totp(new)),
            )?
            .is_ok();
        drop(gate);
        if swapped {
            self.flush().await?;
        }
        Ok(swapped)
    }

    /// Every stored second factor (active or being set up).
    pub fn all_totp(&self) -> Result<Vec<Totp>> {
        self.totp
            .iter()
            .map(|entry| {
                let (key, bytes) = entry?;
                decode_totp(
                    UserId::new(super::records::be_u64(&key, "a user id")?),
                    &bytes,
                )
            })
            .collect()
    }

    /// Whether any second factor is stored.
    pub fn has_totp(&self) -> bool {
        !self.totp.is_empty()
    }

    /// Removes a user's second factor, durably; whether there was one.
    pub async fn delete_totp(&self, user: UserId) -> Result<bool> {
        let gate = self.shared();
        let removed = self.totp.remove(user_key(user))?.is_some();
        drop(gate);
        if removed {
            self.flush().await?;
        }
        Ok(removed)
    }
}
