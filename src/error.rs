//! The one error type.
//!
//! An [`Error`] carries two things that never mix: what went wrong, as a
//! client or an operator may be told (its [`Kind`] and the public message)
//! and, for failures of our own making, an internal cause that is logged
//! and never sent. It knows nothing of HTTP: `http::response` maps a
//! [`Kind`] to a status and a JSON `error` code, and the CLI matches on
//! [`Kind`], never on text.

use std::fmt;

/// What went wrong, as far as a client or an operator is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The input is malformed: bad JSON, a missing field, a bad value. 400.
    Invalid(&'static str),
    /// No credential, or one that is refused. 401 with challenges.
    Unauthorized(Refusal),
    /// Authenticated (or not) but not allowed, e.g. registration closed. 403.
    Forbidden(&'static str),
    /// No such route or resource. 404.
    NotFound,
    /// A known path with a method it does not serve; the value is `Allow`. 405.
    MethodNotAllowed(&'static str),
    /// A unique name or email is already taken. 409.
    Conflict(&'static str),
    /// The request body did not arrive in time. 408.
    Timeout,
    /// The request body is over the limit. 413.
    PayloadTooLarge,
    /// The body is not `application/json` where JSON is required. 415.
    /// The body is not of the type this endpoint reads; the message says
    /// which it wants.
    UnsupportedMediaType(&'static str),
    /// The password-hashing queue is full; try again shortly. 503.
    Busy,
    /// The store does not answer (health check). 503.
    Unavailable,
    /// Our fault: the store, the disk, a corrupt record. 500, cause logged.
    Internal,
    /// Configuration is invalid; start-up stops with this line.
    Config,
    /// The database cannot be opened or read (corrupt, too new).
    Store,
    /// The database is in use by another process (a running server).
    Locked,
}

/// Why a credential was refused, which decides the `WWW-Authenticate` detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing usable was presented.
    Missing,
    /// A username and password were presented and do not match.
    BadPassword,
    /// A token (or API key) was presented and refused: RFC 6750 `invalid_token`.
    BadToken,
    /// A token was presented where only a password will do (minting tokens).
    PasswordRequired,
    /// The `Authorization` header could not be parsed (bad base64, not
    /// UTF-8, no colon, an unknown scheme).
    Malformed,
    /// The credential is good, but this change needs a password proven
    /// recently (`[api] reauth_window`).
    Stale,
    /// The password is right, and this user also needs a one-time code
    /// (none was given).
    OtpRequired,
    /// A one-time code (or recovery code) was given and is wrong, used
    /// already, or the account is banned.
    BadCode,
}

/// The crate's error: a public [`Kind`] plus an optional private cause.
pub struct Error {
    kind: Kind,
    /// Logged by whoever handles the error; never shown to a client.
    cause: Option<String>,
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of this kind without an internal cause.
    pub fn new(kind: Kind) -> Self {
        Error { kind, cause: None }
    }

    /// An error of this kind whose cause is logged but not shown to clients.
    pub fn with_cause(kind: Kind, cause: impl fmt::Display) -> Self {
        Error {
            kind,
            cause: Some(cause.to_string()),
        }
    }

    /// A server-side failure; `cause` is for the log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::with_cause(Kind::Internal, cause)
    }

    /// A configuration error; the message is shown to the operator whole.
    pub fn config(message: impl fmt::Display) -> Self {
        Self::with_cause(Kind::Config, message)
    }

    /// A database error; the message is shown to the operator whole.
    pub fn store(message: impl fmt::Display) -> Self {
        Self::with_cause(Kind::Store, message)
    }

    /// Malformed input, with this public message.
    pub fn invalid(message: &'static str) -> Self {
        Self::new(Kind::Invalid(message))
    }

    /// A 401 for this reason.
    pub fn unauthorized(why: Refusal) -> Self {
        Self::new(Kind::Unauthorized(why))
    }

    /// What the client is told.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The internal cause, for the log.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// The human message a client sees; never contains the cause.
    pub fn public_message(&self) -> &'static str {
        match self.kind {
            Kind::Invalid(m) | Kind::Forbidden(m) | Kind::Conflict(m) => m,
            Kind::Unauthorized(Refusal::Missing) => "authentication required",
            Kind::Unauthorized(Refusal::BadPassword) => "invalid username or password",
            Kind::Unauthorized(Refusal::BadToken) => "invalid or expired token",
            Kind::Unauthorized(Refusal::OtpRequired) => {
                "a second factor is required: a one-time code (\"otp\" in the JSON login, \
                 X-Latch-OTP beside Basic), or a token or key from a sign-in that gave one"
            }
            Kind::Unauthorized(Refusal::BadCode) => "invalid or already used one-time code",
            Kind::Unauthorized(Refusal::PasswordRequired) => {
                "a username and password are required here"
            }
            Kind::Unauthorized(Refusal::Malformed) => "malformed credentials",
            Kind::Unauthorized(Refusal::Stale) => {
                "this change needs a password proven in the last few minutes: get a new token \
                 with the password, or send it with Basic"
            }
            Kind::NotFound => "not found",
            Kind::MethodNotAllowed(_) => "method not allowed",
            Kind::Timeout => "the request body did not arrive in time",
            Kind::PayloadTooLarge => "request body too large",
            Kind::UnsupportedMediaType(m) => m,
            Kind::Busy => "too many password checks in progress, retry shortly",
            Kind::Unavailable => "the store does not answer",
            Kind::Internal | Kind::Config | Kind::Store | Kind::Locked => "internal server error",
        }
    }
}

/// For operators (CLI, start-up): the cause when there is one, since
/// configuration and store errors are the operator's own business.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.cause) {
            (Kind::Config | Kind::Store | Kind::Locked, Some(cause)) => f.write_str(cause),
            (_, Some(cause)) => write!(f, "{}: {}", self.public_message(), cause),
            (_, None) => f.write_str(self.public_message()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {:?})", self.kind, self.cause)
    }
}

impl std::error::Error for Error {}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::internal(format_args!("store: {e}"))
    }
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}
