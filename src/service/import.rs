//! Users as a file (`latch user import` and `latch user export`): a TOML
//! list of `[[user]]` tables, for people who keep their homelab in git.
//!
//! Export writes no secret but the password hash (no keys, sessions or
//! second factors). Import plans every change first, then writes them in
//! one transaction: all or nothing. It is idempotent: a user already as
//! the file says is left alone, a plaintext password is checked against
//! the stored hash before anything is hashed again, so a second run
//! changes nothing. Users the file does not name are left alone.

use serde::{Deserialize, Serialize};

use super::accounts::{validate_email, validate_groups, validate_password, validate_username};
use super::store::Write;
use super::Service;
use crate::audit;
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::{User, UserId};

/// One `[[user]]` table. Its `Debug` masks the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The username.
    pub name: String,
    /// The email (none: the user has none; an import removes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The groups (an import replaces the user's with these).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The scrypt PHC hash (`$scrypt$ln=...`), as export writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A password to hash instead (export leaves it out: it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("groups", &self.groups)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "********"),
            )
            .field("password", &self.password.as_ref().map(|_| "********"))
            .finish()
    }
}

/// A users file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserFile {
    /// The users, in order.
    #[serde(default, rename = "user")]
    pub users: Vec<UserEntry>,
}

impl UserFile {
    /// Reads a file's text; an error names the line.
    pub fn parse(text: &str) -> Result<UserFile> {
        toml::from_str(text).map_err(|e| {
            let start = e.span().map(|s| s.start.min(text.len()));
            let line = start.map(|at| text[..at].matches('\n').count() + 1);
            // The parser quotes the value it refused: never a password.
            let on_password = start.is_some_and(|at| {
                let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
                text[from..to].contains("password")
            });
            let message = match on_password {
                true => "a bad password or password_hash (a string is expected)".to_owned(),
                false => e.message().lines().next().unwrap_or_default().to_owned(),
            };
            Error::config(match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            })
        })
    }

    /// The file's text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(Error::internal)
    }
}

impl From<&User> for UserEntry {
    fn from(user: &User) -> UserEntry {
        UserEntry {
            name: user.username.clone(),
            email: user.email.clone(),
            groups: user.groups.clone(),
            password_hash: Some(user.password_hash.clone()),
            password: None,
        }
    }
}

/// What an entry asks for, checked: a new record, or the changes to an
/// existing one.
struct Plan {
    write: Write,
    lines: Vec<String>,
}

impl Service {
    /// Every user, as a file.
    pub fn export_users(&self) -> Result<UserFile> {
        Ok(UserFile {
            users: self.store.users()?.iter().map(UserEntry::from).collect(),
        })
    }

    /// Imports `file`: checks every entry, then writes every change in one
    /// transaction. Returns a line per change (none when nothing changes).
    pub async fn import_users(&self, file: UserFile) -> Result<Vec<String>> {
        check_entries(&file.users, self.hasher.cost())?;
        let mut plans = Vec::new();
        let mut cutoff = None;
        for entry in file.users {
            if let Some(plan) = self.plan(entry, &mut cutoff).await? {
                plans.push(plan);
            }
        }
        let (writes, lines): (Vec<Write>, Vec<Vec<String>>) =
            plans.into_iter().map(|p| (p.write, p.lines)).unzip();
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.store.apply_import(&writes)?;
        // Committed: the caches follow at once, every user's before any
        // step that can fail (as a password change does), then the flush
        // and the sessions; the first error is the answer.
        for write in &writes {
            self.profiles.forget(write.after.id);
            if let (Some(_), Some(cutoff)) = (&write.before, write.cutoff) {
                self.cutoffs.remember(write.after.id, cutoff);
            }
        }
        let mut outcome = self.store.flush().await;
        for write in &writes {
            let id = write.after.id;
            match (&write.before, write.cutoff) {
                (None, _) => audit::user_event("import", id, "added a user by import"),
                (Some(_), Some(_)) => {
                    let forgot = self.forget_sessions(id).await;
                    outcome = outcome.and(forgot);
                    self.metrics.revocation();
                    audit::user_event(
                        "import",
                        id,
                        "changed a user by import; password changed, earlier tokens refused",
                    );
                }
                (Some(_), None) => audit::user_event("import", id, "changed a user by import"),
            }
        }
        outcome?;
        Ok(lines.into_iter().flatten().collect())
    }

    /// The write `entry` needs, if any.
    async fn plan(
        &self,
        entry: UserEntry,
        cutoff: &mut Option<crate::model::Cutoff>,
    ) -> Result<Option<Plan>> {
        match self.store.user_by_name(&entry.name)? {
            None => self.plan_new(entry).await.map(Some),
            Some(before) => self.plan_change(before, entry, cutoff).await,
        }
    }

    /// A user the database does not have yet.
    async fn plan_new(&self, entry: UserEntry) -> Result<Plan> {
        let password_hash = match Secret::of(entry.password_hash, entry.password) {
            Secret::Hash(hash) => hash,
            Secret::Password(password) => self.hasher.hash(password).await?,
        };
        let user = User {
            id: UserId::new(self.store.new_id()?),
            username: entry.name,
            email: entry.email,
            password_hash,
            groups: entry.groups,
            created_at: self.clock.now(),
        };
        let line = match user.groups.as_slice() {
            [] => format!("{}: added (no groups)", user.username),
            groups => format!("{}: added (groups: {})", user.username, groups.join(",")),
        };
        Ok(Plan {
            lines: vec![line],
            write: Write {
                before: None,
                after: user,
                cutoff: None,
            },
        })
    }

    /// What `entry` changes of `before`, if anything; a new password takes
    /// the import's one cutoff (made on the first).
    async fn plan_change(
        &self,
        before: User,
        entry: UserEntry,
        cutoff: &mut Option<crate::model::Cutoff>,
    ) -> Result<Option<Plan>> {
        let name = &before.username;
        let mut after = before.clone();
        let mut lines = Vec::new();
        if after.email != entry.email {
            let shown = |e: &Option<String>| e.clone().unwrap_or_else(|| "(none)".to_owned());
            lines.push(format!(
                "{name}: email {} -> {}",
                shown(&before.email),
                shown(&entry.email)
            ));
            after.email = entry.email;
        }
        if after.groups != entry.groups {
            let (was, now) = (listed(&before.groups), listed(&entry.groups));
            lines.push(format!("{name}: groups {was} -> {now}"));
            after.groups = entry.groups;
        }
        let mut user_cutoff = None;
        let secret = Secret::of(entry.password_hash, entry.password);
        if let Some(hash) = self.new_hash(&before.password_hash, secret).await? {
            lines.push(format!("{name}: password changed (earlier tokens refused)"));
            after.password_hash = hash;
            user_cutoff = Some(match *cutoff {
                Some(at) => at,
                None => *cutoff.insert(self.new_cutoff(false)?),
            });
        }
        Ok((!lines.is_empty()).then_some(Plan {
            lines,
            write: Write {
                before: Some(before),
                after,
                cutoff: user_cutoff,
            },
        }))
    }

    /// The hash to store instead of `stored`, if the file says another
    /// password: a hash that differs, or a password `stored` does not
    /// verify (hashed again only then).
    async fn new_hash(&self, stored: &str, secret: Secret) -> Result<Option<String>> {
        match secret {
            Secret::Hash(hash) => Ok((hash != stored).then_some(hash)),
            Secret::Password(password) => {
                let same = self
                    .hasher
                    .verify(password.clone(), Some(stored.to_owned()))
                    .await?;
                match same {
                    true => Ok(None),
                    false => self.hasher.hash(password).await.map(Some),
                }
            }
        }
    }
}

/// An entry's password, as the file gives it ([`check_entries`] made sure
/// it gives exactly one).
enum Secret {
    Hash(String),
    Password(String),
}

impl Secret {
    fn of(hash: Option<String>, password: Option<String>) -> Secret {
        match (hash, password) {
            (Some(hash), _) => Secret::Hash(hash),
            (None, Some(password)) => Secret::Password(password),
            (None, None) => unreachable!("checked: one of the two"),
        }
    }
}

/// Groups for a line: `a,b`, or `(none)`.
fn listed(groups: &[String]) -> String {
    match groups {
        [] => "(none)".to_owned(),
        groups => groups.join(","),
    }
}

/// Every entry valid, exactly one of `password` and `password_hash`, a
/// usable hash at no more than `cost`, and no name or email twice.
fn check_entries(entries: &[UserEntry], cost: crypto::Cost) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    let mut emails = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let what = || format!("user {} ({:?})", i + 1, entry.name);
        let say = |e: Error| Error::config(format_args!("{}: {}", what(), e.public_message()));
        validate_username(&entry.name).map_err(say)?;
        if let Some(email) = &entry.email {
            validate_email(email).map_err(say)?;
            if !emails.insert(email.to_ascii_lowercase()) {
                return Err(Error::config(format_args!(
                    "{}: the email {email} is in the file twice",
                    what()
                )));
            }
        }
        validate_groups(&entry.groups).map_err(say)?;
        if !names.insert(entry.name.to_ascii_lowercase()) {
            return Err(Error::config(format_args!(
                "{}: the name is in the file twice",
                what()
            )));
        }
        match (&entry.password, &entry.password_hash) {
            (Some(password), None) => validate_password(password).map_err(say)?,
            (None, Some(hash)) => {
                if let Some(why) = crypto::foreign_hash_problem(hash, cost) {
                    return Err(Error::config(format_args!(
                        "{}: password_hash is not one latch can use: {why}",
                        what()
                    )));
                }
            }
            _ => {
                return Err(Error::config(format_args!(
                    "{}: give either password or password_hash",
                    what()
                )))
            }
        }
    }
    Ok(())
}
