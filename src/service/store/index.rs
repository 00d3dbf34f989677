//! The unique indexes (a lowercased username or email → user id), in
//! buckets: `username_buckets` and `email_buckets` map two bytes of a keyed
//! hash of the name to a version byte and that bucket's entries, each name
//! length (u16 BE) ++ name ++ user id (u64 BE), sorted by name.
//!
//! Why buckets: a sled 0.34 leaf holds at most 16 entries, and an open
//! database keeps bookkeeping for every leaf in memory; one entry per name
//! and per email cost a million users about 60 MiB before a single read
//! (BENCHMARKS.md, issue 15). The hash is keyed with a secret of the
//! database (`meta`'s `index_key`), so nobody can choose names that crowd
//! one bucket, whose every write rewrites it whole.
//!
//! Databases of schema 2 keep one entry per name in `usernames` and
//! `emails`: [`Store::open`] rebuilds the buckets from the user records
//! and drops those trees. A restore rebuilds them from the records too.
//!
//! It never checks a name; the users' code does, in its transactions.

use std::collections::BTreeMap;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Tree;

use super::records::{put_with_u16_len, Fields};
use crate::crypto::SigningKey;
use crate::error::{Error, Result};

/// A transaction body's result.
type Tx<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

/// Version byte of a bucket.
const BUCKET_V1: u8 = 1;

/// One index entry: a name and the user id it points at.
pub(super) type Entry = (Vec<u8>, [u8; 8]);

/// A unique index in buckets (cheap to clone).
#[derive(Clone)]
pub(super) struct Index {
    pub(super) tree: Tree,
    hash: SigningKey,
}

/// The entries of a bucket, or it is corrupt: sorted, unique, and each of
/// this bucket.
fn decode(index: &Index, key: &[u8], bytes: &[u8]) -> Result<Vec<Entry>> {
    let corrupt = || Error::store("an index bucket is corrupt");
    let [BUCKET_V1, body @ ..] = bytes else {
        return Err(Error::store("an index bucket has an unknown version"));
    };
    if body.is_empty() {
        return Err(corrupt());
    }
    let mut fields = Fields::new(body);
    let mut out: Vec<Entry> = Vec::new();
    while !fields.done() {
        let name = fields.with_u16_len().ok_or_else(corrupt)?;
        let id = fields.array().ok_or_else(corrupt)?;
        let in_order = out.last().is_none_or(|(last, _)| last.as_slice() < name);
        if !in_order || index.bucket_of(name) != key {
            return Err(corrupt());
        }
        out.push((name.to_vec(), id));
    }
    Ok(out)
}

/// A bucket as stored; `None` for no entries (the bucket goes).
fn encode(entries: &[Entry]) -> Result<Option<Vec<u8>>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let mut out = vec![BUCKET_V1];
    for (name, id) in entries {
        put_with_u16_len(&mut out, name, "an index name is over 64 KiB")?;
        out.extend_from_slice(id);
    }
    Ok(Some(out))
}

/// Puts `name` → `id` into sorted `entries` (replacing its id if there).
fn put(entries: &mut Vec<Entry>, name: &[u8], id: [u8; 8]) {
    match entries.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
        Ok(i) => entries[i].1 = id,
        Err(i) => entries.insert(i, (name.to_vec(), id)),
    }
}

impl Index {
    /// The index in `tree`, bucketed by a hash keyed with `secret`.
    pub(super) fn new(tree: Tree, secret: &[u8]) -> Index {
        Index {
            tree,
            hash: SigningKey::new(secret),
        }
    }

    /// The bucket key of `name`.
    fn bucket_of(&self, name: &[u8]) -> [u8; 2] {
        let tag = self.hash.sign(name);
        [tag.as_ref()[0], tag.as_ref()[1]]
    }

    /// The user id `name` points at. One sled read.
    pub(super) fn get(&self, name: &[u8]) -> Result<Option<[u8; 8]>> {
        let key = self.bucket_of(name);
        let Some(bytes) = self.tree.get(key)? else {
            return Ok(None);
        };
        let entries = decode(self, &key, &bytes)?;
        Ok(entries
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()
            .map(|i| entries[i].1))
    }

    /// The bucket of `name` inside a transaction, and its key.
    fn bucket_tx(&self, tx: &TransactionalTree, name: &[u8]) -> Tx<([u8; 2], Vec<Entry>)> {
        let key = self.bucket_of(name);
        let entries = match tx.get(key)? {
            Some(bytes) => {
                decode(self, &key, &bytes).map_err(ConflictableTransactionError::Abort)?
            }
            None => Vec::new(),
        };
        Ok((key, entries))
    }

    /// Writes `entries` as the bucket `key` inside a transaction.
    fn store_tx(tx: &TransactionalTree, key: [u8; 2], entries: &[Entry]) -> Tx<()> {
        match encode(entries).map_err(ConflictableTransactionError::Abort)? {
            Some(bytes) => tx.insert(&key, bytes)?,
            None => tx.remove(&key)?,
        };
        Ok(())
    }

    /// Inside a transaction on [`Index::tree`]: who `name` points at.
    pub(super) fn get_tx(&self, tx: &TransactionalTree, name: &[u8]) -> Tx<Option<[u8; 8]>> {
        let (_, entries) = self.bucket_tx(tx, name)?;
        Ok(entries
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()
            .map(|i| entries[i].1))
    }

    /// Inside a transaction on [`Index::tree`]: points `name` at `id`.
    pub(super) fn insert_tx(&self, tx: &TransactionalTree, name: &[u8], id: [u8; 8]) -> Tx<()> {
        let (key, mut entries) = self.bucket_tx(tx, name)?;
        put(&mut entries, name, id);
        Self::store_tx(tx, key, &entries)
    }

    /// Inside a transaction on [`Index::tree`]: removes `name` if it
    /// points at `owner` (a caller's stale copy of a user must not free a
    /// name another user took since).
    pub(super) fn remove_tx(&self, tx: &TransactionalTree, name: &[u8], owner: [u8; 8]) -> Tx<()> {
        let (key, mut entries) = self.bucket_tx(tx, name)?;
        let before = entries.len();
        entries.retain(|(n, id)| n.as_slice() != name || *id != owner);
        if entries.len() != before {
            Self::store_tx(tx, key, &entries)?;
        }
        Ok(())
    }

    /// Calls `each` with every entry in name order (not bucket order,
    /// which would tell which names share a bucket), stopping at its first
    /// error; returns how many there were.
    pub(super) fn each(&self, mut each: impl FnMut(Entry) -> Result<()>) -> Result<usize> {
        let mut all = Vec::new();
        for bucket in self.tree.iter() {
            let (key, bytes) = bucket?;
            all.extend(decode(self, &key, &bytes)?);
        }
        all.sort_unstable();
        let n = all.len();
        for entry in all {
            each(entry)?;
        }
        Ok(n)
    }

    /// Adds entries in bulk (a restore, the seeder, a move from schema 2):
    /// one write per bucket, [`super::BATCH`] buckets a batch. Not against
    /// concurrent writers: it runs before the store serves, or on names
    /// the caller made sure are new.
    pub(super) fn add_bulk(&self, all: impl IntoIterator<Item = Entry>) -> Result<()> {
        let mut buckets: BTreeMap<[u8; 2], Vec<Entry>> = BTreeMap::new();
        for (name, id) in all {
            buckets
                .entry(self.bucket_of(&name))
                .or_default()
                .push((name, id));
        }
        let writes = buckets.into_iter().map(|(key, new)| {
            let mut entries = match self.tree.get(key)? {
                Some(bytes) => decode(self, &key, &bytes)?,
                None => Vec::new(),
            };
            for (name, id) in new {
                put(&mut entries, &name, id);
            }
            Ok((key, encode(&entries)?))
        });
        super::apply_in_batches(&self.tree, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TempStore;
    use super::*;

    fn id(n: u64) -> [u8; 8] {
        n.to_be_bytes()
    }

    #[test]
    fn names_are_found_put_and_removed_through_their_buckets() {
        let t = TempStore::new();
        let index = &t.store.usernames;
        index
            .add_bulk((0..1_000u64).map(|i| (format!("user{i}").into_bytes(), id(i))))
            .unwrap();
        assert!(index.tree.len() < 1_000, "buckets, not an entry a name");
        assert_eq!(index.get(b"user7").unwrap(), Some(id(7)));
        assert_eq!(index.get(b"nobody").unwrap(), None);
        let mut names = Vec::new();
        let counted = index
            .each(|(name, _)| {
                names.push(name);
                Ok(())
            })
            .unwrap();
        assert_eq!((counted, names.len()), (1_000, 1_000));
        assert!(names.windows(2).all(|w| w[0] < w[1]), "in name order");
        index
            .tree
            .transaction(|tx| {
                assert_eq!(index.get_tx(tx, b"user8")?, Some(id(8)));
                index.remove_tx(tx, b"user9", id(1))?;
                index.remove_tx(tx, b"user8", id(8))?;
                index.insert_tx(tx, b"alice", id(5_000))?;
                // A transaction reads its own writes.
                assert_eq!(index.get_tx(tx, b"user8")?, None);
                assert_eq!(index.get_tx(tx, b"alice")?, Some(id(5_000)));
                Tx::Ok(())
            })
            .unwrap();
        assert_eq!(index.get(b"user8").unwrap(), None);
        assert_eq!(
            index.get(b"user9").unwrap(),
            Some(id(9)),
            "not freed by one who does not own it"
        );
        assert_eq!(index.get(b"alice").unwrap(), Some(id(5_000)));
    }

    #[test]
    fn the_buckets_depend_on_the_databases_secret() {
        let t = TempStore::new();
        let a = Index::new(t.store.usernames.tree.clone(), &[1; 32]);
        let b = Index::new(t.store.usernames.tree.clone(), &[2; 32]);
        let names: Vec<String> = (0..64).map(|i| format!("n{i}")).collect();
        let same = names
            .iter()
            .filter(|n| a.bucket_of(n.as_bytes()) == b.bucket_of(n.as_bytes()))
            .count();
        assert!(
            same < 4,
            "{same} of 64 in the same bucket under two secrets"
        );
    }

    #[tokio::test]
    async fn an_open_rebuilds_the_indexes_of_schema_2_from_the_users() {
        let dir = crate::fsutil::TempDir::new("legacy-index");
        let (alice, bob) = {
            let store = super::super::Store::open(dir.path()).unwrap();
            let new = |name, email| super::super::NewUser {
                username: name,
                email,
                password_hash: "$scrypt$x".into(),
                groups: vec![],
                created_at: 1,
            };
            let alice = store
                .create_user(new("Alice", Some("a@x.test")))
                .await
                .unwrap();
            let bob = store.create_user(new("bob", None)).await.unwrap();
            // As schema 2 left it: an entry per name in trees of their own
            // (one stale), no buckets.
            store.usernames.tree.clear().unwrap();
            store.emails.tree.clear().unwrap();
            let names = store.db.open_tree("usernames").unwrap();
            names
                .insert(b"alice", &alice.id.get().to_be_bytes())
                .unwrap();
            names.insert(b"ghost", &id(99)).unwrap();
            store.db.open_tree("emails").unwrap();
            super::super::mark_schema(&store, super::super::SCHEMA_V2);
            (alice, bob)
        };
        let store = super::super::reopen(dir.path()).unwrap();
        assert_eq!(store.user_by_name("alice").unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name("BOB").unwrap(), Some(bob));
        assert_eq!(store.user_by_email("a@x.test").unwrap(), Some(alice));
        assert_eq!(
            store.usernames.get(b"ghost").unwrap(),
            None,
            "from the records"
        );
        let names = store.db.tree_names();
        assert!(!names
            .iter()
            .any(|n| n == b"usernames".as_slice() || n == b"emails".as_slice()));
    }

    #[test]
    fn a_bucket_that_does_not_hold_together_is_corrupt() {
        let t = TempStore::new();
        let index = &t.store.emails;
        let name = b"a@x.test".to_vec();
        let key = index.bucket_of(&name);
        let good = encode(&[(name.clone(), id(1))]).unwrap().unwrap();
        assert_eq!(decode(index, &key, &good).unwrap().len(), 1);
        let other = [key[0] ^ 1, key[1]];
        assert!(decode(index, &other, &good).is_err(), "another bucket's");
        for cut in 1..good.len() {
            assert!(decode(index, &key, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut version = good.clone();
        version[0] = 9;
        assert!(decode(index, &key, &version).is_err());
        // Out of order: the same name twice.
        let twice = [good.clone(), good[1..].to_vec()].concat();
        assert!(decode(index, &key, &twice).is_err());
    }
}
