//! Accounts: users, their passwords and groups, and the per-user token
//! cutoff behind "logout everywhere", password changes and deletion.
//!
//! Used by the server (through [`crate::auth::Auth`]) and by `latch user`
//! when no server runs, so both apply the same rules.

use std::collections::HashMap;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::audit::{self, Outcome};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto;
use crate::error::{Error, Kind, Refusal, Result};
use crate::flights::{Flights, Joined, Landed};
use crate::hasher::Hasher;
use crate::metrics::{LoginResult, Metrics};
use crate::password_cache::PasswordCache;
use crate::regulation::{Ban, Regulator};
use crate::store::{Cutoff, NewUser, Store, User};
use crate::token;

/// Shortest and longest accepted passwords, in characters. No composition
/// rules (NIST SP 800-63B).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// Seconds a cutoff is kept beyond the longest token lifetime before it is
/// pruned (see [`Accounts::prune`]).
const PRUNE_MARGIN: u64 = 600;

/// Longest username or group name, in bytes (ASCII only).
pub const MAX_NAME: usize = 64;

/// The account service.
pub struct Accounts {
    store: Store,
    hasher: Hasher,
    clock: Clock,
    /// Cutoffs by user id, mirrored from the store so that verifying a token
    /// stays one sled read. A std lock: held for a map lookup, never across
    /// an await.
    cutoffs: RwLock<HashMap<u64, Cutoff>>,
    /// The longest token lifetime ever configured; cutoffs older than this
    /// can refuse nothing that is not already expired.
    max_ttl: u64,
    /// Failed-login counts and bans.
    regulator: Regulator,
    /// Identical password checks under way, made once.
    flights: Flights,
    /// Recent successful password checks (Basic auth without a hash per request).
    password_cache: PasswordCache,
    /// Profiles (name, email, groups) by user id, for forward auth; every
    /// change to a user goes through this struct, which drops the entry.
    profiles: RwLock<HashMap<u64, Arc<Profile>>>,
    /// Bumped (under the `profiles` lock) whenever a profile is dropped, so
    /// a lookup that read the store before a change never caches the old
    /// version.
    profile_epoch: AtomicU64,
    /// Counters for `/metrics`.
    metrics: Arc<Metrics>,
}

/// What forward auth passes on about a user, ready to be sent: the byte
/// strings are shared, not copied, into every response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Username.
    pub username: Bytes,
    /// Email, or empty.
    pub email: Bytes,
    /// Groups, comma-separated.
    pub groups_joined: Bytes,
    /// Groups, for membership checks.
    pub groups: Vec<String>,
}

/// A password that checked out: the user, and the credential epoch that
/// held when the check began. Tokens and keys made from it belong to that
/// epoch, so a password change or logout everywhere that lands while the
/// check runs still refuses them.
#[derive(Debug, Clone)]
pub struct Proven {
    /// Who.
    pub user: User,
    /// The user's credential epoch when the check began (see
    /// [`Accounts::epoch`]).
    pub epoch: u64,
}

/// Most profiles kept in memory; beyond it the cache starts over.
const MAX_PROFILES: usize = 10_000;

impl Accounts {
    /// Loads the cutoffs and records `max_ttl` (the longest token lifetime
    /// the caller will issue).
    pub fn new(
        config: &Config,
        store: Store,
        clock: Clock,
        max_ttl: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Accounts> {
        let max_ttl = store.raise_max_ttl(max_ttl)?;
        let cutoffs = store.cutoffs()?.into_iter().collect();
        let regulator = Regulator::new(config.regulation);
        for ban in store.bans(clock.now())? {
            regulator.restore(ban);
        }
        Ok(Accounts {
            hasher: Hasher::new(&config.hashing)?,
            store,
            clock,
            cutoffs: RwLock::new(cutoffs),
            max_ttl,
            regulator,
            flights: Flights::default(),
            password_cache: PasswordCache::new(config.hashing.cache_ttl.as_secs())?,
            profiles: RwLock::new(HashMap::new()),
            profile_epoch: AtomicU64::new(0),
            metrics,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The hashing pool.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Creates an account.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
        groups: Vec<String>,
    ) -> Result<User> {
        validate_username(username)?;
        validate_password(password)?;
        if let Some(email) = email {
            validate_email(email)?;
        }
        validate_groups(&groups)?;
        let password_hash = self.hasher.hash(password.to_owned()).await?;
        let user = self
            .store
            .create_user(NewUser {
                username,
                email,
                password_hash,
                groups,
                created_at: self.clock.now(),
            })
            .await?;
        audit::user_event("register", user.id, "registered a user");
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: u64) -> Result<Option<User>> {
        self.store.user(id)
    }

    /// The user with this username, or a 404-kind error naming the problem.
    pub fn user_named(&self, username: &str) -> Result<User> {
        self.store
            .user_by_name(username)?
            .ok_or_else(|| Error::new(Kind::NotFound))
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.store.user_count()
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<User>> {
        self.store.users()
    }

    /// Checks a username (or email) and password. Unknown users, wrong
    /// passwords and banned accounts or addresses cost the same scrypt work
    /// and get the same refusal. Every guess counts towards a ban when it is
    /// queued (see [`Regulator`]); the client address comes from the
    /// request's audit context.
    pub async fn login(&self, login: &str, password: &str) -> Result<Proven> {
        let user = if login.contains('@') {
            self.store.user_by_email(login)?
        } else {
            self.store.user_by_name(login)?
        };
        let user_id = user.as_ref().map(|u| u.id);
        // Read before the check: what is proven is the password of this
        // epoch.
        let epoch = user_id.map_or(0, |id| self.epoch(id));
        let proven = |user: User| Proven { user, epoch };
        let source = audit::current_source();
        let now = self.clock.now();
        if let Some(u) = user.as_ref() {
            if !self.regulator.is_banned(user_id, source, now)
                && self
                    .password_cache
                    .hit(u.id, password, &u.password_hash, source, now)
            {
                self.regulator.cleared(u.id, source);
                self.metrics.login(LoginResult::Success);
                // A repeat of a success already audited within cache_ttl:
                // counted in /metrics, logged only at debug level.
                audit::password(login, Outcome::Repeated);
                return Ok(proven(u.clone()));
            }
        }
        let key = self.password_cache.flight_key(login, password, source);
        loop {
            match self.flights.join(key) {
                Joined::Leader(flight) => {
                    let result = self
                        .check(login, password, user.clone(), source)
                        .await
                        .map(proven);
                    flight.land(match &result {
                        Ok(_) => Landed::Right,
                        Err(e) if matches!(e.kind(), Kind::Unauthorized(_)) => Landed::Refused,
                        Err(e) if e.kind() == Kind::Busy => Landed::Busy,
                        Err(_) => Landed::Failed,
                    });
                    return result;
                }
                Joined::Follower(slot) => match (Flights::wait(slot).await, &user) {
                    // The same password, checked a moment ago for this very
                    // request's twin: one guess, one hash, one answer.
                    (Some(Landed::Right), Some(user)) => {
                        self.metrics.login(LoginResult::Success);
                        audit::password(login, Outcome::Repeated);
                        return Ok(proven(user.clone()));
                    }
                    (Some(Landed::Refused), _) => {
                        self.metrics.login(LoginResult::Failure);
                        audit::password(login, Outcome::Failure);
                        return Err(Error::unauthorized(Refusal::BadPassword));
                    }
                    (Some(Landed::Busy), _) => return Err(Error::new(Kind::Busy)),
                    // The leader vanished or failed: check again.
                    _ => continue,
                },
            }
        }
    }

    /// One password check: counted as a guess when queued, hashed, then
    /// settled (see [`Regulator`]).
    async fn check(
        &self,
        login: &str,
        password: &str,
        user: Option<User>,
        source: Option<std::net::IpAddr>,
    ) -> Result<User> {
        let user_id = user.as_ref().map(|u| u.id);
        let mut guess = self.regulator.begin(user_id, source, self.clock.now());
        self.store_bans(&std::mem::take(&mut guess.new_bans))
            .await?;
        if guess.refused_at_once {
            // A banned address: told at once, at no hashing cost (it learns
            // only that it is banned, whatever the account).
            self.metrics.login(LoginResult::Banned);
            audit::password(login, Outcome::Banned);
            return Err(Error::unauthorized(Refusal::BadPassword));
        }
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = match self.hasher.verify(password.to_owned(), phc).await {
            Ok(ok) => ok,
            Err(e) => {
                self.regulator.abandoned(guess);
                return Err(e);
            }
        };
        let now = self.clock.now();
        if self.regulator.banned_now(&guess, now) {
            self.metrics.login(LoginResult::Banned);
            audit::password(login, Outcome::Banned);
            return Err(Error::unauthorized(Refusal::BadPassword));
        }
        match user {
            Some(user) if ok => {
                self.regulator.succeeded(guess);
                self.metrics.login(LoginResult::Success);
                audit::password(login, Outcome::Success);
                self.password_cache
                    .remember(user.id, password, &user.password_hash, source, now);
                self.rehash_if_needed(&user, password).await?;
                Ok(user)
            }
            _ => {
                self.metrics.login(LoginResult::Failure);
                audit::password(login, Outcome::Failure);
                let bans = self.regulator.failed(guess, now);
                self.store_bans(&bans).await?;
                Err(Error::unauthorized(Refusal::BadPassword))
            }
        }
    }

    /// Lifts a ban of an account or of a client address, in memory and in
    /// the store. Returns whether one was stored.
    pub async fn unban(&self, ban: Ban) -> Result<bool> {
        let ban = match ban {
            Ban::Source(address, until) => {
                Ban::Source(crate::regulation::source_key(address), until)
            }
            user => user,
        };
        self.regulator.lift(ban);
        let stored = self.store.delete_ban(ban).await?;
        match ban {
            Ban::User(id, _) => audit::user_event("unban", id, "lifted a ban"),
            Ban::Source(address, _) => audit::source_unbanned(address),
        }
        Ok(stored)
    }

    /// Keeps new bans in the store (a restart does not lift them) and
    /// audits them.
    async fn store_bans(&self, bans: &[Ban]) -> Result<()> {
        for &ban in bans {
            self.metrics.ban();
            match ban {
                Ban::User(id, _) => {
                    audit::user_event("ban", id, "banned an account after repeated failed logins")
                }
                Ban::Source(address, until) => audit::source_banned(address, until),
            }
            self.store.put_ban(ban).await?;
        }
        Ok(())
    }

    /// Rehashes at the configured cost when the stored one differs (in
    /// either direction: the configured cost is the cost, and a login then
    /// takes the same time for everyone). Skipped (and retried at the next
    /// login) when the hashing queue is full.
    async fn rehash_if_needed(&self, user: &User, password: &str) -> Result<()> {
        let stored = crypto::stored_cost(&user.password_hash)?;
        if stored == self.hasher.cost() {
            return Ok(());
        }
        match self.hasher.hash(password.to_owned()).await {
            Ok(phc) => self.store.upgrade_password_hash(user, phc),
            Err(e) if e.kind() == Kind::Busy => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sets a new password and refuses every token issued before now.
    pub async fn set_password(&self, user: &User, new_password: &str) -> Result<()> {
        validate_password(new_password)?;
        let phc = self.hasher.hash(new_password.to_owned()).await?;
        let cutoff = self.new_cutoff(false)?;
        // The caches follow the committed change even if the flush after
        // it fails (the error still reaches the caller).
        let changed = self.store.change_password(user, phc, cutoff).await;
        if !matches!(changed, Ok(false)) {
            self.remember_cutoff(user.id, cutoff);
        }
        if !changed? {
            return Err(Error::new(Kind::Conflict(
                "the account changed meanwhile; try again",
            )));
        }
        self.metrics.revocation();
        audit::user_event(
            "password_change",
            user.id,
            "password changed; earlier tokens refused",
        );
        Ok(())
    }

    /// Refuses every token issued to `user_id` before now.
    pub async fn logout_all(&self, user_id: u64) -> Result<()> {
        let cutoff = self.new_cutoff(false)?;
        let stored = self.store.set_cutoff(user_id, cutoff).await;
        self.remember_cutoff(user_id, cutoff);
        stored?;
        self.metrics.revocation();
        audit::user_event("logout_all", user_id, "logged out everywhere");
        Ok(())
    }

    /// Deletes the account with its keys; its tokens are refused at once
    /// and the name can be registered again.
    pub async fn delete(&self, user: &User) -> Result<()> {
        let cutoff = self.new_cutoff(true)?;
        let stored = self.store.delete_user(user, cutoff).await;
        self.remember_cutoff(user.id, cutoff);
        self.forget_profile(user.id);
        stored?;
        self.metrics.revocation();
        audit::user_event("delete", user.id, "deleted a user");
        Ok(())
    }

    /// Replaces a user's groups.
    pub async fn set_groups(&self, user: &User, groups: Vec<String>) -> Result<User> {
        validate_groups(&groups)?;
        let updated = self
            .store
            .modify_user(user.id, |u| u.groups = groups.clone())
            .await;
        self.forget_profile(user.id);
        let updated = updated?;
        audit::user_event("groups", user.id, "changed a user's groups");
        updated.ok_or_else(|| Error::new(Kind::NotFound))
    }

    /// Sets or removes a user's email.
    pub async fn set_email(&self, user_id: u64, email: Option<&str>) -> Result<User> {
        if let Some(email) = email {
            validate_email(email)?;
        }
        let updated = self.store.change_email(user_id, email).await;
        self.forget_profile(user_id);
        let user = updated?.ok_or_else(|| Error::unauthorized(Refusal::BadToken))?;
        audit::user_event("email", user_id, "changed a user's email");
        Ok(user)
    }

    /// The user's profile, from memory when it can; `None` for no user.
    pub fn profile(&self, user_id: u64) -> Result<Option<Arc<Profile>>> {
        if let Some(p) = self
            .profiles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user_id)
        {
            return Ok(Some(p.clone()));
        }
        let epoch = self.profile_epoch.load(Ordering::Acquire);
        let Some(user) = self.store.user(user_id)? else {
            return Ok(None);
        };
        let profile = Arc::new(Profile {
            username: Bytes::from(user.username),
            email: Bytes::from(user.email.unwrap_or_default()),
            groups_joined: Bytes::from(user.groups.join(",")),
            groups: user.groups,
        });
        let mut profiles = self.profiles.write().unwrap_or_else(|e| e.into_inner());
        if profiles.len() >= MAX_PROFILES {
            profiles.clear();
        }
        // A change racing this read must win: cache only if none happened.
        if self.profile_epoch.load(Ordering::Acquire) == epoch && !self.is_deleted(user_id) {
            profiles.insert(user_id, profile.clone());
        }
        Ok(Some(profile))
    }

    fn forget_profile(&self, user_id: u64) {
        let mut profiles = self.profiles.write().unwrap_or_else(|e| e.into_inner());
        self.profile_epoch.fetch_add(1, Ordering::AcqRel);
        profiles.remove(&user_id);
    }

    /// A cutoff at the current second with a fresh sequence number.
    fn new_cutoff(&self, deleted: bool) -> Result<Cutoff> {
        Ok(Cutoff {
            at: self.clock.now(),
            deleted,
            seq: self.store.new_id()?,
        })
    }

    fn remember_cutoff(&self, user_id: u64, cutoff: Cutoff) {
        self.cutoffs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id, cutoff);
    }

    /// The user's cutoff, if any.
    pub fn cutoff(&self, user_id: u64) -> Option<Cutoff> {
        self.cutoffs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&user_id)
            .copied()
    }

    /// The user's credential epoch: the sequence number of the cutoff in
    /// force (0 before any). Each logout everywhere, password change and
    /// deletion starts a new one.
    pub fn epoch(&self, user_id: u64) -> u64 {
        self.cutoff(user_id).map_or(0, |c| c.seq)
    }

    /// Whether a token of `epoch` is still good for `user_id`: only the
    /// current epoch's are (none of a deleted account). A pruned cutoff
    /// (older than every token it could refuse) leaves no epoch to compare.
    pub fn token_allowed(&self, user_id: u64, epoch: u64) -> bool {
        match self.cutoff(user_id) {
            None => true,
            Some(c) => !c.deleted && c.seq == epoch,
        }
    }

    /// Whether the account was deleted (its API keys are refused).
    pub fn is_deleted(&self, user_id: u64) -> bool {
        self.cutoff(user_id).is_some_and(|c| c.deleted)
    }

    /// Prunes what can no longer matter, and forgets pruned cutoffs.
    pub async fn prune(&self) -> Result<usize> {
        let now = self.clock.now();
        self.regulator.prune(now);
        self.password_cache.prune(now);
        // The margin covers a password check that was already under way
        // (queued, hashing) when its cutoff came: its token may be issued
        // a little after the cutoff's second.
        let (removed, pruned) = self
            .store
            .prune(now, self.max_ttl.saturating_add(PRUNE_MARGIN))
            .await?;
        // Only the cutoffs pruned, and only if no newer one replaced them
        // meanwhile: a cutoff set while the store was being walked stays.
        let mut cutoffs = self.cutoffs.write().unwrap_or_else(|e| e.into_inner());
        for (user_id, seq) in pruned {
            if cutoffs.get(&user_id).is_some_and(|c| c.seq == seq) {
                cutoffs.remove(&user_id);
            }
        }
        Ok(removed)
    }
}

/// 1 to 64 ASCII letters, digits and `._-`, starting with a letter or
/// digit. ASCII only, so no two names look alike (`admin` vs fullwidth
/// `ａｄｍｉｎ`) and case-insensitive uniqueness is exact. No `@` (that marks
/// an email at login), nothing shaped like a token or an API key.
pub fn validate_username(name: &str) -> Result<()> {
    if !is_name(name) {
        return Err(Error::bad_request(
            "username must be 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit",
        ));
    }
    if name
        .to_ascii_lowercase()
        .starts_with(crate::credentials::API_KEY_PREFIX)
    {
        return Err(Error::bad_request(
            "username must not start with latch_ (that marks an API key)",
        ));
    }
    if token::looks_like_token(name) {
        return Err(Error::bad_request(
            "username must not look like a token (eyJ... with two dots)",
        ));
    }
    Ok(())
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Group names follow the username rules (so they never contain the comma
/// that separates them in `Remote-Groups`); at most 64 groups.
pub fn validate_groups(groups: &[String]) -> Result<()> {
    if groups.len() <= 64 && groups.iter().all(|g| is_name(g)) {
        Ok(())
    } else {
        Err(Error::bad_request(
            "group names must be 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// 8 to 1024 characters, nothing else.
pub fn validate_password(password: &str) -> Result<()> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::bad_request("password must be 8 to 1024 characters"))
    }
}

/// A plausible address: one `@` between non-empty parts, no spaces or
/// control characters, at most 254 bytes.
pub fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request("email is not a valid address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["miguel", "a", "john.doe", "x_y-z", "Latch", &"a".repeat(64)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a b",
            "a@b",
            "a:b",
            "latch_x",
            "LATCH_x",
            "Émile",
            "ａｄｍｉｎ",
            "eyJa.b.c",
            &"a".repeat(65),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups() {
        assert!(validate_groups(&["admins".into(), "media-users".into()]).is_ok());
        assert!(validate_groups(&[]).is_ok());
        for bad in ["a,b", "", " x", "x y"] {
            assert!(validate_groups(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("éééééééé").is_ok());
        assert!(validate_password(&"x".repeat(1024)).is_ok());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn emails() {
        assert!(validate_email("a@example.com").is_ok());
        for bad in ["a", "@b", "a@", "a@b@c", "a @b", "a\n@b"] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
