//! Login-page sessions, one entry per user (`session_lists`: user id →
//! a version byte and that user's sessions, oldest first, each `jti` (16
//! bytes) ++ record length (u16 BE) ++ the versioned `Session` record).
//!
//! Why one entry per user: a sled 0.34 leaf holds at most 16 entries, and
//! an open database keeps bookkeeping for every leaf in memory. A record
//! per session plus an index entry per session (`sessions`,
//! `user_sessions`, schema 2) cost a million sessions two million sled
//! entries, about 90 MiB of memory before a single read (BENCHMARKS.md,
//! issue 15). A user's sessions are read together anyway (listed, ended
//! all at once); a session's token names its user, so one is found by
//! reading its user's entry. A user keeps at most
//! [`MAX_SESSIONS_PER_USER`] (the service ends the oldest at sign-in; a
//! move or a restore revokes those past it), so an entry stays small.
//!
//! Databases of schema 2 keep them in `sessions` and `user_sessions`:
//! [`Store::open`] moves them into lists and writes schema 3.
//!
//! It never decides whether a session is live; the service does.

use std::collections::{BTreeMap, HashSet};

use super::records::{decode_session, encode_session, put_with_u16_len, user_key, Fields};
use super::revocations::Revocation;
use super::Store;
use crate::error::{Error, Result};
use crate::model::{Session, SessionId, UserId};
use crate::token::JTI_LEN;

/// Most sessions a user keeps: a sign-in past it ends the oldest. Every
/// sign-in rewrites the user's list whole.
pub const MAX_SESSIONS_PER_USER: usize = 100;

/// Version byte of a user's list.
const LIST_V1: u8 = 1;

/// Schema 2's trees: a record per session, and an index per user.
const LEGACY_SESSIONS: &str = "sessions";
#[cfg(test)]
const LEGACY_INDEX: &str = "user_sessions";

/// The sessions of the list stored under `key` (a user id), or the list
/// is corrupt: every record decodes and names that user.
fn decode_list(key: &[u8], bytes: &[u8]) -> Result<Vec<Session>> {
    let corrupt = || Error::store("a user's session list is corrupt");
    let [LIST_V1, body @ ..] = bytes else {
        return Err(Error::store("a user's session list has an unknown version"));
    };
    if body.is_empty() {
        // Never written: a list without sessions is no entry.
        return Err(corrupt());
    }
    let mut fields = Fields::new(body);
    let mut out = Vec::new();
    while !fields.done() {
        let jti = fields.take(JTI_LEN).ok_or_else(corrupt)?;
        let record = fields.with_u16_len().ok_or_else(corrupt)?;
        let session = decode_session(jti, record)?;
        if user_key(session.user_id) != key {
            return Err(corrupt());
        }
        out.push(session);
    }
    Ok(out)
}

/// A user's list, as stored; `None` for no sessions (the entry goes).
fn encode_list(sessions: &[Session]) -> Result<Option<Vec<u8>>> {
    if sessions.is_empty() {
        return Ok(None);
    }
    let mut out = vec![LIST_V1];
    for s in sessions {
        out.extend_from_slice(&s.id.0);
        let record = encode_session(s);
        put_with_u16_len(&mut out, &record, "a session record is over 64 KiB")?;
    }
    Ok(Some(out))
}

/// `old` with `new` appended, a session already there kept as it was.
fn appended(mut old: Vec<Session>, new: impl IntoIterator<Item = Session>) -> Vec<Session> {
    let mut there: HashSet<SessionId> = old.iter().map(|s| s.id).collect();
    for s in new {
        if there.insert(s.id) {
            old.push(s);
        }
    }
    old
}

/// Keeps the newest [`MAX_SESSIONS_PER_USER`] of `list`, oldest first, and
/// returns the revocations of those it drops: a session's record goes
/// only with its token revoked (a cookie without a record is taken at its
/// word).
fn capped(list: &mut Vec<Session>) -> Vec<Revocation> {
    list.sort_by_key(|s| s.created_at);
    let over = list.len().saturating_sub(MAX_SESSIONS_PER_USER);
    list.drain(..over).map(|s| (s.id.0, s.expires_at)).collect()
}

impl Store {
    /// Changes `user`'s list with `change` (which says whether it changed
    /// anything), against concurrent writers of the same list. Returns
    /// what `change` said.
    fn change_sessions(
        &self,
        user: UserId,
        mut change: impl FnMut(&mut Vec<Session>) -> bool,
    ) -> Result<bool> {
        let key = user_key(user);
        loop {
            let old = self.session_lists.get(key)?;
            let mut sessions = match &old {
                Some(bytes) => decode_list(&key, bytes)?,
                None => Vec::new(),
            };
            if !change(&mut sessions) {
                return Ok(false);
            }
            let new = encode_list(&sessions)?;
            if self.session_lists.compare_and_swap(key, old, new)?.is_ok() {
                return Ok(true);
            }
        }
    }

    /// Stores a new session, durably.
    pub async fn put_session(&self, session: &Session) -> Result<()> {
        {
            let _gate = self.shared();
            self.change_sessions(session.user_id, |list| {
                *list = appended(std::mem::take(list), [session.clone()]);
                true
            })?;
        }
        self.flush().await
    }

    /// `user`'s session `id`, if stored. One sled read.
    pub fn session(&self, user: UserId, id: SessionId) -> Result<Option<Session>> {
        Ok(self.user_sessions(user)?.into_iter().find(|s| s.id == id))
    }

    /// A user's stored sessions, oldest first.
    pub fn user_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let key = user_key(user);
        match self.session_lists.get(key)? {
            Some(bytes) => decode_list(&key, &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Deletes sessions of `user`, durably; returns how many were there.
    pub async fn delete_sessions(&self, user: UserId, ids: &[SessionId]) -> Result<usize> {
        let mut deleted = 0;
        {
            let _gate = self.shared();
            self.change_sessions(user, |list| {
                let before = list.len();
                list.retain(|s| !ids.contains(&s.id));
                deleted = before - list.len();
                deleted > 0
            })?;
        }
        if deleted > 0 {
            self.flush().await?;
        }
        Ok(deleted)
    }

    /// Writes last uses, (owner, session, when) (not durably: a lost one
    /// costs a minute of "last seen"). One write per user.
    pub fn touch_sessions(&self, uses: &[(UserId, SessionId, u64)]) -> Result<()> {
        let _gate = self.shared();
        let mut by_user: BTreeMap<UserId, Vec<(SessionId, u64)>> = BTreeMap::new();
        for (user, id, at) in uses {
            by_user.entry(*user).or_default().push((*id, *at));
        }
        for (user, uses) in by_user {
            self.change_sessions(user, |list| {
                let mut changed = false;
                for (id, at) in &uses {
                    if let Some(s) = list.iter_mut().find(|s| s.id == *id) {
                        if *at > s.last_seen_at {
                            s.last_seen_at = *at;
                            changed = true;
                        }
                    }
                }
                changed
            })?;
        }
        Ok(())
    }

    /// Sessions whose token expired by `now`, removed. A list a writer
    /// changed meanwhile is left for the next prune.
    pub(super) fn prune_sessions(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for entry in self.session_lists.iter() {
            let (key, value) = entry?;
            let sessions = decode_list(&key, &value)?;
            let live: Vec<Session> = sessions
                .iter()
                .filter(|s| s.expires_at > now)
                .cloned()
                .collect();
            if live.len() == sessions.len() {
                continue;
            }
            if self
                .session_lists
                .compare_and_swap(&key, Some(value), encode_list(&live)?)?
                .is_ok()
            {
                removed += sessions.len() - live.len();
            }
        }
        Ok(removed)
    }

    /// Calls `each` with every stored session, stopping at its first
    /// error.
    pub(super) fn each_session(&self, mut each: impl FnMut(Session) -> Result<()>) -> Result<()> {
        for entry in self.session_lists.iter() {
            let (key, value) = entry?;
            for s in decode_list(&key, &value)? {
                each(s)?;
            }
        }
        Ok(())
    }

    /// Adds sessions in bulk (a restore, the seeder): see
    /// [`Store::add_lists`].
    pub(super) fn add_sessions_bulk(&self, sessions: Vec<Session>) -> Result<()> {
        let mut by_user: BTreeMap<UserId, Vec<Session>> = BTreeMap::new();
        for s in sessions {
            by_user.entry(s.user_id).or_default().push(s);
        }
        self.add_lists(by_user)
    }

    /// Adds each user's sessions to what that user has: one write per
    /// user, in key order, [`super::BATCH`] users a batch. Past
    /// [`MAX_SESSIONS_PER_USER`] a user's oldest are revoked, before any
    /// list is written. Not against concurrent writers: it runs before the
    /// store serves.
    fn add_lists(&self, mut by_user: BTreeMap<UserId, Vec<Session>>) -> Result<()> {
        let mut dropped = Vec::new();
        for (user, list) in by_user.iter_mut() {
            let stored = self.user_sessions(*user)?;
            if !stored.is_empty() {
                *list = appended(stored, std::mem::take(list));
            }
            dropped.extend(capped(list));
        }
        self.add_revocations_bulk(dropped)?;
        let writes = by_user
            .into_iter()
            .map(|(user, list)| Ok((user_key(user), encode_list(&list)?)));
        super::apply_in_batches(&self.session_lists, writes)
    }

    /// Copies the sessions a database of schema 2 holds one per entry
    /// (`sessions`) into lists; `Store::finish_moves` drops the old trees
    /// after. Read whole first (a million took 0.9 GB, once), so each list
    /// is written once; past [`MAX_SESSIONS_PER_USER`] (schema 2 kept any
    /// number) a user's oldest are revoked. Idempotent: a session already
    /// in its list stays once.
    pub(super) fn copy_legacy_sessions(&self) -> Result<()> {
        let legacy = self.db.open_tree(LEGACY_SESSIONS)?;
        let mut by_user: BTreeMap<UserId, Vec<Session>> = BTreeMap::new();
        for entry in legacy.iter() {
            let (id, value) = entry?;
            let session = decode_session(&id, &value)?;
            by_user.entry(session.user_id).or_default().push(session);
        }
        self.add_lists(by_user)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TempStore;
    use super::*;
    use crate::model::Factors;

    fn session(user: u64, id: u8, expires_at: u64) -> Session {
        Session {
            id: SessionId([id; JTI_LEN]),
            user_id: UserId::new(user),
            created_at: 1,
            last_seen_at: 1,
            expires_at,
            epoch: 0,
            address: None,
            user_agent: "Mozilla/5.0".into(),
            remember: false,
            domain: None,
            factors: Factors::Password,
        }
    }

    #[tokio::test]
    async fn a_users_sessions_are_one_entry_found_by_user_and_id() {
        let t = TempStore::new();
        let store = &t.store;
        for (user, id) in [(7, 1), (7, 2), (8, 3)] {
            store.put_session(&session(user, id, 100)).await.unwrap();
        }
        assert_eq!(store.session_lists.len(), 2);
        let ids = |user| -> Vec<u8> {
            store
                .user_sessions(UserId::new(user))
                .unwrap()
                .iter()
                .map(|s| s.id.0[0])
                .collect()
        };
        assert_eq!(ids(7), [1, 2], "oldest first");
        assert_eq!(ids(8), [3]);
        let id3 = SessionId([3; JTI_LEN]);
        assert!(store.session(UserId::new(8), id3).unwrap().is_some());
        assert!(
            store.session(UserId::new(7), id3).unwrap().is_none(),
            "found under its own user only"
        );
        store
            .touch_sessions(&[(UserId::new(7), SessionId([2; JTI_LEN]), 50)])
            .unwrap();
        let two = store
            .session(UserId::new(7), SessionId([2; JTI_LEN]))
            .unwrap();
        assert_eq!(two.unwrap().last_seen_at, 50);
        let deleted = store
            .delete_sessions(UserId::new(7), &[SessionId([1; JTI_LEN]), id3])
            .await
            .unwrap();
        assert_eq!(
            deleted, 1,
            "another user's session is not this one's to delete"
        );
        assert_eq!(ids(7), [2]);
        store.delete_sessions(UserId::new(8), &[id3]).await.unwrap();
        assert_eq!(store.session_lists.len(), 1, "an empty list is no entry");
    }

    #[tokio::test]
    async fn pruning_drops_expired_sessions_and_empty_lists() {
        let t = TempStore::new();
        let store = &t.store;
        for (user, id, exp) in [(7, 1, 10), (7, 2, 30), (8, 3, 10)] {
            store.put_session(&session(user, id, exp)).await.unwrap();
        }
        assert_eq!(store.prune_sessions(20).unwrap(), 2);
        assert_eq!(store.session_lists.len(), 1);
        let left: Vec<u8> = store
            .user_sessions(UserId::new(7))
            .unwrap()
            .iter()
            .map(|s| s.id.0[0])
            .collect();
        assert_eq!(left, [2]);
    }

    #[test]
    fn a_list_that_does_not_hold_together_is_corrupt() {
        let key = user_key(UserId::new(7));
        let good = encode_list(&[session(7, 1, 10)]).unwrap().unwrap();
        assert_eq!(decode_list(&key, &good).unwrap().len(), 1);
        let other = user_key(UserId::new(8));
        assert!(decode_list(&other, &good).is_err(), "another user's list");
        for cut in 1..good.len() {
            assert!(decode_list(&key, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut version = good.clone();
        version[0] = 9;
        assert!(decode_list(&key, &version).is_err());
        assert!(decode_list(&key, &[]).is_err());
    }

    #[tokio::test]
    async fn an_open_moves_sessions_of_schema_2_into_lists_once() {
        let dir = crate::fsutil::TempDir::new("legacy-sessions");
        let (a, b, c) = (session(7, 1, 10), session(7, 2, 10), session(8, 3, 10));
        {
            let store = Store::open(dir.path()).unwrap();
            let sessions = store.db.open_tree(LEGACY_SESSIONS).unwrap();
            let index_tree = store.db.open_tree(LEGACY_INDEX).unwrap();
            for s in [&a, &b, &c] {
                sessions.insert(s.id.0, encode_session(s)).unwrap();
                let mut index = user_key(s.user_id).to_vec();
                index.extend_from_slice(&s.id.0);
                index_tree.insert(index, &[]).unwrap();
            }
            // Half-way through an earlier move: one is in its list already.
            store.add_sessions_bulk(vec![a.clone()]).unwrap();
            super::super::mark_schema(&store, super::super::SCHEMA_V2);
        }
        let store = super::super::reopen(dir.path()).unwrap();
        let schema = store.meta.get("schema").unwrap().unwrap();
        assert_eq!(schema.as_ref(), super::super::SCHEMA_VERSION.to_be_bytes());
        assert_eq!(store.user_sessions(UserId::new(7)).unwrap(), [a, b]);
        assert_eq!(store.user_sessions(UserId::new(8)).unwrap(), [c]);
        let names = store.db.tree_names();
        assert!(!names
            .iter()
            .any(|n| n == LEGACY_SESSIONS.as_bytes() || n == LEGACY_INDEX.as_bytes()));
        // Nothing left to move: another open changes nothing.
        drop(store);
        let store = super::super::reopen(dir.path()).unwrap();
        assert_eq!(store.session_lists.len(), 2);
        assert_eq!(store.user_sessions(UserId::new(7)).unwrap().len(), 2);
    }
}
