//! The traps the README names, found in a validated configuration: each
//! is one line for the operator. `check-config` prints them and `serve`
//! logs them. Nothing here refuses a configuration; validation does that.

use super::net::{url_host, IpNet};
use super::{keyfile, Config, KeySource};

impl Config {
    /// Every trap found, in a stable order.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            cookie_domain_misses_public_host(self),
            key_file(&self.key, "secret_key_file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        for source in &self.previous_keys {
            out.extend(key_file(source, "previous_key_files"));
        }
        out.extend(keyfile::permission_warning(
            &self.storage_key_file,
            "[storage] encryption_key_file",
        ));
        out.extend(
            [
                secure_cookie_over_http(self),
                single_label_cookie_domain(self),
                trusts_everyone(self),
                ops_reachable(self),
                public_profiles(self),
                remote_proxy_not_trusted(self),
            ]
            .into_iter()
            .flatten(),
        );
        out
    }
}

fn cookie_domain_misses_public_host(c: &Config) -> Option<String> {
    let domain = c.forward_auth.cookie_domain.as_deref()?;
    let host = url_host(c.public_url.as_deref()?)?;
    let covered = host == domain || host.ends_with(&format!(".{domain}"));
    (!covered).then(|| {
        format!(
            "[forward_auth] cookie_domain = {domain:?} does not cover the public_url host \
             {host:?}: the login page's cookie will not reach latch, and sign-ins loop"
        )
    })
}

fn key_file(source: &KeySource, key: &str) -> Option<String> {
    match source {
        KeySource::File(path) => keyfile::permission_warning(path, key),
        KeySource::Inline(_) => None,
    }
}

fn secure_cookie_over_http(c: &Config) -> Option<String> {
    let http = c
        .public_url
        .as_deref()
        .and_then(|u| u.get(..7))
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    (c.forward_auth.cookie_secure && http).then(|| {
        "public_url is plain http while [forward_auth] cookie_secure = true: browsers drop \
         Secure cookies on http, so signing in fails; serve latch over https, or set \
         cookie_secure = false on a plain-http network"
            .to_owned()
    })
}

fn single_label_cookie_domain(c: &Config) -> Option<String> {
    let domain = c.forward_auth.cookie_domain.as_deref()?;
    if !domain.contains('.') {
        return Some(format!(
            "[forward_auth] cookie_domain = {domain:?} is a single label: the login page \
             follows rd to any host under it (evil.{domain} too); name your own domain, such \
             as example.{domain}"
        ));
    }
    super::net::looks_like_public_suffix(domain).then(|| {
        format!(
            "[forward_auth] cookie_domain = {domain:?} looks like a public suffix: browsers \
             set no cookie for it, and the login page follows rd to anyone's host under it; \
             name your own domain, such as example.{domain}"
        )
    })
}

fn trusts_everyone(c: &Config) -> Option<String> {
    let everyone = c
        .forward_auth
        .trusted_proxies
        .iter()
        .any(|n| n.prefix() == 0);
    everyone.then(|| {
        "[forward_auth] trusted_proxies trusts every address: any client can write its own \
         X-Forwarded-For (the address bans and logs use) and X-Forwarded-Host; list your \
         proxies only"
            .to_owned()
    })
}

fn ops_reachable(c: &Config) -> Option<String> {
    let ops = c.ops.listen.filter(|a| !a.ip().is_loopback())?;
    Some(format!(
        "[ops] listen = \"{ops}\" serves /metrics and /openapi.yaml to other hosts; keep it on \
         loopback unless a scraper elsewhere needs it"
    ))
}

fn public_profiles(c: &Config) -> Option<String> {
    c.api.public_profiles.then(|| {
        "[api] public_profiles = true: anyone can read GET /api/users/<id> and, ids being \
         increasing, list every username"
            .to_owned()
    })
}

fn remote_proxy_not_trusted(c: &Config) -> Option<String> {
    let loopback_only = c
        .forward_auth
        .trusted_proxies
        .iter()
        .all(IpNet::is_loopback_only);
    (!c.listen.ip().is_loopback() && loopback_only).then(|| {
        format!(
            "listen = \"{}\" is reachable from other hosts while [forward_auth] \
             trusted_proxies trusts loopback only: a proxy on another host or in a container \
             is not believed (its X-Forwarded-* headers are ignored); add its address to \
             trusted_proxies",
            c.listen
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warned(toml: &str, needle: &str) -> bool {
        let c = Config::from_toml(toml).unwrap();
        c.warnings().iter().any(|w| w.contains(needle))
    }

    #[test]
    fn each_trap_is_named_and_a_sane_config_has_none() {
        let sane = "public_url = \"https://auth.example.com\"\n\
                    [forward_auth]\ncookie_domain = \"example.com\"\n";
        let c = Config::from_toml(sane).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let bad = "public_url = \"https://auth.other.org\"\n\
                   [forward_auth]\ncookie_domain = \"example.com\"\n";
        assert!(warned(bad, "does not cover"));
        assert!(warned(
            "public_url = \"http://a.example.com\"",
            "plain http"
        ));
        assert!(warned(
            "[forward_auth]\ncookie_domain = \"lan\"",
            "single label"
        ));
        assert!(warned(
            "[forward_auth]\ntrusted_proxies = [\"0.0.0.0/0\"]",
            "every address"
        ));
        assert!(warned("[ops]\nlisten = \"0.0.0.0:9180\"", "to other hosts"));
        assert!(warned(
            "[api]\npublic_profiles = true",
            "list every username"
        ));
        assert!(warned("listen = \"0.0.0.0:8080\"", "trusts loopback only"));
    }
}
