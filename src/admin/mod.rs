//! The admin channel behind `latch user ...` and `latch backup`.
//!
//! sled locks its directory, so while a server runs the CLI cannot open the
//! database. Instead the server listens on a Unix socket in the data
//! directory (`admin.sock`, mode 0600, peers with another uid refused) and
//! runs the command itself, so changes take effect at once (a changed
//! password or deleted user revokes live tokens). When no server answers,
//! the CLI opens the database and runs the same [`protocol::execute`].
//!
//! - [`protocol`]: the JSON line types, and running a request against the
//!   service (the one place commands are carried out);
//! - [`server`]: the socket inside `latch serve`;
//! - [`client`]: the CLI's end.
//!
//! This module owns the socket and its wire format; it runs no flow of its
//! own (the service does) and never touches the store.

pub mod client;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

pub use protocol::{execute, EndSession, KeyInfo, Reply, Request, Revoke, SessionInfo, UserInfo};

/// The socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}
