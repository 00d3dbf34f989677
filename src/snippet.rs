//! The proxy configurations `latch proxy-snippet` prints: Caddy, nginx and
//! Traefik in front of one app, with latch as their forward-auth backend.
//!
//! These are the README's blocks (`tests/it/readme.rs` checks they are the
//! same text, and `tests/it/proxies.rs` runs what the binary prints against
//! the real proxies). Every value put into them is checked first
//! ([`Host`], [`Address`], group names), so nothing typed on the command
//! line can add a directive.

use crate::error::{Error, Result};

/// A DNS name: dot-separated labels of lowercase ASCII letters, digits
/// and `-` (not at either end of a label), at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    /// Checks `text` (any case; kept lowercase).
    pub fn parse(text: &str) -> Result<Host> {
        let host = text.to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.len() <= 253 && host.split('.').all(label_ok) {
            Ok(Host(host))
        } else {
            Err(Error::config(format_args!(
                "{text:?} is not a host name (letters, digits, '-' and '.', such as \
                 app.example.com)"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a Traefik router or service name: `--` for `-`, then
    /// `-` for `.`, so that no two hosts share one (`a-b.c` is `a--b-c`,
    /// `a.b-c` is `a-b--c`).
    fn key(&self) -> String {
        self.0.replace('-', "--").replace('.', "-")
    }
}

/// Where a proxy reaches a server: `HOST:PORT`, the host a [`Host`], an
/// IPv4 address or a bracketed IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(String);

impl Address {
    /// Checks `text`.
    pub fn parse(text: &str) -> Result<Address> {
        let bad = || {
            Error::config(format_args!(
                "{text:?} is not HOST:PORT (such as 127.0.0.1:3000, [::1]:3000 or app:80)"
            ))
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0 && !port.starts_with(['+', '0']))
            .ok_or_else(bad)?;
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => host.parse::<std::net::Ipv4Addr>().is_ok() || Host::parse(host).is_ok(),
        };
        if host_ok {
            Ok(Address(text.to_ascii_lowercase()))
        } else {
            Err(bad())
        }
    }

    /// The address from a socket address latch listens on: an unspecified
    /// one (`0.0.0.0`, `[::]`) is reached on loopback.
    pub fn of_listener(addr: std::net::SocketAddr) -> Address {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        Address(format!("{ip}:{}", addr.port()))
    }
}

/// The proxies latch prints a configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Proxy {
    /// Caddy 2.6 and later: one Caddyfile.
    Caddy,
    /// nginx: blocks for `http { }`.
    Nginx,
    /// Traefik 3: the dynamic configuration (the file provider's file).
    Traefik,
    /// Traefik 3: the static configuration (the same for every app).
    TraefikStatic,
}

/// What a snippet protects, and where everything is.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// The protected app's host name.
    pub app: Host,
    /// Where the proxy reaches the app.
    pub upstream: Address,
    /// latch's own host name (its login page), from `public_url`.
    pub auth: Host,
    /// The HTTPS port browsers reach it on: 443, or `public_url`'s own.
    pub auth_port: u16,
    /// Where the proxy reaches latch.
    pub latch: Address,
    /// The app needs one of these groups (none: anyone signed in).
    pub groups: Vec<String>,
}

impl Snippet {
    /// Checks the group names (the account rules: letters, digits, `.`, `_`
    /// and `-`, so they need no escaping in a URL, a Caddyfile or YAML).
    pub fn new(
        app: Host,
        upstream: Address,
        auth: Host,
        latch: Address,
        groups: Vec<String>,
    ) -> Result<Snippet> {
        crate::service::validate_groups(&groups)?;
        if app == auth {
            return Err(Error::config(format_args!(
                "the app and latch's login page need host names of their own: both are {}",
                app.as_str()
            )));
        }
        Ok(Snippet {
            app,
            upstream,
            auth,
            auth_port: HTTPS_PORT,
            latch,
            groups,
        })
    }

    /// Serves latch's host on `port` (`public_url`'s) instead of 443.
    pub fn with_auth_port(self, port: u16) -> Snippet {
        Snippet {
            auth_port: port,
            ..self
        }
    }

    /// latch's site as Caddy names it: the host, and a port other than 443.
    fn auth_site(&self) -> String {
        match self.auth_port {
            HTTPS_PORT => self.auth.as_str().to_owned(),
            port => format!("{}:{port}", self.auth.as_str()),
        }
    }

    /// The configuration for `proxy`.
    pub fn render(&self, proxy: Proxy) -> String {
        match proxy {
            Proxy::Caddy => self.caddy(),
            Proxy::Nginx => self.nginx(),
            Proxy::Traefik => self.traefik_dynamic(),
            Proxy::TraefikStatic => traefik_static(&[self.auth_port]),
        }
    }

    /// `?group=a&group=b`, or `None`.
    fn group_query(&self) -> Option<String> {
        (!self.groups.is_empty()).then(|| {
            let each: Vec<String> = self.groups.iter().map(|g| format!("group={g}")).collect();
            format!("?{}", each.join("&"))
        })
    }

    /// Who may in, for a comment: "Anyone signed in" or "Members of ...".
    fn who(&self) -> String {
        match self.groups.as_slice() {
            [] => "Anyone signed in".to_owned(),
            [one] => format!("Members of the {one:?} group only"),
            many => format!("Members of any of the groups {}", many.join(", ")),
        }
    }

    /// A Caddyfile.
    pub fn caddy(&self) -> String {
        let Snippet {
            app,
            upstream,
            latch,
            ..
        } = self;
        let (app, auth) = (app.as_str(), self.auth_site());
        // The uri carries a query of its own in every case: a bare
        // `uri /auth` would pass the client's query on.
        let query = self
            .group_query()
            .unwrap_or_else(|| "?from=caddy".to_owned());
        let who = self.who();
        let caddy_drops: String = CLIENT_FORWARDING
            .iter()
            .filter(|h| !h.starts_with("X-Forwarded") && !h.starts_with("X-Original"))
            .map(|h| format!("\t\trequest_header -{h}\n"))
            .collect();
        format!(
            "{app} {{
\troute {{
\t\t# Identity headers come from latch only: drop every request
\t\t# header whose name starts with \"Remote\", in any case and with
\t\t# any separator (Remote_User, remote.user...).
\t\trequest_header -Remote*
\t\t# So do the forwarding headers, from Caddy: it sets X-Forwarded-For,
\t\t# -Proto and -Host itself, and the client's others are dropped, as
\t\t# is every name with a `_` or a `.` (X_Forwarded_Host is
\t\t# HTTP_X_FORWARDED_HOST to WSGI).
\t\trequest_header -*_*
\t\trequest_header -*.*
\t\trequest_header -X-Forwarded*
\t\trequest_header -X-Original*
\t\trequest_header -X-Real-Ip
{caddy_drops}
\t\t# {who}. The uri carries its own query, which replaces the
\t\t# client's: no ?group= or ?auth_token= of the client reaches latch.
\t\tforward_auth {latch} {{
\t\t\turi /auth{query}
\t\t\tcopy_headers Remote-User Remote-Groups Remote-Email Remote-Name
\t\t}}
\t\treverse_proxy {upstream}
\t}}
}}

{auth} {{
\treverse_proxy {latch}
}}
",
            latch = latch.0,
            upstream = upstream.0,
        )
    }

    /// Blocks for nginx's `http { }`.
    pub fn nginx(&self) -> String {
        format!(
            "{NGINX_HTTP}{}{}",
            self.nginx_app_server(),
            self.nginx_auth_server()
        )
    }

    /// nginx's `server` for the app: the auth subrequest, the redirect for
    /// browsers, the proxied app.
    fn nginx_app_server(&self) -> String {
        let app = self.app.as_str();
        let (latch, upstream) = (&self.latch.0, &self.upstream.0);
        let query = self.group_query().unwrap_or_default();
        let who = self.who();
        let nginx_drops: String = CLIENT_FORWARDING
            .iter()
            .map(|h| format!("        proxy_set_header {h} \"\";\n"))
            .collect();
        format!(
            "
server {{
    listen 443 ssl;
    server_name {app};
    ssl_certificate     /etc/ssl/{app}.pem;
    ssl_certificate_key /etc/ssl/{app}.key;

    # {who}.
    # nginx is the edge: latch sees the client's address, never the
    # client's own X-Forwarded-For. Behind another proxy, use
    # $proxy_add_x_forwarded_for and set_real_ip_from instead.
    # latch judges the host in X-Original-URL (the client's Host header)
    # only when the host nginx routed by ($host) and this block's own name
    # ($server_name) are the same: nginx serves a host it does not know
    # from its default server, which may be this one, and routes an
    # absolute-form request by its request line. One plain name per block.
    location = /latch-auth {{
        internal;
        proxy_pass http://{latch}/auth/nginx{query};
        proxy_pass_request_body off;
        proxy_set_header Content-Length \"\";
        proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
        proxy_set_header X-Original-Method $request_method;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Forwarded-Server $server_name;
        proxy_set_header X-Forwarded-For $remote_addr;
    }}

{NGINX_LOGIN}    location / {{
{NGINX_APP_HEADERS}{nginx_drops}        proxy_set_header Host $host;
        proxy_pass http://{upstream};
    }}
}}

"
        )
    }

    /// nginx's `server` for latch's own host (its login page).
    fn nginx_auth_server(&self) -> String {
        let (auth, latch, port) = (self.auth.as_str(), &self.latch.0, self.auth_port);
        format!(
            "server {{
    listen {port} ssl;
    server_name {auth};
    ssl_certificate     /etc/ssl/{auth}.pem;
    ssl_certificate_key /etc/ssl/{auth}.key;

    location / {{
        proxy_pass http://{latch};
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
    }}
}}
"
        )
    }

    /// Traefik's dynamic configuration (the file provider's file).
    pub fn traefik_dynamic(&self) -> String {
        let (app, auth) = (self.app.as_str(), self.auth.as_str());
        let (latch, upstream) = (&self.latch.0, &self.upstream.0);
        let key = self.app.key();
        let middleware = self.traefik_middleware();
        let middlewares = self.traefik_middlewares(&middleware);
        format!(
            "# /etc/traefik/latch.yml: the dynamic configuration.
http:
{middlewares}  routers:
    {key}:
      rule: \"Host(`{app}`)\"
      middlewares: [latch-edge, {middleware}]
      service: {key}
    # (`_` in latch's own names: no app's name holds one.)
    latch_login:
      rule: \"Host(`{auth}`)\"
      service: latch_login
  services:
    {key}:
      loadBalancer:
        servers: [{{url: \"http://{upstream}\"}}]
    latch_login:
      loadBalancer:
        servers: [{{url: \"http://{latch}\"}}]
tls:
  certificates:
    - certFile: /etc/ssl/{app}.pem
      keyFile: /etc/ssl/{app}.key
    - certFile: /etc/ssl/{auth}.pem
      keyFile: /etc/ssl/{auth}.key
"
        )
    }

    /// The forward-auth middleware's name: one per list of groups, none of
    /// them another middleware's (in each group `-` doubled, `.` and `_`
    /// spelled out as `-d` and `-u`, so `_`, which no group then holds,
    /// separates them).
    fn traefik_middleware(&self) -> String {
        match self.groups.as_slice() {
            [] => "latch".to_owned(),
            groups => {
                let each: Vec<String> = groups
                    .iter()
                    .map(|g| g.replace('-', "--").replace('.', "-d").replace('_', "-u"))
                    .collect();
                format!("latch-group_{}", each.join("_"))
            }
        }
    }

    /// The `middlewares` table: forward auth as `middleware`, and
    /// `latch-edge`, which drops the client's forwarding headers.
    fn traefik_middlewares(&self, middleware: &str) -> String {
        let latch = &self.latch.0;
        let query = self.group_query().unwrap_or_default();
        let who = self.who();
        let traefik_drops: String = CLIENT_FORWARDING
            .iter()
            .filter(|h| !TRAEFIK_SETS.contains(h))
            .map(|h| format!("          {h}: \"\"\n"))
            .collect();
        format!(
            "  middlewares:
    # {who}.
    {middleware}:
      forwardAuth:
        address: \"http://{latch}/auth{query}\"
        # Traefik sets X-Forwarded-* for latch itself.
        trustForwardHeader: false
        maxResponseBodySize: 65536
        # Replaced by latch's values (empty when it has none).
        authResponseHeaders: [Remote-User, Remote-Groups, Remote-Email, Remote-Name]
    # Forwarding headers Traefik does not replace itself (it does
    # X-Forwarded-For, -Proto, -Host, -Port, -Server, -Uri, -Method,
    # -Prefix and X-Real-Ip): an empty value removes the client's.
    latch-edge:
      headers:
        customRequestHeaders:
{traefik_drops}"
        )
    }
}

/// Request headers through which apps and their frameworks learn the
/// client's address, scheme, host or path prefix, beside the
/// `X-Forwarded-For`, `-Proto`, `-Host` and `X-Real-IP` the proxy sets
/// itself: a client's own never reach the app. Every block drops each of
/// them (Caddy by its `X-Forwarded*` and `X-Original*` prefixes for those).
pub const CLIENT_FORWARDING: [&str; 29] = [
    "Forwarded",
    "Forwarded-For",
    "X-Forwarded",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Forwarded-Ssl",
    "X-Forwarded-Scheme",
    "X-Forwarded-Protocol",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Original-URL",
    "X-Original-Host",
    "X-Original-For",
    "X-Original-Proto",
    "X-Original-Uri",
    "X-Original-Method",
    "X-Rewrite-URL",
    "X-Url-Scheme",
    "Front-End-Https",
    "X-Host",
    "Script-Name",
    "X-Script-Name",
    "Client-IP",
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
];

/// Of those, the ones Traefik replaces itself (its `forwardedHeaders`).
const TRAEFIK_SETS: [&str; 5] = [
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
];

/// The start of nginx's `location /` for the app: the auth subrequest,
/// latch's answer read into variables, the identity headers set from them
/// and the forwarding headers nginx itself vouches for (the others follow,
/// emptied, from [`CLIENT_FORWARDING`]).
const NGINX_APP_HEADERS: &str = "        auth_request /latch-auth;
        auth_request_set $latch_location $upstream_http_location;
        auth_request_set $latch_user $upstream_http_remote_user;
        auth_request_set $latch_groups $upstream_http_remote_groups;
        auth_request_set $latch_email $upstream_http_remote_email;
        auth_request_set $latch_name $upstream_http_remote_name;
        error_page 401 = @latch_login;
        # Set (or, when empty, drop) the identity headers: a client's own
        # Remote-User, in any case, never reaches the app.
        proxy_set_header Remote-User $latch_user;
        proxy_set_header Remote-Groups $latch_groups;
        proxy_set_header Remote-Email $latch_email;
        proxy_set_header Remote-Name $latch_name;
        # The forwarding headers are nginx's: set, or dropped (an empty
        # value), never the client's.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Real-IP $remote_addr;
";

/// nginx's location for a visitor not signed in: the redirect or the 401
/// the `map`s of [`NGINX_HTTP`] picked, with latch's `Location`.
const NGINX_LOGIN: &str = "    # Not signed in, by $latch_status above. nginx passes latch's
    # challenge on by itself; Location names the login page, with rd.
    location @latch_login {
        default_type application/json;
        if ($latch_status = 302) {
            return 302 $latch_location;
        }
        if ($latch_status = 303) {
            return 303 $latch_location;
        }
        if ($latch_status = 401) {
            add_header Location $latch_location always;
            return 401 '{\"error\":\"unauthorized\",\"message\":\"authentication required\"}';
        }
    }

";

/// nginx's `http`-level part: the header defaults and the `map`s that pick
/// the redirect or the 401.
const NGINX_HTTP: &str = "\
# The defaults, spelled out, at http level (in a server block nginx reads
# them from the default server only): header names with \"_\" or any
# character but letters, digits and \"-\" are dropped, so no Remote_User or
# Remote.User (REMOTE_USER to CGI, WSGI and PHP) reaches latch or the app.
ignore_invalid_headers on;
underscores_in_headers off;

# Not signed in: browsers (they accept text/html and are not an XHR) go
# to the login page, 302 for GET and HEAD, 303 for other methods (the
# browser follows with a GET). Scripts and XHRs get the 401.
map $http_accept $latch_html {
    default       0;
    \"~*text/html\" 1;
}
map $http_x_requested_with $latch_xhr {
    default              0;
    \"~*^XMLHttpRequest$\" 1;
}
map \"$latch_html$latch_xhr $request_method\" $latch_status {
    default   401;
    \"10 GET\"  302;
    \"10 HEAD\" 302;
    \"~^10 \"   303;
}
";

/// The port HTTPS is on unless `public_url` names another.
const HTTPS_PORT: u16 = 443;

/// Traefik's static configuration: the same for every app. Each of
/// `login_ports` other than 443 (latch's page where `public_url` names
/// that port) gets an entry point of its own, `websecure-PORT`, as
/// guarded as `websecure`.
pub fn traefik_static(login_ports: &[u16]) -> String {
    let mut ports = vec![HTTPS_PORT];
    ports.extend(login_ports);
    ports.sort_unstable();
    ports.dedup();
    let entry_points: String = ports
        .iter()
        .map(|&port| traefik_entry_point(port))
        .collect();
    format!(
        "\
# /etc/traefik/traefik.yml: the static configuration.
global:
  checkNewVersion: false
  sendAnonymousUsage: false
# The default level (ERROR) hides Traefik's warnings about unsafe settings.
log:
  level: WARN
entryPoints:
{entry_points}providers:
  file:
    filename: /etc/traefik/latch.yml
"
    )
}

/// One of Traefik's HTTPS entry points: `websecure` on 443, else
/// `websecure-PORT`.
fn traefik_entry_point(port: u16) -> String {
    let name = match port {
        HTTPS_PORT => "websecure".to_owned(),
        port => format!("websecure-{port}"),
    };
    format!(
        "  {name}:
    address: \":{port}\"
    http:
      tls: {{}}
      # Drop request headers whose name aliases another (Remote_User,
      # Remote.User: REMOTE_USER to CGI, WSGI and PHP) before routing.
      aliasHeadersStrategy: delete
      # Refuse (400) encoded characters a backend may decode differently
      # from Traefik's router: /admin%2Fx is /admin/x to WSGI.
      encodedCharacters:
        allowEncodedSlash: false
        allowEncodedBackSlash: false
        allowEncodedNullCharacter: false
        allowEncodedSemicolon: false
        allowEncodedPercent: false
        allowEncodedQuestionMark: false
        allowEncodedHash: false
    # Traefik is the edge: a client's own X-Forwarded-* are replaced, never
    # believed. Behind another proxy, list that proxy in trustedIPs.
    forwardedHeaders:
      insecure: false
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in [
            "app.example.com",
            "APP.Example.com",
            "a",
            "x-1.y",
            "localhost",
        ] {
            assert_eq!(
                Host::parse(good).unwrap().as_str(),
                good.to_ascii_lowercase()
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a.b.",
            "*.example.com",
            "app.example.com {",
            "app;",
            "a b",
            "a\nb",
            "app.example.com:443",
            "é.com",
            "a`b",
            "a\"b",
            long.as_str(),
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        for good in [
            "127.0.0.1:3000",
            "[::1]:8080",
            "app:80",
            "Whoami.Local:65535",
        ] {
            assert!(Address::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "127.0.0.1",
            "app:0",
            "app:65536",
            "app:+80",
            "app:080",
            ":80",
            "[::1:80",
            "[zz]:80",
            "::1:80",
            "a b:80",
            "app:80;",
            "app:80/x",
            "http://app:80",
            "a\n:80",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
        let of = |s: &str| Address::of_listener(s.parse().unwrap()).0;
        assert_eq!(of("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(of("[::]:8080"), "[::1]:8080");
        assert_eq!(of("10.0.0.2:9"), "10.0.0.2:9");
        assert_eq!(of("[fd00::1]:9"), "[fd00::1]:9");
    }

    fn snippet(groups: &[&str]) -> Snippet {
        Snippet::new(
            Host::parse("app.example.com").unwrap(),
            Address::parse("127.0.0.1:3000").unwrap(),
            Host::parse("auth.example.com").unwrap(),
            Address::parse("127.0.0.1:8080").unwrap(),
            groups.iter().map(|g| g.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn groups_reach_every_proxy_and_nothing_else_changes() {
        let plain = snippet(&[]);
        let admins = snippet(&["admins"]);
        let two = snippet(&["admins", "media"]);
        assert!(plain.caddy().contains("uri /auth?from=caddy\n"));
        assert!(admins.caddy().contains("uri /auth?group=admins\n"));
        assert!(two.caddy().contains("uri /auth?group=admins&group=media\n"));
        assert!(plain.nginx().contains("/auth/nginx;\n"));
        assert!(two
            .nginx()
            .contains("/auth/nginx?group=admins&group=media;\n"));
        assert!(plain.traefik_dynamic().contains("/auth\"\n"));
        assert!(admins
            .traefik_dynamic()
            .contains("middlewares: [latch-edge, latch-group_admins]"));
        assert!(admins.traefik_dynamic().contains("/auth?group=admins\"\n"));
        // With the group's words put back, the texts are the same.
        let ungrouped = |text: String| {
            text.replace("?group=admins", "?from=caddy")
                .replace("/auth/nginx?from=caddy;", "/auth/nginx;")
                .replace("/auth?from=caddy\"", "/auth\"")
                .replace("latch-group_admins", "latch")
                .replace("Members of the \"admins\" group only", "Anyone signed in")
        };
        for proxy in [
            Proxy::Caddy,
            Proxy::Nginx,
            Proxy::Traefik,
            Proxy::TraefikStatic,
        ] {
            assert_eq!(
                plain.render(proxy),
                ungrouped(admins.render(proxy)),
                "{proxy:?}"
            );
        }
    }

    #[test]
    fn a_login_port_reaches_every_proxy_and_nothing_else_changes() {
        let plain = snippet(&[]);
        let moved = snippet(&[]).with_auth_port(8443);
        assert!(moved.caddy().contains("\nauth.example.com:8443 {\n"));
        assert!(moved
            .nginx()
            .contains("listen 8443 ssl;\n    server_name auth.example.com;"));
        assert!(moved
            .nginx()
            .contains("listen 443 ssl;\n    server_name app.example.com;"));
        let traefik = moved.render(Proxy::TraefikStatic);
        // A second entry point, guarded as the first.
        let (first, second) = traefik.split_once("  websecure-8443:\n").unwrap();
        let first = &first[first.find("  websecure:\n").unwrap() + "  websecure:\n".len()..];
        let second = &second[..second.find("providers:").unwrap()];
        assert_eq!(first.replace(":443", ":8443"), second);
        assert_eq!(moved.traefik_dynamic(), plain.traefik_dynamic());
        // Nothing else changes, and 443 is the default.
        let back = |text: String| {
            text.replace("auth.example.com:8443 {", "auth.example.com {")
                .replace("listen 8443 ssl;", "listen 443 ssl;")
        };
        for proxy in [Proxy::Caddy, Proxy::Nginx, Proxy::Traefik] {
            assert_eq!(back(moved.render(proxy)), plain.render(proxy), "{proxy:?}");
            let same = snippet(&[]).with_auth_port(443);
            assert_eq!(same.render(proxy), plain.render(proxy), "{proxy:?}");
        }
        assert_eq!(traefik_static(&[443, 443]), traefik_static(&[]));
        assert_eq!(
            traefik_static(&[9443, 8443, 9443])
                .matches("address:")
                .count(),
            3
        );
    }

    #[test]
    fn traefik_names_never_collide() {
        // No two hosts or lists of groups share a router or middleware name.
        let names = |app: &str, groups: &[&str]| {
            let mut s = snippet(groups);
            s.app = Host::parse(app).unwrap();
            let text = s.traefik_dynamic();
            let line = |prefix: &str| {
                let at = text.find(prefix).unwrap() + prefix.len();
                text[at..at + text[at..].find('\n').unwrap()].to_owned()
            };
            (
                line("\n  routers:\n    "),
                line("middlewares: [latch-edge, "),
            )
        };
        assert_ne!(names("a-b.c", &[]).0, names("a.b-c", &[]).0);
        let lists: [&[&str]; 9] = [
            &["a-b"],
            &["a", "b"],
            &["a.b"],
            &["a", "db"],
            &["a-db"],
            &["a_b"],
            &["a", "ub"],
            &["a-ub"],
            &["edge"],
        ];
        let all: std::collections::HashSet<String> =
            lists.iter().map(|groups| names("x.y", groups).1).collect();
        assert_eq!(all.len(), lists.len(), "{all:?}");
        assert!(!all
            .iter()
            .any(|n| n.starts_with("latch-edge") || n == "latch]"));
        // latch's own router and service are no app's.
        for app in ["latch", "latch-login", "latch.login"] {
            assert!(!names(app, &[]).0.starts_with("latch_login:"), "{app}");
        }
    }

    #[test]
    fn refusals() {
        let app = || Host::parse("app.example.com").unwrap();
        let addr = || Address::parse("127.0.0.1:1").unwrap();
        for bad in ["", "a b", "admins&x=1", "a;b", "-a", "a\"b"] {
            assert!(
                Snippet::new(
                    app(),
                    addr(),
                    Host::parse("auth.x").unwrap(),
                    addr(),
                    vec![bad.to_owned()]
                )
                .is_err(),
                "{bad:?}"
            );
        }
        assert!(Snippet::new(app(), addr(), app(), addr(), vec![]).is_err());
    }
}
