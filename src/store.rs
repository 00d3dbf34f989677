//! The store: sled and the on-disk encoding, nothing else.
//!
//! Trees:
//! - `users`: user id (u64 big-endian) → versioned [`UserRecord`]
//! - `usernames`: lowercased username → user id (unique index)
//! - `emails`: lowercased email → user id (unique index)
//! - `revoked`: token `jti` (16 bytes) → version byte + expiry (u64 BE)
//! - `meta`: `schema` → schema version (u32 BE); the file `latch-schema`
//!   beside the database says it was written
//!
//! Records are their own types: a version byte, then a bincode body. An
//! unknown version is an error, never a panic. Every write method returns
//! only after sled has flushed it to disk.

use std::path::Path;

use bincode::{Decode, Encode};
use sled::transaction::{abort, Transactional as _};
use sled::{Db, Tree};

use crate::error::{Error, Kind, Result};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// File in the data directory saying a schema was written (see `check_schema`).
const SCHEMA_MARKER: &str = "latch-schema";

const USER_V1: u8 = 1;
const REVOKED_V1: u8 = 1;

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

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

fn encode_user(user: &User) -> Vec<u8> {
    let record = UserRecordV1 {
        username: user.username.clone(),
        email: user.email.clone(),
        password_hash: user.password_hash.clone(),
        groups: user.groups.clone(),
        created_at: user.created_at,
    };
    let mut out = vec![USER_V1];
    bincode::encode_into_std_write(&record, &mut out, bincode_config())
        .expect("writing to a Vec cannot fail");
    out
}

fn decode_user(id: u64, bytes: &[u8]) -> Result<User> {
    match bytes.split_first() {
        Some((&USER_V1, body)) => {
            let (r, _): (UserRecordV1, usize) = bincode::decode_from_slice(body, bincode_config())
                .map_err(|e| Error::store(format_args!("user record {id} is corrupt: {e}")))?;
            Ok(User {
                id,
                username: r.username,
                email: r.email,
                password_hash: r.password_hash,
                groups: r.groups,
                created_at: r.created_at,
            })
        }
        Some((v, _)) => Err(Error::store(format_args!(
            "user record {id} has unknown version {v}; is this database from a newer latch?"
        ))),
        None => Err(Error::store(format_args!("user record {id} is empty"))),
    }
}

/// The key of the unique indexes: case-insensitive.
fn index_key(name: &str) -> Vec<u8> {
    name.to_lowercase().into_bytes()
}

/// A new account, before it has an id.
pub struct NewUser<'a> {
    /// Username, already validated.
    pub username: &'a str,
    /// Optional email, already validated.
    pub email: Option<&'a str>,
    /// scrypt PHC string.
    pub password_hash: String,
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
}

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
            db,
        };
        store.check_schema(dir)?;
        Ok(store)
    }

    /// Checks (or, on a new database, writes) the schema version. A marker
    /// file beside sled's own records that the schema was written once: sled
    /// reads a damaged log as if it ended early, so a database that lost its
    /// schema record is corrupt, not new.
    fn check_schema(&self, dir: &Path) -> Result<()> {
        let meta = self.db.open_tree("meta")?;
        let marker = dir.join(SCHEMA_MARKER);
        match meta.get("schema")? {
            None if marker.exists() => Err(Error::store(format_args!(
                "database in {} is corrupt or incomplete (its schema record is missing); restore it from a backup",
                dir.display()
            ))),
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                std::fs::write(&marker, format!("{SCHEMA_VERSION}\n")).map_err(|e| {
                    Error::store(format_args!("cannot write {}: {e}", marker.display()))
                })?;
                Ok(())
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_be_bytes() => Ok(()),
            Some(v) => Err(Error::store(format_args!(
                "database schema {:?} is not {SCHEMA_VERSION}; is it from another latch version?",
                v.as_ref()
            ))),
        }
    }

    /// Waits until every write so far is on disk.
    pub async fn flush(&self) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(Error::internal)??;
        Ok(())
    }

    /// Flushes from a synchronous context (shutdown, CLI).
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Creates a user; a taken username or email is a 409 conflict.
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User> {
        let id = self.db.generate_id()? + 1;
        let user = User {
            id,
            username: new.username.to_owned(),
            email: new.email.map(str::to_owned),
            password_hash: new.password_hash,
            groups: Vec::new(),
            created_at: new.created_at,
        };
        let record = encode_user(&user);
        let name_key = index_key(&user.username);
        let email_key = user.email.as_deref().map(index_key);
        let id_bytes = id.to_be_bytes();
        (&self.users, &self.usernames, &self.emails).transaction(|(users, names, emails)| {
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
            Ok(())
        })?;
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
        let Some(id) = index.get(index_key(name))? else {
            return Ok(None);
        };
        let id = u64::from_be_bytes(
            id.as_ref()
                .try_into()
                .map_err(|_| Error::store("a user index entry is corrupt"))?,
        );
        self.user(id)
    }

    /// Replaces a user's password hash, unless the record changed meanwhile
    /// (then the newer record wins and this is a no-op).
    pub async fn replace_password_hash(&self, user: &User, password_hash: String) -> Result<()> {
        let old = encode_user(user);
        let new = encode_user(&User {
            password_hash,
            ..user.clone()
        });
        let swapped = self
            .users
            .compare_and_swap(user.id.to_be_bytes(), Some(old), Some(new))?;
        if swapped.is_ok() {
            self.flush().await?;
        }
        Ok(())
    }

    /// Records that the token `jti` is revoked until `exp`.
    pub async fn revoke(&self, jti: &[u8], exp: u64) -> Result<()> {
        let mut value = [0u8; 9];
        value[0] = REVOKED_V1;
        value[1..].copy_from_slice(&exp.to_be_bytes());
        self.revoked.insert(jti, &value)?;
        self.flush().await
    }

    /// Whether the token `jti` was revoked. One sled read.
    pub fn is_revoked(&self, jti: &[u8]) -> Result<bool> {
        Ok(self.revoked.contains_key(jti)?)
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
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
    fn user_record_round_trip() {
        let u = user();
        assert_eq!(decode_user(3, &encode_user(&u)).unwrap(), u);
    }

    #[test]
    fn unknown_version_is_an_error() {
        let mut bytes = encode_user(&user());
        bytes[0] = 99;
        let e = decode_user(3, &bytes).unwrap_err();
        assert!(e.to_string().contains("unknown version 99"), "{e}");
        assert!(decode_user(3, &[]).is_err());
        assert!(decode_user(3, &[USER_V1, 0xff]).is_err());
    }
}
