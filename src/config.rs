//! Configuration: read raw (TOML file plus `LATCH_*` environment), then
//! validated in one pass into typed values before anything starts.
//!
//! Every key is documented in `config/latch.toml`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::crypto::{self, Cost};
use crate::error::{Error, Result};

/// Where `serve` looks when neither `--config` nor `$LATCH_CONFIG` is given.
pub const SYSTEM_CONFIG: &str = "/etc/latch/latch.toml";

/// Longest accepted token lifetime: a year. Bounded so `iat + ttl` never
/// overflows and stays exact in every JSON number reader.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 86400);

/// Shortest accepted signing key, in decoded bytes.
pub const MIN_KEY_LEN: usize = 32;

/// The file as written. Unknown keys are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    previous_keys: Option<Vec<String>>,
    previous_key_files: Option<Vec<PathBuf>>,
    public_url: Option<String>,
    token_ttl: Option<RawDuration>,
    registration: Option<String>,
    query_token: Option<bool>,
    log_level: Option<String>,
    log_format: Option<String>,
    #[serde(default)]
    scrypt: RawScrypt,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    forward_auth: RawForwardAuth,
    #[serde(default)]
    regulation: RawRegulation,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    ops: RawOps,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegulation {
    max_retries: Option<u32>,
    max_retries_per_source: Option<u32>,
    find_time: Option<RawDuration>,
    ban_time: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    public_profiles: Option<bool>,
    reauth_window: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOps {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForwardAuth {
    cookie_domain: Option<String>,
    cookie_name: Option<String>,
    cookie_secure: Option<bool>,
    session_ttl: Option<RawDuration>,
    login_url: Option<String>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrypt {
    log_n: Option<u8>,
    r: Option<u32>,
    p: Option<u32>,
    max_concurrent: Option<usize>,
    max_queue: Option<usize>,
    cache_ttl: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body: Option<usize>,
    header_read_timeout: Option<RawDuration>,
    max_connections: Option<usize>,
}

/// A duration as written: whole seconds, or a string such as `"90s"`,
/// `"10m"`, `"12h"`, `"7d"`.
#[derive(Debug)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive number of seconds or a string like \"10m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<RawDuration, E> {
                u64::try_from(v)
                    .map(RawDuration::Seconds)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawDuration {
    /// Like [`RawDuration::parse`], but zero is allowed (it disables).
    fn parse_or_zero(&self, key: &str) -> Result<Duration> {
        match self {
            RawDuration::Seconds(0) => Ok(Duration::ZERO),
            RawDuration::Text(t) if parse_duration(t) == Some(0) => Ok(Duration::ZERO),
            _ => self.parse(key),
        }
    }

    fn parse(&self, key: &str) -> Result<Duration> {
        let secs = match self {
            RawDuration::Seconds(s) => Some(*s),
            RawDuration::Text(t) => parse_duration(t),
        };
        match secs {
            Some(s) if s > 0 => Ok(Duration::from_secs(s)),
            _ => Err(Error::config(format_args!(
                "config: {key} must be a positive number of seconds or a string like \"10m\""
            ))),
        }
    }
}

fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult)
}

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
    /// Where unauthenticated browsers are sent (`?rd=` is appended).
    pub login_url: Option<String>,
    /// Peers whose `X-Forwarded-*` / `X-Original-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl ForwardAuth {
    /// Whether `ip` is a trusted proxy (its forwarding headers are believed).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

/// An IP network such as `127.0.0.1/32` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        // ::ffff:a.b.c.d/n is a.b.c.d/(n - 96): peers are compared in their
        // IPv4 form, so that is what the network must be to match them.
        match addr.to_canonical() {
            IpAddr::V4(v4) if addr.is_ipv6() && prefix >= 96 => Some(IpNet {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Some(IpNet { addr, prefix }),
        }
    }

    /// Whether every address in this network is a loopback address.
    pub fn is_loopback_only(&self) -> bool {
        match self.addr.to_canonical() {
            IpAddr::V4(a) => a.is_loopback() && self.prefix >= 8,
            IpAddr::V6(a) => a.is_loopback() && self.prefix == 128,
        }
    }

    /// Whether `ip` is inside this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
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
    pub regulation: crate::regulation::Settings,
    /// The JSON API.
    pub api: Api,
    /// The operations listener.
    pub ops: Ops,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_raw(empty_raw()).expect("defaults are valid")
    }
}

fn empty_raw() -> Raw {
    Raw {
        listen: None,
        data_dir: None,
        secret_key: None,
        secret_key_file: None,
        previous_keys: None,
        previous_key_files: None,
        public_url: None,
        token_ttl: None,
        registration: None,
        query_token: None,
        log_level: None,
        log_format: None,
        scrypt: RawScrypt::default(),
        limits: RawLimits::default(),
        forward_auth: RawForwardAuth::default(),
        regulation: RawRegulation::default(),
        api: RawApi::default(),
        ops: RawOps::default(),
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
    /// None: built-in defaults (and `LATCH_*` variables).
    Defaults,
}

impl ConfigFile {
    /// `--config` if given, else `$LATCH_CONFIG`, else [`SYSTEM_CONFIG`] if
    /// it exists, else the defaults.
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
        ConfigFile::Defaults
    }

    fn path(&self) -> Option<&Path> {
        match self {
            ConfigFile::Flag(p) | ConfigFile::Env(p) | ConfigFile::System(p) => Some(p),
            ConfigFile::Defaults => None,
        }
    }
}

/// "config /etc/latch/latch.toml (from --config)", for one stderr line.
impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFile::Flag(p) => write!(f, "config {} (from --config)", p.display()),
            ConfigFile::Env(p) => write!(f, "config {} (from $LATCH_CONFIG)", p.display()),
            ConfigFile::System(p) => write!(f, "config {}", p.display()),
            ConfigFile::Defaults => f.write_str("no config file: built-in defaults"),
        }
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
        let raw: Raw = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(config_error)?;
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

    fn from_raw(raw: Raw) -> Result<Config> {
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            Error::config(format_args!(
                "config: listen = {listen:?} is not a socket address like 127.0.0.1:8080"
            ))
        })?;
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./latch-data"));
        // An empty value (`LATCH_SECRET_KEY_FILE=`) is no value.
        let key = match (
            raw.secret_key.filter(|k| !k.trim().is_empty()),
            raw.secret_key_file.filter(|p| !p.as_os_str().is_empty()),
        ) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "config: set either secret_key or secret_key_file, not both",
                ))
            }
            (Some(text), None) => KeySource::Inline(decode_key(&text, "secret_key")?),
            (None, Some(path)) => KeySource::File(path),
            (None, None) => KeySource::File(data_dir.join("secret.key")),
        };
        let mut previous_keys = Vec::new();
        for (i, text) in raw.previous_keys.unwrap_or_default().iter().enumerate() {
            previous_keys.push(KeySource::Inline(decode_key(
                text,
                &format!("previous_keys[{i}]"),
            )?));
        }
        previous_keys.extend(
            raw.previous_key_files
                .unwrap_or_default()
                .into_iter()
                .map(KeySource::File),
        );
        let public_url = raw
            .public_url
            .map(|u| validate_url(&u, "public_url"))
            .transpose()?;
        let token_ttl = match raw.token_ttl {
            Some(d) => d.parse("token_ttl")?,
            None => Duration::from_secs(600),
        };
        if token_ttl > MAX_TTL {
            return Err(Error::config("config: token_ttl must be at most 365 days"));
        }
        let registration = match raw.registration.as_deref() {
            None | Some("closed") => Registration::Closed,
            Some("open") => Registration::Open,
            Some(other) => {
                return Err(Error::config(format_args!(
                    "config: registration = {other:?} must be \"open\" or \"closed\""
                )))
            }
        };
        let log_level = match raw.log_level.as_deref() {
            None => tracing::Level::INFO,
            Some(l) => l.parse().map_err(|_| {
                Error::config(format_args!(
                    "config: log_level = {l:?} must be one of error, warn, info, debug, trace"
                ))
            })?,
        };
        let cost = Cost {
            log_n: raw.scrypt.log_n.unwrap_or(17),
            r: raw.scrypt.r.unwrap_or(8),
            p: raw.scrypt.p.unwrap_or(1),
        };
        cost.check()
            .map_err(|e| Error::config(format_args!("config: [scrypt] {e}")))?;
        // One core stays free for verifying tokens during a login flood.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let max_concurrent = raw
            .scrypt
            .max_concurrent
            .unwrap_or(cores.saturating_sub(1).max(1));
        if max_concurrent == 0 {
            return Err(Error::config(
                "config: [scrypt] max_concurrent must be at least 1",
            ));
        }
        let hashing = Hashing {
            cost,
            max_concurrent,
            max_queue: raw.scrypt.max_queue.unwrap_or(32),
            cache_ttl: match raw.scrypt.cache_ttl {
                Some(d) => d.parse_or_zero("[scrypt] cache_ttl")?,
                None => Duration::from_secs(120),
            },
        };
        let limits = Limits {
            max_body: raw.limits.max_body.unwrap_or(16 * 1024),
            header_read_timeout: match raw.limits.header_read_timeout {
                Some(d) => d.parse("[limits] header_read_timeout")?,
                None => Duration::from_secs(10),
            },
            max_connections: raw.limits.max_connections.unwrap_or(512),
        };
        if limits.max_connections == 0 {
            return Err(Error::config(
                "config: [limits] max_connections must be at least 1",
            ));
        }
        let forward_auth = forward_auth(raw.forward_auth, public_url.as_deref())?;
        let secs = |d: Option<RawDuration>, key: &str, default: u64| {
            d.map_or(Ok(default), |d| d.parse_or_zero(key).map(|d| d.as_secs()))
        };
        let regulation = crate::regulation::Settings {
            max_retries: raw.regulation.max_retries.unwrap_or(5),
            max_retries_per_source: raw.regulation.max_retries_per_source.unwrap_or(20),
            find_time: secs(raw.regulation.find_time, "[regulation] find_time", 120)?,
            ban_time: secs(raw.regulation.ban_time, "[regulation] ban_time", 300)?,
        };
        let api = Api {
            public_profiles: raw.api.public_profiles.unwrap_or(false),
            reauth_window: match raw.api.reauth_window {
                Some(d) => d.parse("[api] reauth_window")?,
                None => Duration::from_secs(300),
            },
        };
        let ops = Ops {
            listen: match raw.ops.listen.as_deref().map(str::trim) {
                None => Some(SocketAddr::from(([127, 0, 0, 1], 9180))),
                Some("") => None,
                Some(text) => Some(text.parse().map_err(|_| {
                    Error::config(format_args!(
                        "config: [ops] listen = {text:?} is not a socket address like 127.0.0.1:9180 (empty turns it off)"
                    ))
                })?),
            },
        };
        Ok(Config {
            listen,
            data_dir,
            key,
            previous_keys,
            public_url,
            token_ttl,
            registration,
            query_token: raw.query_token.unwrap_or(true),
            log_level,
            log_format: match raw.log_format.as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(Error::config(format_args!(
                        "config: log_format = {other:?} must be \"text\" or \"json\""
                    )))
                }
            },
            hashing,
            limits,
            forward_auth,
            regulation,
            api,
            ops,
        })
    }

    /// The traps the README names, found in this configuration: each is one
    /// line for the operator. `check-config` prints them and `serve` logs
    /// them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fa = &self.forward_auth;
        let public_host = self
            .public_url
            .as_deref()
            .and_then(crate::redirect::url_host);
        if let (Some(domain), Some(host)) = (&fa.cookie_domain, &public_host) {
            let covered = host == domain || host.ends_with(&format!(".{domain}"));
            if !covered {
                out.push(format!(
                    "[forward_auth] cookie_domain = {domain:?} does not cover the public_url host {host:?}: the login page's cookie will not reach latch, and sign-ins loop"
                ));
            }
        }
        if let KeySource::File(path) = &self.key {
            key_file_warnings(path, "secret_key_file", &mut out);
        }
        for source in &self.previous_keys {
            if let KeySource::File(path) = source {
                key_file_warnings(path, "previous_key_files", &mut out);
            }
        }
        let loopback_only = fa.trusted_proxies.iter().all(IpNet::is_loopback_only);
        if fa.cookie_secure
            && self.public_url.as_deref().is_some_and(|u| {
                u.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            })
        {
            out.push(
                "public_url is plain http while [forward_auth] cookie_secure = true: browsers drop Secure cookies on http, so signing in fails; serve latch over https, or set cookie_secure = false on a plain-http network".to_owned(),
            );
        }
        if let Some(domain) = fa.cookie_domain.as_deref().filter(|d| !d.contains('.')) {
            out.push(format!(
                "[forward_auth] cookie_domain = {domain:?} is a single label: the login page follows rd to any host under it (evil.{domain} too); name your own domain, such as example.{domain}"
            ));
        }
        if fa.trusted_proxies.iter().any(|net| net.prefix == 0) {
            out.push(
                "[forward_auth] trusted_proxies trusts every address: any client can write its own X-Forwarded-For (the address bans and logs use) and X-Forwarded-Host; list your proxies only".to_owned(),
            );
        }
        if let Some(ops) = self.ops.listen.filter(|a| !a.ip().is_loopback()) {
            out.push(format!(
                "[ops] listen = \"{ops}\" serves /metrics and /openapi.yaml to other hosts; keep it on loopback unless a scraper elsewhere needs it"
            ));
        }
        if self.api.public_profiles {
            out.push(
                "[api] public_profiles = true: anyone can read GET /api/users/<id> and, ids being increasing, list every username".to_owned(),
            );
        }
        if !self.listen.ip().is_loopback() && loopback_only {
            out.push(format!(
                "listen = \"{}\" is reachable from other hosts while [forward_auth] trusted_proxies trusts loopback only: a proxy on another host or in a container is not believed (its X-Forwarded-* headers are ignored); add its address to trusted_proxies",
                self.listen
            ));
        }
        out
    }

    /// Reads the signing key; `None` when the key file does not exist yet.
    pub fn read_key(&self) -> Result<Option<Vec<u8>>> {
        match &self.key {
            KeySource::Inline(bytes) => Ok(Some(bytes.clone())),
            KeySource::File(path) => read_key_file(path),
        }
    }

    /// Reads the previous (verify-only) keys; a missing file is an error.
    pub fn read_previous_keys(&self) -> Result<Vec<Vec<u8>>> {
        self.previous_keys
            .iter()
            .map(|source| match source {
                KeySource::Inline(bytes) => Ok(bytes.clone()),
                KeySource::File(path) => read_key_file(path)?.ok_or_else(|| {
                    Error::config(format_args!(
                        "cannot read key file {}: no such file",
                        path.display()
                    ))
                }),
            })
            .collect()
    }

    /// Reads the signing key or, on first start, creates the key file (mode
    /// 0600). Returns the key and, when a file was written, its path.
    pub fn load_or_create_key(&self) -> Result<(Vec<u8>, Option<PathBuf>)> {
        let path = match &self.key {
            KeySource::Inline(bytes) => return Ok((bytes.clone(), None)),
            KeySource::File(path) => path,
        };
        if let Some(key) = read_key_file(path)? {
            return Ok((key, None));
        }
        let key = crypto::random_bytes::<32>()?;
        crate::fsutil::write_private(path, format!("{}\n", crypto::b64_encode(&key)).as_bytes())
            .map_err(|e| {
                Error::config(format_args!(
                    "cannot create key file {}: {e}",
                    path.display()
                ))
            })?;
        Ok((key.to_vec(), Some(path.clone())))
    }
}

/// A key file that others than its owner may read.
fn key_file_warnings(path: &Path, key: &str, out: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(path) {
        Err(_) => {}
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => out.push(format!(
            "{key} {} is readable by its group or by others (mode {:o}): `chmod 600` it",
            path.display(),
            meta.permissions().mode() & 0o777
        )),
        Ok(_) => {}
    }
}

fn read_key_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::config(format_args!(
            "cannot read key file {}: {e}",
            path.display()
        ))),
    }
}

/// The `config` crate's error on one line: TOML parse errors come with a
/// multi-line source excerpt, which is dropped (the line and column stay).
fn config_error(e: config::ConfigError) -> Error {
    let text = e.to_string();
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            let excerpt = l
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !l.is_empty() && !excerpt.starts_with('|')
        })
        .collect();
    Error::config(format_args!("config: {}", redact_keys(&kept.join(": "))))
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

/// Decodes a base64 key and checks its length.
fn decode_key(text: &str, what: &str) -> Result<Vec<u8>> {
    let key = crypto::b64_decode(text.trim().as_bytes())
        .ok_or_else(|| Error::config(format_args!("{what}: the key is not valid base64")))?;
    if key.len() < MIN_KEY_LEN {
        return Err(Error::config(format_args!(
            "{what}: the key is {} bytes, at least {MIN_KEY_LEN} are required (run `latch keygen`)",
            key.len()
        )));
    }
    Ok(key)
}

fn forward_auth(raw: RawForwardAuth, public_url: Option<&str>) -> Result<ForwardAuth> {
    let cookie_domain = match raw.cookie_domain {
        None => None,
        Some(d) => {
            let d = d.trim_start_matches('.').to_ascii_lowercase();
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(Error::config(format_args!(
                    "config: [forward_auth] cookie_domain = {d:?} must be a domain such as example.com"
                )));
            }
            Some(d)
        }
    };
    let cookie_name = raw
        .cookie_name
        .unwrap_or_else(|| "latch_session".to_owned());
    // RFC 6265 cookie-name: a token.
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if cookie_name.is_empty() || !cookie_name.bytes().all(token_char) {
        return Err(Error::config(format_args!(
            "config: [forward_auth] cookie_name = {cookie_name:?} must be letters, digits or !#$%&'*+-.^_`|~"
        )));
    }
    let session_ttl = match raw.session_ttl {
        Some(d) => d.parse("[forward_auth] session_ttl")?,
        None => Duration::from_secs(12 * 3600),
    };
    if session_ttl > MAX_TTL {
        return Err(Error::config(
            "config: [forward_auth] session_ttl must be at most 365 days",
        ));
    }
    let login_url = match raw.login_url {
        Some(u) => Some(validate_url(&u, "[forward_auth] login_url")?),
        None => public_url.map(|u| format!("{u}/login")),
    };
    let trusted_proxies = match raw.trusted_proxies {
        None => vec![
            IpNet::parse("127.0.0.0/8").expect("valid"),
            IpNet::parse("::1").expect("valid"),
        ],
        Some(list) => list
            .iter()
            // An empty entry (`LATCH_FORWARD_AUTH__TRUSTED_PROXIES=`) is
            // no entry: an empty list trusts nobody.
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                IpNet::parse(s.trim()).ok_or_else(|| {
                    Error::config(format_args!(
                        "config: [forward_auth] trusted_proxies: {s:?} is not an address or network such as 10.0.0.0/8"
                    ))
                })
            })
            .collect::<Result<_>>()?,
    };
    Ok(ForwardAuth {
        cookie_domain,
        cookie_name,
        cookie_secure: raw.cookie_secure.unwrap_or(true),
        session_ttl,
        login_url,
        trusted_proxies,
    })
}

fn validate_url(url: &str, key: &str) -> Result<String> {
    let url = url.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_graphic())
                && !host.contains(['?', '#', '@']) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(Error::config(format_args!(
            "config: {key} = {url:?} must be an http(s) URL such as https://auth.example.com"
        ))),
    }
}

/// The effective configuration with secrets masked, as TOML.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "listen = \"{}\"", self.listen)?;
        writeln!(f, "data_dir = {:?}", self.data_dir.display().to_string())?;
        match &self.key {
            KeySource::Inline(_) => writeln!(f, "secret_key = \"********\"")?,
            KeySource::File(p) => writeln!(f, "secret_key_file = {:?}", p.display().to_string())?,
        }
        let (inline, files): (Vec<_>, Vec<_>) = self
            .previous_keys
            .iter()
            .partition(|k| matches!(k, KeySource::Inline(_)));
        if !inline.is_empty() {
            let masked = vec!["\"********\""; inline.len()];
            writeln!(f, "previous_keys = [{}]", masked.join(", "))?;
        }
        if !files.is_empty() {
            let paths: Vec<String> = files
                .iter()
                .filter_map(|k| match k {
                    KeySource::File(p) => Some(format!("{:?}", p.display().to_string())),
                    KeySource::Inline(_) => None,
                })
                .collect();
            writeln!(f, "previous_key_files = [{}]", paths.join(", "))?;
        }
        if let Some(url) = &self.public_url {
            writeln!(f, "public_url = {url:?}")?;
        }
        writeln!(f, "token_ttl = {}", self.token_ttl.as_secs())?;
        let reg = match self.registration {
            Registration::Open => "open",
            Registration::Closed => "closed",
        };
        writeln!(f, "registration = \"{reg}\"")?;
        writeln!(f, "query_token = {}", self.query_token)?;
        writeln!(
            f,
            "log_level = \"{}\"",
            self.log_level.as_str().to_lowercase()
        )?;
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        writeln!(f, "log_format = \"{format}\"")?;
        writeln!(f, "\n[scrypt]")?;
        let h = &self.hashing;
        writeln!(
            f,
            "log_n = {}\nr = {}\np = {}",
            h.cost.log_n, h.cost.r, h.cost.p
        )?;
        writeln!(
            f,
            "max_concurrent = {}\nmax_queue = {}",
            h.max_concurrent, h.max_queue
        )?;
        writeln!(f, "cache_ttl = {}", h.cache_ttl.as_secs())?;
        writeln!(f, "\n[limits]")?;
        writeln!(f, "max_body = {}", self.limits.max_body)?;
        writeln!(
            f,
            "header_read_timeout = {}",
            self.limits.header_read_timeout.as_secs()
        )?;
        writeln!(f, "max_connections = {}", self.limits.max_connections)?;
        let fa = &self.forward_auth;
        writeln!(f, "\n[forward_auth]")?;
        if let Some(d) = &fa.cookie_domain {
            writeln!(f, "cookie_domain = {d:?}")?;
        }
        writeln!(f, "cookie_name = {:?}", fa.cookie_name)?;
        writeln!(f, "cookie_secure = {}", fa.cookie_secure)?;
        writeln!(f, "session_ttl = {}", fa.session_ttl.as_secs())?;
        if let Some(u) = &fa.login_url {
            writeln!(f, "login_url = {u:?}")?;
        }
        let proxies: Vec<String> = fa
            .trusted_proxies
            .iter()
            .map(|n| format!("{:?}", n.to_string()))
            .collect();
        writeln!(f, "trusted_proxies = [{}]", proxies.join(", "))?;
        let r = &self.regulation;
        writeln!(f, "\n[regulation]")?;
        writeln!(f, "max_retries = {}", r.max_retries)?;
        writeln!(f, "max_retries_per_source = {}", r.max_retries_per_source)?;
        writeln!(f, "find_time = {}", r.find_time)?;
        writeln!(f, "ban_time = {}", r.ban_time)?;
        writeln!(f, "\n[api]")?;
        writeln!(f, "public_profiles = {}", self.api.public_profiles)?;
        writeln!(f, "reauth_window = {}", self.api.reauth_window.as_secs())?;
        writeln!(f, "\n[ops]")?;
        match self.ops.listen {
            Some(addr) => write!(f, "listen = \"{addr}\""),
            None => write!(f, "listen = \"\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn networks() {
        let lo = IpNet::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        let one = IpNet::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(IpNet::parse("1.2.3.4/40").is_none());
        // IPv4-mapped networks match the IPv4 peers they name.
        let mapped = IpNet::parse("::ffff:127.0.0.1").unwrap();
        assert!(mapped.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(mapped.to_string(), "127.0.0.1/32");
        let mapped = IpNet::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains("10.1.2.3".parse().unwrap()));
        assert!(!mapped.contains("11.0.0.1".parse().unwrap()));
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
