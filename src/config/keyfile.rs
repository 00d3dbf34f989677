//! The signing keys: read from the configuration or from key files, and
//! the key file created (mode 0600) on first start. This module owns key
//! files on disk; it never signs or verifies anything.

use std::path::Path;

use super::validate::decode_key;
use super::{Config, KeySource};
use crate::crypto;
use crate::error::{Error, Result};

/// The keys tokens are signed and verified with. No `Debug`: it would
/// print them.
pub struct KeyMaterial {
    /// Signs new tokens (and verifies them).
    pub current: Vec<u8>,
    /// Verify only (key rotation).
    pub previous: Vec<Vec<u8>>,
    /// Seals secrets at rest (`[storage] encryption_key_file`); `None`
    /// only for the CLI working offline before the server made one.
    pub storage: Option<[u8; 32]>,
}

/// The server's keys: the signing key (its file created on first start,
/// which is logged) and the previous, verify-only keys.
pub fn load_or_create(config: &Config) -> Result<KeyMaterial> {
    let current = match &config.key {
        KeySource::Inline(bytes) => bytes.clone(),
        KeySource::File(path) => match read_key_file(path)? {
            Some(key) => key,
            None => {
                let key = create_key_file(path)?;
                tracing::info!("wrote a new secret key to {}", path.display());
                key
            }
        },
    };
    Ok(KeyMaterial {
        current,
        previous: read_previous(config)?,
        storage: Some(load_or_create_storage_key(config)?),
    })
}

/// The storage key (`[storage] encryption_key_file`): 32 bytes that seal
/// secrets at rest, its file created (0600, logged) on first start.
pub fn load_or_create_storage_key(config: &Config) -> Result<[u8; 32]> {
    let path = &config.storage_key_file;
    let key = match read_key_file(path)? {
        Some(key) => key,
        None => {
            let key = create_key_file(path)?;
            tracing::info!("wrote a new storage key to {}", path.display());
            key
        }
    };
    storage_key_bytes(key, path)
}

/// Reads the storage key; `None` when its file does not exist yet (the
/// CLI working offline never creates one).
pub fn read_storage_key(config: &Config) -> Result<Option<[u8; 32]>> {
    let path = &config.storage_key_file;
    read_key_file(path)?
        .map(|key| storage_key_bytes(key, path))
        .transpose()
}

fn storage_key_bytes(key: Vec<u8>, path: &Path) -> Result<[u8; 32]> {
    key.try_into().map_err(|_| {
        Error::config(format_args!(
            "storage key file {} must hold exactly 32 bytes (base64)",
            path.display()
        ))
    })
}

/// Reads the signing key; `None` when the key file does not exist yet.
pub fn read_current(config: &Config) -> Result<Option<Vec<u8>>> {
    match &config.key {
        KeySource::Inline(bytes) => Ok(Some(bytes.clone())),
        KeySource::File(path) => read_key_file(path),
    }
}

/// Reads the previous (verify-only) keys; a missing file is an error.
pub fn read_previous(config: &Config) -> Result<Vec<Vec<u8>>> {
    config
        .previous_keys
        .iter()
        .map(|source| match source {
            KeySource::Inline(bytes) => Ok(bytes.clone()),
            KeySource::File(path) => read_key_file(path)?.ok_or_else(|| {
                Error::config(format_args!(
                    "cannot read key file {}: no such file",
                    path.display()
                ))
            }),
        })
        .collect()
}

/// Makes the key file `path` (a new random key, mode 0600) unless it
/// exists, which must then hold a valid key: `true` when it was made.
pub fn ensure_key_file(path: &Path) -> Result<bool> {
    match read_key_file(path)? {
        Some(_) => Ok(false),
        None => create_key_file(path).map(|_| true),
    }
}

fn create_key_file(path: &Path) -> Result<Vec<u8>> {
    let key = crypto::random_bytes::<32>()?;
    let text = format!("{}\n", crypto::b64_encode(&key));
    crate::fsutil::write_private(path, text.as_bytes()).map_err(|e| {
        Error::config(format_args!(
            "cannot create key file {}: {e}",
            path.display()
        ))
    })?;
    Ok(key.to_vec())
}

fn read_key_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::config(format_args!(
            "cannot read key file {}: {e}",
            path.display()
        ))),
    }
}

/// A warning when a key file can be read by others than its owner.
pub(super) fn permission_warning(path: &Path, key: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())?
        .permissions()
        .mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key} {} is readable by its group or by others (mode {:o}): `chmod 600` it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_created_private_once() {
        let dir = crate::fsutil::TempDir::new("keyfile");
        let path = dir.path().join("sub/secret.key");
        let config = Config {
            key: KeySource::File(path.clone()),
            // Not the default (./latch-data): the test must not write there.
            storage_key_file: dir.path().join("sub/storage.key"),
            ..Config::default()
        };
        assert!(read_current(&config).unwrap().is_none());
        let first = load_or_create(&config).unwrap();
        assert_eq!(first.current.len(), 32);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(permission_warning(&path, "secret_key_file").is_none());
        let again = load_or_create(&config).unwrap();
        assert_eq!(again.current, first.current, "an existing key is kept");
        assert_eq!(again.storage, first.storage, "and the storage key");
        assert_ne!(
            first.storage.unwrap().to_vec(),
            first.current,
            "two keys, not one"
        );
        let storage = dir.path().join("sub/storage.key");
        let mode = std::fs::metadata(&storage).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(permission_warning(&path, "secret_key_file").is_some());
    }

    #[test]
    fn a_storage_key_of_another_size_is_an_error_naming_the_file() {
        let dir = crate::fsutil::TempDir::new("storagekey");
        std::fs::create_dir_all(dir.path()).unwrap();
        let path = dir.path().join("storage.key");
        std::fs::write(
            &path,
            format!("{}\n", crate::crypto::b64_encode(&[1u8; 48])),
        )
        .unwrap();
        let config = Config {
            storage_key_file: path.clone(),
            ..Config::default()
        };
        let e = read_storage_key(&config).unwrap_err().to_string();
        assert!(e.contains("must hold exactly 32 bytes"), "{e}");
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(load_or_create_storage_key(&config).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim().len(),
            64,
            "the file is left as it was"
        );
    }

    #[test]
    fn a_missing_previous_key_file_is_an_error() {
        let config = Config {
            previous_keys: vec![KeySource::File("/nonexistent/old.key".into())],
            ..Config::default()
        };
        let e = read_previous(&config).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
