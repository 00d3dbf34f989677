//! Bulk loading for the benchmark seeder (`--features bench` only): users
//! and revocations in batches, without transactions or per-write flushes.
//! Not part of the production API.

use super::records::{encode_user, index_key, user_key};
use super::users::USER_COUNT;
use super::Store;
use crate::error::Result;
use crate::model::{Session, User};
use crate::token::JTI_LEN;

impl Store {
    /// Loads users in bulk, one batch per tree. Ids must come from
    /// [`Store::new_id`] and names must be new.
    pub fn import_users(&self, users: &[User]) -> Result<()> {
        let mut records = sled::Batch::default();
        let (mut names, mut emails) = (Vec::new(), Vec::new());
        for user in users {
            let id = user_key(user.id);
            records.insert(&id, encode_user(user));
            names.push((index_key(&user.username), id));
            if let Some(email) = &user.email {
                emails.push((index_key(email), id));
            }
        }
        self.users.apply_batch(records)?;
        self.usernames.add_bulk(names)?;
        self.emails.add_bulk(emails)?;
        let count = self.user_count() as u64 + users.len() as u64;
        self.meta.insert(USER_COUNT, &count.to_be_bytes())?;
        Ok(())
    }

    /// Loads revocations in bulk (all at once: one write per bucket).
    pub fn import_revocations(&self, revocations: Vec<([u8; JTI_LEN], u64)>) -> Result<()> {
        self.add_revocations_bulk(revocations)
    }

    /// Loads sessions in bulk: one write per user.
    pub fn import_sessions(&self, sessions: Vec<Session>) -> Result<()> {
        self.add_sessions_bulk(sessions)
    }

    /// Waits until everything is on disk, from a synchronous context.
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
