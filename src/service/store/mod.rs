//! The store: sled and the on-disk encoding, nothing else. Private to the
//! service layer (the HTTP layer cannot name it); one file per entity.
//!
//! Trees:
//! - `user_buckets`: the low two bytes of a user id → that bucket's
//!   versioned user records (`by_id.rs`, `users.rs`); `users`, an entry
//!   per user, is what databases of schema 2 held: moved at open
//! - `username_buckets`, `email_buckets`: the unique indexes (lowercased
//!   name or email → user id, changed in the same transactions as the
//!   records), in buckets by a keyed hash of the name (`index.rs`);
//!   `usernames` and `emails`, an entry per name, are what databases of
//!   schema 2 held: moved into buckets at open, then dropped
//! - `revocations`: the first two bytes of a token `jti` → version byte +
//!   that bucket's revocations, each `jti` ++ expiry (u64 BE)
//!   (`revocations.rs`); `revoked`, one entry per revocation, is what
//!   databases before buckets held: emptied into buckets at open
//! - `cutoffs`: user id → versioned [`Cutoff`]: the user's credential
//!   epoch (`cutoffs.rs`)
//! - `fresh`: token `jti` → version byte + expiry + cutoff seq: written by
//!   versions before credential epochs; read by nobody now, pruned as they
//!   expire, kept in backups
//! - `keys`: SHA-256 of an API key → versioned [`ApiKey`] record;
//!   `user_keys`: user id ++ key id → that hash (`api_keys.rs`)
//! - `bans`: `u` ++ user id, or `s` ++ an address → version byte + end
//!   (`bans.rs`); not in backups
//! - `session_lists`: user id → version byte + that user's login-page
//!   sessions, each `jti` ++ length ++ versioned `Session` record
//!   (`sessions.rs`); `sessions` (`jti` → record) and `user_sessions`
//!   (user id ++ `jti` → nothing) are what databases of schema 2 held:
//!   moved into lists at open, then dropped
//! - `meta`: `schema` (u32 BE), `user_count`, `max_ttl` (the longest token
//!   lifetime ever configured), `id_base` (u64 BE), `index_key` (the
//!   32-byte secret of the indexes' bucket hash; not in backups). The file `latch-schema`
//!   beside the database says the schema was written.
//!
//! Every write method that acknowledges something to a client returns only
//! after sled has flushed. Writers hold `gate` shared; a backup holds it
//! exclusively, so its export is consistent (`backup.rs`).

mod api_keys;
mod backup;
mod bans;
#[cfg(feature = "bench")]
mod bulk;
mod by_id;
mod cutoffs;
mod index;
mod prune;
mod records;
mod revocations;
mod sessions;
mod totp;
mod users;

use std::path::Path;
use std::sync::{Arc, RwLock};

use sled::{Db, Tree};

use crate::error::{Error, Kind, Result};
#[cfg(test)]
use crate::model::Cutoff;

pub use backup::Backup;
pub use sessions::MAX_SESSIONS_PER_USER;
pub use users::{NewUser, Write};

/// The schema this build reads and writes. 2: revocations in buckets
/// (`revocations.rs`); 3: sessions in one list per user (`sessions.rs`),
/// user records and the unique indexes in buckets (`by_id.rs`,
/// `index.rs`).
/// A database of schema 1 or 2 is upgraded at open. Any
/// change to the set of trees or to a record's encoding takes a new
/// version: a latch that does not know a schema refuses to open it, so an
/// older binary never serves a database it would misread (a rollback
/// would otherwise forget every revocation).
pub const SCHEMA_VERSION: u32 = 3;

/// Schema 1: revocations one entry each in `revoked`.
const SCHEMA_V1: u32 = 1;

/// Schema 2: sessions one entry each in `sessions`, indexed by
/// `user_sessions`.
const SCHEMA_V2: u32 = 2;

/// Trees of schema 2 that schema 3 keeps elsewhere (see `finish_moves`).
const LEGACY_TREES: [&str; 5] = ["users", "user_sessions", "sessions", "usernames", "emails"];

/// `meta` key present while a restore is writing (see `Store::restore`).
const RESTORING: &str = "restoring";

/// File in the data directory saying a schema was written (see
/// `check_schema`).
const SCHEMA_MARKER: &str = "latch-schema";

/// The largest id generated or restored, leaving room for ids to come.
const MAX_ID: u64 = u64::MAX / 2;

/// `meta` key of the id base (see `Store::id_base`).
const ID_BASE: &str = "id_base";

/// `meta` key of the longest token lifetime ever configured.
const MAX_TTL: &str = "max_ttl";

/// `meta` key of the secret the indexes' buckets are hashed with.
const INDEX_KEY: &str = "index_key";

/// How many entries the bulk writers put in one sled batch. sled holds a
/// batch's place in its log open until the batch ends, so the space the
/// batch's own rewrites free is not reused meanwhile, and its file (which
/// never shrinks) grows. A million users, revocations and sessions take
/// 248-260 MB on disk at 1,000 a batch, 324-339 MB at 10,000 (BENCHMARKS.md,
/// issue 15). Smaller batches cost more than they save: 273 MB at 100.
const BATCH: usize = 1_000;

/// Writes each bucket or list as given (`None`: its entry goes), [`BATCH`]
/// to a sled batch (sled's memory for a batch also grows faster than the
/// batch). The bulk writers' one loop (a restore, the seeder, a move from
/// schema 2).
fn apply_in_batches<K: AsRef<[u8]>>(
    tree: &Tree,
    writes: impl IntoIterator<Item = Result<(K, Option<Vec<u8>>)>>,
) -> Result<()> {
    let mut batch = sled::Batch::default();
    for (n, write) in writes.into_iter().enumerate() {
        match write? {
            (key, Some(value)) => batch.insert(key.as_ref(), value),
            (key, None) => batch.remove(key.as_ref()),
        }
        if n % BATCH == BATCH - 1 {
            tree.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}

/// The secret of the indexes' bucket hash, made (durably) for a new
/// database or one of a schema before it. Anywhere else a missing one is
/// damage: under a new secret every name would look free.
fn index_secret(db: &Db) -> Result<[u8; 32]> {
    let meta = db.open_tree("meta")?;
    if let Some(v) = meta.get(INDEX_KEY)? {
        return v
            .as_ref()
            .try_into()
            .map_err(|_| Error::store("the index key is corrupt"));
    }
    let schema = meta.get("schema")?;
    let before_it = [SCHEMA_V1, SCHEMA_V2].map(u32::to_be_bytes);
    if schema.is_some_and(|v| !before_it.iter().any(|b| v.as_ref() == b)) {
        return Err(Error::store(
            "the database's index key is missing: it is corrupt; restore it from a backup",
        ));
    }
    let secret = crate::crypto::random_bytes::<32>()?;
    // Only where no other was written meanwhile.
    let _ = meta.compare_and_swap(INDEX_KEY, None::<&[u8]>, Some(&secret[..]))?;
    db.flush()?;
    let stored = meta
        .get(INDEX_KEY)?
        .ok_or_else(|| Error::store("the index key was not written"))?;
    stored
        .as_ref()
        .try_into()
        .map_err(|_| Error::store("the index key is corrupt"))
}

/// sled's page cache, in bytes. sled's default (1 GiB) lets a big database
/// keep every page it ever read: with a million users, sessions and
/// revocations that was 378 MiB of RSS. The hot path reads memory, not
/// sled, so a small cache costs it nothing (BENCHMARKS.md, issue 15).
const CACHE_BYTES: u64 = 32 << 20;

/// How sled is opened on `dir`: with its pages compressed (zstd) or not.
/// A new database is compressed: one of a million users, sessions and
/// revocations takes less than half the disk (BENCHMARKS.md, issue 15).
/// sled fixes the choice when it creates a database, so one made before
/// stays as it was.
fn config(dir: &Path, compressed: bool) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .use_compression(compressed)
}

/// Whether `dir` holds a database whose `conf` (where sled keeps whether
/// it is compressed) is gone or cut short. sled would write a new one with
/// the setting it is asked for, then read the pages with it: over a
/// database made with the other setting that is a corrupt read, and the
/// wrong `conf` stays behind.
fn lost_its_settings(dir: &Path) -> bool {
    let len = |name| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    len("db") > 0 && len("conf") <= 8
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    users: by_id::ById,
    usernames: index::Index,
    emails: index::Index,
    revocations: Tree,
    legacy_revoked: Tree,
    cutoffs: Tree,
    fresh: Tree,
    keys: Tree,
    user_keys: Tree,
    meta: Tree,
    bans: Tree,
    session_lists: Tree,
    totp: Tree,
    /// Ids are `id_base` + sled's generated ids: a restored backup sets the
    /// base past every id it holds, so new ids never collide with them.
    id_base: u64,
    /// Writers hold it shared while they change trees; a backup holds it
    /// exclusively while it reads them all. A std lock: never held across
    /// an await.
    gate: Arc<RwLock<()>>,
}

impl Store {
    /// Whether `dir` holds a latch database (its schema marker).
    pub fn exists(dir: &Path) -> bool {
        dir.join(SCHEMA_MARKER).is_file()
    }

    /// Opens (creating if needed) the database in `dir`, made private to
    /// its owner. A directory locked by another process ([`Kind::Locked`]),
    /// a corrupt database or a newer schema is an error.
    pub fn open(dir: &Path) -> Result<Store> {
        private_directory(dir)?;
        // sled may panic on some damaged files; that is a corrupt database,
        // reported like any other, not a crash loop.
        let open = |compressed| {
            std::panic::catch_unwind(|| config(dir, compressed).open()).map_err(|_| {
                Error::store(format_args!(
                    "database in {} is corrupt; restore it from a backup",
                    dir.display()
                ))
            })
        };
        if lost_its_settings(dir) {
            return Err(Error::store(format_args!(
                "database in {} has lost sled's conf file: it is incomplete; \
                 restore it from a backup",
                dir.display()
            )));
        }
        // sled refuses, before it writes or locks anything, to open a
        // database made uncompressed as compressed: then it is opened as
        // it was made.
        let db = match open(true)? {
            Err(sled::Error::Unsupported(why)) if why.contains("compression") => open(false)?,
            opened => opened,
        }
        .map_err(|e| open_error(dir, e))?;
        let secret = index_secret(&db)?;
        let mut store = Store {
            users: by_id::ById {
                tree: db.open_tree("user_buckets")?,
            },
            usernames: index::Index::new(db.open_tree("username_buckets")?, &secret),
            emails: index::Index::new(db.open_tree("email_buckets")?, &secret),
            revocations: db.open_tree("revocations")?,
            legacy_revoked: db.open_tree("revoked")?,
            cutoffs: db.open_tree("cutoffs")?,
            fresh: db.open_tree("fresh")?,
            keys: db.open_tree("keys")?,
            user_keys: db.open_tree("user_keys")?,
            meta: db.open_tree("meta")?,
            bans: db.open_tree("bans")?,
            session_lists: db.open_tree("session_lists")?,
            totp: db.open_tree("totp")?,
            id_base: 0,
            gate: Arc::default(),
            db,
        };
        store.id_base = store.meta_u64(ID_BASE)?.unwrap_or(0);
        store.check_schema(dir)?;
        store.finish_moves()?;
        if store.meta.contains_key(RESTORING)? {
            return Err(Error::store(format_args!(
                "a restore into {} did not finish; remove the directory and restore again",
                dir.display()
            )));
        }
        Ok(store)
    }

    /// Checks (or, on a new database, writes) the schema version. A marker
    /// file beside sled's own records that the schema was written once:
    /// sled reads a damaged log as if it ended early, so a database that
    /// lost its schema record is corrupt, not new.
    fn check_schema(&self, dir: &Path) -> Result<()> {
        let marker = dir.join(SCHEMA_MARKER);
        match self.meta.get("schema")? {
            None if marker.exists() => Err(Error::store(format_args!(
                "database in {} is corrupt or incomplete (its schema record is missing); \
                 restore it from a backup",
                dir.display()
            ))),
            None => {
                self.meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                write_marker(&marker)
            }
            // The marker is written after the schema record; a crash in
            // between leaves it to write now.
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_be_bytes() && !marker.exists() => {
                write_marker(&marker)
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_be_bytes() => Ok(()),
            // Upgraded in place: should it stop half-way, the database is
            // still of its old schema and the next open does it again.
            // The sessions' and indexes' trees are moved after the new
            // schema is written (`finish_moves`): an older latch then
            // refuses a database whose move stopped half-way.
            Some(v)
                if (v.as_ref() == SCHEMA_V1.to_be_bytes()
                    || v.as_ref() == SCHEMA_V2.to_be_bytes())
                    && marker.exists() =>
            {
                self.move_legacy_revocations()?;
                self.meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            Some(v) => Err(Error::store(format_args!(
                "database schema {:?} is not {SCHEMA_VERSION}; is it from another latch version?",
                v.as_ref()
            ))),
        }
    }

    /// Moves what a database of schema 2 kept in trees of its own (a
    /// record per session, an entry per name) into lists and buckets, then
    /// drops those trees. Runs at every open while any is left, so a move
    /// that stopped half-way is finished by the next open.
    fn finish_moves(&self) -> Result<()> {
        let names = self.db.tree_names();
        let present = |tree: &str| names.iter().any(|n| n == tree.as_bytes());
        let legacy = LEGACY_TREES.into_iter().filter(|t| present(t));
        let legacy: Vec<&str> = legacy.collect();
        if legacy.is_empty() {
            return Ok(());
        }
        if present("users") {
            self.copy_legacy_users()?;
        }
        if present("sessions") {
            self.copy_legacy_sessions()?;
        }
        if present("users") || present("usernames") || present("emails") {
            self.rebuild_indexes()?;
        }
        self.db.flush()?;
        for tree in legacy {
            // Dropped, not cleared: a clear removes entry by entry (most
            // of a minute for a million).
            self.db.drop_tree(tree)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Shared access for a writer (see `gate`).
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A `meta` entry holding a u64.
    fn meta_u64(&self, key: &str) -> Result<Option<u64>> {
        self.meta
            .get(key)?
            .map(|v| records::be_u64(&v, key))
            .transpose()
    }

    /// Waits until every write so far is on disk.
    pub async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(Error::internal)??;
        Ok(())
    }

    /// A fresh unique id (users, keys, cutoff sequence numbers).
    pub fn new_id(&self) -> Result<u64> {
        self.db
            .generate_id()?
            .checked_add(self.id_base + 1)
            .filter(|&id| id <= MAX_ID)
            .ok_or_else(|| Error::store("ids are exhausted"))
    }

    /// The longest token lifetime ever configured (a high-water mark kept
    /// so pruning cutoffs never revives a token issued under a longer one),
    /// raised to `ttl` if that is longer.
    pub fn raise_max_ttl(&self, ttl: u64) -> Result<u64> {
        let stored = self.meta_u64(MAX_TTL)?.unwrap_or(0);
        if ttl > stored {
            self.meta.insert(MAX_TTL, &ttl.to_be_bytes())?;
            self.db.flush()?;
        }
        Ok(stored.max(ttl))
    }
}

/// Creates `dir` (0700), or makes an existing one private: the database
/// holds password and key hashes.
fn private_directory(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::store(format_args!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
    let open = std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 != 0);
    if open {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            Error::store(format_args!(
                "data directory {} is open to other users and cannot be made private: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(())
}

/// Writes the schema marker durably (file and directory entry).
fn write_marker(marker: &Path) -> Result<()> {
    crate::fsutil::write_private(marker, format!("{SCHEMA_VERSION}\n").as_bytes())
        .map_err(|e| Error::store(format_args!("cannot write {}: {e}", marker.display())))
}

fn open_error(dir: &Path, e: sled::Error) -> Error {
    let text = e.to_string();
    match &e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || text.contains("lock") =>
        {
            Error::with_cause(
                Kind::Locked,
                format_args!(
                    "data directory {} is in use by another process (is latch already running?)",
                    dir.display()
                ),
            )
        }
        sled::Error::Corruption { .. } => Error::store(format_args!(
            "database in {} is corrupt; restore it from a backup",
            dir.display()
        )),
        _ => Error::store(format_args!(
            "cannot open database in {}: {text}",
            dir.display()
        )),
    }
}

/// A store on a temporary directory, for the store's and the service's
/// unit tests; removed on drop.
#[cfg(test)]
pub(crate) struct TempStore {
    pub store: Store,
    dir: crate::fsutil::TempDir,
}

#[cfg(test)]
impl TempStore {
    pub fn new() -> TempStore {
        let dir = crate::fsutil::TempDir::new("store");
        TempStore {
            store: Store::open(dir.path()).unwrap(),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Opens `dir` again once an earlier handle on it is dropped: sled lets
/// go of its lock from its own threads, a moment later.
#[cfg(test)]
pub(crate) fn reopen(dir: &Path) -> Result<Store> {
    for _ in 0..1_000 {
        match Store::open(dir) {
            Err(e) if e.kind() == Kind::Locked => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            opened => return opened,
        }
    }
    Store::open(dir)
}

/// Marks `store` as of `schema`, durably: a database as an older latch
/// left it, for the upgrade tests.
#[cfg(test)]
pub(crate) fn mark_schema(store: &Store, schema: u32) {
    store.meta.insert("schema", &schema.to_be_bytes()).unwrap();
    store.db.flush().unwrap();
}

/// A cutoff for tests.
#[cfg(test)]
pub(crate) fn cutoff(at: u64, seq: u64) -> Cutoff {
    Cutoff {
        at,
        deleted: false,
        seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_locked() {
        let t = TempStore::new();
        let e = Store::open(t.dir()).err().unwrap();
        assert_eq!(e.kind(), Kind::Locked);
        assert!(e.to_string().contains("in use"), "{e}");
    }

    #[test]
    fn ids_are_unique_and_the_schema_is_written() {
        let t = TempStore::new();
        let a = t.store.new_id().unwrap();
        let b = t.store.new_id().unwrap();
        assert!(b > a);
        assert!(t.dir().join(SCHEMA_MARKER).exists());
        assert_eq!(t.store.raise_max_ttl(600).unwrap(), 600);
        assert_eq!(t.store.raise_max_ttl(60).unwrap(), 600, "a high-water mark");
    }

    #[test]
    fn a_lost_schema_record_is_corruption_not_a_new_database() {
        let t = TempStore::new();
        t.store.meta.remove("schema").unwrap();
        let e = t.store.check_schema(t.dir()).unwrap_err();
        assert!(e.to_string().contains("corrupt or incomplete"), "{e}");
        t.store.meta.insert("schema", &99u32.to_be_bytes()).unwrap();
        let e = t.store.check_schema(t.dir()).unwrap_err();
        assert!(e.to_string().contains("another latch version"), "{e}");
    }

    #[test]
    fn the_trees_are_those_of_the_schema() {
        // A tree added, renamed or re-encoded needs a new SCHEMA_VERSION
        // (and its upgrade in `check_schema`): an older latch must refuse
        // the database, not misread it. Change this list only with it.
        let t = TempStore::new();
        let mut trees: Vec<String> = t
            .store
            .db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| n != "__sled__default")
            .collect();
        trees.sort();
        let expected = [
            "bans",
            "cutoffs",
            "email_buckets",
            "fresh",
            "keys",
            "meta",
            "revocations",
            "revoked",
            "session_lists",
            "totp",
            "user_buckets",
            "user_keys",
            "username_buckets",
        ];
        assert_eq!(
            (SCHEMA_VERSION, trees),
            (3, expected.map(String::from).to_vec())
        );
    }

    #[test]
    fn a_lost_index_key_is_damage_not_a_new_key() {
        // Found by review: under a new key every name would look free.
        let dir = crate::fsutil::TempDir::new("index-key");
        {
            let store = Store::open(dir.path()).unwrap();
            store.meta.remove(INDEX_KEY).unwrap();
            store.db.flush().unwrap();
        }
        let e = reopen(dir.path()).err().unwrap();
        assert!(e.to_string().contains("index key is missing"), "{e}");
    }

    #[test]
    fn a_new_database_is_compressed_and_an_uncompressed_one_still_opens() {
        let compressed = |dir: &Path, yes: bool| {
            let db = config(dir, yes).open();
            db.map(drop).map_err(|e| e.to_string())
        };
        let new = crate::fsutil::TempDir::new("compressed");
        let id = {
            let store = Store::open(new.path()).unwrap();
            store.new_id().unwrap()
        };
        let refused = compressed(new.path(), false).unwrap_err();
        assert!(refused.contains("compression"), "{refused}");

        // A database made before compression (sled cannot change it).
        let old = crate::fsutil::TempDir::new("uncompressed");
        compressed(old.path(), false).unwrap();
        let older = reopen(old.path()).unwrap().new_id().unwrap();
        // Still uncompressed, and its ids go on.
        let refused = compressed(old.path(), true).unwrap_err();
        assert!(refused.contains("compression"), "{refused}");
        assert!(reopen(old.path()).unwrap().new_id().unwrap() > older);
        assert!(reopen(new.path()).unwrap().new_id().unwrap() > id);
    }

    #[test]
    fn a_database_without_its_conf_is_refused_untouched() {
        // Found by review: sled wrote a compressed `conf` over an
        // uncompressed database, then failed to read it.
        let dir = crate::fsutil::TempDir::new("conf");
        {
            let db = config(dir.path(), false).open().unwrap();
            db.insert("k", "v").unwrap();
            db.flush().unwrap();
        }
        reopen(dir.path()).unwrap();
        for cut in [None, Some(&b"short"[..])] {
            let conf = dir.path().join("conf");
            match cut {
                None => std::fs::remove_file(&conf).unwrap(),
                Some(bytes) => std::fs::write(&conf, bytes).unwrap(),
            }
            let e = reopen(dir.path()).err().unwrap();
            assert!(e.to_string().contains("lost sled's conf file"), "{e}");
            let left = std::fs::read(&conf).ok();
            assert_eq!(left.as_deref(), cut, "left as it was");
        }
    }

    #[test]
    fn a_restore_that_did_not_finish_does_not_open() {
        let dir = crate::fsutil::TempDir::new("restoring");
        {
            let store = Store::open(dir.path()).unwrap();
            store.meta.insert(RESTORING, &[]).unwrap();
            store.db.flush().unwrap();
        }
        let e = reopen(dir.path()).err().unwrap();
        assert!(e.to_string().contains("did not finish"), "{e}");
    }
}
