//! The store: sled and the on-disk encoding, nothing else.
//!
//! Trees:
//! - `users`: user id (u64 BE) → versioned user record
//! - `usernames`: lowercased username → user id (unique index)
//! - `emails`: lowercased email → user id (unique index)
//! - `revoked`: token `jti` (16 bytes) → version byte + expiry (u64 BE)
//! - `cutoffs`: user id → versioned [`Cutoff`]: tokens issued before it are
//!   refused (logout everywhere, password change, deletion)
//! - `fresh`: token `jti` → version byte + expiry + cutoff seq (u64 BE):
//!   written by versions before credential epochs (tokens issued in the
//!   very second of their user's cutoff); read by nobody now, pruned as
//!   they expire, kept in backups
//! - `keys`: SHA-256 of an API key → versioned [`ApiKey`] record
//! - `user_keys`: user id (u64 BE) ++ key id (u64 BE) → SHA-256 of the key
//! - `bans`: `u` ++ user id (u64 BE), or `s` ++ an IPv4 or IPv6 address
//!   (4 or 16 bytes) → version byte + end of the ban (u64 BE); brute-force
//!   bans, kept so a restart does not lift them (not in backups)
//! - `meta`: `schema` → schema version (u32 BE); `user_count` (u64 BE);
//!   `max_ttl` → the longest
//!   token lifetime ever configured (u64 BE). The file `latch-schema`
//!   beside the database says the schema was written.
//!
//! Records are their own types: a version byte, then a bincode body. An
//! unknown version is an error, never a panic. Every write method that
//! acknowledges something to a client returns only after sled has flushed.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use bincode::{Decode, Encode};
use sled::transaction::{abort, Transactional as _};
use sled::{Db, Tree};

use crate::error::{Error, Kind, Result};
use crate::regulation::Ban;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// `meta` key of the user count.
const USER_COUNT: &str = "user_count";

/// Adjusts the user count inside a transaction.
fn add_to_count(
    meta: &sled::transaction::TransactionalTree,
    delta: i64,
) -> std::result::Result<(), sled::transaction::ConflictableTransactionError<Error>> {
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

/// File in the data directory saying a schema was written (see `check_schema`).
const SCHEMA_MARKER: &str = "latch-schema";

const USER_V1: u8 = 1;
const EXPIRY_V1: u8 = 1;
const CUTOFF_V1: u8 = 1;
const KEY_V1: u8 = 1;

/// A user as the rest of latch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id, never reused.
    pub id: u64,
    /// The name as registered (lookups ignore case).
    pub username: String,
    /// Optional email, unique when present.
    pub email: Option<String>,
    /// scrypt PHC string.
    pub password_hash: String,
    /// Group names, passed on by forward auth.
    pub groups: Vec<String>,
    /// Registration time, seconds since the epoch.
    pub created_at: u64,
}

/// Version 1 of the stored user record. Never change it: add a version.
#[derive(Encode, Decode)]
struct UserRecordV1 {
    username: String,
    email: Option<String>,
    password_hash: String,
    groups: Vec<String>,
    created_at: u64,
}

/// A user's token cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    /// Tokens with `iat` before this second are refused; in this second,
    /// only those recorded as fresh are accepted.
    pub at: u64,
    /// The account was deleted: its API keys are refused too.
    pub deleted: bool,
    /// Unique per cutoff (from [`Store::new_id`]): a token recorded as fresh
    /// counts only for the cutoff it was issued after, not a later one in
    /// the same second.
    pub seq: u64,
}

#[derive(Encode, Decode)]
struct CutoffRecordV1 {
    at: u64,
    deleted: bool,
    seq: u64,
}

/// An API key, without its secret (only a hash of that is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id, unique across users.
    pub id: u64,
    /// Owner.
    pub user_id: u64,
    /// Owner's username (usernames never change), so verifying a key is one read.
    pub username: String,
    /// Name the owner gave it.
    pub name: String,
    /// Creation time.
    pub created_at: u64,
    /// Refused from this second on, if set.
    pub expires_at: Option<u64>,
    /// Last successful use, recorded at most about once a minute.
    pub last_used_at: Option<u64>,
}

#[derive(Encode, Decode)]
struct ApiKeyRecordV1 {
    id: u64,
    user_id: u64,
    username: String,
    name: String,
    created_at: u64,
    expires_at: Option<u64>,
    last_used_at: Option<u64>,
}

/// Records are small; a damaged length prefix must not make a decode
/// allocate without bound.
const MAX_RECORD: usize = 1 << 20;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// A version byte, then the bincode body.
fn encode<T: Encode>(version: u8, record: &T) -> Vec<u8> {
    let mut out = vec![version];
    bincode::encode_into_std_write(record, &mut out, bincode_config())
        .expect("writing to a Vec cannot fail");
    out
}

/// Decodes a record written by [`encode`] with `version`; `what` names it
/// in errors.
fn decode<T: Decode<()>>(version: u8, bytes: &[u8], what: &dyn Fn() -> String) -> Result<T> {
    match bytes.split_first() {
        Some((&v, body)) if v == version => bincode::decode_from_slice(body, bincode_config())
            .map(|(record, _)| record)
            .map_err(|e| Error::store(format_args!("{} is corrupt: {e}", what()))),
        Some((v, _)) => Err(Error::store(format_args!(
            "{} has unknown version {v}; is this database from a newer latch?",
            what()
        ))),
        None => Err(Error::store(format_args!("{} is empty", what()))),
    }
}

fn encode_user(user: &User) -> Vec<u8> {
    encode(
        USER_V1,
        &UserRecordV1 {
            username: user.username.clone(),
            email: user.email.clone(),
            password_hash: user.password_hash.clone(),
            groups: user.groups.clone(),
            created_at: user.created_at,
        },
    )
}

fn decode_user(id: u64, bytes: &[u8]) -> Result<User> {
    let r: UserRecordV1 = decode(USER_V1, bytes, &|| format!("user record {id}"))?;
    Ok(User {
        id,
        username: r.username,
        email: r.email,
        password_hash: r.password_hash,
        groups: r.groups,
        created_at: r.created_at,
    })
}

fn encode_key(key: &ApiKey) -> Vec<u8> {
    encode(
        KEY_V1,
        &ApiKeyRecordV1 {
            id: key.id,
            user_id: key.user_id,
            username: key.username.clone(),
            name: key.name.clone(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
        },
    )
}

fn decode_key(bytes: &[u8]) -> Result<ApiKey> {
    let r: ApiKeyRecordV1 = decode(KEY_V1, bytes, &|| "an API key record".to_owned())?;
    Ok(ApiKey {
        id: r.id,
        user_id: r.user_id,
        username: r.username,
        name: r.name,
        created_at: r.created_at,
        expires_at: r.expires_at,
        last_used_at: r.last_used_at,
    })
}

fn encode_expiry(exp: u64) -> [u8; 9] {
    let mut value = [0u8; 9];
    value[0] = EXPIRY_V1;
    value[1..].copy_from_slice(&exp.to_be_bytes());
    value
}

fn decode_expiry(bytes: &[u8]) -> Result<u64> {
    match bytes {
        [EXPIRY_V1, rest @ ..] => rest
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| Error::store("an expiry record is corrupt")),
        _ => Err(Error::store("an expiry record has an unknown version")),
    }
}

fn be_u64(bytes: &[u8], what: &str) -> Result<u64> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Error::store(format_args!("{what} is corrupt")))
}

/// The key of the unique indexes: case-insensitive.
fn index_key(name: &str) -> Vec<u8> {
    name.to_lowercase().into_bytes()
}

fn user_key_index(user_id: u64, key_id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&user_id.to_be_bytes());
    k[8..].copy_from_slice(&key_id.to_be_bytes());
    k
}

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

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    users: Tree,
    usernames: Tree,
    emails: Tree,
    revoked: Tree,
    cutoffs: Tree,
    fresh: Tree,
    keys: Tree,
    user_keys: Tree,
    meta: Tree,
    bans: Tree,
    /// Ids are `id_base` + sled's generated ids: a restored backup sets the
    /// base past every id it holds, so new ids never collide with them.
    id_base: u64,
    /// Writers hold it shared while they change trees; a backup holds it
    /// exclusively while it reads them all, so the export is consistent.
    /// A std lock: never held across an await.
    gate: Arc<RwLock<()>>,
}

/// Trees a backup holds, in order.
const BACKUP_TREES: [&str; 9] = [
    "users",
    "usernames",
    "emails",
    "revoked",
    "cutoffs",
    "fresh",
    "keys",
    "user_keys",
    "meta",
];

/// The format version of backup files.
const BACKUP_FORMAT: u32 = 1;

/// The largest id a restore accepts, leaving room for ids to come.
const MAX_ID: u64 = u64::MAX / 2;

/// `meta` key of the id base (see `Store::id_base`).
const ID_BASE: &str = "id_base";

impl Store {
    /// Opens (creating if needed) the database in `dir`. A directory locked
    /// by another process, a corrupt database or a newer schema is an error.
    pub fn open(dir: &Path) -> Result<Store> {
        {
            use std::os::unix::fs::DirBuilderExt as _;
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
        }
        // The database holds password and key hashes: owner only, even
        // when the directory was made beforehand with a looser mode.
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(dir) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| {
                            Error::store(format_args!(
                                "data directory {} is open to other users and cannot be made private: {e}",
                                dir.display()
                            ))
                        })?;
                }
            }
        }
        // sled may panic on some damaged files; that is a corrupt database,
        // reported like any other, not a crash loop.
        let opened =
            std::panic::catch_unwind(|| sled::Config::new().path(dir).open()).map_err(|_| {
                Error::store(format_args!(
                    "database in {} is corrupt; restore it from a backup",
                    dir.display()
                ))
            })?;
        let db = opened.map_err(|e| open_error(dir, e))?;
        let store = Store {
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            emails: db.open_tree("emails")?,
            revoked: db.open_tree("revoked")?,
            cutoffs: db.open_tree("cutoffs")?,
            fresh: db.open_tree("fresh")?,
            keys: db.open_tree("keys")?,
            user_keys: db.open_tree("user_keys")?,
            meta: db.open_tree("meta")?,
            bans: db.open_tree("bans")?,
            id_base: 0,
            gate: Arc::default(),
            db,
        };
        let mut store = store;
        store.id_base = store
            .meta
            .get(ID_BASE)?
            .map(|v| be_u64(&v, "the id base"))
            .transpose()?
            .unwrap_or(0);
        store.check_schema(dir)?;
        Ok(store)
    }

    /// Checks (or, on a new database, writes) the schema version. A marker
    /// file beside sled's own records that the schema was written once: sled
    /// reads a damaged log as if it ended early, so a database that lost its
    /// schema record is corrupt, not new.
    fn check_schema(&self, dir: &Path) -> Result<()> {
        let marker = dir.join(SCHEMA_MARKER);
        match self.meta.get("schema")? {
            None if marker.exists() => Err(Error::store(format_args!(
                "database in {} is corrupt or incomplete (its schema record is missing); restore it from a backup",
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
            Some(v) => Err(Error::store(format_args!(
                "database schema {:?} is not {SCHEMA_VERSION}; is it from another latch version?",
                v.as_ref()
            ))),
        }
    }

    /// Shared access for a writer (see `gate`).
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a consistent export of every tree to `out` (writers wait
    /// meanwhile). Returns the number of entries.
    pub fn export(&self, out: &mut impl Write) -> Result<usize> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let fail = |e: std::io::Error| Error::store(format_args!("cannot write the backup: {e}"));
        let header = serde_json::json!({"latch_backup": BACKUP_FORMAT, "schema": SCHEMA_VERSION});
        writeln!(out, "{header}").map_err(fail)?;
        let mut count = 0;
        for name in BACKUP_TREES {
            let tree = self.db.open_tree(name)?;
            for entry in tree.iter() {
                let (key, value) = entry?;
                if name == "meta"
                    && (key.as_ref() == b"schema" || key.as_ref() == ID_BASE.as_bytes())
                {
                    continue;
                }
                let line = serde_json::json!({
                    "tree": name,
                    "key": crate::crypto::b64_encode(&key),
                    "value": crate::crypto::b64_encode(&value),
                });
                writeln!(out, "{line}").map_err(fail)?;
                count += 1;
            }
        }
        writeln!(out, "{}", serde_json::json!({"end": count})).map_err(fail)?;
        out.flush().map_err(fail)?;
        Ok(count)
    }

    /// Loads an export made by [`Store::export`] into this store, which must
    /// be empty. Records are checked (versions, sizes) before anything is
    /// written; ids generated afterwards start past every restored one.
    pub fn restore(&mut self, input: impl BufRead) -> Result<usize> {
        let bad = |what: &str| Error::store(format_args!("the backup is not valid: {what}"));
        let empty = ["users", "revoked", "keys", "cutoffs"]
            .iter()
            .all(|t| self.db.open_tree(t).map(|t| t.is_empty()).unwrap_or(false));
        if !empty {
            return Err(Error::store(
                "the data directory already holds users or tokens; restore into an empty one",
            ));
        }
        let mut lines = input.lines();
        let header: serde_json::Value = lines
            .next()
            .ok_or_else(|| bad("it is empty"))?
            .map_err(|e| bad(&e.to_string()))
            .and_then(|l| serde_json::from_str(&l).map_err(|_| bad("no header")))?;
        if header["latch_backup"] != BACKUP_FORMAT || header["schema"] != SCHEMA_VERSION {
            return Err(bad("unknown format or schema version"));
        }
        let mut batches: std::collections::BTreeMap<&str, sled::Batch> = BACKUP_TREES
            .iter()
            .map(|name| (*name, sled::Batch::default()))
            .collect();
        let (mut count, mut max_id, mut ended) = (0usize, 0u64, false);
        for line in lines {
            let line = line.map_err(|e| bad(&e.to_string()))?;
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|_| bad("a line is not JSON"))?;
            if let Some(end) = v.get("end") {
                if end.as_u64() != Some(count as u64) {
                    return Err(bad("the entry count does not match (truncated?)"));
                }
                ended = true;
                break;
            }
            let tree = v["tree"]
                .as_str()
                .ok_or_else(|| bad("an entry has no tree"))?;
            let batch = batches
                .get_mut(tree)
                .ok_or_else(|| bad("an unknown tree"))?;
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .and_then(|s| crate::crypto::b64_decode(s.as_bytes()))
                    .ok_or_else(|| bad("an entry is not base64"))
            };
            let (key, value) = (field("key")?, field("value")?);
            // Every record is decoded and every key sized now, so a
            // crafted file cannot leave a database that fails later.
            let sized = |n: usize| {
                if key.len() == n {
                    Ok(())
                } else {
                    Err(bad("a key has the wrong size"))
                }
            };
            match tree {
                "users" => {
                    sized(8)?;
                    let id = be_u64(&key, "a user id")?;
                    decode_user(id, &value)?;
                    max_id = max_id.max(id);
                }
                "keys" => {
                    sized(32)?;
                    max_id = max_id.max(decode_key(&value)?.id);
                }
                "cutoffs" => {
                    sized(8)?;
                    max_id = max_id.max(decode_cutoff(&value)?.seq);
                }
                "revoked" => {
                    sized(crate::token::JTI_LEN)?;
                    decode_expiry(&value)?;
                }
                "fresh" => {
                    sized(crate::token::JTI_LEN)?;
                    if value.len() != 17 {
                        return Err(bad("a fresh-token record has the wrong size"));
                    }
                    decode_expiry(&value[..9])?;
                }
                "user_keys" => {
                    sized(16)?;
                    if value.len() != 32 {
                        return Err(bad("a key index entry has the wrong size"));
                    }
                }
                "usernames" | "emails" if value.len() != 8 => {
                    return Err(bad("an index entry has the wrong size"));
                }
                "meta"
                    if !(key == USER_COUNT.as_bytes() || key == b"max_ttl") || value.len() != 8 =>
                {
                    return Err(bad("an unexpected meta entry"));
                }
                _ => {}
            }
            if max_id > MAX_ID {
                return Err(bad("an id is out of range"));
            }
            batch.insert(key, value);
            count += 1;
        }
        if !ended {
            return Err(bad("it ends early (truncated?)"));
        }
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        // The id base first, durably: should the restore die half-way, new
        // ids still cannot collide with the records already written.
        let base = self.id_base.max(max_id);
        self.meta.insert(ID_BASE, &base.to_be_bytes())?;
        self.db.flush()?;
        self.id_base = base;
        for (name, batch) in batches {
            self.db.open_tree(name)?.apply_batch(batch)?;
        }
        self.db.flush()?;
        Ok(count)
    }

    /// Waits until every write so far is on disk.
    pub async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(Error::internal)??;
        Ok(())
    }

    /// Flushes from a synchronous context (CLI without a server).
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    // ---- users ----

    /// Creates a user; a taken username or email is a 409 conflict.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User> {
        let id = self.new_id()?;
        let user = User {
            id,
            username: new.username.to_owned(),
            email: new.email.map(str::to_owned),
            password_hash: new.password_hash,
            groups: new.groups,
            created_at: new.created_at,
        };
        let record = encode_user(&user);
        let name_key = index_key(&user.username);
        let email_key = user.email.as_deref().map(index_key);
        let id_bytes = id.to_be_bytes();
        let gate = self.shared();
        (&self.users, &self.usernames, &self.emails, &self.meta).transaction(
            |(users, names, emails, meta)| {
                // An id is never reused; a collision is a bug, not a user.
                if users.get(id_bytes)?.is_some() {
                    return abort(Error::internal("a new user id is already taken"));
                }
                if names.get(&name_key)?.is_some() {
                    return abort(Error::new(Kind::Conflict("username is taken")));
                }
                if let Some(key) = &email_key {
                    if emails.get(key)?.is_some() {
                        return abort(Error::new(Kind::Conflict("email is taken")));
                    }
                    emails.insert(key.as_slice(), &id_bytes)?;
                }
                names.insert(name_key.as_slice(), &id_bytes)?;
                users.insert(&id_bytes, record.as_slice())?;
                add_to_count(meta, 1)?;
                Ok(())
            },
        )?;
        drop(gate);
        self.flush().await?;
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: u64) -> Result<Option<User>> {
        self.users
            .get(id.to_be_bytes())?
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

    fn user_by_index(&self, index: &Tree, name: &str) -> Result<Option<User>> {
        match index.get(index_key(name))? {
            Some(id) => self.user(be_u64(&id, "a user index entry")?),
            None => Ok(None),
        }
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>> {
        self.users
            .iter()
            .map(|entry| {
                let (id, bytes) = entry?;
                decode_user(be_u64(&id, "a user id")?, &bytes)
            })
            .collect()
    }

    /// How many users exist (a counter kept beside them: sled's own
    /// `len` scans the whole tree).
    pub fn user_count(&self) -> usize {
        self.meta
            .get(USER_COUNT)
            .ok()
            .flatten()
            .and_then(|v| be_u64(&v, "the user count").ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Applies `change` to the user's record atomically (compare-and-swap,
    /// retried if the record changed meanwhile) and flushes. `None` when
    /// the user does not exist.
    pub async fn modify_user(
        &self,
        id: u64,
        mut change: impl FnMut(&mut User),
    ) -> Result<Option<User>> {
        let key = id.to_be_bytes();
        loop {
            let Some(old) = self.users.get(key)? else {
                return Ok(None);
            };
            let mut user = decode_user(id, &old)?;
            change(&mut user);
            let new = encode_user(&user);
            let swapped = {
                let _gate = self.shared();
                self.users.compare_and_swap(key, Some(old), Some(new))?
            };
            if swapped.is_ok() {
                self.flush().await?;
                return Ok(Some(user));
            }
        }
    }

    /// Sets (or, with `None`, removes) a user's email and its unique index
    /// entry in one transaction; a taken email is a 409. `None` when the
    /// user does not exist.
    pub async fn change_email(&self, id: u64, email: Option<&str>) -> Result<Option<User>> {
        let key = id.to_be_bytes();
        let new_index = email.map(index_key);
        let gate = self.shared();
        let updated = (&self.users, &self.emails).transaction(|(users, emails)| {
            let Some(old) = users.get(key)? else {
                return Ok(None);
            };
            let mut user = decode_user(id, &old)
                .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
            if let Some(index) = &new_index {
                match emails.get(index)? {
                    Some(owner) if owner.as_ref() != key => {
                        return abort(Error::new(Kind::Conflict("email is taken")));
                    }
                    _ => {}
                }
            }
            if let Some(old_email) = &user.email {
                emails.remove(index_key(old_email))?;
            }
            if let Some(index) = &new_index {
                emails.insert(index.as_slice(), &key)?;
            }
            user.email = email.map(str::to_owned);
            users.insert(&key, encode_user(&user))?;
            Ok(Some(user))
        })?;
        drop(gate);
        self.flush().await?;
        Ok(updated)
    }

    /// Replaces a user's password hash and sets their cutoff in one
    /// transaction, so no earlier token outlives the old password.
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
        let id = user.id.to_be_bytes();
        let gate = self.shared();
        let changed = (&self.users, &self.cutoffs).transaction(|(users, cutoffs)| {
            if users.get(id)?.as_deref() != Some(old.as_slice()) {
                return Ok(false);
            }
            users.insert(&id, new.as_slice())?;
            cutoffs.insert(&id, encode_cutoff(cutoff))?;
            Ok(true)
        })?;
        drop(gate);
        self.flush().await?;
        Ok(changed)
    }

    /// Replaces a user's password hash unless the record changed meanwhile
    /// (then the newer record wins). Used to upgrade the hash cost at login;
    /// nothing is acknowledged, so no flush is awaited.
    pub fn upgrade_password_hash(&self, user: &User, password_hash: String) -> Result<()> {
        let old = encode_user(user);
        let new = encode_user(&User {
            password_hash,
            ..user.clone()
        });
        let _gate = self.shared();
        let _ = self
            .users
            .compare_and_swap(user.id.to_be_bytes(), Some(old), Some(new))?;
        Ok(())
    }

    /// Deletes the user, their indexes and API keys, and records `cutoff`
    /// (marked deleted) in one transaction.
    pub async fn delete_user(&self, user: &User, cutoff: Cutoff) -> Result<()> {
        let key_entries: Vec<(sled::IVec, sled::IVec)> = self
            .user_keys
            .scan_prefix(user.id.to_be_bytes())
            .collect::<std::result::Result<_, _>>()?;
        let id = user.id.to_be_bytes();
        let name_key = index_key(&user.username);
        let email_key = user.email.as_deref().map(index_key);
        let gate = self.shared();
        (
            &self.users,
            &self.usernames,
            &self.emails,
            &self.cutoffs,
            &self.keys,
            &self.user_keys,
            &self.meta,
        )
            .transaction(|(users, names, emails, cutoffs, keys, user_keys, meta)| {
                if users.remove(&id)?.is_some() {
                    add_to_count(meta, -1)?;
                }
                names.remove(name_key.as_slice())?;
                if let Some(e) = &email_key {
                    emails.remove(e.as_slice())?;
                }
                for (index, hash) in &key_entries {
                    keys.remove(hash)?;
                    user_keys.remove(index)?;
                }
                cutoffs.insert(&id, encode_cutoff(cutoff))?;
                Ok::<_, sled::transaction::ConflictableTransactionError<Error>>(())
            })?;
        drop(gate);
        self.flush().await
    }

    /// Loads users in bulk, one batch per tree and no flush (call
    /// [`Store::flush_blocking`] after): for seeding benchmarks. Ids must
    /// come from [`Store::new_id`] and names must be new.
    pub fn import_users(&self, users: &[User]) -> Result<()> {
        let (mut records, mut names, mut emails) = (
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        );
        for user in users {
            let id = user.id.to_be_bytes();
            records.insert(&id, encode_user(user));
            names.insert(index_key(&user.username), &id);
            if let Some(email) = &user.email {
                emails.insert(index_key(email), &id);
            }
        }
        self.users.apply_batch(records)?;
        self.usernames.apply_batch(names)?;
        self.emails.apply_batch(emails)?;
        let count = self.user_count() as u64 + users.len() as u64;
        self.meta.insert(USER_COUNT, &count.to_be_bytes())?;
        Ok(())
    }

    /// Loads revocations in bulk, without a flush (see [`Store::import_users`]).
    pub fn import_revocations(
        &self,
        revocations: &[([u8; crate::token::JTI_LEN], u64)],
    ) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (jti, exp) in revocations {
            batch.insert(jti, &encode_expiry(*exp));
        }
        self.revoked.apply_batch(batch)?;
        Ok(())
    }

    // ---- revocation ----

    /// Records that the token `jti` is revoked until `exp`.
    pub async fn revoke(&self, jti: &[u8], exp: u64) -> Result<()> {
        {
            let _gate = self.shared();
            self.revoked.insert(jti, &encode_expiry(exp))?;
        }
        self.flush().await
    }

    /// Whether the token `jti` was revoked. One sled read.
    pub fn is_revoked(&self, jti: &[u8]) -> Result<bool> {
        Ok(self.revoked.contains_key(jti)?)
    }

    /// Sets a user's cutoff (logout everywhere).
    pub async fn set_cutoff(&self, user_id: u64, cutoff: Cutoff) -> Result<()> {
        {
            let _gate = self.shared();
            self.cutoffs
                .insert(user_id.to_be_bytes(), encode_cutoff(cutoff))?;
        }
        self.flush().await
    }

    /// Every cutoff, to load into memory at start.
    pub fn cutoffs(&self) -> Result<Vec<(u64, Cutoff)>> {
        self.cutoffs
            .iter()
            .map(|entry| {
                let (id, bytes) = entry?;
                Ok((be_u64(&id, "a cutoff key")?, decode_cutoff(&bytes)?))
            })
            .collect()
    }

    /// Every stored revocation: (jti, expiry).
    pub fn revocations(&self) -> Result<Vec<([u8; crate::token::JTI_LEN], u64)>> {
        self.revoked
            .iter()
            .filter_map(|entry| match entry {
                Ok((jti, value)) => {
                    let jti = <[u8; crate::token::JTI_LEN]>::try_from(jti.as_ref()).ok()?;
                    Some(decode_expiry(&value).map(|exp| (jti, exp)))
                }
                Err(e) => Some(Err(e.into())),
            })
            .collect()
    }

    /// How many revocations are stored.
    pub fn revocation_count(&self) -> usize {
        self.revoked.len()
    }

    // ---- API keys ----

    /// Stores a new key under the hash of its secret, if the owner still
    /// exists and its credential epoch (the seq of its cutoff, 0 for none)
    /// is still `epoch`: NotFound otherwise. The key's `id` must come from
    /// [`Store::new_id`].
    pub async fn create_key(&self, key: &ApiKey, hash: &[u8; 32], epoch: u64) -> Result<()> {
        let record = encode_key(key);
        let index = user_key_index(key.user_id, key.id);
        let owner = key.user_id.to_be_bytes();
        let gate = self.shared();
        (&self.users, &self.cutoffs, &self.keys, &self.user_keys).transaction(
            |(users, cutoffs, keys, user_keys)| {
                // The owner may have been deleted, or its password changed,
                // since the request was authenticated; a key must not outlive
                // the proof it was made with.
                if users.get(owner)?.is_none() {
                    return abort(Error::new(Kind::NotFound));
                }
                let current = match cutoffs.get(owner)? {
                    Some(bytes) => {
                        decode_cutoff(&bytes)
                            .map_err(sled::transaction::ConflictableTransactionError::Abort)?
                            .seq
                    }
                    None => 0,
                };
                if current != epoch {
                    return abort(Error::new(Kind::NotFound));
                }
                keys.insert(hash, record.as_slice())?;
                user_keys.insert(&index, hash)?;
                Ok(())
            },
        )?;
        drop(gate);
        self.flush().await
    }

    /// A fresh unique id (for keys).
    pub fn new_id(&self) -> Result<u64> {
        self.db
            .generate_id()?
            .checked_add(self.id_base + 1)
            .filter(|&id| id <= MAX_ID)
            .ok_or_else(|| Error::store("ids are exhausted"))
    }

    /// The key whose secret hashes to `hash`. One sled read.
    pub fn key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        self.keys.get(hash)?.map(|b| decode_key(&b)).transpose()
    }

    /// A user's keys, by id.
    pub fn user_keys(&self, user_id: u64) -> Result<Vec<ApiKey>> {
        let mut out = Vec::new();
        for entry in self.user_keys.scan_prefix(user_id.to_be_bytes()) {
            let (_, hash) = entry?;
            if let Some(bytes) = self.keys.get(&hash)? {
                out.push(decode_key(&bytes)?);
            }
        }
        Ok(out)
    }

    /// Deletes a user's key; false when that user has no such key.
    pub async fn delete_key(&self, user_id: u64, key_id: u64) -> Result<bool> {
        let index = user_key_index(user_id, key_id);
        let gate = self.shared();
        let deleted = (&self.keys, &self.user_keys).transaction(|(keys, user_keys)| {
            let Some(hash) = user_keys.remove(&index)? else {
                return Ok(false);
            };
            keys.remove(hash)?;
            Ok(true)
        })?;
        drop(gate);
        if deleted {
            self.flush().await?;
        }
        Ok(deleted)
    }

    /// Deletes every key of a user; returns how many.
    pub async fn delete_user_keys(&self, user_id: u64) -> Result<usize> {
        let entries: Vec<(sled::IVec, sled::IVec)> = self
            .user_keys
            .scan_prefix(user_id.to_be_bytes())
            .collect::<std::result::Result<_, _>>()?;
        if entries.is_empty() {
            return Ok(0);
        }
        let gate = self.shared();
        (&self.keys, &self.user_keys).transaction(|(keys, user_keys)| {
            for (index, hash) in &entries {
                keys.remove(hash)?;
                user_keys.remove(index)?;
            }
            Ok::<_, sled::transaction::ConflictableTransactionError<Error>>(())
        })?;
        drop(gate);
        self.flush().await?;
        Ok(entries.len())
    }

    /// Records last-use times (off the request path; not acknowledged to
    /// anyone, so sled's periodic flush is enough). Keys deleted meanwhile
    /// stay deleted.
    pub fn touch_keys(&self, uses: &[([u8; 32], u64)]) -> Result<()> {
        let _gate = self.shared();
        for (hash, at) in uses {
            let _ = self.keys.fetch_and_update(hash, |old| {
                let mut key = decode_key(old?).ok()?;
                key.last_used_at = Some(key.last_used_at.map_or(*at, |t| t.max(*at)));
                Some(encode_key(&key))
            })?;
        }
        Ok(())
    }

    // ---- bans ----

    /// Records a brute-force ban durably.
    pub async fn put_ban(&self, ban: Ban) -> Result<()> {
        let (key, until) = ban_key(ban);
        {
            let _gate = self.shared();
            self.bans.insert(key, &encode_expiry(until))?;
        }
        self.flush().await
    }

    /// Removes a stored ban (its end is ignored); whether there was one.
    pub async fn delete_ban(&self, ban: Ban) -> Result<bool> {
        let (key, _) = ban_key(ban);
        let removed = {
            let _gate = self.shared();
            self.bans.remove(key)?.is_some()
        };
        self.flush().await?;
        Ok(removed)
    }

    /// Every stored ban that has not ended at `now`.
    pub fn bans(&self, now: u64) -> Result<Vec<Ban>> {
        let mut out = Vec::new();
        for entry in self.bans.iter() {
            let (key, value) = entry?;
            let until = decode_expiry(&value)?;
            if until > now {
                out.push(decode_ban(&key, until)?);
            }
        }
        Ok(out)
    }

    // ---- housekeeping ----

    /// The longest token lifetime ever configured (a high-water mark kept so
    /// pruning cutoffs never revives a token issued under a longer one).
    pub fn raise_max_ttl(&self, ttl: u64) -> Result<u64> {
        let stored = self
            .meta
            .get("max_ttl")?
            .map(|v| be_u64(&v, "meta max_ttl"))
            .transpose()?
            .unwrap_or(0);
        if ttl > stored {
            self.meta.insert("max_ttl", &ttl.to_be_bytes())?;
            self.db.flush()?;
        }
        Ok(stored.max(ttl))
    }

    /// Drops what can no longer matter at `now`: revocations and fresh
    /// records of expired tokens, cutoffs older than every token they could
    /// refuse (`max_ttl`), and expired API keys. Returns entries removed.
    /// Returns how many entries went, and the cutoffs that went (user id,
    /// seq), so the caller drops exactly those from memory.
    pub async fn prune(&self, now: u64, max_ttl: u64) -> Result<(usize, Vec<(u64, u64)>)> {
        let gate = self.shared();
        let mut removed = 0;
        let mut cutoffs = Vec::new();
        for tree in [&self.revoked, &self.fresh] {
            for entry in tree.iter() {
                let (jti, value) = entry?;
                // A fresh record starts with the same 9 bytes as an expiry.
                if decode_expiry(value.get(..9).unwrap_or(&value))? <= now {
                    tree.remove(jti)?;
                    removed += 1;
                }
            }
        }
        for entry in self.cutoffs.iter() {
            let (id, value) = entry?;
            let cutoff = decode_cutoff(&value)?;
            // Every token with iat <= cutoff.at has exp <= cutoff.at + max_ttl.
            if cutoff.at.saturating_add(max_ttl) < now {
                // Only if unchanged meanwhile.
                let swapped = self
                    .cutoffs
                    .compare_and_swap(&id, Some(value), None::<&[u8]>)?;
                if swapped.is_ok() {
                    cutoffs.push((be_u64(&id, "a cutoff key")?, cutoff.seq));
                }
                removed += 1;
            }
        }
        for entry in self.bans.iter() {
            let (key, value) = entry?;
            if decode_expiry(&value)? <= now {
                let _ = self
                    .bans
                    .compare_and_swap(key, Some(value), None::<&[u8]>)?;
                removed += 1;
            }
        }
        for entry in self.keys.iter() {
            let (hash, value) = entry?;
            let key = decode_key(&value)?;
            if key.expires_at.is_some_and(|e| e <= now) {
                self.keys.remove(&hash)?;
                self.user_keys.remove(user_key_index(key.user_id, key.id))?;
                removed += 1;
            }
        }
        drop(gate);
        if removed > 0 {
            self.flush().await?;
        }
        Ok((removed, cutoffs))
    }
}

/// The `bans` key of a ban, and its end.
fn ban_key(ban: Ban) -> (Vec<u8>, u64) {
    match ban {
        Ban::User(id, until) => ([&b"u"[..], &id.to_be_bytes()].concat(), until),
        Ban::Source(IpAddr::V4(ip), until) => ([&b"s"[..], &ip.octets()].concat(), until),
        Ban::Source(IpAddr::V6(ip), until) => ([&b"s"[..], &ip.octets()].concat(), until),
    }
}

fn decode_ban(key: &[u8], until: u64) -> Result<Ban> {
    match key {
        [b'u', id @ ..] => Ok(Ban::User(be_u64(id, "a ban key")?, until)),
        [b's', ip @ ..] => match ip.len() {
            4 => Ok(Ban::Source(
                IpAddr::from(<[u8; 4]>::try_from(ip).expect("4 bytes")),
                until,
            )),
            16 => Ok(Ban::Source(
                IpAddr::from(<[u8; 16]>::try_from(ip).expect("16 bytes")),
                until,
            )),
            _ => Err(Error::store("a ban key is corrupt")),
        },
        _ => Err(Error::store("a ban key is corrupt")),
    }
}

fn encode_cutoff(c: Cutoff) -> Vec<u8> {
    encode(
        CUTOFF_V1,
        &CutoffRecordV1 {
            at: c.at,
            deleted: c.deleted,
            seq: c.seq,
        },
    )
}

fn decode_cutoff(bytes: &[u8]) -> Result<Cutoff> {
    let r: CutoffRecordV1 = decode(CUTOFF_V1, bytes, &|| "a cutoff record".to_owned())?;
    Ok(Cutoff {
        at: r.at,
        deleted: r.deleted,
        seq: r.seq,
    })
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
            Error::store(format_args!(
                "data directory {} is in use by another process (is latch already running?)",
                dir.display()
            ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: 3,
            username: "alice".into(),
            email: Some("a@example.com".into()),
            password_hash: "$scrypt$x".into(),
            groups: vec!["admins".into()],
            created_at: 5,
        }
    }

    #[test]
    fn records_round_trip() {
        let u = user();
        assert_eq!(decode_user(3, &encode_user(&u)).unwrap(), u);
        let k = ApiKey {
            id: 9,
            user_id: 3,
            username: "alice".into(),
            name: "ci".into(),
            created_at: 1,
            expires_at: Some(2),
            last_used_at: None,
        };
        assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        let c = Cutoff {
            at: 7,
            deleted: true,
            seq: 9,
        };
        assert_eq!(decode_cutoff(&encode_cutoff(c)).unwrap(), c);
        assert_eq!(decode_expiry(&encode_expiry(42)).unwrap(), 42);
        for ban in [
            Ban::User(7, 9),
            Ban::Source("203.0.113.7".parse().unwrap(), 9),
            Ban::Source("2001:db8::1".parse().unwrap(), 9),
        ] {
            let (key, until) = ban_key(ban);
            assert_eq!(decode_ban(&key, until).unwrap(), ban);
        }
        assert!(decode_ban(b"s123", 1).is_err());
        assert!(decode_ban(b"x", 1).is_err());
    }

    #[test]
    fn unknown_version_is_an_error() {
        let mut bytes = encode_user(&user());
        bytes[0] = 99;
        let e = decode_user(3, &bytes).unwrap_err();
        assert!(e.to_string().contains("unknown version 99"), "{e}");
        assert!(decode_user(3, &[]).is_err());
        assert!(decode_user(3, &[USER_V1, 0xff]).is_err());
        assert!(decode_expiry(&[2, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_expiry(&[EXPIRY_V1, 0]).is_err());
        assert!(decode_key(&[KEY_V1 + 1]).is_err());
        assert!(decode_cutoff(&[]).is_err());
    }
}
