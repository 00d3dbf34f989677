//! The `latch` command line. Every failure prints one line and exits
//! non-zero.
//!
//! - `mod.rs`: parsing, `serve`, `keygen`, `check-config`, printing;
//! - `user.rs`: `latch user ...`, over the admin socket or offline;
//! - `backup.rs`: `latch backup` and `latch restore`;
//! - `access.rs`: `latch access check` and `latch access test`;
//! - `setup.rs`: `latch init` and `latch proxy-snippet`.
//!
//! The CLI owns arguments, prompts and what is printed; it carries out no
//! flow itself (the admin protocol and the service do) and decides on
//! errors by their [`crate::error::Kind`], never by their text.

mod access;
mod backup;
mod setup;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{keyfile, Config, ConfigFile, KeySource, LogFormat};
use crate::error::{Error, Result};
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
        /// Config file (default: $LATCH_CONFIG, else /etc/latch/latch.toml if present, else
        /// ./latch.toml if present, else built-in defaults)
        #[arg(long, short, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Write a first configuration for your domain (a drop-in beside an
    /// existing config file, else a new latch.toml) and a signing key
    Init(setup::InitArgs),
    /// Print a proxy configuration that puts an app behind latch
    ProxySnippet {
        #[command(flatten)]
        args: setup::SnippetArgs,
        /// Config file (same lookup as `serve`)
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
        /// Leave out every second factor (when the storage key they were
        /// sealed with is lost): those users sign in with the password
        /// alone until they set one up again
        #[arg(long)]
        without_second_factors: bool,
    },
    /// Ask the access rules: which decision a request gets, and why
    Access {
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Manage users (works whether or not a server runs on the same data)
    User {
        /// Config file (same lookup as `serve`)
        #[arg(long, short, value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        /// Make a new database when there is none at data_dir (and no
        /// server answers): else the command stops, naming the path
        #[arg(long, global = true)]
        create: bool,
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum AccessCommand {
    /// Print the decision for one request and the rule that made it
    Check {
        /// The signed-in user (none: a visitor not signed in)
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The user's groups, repeatable (default: the user's groups in the database)
        #[arg(long = "group", value_name = "G", requires = "user")]
        groups: Vec<String>,
        /// The absolute URL asked for
        #[arg(long)]
        url: String,
        /// The method
        #[arg(long, default_value = "GET")]
        method: String,
        /// The client's address (without it, no `networks` rule matches)
        #[arg(long, value_name = "IP")]
        from: Option<String>,
    },
    /// Run a policy test file: every case must get its expected decision
    Test {
        /// The TOML file of [[case]] tables
        file: PathBuf,
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
    /// Show whether a user has a second factor (TOTP), or remove it
    Totp {
        /// Username
        name: String,
        /// Remove it: the password alone signs the user in again (audited
        /// as a warning)
        #[arg(long)]
        reset: bool,
    },
    /// List a user's sign-in sessions, or end one or all of them
    Sessions {
        /// Username
        name: String,
        /// End the session with this id (ids may start with `-`)
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "all",
            allow_hyphen_values = true
        )]
        revoke: Option<crate::model::SessionId>,
        /// End every session of the user
        #[arg(long)]
        all: bool,
    },
    /// Print every user as a TOML users file (names, emails, groups and
    /// password hashes; no other secret)
    Export,
    /// Add or change users as a TOML users file says, all or nothing;
    /// a second run changes nothing
    Import {
        /// The users file (`-` reads standard input)
        file: PathBuf,
    },
    /// List a user's API keys, or revoke one or all of them
    Keys {
        /// Username
        name: String,
        /// Revoke the key with this id
        #[arg(long, value_name = "ID", conflicts_with = "all")]
        revoke: Option<crate::model::KeyId>,
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
            // The help of the command that lacks a subcommand, whole.
            eprint!("latch: a command is required\n\n{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            // clap's whole message: what is wrong (the missing argument
            // named), the usage line, where to find more.
            let text = e.to_string();
            eprint!("latch: {}", text.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve { config } => serve(locate(config)),
        Command::CheckConfig { config } => check_config(locate(config)),
        Command::User {
            config,
            create,
            command,
        } => user::run(load(config), command, create),
        Command::Access { config, command } => access(load(config), command),
        Command::Init(args) => setup::init(args),
        Command::ProxySnippet { args, config } => setup::proxy_snippet(load(config), args),
        Command::Keygen => keygen(),
        Command::Backup {
            file,
            force,
            config,
        } => backup::backup(load(config), &file, force),
        Command::Restore {
            file,
            config,
            without_second_factors,
        } => backup::restore(load(config), &file, without_second_factors),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `latch access check` and `latch access test` on `config`.
fn access(config: Result<Config>, command: AccessCommand) -> Result<()> {
    match command {
        AccessCommand::Check {
            user,
            groups,
            url,
            method,
            from,
        } => access::check(
            config,
            crate::access::cases::Case {
                user,
                groups: (!groups.is_empty()).then_some(groups),
                url,
                method: Some(method),
                from,
                expect: String::new(),
            },
        ),
        AccessCommand::Test { file } => access::test(config, &file),
    }
}

/// Finds the configuration the same way for every subcommand (`--config`,
/// `$LATCH_CONFIG`, `/etc/latch/latch.toml`, `./latch.toml`, defaults) and
/// says which, once, on stderr.
fn locate(flag: Option<PathBuf>) -> ConfigFile {
    let file = ConfigFile::locate(flag.as_deref());
    eprintln!("using {file}");
    file
}

/// [`locate`], then loads it.
fn load(flag: Option<PathBuf>) -> Result<Config> {
    Config::load_from(&locate(flag))
}

fn serve(file: ConfigFile) -> Result<()> {
    let config = Config::load_from(&file)?;
    let logs = tracing_subscriber::fmt()
        .with_max_level(config.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.limits.workers)
        .enable_all()
        .build()
        .map_err(|e| Error::config(format_args!("cannot start the runtime: {e}")))?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    runtime.block_on(async {
        let app = App::open(config, Clock::system())?;
        // Rules a reload would refuse never go live by a restart either.
        app.check_access_tests(&app.access())?;
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
        let app = std::sync::Arc::new(app);
        reload_on_hangup(app.clone(), file)?;
        crate::run(listener, app, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// On each SIGHUP, reloads the access rules from `file` (nothing else):
/// the new rules serve every request from then on, open connections
/// stay; a file that fails (a bad rule, a failing test file) keeps the
/// rules in force and says why.
fn reload_on_hangup(app: std::sync::Arc<App>, file: ConfigFile) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(Error::internal)?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let app = app.clone();
            let file = file.clone();
            let outcome = tokio::task::spawn_blocking(move || app.reload_access(&file)).await;
            match outcome {
                Ok(Ok(n)) => tracing::info!(
                    rules = n,
                    "reloaded: the access rules from the file are in force (other keys need \
                     a restart)"
                ),
                Ok(Err(e)) => {
                    tracing::warn!("reload refused, the access rules in force stay: {e}")
                }
                Err(e) => tracing::error!("reload failed: {e}"),
            }
        }
    });
    Ok(())
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
    let key = keyfile::read_current(&config)?;
    let mut warnings = config.warnings();
    if let (None, KeySource::File(path)) = (&key, &config.key) {
        warnings.push(format!(
            "secret_key_file {} does not exist: `latch serve` will create it with a new key \
             (tokens signed with any other key are refused)",
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
    match &config.access.tests {
        Some(tests) => print(format_args!("# {}", access::run_file(&config, tests)?)),
        None => Ok(()),
    }
}
