//! `latch backup FILE` and `latch restore FILE`. A backup comes from the
//! running server over the admin socket, or from the database directly
//! when none runs; a restore needs the server stopped.
//!
//! It owns the backup file (private, complete or absent); the export and the
//! restore are the service's.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::admin;
use crate::config::{keyfile, Config, KeySource};
use crate::crypto;
use crate::error::{Error, Kind, Result};
use crate::service;

use super::print;

/// `latch backup FILE`: from the running server over the admin socket, or
/// from the database directly when none runs. The file holds password and
/// key hashes: it is created with mode 0600 whatever the umask, never
/// replaces an existing file without `--force`, and appears only once
/// complete (written to a private temporary file, synced, then linked or,
/// with `--force`, renamed into place). `-` writes to standard output.
pub(super) fn backup(config: Result<Config>, file: &Path, force: bool) -> Result<()> {
    let config = config?;
    if file == Path::new("-") {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let count = export(&config, &mut out)?;
        out.flush()
            .map_err(|e| Error::config(format_args!("cannot write the backup: {e}")))?;
        eprintln!("wrote {count} entries to standard output");
        return Ok(());
    }
    if !force && file.symlink_metadata().is_ok() {
        return Err(Error::config(format_args!(
            "{} exists; use --force to replace it",
            file.display()
        )));
    }
    let tmp = temporary_beside(file)?;
    let fail =
        |e: std::io::Error| Error::config(format_args!("cannot write {}: {e}", file.display()));
    let written = (|| -> Result<usize> {
        let count = {
            let handle = std::fs::File::options()
                .write(true)
                .open(&tmp)
                .map_err(fail)?;
            let mut out = std::io::BufWriter::new(handle);
            let count = export(&config, &mut out)?;
            out.flush().map_err(fail)?;
            out.get_ref().sync_all().map_err(fail)?;
            count
        };
        if force {
            std::fs::rename(&tmp, file).map_err(fail)?;
        } else {
            // link(2) never replaces: a file created meanwhile is kept.
            std::fs::hard_link(&tmp, file).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::config(format_args!(
                    "{} exists; use --force to replace it",
                    file.display()
                )),
                _ => fail(e),
            })?;
        }
        Ok(count)
    })();
    let _ = std::fs::remove_file(&tmp);
    print(format_args!(
        "wrote {} entries to {}",
        written?,
        file.display()
    ))
}

/// The export, from the running server or from the database directly.
fn export(config: &Config, out: &mut impl std::io::Write) -> Result<usize> {
    match admin::client::call_backup(&config.data_dir, out)? {
        Some(count) => Ok(count),
        None => service::export_offline(&config.data_dir, out),
    }
}

/// Creates an empty private (0600) file with a fresh name in `file`'s
/// directory, exclusively.
fn temporary_beside(file: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    let suffix = crypto::b64url_encode(&crypto::random_bytes::<6>()?);
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::config(format_args!("cannot create {}: {e}", tmp.display())))?;
    Ok(tmp)
}

/// `latch restore FILE`: into an empty data directory, server stopped.
pub(super) fn restore(config: Result<Config>, file: &Path, drop_totp: bool) -> Result<()> {
    let config = config?;
    let input: Box<dyn std::io::Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| Error::config(format_args!("cannot read {}: {e}", file.display())))?,
        )
    };
    let storage_key = keyfile::read_storage_key(&config)?;
    let count = service::restore_offline(
        &config.data_dir,
        std::io::BufReader::new(input),
        storage_key.as_ref(),
        drop_totp,
    )
    .map_err(|e| match e.kind() {
        Kind::Locked => Error::config(format_args!("{e}; stop the server before restoring")),
        Kind::Store if storage_key.is_none() && e.to_string().contains("storage key") => {
            Error::config(format_args!(
                "{e} (there is no storage key at {}: put the one the backup was made with there)",
                config.storage_key_file.display()
            ))
        }
        _ => e,
    })?;
    match crate::fsutil::give_to_owner_of(&config.data_dir) {
        Ok(0) => {}
        Ok(_) => eprintln!(
            "latch: the restored files were given to the owner of {}, as the directory is",
            config.data_dir.display()
        ),
        Err(e) => eprintln!(
            "latch: warning: cannot give the restored files to the owner of {} ({e}): chown \
             them to the user the server runs as before starting it",
            config.data_dir.display()
        ),
    }
    if let (Ok(None), KeySource::File(path)) = (keyfile::read_current(&config), &config.key) {
        eprintln!(
            "latch: warning: the key file {} does not exist: restore the key that signed the \
             tokens there before starting, or `latch serve` makes a new one (users and \
             passwords survive; tokens and sessions do not)",
            path.display()
        );
    }
    if drop_totp {
        eprintln!(
            "latch: warning: every second factor was left out: those users sign in with their \
             password alone until they set one up again"
        );
    }
    print(format_args!(
        "restored {count} entries into {}",
        config.data_dir.display()
    ))
}
