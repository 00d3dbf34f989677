//! Which `rd` (return-to) URLs the login page may send a browser to.
//!
//! An open redirect on an authentication server hands phishers a trusted
//! link, so `rd` is followed only when every part checks out: scheme
//! `https` (or `http` when the cookie is not `Secure`), no userinfo, no
//! backslashes, whitespace or control characters anywhere, and a host
//! within the allowed [`Scope`].
//!
//! It owns that rule and nothing else; it never builds a response.

use crate::config::net::{host_of, strip_prefix_ignore_case};

/// Where `rd` may point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// This domain and its subdomains (the session cookie's `Domain`).
    Domain(String),
    /// Exactly this host (no `cookie_domain`: the cookie is host-only, so
    /// only latch's own host, the `public_url` one, shares it).
    Host(String),
}

impl Scope {
    /// Whether `host` (lowercase) is inside this scope.
    fn contains(&self, host: &str) -> bool {
        match self {
            Scope::Host(h) => host == h.to_ascii_lowercase(),
            Scope::Domain(d) => {
                let d = d.to_ascii_lowercase();
                host == d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1)
            }
        }
    }
}

/// Returns `rd` when it is safe to redirect to, else `None`.
pub fn safe_redirect<'a>(rd: &'a str, scope: &Scope, allow_http: bool) -> Option<&'a str> {
    if rd.len() > 4096 || rd.bytes().any(|b| !b.is_ascii_graphic() || b == b'\\') {
        return None;
    }
    let rest = if let Some(rest) = strip_prefix_ignore_case(rd, "https://") {
        rest
    } else if allow_http {
        strip_prefix_ignore_case(rd, "http://")?
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains(['@', '%']) {
        return None;
    }
    let host = host_of(authority)?.to_ascii_lowercase();
    scope.contains(&host).then_some(rd)
}

/// Percent-encodes `text` for a query value (unreserved characters kept).
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Scope {
        Scope::Domain("example.com".into())
    }

    #[test]
    fn good_targets() {
        for ok in [
            "https://example.com",
            "https://example.com/",
            "https://app.example.com/path?q=1#frag",
            "https://a.b.example.com:8443/x",
            "HTTPS://App.Example.COM/x",
        ] {
            assert_eq!(safe_redirect(ok, &d(), false), Some(ok), "{ok}");
        }
        assert!(safe_redirect("http://app.example.com/", &d(), true).is_some());
    }

    #[test]
    fn bad_targets() {
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "/relative",
            "https://evil.com",
            "https://example.com.evil.com",
            "https://evilexample.com",
            "https://example.com@evil.com",
            "https://user:pw@app.example.com/",
            "javascript:alert(1)",
            "JavaScript://example.com/%0aalert(1)",
            "data:text/html,hi",
            "http://app.example.com/",
            "https://app.example.com\\@evil.com",
            "https://app.example.com\t.evil.com",
            "https://app.example.com /",
            "https://evil.com%2f.example.com",
            "https://.example.com",
            "https://app.example.com:/",
            "https://app.example.com:80a/",
            "ftp://app.example.com",
            "",
            "https://",
            "https:///example.com",
        ] {
            assert_eq!(safe_redirect(bad, &d(), false), None, "{bad:?}");
        }
        // Scheme downgrade only when the cookie is not Secure.
        assert!(safe_redirect("http://app.example.com/", &d(), false).is_none());
    }

    #[test]
    fn a_host_scope_is_that_host_only() {
        let own = Scope::Host("auth.example.com".into());
        for ok in [
            "https://auth.example.com/",
            "https://AUTH.example.com:8443/x",
        ] {
            assert_eq!(safe_redirect(ok, &own, false), Some(ok), "{ok}");
        }
        for bad in [
            "https://evil.auth.example.com/",
            "https://x.auth.example.com/",
            "https://example.com/",
            "https://app.example.com/",
            "https://auth.example.com.evil.com/",
        ] {
            assert_eq!(safe_redirect(bad, &own, false), None, "{bad}");
        }
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode_query_value("https://a.b/c?d=e&f"),
            "https%3A%2F%2Fa.b%2Fc%3Fd%3De%26f"
        );
    }
}
