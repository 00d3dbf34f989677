//! The `latch` command line. Every failure prints one line and exits
//! non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::accounts::Accounts;
use crate::admin::{self, Reply, Request, UserInfo};
use crate::config::{Config, KeySource, LogFormat};
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
        /// The backup file to write (replaced atomically)
        file: PathBuf,
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Load a backup into an empty data directory (with the server stopped)
    Restore {
        /// The backup file to read
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
        Command::Serve { config } => serve(Config::load(config.as_deref())),
        Command::Keygen => keygen(),
        Command::CheckConfig { config } => check_config(Config::load(config.as_deref())),
        Command::User { config, command } => user(Config::load(config.as_deref()), command),
        Command::Backup { file, config } => backup(Config::load(config.as_deref()), &file),
        Command::Restore { file, config } => restore(Config::load(config.as_deref()), &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latch: {e}");
            ExitCode::FAILURE
        }
    }
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

fn check_config(config: Result<Config>) -> Result<()> {
    let config = config?;
    let key = config.read_key()?;
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
    };
    let reply = match admin::call(&config.data_dir, &request)? {
        Some(reply) => reply,
        None => offline(&config, request)?,
    };
    match reply {
        Reply::Done { message } => print(message),
        Reply::Users { users } => print_users(&users),
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
    runtime.block_on(async {
        let accounts = Accounts::new(
            config,
            store,
            Clock::system(),
            config.token_ttl.as_secs(),
            Default::default(),
        )?;
        let reply = admin::execute(&accounts, request).await;
        accounts.store().flush().await?;
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
    let header = ["ID", "USERNAME", "EMAIL", "GROUPS"].map(String::from);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
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
/// from the database directly when none runs. Written to `FILE.tmp`, then
/// renamed, so a failed backup never replaces a good one.
fn backup(config: Result<Config>, file: &std::path::Path) -> Result<()> {
    use std::io::Write as _;
    let config = config?;
    let tmp = file.with_extension("tmp");
    let fail =
        |e: std::io::Error| Error::config(format_args!("cannot write {}: {e}", tmp.display()));
    let count = {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(fail)?);
        let count = match admin::call_backup(&config.data_dir, &mut out)? {
            Some(count) => count,
            None => Store::open(&config.data_dir)?.export(&mut out)?,
        };
        out.flush().map_err(fail)?;
        out.get_ref().sync_all().map_err(fail)?;
        count
    };
    std::fs::rename(&tmp, file).map_err(fail)?;
    print(format_args!("wrote {count} entries to {}", file.display()))
}

/// `latch restore FILE`: into an empty data directory, server stopped.
fn restore(config: Result<Config>, file: &std::path::Path) -> Result<()> {
    let config = config?;
    let input = std::fs::File::open(file)
        .map_err(|e| Error::config(format_args!("cannot read {}: {e}", file.display())))?;
    let mut store = Store::open(&config.data_dir).map_err(|e| {
        if e.to_string().contains("in use") {
            Error::config(format_args!("{e}; stop the server before restoring"))
        } else {
            e
        }
    })?;
    let count = store.restore(std::io::BufReader::new(input))?;
    print(format_args!(
        "restored {count} entries into {}",
        config.data_dir.display()
    ))
}
