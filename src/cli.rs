//! The `latch` command line. Every failure prints one line and exits
//! non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::config::{Config, KeySource};
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
    tracing_subscriber::fmt()
        .with_max_level(config.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
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
        eprintln!("listening on {local}");
        crate::run(listener, app, shutdown).await?;
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
