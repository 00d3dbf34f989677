//! `latch access check` and `latch access test`: the access rules of a
//! configuration asked about one request, or about a test file of them,
//! without a browser or a proxy. Users' groups come from the running
//! server over the admin socket, or from the database when none runs
//! (never creating one), unless given.
//!
//! It owns what is printed; deciding is [`crate::access`]'s.

use std::collections::HashMap;
use std::path::Path;

use crate::access::cases::{self, Case};
use crate::admin::{Reply, Request};
use crate::config::Config;
use crate::error::{Error, Result};

use super::print;

/// `latch access check`: prints the decision and the rule that made it.
pub(super) fn check(config: Result<Config>, case: Case) -> Result<()> {
    let config = config?;
    // The same checks as a test file's case.
    let case = cases::parse_one(case)?;
    let groups = match (&case.user, &case.groups) {
        (Some(user), None) => groups_of(&config, std::slice::from_ref(user))?
            .remove(user)
            .ok_or_else(|| {
                Error::config(format_args!(
                    "there is no user {user:?} (give --group to decide without the database)"
                ))
            })?,
        _ => Vec::new(),
    };
    let decision = case.decide(&config.access, &groups);
    print(cases::describe(
        &config.access,
        &decision,
        case.user.is_some(),
    ))
}

/// `latch access test FILE`: every mismatch on a line, then a count;
/// fails when any case fails.
pub(super) fn test(config: Result<Config>, file: &Path) -> Result<()> {
    let config = config?;
    print(run_file(&config, file)?)
}

/// Runs the test file `file` against `config`'s rules, printing each
/// mismatch on stderr; `check-config` runs the one the configuration
/// names this way. The summary line is the caller's to print.
pub(super) fn run_file(config: &Config, file: &Path) -> Result<String> {
    let cases = cases::load(file)?;
    let mut users: Vec<String> = cases
        .iter()
        .filter(|c| c.groups.is_none())
        .filter_map(|c| c.user.clone())
        .collect();
    users.sort();
    users.dedup();
    let known = if users.is_empty() {
        HashMap::new()
    } else {
        groups_of(config, &users)?
    };
    let report = cases::run(&config.access, &cases, |name| Ok(known.get(name).cloned()))?;
    for failure in &report.failures {
        eprintln!("latch: {failure}");
    }
    if report.failures.is_empty() {
        Ok(match report.passed {
            1 => format!("{}: its 1 access case passes", file.display()),
            n => format!("{}: all {n} access cases pass", file.display()),
        })
    } else {
        Err(Error::config(format_args!(
            "{}: {} of {} access cases fail",
            file.display(),
            report.failures.len(),
            cases.len()
        )))
    }
}

/// The groups of those of `users` that exist, from the running server or
/// the database. A data directory that does not exist is not created.
fn groups_of(config: &Config, users: &[String]) -> Result<HashMap<String, Vec<String>>> {
    let request = Request::Show {
        usernames: users.to_vec(),
    };
    let socket_answers = crate::admin::client::call(&config.data_dir, &request)?;
    let reply = match socket_answers {
        Some(reply) => reply,
        None if !config.data_dir.exists() => {
            return Err(Error::config(format_args!(
                "no database at {} to look up {} (give --group, or `groups` in a test case)",
                config.data_dir.display(),
                users.join(", ")
            )))
        }
        None => super::user::offline(config, request, false)?,
    };
    match reply {
        Reply::Users { users } => Ok(users.into_iter().map(|u| (u.username, u.groups)).collect()),
        Reply::Failed { error } => Err(Error::config(error)),
        _ => Err(Error::internal("the admin socket answered out of turn")),
    }
}
