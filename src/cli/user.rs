//! `latch user ...`: sent to the running server over the admin socket,
//! or, when none answers, carried out on the database directly by the
//! same [`admin::execute`], wired by the same [`Service::open`].
//!
//! It owns prompts and tables; what a command does is the admin protocol's.

use crate::admin::{self, EndSession, KeyInfo, Reply, Request, Revoke, SessionInfo, UserInfo};
use crate::config::keyfile::{self, KeyMaterial};
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::service::{Database, Service};
use crate::{crypto, Clock};

use super::{print, UserCommand};
use crate::clock::utc;

/// Runs a user command.
pub(super) fn run(config: Result<Config>, command: UserCommand, create: bool) -> Result<()> {
    let config = config?;
    let request = match command {
        UserCommand::Add {
            name,
            email,
            groups,
            password_stdin,
        } => Request::Add {
            password: read_password(&name, password_stdin)?,
            username: name,
            email,
            groups,
        },
        UserCommand::List => Request::List,
        UserCommand::Passwd {
            name,
            password_stdin,
        } => Request::Passwd {
            password: read_password(&name, password_stdin)?,
            username: name,
        },
        UserCommand::Del { name } => Request::Del { username: name },
        UserCommand::Groups { name, groups } => Request::Groups {
            username: name,
            groups,
        },
        UserCommand::Unban { name, address } => Request::Unban {
            username: name,
            address,
        },
        UserCommand::Totp { name, reset } => Request::Totp {
            username: name,
            reset,
        },
        UserCommand::Sessions { name, revoke, all } => Request::Sessions {
            username: name,
            revoke: match (revoke, all) {
                (Some(id), _) => Some(EndSession::One(id)),
                (None, true) => Some(EndSession::All),
                (None, false) => None,
            },
        },
        UserCommand::Export => Request::Export,
        UserCommand::Import { file } => Request::Import {
            file: crate::service::UserFile::parse(&read_file(&file)?)
                .map_err(|e| Error::config(format_args!("{}: {e}", file.display())))?,
        },
        UserCommand::Keys { name, revoke, all } => Request::Keys {
            username: name,
            revoke: match (revoke, all) {
                (Some(id), _) => Some(Revoke::One(id)),
                (None, true) => Some(Revoke::All),
                (None, false) => None,
            },
        },
    };
    match call(&config, request, create)? {
        Reply::Done { message } => print(message),
        Reply::Users { users } => print_users(&users),
        Reply::Keys { keys } => print_keys(&keys),
        Reply::Sessions { sessions } => print_sessions(&sessions),
        Reply::Failed { error } => Err(Error::config(error)),
    }
}

/// A users file's text (`-`: standard input).
fn read_file(path: &std::path::Path) -> Result<String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|e| Error::config(format_args!("cannot read {}: {e}", path.display())))
}

/// Sends `request` to the running server, or, when none answers, runs it
/// on the database directly.
pub(super) fn call(config: &Config, request: Request, create: bool) -> Result<Reply> {
    match admin::client::call(&config.data_dir, &request)? {
        Some(reply) => Ok(reply),
        None => offline(config, request, create),
    }
}

/// Runs a user command on the database directly (no server is running).
pub(super) fn offline(config: &Config, request: Request, create: bool) -> Result<Reply> {
    let opened = if create {
        Database::open(&config.data_dir)
    } else {
        Database::open_existing(
            &config.data_dir,
            "; `latch user --create ...` makes a new one",
        )
    };
    let database = opened.map_err(|e| match e.kind() {
        Kind::Locked => Error::config(format_args!(
            "{e}, but nothing answers on {}",
            admin::socket_path(&config.data_dir).display()
        )),
        _ => e,
    })?;
    // Offline commands never sign or verify a token, so a key that cannot
    // be read here (it may be root's) is replaced by a throwaway one
    // rather than refused.
    let current = match keyfile::read_current(config) {
        Ok(Some(key)) => key,
        _ => crypto::random_bytes::<32>()?.to_vec(),
    };
    let keys = KeyMaterial {
        current,
        previous: Vec::new(),
        // Offline commands never open a sealed secret (a reset deletes it).
        storage: keyfile::read_storage_key(config).ok().flatten(),
    };
    let service = Service::open(config, database, &keys, Clock::system())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    runtime.block_on(async {
        let reply = admin::execute(&service, request).await;
        service.flush().await?;
        Ok(reply)
    })
}

/// A password from stdin (first line) or a no-echo prompt, typed twice.
fn read_password(name: &str, from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::config(format_args!("cannot read the password from stdin: {e}")))?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(Error::config("no password on stdin"));
        }
        return Ok(password.to_owned());
    }
    let prompt_failed = |e: std::io::Error| {
        Error::config(format_args!(
            "cannot prompt for the password ({e}); use --password-stdin"
        ))
    };
    let first =
        rpassword::prompt_password(format!("password for {name}: ")).map_err(prompt_failed)?;
    let second = rpassword::prompt_password("again: ").map_err(prompt_failed)?;
    if first != second {
        return Err(Error::config("the passwords do not match"));
    }
    Ok(first)
}

fn print_keys(keys: &[KeyInfo]) -> Result<()> {
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), utc);
    let rows: Vec<[String; 5]> = keys
        .iter()
        .map(|k| {
            [
                k.id.to_string(),
                k.name.clone(),
                utc(k.created_at),
                when(k.expires_at),
                when(k.last_used_at),
            ]
        })
        .collect();
    print_table(["ID", "NAME", "CREATED", "EXPIRES", "LAST_USED"], &rows)
}

fn print_sessions(sessions: &[SessionInfo]) -> Result<()> {
    let rows: Vec<[String; 7]> = sessions
        .iter()
        .map(|s| {
            [
                s.id.to_string(),
                utc(s.created_at),
                utc(s.last_seen_at),
                utc(s.expires_at),
                if s.remember { "yes" } else { "no" }.to_owned(),
                s.address.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                s.user_agent.chars().take(60).collect(),
            ]
        })
        .collect();
    print_table(
        [
            "ID",
            "CREATED",
            "LAST_SEEN",
            "EXPIRES",
            "REMEMBERED",
            "ADDRESS",
            "USER_AGENT",
        ],
        &rows,
    )
}

fn print_users(users: &[UserInfo]) -> Result<()> {
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            [
                u.id.to_string(),
                u.username.clone(),
                u.email.clone().unwrap_or_else(|| "-".into()),
                if u.groups.is_empty() {
                    "-".into()
                } else {
                    u.groups.join(",")
                },
            ]
        })
        .collect();
    print_table(["ID", "USERNAME", "EMAIL", "GROUPS"], &rows)
}

/// Columns padded to their widest cell, the header first.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Result<()> {
    let header = header.map(String::from);
    let mut widths = [0usize; N];
    for row in std::iter::once(&header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    print(out.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_991_400), "2026-11-29T22:30:00Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
