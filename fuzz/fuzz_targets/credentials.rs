//! The credential parsers on arbitrary bytes: never panic, and what they
//! return keeps the documented shape.
#![no_main]

use latch::credentials::{self, Credential};
use latch::token::MAX_TOKEN_LEN;
use libfuzzer_sys::fuzz_target;

/// A token value: non-empty visible ASCII, at most MAX_TOKEN_LEN bytes.
fn check_token(t: &str) {
    assert!(!t.is_empty() && t.len() <= MAX_TOKEN_LEN, "{t:?}");
    assert!(t.bytes().all(|b| b.is_ascii_graphic()), "{t:?}");
}

fuzz_target!(|data: &[u8]| {
    match credentials::parse_authorization(data) {
        Ok(Credential::Token(t)) => check_token(&t),
        Ok(Credential::Password { username, .. }) => {
            assert!(!username.is_empty());
            assert!(!username.chars().any(char::is_control), "{username:?}");
        }
        Err(_) => {}
    }
    if let Ok(t) = credentials::parse_token(data) {
        check_token(&t);
        assert_eq!(t.as_bytes(), data);
    }
    let text = String::from_utf8_lossy(data);
    if let Some(Ok(t)) = credentials::query_token(&text) {
        check_token(&t);
    }
    if let Some(v) = credentials::cookie(data, "latch_session") {
        // A sub-slice of the header.
        let range = data.as_ptr_range();
        assert!(range.contains(&v.as_ptr()) || v.is_empty());
    }
    let _ = credentials::parse_form(data);
});
