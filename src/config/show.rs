//! The effective configuration as TOML, secrets masked: what
//! `check-config` prints. One function per section; it never reads a key
//! file.

use std::fmt::{self, Write as _};

use super::{Config, KeySource, LogFormat, Registration};

/// The effective configuration with secrets masked, as TOML.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        top_level(self, f)?;
        scrypt(self, f)?;
        limits(self, f)?;
        forward_auth(self, f)?;
        regulation(self, f)?;
        writeln!(f, "\n[api]")?;
        writeln!(f, "public_profiles = {}", self.api.public_profiles)?;
        writeln!(f, "reauth_window = {}", self.api.reauth_window.as_secs())?;
        writeln!(f, "\n[ops]")?;
        match self.ops.listen {
            Some(addr) => writeln!(f, "listen = \"{addr}\"")?,
            None => writeln!(f, "listen = \"\"")?,
        }
        writeln!(f, "\n[ui]")?;
        writeln!(f, "title = {}", quoted(&self.ui.title))?;
        writeln!(f, "\n[storage]")?;
        let key = self.storage_key_file.display();
        writeln!(f, "encryption_key_file = {}", quoted(key))?;
        writeln!(f, "\n[totp]")?;
        writeln!(f, "issuer = {}", quoted(&self.totp.issuer))?;
        writeln!(f, "enrol_on_demand = {}", self.totp.enrol_on_demand)?;
        access_control(self, f)
    }
}

/// The default policy and every rule, numbered as `latch access` and the
/// logs number them.
fn access_control(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ac = &c.access;
    writeln!(f, "\n[access_control]")?;
    write!(f, "default_policy = \"{}\"", ac.default_policy)?;
    if let Some(tests) = &ac.tests {
        write!(f, "\ntests = {}", quoted(tests.display()))?;
    }
    for (i, rule) in ac.rules().iter().enumerate() {
        write!(f, "\n\n# rule {}\n[[access_control.rules]]", i + 1)?;
        for (key, value) in rule.fields() {
            write!(f, "\n{key} = {value}")?;
        }
    }
    Ok(())
}

/// A TOML string.
fn quoted(text: impl fmt::Display) -> String {
    toml_string(&text.to_string())
}

/// `text` as a TOML string. (Rust's `{:?}` writes escapes such as
/// `\u{301}`, which TOML refuses: found by a review.)
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn top_level(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "listen = \"{}\"", c.listen)?;
    writeln!(f, "data_dir = {}", quoted(c.data_dir.display()))?;
    match &c.key {
        KeySource::Inline(_) => writeln!(f, "secret_key = \"********\"")?,
        KeySource::File(p) => writeln!(f, "secret_key_file = {}", quoted(p.display()))?,
    }
    previous_keys(c, f)?;
    if let Some(url) = &c.public_url {
        writeln!(f, "public_url = {}", quoted(url))?;
    }
    writeln!(f, "token_ttl = {}", c.token_ttl.as_secs())?;
    let registration = match c.registration {
        Registration::Open => "open",
        Registration::Closed => "closed",
    };
    writeln!(f, "registration = \"{registration}\"")?;
    writeln!(f, "query_token = {}", c.query_token)?;
    let level = c.log_level.as_str().to_lowercase();
    writeln!(f, "log_level = \"{level}\"")?;
    let format = match c.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    writeln!(f, "log_format = \"{format}\"")
}

/// Inline previous keys masked, key files by path.
fn previous_keys(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut masked = Vec::new();
    let mut paths = Vec::new();
    for key in &c.previous_keys {
        match key {
            KeySource::Inline(_) => masked.push("\"********\"".to_owned()),
            KeySource::File(p) => paths.push(quoted(p.display())),
        }
    }
    if !masked.is_empty() {
        writeln!(f, "previous_keys = [{}]", masked.join(", "))?;
    }
    if !paths.is_empty() {
        writeln!(f, "previous_key_files = [{}]", paths.join(", "))?;
    }
    Ok(())
}

fn scrypt(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let h = &c.hashing;
    writeln!(f, "\n[scrypt]")?;
    writeln!(
        f,
        "log_n = {}\nr = {}\np = {}",
        h.cost.log_n, h.cost.r, h.cost.p
    )?;
    writeln!(f, "max_concurrent = {}", h.max_concurrent)?;
    writeln!(f, "max_queue = {}", h.max_queue)?;
    writeln!(f, "cache_ttl = {}", h.cache_ttl.as_secs())
}

fn limits(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let l = &c.limits;
    writeln!(f, "\n[limits]")?;
    writeln!(f, "max_body = {}", l.max_body)?;
    writeln!(
        f,
        "header_read_timeout = {}",
        l.header_read_timeout.as_secs()
    )?;
    writeln!(f, "max_connections = {}", l.max_connections)?;
    writeln!(f, "workers = {}", l.workers)
}

fn forward_auth(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let fa = &c.forward_auth;
    writeln!(f, "\n[forward_auth]")?;
    if let Some(d) = &fa.cookie_domain {
        writeln!(f, "cookie_domain = {}", quoted(d))?;
    }
    writeln!(f, "cookie_name = {}", quoted(&fa.cookie_name))?;
    writeln!(f, "cookie_secure = {}", fa.cookie_secure)?;
    writeln!(f, "session_ttl = {}", fa.session_ttl.as_secs())?;
    writeln!(
        f,
        "session_inactivity = {}",
        fa.session_inactivity.as_secs()
    )?;
    writeln!(f, "remember_me_ttl = {}", fa.remember_me_ttl.as_secs())?;
    if let Some(u) = &fa.login_url {
        writeln!(f, "login_url = {}", quoted(u))?;
    }
    let mut proxies = String::new();
    for (i, net) in fa.trusted_proxies.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        write!(proxies, "{sep}{}", quoted(net))?;
    }
    writeln!(f, "trusted_proxies = [{proxies}]")?;
    for site in &fa.domains {
        writeln!(f, "\n[[forward_auth.domains]]")?;
        writeln!(f, "cookie_domain = {}", quoted(&site.cookie_domain))?;
        writeln!(f, "public_url = {}", quoted(&site.public_url))?;
        writeln!(f, "login_url = {}", quoted(&site.login_url))?;
    }
    Ok(())
}

fn regulation(c: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let r = &c.regulation;
    writeln!(f, "\n[regulation]")?;
    writeln!(f, "max_retries = {}", r.max_retries)?;
    writeln!(f, "max_retries_per_source = {}", r.max_retries_per_source)?;
    writeln!(f, "find_time = {}", r.find_time)?;
    writeln!(f, "ban_time = {}", r.ban_time)
}
