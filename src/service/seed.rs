//! The benchmark seeder's library side (`--features bench` only): fills a
//! data directory with many users, live revocations and login-page sessions
//! through the store's bulk loaders. Not part of the production API.

use crate::crypto::{self, Cost};
use crate::error::Result;
use crate::model::{Factors, Session, SessionId, User, UserId};

use super::store::Store;

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

/// `users` users, loaded at once, as a restore loads them (each bucket of
/// records written once: loaded a thousand at a time, every bucket was
/// rewritten some fifteen times, and sled keeps the dead pages until a
/// segment is under half live); returns their ids.
fn seed_users(store: &Store, users: u64, now: u64) -> Result<Vec<UserId>> {
    let cost = Cost {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let bench_hash = crypto::hash_password("bench-password", cost)?;
    let mut ids = Vec::with_capacity(users as usize);
    let mut all = Vec::with_capacity(users as usize);
    for i in 0..users {
        let id = UserId::new(store.new_id()?);
        ids.push(id);
        all.push(User {
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
    }
    store.import_users(&all)?;
    Ok(ids)
}

/// `sessions` sessions of random users among `ids`, loaded at once (so
/// each user's list is written once).
fn seed_sessions(store: &Store, ids: &[UserId], sessions: u64, now: u64) -> Result<()> {
    let mut batch = Vec::with_capacity(sessions as usize);
    for i in 0..sessions {
        let [a, b, c, d, pick, e, f, ..] = crypto::random_bytes::<16>()?;
        let user = ids[(u32::from_le_bytes([a, b, c, d]) as usize) % ids.len().max(1)];
        batch.push(Session {
            id: SessionId(crypto::random_bytes()?),
            user_id: user,
            created_at: now - i % 3600,
            last_seen_at: now,
            expires_at: now + 86_400,
            epoch: 0,
            address: Some([10, 0, pick, a].into()),
            user_agent: user_agent([pick, e, f]),
            remember: false,
            domain: None,
            factors: Factors::Password,
        });
    }
    store.import_sessions(batch)
}

/// A browser's `User-Agent` as a login page sees it: four families over
/// twenty versions each, drawn at random (96 strings; browsers now freeze
/// the rest of the string, so real traffic is not much more varied).
fn user_agent([family, a, b]: [u8; 3]) -> String {
    let major = u32::from(a) % 20;
    let (apple, point) = (15 + major % 4, u32::from(b) % 7);
    match family % 4 {
        0 => format!(
            "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
            v = 115 + major
        ),
        1 => format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/{}.0.0.0 Safari/537.36",
            112 + major
        ),
        2 => format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS {apple}_{point} like Mac OS X) \
             AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{apple}.{point} Mobile/15E148 \
             Safari/604.1"
        ),
        _ => format!(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like \
             Gecko) Version/{apple}.{point} Safari/605.1.15"
        ),
    }
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
