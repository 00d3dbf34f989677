//! Brute-force regulation, after Authelia's: `max_retries` failed password
//! checks for one account within `find_time` ban it for `ban_time`, and
//! `max_retries_per_source` failed checks from one client address (any
//! accounts, known or not) ban that address for `ban_time`. An IPv6
//! client counts by its /64 network, which one host or LAN typically holds
//! whole.
//!
//! A guess is counted when it is queued for hashing, not when the hash
//! completes, so guesses sent in parallel cannot all slip in before the
//! ban: once `max_retries` guesses are counted (finished or still being
//! hashed), further ones are refused as if banned without being checked,
//! and the ban itself starts when the last of them turns out wrong. When
//! a hash completes the ban is checked again, and a right password that
//! arrives during a ban is refused exactly like a wrong one.
//!
//! What an answer may reveal, and so what costs a hash:
//! - a guess refused because of its *account* is still hashed, and still
//!   counts against its address, exactly as a guess for an account that
//!   does not exist: an account's ban reveals nothing, not even that the
//!   account exists;
//! - a guess from a banned (or saturated) *address* is refused at once,
//!   without a hash: that address learns only that it is banned, and
//!   cannot keep the hashing pool busy.
//!
//! A right password outside a ban clears the account's failures that came
//! from the same address (the person who mistyped), never those from
//! others, so a script signing in regularly cannot wash away another
//! address's guesses; and it takes back its own guess from the address's
//! count: an address is never banned for signing in. So at most
//! `max_retries` guesses per account get a real answer per window, in
//! sequence or in parallel, and a person who mistyped `max_retries - 1`
//! times still gets in on the next try.
//!
//! Bans are kept in the store by the caller, so a restart does not lift
//! them; the counts themselves live in memory.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use crate::model::{Ban, UserId};

pub use crate::config::Regulation as Settings;

/// What an address counts as: IPv4 (and IPv4-mapped IPv6) addresses
/// whole, IPv6 addresses by their /64 network.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// One counted guess: when, and from which address (key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    at: u64,
    from: Option<IpAddr>,
}

#[derive(Default)]
struct Entry {
    /// Recent guesses counted as failures, oldest first, at most the limit.
    failures: VecDeque<Failure>,
    /// Banned until this second (exclusive), if banned.
    banned_until: Option<u64>,
}

impl Entry {
    fn banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|until| now < until)
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

    /// Counts a guess queued at `now` from `from`, unless the key is banned
    /// or already has `limit` guesses counted (then it is refused
    /// unchecked).
    fn admit(&self, key: K, now: u64, from: Option<IpAddr>) -> Admitted {
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
            .is_some_and(|f| f.at.saturating_add(self.find_time) <= now)
        {
            entry.failures.pop_front();
        }
        if entry.failures.len() >= self.limit as usize {
            return Admitted::Refused;
        }
        entry.failures.push_back(Failure { at: now, from });
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

    /// Takes back one failure counted at `at` from `from` (a guess that
    /// turned out right, or never got an answer).
    fn uncount(&self, key: K, at: u64, from: Option<IpAddr>) {
        if let Some(entry) = self.lock().get_mut(&key) {
            let mine = Failure { at, from };
            if let Some(i) = entry.failures.iter().rposition(|f| *f == mine) {
                entry.failures.remove(i);
            }
        }
    }

    /// Forgets the failures that came from `from`.
    fn clear_failures_from(&self, key: K, from: Option<IpAddr>) {
        if let Some(entry) = self.lock().get_mut(&key) {
            entry.failures.retain(|f| f.from != from);
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
                    .is_some_and(|f| f.at.saturating_add(self.find_time) > now)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A password guess on its way through the hashing queue.
#[derive(Debug)]
#[must_use = "a guess must end as succeeded, failed or abandoned"]
pub struct Guess {
    user: Option<UserId>,
    /// The address's key (see [`source_key`]).
    source: Option<IpAddr>,
    /// When it was counted.
    at: u64,
    /// Whether the account's and the address's tables still hold it as
    /// counted (to settle or take back).
    counted: (bool, bool),
    /// Refused when queued: a ban held, or the count was full. Refused for
    /// its account, it is still hashed, so the refusal costs what a wrong
    /// password costs.
    pub refused: bool,
    /// Refused for its address: answered at once, without a hash.
    pub refused_at_once: bool,
    /// Bans its queueing already completed (a guess refused for its
    /// account is a failure for its address right away).
    pub new_bans: Vec<Ban>,
}

/// Failure counts and bans per account and per client address.
pub struct Regulator {
    users: Table<UserId>,
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
    pub fn is_banned(&self, user: Option<UserId>, source: Option<IpAddr>, now: u64) -> bool {
        user.is_some_and(|u| self.users.banned(u, now))
            || source.is_some_and(|s| self.sources.banned(source_key(s), now))
    }

    /// Counts a guess as it is queued: as a failure, until it proves
    /// right. A guess made during a ban, or beyond the count, is refused
    /// unchecked (see [`Guess`]).
    pub fn begin(&self, user: Option<UserId>, source: Option<IpAddr>, now: u64) -> Guess {
        let source = source.map(source_key);
        let by_source = source.map_or(Admitted::Unlimited, |s| self.sources.admit(s, now, None));
        let mut guess = Guess {
            user,
            source,
            at: now,
            counted: (false, by_source == Admitted::Counted),
            refused: by_source == Admitted::Refused,
            refused_at_once: by_source == Admitted::Refused,
            new_bans: Vec::new(),
        };
        if guess.refused {
            return guess;
        }
        match user.map_or(Admitted::Unlimited, |u| self.users.admit(u, now, source)) {
            Admitted::Counted => guess.counted.0 = true,
            Admitted::Unlimited => {}
            Admitted::Refused => {
                // Refused for its account: for its address, a failure now,
                // as a guess for an account that does not exist would be.
                guess.refused = true;
                if let (true, Some(s)) = (guess.counted.1, source) {
                    guess.new_bans.extend(
                        self.sources
                            .settle_failure(s, now)
                            .map(|t| Ban::Source(s, t)),
                    );
                }
                guess.counted.1 = false;
            }
        }
        guess
    }

    /// Whether `guess` must be refused as banned now that its hash is done:
    /// refused when queued, or a ban started meanwhile.
    pub fn banned_now(&self, guess: &Guess, now: u64) -> bool {
        guess.refused
            || guess.user.is_some_and(|u| self.users.banned(u, now))
            || guess.source.is_some_and(|s| self.sources.banned(s, now))
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

    /// A right password outside a ban: the account's failures from this
    /// address are cleared, and this guess is taken back from the
    /// address's count.
    pub fn succeeded(&self, guess: Guess) {
        if let Some(u) = guess.user {
            self.users.clear_failures_from(u, guess.source);
        }
        if let (true, Some(s)) = (guess.counted.1, guess.source) {
            self.sources.uncount(s, guess.at, None);
        }
    }

    /// A guess that got no answer (the hashing queue was full): taken back.
    pub fn abandoned(&self, guess: Guess) {
        if let (true, Some(u)) = (guess.counted.0, guess.user) {
            self.users.uncount(u, guess.at, guess.source);
        }
        if let (true, Some(s)) = (guess.counted.1, guess.source) {
            self.sources.uncount(s, guess.at, None);
        }
    }

    /// A right password that needed no hash (remembered from a recent
    /// check from this address): clears the account's failures from it.
    pub fn cleared(&self, user: UserId, source: Option<IpAddr>) {
        self.users.clear_failures_from(user, source.map(source_key));
    }

    /// Lifts a ban and forgets the counts behind it (`latch user unban`).
    pub fn lift(&self, ban: Ban) {
        match ban {
            Ban::User(u, _) => {
                self.users.lock().remove(&u);
            }
            Ban::Source(s, _) => {
                self.sources.lock().remove(&source_key(s));
            }
        }
    }

    /// Restores a stored ban (at start-up).
    pub fn restore(&self, ban: Ban) {
        match ban {
            Ban::User(u, until) => self.users.ban(u, until),
            Ban::Source(s, until) => self.sources.ban(source_key(s), until),
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

    fn u(n: u64) -> UserId {
        UserId::new(n)
    }

    const S: Settings = Settings {
        max_retries: 3,
        max_retries_per_source: 5,
        find_time: 100,
        ban_time: 50,
    };

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 8));

    /// A wrong guess for `user` from `from` at `t`; returns the bans it
    /// started.
    fn fail_from(r: &Regulator, user: u64, from: IpAddr, t: u64) -> Vec<Ban> {
        let g = r.begin(Some(u(user)), Some(from), t);
        let mut bans = g.new_bans.clone();
        if !r.banned_now(&g, t) {
            bans.extend(r.failed(g, t));
        }
        bans
    }

    fn fail(r: &Regulator, user: u64, t: u64) -> Vec<Ban> {
        fail_from(r, user, IP, t)
    }

    #[test]
    fn bans_after_max_retries_within_find_time() {
        let r = Regulator::new(S);
        assert!(fail(&r, 1, 10).is_empty());
        assert!(fail(&r, 1, 20).is_empty());
        assert!(!r.is_banned(Some(u(1)), None, 20));
        assert_eq!(fail(&r, 1, 30), vec![Ban::User(u(1), 80)]);
        assert!(r.is_banned(Some(u(1)), None, 30));
        assert!(r.is_banned(Some(u(1)), None, 79));
        assert!(!r.is_banned(Some(u(1)), None, 80));
        assert!(
            !r.is_banned(Some(u(2)), None, 30),
            "other accounts are unaffected"
        );
        // Guesses during a ban are refused, hashed all the same, and do not
        // extend it.
        let g = r.begin(Some(u(1)), None, 60);
        assert!(g.refused && !g.refused_at_once);
        assert!(r.failed(g, 60).is_empty());
        assert!(!r.is_banned(Some(u(1)), None, 80));
    }

    #[test]
    fn the_last_try_before_the_limit_still_gets_in() {
        let r = Regulator::new(S);
        assert!(fail(&r, 1, 1).is_empty());
        assert!(fail(&r, 1, 2).is_empty());
        let right = r.begin(Some(u(1)), Some(IP), 3);
        assert!(!r.banned_now(&right, 3));
        r.succeeded(right);
        assert!(!r.is_banned(Some(u(1)), Some(IP), 3));
    }

    #[test]
    fn parallel_guesses_are_counted_when_queued() {
        // Ten guesses queued before any hash completes: three are counted,
        // the other seven are refused unchecked (a right password among
        // them too), and the three wrong ones start the ban.
        let r = Regulator::new(S);
        let guesses: Vec<Guess> = (0..10).map(|_| r.begin(Some(u(1)), None, 5)).collect();
        assert!(guesses[..3].iter().all(|g| !g.refused));
        assert!(guesses[3..].iter().all(|g| g.refused));
        let mut bans = Vec::new();
        for g in guesses {
            if !r.banned_now(&g, 6) {
                bans.extend(r.failed(g, 6));
            }
        }
        assert_eq!(bans, vec![Ban::User(u(1), 56)]);
        // A right password arriving now is refused and lifts nothing.
        let late = r.begin(Some(u(1)), None, 7);
        assert!(r.banned_now(&late, 7));
        assert!(r.is_banned(Some(u(1)), None, 7));
    }

    #[test]
    fn a_ban_started_meanwhile_refuses_a_right_password_in_flight() {
        let r = Regulator::new(S);
        let right = r.begin(Some(u(1)), None, 5);
        let _ = fail(&r, 1, 5);
        let wrong = r.begin(Some(u(1)), None, 5);
        assert_eq!(r.failed(wrong, 5), vec![Ban::User(u(1), 55)]);
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
        assert_eq!(fail(&r, 1, 120), vec![Ban::User(u(1), 170)]);
    }

    #[test]
    fn success_clears_only_its_own_addresss_failures() {
        let r = Regulator::new(S);
        let _ = fail_from(&r, 1, OTHER, 0);
        let _ = fail_from(&r, 1, IP, 1);
        // The owner signs in from IP: IP's failure goes, OTHER's stays.
        let right = r.begin(Some(u(1)), Some(IP), 2);
        assert!(!r.banned_now(&right, 2));
        r.succeeded(right);
        let _ = fail_from(&r, 1, OTHER, 3);
        assert_eq!(fail_from(&r, 1, OTHER, 4), vec![Ban::User(u(1), 54)]);
    }

    #[test]
    fn a_regular_sign_in_does_not_wash_away_another_addresss_guesses() {
        // A script signs in between an attacker's guesses, from elsewhere.
        let r = Regulator::new(S);
        let mut banned = false;
        for t in 0..3 {
            let script = r.begin(Some(u(1)), Some(IP), t);
            r.succeeded(script);
            r.cleared(u(1), Some(IP));
            banned |= !fail_from(&r, 1, OTHER, t).is_empty();
        }
        assert!(banned && r.is_banned(Some(u(1)), None, 3));
    }

    #[test]
    fn success_takes_back_its_own_guess_from_the_address() {
        let r = Regulator::new(S);
        for _ in 0..10 {
            let right = r.begin(Some(u(1)), Some(IP), 1);
            r.succeeded(right);
        }
        for user in 2..6 {
            assert!(fail(&r, user, 2).is_empty(), "{user}");
        }
        assert_eq!(fail(&r, 6, 2), vec![Ban::Source(IP, 52)]);
    }

    #[test]
    fn one_address_cannot_walk_through_many_accounts() {
        let r = Regulator::new(S);
        for user in 0..4 {
            assert!(fail(&r, user, 1).is_empty(), "{user}");
        }
        assert_eq!(fail(&r, 4, 1), vec![Ban::Source(IP, 51)]);
        // Now refused at once, for any account: no hash.
        let g = r.begin(Some(u(9)), Some(IP), 2);
        assert!(g.refused && g.refused_at_once);
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
    fn a_banned_account_counts_against_the_address_as_an_unknown_one_does() {
        // Twenty-one guesses for one account from one address end the same
        // way whether the account exists (and gets banned) or not.
        for exists in [true, false] {
            let r = Regulator::new(S);
            let mut bans = Vec::new();
            for t in 0..7 {
                let user = exists.then_some(u(1));
                let g = r.begin(user, Some(IP), t);
                bans.extend(g.new_bans.clone());
                if !r.banned_now(&g, t) {
                    bans.extend(r.failed(g, t));
                }
            }
            assert!(
                bans.contains(&Ban::Source(IP, 54)),
                "exists {exists}: {bans:?}"
            );
            assert!(r.is_banned(None, Some(IP), 6), "exists {exists}");
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let r = Regulator::new(S);
        for n in 1..5u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, n));
            assert!(fail_from(&r, u64::from(n), ip, 1).is_empty());
        }
        let fifth = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xffff, 0, 0, 9));
        let net = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0));
        assert_eq!(fail_from(&r, 9, fifth, 1), vec![Ban::Source(net, 51)]);
        let neighbour = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(!r.is_banned(None, Some(neighbour), 2));
        assert_eq!(
            source_key("::ffff:203.0.113.7".parse().unwrap()),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn abandoned_guesses_are_taken_back() {
        let r = Regulator::new(S);
        for _ in 0..10 {
            let g = r.begin(Some(u(1)), Some(IP), 1);
            assert!(!g.refused);
            r.abandoned(g);
        }
        assert!(!r.is_banned(Some(u(1)), Some(IP), 1));
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
        assert!(!off.is_banned(Some(u(1)), Some(IP), 100));
        let r = Regulator::new(S);
        r.restore(Ban::User(u(7), 90));
        r.restore(Ban::Source(IP, 80));
        assert!(r.is_banned(Some(u(7)), None, 89));
        assert!(!r.is_banned(Some(u(7)), None, 90));
        assert!(r.is_banned(None, Some(IP), 79));
        r.lift(Ban::Source(IP, 0));
        assert!(!r.is_banned(None, Some(IP), 79));
    }

    #[test]
    fn prune_keeps_live_state() {
        let r = Regulator::new(S);
        let _ = r.begin(Some(u(1)), None, 0);
        for t in 0..3 {
            let g = r.begin(Some(u(2)), None, t);
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
