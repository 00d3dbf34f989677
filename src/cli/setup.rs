//! `latch init` (a first configuration for one domain) and `latch
//! proxy-snippet` (the proxy's side of it).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use crate::config::{keyfile, net, toml_string, Config, ConfigFile, KeySource};
use crate::error::{Error, Result};
use crate::snippet::{Address, Host, Proxy, Snippet};

/// `latch init`'s arguments.
#[derive(clap::Args)]
pub struct InitArgs {
    /// latch's public URL, where its login page is (asked when absent)
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The parent domain of latch's host and of every app (default:
    /// the public URL's host without its first label)
    #[arg(long, value_name = "DOMAIN")]
    pub cookie_domain: Option<String>,
    /// The proxy in front of latch (for the next step printed)
    #[arg(long, value_enum)]
    pub proxy: Option<Proxy>,
    /// The config file to add to, or to write when it does not exist
    /// (default: the one `serve` reads, else ./latch.toml)
    #[arg(long, short, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// What `init` wrote.
struct Written {
    /// The configuration file (or drop-in).
    path: PathBuf,
    /// The signing key file, and whether it was made now (else kept).
    key: Option<(PathBuf, bool)>,
    /// Whether it was a drop-in beside an existing file (the package's).
    drop_in: bool,
}

/// Writes the domain's settings: into a drop-in beside the configuration
/// in use (`latch.d/10-init.toml` beside `/etc/latch/latch.toml`, which the
/// package owns), or, when there is none, a new `latch.toml` (at
/// `--config`, else in the working directory) with a signing key file
/// beside it. Never overwrites a file; a result the configuration would
/// refuse is removed again.
pub fn init(args: InitArgs) -> Result<()> {
    let file = ConfigFile::locate(args.config.as_deref());
    // Named only when there is one to add to: init writes one otherwise.
    let existing = file.path().is_some_and(Path::exists);
    if existing {
        eprintln!("using {file}");
    }
    let (public_url, cookie_domain) = domain(args.public_url, args.cookie_domain)?;
    let settings = settings(&public_url, cookie_domain.as_str());
    let written = match existing {
        true => add_drop_in(&file, &settings)?,
        false => write_whole(file.path(), &settings)?,
    };
    println!("wrote {}", written.path.display());
    match &written.key {
        Some((key, true)) => println!("wrote a new signing key to {} (mode 0600)", key.display()),
        Some((key, false)) => println!("kept the signing key in {}", key.display()),
        None => {}
    }
    if public_url.starts_with("http://") {
        eprintln!(
            "latch: warning: {public_url} is plain http: browsers drop the session cookie \
             (cookie_secure = true): put latch behind https, or set [forward_auth] \
             cookie_secure = false for a trial"
        );
    }
    print_next_steps(
        &file,
        &written,
        args.proxy.unwrap_or(Proxy::Caddy),
        &cookie_domain,
    );
    Ok(())
}

/// latch's public URL and the cookie domain, from the flags or asked: the
/// URL an http(s) URL of latch's host, the domain a name above that host.
fn domain(public_url: Option<String>, cookie_domain: Option<String>) -> Result<(String, Host)> {
    let public_url = match public_url {
        Some(url) => url,
        None => ask(
            "latch's public URL, where its login page is",
            "--public-url",
        )?,
    };
    let (public_url, public_host) = public_url_and_host(&public_url)?;
    let cookie_domain = match cookie_domain {
        Some(domain) => domain,
        None => match derived_cookie_domain(&public_host) {
            Some(parent) => parent,
            None => ask(
                "the cookie domain, the parent of latch's host and of every app",
                "--cookie-domain",
            )?,
        },
    };
    let cookie_domain = Host::parse(cookie_domain.trim_start_matches('.'))?;
    if !crate::config::domain_covers(cookie_domain.as_str(), &public_host) {
        return Err(Error::config(format_args!(
            "--cookie-domain {}: latch's host {public_host} is not under it (the cookie would \
             never reach the login page)",
            cookie_domain.as_str()
        )));
    }
    Ok((public_url, cookie_domain))
}

/// `settings` as `latch.d/10-init.toml` beside `file`, which exists and
/// must not set `public_url` yet; the key it names made or kept first.
fn add_drop_in(file: &ConfigFile, settings: &str) -> Result<Written> {
    let main = file.path().expect("an existing file");
    let dir = file.drop_in_dir().expect("a file has a directory");
    let path = dir.join("10-init.toml");
    let before = Config::load_from(file)?;
    if let Some(url) = before.primary_site().public_url {
        let source = if path.exists() { &path } else { main };
        return Err(Error::config(format_args!(
            "public_url is set already ({url}, in {} or a file read with it): latch \
             init makes a first configuration; edit that one instead",
            source.display()
        )));
    }
    // The key first: made, or checked and kept, before anything names it
    // (init adds nothing that changes its path).
    let key = match &before.key {
        KeySource::File(key) => Some((key.clone(), keyfile::make_or_keep_own_key(key)?)),
        KeySource::Inline(_) => None,
    };
    create_dir(&dir)?;
    write_new(&path, &format!("{DROP_IN_HEAD}{settings}"))?;
    checked(file, &path)?;
    Ok(Written {
        path,
        key,
        drop_in: true,
    })
}

/// A whole configuration with `settings` at `target` (else `./latch.toml`),
/// and the signing key beside it, made or kept first; both gone again if
/// the configuration is refused.
fn write_whole(target: Option<&Path>, settings: &str) -> Result<Written> {
    let path = target.map_or_else(|| PathBuf::from("latch.toml"), Path::to_path_buf);
    if path.exists() {
        return Err(exists(&path));
    }
    let dir = absolute(path.parent().unwrap_or(Path::new("")))?;
    let key = dir.join("secret.key");
    let text = standalone(&dir, &key, settings)?;
    create_dir(&dir)?;
    let made = keyfile::make_or_keep_own_key(&key)?;
    let written = write_new(&path, &text)
        .and_then(|()| checked(&ConfigFile::Flag(path.clone()), &path).map(drop));
    if let Err(e) = written {
        if made {
            let _ = std::fs::remove_file(&key);
        }
        return Err(e);
    }
    Ok(Written {
        path,
        key: Some((key, made)),
        drop_in: false,
    })
}

/// Start (or restart) latch, print the proxy's block, add a user: with
/// `--config` wherever the file would not be found by itself.
fn print_next_steps(file: &ConfigFile, written: &Written, proxy: Proxy, domain: &Host) {
    let flag = match (file, written.drop_in) {
        (ConfigFile::Flag(p) | ConfigFile::Env(p), true) => format!(" --config {}", p.display()),
        (ConfigFile::System(_) | ConfigFile::Local(_), true) => String::new(),
        _ => format!(" --config {}", written.path.display()),
    };
    let start = match written.drop_in {
        true => "systemctl restart latch   (or restart latch serve as you run it)".to_owned(),
        false => format!("latch serve{flag}   (or under systemd: see the README)"),
    };
    let proxy_name = match proxy {
        Proxy::Caddy => "caddy",
        Proxy::Nginx => "nginx",
        Proxy::Traefik | Proxy::TraefikStatic => "traefik",
    };
    println!(
        "next:\n  {start}\n  latch proxy-snippet {proxy_name} --app app.{domain}{flag}   \
         (your app's host; --upstream where it listens)\n  latch user add NAME{flag}",
        domain = domain.as_str()
    );
}

/// `--public-url` as serve reads it back (the port as browsers write it:
/// `:08443` is `:8443`, `:443` on https dropped; no trailing slash), and
/// its host: an http(s) URL of latch's own host, at its root (latch serves
/// its pages there).
fn public_url_and_host(url: &str) -> Result<(String, String)> {
    let bad = |why: &str| {
        Error::config(format_args!(
            "--public-url {url:?}: {why} (such as https://auth.example.com)"
        ))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("give an http(s) URL"))?;
    net::url_host(url).ok_or_else(|| bad("give an http(s) URL"))?;
    let port = net::authority_of(url)
        .and_then(net::host_and_port)
        .and_then(|(_, port)| port);
    if port.is_some_and(|p| net::port_number(p).is_none()) {
        return Err(bad("give a port from 1 to 65535"));
    }
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    if !matches!(path, "" | "/") || rest.contains(['?', '#', '@']) {
        return Err(bad(
            "give latch's host alone: it serves its pages at the root of its own host",
        ));
    }
    if net::url_host(url).is_some_and(|h| h.ends_with('.')) {
        return Err(bad("give the host without its final '.'"));
    }
    // The host as browsers read it, as serve will check it.
    let read = crate::config::site_url(url, "--public-url")
        .map_err(|_| bad("give an http(s) URL of a host name or address"))?;
    let host = net::url_host(&read).ok_or_else(|| bad("give an http(s) URL"))?;
    Ok((read, host))
}

/// The cookie domain `init` proposes for latch's host: its parent, unless
/// the host is an address or the parent looks like a public suffix
/// (`auth.co.uk`): then it asks.
fn derived_cookie_domain(host: &str) -> Option<String> {
    let (_, parent) = host.split_once('.')?;
    let usable = parent.contains('.')
        && !net::is_address_shaped(host)
        && host.parse::<std::net::IpAddr>().is_err()
        && !net::looks_like_public_suffix(parent);
    usable.then(|| parent.to_owned())
}

/// The keys `init` sets, commented.
fn settings(public_url: &str, cookie_domain: &str) -> String {
    format!(
        "# latch's own address: its login page, and the host of every Location
# it sends.
public_url = {public_url}

[forward_auth]
# The parent of every protected app's host and of latch's: the session
# cookie is sent to all of them, and the login page sends browsers back
# (rd) only within it.
cookie_domain = {cookie_domain}
# latch believes X-Forwarded-* and X-Original-* only from these proxies.
# The default, loopback, is right when the proxy runs on this machine;
# when it does not (a container network, another host), set its address:
# trusted_proxies = [\"10.89.7.2\"]
",
        public_url = toml_string(public_url),
        cookie_domain = toml_string(cookie_domain),
    )
}

/// A path as a TOML string; a path that is not UTF-8 cannot be one.
fn toml_path(path: &Path) -> Result<String> {
    let text = path.to_str().ok_or_else(|| {
        Error::config(format_args!(
            "{}: the path is not UTF-8, and a config file cannot name it",
            path.display()
        ))
    })?;
    Ok(toml_string(text))
}

const DROP_IN_HEAD: &str = "\
# Written by `latch init`. Read after the main configuration file, whose
# keys these replace; every other key, and its documentation, is there.

";

/// A whole configuration for a machine without one.
fn standalone(dir: &Path, key: &Path, settings: &str) -> Result<String> {
    let data = toml_path(&dir.join("latch-data"))?;
    let key = toml_path(key)?;
    Ok(format!(
        "# Written by `latch init`. Every key, its default and what it does:
# `latch check-config` prints them all, and config/latch.toml in the source
# documents each.

listen = \"127.0.0.1:8080\"
# The database (sled), made on first start.
data_dir = {data}
# The key that signs tokens: keep it private (mode 0600) and back it up.
secret_key_file = {key}
# Nobody may sign up over HTTP: add users with `latch user add`.
registration = \"closed\"

{settings}
[api]
# GET /api/users/<id> for signed-in users only.
public_profiles = false
"
    ))
}

/// Loads the configuration with the new file in it; when it is refused,
/// removes the file again and says why.
fn checked(file: &ConfigFile, written: &Path) -> Result<Config> {
    Config::load_from(file).inspect_err(|_| {
        let _ = std::fs::remove_file(written);
    })
}

/// Asks on the terminal, or says which flag to give when there is none.
fn ask(what: &str, flag: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::config(format_args!(
            "no {flag} given, and no terminal to ask on: give {flag}"
        )));
    }
    eprint!("{what}: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::config(format_args!("cannot read the answer: {e}")))?;
    match line.trim() {
        "" => Err(Error::config(format_args!("no answer: give {flag}"))),
        answer => Ok(answer.to_owned()),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::path::absolute(dir)
        .map_err(|e| Error::config(format_args!("cannot resolve {}: {e}", dir.display())))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::config(format_args!("cannot create {}: {e}", dir.display())))
}

fn exists(path: &Path) -> Error {
    Error::config(format_args!(
        "{} exists: latch init never overwrites a file (remove it to start again)",
        path.display()
    ))
}

/// Writes a new file (mode 0644: it holds no secret); one that exists is
/// an error naming it.
fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(path),
            _ => Error::config(format_args!("cannot write {}: {e}", path.display())),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::config(format_args!("cannot write {}: {e}", path.display())))
}

/// `latch proxy-snippet`'s arguments (the config file apart).
#[derive(clap::Args)]
pub struct SnippetArgs {
    /// The proxy
    #[arg(value_enum)]
    pub proxy: Proxy,
    /// The app's host name (not for traefik-static)
    #[arg(long, value_name = "HOST")]
    pub app: Option<String>,
    /// Where the proxy reaches the app
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    pub upstream: String,
    /// Only members of this group get in (repeatable: any of them)
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// latch's host name (default: public_url's host)
    #[arg(long, value_name = "HOST")]
    pub auth: Option<String>,
    /// Where the proxy reaches latch (default: listen)
    #[arg(long, value_name = "HOST:PORT")]
    pub latch: Option<String>,
}

/// The HTTPS port latch's page is on, where `public_url` names one (the
/// blocks serve it over HTTPS only).
fn https_port(public_url: &str) -> Option<u16> {
    public_url
        .starts_with("https://")
        .then(|| net::url_port(public_url))
        .flatten()
}

/// The port latch's page is served on, when `public_url` (latch's host's
/// own) names one; warns where the blocks cannot serve it as written.
fn login_port(public_url: &str) -> Option<u16> {
    if !public_url.starts_with("https://") {
        eprintln!(
            "latch: warning: public_url ({public_url}) is not https: these blocks serve \
             latch's page over HTTPS on 443"
        );
    }
    let port = https_port(public_url);
    if port == Some(80) {
        eprintln!(
            "latch: warning: public_url is https on port 80, where proxies serve plain HTTP \
             (Caddy) or have their own entry point (Traefik's web)"
        );
    }
    port
}

/// The ports `public_url` names, of every domain: Traefik needs an entry
/// point on each.
fn login_ports(config: &Config) -> Vec<u16> {
    let urls: Vec<&str> = if config.forward_auth.domains.is_empty() {
        config.public_url.as_deref().into_iter().collect()
    } else {
        config
            .forward_auth
            .domains
            .iter()
            .map(|d| d.public_url.as_str())
            .collect()
    };
    urls.into_iter().filter_map(https_port).collect()
}

/// Prints the proxy's configuration for one app, with latch's host and
/// address from the configuration unless given; warns when the app is
/// outside every cookie domain (the redirect-loop trap).
pub fn proxy_snippet(config: Result<Config>, args: SnippetArgs) -> Result<()> {
    let config = config?;
    // The same for every app (and with --app too): every domain's port.
    if args.proxy == Proxy::TraefikStatic {
        return super::print(crate::snippet::traefik_static(&login_ports(&config)).trim_end());
    }
    let Some(app) = &args.app else {
        return Err(Error::config("give the app's host name: --app HOST"));
    };
    let app = Host::parse(app)?;
    let site = config.site_for_host(Some(app.as_str()));
    let site_url = site.and_then(|s| s.public_url);
    let site_host = site_url.and_then(net::url_host);
    let auth = match &args.auth {
        Some(auth) => {
            let auth = Host::parse(auth)?;
            if let Some(own) = site_host.as_deref().filter(|own| *own != auth.as_str()) {
                eprintln!(
                    "latch: warning: --auth {} is not the public_url host ({own}): latch sends \
                     browsers to {own} to sign in, which this block does not route",
                    auth.as_str()
                );
            }
            auth
        }
        None => Host::parse(site_host.as_deref().ok_or_else(|| {
            Error::config(format_args!(
                "latch's host is not known: set public_url (latch init does), or give --auth"
            ))
        })?)?,
    };
    let latch = match &args.latch {
        Some(addr) => Address::parse(addr)?,
        None => Address::of_listener(config.listen),
    };
    let own_url = site_url.filter(|_| site_host.as_deref() == Some(auth.as_str()));
    let port = own_url.and_then(login_port);
    let mut snippet = Snippet::new(
        app.clone(),
        Address::parse(&args.upstream)?,
        auth,
        latch,
        args.groups,
    )?;
    if let Some(port) = port {
        snippet = snippet.with_auth_port(port);
    }
    let covered = site
        .and_then(|s| s.cookie_domain)
        .is_some_and(|d| crate::config::domain_covers(d, app.as_str()));
    if !covered {
        eprintln!(
            "latch: warning: {} is under no cookie_domain of this configuration: browsers \
             signed in on latch's page will not carry the session to it",
            app.as_str()
        );
    }
    super::print(snippet.render(args.proxy).trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config `init` writes names its paths as they are, whatever
    /// they hold (found by a review: `{:?}` wrote `\u{301}`, which TOML
    /// refuses, so init removed the file again).
    #[test]
    fn init_writes_any_path_as_toml_reads_it() {
        let settings = settings("https://auth.example.com", "example.com");
        for name in [
            "plain",
            "a \"quote\"",
            "back\\slash",
            "e\u{301}",
            "tab\tline\n",
            "\u{1f600}",
        ] {
            let dir = Path::new("/srv").join(name);
            let key = dir.join("secret.key");
            let text = standalone(&dir, &key, &settings).unwrap();
            let table: toml::Table =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let data = dir.join("latch-data");
            assert_eq!(table["data_dir"].as_str(), data.to_str(), "{name}");
            assert_eq!(table["secret_key_file"].as_str(), key.to_str(), "{name}");
            assert_eq!(
                table["public_url"].as_str(),
                Some("https://auth.example.com")
            );
        }
    }
}
