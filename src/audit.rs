//! Audit events: one structured log line (target `audit`) per password
//! check, per refused token or key, per ban, per revocation, per account
//! change and per admin command, with the user, the method, the result and
//! the source address; the subscriber adds the UTC time.
//!
//! Successful token and key verifications are not logged one by one (they
//! are ordinary authorized requests, counted in `/metrics`), nor, at the
//! info level, repeats of a password success still in the password cache.
//! User-supplied strings are recorded with `Debug` formatting (quoted, CR and LF escaped)
//! so they cannot forge lines; JSON output escapes them anyway. Passwords,
//! tokens, keys and query strings are never passed here.
//!
//! It owns the audit lines' shape; it never decides anything, and is never
//! handed a secret.

use std::future::Future;
use std::net::IpAddr;

use crate::model::UserId;

tokio::task_local! {
    static CONTEXT: Context;
}

/// Where the request being handled comes from.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The client's address (the proxy's client when a trusted proxy says).
    pub source: IpAddr,
    /// Whether the connection is from a trusted proxy (whose forwarding
    /// headers are believed).
    pub trusted_proxy: bool,
}

/// Runs `f` with `context` as the audit context of everything it logs
/// (the task-local's own future, not one more around it: the router's
/// future is moved once less per request).
pub fn scope<F: Future>(context: Context, f: F) -> impl Future<Output = F::Output> {
    CONTEXT.scope(context, f)
}

/// Runs `f` with `context` as the audit context, outside any future
/// (the router shapes an error into its page here).
pub fn sync_scope<R>(context: Context, f: impl FnOnce() -> R) -> R {
    CONTEXT.sync_scope(context, f)
}

/// The client address of the request being handled; `None` outside a
/// request (the admin socket, the CLI). Brute-force regulation counts
/// guesses per address by it: the router sets it for every request, so
/// no handler can forget to pass it.
pub fn current_source() -> Option<IpAddr> {
    CONTEXT.try_with(|c| c.source).ok()
}

/// Whether the request being handled came from a trusted proxy; false
/// outside a request.
pub fn from_trusted_proxy() -> bool {
    CONTEXT.try_with(|c| c.trusted_proxy).unwrap_or(false)
}

/// The source address, or `local` outside a request (the admin socket);
/// read only when a line is actually written.
struct Source;

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match CONTEXT.try_with(|c| c.source) {
            Ok(ip) => ip.fmt(f),
            Err(_) => f.write_str("local"),
        }
    }
}

/// How a password check ended, for the audit line.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Accepted.
    Success,
    /// Accepted from the cache of recent successes (logged at debug level:
    /// a script sending Basic on every request would flood the log).
    Repeated,
    /// Wrong password or unknown user.
    Failure,
    /// Refused because the account is banned (the client cannot tell).
    Banned,
}

/// Longest login recorded as given; longer ones are cut. (The service
/// passes a fingerprint for a login no account has: it may be a password
/// typed into the username field.)
const MAX_LOGGED_LOGIN: usize = 64;

/// A password check: `login` as given (a username or an email), cut to
/// `MAX_LOGGED_LOGIN` characters.
pub fn password(login: &str, outcome: Outcome) {
    let cut;
    let login = match login.char_indices().nth(MAX_LOGGED_LOGIN) {
        Some((end, _)) => {
            cut = format!("{}…", &login[..end]);
            cut.as_str()
        }
        None => login,
    };
    match outcome {
        Outcome::Success => tracing::info!(
            target: "audit",
            event = "auth",
            method = "password",
            user = ?login,
            result = "success",
            source = %Source,
            "password accepted"
        ),
        Outcome::Repeated => tracing::debug!(
            target: "audit",
            event = "auth",
            method = "password",
            user = ?login,
            result = "success",
            cached = true,
            source = %Source,
            "password accepted again"
        ),
        Outcome::Failure => tracing::info!(
            target: "audit",
            event = "auth",
            method = "password",
            user = ?login,
            result = "failure",
            source = %Source,
            "password refused"
        ),
        Outcome::Banned => tracing::warn!(
            target: "audit",
            event = "auth",
            method = "password",
            user = ?login,
            result = "banned",
            source = %Source,
            "refused a login: the account is banned"
        ),
    }
}

/// A refused token or API key (the user is unknown: nothing was verified).
pub fn refused(method: &'static str, reason: &str) {
    tracing::info!(
        target: "audit",
        event = "auth",
        method,
        result = "failure",
        reason,
        source = %Source,
        "credential refused"
    );
}

/// A client address banned by regulation.
pub fn source_banned(address: IpAddr, until: u64) {
    tracing::warn!(
        target: "audit",
        event = "ban",
        banned = %address,
        until,
        source = %Source,
        "banned a client address after repeated failed logins"
    );
}

/// A client address's ban lifted by an operator (`banned`: whether one
/// was in force; its failure count is reset either way).
pub fn source_unbanned(address: IpAddr, banned: bool) {
    let message = if banned {
        "lifted the ban of a client address"
    } else {
        "reset the failure count of a client address (it was not banned)"
    };
    tracing::warn!(
        target: "audit",
        event = "unban",
        address = %address,
        source = "local",
        "{message}"
    );
}

/// An event about a known user (a ban, a revocation, an account change,
/// an admin command); `message` is a fixed description.
pub fn user_event(event: &'static str, user: UserId, message: &'static str) {
    let user_id = user.get();
    tracing::info!(target: "audit", event, user_id, source = %Source, "{message}");
}

/// Whom an admin command is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Nobody in particular (`list`, `backup`).
    None,
    /// A username as given (logged Debug-escaped).
    User(&'a str),
    /// A client address.
    Address(IpAddr),
}

/// A command received on the admin socket, about `target`.
pub fn admin(op: &'static str, target: Target<'_>) {
    match target {
        Target::User(user) => tracing::info!(
            target: "audit",
            event = "admin",
            op,
            user = ?user,
            source = "local",
            "admin command"
        ),
        Target::Address(address) => tracing::info!(
            target: "audit",
            event = "admin",
            op,
            address = %address,
            source = "local",
            "admin command"
        ),
        Target::None => tracing::info!(
            target: "audit",
            event = "admin",
            op,
            source = "local",
            "admin command"
        ),
    }
}
