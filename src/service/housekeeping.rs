//! What runs beside the requests: writing API key uses, pruning, the
//! health check, flushing at shutdown, and backups (a consistent export
//! while running; a restore into an empty directory when stopped).
//!
//! It owns the timers; what is pruned is the store's rule (`store/prune.rs`).

use std::io::{BufRead, Write};
use std::time::Duration;

use super::store::{Backup, Store};
use super::Service;
use crate::error::Result;
use crate::model::UserId;

/// How often pending key uses are written out.
const KEY_USE_FLUSH: Duration = Duration::from_secs(30);

/// How often expired revocations, cutoffs, bans and keys are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Seconds a cutoff is kept beyond the longest token lifetime before it is
/// pruned: a password check under way when it came may issue its token a
/// little after the cutoff's second.
const PRUNE_MARGIN: u64 = 600;

/// Runs `work`, which walks whole trees, beside the requests: on a
/// multi-thread runtime this worker's other tasks move to another thread
/// until it ends (with one worker, none would run meanwhile). On a
/// current-thread runtime it is simply awaited.
async fn beside_the_requests<F: std::future::Future>(work: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = Handle::current();
    match handle.runtime_flavor() {
        RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| handle.block_on(work)),
        _ => work.await,
    }
}

impl Service {
    /// Prunes what can no longer refuse anything; returns entries removed.
    pub async fn prune(&self) -> Result<usize> {
        let now = self.now();
        self.tokens.revoked.prune(now);
        self.regulator.prune(now);
        self.code_regulator.prune(now);
        self.password_cache.prune(now);
        let max_ttl = self.cutoffs.max_ttl.saturating_add(PRUNE_MARGIN);
        let pruned = self.store.prune(now, max_ttl).await?;
        self.cutoffs.forget_pruned(&pruned.cutoffs);
        Ok(pruned.removed)
    }

    /// Runs forever: writes key uses every 30 s, prunes every 10 min. The
    /// first of each comes a full period after start, so nothing prunes
    /// behind a test that moves the clock right after start-up; what expired
    /// while latch was down waits ten minutes more, which costs only disk.
    pub async fn housekeeping(&self) {
        let every = |period| tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut flush = every(KEY_USE_FLUSH);
        let mut prune = every(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = flush.tick() => beside_the_requests(async {
                    if let Err(e) = self.flush_key_uses() {
                        tracing::warn!("recording API key use failed: {e}");
                    }
                    if let Err(e) = self.flush_session_uses(false) {
                        tracing::warn!("recording session use failed: {e}");
                    }
                }).await,
                _ = prune.tick() => match beside_the_requests(self.prune()).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "pruned expired entries"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning failed: {e}"),
                },
            }
        }
    }

    /// Whether the store reads and flushes (the health check).
    pub async fn check_store(&self) -> Result<()> {
        self.store.user(UserId::new(0))?;
        self.store.flush().await
    }

    /// Writes what is pending and waits for the disk (shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.flush_key_uses()?;
        self.flush_session_uses(true)?;
        self.store.flush().await
    }

    /// Writes a consistent export of the database to `out` (writers wait
    /// meanwhile, readers do not). Returns the number of entries.
    pub fn export(&self, out: &mut impl Write) -> Result<usize> {
        self.store.export(out)
    }
}

/// Exports the database in `dir` when no server runs.
pub fn export_offline(dir: &std::path::Path, out: &mut impl Write) -> Result<usize> {
    let super::Database(store) = super::Database::open_existing(dir, "")?;
    store.export(out)
}

/// Loads a backup into the empty database in `dir` (no server may run).
/// Its second factors' secrets must open with `storage_key` (the one the
/// server will use); without a key, a backup holding any is refused,
/// unless `drop_totp` leaves them all out.
pub fn restore_offline(
    dir: &std::path::Path,
    input: impl BufRead,
    storage_key: Option<&[u8; 32]>,
    drop_totp: bool,
) -> Result<usize> {
    let sealing = storage_key.and_then(|k| crate::crypto::SealingKey::new(k));
    let opens = |user: crate::model::UserId, sealed: &[u8]| {
        sealing
            .as_ref()
            .is_some_and(|k| k.open(&super::totp::context(user), sealed).is_some())
    };
    // The whole file first: a refused one leaves no database behind.
    let backup = Backup::read(input, &opens, drop_totp)?;
    Store::open(dir)?.restore(backup)
}

#[cfg(test)]
mod tests {
    use super::beside_the_requests;
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    /// With one worker, a long walk of the store must not hold up the
    /// requests: one that comes during it is answered before it ends.
    #[test]
    fn a_long_walk_leaves_the_one_worker_to_the_requests() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let done = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let (started, walking) = mpsc::channel();
            let walk = tokio::spawn({
                let done = done.clone();
                async move {
                    beside_the_requests(async {
                        started.send(()).unwrap();
                        std::thread::sleep(Duration::from_millis(500));
                    })
                    .await;
                    done.lock().unwrap().push("walk");
                }
            });
            walking.recv().unwrap();
            let request = tokio::spawn({
                let done = done.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    done.lock().unwrap().push("request");
                }
            });
            request.await.unwrap();
            walk.await.unwrap();
        });
        assert_eq!(*done.lock().unwrap(), ["request", "walk"]);
    }

    /// On a current-thread runtime (a library user's) the walk is simply
    /// awaited: entering a runtime from inside one would panic.
    #[test]
    fn on_a_current_thread_runtime_the_walk_is_awaited() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(beside_the_requests(async {
            tokio::task::yield_now().await;
            7
        }));
        assert_eq!(out, 7);
    }
}
