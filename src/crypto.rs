//! Every cryptographic primitive in one place: random bytes, HMAC-SHA256,
//! HMAC-SHA1 (for TOTP alone), AES-256-GCM (secrets at rest), the scrypt
//! password KDF and base64 codecs.
//!
//! Nothing outside this module names `ring` or `scrypt`.
//!
//! It holds no key of its own and never decides what a key is for.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, digest, hmac};
use scrypt::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use scrypt::Scrypt;

use crate::error::{Error, Result};

/// Fills a fresh array with random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::internal("the system random number generator failed"))?;
    Ok(out)
}

/// Strict base64url without padding, as JWTs use: non-canonical trailing
/// bits and padding are both refused.
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url (see [`b64url_encode`]).
pub fn b64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes strict base64url into `out`; the decoded length, or `None` when
/// the input is invalid or does not fit.
pub fn b64url_decode_into(text: &[u8], out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.decode_slice(text, out).ok()
}

/// Standard base64 with padding, as keys and HTTP Basic use.
pub fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding (see [`b64_encode`]).
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// An HMAC-SHA256 key with the identifier derived from it.
#[derive(Clone)]
pub struct SigningKey {
    key: hmac::Key,
    /// Names the key inside tokens (`kid`), so a verifier holding several
    /// keys knows which one to try. Derived, so it cannot drift from the key.
    kid: String,
}

impl SigningKey {
    /// Wraps raw key bytes; callers check the length first.
    pub fn new(bytes: &[u8]) -> Self {
        let fingerprint = digest::digest(&digest::SHA256, bytes);
        SigningKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            kid: b64url_encode(&fingerprint.as_ref()[..8]),
        }
    }

    /// The key identifier written into the `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// HMAC-SHA256 of `data`.
    pub fn sign(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, data)
    }

    /// A separate key for another purpose: HMAC of `label` under this one.
    pub fn derive(&self, label: &[u8]) -> SigningKey {
        SigningKey::new(self.sign(label).as_ref())
    }

    /// Checks `tag` against `data` in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, data, tag).is_ok()
    }
}

/// SHA-256, for high-entropy secrets stored only as hashes (API keys).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// HMAC-SHA1 of `data` under `key`: what TOTP (RFC 6238) is defined
/// with, and the one use latch makes of SHA-1 (ring names it legacy-use
/// only, which this is).
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut out = [0u8; 20];
    out.copy_from_slice(hmac::sign(&key, data).as_ref());
    out
}

/// Compares two byte strings in constant time (for their length).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An AES-256-GCM key for secrets at rest. No `Debug`: it would print it.
pub struct SealingKey {
    key: aead::LessSafeKey,
}

/// Bytes of nonce in front of each sealed value.
const NONCE_LEN: usize = aead::NONCE_LEN;

impl SealingKey {
    /// Wraps 32 raw key bytes; `None` for any other length.
    pub fn new(bytes: &[u8]) -> Option<SealingKey> {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, bytes).ok()?;
        Some(SealingKey {
            key: aead::LessSafeKey::new(key),
        })
    }

    /// Encrypts `plain`, bound to `context` (authenticated, not stored):
    /// a fresh random nonce, then the ciphertext and its tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut out = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(context),
                &mut out,
            )
            .map_err(|_| Error::internal("encryption failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.append(&mut out);
        Ok(sealed)
    }

    /// Decrypts what [`SealingKey::seal`] made with the same `context`;
    /// `None` when the key, the context or the bytes differ.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::from(context), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// scrypt cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// log2 of the CPU/memory cost N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
}

/// The highest cost latch will compute: 1 GiB of memory, p at most 16.
/// Anything above is refused both in config and in stored hashes, so a
/// tampered record cannot make a login allocate without bound.
pub const MAX_MEMORY: u64 = 1 << 30;
/// See [`MAX_MEMORY`].
pub const MAX_P: u32 = 16;

impl Cost {
    /// Memory one hash needs, in bytes (128 * r * N).
    pub fn memory(&self) -> u64 {
        128u64
            .saturating_mul(u64::from(self.r))
            .saturating_mul(1u64.checked_shl(u32::from(self.log_n)).unwrap_or(u64::MAX))
    }

    /// Whether this cost is within the ceiling and accepted by scrypt.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.log_n == 0 || self.r == 0 || self.p == 0 {
            return Err("log_n, r and p must be at least 1".into());
        }
        if self.log_n >= 64 {
            return Err(format!(
                "log_n {} is above the ceiling (1 GiB of memory)",
                self.log_n
            ));
        }
        if self.memory() > MAX_MEMORY || self.p > MAX_P {
            return Err(format!(
                "cost ln={},r={},p={} is above the ceiling (1 GiB of memory, p <= {MAX_P})",
                self.log_n, self.r, self.p
            ));
        }
        self.params().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Whether a hash of cost `self` should be upgraded to `target`.
    pub fn below(&self, target: &Cost) -> bool {
        self.log_n < target.log_n || self.r < target.r || self.p < target.p
    }

    fn params(&self) -> std::result::Result<scrypt::Params, scrypt::errors::InvalidParams> {
        scrypt::Params::new(self.log_n, self.r, self.p, scrypt::Params::RECOMMENDED_LEN)
    }
}

/// A PHC string at `cost` whose hash matches no password: random salt and
/// random output. Verifying against it is exactly as slow as a real hash.
pub fn dummy_hash(cost: Cost) -> Result<String> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let salt = STANDARD_NO_PAD.encode(random_bytes::<16>()?);
    let hash = STANDARD_NO_PAD.encode(random_bytes::<32>()?);
    Ok(format!(
        "$scrypt$ln={},r={},p={}${salt}${hash}",
        cost.log_n, cost.r, cost.p
    ))
}

/// Hashes a password into a PHC string (`$scrypt$ln=..,r=..,p=..$salt$hash`).
/// Slow by design: call only from a blocking thread.
pub fn hash_password(password: &str, cost: Cost) -> Result<String> {
    let params = cost.params().map_err(Error::internal)?;
    let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(Error::internal)?;
    let hash = Scrypt
        .hash_password_customized(password.as_bytes(), None, None, params, &salt)
        .map_err(Error::internal)?;
    Ok(hash.to_string())
}

/// The cost recorded in a PHC string, or why it cannot be used.
pub fn stored_cost(phc: &str) -> Result<Cost> {
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::internal(format_args!("bad stored hash: {e}")))?;
    let params = scrypt::Params::try_from(&parsed)
        .map_err(|e| Error::internal(format_args!("bad stored hash params: {e}")))?;
    Ok(Cost {
        log_n: params.log_n(),
        r: params.r(),
        p: params.p(),
    })
}

/// Why a hash latch did not make (an import) cannot be stored, if it
/// cannot: it must be an scrypt PHC string with a salt and a 32-byte
/// output (anything else never verifies, and locks the account quietly),
/// at no more than `most` in each of `ln`, `r` and `p` (a failed login on
/// it costs no more than one on latch's own hashes).
pub fn foreign_hash_problem(phc: &str, most: Cost) -> Option<String> {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Some("not a PHC string ($scrypt$ln=..,r=..,p=..$salt$hash)".into());
    };
    if parsed.algorithm.as_str() != "scrypt" {
        return Some(format!("a {} hash, not scrypt", parsed.algorithm));
    }
    let salt_reads = parsed
        .salt
        .is_some_and(|salt| salt.decode_b64(&mut [0u8; 64]).is_ok());
    if !salt_reads || parsed.hash.is_none_or(|h| h.len() != 32) {
        return Some("no readable salt, or not a 32-byte hash after it".into());
    }
    let cost = match stored_cost(phc) {
        Ok(cost) => cost,
        Err(_) => return Some("its ln, r and p are not scrypt's".into()),
    };
    if let Err(why) = cost.check() {
        return Some(why);
    }
    (cost.log_n > most.log_n || cost.r > most.r || cost.p > most.p).then(|| {
        format!(
            "it costs more (ln={},r={},p={}) than [scrypt] allows (ln={},r={},p={}): raise \
             [scrypt], or import a password instead",
            cost.log_n, cost.r, cost.p, most.log_n, most.r, most.p
        )
    })
}

/// Checks a password against a PHC string. A stored cost above the ceiling
/// or an unparsable string is an error, not a silent refusal.
/// Slow by design: call only from a blocking thread.
pub fn verify_password(password: &str, phc: &str) -> Result<bool> {
    stored_cost(phc)?
        .check()
        .map_err(|e| Error::internal(format_args!("refusing stored hash: {e}")))?;
    let parsed = PasswordHash::new(phc).map_err(Error::internal)?;
    // Only a wrong password is a no; a hash that cannot be checked (a salt
    // that is not base64) is an error, never a silent lock-out.
    match Scrypt.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(scrypt::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(Error::internal(format_args!(
            "cannot check a stored hash: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: Cost = Cost {
        log_n: 4,
        r: 8,
        p: 1,
    };

    #[test]
    fn password_round_trip() {
        let phc = hash_password("correct horse", LOW).unwrap();
        assert!(phc.starts_with("$scrypt$ln=4,r=8,p=1$"));
        assert!(verify_password("correct horse", &phc).unwrap());
        assert!(!verify_password("correct horsf", &phc).unwrap());
        assert_eq!(stored_cost(&phc).unwrap(), LOW);
    }

    #[test]
    fn foreign_hashes() {
        let good = hash_password("x", LOW).unwrap();
        assert_eq!(foreign_hash_problem(&good, LOW), None);
        let higher = Cost { log_n: 5, ..LOW };
        assert_eq!(foreign_hash_problem(&good, higher), None);
        assert!(foreign_hash_problem(&hash_password("x", higher).unwrap(), LOW).is_some());
        let (head, output) = good.rsplit_once('$').unwrap();
        for bad in [
            String::new(),
            "p4ssw0rd".to_owned(),
            head.to_owned(),
            format!("{head}$"),
            format!("{head}${}", &output[..20]),
            good.replace("$scrypt$", "$argon2id$"),
            good.replace("ln=4", "ln=30"),
            good.replace("ln=4", "ln=0"),
            // A salt scrypt cannot decode: it would never verify.
            format!(
                "{}$abcde${output}",
                head[..head.rfind('$').unwrap()].to_owned()
            ),
        ] {
            assert!(foreign_hash_problem(&bad, LOW).is_some(), "{bad}");
        }
    }

    #[test]
    fn cost_ceiling_refuses_huge_stored_hash() {
        let phc = hash_password("x", LOW).unwrap().replace("ln=4", "ln=30");
        assert!(verify_password("x", &phc).is_err());
        assert!(Cost {
            log_n: 21,
            r: 8,
            p: 1
        }
        .check()
        .is_err());
        assert!(Cost {
            log_n: 17,
            r: 8,
            p: 1
        }
        .check()
        .is_ok());
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let key = SealingKey::new(&[7u8; 32]).unwrap();
        let sealed = key.seal(b"user 1", b"secret bytes").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open(b"user 1", &sealed).unwrap(), b"secret bytes");
        assert!(key.open(b"user 2", &sealed).is_none(), "another context");
        let other = SealingKey::new(&[8u8; 32]).unwrap();
        assert!(other.open(b"user 1", &sealed).is_none(), "another key");
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(key.open(b"user 1", &flipped).is_none(), "a changed byte");
        assert!(key.open(b"user 1", &sealed[..20]).is_none(), "too short");
        assert_ne!(key.seal(b"user 1", b"secret bytes").unwrap(), sealed);
        assert!(SealingKey::new(&[0u8; 31]).is_none());
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202, test case 2.
        let tag = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn strict_base64url() {
        assert_eq!(b64url_decode(b"AQ").unwrap(), vec![1]);
        // Same byte, non-zero trailing bits: refused.
        assert!(b64url_decode(b"AR").is_none());
        assert!(b64url_decode(b"AQ==").is_none());
        assert!(b64url_decode(b"A+").is_none());
    }
}
