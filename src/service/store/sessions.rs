//! Login-page sessions (`sessions`: session `jti` → record;
//! `user_sessions`: user id ++ `jti` → nothing, so a user's sessions are a
//! prefix).
//!
//! It never decides whether a session is live; the service does.

use sled::transaction::Transactional as _;

use super::records::{decode_session, encode_session, user_key, user_session_index};
use super::Store;
use crate::error::Result;
use crate::model::{Session, SessionId, UserId};

impl Store {
    /// Stores a new session, durably.
    pub async fn put_session(&self, session: &Session) -> Result<()> {
        let record = encode_session(session);
        let index = user_session_index(session.user_id, session.id);
        let gate = self.shared();
        (&self.sessions, &self.user_sessions).transaction(|(sessions, index_tree)| {
            sessions.insert(&session.id.0, record.as_slice())?;
            index_tree.insert(&index, &[])?;
            Ok(())
        })?;
        drop(gate);
        self.flush().await
    }

    /// The session `id`, if stored. One sled read.
    pub fn session(&self, id: SessionId) -> Result<Option<Session>> {
        self.sessions
            .get(id.0)?
            .map(|bytes| decode_session(&id.0, &bytes))
            .transpose()
    }

    /// A user's stored sessions, oldest id first.
    pub fn user_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let mut out = Vec::new();
        for entry in self.user_sessions.scan_prefix(user_key(user)) {
            let (key, _) = entry?;
            let id = &key[8..];
            if let Some(bytes) = self.sessions.get(id)? {
                out.push(decode_session(id, &bytes)?);
            }
        }
        Ok(out)
    }

    /// Deletes sessions of `user`, durably; returns how many were there.
    pub async fn delete_sessions(&self, user: UserId, ids: &[SessionId]) -> Result<usize> {
        let gate = self.shared();
        let mut deleted = 0;
        for id in ids {
            let index = user_session_index(user, *id);
            let removed =
                (&self.sessions, &self.user_sessions).transaction(|(sessions, index_tree)| {
                    let Some(_) = index_tree.remove(&index)? else {
                        return Ok(false);
                    };
                    sessions.remove(&id.0)?;
                    Ok(true)
                })?;
            deleted += usize::from(removed);
        }
        drop(gate);
        if deleted > 0 {
            self.flush().await?;
        }
        Ok(deleted)
    }

    /// Writes last uses (not durably: a lost one costs a minute of "last
    /// seen").
    pub fn touch_sessions(&self, uses: &[(SessionId, u64)]) -> Result<()> {
        let _gate = self.shared();
        for (id, at) in uses {
            let _ = self.sessions.fetch_and_update(id.0, |old| {
                let mut session = decode_session(&id.0, old?).ok()?;
                session.last_seen_at = session.last_seen_at.max(*at);
                Some(encode_session(&session))
            })?;
        }
        Ok(())
    }

    /// Sessions whose token expired by `now`, removed.
    pub(super) fn prune_sessions(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for entry in self.sessions.iter() {
            let (id, bytes) = entry?;
            let session = decode_session(&id, &bytes)?;
            if session.expires_at <= now {
                let index = user_session_index(session.user_id, session.id);
                self.user_sessions.remove(index)?;
                let _ = self
                    .sessions
                    .compare_and_swap(&id, Some(bytes), None::<&[u8]>)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
