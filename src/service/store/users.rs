//! Users and their unique indexes (`users`, `usernames`, `emails`, the
//! user count in `meta`). Every change to a record and its index entries
//! is one transaction; a taken name or email aborts it with a conflict.
//!
//! It never validates a name or hashes a password; the service does before it
//! calls.

use sled::transaction::{
    abort, ConflictableTransactionError, Transactional as _, TransactionalTree,
};

use super::by_id::ById;
use super::index::Index;
use super::records::{be_u64, decode_user, encode_cutoff, encode_user, index_key, user_key};
use super::Store;
use crate::error::{Error, Kind, Result};
use crate::model::{Cutoff, User, UserId};

/// A transaction body's result.
type Tx<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

/// `meta` key of the user count.
pub(super) const USER_COUNT: &str = "user_count";

/// A new account, before it has an id.
pub struct NewUser<'a> {
    /// Username, already validated.
    pub username: &'a str,
    /// Optional email, already validated.
    pub email: Option<&'a str>,
    /// scrypt PHC string.
    pub password_hash: String,
    /// Group names, already validated.
    pub groups: Vec<String>,
    /// Registration time.
    pub created_at: u64,
}

/// Adjusts the user count inside a transaction.
pub(super) fn add_to_count(meta: &TransactionalTree, delta: i64) -> Tx<()> {
    let current = meta
        .get(USER_COUNT)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes);
    meta.insert(
        USER_COUNT,
        &current.saturating_add_signed(delta).to_be_bytes(),
    )?;
    Ok(())
}

/// Points the unique index entry `key` (a name or an email) at the user
/// `id`, unless it is another user's: then the transaction aborts with
/// `taken()`. The one check every write of an index makes (`tx` is the
/// transaction's view of `index`'s tree).
fn claim(
    index: &Index,
    tx: &TransactionalTree,
    key: &[u8],
    id: [u8; 8],
    taken: impl FnOnce() -> Error,
) -> Tx<()> {
    if index.get_tx(tx, key)?.is_some_and(|owner| owner != id) {
        return abort(taken());
    }
    index.insert_tx(tx, key, id)
}

impl Store {
    /// Creates a user; a taken username or email is a conflict.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User> {
        let user = User {
            id: UserId::new(self.new_id()?),
            username: new.username.to_owned(),
            email: new.email.map(str::to_owned),
            password_hash: new.password_hash,
            groups: new.groups,
            created_at: new.created_at,
        };
        let record = encode_user(&user);
        let name_key = index_key(&user.username);
        let email_key = user.email.as_deref().map(index_key);
        let id = user_key(user.id);
        let gate = self.shared();
        let trees = (
            &self.users.tree,
            &self.usernames.tree,
            &self.emails.tree,
            &self.meta,
        );
        trees.transaction(|(users, names, emails, meta)| {
            // An id is never reused; a collision is a bug, not a user.
            if ById::get_tx(users, user.id.get())?.is_some() {
                return abort(Error::internal("a new user id is already taken"));
            }
            claim(&self.usernames, names, &name_key, id, || {
                Error::new(Kind::Conflict("username is taken"))
            })?;
            if let Some(key) = &email_key {
                claim(&self.emails, emails, key, id, || {
                    Error::new(Kind::Conflict("email is taken"))
                })?;
            }
            ById::set_tx(users, user.id.get(), Some(&record))?;
            add_to_count(meta, 1)
        })?;
        drop(gate);
        self.flush().await?;
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        self.users
            .get(id.get())?
            .map(|bytes| decode_user(id, &bytes))
            .transpose()
    }

    /// The user with this username (any case).
    pub fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.user_by_index(&self.usernames, username)
    }

    /// The user with this email (any case).
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_by_index(&self.emails, email)
    }

    fn user_by_index(&self, index: &Index, name: &str) -> Result<Option<User>> {
        match index.get(&index_key(name))? {
            Some(id) => self.user(UserId::new(u64::from_be_bytes(id))),
            None => Ok(None),
        }
    }

    /// Rebuilds both unique indexes from the user records (a database of
    /// schema 2 kept them in trees of their own; a restore): what is in
    /// the buckets stays, each record's name and email point at it.
    pub(super) fn rebuild_indexes(&self) -> Result<()> {
        let (mut names, mut emails) = (Vec::new(), Vec::new());
        for user in self.users()? {
            let id = user_key(user.id);
            names.push((index_key(&user.username), id));
            if let Some(email) = &user.email {
                emails.push((index_key(email), id));
            }
        }
        self.usernames.add_bulk(names)?;
        self.emails.add_bulk(emails)
    }

    /// Copies the user records a database of schema 2 holds one per entry
    /// (`users`) into buckets; `Store::finish_moves` drops the old tree.
    pub(super) fn copy_legacy_users(&self) -> Result<()> {
        let legacy = self.db.open_tree("users")?;
        let mut all = Vec::with_capacity(legacy.len());
        for entry in legacy.iter() {
            let (id, record) = entry?;
            all.push((be_u64(&id, "a user id")?, record.to_vec()));
        }
        self.users.add_bulk(all)
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut all = Vec::new();
        self.users.each(|(id, bytes)| {
            all.push(decode_user(UserId::new(id), &bytes)?);
            Ok(())
        })?;
        Ok(all)
    }

    /// How many users exist (a counter kept beside them: sled's own `len`
    /// scans the whole tree).
    pub fn user_count(&self) -> usize {
        self.meta_u64(USER_COUNT)
            .ok()
            .flatten()
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Applies `change` to the user's record atomically (compare-and-swap,
    /// retried if the record changed meanwhile) and flushes. `None` when
    /// the user does not exist.
    pub async fn modify_user(
        &self,
        id: UserId,
        mut change: impl FnMut(&mut User),
    ) -> Result<Option<User>> {
        loop {
            let Some(old) = self.users.get(id.get())? else {
                return Ok(None);
            };
            let mut user = decode_user(id, &old)?;
            change(&mut user);
            let new = encode_user(&user);
            let swapped = {
                let _gate = self.shared();
                self.users
                    .compare_and_swap(id.get(), Some(&old), Some(&new))?
            };
            if swapped {
                self.flush().await?;
                return Ok(Some(user));
            }
        }
    }

    /// Sets (or, with `None`, removes) a user's email and its unique index
    /// entry in one transaction; a taken email is a conflict. `None` when
    /// the user does not exist.
    pub async fn change_email(&self, id: UserId, email: Option<&str>) -> Result<Option<User>> {
        let key = user_key(id);
        let new_index = email.map(index_key);
        let gate = self.shared();
        let updated = (&self.users.tree, &self.emails.tree).transaction(|(users, emails)| {
            let Some(old) = ById::get_tx(users, id.get())? else {
                return Ok(None);
            };
            let mut user = decode_user(id, &old).map_err(ConflictableTransactionError::Abort)?;
            if let Some(old_email) = &user.email {
                self.emails.remove_tx(emails, &index_key(old_email), key)?;
            }
            if let Some(index) = &new_index {
                claim(&self.emails, emails, index, key, || {
                    Error::new(Kind::Conflict("email is taken"))
                })?;
            }
            user.email = email.map(str::to_owned);
            ById::set_tx(users, id.get(), Some(&encode_user(&user)))?;
            Ok(Some(user))
        })?;
        drop(gate);
        self.flush().await?;
        Ok(updated)
    }

    /// Replaces a user's password hash and sets their cutoff in one
    /// transaction, so no earlier token outlives the old password. False
    /// when the record changed meanwhile (nothing is written then).
    pub async fn change_password(
        &self,
        user: &User,
        password_hash: String,
        cutoff: Cutoff,
    ) -> Result<bool> {
        let old = encode_user(user);
        let new = encode_user(&User {
            password_hash,
            ..user.clone()
        });
        let id = user_key(user.id);
        let gate = self.shared();
        let changed = (&self.users.tree, &self.cutoffs).transaction(|(users, cutoffs)| {
            if ById::get_tx(users, user.id.get())?.as_deref() != Some(old.as_slice()) {
                return Ok(false);
            }
            ById::set_tx(users, user.id.get(), Some(&new))?;
            cutoffs.insert(&id, encode_cutoff(cutoff))?;
            Ok(true)
        })?;
        drop(gate);
        self.flush().await?;
        Ok(changed)
    }

    /// Replaces a user's password hash unless the record changed meanwhile
    /// (then the newer record wins). Used to rehash at the configured cost
    /// at login; nothing is acknowledged, so no flush is awaited.
    pub fn rehash_password(&self, user: &User, password_hash: String) -> Result<()> {
        let old = encode_user(user);
        let new = encode_user(&User {
            password_hash,
            ..user.clone()
        });
        let _gate = self.shared();
        let _ = self
            .users
            .compare_and_swap(user.id.get(), Some(&old), Some(&new))?;
        Ok(())
    }

    /// Deletes the user, their indexes and API keys, and records `cutoff`
    /// (marked deleted) in one transaction.
    pub async fn delete_user(&self, user: &User, cutoff: Cutoff) -> Result<()> {
        let key_entries: Vec<(sled::IVec, sled::IVec)> = self
            .user_keys
            .scan_prefix(user_key(user.id))
            .collect::<std::result::Result<_, _>>()?;
        let id = user_key(user.id);
        let name_key = index_key(&user.username);
        let email_key = user.email.as_deref().map(index_key);
        let gate = self.shared();
        let trees = (
            &self.users.tree,
            &self.usernames.tree,
            &self.emails.tree,
            &self.cutoffs,
            &self.keys,
            &self.user_keys,
            &self.meta,
            &self.totp,
        );
        let record = encode_user(user);
        trees.transaction(
            |(users, names, emails, cutoffs, keys, user_keys, meta, totp)| {
                // Against the record the caller proved the deletion with: a
                // change since (a new email, a new password) is a conflict,
                // or its index entry would outlive the user (found by
                // review).
                match ById::get_tx(users, user.id.get())? {
                    Some(stored) if stored != record => {
                        return abort(Error::new(Kind::Conflict(
                            "the account changed meanwhile; try again",
                        )));
                    }
                    Some(_) => add_to_count(meta, -1)?,
                    None => {}
                }
                ById::set_tx(users, user.id.get(), None)?;
                totp.remove(&id)?;
                self.usernames.remove_tx(names, &name_key, id)?;
                if let Some(e) = &email_key {
                    self.emails.remove_tx(emails, e, id)?;
                }
                for (index, hash) in &key_entries {
                    keys.remove(hash)?;
                    user_keys.remove(index)?;
                }
                cutoffs.insert(&id, encode_cutoff(cutoff))?;
                Tx::Ok(())
            },
        )?;
        drop(gate);
        self.flush().await
    }
}

/// One user an import writes: a new one (`before` is `None`; its id is
/// fresh), or a change to `before`, which must still be the stored record.
pub struct Write {
    /// The record as read when the import was planned.
    pub before: Option<User>,
    /// The record to store.
    pub after: User,
    /// The user's new cutoff (a changed password refuses earlier tokens).
    pub cutoff: Option<Cutoff>,
}

impl Store {
    /// Applies every write in one transaction: all of them, or (a name or
    /// email taken, a record changed since it was read) none. Not flushed:
    /// the caller brings its caches in line with what is committed, then
    /// flushes before it acknowledges.
    pub fn apply_import(&self, writes: &[Write]) -> Result<()> {
        let gate = self.shared();
        let trees = (
            &self.users.tree,
            &self.usernames.tree,
            &self.emails.tree,
            &self.cutoffs,
            &self.meta,
        );
        trees.transaction(|(users, names, emails, cutoffs, meta)| {
            for write in writes {
                let user = &write.after;
                let id = user_key(user.id);
                match &write.before {
                    None => {
                        if ById::get_tx(users, user.id.get())?.is_some() {
                            return abort(Error::internal("a new user id is already taken"));
                        }
                        claim(
                            &self.usernames,
                            names,
                            &index_key(&user.username),
                            id,
                            || {
                                Error::config(format_args!(
                                    "user {:?}: the name is taken",
                                    user.username
                                ))
                            },
                        )?;
                        add_to_count(meta, 1)?;
                    }
                    Some(before) => {
                        if ById::get_tx(users, user.id.get())?.as_deref()
                            != Some(encode_user(before).as_slice())
                        {
                            return abort(Error::config(format_args!(
                                "user {:?} changed while the import ran: nothing was \
                                 written, run it again",
                                user.username
                            )));
                        }
                        if let Some(old) = &before.email {
                            self.emails.remove_tx(emails, &index_key(old), id)?;
                        }
                    }
                }
                if let Some(email) = &user.email {
                    claim(&self.emails, emails, &index_key(email), id, || {
                        Error::config(format_args!(
                            "user {:?}: the email {email} is another user's",
                            user.username
                        ))
                    })?;
                }
                ById::set_tx(users, user.id.get(), Some(&encode_user(user)))?;
                if let Some(cutoff) = write.cutoff {
                    cutoffs.insert(&id, encode_cutoff(cutoff))?;
                }
            }
            Tx::Ok(())
        })?;
        drop(gate);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cutoff, TempStore};
    use super::*;

    fn new_user<'a>(name: &'a str, email: Option<&'a str>) -> NewUser<'a> {
        NewUser {
            username: name,
            email,
            password_hash: "$scrypt$x".into(),
            groups: vec![],
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn names_and_emails_are_unique_regardless_of_case() {
        let t = TempStore::new();
        let s = &t.store;
        let alice = s
            .create_user(new_user("Alice", Some("a@x.test")))
            .await
            .unwrap();
        for (name, email) in [("alice", None), ("bob", Some("A@X.TEST"))] {
            let e = s.create_user(new_user(name, email)).await.unwrap_err();
            assert!(matches!(e.kind(), Kind::Conflict(_)), "{name}");
        }
        assert_eq!(s.user_count(), 1, "an aborted create counts nothing");
        assert_eq!(s.user_by_name("ALICE").unwrap().unwrap().id, alice.id);
        assert_eq!(s.user_by_email("a@X.test").unwrap().unwrap().id, alice.id);
        // Moving the email frees the old one, in the same transaction.
        s.change_email(alice.id, Some("new@x.test")).await.unwrap();
        assert!(s.user_by_email("a@x.test").unwrap().is_none());
        let bob = s
            .create_user(new_user("bob", Some("a@x.test")))
            .await
            .unwrap();
        let e = s
            .change_email(bob.id, Some("NEW@x.test"))
            .await
            .unwrap_err();
        assert!(matches!(e.kind(), Kind::Conflict(_)));
        assert_eq!(
            s.user(bob.id).unwrap().unwrap().email.as_deref(),
            Some("a@x.test")
        );
    }

    #[tokio::test]
    async fn deletion_frees_the_name_and_records_the_cutoff() {
        let t = TempStore::new();
        let s = &t.store;
        let alice = s
            .create_user(new_user("alice", Some("a@x.test")))
            .await
            .unwrap();
        s.delete_user(&alice, cutoff(5, 9)).await.unwrap();
        assert!(s.user(alice.id).unwrap().is_none());
        assert!(s.user_by_name("alice").unwrap().is_none());
        assert!(s.user_by_email("a@x.test").unwrap().is_none());
        assert_eq!(s.user_count(), 0);
        assert_eq!(s.cutoffs().unwrap(), vec![(alice.id, cutoff(5, 9))]);
        let again = s.create_user(new_user("alice", None)).await.unwrap();
        assert_ne!(again.id, alice.id, "ids are never reused");
    }

    #[tokio::test]
    async fn a_password_change_loses_to_a_change_made_meanwhile() {
        let t = TempStore::new();
        let s = &t.store;
        let alice = s.create_user(new_user("alice", None)).await.unwrap();
        s.modify_user(alice.id, |u| u.groups = vec!["ops".into()])
            .await
            .unwrap();
        // `alice` is the record from before the groups changed.
        let changed = s
            .change_password(&alice, "$scrypt$y".into(), cutoff(1, 2))
            .await
            .unwrap();
        assert!(!changed);
        assert!(s.cutoffs().unwrap().is_empty(), "nothing was written");
        let fresh = s.user(alice.id).unwrap().unwrap();
        assert!(s
            .change_password(&fresh, "$scrypt$y".into(), cutoff(1, 2))
            .await
            .unwrap());
        assert_eq!(
            s.user(alice.id).unwrap().unwrap().password_hash,
            "$scrypt$y"
        );
    }

    #[tokio::test]
    async fn an_open_moves_user_records_of_schema_2_into_buckets() {
        let dir = crate::fsutil::TempDir::new("legacy-users");
        let alice = User {
            id: UserId::new(7),
            username: "alice".into(),
            email: Some("a@x.test".into()),
            password_hash: "$scrypt$x".into(),
            groups: vec!["ops".into()],
            created_at: 1,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            // As schema 2 left it: a record per user, an entry per name.
            let users = store.db.open_tree("users").unwrap();
            users
                .insert(user_key(alice.id), encode_user(&alice))
                .unwrap();
            let names = store.db.open_tree("usernames").unwrap();
            names.insert(b"alice", &user_key(alice.id)).unwrap();
            super::super::mark_schema(&store, super::super::SCHEMA_V2);
        }
        let store = super::super::reopen(dir.path()).unwrap();
        assert_eq!(store.user(alice.id).unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name("ALICE").unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_email("a@x.test").unwrap(), Some(alice));
        assert!(!store
            .db
            .tree_names()
            .iter()
            .any(|n| n == b"users".as_slice()));
        assert_eq!(store.users.tree.len(), 1, "one bucket");
    }

    #[tokio::test]
    async fn a_deletion_against_a_changed_record_is_a_conflict() {
        // Found by review: the new email's index entry outlived the user.
        let t = TempStore::new();
        let s = &t.store;
        let stale = s
            .create_user(new_user("alice", Some("a@x.test")))
            .await
            .unwrap();
        s.change_email(stale.id, Some("new@x.test")).await.unwrap();
        let e = s.delete_user(&stale, cutoff(5, 9)).await.unwrap_err();
        assert!(matches!(e.kind(), Kind::Conflict(_)), "{e:?}");
        assert!(s.user(stale.id).unwrap().is_some(), "nothing was deleted");
        let fresh = s.user(stale.id).unwrap().unwrap();
        s.delete_user(&fresh, cutoff(5, 9)).await.unwrap();
        assert!(s.user_by_email("new@x.test").unwrap().is_none());
        s.create_user(new_user("bob", Some("new@x.test")))
            .await
            .unwrap();
    }
}
