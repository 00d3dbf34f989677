//! The password check: every path that takes a password (Basic, the JSON
//! and form logins, `/api/token`, the old password of a change, account
//! deletion) comes through [`Service::check_password`], which only the
//! service may call. Outside it, a password signs in through
//! [`Service::sign_in`] or [`Service::password_step`] (which ask a user
//! with a second factor for a code too) or is re-entered by someone
//! already signed in ([`Service::reconfirm`]).
//!
//! Unknown users, wrong passwords and banned accounts cost the same scrypt
//! work and get the same refusal; a banned address is refused at once.
//! Every guess counts towards a ban when it is queued (see
//! `regulation.rs`); identical checks in flight together are made once
//! (`flights.rs`); a success from the same address within `cache_ttl` is
//! answered from memory (`password_cache.rs`). The client address comes
//! from the request's audit context, set by the router for every request.
//!
//! It never answers a client: a refusal is the same error whatever the reason.

use std::borrow::Cow;
use std::net::IpAddr;

use super::flights::{Flights, Joined, Landed};
use super::Service;
use crate::audit::{self, Outcome};
use crate::crypto;
use crate::error::{Error, Kind, Refusal, Result};
use crate::metrics::LoginResult;
use crate::model::{Ban, Identity, Proven, User};

/// A password that checked out, and what must follow.
pub enum FirstStep {
    /// Signed in: the user has no second factor.
    Done(Proven),
    /// The user has a second factor: a code must follow.
    CodeNeeded(Proven),
}

impl Service {
    /// Checks a username (or email: anything with an `@`) and password.
    /// The proof carries the user's credential epoch read before the check
    /// began, so what it yields is refused if the password changes
    /// meanwhile.
    pub(super) async fn check_password(&self, login: &str, password: &str) -> Result<Proven> {
        let user = if login.contains('@') {
            self.store.user_by_email(login)?
        } else {
            self.store.user_by_name(login)?
        };
        let epoch = user.as_ref().map_or(0, |u| self.epoch(u.id));
        let source = audit::current_source();
        if let Some(user) = self.remembered(login, password, user.as_ref(), source) {
            return Ok(Proven::password(user, epoch));
        }
        let user = self.shared_check(login, password, user, source).await?;
        Ok(Proven::password(user, epoch))
    }

    /// The one password sign-in (Basic, the JSON login, `/api/token`):
    /// the password, then, for a user with a second factor, the code. A
    /// missing code is 401 `otp_required`; a password alone never signs in
    /// such a user.
    pub async fn sign_in(&self, login: &str, password: &str, otp: Option<&str>) -> Result<Proven> {
        match (self.password_step(login, password).await?, otp) {
            (FirstStep::Done(proven), _) => Ok(proven),
            (FirstStep::CodeNeeded(_), None) => Err(Error::unauthorized(Refusal::OtpRequired)),
            (FirstStep::CodeNeeded(proven), Some(code)) => self.second_factor(proven, code).await,
        }
    }

    /// The first step of a sign-in in two (the login page): the password,
    /// and whether a code must follow.
    pub async fn password_step(&self, login: &str, password: &str) -> Result<FirstStep> {
        let proven = self.check_password(login, password).await?;
        Ok(if self.has_totp(proven.user.id)? {
            FirstStep::CodeNeeded(proven)
        } else {
            FirstStep::Done(proven)
        })
    }

    /// `who`, signed in, types their password again (to make an API key
    /// on the account page): the identity it proves now, with the factors
    /// of the sign-in it came from. A wrong password counts as a failed
    /// login.
    pub async fn reconfirm(&self, who: &Identity, password: &str) -> Result<Identity> {
        let proven = self.check_password(&who.username, password).await?;
        if proven.user.id != who.user_id {
            return Err(Error::unauthorized(Refusal::BadPassword));
        }
        Ok(Identity {
            factors: who.factors,
            ..self.password_identity(proven)
        })
    }

    /// A success from this address within `cache_ttl`: no hash, audited at
    /// debug level only (counted in `/metrics`).
    fn remembered(
        &self,
        login: &str,
        password: &str,
        user: Option<&User>,
        source: Option<IpAddr>,
    ) -> Option<User> {
        let user = user?;
        let now = self.clock.now();
        let hit = !self.regulator.is_banned(Some(user.id), source, now)
            && self
                .password_cache
                .hit(user.id, password, &user.password_hash, source, now);
        if !hit {
            return None;
        }
        self.regulator.cleared(user.id, source);
        self.metrics.login(LoginResult::Success);
        audit::password(login, Outcome::Repeated);
        Some(user.clone())
    }

    /// The check, shared with identical ones in flight: the first leads,
    /// the others take its answer (one guess, one hash).
    async fn shared_check(
        &self,
        login: &str,
        password: &str,
        user: Option<User>,
        source: Option<IpAddr>,
    ) -> Result<User> {
        let key = self.password_cache.flight_key(login, password, source);
        loop {
            let slot = match self.flights.join(key) {
                Joined::Leader(flight) => {
                    let result = self.check(login, password, user.clone(), source).await;
                    flight.land(match &result {
                        Ok(_) => Landed::Right,
                        Err(e) if matches!(e.kind(), Kind::Unauthorized(_)) => Landed::Refused,
                        Err(e) if e.kind() == Kind::Busy => Landed::Busy,
                        Err(_) => Landed::Failed,
                    });
                    return result;
                }
                Joined::Follower(slot) => slot,
            };
            match (Flights::wait(slot).await, &user) {
                (Some(Landed::Right), Some(user)) => {
                    self.metrics.login(LoginResult::Success);
                    audit::password(login, Outcome::Repeated);
                    return Ok(user.clone());
                }
                (Some(Landed::Refused), _) => {
                    self.metrics.login(LoginResult::Failure);
                    audit::password(&self.logged(login, user.is_some()), Outcome::Failure);
                    return Err(Error::unauthorized(Refusal::BadPassword));
                }
                (Some(Landed::Busy), _) => return Err(Error::new(Kind::Busy)),
                // The leader vanished or failed: check again.
                _ => continue,
            }
        }
    }

    /// One password check: counted as a guess when queued, hashed, then
    /// settled.
    async fn check(
        &self,
        login: &str,
        password: &str,
        user: Option<User>,
        source: Option<IpAddr>,
    ) -> Result<User> {
        let refused = || Error::unauthorized(Refusal::BadPassword);
        let logged = self.logged(login, user.is_some());
        let mut guess = self
            .regulator
            .begin(user.as_ref().map(|u| u.id), source, self.clock.now());
        self.store_bans(&std::mem::take(&mut guess.new_bans))
            .await?;
        if guess.refused_at_once {
            // A banned address: told at once, at no hashing cost (it learns
            // only that it is banned, whatever the account).
            self.metrics.login(LoginResult::Banned);
            audit::password(&logged, Outcome::Banned);
            return Err(refused());
        }
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = match self.hasher.verify(password.to_owned(), phc).await {
            Ok(ok) => ok,
            Err(e) => {
                self.regulator.abandoned(guess);
                return Err(e);
            }
        };
        let now = self.clock.now();
        if self.regulator.banned_now(&guess, now) {
            self.metrics.login(LoginResult::Banned);
            audit::password(&logged, Outcome::Banned);
            return Err(refused());
        }
        let Some(user) = user.filter(|_| ok) else {
            self.metrics.login(LoginResult::Failure);
            audit::password(&logged, Outcome::Failure);
            let bans = self.regulator.failed(guess, now);
            self.store_bans(&bans).await?;
            return Err(refused());
        };
        self.regulator.succeeded(guess);
        self.metrics.login(LoginResult::Success);
        audit::password(login, Outcome::Success);
        self.password_cache
            .remember(user.id, password, &user.password_hash, source, now);
        self.rehash_if_needed(&user, password).await?;
        Ok(user)
    }

    /// A login as the audit log shows it: as given when an account has it;
    /// else `unknown:` and a fingerprint (8 hex digits of an HMAC under a
    /// key derived from the signing key), since the text may be a password
    /// typed into the wrong field (found by a review). One name always
    /// gets the same fingerprint, so repeated guesses still line up.
    fn logged<'a>(&self, login: &'a str, known: bool) -> Cow<'a, str> {
        if known {
            return Cow::Borrowed(login);
        }
        let tag = self.login_names.sign(login.as_bytes());
        let hex: String = tag.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Cow::Owned(format!("unknown:{hex}"))
    }

    /// Lifts a ban of an account or of a client address, in memory and in
    /// the store. Returns whether one was stored.
    pub async fn unban(&self, ban: Ban) -> Result<bool> {
        let ban = match ban {
            Ban::Source(address, until) => {
                Ban::Source(super::regulation::source_key(address), until)
            }
            user => user,
        };
        self.regulator.lift(ban);
        self.code_regulator.lift(ban);
        let stored = self.store.delete_ban(ban).await?;
        match (ban, stored) {
            (Ban::User(id, _), true) => audit::user_event("unban", id, "lifted a ban"),
            (Ban::User(id, _), false) => audit::user_event(
                "unban",
                id,
                "reset an account's failure count (it was not banned)",
            ),
            (Ban::Source(address, _), banned) => audit::source_unbanned(address, banned),
        }
        Ok(stored)
    }

    /// Keeps new bans in the store (a restart does not lift them) and
    /// audits them.
    pub(super) async fn store_bans(&self, bans: &[Ban]) -> Result<()> {
        for &ban in bans {
            self.metrics.ban();
            match ban {
                Ban::User(id, _) => {
                    audit::user_event("ban", id, "banned an account after repeated failed logins")
                }
                Ban::Source(address, until) => audit::source_banned(address, until),
            }
            self.store.put_ban(ban).await?;
        }
        Ok(())
    }

    /// Rehashes at the configured cost when the stored one differs (in
    /// either direction: the configured cost is the cost, and a login then
    /// takes the same time for everyone). Skipped (and retried at the next
    /// login) when the hashing queue is full.
    async fn rehash_if_needed(&self, user: &User, password: &str) -> Result<()> {
        let stored = crypto::stored_cost(&user.password_hash)?;
        if stored == self.hasher.cost() {
            return Ok(());
        }
        match self.hasher.hash(password.to_owned()).await {
            Ok(phc) => self.store.rehash_password(user, phc),
            Err(e) if e.kind() == Kind::Busy => Ok(()),
            Err(e) => Err(e),
        }
    }
}
