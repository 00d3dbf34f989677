//! Integration tests: the real `latch` binary (or the library's `run`)
//! driven over HTTP on port 0.

mod access;
mod account;
mod accounts;
mod audience;
mod audit;
mod backup;
mod browser;
mod cli;
mod clock;
mod credentials;
mod domains;
mod durability;
mod errors;
mod forward;
mod hostile;
mod keys;
mod lifecycle;
mod limits;
mod openapi;
mod ops;
mod pages;
mod props;
mod proxies;
mod readme;
mod regulation;
mod seeds;
mod sessions;
mod setup;
mod support;
mod tokens;
mod totp;
mod user_cli;
mod user_file;
