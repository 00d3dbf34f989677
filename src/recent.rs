//! A few recent entries, the oldest replaced first: the per-thread
//! memories of the hot paths (forward auth's decisions and users, the
//! sessions' noted uses) keep theirs in one of these.
//!
//! It owns the replacement order; what an entry means, and when it is
//! current, is its user's.

/// At most `N` entries; when full, each new one replaces the oldest.
pub(crate) struct Recent<T, const N: usize> {
    /// The slot the next entry replaces once full.
    next: usize,
    entries: Vec<T>,
}

impl<T, const N: usize> Recent<T, N> {
    /// None yet (usable in a `thread_local!`'s `const` initialiser).
    pub(crate) const fn new() -> Self {
        Recent {
            next: 0,
            entries: Vec::new(),
        }
    }

    /// The first entry `matches` accepts.
    pub(crate) fn find(&self, matches: impl Fn(&T) -> bool) -> Option<&T> {
        self.entries.iter().find(|e| matches(e))
    }

    /// The first entry `matches` accepts, to change in place.
    pub(crate) fn find_mut(&mut self, matches: impl Fn(&T) -> bool) -> Option<&mut T> {
        self.entries.iter_mut().find(|e| matches(e))
    }

    /// Keeps `entry`, in place of the oldest when full.
    pub(crate) fn put(&mut self, entry: T) {
        if self.entries.len() < N {
            self.entries.push(entry);
        } else {
            self.entries[self.next] = entry;
            self.next = (self.next + 1) % N;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first() {
        let mut recent: Recent<u32, 3> = Recent::new();
        for n in 1..=5 {
            recent.put(n);
        }
        let kept: Vec<u32> = (1..=5)
            .filter(|n| recent.find(|e| e == n).is_some())
            .collect();
        assert_eq!(kept, [3, 4, 5]);
        if let Some(e) = recent.find_mut(|e| *e == 4) {
            *e = 40;
        }
        assert!(recent.find(|e| *e == 40).is_some());
    }
}
