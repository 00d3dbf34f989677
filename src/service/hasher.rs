//! The password-hashing pool.
//!
//! scrypt is slow and memory-hungry on purpose, so it never runs on a tokio
//! worker: each hash runs on a blocking thread, at most `max_concurrent` at
//! once, with at most `max_queue` callers waiting for a slot. A caller that
//! finds the queue full gets [`Kind::Busy`] at once (503 with `Retry-After`)
//! instead of piling up behind a login flood.
//!
//! It owns the blocking threads scrypt runs on; it never sees who is logging
//! in.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::config::Hashing;
use crate::crypto::{self, Cost};
use crate::error::{Error, Kind, Result};

/// Bounded access to scrypt.
pub struct Hasher {
    /// One permit per hash allowed to run at once.
    slots: Arc<Semaphore>,
    /// Callers waiting for a permit; checked against `max_queue` so the wait
    /// is bounded. Atomic because it is touched on every login.
    waiting: AtomicUsize,
    max_queue: usize,
    /// Cost of new hashes.
    cost: Cost,
    /// A hash of nothing at the configured cost: unknown users are verified
    /// against it so they cost the same work as known ones.
    dummy: String,
    /// How long one hash at the configured cost takes here, in µs (a
    /// moving average of the ones done): a wrong password for a hash made
    /// at another cost is answered no sooner than that.
    typical_us: AtomicU64,
}

/// Decrements the waiting count when a queued caller leaves, however it leaves.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// A pool with these settings.
    pub fn new(settings: &Hashing) -> Result<Hasher> {
        let dummy = crypto::dummy_hash(settings.cost)?;
        // One check against it, timed: the first estimate of a hash's time.
        let started = Instant::now();
        crypto::verify_password("", &dummy)?;
        Ok(Hasher {
            slots: Arc::new(Semaphore::new(settings.max_concurrent)),
            waiting: AtomicUsize::new(0),
            max_queue: settings.max_queue,
            cost: settings.cost,
            dummy,
            typical_us: AtomicU64::new(micros(started.elapsed())),
        })
    }

    /// Folds the time of a hash at the configured cost into the average.
    fn observe(&self, took: Duration) {
        let old = self.typical_us.load(Ordering::Relaxed);
        let new = (old.saturating_mul(3) + micros(took)) / 4;
        self.typical_us.store(new, Ordering::Relaxed);
    }

    /// The cost new hashes get.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// Callers waiting for a hashing slot right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Hashes `password` at the configured cost.
    pub async fn hash(&self, password: String) -> Result<String> {
        let cost = self.cost;
        self.run(move || crypto::hash_password(&password, cost))
            .await?
    }

    /// Checks `password` against `phc`, or against the dummy hash when there
    /// is no user, so both cost the same. Returns false for the dummy. A
    /// wrong password for a hash made at a lower cost (the cost was raised
    /// since) is answered no sooner than a hash at the configured cost
    /// takes (a wait, not work), so it looks like an unknown user's; a
    /// right one is rehashed by the caller, which costs as much.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        let cost = crypto::stored_cost(&phc)?;
        let (ok, took) = self
            .run(move || {
                let started = Instant::now();
                let ok = crypto::verify_password(&password, &phc)?;
                Ok::<_, Error>((ok, started.elapsed()))
            })
            .await??;
        if cost == self.cost {
            self.observe(took);
        } else if !ok && cost.below(&self.cost) {
            let typical = Duration::from_micros(self.typical_us.load(Ordering::Relaxed));
            // The timer wakes on a millisecond tick, and the task after
            // it: late.
            tokio::time::sleep(typical.saturating_sub(took + TIMER_SLACK)).await;
        }
        Ok(ok && known)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::new(Kind::Busy));
                }
                let _waiting = Waiting(&self.waiting);
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(Error::internal)?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(Error::internal)
    }
}

/// How late a sleep ends, about: the timer wheel ticks every millisecond,
/// then the task is scheduled (measured on the development machine).
const TIMER_SLACK: Duration = Duration::from_millis(2);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_concurrent: usize, max_queue: usize) -> Hashing {
        Hashing {
            cost: Cost {
                log_n: 4,
                r: 8,
                p: 1,
            },
            max_concurrent,
            max_queue,
            cache_ttl: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn dummy_hash_has_the_configured_cost_and_matches_nothing() {
        let cost = Cost {
            log_n: 5,
            r: 4,
            p: 2,
        };
        let dummy = crypto::dummy_hash(cost).unwrap();
        assert_eq!(crypto::stored_cost(&dummy).unwrap(), cost);
        assert!(!crypto::verify_password("", &dummy).unwrap());
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = Hasher::new(&settings(2, 2)).unwrap();
        let phc = h.hash("password1".into()).await.unwrap();
        assert!(h
            .verify("password1".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!h.verify("password2".into(), Some(phc)).await.unwrap());
        assert!(!h.verify("password1".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn full_queue_is_busy() {
        let h = Arc::new(Hasher::new(&settings(1, 1)).unwrap());
        // Hold the only slot, then fill the one queue place.
        let held = h.slots.clone().acquire_owned().await.unwrap();
        let queued = {
            let h = h.clone();
            tokio::spawn(async move { h.hash("password1".into()).await })
        };
        while h.queue_depth() < 1 {
            tokio::task::yield_now().await;
        }
        let e = h.hash("password1".into()).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Busy);
        drop(held);
        assert!(queued.await.unwrap().is_ok());
        assert_eq!(h.queue_depth(), 0);
    }
}
