//! The admin protocol: one JSON [`Request`] line in, one JSON [`Reply`]
//! line out (a backup streams instead), and [`execute`], which carries a
//! request out against the service. Used by the server's socket and by
//! the CLI when no server runs, so both do exactly the same.
//!
//! It owns the wire format; it never touches the socket or the store.

use serde::{Deserialize, Serialize};

use crate::audit::{self, Target};
use crate::error::{Error, Kind};
use crate::model::{Ban, KeyId, SessionId, User, UserId};
use crate::service::Service;

/// A command, as the CLI sends it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create a user.
    Add {
        /// Username.
        username: String,
        /// Optional email.
        email: Option<String>,
        /// Groups.
        groups: Vec<String>,
        /// The password (the socket is private to the server's user).
        password: String,
    },
    /// List users.
    List,
    /// The users of these names that exist.
    Show {
        /// Usernames.
        usernames: Vec<String>,
    },
    /// Set a user's password.
    Passwd {
        /// Username.
        username: String,
        /// The new password.
        password: String,
    },
    /// Delete a user.
    Del {
        /// Username.
        username: String,
    },
    /// Replace a user's groups.
    Groups {
        /// Username.
        username: String,
        /// The new list.
        groups: Vec<String>,
    },
    /// Stream a consistent export of the database.
    Backup,
    /// Lift the brute-force ban of an account or of a client address.
    Unban {
        /// The account, by name.
        username: Option<String>,
        /// The client address.
        address: Option<std::net::IpAddr>,
    },
    /// List a user's API keys, or revoke one or all of them.
    Keys {
        /// Username.
        username: String,
        /// What to revoke, if anything.
        revoke: Option<Revoke>,
    },
    /// Show whether a user has a second factor, or remove it.
    Totp {
        /// Username.
        username: String,
        /// Remove it (the user signs in with the password alone again).
        reset: bool,
    },
    /// List a user's sessions, or end one or all of them.
    Sessions {
        /// Username.
        username: String,
        /// What to end, if anything.
        revoke: Option<EndSession>,
    },
    /// Every user as a users file (`latch user export`).
    Export,
    /// Add or change users as the file says, in one transaction (`latch
    /// user import`).
    Import {
        /// The file, parsed.
        file: crate::service::UserFile,
    },
}

/// Which sessions `latch user sessions --revoke` ends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndSession {
    /// The session with this id.
    One(SessionId),
    /// Every session of the user.
    All,
}

/// A session as `latch user sessions` shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionInfo {
    /// Id.
    pub id: SessionId,
    /// Signed in, seconds since the epoch.
    pub created_at: u64,
    /// Last use, about to the minute.
    pub last_seen_at: u64,
    /// Expires.
    pub expires_at: u64,
    /// The client's address at sign-in.
    pub address: Option<std::net::IpAddr>,
    /// Its browser, truncated.
    pub user_agent: String,
    /// Whether "remember me" was ticked.
    #[serde(default)]
    pub remember: bool,
}

/// Which keys `latch user keys --revoke` takes back.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Revoke {
    /// The key with this id.
    One(KeyId),
    /// Every key of the user.
    All,
}

/// An API key as `latch user keys` shows it (never the secret).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Id.
    pub id: KeyId,
    /// The name its owner gave it.
    pub name: String,
    /// Created, seconds since the epoch.
    pub created_at: u64,
    /// Refused from then on, if set.
    pub expires_at: Option<u64>,
    /// Last use, about to the minute.
    pub last_used_at: Option<u64>,
}

/// A user as `latch user list` shows it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// Id.
    pub id: UserId,
    /// Username.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Groups.
    pub groups: Vec<String>,
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// Done; a line for the operator.
    Done {
        /// What was done.
        message: String,
    },
    /// The user list.
    Users {
        /// Users by id.
        users: Vec<UserInfo>,
    },
    /// A user's keys.
    Keys {
        /// Keys by id.
        keys: Vec<KeyInfo>,
    },
    /// A user's sessions.
    Sessions {
        /// Live sessions.
        sessions: Vec<SessionInfo>,
    },
    /// Refused or failed; one line for the operator.
    Failed {
        /// Why.
        error: String,
    },
}

/// What a command that fails tells the operator.
type Outcome = std::result::Result<Reply, String>;

impl Request {
    /// The audit log's name for this command, and whom it is about.
    fn audit(&self) -> (&'static str, Target<'_>) {
        match self {
            Request::Add { username, .. } => ("add", Target::User(username)),
            Request::List => ("list", Target::None),
            Request::Show { .. } => ("show", Target::None),
            Request::Passwd { username, .. } => ("passwd", Target::User(username)),
            Request::Del { username } => ("del", Target::User(username)),
            Request::Groups { username, .. } => ("groups", Target::User(username)),
            Request::Backup => ("backup", Target::None),
            Request::Unban {
                username: Some(username),
                ..
            } => ("unban", Target::User(username)),
            Request::Unban {
                address: Some(address),
                ..
            } => ("unban", Target::Address(*address)),
            Request::Unban { .. } => ("unban", Target::None),
            Request::Keys {
                username,
                revoke: None,
            } => ("keys", Target::User(username)),
            Request::Keys { username, .. } => ("keys_revoke", Target::User(username)),
            Request::Sessions {
                username,
                revoke: None,
            } => ("sessions", Target::User(username)),
            Request::Sessions { username, .. } => ("sessions_end", Target::User(username)),
            Request::Totp {
                username,
                reset: false,
            } => ("totp", Target::User(username)),
            Request::Totp { username, .. } => ("totp_reset", Target::User(username)),
            Request::Export => ("export", Target::None),
            Request::Import { .. } => ("import", Target::None),
        }
    }
}

/// Runs a command against `service`, audited. Failures become
/// [`Reply::Failed`] with one line fit for the operator.
pub async fn execute(service: &Service, request: Request) -> Reply {
    let (op, target) = request.audit();
    audit::admin(op, target);
    let outcome = match request {
        Request::Add {
            username,
            email,
            groups,
            password,
        } => add(service, &username, email.as_deref(), groups, &password).await,
        Request::List => list(service),
        Request::Show { usernames } => show(service, &usernames),
        Request::Passwd { username, password } => passwd(service, &username, &password).await,
        Request::Del { username } => del(service, &username).await,
        Request::Groups { username, groups } => set_groups(service, &username, groups).await,
        Request::Backup => Err("a backup streams; use `latch backup`".to_owned()),
        Request::Unban { username, address } => unban(service, username, address).await,
        Request::Keys { username, revoke } => keys(service, &username, revoke).await,
        Request::Sessions { username, revoke } => sessions(service, &username, revoke).await,
        Request::Totp { username, reset } => totp(service, &username, reset).await,
        Request::Export => export(service),
        Request::Import { file } => import(service, file).await,
    };
    outcome.unwrap_or_else(|error| Reply::Failed { error })
}

fn done(message: String) -> Outcome {
    Ok(Reply::Done { message })
}

/// One line for the operator: the public message, or the cause of our own
/// failures (the operator may see those; clients never do).
fn describe(e: Error) -> String {
    match e.kind() {
        Kind::Internal | Kind::Store | Kind::Config | Kind::Locked => e.to_string(),
        _ => e.public_message().to_owned(),
    }
}

fn user(service: &Service, name: &str) -> std::result::Result<User, String> {
    service.user_named(name).map_err(|e| match e.kind() {
        Kind::NotFound => format!("no user named {name:?}"),
        _ => describe(e),
    })
}

async fn add(
    service: &Service,
    username: &str,
    email: Option<&str>,
    groups: Vec<String>,
    password: &str,
) -> Outcome {
    let u = service
        .create_user(username, password, email, groups)
        .await
        .map_err(describe)?;
    done(format!("added user {} (id {})", u.username, u.id))
}

fn list(service: &Service) -> Outcome {
    let users = service
        .users()
        .map_err(describe)?
        .into_iter()
        .map(UserInfo::from)
        .collect();
    Ok(Reply::Users { users })
}

fn show(service: &Service, usernames: &[String]) -> Outcome {
    let mut users = Vec::new();
    for name in usernames {
        match service.user_named(name) {
            Ok(user) => users.push(UserInfo::from(user)),
            Err(e) if e.kind() == Kind::NotFound => {}
            Err(e) => return Err(describe(e)),
        }
    }
    Ok(Reply::Users { users })
}

impl From<User> for UserInfo {
    fn from(u: User) -> UserInfo {
        UserInfo {
            id: u.id,
            username: u.username,
            email: u.email,
            groups: u.groups,
        }
    }
}

fn export(service: &Service) -> Outcome {
    let file = service.export_users().map_err(describe)?;
    done(file.to_toml().map_err(describe)?.trim_end().to_owned())
}

async fn import(service: &Service, file: crate::service::UserFile) -> Outcome {
    let count = file.users.len();
    let lines = service.import_users(file).await.map_err(describe)?;
    match lines.is_empty() {
        true => done(match count {
            1 => "nothing to change: the one user of the file is as it says".to_owned(),
            n => format!("nothing to change: the {n} users of the file are as it says"),
        }),
        false => done(lines.join("\n")),
    }
}

async fn passwd(service: &Service, username: &str, password: &str) -> Outcome {
    let u = user(service, username)?;
    service.set_password(&u, password).await.map_err(describe)?;
    done(format!(
        "changed the password of {}; earlier tokens are refused",
        u.username
    ))
}

async fn del(service: &Service, username: &str) -> Outcome {
    let u = user(service, username)?;
    service.delete_user(&u).await.map_err(describe)?;
    done(format!("deleted user {}", u.username))
}

async fn totp(service: &Service, username: &str, reset: bool) -> Outcome {
    let u = user(service, username)?;
    if reset {
        let setting_up = service.totp_setting_up(u.id).map_err(describe)?;
        return match service.totp_reset(u.id).await.map_err(describe)? {
            true if setting_up => done(format!(
                "removed the second factor {} was setting up (never confirmed)",
                u.username
            )),
            true => done(format!(
                "removed the second factor of {}: the password alone signs in now",
                u.username
            )),
            false => done(format!("{} has no second factor", u.username)),
        };
    }
    match service.recovery_left(u.id).map_err(describe)? {
        Some(left) => done(format!(
            "{} has a second factor, with {left} recovery codes left",
            u.username
        )),
        None if service.totp_setting_up(u.id).map_err(describe)? => done(format!(
            "{} has no second factor (one is being set up, not confirmed yet)",
            u.username
        )),
        None => done(format!("{} has no second factor", u.username)),
    }
}

async fn set_groups(service: &Service, username: &str, groups: Vec<String>) -> Outcome {
    let u = user(service, username)?;
    let u = service.set_groups(&u, groups).await.map_err(describe)?;
    let groups = if u.groups.is_empty() {
        "(none)".to_owned()
    } else {
        u.groups.join(", ")
    };
    done(format!("groups of {}: {groups}", u.username))
}

async fn unban(
    service: &Service,
    username: Option<String>,
    address: Option<std::net::IpAddr>,
) -> Outcome {
    let (ban, what) = match (username, address) {
        (Some(name), None) => {
            let u = user(service, &name)?;
            (Ban::User(u.id, 0), u.username)
        }
        (None, Some(address)) => (Ban::Source(address, 0), address.to_string()),
        _ => return Err("name an account or an address".to_owned()),
    };
    let stored = service.unban(ban).await.map_err(describe)?;
    done(if stored {
        format!("lifted the ban of {what}")
    } else {
        format!("{what} was not banned (its failure count is reset)")
    })
}

async fn sessions(service: &Service, username: &str, end: Option<EndSession>) -> Outcome {
    let u = user(service, username)?;
    match end {
        None => {
            let sessions = service
                .list_sessions(u.id)
                .map_err(describe)?
                .into_iter()
                .map(|s| SessionInfo {
                    id: s.id,
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    expires_at: s.expires_at,
                    address: s.address,
                    user_agent: s.user_agent,
                    remember: s.remember,
                })
                .collect();
            Ok(Reply::Sessions { sessions })
        }
        Some(EndSession::One(id)) => {
            if !service.end_session(u.id, id).await.map_err(describe)? {
                return Err(format!("{} has no session {id}", u.username));
            }
            done(format!("ended session {id} of {}", u.username))
        }
        Some(EndSession::All) => {
            let n = service.end_all_sessions(u.id).await.map_err(describe)?;
            done(format!("ended {n} sessions of {}", u.username))
        }
    }
}

async fn keys(service: &Service, username: &str, revoke: Option<Revoke>) -> Outcome {
    let u = user(service, username)?;
    match revoke {
        None => {
            let keys = service
                .list_keys(u.id)
                .map_err(describe)?
                .into_iter()
                .map(|k| KeyInfo {
                    id: k.id,
                    name: k.name,
                    created_at: k.created_at,
                    expires_at: k.expires_at,
                    last_used_at: k.last_used_at,
                })
                .collect();
            Ok(Reply::Keys { keys })
        }
        Some(Revoke::One(id)) => {
            if !service.delete_key(u.id, id).await.map_err(describe)? {
                return Err(format!("{} has no key {id}", u.username));
            }
            done(format!("revoked key {id} of {}", u.username))
        }
        Some(Revoke::All) => {
            let n = service.delete_all_keys(u.id).await.map_err(describe)?;
            let keys = if n == 1 { "key" } else { "keys" };
            done(format!("revoked {n} {keys} of {}", u.username))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_keep_their_wire_format() {
        let r: Request =
            serde_json::from_str(r#"{"op":"keys","username":"a","revoke":{"one":7}}"#).unwrap();
        assert!(matches!(
            r,
            Request::Keys { revoke: Some(Revoke::One(id)), .. } if id == KeyId::new(7)
        ));
        let text = serde_json::to_string(&Request::Keys {
            username: "a".into(),
            revoke: Some(Revoke::All),
        })
        .unwrap();
        assert_eq!(text, r#"{"op":"keys","username":"a","revoke":"all"}"#);
        let reply = Reply::Users {
            users: vec![UserInfo {
                id: UserId::new(3),
                username: "bob".into(),
                email: None,
                groups: vec!["admins".into()],
            }],
        };
        let user = r#"{"id":3,"username":"bob","email":null,"groups":["admins"]}"#;
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            format!(r#"{{"result":"users","users":[{user}]}}"#)
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }
}

#[cfg(test)]
mod flows {
    use super::*;
    use crate::clock::Clock;
    use crate::service::tests::service;

    fn message(reply: Reply) -> String {
        match reply {
            Reply::Done { message } => message,
            other => panic!("{other:?}"),
        }
    }

    fn failure(reply: Reply) -> String {
        match reply {
            Reply::Failed { error } => error,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn every_command_does_what_it_says_and_failures_are_one_line() {
        let (_dir, s) = service(&Clock::frozen());
        let add = |name: &str, groups: Vec<String>| Request::Add {
            username: name.into(),
            email: None,
            groups,
            password: format!("{name}-password"),
        };
        let done = message(execute(&s, add("alice", vec!["admins".into()])).await);
        assert_eq!(done, "added user alice (id 1)");
        let taken = failure(execute(&s, add("ALICE", vec![])).await);
        assert!(taken.contains("taken"), "{taken}");
        let Reply::Users { users } = execute(&s, Request::List).await else {
            panic!("a list")
        };
        assert_eq!(users.len(), 1);
        assert_eq!(
            (users[0].id, &users[0].groups[..]),
            (UserId::new(1), &["admins".to_owned()][..])
        );
        let groups = Request::Groups {
            username: "alice".into(),
            groups: vec![],
        };
        assert_eq!(
            message(execute(&s, groups).await),
            "groups of alice: (none)"
        );
        let passwd = Request::Passwd {
            username: "alice".into(),
            password: "changed-password".into(),
        };
        assert!(message(execute(&s, passwd).await).contains("earlier tokens are refused"));
        assert!(s.sign_in("alice", "changed-password", None).await.is_ok());
        let nobody = failure(
            execute(
                &s,
                Request::Del {
                    username: "bob".into(),
                },
            )
            .await,
        );
        assert_eq!(nobody, "no user named \"bob\"");
        let neither = Request::Unban {
            username: None,
            address: None,
        };
        assert_eq!(
            failure(execute(&s, neither).await),
            "name an account or an address"
        );
        let keys = |revoke| Request::Keys {
            username: "alice".into(),
            revoke,
        };
        let Reply::Keys { keys: none } = execute(&s, keys(None)).await else {
            panic!("keys")
        };
        assert!(none.is_empty());
        let missing = failure(execute(&s, keys(Some(Revoke::One(KeyId::new(5))))).await);
        assert_eq!(missing, "alice has no key 5");
        assert_eq!(
            message(execute(&s, keys(Some(Revoke::All))).await),
            "revoked 0 keys of alice"
        );
        assert!(failure(execute(&s, Request::Backup).await).contains("latch backup"));
        let del = Request::Del {
            username: "alice".into(),
        };
        assert_eq!(message(execute(&s, del).await), "deleted user alice");
        assert!(s.user_named("alice").is_err());
    }
}
