//! The authentication service: credentials in, identities out.
//!
//! [`Auth`] issues and verifies tokens, manages API keys, and delegates
//! everything about accounts and passwords to [`Accounts`]. The HTTP layer
//! calls it and never touches sled, ring or scrypt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::accounts::{Accounts, Proven};
use crate::audit;
use crate::clock::Clock;
use crate::config::{Config, Registration};
use crate::credentials::{Credential, Place, Presented, API_KEY_PREFIX};
use crate::crypto::{self, SigningKey};
use crate::error::{Error, Kind, Refusal, Result};
use crate::metrics::{CredentialKind, Metrics};
use crate::revoked::Revoked;
use crate::store::{ApiKey, Store, User};
use crate::token::{self, Audience, Claims, Keys};
use crate::verified::VerifiedCache;

/// A key's last use is written at most this often (seconds).
pub const LAST_USED_EVERY: u64 = 60;

/// Longest accepted `expires_in` for an API key: ten years.
pub const MAX_KEY_LIFETIME: u64 = 10 * 365 * 86400;

/// How long a login or logout form stays valid, in seconds.
pub const FORM_TTL: u64 = 3600;

/// How often pending key uses are written out.
const KEY_USE_FLUSH: Duration = Duration::from_secs(30);
/// How often expired revocations, cutoffs and keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Who a request is, once a credential was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id.
    pub user_id: u64,
    /// The username.
    pub username: String,
    /// What proved it.
    pub via: Via,
    /// When the password behind the credential was checked: now for a
    /// password, the token's `auth_time` for a token, never for an API key.
    pub auth_time: Option<u64>,
    /// The user's credential epoch the credential belongs to (a password's
    /// when its check began, a token's own); none for an API key. A key
    /// is made only if the epoch is still current when it is stored.
    pub epoch: Option<u64>,
}

impl Identity {
    /// Whether the password was proven within `window` seconds of `now`
    /// (sensitive changes need this).
    pub fn password_proven_within(&self, now: u64, window: u64) -> bool {
        self.auth_time
            .is_some_and(|t| t <= now && now - t <= window)
    }
}

/// The kind of credential that proved an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A username and password.
    Password,
    /// A token, with enough of it to revoke it.
    Token(TokenRef),
    /// An API key, by id.
    ApiKey(u64),
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

/// A freshly created API key: the record, and the secret shown this once.
pub struct NewKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret (`latch_...`); only its hash is stored.
    pub secret: String,
}

/// The authentication service.
pub struct Auth {
    accounts: Accounts,
    keys: Keys,
    /// Signs login-form tokens; derived from the signing key so forms
    /// and tokens can never be confused.
    form_key: SigningKey,
    /// Lifetime of new tokens, in seconds.
    token_ttl: u64,
    /// Lifetime of login-page sessions, in seconds.
    session_ttl: u64,
    registration: Registration,
    /// API key uses not yet written, by key hash: (key id, time). Written
    /// by the housekeeping task so verification never writes.
    key_uses: Mutex<HashMap<[u8; 32], (u64, u64)>>,
    /// Revoked token ids, in memory (the store is the truth).
    revoked: Revoked,
    /// Tokens whose signature this thread already checked.
    verified: VerifiedCache,
}

impl Auth {
    /// Builds the service over an opened store and a loaded key.
    pub fn new(
        config: &Config,
        store: Store,
        key: &[u8],
        previous: &[Vec<u8>],
        clock: Clock,
    ) -> Result<Auth> {
        let token_ttl = config.token_ttl.as_secs();
        let session_ttl = config.forward_auth.session_ttl.as_secs();
        let signing = SigningKey::new(key);
        Ok(Auth {
            accounts: Accounts::new(
                config,
                store,
                clock,
                token_ttl.max(session_ttl),
                Arc::default(),
            )?,
            form_key: signing.derive(b"latch login form"),
            keys: Keys::new(
                signing,
                previous.iter().map(|k| SigningKey::new(k)).collect(),
            ),
            token_ttl,
            session_ttl,
            registration: config.registration,
            key_uses: Mutex::new(HashMap::new()),
            revoked: Revoked::default(),
            verified: VerifiedCache::default(),
        })
    }

    /// Accounts: users, passwords, groups, cutoffs.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The store, for shutdown flushing.
    pub fn store(&self) -> &Store {
        self.accounts.store()
    }

    /// The current time from the one clock.
    pub fn now(&self) -> u64 {
        self.accounts.clock().now()
    }

    /// Creates an account (the `POST /api/users` path).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<User> {
        self.check_registration_open()?;
        self.accounts
            .create(username, password, email, Vec::new())
            .await
    }

    /// 403 unless `registration = "open"`.
    pub fn check_registration_open(&self) -> Result<()> {
        match self.registration {
            Registration::Open => Ok(()),
            Registration::Closed => Err(Error::new(Kind::Forbidden("registration is closed"))),
        }
    }

    /// Signs a new API token for a user whose password was just checked.
    pub async fn issue(&self, proven: &Proven) -> Result<Issued> {
        self.issue_for(proven, Audience::Api, self.token_ttl).await
    }

    /// Signs a session token (the login page's cookie) for a user whose
    /// password was just checked: the same format, revocable the same
    /// ways, with the session lifetime and the session audience (accepted
    /// only as the cookie).
    pub async fn issue_session(&self, proven: &Proven) -> Result<Issued> {
        self.issue_for(proven, Audience::Session, self.session_ttl)
            .await
    }

    /// Signs a token of the epoch the password was proven in. Should a
    /// cutoff have come since, the token would be refused anyway: it is
    /// not even handed out.
    async fn issue_for(&self, proven: &Proven, aud: Audience, ttl: u64) -> Result<Issued> {
        let user = &proven.user;
        if self.accounts.epoch(user.id) != proven.epoch {
            return Err(Error::with_cause(
                Kind::Unauthorized(Refusal::BadPassword),
                "the password changed (or everything was logged out) during the check",
            ));
        }
        let now = self.now();
        let jti = crypto::random_bytes::<{ token::JTI_LEN }>()?;
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.username.clone(),
            aud,
            iat: now,
            exp: now + ttl,
            auth_time: now,
            epoch: proven.epoch,
            jti: crypto::b64url_encode(&jti),
        };
        self.accounts.metrics().token_issued();
        Ok(Issued {
            token: self.keys.sign(&claims),
            duration: ttl,
        })
    }

    /// A per-form token for the login and logout forms, bound to `nonce`
    /// (a random value the browser also holds in a cookie): valid for
    /// [`FORM_TTL`] seconds. Returns the token.
    pub fn form_token(&self, nonce: &str) -> String {
        let input = format!("{}.{nonce}", self.now());
        let tag = self.form_key.sign(input.as_bytes());
        format!("{input}.{}", crypto::b64url_encode(tag.as_ref()))
    }

    /// Whether `token` came from [`Auth::form_token`] for this `nonce` and
    /// is still fresh.
    pub fn check_form_token(&self, token: &str, nonce: &str) -> bool {
        let Some((input, tag)) = token.rsplit_once('.') else {
            return false;
        };
        let Some((issued, token_nonce)) = input.split_once('.') else {
            return false;
        };
        let Some(tag) = crypto::b64url_decode(tag.as_bytes()) else {
            return false;
        };
        let now = self.now();
        token_nonce == nonce
            && !nonce.is_empty()
            && issued
                .parse::<u64>()
                .is_ok_and(|t| t <= now && now - t <= FORM_TTL)
            && self.form_key.verify(input.as_bytes(), &tag)
    }

    /// A fresh random nonce for the form cookie.
    pub fn new_nonce(&self) -> Result<String> {
        Ok(crypto::b64url_encode(&crypto::random_bytes::<16>()?))
    }

    /// Verifies a token for `audience`: MAC, expiry, audience, then
    /// revocation and the user's cutoff, both in memory. Does no writes
    /// and, once the revocations are loaded, no reads.
    pub fn verify_token(&self, token: &str, audience: Audience) -> Result<Identity> {
        let refused = |reason: &str| {
            audit::refused("token", reason);
            Error::with_cause(Kind::Unauthorized(Refusal::BadToken), reason)
        };
        let now = self.now();
        let v = match self.verified.get(token, now) {
            Some(v) => v,
            None => {
                let v = self
                    .keys
                    .verify(token, now)
                    .map_err(|why| refused(&format!("{why:?}")))?;
                self.verified.put(token, &v);
                v
            }
        };
        if v.audience != audience {
            return Err(refused("presented where its audience does not allow"));
        }
        if self.revoked.contains(&v.jti, self.store())? {
            return Err(refused("revoked"));
        }
        if !self.accounts.token_allowed(v.user_id, v.epoch) {
            return Err(refused(
                "of an earlier epoch (logged out everywhere, password changed, deleted)",
            ));
        }
        Ok(Identity {
            user_id: v.user_id,
            username: v.name,
            via: Via::Token(TokenRef {
                jti: v.jti,
                exp: v.exp,
            }),
            auth_time: Some(v.auth_time),
            epoch: Some(v.epoch),
        })
    }

    /// Verifies an API key: one store read; its use is noted in memory.
    pub fn verify_key(&self, secret: &str) -> Result<Identity> {
        let refused = |why: &'static str| {
            audit::refused("api_key", why);
            Error::with_cause(Kind::Unauthorized(Refusal::BadToken), why)
        };
        let hash = crypto::sha256(secret.as_bytes());
        let key = self
            .store()
            .key_by_hash(&hash)?
            .ok_or_else(|| refused("unknown API key"))?;
        let now = self.now();
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(refused("expired API key"));
        }
        if self.accounts.is_deleted(key.user_id) {
            return Err(refused("API key of a deleted account"));
        }
        if key.last_used_at.is_none_or(|t| now >= t + LAST_USED_EVERY) {
            self.key_uses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(hash)
                .or_insert((key.id, now));
        }
        Ok(Identity {
            user_id: key.user_id,
            username: key.username,
            via: Via::ApiKey(key.id),
            auth_time: None,
            epoch: None,
        })
    }

    /// Accepts a credential by where it was presented, the one rule for
    /// audiences: the session cookie holds only a session token; headers
    /// and the query hold API tokens, API keys and (Basic) passwords.
    pub async fn authenticate(&self, presented: &Presented<'_>) -> Result<Identity> {
        let (kind, outcome) = match (&presented.credential, presented.place) {
            (Credential::Token(t), Place::Cookie) => (
                CredentialKind::Token,
                self.verify_token(t, Audience::Session),
            ),
            (Credential::Token(t), _) if t.starts_with(API_KEY_PREFIX) => {
                (CredentialKind::ApiKey, self.verify_key(t))
            }
            (Credential::Token(t), _) => {
                (CredentialKind::Token, self.verify_token(t, Audience::Api))
            }
            (Credential::Password { username, password }, _) => (
                CredentialKind::Password,
                self.accounts
                    .login(username, password)
                    .await
                    .map(|proven| self.password_identity(proven)),
            ),
        };
        self.metrics().verification(kind, outcome.is_ok());
        outcome
    }

    /// The identity of a user whose password was just checked.
    pub fn password_identity(&self, proven: Proven) -> Identity {
        Identity {
            user_id: proven.user.id,
            username: proven.user.username,
            via: Via::Password,
            auth_time: Some(self.now()),
            epoch: Some(proven.epoch),
        }
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        self.accounts.metrics()
    }

    /// Whether the store reads and flushes (the health check).
    pub async fn check_store(&self) -> Result<()> {
        self.store().user(0)?;
        self.store().flush().await
    }

    /// Revokes one token of `user_id`, durably.
    pub async fn revoke(&self, user_id: u64, token: TokenRef) -> Result<()> {
        self.store().revoke(&token.jti, token.exp).await?;
        self.revoked.insert(token.jti, token.exp);
        self.metrics().revocation();
        audit::user_event("revoke", user_id, "revoked a token at logout");
        Ok(())
    }

    /// Loads the stored revocations into memory (start-up, in the
    /// background; lookups use the store until it is done).
    pub fn load_revocations(&self) -> Result<usize> {
        self.revoked.load(self.store())
    }

    /// Creates an API key for `user_id`.
    pub async fn create_key(
        &self,
        who: &Identity,
        name: &str,
        expires_in: Option<u64>,
    ) -> Result<NewKey> {
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::bad_request(
                "name must be 1 to 64 characters without control characters",
            ));
        }
        if expires_in.is_some_and(|s| s == 0 || s > MAX_KEY_LIFETIME) {
            return Err(Error::bad_request(
                "expires_in must be a number of seconds between 1 and ten years",
            ));
        }
        let now = self.now();
        let secret = format!(
            "{API_KEY_PREFIX}{}",
            crypto::b64url_encode(&crypto::random_bytes::<32>()?)
        );
        let key = ApiKey {
            id: self.store().new_id()?,
            user_id: who.user_id,
            username: who.username.clone(),
            name: name.to_owned(),
            created_at: now,
            expires_at: expires_in.map(|s| now + s),
            last_used_at: None,
        };
        // A key outlives password changes by design, so it may only be made
        // from a proof of the current epoch, checked where it is stored.
        let epoch = who
            .epoch
            .ok_or_else(|| Error::new(Kind::Forbidden("API keys cannot create API keys")))?;
        self.store()
            .create_key(&key, &crypto::sha256(secret.as_bytes()), epoch)
            .await
            .map_err(|e| match e.kind() {
                Kind::NotFound => Error::unauthorized(Refusal::BadToken),
                _ => e,
            })?;
        audit::user_event("key_created", who.user_id, "created an API key");
        Ok(NewKey { key, secret })
    }

    /// A user's keys, with uses not yet written folded in.
    pub fn list_keys(&self, user_id: u64) -> Result<Vec<ApiKey>> {
        let mut keys = self.store().user_keys(user_id)?;
        let pending = self.key_uses.lock().unwrap_or_else(|e| e.into_inner());
        for key in &mut keys {
            if let Some((_, at)) = pending.values().find(|(id, _)| *id == key.id) {
                key.last_used_at = Some(key.last_used_at.map_or(*at, |t| t.max(*at)));
            }
        }
        Ok(keys)
    }

    /// Deletes one of the user's keys; false when they have no such key.
    pub async fn delete_key(&self, user_id: u64, key_id: u64) -> Result<bool> {
        let deleted = self.store().delete_key(user_id, key_id).await?;
        if deleted {
            audit::user_event("key_deleted", user_id, "deleted an API key");
        }
        Ok(deleted)
    }

    /// Deletes every API key of the user; returns how many.
    pub async fn delete_all_keys(&self, user_id: u64) -> Result<usize> {
        let deleted = self.store().delete_user_keys(user_id).await?;
        if deleted > 0 {
            audit::user_event("keys_revoked", user_id, "deleted every API key");
        }
        Ok(deleted)
    }

    /// Writes pending key uses to the store.
    pub fn flush_key_uses(&self) -> Result<()> {
        let pending: Vec<([u8; 32], u64)> = self
            .key_uses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(hash, (_, at))| (hash, at))
            .collect();
        self.store().touch_keys(&pending)
    }

    /// Prunes expired revocations, cutoffs and keys; returns entries removed.
    pub async fn prune(&self) -> Result<usize> {
        self.revoked.prune(self.now());
        self.accounts.prune().await
    }

    /// Runs forever: writes key uses every 30 s, prunes every 10 min.
    pub async fn housekeeping(&self) {
        let mut flush = tokio::time::interval(KEY_USE_FLUSH);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(e) = self.flush_key_uses() {
                        tracing::warn!("recording API key use failed: {e}");
                    }
                }
                _ = prune.tick() => match self.prune().await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "pruned expired entries"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning failed: {e}"),
                },
            }
        }
    }
}
