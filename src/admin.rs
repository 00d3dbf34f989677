//! The admin channel behind `latch user ...`.
//!
//! sled locks its directory, so while a server runs the CLI cannot open the
//! database. Instead the server listens on a Unix socket in the data
//! directory (`admin.sock`, mode 0600, peers with another uid refused) and
//! runs the command itself, so changes take effect at once (a changed
//! password or deleted user revokes live tokens). When no server answers,
//! the CLI opens the database and runs the same [`execute`].
//!
//! The protocol is one JSON [`Request`] line in, one JSON [`Reply`] line out.

use std::io::{BufRead as _, BufReader, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{UnixListener, UnixStream};

use crate::audit;
use crate::auth::Auth;
use crate::error::{Error, Kind, Result};
use crate::App;

/// Numbers the temporary files of concurrent backups.
static BACKUPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long a backup client may stall before the server gives up on it.
const BACKUP_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Exports into `tmp` (a private file in the data directory; writers wait
/// only for this part), then sends it to the client, who may be slow
/// without holding anyone up.
fn export_then_send(
    store: &crate::store::Store,
    tmp: &Path,
    mut stream: std::os::unix::net::UnixStream,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        let mut out = std::io::BufWriter::new(file);
        store.export(&mut out).map_err(std::io::Error::other)?;
        out.flush()?;
    }
    stream.set_write_timeout(Some(BACKUP_SEND_TIMEOUT))?;
    std::io::copy(&mut std::fs::File::open(tmp)?, &mut stream)?;
    Ok(())
}

/// Longest request line accepted on the socket.
const MAX_LINE: u64 = 64 * 1024;

/// The socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

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
    /// Stream a consistent export of the database (see `Store::export`).
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
}

/// Which keys `latch user keys --revoke` takes back.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Revoke {
    /// The key with this id.
    One(u64),
    /// Every key of the user.
    All,
}

/// An API key as `latch user keys` shows it (never the secret).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Id.
    pub id: u64,
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
    pub id: u64,
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
    /// Refused or failed; one line for the operator.
    Failed {
        /// Why.
        error: String,
    },
}

/// Runs a command against `auth`. Failures become [`Reply::Failed`]
/// with one line fit for the operator.
pub async fn execute(auth: &Auth, request: Request) -> Reply {
    let (op, target) = match &request {
        Request::Add { username, .. } => ("add", Some(username.clone())),
        Request::List => ("list", None),
        Request::Passwd { username, .. } => ("passwd", Some(username.clone())),
        Request::Del { username } => ("del", Some(username.clone())),
        Request::Groups { username, .. } => ("groups", Some(username.clone())),
        Request::Backup => ("backup", None),
        Request::Unban { username, address } => (
            "unban",
            username.clone().or_else(|| address.map(|a| a.to_string())),
        ),
        Request::Keys {
            username,
            revoke: None,
        } => ("keys", Some(username.clone())),
        Request::Keys {
            username,
            revoke: Some(_),
        } => ("keys_revoke", Some(username.clone())),
    };
    audit::admin(op, target.as_deref());
    match run_command(auth, request).await {
        Ok(reply) => reply,
        Err(error) => Reply::Failed { error },
    }
}

async fn run_command(auth: &Auth, request: Request) -> std::result::Result<Reply, String> {
    let accounts = auth.accounts();
    let user = |name: &str| {
        accounts.user_named(name).map_err(|e| match e.kind() {
            Kind::NotFound => format!("no user named {name:?}"),
            _ => describe(&e),
        })
    };
    let done = |message: String| Ok(Reply::Done { message });
    match request {
        Request::Add {
            username,
            email,
            groups,
            password,
        } => {
            let u = accounts
                .create(&username, &password, email.as_deref(), groups)
                .await
                .map_err(|e| describe(&e))?;
            done(format!("added user {} (id {})", u.username, u.id))
        }
        Request::List => {
            let users = accounts
                .users()
                .map_err(|e| describe(&e))?
                .into_iter()
                .map(|u| UserInfo {
                    id: u.id,
                    username: u.username,
                    email: u.email,
                    groups: u.groups,
                })
                .collect();
            Ok(Reply::Users { users })
        }
        Request::Passwd { username, password } => {
            let u = user(&username)?;
            accounts
                .set_password(&u, &password)
                .await
                .map_err(|e| describe(&e))?;
            done(format!(
                "changed the password of {}; earlier tokens are refused",
                u.username
            ))
        }
        Request::Del { username } => {
            let u = user(&username)?;
            accounts.delete(&u).await.map_err(|e| describe(&e))?;
            done(format!("deleted user {}", u.username))
        }
        Request::Backup => Err("a backup streams; use `latch backup`".to_owned()),
        Request::Unban { username, address } => {
            use crate::regulation::Ban;
            let (ban, what) = match (username, address) {
                (Some(name), None) => {
                    let u = user(&name)?;
                    (Ban::User(u.id, 0), u.username)
                }
                (None, Some(address)) => (Ban::Source(address, 0), address.to_string()),
                _ => return Err("name an account or an address".to_owned()),
            };
            let stored = accounts.unban(ban).await.map_err(|e| describe(&e))?;
            done(if stored {
                format!("lifted the ban of {what}")
            } else {
                format!("{what} was not banned (its failure count is reset)")
            })
        }
        Request::Keys { username, revoke } => {
            let u = user(&username)?;
            match revoke {
                None => {
                    let keys = auth
                        .list_keys(u.id)
                        .map_err(|e| describe(&e))?
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
                    if auth.delete_key(u.id, id).await.map_err(|e| describe(&e))? {
                        done(format!("revoked key {id} of {}", u.username))
                    } else {
                        Err(format!("{} has no key {id}", u.username))
                    }
                }
                Some(Revoke::All) => {
                    let n = auth.delete_all_keys(u.id).await.map_err(|e| describe(&e))?;
                    let keys = if n == 1 { "key" } else { "keys" };
                    done(format!("revoked {n} {keys} of {}", u.username))
                }
            }
        }
        Request::Groups { username, groups } => {
            let u = user(&username)?;
            let u = accounts
                .set_groups(&u, groups)
                .await
                .map_err(|e| describe(&e))?;
            done(format!(
                "groups of {}: {}",
                u.username,
                if u.groups.is_empty() {
                    "(none)".to_owned()
                } else {
                    u.groups.join(", ")
                }
            ))
        }
    }
}

/// One line for the operator: the public message, or the cause of our own
/// failures (the operator may see those; clients never do).
fn describe(e: &Error) -> String {
    match e.kind() {
        Kind::Internal | Kind::Store | Kind::Config => e.to_string(),
        _ => e.public_message().to_owned(),
    }
}

/// Binds the admin socket in `data_dir` (replacing a stale one: the caller
/// holds the database lock, so no other server is using it) with mode 0600.
pub fn bind(data_dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::config(format_args!(
                "cannot remove stale {}: {e}",
                path.display()
            )))
        }
    }
    let fail = |e: std::io::Error| {
        Error::config(format_args!(
            "cannot create the admin socket {}: {e}",
            path.display()
        ))
    };
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(listener)
}

/// Serves admin commands until the task is dropped.
pub async fn serve(listener: std::os::unix::net::UnixListener, app: Arc<App>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("admin socket unusable: {e}");
            return;
        }
    };
    // The socket file is ours; only its owner (or root) may talk to it.
    let owner = std::fs::metadata(socket_path(&app.config.data_dir))
        .map(|m| m.uid())
        .ok();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("admin socket accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = stream.peer_cred().ok().map(|c| c.uid());
        if peer.is_none() || (peer != owner && peer != Some(0)) {
            tracing::warn!(peer_uid = ?peer, "admin socket: refused a peer with another uid");
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &app).await {
                tracing::warn!("admin socket: {e}");
            }
        });
    }
}

/// Reads the one request line: UTF-8, at most [`MAX_LINE`] bytes. `None`
/// when it is not UTF-8 or too long (nothing is guessed from a partial
/// line).
async fn read_request_line(stream: &mut UnixStream) -> std::io::Result<Option<String>> {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    // The client sends one line and then only reads, so buffering cannot
    // swallow anything that matters.
    let mut reader = tokio::io::BufReader::new(stream).take(MAX_LINE);
    let mut line = String::new();
    let read = reader.read_line(&mut line).await;
    if read.is_ok() && line.ends_with('\n') {
        return Ok(Some(line));
    }
    // Refused: read (a bounded amount of) what the client still sends, so
    // the answer is not lost to a reset connection.
    let mut rest = reader.into_inner().take(16 * MAX_LINE);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
    match read {
        Err(e) if e.kind() != std::io::ErrorKind::InvalidData => Err(e),
        _ => Ok(None),
    }
}

async fn handle(mut stream: UnixStream, app: &App) -> std::io::Result<()> {
    let line = read_request_line(&mut stream).await?;
    let request = line
        .as_deref()
        .ok_or(())
        .and_then(|l| serde_json::from_str::<Request>(l).map_err(|_| ()));
    if let Ok(Request::Backup) = request {
        audit::admin("backup", None);
        let store = app.auth.store().clone();
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        let tmp = app.config.data_dir.join(format!(
            ".backup-{}.tmp",
            BACKUPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        return tokio::task::spawn_blocking(move || {
            let sent = export_then_send(&store, &tmp, stream);
            let _ = std::fs::remove_file(&tmp);
            sent
        })
        .await
        .map_err(std::io::Error::other)?;
    }
    let reply = match request {
        Ok(request) => execute(&app.auth, request).await,
        Err(()) => Reply::Failed {
            error: "malformed admin request (one line of UTF-8 JSON, at most 64 KiB)".into(),
        },
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// Asks a server running on `data_dir` for a backup, written to `out`;
/// `None` when no server listens there. The entry count on success.
pub fn call_backup(data_dir: &Path, out: &mut impl Write) -> Result<Option<usize>> {
    let Some((stream, path)) = send(data_dir, &Request::Backup)? else {
        return Ok(None);
    };
    let fail = |e: std::io::Error| {
        Error::config(format_args!(
            "the backup from {} failed: {e}",
            path.display()
        ))
    };
    let mut last = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(fail)?;
        writeln!(out, "{line}").map_err(fail)?;
        last = line;
    }
    out.flush().map_err(fail)?;
    let end: Option<usize> = serde_json::from_str::<serde_json::Value>(&last)
        .ok()
        .and_then(|v| v.get("end")?.as_u64())
        .and_then(|n| usize::try_from(n).ok());
    end.map(Some)
        .ok_or_else(|| Error::config("the backup ended early; the server's log says why"))
}

/// Connects to a server running on `data_dir` and sends `request` (one
/// JSON line); `None` when no server listens there.
fn send(
    data_dir: &Path,
    request: &Request,
) -> Result<Option<(std::os::unix::net::UnixStream, PathBuf)>> {
    let path = socket_path(data_dir);
    let Some(mut stream) = connect(&path)? else {
        return Ok(None);
    };
    let mut line = serde_json::to_vec(request).map_err(Error::internal)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| {
        Error::config(format_args!(
            "the server at {} did not answer: {e}",
            path.display()
        ))
    })?;
    Ok(Some((stream, path)))
}

/// Connects to the admin socket; `None` when no server listens there.
fn connect(path: &Path) -> Result<Option<std::os::unix::net::UnixStream>> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => Ok(Some(stream)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::config(format_args!(
            "cannot reach the server at {}: {e}",
            path.display()
        ))),
    }
}

/// Sends `request` to a server running on `data_dir`; `None` when no server
/// listens there.
pub fn call(data_dir: &Path, request: &Request) -> Result<Option<Reply>> {
    let Some((stream, path)) = send(data_dir, request)? else {
        return Ok(None);
    };
    let fail = |e: std::io::Error| {
        Error::config(format_args!(
            "the server at {} did not answer: {e}",
            path.display()
        ))
    };
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(fail)?;
    serde_json::from_str(&reply).map(Some).map_err(|_| {
        Error::config(format_args!(
            "the server at {} answered nonsense",
            path.display()
        ))
    })
}
