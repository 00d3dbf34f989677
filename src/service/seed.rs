//! The benchmark seeder's library side (`--features bench` only): fills a
//! data directory with many users and live revocations through the
//! store's bulk loaders. Not part of the production API.

use crate::crypto::{self, Cost};
use crate::error::Result;
use crate::model::{User, UserId};

use super::store::Store;

/// Seeds `dir` with `users` users (the first is `bench`, password
/// `bench-password`) and `revocations` revocations live for a day.
pub fn seed(dir: &std::path::Path, users: u64, revocations: u64, now: u64) -> Result<()> {
    let store = Store::open(dir)?;
    // One hash for everyone: hashing a million passwords is not the point.
    let cost = Cost {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let phc = crypto::hash_password("bench-password", cost)?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..users {
        batch.push(User {
            id: UserId::new(store.new_id()?),
            username: if i == 0 {
                "bench".into()
            } else {
                format!("user{i}")
            },
            email: Some(format!("user{i}@example.com")),
            password_hash: phc.clone(),
            groups: vec!["users".into()],
            created_at: now,
        });
        if batch.len() == batch.capacity() {
            store.import_users(&batch)?;
            batch.clear();
        }
    }
    store.import_users(&batch)?;
    let mut batch = Vec::with_capacity(10_000);
    for _ in 0..revocations {
        batch.push((crypto::random_bytes::<16>()?, now + 86_400));
        if batch.len() == batch.capacity() {
            store.import_revocations(&batch)?;
            batch.clear();
        }
    }
    store.import_revocations(&batch)?;
    store.flush_blocking()
}
