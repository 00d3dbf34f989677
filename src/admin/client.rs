//! The CLI's end of the admin socket: send one request line, read the
//! reply (or a backup's stream). `None` everywhere means no server listens,
//! and the CLI works on the database itself. It never opens the database.

use std::io::{BufRead as _, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::protocol::{Reply, Request};
use super::socket_path;
use crate::error::{Error, Result};

/// Sends `request` to a server running on `data_dir`; `None` when no server
/// listens there.
pub fn call(data_dir: &Path, request: &Request) -> Result<Option<Reply>> {
    let Some((stream, path)) = send(data_dir, request)? else {
        return Ok(None);
    };
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| no_answer(&path, e))?;
    serde_json::from_str(&reply).map(Some).map_err(|_| {
        Error::config(format_args!(
            "the server at {} answered nonsense",
            path.display()
        ))
    })
}

/// Asks a server running on `data_dir` for a backup, written to `out`;
/// `None` when no server listens there. The entry count on success.
pub fn call_backup(data_dir: &Path, out: &mut impl Write) -> Result<Option<usize>> {
    let Some((stream, path)) = send(data_dir, &Request::Backup)? else {
        return Ok(None);
    };
    let fail = |e: std::io::Error| {
        Error::config(format_args!(
            "the backup from {} failed: {e}",
            path.display()
        ))
    };
    let mut last = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(fail)?;
        writeln!(out, "{line}").map_err(fail)?;
        last = line;
    }
    out.flush().map_err(fail)?;
    /// A backup's last line.
    #[derive(serde::Deserialize)]
    struct End {
        end: usize,
    }
    let end = serde_json::from_str::<End>(&last).map(|e| e.end);
    end.map(Some)
        .map_err(|_| Error::config("the backup ended early; the server's log says why"))
}

fn no_answer(path: &Path, e: std::io::Error) -> Error {
    Error::config(format_args!(
        "the server at {} did not answer: {e}",
        path.display()
    ))
}

/// Connects to a server running on `data_dir` and sends `request` (one
/// JSON line); `None` when no server listens there.
fn send(data_dir: &Path, request: &Request) -> Result<Option<(UnixStream, PathBuf)>> {
    let path = socket_path(data_dir);
    let Some(mut stream) = connect(&path)? else {
        return Ok(None);
    };
    let mut line = serde_json::to_vec(request).map_err(Error::internal)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| no_answer(&path, e))?;
    Ok(Some((stream, path)))
}

/// Connects to the admin socket; `None` when no server listens there.
fn connect(path: &Path) -> Result<Option<UnixStream>> {
    match UnixStream::connect(path) {
        Ok(stream) => Ok(Some(stream)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::config(format_args!(
            "cannot reach the server at {}: {e}",
            path.display()
        ))),
    }
}
