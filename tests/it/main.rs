//! Integration tests: the real `latch` binary (or the library's `run`)
//! driven over HTTP on port 0.

mod cli;
mod clock;
mod credentials;
mod errors;
mod lifecycle;
mod readme;
mod seeds;
mod support;
mod tokens;
