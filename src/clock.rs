//! The one clock.
//!
//! Every expiry decision reads time through [`Clock`], so tests move time
//! forward instead of sleeping it out.
//!
//! It owns the notion of now; nothing else in latch reads the system time for
//! an expiry.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the system's, or a frozen instant, plus an
/// offset tests can move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// A fixed "now" for tests, so a second boundary passing mid-test
    /// cannot change an outcome; `None` reads the system clock.
    frozen: Option<u64>,
    /// Seconds added to the time; zero outside tests. Shared so a test
    /// holding a clone moves the server's clock too.
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock stopped at the current system time; only
    /// [`Clock::advance`] moves it.
    pub fn frozen() -> Self {
        Clock {
            frozen: Some(system_now()),
            offset: Arc::default(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        self.frozen
            .unwrap_or_else(system_now)
            .saturating_add_signed(self.offset.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch as `2026-11-29T22:30:00Z` (UTC).
pub fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_every_clone() {
        let a = Clock::system();
        let b = a.clone();
        let before = b.now();
        a.advance(3600);
        assert!(b.now() >= before + 3600);
    }

    #[test]
    fn frozen_stands_still_until_advanced() {
        let c = Clock::frozen();
        let t = c.now();
        assert_eq!(c.clone().now(), t);
        c.advance(5);
        assert_eq!(c.now(), t + 5);
    }
}
