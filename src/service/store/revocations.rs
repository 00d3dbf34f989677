//! Revoked tokens, grouped in buckets (`revocations`: the first two bytes
//! of a `jti` → a version byte and that bucket's revocations, each `jti`
//! (16 bytes) ++ expiry (u64 BE), sorted by `jti`). Kept until the token's
//! own expiry, then pruned.
//!
//! Why buckets: a sled 0.34 leaf holds at most 16 entries, and an open
//! database keeps bookkeeping for every leaf in memory. One entry per
//! revocation cost a million revocations 80 MB on disk and about 45 MiB of
//! memory before a single lookup (BENCHMARKS.md, issue 15); 65,536 buckets
//! hold them in about 26 MB and a few MiB. A write rewrites one bucket (a
//! few hundred bytes at a million).
//!
//! Databases of schema 1 keep one entry per revocation in `revoked`:
//! [`Store::open`] moves them into buckets and writes schema 2.
//!
//! It never caches; the service mirrors revocations in memory.

use std::collections::BTreeMap;

use super::Store;
use crate::error::{Error, Result};
use crate::token::JTI_LEN;

/// Version byte of a bucket.
const BUCKET_V1: u8 = 1;

/// One revocation in a bucket: `jti` ++ expiry.
const ENTRY: usize = JTI_LEN + 8;

/// A revoked token: its `jti` and expiry.
pub type Revocation = ([u8; JTI_LEN], u64);

/// The bucket key of `jti`.
pub(super) fn bucket_of(jti: &[u8; JTI_LEN]) -> [u8; 2] {
    [jti[0], jti[1]]
}

/// The revocations in the bucket stored under `key`: each of that bucket,
/// strictly sorted by `jti`, or the bucket is corrupt.
fn decode_bucket(key: &[u8], bytes: &[u8]) -> Result<Vec<Revocation>> {
    let corrupt = || Error::store("a revocation bucket is corrupt");
    let [BUCKET_V1, body @ ..] = bytes else {
        return Err(Error::store("a revocation bucket has an unknown version"));
    };
    if body.len() % ENTRY != 0 {
        return Err(corrupt());
    }
    let mut out: Vec<Revocation> = Vec::with_capacity(body.len() / ENTRY);
    for e in body.chunks_exact(ENTRY) {
        let jti: [u8; JTI_LEN] = e[..JTI_LEN].try_into().map_err(|_| corrupt())?;
        let exp = e[JTI_LEN..].try_into().map_err(|_| corrupt())?;
        let in_order = out.last().is_none_or(|(last, _)| *last < jti);
        if bucket_of(&jti) != key || !in_order {
            return Err(corrupt());
        }
        out.push((jti, u64::from_be_bytes(exp)));
    }
    Ok(out)
}

fn encode_bucket(entries: &[Revocation]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * ENTRY);
    out.push(BUCKET_V1);
    for (jti, exp) in entries {
        out.extend_from_slice(jti);
        out.extend_from_slice(&exp.to_be_bytes());
    }
    out
}

/// The bucket `key` as stored (`old`, if any) with `new` added; a `jti`
/// there twice keeps its later expiry. A sort, so a bucket of any size
/// costs n log n.
fn merged(key: &[u8], old: Option<&[u8]>, new: &[Revocation]) -> Result<Vec<u8>> {
    let mut entries = match old {
        Some(old) => decode_bucket(key, old)?,
        None => Vec::new(),
    };
    entries.extend_from_slice(new);
    // By jti, the later expiry first; then the first of each jti stays.
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    entries.dedup_by(|later, first| later.0 == first.0);
    Ok(encode_bucket(&entries))
}

/// Revocations grouped by bucket.
fn by_bucket(
    revocations: impl IntoIterator<Item = Revocation>,
) -> BTreeMap<[u8; 2], Vec<Revocation>> {
    let mut buckets: BTreeMap<[u8; 2], Vec<Revocation>> = BTreeMap::new();
    for r in revocations {
        buckets.entry(bucket_of(&r.0)).or_default().push(r);
    }
    buckets
}

impl Store {
    /// Records that the token `jti` is revoked until `exp`, durably.
    pub async fn revoke(&self, jti: &[u8; JTI_LEN], exp: u64) -> Result<()> {
        {
            let _gate = self.shared();
            self.add_revocations(bucket_of(jti), &[(*jti, exp)])?;
        }
        self.flush().await
    }

    /// Records that each of these tokens is revoked, durably: one write
    /// per bucket, one flush.
    pub async fn revoke_many(&self, all: &[Revocation]) -> Result<()> {
        {
            let _gate = self.shared();
            self.add_revocations_bulk(all.to_vec())?;
        }
        self.flush().await
    }

    /// Adds `new` (all of bucket `key`) to that bucket, against concurrent
    /// writers of the same bucket.
    fn add_revocations(&self, key: [u8; 2], new: &[Revocation]) -> Result<()> {
        loop {
            let old = self.revocations.get(key)?;
            let value = merged(&key, old.as_deref(), new)?;
            if self
                .revocations
                .compare_and_swap(key, old, Some(value))?
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Whether the token `jti` was revoked. One sled read.
    pub fn is_revoked(&self, jti: &[u8; JTI_LEN]) -> Result<bool> {
        let key = bucket_of(jti);
        let Some(bucket) = self.revocations.get(key)? else {
            return Ok(false);
        };
        Ok(decode_bucket(&key, &bucket)?
            .binary_search_by(|(j, _)| j.cmp(jti))
            .is_ok())
    }

    /// Calls `each` with every stored revocation, stopping at its first
    /// error; returns how many there were.
    pub fn each_revocation(&self, mut each: impl FnMut(Revocation) -> Result<()>) -> Result<usize> {
        let mut n = 0;
        for entry in self.revocations.iter() {
            let (key, bucket) = entry?;
            for r in decode_bucket(&key, &bucket)? {
                each(r)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every stored revocation, sorted by `jti`.
    #[cfg(test)]
    pub fn revocations(&self) -> Result<Vec<Revocation>> {
        let mut all = Vec::new();
        self.each_revocation(|r| {
            all.push(r);
            Ok(())
        })?;
        Ok(all)
    }

    /// Adds revocations in bulk: one write per bucket touched.
    pub(super) fn add_revocations_bulk(&self, all: Vec<Revocation>) -> Result<()> {
        for (key, new) in by_bucket(all) {
            self.add_revocations(key, &new)?;
        }
        Ok(())
    }

    /// Drops revocations of tokens expired at `now`; returns how many. A
    /// bucket a revocation changed meanwhile is left for the next prune.
    pub(super) fn prune_revocations(&self, now: u64) -> Result<usize> {
        let mut removed = 0;
        for entry in self.revocations.iter() {
            let (key, value) = entry?;
            let entries = decode_bucket(&key, &value)?;
            let live: Vec<Revocation> = entries.iter().copied().filter(|r| r.1 > now).collect();
            if live.len() == entries.len() {
                continue;
            }
            let new = (!live.is_empty()).then(|| encode_bucket(&live));
            if self
                .revocations
                .compare_and_swap(&key, Some(value), new)?
                .is_ok()
            {
                removed += entries.len() - live.len();
            }
        }
        Ok(removed)
    }

    /// Moves revocations a database of schema 1 holds one per entry
    /// (`revoked`) into buckets, durably before the old entries go (the
    /// caller's schema write flushes their removal). Idempotent: should it
    /// stop half-way, the next open does it again.
    pub(super) fn move_legacy_revocations(&self) -> Result<()> {
        if self.legacy_revoked.is_empty() {
            return Ok(());
        }
        let mut all = Vec::new();
        for entry in self.legacy_revoked.iter() {
            let (jti, value) = entry?;
            let jti = <[u8; JTI_LEN]>::try_from(jti.as_ref())
                .map_err(|_| Error::store("a revocation key is corrupt"))?;
            all.push((jti, super::records::decode_expiry(&value)?));
        }
        self.add_revocations_bulk(all)?;
        self.db.flush()?;
        self.legacy_revoked.clear()?;
        Ok(())
    }

    /// How many revocations are stored.
    #[cfg(test)]
    pub fn revocation_count(&self) -> usize {
        self.each_revocation(|_| Ok(())).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::encode_expiry;
    use super::super::{Store, TempStore};
    use super::*;

    #[tokio::test]
    async fn revocations_are_kept_listed_and_pruned() {
        let t = TempStore::new();
        // Two in one bucket, one in another.
        let (a, c) = ([1; 16], [2; 16]);
        let mut b = [0; 16];
        b[..2].copy_from_slice(&[1, 1]);
        t.store.revoke(&a, 50).await.unwrap();
        t.store.revoke(&b, 70).await.unwrap();
        t.store.revoke(&c, 90).await.unwrap();
        // Again, later: the later expiry stays.
        t.store.revoke(&a, 60).await.unwrap();
        t.store.revoke(&a, 40).await.unwrap();
        for jti in [&a, &b, &c] {
            assert!(t.store.is_revoked(jti).unwrap());
        }
        let mut near = a;
        near[15] = 2;
        assert!(!t.store.is_revoked(&near).unwrap());
        assert_eq!(
            t.store.revocations().unwrap(),
            vec![(b, 70), (a, 60), (c, 90)]
        );
        assert_eq!(t.store.revocations.len(), 2, "two buckets");
        assert_eq!(t.store.prune_revocations(75).unwrap(), 2);
        assert_eq!(t.store.revocations().unwrap(), vec![(c, 90)]);
        assert_eq!(t.store.revocations.len(), 1, "an empty bucket goes");
    }

    #[test]
    fn a_damaged_bucket_is_an_error_not_a_guess() {
        let entry = |jti: [u8; 16]| [&jti[..], &[0; 8]].concat();
        let (a, mut b) = ([3; 16], [3; 16]);
        b[15] = 4;
        let good = [&[BUCKET_V1][..], &entry(a), &entry(b)].concat();
        assert_eq!(decode_bucket(&[3, 3], &good).unwrap().len(), 2);
        let unsorted = [&[BUCKET_V1][..], &entry(b), &entry(a)].concat();
        let twice = [&[BUCKET_V1][..], &entry(a), &entry(a)].concat();
        let elsewhere = [&[BUCKET_V1][..], &entry([4; 16])].concat();
        for bad in [
            &[][..],
            &[2],
            &[BUCKET_V1, 0, 1],
            &unsorted,
            &twice,
            &elsewhere,
        ] {
            assert!(decode_bucket(&[3, 3], bad).is_err(), "{bad:?}");
        }
        // The wrong bucket for good entries.
        assert!(decode_bucket(&[3, 4], &good).is_err());
    }

    #[test]
    fn a_big_bucket_merges_whole_keeping_the_later_expiry() {
        // 200,000 in one bucket (a crafted backup's worst), in reverse.
        let new: Vec<Revocation> = (0..200_000u32)
            .rev()
            .map(|i| {
                let mut jti = [0; 16];
                jti[12..].copy_from_slice(&i.to_be_bytes());
                (jti, u64::from(i % 7))
            })
            .collect();
        let bucket = merged(&[0, 0], None, &new).unwrap();
        let later: Vec<Revocation> = new[..10].iter().map(|(j, e)| (*j, e + 100)).collect();
        let again = merged(&[0, 0], Some(&bucket), &later).unwrap();
        let all = decode_bucket(&[0, 0], &again).unwrap();
        assert_eq!(all.len(), 200_000);
        assert_eq!(all[199_999], (new[0].0, new[0].1 + 100));
        assert_eq!(all[0], *new.last().unwrap());
    }

    #[tokio::test]
    async fn an_open_moves_revocations_of_a_database_before_buckets_into_them() {
        let dir = crate::fsutil::TempDir::new("legacy");
        {
            let store = Store::open(dir.path()).unwrap();
            for (jti, exp) in [([7; 16], 10), ([8; 16], 20)] {
                store
                    .legacy_revoked
                    .insert(jti, &encode_expiry(exp))
                    .unwrap();
            }
            // Half-way through an earlier move: one is in a bucket already.
            store.revoke(&[7; 16], 5).await.unwrap();
            super::super::mark_schema(&store, super::super::SCHEMA_V1);
        }
        let store = super::super::reopen(dir.path()).unwrap();
        assert!(store.legacy_revoked.is_empty());
        let schema = store.meta.get("schema").unwrap().unwrap();
        assert_eq!(schema.as_ref(), super::super::SCHEMA_VERSION.to_be_bytes());
        assert_eq!(
            store.revocations().unwrap(),
            vec![([7; 16], 10), ([8; 16], 20)]
        );
        // Nothing left to move: another move changes nothing.
        store.move_legacy_revocations().unwrap();
        assert_eq!(store.revocation_count(), 2);
    }
}
