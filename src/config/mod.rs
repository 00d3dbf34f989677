//! Configuration: read raw (TOML file plus `LATCH_*` environment), then
//! validated in one pass into typed values before anything starts.
//!
//! Every key is documented in `config/latch.toml`. This module owns the
//! file's schema and its meaning; it never opens the database or a socket.
//!
//! - `raw.rs`: the file as written (serde only, defaults derived);
//! - `validate.rs`: raw into [`Config`], one function per section;
//! - [`keyfile`]: reading and creating the signing key files;
//! - `show.rs`: the masked printout `check-config` gives;
//! - `warnings.rs`: the traps the README names, found in a configuration;
//! - [`net`]: addresses, networks and URL hosts, parsed in one place.

mod access;
pub mod keyfile;
pub mod net;
mod raw;
mod show;
mod validate;
mod warnings;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::Cost;
use crate::error::{Error, Result};

pub use net::IpNet;
use raw::Raw;
pub(crate) use show::toml_string;
pub(crate) use validate::site_url;

/// Where `serve` looks when neither `--config` nor `$LATCH_CONFIG` is given.
pub const SYSTEM_CONFIG: &str = "/etc/latch/latch.toml";

/// The configuration in the working directory, when there is no other.
pub const LOCAL_CONFIG: &str = "latch.toml";

/// Longest accepted token lifetime: a year. Bounded so `iat + ttl` never
/// overflows and stays exact in every JSON number reader.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86400);

/// Shortest accepted signing key, in decoded bytes.
pub const MIN_KEY_LEN: usize = 32;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Who may create accounts over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone may `POST /api/users`.
    Open,
    /// `POST /api/users` answers 403; accounts come from the CLI.
    Closed,
}

/// Where the signing key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `secret_key`, already decoded.
    Inline(Vec<u8>),
    /// `secret_key_file` (created on first start when absent).
    File(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Inline(_) => f.write_str("Inline(********)"),
            KeySource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// `[totp]`: the second factor.
#[derive(Debug, Clone)]
pub struct Totp {
    /// The issuer apps show beside the account (`[ui] title` by default).
    pub issuer: String,
    /// Whether a user without a second factor who reaches a `two_factor`
    /// rule is sent to set one up (else refused).
    pub enrol_on_demand: bool,
}

/// Password hashing: cost and how much of it may run at once.
#[derive(Debug, Clone, Copy)]
pub struct Hashing {
    /// scrypt cost for new hashes; older hashes below it are upgraded at login.
    pub cost: Cost,
    /// Hashes running at once (each on a blocking thread).
    pub max_concurrent: usize,
    /// Requests allowed to wait for a hashing slot; beyond that, 503.
    pub max_queue: usize,
    /// How long a successful password check is remembered (zero: never),
    /// so Basic auth does not cost a hash per request.
    pub cache_ttl: Duration,
}

/// Half the cores this process may use, at least one: the default of
/// `[limits] workers` (and of the benchmarks' baseline). latch shares its
/// host with the proxy that calls it (each forward-auth check is a
/// request through the proxy too) and with its own scrypt threads; a
/// check costs a worker about a microsecond outside the kernel, so more
/// workers than that mostly add wake-ups between them (BENCHMARKS.md:
/// on 2 cores, one worker serves 17-35 % more checks than two).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// HTTP limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body accepted, in bytes; larger is 413.
    pub max_body: usize,
    /// How long a client may take to send the request head (hyper starts
    /// this clock when a keep-alive connection goes idle, so it is also the
    /// idle timeout) and, separately, its body.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's
    /// backlog until a slot frees up.
    pub max_connections: usize,
    /// Threads that serve requests (tokio workers): by default half the
    /// cores, at least one. scrypt runs on threads of its own.
    pub workers: usize,
}

/// Forward auth and the login page.
#[derive(Debug, Clone)]
pub struct ForwardAuth {
    /// `Domain` of the session cookie (lowercase, no leading dot); `rd`
    /// redirects are followed only to this domain and its subdomains.
    /// Without it the cookie is host-only and `rd` must point at the
    /// `public_url` host.
    pub cookie_domain: Option<String>,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Whether the cookie is `Secure` (and only https `rd` are followed).
    pub cookie_secure: bool,
    /// Lifetime of a login-page session.
    pub session_ttl: Duration,
    /// A session unused this long is refused (zero: never).
    pub session_inactivity: Duration,
    /// Lifetime of a session with "remember me" ticked (zero: no box).
    pub remember_me_ttl: Duration,
    /// Where unauthenticated browsers are sent (`?rd=` is appended).
    pub login_url: Option<String>,
    /// Peers whose `X-Forwarded-*` / `X-Original-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `[[forward_auth.domains]]`: the cookie domains latch signs in for,
    /// each with its own login host. Empty: the single domain above
    /// (`cookie_domain`, `public_url`, `login_url`) is the only one.
    pub domains: Vec<Site>,
}

/// `[ui]`: how the login and account pages present themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ui {
    /// The name shown on the pages (and in their titles).
    pub title: String,
}

/// One cookie domain latch signs in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The session cookie's `Domain`; `rd` stays within it.
    pub cookie_domain: String,
    /// latch's own URL on this domain (its login host), no trailing slash.
    pub public_url: String,
    /// Where browsers not signed in are sent (`?rd=` is appended).
    pub login_url: String,
}

/// The domain a request is about: a listed [`Site`], or the single
/// domain of the shorthand keys.
#[derive(Debug, Clone, Copy)]
pub struct SiteRef<'a> {
    /// The session cookie's `Domain`, if any (none: host-only).
    pub cookie_domain: Option<&'a str>,
    /// latch's URL on this domain, if known.
    pub public_url: Option<&'a str>,
    /// The login page browsers are sent to, if known.
    pub login_url: Option<&'a str>,
}

impl<'a> From<&'a Site> for SiteRef<'a> {
    fn from(site: &'a Site) -> SiteRef<'a> {
        SiteRef {
            cookie_domain: Some(&site.cookie_domain),
            public_url: Some(&site.public_url),
            login_url: Some(&site.login_url),
        }
    }
}

/// Whether `host` (lowercase, no port) is `domain` or below it.
pub fn domain_covers(domain: &str, host: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

impl Config {
    /// The single domain of the shorthand keys (or the first listed one).
    pub fn primary_site(&self) -> SiteRef<'_> {
        match self.forward_auth.domains.first() {
            Some(site) => site.into(),
            None => SiteRef {
                cookie_domain: self.forward_auth.cookie_domain.as_deref(),
                public_url: self.public_url.as_deref(),
                login_url: self.forward_auth.login_url.as_deref(),
            },
        }
    }

    /// The domain a forwarded request for `host` belongs to. With
    /// `[[forward_auth.domains]]`, the one whose cookie domain covers the
    /// host (the longest, if several), or `None`; without, the single one.
    pub fn site_for_host(&self, host: Option<&str>) -> Option<SiteRef<'_>> {
        if self.forward_auth.domains.is_empty() {
            return Some(self.primary_site());
        }
        let host = net::request_host(host?)?.to_ascii_lowercase();
        self.forward_auth
            .domains
            .iter()
            .filter(|s| domain_covers(&s.cookie_domain, &host))
            .max_by_key(|s| s.cookie_domain.len())
            .map(SiteRef::from)
    }

    /// The domain whose login host a page request came to (by the host the
    /// browser asked for, port aside, which only picks among the
    /// configured ones), else the first.
    pub fn site_for_page(&self, host: Option<&str>) -> SiteRef<'_> {
        let host = host.and_then(net::request_host);
        let chosen = host.and_then(|h| {
            self.forward_auth.domains.iter().find(|s| {
                net::url_host(&s.public_url).is_some_and(|own| own.eq_ignore_ascii_case(h))
            })
        });
        match chosen {
            Some(site) => site.into(),
            None => self.primary_site(),
        }
    }
}

impl ForwardAuth {
    /// Whether `ip` is a trusted proxy (its forwarding headers are believed).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

/// The JSON API's own settings.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// Whether `GET /api/users/<id>` answers without a credential (the
    /// REST-auth article's behaviour; it lets anyone list usernames).
    pub public_profiles: bool,
    /// How recently the password must have been proven (Basic, or a token's
    /// `auth_time`) to create an API key or change the email.
    pub reauth_window: Duration,
}

/// The operations listener (`/healthz`, `/metrics`, `/openapi.yaml`).
#[derive(Debug, Clone, Copy)]
pub struct Ops {
    /// Where it listens; `None` turns it off.
    pub listen: Option<SocketAddr>,
}

/// The validated configuration. `Debug` masks the key.
#[derive(Clone, Debug)]
pub struct Config {
    /// Socket address to listen on; port 0 picks one.
    pub listen: SocketAddr,
    /// The sled database directory.
    pub data_dir: PathBuf,
    /// Where the signing key comes from.
    pub key: KeySource,
    /// Keys that no longer sign but still verify (key rotation): from
    /// `previous_keys` (decoded here) and `previous_key_files` (read at start).
    pub previous_keys: Vec<KeySource>,
    /// External base URL without a trailing slash, for `Location` headers.
    pub public_url: Option<String>,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
    /// Whether anyone may register.
    pub registration: Registration,
    /// Whether `?auth_token=` is accepted.
    pub query_token: bool,
    /// Log level for the `tracing` subscriber.
    pub log_level: tracing::Level,
    /// Log lines as text or as JSON objects.
    pub log_format: LogFormat,
    /// Password hashing.
    pub hashing: Hashing,
    /// HTTP limits.
    pub limits: Limits,
    /// Forward auth and the login page.
    pub forward_auth: ForwardAuth,
    /// Brute-force regulation.
    pub regulation: Regulation,
    /// The JSON API.
    pub api: Api,
    /// The operations listener.
    pub ops: Ops,
    /// The pages' look.
    pub ui: Ui,
    /// `[storage] encryption_key_file`: the AES-256-GCM key secrets at rest
    /// (TOTP secrets) are sealed with, apart from the signing key (created
    /// on first start when absent).
    pub storage_key_file: PathBuf,
    /// `[totp]`: the second factor.
    pub totp: Totp,
    /// `[access_control]`: the rules as configured at start (the server
    /// holds the live ones, which a reload may replace).
    pub access: std::sync::Arc<crate::access::AccessControl>,
}

/// Brute-force regulation; a zero disables the part it governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regulation {
    /// Failures for one account within `find_time` that ban it.
    pub max_retries: u32,
    /// Failures from one client address within `find_time` that ban it.
    pub max_retries_per_source: u32,
    /// The window failures are counted in, in seconds.
    pub find_time: u64,
    /// How long a ban lasts, in seconds.
    pub ban_time: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_raw(Raw::default()).expect("defaults are valid")
    }
}

/// Which configuration file a command reads, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// Named with `--config`.
    Flag(PathBuf),
    /// Named by `$LATCH_CONFIG`.
    Env(PathBuf),
    /// [`SYSTEM_CONFIG`], which exists.
    System(PathBuf),
    /// `./latch.toml` in the working directory, which exists.
    Local(PathBuf),
    /// None: built-in defaults (and `LATCH_*` variables).
    Defaults,
}

impl ConfigFile {
    /// `--config` if given, else `$LATCH_CONFIG`, else [`SYSTEM_CONFIG`] if
    /// it exists, else `./latch.toml` if it exists, else the defaults.
    pub fn locate(flag: Option<&Path>) -> ConfigFile {
        if let Some(path) = flag {
            return ConfigFile::Flag(path.to_path_buf());
        }
        if let Some(path) = std::env::var_os("LATCH_CONFIG") {
            return ConfigFile::Env(PathBuf::from(path));
        }
        let system = PathBuf::from(SYSTEM_CONFIG);
        if system.exists() {
            return ConfigFile::System(system);
        }
        let local = PathBuf::from(LOCAL_CONFIG);
        if local.exists() {
            return ConfigFile::Local(local);
        }
        ConfigFile::Defaults
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigFile::Flag(p)
            | ConfigFile::Env(p)
            | ConfigFile::System(p)
            | ConfigFile::Local(p) => Some(p),
            ConfigFile::Defaults => None,
        }
    }

    /// The drop-in directory beside the file: `latch.d/` for `latch.toml`
    /// (`<stem>.d`), whose `*.toml` files are read after it, in name
    /// order. `latch init` writes there, so the packaged file stays as
    /// the package shipped it.
    pub fn drop_in_dir(&self) -> Option<PathBuf> {
        let path = self.path()?;
        let stem = path.file_stem()?.to_str()?;
        Some(path.with_file_name(format!("{stem}.d")))
    }

    /// The drop-in files that exist, in the order they are read.
    pub fn drop_ins(&self) -> Vec<PathBuf> {
        let Some(dir) = self.drop_in_dir() else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        files
    }
}

/// "config /etc/latch/latch.toml (from --config)", for the one stderr line
/// every command that reads a configuration prints first.
impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFile::Flag(p) => write!(f, "config {} (from --config)", p.display()),
            ConfigFile::Env(p) => write!(f, "config {} (from $LATCH_CONFIG)", p.display()),
            ConfigFile::System(p) => write!(f, "config {}", p.display()),
            ConfigFile::Local(p) => write!(f, "config {} (in the working directory)", p.display()),
            ConfigFile::Defaults => f.write_str("no config file: built-in defaults"),
        }?;
        for drop_in in self.drop_ins() {
            write!(f, ", then {}", drop_in.display())?;
        }
        Ok(())
    }
}

impl Config {
    /// Loads the configuration `serve` and the CLI use: `path` if given, else
    /// `$LATCH_CONFIG`, else [`SYSTEM_CONFIG`] if it exists, else defaults;
    /// then `LATCH_*` environment overrides (`LATCH_SCRYPT__LOG_N` for
    /// nested keys).
    pub fn load(path: Option<&Path>) -> Result<Config> {
        Self::load_from(&ConfigFile::locate(path))
    }

    /// Loads the configuration from `file` (see [`ConfigFile::locate`]),
    /// then the `LATCH_*` environment overrides.
    pub fn load_from(file: &ConfigFile) -> Result<Config> {
        let path = file.path();
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(Error::config(format_args!(
                    "config: cannot read {}: no such file",
                    path.display()
                )));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            for drop_in in file.drop_ins() {
                builder = builder
                    .add_source(config::File::from(drop_in).format(config::FileFormat::Toml));
            }
        }
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("LATCH_") && k != "LATCH_CONFIG" && !k.starts_with("LATCH_TEST_")
            })
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("LATCH")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("forward_auth.trusted_proxies")
                .with_list_parse_key("previous_keys")
                .with_list_parse_key("previous_key_files")
                .source(Some(env)),
        );
        let mut raw: Raw = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(config_error)?;
        // A relative test file sits beside the configuration that names it.
        if let (Some(dir), Some(tests)) = (
            path.and_then(Path::parent),
            raw.access_control.tests.as_mut(),
        ) {
            if tests.is_relative() {
                *tests = dir.join(&*tests);
            }
        }
        Self::from_raw(raw)
    }

    /// Parses TOML text (for tests and `check-config`), without environment.
    pub fn from_toml(text: &str) -> Result<Config> {
        let raw: Raw = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(config_error)?;
        Self::from_raw(raw)
    }
}

/// The `config` crate's error on one line: TOML parse errors come with a
/// multi-line source excerpt, which is dropped (the line and column stay).
/// A duplicate key is named, from the excerpt (only here: the file is
/// latch's configuration, see `quiet_error`).
fn config_error(e: config::ConfigError) -> Error {
    let text = one_line(&e);
    let text = match duplicate_key(&e.to_string()) {
        Some(key) => text.replacen("duplicate key", &format!("duplicate key `{key}`"), 1),
        None => text,
    };
    Error::config(format_args!("config: {}", redact_keys(&text)))
}

/// The `config` crate's error text on one line, its source excerpt
/// (`12 | text`, `   |   ^`) dropped.
fn one_line(e: &config::ConfigError) -> String {
    let text = e.to_string();
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && excerpt(l).is_none())
        .collect();
    kept.join(": ")
}

/// The text after `|` of a source excerpt line (`12 | text`, `   |   ^`).
fn excerpt(line: &str) -> Option<&str> {
    let line = line.trim_start();
    line.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .strip_prefix('|')
}

/// The key a TOML "duplicate key" error underlines: named only when the
/// underlined text is a whole key as TOML writes one (bare, or quoted
/// without escapes), in a key's place (`=`, `.` or `]` after it).
fn duplicate_key(text: &str) -> Option<String> {
    if !text.contains("duplicate key") {
        return None;
    }
    let mut excerpts = text.lines().filter_map(excerpt).filter(|l| !l.is_empty());
    let (source, carets) = (excerpts.next()?, excerpts.next()?);
    // The underline starts at a column in characters (found by a review:
    // read as bytes, text before it that is not ASCII moved the cut into
    // a value).
    let start = carets.find('^')?;
    let len = carets[start..].bytes().take_while(|&b| b == b'^').count();
    let (at, _) = source.char_indices().nth(start)?;
    let key = source.get(at..at + len)?;
    let after = source[at + len..].trim_start();
    let bare = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let quoted = key.len() > 2
        && key.starts_with('"')
        && key.ends_with('"')
        && key[1..key.len() - 1]
            .bytes()
            .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\');
    let placed = after.starts_with(['=', '.', ']']);
    (!key.is_empty() && key.len() <= 64 && (bare || quoted) && placed).then(|| key.to_owned())
}

/// A `config` crate error about a file latch reads that is not its
/// configuration (the access test file), on one line, with the source
/// excerpt dropped and every string value masked: whatever file it is
/// pointed at, its contents never reach the journal.
pub(crate) fn quiet_error(e: &config::ConfigError) -> String {
    // serde quotes a value as `string "..."`; key paths it quotes stay.
    let joined = one_line(e);
    let mut out = String::with_capacity(joined.len());
    let mut rest = joined.as_str();
    while let Some(at) = rest.find("string \"") {
        let (head, tail) = rest.split_at(at + "string \"".len());
        out.push_str(head);
        out.push_str("…\"");
        rest = tail.split_once('"').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

/// The config crate quotes the offending value in its errors; when the
/// error is about a key (`secret_key`, `previous_keys`), every quoted
/// value is masked, so a typo never puts a key in the journal.
fn redact_keys(text: &str) -> String {
    if !(text.contains("secret_key") || text.contains("previous_keys")) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        // Odd pieces are inside quotes.
        out.push_str(if i % 2 == 0 { "********" } else { part });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;

    /// What `check-config` prints reads back as the same configuration,
    /// whatever text it holds (found by a review: `{:?}` wrote `\u{301}`,
    /// which TOML refuses).
    #[test]
    fn check_config_prints_any_text_as_toml_reads_it() {
        let toml = "data_dir = \"/srv/cafe\u{301}\"\n\
                    [ui]\ntitle = \"Cafe\u{301} \\\"quoted\\\" \u{1f600}\"\n\
                    [access_control]\n[[access_control.rules]]\n\
                    domain = \"a.example.com\"\nresources = ['^/caf\u{e9}\\d+$']\n\
                    policy = \"deny\"\n";
        let config = Config::from_toml(toml).unwrap();
        let text = config.to_string();
        let again = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again.to_string(), text);
        assert_eq!(again.ui.title, config.ui.title);
        assert_eq!(again.data_dir, config.data_dir);
    }

    /// Found by a newcomer: "duplicate key" named no key.
    #[test]
    fn a_duplicate_key_is_named() {
        for (toml, named) in [
            (
                "token_ttl = 600\ntoken_ttl = 700\n",
                "duplicate key `token_ttl`",
            ),
            (
                "[forward_auth]\ncookie_name = \"a\"\ncookie_name = \"b\"\n",
                "line 3, column 1: duplicate key `cookie_name`",
            ),
            ("[limits]\n[limits]\n", "duplicate key `limits`"),
            ("a.b = 1\na.b = 2\n", "duplicate key `b`"),
            // Found by a review: text that is not ASCII before the key.
            (
                "[ui]\nx = { e = \"\u{1f600}\u{1f600}\u{1f600}\", p = \"hunter2XYZ\", \
                 k = 1, k = 2 }\n",
                "duplicate key `k`",
            ),
            (
                "t = { n = \"\u{65e5}\u{672c}\u{8a9e}\", \"a b\" = 1, \"a b\" = 2 }\n",
                "duplicate key `\"a b\"`",
            ),
            (
                "secret_key = \"abc\"\nsecret_key = \"def\"\n",
                "key `secret_key`",
            ),
        ] {
            let e = Config::from_toml(toml).unwrap_err().to_string();
            assert!(e.contains(named), "{toml}: {e}");
            assert!(
                !e.contains('|') && !["abc", "def", "hun"].iter().any(|v| e.contains(v)),
                "{e}"
            );
        }
        // A file that is not the configuration (the access tests) may be
        // anything: its keys are its contents, and stay out.
        let e = config::Config::builder()
            .add_source(config::File::from_str(
                "s3cr3t = 1\ns3cr3t = 2\n",
                config::FileFormat::Toml,
            ))
            .build()
            .unwrap_err();
        let quiet = quiet_error(&e);
        assert!(
            quiet.contains("duplicate key") && !quiet.contains("s3cr3t"),
            "{quiet}"
        );
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./latch-data"));
        assert!(c.key == KeySource::File(PathBuf::from("./latch-data/secret.key")));
        assert_eq!(c.token_ttl, Duration::from_secs(600));
        assert_eq!(c.registration, Registration::Closed);
        assert_eq!(
            c.hashing.cost,
            Cost {
                log_n: 17,
                r: 8,
                p: 1
            }
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::from_toml("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::from_toml("[scrypt]\nlogn = 3\n").unwrap_err();
        assert!(e.to_string().contains("logn"), "{e}");
    }

    #[test]
    fn short_key_is_refused() {
        let short = crypto::b64_encode(&[1u8; 31]);
        let e = Config::from_toml(&format!("secret_key = \"{short}\"")).unwrap_err();
        assert!(e.to_string().contains("at least 32"), "{e}");
        let ok = crypto::b64_encode(&[1u8; 32]);
        assert!(Config::from_toml(&format!("secret_key = \"{ok}\"")).is_ok());
    }

    #[test]
    fn durations_accept_units() {
        let c = Config::from_toml("token_ttl = \"10m\"").unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(600));
        let c = Config::from_toml("token_ttl = 30").unwrap();
        assert_eq!(c.token_ttl, Duration::from_secs(30));
        assert!(Config::from_toml("token_ttl = \"10 fortnights\"").is_err());
        assert!(Config::from_toml("token_ttl = 0").is_err());
        assert!(Config::from_toml("token_ttl = \"366d\"").is_err());
        assert!(Config::from_toml("token_ttl = \"213503982334601d\"").is_err());
        assert!(Config::from_toml("token_ttl = \"365d\"").is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::from_toml("listen = \"localhost\"").is_err());
        assert!(Config::from_toml("registration = \"maybe\"").is_err());
        assert!(Config::from_toml("public_url = \"ftp://x\"").is_err());
        assert!(Config::from_toml("public_url = \"https://a\\nb\"").is_err());
        assert!(Config::from_toml("public_url = \"https://a b\"").is_err());
        assert!(Config::from_toml("public_url = \"https://auth.example.com/\"").is_ok());
        assert!(Config::from_toml("[scrypt]\nlog_n = 30").is_err());
        // A count past what a semaphore holds was a panic at start-up.
        for n in ["0", "1000001", "3000000000000000000"] {
            let toml = format!("[limits]\nmax_connections = {n}");
            assert!(Config::from_toml(&toml).is_err(), "{n}");
        }
        assert!(Config::from_toml("[limits]\nmax_connections = 1000000").is_ok());
        for n in ["0", "1025"] {
            let toml = format!("[limits]\nworkers = {n}");
            let e = Config::from_toml(&toml).unwrap_err().to_string();
            assert!(e.contains("workers must be from 1 to 1024"), "{n}: {e}");
        }
        let c = Config::from_toml("[limits]\nworkers = 3").unwrap();
        assert_eq!(c.limits.workers, 3);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auto = Config::from_toml("").unwrap().limits.workers;
        assert_eq!(auto, (cores / 2).max(1), "half the cores, at least one");
    }

    #[test]
    fn totp_and_storage_defaults_and_checks() {
        let c = Config::from_toml("data_dir = \"/d\"\n[ui]\ntitle = \"Home\"\n").unwrap();
        assert_eq!(c.totp.issuer, "Home", "the title by default");
        assert!(c.totp.enrol_on_demand);
        assert_eq!(c.storage_key_file, Path::new("/d/storage.key"));
        let c = Config::from_toml(
            "[storage]\nencryption_key_file = \"/k\"\n[totp]\nissuer = \" Lab \"\n\
             enrol_on_demand = false\n",
        )
        .unwrap();
        assert_eq!(c.storage_key_file, Path::new("/k"));
        assert_eq!(c.totp.issuer, "Lab");
        assert!(!c.totp.enrol_on_demand);
        for issuer in [
            "\"a:b\"",
            "\" \"",
            "\"a\\u0007\"",
            &format!("\"{}\"", "x".repeat(65)),
        ] {
            let e = Config::from_toml(&format!("[totp]\nissuer = {issuer}\n")).unwrap_err();
            assert!(e.to_string().contains("totp.issuer"), "{issuer}: {e}");
        }
    }

    #[test]
    fn forward_auth_defaults_and_checks() {
        let c = Config::from_toml("public_url = \"https://auth.example.com\"").unwrap();
        let fa = &c.forward_auth;
        assert_eq!(fa.cookie_name, "latch_session");
        assert!(fa.cookie_secure);
        assert_eq!(fa.session_ttl, Duration::from_secs(43200));
        assert_eq!(
            fa.login_url.as_deref(),
            Some("https://auth.example.com/login")
        );
        assert!(fa.cookie_domain.is_none());
        let c = Config::from_toml("[forward_auth]\ncookie_domain = \".Example.com\"").unwrap();
        assert_eq!(c.forward_auth.cookie_domain.as_deref(), Some("example.com"));
        assert!(c.forward_auth.login_url.is_none());
        for bad in [
            "cookie_domain = \"a b\"",
            "cookie_domain = \"\"",
            "cookie_name = \"a;b\"",
            "trusted_proxies = [\"nope\"]",
            "trusted_proxies = [\"10.0.0.0/33\"]",
            "login_url = \"javascript:alert(1)\"",
            "session_ttl = \"400d\"",
        ] {
            assert!(
                Config::from_toml(&format!("[forward_auth]\n{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_never_show_a_key() {
        let secret = crypto::b64_encode(&[7u8; 32]);
        for text in [
            format!("previous_keys = \"{secret}\""),
            format!("secret_key = [\"{secret}\"]"),
            format!("previous_keys = [[\"{secret}\"]]"),
            format!("secret_key = {{ a = \"{secret}\" }}"),
        ] {
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(!e.contains(&secret), "{e}");
            assert!(!e.contains(&secret[..12]), "{e}");
        }
        let e = Config::from_toml("[forward_auth]\ncookie_secure = \"maybe\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"maybe\""), "other values are shown: {e}");
    }

    #[test]
    fn display_masks_the_key() {
        let key = crypto::b64_encode(&[7u8; 32]);
        let c = Config::from_toml(&format!("secret_key = \"{key}\"")).unwrap();
        let shown = c.to_string();
        assert!(!shown.contains(&key));
        assert!(shown.contains("secret_key = \"********\""));
    }
}
