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

/// A signing key file for `latch init`: made new (a random key, mode
/// 0600, never replacing a file: `true`), or, when one exists, kept only
/// if it is this user's own regular file that nobody else can read and
/// holds a valid key (`false`). The checks are made on the file that is
/// read: the path's entry (not followed if a link) and the open file must
/// be the same one, so nothing swapped in between is taken.
pub fn make_or_keep_own_key(path: &Path) -> Result<bool> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    match crate::fsutil::write_private(path, &new_key_text()?) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::config(format_args!(
                "cannot create key file {}: {e}",
                path.display()
            )))
        }
    }
    let refuse = || {
        Error::config(format_args!(
            "{} exists but is not a key only you can read (your own regular file, mode \
             0600): latch will not sign tokens with it; remove it, or fix its owner and mode",
            path.display()
        ))
    };
    let cannot =
        |e: std::io::Error| Error::config(format_args!("cannot read {}: {e}", path.display()));
    let entry = std::fs::symlink_metadata(path).map_err(cannot)?;
    let file = std::fs::File::open(path).map_err(cannot)?;
    let open = file.metadata().map_err(cannot)?;
    let me = std::fs::metadata("/proc/self").map_err(cannot)?.uid();
    let same = entry.dev() == open.dev() && entry.ino() == open.ino();
    if !same || !open.is_file() || open.uid() != me || open.mode() & 0o077 != 0 {
        return Err(refuse());
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).map_err(cannot)?;
    decode_key(&text, &path.display().to_string())?;
    Ok(false)
}

fn new_key_text() -> Result<Vec<u8>> {
    let key = crypto::random_bytes::<32>()?;
    Ok(format!("{}\n", crypto::b64_encode(&key)).into_bytes())
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
    fn init_makes_a_key_or_keeps_only_its_own_private_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = crate::fsutil::TempDir::new("ownkey");
        let path = dir.path().join("secret.key");
        assert!(make_or_keep_own_key(&path).unwrap());
        let made = std::fs::read(&path).unwrap();
        assert!(!make_or_keep_own_key(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), made, "kept as it was");
        // A link to a private key of ours is not that key's own entry.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = make_or_keep_own_key(&link).err().unwrap();
        assert!(e.to_string().contains("not a key only you can read"), "{e}");
        // Others may read it: refused; not a key: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(make_or_keep_own_key(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not base64\n").unwrap();
        assert!(make_or_keep_own_key(&path).is_err());
    }

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
