//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Every counter is a relaxed atomic: counting costs the hot path one
//! uncontended atomic add, never a lock.
//!
//! It owns the counters and their exposition; it never reads the store (gauges
//! are passed in).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The routes requests are counted by (a fixed set, so labels stay bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Route {
    Users,
    User,
    Me,
    Password,
    Token,
    Resource,
    LogoutAll,
    Keys,
    Key,
    Sessions,
    Session,
    Totp,
    Account,
    Login,
    LoginOtp,
    Logout,
    Home,
    Auth,
    AuthNginx,
    Healthz,
    Metrics,
    OpenApi,
    Other,
}

impl Route {
    const ALL: [Route; 23] = [
        Route::Users,
        Route::User,
        Route::Me,
        Route::Password,
        Route::Token,
        Route::Resource,
        Route::LogoutAll,
        Route::Keys,
        Route::Key,
        Route::Sessions,
        Route::Session,
        Route::Totp,
        Route::Account,
        Route::Login,
        Route::LoginOtp,
        Route::Logout,
        Route::Home,
        Route::Auth,
        Route::AuthNginx,
        Route::Healthz,
        Route::Metrics,
        Route::OpenApi,
        Route::Other,
    ];

    /// Whether browsers use it (forward auth and latch's pages): refusals
    /// there are HTML pages for browsers.
    pub fn is_page(self) -> bool {
        matches!(
            self,
            Route::Login
                | Route::LoginOtp
                | Route::Logout
                | Route::Home
                | Route::Account
                | Route::Auth
                | Route::AuthNginx
        )
    }

    /// The `route` label.
    pub fn label(self) -> &'static str {
        match self {
            Route::Users => "/api/users",
            Route::User => "/api/users/{id}",
            Route::Me => "/api/users/me",
            Route::Password => "/api/users/me/password",
            Route::Token => "/api/token",
            Route::Resource => "/api/resource",
            Route::LogoutAll => "/api/logout-all",
            Route::Keys => "/api/keys",
            Route::Key => "/api/keys/{id}",
            Route::Sessions => "/api/sessions",
            Route::Session => "/api/sessions/{id}",
            Route::Totp => "/api/totp/...",
            Route::Account => "/account/...",
            Route::Login => "/login",
            Route::LoginOtp => "/login/otp/...",
            Route::Logout => "/logout",
            Route::Home => "/",
            Route::Auth => "/auth",
            Route::AuthNginx => "/auth/nginx",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.yaml",
            Route::Other => "other",
        }
    }
}

/// How a password check ended.
#[derive(Debug, Clone, Copy)]
pub enum LoginResult {
    /// The password matched.
    Success,
    /// It did not (or the user does not exist).
    Failure,
    /// The account is banned (answered like a failure).
    Banned,
}

/// How a one-time code check ended.
#[derive(Debug, Clone, Copy)]
pub enum CodeResult {
    /// Right, and not used before.
    Ok,
    /// Wrong (counted towards a ban).
    Wrong,
    /// Right, but used before (refused, not counted).
    Replayed,
}

/// Which kind of credential was verified.
#[derive(Debug, Clone, Copy)]
pub enum CredentialKind {
    /// A token (header, query or session cookie).
    Token,
    /// An API key.
    ApiKey,
    /// A username and password.
    Password,
}

/// Upper bounds of the request-latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counter shards: each thread counts in one of these (by a number it
/// draws once), so two threads answering requests at once do not fight
/// over the same cache line on every request. `/metrics` adds them up.
const SHARDS: usize = 16;

/// One shard of every counter, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    logins: [AtomicU64; 3],
    codes: [AtomicU64; 3],
    verifications: [[AtomicU64; 2]; 3],
    tokens_issued: AtomicU64,
    revocations: AtomicU64,
    bans: AtomicU64,
    /// Per route, per status class (1xx..5xx).
    requests: [[AtomicU64; 5]; Route::ALL.len()],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

/// All counters.
pub struct Metrics {
    shards: Box<[Counters]>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            shards: (0..SHARDS).map(|_| Counters::default()).collect(),
        }
    }
}

static NEXT_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
}

impl Metrics {
    /// This thread's shard.
    fn here(&self) -> &Counters {
        &self.shards[SHARD.with(|s| *s)]
    }

    /// One counter summed over the shards.
    fn sum(&self, counter: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|c| counter(c).load(Relaxed)).sum()
    }

    /// Counts a password check.
    pub fn login(&self, result: LoginResult) {
        self.here().logins[result as usize].fetch_add(1, Relaxed);
    }

    /// Counts a one-time code checked (after a right password).
    pub fn code(&self, result: CodeResult) {
        self.here().codes[result as usize].fetch_add(1, Relaxed);
    }

    /// Counts a verification of a credential.
    pub fn verification(&self, kind: CredentialKind, ok: bool) {
        self.here().verifications[kind as usize][usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// Counts an issued token.
    pub fn token_issued(&self) {
        self.here().tokens_issued.fetch_add(1, Relaxed);
    }

    /// Counts a revocation (one token, or all of a user's at once).
    pub fn revocation(&self) {
        self.here().revocations.fetch_add(1, Relaxed);
    }

    /// Counts a ban.
    pub fn ban(&self) {
        self.here().bans.fetch_add(1, Relaxed);
    }

    /// Counts a request and its latency.
    pub fn request(&self, route: Route, status: u16, elapsed: Duration) {
        let here = self.here();
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        here.requests[route as usize][class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            here.latency_buckets[i].fetch_add(1, Relaxed);
        }
        here.latency_count.fetch_add(1, Relaxed);
        here.latency_sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
    }

    /// The Prometheus text exposition, with the gauges passed in.
    pub fn render(&self, queue_depth: usize, users: usize) -> String {
        let mut out = String::with_capacity(4096);
        for family in self.families(queue_depth, users) {
            family.write(&mut out);
        }
        out
    }

    /// Every metric family with its samples: the table `render` prints.
    fn families(&self, queue_depth: usize, users: usize) -> [Family; 10] {
        let counter = |name, help, value: u64| {
            Family::new(name, help, "counter").with("", String::new(), value)
        };
        [
            self.logins_family(),
            self.codes_family(),
            self.verifications_family(),
            counter(
                "latch_tokens_issued_total",
                "Tokens and sessions issued.",
                self.sum(|c| &c.tokens_issued),
            ),
            counter(
                "latch_revocations_total",
                "Revocations: logouts, logouts everywhere, password changes, deletions.",
                self.sum(|c| &c.revocations),
            ),
            counter(
                "latch_bans_total",
                "Accounts banned by regulation.",
                self.sum(|c| &c.bans),
            ),
            self.requests_family(),
            self.latency_family(),
            Family::new(
                "latch_hash_queue_depth",
                "Password checks waiting for a hashing slot.",
                "gauge",
            )
            .with("", String::new(), queue_depth),
            Family::new("latch_users", "Registered users.", "gauge").with("", String::new(), users),
        ]
    }

    fn logins_family(&self) -> Family {
        let mut f = Family::new(
            "latch_logins_total",
            "Password checks, by result.",
            "counter",
        );
        for (i, result) in ["success", "failure", "banned"].iter().enumerate() {
            f = f.with(
                "",
                format!("result=\"{result}\""),
                self.sum(|c| &c.logins[i]),
            );
        }
        f
    }

    fn codes_family(&self) -> Family {
        let mut f = Family::new(
            "latch_one_time_codes_total",
            "One-time and recovery codes checked, by result (replayed: right, but used before).",
            "counter",
        );
        for (i, result) in ["ok", "wrong", "replayed"].iter().enumerate() {
            f = f.with(
                "",
                format!("result=\"{result}\""),
                self.sum(|c| &c.codes[i]),
            );
        }
        f
    }

    fn verifications_family(&self) -> Family {
        let mut f = Family::new(
            "latch_verifications_total",
            "Credentials verified, by kind and result.",
            "counter",
        );
        for (k, kind) in ["token", "api_key", "password"].iter().enumerate() {
            for (r, result) in ["ok", "refused"].iter().enumerate() {
                let n = self.sum(|c| &c.verifications[k][r]);
                f = f.with("", format!("kind=\"{kind}\",result=\"{result}\""), n);
            }
        }
        f
    }

    /// Requests per route and status class; classes never seen are left out.
    fn requests_family(&self) -> Family {
        let mut f = Family::new(
            "latch_http_requests_total",
            "HTTP requests, by route and status class.",
            "counter",
        );
        for (r, route) in Route::ALL.iter().enumerate() {
            for class in 1..=5 {
                let n = self.sum(|c| &c.requests[r][class - 1]);
                if n > 0 {
                    let labels = format!("route=\"{}\",status=\"{class}xx\"", route.label());
                    f = f.with("", labels, n);
                }
            }
        }
        f
    }

    fn latency_family(&self) -> Family {
        let mut f = Family::new(
            "latch_http_request_duration_seconds",
            "Time to answer a request.",
            "histogram",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.sum(|c| &c.latency_buckets[i]);
            f = f.with("_bucket", format!("le=\"{bound}\""), cumulative);
        }
        let count = self.sum(|c| &c.latency_count);
        let sum = self.sum(|c| &c.latency_sum_micros) as f64 / 1e6;
        f.with("_bucket", "le=\"+Inf\"".to_owned(), count)
            .with("_sum", String::new(), sum)
            .with("_count", String::new(), count)
    }
}

/// One metric family: `# HELP`, `# TYPE`, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    /// Name suffix (`_bucket`, ...), labels without braces, value.
    samples: Vec<(&'static str, String, String)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn with(mut self, suffix: &'static str, labels: String, value: impl ToString) -> Family {
        self.samples.push((suffix, labels, value.to_string()));
        self
    }

    fn write(&self, out: &mut String) {
        let Family {
            name, help, kind, ..
        } = self;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (suffix, labels, value) in &self.samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name}{suffix} {value}");
            } else {
                let _ = writeln!(out, "{name}{suffix}{{{labels}}} {value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_the_histogram() {
        let m = Metrics::default();
        m.login(LoginResult::Success);
        m.login(LoginResult::Banned);
        m.verification(CredentialKind::ApiKey, false);
        m.request(Route::Resource, 200, Duration::from_micros(700));
        m.request(Route::Resource, 401, Duration::from_secs(3));
        let text = m.render(2, 7);
        for line in [
            "latch_logins_total{result=\"success\"} 1",
            "latch_logins_total{result=\"banned\"} 1",
            "latch_verifications_total{kind=\"api_key\",result=\"refused\"} 1",
            "latch_http_requests_total{route=\"/api/resource\",status=\"2xx\"} 1",
            "latch_http_requests_total{route=\"/api/resource\",status=\"4xx\"} 1",
            "latch_http_request_duration_seconds_bucket{le=\"0.001\"} 1",
            "latch_http_request_duration_seconds_bucket{le=\"2.5\"} 1",
            "latch_http_request_duration_seconds_bucket{le=\"+Inf\"} 2",
            "latch_http_request_duration_seconds_count 2",
            "latch_hash_queue_depth 2",
            "latch_users 7",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
