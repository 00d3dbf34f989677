//! Brute-force bans (`bans`), kept so a restart does not lift them. Not in
//! backups: they are short-lived by nature.
//!
//! It never decides a ban; regulation does.

use super::records::{ban_key, decode_ban, decode_expiry, encode_expiry};
use super::Store;
use crate::error::Result;
use crate::model::Ban;

impl Store {
    /// Records a ban durably.
    pub async fn put_ban(&self, ban: Ban) -> Result<()> {
        let (key, until) = ban_key(ban);
        {
            let _gate = self.shared();
            self.bans.insert(key, &encode_expiry(until))?;
        }
        self.flush().await
    }

    /// Removes a ban (its end is ignored); whether there was one.
    pub async fn delete_ban(&self, ban: Ban) -> Result<bool> {
        let (key, _) = ban_key(ban);
        let removed = {
            let _gate = self.shared();
            self.bans.remove(key)?.is_some()
        };
        self.flush().await?;
        Ok(removed)
    }

    /// Every stored ban that has not ended at `now`.
    pub fn bans(&self, now: u64) -> Result<Vec<Ban>> {
        let mut out = Vec::new();
        for entry in self.bans.iter() {
            let (key, value) = entry?;
            let until = decode_expiry(&value)?;
            if until > now {
                out.push(decode_ban(&key, until)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::TempStore;
    use crate::model::{Ban, UserId};

    #[tokio::test]
    async fn bans_are_kept_until_they_end_and_can_be_lifted() {
        let t = TempStore::new();
        let s = &t.store;
        let user = Ban::User(UserId::new(7), 100);
        let source = Ban::Source("203.0.113.7".parse().unwrap(), 50);
        s.put_ban(user).await.unwrap();
        s.put_ban(source).await.unwrap();
        assert_eq!(s.bans(10).unwrap().len(), 2);
        assert_eq!(s.bans(60).unwrap(), vec![user], "ended ones are not listed");
        assert!(s.delete_ban(Ban::User(UserId::new(7), 0)).await.unwrap());
        assert!(!s.delete_ban(user).await.unwrap());
        assert!(s.bans(60).unwrap().is_empty());
    }
}
