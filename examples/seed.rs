//! Seeds a data directory through the library (not HTTP) for `bench/run`'s
//! large-database scenario: N users and M live revocations, plus the user
//! `bench` with the password `bench-password`.
//!
//! ```text
//! cargo run --release --features bench --example seed -- DATA_DIR USERS REVOCATIONS
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: seed DATA_DIR USERS REVOCATIONS")?;
    let users: u64 = args.next().ok_or("missing USERS")?.parse()?;
    let revocations: u64 = args.next().ok_or("missing REVOCATIONS")?.parse()?;
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    latch::service::seed::seed(dir.as_ref(), users, revocations, now)?;
    eprintln!(
        "seeded {users} users and {revocations} revocations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
