//! The second step of a sign-in, where sessions and the second factor
//! meet: the code form's pending token (half a sign-in, for a few
//! minutes), the step-up of a one-factor session, and the enrolment page's
//! ticket and the session it upgrades. Each ends by issuing a session
//! ([`Service::issue_session`]); the codes themselves are `totp.rs`'s.
//!
//! It never reads a request; the HTTP layer hands it tokens and codes.

use super::Service;
use crate::audit;
use crate::error::{Error, Result};
use crate::model::{Factors, Identity, Issued, Proven, SessionId, SessionMeta, TokenRef, Via};
use crate::token::Audience;

/// How long the code form's pending token lasts (seconds).
pub const PENDING_TTL: u64 = 300;

impl Service {
    /// Step-up: `who`, signed in with a password alone on the login page,
    /// proves a second factor with `code`. The one-factor session ends and
    /// a two-factor one replaces it (a new id: what an attacker may have
    /// seen of the old cookie is worth nothing), keeping its "remember me"
    /// and domain.
    pub async fn step_up(&self, who: &Identity, code: &str, meta: SessionMeta) -> Result<Issued> {
        if !matches!(who.via, Via::Token(_)) {
            return Err(Error::invalid("a step-up needs a login-page session"));
        }
        self.check_code(who.user_id, code).await?;
        let issued = self.replace_session(who, meta).await?;
        audit::user_event(
            "step_up",
            who.user_id,
            "proved a second factor for a session",
        );
        Ok(issued)
    }

    /// A ticket for the enrolment page, given once `who` typed their
    /// password again ([`Service::reconfirm`]): a short-lived token of
    /// audience `otp_pending`, accepted as a credential nowhere. The page
    /// shown again after a wrong first code, and the confirmation, need
    /// it: a session cookie alone never shows a secret nor completes an
    /// enrolment.
    pub fn enrolment_ticket(&self, who: &Identity) -> Result<String> {
        let (Some(epoch), Some(user)) = (who.epoch, self.user(who.user_id)?) else {
            return Err(Error::unauthorized(crate::error::Refusal::BadToken));
        };
        let proven = Proven {
            user,
            epoch,
            factors: who.factors,
        };
        Ok(self
            .issue_for(&proven, Audience::Pending, super::totp::ENROL_TTL)?
            .token)
    }

    /// Checks an enrolment ticket of `who`.
    fn check_ticket(&self, who: &Identity, ticket: &str) -> Result<TokenRef> {
        let refused = || Error::unauthorized(crate::error::Refusal::BadToken);
        let t = self.verify_token(ticket, Audience::Pending)?;
        match t.via {
            Via::Token(token) if t.user_id == who.user_id => Ok(token),
            _ => Err(refused()),
        }
    }

    /// The enrolment under way, shown again to `who` with its ticket.
    pub fn totp_enrolment_for(
        &self,
        who: &Identity,
        ticket: &str,
        issuer: &str,
    ) -> Result<Option<super::Enrolment>> {
        self.check_ticket(who, ticket)?;
        self.totp_enrolment(who.user_id, &who.username, issuer)
    }

    /// Enrolment's last step on the login page: with the ticket, the first
    /// code turns the factor on (see [`Service::totp_confirm`]), the ticket
    /// is spent, and the session it was made in, which just proved the
    /// code, becomes a two-factor one.
    pub async fn totp_confirm_session(
        &self,
        who: &Identity,
        ticket: &str,
        code: &str,
        meta: SessionMeta,
    ) -> Result<(Vec<String>, Option<Issued>)> {
        let ticket = self.check_ticket(who, ticket)?;
        let codes = self.totp_confirm(who.user_id, code).await?;
        self.store.revoke(&ticket.jti, ticket.exp).await?;
        self.tokens.revoked.insert(ticket.jti, ticket.exp);
        let session = match who.via {
            Via::Token(_) => Some(self.replace_session(who, meta).await?),
            _ => None,
        };
        Ok((codes, session))
    }

    /// Ends `who`'s session and signs a two-factor one in its place (a new
    /// id), keeping its "remember me" and domain. Only after a code was
    /// proven.
    async fn replace_session(&self, who: &Identity, meta: SessionMeta) -> Result<Issued> {
        let (Via::Token(token), Some(epoch)) = (who.via, who.epoch) else {
            return Err(Error::invalid("a step-up needs a login-page session"));
        };
        let Some(user) = self.user(who.user_id)? else {
            return Err(Error::unauthorized(crate::error::Refusal::BadToken));
        };
        let old = self.store.session(who.user_id, SessionId(token.jti))?;
        let meta = SessionMeta {
            remember: old.as_ref().map_or(meta.remember, |s| s.remember),
            domain: old
                .as_ref()
                .map_or(meta.domain.clone(), |s| s.domain.clone()),
            ..meta
        };
        self.sign_out(who.user_id, token).await?;
        let proven = Proven {
            user,
            epoch,
            factors: Factors::PasswordAndOtp,
        };
        self.issue_session(&proven, meta).await
    }

    /// Half a sign-in, for the code form: a short-lived token (audience
    /// `otp_pending`, accepted as a credential nowhere) saying this user's
    /// password checked out.
    pub fn issue_pending(&self, proven: &Proven) -> Result<String> {
        Ok(self
            .issue_for(proven, Audience::Pending, PENDING_TTL)?
            .token)
    }

    /// The code form's second step: the pending token (from
    /// [`Service::issue_pending`]) and a code. A good code makes the proof
    /// two-factor and spends the pending token (revoked, so it cannot be
    /// replayed); a wrong one counts as a failed login and leaves it
    /// usable for another try until it expires.
    pub async fn finish_pending(&self, token: &str, code: &str) -> Result<Proven> {
        let who = self.verify_token(token, Audience::Pending)?;
        let (Via::Token(token_ref), Some(epoch)) = (who.via, who.epoch) else {
            return Err(Error::unauthorized(crate::error::Refusal::BadToken));
        };
        let Some(user) = self.user(who.user_id)? else {
            return Err(Error::unauthorized(crate::error::Refusal::BadToken));
        };
        let proven = self
            .second_factor(Proven::password(user, epoch), code)
            .await?;
        self.store.revoke(&token_ref.jti, token_ref.exp).await?;
        self.tokens.revoked.insert(token_ref.jti, token_ref.exp);
        Ok(proven)
    }
}
