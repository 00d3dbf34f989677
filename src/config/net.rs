//! Addresses, networks and URLs: the one place that parses them, for the
//! configuration, the `rd` rules and the same-origin check alike.
//!
//! It owns parsing only; it never resolves a name or opens a socket.

use std::fmt;
use std::net::IpAddr;

/// An IP network such as `127.0.0.1/32` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`. An IPv4-mapped network
    /// (`::ffff:a.b.c.d/n`) is kept in its IPv4 form, as peers are
    /// compared.
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
        match addr.to_canonical() {
            IpAddr::V4(v4) if addr.is_ipv6() && prefix >= 96 => Some(IpNet {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Some(IpNet { addr, prefix }),
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
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

/// Strips a case-insensitive prefix.
pub fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `host[:port]` of an absolute http(s) URL (any case scheme); `None` for
/// anything else or an empty authority.
pub fn authority_of(url: &str) -> Option<&str> {
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))?;
    rest.split(['/', '?', '#']).next().filter(|a| !a.is_empty())
}

/// The host of `host[:port]`, checking the port is numeric; IPv6 literals
/// (`[::1]`) are returned with their brackets.
pub fn host_of(authority: &str) -> Option<&str> {
    host_and_port(authority).map(|(host, _)| host)
}

/// [`host_of`], and the port as written, if any.
pub fn host_and_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (h, rest) = authority.split_at(end + 1);
        if !rest.is_empty() && !rest.starts_with(':') {
            return None;
        }
        (h, rest.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((host, port))
}

/// A port browsers can use, from its digits: 1-65535.
pub fn port_number(text: &str) -> Option<u16> {
    text.parse().ok().filter(|&p| p != 0)
}

/// The host a request names in `authority` (a `Host` or
/// `X-Forwarded-Host` value): the part before a numeric port, without a
/// trailing dot, of letters, digits, `-` and `.` (or a bracketed IPv6
/// literal). Anything else (`app.example.com:x.example.com`, userinfo, a
/// path) is `None`: a request for a host latch cannot read is for no host.
pub fn request_host(authority: &str) -> Option<&str> {
    // The common case, a name and perhaps a port, in one pass over the
    // bytes (forward auth reads one on every request).
    if !authority.starts_with('[') {
        let bytes = authority.as_bytes();
        let end = bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len());
        let port = bytes.get(end + 1..).unwrap_or_default();
        let port_ok =
            end == bytes.len() || (!port.is_empty() && port.iter().all(u8::is_ascii_digit));
        let name = &authority[..end];
        let name = name.strip_suffix('.').unwrap_or(name);
        // No empty label either: no rule names `.app.example.com`,
        // `app..example.com` or `app.example.com..`, so they matched none
        // and fell to the default policy (found by a review).
        let (mut plain, mut last) = (true, b'.');
        for b in name.bytes() {
            plain &= b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && last != b'.');
            last = b;
        }
        return (port_ok && plain && last != b'.').then_some(name);
    }
    // A bracketed IPv6 literal (`host_of` returns it with its brackets).
    let host = host_of(authority)?;
    let literal = host.ends_with(']')
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    literal.then_some(host)
}

/// The host of an absolute http(s) URL, lowercase.
pub fn url_host(url: &str) -> Option<String> {
    host_of(authority_of(url)?).map(str::to_ascii_lowercase)
}

/// The port an absolute http(s) URL names, if it names one (`None` for
/// the scheme's own, or a URL that is not one).
pub fn url_port(url: &str) -> Option<u16> {
    port_number(host_and_port(authority_of(url)?)?.1?)
}

/// Whether `domain` reads as an IP address rather than a name: its last
/// label is all digits (no top-level domain is), as in `10.0.0.5` or the
/// `0.0.5` cut from it.
pub fn is_address_shaped(domain: &str) -> bool {
    // Browsers read `0xa.0x5` as 10.0.0.5: a hexadecimal last label too.
    let number = |label: &str| {
        let label = label.to_ascii_lowercase();
        match label.strip_prefix("0x") {
            Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
            None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
        }
    };
    domain.rsplit('.').next().is_some_and(number)
}

/// Whether `domain` looks like a public suffix that many people register
/// under: a single label (`com`), a country's second level (`co.uk`,
/// `com.au`, `ne.jp`), or a dynamic-DNS or wildcard-DNS service homelabs
/// use (`duckdns.org`). A heuristic without the public-suffix list: for a
/// warning, or for not guessing a cookie domain.
pub fn looks_like_public_suffix(domain: &str) -> bool {
    const SECOND_LEVELS: [&str; 12] = [
        "ac", "co", "com", "edu", "gob", "go", "gov", "mil", "ne", "net", "or", "org",
    ];
    const SHARED: [&str; 12] = [
        "duckdns.org",
        "ddns.net",
        "dynu.net",
        "dyndns.org",
        "no-ip.org",
        "hopto.org",
        "zapto.org",
        "freeddns.org",
        "afraid.org",
        "nip.io",
        "sslip.io",
        "ts.net",
    ];
    let labels: Vec<&str> = domain.split('.').collect();
    SHARED.contains(&domain)
        || match labels.as_slice() {
            [_] => true,
            [second, country] => country.len() == 2 && SECOND_LEVELS.contains(second),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_that_are_no_cookie_domain() {
        for shaped in ["10.0.0.5", "0.0.5", "5", "a.1", "0xa.0x5", "a.0X1f", "0x"] {
            assert!(is_address_shaped(shaped), "{shaped}");
        }
        for name in ["example.com", "1.example.com", "x1", "a.b1", "a.0xz"] {
            assert!(!is_address_shaped(name), "{name}");
        }
        for suffix in ["com", "co.uk", "com.au", "ne.jp", "org.nz", "duckdns.org"] {
            assert!(looks_like_public_suffix(suffix), "{suffix}");
        }
        for domain in ["example.com", "example.co.uk", "home.arpa", "co.example"] {
            assert!(!looks_like_public_suffix(domain), "{domain}");
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
    fn request_hosts_are_read_strictly() {
        for (authority, host) in [
            ("app.example.com", Some("app.example.com")),
            ("App.Example.com:8443", Some("App.Example.com")),
            ("app.example.com.", Some("app.example.com")),
            ("app.example.com.:443", Some("app.example.com")),
            ("[::1]:80", Some("[::1]")),
            ("app.example.com:x.example.com", None),
            ("app.example.com:1.media.example.com", None),
            ("user@app.example.com", None),
            ("app.example.com/x", None),
            ("app.example.com:", None),
            ("", None),
            ("[zz]", None),
            ("app_example.com", None),
            // Empty labels: a name no rule has (found by a review).
            (".app.example.com", None),
            ("app..example.com", None),
            ("app.example.com..", None),
            ("app.example.com..:443", None),
            (".", None),
            ("..", None),
            (".:443", None),
        ] {
            assert_eq!(request_host(authority), host, "{authority}");
        }
    }

    /// The fast path reads every authority as `host_of` and the checks
    /// after it do (the way it was written before).
    #[test]
    fn request_host_agrees_with_host_of() {
        fn reference(authority: &str) -> Option<&str> {
            let host = host_of(authority)?;
            let host = host.strip_suffix('.').unwrap_or(host);
            let plain = !host.is_empty()
                && host.split('.').all(|label| !label.is_empty())
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            let literal = host.starts_with('[')
                && host.ends_with(']')
                && host[1..host.len() - 1]
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok();
            (plain || literal).then_some(host)
        }
        let parts = [
            "", "a", ".", ":", "1", "[", "]", "::1", "-", "é", "@", "/", "_", "80",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    let authority = format!("{a}{b}{c}");
                    assert_eq!(
                        request_host(&authority),
                        reference(&authority),
                        "{authority}"
                    );
                }
            }
        }
    }

    #[test]
    fn urls_and_hosts() {
        assert_eq!(
            url_host("https://Auth.Example.com:8443/x").as_deref(),
            Some("auth.example.com")
        );
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(authority_of("HTTP://a.b:80/x?y"), Some("a.b:80"));
        assert_eq!(authority_of("https:///x"), None);
        assert_eq!(host_of("[::1]:80"), Some("[::1]"));
        assert_eq!(host_of("a:"), None);
        assert_eq!(host_of("a:8x"), None);
        assert_eq!(host_of("[::1]x"), None);
        assert_eq!(host_of("[::1]x:0"), None);
        assert_eq!(request_host("[::1]x"), None);
        assert_eq!(request_host("[::1]:8"), Some("[::1]"));
        assert_eq!(url_port("https://Auth.Example.com:8443/x"), Some(8443));
        assert_eq!(url_port("https://[::1]:9443"), Some(9443));
        assert_eq!(url_port("https://auth.example.com/x:1"), None);
        assert_eq!(url_port("https://auth.example.com"), None);
        assert_eq!(url_port("https://[::1]"), None);
        assert_eq!(url_port("https://a:99999"), None);
        assert_eq!(url_port("https://a:8x"), None);
    }
}
