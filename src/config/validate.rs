//! Raw into [`Config`]: one function per section, each returning the
//! first problem as one line that names the key. Defaults live here, next
//! to the checks they must pass.
//!
//! It never reads a file (key files are `keyfile.rs`'s).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawScrypt;
use super::raw::{
    Raw, RawApi, RawDuration, RawForwardAuth, RawLimits, RawOps, RawRegulation, RawSite, RawTotp,
    RawUi,
};
use super::{
    Api, Config, ForwardAuth, Hashing, IpNet, KeySource, Limits, LogFormat, Ops, Registration,
    Regulation, Site, Totp, Ui, MAX_TTL,
};
use crate::crypto::Cost;
use crate::error::{Error, Result};

impl Config {
    pub(super) fn from_raw(raw: Raw) -> Result<Config> {
        let listen = socket_address(raw.listen.as_deref(), "listen", "127.0.0.1:8080")?;
        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./latch-data"));
        let key = signing_key(raw.secret_key, raw.secret_key_file, &data_dir)?;
        let previous_keys = previous_keys(raw.previous_keys, raw.previous_key_files)?;
        let public_url = raw
            .public_url
            .map(|u| site_url(&u, "public_url"))
            .transpose()?;
        let token_ttl = lifetime(raw.token_ttl, "token_ttl", 600)?;
        // In this order: of two bad values, the first is the one reported.
        let registration = registration(raw.registration.as_deref())?;
        let log_level = log_level(raw.log_level.as_deref())?;
        let hashing = hashing(raw.scrypt)?;
        let limits = limits(raw.limits)?;
        let forward_auth = forward_auth(raw.forward_auth, public_url.as_deref())?;
        // With several domains, the API's own URL defaults to the first's.
        let public_url = public_url.or_else(|| {
            forward_auth
                .domains
                .first()
                .map(|site| site.public_url.clone())
        });
        let regulation = regulation(raw.regulation)?;
        let api = api(raw.api)?;
        let ops = ops(raw.ops)?;
        let access = super::access::access_control(raw.access_control)?;
        let ui = ui(raw.ui)?;
        let storage_key_file = raw
            .storage
            .encryption_key_file
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| data_dir.join("storage.key"));
        let totp = totp(raw.totp, &ui)?;
        Ok(Config {
            storage_key_file,
            totp,
            ui,
            access: std::sync::Arc::new(access),
            listen,
            key,
            previous_keys,
            token_ttl,
            registration,
            query_token: raw.query_token.unwrap_or(true),
            log_level,
            log_format: log_format(raw.log_format.as_deref())?,
            hashing,
            limits,
            forward_auth,
            regulation,
            api,
            ops,
            public_url,
            data_dir,
        })
    }
}

/// A lifetime (at most [`MAX_TTL`]) that may be zero, or the default.
fn lifetime_or_zero(raw: Option<RawDuration>, key: &str, default: u64) -> Result<Duration> {
    let d = duration_or_zero(raw, key, default)?;
    if d > MAX_TTL {
        return Err(Error::config(format_args!(
            "config: {key} must be at most 365 days"
        )));
    }
    Ok(d)
}

/// A duration that must be positive, or the default (in seconds).
fn duration(raw: Option<RawDuration>, key: &str, default: u64) -> Result<Duration> {
    match raw.map(|d| d.seconds()) {
        None => Ok(Duration::from_secs(default)),
        Some(Some(s)) if s > 0 => Ok(Duration::from_secs(s)),
        Some(_) => Err(Error::config(format_args!(
            "config: {key} must be a positive number of seconds or a string like \"10m\""
        ))),
    }
}

/// A duration where zero is allowed (it turns something off).
fn duration_or_zero(raw: Option<RawDuration>, key: &str, default: u64) -> Result<Duration> {
    match raw {
        Some(d) if d.seconds() == Some(0) => Ok(Duration::ZERO),
        other => duration(other, key, default),
    }
}

/// A token or session lifetime: positive and at most [`MAX_TTL`].
fn lifetime(raw: Option<RawDuration>, key: &str, default: u64) -> Result<Duration> {
    let ttl = duration(raw, key, default)?;
    if ttl > MAX_TTL {
        return Err(Error::config(format_args!(
            "config: {key} must be at most 365 days"
        )));
    }
    Ok(ttl)
}

fn socket_address(text: Option<&str>, key: &str, default: &str) -> Result<SocketAddr> {
    let text = text.unwrap_or(default);
    text.parse().map_err(|_| {
        Error::config(format_args!(
            "config: {key} = {text:?} is not a socket address like {default}"
        ))
    })
}

fn signing_key(
    inline: Option<String>,
    file: Option<PathBuf>,
    data_dir: &std::path::Path,
) -> Result<KeySource> {
    // An empty value (`LATCH_SECRET_KEY_FILE=`) is no value.
    match (
        inline.filter(|k| !k.trim().is_empty()),
        file.filter(|p| !p.as_os_str().is_empty()),
    ) {
        (Some(_), Some(_)) => Err(Error::config(
            "config: set either secret_key or secret_key_file, not both",
        )),
        (Some(text), None) => Ok(KeySource::Inline(decode_key(&text, "secret_key")?)),
        (None, Some(path)) => Ok(KeySource::File(path)),
        (None, None) => Ok(KeySource::File(data_dir.join("secret.key"))),
    }
}

fn totp(raw: RawTotp, ui: &Ui) -> Result<Totp> {
    let issuer = raw.issuer.unwrap_or_else(|| ui.title.clone());
    let issuer = issuer.trim();
    if issuer.is_empty()
        || issuer.len() > 64
        || issuer.contains(':')
        || issuer.chars().any(char::is_control)
    {
        return Err(Error::config(
            "config: totp.issuer must be 1 to 64 characters, without ':' or control characters",
        ));
    }
    Ok(Totp {
        issuer: issuer.to_owned(),
        enrol_on_demand: raw.enrol_on_demand.unwrap_or(true),
    })
}

fn previous_keys(
    inline: Option<Vec<String>>,
    files: Option<Vec<PathBuf>>,
) -> Result<Vec<KeySource>> {
    let mut keys = Vec::new();
    for (i, text) in inline.unwrap_or_default().iter().enumerate() {
        let key = decode_key(text, &format!("previous_keys[{i}]"))?;
        keys.push(KeySource::Inline(key));
    }
    keys.extend(files.unwrap_or_default().into_iter().map(KeySource::File));
    Ok(keys)
}

fn registration(text: Option<&str>) -> Result<Registration> {
    match text {
        None | Some("closed") => Ok(Registration::Closed),
        Some("open") => Ok(Registration::Open),
        Some(other) => Err(Error::config(format_args!(
            "config: registration = {other:?} must be \"open\" or \"closed\""
        ))),
    }
}

fn log_level(text: Option<&str>) -> Result<tracing::Level> {
    match text {
        None => Ok(tracing::Level::INFO),
        Some(l) => l.parse().map_err(|_| {
            Error::config(format_args!(
                "config: log_level = {l:?} must be one of error, warn, info, debug, trace"
            ))
        }),
    }
}

fn log_format(text: Option<&str>) -> Result<LogFormat> {
    match text {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(Error::config(format_args!(
            "config: log_format = {other:?} must be \"text\" or \"json\""
        ))),
    }
}

fn hashing(raw: RawScrypt) -> Result<Hashing> {
    let cost = Cost {
        log_n: raw.log_n.unwrap_or(17),
        r: raw.r.unwrap_or(8),
        p: raw.p.unwrap_or(1),
    };
    cost.check()
        .map_err(|e| Error::config(format_args!("config: [scrypt] {e}")))?;
    // One core stays free for verifying tokens during a login flood.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_concurrent = raw.max_concurrent.unwrap_or(cores.saturating_sub(1).max(1));
    if max_concurrent == 0 {
        return Err(Error::config(
            "config: [scrypt] max_concurrent must be at least 1",
        ));
    }
    Ok(Hashing {
        cost,
        max_concurrent,
        max_queue: raw.max_queue.unwrap_or(32),
        cache_ttl: duration_or_zero(raw.cache_ttl, "[scrypt] cache_ttl", 120)?,
    })
}

/// Most connections `[limits] max_connections` may allow (far above any
/// file-descriptor limit; the drain counts them in a `u32`).
const MAX_CONNECTIONS: usize = 1_000_000;

/// Most request threads `[limits] workers` may ask for.
const MAX_WORKERS: usize = 1024;

fn limits(raw: RawLimits) -> Result<Limits> {
    let limits = Limits {
        max_body: raw.max_body.unwrap_or(16 * 1024),
        header_read_timeout: duration(raw.header_read_timeout, "[limits] header_read_timeout", 10)?,
        max_connections: raw.max_connections.unwrap_or(512),
        workers: raw.workers.unwrap_or_else(super::default_workers),
    };
    if !(1..=MAX_CONNECTIONS).contains(&limits.max_connections) {
        return Err(Error::config(
            "config: [limits] max_connections must be from 1 to 1000000",
        ));
    }
    if !(1..=MAX_WORKERS).contains(&limits.workers) {
        return Err(Error::config(
            "config: [limits] workers must be from 1 to 1024",
        ));
    }
    Ok(limits)
}

fn forward_auth(mut raw: RawForwardAuth, public_url: Option<&str>) -> Result<ForwardAuth> {
    let domains = sites(raw.domains.take(), &raw)?;
    // Fields in order: of two bad values, the first is the one reported.
    Ok(ForwardAuth {
        domains,
        cookie_domain: raw.cookie_domain.map(cookie_domain).transpose()?,
        cookie_name: cookie_name(raw.cookie_name)?,
        cookie_secure: raw.cookie_secure.unwrap_or(true),
        session_ttl: lifetime(raw.session_ttl, "[forward_auth] session_ttl", 12 * 3600)?,
        session_inactivity: duration_or_zero(
            raw.session_inactivity,
            "[forward_auth] session_inactivity",
            0,
        )?,
        remember_me_ttl: lifetime_or_zero(
            raw.remember_me_ttl,
            "[forward_auth] remember_me_ttl",
            30 * 86400,
        )?,
        login_url: match raw.login_url {
            Some(u) => Some(validate_url(&u, "[forward_auth] login_url")?),
            None => public_url.map(|u| format!("{u}/login")),
        },
        trusted_proxies: trusted_proxies(raw.trusted_proxies)?,
    })
}

/// `[[forward_auth.domains]]`: each needs a cookie domain and a public
/// URL whose host it covers (else the login page's cookie would not reach
/// its apps); the shorthand keys cannot be mixed in.
fn sites(list: Option<Vec<RawSite>>, raw: &RawForwardAuth) -> Result<Vec<Site>> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    if raw.cookie_domain.is_some() || raw.login_url.is_some() {
        return Err(Error::config(
            "config: [forward_auth] cookie_domain and login_url cannot be set beside \
             [[forward_auth.domains]]: give each domain its own",
        ));
    }
    let mut sites: Vec<Site> = Vec::new();
    for (i, site) in list.into_iter().enumerate() {
        let key = |name: &str| format!("[[forward_auth.domains]] {} {name}", i + 1);
        let missing = |name: &str| Error::config(format_args!("config: {} is missing", key(name)));
        let cookie_domain =
            cookie_domain(site.cookie_domain.ok_or_else(|| missing("cookie_domain"))?)?;
        let public_url = site_url(
            &site.public_url.ok_or_else(|| missing("public_url"))?,
            &key("public_url"),
        )?;
        let host = super::net::url_host(&public_url).unwrap_or_default();
        if !super::domain_covers(&cookie_domain, &host) {
            return Err(Error::config(format_args!(
                "config: {} {public_url:?} is not within its cookie_domain {cookie_domain:?}",
                key("public_url")
            )));
        }
        if sites.iter().any(|s| s.cookie_domain == cookie_domain) {
            return Err(Error::config(format_args!(
                "config: {} {cookie_domain:?} is listed twice",
                key("cookie_domain")
            )));
        }
        let login_url = match site.login_url {
            Some(u) => validate_url(&u, &key("login_url"))?,
            None => format!("{public_url}/login"),
        };
        sites.push(Site {
            cookie_domain,
            public_url,
            login_url,
        });
    }
    Ok(sites)
}

fn ui(raw: RawUi) -> Result<Ui> {
    let title = raw.title.unwrap_or_else(|| "latch".to_owned());
    let count = title.chars().count();
    if count == 0 || count > 64 || title.chars().any(char::is_control) {
        return Err(Error::config(
            "config: [ui] title must be 1 to 64 characters without control characters",
        ));
    }
    Ok(Ui { title })
}

fn cookie_domain(text: String) -> Result<String> {
    let d = text.trim_start_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if d.is_empty() || d.len() > 253 || !d.split('.').all(label_ok) {
        return Err(Error::config(format_args!(
            "config: [forward_auth] cookie_domain = {d:?} must be a domain such as example.com"
        )));
    }
    if super::net::is_address_shaped(&d) {
        return Err(Error::config(format_args!(
            "config: [forward_auth] cookie_domain = {d:?} is an address, not a domain: browsers \
             set no cookie for it, and the login page would follow rd to every address ending \
             in it; use a host name (or leave cookie_domain unset for a host-only cookie)"
        )));
    }
    Ok(d)
}

fn cookie_name(text: Option<String>) -> Result<String> {
    let name = text.unwrap_or_else(|| "latch_session".to_owned());
    // RFC 6265 cookie-name: a token.
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token_char) {
        return Err(Error::config(format_args!(
            "config: [forward_auth] cookie_name = {name:?} must be letters, digits or \
             !#$%&'*+-.^_`|~"
        )));
    }
    Ok(name)
}

fn trusted_proxies(list: Option<Vec<String>>) -> Result<Vec<IpNet>> {
    let Some(list) = list else {
        return Ok(vec![
            IpNet::parse("127.0.0.0/8").expect("valid"),
            IpNet::parse("::1").expect("valid"),
        ]);
    };
    list.iter()
        // An empty entry (`LATCH_FORWARD_AUTH__TRUSTED_PROXIES=`) is no
        // entry: an empty list trusts nobody.
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            IpNet::parse(s.trim()).ok_or_else(|| {
                Error::config(format_args!(
                    "config: [forward_auth] trusted_proxies: {s:?} is not an address or \
                     network such as 10.0.0.0/8"
                ))
            })
        })
        .collect()
}

fn regulation(raw: RawRegulation) -> Result<Regulation> {
    let secs = |d: Option<RawDuration>, key: &str, default: u64| {
        duration_or_zero(d, key, default).map(|d| d.as_secs())
    };
    Ok(Regulation {
        max_retries: raw.max_retries.unwrap_or(5),
        max_retries_per_source: raw.max_retries_per_source.unwrap_or(20),
        find_time: secs(raw.find_time, "[regulation] find_time", 120)?,
        ban_time: secs(raw.ban_time, "[regulation] ban_time", 300)?,
    })
}

fn api(raw: RawApi) -> Result<Api> {
    Ok(Api {
        public_profiles: raw.public_profiles.unwrap_or(false),
        reauth_window: duration(raw.reauth_window, "[api] reauth_window", 300)?,
    })
}

fn ops(raw: RawOps) -> Result<Ops> {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9180))),
        Some("") => None,
        Some(text) => Some(text.parse().map_err(|_| {
            Error::config(format_args!(
                "config: [ops] listen = {text:?} is not a socket address like 127.0.0.1:9180 \
                 (empty turns it off)"
            ))
        })?),
    };
    Ok(Ops { listen })
}

/// An http(s) URL without a trailing slash, for `public_url` and
/// `login_url`.
fn validate_url(url: &str, key: &str) -> Result<String> {
    let url = url.trim_end_matches('/');
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https://", 443)
    } else {
        ("http://", 80)
    };
    let bad = || {
        Error::config(format_args!(
            "config: {key} = {url:?} must be an http(s) URL such as https://auth.example.com"
        ))
    };
    let rest = url.strip_prefix(scheme).ok_or_else(bad)?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_graphic())
        || rest.contains(['?', '#', '@'])
    {
        return Err(bad());
    }
    let authority = super::net::authority_of(url).ok_or_else(bad)?;
    let (host, port) = super::net::host_and_port(authority).ok_or_else(bad)?;
    // A host name or address as requests name one (found by a review:
    // browsers read `\` as `/`, so `https://evil.example\.example.com`
    // went to evil.example while latch read a host under example.com).
    let bad_host = || {
        Error::config(format_args!(
            "config: {key} = {url:?}: the host must be a name (letters, digits, '-' and '.') \
             or an IP address as browsers write it (IPv6 in brackets, IPv4 as four decimal \
             numbers), such as https://auth.example.com"
        ))
    };
    super::net::request_host(authority).ok_or_else(bad_host)?;
    // Kept as browsers write it, and as their `Origin` carries it (latch
    // compares the two): an address in its one spelling, no port for the
    // scheme's own, no leading zeros.
    let host = browser_host(host).ok_or_else(bad_host)?;
    let port = port
        .map(|p| {
            super::net::port_number(p).ok_or_else(|| {
                Error::config(format_args!(
                    "config: {key} = {url:?}: the port must be a number from 1 to 65535"
                ))
            })
        })
        .transpose()?;
    let path = &url[scheme.len() + authority.len()..];
    Ok(match port {
        Some(p) if p != default_port => format!("{scheme}{host}:{p}{path}"),
        _ => format!("{scheme}{host}{path}"),
    })
}

/// A URL's host as browsers write it in `Origin` (found by a review: other
/// spellings never matched it): an IPv6 literal in its canonical form
/// (`[0:0::1]` is `[::1]`), an address-shaped name only as four decimal
/// numbers, which it is written as (browsers read `127.1` and `0x7f.1` as
/// 127.0.0.1, and `010.0.0.1` as octal); `None` for the others.
fn browser_host(host: &str) -> Option<String> {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip = literal.parse::<std::net::Ipv6Addr>().ok()?;
        // Rust writes a mapped IPv4 address dotted, browsers in hex.
        let text = match ip.to_ipv4_mapped() {
            Some(v4) => {
                let [a, b, c, d] = v4.octets();
                let (high, low) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
                format!("::ffff:{high:x}:{low:x}")
            }
            None => ip.to_string(),
        };
        // Any other dotted form is not a browser's: refused.
        return (!text.contains('.')).then(|| format!("[{text}]"));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if super::net::is_address_shaped(name) {
        return name
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|ip| ip.to_string());
    }
    Some(host.to_owned())
}

/// latch's own URL (`public_url`, a domain's): an http(s) URL as
/// `validate_url` takes it, of a host alone, since latch serves its pages
/// (and the forms on them post) at the root of its host.
pub(crate) fn site_url(url: &str, key: &str) -> Result<String> {
    let url = validate_url(url, key)?;
    if url.splitn(4, '/').nth(3).is_some() {
        return Err(Error::config(format_args!(
            "config: {key} = {url:?}: give latch's host alone, such as https://auth.example.com \
             (latch serves its pages at the root of its host)"
        )));
    }
    // `auth.example.com.` is another site to browsers: its `Origin` keeps
    // the dot, and a cookie for `example.com` is not one of its own.
    if super::net::url_host(&url).is_some_and(|h| h.ends_with('.')) {
        return Err(Error::config(format_args!(
            "config: {key} = {url:?}: give the host without its final '.', such as \
             https://auth.example.com (browsers read the two as different sites)"
        )));
    }
    Ok(url)
}

/// Decodes a base64 key and checks its length.
pub(super) fn decode_key(text: &str, what: &str) -> Result<Vec<u8>> {
    let key = crate::crypto::b64_decode(text.trim().as_bytes())
        .ok_or_else(|| Error::config(format_args!("{what}: the key is not valid base64")))?;
    if key.len() < super::MIN_KEY_LEN {
        return Err(Error::config(format_args!(
            "{what}: the key is {} bytes, at least {} are required (run `latch keygen`)",
            key.len(),
            super::MIN_KEY_LEN
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::Config;

    /// The key the one-line error names.
    fn named(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn of_two_bad_values_the_same_one_is_named_as_always() {
        let e = named("log_format = \"xml\"\n[ops]\nlisten = \"bad\"\n");
        assert!(e.contains("[ops] listen"), "{e}");
        let e = named("log_format = \"xml\"\n[scrypt]\nlog_n = 40\n");
        assert!(e.contains("[scrypt]"), "{e}");
        for other in [
            "cookie_domain = \"a b\"",
            "cookie_name = \"a;b\"",
            "session_ttl = 0",
        ] {
            let e = named(&format!(
                "[forward_auth]\nlogin_url = \"ftp://x\"\n{other}\n"
            ));
            assert!(!e.contains("login_url"), "{other}: {e}");
        }
        let e = named("registration = \"maybe\"\nlog_level = \"loud\"\n");
        assert!(e.contains("registration"), "{e}");
    }

    /// A URL latch sends browsers to is kept as their `Origin` carries it
    /// (latch compares the two): no port for the scheme's own, no leading
    /// zeros; a port browsers cannot use is refused.
    #[test]
    fn urls_name_their_port_as_browsers_do() {
        let public = |url: &str| {
            let toml = format!("public_url = '{url}'\n");
            Config::from_toml(&toml).map(|c| c.public_url.unwrap_or_default())
        };
        // login_url takes a path; latch's own URL is a host alone.
        let login = |url: &str| {
            let toml = format!("[forward_auth]\nlogin_url = '{url}'\n");
            Config::from_toml(&toml).map(|c| c.forward_auth.login_url.unwrap_or_default())
        };
        for (given, kept) in [
            ("https://auth.example.com:443", "https://auth.example.com"),
            (
                "https://auth.example.com:443/x/",
                "https://auth.example.com/x",
            ),
            ("http://auth.example.com:80", "http://auth.example.com"),
            ("https://[::1]:443", "https://[::1]"),
            ("https://a.example.com:8443", "https://a.example.com:8443"),
            ("https://a.example.com:80", "https://a.example.com:80"),
            ("http://a.example.com:443", "http://a.example.com:443"),
            ("https://[::1]:9443/x", "https://[::1]:9443/x"),
            ("https://a.example.com:65535", "https://a.example.com:65535"),
            ("https://a.example.com:08443", "https://a.example.com:8443"),
            ("https://a.example.com:0443/x", "https://a.example.com/x"),
            ("https://A.Example.com:443/A:1", "https://A.Example.com/A:1"),
            ("https://a.example.com/x:0", "https://a.example.com/x:0"),
            ("https://[0:0::1]:8443", "https://[::1]:8443"),
            ("https://[0:0:0:0:0:0:0:1]", "https://[::1]"),
            (
                "https://[2001:DB8:0:0:1::1]/x",
                "https://[2001:db8::1:0:0:1]/x",
            ),
            ("http://127.0.0.1.:8080", "http://127.0.0.1:8080"),
            ("https://10.0.0.5:443", "https://10.0.0.5"),
            ("https://[::ffff:1.2.3.4]", "https://[::ffff:102:304]"),
            (
                "https://[::FFFF:7f00:1]:8443",
                "https://[::ffff:7f00:1]:8443",
            ),
            ("https://[::ffff:0:0]", "https://[::ffff:0:0]"),
            ("https://[::1.2.3.4]", "https://[::102:304]"),
        ] {
            assert_eq!(login(given).unwrap(), kept, "{given}");
            match kept.splitn(4, '/').nth(3) {
                None => assert_eq!(public(given).unwrap(), kept, "{given}"),
                Some(_) => {
                    let e = public(given).unwrap_err().to_string();
                    assert!(e.contains("latch's host alone"), "{given}: {e}");
                }
            }
        }
        for bad in [
            "https://auth.example.com:0",
            "https://auth.example.com:00",
            "https://auth.example.com:65536",
            "https://auth.example.com:443:443",
            "https://auth.example.com:+443",
            "https://auth.example.com:",
            "https://auth.example.com:8x",
            "https://[::1]x:0",
            "https://[::1]junk:443",
            "https://auth.example.com\\auth",
            "https://evil.example\\.example.com",
            "https://auth.example.com\\:8443",
            "https://auth%2eexample.com",
            "https://auth.example.com;x",
            "https://auth_1.example.com",
            "https://.auth.example.com",
            "https://auth..example.com",
            "https://auth.example.com..",
            "https://127.1",
            "https://0x7f.0.0.1",
            "https://010.0.0.1:8443",
            "https://1.2.3.256",
            "https://example.123",
            "https://[fe80::1%25eth0]",
            "HTTPS://auth.example.com",
        ] {
            let e = public(bad).unwrap_err().to_string();
            assert!(e.contains("public_url"), "{bad}: {e}");
            let e = login(bad).unwrap_err().to_string();
            assert!(e.contains("login_url"), "{bad}: {e}");
        }
        // The same for the login page and each domain's URL.
        let e = named("[forward_auth]\nlogin_url = \"https://a.example.com:0/login\"\n");
        assert!(e.contains("login_url"), "{e}");
        let toml = "[forward_auth]\nlogin_url = \"https://sso.example.com:0443/login\"\n";
        let login = Config::from_toml(toml).unwrap().forward_auth.login_url;
        assert_eq!(login.as_deref(), Some("https://sso.example.com/login"));
        let e = named(
            "[[forward_auth.domains]]\ncookie_domain = \"example.com\"\n\
             public_url = \"https://auth.example.com:0\"\n",
        );
        assert!(e.contains("public_url"), "{e}");
        // Found by a newcomer: a path was taken, and the login redirect,
        // under it, answered 404.
        for url in [
            "https://auth.example.com/auth",
            "https://auth.example.com//",
        ] {
            let given = public(url);
            match url.ends_with("//") {
                true => assert_eq!(given.unwrap(), "https://auth.example.com"),
                false => assert!(given.unwrap_err().to_string().contains("host alone")),
            }
        }
        let e = named(
            "[[forward_auth.domains]]\ncookie_domain = \"example.com\"\n\
             public_url = \"https://auth.example.com/latch/\"\n",
        );
        assert!(
            e.contains("1 public_url") && e.contains("host alone"),
            "{e}"
        );
    }

    /// A cost too high to compute is named as that, not as too low (found
    /// by a review: `log_n = 99` said "must be at least 1").
    #[test]
    fn a_huge_scrypt_cost_is_above_the_ceiling() {
        for log_n in [31, 64, 99, 255] {
            let e = named(&format!("[scrypt]\nlog_n = {log_n}\n"));
            assert!(e.contains("above the ceiling"), "{log_n}: {e}");
        }
        let e = named("[scrypt]\nlog_n = 0\n");
        assert!(e.contains("at least 1"), "{e}");
    }

    /// `auth.example.com.` is another site than `auth.example.com` to
    /// browsers; latch's own URL is refused with it, and says why.
    #[test]
    fn latch_s_own_host_has_no_final_dot() {
        for url in [
            "https://auth.example.com.",
            "https://Auth.Example.COM.:8443/",
        ] {
            let e = named(&format!("public_url = '{url}'\n"));
            assert!(e.contains("public_url") && e.contains("final '.'"), "{e}");
            let e = named(&format!(
                "[[forward_auth.domains]]\ncookie_domain = \"example.com\"\n\
                 public_url = '{url}'\n"
            ));
            assert!(e.contains("public_url") && e.contains("final '.'"), "{e}");
        }
        // An address's final dot is dropped, as browsers drop it.
        let toml = "public_url = 'http://127.0.0.1.:8080'\n";
        let kept = Config::from_toml(toml).unwrap().public_url;
        assert_eq!(kept.as_deref(), Some("http://127.0.0.1:8080"));
    }
}
