//! The benchmark seeder's library side (`--features bench` only): fills a
//! data directory with many users, live revocations and login-page sessions
//! through the store's bulk loaders. Not part of the production API.

use crate::crypto::{self, Cost};
use crate::error::Result;
use crate::model::{Factors, Session, SessionId, User, UserId};

use super::store::Store;

/// Browsers as a login page sees them: sessions carry one of these.
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
     Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like \
     Gecko) Version/18.1 Safari/605.1.15",
];

/// How many records go in one batch. sled's memory for a batch grows
/// faster than the batch: 10,000 made seeding a million of each peak at
/// 15.7 GB of RSS, 1,000 at 5.4 GB (and 1.2 GB on disk rather than 1.6).
const BATCH: usize = 1_000;

/// Seeds `dir` with `users` users (the first is `bench`, password
/// `bench-password`), `revocations` revocations live for a day and
/// `sessions` sessions of random users, live for a day.
///
/// Every other user's password hash is a well-formed scrypt PHC string of
/// its own random salt and output, as incompressible as real ones (a
/// million real hashes would take hours and prove nothing here).
pub fn seed(
    dir: &std::path::Path,
    users: u64,
    revocations: u64,
    sessions: u64,
    now: u64,
) -> Result<()> {
    let store = Store::open(dir)?;
    let ids = seed_users(&store, users, now)?;
    store.index_users()?;
    let all = (0..revocations)
        .map(|_| Ok((crypto::random_bytes::<16>()?, now + 86_400)))
        .collect::<Result<Vec<_>>>()?;
    store.import_revocations(all)?;
    seed_sessions(&store, &ids, sessions, now)?;
    store.flush_blocking()
}

/// `users` users, in batches; returns their ids.
fn seed_users(store: &Store, users: u64, now: u64) -> Result<Vec<UserId>> {
    let cost = Cost {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let bench_hash = crypto::hash_password("bench-password", cost)?;
    let mut ids = Vec::with_capacity(users as usize);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..users {
        let id = UserId::new(store.new_id()?);
        ids.push(id);
        batch.push(User {
            id,
            username: if i == 0 {
                "bench".into()
            } else {
                format!("user{i}")
            },
            email: Some(format!("user{i}@example.com")),
            password_hash: if i == 0 {
                bench_hash.clone()
            } else {
                random_phc()?
            },
            groups: vec!["users".into()],
            created_at: now,
        });
        if batch.len() == BATCH {
            store.import_users(&batch)?;
            batch.clear();
        }
    }
    store.import_users(&batch)?;
    Ok(ids)
}

/// `sessions` sessions of random users among `ids`, loaded at once (so
/// each user's list is written once).
fn seed_sessions(store: &Store, ids: &[UserId], sessions: u64, now: u64) -> Result<()> {
    let mut batch = Vec::with_capacity(sessions as usize);
    for i in 0..sessions {
        let [a, b, c, d, pick, ..] = crypto::random_bytes::<16>()?;
        let user = ids[(u32::from_le_bytes([a, b, c, d]) as usize) % ids.len().max(1)];
        batch.push(Session {
            id: SessionId(crypto::random_bytes()?),
            user_id: user,
            created_at: now - i % 3600,
            last_seen_at: now,
            expires_at: now + 86_400,
            epoch: 0,
            address: Some([10, 0, pick, a].into()),
            user_agent: AGENTS[usize::from(pick) % AGENTS.len()].into(),
            remember: false,
            domain: None,
            factors: Factors::Password,
        });
    }
    store.import_sessions(batch)
}

/// A scrypt PHC string of a random salt and output.
fn random_phc() -> Result<String> {
    let salt = crypto::random_bytes::<16>()?;
    let out = crypto::random_bytes::<32>()?;
    let b64 = |bytes: &[u8]| crypto::b64_encode(bytes).trim_end_matches('=').to_owned();
    Ok(format!(
        "$scrypt$ln=10,r=8,p=1${}${}",
        b64(&salt),
        b64(&out)
    ))
}
