//! HTTP: the server, the router and the handlers. Handlers parse a
//! request, call one [`crate::service::Service`] method and shape the
//! answer. This layer owns status codes, headers, cookies and pages; it
//! never reaches the store or the hasher (they are private to the service,
//! so the compiler refuses it).
//!
//! - `server.rs`: accept loop, connections, graceful drain;
//! - [`router`]: one `match` from method and path to handler;
//! - [`extract`]: credentials from a request, per surface (API, forward
//!   auth, pages);
//! - [`csrf`]: the login and logout forms' tokens;
//! - [`api`], [`forward`], [`pages`], [`ops`]: the handlers;
//! - [`request`], [`response`]: reading bodies and headers; building
//!   answers, and the one map from an error's kind to a status.

pub mod account;
pub mod api;
pub mod csrf;
pub mod extract;
pub mod forward;
pub mod ops;
pub mod pages;
pub mod request;
pub mod response;
pub mod router;
pub mod second;
mod server;

pub use server::{serve, Listener};
