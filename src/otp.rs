//! Time-based one-time passwords (RFC 6238 over RFC 4226): the codes every
//! authenticator app shows, their base32 secrets, the `otpauth://` URI and
//! its QR code, and recovery codes. SHA-1, six digits, a 30-second period.
//!
//! Pure functions of their inputs (the time is passed in): it stores
//! nothing, remembers nothing and never decides whether a code was used
//! before; the service does (see `service/totp.rs`).

use crate::crypto;

/// Bytes in a secret (RFC 4226 recommends 160 bits).
pub const SECRET_LEN: usize = 20;

/// Seconds per time step.
pub const PERIOD: u64 = 30;

/// Digits in a code.
pub const DIGITS: usize = 6;

/// How many recovery codes a user gets at once.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP secret. No `Debug`: it would print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_LEN]);

impl Secret {
    /// A fresh random secret.
    pub fn generate() -> crate::error::Result<Secret> {
        crypto::random_bytes().map(Secret)
    }

    /// The secret as base32 (RFC 4648, no padding), as apps take it.
    pub fn base32(&self) -> String {
        base32_encode(&self.0)
    }
}

/// The time step `now` falls in.
pub fn step(now: u64) -> u64 {
    now / PERIOD
}

/// The code for `step` (RFC 4226's dynamic truncation, six digits).
pub fn code_at(secret: &Secret, step: u64) -> u32 {
    let mac = crypto::hmac_sha1(&secret.0, &step.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    bin % 10u32.pow(DIGITS as u32)
}

/// How a code checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// It is the code of this step (within one step of now) and newer than
    /// the last one used.
    Good(u64),
    /// It is the code of a step already used (or older): a replay.
    Replayed,
    /// It is no code of a step within the window.
    Wrong,
}

/// Checks `code` (six digits, spaces allowed) against the steps one
/// before, at and one after `now`'s. `last_used` is the newest step a code
/// was accepted for: that step and older ones are refused as replays.
pub fn check(secret: &Secret, code: &str, now: u64, last_used: Option<u64>) -> Checked {
    let Some(given) = parse_code(code) else {
        return Checked::Wrong;
    };
    let now = step(now);
    // Every step in the window is computed and compared, whichever
    // matches, so the time taken does not say which did.
    let mut matched = None;
    for s in [now.saturating_sub(1), now, now + 1] {
        let equal = crypto::same_bytes(&code_at(secret, s).to_be_bytes(), &given.to_be_bytes());
        if equal && matched.is_none_or(|m| s > m) {
            matched = Some(s);
        }
    }
    match (matched, last_used) {
        (None, _) => Checked::Wrong,
        (Some(s), Some(last)) if s <= last => Checked::Replayed,
        (Some(s), _) => Checked::Good(s),
    }
}

/// Six ASCII digits, with spaces anywhere ignored (apps show `123 456`).
fn parse_code(code: &str) -> Option<u32> {
    let digits: String = code.chars().filter(|c| *c != ' ').collect();
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `text` looks like a TOTP code rather than a recovery code.
pub fn looks_like_code(text: &str) -> bool {
    parse_code(text).is_some()
}

/// The `otpauth://totp/` URI apps scan, for `user` at `issuer`.
pub fn uri(issuer: &str, user: &str, secret: &Secret) -> String {
    let issuer = percent(issuer);
    format!(
        "otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        user = percent(user),
        secret = secret.base32(),
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `data` as the QR code of an `otpauth://` URI: an inline SVG element
/// (black modules on white, a quiet zone), with no script and no style
/// attribute, so the strict CSP of latch's pages allows it.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    // The element alone, without the XML declaration.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 as people type it: either case, spaces and hyphens
/// ignored, padding optional; `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        if matches!(c, b' ' | b'-') {
            continue;
        }
        let value = BASE32.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// Fresh recovery codes: each 16 base32 characters (80 random bits) in
/// four groups, lower case: `abcd-efgh-ijkl-mnop`.
pub fn recovery_codes() -> crate::error::Result<Vec<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = crypto::random_bytes::<10>()?;
            let text = base32_encode(&raw).to_ascii_lowercase();
            let groups: Vec<&str> = (0..4).map(|i| &text[i * 4..i * 4 + 4]).collect();
            Ok(groups.join("-"))
        })
        .collect()
}

/// What a recovery code is stored as: SHA-256 of its canonical form (lower
/// case, without spaces and hyphens). The codes carry 80 random bits, so a
/// fast hash is enough. `None` when it cannot be a recovery code.
pub fn recovery_hash(code: &str) -> Option<[u8; 32]> {
    let canonical: String = code
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ok = canonical.len() == 16 && base32_decode(&canonical).is_some_and(|b| b.len() == 10);
    ok.then(|| crypto::sha256(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows: the 20-byte ASCII seed
    /// "12345678901234567890", eight-digit values.
    const RFC6238: [(u64, u32); 6] = [
        (59, 94287082),
        (1111111109, 7081804),
        (1111111111, 14050471),
        (1234567890, 89005924),
        (2000000000, 69279037),
        (20000000000, 65353130),
    ];

    fn rfc_secret() -> Secret {
        Secret(*b"12345678901234567890")
    }

    #[test]
    fn rfc_6238_test_vectors() {
        let secret = rfc_secret();
        for (time, eight) in RFC6238 {
            // Six digits are the last six of the RFC's eight.
            assert_eq!(
                code_at(&secret, step(time)),
                eight % 1_000_000,
                "T = {time}"
            );
        }
    }

    fn six(n: u32) -> String {
        format!("{n:06}")
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let at = |s: u64| six(code_at(&secret, s));
        let here = step(now);
        assert_eq!(check(&secret, &at(here), now, None), Checked::Good(here));
        assert_eq!(
            check(&secret, &at(here - 1), now, None),
            Checked::Good(here - 1)
        );
        assert_eq!(
            check(&secret, &at(here + 1), now, None),
            Checked::Good(here + 1)
        );
        assert_eq!(check(&secret, &at(here - 2), now, None), Checked::Wrong);
        assert_eq!(check(&secret, &at(here + 2), now, None), Checked::Wrong);
        // The edges of a step: its first and last second.
        let first = here * PERIOD;
        assert_eq!(
            check(&secret, &at(here - 1), first, None),
            Checked::Good(here - 1)
        );
        assert_eq!(
            check(&secret, &at(here + 1), first + PERIOD - 1, None),
            Checked::Good(here + 1)
        );
        assert_eq!(
            check(&secret, &at(here - 1), first + PERIOD, None),
            Checked::Wrong
        );
    }

    #[test]
    fn a_used_step_is_a_replay() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let here = step(now);
        let code = six(code_at(&secret, here));
        assert_eq!(check(&secret, &code, now, Some(here)), Checked::Replayed);
        assert_eq!(
            check(&secret, &code, now, Some(here + 1)),
            Checked::Replayed
        );
        assert_eq!(
            check(&secret, &code, now, Some(here - 1)),
            Checked::Good(here)
        );
        let older = six(code_at(&secret, here - 1));
        assert_eq!(
            check(&secret, &older, now, Some(here - 1)),
            Checked::Replayed
        );
    }

    #[test]
    fn codes_are_six_digits() {
        let secret = rfc_secret();
        let now = 59;
        let code = six(code_at(&secret, step(now)));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(check(&secret, &spaced, now, None), Checked::Good(step(now)));
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "+12345",
            "-12345",
            "１２３４５６",
        ] {
            assert_eq!(check(&secret, bad, now, None), Checked::Wrong, "{bad:?}");
        }
    }

    #[test]
    fn base32_round_trips() {
        // RFC 4648 section 10.
        for (plain, coded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), coded);
            assert_eq!(base32_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb-oi======").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
        for n in 0..64u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            assert_eq!(base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
        }
        let secret = Secret::generate().unwrap();
        assert_eq!(secret.base32().len(), 32);
        assert_eq!(base32_decode(&secret.base32()).unwrap(), secret.0);
    }

    #[test]
    fn the_uri_names_issuer_and_user() {
        let uri = uri("My latch", "al ice", &rfc_secret());
        assert_eq!(
            uri,
            "otpauth://totp/My%20latch:al%20ice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=My%20latch&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("style=") && !svg.contains("<script"));
    }

    #[test]
    fn recovery_codes_are_unique_and_hash_canonically() {
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut hashes: Vec<_> = codes.iter().map(|c| recovery_hash(c).unwrap()).collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let typed = code.replace('-', " ").to_uppercase();
        assert_eq!(recovery_hash(&typed), recovery_hash(code));
        assert!(recovery_hash("123456").is_none());
        assert!(recovery_hash("abcd-efgh-ijkl-mno1").is_none());
        assert!(!looks_like_code(code));
        assert!(looks_like_code("123 456"));
    }
}
