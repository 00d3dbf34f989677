//! `safe_redirect` on arbitrary text: never panics, and whatever it accepts
//! is an http(s) URL on example.com or one of its subdomains (or, for a
//! host scope, on auth.example.com exactly), both by the simple reading
//! below and by an independent WHATWG URL parser (the `url` crate, which
//! parses the way browsers do).
#![no_main]

use latch::redirect::{safe_redirect, Scope};
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = "example.com";
const HOST: &str = "auth.example.com";

fn in_scope(host: &str, exact: bool) -> bool {
    if exact {
        return host == HOST;
    }
    host == DOMAIN || (host.ends_with(".example.com") && host != ".example.com")
}

fn scope(exact: bool) -> Scope {
    if exact {
        Scope::Host(HOST.into())
    } else {
        Scope::Domain(DOMAIN.into())
    }
}

fn check(rd: &str, allow_http: bool, exact: bool) {
    let in_domain = |host: &str| in_scope(host, exact);
    let Some(url) = safe_redirect(rd, &scope(exact), allow_http) else {
        return;
    };
    assert_eq!(url, rd, "returned something other than its input");
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if allow_http && lower.starts_with("http://") {
        &lower["http://".len()..]
    } else {
        panic!("accepted scheme: {url:?} (allow_http = {allow_http})");
    };
    // No backslash, whitespace or control character anywhere.
    assert!(!url.contains('\\'), "accepted a backslash: {url:?}");
    assert!(
        !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        "accepted whitespace or control: {url:?}"
    );
    // No userinfo: no '@' in the authority. An '@' in the path, query or
    // fragment ("https://example.com/#@x") is harmless and allowed.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    assert!(!authority.contains('@'), "accepted userinfo: {url:?}");
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
    assert!(in_domain(host), "accepted host {host:?}: {url:?}");

    // What a browser would make of it. A URL the WHATWG parser refuses
    // cannot be followed at all, so only a parsed one is checked.
    if let Ok(parsed) = url::Url::parse(url) {
        let scheme_ok = parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http");
        assert!(scheme_ok, "browser scheme {:?}: {url:?}", parsed.scheme());
        assert!(
            parsed.username().is_empty() && parsed.password().is_none(),
            "browser sees userinfo: {url:?}"
        );
        let host = parsed.host_str().unwrap_or("");
        assert!(in_domain(host), "browser goes to host {host:?}: {url:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for exact in [false, true] {
        check(&text, false, exact);
        check(&text, true, exact);
        // The stricter mode must accept a subset of the looser one.
        if safe_redirect(&text, &scope(exact), false).is_some() {
            assert!(
                safe_redirect(&text, &scope(exact), true).is_some(),
                "{text:?}"
            );
        }
    }
    // A host scope accepts a subset of its domain's.
    if safe_redirect(&text, &scope(true), true).is_some() {
        assert!(safe_redirect(&text, &scope(false), true).is_some(), "{text:?}");
    }
});
