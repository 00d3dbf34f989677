//! Tokens, and the one rule for what a credential may be by where it was
//! presented ([`Service::authenticate`]).
//!
//! Issuing signs a token of the audience asked for, of the epoch the
//! password was proven in. Verifying checks the MAC (or remembers this
//! thread already did), expiry, audience, revocation and epoch, all in
//! memory: it does no writes and, once revocations are loaded, no reads.
//!
//! It owns the token keys; nothing outside the service signs or verifies.

use super::revoked::Revoked;
use super::verified::VerifiedCache;
use super::Service;
use crate::audit;
use crate::credentials::{Credential, Place, Presented, API_KEY_PREFIX};
use crate::crypto::{self, SigningKey};
use crate::error::{Error, Kind, Refusal, Result};
use crate::metrics::CredentialKind;
use crate::model::{Identity, Issued, Proven, TokenRef, UserId, Via};
use crate::token::{self, Audience, Claims, Keys};

/// What signs, verifies and revokes tokens.
pub(super) struct Tokens {
    /// The signing key and the keys that still verify.
    keys: Keys,
    /// Lifetime of API tokens, in seconds.
    token_ttl: u64,
    /// Lifetime of login-page sessions, in seconds.
    pub(super) session_ttl: u64,
    /// Revoked token ids, in memory (the store is the truth).
    pub(super) revoked: Revoked,
    /// Tokens whose signature this thread already checked.
    verified: VerifiedCache,
}

impl Tokens {
    pub(super) fn new(
        signing: SigningKey,
        previous: Vec<SigningKey>,
        token_ttl: u64,
        session_ttl: u64,
    ) -> Tokens {
        Tokens {
            keys: Keys::new(signing, previous),
            token_ttl,
            session_ttl,
            revoked: Revoked::default(),
            verified: VerifiedCache::default(),
        }
    }
}

impl Service {
    /// Signs a new API token for a user whose password was just checked.
    pub async fn issue(&self, proven: &Proven) -> Result<Issued> {
        self.issue_for(proven, Audience::Api, self.tokens.token_ttl)
    }

    /// Signs a token of the epoch the password was proven in. Should a
    /// cutoff have come since, the token would be refused anyway: it is not
    /// even handed out.
    pub(super) fn issue_for(&self, proven: &Proven, aud: Audience, ttl: u64) -> Result<Issued> {
        let user = &proven.user;
        if !self.token_allowed(user.id, proven.epoch) {
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
            amr: proven
                .factors
                .amr()
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
            epoch: proven.epoch,
            jti: crypto::b64url_encode(&jti),
        };
        self.metrics.token_issued();
        Ok(Issued {
            token: self.tokens.keys.sign(&claims),
            duration: ttl,
            jti,
        })
    }

    /// Verifies a token for `audience`: MAC, expiry, audience, then
    /// revocation and the user's epoch, both in memory.
    pub(super) fn verify_token(&self, token: &str, audience: Audience) -> Result<Identity> {
        let refused = |reason: &str| {
            audit::refused("token", reason);
            Error::with_cause(Kind::Unauthorized(Refusal::BadToken), reason)
        };
        let tokens = &self.tokens;
        let now = self.now();
        // Read before the checks below: what they find holds while both
        // generations are unchanged (none while revocations still load).
        let stamp = tokens
            .revoked
            .generation()
            .map(|r| (r, self.cutoffs.generation()));
        let (v, checked) = match tokens.verified.get(token, now) {
            Some((v, good_at)) => (v, good_at.is_some() && good_at == stamp),
            None => {
                let v = tokens
                    .keys
                    .verify(token, now)
                    .map_err(|why| refused(&format!("{why:?}")))?;
                tokens.verified.put(token, &v);
                (v, false)
            }
        };
        if v.audience != audience {
            return Err(refused("presented where its audience does not allow"));
        }
        if !checked {
            if tokens.revoked.contains(&v.jti, &self.store)? {
                return Err(refused("revoked"));
            }
            if !self.token_allowed(v.user_id, v.epoch) {
                return Err(refused(
                    "of an earlier epoch (logged out everywhere, password changed, deleted)",
                ));
            }
            if let Some(stamp) = stamp {
                tokens.verified.mark(token, stamp);
            }
        }
        let token_ref = TokenRef {
            jti: v.jti,
            exp: v.exp,
        };
        if audience == Audience::Session {
            if let Some(why) = self.use_session(v.user_id, &token_ref, now)? {
                return Err(refused(why));
            }
        }
        Ok(Identity {
            user_id: v.user_id,
            username: v.name,
            via: Via::Token(token_ref),
            auth_time: Some(v.auth_time),
            epoch: Some(v.epoch),
            factors: v.factors,
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
            // Boxed: the password path's future is large, and every
            // caller's future (forward auth's, the resource's) would carry
            // it inline, and copy it, for tokens too.
            (Credential::Password { username, password }, _) => (
                CredentialKind::Password,
                Box::pin(self.sign_in(username, password, presented.otp))
                    .await
                    .map(|proven| self.password_identity(proven)),
            ),
        };
        self.metrics.verification(kind, outcome.is_ok());
        outcome
    }

    /// The identity of a user whose password was just checked.
    pub fn password_identity(&self, proven: Proven) -> Identity {
        Identity {
            user_id: proven.user.id,
            username: proven.user.username.into(),
            via: Via::Password,
            auth_time: Some(self.now()),
            epoch: Some(proven.epoch),
            factors: proven.factors,
        }
    }

    /// Revokes one token of `user`, durably.
    pub async fn revoke(&self, user: UserId, token: TokenRef) -> Result<()> {
        self.store.revoke(&token.jti, token.exp).await?;
        self.tokens.revoked.insert(token.jti, token.exp);
        self.metrics.revocation();
        audit::user_event("revoke", user, "revoked a token at logout");
        Ok(())
    }

    /// Loads the stored revocations into memory (start-up, in the
    /// background; lookups use the store until it is done).
    pub fn load_revocations(&self) -> Result<usize> {
        self.tokens.revoked.load(&self.store)
    }
}
