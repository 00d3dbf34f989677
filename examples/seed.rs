//! Seeds a data directory through the library (not HTTP) for `bench/run`'s
//! large-database scenario: N users, M live revocations and S sessions, the
//! first user being `bench` with the password `bench-password`.
//!
//! ```text
//! cargo run --release --features bench --example seed -- DATA_DIR USERS REVOCATIONS [SESSIONS]
//! ```

#![forbid(unsafe_code)]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: seed DATA_DIR USERS REVOCATIONS [SESSIONS]")?;
    let users: u64 = args.next().ok_or("missing USERS")?.parse()?;
    let revocations: u64 = args.next().ok_or("missing REVOCATIONS")?.parse()?;
    let sessions: u64 = args.next().map_or(Ok(0), |s| s.parse())?;
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    latch::service::seed::seed(dir.as_ref(), users, revocations, sessions, now)?;
    eprintln!(
        "seeded {users} users, {revocations} revocations and {sessions} sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
