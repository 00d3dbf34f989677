//! Accounts: creating, finding, changing and deleting users, and the rules
//! for names, passwords, emails and groups. The password check itself
//! (regulated, shared, rehashing) is in `login.rs`.
//!
//! Every change to a user goes through here: each drops the cached
//! forward-auth profile, and each that must end earlier credentials sets a
//! cutoff in the same transaction as the change.
//!
//! It never talks HTTP: a refusal is an error [`Kind`](crate::error::Kind).

use super::store::NewUser;
use super::Service;
use crate::audit;
use crate::config::Registration;
use crate::credentials::API_KEY_PREFIX;
use crate::error::{Error, Kind, Refusal, Result};
use crate::model::{User, UserId};
use crate::token;

/// Shortest and longest accepted passwords, in characters. No composition
/// rules (NIST SP 800-63B).
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// Longest username or group name, in bytes (ASCII only).
pub const MAX_NAME: usize = 64;

impl Service {
    /// Forbidden unless `registration = "open"`.
    pub fn check_registration_open(&self) -> Result<()> {
        match self.registration {
            Registration::Open => Ok(()),
            Registration::Closed => Err(Error::new(Kind::Forbidden("registration is closed"))),
        }
    }

    /// Creates an account over HTTP (registration must be open).
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
    ) -> Result<User> {
        self.check_registration_open()?;
        self.create_user(username, password, email, Vec::new())
            .await
    }

    /// Creates an account (the CLI may give groups).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        email: Option<&str>,
        groups: Vec<String>,
    ) -> Result<User> {
        validate_username(username)?;
        validate_password(password)?;
        if let Some(email) = email {
            validate_email(email)?;
        }
        validate_groups(&groups)?;
        let password_hash = self.hasher.hash(password.to_owned()).await?;
        let new = NewUser {
            username,
            email,
            password_hash,
            groups,
            created_at: self.clock.now(),
        };
        let user = self.store.create_user(new).await?;
        audit::user_event("register", user.id, "registered a user");
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: UserId) -> Result<Option<User>> {
        self.store.user(id)
    }

    /// The user with this username; [`Kind::NotFound`] when there is none.
    pub fn user_named(&self, username: &str) -> Result<User> {
        self.store
            .user_by_name(username)?
            .ok_or_else(|| Error::new(Kind::NotFound))
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.store.user_count()
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>> {
        self.store.users()
    }

    /// The caller changes their own password: the old one must be right
    /// (it counts towards bans like any password; wrong is Forbidden, not a
    /// 401: the caller's credential is fine). Every earlier token and
    /// session is refused afterwards.
    pub async fn change_password(&self, user: UserId, old: &str, new: &str) -> Result<()> {
        validate_password(new)?;
        let record = self
            .user(user)?
            .ok_or_else(|| Error::unauthorized(Refusal::BadToken))?;
        let proven = match self.check_password(&record.username, old).await {
            Ok(proven) => proven,
            Err(e) if matches!(e.kind(), Kind::Unauthorized(_)) => {
                return Err(Error::new(Kind::Forbidden("the old password is wrong")))
            }
            Err(e) => return Err(e),
        };
        self.set_password(&proven.user, new).await
    }

    /// Sets a new password (the CLI's `passwd`, or after the old one was
    /// checked) and refuses every token issued before now.
    pub async fn set_password(&self, user: &User, new_password: &str) -> Result<()> {
        validate_password(new_password)?;
        let phc = self.hasher.hash(new_password.to_owned()).await?;
        let cutoff = self.new_cutoff(false)?;
        // The caches follow the committed change even if the flush after
        // it fails (the error still reaches the caller).
        let changed = self.store.change_password(user, phc, cutoff).await;
        if !matches!(changed, Ok(false)) {
            self.cutoffs.remember(user.id, cutoff);
        }
        if !changed? {
            return Err(Error::new(Kind::Conflict(
                "the account changed meanwhile; try again",
            )));
        }
        self.forget_sessions(user.id).await?;
        self.metrics.revocation();
        audit::user_event(
            "password_change",
            user.id,
            "password changed; earlier tokens refused",
        );
        Ok(())
    }

    /// The caller deletes their own account, signing in with the password
    /// (and the code, with a second factor).
    pub async fn delete_account(
        &self,
        login: &str,
        password: &str,
        otp: Option<&str>,
    ) -> Result<()> {
        let proven = self.sign_in(login, password, otp).await?;
        self.delete_user(&proven.user).await
    }

    /// Deletes the account with its keys; its tokens are refused at once
    /// and the name can be registered again.
    pub async fn delete_user(&self, user: &User) -> Result<()> {
        let cutoff = self.new_cutoff(true)?;
        let stored = self.store.delete_user(user, cutoff).await;
        self.cutoffs.remember(user.id, cutoff);
        self.profiles.forget(user.id);
        stored?;
        self.forget_sessions(user.id).await?;
        self.metrics.revocation();
        audit::user_event("delete", user.id, "deleted a user");
        Ok(())
    }

    /// Replaces a user's groups.
    pub async fn set_groups(&self, user: &User, groups: Vec<String>) -> Result<User> {
        validate_groups(&groups)?;
        let updated = self
            .store
            .modify_user(user.id, |u| u.groups = groups.clone())
            .await;
        self.profiles.forget(user.id);
        let updated = updated?;
        audit::user_event("groups", user.id, "changed a user's groups");
        updated.ok_or_else(|| Error::new(Kind::NotFound))
    }

    /// Sets or removes a user's email.
    pub async fn set_email(&self, user: UserId, email: Option<&str>) -> Result<User> {
        if let Some(email) = email {
            validate_email(email)?;
        }
        let updated = self.store.change_email(user, email).await;
        self.profiles.forget(user);
        let record = updated?.ok_or_else(|| Error::unauthorized(Refusal::BadToken))?;
        audit::user_event("email", user, "changed a user's email");
        Ok(record)
    }
}

/// 1 to 64 ASCII letters, digits and `._-`, starting with a letter or
/// digit. ASCII only, so no two names look alike (`admin` vs fullwidth
/// `ａｄｍｉｎ`) and case-insensitive uniqueness is exact. No `@` (that marks
/// an email at login), nothing shaped like a token or an API key.
pub fn validate_username(name: &str) -> Result<()> {
    if !is_name(name) {
        return Err(Error::invalid(
            "username must be 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a \
             letter or digit",
        ));
    }
    if name.to_ascii_lowercase().starts_with(API_KEY_PREFIX) {
        return Err(Error::invalid(
            "username must not start with latch_ (that marks an API key)",
        ));
    }
    if token::looks_like_token(name) {
        return Err(Error::invalid(
            "username must not look like a token (eyJ... with two dots)",
        ));
    }
    Ok(())
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Group names follow the username rules (so they never contain the comma
/// that separates them in `Remote-Groups`); at most 64 groups.
pub fn validate_groups(groups: &[String]) -> Result<()> {
    if groups.len() <= 64 && groups.iter().all(|g| is_name(g)) {
        Ok(())
    } else {
        Err(Error::invalid(
            "group names must be 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with \
             a letter or digit",
        ))
    }
}

/// 8 to 1024 characters, nothing else.
pub fn validate_password(password: &str) -> Result<()> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(Error::invalid("password must be 8 to 1024 characters"))
    }
}

/// A plausible address: one `@` between non-empty parts, no spaces or
/// control characters, at most 254 bytes.
pub fn validate_email(email: &str) -> Result<()> {
    let parts_ok = |(local, domain): (&str, &str)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    };
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(parts_ok);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("email is not a valid address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["miguel", "a", "john.doe", "x_y-z", "Latch", &"a".repeat(64)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a b",
            "a@b",
            "a:b",
            "latch_x",
            "LATCH_x",
            "Émile",
            "ａｄｍｉｎ",
            "eyJa.b.c",
            &"a".repeat(65),
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups() {
        assert!(validate_groups(&["admins".into(), "media-users".into()]).is_ok());
        assert!(validate_groups(&[]).is_ok());
        for bad in ["a,b", "", " x", "x y"] {
            assert!(validate_groups(&[bad.into()]).is_err(), "{bad:?}");
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
