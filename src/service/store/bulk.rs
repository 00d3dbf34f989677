//! Bulk loading for the benchmark seeder (`--features bench` only): users,
//! revocations and sessions through the restore's bulk writers, without
//! transactions or per-write flushes.
//! Not part of the production API.

use super::records::encode_user;
use super::users::USER_COUNT;
use super::Store;
use crate::error::Result;
use crate::model::{Session, User};
use crate::token::JTI_LEN;

impl Store {
    /// Loads user records in bulk, each bucket written once. Ids must come from
    /// [`Store::new_id`] and names must be new; [`Store::index_users`]
    /// writes their names and emails once all are loaded (each index
    /// bucket written once, not once a batch).
    pub fn import_users(&self, users: &[User]) -> Result<()> {
        self.users
            .add_bulk(users.iter().map(|u| (u.id.get(), encode_user(u))))?;
        let count = self.user_count() as u64 + users.len() as u64;
        self.meta.insert(USER_COUNT, &count.to_be_bytes())?;
        Ok(())
    }

    /// Writes the unique indexes of every loaded user.
    pub fn index_users(&self) -> Result<()> {
        self.rebuild_indexes()
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
