//! Revoked tokens (`revoked`: `jti` → expiry). Kept until the token's own
//! expiry, then pruned.
//!
//! It never caches; the service mirrors revocations in memory.

use super::records::{decode_expiry, encode_expiry};
use super::Store;
use crate::error::Result;
use crate::token::JTI_LEN;

impl Store {
    /// Records that the token `jti` is revoked until `exp`, durably.
    pub async fn revoke(&self, jti: &[u8; JTI_LEN], exp: u64) -> Result<()> {
        {
            let _gate = self.shared();
            self.revoked.insert(jti, &encode_expiry(exp))?;
        }
        self.flush().await
    }

    /// Whether the token `jti` was revoked. One sled read.
    pub fn is_revoked(&self, jti: &[u8; JTI_LEN]) -> Result<bool> {
        Ok(self.revoked.contains_key(jti)?)
    }

    /// Every stored revocation: (jti, expiry).
    pub fn revocations(&self) -> Result<Vec<([u8; JTI_LEN], u64)>> {
        self.revoked
            .iter()
            .filter_map(|entry| match entry {
                Ok((jti, value)) => {
                    let jti = <[u8; JTI_LEN]>::try_from(jti.as_ref()).ok()?;
                    Some(decode_expiry(&value).map(|exp| (jti, exp)))
                }
                Err(e) => Some(Err(e.into())),
            })
            .collect()
    }

    /// How many revocations are stored.
    #[cfg(test)]
    pub fn revocation_count(&self) -> usize {
        self.revoked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::TempStore;

    #[tokio::test]
    async fn revocations_are_kept_and_listed() {
        let t = TempStore::new();
        t.store.revoke(&[1; 16], 50).await.unwrap();
        assert!(t.store.is_revoked(&[1; 16]).unwrap());
        assert!(!t.store.is_revoked(&[2; 16]).unwrap());
        assert_eq!(t.store.revocations().unwrap(), vec![([1; 16], 50)]);
        assert_eq!(t.store.revocation_count(), 1);
    }
}
