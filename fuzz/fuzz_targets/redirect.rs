//! `safe_redirect` on arbitrary text: never panics, and whatever it accepts
//! is an http(s) URL on example.com or one of its subdomains.
#![no_main]

use latch::redirect::safe_redirect;
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = "example.com";

fn check(rd: &str, allow_http: bool) {
    let Some(url) = safe_redirect(rd, DOMAIN, allow_http) else {
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
    assert!(
        !url.contains(['@', '\\']),
        "accepted userinfo or backslash: {url:?}"
    );
    assert!(
        !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        "accepted whitespace or control: {url:?}"
    );
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
    assert!(
        host == DOMAIN || host.ends_with(".example.com"),
        "accepted host {host:?}: {url:?}"
    );
    assert!(host != ".example.com", "accepted empty label: {url:?}");
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text, false);
    check(&text, true);
    // The stricter mode must accept a subset of the looser one.
    if safe_redirect(&text, DOMAIN, false).is_some() {
        assert!(safe_redirect(&text, DOMAIN, true).is_some(), "{text:?}");
    }
});
