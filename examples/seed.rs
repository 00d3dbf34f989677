//! Seeds a data directory through the library (not HTTP) for `bench/run`'s
//! large-database scenario: N users and M live revocations, plus the user
//! `bench` with the password `bench-password`.
//!
//! ```text
//! cargo run --release --example seed -- DATA_DIR USERS REVOCATIONS
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

use latch::crypto::{self, Cost};
use latch::store::{Store, User};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: seed DATA_DIR USERS REVOCATIONS")?;
    let users: u64 = args.next().ok_or("missing USERS")?.parse()?;
    let revocations: u64 = args.next().ok_or("missing REVOCATIONS")?.parse()?;
    let started = Instant::now();
    let store = Store::open(dir.as_ref())?;
    // One hash for everyone: hashing a million passwords is not the point.
    let cost = Cost {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let phc = crypto::hash_password("bench-password", cost)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..users {
        batch.push(User {
            id: store.new_id()?,
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
    store.flush_blocking()?;
    eprintln!(
        "seeded {users} users and {revocations} revocations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
