//! Forward auth: `/auth` for Traefik ForwardAuth and Caddy `forward_auth`,
//! `/auth/nginx` for nginx `auth_request`.
//!
//! The proxy asks "may this request in?" and passes the original request's
//! headers. Allowed: 200 with `Remote-User`, `Remote-Groups`, `Remote-Email`,
//! `Remote-Name`. Not in a required group (`?group=G`, any of): 403. Not
//! authenticated: on `/auth`, browsers are redirected to the login page
//! (302, or 303 for methods other than GET/HEAD) and everyone else gets 401
//! with the challenges and a `Location` naming the login page; on
//! `/auth/nginx` it is always 401 with that `Location`, never a redirect.
//! The original URL and method are read, only when the peer is a trusted
//! proxy, from the headers of the proxy each endpoint serves and no
//! others: `X-Forwarded-*` on `/auth` (Traefik, Caddy), `X-Original-*` on
//! `/auth/nginx`, where `X-Forwarded-Host` and `X-Forwarded-Server` (the
//! host nginx routed by, and its block's name, which the README's block
//! sets) must name the URL's host. (Caddy and Traefik pass a client's own
//! `X-Original-URL` through; nginx passes a client's `X-Forwarded-*`
//! unless the block sets them.)
//!
//! It owns the proxy contract (statuses, `Remote-*`, `Location`); who may in is
//! the service's answer, never this module's.

use std::net::SocketAddr;

use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};

use super::extract::{self, Surface};
use super::request;
use super::response::{self, Body};
use crate::access::{cases, AccessControl, Decision, Request, Subject, Verdict};
use crate::config::net::request_host;
use crate::config::SiteRef;
use crate::credentials;
use crate::error::{Error, Kind, Refusal, Result};
use crate::recent::Recent;
use crate::redirect::encode_query_value;
use crate::App;

/// Which proxy contract to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `/auth`: redirects browsers.
    Redirecting,
    /// `/auth/nginx`: never redirects (nginx turns 401 into 302 itself).
    Nginx,
}

static REMOTE_USER: HeaderName = HeaderName::from_static("remote-user");
static REMOTE_GROUPS: HeaderName = HeaderName::from_static("remote-groups");
static REMOTE_EMAIL: HeaderName = HeaderName::from_static("remote-email");
static REMOTE_NAME: HeaderName = HeaderName::from_static("remote-name");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");

/// The request the proxy is asking about.
struct Original {
    /// Its method, when the proxy said.
    method: Option<Method>,
    /// Its absolute URL, when the proxy said.
    url: Option<String>,
}

impl Original {
    /// Reads the headers `flavor`'s proxy sets; callers only do so for
    /// trusted peers.
    fn from_headers(parts: &Parts, flavor: Flavor) -> Original {
        let get = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (method, url) = match flavor {
            Flavor::Nginx => (
                get("x-original-method"),
                get("x-original-url").map(str::to_owned),
            ),
            Flavor::Redirecting => (
                get("x-forwarded-method"),
                match (get("x-forwarded-proto"), get("x-forwarded-host")) {
                    (Some(proto), Some(host)) if matches!(proto, "http" | "https") => {
                        let uri = get("x-forwarded-uri").unwrap_or("/");
                        Some(format!("{proto}://{host}{uri}"))
                    }
                    _ => None,
                },
            ),
        };
        let method = method.and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        // Only plain absolute http(s) URLs go into a redirect.
        let url = url.filter(|u| {
            (u.starts_with("https://") || u.starts_with("http://"))
                && u.bytes().all(|b| b.is_ascii_graphic())
        });
        Original { method, url }
    }
}

/// Answers a forward-auth request from `peer`.
pub async fn check(
    app: &App,
    parts: &Parts,
    peer: SocketAddr,
    flavor: Flavor,
) -> Result<Response<Body>> {
    // Before any credential: a query the proxy passed that cannot be read
    // might have held a group requirement, so nobody gets in.
    let required = required_groups(parts)?;
    let site = match site(app, parts, peer, flavor) {
        Some(site) => site,
        None => return no_site(app, parts, peer, flavor),
    };
    let call = Call {
        app,
        site,
        parts,
        peer,
        flavor,
    };
    // Only with rules is the request read: without, every request gets
    // the default policy.
    let uniform = app.with_access(|rules| rules.is_uniform());
    let asked = (!uniform).then(|| Asked::read(app, parts, peer, flavor));
    let first = match &asked {
        Some(asked) => asked.decide_first(app),
        None => app.with_access(|rules| rules.decide(&UNIFORM, None)),
    };
    match first.verdict {
        // `?group=` narrows every rule, a bypass too: then a sign-in it is.
        Verdict::Bypass if required.is_empty() => return bypassed(),
        Verdict::Bypass => {}
        Verdict::Deny => return denied(call, first, None),
        Verdict::OneFactor | Verdict::TwoFactor | Verdict::SignIn => {}
    }
    let outcome = match extract::required(parts, Surface::forward(&app.config)) {
        Ok(presented) => app.service.authenticate(&presented).await,
        Err(e) => Err(e),
    };
    let who = match outcome {
        Ok(who) => who,
        Err(e) if matches!(e.kind(), Kind::Unauthorized(_)) => {
            return Ok(unauthenticated(call, &e))
        }
        Err(e) => return Err(e),
    };
    if !super::pages::session_fits(app, site, &who)? {
        // A cookie of another of latch's domains (replayed by an app there):
        // sign in on this domain's login page.
        let e = Error::unauthorized(Refusal::BadToken);
        return Ok(unauthenticated(call, &e));
    }
    let signed_in = SignedIn {
        who: &who,
        first,
        asked: asked.as_ref(),
        required: &required,
    };
    match with_ready(app, who.user_id, |user| signed_in.answer(call, user))? {
        Some(answer) => answer,
        None => {
            // The user is gone.
            let e = Error::unauthorized(Refusal::BadToken);
            Ok(unauthenticated(call, &e))
        }
    }
}

/// One forward-auth request: what every answer to it is shaped from.
#[derive(Clone, Copy)]
struct Call<'a> {
    app: &'a App,
    site: SiteRef<'a>,
    parts: &'a Parts,
    peer: SocketAddr,
    flavor: Flavor,
}

/// What is known of a request once its credential was accepted.
struct SignedIn<'a> {
    who: &'a crate::model::Identity,
    /// The decision made before anyone was known.
    first: Decision,
    asked: Option<&'a Asked<'a>>,
    /// `?group=`: one of these, if any.
    required: &'a [String],
}

impl SignedIn<'_> {
    /// The answer for `user`: the subjects decide if the first decision
    /// left it to them, then the second factor, then `?group=`, then 200
    /// with `Remote-*`.
    fn answer(&self, call: Call<'_>, user: &Ready) -> Result<Response<Body>> {
        let mut verdict = self.first.verdict;
        if let (Verdict::SignIn, Some(asked)) = (self.first.verdict, self.asked) {
            let known = Known {
                subject: Subject {
                    username: &self.who.username,
                    groups: &user.groups,
                },
                user: user.user,
                profile: user.generation,
            };
            let second = asked.decide_known(call.app, &known);
            match second.verdict {
                Verdict::Bypass if self.required.is_empty() => return bypassed(),
                Verdict::Bypass => {}
                Verdict::Deny => return denied(call, second, Some(self.who)),
                Verdict::OneFactor | Verdict::TwoFactor | Verdict::SignIn => {}
            }
            verdict = second.verdict;
        }
        if verdict == Verdict::TwoFactor && !self.who.factors.two() {
            return second_factor_needed(call, self.who);
        }
        let required = self.required;
        if !required.is_empty() && !required.iter().any(|g| user.groups.contains(g)) {
            tracing::info!(
                user_id = self.who.user_id.get(),
                "forward auth: not in a required group"
            );
            return not_in_group(call);
        }
        Ok(allowed(user))
    }
}

/// A user's answer, ready on this thread: the headers of the 200 (the
/// four `Remote-*` and `Cache-Control`) as this thread's own copies
/// (sending them touches no count another thread shares; cloning the map
/// costs less than building it) and the groups. Valid while the service's profile
/// generation is the one it was made at (every change to a user bumps it).
struct Ready {
    app: u64,
    user: crate::model::UserId,
    generation: u64,
    headers: hyper::HeaderMap,
    groups: Vec<String>,
}

/// The headers of a 200: `Remote-*` with these values, and `no-store`.
fn answer_headers(user: HeaderValue, groups: HeaderValue, email: HeaderValue) -> hyper::HeaderMap {
    let mut h = hyper::HeaderMap::with_capacity(5);
    h.insert(REMOTE_USER.clone(), user.clone());
    h.insert(REMOTE_GROUPS.clone(), groups);
    h.insert(REMOTE_EMAIL.clone(), email);
    h.insert(REMOTE_NAME.clone(), user);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}

/// Users ready per thread; beyond it the oldest goes.
const READY_PER_THREAD: usize = 16;

thread_local! {
    static READY: std::cell::RefCell<Recent<Ready, READY_PER_THREAD>> =
        const { std::cell::RefCell::new(Recent::new()) };
}

/// Runs `f` with `user`'s answer, from this thread's copy when it is
/// current, else from the service's profile; `None` when there is no
/// such user.
fn with_ready<R>(
    app: &App,
    user: crate::model::UserId,
    f: impl FnOnce(&Ready) -> R,
) -> Result<Option<R>> {
    let generation = app.service.profile_generation();
    let id = app.id();
    READY.with(|cell| {
        {
            let ready = cell.borrow();
            let found = ready.find(|r| r.app == id && r.user == user && r.generation == generation);
            if let Some(r) = found {
                return Ok(Some(f(r)));
            }
        }
        let Some(profile) = app.service.profile(user)? else {
            return Ok(None);
        };
        let copy = |b: &bytes::Bytes| HeaderValue::from_bytes(b).map_err(Error::internal);
        let entry = Ready {
            app: id,
            user,
            generation,
            headers: answer_headers(
                copy(&profile.username)?,
                copy(&profile.groups_joined)?,
                copy(&profile.email)?,
            ),
            groups: profile.groups.clone(),
        };
        let out = f(&entry);
        cell.borrow_mut().put(entry);
        Ok(Some(out))
    })
}

/// The domain the forwarded request belongs to (always the one, without
/// `[[forward_auth.domains]]`); `None` when it is under none of them.
fn site<'a>(app: &'a App, parts: &Parts, peer: SocketAddr, flavor: Flavor) -> Option<SiteRef<'a>> {
    if app.config.forward_auth.domains.is_empty() {
        return Some(app.config.primary_site());
    }
    let host = believed(app, parts, peer, flavor).map(|(h, _, _)| h);
    app.config.site_for_host(host)
}

/// 403 for a host under none of the domains: latch cannot sign anyone in
/// for it (its cookie would not be sent), so nobody gets in. Logged once
/// per host.
fn no_site(app: &App, parts: &Parts, peer: SocketAddr, flavor: Flavor) -> Result<Response<Body>> {
    let host = believed(app, parts, peer, flavor).map(|(h, _, _)| h);
    app.warn_once_about_host(host.unwrap_or(""));
    Err(Error::new(Kind::Forbidden(
        "this host is under none of latch's domains",
    )))
}

/// What the rules see when they need not look: without rules, every
/// request gets the default policy.
const UNIFORM: Request<'static> = Request {
    host: "",
    path: "/",
    method: "GET",
    client: None,
};

/// Host, path and query, and the method if the proxy said.
type Said<'a> = (&'a str, &'a str, Option<&'a str>);

/// The request the proxy asks about, as the rules see it: borrowed from
/// the headers, nothing allocated.
struct Asked<'a> {
    /// The proxy's headers, when the peer is a trusted proxy (no one
    /// else's are believed).
    seen: Option<ProxyHeaders<'a>>,
    flavor: Flavor,
    /// What they say ([`forwarded`]), read when first needed: a
    /// remembered decision is found by the headers' bytes alone.
    original: std::cell::OnceCell<Option<Said<'a>>>,
    /// The client's address (the peer, or what a trusted proxy reports).
    client: std::net::IpAddr,
}

/// The decisions this thread made lately, by everything they depend on:
/// the rules in force (app and generation), the trusted proxy's headers
/// as sent (host, path and method are read from these alone), the
/// client address, and for a known visitor who they are (their id and
/// name, and the profile generation their groups were read at: every
/// change to a user moves it). A decision is a function of these alone,
/// so a repeated request skips reading the headers and the rules.
struct Remembered {
    app: u64,
    generation: u64,
    who: Option<(crate::model::UserId, u64, Box<str>)>,
    headers: SentHeaders,
    client: std::net::IpAddr,
    decision: Decision,
}

/// [`ProxyHeaders`] as sent, kept: the endpoint, and each header's bytes
/// (one after another in `bytes`; `None` where it was absent). Two
/// spellings of one request are two entries, each decided right.
struct SentHeaders {
    flavor: Flavor,
    lens: [Option<u16>; PROXY_HEADERS],
    bytes: Box<[u8]>,
}

/// A visitor whose credential was accepted, as the rules see them.
struct Known<'s> {
    subject: Subject<'s>,
    user: crate::model::UserId,
    /// The profile generation `subject.groups` was read at.
    profile: u64,
}

/// Decisions remembered per thread, of each kind (before anyone is known,
/// and for known visitors); beyond it the oldest goes.
const REMEMBERED_PER_THREAD: usize = 32;

/// Most bytes of proxy headers remembered (a longer request is decided
/// every time).
const REMEMBERED_MAX: usize = 1024;

type Memory = std::cell::RefCell<Recent<Remembered, REMEMBERED_PER_THREAD>>;

thread_local! {
    static REMEMBERED: Memory = const { std::cell::RefCell::new(Recent::new()) };
    static REMEMBERED_KNOWN: Memory = const { std::cell::RefCell::new(Recent::new()) };
}

impl<'a> Asked<'a> {
    /// [`Asked::decide`] for a visitor not yet known, remembered per
    /// thread for requests exactly like this one under the same rules.
    fn decide_first(&self, app: &App) -> Decision {
        self.remembered(app, None, &REMEMBERED)
    }

    /// [`Asked::decide`] for a known visitor, remembered per thread for
    /// requests exactly like this one by the same user under the same
    /// rules and profiles. With rules that name groups, every request of
    /// a signed-in visitor asks this.
    fn decide_known(&self, app: &App, known: &Known<'_>) -> Decision {
        self.remembered(app, Some(known), &REMEMBERED_KNOWN)
    }

    fn remembered(
        &self,
        app: &App,
        known: Option<&Known<'_>>,
        memory: &'static std::thread::LocalKey<Memory>,
    ) -> Decision {
        let subject = known.map(|k| &k.subject);
        let Some(seen) = self.seen.as_ref().filter(|s| s.len() <= REMEMBERED_MAX) else {
            return app.with_access(|rules| self.decide(rules, subject));
        };
        let (id, generation) = (app.id(), app.access_generation());
        let same_visitor = |r: &Remembered| match (&r.who, known) {
            (None, None) => true,
            (Some((user, profile, name)), Some(k)) => {
                *user == k.user && *profile == k.profile && **name == *k.subject.username
            }
            _ => false,
        };
        let same = |r: &Remembered| {
            r.app == id
                && r.generation == generation
                && r.client == self.client
                && seen.sent_as(&r.headers, self.flavor)
                && same_visitor(r)
        };
        let hit = memory.with(|cell| cell.borrow().find(same).map(|r| r.decision));
        if let Some(decision) = hit {
            return decision;
        }
        let decision = app.with_access(|rules| self.decide(rules, subject));
        if let Some(headers) = seen.kept(self.flavor) {
            let entry = Remembered {
                app: id,
                generation,
                who: known.map(|k| (k.user, k.profile, k.subject.username.into())),
                headers,
                client: self.client,
                decision,
            };
            memory.with(|cell| cell.borrow_mut().put(entry));
        }
        decision
    }

    fn read(app: &App, parts: &'a Parts, peer: SocketAddr, flavor: Flavor) -> Asked<'a> {
        let trusts = |ip| app.config.forward_auth.trusts(ip);
        Asked {
            seen: trusts(peer.ip()).then(|| ProxyHeaders::scan(parts)),
            flavor,
            original: std::cell::OnceCell::new(),
            // The router worked it out for this request already.
            client: crate::audit::current_source()
                .unwrap_or_else(|| request::client_address(&parts.headers, peer.ip(), trusts)),
        }
    }

    /// The decision for `who`. A request whose URL the proxy did not give
    /// (or an untrusted peer) cannot be matched against rules: denied.
    fn decide(&self, rules: &AccessControl, who: Option<&Subject<'_>>) -> Decision {
        let original = self.original.get_or_init(|| {
            let seen = self.seen.as_ref()?;
            forwarded(seen, self.flavor)
        });
        let Some((host, path, method)) = *original else {
            return Decision {
                verdict: Verdict::Deny,
                rule: None,
            };
        };
        let request = |method| Request {
            host,
            path,
            method,
            client: Some(self.client),
        };
        match method {
            Some(method) => rules.decide(&request(method), who),
            // A proxy that does not say which method could be passing any:
            // the strictest answer over every method a rule may name.
            None => crate::access::METHODS
                .iter()
                .map(|m| rules.decide(&request(m), who))
                .max_by_key(|d| d.verdict)
                .unwrap_or(Decision {
                    verdict: Verdict::Deny,
                    rule: None,
                }),
        }
    }
}

/// [`forwarded`], when `peer` is a trusted proxy (no one else's headers
/// are believed).
fn believed<'p>(app: &App, parts: &'p Parts, peer: SocketAddr, flavor: Flavor) -> Option<Said<'p>> {
    app.config
        .forward_auth
        .trusts(peer.ip())
        .then(|| forwarded(&ProxyHeaders::scan(parts), flavor))
        .flatten()
}

/// Host, path and method from `flavor`'s proxy headers, read as
/// [`Original`] reads them: http(s) only, printable ASCII, a host that
/// reads as one (`config::net::request_host`) and, for nginx, the host it
/// routed by and the name of the `server` block that took the request;
/// else `None`.
fn forwarded<'p>(seen: &ProxyHeaders<'p>, flavor: Flavor) -> Option<Said<'p>> {
    let fits = |text: &str| text.len() <= crate::access::MAX_PATH;
    let get = |name: &HeaderName| {
        seen.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let printable = |text: &str| text.bytes().all(|b| b.is_ascii_graphic());
    let (host, path, method) = match flavor {
        Flavor::Nginx => {
            let url = get(&X_ORIGINAL_URL).filter(|u| printable(u))?;
            let (host, path) = cases::split_original_url(url)?;
            if !fits(path) {
                return None;
            }
            // `$http_host` in the URL is the client's Host header. Two
            // more must name its host: the host nginx routed by
            // (X-Forwarded-Host: `$host`, the request line's in absolute
            // form) and the name of the block that took the request
            // (X-Forwarded-Server: `$server_name`; nginx's default server,
            // perhaps the app's, takes a host it does not serve). A block
            // without a name sends none (found by reviews).
            let server = get(&X_FORWARDED_SERVER).filter(|s| request_host(s).is_some());
            let Some(server) = server else {
                unnamed_nginx_block();
                return None;
            };
            let routed = get(&X_FORWARDED_HOST)?;
            if !same_host(routed, host) || !same_host(server, host) {
                return None;
            }
            (host, path, get(&X_ORIGINAL_METHOD))
        }
        Flavor::Redirecting => {
            get(&X_FORWARDED_PROTO).filter(|p| matches!(*p, "http" | "https"))?;
            let host = get(&X_FORWARDED_HOST)?;
            let path = get(&X_FORWARDED_URI).unwrap_or("/");
            if !fits(path) || !printable(path) || !path.starts_with('/') {
                return None;
            }
            (host, path, get(&X_FORWARDED_METHOD))
        }
    };
    // The whole authority must read as a host: `app.example.com:x.example.com`
    // is no host (Go's proxies route on the part before the colon).
    request_host(host)?;
    Some((host, path, method))
}

/// Says once that an nginx request came without its block's name, or with
/// a name that is no host (`server_name _`, a wildcard, a regex): such
/// requests are denied when access rules or `[[forward_auth.domains]]` are
/// set. Only latch's own header is judged here, never a client's Host, so
/// a scanner cannot set it off.
fn unnamed_nginx_block() {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "forward auth (/auth/nginx): X-Forwarded-Server is missing or not one host name: \
             give the app's server block one plain server_name and send it as \
             `proxy_set_header X-Forwarded-Server $server_name;` (README, nginx); denied \
             when access rules or [[forward_auth.domains]] are set"
        );
    }
}

/// Longest `rd` (encoded) a sign-in redirect carries; a longer one is
/// left out (the visitor signs in and lands on latch's page). nginx reads
/// the auth subrequest's whole answer head into `proxy_buffer_size` (4
/// KiB by default): a longer `Location` was a 500 there, not a sign-in.
const MAX_RD: usize = 2048;

/// The proxy headers forward auth reads, found in one pass over the
/// request's headers (the first of each name, as `HeaderMap::get` would
/// answer): cheaper than one hashed lookup per name on every request.
#[derive(Default)]
struct ProxyHeaders<'a> {
    values: [Option<&'a HeaderValue>; PROXY_HEADERS],
}

/// How many names [`ProxyHeaders`] reads.
const PROXY_HEADERS: usize = 7;

/// Where [`ProxyHeaders`] keeps each name it reads: a `match` on the
/// name (its length first), not a comparison with each in turn.
fn proxy_header_slot(name: &str) -> Option<usize> {
    Some(match name {
        "x-forwarded-proto" => 0,
        "x-forwarded-host" => 1,
        "x-forwarded-uri" => 2,
        "x-forwarded-method" => 3,
        "x-original-url" => 4,
        "x-original-method" => 5,
        "x-forwarded-server" => 6,
        _ => return None,
    })
}

impl<'a> ProxyHeaders<'a> {
    fn scan(parts: &'a Parts) -> ProxyHeaders<'a> {
        let mut seen = ProxyHeaders::default();
        for (name, value) in &parts.headers {
            if let Some(i) = proxy_header_slot(name.as_str()) {
                seen.values[i].get_or_insert(value);
            }
        }
        seen
    }

    fn get(&self, name: &HeaderName) -> Option<&'a HeaderValue> {
        self.values[proxy_header_slot(name.as_str())?]
    }

    /// Their bytes, all told.
    fn len(&self) -> usize {
        self.values.iter().flatten().map(|v| v.len()).sum()
    }

    /// Whether these are the headers `kept` holds, byte for byte, on the
    /// same endpoint.
    fn sent_as(&self, kept: &SentHeaders, flavor: Flavor) -> bool {
        if kept.flavor != flavor {
            return false;
        }
        let mut at = 0;
        for (value, len) in self.values.iter().zip(kept.lens) {
            match (value, len) {
                (None, None) => {}
                (Some(v), Some(len)) => {
                    let len = usize::from(len);
                    if kept.bytes.get(at..at + len) != Some(v.as_bytes()) {
                        return false;
                    }
                    at += len;
                }
                _ => return false,
            }
        }
        true
    }

    /// A copy to remember them by (`None` for a header over 64 KiB).
    fn kept(&self, flavor: Flavor) -> Option<SentHeaders> {
        let mut bytes = Vec::with_capacity(self.len());
        let mut lens = [None; PROXY_HEADERS];
        for (value, len) in self.values.iter().zip(&mut lens) {
            if let Some(v) = value {
                *len = Some(u16::try_from(v.len()).ok()?);
                bytes.extend_from_slice(v.as_bytes());
            }
        }
        Some(SentHeaders {
            flavor,
            lens,
            bytes: bytes.into(),
        })
    }
}

/// Whether two authorities name the same host (case, a port and a
/// trailing dot aside).
fn same_host(a: &str, b: &str) -> bool {
    use crate::config::net::request_host;
    matches!((request_host(a), request_host(b)), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// 200 naming nobody: a bypass rule lets anyone in, signed in or not.
/// The four `Remote-*` headers are there, empty, as for a user without an
/// email: a proxy that copies them (Caddy before 2.9 fills a missing one
/// with its placeholder text) then passes empty values.
fn bypassed() -> Result<Response<Body>> {
    let empty = HeaderValue::from_static("");
    Ok(allowed(&Ready {
        app: 0,
        user: crate::model::UserId::new(0),
        generation: 0,
        headers: answer_headers(empty.clone(), empty.clone(), empty),
        groups: Vec::new(),
    }))
}

/// 403 by an access rule (or the default policy): a page for browsers,
/// JSON for scripts.
fn denied(
    call: Call<'_>,
    decision: Decision,
    who: Option<&crate::model::Identity>,
) -> Result<Response<Body>> {
    let Call {
        app,
        parts,
        peer,
        flavor,
        ..
    } = call;
    let rule = decision.rule.map(|i| i + 1);
    match (rule, who) {
        (Some(rule), Some(who)) => tracing::info!(
            rule,
            user_id = who.user_id.get(),
            "forward auth: denied by an access rule"
        ),
        (Some(rule), None) => tracing::info!(rule, "forward auth: denied by an access rule"),
        (None, _) => {
            // The default policy, or a request the rules cannot read.
            match believed(app, parts, peer, flavor) {
                Some((host, _, _)) => tracing::info!(
                    host = %host.escape_debug(),
                    "forward auth: denied by the default policy"
                ),
                None => tracing::info!(
                    "forward auth: denied: the request's URL is unknown (a peer not in \
                     trusted_proxies, or no X-Forwarded-*/X-Original-* headers, or a host \
                     that is no host, or a path and query over 8 KiB)"
                ),
            }
        }
    }
    let e = Error::new(Kind::Forbidden("access to this address is denied"));
    forbidden(call, e, who.is_some())
}

/// A `two_factor` rule, and a credential that proved a password alone:
/// browsers go to the code form (`<login page>/otp`, which asks a user
/// without a second factor to set one up, unless `[totp] enrol_on_demand`
/// is off: then this is 403), scripts get 401 `otp_required` with that
/// `Location` (nginx turns it into the redirect).
fn second_factor_needed(call: Call<'_>, who: &crate::model::Identity) -> Result<Response<Body>> {
    let app = call.app;
    if !app.config.totp.enrol_on_demand && !app.service.has_totp(who.user_id)? {
        tracing::info!(
            user_id = who.user_id.get(),
            "forward auth: a second factor is required and the user has none"
        );
        let e = Error::new(Kind::Forbidden(
            "this address needs a second factor: set one up on your account page",
        ));
        return forbidden(call, e, true);
    }
    tracing::info!(
        user_id = who.user_id.get(),
        "forward auth: a second factor is required: sent to the code form"
    );
    let e = Error::unauthorized(Refusal::OtpRequired);
    let page = call.site.login_url.map(code_form_url);
    Ok(send_to(call, &e, page.as_deref()))
}

/// The code form (second factor, step-up, enrolment) beside the login page.
pub fn code_form_url(login: &str) -> String {
    format!("{}/otp", login.trim_end_matches('/'))
}

/// 403: signed in, but in none of the required groups. A browser gets a
/// page that offers to sign in as someone else and come back.
fn not_in_group(call: Call<'_>) -> Result<Response<Body>> {
    let e = Error::new(Kind::Forbidden(
        "this account is not in a group allowed here",
    ));
    forbidden(call, e, true)
}

/// A 403: JSON for scripts; for browsers a page whose sign-in link comes
/// back to the refused URL.
fn forbidden(call: Call<'_>, e: Error, signed_in: bool) -> Result<Response<Body>> {
    let Call {
        app,
        site,
        parts,
        peer,
        flavor,
    } = call;
    if !request::is_browser(parts) {
        return Err(e);
    }
    let original = original(app, parts, peer, flavor);
    Ok(super::pages::error_page_back_to(
        app,
        site,
        &e,
        original.url.as_deref(),
        signed_in,
    ))
}

/// 200 with the `Remote-*` headers.
fn allowed(user: &Ready) -> Response<Body> {
    let mut res = response::empty(StatusCode::OK);
    *res.headers_mut() = user.headers.clone();
    res
}

/// `?group=G&group=H`: the groups of which the user must have one. A
/// query that cannot be read (a broken `%` escape, not UTF-8) is a 400:
/// it must never read as "no group required".
fn required_groups(parts: &Parts) -> Result<Vec<String>> {
    let Some(query) = parts.uri.query().filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let pairs = credentials::parse_form(query.as_bytes())
        .ok_or_else(|| Error::invalid("the forward-auth query cannot be read; nobody gets in"))?;
    Ok(pairs
        .into_iter()
        .filter(|(k, v)| k == "group" && !v.is_empty())
        .map(|(_, v)| v)
        .collect())
}

/// The request the proxy asks about, from a trusted proxy's headers only.
fn original(app: &App, parts: &Parts, peer: SocketAddr, flavor: Flavor) -> Original {
    if app.config.forward_auth.trusts(peer.ip()) {
        Original::from_headers(parts, flavor)
    } else {
        Original {
            method: None,
            url: None,
        }
    }
}

/// The answer for a request that is not (or no longer) signed in. Only
/// here is the original request read from the proxy's headers: the
/// allowed path does not need it.
fn unauthenticated(call: Call<'_>, e: &Error) -> Response<Body> {
    send_to(call, e, call.site.login_url)
}

/// Sends the visitor to `page` with `rd` back to the original URL: a
/// redirect for browsers on `/auth`, else `e` as a 401 with that
/// `Location`.
fn send_to(call: Call<'_>, e: &Error, page: Option<&str>) -> Response<Body> {
    let Call {
        app,
        parts,
        peer,
        flavor,
        ..
    } = call;
    let original = original(app, parts, peer, flavor);
    let location = page.map(
        |login| match original.url.as_deref().map(encode_query_value) {
            Some(rd) if rd.len() <= MAX_RD => format!("{login}?rd={rd}"),
            _ => login.to_owned(),
        },
    );
    if let (Flavor::Redirecting, Some(location), true) =
        (flavor, &location, request::is_browser(parts))
    {
        let method = original.method.as_ref().unwrap_or(&parts.method);
        let status = if method == Method::GET || method == Method::HEAD {
            StatusCode::FOUND
        } else {
            StatusCode::SEE_OTHER
        };
        return response::redirect(status, location);
    }
    let mut res = response::error(e);
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LOCATION, value);
    }
    if from_a_browser(parts) {
        // This 401 reaches a page's fetch on the app's own site: a Basic
        // challenge would make the browser ask for latch's password there.
        response::bearer_challenge_only(&mut res);
    }
    res
}

/// Whether a browser sent the request (any kind: page, fetch, XHR):
/// browsers send `Sec-Fetch-Mode` on every request, older ones
/// `X-Requested-With` on XHRs, and pages accept HTML.
fn from_a_browser(parts: &Parts) -> bool {
    parts.headers.contains_key("sec-fetch-mode")
        || parts.headers.contains_key("x-requested-with")
        || request::is_browser(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().uri("/auth");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_one_pass_reads_as_header_lookups_do() {
        let p = parts(&[
            ("Host", "auth.example.com"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Host", "evil.example.com"),
            ("x-forwarded-proto", "https"),
            ("X-Forwarded-Uri", "/a?b=1"),
            ("X-Original-Method", "PUT"),
            ("X-Other", "1"),
        ]);
        let seen = ProxyHeaders::scan(&p);
        for name in [
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &X_FORWARDED_URI,
            &X_FORWARDED_METHOD,
            &X_ORIGINAL_URL,
            &X_ORIGINAL_METHOD,
            &X_FORWARDED_SERVER,
        ] {
            assert!(proxy_header_slot(name.as_str()).is_some(), "{name}");
            assert_eq!(seen.get(name), p.headers.get(name), "{name}");
        }
        assert_eq!(proxy_header_slot("x-other"), None);
        assert_eq!(seen.get(&X_FORWARDED_HOST).unwrap(), "app.example.com");
        assert_eq!(seen.get(&X_FORWARDED_METHOD), None);
        assert_eq!(
            forwarded(&seen, Flavor::Redirecting),
            Some(("app.example.com", "/a?b=1", None))
        );
    }
}
