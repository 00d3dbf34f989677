//! The `latch` command line. Every failure prints one line and exits
//! non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::admin::{self, KeyInfo, Reply, Request, Revoke, UserInfo};
use crate::auth::Auth;
use crate::config::{Config, ConfigFile, KeySource, LogFormat};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::{crypto, App, Clock};

/// A single-binary token-authentication appliance.
#[derive(Parser)]
#[command(name = "latch", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Serve {
        /// Config file (default: $LATCH_CONFIG, else /etc/latch/latch.toml if present, else built-in defaults)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Print a fresh random signing key (base64 of 32 random bytes)
    Keygen,
    /// Validate the configuration and print it with secrets masked
    CheckConfig {
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Write a consistent backup of the database to FILE (works while the server runs)
    Backup {
        /// The backup file to write (created with mode 0600; `-` writes to standard output)
        file: PathBuf,
        /// Replace FILE if it exists (atomically)
        #[arg(long)]
        force: bool,
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Load a backup into an empty data directory (with the server stopped)
    Restore {
        /// The backup file to read (`-` reads standard input)
        file: PathBuf,
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Manage users (works whether or not a server runs on the same data)
    User {
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user
    Add {
        /// Username
        name: String,
        /// Email address (unique; also accepted as the login name)
        #[arg(long, value_name = "E")]
        email: Option<String>,
        /// A group (repeatable)
        #[arg(long = "group", value_name = "G")]
        groups: Vec<String>,
        /// Read the password from the first line of standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
    /// Set a user's password (earlier tokens are refused)
    Passwd {
        /// Username
        name: String,
        /// Read the password from the first line of standard input instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user, their tokens and API keys
    Del {
        /// Username
        name: String,
    },
    /// Set a user's groups (none clears them)
    Groups {
        /// Username
        name: String,
        /// The groups
        groups: Vec<String>,
    },
    /// Lift the brute-force ban of an account (NAME) or of a client address
    Unban {
        /// Username
        #[arg(required_unless_present = "address", conflicts_with = "address")]
        name: Option<String>,
        /// A client address instead of an account
        #[arg(long, value_name = "ADDR")]
        address: Option<std::net::IpAddr>,
    },
    /// List a user's API keys, or revoke one or all of them
    Keys {
        /// Username
        name: String,
        /// Revoke the key with this id
        #[arg(long, value_name = "ID", conflicts_with = "all")]
        revoke: Option<u64>,
        /// Revoke every key of the user
        #[arg(long)]
        all: bool,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("latch: a command is required (see `latch --help`)");
            return ExitCode::from(2);
        }
        Err(e) => {
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("latch: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { config } => serve(load(config)),
        Command::Keygen => keygen(),
        Command::CheckConfig { config } => check_config(ConfigFile::locate(config.as_deref())),
        Command::User { config, command } => user(load(config), command),
        Command::Backup {
            file,
            force,
            config,
        } => backup(load(config), &file, force),
        Command::Restore { file, config } => restore(load(config), &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Finds the configuration the same way for every subcommand and loads it.
fn load(flag: Option<PathBuf>) -> Result<Config> {
    Config::load_from(&ConfigFile::locate(flag.as_deref()))
}

fn serve(config: Result<Config>) -> Result<()> {
    let config = config?;
    let logs = tracing_subscriber::fmt()
        .with_max_level(config.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::config(format_args!("cannot start the runtime: {e}")))?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    runtime.block_on(async {
        let app = App::open(config, Clock::system())?;
        let addr = app.config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::config(format_args!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().map_err(Error::internal)?;
        let shutdown = shutdown_signal()?;
        if let Some(ops) = app.ops_addr() {
            eprintln!("ops listening on {ops}");
        }
        eprintln!("listening on {local}");
        crate::notify::notify("READY=1");
        let shutdown = async {
            shutdown.await;
            crate::notify::notify("STOPPING=1");
        };
        crate::run(listener, std::sync::Arc::new(app), shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(Error::internal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::internal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Writes to stdout; a closed pipe (`latch check-config | head`) is not an
/// error worth a panic.
fn print(text: impl std::fmt::Display) -> Result<()> {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::internal(format_args!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn keygen() -> Result<()> {
    print(crypto::b64_encode(&crypto::random_bytes::<32>()?))
}

/// Validates and prints the effective configuration, with which file it
/// came from first (a TOML comment) and the traps found on stderr.
fn check_config(file: ConfigFile) -> Result<()> {
    let config = Config::load_from(&file)?;
    let key = config.read_key()?;
    let mut warnings = config.warnings();
    if let (None, KeySource::File(path)) = (&key, &config.key) {
        warnings.push(format!(
            "secret_key_file {} does not exist: `latch serve` will create it with a new key (tokens signed with any other key are refused)",
            path.display()
        ));
    }
    for warning in &warnings {
        eprintln!("latch: warning: {warning}");
    }
    print(format_args!("# {file}"))?;
    print(&config)?;
    if let (None, KeySource::File(path)) = (key, &config.key) {
        print(format_args!(
            "# {} does not exist yet: `latch serve` will create it",
            path.display()
        ))?;
    }
    Ok(())
}

fn user(config: Result<Config>, command: UserCommand) -> Result<()> {
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
        UserCommand::Keys { name, revoke, all } => Request::Keys {
            username: name,
            revoke: match (revoke, all) {
                (Some(id), _) => Some(Revoke::One(id)),
                (None, true) => Some(Revoke::All),
                (None, false) => None,
            },
        },
    };
    let reply = match admin::call(&config.data_dir, &request)? {
        Some(reply) => reply,
        None => offline(&config, request)?,
    };
    match reply {
        Reply::Done { message } => print(message),
        Reply::Users { users } => print_users(&users),
        Reply::Keys { keys } => print_keys(&keys),
        Reply::Failed { error } => Err(Error::config(error)),
    }
}

/// Runs a user command on the database directly (no server is running).
fn offline(config: &Config, request: Request) -> Result<Reply> {
    let store = Store::open(&config.data_dir).map_err(|e| {
        if e.to_string().contains("in use") {
            Error::config(format_args!(
                "{e}, but nothing answers on {}",
                admin::socket_path(&config.data_dir).display()
            ))
        } else {
            e
        }
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    // Wired as the server wires it. Offline commands never sign or verify
    // a token, so a key that cannot be read here (it may be root's) is
    // replaced by a throwaway one rather than refused.
    let key = match config.read_key() {
        Ok(Some(key)) => key,
        _ => crypto::random_bytes::<32>()?.to_vec(),
    };
    runtime.block_on(async {
        let auth = Auth::new(config, store, &key, &[], Clock::system())?;
        let reply = admin::execute(&auth, request).await;
        auth.store().flush().await?;
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

/// Seconds since the epoch as `2026-11-29T22:30:00Z` (UTC).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86400, secs % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
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

/// `latch backup FILE`: from the running server over the admin socket, or
/// from the database directly when none runs. The file holds password and
/// key hashes: it is created with mode 0600 whatever the umask, never
/// replaces an existing file without `--force`, and appears only once
/// complete (written to a private temporary file, synced, then linked or,
/// with `--force`, renamed into place). `-` writes to standard output.
fn backup(config: Result<Config>, file: &std::path::Path, force: bool) -> Result<()> {
    use std::io::Write as _;
    let config = config?;
    if file == std::path::Path::new("-") {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let count = export(&config, &mut out)?;
        out.flush()
            .map_err(|e| Error::config(format_args!("cannot write the backup: {e}")))?;
        eprintln!("wrote {count} entries to standard output");
        return Ok(());
    }
    if !force && file.symlink_metadata().is_ok() {
        return Err(Error::config(format_args!(
            "{} exists; use --force to replace it",
            file.display()
        )));
    }
    let tmp = temporary_beside(file)?;
    let fail =
        |e: std::io::Error| Error::config(format_args!("cannot write {}: {e}", file.display()));
    let written = (|| -> Result<usize> {
        let count = {
            let handle = std::fs::File::options()
                .write(true)
                .open(&tmp)
                .map_err(fail)?;
            let mut out = std::io::BufWriter::new(handle);
            let count = export(&config, &mut out)?;
            out.flush().map_err(fail)?;
            out.get_ref().sync_all().map_err(fail)?;
            count
        };
        if force {
            std::fs::rename(&tmp, file).map_err(fail)?;
        } else {
            // link(2) never replaces: a file created meanwhile is kept.
            std::fs::hard_link(&tmp, file).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::config(format_args!(
                    "{} exists; use --force to replace it",
                    file.display()
                )),
                _ => fail(e),
            })?;
        }
        Ok(count)
    })();
    let _ = std::fs::remove_file(&tmp);
    print(format_args!(
        "wrote {} entries to {}",
        written?,
        file.display()
    ))
}

/// The export, from the running server or from the database directly.
fn export(config: &Config, out: &mut impl std::io::Write) -> Result<usize> {
    match admin::call_backup(&config.data_dir, out)? {
        Some(count) => Ok(count),
        None => Store::open(&config.data_dir)?.export(out),
    }
}

/// Creates an empty private (0600) file with a fresh name in `file`'s
/// directory, exclusively.
fn temporary_beside(file: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let name = file
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    let suffix = crypto::b64url_encode(&crypto::random_bytes::<6>()?);
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::config(format_args!("cannot create {}: {e}", tmp.display())))?;
    Ok(tmp)
}

/// `latch restore FILE`: into an empty data directory, server stopped.
fn restore(config: Result<Config>, file: &std::path::Path) -> Result<()> {
    let config = config?;
    let input: Box<dyn std::io::Read> = if file == std::path::Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| Error::config(format_args!("cannot read {}: {e}", file.display())))?,
        )
    };
    let mut store = Store::open(&config.data_dir).map_err(|e| {
        if e.to_string().contains("in use") {
            Error::config(format_args!("{e}; stop the server before restoring"))
        } else {
            e
        }
    })?;
    let count = store.restore(std::io::BufReader::new(input))?;
    if let (Ok(None), KeySource::File(path)) = (config.read_key(), &config.key) {
        eprintln!(
            "latch: warning: the key file {} does not exist: restore the key that signed the tokens there before starting, or `latch serve` makes a new one (users and passwords survive; tokens and sessions do not)",
            path.display()
        );
    }
    print(format_args!(
        "restored {count} entries into {}",
        config.data_dir.display()
    ))
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
