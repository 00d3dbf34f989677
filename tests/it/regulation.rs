//! Brute-force regulation: bans per account, indistinguishable from a
//! wrong password, on every password-checking path; and no enumeration.

use latch::Clock;

use crate::forward::{open_login, submit_login, Form, FA_CONFIG};
use crate::support::*;

const ORIGIN: (&str, &str) = ("Origin", "http://auth.example.test");

/// A response without its `Date` header, for byte-for-byte comparison.
fn comparable(res: &Response) -> (u16, Vec<(String, String)>, String) {
    let headers = res
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
        .cloned()
        .collect();
    (res.status, headers, res.text())
}

fn start(extra: &str) -> (TempDir, Clock, InProcess) {
    let dir = TempDir::new("regulation");
    let clock = Clock::frozen();
    let server = InProcess::start(&dir, &format!("{FA_CONFIG}{extra}"), clock.clone());
    server.client.register("alice", "alice-password");
    server.client.register("bob", "bob-password");
    (dir, clock, server)
}

/// Every password-checking path, with these credentials (the form login
/// from the browser session `form`).
fn attempts(c: &Client, form: &Form, user: &str, password: &str) -> Vec<(&'static str, Response)> {
    vec![
        ("basic", c.resource(&basic(user, password))),
        (
            "token",
            c.get("/api/token", &[("Authorization", &basic(user, password))]),
        ),
        (
            "json login",
            c.post_json(
                "/login",
                &json!({"username": user, "password": password}),
                &[],
            ),
        ),
        (
            "form login",
            submit_login(c, form, user, password, None, &[ORIGIN]),
        ),
        (
            "forward auth",
            c.get("/auth", &[("Authorization", &basic(user, password))]),
        ),
    ]
}

#[test]
fn a_ban_looks_exactly_like_a_wrong_password_on_every_path() {
    let (_dir, clock, server) = start("");
    let c = server.client;
    let form = open_login(&c, "");
    // Reference answers: a wrong password, before any ban.
    let wrong: Vec<_> = attempts(&c, &form, "alice", "wrong-password")
        .into_iter()
        .map(|(path, res)| (path, comparable(&res)))
        .collect();
    // That was 5 failures, one per path: alice is banned now.
    let banned: Vec<_> = attempts(&c, &form, "alice", "alice-password")
        .into_iter()
        .map(|(path, res)| (path, comparable(&res)))
        .collect();
    for ((path, w), (_, b)) in wrong.iter().zip(&banned) {
        assert_eq!(w.0, 401, "{path}");
        assert_eq!(
            w, b,
            "{path}: the banned answer differs from a wrong password's"
        );
    }
    // Bob is not affected.
    for (path, res) in attempts(&c, &form, "bob", "bob-password") {
        assert!(matches!(res.status, 200 | 303), "{path}: {}", res.status);
    }
    // The ban ends after ban_time (300 s), not before.
    clock.advance(299);
    assert_eq!(c.resource(&basic("alice", "alice-password")).status, 401);
    clock.advance(1);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn failures_outside_find_time_do_not_add_up() {
    let (_dir, clock, server) = start("");
    let c = server.client;
    for _ in 0..4 {
        c.resource(&basic("alice", "wrong-password"));
    }
    clock.advance(121);
    for _ in 0..4 {
        c.resource(&basic("alice", "wrong-password"));
    }
    c.assert_alive("alice", "alice-password");
    // A success clears the count: four more failures still do not ban.
    for _ in 0..4 {
        c.resource(&basic("alice", "wrong-password"));
    }
    c.assert_alive("alice", "alice-password");
    // Five in a row do.
    for _ in 0..5 {
        c.resource(&basic("alice", "wrong-password"));
    }
    assert_eq!(c.resource(&basic("alice", "alice-password")).status, 401);
    // Every path is barred, the JSON login too.
    assert_eq!(
        c.post_json(
            "/login",
            &json!({"username": "alice", "password": "alice-password"}),
            &[]
        )
        .status,
        401
    );
}

#[test]
fn zero_disables_regulation() {
    let (_dir, _clock, server) =
        start("[regulation]\nmax_retries = 0\nmax_retries_per_source = 0\n");
    let c = server.client;
    for _ in 0..20 {
        assert_eq!(c.resource(&basic("alice", "wrong-password")).status, 401);
    }
    c.assert_alive("alice", "alice-password");
}

#[test]
fn bans_are_logged() {
    let dir = TempDir::new("banlog");
    let server = Server::start(&dir, "[regulation]\nmax_retries = 2\n[scrypt]\nlog_n = 4\n");
    let c = server.client();
    c.register("alice", "alice-password");
    c.resource(&basic("alice", "wrong-password"));
    c.resource(&basic("alice", "wrong-password"));
    assert_eq!(c.resource(&basic("alice", "alice-password")).status, 401);
    let log = server.log_containing("refused a login: the account is banned");
    assert!(
        log.contains("banned an account after repeated failed logins"),
        "{log}"
    );
    assert!(
        log.contains("refused a login: the account is banned"),
        "{log}"
    );
    assert!(
        !log.contains("wrong-password") && !log.contains("alice-password"),
        "{log}"
    );
}

/// The median of `samples`, in microseconds.
fn median(mut samples: Vec<u128>) -> u128 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
fn unknown_users_wrong_passwords_and_bans_take_the_same_time() {
    // A cost high enough that skipping the hash would show (milliseconds).
    let dir = TempDir::new("timing");
    let server = InProcess::new(
        &dir,
        // Every guess comes from one address: no per-address ban here.
        "[regulation]\nmax_retries = 3\nmax_retries_per_source = 0\n[scrypt]\nlog_n = 12\n",
    );
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    // Ban bob.
    for _ in 0..3 {
        c.resource(&basic("bob", "wrong-password"));
    }
    let time = |user: &str, password: &str| {
        let start = std::time::Instant::now();
        let res = c.resource(&basic(user, password));
        let elapsed = start.elapsed().as_micros();
        assert_eq!(res.status, 401);
        (elapsed, res.body)
    };
    let (mut unknown, mut wrong, mut banned) = (Vec::new(), Vec::new(), Vec::new());
    let mut bodies = std::collections::HashSet::new();
    for i in 0..40 {
        // Interleaved, so drift in the machine hits all three alike.
        let (t, b) = time(&format!("nobody{i}"), "alice-password");
        unknown.push(t);
        bodies.insert(b);
        let (t, b) = time("alice", "wrong-password");
        wrong.push(t);
        bodies.insert(b);
        let (t, b) = time("bob", "bob-password");
        banned.push(t);
        bodies.insert(b);
        if i % 2 == 1 {
            // Keep alice under the ban threshold.
            c.assert_alive("alice", "alice-password");
        }
    }
    assert_eq!(bodies.len(), 1, "the bodies differ");
    let medians = [median(unknown), median(wrong), median(banned)];
    let (lo, hi) = (
        *medians.iter().min().unwrap(),
        *medians.iter().max().unwrap(),
    );
    eprintln!(
        "median µs: unknown {} wrong {} banned {}",
        medians[0], medians[1], medians[2]
    );
    // Skipping the hash for any of the three would make it 20x faster or
    // more; 2x leaves room for a machine busy with other tests.
    assert!(lo > 0);
    assert!(hi <= lo * 2, "medians differ by more than 2x: {medians:?}");
}

#[test]
fn parallel_guesses_cannot_slip_past_the_ban() {
    // Hashes slow enough to overlap: guesses queue up behind the one
    // hashing slot. Before, each was checked against the ban only when it
    // arrived, so all ten got a real answer and the right one got in.
    let (_dir, clock, server) = start(
        "[regulation]\nmax_retries = 3\nmax_retries_per_source = 0\n[scrypt]\nlog_n = 14\n\
         max_concurrent = 1\n",
    );
    let c = server.client;
    let guesses: Vec<_> = (0..10)
        .map(|i| {
            // A brute force: every guess different (identical guesses in
            // flight together are one guess, checked once).
            let password = if i == 8 {
                "alice-password".to_owned()
            } else {
                format!("wrong-password-{i}")
            };
            let handle = std::thread::spawn(move || c.resource(&basic("alice", &password)));
            std::thread::sleep(std::time::Duration::from_millis(4));
            handle
        })
        .collect();
    let statuses: Vec<u16> = guesses
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .collect();
    assert_eq!(statuses, [401; 10]);
    // The ban holds, then ends.
    assert_eq!(c.resource(&basic("alice", "alice-password")).status, 401);
    clock.advance(300);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn one_address_cannot_walk_through_many_accounts() {
    let (_dir, clock, server) = start("[regulation]\nmax_retries_per_source = 3\n");
    let c = server.client;
    // From a trusted proxy (loopback), the client is the rightmost address
    // the proxy did not vouch for.
    let from = |source: &str, user: &str, password: &str| {
        c.get(
            "/api/resource",
            &[
                ("Authorization", &basic(user, password)),
                ("X-Forwarded-For", source),
            ],
        )
        .status
    };
    // Signing in never counts against an address.
    for _ in 0..10 {
        assert_eq!(from("203.0.113.5", "alice", "alice-password"), 200);
    }
    assert_eq!(from("203.0.113.5", "nobody1", "guess-one"), 401);
    assert_eq!(from("203.0.113.5", "nobody2", "guess-two"), 401);
    assert_eq!(from("203.0.113.5", "bob", "guess-three"), 401);
    // Banned: every account, the right password too, from that address,
    // whatever the client writes to the left of it.
    assert_eq!(from("203.0.113.5", "alice", "alice-password"), 401);
    assert_eq!(from("6.6.6.6, 203.0.113.5", "alice", "alice-password"), 401);
    assert_eq!(from("203.0.113.5", "bob", "bob-password"), 401);
    // Other addresses are not affected, and the accounts were not banned.
    assert_eq!(from("203.0.113.6", "alice", "alice-password"), 200);
    assert_eq!(from("203.0.113.6", "bob", "bob-password"), 200);
    clock.advance(300);
    assert_eq!(from("203.0.113.5", "alice", "alice-password"), 200);
}

#[test]
fn bans_survive_a_restart() {
    let dir = TempDir::new("banrestart");
    let server = Server::start(
        &dir,
        "[regulation]\nmax_retries = 2\nmax_retries_per_source = 3\n[scrypt]\nlog_n = 4\n",
    );
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    // The client's address, as the trusted (loopback) proxy says.
    let from = |c: &Client, source: &str, user: &str, password: &str| {
        c.get(
            "/api/resource",
            &[
                ("Authorization", &basic(user, password)),
                ("X-Forwarded-For", source),
            ],
        )
        .status
    };
    // alice is banned (two wrong guesses, from two addresses: no address
    // reaches its limit); 203.0.113.9 is banned (three wrong guesses).
    from(&c, "203.0.113.21", "alice", "wrong-password");
    from(&c, "203.0.113.22", "alice", "wrong-password");
    for user in ["nobody1", "nobody2", "nobody3"] {
        from(&c, "203.0.113.9", user, "guess-guess");
    }
    let server = server.restart();
    let c = server.client();
    assert_eq!(
        from(&c, "203.0.113.30", "alice", "alice-password"),
        401,
        "the account ban survived"
    );
    assert_eq!(
        from(&c, "203.0.113.9", "bob", "bob-password"),
        401,
        "the address ban survived"
    );
    assert_eq!(from(&c, "203.0.113.10", "bob", "bob-password"), 200);
    let log = server.log_containing("refused a login");
    assert!(log.contains("result=\"banned\""), "{log}");
    // An operator lifts them at once.
    let (status, stdout, stderr) = latch_with(&["user", "unban", "alice"], &server.config_path);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("lifted the ban of alice"), "{stdout}");
    assert_eq!(from(&c, "203.0.113.30", "alice", "alice-password"), 200);
    let (status, stdout, _) = latch_with(
        &["user", "unban", "--address", "203.0.113.9"],
        &server.config_path,
    );
    assert!(
        status.success() && stdout.contains("lifted the ban of 203.0.113.9"),
        "{stdout}"
    );
    assert_eq!(from(&c, "203.0.113.9", "bob", "bob-password"), 200);
    let (status, stdout, _) = latch_with(&["user", "unban", "alice"], &server.config_path);
    assert!(
        status.success() && stdout.contains("was not banned"),
        "{stdout}"
    );
    // The audit log says the same as the command: what was lifted, and
    // an address as an address.
    let log = server.log_containing("it was not banned");
    assert!(log.contains("reset an account's failure count"), "{log}");
    assert!(log.contains("lifted the ban of a client address"), "{log}");
    assert!(log.contains("address=203.0.113.9"), "{log}");
    assert!(!log.contains("user=\"203.0.113.9\""), "{log}");
    let (status, _, stderr) = latch_with(&["user", "unban"], &server.config_path);
    assert!(!status.success(), "{stderr}");
    // Lifted for good: a restart does not bring them back.
    let server = server.restart();
    let c = server.client();
    assert_eq!(from(&c, "203.0.113.30", "alice", "alice-password"), 200);
    assert_eq!(from(&c, "203.0.113.9", "bob", "bob-password"), 200);
}

#[test]
fn a_raised_cost_does_not_tell_known_users_from_unknown_ones() {
    // Users registered at a low cost, then the cost raised: until they sign
    // in again, a wrong password used to cost the old (cheap) hash, and an
    // unknown user the new (dear) one.
    let dir = TempDir::new("costraise");
    let cheap = "[regulation]\nmax_retries = 0\nmax_retries_per_source = 0\n[scrypt]\nlog_n = 12\n";
    let dear = "[regulation]\nmax_retries = 0\nmax_retries_per_source = 0\n[scrypt]\nlog_n = 13\n";
    let server = InProcess::new(&dir, cheap);
    server.client().register("alice", "alice-password");
    server.client().register("bob", "bob-password");
    server.stop().unwrap();
    let server = InProcess::new(&dir, dear);
    let c = server.client();
    let time = |user: &str, password: &str| {
        let start = std::time::Instant::now();
        assert_eq!(c.resource(&basic(user, password)).status, 401);
        start.elapsed().as_micros()
    };
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..15 {
        unknown.push(time(&format!("nobody{i}"), "alice-password"));
        wrong.push(time("alice", "wrong-password"));
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    eprintln!("median µs: unknown {unknown} wrong (not yet rehashed) {wrong}");
    // Padding with a second hash at the new cost made it dearer instead
    // (about 1.5x here); skipping the padding made it cheaper.
    assert!(
        wrong * 4 >= unknown * 3,
        "a wrong password is cheaper: {wrong} vs {unknown}"
    );
    assert!(
        wrong * 3 <= unknown * 4,
        "a wrong password is dearer: {wrong} vs {unknown}"
    );
    // A right password rehashes at the new cost; from then on it is the same.
    c.assert_alive("bob", "bob-password");
    let mut rehashed = Vec::new();
    for _ in 0..5 {
        rehashed.push(time("bob", "wrong-password"));
    }
    let rehashed = median(rehashed);
    assert!(rehashed * 2 >= unknown, "{rehashed} vs {unknown}");
}

#[test]
fn a_script_firing_the_same_credentials_at_once_is_one_guess() {
    // Thirty requests with the same Basic credentials before the first is
    // answered (a cold password cache): one hash, shared; not thirty
    // guesses, which would ban the account on its own right password.
    let (_dir, _clock, server) = start(
        "[regulation]\nmax_retries = 3\nmax_retries_per_source = 3\n[scrypt]\nlog_n = 14\n\
         max_concurrent = 1\n",
    );
    let c = server.client;
    let run = |password: &'static str| {
        let handles: Vec<_> = (0..30)
            .map(|_| std::thread::spawn(move || c.resource(&basic("alice", password)).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    };
    assert_eq!(run("alice-password"), [200; 30]);
    // The same wrong password thirty times at once is one wrong guess too.
    assert_eq!(run("wrong-password"), [401; 30]);
    c.assert_alive("alice", "alice-password");
    c.assert_alive("bob", "bob-password");
}

#[test]
fn a_banned_address_costs_no_hashing_and_a_regular_sign_in_washes_nothing() {
    let (_dir, _clock, server) = start(
        "[regulation]\nmax_retries = 3\nmax_retries_per_source = 3\n[scrypt]\nlog_n = 15\n\
         max_concurrent = 1\n",
    );
    let c = server.client;
    let from = |source: &str, user: &str, password: &str| {
        let started = std::time::Instant::now();
        let status = c
            .get(
                "/api/resource",
                &[
                    ("Authorization", &basic(user, password)),
                    ("X-Forwarded-For", source),
                ],
            )
            .status;
        (status, started.elapsed())
    };
    // A script signs in from .5 between an attacker's guesses from .6:
    // its successes do not wash the attacker's failures away.
    for guess in ["guess-1", "guess-2", "guess-3"] {
        assert_eq!(from("203.0.113.5", "alice", "alice-password").0, 200);
        assert_eq!(from("203.0.113.6", "alice", guess).0, 401);
    }
    let (status, _) = from("203.0.113.5", "alice", "alice-password");
    assert_eq!(status, 401, "alice is banned after three wrong guesses");
    // .6 is banned now too (three failures); its requests are answered at
    // once, without occupying the hashing pool.
    let (_, one_hash) = from("203.0.113.7", "bob", "bob-password");
    let started = std::time::Instant::now();
    for user in ["bob", "nobody", "alice"] {
        assert_eq!(from("203.0.113.6", user, "whatever-pw").0, 401);
    }
    let three = started.elapsed();
    assert!(
        three < one_hash,
        "three answers to a banned address took {three:?}, one hash {one_hash:?}"
    );
}
