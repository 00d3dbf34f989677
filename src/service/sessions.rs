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
use crate::error::Result;
use crate::model::{Issued, Proven, Session, SessionId, SessionMeta, TokenRef, UserId};
use crate::recent::Recent;
use crate::token::Audience;

/// A session's last use is written at most this often (seconds).
pub const LAST_SEEN_EVERY: u64 = 60;

/// Longest `User-Agent` kept, in characters.
pub const MAX_USER_AGENT: usize = 200;

pub use super::store::MAX_SESSIONS_PER_USER;
// The audit line names the figure in a static message: they change together.
const _: () = assert!(
    MAX_SESSIONS_PER_USER == 100,
    "update \"at most 100\" in make_room_for_a_session"
);

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
    /// Whose (its record is stored with its user's).
    user: UserId,
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
        self.make_room_for_a_session(proven.user.id).await?;
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
                user: session.user_id,
                at: now,
                written: now,
                exp: session.expires_at,
                domain: session.domain.as_deref().map(Into::into),
            },
        );
        Ok(issued)
    }

    /// Ends the user's expired, then oldest, stored sessions, so that a
    /// new one keeps them at [`MAX_SESSIONS_PER_USER`]. (Sign-ins at the
    /// same moment may each add one past it; the next trims them.)
    async fn make_room_for_a_session(&self, user: UserId) -> Result<()> {
        let mut stored = self.store.user_sessions(user)?;
        let over = (stored.len() + 1).saturating_sub(MAX_SESSIONS_PER_USER);
        if over == 0 {
            return Ok(());
        }
        let now = self.now();
        stored.sort_by_key(|s| (s.expires_at > now, s.created_at));
        self.end_sessions(user, &stored[..over]).await?;
        audit::user_event(
            "session_ended",
            user,
            "ended the oldest sessions: at most 100 are kept",
        );
        Ok(())
    }

    /// Notes a use of the session behind a verified session token, and
    /// refuses it when it has been unused longer than `session_inactivity`.
    /// A token without a record (issued before sessions had records) is
    /// taken at its word. Returns why it is refused, if it is. `now` is
    /// the time the token was checked at (one read of the clock a request).
    pub(super) fn use_session(
        &self,
        user: UserId,
        token: &TokenRef,
        now: u64,
    ) -> Result<Option<&'static str>> {
        let id = SessionId(token.jti);
        // This thread noted a use of it moments ago: it is not idle, and
        // its last use is known well enough. No lock, no shared write.
        let fresh = self.sessions.fresh_for();
        if noted_here(self.sessions.owner, id).is_some_and(|at| now.saturating_sub(at) < fresh) {
            return Ok(None);
        }
        let known = self.sessions.seen().get(&id).cloned();
        let seen = match known.clone() {
            Some(seen) => seen,
            None => match self.store.session(user, id)? {
                Some(record) => Seen {
                    user,
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
    pub fn session_domain(&self, user: UserId, token: &TokenRef) -> Result<Option<Option<String>>> {
        let id = SessionId(token.jti);
        if let Some(seen) = self.sessions.seen().get(&id) {
            return Ok(Some(seen.domain.as_deref().map(str::to_owned)));
        }
        Ok(self.store.session(user, id)?.map(|s| s.domain))
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
        let Some(session) = self.store.session(user, id)? else {
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

    /// Ends every session of the user; returns how many were live. Idle
    /// ones are revoked too: refused now, their cookie would be taken at
    /// its word once its record was gone (found by review).
    pub async fn end_all_sessions(&self, user: UserId) -> Result<usize> {
        let live = self.list_sessions(user)?.len();
        let now = self.now();
        let (unexpired, expired): (Vec<Session>, Vec<Session>) = self
            .store
            .user_sessions(user)?
            .into_iter()
            .partition(|s| s.expires_at > now);
        self.end_sessions(user, &unexpired).await?;
        let expired: Vec<SessionId> = expired.iter().map(|s| s.id).collect();
        self.store.delete_sessions(user, &expired).await?;
        if live > 0 {
            audit::user_event("sessions_ended", user, "ended every session");
        }
        Ok(live)
    }

    async fn end(&self, session: &Session) -> Result<()> {
        self.end_sessions(session.user_id, std::slice::from_ref(session))
            .await
    }

    /// Ends these sessions of `user`: every token revoked, durably and at
    /// once, then the records go. The one way the record of a session that
    /// has not expired is dropped without a new credential epoch (see
    /// [`Service::forget_sessions`]): a cookie without a record is taken at
    /// its word.
    async fn end_sessions(&self, user: UserId, sessions: &[Session]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let revoked: Vec<([u8; crate::token::JTI_LEN], u64)> =
            sessions.iter().map(|s| (s.id.0, s.expires_at)).collect();
        self.store.revoke_many(&revoked).await?;
        for (jti, exp) in revoked {
            self.tokens.revoked.insert(jti, exp);
            self.metrics.revocation();
        }
        let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
        self.store.delete_sessions(user, &ids).await?;
        let mut seen = self.sessions.seen();
        for id in &ids {
            seen.remove(id);
        }
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
                    pending.push((s.user, *id, s.at));
                    s.written = s.at;
                }
            }
        }
        self.store.touch_sessions(&pending)
    }
}
