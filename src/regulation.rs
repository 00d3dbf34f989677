//! Brute-force regulation, after Authelia's: `max_retries` failed password
//! checks for one account within `find_time` ban it for `ban_time`, and
//! `max_retries_per_source` failed checks from one client address (any
//! accounts, known or not) ban that address for `ban_time`.
//!
//! A guess is counted when it is queued for hashing, not when the hash
//! completes, so guesses sent in parallel cannot all slip in before the
//! ban: once `max_retries` guesses are counted (finished or still being
//! hashed), further ones are refused as if banned without being checked,
//! and the ban itself starts when the last of them turns out wrong. When
//! a hash completes the ban is checked again, and a right password that
//! arrives during a ban is refused exactly like a wrong one (same answer,
//! same scrypt work), so a ban reveals nothing, not even that an account
//! exists. A right password outside a ban clears the account's count (and
//! takes back its own guess from the address's count: an address is never
//! banned for signing in). So at most `max_retries` guesses per account
//! get a real answer per window, in sequence or in parallel, and a person
//! who mistyped `max_retries - 1` times still gets in on the next try.
//!
//! Bans are kept in the store by the caller, so a restart does not lift
//! them; the counts themselves live in memory.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// Regulation settings; a zero disables the part it governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Failures for one account within `find_time` that ban it.
    pub max_retries: u32,
    /// Failures from one client address within `find_time` that ban it.
    pub max_retries_per_source: u32,
    /// The window failures are counted in, in seconds.
    pub find_time: u64,
    /// How long a ban lasts, in seconds.
    pub ban_time: u64,
}

/// A ban that a guess started, for the caller to store and audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ban {
    /// An account, until this second (exclusive).
    User(u64, u64),
    /// A client address, until this second (exclusive).
    Source(IpAddr, u64),
}

#[derive(Default)]
struct Entry {
    /// Times of recent failures, oldest first, at most the limit.
    failures: VecDeque<u64>,
    /// Banned until this second (exclusive), if banned.
    banned_until: Option<u64>,
}

impl Entry {
    fn banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }
}

/// Failure counts and bans for one kind of key.
struct Table<K> {
    /// Failures that start a ban; 0 disables the table.
    limit: u32,
    find_time: u64,
    ban_time: u64,
    /// A std mutex: held for a map update, never across an await.
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn new(limit: u32, s: &Settings) -> Self {
        Table {
            limit: if s.find_time > 0 && s.ban_time > 0 {
                limit
            } else {
                0
            },
            find_time: s.find_time,
            ban_time: s.ban_time,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn banned(&self, key: K, now: u64) -> bool {
        self.limit > 0 && self.lock().get(&key).is_some_and(|e| e.banned(now))
    }

    /// Counts a guess queued at `now`, unless the key is banned or already
    /// has `limit` guesses counted (then it is refused unchecked).
    fn admit(&self, key: K, now: u64) -> Admitted {
        if self.limit == 0 {
            return Admitted::Unlimited;
        }
        let mut entries = self.lock();
        let entry = entries.entry(key).or_default();
        if entry.banned(now) {
            return Admitted::Refused;
        }
        entry.banned_until = None;
        while entry
            .failures
            .front()
            .is_some_and(|&t| t.saturating_add(self.find_time) <= now)
        {
            entry.failures.pop_front();
        }
        if entry.failures.len() >= self.limit as usize {
            return Admitted::Refused;
        }
        entry.failures.push_back(now);
        Admitted::Counted
    }

    /// A counted guess turned out wrong at `now`: starts a ban when the
    /// count is at the limit; returns its end.
    fn settle_failure(&self, key: K, now: u64) -> Option<u64> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&key)?;
        if entry.banned(now) || entry.failures.len() < self.limit as usize {
            return None;
        }
        entry.failures.clear();
        let until = now.saturating_add(self.ban_time);
        entry.banned_until = Some(until);
        Some(until)
    }

    /// Takes back one failure counted at `at` (a guess that turned out
    /// right, or never got an answer).
    fn uncount(&self, key: K, at: u64) {
        if let Some(entry) = self.lock().get_mut(&key) {
            if let Some(i) = entry.failures.iter().rposition(|&t| t == at) {
                entry.failures.remove(i);
            }
        }
    }

    fn clear_failures(&self, key: K) {
        if let Some(entry) = self.lock().get_mut(&key) {
            entry.failures.clear();
        }
    }

    fn ban(&self, key: K, until: u64) {
        if self.limit > 0 {
            let mut entries = self.lock();
            let entry = entries.entry(key).or_default();
            entry.banned_until = Some(entry.banned_until.unwrap_or(0).max(until));
        }
    }

    fn prune(&self, now: u64) {
        self.lock().retain(|_, e| {
            e.banned(now)
                || e.failures
                    .back()
                    .is_some_and(|&t| t.saturating_add(self.find_time) > now)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// How a table took a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitted {
    /// The table is off.
    Unlimited,
    /// Counted (as a failure until it proves right).
    Counted,
    /// Banned, or the count is full: refused unchecked.
    Refused,
}

/// A password guess on its way through the hashing queue.
#[derive(Debug)]
#[must_use = "a guess must end as succeeded, failed or abandoned"]
pub struct Guess {
    user: Option<u64>,
    source: Option<IpAddr>,
    /// When it was counted.
    at: u64,
    /// Whether the account's and the address's tables counted it.
    counted: (bool, bool),
    /// Refused when queued: a ban held, or the count was full. It is still
    /// hashed, so the refusal costs what a wrong password costs.
    pub refused: bool,
}

/// Failure counts and bans per account and per client address.
pub struct Regulator {
    users: Table<u64>,
    sources: Table<IpAddr>,
}

impl Regulator {
    /// A regulator with these settings.
    pub fn new(settings: Settings) -> Regulator {
        Regulator {
            users: Table::new(settings.max_retries, &settings),
            sources: Table::new(settings.max_retries_per_source, &settings),
        }
    }

    /// Whether the account or the address is banned at `now`.
    pub fn is_banned(&self, user: Option<u64>, source: Option<IpAddr>, now: u64) -> bool {
        user.is_some_and(|u| self.users.banned(u, now))
            || source.is_some_and(|s| self.sources.banned(s, now))
    }

    /// Counts a guess as it is queued: as a failure, until it proves
    /// right. A guess made during a ban, or beyond the count, is refused
    /// unchecked and not counted.
    pub fn begin(&self, user: Option<u64>, source: Option<IpAddr>, now: u64) -> Guess {
        let by_user = user.map_or(Admitted::Unlimited, |u| self.users.admit(u, now));
        let by_source = match by_user {
            Admitted::Refused => Admitted::Refused,
            _ => source.map_or(Admitted::Unlimited, |s| self.sources.admit(s, now)),
        };
        let guess = Guess {
            user,
            source,
            at: now,
            counted: (by_user == Admitted::Counted, by_source == Admitted::Counted),
            refused: by_user == Admitted::Refused || by_source == Admitted::Refused,
        };
        if guess.refused {
            // Refused by the address: the account's count takes it back.
            if let (true, Some(u)) = (guess.counted.0, user) {
                self.users.uncount(u, now);
            }
            return Guess {
                counted: (false, false),
                ..guess
            };
        }
        guess
    }

    /// Whether `guess` must be refused as banned now that its hash is done:
    /// refused when queued, or a ban started meanwhile.
    pub fn banned_now(&self, guess: &Guess, now: u64) -> bool {
        guess.refused || self.is_banned(guess.user, guess.source, now)
    }

    /// A wrong password (outside a ban): returns the bans it completes,
    /// for the caller to store and audit.
    pub fn failed(&self, guess: Guess, now: u64) -> Vec<Ban> {
        let mut bans = Vec::new();
        if let (true, Some(u)) = (guess.counted.0, guess.user) {
            bans.extend(self.users.settle_failure(u, now).map(|t| Ban::User(u, t)));
        }
        if let (true, Some(s)) = (guess.counted.1, guess.source) {
            bans.extend(
                self.sources
                    .settle_failure(s, now)
                    .map(|t| Ban::Source(s, t)),
            );
        }
        bans
    }

    /// A right password outside a ban: the account's failures are cleared
    /// and this guess is taken back from the address's count.
    pub fn succeeded(&self, guess: Guess) {
        if let Some(u) = guess.user {
            self.users.clear_failures(u);
        }
        if let (true, Some(s)) = (guess.counted.1, guess.source) {
            self.sources.uncount(s, guess.at);
        }
    }

    /// A guess that got no answer (the hashing queue was full): taken back.
    pub fn abandoned(&self, guess: Guess) {
        if let (true, Some(u)) = (guess.counted.0, guess.user) {
            self.users.uncount(u, guess.at);
        }
        if let (true, Some(s)) = (guess.counted.1, guess.source) {
            self.sources.uncount(s, guess.at);
        }
    }

    /// A right password that needed no hash (remembered from a recent
    /// check): clears the account's failures.
    pub fn cleared(&self, user: u64) {
        self.users.clear_failures(user);
    }

    /// Lifts a ban and forgets the counts behind it (`latch user unban`).
    pub fn lift(&self, ban: Ban) {
        match ban {
            Ban::User(u, _) => {
                self.users.lock().remove(&u);
            }
            Ban::Source(s, _) => {
                self.sources.lock().remove(&s);
            }
        }
    }

    /// Restores a stored ban (at start-up).
    pub fn restore(&self, ban: Ban) {
        match ban {
            Ban::User(u, until) => self.users.ban(u, until),
            Ban::Source(s, until) => self.sources.ban(s, until),
        }
    }

    /// Forgets entries that no longer matter at `now` (bounded memory).
    pub fn prune(&self, now: u64) {
        self.users.prune(now);
        self.sources.prune(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        max_retries: 3,
        max_retries_per_source: 5,
        find_time: 100,
        ban_time: 50,
    };

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

    /// A wrong guess for `user` from `IP` at `t`; returns the bans it started.
    fn fail(r: &Regulator, user: u64, t: u64) -> Vec<Ban> {
        let g = r.begin(Some(user), Some(IP), t);
        if r.banned_now(&g, t) {
            return Vec::new();
        }
        r.failed(g, t)
    }

    #[test]
    fn bans_after_max_retries_within_find_time() {
        let r = Regulator::new(S);
        assert!(fail(&r, 1, 10).is_empty());
        assert!(fail(&r, 1, 20).is_empty());
        assert!(!r.is_banned(Some(1), None, 20));
        assert_eq!(fail(&r, 1, 30), vec![Ban::User(1, 80)]);
        assert!(r.is_banned(Some(1), None, 30));
        assert!(r.is_banned(Some(1), None, 79));
        assert!(!r.is_banned(Some(1), None, 80));
        assert!(
            !r.is_banned(Some(2), None, 30),
            "other accounts are unaffected"
        );
        // Guesses during a ban are refused, not counted, and do not extend it.
        let g = r.begin(Some(1), None, 60);
        assert!(g.refused);
        assert!(r.failed(g, 60).is_empty());
        assert!(!r.is_banned(Some(1), None, 80));
    }

    #[test]
    fn the_last_try_before_the_limit_still_gets_in() {
        let r = Regulator::new(S);
        assert!(fail(&r, 1, 1).is_empty());
        assert!(fail(&r, 1, 2).is_empty());
        let right = r.begin(Some(1), Some(IP), 3);
        assert!(!r.banned_now(&right, 3));
        r.succeeded(right);
        assert!(!r.is_banned(Some(1), Some(IP), 3));
    }

    #[test]
    fn parallel_guesses_are_counted_when_queued() {
        // Ten guesses queued before any hash completes: three are counted,
        // the other seven are refused unchecked (a right password among
        // them too), and the three wrong ones start the ban.
        let r = Regulator::new(S);
        let guesses: Vec<Guess> = (0..10).map(|_| r.begin(Some(1), None, 5)).collect();
        assert!(guesses[..3].iter().all(|g| !g.refused));
        assert!(guesses[3..].iter().all(|g| g.refused));
        let mut bans = Vec::new();
        for g in guesses {
            if !r.banned_now(&g, 6) {
                bans.extend(r.failed(g, 6));
            }
        }
        assert_eq!(bans, vec![Ban::User(1, 56)]);
        // A right password arriving now is refused and lifts nothing.
        let late = r.begin(Some(1), None, 7);
        assert!(r.banned_now(&late, 7));
        assert!(r.is_banned(Some(1), None, 7));
    }

    #[test]
    fn a_ban_started_meanwhile_refuses_a_right_password_in_flight() {
        let r = Regulator::new(S);
        let right = r.begin(Some(1), None, 5);
        // Meanwhile the address-independent account count fills and bans.
        let _ = fail(&r, 1, 5);
        let wrong = r.begin(Some(1), None, 5);
        assert_eq!(r.failed(wrong, 5), vec![Ban::User(1, 55)]);
        assert!(r.banned_now(&right, 6));
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let r = Regulator::new(S);
        let _ = fail(&r, 1, 0);
        let _ = fail(&r, 1, 50);
        assert!(
            fail(&r, 1, 100).is_empty(),
            "the first is out of the window"
        );
        assert_eq!(fail(&r, 1, 120), vec![Ban::User(1, 170)]);
    }

    #[test]
    fn success_clears_the_account_and_takes_back_its_own_guess() {
        let r = Regulator::new(S);
        let _ = fail(&r, 1, 0);
        let _ = fail(&r, 1, 1);
        let right = r.begin(Some(1), Some(IP), 2);
        assert!(!r.banned_now(&right, 2));
        r.succeeded(right);
        assert!(fail(&r, 1, 3).is_empty(), "the account's count was cleared");
        // The address saw 3 wrong guesses and a right one: 3 count, and
        // two more wrong ones (for other accounts) ban it.
        assert!(fail(&r, 2, 4).is_empty());
        assert_eq!(fail(&r, 3, 5), vec![Ban::Source(IP, 55)]);
        assert!(
            r.is_banned(Some(9), Some(IP), 6),
            "any account, that address"
        );
        assert!(!r.is_banned(Some(9), None, 6));
    }

    #[test]
    fn one_address_cannot_walk_through_many_accounts() {
        let r = Regulator::new(S);
        for user in 0..4 {
            assert!(fail(&r, user, 1).is_empty(), "{user}");
        }
        assert_eq!(fail(&r, 4, 1), vec![Ban::Source(IP, 51)]);
        // Unknown accounts count too.
        let r = Regulator::new(S);
        for _ in 0..4 {
            let g = r.begin(None, Some(IP), 1);
            assert!(r.failed(g, 1).is_empty());
        }
        let g = r.begin(None, Some(IP), 1);
        assert_eq!(r.failed(g, 1), vec![Ban::Source(IP, 51)]);
    }

    #[test]
    fn abandoned_guesses_are_taken_back() {
        let r = Regulator::new(S);
        for _ in 0..10 {
            let g = r.begin(Some(1), Some(IP), 1);
            assert!(!g.refused);
            r.abandoned(g);
        }
        assert!(!r.is_banned(Some(1), Some(IP), 1));
    }

    #[test]
    fn zero_disables_and_restore_brings_bans_back() {
        let off = Regulator::new(Settings {
            max_retries: 0,
            max_retries_per_source: 0,
            ..S
        });
        for t in 0..100 {
            assert!(fail(&off, 1, t).is_empty());
        }
        assert!(!off.is_banned(Some(1), Some(IP), 100));
        let r = Regulator::new(S);
        r.restore(Ban::User(7, 90));
        r.restore(Ban::Source(IP, 80));
        assert!(r.is_banned(Some(7), None, 89));
        assert!(!r.is_banned(Some(7), None, 90));
        assert!(r.is_banned(None, Some(IP), 79));
    }

    #[test]
    fn prune_keeps_live_state() {
        let r = Regulator::new(S);
        let _ = r.begin(Some(1), None, 0);
        for t in 0..3 {
            let g = r.begin(Some(2), None, t);
            let _ = r.failed(g, t);
        }
        // At 40: user 1 has a failure in the window, user 2 is banned.
        r.prune(40);
        assert_eq!(r.users.len(), 2);
        // At 90: user 2's ban ended (52); user 1's failure counts until 100.
        r.prune(90);
        assert_eq!(r.users.len(), 1);
        r.prune(100);
        assert_eq!(r.users.len() + r.sources.len(), 0);
    }
}
