//! Login-page sessions: a record per session cookie (who, when, from
//! where, last seen), listed and ended by their owner, ended all at once by
//! logout everywhere, a password change or deletion.
//!
//! A session's token is revocable like any token; ending a session revokes
//! it (so its cookie is refused at once) and drops the record. Its last use
//! is noted in memory on every verification and written off the request
//! path by housekeeping, at most once a minute, as API keys' are. With
//! `session_inactivity`, a session unused that long is refused.
//!
//! It never reads a cookie or a header: the pages hand it what they know.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Service;
use crate::audit;
use crate::error::{Error, Result};
use crate::model::{
    Factors, Identity, Issued, Proven, Session, SessionId, SessionMeta, TokenRef, UserId, Via,
};
use crate::recent::Recent;
use crate::token::Audience;

/// How long the code form's pending token lasts (seconds).
pub const PENDING_TTL: u64 = 300;

/// A session's last use is written at most this often (seconds).
pub const LAST_SEEN_EVERY: u64 = 60;

/// Longest `User-Agent` kept, in characters.
pub const MAX_USER_AGENT: usize = 200;

/// Sessions whose use this thread noted last: (owner, session, when).
/// A handful per thread, replaced in turn: a client presenting the same
/// cookie request after request takes the shared map's lock once in a
/// while, not each time.
const NOTED_PER_THREAD: usize = 16;

thread_local! {
    static NOTED: std::cell::RefCell<Recent<(u64, SessionId, u64), NOTED_PER_THREAD>> =
        const { std::cell::RefCell::new(Recent::new()) };
}

static NEXT_OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// When this thread last noted a use of `id` (for the service `owner`).
fn noted_here(owner: u64, id: SessionId) -> Option<u64> {
    NOTED.with(|n| {
        n.borrow()
            .find(|(o, s, _)| *o == owner && *s == id)
            .map(|(_, _, at)| *at)
    })
}

/// Remembers that this thread noted a use of `id` at `at`.
fn note_here(owner: u64, id: SessionId, at: u64) {
    NOTED.with(|n| {
        let mut noted = n.borrow_mut();
        match noted.find_mut(|(o, s, _)| *o == owner && *s == id) {
            Some(entry) => entry.2 = at,
            None => noted.put((owner, id, at)),
        }
    });
}

/// Session lifetimes and what is noted of their use.
pub(super) struct Sessions {
    /// Which service's entries a thread's notes are (tests run several).
    owner: u64,
    /// A session unused this long is refused (0: never).
    inactivity: u64,
    /// Lifetime with "remember me" (0: not offered).
    remember_ttl: u64,
    /// Last uses, by session, not all written yet.
    seen: Mutex<HashMap<SessionId, Seen>>,
}

/// A session's use, in memory.
#[derive(Debug, Clone)]
struct Seen {
    /// Last use.
    at: u64,
    /// The last use written to the store.
    written: u64,
    /// Its token's expiry (then the entry goes).
    exp: u64,
    /// The cookie domain it was signed in for.
    domain: Option<std::sync::Arc<str>>,
}

impl Sessions {
    pub(super) fn new(inactivity: u64, remember_ttl: u64) -> Sessions {
        Sessions {
            owner: NEXT_OWNER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            inactivity,
            remember_ttl,
            seen: Mutex::default(),
        }
    }

    /// How recent a use this thread noted may be for the shared note to be
    /// skipped: a minute, or a tenth of `session_inactivity` (at least a
    /// second), so a session in use is never taken for idle.
    fn fresh_for(&self) -> u64 {
        match self.inactivity {
            0 => LAST_SEEN_EVERY,
            idle => (idle / 10).clamp(1, LAST_SEEN_EVERY),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Service {
    /// Signs a session token (the login page's cookie) for a user whose
    /// password was just checked, and stores its record durably. With
    /// "remember me" (when offered) it lasts `remember_me_ttl`.
    pub async fn issue_session(&self, proven: &Proven, meta: SessionMeta) -> Result<Issued> {
        let remember = meta.remember && self.sessions.remember_ttl > 0;
        let ttl = if remember {
            self.sessions.remember_ttl
        } else {
            self.tokens.session_ttl
        };
        let issued = self.issue_for(proven, Audience::Session, ttl)?;
        let now = self.now();
        let session = Session {
            id: SessionId(issued.jti),
            user_id: proven.user.id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + ttl,
            epoch: proven.epoch,
            address: meta.address,
            user_agent: meta.user_agent.chars().take(MAX_USER_AGENT).collect(),
            remember,
            domain: meta.domain,
            factors: proven.factors,
        };
        self.store.put_session(&session).await?;
        self.sessions.seen().insert(
            session.id,
            Seen {
                at: now,
                written: now,
                exp: session.expires_at,
                domain: session.domain.as_deref().map(Into::into),
            },
        );
        Ok(issued)
    }

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
        let old = self.store.session(SessionId(token.jti))?;
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

    /// Notes a use of the session behind a verified session token, and
    /// refuses it when it has been unused longer than `session_inactivity`.
    /// A token without a record (issued before sessions had records) is
    /// taken at its word. Returns why it is refused, if it is.
    pub(super) fn use_session(&self, token: &TokenRef) -> Result<Option<&'static str>> {
        let id = SessionId(token.jti);
        let now = self.now();
        // This thread noted a use of it moments ago: it is not idle, and
        // its last use is known well enough. No lock, no shared write.
        let fresh = self.sessions.fresh_for();
        if noted_here(self.sessions.owner, id).is_some_and(|at| now.saturating_sub(at) < fresh) {
            return Ok(None);
        }
        let known = self.sessions.seen().get(&id).cloned();
        let seen = match known.clone() {
            Some(seen) => seen,
            None => match self.store.session(id)? {
                Some(record) => Seen {
                    at: record.last_seen_at,
                    written: record.last_seen_at,
                    exp: record.expires_at,
                    domain: record.domain.as_deref().map(Into::into),
                },
                None => return Ok(None),
            },
        };
        let inactivity = self.sessions.inactivity;
        if inactivity > 0 && now.saturating_sub(seen.at) > inactivity {
            return Ok(Some("unused for longer than session_inactivity"));
        }
        if known.is_none() || now > seen.at {
            self.sessions.seen().insert(id, Seen { at: now, ..seen });
        }
        note_here(self.sessions.owner, id, now);
        Ok(None)
    }

    /// The cookie domain the session behind `token` was signed in for:
    /// `None` for a token that names no session (an API token, or a session
    /// from before sessions had records), `Some(None)` for a session of no
    /// particular domain.
    pub fn session_domain(&self, token: &TokenRef) -> Result<Option<Option<String>>> {
        let id = SessionId(token.jti);
        if let Some(seen) = self.sessions.seen().get(&id) {
            return Ok(Some(seen.domain.as_deref().map(str::to_owned)));
        }
        Ok(self.store.session(id)?.map(|s| s.domain))
    }

    /// The user's live sessions (not expired, ended, refused or idle too
    /// long), with uses not yet written folded in.
    pub fn list_sessions(&self, user: UserId) -> Result<Vec<Session>> {
        let now = self.now();
        let mut sessions = self.store.user_sessions(user)?;
        let seen = self.sessions.seen();
        for s in &mut sessions {
            if let Some(use_) = seen.get(&s.id) {
                s.last_seen_at = s.last_seen_at.max(use_.at);
            }
        }
        drop(seen);
        let inactivity = self.sessions.inactivity;
        let mut live = Vec::with_capacity(sessions.len());
        for s in sessions {
            let idle = inactivity > 0 && now.saturating_sub(s.last_seen_at) > inactivity;
            if s.expires_at > now
                && self.token_allowed(user, s.epoch)
                && !idle
                && !self.tokens.revoked.contains(&s.id.0, &self.store)?
            {
                live.push(s);
            }
        }
        Ok(live)
    }

    /// Ends one of the user's sessions: its cookie is refused from now on.
    /// False when the user has no such session.
    pub async fn end_session(&self, user: UserId, id: SessionId) -> Result<bool> {
        let Some(session) = self.store.session(id)?.filter(|s| s.user_id == user) else {
            return Ok(false);
        };
        self.end(&session).await?;
        audit::user_event("session_ended", user, "ended a session");
        Ok(true)
    }

    /// Signs out the session behind a session token: its record goes and
    /// its cookie is refused (a token without a record is revoked alone).
    pub async fn sign_out(&self, user: UserId, token: TokenRef) -> Result<()> {
        if !self.end_session(user, SessionId(token.jti)).await? {
            self.revoke(user, token).await?;
        }
        Ok(())
    }

    /// Ends every live session of the user; returns how many.
    pub async fn end_all_sessions(&self, user: UserId) -> Result<usize> {
        let sessions = self.list_sessions(user)?;
        for session in &sessions {
            self.end(session).await?;
        }
        // Records of sessions that were no longer live go too.
        self.forget_sessions(user).await?;
        if !sessions.is_empty() {
            audit::user_event("sessions_ended", user, "ended every session");
        }
        Ok(sessions.len())
    }

    async fn end(&self, session: &Session) -> Result<()> {
        self.store.revoke(&session.id.0, session.expires_at).await?;
        self.tokens.revoked.insert(session.id.0, session.expires_at);
        self.metrics.revocation();
        self.store
            .delete_sessions(session.user_id, &[session.id])
            .await?;
        self.sessions.seen().remove(&session.id);
        Ok(())
    }

    /// Drops the records of every session of the user, whose tokens a new
    /// credential epoch already refuses (logout everywhere, a password
    /// change, deletion).
    pub(super) async fn forget_sessions(&self, user: UserId) -> Result<()> {
        let ids: Vec<SessionId> = self
            .store
            .user_sessions(user)?
            .into_iter()
            .map(|s| s.id)
            .collect();
        self.store.delete_sessions(user, &ids).await?;
        let mut seen = self.sessions.seen();
        for id in &ids {
            seen.remove(id);
        }
        Ok(())
    }

    /// Writes last uses a minute or more newer than what is stored (every
    /// newer one when `all`: at shutdown), and forgets those of expired
    /// sessions.
    pub fn flush_session_uses(&self, all: bool) -> Result<()> {
        let now = self.now();
        let every = if all { 1 } else { LAST_SEEN_EVERY };
        let mut pending = Vec::new();
        {
            let mut seen = self.sessions.seen();
            seen.retain(|_, s| s.exp > now);
            for (id, s) in seen.iter_mut() {
                if s.at >= s.written + every {
                    pending.push((*id, s.at));
                    s.written = s.at;
                }
            }
        }
        self.store.touch_sessions(&pending)
    }
}
