//! Credential parsing: turns header and query values into a [`Credential`].
//!
//! Pure functions over bytes, so they are unit-tested (and fuzzed) without a
//! server. Which header wins when several are present is the HTTP layer's
//! business; what a credential is worth is the domain's.
//!
//! It never verifies anything and never sees a request.

use std::borrow::Cow;

use crate::crypto;
use crate::token;

/// API keys start with this, so people and secret scanners recognise them.
pub const API_KEY_PREFIX: &str = "latch_";

/// Longest username or password accepted inside a Basic credential, in bytes
/// (a password is at most 1024 characters, each at most 4 bytes).
const MAX_BASIC_LEN: usize = 8 * 1024;

/// Something a client presented to prove who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A signed token or an API key (Bearer, `Authentication-Token`,
    /// `?auth_token=`, or passed as the Basic username).
    Token(Cow<'a, str>),
    /// A username (or email) and password from HTTP Basic.
    Password {
        /// As sent.
        username: String,
        /// As sent; never logged.
        password: String,
    },
}

/// Where a credential was presented. It decides what the credential may
/// be: the session cookie holds only a session token; headers and the
/// query hold API tokens, API keys or (Basic) a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `Authorization` or `Authentication-Token`.
    Header,
    /// `?auth_token=`.
    Query,
    /// The session cookie.
    Cookie,
}

/// A credential and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    /// What was presented.
    pub credential: Credential<'a>,
    /// Where.
    pub place: Place,
    /// A one-time code sent beside a password (`X-Latch-OTP`), for a user
    /// with a second factor.
    pub otp: Option<&'a str>,
}

/// What the username half of a Basic credential is. One rule, in this
/// order: anything with an `@` is an email (tokens and keys never hold
/// one), then the API key prefix, then the shape of a token; everything
/// else is a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicUser {
    /// An email address: a password login.
    Email,
    /// An API key (`latch_...`), the password half unused.
    ApiKey,
    /// A token (REST-auth style), the password half unused.
    Token,
    /// A username: a password login.
    Username,
}

/// Classifies the username half of a Basic credential (see [`BasicUser`]).
pub fn classify_basic_user(username: &str) -> BasicUser {
    if username.contains('@') {
        BasicUser::Email
    } else if username.starts_with(API_KEY_PREFIX) {
        BasicUser::ApiKey
    } else if token::looks_like_token(username) {
        BasicUser::Token
    } else {
        BasicUser::Username
    }
}

/// A credential that could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A Basic credential that is not base64 of UTF-8 `user:password`, or
    /// an `Authorization` scheme latch does not speak.
    Basic,
    /// A token value with characters no token has.
    Token,
}

/// Parses an `Authorization` header value (`Bearer ...` or `Basic ...`).
///
/// Read as bytes: a Bearer token is checked once, as visible ASCII (which
/// makes it UTF-8), not read for UTF-8 first; only a Basic value is text.
/// A value that is not UTF-8 is `Malformed::Basic` whatever its scheme.
pub fn parse_authorization(value: &[u8]) -> Result<Credential<'_>, Malformed> {
    let not_text = || std::str::from_utf8(value).is_err();
    let trimmed = value.trim_ascii();
    let space = trimmed.iter().position(|&b| b == b' ');
    let Some((scheme, rest)) =
        space.map(|at| (&trimmed[..at], trimmed[at + 1..].trim_ascii_start()))
    else {
        return Err(Malformed::Basic);
    };
    if scheme.eq_ignore_ascii_case(b"bearer") {
        parse_token(rest).map(Credential::Token).map_err(|e| {
            if not_text() {
                Malformed::Basic
            } else {
                e
            }
        })
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        std::str::from_utf8(rest)
            .map_err(|_| Malformed::Basic)
            .and_then(parse_basic)
    } else {
        Err(Malformed::Basic)
    }
}

fn parse_basic(b64: &str) -> Result<Credential<'static>, Malformed> {
    if b64.len() > MAX_BASIC_LEN * 2 {
        return Err(Malformed::Basic);
    }
    let bytes = crypto::b64_decode(b64.as_bytes()).ok_or(Malformed::Basic)?;
    let text = String::from_utf8(bytes).map_err(|_| Malformed::Basic)?;
    let (username, password) = text.split_once(':').ok_or(Malformed::Basic)?;
    if let BasicUser::Token | BasicUser::ApiKey = classify_basic_user(username) {
        // REST-auth style: the token (or API key) as username, the password
        // unused.
        return parse_token(username.as_bytes())
            .map(|t| Credential::Token(Cow::Owned(t.into_owned())));
    }
    if username.is_empty() || username.chars().any(char::is_control) {
        return Err(Malformed::Basic);
    }
    Ok(Credential::Password {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Parses a bare token value (`Authentication-Token`, a cookie, the query):
/// non-empty visible ASCII, at most [`token::MAX_TOKEN_LEN`] bytes.
pub fn parse_token(value: &[u8]) -> Result<Cow<'_, str>, Malformed> {
    let ok = !value.is_empty() && value.len() <= token::MAX_TOKEN_LEN && all_graphic(value);
    if !ok {
        return Err(Malformed::Token);
    }
    // All ASCII, so this cannot fail.
    std::str::from_utf8(value)
        .map(Cow::Borrowed)
        .map_err(|_| Malformed::Token)
}

/// [`parse_token`] of text already known to be UTF-8 (a cookie's value):
/// the same checks, without reading the bytes a second time for UTF-8.
pub fn parse_token_str(value: &str) -> Result<Cow<'_, str>, Malformed> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty() && bytes.len() <= token::MAX_TOKEN_LEN && all_graphic(bytes);
    if ok {
        Ok(Cow::Borrowed(value))
    } else {
        Err(Malformed::Token)
    }
}

/// Finds `auth_token` in a query string (percent-decoded). `None` when absent.
pub fn query_token(query: &str) -> Option<Result<Cow<'_, str>, Malformed>> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("auth_token="))?;
    Some(match percent_decode(raw) {
        Some(Cow::Borrowed(s)) => parse_token(s.as_bytes()),
        Some(Cow::Owned(s)) => parse_token(s.as_bytes()).map(|t| Cow::Owned(t.into_owned())),
        None => Err(Malformed::Token),
    })
}

/// The value of the cookie `name` in a `Cookie` header value, if present
/// and shaped like a cookie value (RFC 6265; surrounding quotes removed):
/// the first pair of that name decides. Read as bytes, one pair at a time;
/// only the value returned must be UTF-8 (another cookie's bytes are not
/// latch's business). Forward auth reads it on every request.
pub fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a str> {
    let mut rest = header;
    loop {
        let (pair, next) = match find_byte(rest, b';') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let value = pair
            .trim_ascii_start()
            .strip_prefix(name.as_bytes())
            .and_then(|after| after.trim_ascii_start().strip_prefix(b"="));
        if let Some(value) = value {
            let value = value.trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            return std::str::from_utf8(value).ok();
        }
        rest = next?;
    }
}

/// The first `needle` in `hay`, eight bytes at a time (the word trick
/// `memchr` uses: a zero byte in `word ^ pattern` sets its high bit in
/// `(x - 0x01..) & !x & 0x80..`).
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ pattern;
        if word.wrapping_sub(LO) & !word & HI != 0 {
            return chunk.iter().position(|&b| b == needle).map(|i| offset + i);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|&b| b == needle).map(|i| offset + i)
}

/// Whether every byte is printable ASCII (no space, no control). It looks
/// at every byte, without stopping at the first bad one, so the compiler
/// checks many at once: a session token is a few hundred bytes, read on
/// every forward-auth request.
fn all_graphic(value: &[u8]) -> bool {
    value.iter().fold(true, |ok, b| ok & b.is_ascii_graphic())
}

/// Parses an `application/x-www-form-urlencoded` body into pairs; `None`
/// when it is not valid (broken escapes, not UTF-8).
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                percent_decode(k)?.into_owned(),
                percent_decode(v)?.into_owned(),
            ))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space); `None` if the result is not
/// UTF-8 or an escape is broken.
fn percent_decode(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains(['%', '+']) {
        return Some(Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", crypto::b64_encode(user_pass.as_bytes()))
    }

    #[test]
    fn bearer() {
        assert_eq!(
            parse_authorization(b"Bearer abc.def.ghi"),
            Ok(Credential::Token("abc.def.ghi".into()))
        );
        assert_eq!(
            parse_authorization(b"bearer   abc"),
            Ok(Credential::Token("abc".into()))
        );
        assert_eq!(parse_authorization(b"Bearer "), Err(Malformed::Basic));
        assert_eq!(parse_authorization(b"Bearer a b"), Err(Malformed::Token));
        assert_eq!(
            parse_authorization(b" \tBearer abc \t"),
            Ok(Credential::Token("abc".into()))
        );
        assert_eq!(parse_authorization(b"Bearer\tabc"), Err(Malformed::Basic));
        assert_eq!(parse_authorization(b"Bearer a\x01"), Err(Malformed::Token));
        // Not UTF-8: malformed whatever the scheme, as when it was read as
        // text first.
        assert_eq!(parse_authorization(b"Bearer a\xff"), Err(Malformed::Basic));
        assert_eq!(
            parse_authorization(b"Basic \xff\xfe"),
            Err(Malformed::Basic)
        );
        assert_eq!(
            parse_authorization(b"\xffBearer abc"),
            Err(Malformed::Basic)
        );
    }

    #[test]
    fn basic_password() {
        assert_eq!(
            parse_authorization(basic("miguel:python:with:colons").as_bytes()),
            Ok(Credential::Password {
                username: "miguel".into(),
                password: "python:with:colons".into()
            })
        );
        assert_eq!(
            parse_authorization(basic("émile:pässwörd").as_bytes()),
            Ok(Credential::Password {
                username: "émile".into(),
                password: "pässwörd".into()
            })
        );
    }

    #[test]
    fn basic_token_as_username() {
        let header = basic("eyJh.eyJi.sig:unused");
        let cred = parse_authorization(header.as_bytes());
        assert_eq!(cred, Ok(Credential::Token("eyJh.eyJi.sig".into())));
    }

    #[test]
    fn basic_api_key_as_username() {
        let header = basic("latch_abc:");
        let cred = parse_authorization(header.as_bytes());
        assert_eq!(cred, Ok(Credential::Token("latch_abc".into())));
    }

    #[test]
    fn anything_with_an_at_is_an_email_login() {
        for email in [
            "latch_fan@example.net",
            "eyJane.doe@example.net",
            "eyJ.a.b@example.net",
            "a@b",
        ] {
            assert_eq!(classify_basic_user(email), BasicUser::Email, "{email}");
            assert_eq!(
                parse_authorization(basic(&format!("{email}:pw-pw-pw-pw")).as_bytes()),
                Ok(Credential::Password {
                    username: email.into(),
                    password: "pw-pw-pw-pw".into()
                }),
                "{email}"
            );
        }
        assert_eq!(classify_basic_user("latch_abc"), BasicUser::ApiKey);
        assert_eq!(classify_basic_user("eyJa.b.c"), BasicUser::Token);
        assert_eq!(classify_basic_user("eyJane"), BasicUser::Username);
        assert_eq!(classify_basic_user("alice"), BasicUser::Username);
    }

    #[test]
    fn malformed_basic() {
        for bad in [
            "Basic",
            "Basic !!!!",
            "Basic bm9jb2xvbg==", // "nocolon"
            "Basic OnB3",         // ":pw", empty username
            "Basic /w==",         // 0xff, not UTF-8
            "Digest abc",
            "",
        ] {
            assert_eq!(
                parse_authorization(bad.as_bytes()),
                Err(Malformed::Basic),
                "{bad:?}"
            );
        }
        assert_eq!(parse_authorization(b"Basic \xff"), Err(Malformed::Basic));
    }

    #[test]
    fn query() {
        assert_eq!(
            query_token("a=1&auth_token=xyz&b=2"),
            Some(Ok("xyz".into()))
        );
        assert_eq!(query_token("auth_token=x%2Ey"), Some(Ok("x.y".into())));
        assert_eq!(query_token("auth_token="), Some(Err(Malformed::Token)));
        assert_eq!(query_token("auth_token=%zz"), Some(Err(Malformed::Token)));
        assert_eq!(query_token("auth_token=%ff"), Some(Err(Malformed::Token)));
        assert_eq!(query_token("xauth_token=1"), None);
        assert_eq!(query_token(""), None);
    }

    #[test]
    fn cookies() {
        let h = b"a=1; latch_session=tok.en.x; b=\"q\"";
        assert_eq!(cookie(h, "latch_session"), Some("tok.en.x"));
        assert_eq!(cookie(h, "b"), Some("q"));
        assert_eq!(cookie(h, "latch"), None);
        assert_eq!(cookie(b"latch_session=", "latch_session"), Some(""));
        assert_eq!(cookie(b"\xff=1", "x"), None);
        assert_eq!(cookie(b"", "x"), None);
        assert_eq!(cookie(b" x = v ;y=2", "x"), Some("v"));
        assert_eq!(cookie(b"xx=1; x", "x"), None);
        // The first of a name decides, even when its value is no UTF-8.
        assert_eq!(cookie(b"x=1; x=2", "x"), Some("1"));
        assert_eq!(cookie(b"x=\xff; x=2", "x"), None);
        // Another cookie's bytes do not matter.
        assert_eq!(cookie(b"a=\xff\xfe; x=v", "x"), Some("v"));
        assert_eq!(cookie(b"x2=1; x=v", "x"), Some("v"));
        assert_eq!(cookie(b"x\t=\t\"v\" ", "x"), Some("v"));
        assert_eq!(cookie(b";;; x=v;", "x"), Some("v"));
        let long = [b"a=".as_slice(), &[b'b'; 300], b"; x=", &[b'c'; 333]].concat();
        assert_eq!(cookie(&long, "x").map(str::len), Some(333));
    }

    #[test]
    fn find_byte_is_position() {
        for len in 0..40 {
            let mut hay = vec![b'a'; len];
            assert_eq!(find_byte(&hay, b';'), None, "{len}");
            for at in 0..len {
                hay.fill(b'a');
                hay[at] = b';';
                if at + 3 < len {
                    hay[at + 3] = b';';
                }
                assert_eq!(find_byte(&hay, b';'), Some(at), "{len} {at}");
            }
        }
        // Bytes that differ from the needle by a borrow are not it.
        assert_eq!(find_byte(&[0x3c, 0x3a, 0xbb, 0x3b], b';'), Some(3));
        assert_eq!(find_byte(&[0xff; 17], 0x7f), None);
        assert_eq!(find_byte(&[0, 0, 0, 0, 0, 0, 0, 1, 0], 1), Some(7));
    }

    #[test]
    fn tokens_are_printable_ascii_every_byte_checked() {
        for b in 0..=255u8 {
            let ok = b.is_ascii_graphic();
            assert_eq!(parse_token(&[b]).is_ok(), ok, "byte {b}");
            if let Ok(text) = std::str::from_utf8(&[b]) {
                assert_eq!(parse_token_str(text).is_ok(), ok, "text {b}");
            }
            // At either end of a long value, too (the check is done in chunks).
            let mut long = vec![b'a'; 300];
            long[299] = b;
            assert_eq!(parse_token(&long).is_ok(), ok, "last byte {b}");
            long[299] = b'a';
            long[0] = b;
            assert_eq!(parse_token(&long).is_ok(), ok, "first byte {b}");
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_form(b"username=al%20ice&password=p%C3%A4ss+word&rd=").unwrap(),
            vec![
                ("username".into(), "al ice".into()),
                ("password".into(), "päss word".into()),
                ("rd".into(), "".into())
            ]
        );
        assert_eq!(parse_form(b"").unwrap(), vec![]);
        assert!(parse_form(b"a=%zz").is_none());
        assert!(parse_form(b"a=%ff").is_none());
        assert!(parse_form(b"\xff").is_none());
    }

    #[test]
    fn token_values() {
        assert!(parse_token(b"abc").is_ok());
        assert_eq!(parse_token(b""), Err(Malformed::Token));
        assert_eq!(parse_token(b"a b"), Err(Malformed::Token));
        assert_eq!(parse_token("é".as_bytes()), Err(Malformed::Token));
        assert_eq!(parse_token(&vec![b'a'; 5000]), Err(Malformed::Token));
    }
}
