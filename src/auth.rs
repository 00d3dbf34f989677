//! The domain: register, log in, issue, verify and revoke.
//!
//! [`Auth`] owns the store, the signing keys, the hashing pool and the
//! clock. The HTTP layer calls it and never touches sled, ring or scrypt.

use crate::clock::Clock;
use crate::config::{Config, Registration};
use crate::credentials::Credential;
use crate::crypto::{self, SigningKey};
use crate::error::{Error, Kind, Refusal, Result};
use crate::hasher::Hasher;
use crate::store::{NewUser, Store, User};
use crate::token::{self, Claims, Keys};

/// Shortest and longest accepted passwords, in characters. No composition
/// rules (NIST SP 800-63B).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// Longest username, in characters.
pub const MAX_USERNAME: usize = 64;

/// Who a request is, once a credential was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user_id: u64,
    /// The username.
    pub username: String,
    /// The token that proved it, if a token did.
    pub token: Option<TokenRef>,
}

/// Enough of a verified token to revoke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRef {
    /// The token's `jti`.
    pub jti: [u8; token::JTI_LEN],
    /// The token's expiry.
    pub exp: u64,
}

/// A freshly issued token.
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub duration: u64,
}

/// The authentication service.
pub struct Auth {
    store: Store,
    keys: Keys,
    hasher: Hasher,
    clock: Clock,
    /// Lifetime of new tokens, in seconds.
    token_ttl: u64,
    registration: Registration,
}

impl Auth {
    /// Builds the service over an opened store and a loaded key.
    pub fn new(config: &Config, store: Store, key: &[u8], clock: Clock) -> Result<Auth> {
        Ok(Auth {
            store,
            keys: Keys::new(SigningKey::new(key), Vec::new()),
            hasher: Hasher::new(&config.hashing)?,
            clock,
            token_ttl: config.token_ttl.as_secs(),
            registration: config.registration,
        })
    }

    /// The store, for shutdown flushing.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates an account (the `POST /api/users` path).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<User> {
        if self.registration == Registration::Closed {
            return Err(Error::new(Kind::Forbidden("registration is closed")));
        }
        self.create_user(username, password, email).await
    }

    /// Creates an account whatever the registration setting (CLI, tests).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<User> {
        validate_username(username)?;
        validate_password(password)?;
        if let Some(email) = email {
            validate_email(email)?;
        }
        let password_hash = self.hasher.hash(password.to_owned()).await?;
        self.store
            .create_user(NewUser {
                username,
                email,
                password_hash,
                created_at: self.clock.now(),
            })
            .await
    }

    /// The user with this id.
    pub fn user(&self, id: u64) -> Result<Option<User>> {
        self.store.user(id)
    }

    /// Checks a username (or email) and password. Unknown users cost the
    /// same scrypt work as known ones, and both get the same refusal.
    pub async fn login(&self, login: &str, password: &str) -> Result<User> {
        let user = if login.contains('@') {
            self.store.user_by_email(login)?
        } else {
            self.store.user_by_name(login)?
        };
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self.hasher.verify(password.to_owned(), phc).await?;
        match user {
            Some(user) if ok => {
                self.upgrade_hash(&user, password).await?;
                Ok(user)
            }
            _ => Err(Error::unauthorized(Refusal::BadPassword)),
        }
    }

    /// Rehashes at the configured cost when the stored one is lower. Skipped
    /// (and retried at the next login) when the hashing queue is full.
    async fn upgrade_hash(&self, user: &User, password: &str) -> Result<()> {
        let stored = crypto::stored_cost(&user.password_hash)?;
        if !stored.below(&self.hasher.cost()) {
            return Ok(());
        }
        match self.hasher.hash(password.to_owned()).await {
            Ok(phc) => self.store.replace_password_hash(user, phc).await,
            Err(e) if e.kind() == Kind::Busy => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signs a new token for `user`.
    pub fn issue(&self, user: &User) -> Result<Issued> {
        let now = self.clock.now();
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            iat: now,
            exp: now + self.token_ttl,
            jti: crypto::b64url_encode(&crypto::random_bytes::<{ token::JTI_LEN }>()?),
        };
        Ok(Issued {
            token: self.keys.sign(&claims),
            duration: self.token_ttl,
        })
    }

    /// Verifies a token: MAC, expiry, then one store read for revocation.
    /// Does no writes.
    pub fn verify_token(&self, token: &str) -> Result<Identity> {
        let v = self.keys.verify(token, self.clock.now()).map_err(|why| {
            Error::with_cause(
                Kind::Unauthorized(Refusal::BadToken),
                format_args!("{why:?}"),
            )
        })?;
        if self.store.is_revoked(&v.jti)? {
            return Err(Error::with_cause(
                Kind::Unauthorized(Refusal::BadToken),
                "revoked",
            ));
        }
        Ok(Identity {
            user_id: v.user_id,
            username: v.name,
            token: Some(TokenRef {
                jti: v.jti,
                exp: v.exp,
            }),
        })
    }

    /// Accepts any credential: a token, or a username and password.
    pub async fn authenticate(&self, credential: &Credential<'_>) -> Result<Identity> {
        match credential {
            Credential::Token(token) => self.verify_token(token),
            Credential::Password { username, password } => {
                let user = self.login(username, password).await?;
                Ok(Identity {
                    user_id: user.id,
                    username: user.username,
                    token: None,
                })
            }
        }
    }

    /// Revokes the token behind `identity`, durably.
    pub async fn revoke(&self, token: TokenRef) -> Result<()> {
        self.store.revoke(&token.jti, token.exp).await
    }
}

/// 1 to 64 characters of letters, digits and `._-`, starting with a letter
/// or digit. No `@` (that marks an email at login), nothing shaped like a
/// token or an API key.
pub fn validate_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME
        && name.chars().next().is_some_and(char::is_alphanumeric)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !token::looks_like_token(name)
        && !name.starts_with("latch_");
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "username must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// 8 to 1024 characters, nothing else.
pub fn validate_password(password: &str) -> Result<()> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::bad_request("password must be 8 to 1024 characters"))
    }
}

/// A plausible address: one `@` between non-empty parts, no spaces or
/// control characters, at most 254 bytes.
pub fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request("email is not a valid address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["miguel", "a", "john.doe", "x_y-z", "Émile", &"a".repeat(64)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a b",
            "a@b",
            "a:b",
            "latch_x",
            "eyJa.b.c",
            &"a".repeat(65),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password("éééééééé").is_ok());
        assert!(validate_password(&"x".repeat(1024)).is_ok());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn emails() {
        assert!(validate_email("a@example.com").is_ok());
        for bad in ["a", "@b", "a@", "a@b@c", "a @b", "a\n@b"] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
