//! The admin socket inside `latch serve`: bound at start-up (mode 0600),
//! peers of another uid refused, one request line read (bounded), one
//! reply written; a backup is exported to a private file, then streamed.
//! It owns the socket; what a command does is [`super::protocol`]'s.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{execute, Reply, Request};
use super::socket_path;
use crate::audit;
use crate::error::{Error, Result};
use crate::App;

/// Numbers the temporary files of concurrent backups.
static BACKUPS: AtomicU64 = AtomicU64::new(0);

/// How long a backup client may stall before the server gives up on it.
const BACKUP_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest request line accepted on the socket (an import of some ten
/// thousand users; only the socket's owner can connect).
const MAX_LINE: u64 = 8 * 1024 * 1024;

/// Binds the admin socket in `data_dir` (replacing a stale one: the caller
/// holds the database lock, so no other server is using it) with mode 0600.
pub fn bind(data_dir: &Path) -> Result<std::os::unix::net::UnixListener> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::config(format_args!(
                "cannot remove stale {}: {e}",
                path.display()
            )))
        }
    }
    let fail = |e: std::io::Error| {
        Error::config(format_args!(
            "cannot create the admin socket {}: {e}",
            path.display()
        ))
    };
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(listener)
}

/// Serves admin commands until the task is dropped.
pub async fn serve(listener: std::os::unix::net::UnixListener, app: Arc<App>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("admin socket unusable: {e}");
            return;
        }
    };
    // The socket file is ours; only its owner (or root) may talk to it.
    let owner = std::fs::metadata(socket_path(&app.config.data_dir))
        .map(|m| m.uid())
        .ok();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("admin socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = stream.peer_cred().ok().map(|c| c.uid());
        if peer.is_none() || (peer != owner && peer != Some(0)) {
            tracing::warn!(peer_uid = ?peer, "admin socket: refused a peer with another uid");
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, app).await {
                tracing::warn!("admin socket: {e}");
            }
        });
    }
}

/// Reads the one request line: UTF-8, at most [`MAX_LINE`] bytes. `None`
/// when it is not UTF-8 or too long (nothing is guessed from a partial
/// line).
async fn read_request_line(stream: &mut UnixStream) -> std::io::Result<Option<String>> {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    // The client sends one line and then only reads, so buffering cannot
    // swallow anything that matters.
    let mut reader = tokio::io::BufReader::new(stream).take(MAX_LINE);
    let mut line = String::new();
    let read = reader.read_line(&mut line).await;
    if read.is_ok() && line.ends_with('\n') {
        return Ok(Some(line));
    }
    // Refused: read (a bounded amount of) what the client still sends, so
    // the answer is not lost to a reset connection.
    let mut rest = reader.into_inner().take(MAX_LINE);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
    match read {
        Err(e) if e.kind() != std::io::ErrorKind::InvalidData => Err(e),
        _ => Ok(None),
    }
}

async fn handle(mut stream: UnixStream, app: Arc<App>) -> std::io::Result<()> {
    let line = read_request_line(&mut stream).await?;
    let request = line
        .as_deref()
        .and_then(|l| serde_json::from_str::<Request>(l).ok());
    let reply = match request {
        Some(Request::Backup) => return backup(stream, app).await,
        Some(request) => execute(&app.service, request).await,
        None => Reply::Failed {
            error: "malformed admin request (one line of UTF-8 JSON, at most 64 KiB)".into(),
        },
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// Streams a backup to the client, off the async threads.
async fn backup(stream: UnixStream, app: Arc<App>) -> std::io::Result<()> {
    audit::admin("backup", audit::Target::None);
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let n = BACKUPS.fetch_add(1, Ordering::Relaxed);
    let tmp = app.config.data_dir.join(format!(".backup-{n}.tmp"));
    tokio::task::spawn_blocking(move || {
        let sent = export_then_send(&app, &tmp, stream);
        let _ = std::fs::remove_file(&tmp);
        sent
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Exports into `tmp` (a private file in the data directory; writers wait
/// only for this part), then sends it to the client, who may be slow
/// without holding anyone up.
fn export_then_send(
    app: &App,
    tmp: &Path,
    mut stream: std::os::unix::net::UnixStream,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        let mut out = std::io::BufWriter::new(file);
        app.service
            .export(&mut out)
            .map_err(std::io::Error::other)?;
        out.flush()?;
    }
    stream.set_write_timeout(Some(BACKUP_SEND_TIMEOUT))?;
    std::io::copy(&mut std::fs::File::open(tmp)?, &mut stream)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;
    use crate::admin::client;
    use crate::clock::Clock;
    use crate::fsutil::TempDir;
    use crate::service::tests::config;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_is_answered_garbage_is_refused_and_a_backup_streams() {
        let dir = TempDir::new("admin");
        let app = Arc::new(App::open(config(dir.path()), Clock::frozen()).unwrap());
        let listener = app.admin.lock().unwrap().take().unwrap();
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let server = tokio::spawn(serve(listener, app.clone()));
        let data = dir.path().to_owned();
        let (reply, garbage, backup) = tokio::task::spawn_blocking(move || {
            let add = Request::Add {
                username: "alice".into(),
                email: None,
                groups: vec![],
                password: "alice-password".into(),
            };
            let reply = client::call(&data, &add).unwrap().unwrap();
            let mut raw = std::os::unix::net::UnixStream::connect(socket_path(&data)).unwrap();
            raw.write_all(b"{\"op\":\"format_disk\"}\n").unwrap();
            let mut garbage = String::new();
            raw.read_to_string(&mut garbage).unwrap();
            let mut backup = Vec::new();
            let entries = client::call_backup(&data, &mut backup).unwrap().unwrap();
            (reply, garbage, (entries, backup))
        })
        .await
        .unwrap();
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        assert!(app.service.user_named("alice").is_ok());
        assert!(garbage.contains("malformed admin request"), "{garbage}");
        let (entries, backup) = backup;
        let text = String::from_utf8(backup).unwrap();
        assert!(entries > 0);
        assert!(
            text.ends_with(&format!("{{\"end\":{entries}}}\n")),
            "{text}"
        );
        server.abort();
        // No server: the client says so, and the CLI works offline.
        let gone = TempDir::new("admin-none");
        assert!(client::call(gone.path(), &Request::List).unwrap().is_none());
    }
}
