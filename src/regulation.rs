//! Brute-force regulation, after Authelia's: `max_retries` failed password
//! checks for one account within `find_time` ban it for `ban_time`.
//!
//! During a ban even the right password is refused, with exactly the
//! response a wrong password gets and after the same scrypt work, so a
//! ban reveals nothing (not even that the account exists). State is in
//! memory: a restart lifts bans.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Regulation settings; `max_retries == 0` disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Failures within `find_time` that trigger a ban.
    pub max_retries: u32,
    /// The window failures are counted in, in seconds.
    pub find_time: u64,
    /// How long a ban lasts, in seconds.
    pub ban_time: u64,
}

impl Settings {
    /// Whether regulation is on.
    pub fn enabled(&self) -> bool {
        self.max_retries > 0 && self.find_time > 0 && self.ban_time > 0
    }
}

#[derive(Default)]
struct Entry {
    /// Times of recent failures, oldest first, at most `max_retries`.
    failures: VecDeque<u64>,
    /// Banned until this second (exclusive), if banned.
    banned_until: Option<u64>,
}

/// Failure counts and bans per user id.
pub struct Regulator {
    settings: Settings,
    /// A std mutex: held for a map update, never across an await.
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Regulator {
    /// A regulator with these settings.
    pub fn new(settings: Settings) -> Regulator {
        Regulator {
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user_id` is banned at `now`.
    pub fn is_banned(&self, user_id: u64, now: u64) -> bool {
        self.settings.enabled()
            && self
                .lock()
                .get(&user_id)
                .and_then(|e| e.banned_until)
                .is_some_and(|until| now < until)
    }

    /// Records a failed password check; returns the end of the ban when
    /// this failure starts one.
    pub fn failed(&self, user_id: u64, now: u64) -> Option<u64> {
        if !self.settings.enabled() {
            return None;
        }
        let s = self.settings;
        let mut entries = self.lock();
        let entry = entries.entry(user_id).or_default();
        if entry.banned_until.is_some_and(|until| now < until) {
            return None;
        }
        entry.banned_until = None;
        while entry
            .failures
            .front()
            .is_some_and(|&t| t.saturating_add(s.find_time) <= now)
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        if entry.failures.len() >= s.max_retries as usize {
            entry.failures.clear();
            let until = now.saturating_add(s.ban_time);
            entry.banned_until = Some(until);
            return Some(until);
        }
        None
    }

    /// A successful check clears the account's failures.
    pub fn succeeded(&self, user_id: u64) {
        if self.settings.enabled() {
            self.lock().remove(&user_id);
        }
    }

    /// Forgets entries that no longer matter at `now` (bounded memory).
    pub fn prune(&self, now: u64) {
        let find_time = self.settings.find_time;
        self.lock().retain(|_, e| {
            e.banned_until.is_some_and(|until| now < until)
                || e.failures
                    .back()
                    .is_some_and(|&t| t.saturating_add(find_time) > now)
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        max_retries: 3,
        find_time: 100,
        ban_time: 50,
    };

    #[test]
    fn bans_after_max_retries_within_find_time() {
        let r = Regulator::new(S);
        assert_eq!(r.failed(1, 10), None);
        assert_eq!(r.failed(1, 20), None);
        assert!(!r.is_banned(1, 20));
        assert_eq!(r.failed(1, 30), Some(80));
        assert!(r.is_banned(1, 30));
        assert!(r.is_banned(1, 79));
        assert!(!r.is_banned(1, 80));
        assert!(!r.is_banned(2, 30), "other accounts are unaffected");
        // Failures during a ban do not extend it.
        assert_eq!(r.failed(1, 60), None);
        assert!(!r.is_banned(1, 80));
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let r = Regulator::new(S);
        r.failed(1, 0);
        r.failed(1, 50);
        assert_eq!(
            r.failed(1, 100),
            None,
            "the first failure is out of the window"
        );
        assert_eq!(r.failed(1, 120), Some(170));
    }

    #[test]
    fn success_clears_and_zero_disables() {
        let r = Regulator::new(S);
        r.failed(1, 0);
        r.failed(1, 1);
        r.succeeded(1);
        assert_eq!(r.failed(1, 2), None);
        let off = Regulator::new(Settings {
            max_retries: 0,
            ..S
        });
        for t in 0..100 {
            assert_eq!(off.failed(1, t), None);
        }
        assert!(!off.is_banned(1, 100));
    }

    #[test]
    fn prune_keeps_live_state() {
        let r = Regulator::new(S);
        r.failed(1, 0);
        r.failed(2, 0);
        r.failed(2, 1);
        r.failed(2, 2);
        // At 40: user 1 has a failure in the window, user 2 is banned.
        r.prune(40);
        assert_eq!(r.lock().len(), 2);
        // At 90: user 2's ban ended (52); user 1's failure counts until 100.
        r.prune(90);
        assert_eq!(r.lock().keys().copied().collect::<Vec<_>>(), vec![1]);
        r.prune(100);
        assert!(r.lock().is_empty());
    }
}
