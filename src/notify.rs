//! systemd readiness (`sd_notify`): `READY=1` once listening, `STOPPING=1`
//! when shutting down, sent as a datagram to `$NOTIFY_SOCKET` (a path, or
//! `@name` for an abstract socket). Without `$NOTIFY_SOCKET` it does
//! nothing, so the same binary runs anywhere.

use std::os::unix::net::UnixDatagram;

/// Sends `state` to the service manager, if there is one. Failures are
/// logged, never fatal: readiness is a courtesy to systemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}
