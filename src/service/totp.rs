//! The second factor: enrolment (a secret shown once, active only after a
//! good code), the code check at sign-in (regulated like a password, each
//! time step used once), recovery codes (each used once), removal.
//!
//! Secrets are sealed with the storage key (AES-256-GCM, bound to the user
//! id) before they reach the store, so a copied database without that key
//! gives up none. A used time step and a used recovery code are written
//! with a compare-and-swap, durably, before the answer: two requests
//! racing with one code get one success.
//!
//! It never reads a request; the HTTP layer hands it the code.

use std::net::IpAddr;

use super::Service;
use crate::audit;
use crate::crypto::SealingKey;
use crate::error::{Error, Kind, Refusal, Result};
use crate::metrics::CodeResult;
use crate::model::{Factors, Proven, Totp, UserId};
use crate::otp::{self, Checked, Secret};

/// What sealing a secret is bound to: the user it belongs to, so a record
/// copied onto another user does not open.
pub fn context(user: UserId) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..5].copy_from_slice(b"totp:");
    out[5..].copy_from_slice(&user.get().to_be_bytes());
    out
}

impl Service {
    /// Checks (the server, at start-up) that every stored secret opens
    /// with the storage key read from `path`: a replaced key would
    /// otherwise turn every sign-in of those users into an internal error.
    /// One line naming the file and how many do not open. (The CLI working
    /// offline does not check: `latch user totp NAME --reset` is the way
    /// out.)
    pub fn check_storage_key(&self, path: &std::path::Path) -> Result<()> {
        let key = self.sealing()?;
        check_storage_key(&self.store, key, path)
    }
}

fn check_storage_key(
    store: &super::store::Store,
    key: &SealingKey,
    path: &std::path::Path,
) -> Result<()> {
    let records = store.all_totp()?;
    let closed = records
        .iter()
        .filter(|t| key.open(&context(t.user_id), &t.sealed_secret).is_none())
        .count();
    if closed == 0 {
        return Ok(());
    }
    Err(Error::config(format_args!(
        "{closed} of {} second factors in the database do not open with the storage key {} \
         ([storage] encryption_key_file): put back the key they were sealed with, or remove \
         those users' second factors with `latch user totp NAME --reset`",
        records.len(),
        path.display()
    )))
}

/// An enrolment under way, as the user sees it.
pub struct Enrolment {
    /// The secret as base32.
    pub secret: String,
    /// The `otpauth://` URI.
    pub uri: String,
}

/// How long an enrolment may wait for its first code (seconds); after
/// that it is started again, with a new secret.
pub const ENROL_TTL: u64 = 600;

/// The outcome of one guess.
enum Attempt<T> {
    /// Right: what it matched.
    Good(T),
    /// A right code of a step already used: refused, but no guess (a
    /// double submit must not ban the account).
    Replayed,
    /// Wrong: counted towards a ban.
    Wrong,
}

impl<T> From<Option<T>> for Attempt<T> {
    fn from(found: Option<T>) -> Attempt<T> {
        found.map_or(Attempt::Wrong, Attempt::Good)
    }
}

/// What a code was checked against.
enum Used {
    /// A TOTP code of this step.
    Step(u64),
    /// The recovery code at this index.
    Recovery(usize),
}

impl Service {
    fn sealing(&self) -> Result<&SealingKey> {
        self.sealing
            .as_ref()
            .ok_or_else(|| Error::internal("no storage key: the second factor is unavailable"))
    }

    fn open_secret(&self, totp: &Totp) -> Result<Secret> {
        let plain = self
            .sealing()?
            .open(&context(totp.user_id), &totp.sealed_secret)
            .ok_or_else(|| {
                Error::internal(format_args!(
                    "the second factor of user {} does not open with the storage key \
                     (was [storage] encryption_key_file replaced?)",
                    totp.user_id
                ))
            })?;
        plain
            .try_into()
            .map(Secret)
            .map_err(|_| Error::internal("a sealed second-factor secret has the wrong size"))
    }

    /// `user`'s enrolment under way, unless it waited longer than
    /// [`ENROL_TTL`] for its first code.
    fn pending_enrolment(&self, user: UserId) -> Result<Option<Totp>> {
        let now = self.now();
        Ok(self
            .store
            .totp(user)?
            .filter(|t| !t.active && now < t.created_at.saturating_add(ENROL_TTL)))
    }

    /// Whether `user` has an active second factor.
    pub fn has_totp(&self, user: UserId) -> Result<bool> {
        Ok(self.store.totp(user)?.is_some_and(|t| t.active))
    }

    /// Starts (or restarts) enrolment: a fresh secret, stored sealed and
    /// inactive until [`Service::totp_confirm`]. An active factor is a
    /// conflict: it is removed first, with the password and a code.
    pub async fn totp_begin(
        &self,
        user: UserId,
        username: &str,
        issuer: &str,
    ) -> Result<Enrolment> {
        if self.has_totp(user)? {
            return Err(Error::new(Kind::Conflict(
                "a second factor is already set up; remove it first",
            )));
        }
        let secret = Secret::generate()?;
        let record = Totp {
            user_id: user,
            sealed_secret: self.sealing()?.seal(&context(user), &secret.0)?,
            active: false,
            created_at: self.now(),
            last_step: None,
            recovery: Vec::new(),
        };
        self.store.put_totp(&record).await?;
        audit::user_event("totp", user, "began setting up a second factor");
        Ok(Enrolment {
            secret: secret.base32(),
            uri: otp::uri(issuer, username, &secret),
        })
    }

    /// The enrolment under way, shown again (a wrong first code); `None`
    /// when there is none.
    pub fn totp_enrolment(
        &self,
        user: UserId,
        username: &str,
        issuer: &str,
    ) -> Result<Option<Enrolment>> {
        let Some(record) = self.pending_enrolment(user)? else {
            return Ok(None);
        };
        let secret = self.open_secret(&record)?;
        Ok(Some(Enrolment {
            secret: secret.base32(),
            uri: otp::uri(issuer, username, &secret),
        }))
    }

    /// Confirms enrolment with a good code: the factor becomes active and
    /// the user gets recovery codes (shown once; only hashes are kept). A
    /// wrong code counts as a failed login.
    pub async fn totp_confirm(&self, user: UserId, code: &str) -> Result<Vec<String>> {
        let Some(record) = self.pending_enrolment(user)? else {
            return Err(Error::invalid(
                "no second factor is being set up (or it waited over ten minutes): start with \
                 POST /api/totp",
            ));
        };
        let secret = self.open_secret(&record)?;
        let step = self
            .regulated(user, |now| {
                match otp::check(&secret, code, now, record.last_step) {
                    Checked::Good(step) => Attempt::Good(step),
                    Checked::Replayed => Attempt::Replayed,
                    Checked::Wrong => Attempt::Wrong,
                }
            })
            .await?;
        let codes = otp::recovery_codes()?;
        let active = Totp {
            active: true,
            last_step: Some(step),
            recovery: hashes(&codes),
            ..record.clone()
        };
        if !self.store.swap_totp(&record, &active).await? {
            return Err(Error::unauthorized(Refusal::BadCode));
        }
        audit::user_event("totp", user, "set up a second factor");
        Ok(codes)
    }

    /// The second step of a sign-in: `code` (a TOTP code or a recovery
    /// code) for a user whose password checked out. A good one makes the
    /// proof two-factor; a wrong one counts as a failed login.
    pub async fn second_factor(&self, proven: Proven, code: &str) -> Result<Proven> {
        self.check_code(proven.user.id, code).await?;
        Ok(Proven {
            factors: Factors::PasswordAndOtp,
            ..proven
        })
    }

    /// Checks a code of `user`'s active factor and marks it used, durably.
    pub async fn check_code(&self, user: UserId, code: &str) -> Result<()> {
        let Some(record) = self.store.totp(user)?.filter(|t| t.active) else {
            return Err(Error::invalid("this account has no second factor"));
        };
        let secret = self.open_secret(&record)?;
        let recovery = otp::recovery_hash(code);
        let used = self
            .regulated(user, |now| {
                if otp::looks_like_code(code) {
                    match otp::check(&secret, code, now, record.last_step) {
                        Checked::Good(step) => Attempt::Good(Used::Step(step)),
                        Checked::Replayed => Attempt::Replayed,
                        Checked::Wrong => Attempt::Wrong,
                    }
                } else {
                    let Some(hash) = recovery else {
                        return Attempt::Wrong;
                    };
                    record
                        .recovery
                        .iter()
                        .position(|h| crate::crypto::same_bytes(h, &hash))
                        .map(Used::Recovery)
                        .into()
                }
            })
            .await?;
        let mut after = record.clone();
        match used {
            Used::Step(step) => after.last_step = Some(step),
            Used::Recovery(i) => {
                after.recovery.remove(i);
            }
        }
        // Another request used it first (the same code twice at once).
        if !self.store.swap_totp(&record, &after).await? {
            audit::user_event(
                "totp",
                user,
                "refused a one-time code used at the same moment",
            );
            return Err(Error::unauthorized(Refusal::BadCode));
        }
        match used {
            Used::Step(_) => audit::user_event("totp", user, "accepted a one-time code"),
            Used::Recovery(_) => audit::user_event("totp", user, "accepted a recovery code"),
        }
        Ok(())
    }

    /// Runs `check` (given the time) as one guess of the brute-force
    /// regulation of codes: a banned account or address is refused, a
    /// `None` is a failure counted and audited. Codes are counted apart
    /// from passwords (a right password clears only the password counts),
    /// and a ban they earn bans the account's passwords too.
    async fn regulated<T>(&self, user: UserId, check: impl FnOnce(u64) -> Attempt<T>) -> Result<T> {
        let source: Option<IpAddr> = audit::current_source();
        let now = self.clock.now();
        let mut guess = self.code_regulator.begin(Some(user), source, now);
        self.code_bans(std::mem::take(&mut guess.new_bans)).await?;
        if self.code_regulator.banned_now(&guess, now)
            || self.regulator.is_banned(Some(user), source, now)
        {
            self.code_regulator.abandoned(guess);
            audit::user_event("totp", user, "refused a one-time code: banned");
            return Err(Error::unauthorized(Refusal::BadCode));
        }
        match check(now) {
            Attempt::Good(found) => {
                self.code_regulator.succeeded(guess);
                self.metrics.code(CodeResult::Ok);
                Ok(found)
            }
            Attempt::Replayed => {
                self.code_regulator.abandoned(guess);
                self.metrics.code(CodeResult::Replayed);
                audit::user_event("totp", user, "refused a one-time code used before");
                Err(Error::unauthorized(Refusal::BadCode))
            }
            Attempt::Wrong => {
                self.metrics.code(CodeResult::Wrong);
                audit::user_event("totp", user, "refused a wrong one-time code");
                let bans = self.code_regulator.failed(guess, now);
                self.code_bans(bans).await?;
                Err(Error::unauthorized(Refusal::BadCode))
            }
        }
    }

    /// Bans earned by wrong codes: stored and audited as any ban, and
    /// applied to passwords as well.
    async fn code_bans(&self, bans: Vec<crate::model::Ban>) -> Result<()> {
        for &ban in &bans {
            self.regulator.restore(ban);
        }
        self.store_bans(&bans).await
    }

    /// Removes `user`'s second factor after a good code (the caller checked
    /// the password); whether there was one.
    pub async fn totp_remove(&self, user: UserId, code: &str) -> Result<()> {
        self.check_code(user, code).await?;
        self.store.delete_totp(user).await?;
        audit::user_event("totp", user, "removed the second factor");
        Ok(())
    }

    /// New recovery codes (the old ones stop working) after a good code
    /// (the caller checked the password).
    pub async fn recovery_regenerate(&self, user: UserId, code: &str) -> Result<Vec<String>> {
        self.check_code(user, code).await?;
        let Some(record) = self.store.totp(user)?.filter(|t| t.active) else {
            return Err(Error::invalid("this account has no second factor"));
        };
        let codes = otp::recovery_codes()?;
        let after = Totp {
            recovery: hashes(&codes),
            ..record.clone()
        };
        if !self.store.swap_totp(&record, &after).await? {
            return Err(Error::new(Kind::Conflict(
                "the second factor changed meanwhile; try again",
            )));
        }
        audit::user_event("totp", user, "made new recovery codes");
        Ok(codes)
    }

    /// Whether `user` is setting up a second factor (not confirmed yet).
    pub fn totp_setting_up(&self, user: UserId) -> Result<bool> {
        Ok(self.store.totp(user)?.is_some_and(|t| !t.active))
    }

    /// How many unused recovery codes `user` has; `None` without an active
    /// second factor.
    pub fn recovery_left(&self, user: UserId) -> Result<Option<usize>> {
        Ok(self
            .store
            .totp(user)?
            .filter(|t| t.active)
            .map(|t| t.recovery.len()))
    }

    /// Removes `user`'s second factor without a code (the admin's
    /// `latch user totp NAME --reset`); whether there was one. Audited as
    /// a warning.
    pub async fn totp_reset(&self, user: UserId) -> Result<bool> {
        let removed = self.store.delete_totp(user).await?;
        if removed {
            tracing::warn!(
                target: "audit",
                event = "totp",
                user_id = user.get(),
                "an administrator removed a user's second factor"
            );
        }
        Ok(removed)
    }
}

fn hashes(codes: &[String]) -> Vec<[u8; 32]> {
    codes.iter().filter_map(|c| otp::recovery_hash(c)).collect()
}
