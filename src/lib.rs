//! latch: a single-binary token-authentication appliance.
//!
//! # Layout
//!
//! - [`cli`]: the `latch` command line (thin `main` calls [`cli::main`]).
//! - [`config`]: raw TOML + environment, validated into [`config::Config`].
//! - [`http`]: the hyper server, the router (one `match`), handlers.
//! - [`auth`]: the domain: credentials in, identities out; tokens, API keys.
//! - [`accounts`]: users, passwords, groups, per-user token cutoffs.
//! - [`admin`]: the Unix socket `latch user` talks to while a server runs.
//! - [`credentials`]: parsing `Authorization`, `Authentication-Token`, `?auth_token=`.
//! - [`token`]: the JWT HS256 codec.
//! - [`hasher`]: the bounded scrypt pool.
//! - [`store`]: sled and the versioned on-disk records.
//! - [`crypto`]: every primitive (ring, scrypt, base64) in one file.
//! - [`clock`]: the one clock, movable in tests.
//! - [`error`]: the one error type, public message apart from its cause.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod error;
mod fsutil;
pub mod hasher;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod password_cache;
pub mod redirect;
pub mod regulation;
pub mod revoked;
pub mod store;
pub mod token;
pub mod verified;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::clock::Clock;
pub use crate::config::Config;
pub use crate::error::{Error, Result};

/// Everything a request handler can reach.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The domain service.
    pub auth: auth::Auth,
    /// The admin socket, bound by [`App::open`] so it exists before the
    /// server says it is listening; [`run`] takes it.
    admin: std::sync::Mutex<Option<std::os::unix::net::UnixListener>>,
}

impl App {
    /// Opens the store and loads (or creates) the signing key. Fails with a
    /// clear error when the data directory is locked or corrupt.
    pub fn open(config: Config, clock: Clock) -> Result<App> {
        let store = store::Store::open(&config.data_dir)?;
        let (key, created) = config.load_or_create_key()?;
        if let Some(path) = created {
            tracing::info!("wrote a new secret key to {}", path.display());
        }
        let previous = config.read_previous_keys()?;
        let auth = auth::Auth::new(&config, store, &key, &previous, clock)?;
        let admin = admin::bind(&config.data_dir)?;
        Ok(App {
            config,
            auth,
            admin: std::sync::Mutex::new(Some(admin)),
        })
    }
}

/// Serves `app` on `listener` (and the admin socket in the data directory)
/// until `shutdown` resolves; then drains open requests and flushes the
/// store. Tests pass a `127.0.0.1:0` listener and their own shutdown future,
/// and keep a clone of `app` to reach its internals.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let admin_listener = app
        .admin
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| Error::internal("latch::run called twice on one App"))?;
    let admin = tokio::spawn(admin::serve(admin_listener, app.clone()));
    {
        let app = app.clone();
        tokio::task::spawn_blocking(move || match app.auth.load_revocations() {
            Ok(n) => tracing::debug!(revocations = n, "revocations loaded"),
            Err(e) => {
                tracing::error!("loading revocations failed (the store is used instead): {e}")
            }
        });
    }
    let housekeeping = tokio::spawn({
        let app = app.clone();
        async move { app.auth.housekeeping().await }
    });
    let served = http::serve(listener, app.clone(), shutdown).await;
    admin.abort();
    housekeeping.abort();
    let _ = std::fs::remove_file(admin::socket_path(&app.config.data_dir));
    app.auth.flush_key_uses()?;
    app.auth.store().flush().await?;
    served
}
