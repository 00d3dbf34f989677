//! The service layer: every flow of the domain, behind one type,
//! [`Service`]. The HTTP layer, the admin socket and the CLI call it; it
//! calls the store and the hasher, which are private to it, so nothing
//! outside this module can reach sled or scrypt (the compiler holds that
//! line, not a convention).
//!
//! # Layout
//!
//! - `accounts.rs`: users: create, login (regulated, with the dummy hash
//!   for unknown users), change the password (with the old one), delete
//!   (with the password), groups, email, unban.
//! - `auth.rs`: tokens: issue, verify, authenticate any credential by
//!   where it was presented, revoke.
//! - `api_keys.rs`: API keys: create (from a current proof), list, delete,
//!   verify; their uses noted in memory.
//! - `cutoffs.rs`: credential epochs: logout everywhere, the in-memory
//!   cutoff map, which tokens are still of the current epoch.
//! - `profiles.rs`: the forward-auth profile cache.
//! - `totp.rs`: the second factor: enrolment, codes, recovery codes.
//! - `two_step.rs`: the second step of a sign-in: pending tokens, step-up,
//!   the enrolment page's ticket.
//! - `housekeeping.rs`: pruning, writing key uses, health, backups.
//! - `import.rs`: users as a TOML file: export, and an import that is one
//!   transaction and changes nothing the second time.
//! - `regulation.rs`, `flights.rs`, `password_cache.rs`, `hasher.rs`,
//!   `revoked.rs`, `verified.rs`: the parts the flows are built from.
//! - `store/`: sled and the on-disk records, one file per entity.

mod accounts;
mod api_keys;
mod auth;
mod cutoffs;
mod flights;
mod hasher;
mod housekeeping;
mod import;
mod login;
mod password_cache;
mod profiles;
mod regulation;
mod revoked;
#[cfg(feature = "bench")]
pub mod seed;
mod sessions;
mod store;
#[cfg(test)]
pub(crate) mod tests;
mod totp;
mod two_step;
mod verified;

pub use accounts::validate_groups;
pub use housekeeping::{export_offline, restore_offline};
pub use import::{UserEntry, UserFile};
pub use login::FirstStep;
pub use totp::Enrolment;

use crate::clock::Clock;
use crate::config::keyfile::KeyMaterial;
use crate::config::{Config, Registration};
use crate::crypto::SigningKey;
use crate::error::Result;
use crate::metrics::Metrics;

/// The database, opened and locked, with nothing reachable through it:
/// [`Service::open`] takes it. Opened first, so a locked, corrupt or
/// unwritable data directory is reported before anything else happens
/// (such as creating the key file).
pub struct Database(store::Store);

impl Database {
    /// Opens (or creates, mode 0700) the database in `dir`; a directory
    /// another process holds is [`Kind::Locked`](crate::error::Kind::Locked).
    pub fn open(dir: &std::path::Path) -> Result<Database> {
        store::Store::open(dir).map(Database)
    }

    /// Opens the database in `dir` only if one is there: the CLI working
    /// offline never makes one by accident (a typo in `data_dir`, or the
    /// wrong working directory, would otherwise leave the server's users
    /// out of sight). One line naming the directory and the way out.
    pub fn open_existing(dir: &std::path::Path, create_hint: &str) -> Result<Database> {
        if !store::Store::exists(dir) {
            let relative = match dir.is_relative() {
                true => "; the path is relative to the working directory",
                false => "",
            };
            return Err(crate::error::Error::config(format_args!(
                "no database in {} (is that the data_dir `latch serve` uses?{relative})\
                 {create_hint}",
                dir.display()
            )));
        }
        Self::open(dir)
    }

    /// Whether any user has a second factor (set up or being set up):
    /// its secret is sealed with a storage key that must not be replaced
    /// by a new one.
    pub fn holds_second_factors(&self) -> bool {
        self.0.has_totp()
    }
}

/// Everything the domain does, over one store. Cheap to share behind an
/// `Arc`; every method takes `&self`.
pub struct Service {
    /// The database. Private to the service layer.
    store: store::Store,
    /// The one clock (tests move it).
    clock: Clock,
    /// Counters for `/metrics`.
    metrics: Metrics,
    /// Who may register over HTTP.
    registration: Registration,
    /// scrypt, bounded (private: nothing else hashes).
    hasher: hasher::Hasher,
    /// Failed-login counts and bans per account and address.
    regulator: regulation::Regulator,
    /// Wrong one-time codes, counted apart: a right password clears the
    /// password counts, and must not clear these (whoever guesses codes
    /// holds the password). Its bans ban the account for passwords too.
    code_regulator: regulation::Regulator,
    /// Identical password checks under way, made once.
    flights: flights::Flights,
    /// Recent successful password checks (Basic without a hash each time).
    password_cache: password_cache::PasswordCache,
    /// The credential epochs, mirrored in memory.
    cutoffs: cutoffs::Cutoffs,
    /// Forward-auth profiles, cached.
    profiles: profiles::Profiles,
    /// Token signing, verification and revocation.
    tokens: auth::Tokens,
    /// API key uses not yet written.
    key_uses: api_keys::KeyUses,
    /// Session lifetimes and uses.
    sessions: sessions::Sessions,
    /// Seals second-factor secrets (`None` only offline, without a key).
    sealing: Option<crate::crypto::SealingKey>,
    /// Keys the audit log's fingerprints of login names no account has.
    login_names: SigningKey,
}

impl Service {
    /// Wires every part over `database` (opened from `config.data_dir`),
    /// the same way for the server and for the CLI working offline.
    pub fn open(
        config: &Config,
        database: Database,
        keys: &KeyMaterial,
        clock: Clock,
    ) -> Result<Service> {
        let Database(store) = database;
        let token_ttl = config.token_ttl.as_secs();
        let session_ttl = config.forward_auth.session_ttl.as_secs();
        // A cutoff is kept as long as any token it refuses could live.
        let remember_ttl = config.forward_auth.remember_me_ttl.as_secs();
        let longest = token_ttl.max(session_ttl).max(remember_ttl);
        let cutoffs = cutoffs::Cutoffs::load(&store, longest)?;
        let regulator = regulation::Regulator::new(config.regulation);
        for ban in store.bans(clock.now())? {
            regulator.restore(ban);
        }
        let sealing = keys
            .storage
            .as_ref()
            .and_then(|k| crate::crypto::SealingKey::new(k));
        let signing = SigningKey::new(&keys.current);
        let login_names = signing.derive(b"latch audit: login names of no account");
        let previous = keys.previous.iter().map(|k| SigningKey::new(k)).collect();
        Ok(Service {
            hasher: hasher::Hasher::new(&config.hashing)?,
            password_cache: password_cache::PasswordCache::new(config.hashing.cache_ttl.as_secs())?,
            tokens: auth::Tokens::new(signing, previous, token_ttl, session_ttl),
            store,
            clock,
            metrics: Metrics::default(),
            registration: config.registration,
            regulator,
            code_regulator: regulation::Regulator::new(config.regulation),
            flights: flights::Flights::default(),
            cutoffs,
            profiles: profiles::Profiles::default(),
            key_uses: api_keys::KeyUses::default(),
            sealing,
            login_names,
            sessions: sessions::Sessions::new(
                config.forward_auth.session_inactivity.as_secs(),
                config.forward_auth.remember_me_ttl.as_secs(),
            ),
        })
    }

    /// The current time from the one clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The Prometheus text exposition, gauges included.
    pub fn metrics_text(&self) -> String {
        self.metrics
            .render(self.hasher.queue_depth(), self.store.user_count())
    }
}
