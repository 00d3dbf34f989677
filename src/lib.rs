//! latch: a single-binary token-authentication appliance.
//!
//! # Layout
//!
//! Layers, each calling only the one below: `http`, `admin` and `cli` call
//! [`service`], which alone calls its private store and hasher.
//!
//! - [`cli`]: the `latch` command line (a thin `main` calls [`cli::main`]).
//! - [`http`]: the hyper server, the router (one `match`), the handlers.
//! - [`admin`]: the Unix socket `latch user` talks to while a server runs.
//! - [`service`]: every flow of the domain, over the store (private).
//! - [`config`]: raw TOML and environment, validated into [`Config`].
//! - [`access`]: the access rules, and the one place that decides
//!   "may they in?" for forward auth.
//! - [`model`]: the domain's types and id newtypes.
//! - [`token`], [`credentials`], [`redirect`]: pure codecs and rules (JWTs,
//!   credential parsing, where `rd` may go).
//! - [`crypto`]: every primitive (ring, scrypt, base64) in one file.
//! - [`audit`], [`metrics`], [`notify`]: what latch tells its operator.
//! - [`snippet`]: the proxy configurations `latch proxy-snippet` prints.
//! - [`clock`]: the one clock, movable in tests.
//! - [`error`]: the one error type, public message apart from its cause.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
pub mod admin;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod error;
mod fsutil;
pub mod http;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod otp;
mod recent;
pub mod redirect;
pub mod service;
pub mod snippet;
pub mod token;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::net::TcpListener;

pub use crate::clock::Clock;
pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::service::Service;

/// Everything a request handler can reach.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The domain: every flow goes through it.
    pub service: Service,
    /// The login and logout forms' tokens.
    pub forms: http::csrf::Forms,
    /// The access rules in force: the configuration's, until a reload
    /// replaces them.
    access: RwLock<Arc<access::AccessControl>>,
    /// Bumped by every reload, so a thread's copy of the rules knows when
    /// it is stale ([`App::with_access`]).
    access_generation: AtomicU64,
    /// Tells this app's rules apart from another's in a thread's copy
    /// (tests run several apps in one process).
    id: u64,
    /// The admin socket, bound by [`App::open`] so it exists before the
    /// server says it is listening; [`run`] takes it.
    admin: Mutex<Option<std::os::unix::net::UnixListener>>,
    /// The operations listener (`[ops] listen`), bound by [`App::open`] so
    /// a busy port stops start-up; [`run`] takes it.
    ops: Mutex<Option<std::net::TcpListener>>,
    /// Where the operations listener listens, when it does.
    ops_addr: Option<SocketAddr>,
    /// Peers already warned about for sending forwarding headers without
    /// being trusted (bounded: a warning per peer, not per request).
    warned: Mutex<HashSet<IpAddr>>,
    /// Forwarded hosts already warned about for being under none of
    /// `[[forward_auth.domains]]` (bounded likewise).
    warned_hosts: Mutex<HashSet<String>>,
}

/// The next [`App`]'s id.
static NEXT_APP: AtomicU64 = AtomicU64::new(1);

/// Most untrusted peers remembered for [`App::warn_untrusted_proxy`].
const MAX_WARNED: usize = 256;

impl App {
    /// Opens the database, loads (or creates) the signing key, wires the
    /// service, and binds the operations listener and the admin socket.
    /// Fails with one clear error when the data directory is locked,
    /// corrupt or unwritable, or a port busy.
    pub fn open(config: Config, clock: Clock) -> Result<App> {
        let database = service::Database::open(&config.data_dir)?;
        // A busy port is reported before any key file is made.
        let ops = config.ops.listen.map(bind_ops).transpose()?;
        // Second factors are sealed with the storage key: a missing key
        // file is then a lost key, never one to make anew.
        if database.holds_second_factors() && !config.storage_key_file.exists() {
            return Err(Error::config(format_args!(
                "no storage key at {} ([storage] encryption_key_file), but the database holds \
                 second factors sealed with one: put that key back (a new one would open none)",
                config.storage_key_file.display()
            )));
        }
        let keys = config::keyfile::load_or_create(&config)?;
        let forms = http::csrf::Forms::new(&keys.current);
        let service = Service::open(&config, database, &keys, clock)?;
        service.check_storage_key(&config.storage_key_file)?;
        let ops_addr = ops
            .as_ref()
            .map(|l| l.local_addr().map_err(Error::internal))
            .transpose()?;
        let admin = admin::server::bind(&config.data_dir)?;
        Ok(App {
            access: RwLock::new(config.access.clone()),
            access_generation: AtomicU64::new(0),
            id: NEXT_APP.fetch_add(1, Ordering::Relaxed),
            config,
            service,
            forms,
            admin: Mutex::new(Some(admin)),
            ops: Mutex::new(ops),
            ops_addr,
            warned: Mutex::default(),
            warned_hosts: Mutex::default(),
        })
    }

    /// Tells this app apart from another in the same process (per-thread
    /// copies are keyed by it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bumped by every reload of the access rules.
    pub fn access_generation(&self) -> u64 {
        self.access_generation.load(Ordering::Acquire)
    }

    /// The access rules in force.
    pub fn access(&self) -> Arc<access::AccessControl> {
        self.access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `rules` in force for every request from now on (a reload).
    pub fn replace_access(&self, rules: access::AccessControl) {
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
        self.access_generation.fetch_add(1, Ordering::Release);
    }

    /// Runs `f` with the access rules in force, from this thread's copy:
    /// a request reads one atomic, takes no lock and touches no shared
    /// count, and a reload reaches every thread at its next request.
    pub fn with_access<R>(&self, f: impl FnOnce(&access::AccessControl) -> R) -> R {
        thread_local! {
            static RULES: std::cell::RefCell<Option<(u64, u64, Arc<access::AccessControl>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let generation = self.access_generation.load(Ordering::Acquire);
        RULES.with(|copy| {
            let fresh = matches!(
                &*copy.borrow(),
                Some((id, g, _)) if *id == self.id && *g == generation
            );
            if !fresh {
                *copy.borrow_mut() = Some((self.id, generation, self.access()));
            }
            let copy = copy.borrow();
            match &*copy {
                Some((_, _, rules)) => f(rules),
                None => f(&self.access()),
            }
        })
    }

    /// Reads `file` again and puts its access rules in force, if they
    /// compile and the test file they name passes (users looked up in
    /// this server's store). Nothing else is reloaded. On any failure the
    /// rules in force stay and the error says why.
    pub fn reload_access(&self, file: &config::ConfigFile) -> Result<usize> {
        let rules = (*Config::load_from(file)?.access).clone();
        self.check_access_tests(&rules)?;
        let count = rules.rules().len();
        self.replace_access(rules);
        Ok(count)
    }

    /// Runs the test file `rules` name, if any, with users looked up in
    /// this server's store: an error names the first failing case. `serve`
    /// runs it at start and a reload before it swaps, so the rules in force
    /// always passed their tests.
    pub fn check_access_tests(&self, rules: &access::AccessControl) -> Result<()> {
        let Some(path) = &rules.tests else {
            return Ok(());
        };
        let cases = access::cases::load(path)?;
        let report =
            access::cases::run(rules, &cases, |name| match self.service.user_named(name) {
                Ok(user) => Ok(Some(user.groups)),
                Err(e) if e.kind() == error::Kind::NotFound => Ok(None),
                Err(e) => Err(e),
            })?;
        match report.failures.first() {
            Some(first) => Err(Error::config(format_args!(
                "{} of {} access tests in {} fail, the first: {first}",
                report.failures.len(),
                cases.len(),
                path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Where the operations listener listens (port 0 resolved), if it does.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// Logs, once per peer, that `peer` sends forwarding headers but is not
    /// a trusted proxy: its forwarded URL, method and client address are
    /// ignored, which behind a proxy looks like a broken redirect.
    pub fn warn_untrusted_proxy(&self, peer: IpAddr) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(peer) {
            tracing::warn!(
                %peer,
                "a peer sends X-Forwarded-* or X-Original-* headers but is not in \
                 [forward_auth] trusted_proxies: they are ignored (the original URL, method \
                 and client address); add the proxy's address there if it is yours"
            );
        }
    }
}

impl App {
    /// Logs, once per host, that a forwarded host is under none of
    /// `[[forward_auth.domains]]` (its requests get 403).
    pub fn warn_once_about_host(&self, host: &str) {
        let mut warned = self.warned_hosts.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(host.to_owned()) {
            tracing::warn!(
                host = %host.escape_debug(),
                "forward auth: the host is under none of [[forward_auth.domains]] (or the \
                 proxy did not say which host): its requests get 403"
            );
        }
    }
}

/// Binds the operations listener; a busy port stops start-up.
fn bind_ops(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::config(format_args!("cannot listen on {addr} ([ops] listen): {e}")))?;
    listener.set_nonblocking(true).map_err(Error::internal)?;
    Ok(listener)
}

/// Serves `app` on `listener` (and the operations listener and the admin
/// socket) until `shutdown` resolves; then drains open requests and
/// flushes the store. Tests pass a `127.0.0.1:0` listener and their own
/// shutdown future, and keep a clone of `app` to reach its service.
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
    let admin = tokio::spawn(admin::server::serve(admin_listener, app.clone()));
    {
        let app = app.clone();
        tokio::task::spawn_blocking(move || match app.service.load_revocations() {
            Ok(n) => tracing::debug!(revocations = n, "revocations loaded"),
            Err(e) => {
                tracing::error!("loading revocations failed (the store is used instead): {e}")
            }
        });
    }
    let housekeeping = tokio::spawn({
        let app = app.clone();
        async move { app.service.housekeeping().await }
    });
    let ops = spawn_ops(&app)?;
    let served = http::serve(listener, http::Listener::Main, app.clone(), shutdown).await;
    if let Some(ops) = ops {
        ops.finish().await;
    }
    admin.abort();
    housekeeping.abort();
    let _ = std::fs::remove_file(admin::socket_path(&app.config.data_dir));
    app.service.flush().await?;
    served
}

/// The operations listener's task, and how to stop it.
struct OpsTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl OpsTask {
    /// Stops it and waits for it to drain.
    async fn finish(self) {
        let _ = self.stop.send(());
        if let Ok(Err(e)) = self.task.await {
            tracing::warn!("the operations listener failed: {e}");
        }
    }
}

/// Serves the operations listener, when there is one.
fn spawn_ops(app: &Arc<App>) -> Result<Option<OpsTask>> {
    let Some(listener) = app.ops.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return Ok(None);
    };
    let listener = TcpListener::from_std(listener).map_err(Error::internal)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = app.clone();
    let task = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        http::serve(listener, http::Listener::Ops, app, stopped).await
    });
    Ok(Some(OpsTask { stop, task }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_is_reported_before_a_key_file_is_made() {
        let dir = fsutil::TempDir::new("app-locked");
        let held = service::Database::open(dir.path()).unwrap();
        let key_file = dir.path().join("elsewhere").join("secret.key");
        let config = Config {
            key: config::KeySource::File(key_file.clone()),
            ..service::tests::config(dir.path())
        };
        let e = App::open(config, Clock::frozen()).err().unwrap();
        assert_eq!(e.kind(), error::Kind::Locked, "{e}");
        assert!(!key_file.exists(), "a failed start made a key file");
        drop(held);
    }
}
