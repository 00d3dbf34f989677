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
pub mod flights;
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
    /// The operations listener (`[ops] listen`), bound by [`App::open`] so
    /// a busy port stops start-up; [`run`] takes it.
    ops: std::sync::Mutex<Option<std::net::TcpListener>>,
    /// Where the operations listener listens, when it does.
    ops_addr: Option<std::net::SocketAddr>,
    /// Peers already warned about for sending forwarding headers without
    /// being trusted (bounded: a warning per peer, not per request).
    warned: std::sync::Mutex<std::collections::HashSet<std::net::IpAddr>>,
}

/// Most untrusted peers remembered for [`App::warn_untrusted_proxy`].
const MAX_WARNED: usize = 256;

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
        let ops = match config.ops.listen {
            Some(addr) => Some(bind_ops(addr)?),
            None => None,
        };
        let ops_addr = ops
            .as_ref()
            .map(|l| l.local_addr().map_err(Error::internal))
            .transpose()?;
        let admin = admin::bind(&config.data_dir)?;
        Ok(App {
            config,
            auth,
            admin: std::sync::Mutex::new(Some(admin)),
            ops: std::sync::Mutex::new(ops),
            ops_addr,
            warned: std::sync::Mutex::default(),
        })
    }

    /// Where the operations listener listens (port 0 resolved), if it does.
    pub fn ops_addr(&self) -> Option<std::net::SocketAddr> {
        self.ops_addr
    }

    /// Logs, once per peer, that `peer` sends forwarding headers but is not
    /// a trusted proxy: its forwarded URL, method and client address are
    /// ignored, which behind a proxy looks like a broken redirect.
    pub fn warn_untrusted_proxy(&self, peer: std::net::IpAddr) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(peer) {
            tracing::warn!(
                %peer,
                "a peer sends X-Forwarded-* or X-Original-* headers but is not in [forward_auth] trusted_proxies: they are ignored (the original URL, method and client address); add the proxy's address there if it is yours"
            );
        }
    }
}

/// Binds the operations listener; a busy port stops start-up.
fn bind_ops(addr: std::net::SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::config(format_args!("cannot listen on {addr} ([ops] listen): {e}")))?;
    listener.set_nonblocking(true).map_err(Error::internal)?;
    Ok(listener)
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
    let ops_listener = app.ops.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (stop_ops, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops = match ops_listener {
        Some(listener) => {
            let listener = TcpListener::from_std(listener).map_err(Error::internal)?;
            let app = app.clone();
            Some(tokio::spawn(async move {
                let stopped = async {
                    let _ = ops_stopped.await;
                };
                http::serve(listener, http::Listener::Ops, app, stopped).await
            }))
        }
        None => None,
    };
    let served = http::serve(listener, http::Listener::Main, app.clone(), shutdown).await;
    let _ = stop_ops.send(());
    if let Some(ops) = ops {
        if let Ok(Err(e)) = ops.await {
            tracing::warn!("the operations listener failed: {e}");
        }
    }
    admin.abort();
    housekeeping.abort();
    let _ = std::fs::remove_file(admin::socket_path(&app.config.data_dir));
    app.auth.flush_key_uses()?;
    app.auth.store().flush().await?;
    served
}
