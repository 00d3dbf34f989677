//! Backup and restore: a consistent export of every tree as JSON lines
//! (base64 keys and values), and a restore into an empty store that checks
//! every record before it writes anything.
//!
//! The file: a header `{"latch_backup":1,"schema":3}`, one line per entry
//! `{"tree","key","value"}`, and `{"end":N}` with the entry count, so a
//! truncated file is refused. Bans and the store's own `meta` entries
//! (schema, id base) are not exported. Revocations and sessions are
//! written one line each (`revoked`, `sessions`: `jti` → record), as
//! before they were stored in buckets and lists, so backups of every
//! schema read alike; the `user_sessions` lines of older backups are
//! checked and dropped (a session record names its user). The unique
//! indexes are written a line per name (`usernames`, `emails`: name →
//! user id, in name order); a restore checks those lines and rebuilds the
//! indexes from the user records, refusing two users of one name.
//!
//! It never overwrites: a restore goes only into an empty store.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::records::{
    be_u64, decode_cutoff, decode_expiry, decode_key, decode_session, decode_totp, decode_user,
    encode_expiry, encode_session, index_key, user_key,
};
use super::revocations::{bucket_of, Revocation};
use super::users::USER_COUNT;
use super::{Store, ID_BASE, MAX_ID, MAX_TTL, RESTORING, SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION};
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::{Session, UserId};
use crate::token::JTI_LEN;

/// Trees that may hold entries in a directory a restore goes into.
const NOT_RECORDS: [&[u8]; 2] = [b"meta", b"bans"];

/// Trees a backup holds, in order.
const BACKUP_TREES: [&str; 11] = [
    "users",
    "usernames",
    "emails",
    "revoked",
    "cutoffs",
    "fresh",
    "keys",
    "user_keys",
    "meta",
    "sessions",
    "totp",
];

/// Lines of older backups that are read, checked and dropped: schema 2's
/// per-user session index.
const LEGACY_INDEX: &str = "user_sessions";

/// The format version of backup files.
const BACKUP_FORMAT: u64 = 1;

/// The first line, as written.
#[derive(Serialize)]
struct Header {
    latch_backup: u64,
    schema: u64,
}

/// An entry, as written: key and value in base64 (fields in this order).
#[derive(Serialize)]
struct Entry<'a> {
    key: String,
    tree: &'a str,
    value: String,
}

/// The last line, as written: how many entries came before it.
#[derive(Serialize)]
struct End {
    end: u64,
}

/// The first line, as read: any JSON object; fields it does not know are
/// ignored, and a field of another type reads as absent (so it fails as
/// "unknown format", not as "no header").
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderIn {
    /// First, so an array is never read as the struct below (serde would).
    Array(#[allow(dead_code)] Vec<IgnoredAny>),
    Object {
        #[serde(default)]
        latch_backup: Lenient<u64>,
        #[serde(default)]
        schema: Lenient<u64>,
    },
    Other(IgnoredAny),
}

/// A later line, as read. An object with `end` is the end, whatever else
/// it holds; any other object is an entry; anything else is an entry
/// without a tree.
#[derive(Deserialize)]
#[serde(untagged)]
enum LineIn {
    /// First, so an array is never read as a struct below (serde would).
    Array(#[allow(dead_code)] Vec<IgnoredAny>),
    End {
        end: Lenient<u64>,
    },
    Entry {
        #[serde(default)]
        tree: Lenient<String>,
        #[serde(default)]
        key: Lenient<String>,
        #[serde(default)]
        value: Lenient<String>,
    },
    Other(IgnoredAny),
}

/// A value of type `T`, or `None` when the JSON holds anything else.
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Buffered as whatever it is, then tried as a `T`.
        let any = serde_json::Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(any).ok()))
    }
}

fn invalid(what: &str) -> Error {
    Error::store(format_args!("the backup is not valid: {what}"))
}

impl Store {
    /// Writes a consistent export of every tree to `out` (writers wait
    /// meanwhile). Returns the number of entries.
    pub fn export(&self, out: &mut impl Write) -> Result<usize> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        write_line(
            out,
            &Header {
                latch_backup: BACKUP_FORMAT,
                schema: u64::from(SCHEMA_VERSION),
            },
        )?;
        let mut count = 0;
        for name in BACKUP_TREES {
            self.each_line(name, |key, value| {
                count += 1;
                let entry = Entry {
                    key: crypto::b64_encode(key),
                    tree: name,
                    value: crypto::b64_encode(value),
                };
                write_line(out, &entry)
            })?;
        }
        write_line(out, &End { end: count as u64 })?;
        out.flush().map_err(write_failed)?;
        Ok(count)
    }

    /// Loads a backup read by [`Backup::read`] into this store, which must
    /// be empty; ids generated afterwards start past every restored one.
    pub fn restore(&mut self, backup: Backup) -> Result<usize> {
        if !self.holds_no_records() {
            return Err(Error::store(
                "the data directory already holds users or tokens; restore into an empty one",
            ));
        }
        self.write_restored(backup.0)
    }

    /// Whether no tree holds a record of any kind (a restore goes only
    /// there). Every tree counts, so one added later does too, but `meta`
    /// (every store keeps its settings there) and `bans` (the login
    /// regulation's, which a backup does not hold).
    fn holds_no_records(&self) -> bool {
        self.db
            .tree_names()
            .iter()
            .filter(|name| !NOT_RECORDS.contains(&&name[..]))
            .all(|name| self.db.open_tree(name).is_ok_and(|t| t.is_empty()))
    }

    /// Writes a checked backup; returns its entry count.
    fn write_restored(&mut self, checked: Checked) -> Result<usize> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        // The id base first, durably: should the restore die half-way, new
        // ids still cannot collide with the records already written. With
        // it, a mark that the restore is under way, removed once all is
        // written: a database that still has it does not open (it would
        // serve without the revocations not yet written).
        let base = self.id_base.max(checked.max_id);
        self.meta.insert(ID_BASE, &base.to_be_bytes())?;
        self.meta.insert(RESTORING, &[])?;
        self.db.flush()?;
        self.id_base = base;
        for (name, entries) in checked.entries {
            // Those kept elsewhere are written below.
            if !matches!(
                name,
                "users" | "revoked" | "sessions" | "usernames" | "emails"
            ) {
                let writes = entries.into_iter().map(|(k, v)| Ok((k, Some(v))));
                super::apply_in_batches(&self.db.open_tree(name)?, writes)?;
            }
        }
        self.add_revocations_bulk(checked.revocations)?;
        self.users.add_bulk(checked.users)?;
        self.add_sessions_bulk(checked.sessions)?;
        self.usernames.add_bulk(checked.usernames)?;
        self.emails.add_bulk(checked.emails)?;
        self.db.flush()?;
        self.meta.remove(RESTORING)?;
        self.db.flush()?;
        Ok(checked.count)
    }
}

impl Store {
    /// Calls `line` with the key and value of each line of `tree` in a
    /// backup. Users, names, revocations and sessions are written one line
    /// each, as before this database kept them in buckets and lists.
    fn each_line(
        &self,
        tree: &str,
        mut line: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        if let Some(index) = self.index_named(tree) {
            index.each(|(name, id)| line(&name, &id))?;
            return Ok(());
        }
        match tree {
            "users" => self
                .users
                .each(|(id, record)| line(&id.to_be_bytes(), &record)),
            "revoked" => self
                .each_revocation(|(jti, exp)| line(&jti, &encode_expiry(exp)))
                .map(drop),
            "sessions" => self.each_session(|s| line(&s.id.0, &encode_session(&s))),
            _ => {
                for entry in self.db.open_tree(tree)?.iter() {
                    let (key, value) = entry?;
                    if tree != "meta" || exported_meta(&key) {
                        line(&key, &value)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The unique index a backup's tree name stands for.
    fn index_named(&self, tree: &str) -> Option<&super::index::Index> {
        match tree {
            "usernames" => Some(&self.usernames),
            "emails" => Some(&self.emails),
            _ => None,
        }
    }
}

/// Which `meta` entries a backup carries (not the schema or the id base,
/// which belong to the database it is restored into).
fn exported_meta(key: &[u8]) -> bool {
    key == USER_COUNT.as_bytes() || key == MAX_TTL.as_bytes()
}

/// A backup made by [`Store::export`], read and checked whole before any
/// database is opened: a file refused leaves no trace, and a crafted one
/// cannot leave a database that fails later.
pub struct Backup(Checked);

impl Backup {
    /// Reads `input`, decoding every record and sizing every key. `opens`
    /// says whether a sealed second-factor secret of a user opens with the
    /// storage key at hand: a backup whose secrets do not is refused whole
    /// (they would be lost), unless `drop_totp` leaves them out.
    pub fn read(
        input: impl BufRead,
        opens: &dyn Fn(UserId, &[u8]) -> bool,
        drop_totp: bool,
    ) -> Result<Backup> {
        let mut checked = read_backup(input)?;
        if drop_totp {
            checked.count -= checked.sealed.len();
            checked.sealed.clear();
            checked.entries.insert("totp", Vec::new());
        }
        for (user, sealed) in &checked.sealed {
            if !opens(*user, sealed) {
                return Err(Error::store(
                    "the backup's second-factor secrets do not open with this storage key; \
                     restore with the [storage] encryption_key_file the backup was made with",
                ));
            }
        }
        Ok(Backup(checked))
    }
}

/// An entry as a backup line gives it.
type KeyValue = (Vec<u8>, Vec<u8>);

/// A backup read and checked whole, ready to write.
struct Checked {
    /// The entries of the trees written as they are (cutoffs, keys,
    /// second factors and the like), by tree, in the file's order.
    entries: BTreeMap<&'static str, Vec<KeyValue>>,
    count: usize,
    max_id: u64,
    /// Each second factor's sealed secret, by user.
    sealed: Vec<(UserId, Vec<u8>)>,
    /// Revocations, written into buckets rather than a batch.
    revocations: Vec<Revocation>,
    /// How many revocations each bucket would get.
    per_bucket: std::collections::HashMap<[u8; 2], usize>,
    /// Sessions, written into their users' lists rather than a batch
    /// (past `MAX_SESSIONS_PER_USER` a user's oldest are revoked).
    sessions: Vec<Session>,
    /// User records, written into their buckets.
    users: Vec<super::by_id::Record>,
    /// Their ids, each once.
    user_ids: std::collections::HashSet<u64>,
    /// How many users each bucket (an id's low two bytes) would get.
    users_per_bucket: std::collections::HashMap<[u8; 2], usize>,
    /// The unique indexes' entries, from the user records (not from the
    /// index lines), written into their buckets.
    usernames: Vec<super::index::Entry>,
    emails: Vec<super::index::Entry>,
}

impl Checked {
    /// The whole file was read: no name or email is two users'.
    fn finish(mut self) -> Result<Checked> {
        for (entries, what) in [
            (&mut self.usernames, "two users share a username"),
            (&mut self.emails, "two users share an email"),
        ] {
            entries.sort_unstable();
            if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(invalid(what));
            }
        }
        Ok(self)
    }
}

/// The most revocations a restored bucket may get: random ids put 65,536
/// in one only among some four billion, so more means a crafted file,
/// whose one bucket every revocation after it would rewrite whole.
const MAX_BUCKET: usize = 1 << 16;

/// The most users a restored bucket may get: ids are sequential, so 4,096
/// a bucket is some 268 million users; more means a crafted file, whose
/// one bucket every read of those users would decode whole.
const MAX_USER_BUCKET: usize = 4_096;

/// Reads and checks a backup: header, every entry, the end count.
fn read_backup(input: impl BufRead) -> Result<Checked> {
    let mut lines = input.lines();
    let header: HeaderIn = lines
        .next()
        .ok_or_else(|| invalid("it is empty"))?
        .map_err(|e| invalid(&e.to_string()))
        .and_then(|l| serde_json::from_str(&l).map_err(|_| invalid("no header")))?;
    let known = matches!(
        header,
        HeaderIn::Object {
            latch_backup: Lenient(Some(BACKUP_FORMAT)),
            schema: Lenient(Some(schema)),
        } if [SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION].iter().any(|&v| schema == u64::from(v))
    );
    if !known {
        return Err(invalid("unknown format or schema version"));
    }
    let mut checked = Checked {
        entries: BACKUP_TREES
            .iter()
            .map(|name| (*name, Vec::new()))
            .collect(),
        count: 0,
        max_id: 0,
        sealed: Vec::new(),
        revocations: Vec::new(),
        per_bucket: Default::default(),
        sessions: Vec::new(),
        users: Vec::new(),
        user_ids: Default::default(),
        users_per_bucket: Default::default(),
        usernames: Vec::new(),
        emails: Vec::new(),
    };
    for line in lines {
        let line = line.map_err(|e| invalid(&e.to_string()))?;
        match serde_json::from_str(&line).map_err(|_| invalid("a line is not JSON"))? {
            LineIn::End { end } if end.0 == Some(checked.count as u64) => return checked.finish(),
            LineIn::End { .. } => {
                return Err(invalid("the entry count does not match (truncated?)"))
            }
            LineIn::Entry {
                tree: Lenient(Some(tree)),
                key,
                value,
            } => checked.add(&tree, key.0, value.0)?,
            LineIn::Entry { .. } | LineIn::Array(_) | LineIn::Other(_) => {
                return Err(invalid("an entry has no tree"))
            }
        }
    }
    Err(invalid("it ends early (truncated?)"))
}

impl Checked {
    /// Decodes one entry, checks it, and queues it for its tree.
    fn add(&mut self, tree: &str, key: Option<String>, value: Option<String>) -> Result<()> {
        let decode = |text: Option<String>| {
            text.and_then(|t| crypto::b64_decode(t.as_bytes()))
                .ok_or_else(|| invalid("an entry is not base64"))
        };
        if tree == LEGACY_INDEX {
            check_entry(LEGACY_INDEX, &decode(key)?, &decode(value)?)?;
            self.count += 1;
            return Ok(());
        }
        let (name, entries) = self
            .entries
            .iter_mut()
            .find(|(name, _)| **name == tree)
            .ok_or_else(|| invalid("an unknown tree"))?;
        let (key, value) = (decode(key)?, decode(value)?);
        let id = check_entry(name, &key, &value)?;
        if *name == "totp" {
            let user = UserId::new(be_u64(&key, "a user id")?);
            self.sealed
                .push((user, decode_totp(user, &value)?.sealed_secret));
        }
        self.max_id = self.max_id.max(id);
        if self.max_id > MAX_ID {
            return Err(invalid("an id is out of range"));
        }
        match *name {
            "revoked" => self.add_revocation(&key, &value)?,
            // Checked (above) and dropped: rebuilt from the records.
            "usernames" | "emails" => {}
            "sessions" => self.sessions.push(decode_session(&key, &value)?),
            "users" => self.add_user(id, value)?,
            _ => entries.push((key, value)),
        }
        self.count += 1;
        Ok(())
    }

    /// Queues a revocation for its bucket, unless the file crowds one.
    fn add_revocation(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let jti: [u8; JTI_LEN] = key
            .try_into()
            .map_err(|_| invalid("a key has the wrong size"))?;
        let shared = self.per_bucket.entry(bucket_of(&jti)).or_default();
        *shared += 1;
        if *shared > MAX_BUCKET {
            return Err(invalid("too many revocations share their first bytes"));
        }
        self.revocations.push((jti, decode_expiry(value)?));
        Ok(())
    }

    /// Queues a user record and its index entries, unless its id came
    /// before or the file crowds its bucket.
    fn add_user(&mut self, id: u64, value: Vec<u8>) -> Result<()> {
        if !self.user_ids.insert(id) {
            return Err(invalid("a user id is there twice"));
        }
        let [.., a, b] = id.to_be_bytes();
        let shared = self.users_per_bucket.entry([a, b]).or_default();
        *shared += 1;
        if *shared > MAX_USER_BUCKET {
            return Err(invalid("too many users share a bucket"));
        }
        let user = decode_user(UserId::new(id), &value)?;
        let key = user_key(user.id);
        self.usernames.push((index_key(&user.username), key));
        if let Some(email) = &user.email {
            self.emails.push((index_key(email), key));
        }
        self.users.push((id, value));
        Ok(())
    }
}

/// Checks one entry of `tree`: key size, record version and body. Returns
/// the largest id it holds (0 for none).
fn check_entry(tree: &str, key: &[u8], value: &[u8]) -> Result<u64> {
    let sized = |n: usize| {
        if key.len() == n {
            Ok(())
        } else {
            Err(invalid("a key has the wrong size"))
        }
    };
    match tree {
        "users" => {
            sized(8)?;
            let id = be_u64(key, "a user id")?;
            decode_user(UserId::new(id), value)?;
            Ok(id)
        }
        "keys" => {
            sized(32)?;
            Ok(decode_key(value)?.id.get())
        }
        "cutoffs" => {
            sized(8)?;
            Ok(decode_cutoff(value)?.seq)
        }
        "revoked" => {
            sized(JTI_LEN)?;
            decode_expiry(value).map(|_| 0)
        }
        "fresh" => {
            sized(JTI_LEN)?;
            if value.len() != 17 {
                return Err(invalid("a fresh-token record has the wrong size"));
            }
            decode_expiry(&value[..9]).map(|_| 0)
        }
        "sessions" => {
            sized(JTI_LEN)?;
            // As it will be stored: a list holds records of up to 64 KiB.
            let stored = encode_session(&decode_session(key, value)?);
            if stored.len() > usize::from(u16::MAX) {
                return Err(invalid("a session record is too long"));
            }
            Ok(0)
        }
        "totp" => {
            sized(8)?;
            let id = be_u64(key, "a user id")?;
            decode_totp(UserId::new(id), value).map(|_| 0)
        }
        "user_sessions" if key.len() != 8 + JTI_LEN || !value.is_empty() => {
            Err(invalid("a session index entry has the wrong size"))
        }
        "user_keys" => {
            sized(16)?;
            if value.len() != 32 {
                return Err(invalid("a key index entry has the wrong size"));
            }
            Ok(0)
        }
        "usernames" | "emails" if value.len() != 8 || key.len() > usize::from(u16::MAX) => {
            Err(invalid("an index entry has the wrong size"))
        }
        "meta" if !exported_meta(key) || value.len() != 8 => {
            Err(invalid("an unexpected meta entry"))
        }
        _ => Ok(0),
    }
}

/// Writes one line of JSON.
fn write_line(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string(value).map_err(Error::internal)?;
    writeln!(out, "{json}").map_err(write_failed)
}

fn write_failed(e: std::io::Error) -> Error {
    Error::store(format_args!("cannot write the backup: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::{cutoff, NewUser, TempStore};
    use super::*;

    #[tokio::test]
    async fn a_backup_restores_whole_and_a_truncated_one_not_at_all() {
        let from = TempStore::new();
        let new = NewUser {
            username: "alice",
            email: Some("a@x.test"),
            password_hash: "$scrypt$x".into(),
            groups: vec!["ops".into()],
            created_at: 1,
        };
        let alice = from.store.create_user(new).await.unwrap();
        from.store.revoke(&[1; 16], 1 << 40).await.unwrap();
        from.store.set_cutoff(alice.id, cutoff(3, 4)).await.unwrap();
        let mut file = Vec::new();
        let count = from.store.export(&mut file).unwrap();
        let text = String::from_utf8(file).unwrap();

        let mut into = TempStore::new();
        let truncated: Vec<&str> = text.lines().take(count).collect();
        assert!(restore(&mut into.store, truncated.join("\n").as_bytes()).is_err());
        assert_eq!(into.store.user_count(), 0, "nothing was written");
        assert_eq!(restore(&mut into.store, text.as_bytes()).unwrap(), count);
        assert_eq!(into.store.user(alice.id).unwrap().unwrap(), alice);
        // The indexes, a line per name, land in this store's buckets.
        assert_eq!(into.store.user_by_name("ALICE").unwrap().unwrap(), alice);
        assert_eq!(
            into.store.user_by_email("a@x.test").unwrap().unwrap(),
            alice
        );
        assert!(text.contains(r#""tree":"usernames""#), "{text}");
        assert_eq!(into.store.user_count(), 1);
        assert!(into.store.is_revoked(&[1; 16]).unwrap());
        assert!(into.store.new_id().unwrap() > alice.id.get());
        // Not twice: the store is no longer empty.
        assert!(restore(&mut into.store, text.as_bytes()).is_err());
    }

    #[tokio::test]
    async fn a_restore_refuses_a_directory_with_an_entry_in_any_tree() {
        let from = TempStore::new();
        from.store.revoke(&[1; 16], 1 << 40).await.unwrap();
        let mut file = Vec::new();
        from.store.export(&mut file).unwrap();
        let names = TempStore::new().store.db.tree_names();
        let mut checked = 0;
        for name in names.iter().filter(|n| !NOT_RECORDS.contains(&&n[..])) {
            let mut into = TempStore::new();
            into.store
                .db
                .open_tree(name)
                .unwrap()
                .insert(b"k", b"v")
                .unwrap();
            let refused = restore(&mut into.store, &file[..]);
            let tree = String::from_utf8_lossy(name);
            assert!(refused.is_err(), "an entry in {tree} was restored over");
            checked += 1;
        }
        // `fresh` and `user_keys` were not looked at before.
        assert!(checked >= 10, "{checked} trees");
        // Bans and settings are no records.
        let mut into = TempStore::new();
        into.store.bans.insert(b"k", b"v").unwrap();
        assert_eq!(restore(&mut into.store, &file[..]).unwrap(), 1);
    }

    /// Reads `input` as a backup and restores it into `store`.
    fn restore(store: &mut Store, input: &[u8]) -> Result<usize> {
        store.restore(Backup::read(input, &|_, _| true, false)?)
    }

    /// What reading `lines` (a whole file) fails with, or "ok".
    fn outcome(lines: &[&str]) -> String {
        let text = lines.join("\n");
        match read_backup(text.as_bytes()) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string().replace("the backup is not valid: ", ""),
        }
    }

    #[tokio::test]
    async fn the_file_format_is_as_it_always_was() {
        let t = TempStore::new();
        t.store.revoke(&[1; 16], 1 << 40).await.unwrap();
        let mut file = Vec::new();
        assert_eq!(t.store.export(&mut file).unwrap(), 1);
        let text = String::from_utf8(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"latch_backup":1,"schema":3}"#);
        assert!(lines[1].starts_with(r#"{"key":""#), "{}", lines[1]);
        assert!(
            lines[1].contains(r#","tree":"revoked","value":""#),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], r#"{"end":1}"#);
    }

    #[test]
    fn odd_lines_are_read_as_they_always_were() {
        let head = r#"{"latch_backup":1,"schema":1}"#;
        let entry = format!(
            r#"{{"tree":"revoked","key":"{}","value":"{}","note":1}}"#,
            crypto::b64_encode(&[1; 16]),
            crypto::b64_encode(&super::super::records::encode_expiry(9))
        );
        // Fields latch does not know are ignored, in every line.
        let extra_head = r#"{"latch_backup":1,"schema":1,"x":2}"#;
        assert_eq!(outcome(&[extra_head, &entry, r#"{"end":1,"x":2}"#]), "ok");
        // Schemas 2 and 3 wrote the same lines; a later one is not
        // guessed at.
        for head in [
            r#"{"latch_backup":1,"schema":2}"#,
            r#"{"latch_backup":1,"schema":3}"#,
        ] {
            assert_eq!(outcome(&[head, &entry, r#"{"end":1}"#]), "ok");
        }
        let head4 = r#"{"latch_backup":1,"schema":4}"#;
        assert_eq!(
            outcome(&[head4, &entry, r#"{"end":1}"#]),
            "unknown format or schema version"
        );
        for (lines, why) in [
            (
                vec![r#"{"latch_backup":1}"#],
                "unknown format or schema version",
            ),
            (
                vec![r#"{"latch_backup":"1","schema":1}"#],
                "unknown format or schema version",
            ),
            (vec!["[1]"], "unknown format or schema version"),
            (vec!["{"], "no header"),
            (vec![head, "nope"], "a line is not JSON"),
            (vec![head, "", r#"{"end":0}"#], "a line is not JSON"),
            (vec![head, r#"{"key":"AA=="}"#], "an entry has no tree"),
            (vec![head, r#"{"tree":5}"#], "an entry has no tree"),
            (
                vec![head, r#"["revoked","AA==","AA=="]"#],
                "an entry has no tree",
            ),
            (vec![head, "[0]"], "an entry has no tree"),
            (vec![head, r#"{"tree":"bans"}"#], "an unknown tree"),
            (
                vec![head, r#"{"tree":"revoked","key":null}"#],
                "an entry is not base64",
            ),
            (
                vec![head, r#"{"end":"0"}"#],
                "the entry count does not match (truncated?)",
            ),
            (
                vec![head, r#"{"end":-1}"#],
                "the entry count does not match (truncated?)",
            ),
            (vec![head, &entry], "it ends early (truncated?)"),
        ] {
            assert_eq!(outcome(&lines), why, "{lines:?}");
        }
    }

    #[test]
    fn crafted_entries_are_refused() {
        let b64 = crypto::b64_encode;
        for line in [
            format!(
                r#"{{"tree":"users","key":"{}","value":"{}"}}"#,
                b64(&[0; 7]),
                b64(&[1])
            ),
            format!(
                r#"{{"tree":"meta","key":"{}","value":"{}"}}"#,
                b64(b"id_base"),
                b64(&[0; 8])
            ),
            format!(
                r#"{{"tree":"bans","key":"{}","value":"{}"}}"#,
                b64(b"u1"),
                b64(&[1])
            ),
            format!(
                r#"{{"tree":"keys","key":"{}","value":"{}"}}"#,
                b64(&[0; 32]),
                b64(&[9])
            ),
            r#"{"tree":"users","key":"!!","value":"!!"}"#.to_owned(),
        ] {
            let text = format!("{{\"latch_backup\":1,\"schema\":1}}\n{line}\n{{\"end\":1}}\n");
            assert!(read_backup(text.as_bytes()).is_err(), "{line}");
        }
    }

    #[test]
    fn revocations_crafted_into_one_bucket_are_refused() {
        let file = |n: usize| {
            let mut text = String::from("{\"latch_backup\":1,\"schema\":2}\n");
            let exp = crypto::b64_encode(&super::super::records::encode_expiry(9));
            for i in 0..n {
                let mut jti = [0u8; 16];
                jti[8..].copy_from_slice(&(i as u64).to_be_bytes());
                let key = crypto::b64_encode(&jti);
                text +=
                    &format!("{{\"tree\":\"revoked\",\"key\":\"{key}\",\"value\":\"{exp}\"}}\n");
            }
            text + &format!("{{\"end\":{n}}}\n")
        };
        assert!(read_backup(file(MAX_BUCKET).as_bytes()).is_ok());
        let e = read_backup(file(MAX_BUCKET + 1).as_bytes()).err().unwrap();
        assert!(e.to_string().contains("share their first bytes"), "{e}");
    }

    fn a_session(user: u64, i: u64) -> Session {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&i.to_be_bytes());
        Session {
            id: crate::model::SessionId(id),
            user_id: UserId::new(user),
            created_at: i,
            last_seen_at: i,
            expires_at: 1 << 40,
            epoch: 0,
            address: None,
            user_agent: "curl/8".into(),
            remember: false,
            domain: None,
            factors: crate::model::Factors::Password,
        }
    }

    /// A line of `tree` with this key and value.
    fn line(tree: &str, key: &[u8], value: &[u8]) -> String {
        let b64 = crypto::b64_encode;
        format!(
            r#"{{"tree":"{tree}","key":"{}","value":"{}"}}"#,
            b64(key),
            b64(value)
        )
    }

    #[tokio::test]
    async fn sessions_go_out_a_line_each_and_schema_2_backups_restore_into_lists() {
        let sessions = [a_session(7, 1), a_session(7, 2), a_session(8, 3)];
        // As schema 2 wrote them: a line per record and per index entry.
        let mut text = String::from("{\"latch_backup\":1,\"schema\":2}\n");
        for s in &sessions {
            text += &line("sessions", &s.id.0, &encode_session(s));
            text += "\n";
            let mut index = s.user_id.get().to_be_bytes().to_vec();
            index.extend_from_slice(&s.id.0);
            text += &line("user_sessions", &index, &[]);
            text += "\n";
        }
        text += "{\"end\":6}\n";
        let mut into = TempStore::new();
        let restored = restore(&mut into.store, text.as_bytes()).unwrap();
        assert_eq!(restored, 6);
        assert_eq!(
            into.store.user_sessions(UserId::new(7)).unwrap(),
            &sessions[..2]
        );
        assert_eq!(
            into.store.user_sessions(UserId::new(8)).unwrap(),
            &sessions[2..]
        );

        // Exported again: a line per session, no index, and back the same.
        let mut file = Vec::new();
        assert_eq!(into.store.export(&mut file).unwrap(), 3);
        let out = String::from_utf8(file).unwrap();
        assert_eq!(out.matches(r#""tree":"sessions""#).count(), 3, "{out}");
        assert!(!out.contains("user_sessions"), "{out}");
        let mut again = TempStore::new();
        restore(&mut again.store, out.as_bytes()).unwrap();
        assert_eq!(
            again.store.user_sessions(UserId::new(7)).unwrap(),
            &sessions[..2]
        );

        // A schema 2 index line of the wrong size is still refused.
        let bad = line("user_sessions", &[0; 23], &[]);
        let text = format!("{{\"latch_backup\":1,\"schema\":2}}\n{bad}\n{{\"end\":1}}\n");
        let e = read_backup(text.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("wrong size"), "{e}");
    }

    #[test]
    fn sessions_past_the_cap_are_restored_revoked_and_long_ones_refused() {
        let cap = super::super::MAX_SESSIONS_PER_USER as u64;
        let mut text = String::from("{\"latch_backup\":1,\"schema\":2}\n");
        for i in 0..cap + 2 {
            let s = a_session(7, i);
            text += &line("sessions", &s.id.0, &encode_session(&s));
            text += "\n";
        }
        text += &format!("{{\"end\":{}}}\n", cap + 2);
        let mut into = TempStore::new();
        restore(&mut into.store, text.as_bytes()).unwrap();
        let kept = into.store.user_sessions(UserId::new(7)).unwrap();
        assert_eq!(kept.len() as u64, cap);
        assert_eq!(kept[0], a_session(7, 2), "the newest are kept");
        for i in 0..2 {
            let dropped = a_session(7, i);
            assert!(into.store.is_revoked(&dropped.id.0).unwrap(), "{i}");
        }
        assert!(!into.store.is_revoked(&kept[0].id.0).unwrap());

        // A record that would not fit a list is refused before anything is
        // written.
        let mut long = a_session(7, 1);
        long.user_agent = "x".repeat(70_000);
        let text = format!(
            "{{\"latch_backup\":1,\"schema\":3}}\n{}\n{{\"end\":1}}\n",
            line("sessions", &long.id.0, &encode_session(&long))
        );
        let e = read_backup(text.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("too long"), "{e}");
    }

    #[test]
    fn the_indexes_are_rebuilt_from_the_users_and_a_shared_name_is_refused() {
        let user = |id: u64, name: &str| crate::model::User {
            id: UserId::new(id),
            username: name.into(),
            email: None,
            password_hash: "$scrypt$x".into(),
            groups: vec![],
            created_at: 1,
        };
        let encode = super::super::records::encode_user;
        let file = |users: &[crate::model::User], extra: &[String]| {
            let mut text = String::from("{\"latch_backup\":1,\"schema\":2}\n");
            for u in users {
                text += &line("users", &u.id.get().to_be_bytes(), &encode(u));
                text += "\n";
            }
            for l in extra {
                text += l;
                text += "\n";
            }
            text + &format!("{{\"end\":{}}}\n", users.len() + extra.len())
        };
        // An index line naming another user than the record does not
        // decide who the name is.
        let lying = line("usernames", b"alice", &2u64.to_be_bytes());
        let text = file(&[user(1, "alice"), user(2, "bob")], &[lying]);
        let mut into = TempStore::new();
        restore(&mut into.store, text.as_bytes()).unwrap();
        let alice = into.store.user_by_name("alice").unwrap().unwrap();
        assert_eq!(alice.id, UserId::new(1));
        // Two records of one name (in any case) are refused.
        let text = file(&[user(1, "alice"), user(2, "ALICE")], &[]);
        let e = read_backup(text.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("two users share a username"), "{e}");
    }

    #[test]
    fn a_user_twice_or_users_crowding_a_bucket_are_refused() {
        let record = |id: u64| {
            super::super::records::encode_user(&crate::model::User {
                id: UserId::new(id),
                username: format!("u{id}"),
                email: None,
                password_hash: "$scrypt$x".into(),
                groups: vec![],
                created_at: 1,
            })
        };
        let file = |ids: &[u64]| {
            let mut text = String::from("{\"latch_backup\":1,\"schema\":3}\n");
            for id in ids {
                text += &line("users", &id.to_be_bytes(), &record(*id));
                text += "\n";
            }
            text + &format!("{{\"end\":{}}}\n", ids.len())
        };
        let e = read_backup(file(&[7, 7]).as_bytes()).err().unwrap();
        assert!(e.to_string().contains("a user id is there twice"), "{e}");
        let crowd: Vec<u64> = (1..=MAX_USER_BUCKET as u64 + 1).map(|k| k << 16).collect();
        assert!(read_backup(file(&crowd[..MAX_USER_BUCKET]).as_bytes()).is_ok());
        let e = read_backup(file(&crowd).as_bytes()).err().unwrap();
        assert!(
            e.to_string().contains("too many users share a bucket"),
            "{e}"
        );
    }
}
