//! Access control: which rule answers "may they in?" for a request that
//! forward auth is asked about, and the policy it names.
//!
//! - [`AccessControl`]: the compiled `[access_control]` section, its rules
//!   in order and the default policy, and [`AccessControl::decide`];
//! - `path.rs`: the spellings of one path a rule is tried against, so that
//!   `%2F`, `//`, `/./`, `/../`, `\` and `;params` cannot reach around a
//!   rule;
//! - [`cases`]: the policy test file (`latch access test`).
//!
//! The first rule whose fields all match decides. A rule that names
//! subjects cannot be decided for a visitor who is not signed in: then the
//! answer is "sign in first" ([`Verdict::SignIn`]) and the decision is made
//! again with the user. Rules are compiled once (regexes included) when the
//! configuration is validated; deciding never allocates unless the path
//! has a spelling that needs normalising.
//!
//! It owns the rules' meaning; it never reads a header, a cookie or the
//! store (forward auth and the CLI hand it the request and the user).

pub mod cases;
mod path;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use regex::Regex;

use crate::config::IpNet;

/// Methods a rule may name (HTTP and WebDAV).
pub const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
];

/// What a rule (or the default) asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    /// Let in without a sign-in, and without `Remote-*` headers.
    Bypass,
    /// Let in anyone signed in (then `?group=` may narrow it).
    OneFactor,
    /// Let in anyone signed in with a password and a one-time code.
    TwoFactor,
    /// Refuse everyone: 403.
    Deny,
}

impl Policy {
    /// Reads `bypass`, `one_factor` or `deny`.
    pub fn parse(text: &str) -> Option<Policy> {
        match text {
            "bypass" => Some(Policy::Bypass),
            "one_factor" => Some(Policy::OneFactor),
            "two_factor" => Some(Policy::TwoFactor),
            "deny" => Some(Policy::Deny),
            _ => None,
        }
    }

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::OneFactor => "one_factor",
            Policy::TwoFactor => "two_factor",
            Policy::Deny => "deny",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Let in without a sign-in.
    Bypass,
    /// Let in once signed in.
    OneFactor,
    /// Let in once signed in with a second factor.
    TwoFactor,
    /// A rule that names subjects matched everything else: who the
    /// visitor is decides, so they must sign in first.
    SignIn,
    /// Refuse.
    Deny,
}

impl From<Policy> for Verdict {
    fn from(policy: Policy) -> Verdict {
        match policy {
            Policy::Bypass => Verdict::Bypass,
            Policy::OneFactor => Verdict::OneFactor,
            Policy::TwoFactor => Verdict::TwoFactor,
            Policy::Deny => Verdict::Deny,
        }
    }
}

impl Verdict {
    /// Its name as `latch access` prints it and test files expect it
    /// (a sign-in is what `one_factor` asks of a visitor too).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Bypass => "bypass",
            Verdict::OneFactor | Verdict::SignIn => "one_factor",
            Verdict::TwoFactor => "two_factor",
            Verdict::Deny => "deny",
        }
    }
}

/// A decision and the rule that made it (`None`: the default policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// The deciding rule's position, from 0.
    pub rule: Option<usize>,
}

/// The request a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The host the client asked for (any case; a port is ignored).
    pub host: &'a str,
    /// The path and query as the client sent them (`/a/b?c=d`).
    pub path: &'a str,
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The client's address, when known (networks never match without).
    pub client: Option<IpAddr>,
}

/// Longest original path and query forward auth reads, behind every proxy
/// alike (nginx's URL is measured from its path). A longer one is read as
/// no URL: the rules never run on it (each spelling of a long path costs a
/// pass of every pattern over it), so it is denied where rules apply.
/// nginx itself refuses request lines over 8 KiB by default.
pub const MAX_PATH: usize = 8 * 1024;

/// Who is asking: a signed-in user.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The username.
    pub username: &'a str,
    /// Their groups.
    pub groups: &'a [String],
}

/// A `domain` entry: exact, or `*.` and a suffix (any depth, not the
/// suffix itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// `app.example.com`.
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Wildcard(String),
}

impl DomainPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            DomainPattern::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(name) => f.write_str(name),
            DomainPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A `subject` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectPattern {
    /// `user:NAME`.
    User(String),
    /// `group:NAME`.
    Group(String),
}

impl SubjectPattern {
    fn matches(&self, who: &Subject<'_>) -> bool {
        match self {
            SubjectPattern::User(name) => who.username == name,
            SubjectPattern::Group(name) => who.groups.iter().any(|g| g == name),
        }
    }
}

impl fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectPattern::User(name) => write!(f, "user:{name}"),
            SubjectPattern::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// One compiled rule. Every field given must match; an empty list is a
/// field not given.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Hosts, any of.
    pub domains: Vec<DomainPattern>,
    /// Regexes on the path and query, any of.
    pub resources: Vec<Regex>,
    /// Methods (uppercase), any of.
    pub methods: Vec<String>,
    /// Client networks, any of.
    pub networks: Vec<IpNet>,
    /// Users and groups, any of.
    pub subjects: Vec<SubjectPattern>,
    /// What a match asks.
    pub policy: Policy,
}

/// How a rule's fields other than the subject compare with a request.
enum Fit {
    /// Some field does not match.
    No,
    /// All match; the rule has no subjects.
    Yes,
    /// All match; the subjects decide.
    IfSubject,
}

impl Rule {
    /// `host` is `None` when the rule is known to match the host already.
    /// `resources_match` says whether one of the rule's regexes matches
    /// the path; it is asked last, and only when the rule has some.
    fn fits(
        &self,
        request: &Request<'_>,
        host: Option<&str>,
        resources_match: impl FnOnce() -> bool,
    ) -> Fit {
        let matched = host.is_none_or(|host| self.domains.iter().any(|d| d.matches(host)))
            && (self.methods.is_empty()
                || self
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(request.method)))
            && (self.networks.is_empty()
                || request
                    .client
                    .is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip))))
            && (self.resources.is_empty() || resources_match());
        match (matched, self.subjects.is_empty()) {
            (false, _) => Fit::No,
            (true, true) => Fit::Yes,
            (true, false) => Fit::IfSubject,
        }
    }
}

impl Rule {
    /// The fields given, as TOML keys and values, in the order written.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            let quoted: Vec<String> = items
                .iter()
                .map(|i| crate::config::toml_string(&i.to_string()))
                .collect();
            format!("[{}]", quoted.join(", "))
        }
        let mut fields = vec![("domain", list(&self.domains))];
        if !self.resources.is_empty() {
            let texts: Vec<&str> = self.resources.iter().map(Regex::as_str).collect();
            fields.push(("resources", list(&texts)));
        }
        if !self.methods.is_empty() {
            fields.push(("methods", list(&self.methods)));
        }
        if !self.networks.is_empty() {
            fields.push(("networks", list(&self.networks)));
        }
        if !self.subjects.is_empty() {
            fields.push(("subject", list(&self.subjects)));
        }
        fields.push(("policy", crate::config::toml_string(self.policy.name())));
        fields
    }
}

impl fmt::Display for Rule {
    /// The rule's fields on one line: `domain = [...], policy = "deny"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.fields().iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{key} = {value}")?;
        }
        Ok(())
    }
}

/// The largest compiled set of one host's rules' regexes (beyond it, each
/// regex runs on its own: slower, never wrong).
const SET_SIZE_LIMIT: usize = 64 << 20;

/// The `[access_control]` section, compiled.
#[derive(Debug, Clone)]
pub struct AccessControl {
    /// The policy when no rule matches.
    pub default_policy: Policy,
    /// The policy test file `check-config` and a reload run, if any.
    pub tests: Option<std::path::PathBuf>,
    /// The rules, first match wins.
    rules: Vec<Rule>,
    /// For each host an exact `domain` names: the rules that can match it
    /// (those naming it, and wildcards covering it).
    by_host: HashMap<String, Candidates>,
    /// The rules that can match any other host: those with a wildcard.
    wildcards: Candidates,
}

/// The rules that can match a host, in order, with their regexes as one
/// set, run once per spelling of the path.
#[derive(Debug, Clone)]
struct Candidates {
    /// Positions in the rule list.
    rules: Vec<usize>,
    /// Their `resources`, in order (`None` if too large to build: then
    /// each regex runs on its own).
    set: Option<regex::RegexSet>,
    /// Each rule's regexes' positions in `set`.
    ids: Vec<std::ops::Range<usize>>,
    /// Whether any of them has `resources` (else the path never matters).
    any_resources: bool,
}

impl Candidates {
    fn new(all: &[Rule], rules: Vec<usize>) -> Candidates {
        let mut ids = Vec::with_capacity(rules.len());
        let mut patterns = Vec::new();
        for &i in &rules {
            let start = patterns.len();
            patterns.extend(all[i].resources.iter().map(Regex::as_str));
            ids.push(start..patterns.len());
        }
        let set = regex::RegexSetBuilder::new(&patterns)
            .size_limit(SET_SIZE_LIMIT)
            .build()
            .ok();
        Candidates {
            rules,
            set,
            ids,
            any_resources: !patterns.is_empty(),
        }
    }
}

impl Default for AccessControl {
    /// No rules, and anyone signed in may in: latch before access rules.
    fn default() -> AccessControl {
        AccessControl::new(Policy::OneFactor, Vec::new(), None)
    }
}

impl AccessControl {
    /// Compiles the rules' host index.
    pub fn new(
        default_policy: Policy,
        rules: Vec<Rule>,
        tests: Option<std::path::PathBuf>,
    ) -> AccessControl {
        let wildcard_rules: Vec<usize> = (0..rules.len())
            .filter(|&i| {
                rules[i]
                    .domains
                    .iter()
                    .any(|d| matches!(d, DomainPattern::Wildcard(_)))
            })
            .collect();
        let mut by_host = HashMap::new();
        for rule in &rules {
            for domain in &rule.domains {
                if let DomainPattern::Exact(host) = domain {
                    if !by_host.contains_key(host) {
                        let matching = (0..rules.len())
                            .filter(|&i| rules[i].domains.iter().any(|d| d.matches(host)))
                            .collect();
                        by_host.insert(host.clone(), Candidates::new(&rules, matching));
                    }
                }
            }
        }
        let wildcards = Candidates::new(&rules, wildcard_rules);
        AccessControl {
            default_policy,
            tests,
            rules,
            by_host,
            wildcards,
        }
    }

    /// Runs each regex on its own, as when a set is too large to build.
    #[cfg(test)]
    fn without_sets(mut self) -> AccessControl {
        for c in self.by_host.values_mut() {
            c.set = None;
        }
        self.wildcards.set = None;
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether every request gets the same answer, so forward auth need
    /// not read which request it is.
    pub fn is_uniform(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides `request` for `who` (`None`: not signed in).
    ///
    /// The rules are tried against every spelling of the path a server
    /// behind the proxy might read (as sent, percent-decoded, with dot
    /// segments and doubled slashes resolved, without `;params`), and the
    /// strictest answer of them stands: an encoding can make a request
    /// stricter, never laxer.
    pub fn decide(&self, request: &Request<'_>, who: Option<&Subject<'_>>) -> Decision {
        if self.rules.is_empty() {
            return self.default_decision();
        }
        // A host latch cannot read is no host a rule names: denied, never
        // matched by what it ends with.
        let Some(host) = crate::config::net::request_host(request.host) else {
            return Decision {
                verdict: Verdict::Deny,
                rule: None,
            };
        };
        let lowercase;
        let key = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowercase = host.to_ascii_lowercase();
            lowercase.as_str()
        } else {
            host
        };
        // Rules indexed under the host match it; the wildcards may not.
        let (candidates, check_host) = match self.by_host.get(key) {
            Some(rules) => (rules, None),
            None => (&self.wildcards, Some(host)),
        };
        if !candidates.any_resources {
            // No rule looks at the path: one answer for every spelling.
            return self.decide_one(candidates, request, check_host, request.path, who);
        }
        let mut strictest: Option<Decision> = None;
        path::for_each_spelling(request.path, |spelling| {
            let d = self.decide_one(candidates, request, check_host, spelling, who);
            if strictest.is_none_or(|s| d.verdict > s.verdict) {
                strictest = Some(d);
            }
            // Nothing is stricter than a deny.
            d.verdict != Verdict::Deny
        });
        strictest.unwrap_or_else(|| self.default_decision())
    }

    fn default_decision(&self) -> Decision {
        Decision {
            verdict: self.default_policy.into(),
            rule: None,
        }
    }

    fn decide_one(
        &self,
        candidates: &Candidates,
        request: &Request<'_>,
        host: Option<&str>,
        path: &str,
        who: Option<&Subject<'_>>,
    ) -> Decision {
        // The candidates' regexes as one set, run once per path, when the
        // first rule that needs it is reached.
        // `Some(None)`: none of them matches (known from the cheaper
        // `is_match`, which most requests need only).
        let mut matched: Option<Option<regex::SetMatches>> = None;
        for (k, &index) in candidates.rules.iter().enumerate() {
            let rule = &self.rules[index];
            let decided = |verdict| Decision {
                verdict,
                rule: Some(index),
            };
            let resources_match = || match &candidates.set {
                Some(set) => {
                    let m = matched
                        .get_or_insert_with(|| set.is_match(path).then(|| set.matches(path)));
                    m.as_ref()
                        .is_some_and(|m| candidates.ids[k].clone().any(|i| m.matched(i)))
                }
                None => rule.resources.iter().any(|r| r.is_match(path)),
            };
            match (rule.fits(request, host, resources_match), who) {
                (Fit::No, _) => {}
                (Fit::Yes, _) => return decided(rule.policy.into()),
                (Fit::IfSubject, None) => return decided(Verdict::SignIn),
                (Fit::IfSubject, Some(who)) => {
                    if rule.subjects.iter().any(|s| s.matches(who)) {
                        return decided(rule.policy.into());
                    }
                }
            }
        }
        self.default_decision()
    }

    /// One line saying what decided: `rule 3 (domain = ..., policy = ...)`
    /// or `the default policy (deny)`.
    pub fn explain(&self, decision: &Decision) -> String {
        match decision
            .rule
            .and_then(|i| self.rules.get(i).map(|r| (i, r)))
        {
            Some((i, rule)) => format!("rule {} ({rule})", i + 1),
            None => format!("the default policy ({})", self.default_policy),
        }
    }
}

#[cfg(test)]
mod tests;
