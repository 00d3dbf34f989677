//! The policy test file: a TOML list of requests and the decision each
//! must get, kept in git beside the configuration and run by
//! `latch access test`, by `latch check-config` and before a reload.
//!
//! ```toml
//! [[case]]
//! user = "alice"              # optional: no user is a visitor not signed in
//! groups = ["admins"]         # optional: else the user's groups in the database
//! url = "https://app.example.com/admin/x"
//! method = "GET"              # optional, GET
//! from = "192.168.1.7"        # optional: without it no `networks` rule matches
//! expect = "one_factor"       # bypass | one_factor | two_factor | deny
//! ```
//!
//! It owns the file's format and the comparison; who a user is comes from
//! the caller.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::{AccessControl, Decision, Request, Subject, Verdict};
use crate::error::{Error, Result};

/// One expected decision, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The signed-in user, if any.
    pub user: Option<String>,
    /// The user's groups; looked up when absent.
    pub groups: Option<Vec<String>>,
    /// The absolute URL asked for.
    pub url: String,
    /// The method (GET when absent).
    pub method: Option<String>,
    /// The client's address.
    pub from: Option<String>,
    /// `bypass`, `one_factor` or `deny`.
    pub expect: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// Reads a test file; a file that cannot be read or has a bad case is
/// one line naming it.
pub fn load(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config(format_args!(
            "cannot read the access test file {}: {e}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| {
        Error::config(format_args!(
            "the access test file {}: {}",
            path.display(),
            e
        ))
    })
}

/// Parses a test file's text and checks every case.
pub fn parse(text: &str) -> Result<Vec<Case>> {
    let file: CaseFile = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| Error::config(crate::config::quiet_error(&e)))?;
    if file.case.is_empty() {
        return Err(Error::config("it has no [[case]]"));
    }
    for (i, case) in file.case.iter().enumerate() {
        case.check()
            .map_err(|why| Error::config(format_args!("case {}: {why}", i + 1)))?;
    }
    Ok(file.case)
}

/// Checks a request given on the command line as a test file's case
/// would be (it has nothing to expect).
pub fn parse_one(case: Case) -> Result<Case> {
    case.check_request().map_err(Error::config)?;
    Ok(case)
}

impl Case {
    /// Checks the fields that must parse.
    fn check(&self) -> std::result::Result<(), String> {
        self.check_request()?;
        if !matches!(
            self.expect.as_str(),
            "bypass" | "one_factor" | "two_factor" | "deny"
        ) {
            return Err(format!(
                "expect {:?} is not one of bypass, one_factor, two_factor, deny",
                self.expect
            ));
        }
        Ok(())
    }

    /// Checks the fields that describe the request.
    fn check_request(&self) -> std::result::Result<(), String> {
        let (_, path) = split_url(&self.url).ok_or_else(|| {
            format!(
                "url {:?} is not an absolute http(s) URL with a host",
                self.url
            )
        })?;
        if path.len() > super::MAX_PATH {
            return Err(format!(
                "the url's path and query are {} bytes: over 8 KiB, forward auth reads \
                 no URL and denies it wherever rules apply",
                path.len()
            ));
        }
        self.client()?;
        if self.groups.is_some() && self.user.is_none() {
            return Err("groups needs a user (no user is a visitor not signed in)".to_owned());
        }
        if let Some(m) = &self.method {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("method {m:?} is not an HTTP method"));
            }
        }
        Ok(())
    }

    fn client(&self) -> std::result::Result<Option<IpAddr>, String> {
        self.from
            .as_deref()
            .map(|f| {
                f.parse::<IpAddr>()
                    .map_err(|_| format!("from {f:?} is not an IP address"))
            })
            .transpose()
    }

    /// The decision for this case; `groups` are the user's when the case
    /// does not give them.
    pub fn decide(&self, rules: &AccessControl, groups: &[String]) -> Decision {
        let (host, path) = split_url(&self.url).unwrap_or(("", "/"));
        let request = Request {
            host,
            path,
            method: self.method.as_deref().unwrap_or("GET"),
            client: self.client().ok().flatten(),
        };
        let subject = self.user.as_deref().map(|username| Subject {
            username,
            groups: self.groups.as_deref().unwrap_or(groups),
        });
        rules.decide(&request, subject.as_ref())
    }

    /// `alice GET https://... from 192.168.1.7`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} {} {}",
            self.user.as_deref().unwrap_or("(not signed in)"),
            self.method.as_deref().unwrap_or("GET"),
            self.url
        );
        if let Some(from) = &self.from {
            text.push_str(" from ");
            text.push_str(from);
        }
        text
    }
}

/// The outcome of a test file.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that got their expected decision.
    pub passed: usize,
    /// One line per case that did not.
    pub failures: Vec<String>,
}

/// Runs `cases` against `rules`. `groups_of` gives a user's groups
/// (`Ok(None)`: no such user) for cases that do not list them.
pub fn run(
    rules: &AccessControl,
    cases: &[Case],
    mut groups_of: impl FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Report> {
    let mut report = Report::default();
    for (i, case) in cases.iter().enumerate() {
        let groups = match (&case.user, &case.groups) {
            (Some(user), None) => match groups_of(user)? {
                Some(groups) => groups,
                None => {
                    report.failures.push(format!(
                        "case {} ({}): there is no user {user:?} (give `groups` to test \
                         without the database)",
                        i + 1,
                        case.describe()
                    ));
                    continue;
                }
            },
            _ => Vec::new(),
        };
        let decision = case.decide(rules, &groups);
        if decision.verdict.name() == case.expect {
            report.passed += 1;
        } else {
            report.failures.push(format!(
                "case {} ({}): expected {}, got {}",
                i + 1,
                case.describe(),
                case.expect,
                describe(rules, &decision, case.user.is_some())
            ));
        }
    }
    Ok(report)
}

/// `deny by rule 2 (domain = ...)`, with a note when a visitor who is
/// not signed in (`signed_in` false) is sent to sign in.
pub fn describe(rules: &AccessControl, decision: &Decision, signed_in: bool) -> String {
    let how = match (decision.verdict, signed_in) {
        (Verdict::SignIn, _) => " (sign in first: the rule names subjects)",
        (Verdict::OneFactor, false) => " (sign in first)",
        _ => "",
    };
    format!(
        "{}{how} by {}",
        decision.verdict.name(),
        rules.explain(decision)
    )
}

/// `(host[:port], path?query)` of an absolute http(s) URL as a browser
/// reads one typed into a test case or `latch access check --url`; the
/// path is `/` when the URL has none. A fragment is dropped (a browser
/// never sends it).
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let authority = crate::config::net::authority_of(url)?;
    crate::config::net::host_of(authority)?;
    let scheme = if url.as_bytes()[4].eq_ignore_ascii_case(&b's') {
        "https://".len()
    } else {
        "http://".len()
    };
    let rest = url[scheme + authority.len()..]
        .split('#')
        .next()
        .unwrap_or("");
    let path = if rest.is_empty() { "/" } else { rest };
    Some((authority, path))
}

/// `(host[:port], path)` of the URL a proxy says it was asked for (nginx's
/// `$scheme://$http_host$request_uri`): the authority runs to the first
/// `/` and must read as a host (`request_host`); the path is the rest,
/// whole (`?` and a raw `#` are the rules' to read, in every spelling).
/// Found by a review: read as [`split_url`] reads it, `Host:
/// app.example.com:443#` made the path `/` while nginx sent `/admin/x` to
/// the app.
pub fn split_original_url(url: &str) -> Option<(&str, &str)> {
    use crate::config::net::{request_host, strip_prefix_ignore_case};
    let rest = strip_prefix_ignore_case(url, "https://")
        .or_else(|| strip_prefix_ignore_case(url, "http://"))?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    request_host(authority)?;
    Some((authority, path))
}
