//! Records keyed by a u64 id, in buckets: the user records
//! (`user_buckets`: the id's low two bytes → a version byte and that
//! bucket's records, each id (u64 BE) ++ record length (u32 BE) ++ the
//! versioned record, sorted by id).
//!
//! Why buckets: a sled 0.34 leaf holds at most 16 entries, and an open
//! database keeps bookkeeping for every leaf in memory; an entry per user
//! cost a million users about 40 MiB before a single read (BENCHMARKS.md,
//! issue 15). Ids are sequential, so the low bytes spread them evenly, and
//! nobody chooses them.
//!
//! Databases of schema 2 keep an entry per user in `users`:
//! `Store::finish_moves` moves them here.
//!
//! It never decodes a record; the users' code does.

use std::collections::BTreeMap;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Tree;

use super::records::{put_with_u32_len, Fields};
use crate::error::{Error, Result};

/// A transaction body's result.
type Tx<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

/// Version byte of a bucket.
const BUCKET_V1: u8 = 1;

/// One record: its id and bytes.
pub(super) type Record = (u64, Vec<u8>);

/// Records in buckets by id (cheap to clone).
#[derive(Clone)]
pub(super) struct ById {
    pub(super) tree: Tree,
}

/// The bucket key of `id`.
fn bucket_of(id: u64) -> [u8; 2] {
    let [.., a, b] = id.to_be_bytes();
    [a, b]
}

/// The records of a bucket, or it is corrupt: sorted, unique, each of
/// this bucket.
fn decode(key: &[u8], bytes: &[u8]) -> Result<Vec<Record>> {
    let corrupt = || Error::store("a record bucket is corrupt");
    let [BUCKET_V1, body @ ..] = bytes else {
        return Err(Error::store("a record bucket has an unknown version"));
    };
    if body.is_empty() {
        return Err(corrupt());
    }
    let mut fields = Fields::new(body);
    let mut out: Vec<Record> = Vec::new();
    while !fields.done() {
        let id = fields.array().map(u64::from_be_bytes).ok_or_else(corrupt)?;
        let record = fields.with_u32_len().ok_or_else(corrupt)?;
        let in_order = out.last().is_none_or(|(last, _)| *last < id);
        if !in_order || bucket_of(id) != key {
            return Err(corrupt());
        }
        out.push((id, record.to_vec()));
    }
    Ok(out)
}

/// A bucket as stored; `None` for no records (the bucket goes).
fn encode(records: &[Record]) -> Result<Option<Vec<u8>>> {
    if records.is_empty() {
        return Ok(None);
    }
    let mut out = vec![BUCKET_V1];
    for (id, record) in records {
        out.extend_from_slice(&id.to_be_bytes());
        put_with_u32_len(&mut out, record, "a record is over 4 GiB")?;
    }
    Ok(Some(out))
}

/// Where `id` is (or would go) in sorted `records`.
fn find(records: &[Record], id: u64) -> std::result::Result<usize, usize> {
    records.binary_search_by(|(r, _)| r.cmp(&id))
}

/// `records` with `id` set to `new` (or removed, for `None`).
fn set(records: &mut Vec<Record>, id: u64, new: Option<&[u8]>) {
    match (find(records, id), new) {
        (Ok(i), Some(new)) => records[i].1 = new.to_vec(),
        (Err(i), Some(new)) => records.insert(i, (id, new.to_vec())),
        (Ok(i), None) => {
            records.remove(i);
        }
        (Err(_), None) => {}
    }
}

impl ById {
    /// The record `id`. One sled read.
    pub(super) fn get(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let key = bucket_of(id);
        let Some(bytes) = self.tree.get(key)? else {
            return Ok(None);
        };
        let mut records = decode(&key, &bytes)?;
        Ok(find(&records, id).ok().map(|i| records.swap_remove(i).1))
    }

    /// Sets the record `id` from `old` to `new` (`None`: absent), against
    /// concurrent writers of its bucket. False, and nothing written, when
    /// the record is no longer `old`. A neighbour's write, by this or by a
    /// transaction, only makes it read again: sled 0.34's transactions
    /// hold its write lock while they run and commit, and its plain
    /// operations take the read side, so the swap below sees a committed
    /// transaction's bucket and fails against it.
    pub(super) fn compare_and_swap(
        &self,
        id: u64,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        let key = bucket_of(id);
        loop {
            let stored = self.tree.get(key)?;
            let mut records = match &stored {
                Some(bytes) => decode(&key, bytes)?,
                None => Vec::new(),
            };
            let now = find(&records, id).ok().map(|i| records[i].1.as_slice());
            if now != old {
                return Ok(false);
            }
            set(&mut records, id, new);
            if self
                .tree
                .compare_and_swap(key, stored, encode(&records)?)?
                .is_ok()
            {
                return Ok(true);
            }
        }
    }

    /// The bucket of `id` inside a transaction on [`ById::tree`].
    fn bucket_tx(tx: &TransactionalTree, id: u64) -> Tx<([u8; 2], Vec<Record>)> {
        let key = bucket_of(id);
        let records = match tx.get(key)? {
            Some(bytes) => decode(&key, &bytes).map_err(ConflictableTransactionError::Abort)?,
            None => Vec::new(),
        };
        Ok((key, records))
    }

    /// Inside a transaction on [`ById::tree`]: the record `id`.
    pub(super) fn get_tx(tx: &TransactionalTree, id: u64) -> Tx<Option<Vec<u8>>> {
        let (_, mut records) = Self::bucket_tx(tx, id)?;
        Ok(find(&records, id).ok().map(|i| records.swap_remove(i).1))
    }

    /// Inside a transaction on [`ById::tree`]: sets (or, with `None`,
    /// removes) the record `id`; returns whether there was one.
    pub(super) fn set_tx(tx: &TransactionalTree, id: u64, new: Option<&[u8]>) -> Tx<bool> {
        let (key, mut records) = Self::bucket_tx(tx, id)?;
        let was = find(&records, id).is_ok();
        set(&mut records, id, new);
        match encode(&records).map_err(ConflictableTransactionError::Abort)? {
            Some(bytes) => tx.insert(&key, bytes)?,
            None => tx.remove(&key)?,
        };
        Ok(was)
    }

    /// Calls `each` with every record in id order, stopping at its first
    /// error.
    pub(super) fn each(&self, mut each: impl FnMut(Record) -> Result<()>) -> Result<()> {
        let mut all = Vec::new();
        for bucket in self.tree.iter() {
            let (key, bytes) = bucket?;
            all.extend(decode(&key, &bytes)?);
        }
        all.sort_unstable_by_key(|(id, _)| *id);
        for record in all {
            each(record)?;
        }
        Ok(())
    }

    /// Adds records in bulk (a restore, the seeder, a move from schema 2):
    /// one write per bucket. Not against
    /// concurrent writers: it runs before the store serves, or on ids the
    /// caller just made.
    pub(super) fn add_bulk(&self, all: impl IntoIterator<Item = Record>) -> Result<()> {
        let mut buckets: BTreeMap<[u8; 2], Vec<Record>> = BTreeMap::new();
        for (id, record) in all {
            buckets.entry(bucket_of(id)).or_default().push((id, record));
        }
        let writes = buckets.into_iter().map(|(key, new)| {
            let mut records = match self.tree.get(key)? {
                Some(bytes) => decode(&key, &bytes)?,
                None => Vec::new(),
            };
            for (id, record) in new {
                set(&mut records, id, Some(&record));
            }
            Ok((key, encode(&records)?))
        });
        super::apply_in_batches(&self.tree, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TempStore;
    use super::*;

    #[test]
    fn records_are_read_swapped_and_removed_through_their_buckets() {
        let t = TempStore::new();
        let users = &t.store.users;
        users
            .add_bulk((1..=70_000u64).map(|i| (i, i.to_be_bytes().to_vec())))
            .unwrap();
        assert_eq!(users.tree.len(), 65_536, "buckets, not an entry a record");
        assert_eq!(
            users.get(65_537).unwrap(),
            Some(65_537u64.to_be_bytes().to_vec())
        );
        assert_eq!(users.get(70_001).unwrap(), None);
        // Only from what it was.
        assert!(!users.compare_and_swap(7, Some(b"no"), Some(b"x")).unwrap());
        assert!(users
            .compare_and_swap(7, Some(&7u64.to_be_bytes()), Some(b"x"))
            .unwrap());
        assert_eq!(users.get(7).unwrap().as_deref(), Some(b"x".as_slice()));
        assert!(users.compare_and_swap(7, Some(b"x"), None).unwrap());
        assert_eq!(users.get(7).unwrap(), None);
        assert!(users.compare_and_swap(7, None, Some(b"y")).unwrap());
        users
            .tree
            .transaction(|tx| {
                assert_eq!(ById::get_tx(tx, 8)?, Some(8u64.to_be_bytes().to_vec()));
                assert!(ById::set_tx(tx, 8, None)?);
                assert!(!ById::set_tx(tx, 80_000, Some(b"z"))?);
                // A transaction reads its own writes.
                assert_eq!(ById::get_tx(tx, 8)?, None);
                Tx::Ok(())
            })
            .unwrap();
        assert_eq!(users.get(8).unwrap(), None);
        assert_eq!(users.get(80_000).unwrap().as_deref(), Some(b"z".as_slice()));
        let mut ids = Vec::new();
        users
            .each(|(id, _)| {
                ids.push(id);
                Ok(())
            })
            .unwrap();
        assert_eq!(ids.len(), 70_000);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    }

    #[test]
    fn a_bucket_that_does_not_hold_together_is_corrupt() {
        let key = bucket_of(7);
        let good = encode(&[(7, b"record".to_vec())]).unwrap().unwrap();
        assert_eq!(decode(&key, &good).unwrap().len(), 1);
        assert!(decode(&bucket_of(8), &good).is_err(), "another bucket's");
        for cut in 1..good.len() {
            assert!(decode(&key, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut version = good.clone();
        version[0] = 9;
        assert!(decode(&key, &version).is_err());
        let twice = [good.clone(), good[1..].to_vec()].concat();
        assert!(decode(&key, &twice).is_err(), "the same id twice");
    }
}
