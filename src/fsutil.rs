//! Small file-system helpers shared by the config (the key file) and the
//! store (the schema marker).
//!
//! They own file modes, owners and durability (sync of the file and its
//! directory); never contents.

use std::path::Path;

/// Writes a new file only the owner can read, refusing to overwrite.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    // The new directory entry must survive a crash too.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Gives everything under `dir` that is not its owner's (user and group)
/// to that owner, and returns how many entries it gave. A restore run as
/// root into the data directory of a service that runs as a user of its
/// own (the unit's `DynamicUser=`) would otherwise leave a database the
/// service cannot open: systemd does not look inside a state directory
/// whose top is already the service's. Symbolic links are neither
/// followed nor changed.
pub(crate) fn give_to_owner_of(dir: &Path) -> std::io::Result<usize> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(dir)?;
    let (uid, gid) = (owner.uid(), owner.gid());
    let mut given = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            // Of the entry itself, a link not followed.
            let meta = entry.metadata()?;
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                pending.push(entry.path());
            }
            if (meta.uid(), meta.gid()) != (uid, gid) {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
                given += 1;
            }
        }
    }
    Ok(given)
}

/// A fresh directory under the system temp directory, removed on drop.
#[cfg(test)]
pub(crate) struct TempDir(std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("latch-unit-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
