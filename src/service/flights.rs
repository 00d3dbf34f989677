//! Identical password checks in flight at once are made once.
//!
//! A script that fires thirty requests with the same Basic credentials
//! before the first is answered would otherwise queue thirty scrypt hashes
//! and, since regulation counts a guess when it is queued, thirty guesses:
//! past `max_retries` its own right password would be refused. Instead the
//! first check of a (login, password, client address) leads and the others
//! wait for its answer, which they share. Different passwords never share:
//! each is its own guess. Unknown logins share the same way known ones do,
//! so sharing reveals nothing about which exist.
//!
//! It owns the in-flight map; it never hashes or counts guesses itself.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// How a shared check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    /// The password is right (and no ban holds).
    Right,
    /// Refused: a wrong password, an unknown login or a ban.
    Refused,
    /// The hashing queue was full.
    Busy,
    /// Something else went wrong: followers check for themselves.
    Failed,
}

type Slot = watch::Receiver<Option<Landed>>;

/// The checks in flight, by key (an HMAC of login, password and address).
#[derive(Default)]
pub struct Flights {
    /// A std lock: held for one map operation.
    in_flight: Mutex<HashMap<[u8; 32], Slot>>,
}

/// What [`Flights::join`] makes of a caller.
pub enum Joined<'a> {
    /// The first: it checks, then [`Flight::land`]s.
    Leader(Flight<'a>),
    /// Another check of the same is under way: wait for it.
    Follower(Slot),
}

/// The leader's side of a check in flight. Dropped without landing (the
/// request was cancelled), its followers find out and check themselves.
pub struct Flight<'a> {
    flights: &'a Flights,
    key: [u8; 32],
    tx: watch::Sender<Option<Landed>>,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Slot>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leads the check of `key`, or follows the one under way.
    pub fn join(&self, key: [u8; 32]) -> Joined<'_> {
        let mut in_flight = self.lock();
        if let Some(slot) = in_flight.get(&key) {
            return Joined::Follower(slot.clone());
        }
        let (tx, rx) = watch::channel(None);
        in_flight.insert(key, rx);
        Joined::Leader(Flight {
            flights: self,
            key,
            tx,
        })
    }

    /// Waits for the leader's answer; `None` when it vanished unlanded.
    pub async fn wait(mut slot: Slot) -> Option<Landed> {
        let landed = *slot.wait_for(Option::is_some).await.ok()?;
        landed
    }
}

impl Flight<'_> {
    /// Tells the followers how the check ended.
    pub fn land(self, landed: Landed) {
        self.tx.send_replace(Some(landed));
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_share_the_leaders_answer() {
        let flights = Flights::default();
        let Joined::Leader(flight) = flights.join([1; 32]) else {
            panic!("the first leads")
        };
        let Joined::Follower(slot) = flights.join([1; 32]) else {
            panic!("the second follows")
        };
        assert!(
            matches!(flights.join([2; 32]), Joined::Leader(_)),
            "another key leads"
        );
        let waiting = tokio::spawn(Flights::wait(slot));
        flight.land(Landed::Right);
        assert_eq!(waiting.await.unwrap(), Some(Landed::Right));
        // Landed and gone: the next check leads again.
        assert!(matches!(flights.join([1; 32]), Joined::Leader(_)));
    }

    #[tokio::test]
    async fn a_vanished_leader_lets_followers_check_themselves() {
        let flights = Flights::default();
        let leader = flights.join([1; 32]);
        let Joined::Follower(slot) = flights.join([1; 32]) else {
            panic!("follows")
        };
        drop(leader);
        assert_eq!(Flights::wait(slot).await, None);
        assert!(matches!(flights.join([1; 32]), Joined::Leader(_)));
    }
}
