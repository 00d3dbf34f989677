//! Cutoffs (`cutoffs`: user id → [`Cutoff`]): the start of each user's
//! current credential epoch. A password change and a deletion write theirs
//! in their own transactions (`users.rs`); logout everywhere here.
//!
//! It never caches; the service mirrors cutoffs in memory.

use super::records::{be_u64, decode_cutoff, encode_cutoff, user_key};
use super::Store;
use crate::error::Result;
use crate::model::{Cutoff, UserId};

impl Store {
    /// Sets a user's cutoff (logout everywhere), durably.
    pub async fn set_cutoff(&self, user_id: UserId, cutoff: Cutoff) -> Result<()> {
        {
            let _gate = self.shared();
            self.cutoffs
                .insert(user_key(user_id), encode_cutoff(cutoff))?;
        }
        self.flush().await
    }

    /// Every cutoff, to load into memory at start.
    pub fn cutoffs(&self) -> Result<Vec<(UserId, Cutoff)>> {
        self.cutoffs
            .iter()
            .map(|entry| {
                let (id, bytes) = entry?;
                Ok((
                    UserId::new(be_u64(&id, "a cutoff key")?),
                    decode_cutoff(&bytes)?,
                ))
            })
            .collect()
    }
}
