//! `[access_control]` as written into compiled rules: every regex is
//! compiled here, at start-up (and on a reload), so a bad rule stops
//! start-up with one line naming the rule and the field.
//!
//! It owns the section's checks; what a rule means is [`crate::access`]'s.

use super::raw::{OneOrMany, RawAccessControl, RawRule};
use super::IpNet;
use crate::access::{AccessControl, DomainPattern, Policy, Rule, SubjectPattern, METHODS};
use crate::error::{Error, Result};

/// Longest compiled regex accepted, in bytes of the compiled program, so a
/// rule cannot make start-up or matching heavy.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(super) fn access_control(raw: RawAccessControl) -> Result<AccessControl> {
    let default_policy = match raw.default_policy.as_deref() {
        None => Policy::OneFactor,
        Some(text) => policy(text)
            .map_err(|why| Error::config(format_args!("[access_control] default_policy: {why}")))?,
    };
    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            rule(r).map_err(|why| {
                Error::config(format_args!("[access_control] rule {}: {why}", i + 1))
            })
        })
        .collect::<Result<Vec<Rule>>>()?;
    Ok(AccessControl::new(default_policy, rules, raw.tests))
}

fn policy(text: &str) -> std::result::Result<Policy, String> {
    match Policy::parse(text) {
        Some(p) => Ok(p),
        None => Err(format!(
            "{text:?} is not one of \"deny\", \"two_factor\", \"one_factor\", \"bypass\""
        )),
    }
}

/// Each entry of a rule's list field, parsed; the first bad one is named
/// under the field's key.
fn each<T>(
    field: Option<OneOrMany>,
    key: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Vec<T>, String> {
    field
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|entry| parse(entry).map_err(|why| format!("{key}: {why}")))
        .collect()
}

fn rule(raw: RawRule) -> std::result::Result<Rule, String> {
    let policy = match raw.policy.as_deref() {
        Some(text) => policy(text).map_err(|why| format!("policy: {why}"))?,
        None => return Err("policy: missing (deny, two_factor, one_factor or bypass)".to_owned()),
    };
    let domains = each(raw.domain, "domain", domain)?;
    if domains.is_empty() {
        return Err("domain: missing (a host, or *.suffix, or a list of them)".to_owned());
    }
    let resources = each(raw.resources, "resources", resource)?;
    let methods = each(raw.methods, "methods", method)?;
    let networks = each(raw.networks, "networks", |n| {
        IpNet::parse(n).ok_or_else(|| format!("{n:?} is not an address or ADDR/PREFIX"))
    })?;
    let subjects = each(raw.subject, "subject", subject)?;
    if policy == Policy::Bypass && !subjects.is_empty() {
        return Err(
            "subject: a bypass rule lets in without a sign-in, so it cannot name subjects"
                .to_owned(),
        );
    }
    Ok(Rule {
        domains,
        resources,
        methods,
        networks,
        subjects,
        policy,
    })
}

/// `app.example.com` or `*.example.com`: letters, digits, `-`, `.`; the
/// one `*` is a whole leading label.
fn domain(text: &str) -> std::result::Result<DomainPattern, String> {
    let lower = text.trim_end_matches('.').to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return Err(format!(
            "{text:?} is not a host name or *.suffix (no scheme, port or path)"
        ));
    }
    Ok(if wildcard {
        DomainPattern::Wildcard(format!(".{name}"))
    } else {
        DomainPattern::Exact(name.to_owned())
    })
}

fn resource(text: &str) -> std::result::Result<regex::Regex, String> {
    regex::RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // The crate's message spans lines; the last one says what is wrong.
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ");
            format!("{text:?} is not a valid regex ({why})")
        })
}

fn method(text: &str) -> std::result::Result<String, String> {
    let upper = text.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(format!("{text:?} is not an HTTP method latch knows"))
    }
}

fn subject(text: &str) -> std::result::Result<SubjectPattern, String> {
    match text.split_once(':') {
        Some(("user", name)) if !name.is_empty() => Ok(SubjectPattern::User(name.to_owned())),
        Some(("group", name)) if !name.is_empty() => Ok(SubjectPattern::Group(name.to_owned())),
        _ => Err(format!("{text:?} is not \"user:NAME\" or \"group:NAME\"")),
    }
}
