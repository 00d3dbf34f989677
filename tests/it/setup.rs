//! `latch init` and `latch proxy-snippet` from the command line: what they
//! write, what they never overwrite, and every refusal.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

/// `latch ARGS` in `dir`, with no `LATCH_*` from the test's environment;
/// (success, stdout, stderr without the config line).
fn latch_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(&*LATCH)
        .args(args)
        .current_dir(dir)
        .env_remove("LATCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        without_config_line(&String::from_utf8_lossy(&out.stderr)),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, with its contents, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn init_without_a_config_writes_one_and_a_key_and_the_server_runs_on_it() {
    let dir = TempDir::new("init-new");
    // Found in the working directory, unless this machine has a system
    // config, which comes first (init would add to that one).
    let here: &[&str] = if Path::new("/etc/latch/latch.toml").exists() {
        &["-c", "latch.toml"]
    } else {
        &[]
    };
    let (ok, out, err) = latch_in(
        dir.path(),
        &[&["init", "--public-url", "https://auth.example.com"], here].concat(),
    );
    assert!(ok, "{err}");
    let config = dir.path().join("latch.toml");
    let key = dir.path().join("secret.key");
    assert!(out.contains("wrote latch.toml"), "{out}");
    assert!(out.contains(&format!("wrote a new signing key to {}", key.display())));
    assert!(
        out.contains("latch proxy-snippet caddy --app app.example.com"),
        "{out}"
    );
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&config), 0o644);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("public_url = \"https://auth.example.com\""),
        "{text}"
    );
    assert!(text.contains("cookie_domain = \"example.com\""), "{text}");
    assert!(text.contains("registration = \"closed\""), "{text}");
    // check-config reads it back, finding it in the working directory.
    let (ok, printed, err) = latch_in(dir.path(), &[&["check-config"], here].concat());
    assert!(ok, "{err}");
    assert!(
        printed.contains("cookie_domain = \"example.com\""),
        "{printed}"
    );
    // And a server starts on it (on a free port), with the key init made.
    let key_text = std::fs::read_to_string(&key).unwrap();
    let server = Server::try_start_in(
        &config,
        Some(dir.path()),
        &[("LATCH_LISTEN", "127.0.0.1:0")],
    )
    .unwrap();
    assert_eq!(server.client().get("/api/resource", &[]).status, 401);
    drop(server);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);

    // Again: refused, and nothing changes.
    let before = snapshot(dir.path());
    let (ok, _, err) = latch_in(
        dir.path(),
        &[&["init", "--public-url", "https://auth.example.org"], here].concat(),
    );
    assert!(!ok);
    assert!(err.contains("public_url is set already"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn init_beside_a_packaged_config_writes_a_drop_in_and_keeps_the_file() {
    let dir = TempDir::new("init-dropin");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let main = etc.join("latch.toml");
    let key = etc.join("secret.key");
    let packaged = format!(
        "data_dir = {:?}\nsecret_key_file = {:?}\nregistration = \"closed\"\n",
        dir.path().join("data"),
        key
    );
    std::fs::write(&main, &packaged).unwrap();
    let main_arg = main.to_str().unwrap();
    let (ok, out, err) = latch_in(
        dir.path(),
        &[
            "init",
            "--config",
            main_arg,
            "--public-url",
            "https://login.home.example.net",
            "--proxy",
            "nginx",
        ],
    );
    assert!(ok, "{err}");
    let drop_in = etc.join("latch.d/10-init.toml");
    assert!(
        out.contains(&format!("wrote {}", drop_in.display())),
        "{out}"
    );
    assert!(
        out.contains("latch proxy-snippet nginx --app app.home.example.net"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&main).unwrap(), packaged);
    assert_eq!(mode(&key), 0o600, "the key the config names is made");
    // Every command reads the drop-in after the file, and says so.
    let out = Command::new(&*LATCH)
        .args(["check-config", "--config", main_arg])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(", then {}", drop_in.display())),
        "{stderr}"
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("public_url = \"https://login.home.example.net\""));
    assert!(printed.contains("cookie_domain = \"home.example.net\""));
    // proxy-snippet takes latch's host from it.
    let (ok, snippet, err) = latch_in(
        dir.path(),
        &[
            "proxy-snippet",
            "caddy",
            "--app",
            "app.home.example.net",
            "-c",
            main_arg,
        ],
    );
    assert!(ok, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(
        snippet.contains("\nlogin.home.example.net {\n"),
        "{snippet}"
    );
    // Again: refused, the drop-in kept as it was.
    let before = snapshot(dir.path());
    let (ok, _, err) = latch_in(
        dir.path(),
        &[
            "init",
            "-c",
            main_arg,
            "--public-url",
            "https://auth.example.com",
        ],
    );
    assert!(!ok);
    assert!(err.contains("public_url is set already"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
    // A drop-in that is not TOML stops every command, naming it.
    std::fs::write(etc.join("latch.d/20-broken.toml"), "public_url = ").unwrap();
    let (ok, _, err) = latch_in(dir.path(), &["check-config", "-c", main_arg]);
    assert!(!ok);
    assert!(err.contains("20-broken.toml"), "{err}");
}

/// init writes `--public-url` as serve reads it back, and as browsers send
/// it in `Origin`: found by a newcomer, who saw `:08443` written as typed.
#[test]
fn init_writes_the_public_url_as_browsers_do() {
    for (given, written) in [
        (
            "https://auth.example.com:08443/",
            "https://auth.example.com:8443",
        ),
        ("https://auth.example.com:443", "https://auth.example.com"),
    ] {
        let dir = TempDir::new("init-url");
        let (ok, _, err) = latch_in(
            dir.path(),
            &["init", "--public-url", given, "-c", "latch.toml"],
        );
        assert!(ok, "{given}: {err}");
        let text = std::fs::read_to_string(dir.path().join("latch.toml")).unwrap();
        assert!(
            text.contains(&format!("public_url = \"{written}\"\n")),
            "{given}: {text}"
        );
    }
}

#[test]
fn init_refusals_write_nothing() {
    let dir = TempDir::new("init-refusals");
    let cases: [(&[&str], &str); 18] = [
        (&["init"], "give --public-url"),
        // A port browsers cannot use: refused before anything is written.
        (
            &["init", "--public-url", "https://auth.example.com:0"],
            "--public-url \"https://auth.example.com:0\": give a port from 1 to 65535",
        ),
        (
            &["init", "--public-url", "https://auth.example.com:65536"],
            "give a port from 1 to 65535",
        ),
        // An address or a public suffix is no cookie domain to guess.
        (
            &["init", "--public-url", "https://10.0.0.5"],
            "give --cookie-domain",
        ),
        (
            &["init", "--public-url", "http://10.0.0.5:8080"],
            "give --cookie-domain",
        ),
        (
            &["init", "--public-url", "https://auth.co.uk"],
            "give --cookie-domain",
        ),
        (
            &["init", "--public-url", "https://me.duckdns.org"],
            "give --cookie-domain",
        ),
        // latch serves its pages at the root of its host.
        (
            &["init", "--public-url", "https://auth.example.com/latch/"],
            "host alone",
        ),
        (
            &["init", "--public-url", "https://u@auth.example.com"],
            "host alone",
        ),
        // Another site than auth.example.com to browsers (was refused
        // as "not under" the cookie domain it was under).
        (
            &[
                "init",
                "--public-url",
                "https://auth.example.com.",
                "--cookie-domain",
                "example.com",
            ],
            "without its final '.'",
        ),
        (
            &["init", "--public-url", "https://auth.example.com."],
            "without its final '.'",
        ),
        // Browsers read `\` as `/`: this is evil.example to them.
        (
            &[
                "init",
                "--public-url",
                "https://evil.example\\.example.com",
                "--cookie-domain",
                "example.com",
            ],
            "of a host name or address",
        ),
        // Browsers read this as 127.0.0.1, and their Origin never matches.
        (
            &[
                "init",
                "--public-url",
                "https://127.1",
                "--cookie-domain",
                "example.com",
            ],
            "of a host name or address",
        ),
        (
            &["init", "--public-url", "ftp://auth.example.com"],
            "an http(s) URL",
        ),
        (
            &["init", "--public-url", "auth.example.com"],
            "an http(s) URL",
        ),
        (
            &["init", "--public-url", "https://localhost"],
            "give --cookie-domain",
        ),
        (
            &[
                "init",
                "--public-url",
                "https://auth.example.com",
                "--cookie-domain",
                "other.org",
            ],
            "is not under it",
        ),
        (
            &[
                "init",
                "--public-url",
                "https://a.example.com",
                "--cookie-domain",
                "x y",
            ],
            "is not a host name",
        ),
    ];
    for (args, message) in cases {
        let (ok, out, err) = latch_in(dir.path(), args);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(snapshot(dir.path()).is_empty(), "{args:?} wrote something");
    }
    // Given anyway, an address is refused by the configuration itself.
    let (ok, _, err) = latch_in(
        dir.path(),
        &[
            "init",
            "--public-url",
            "https://10.0.0.5",
            "--cookie-domain",
            "0.0.5",
        ],
    );
    assert!(!ok);
    assert!(err.contains("is an address, not a domain"), "{err}");
    assert!(snapshot(dir.path()).is_empty(), "a refused config stayed");
    // A usage error (an unknown proxy) is clap's, exit 2.
    let out = Command::new(&*LATCH)
        .args(["init", "--proxy", "apache"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("caddy, nginx, traefik"));
}

#[test]
fn proxy_snippet_refuses_what_would_change_the_configuration() {
    let dir = TempDir::new("snippet-refusals");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, "[forward_auth]\ncookie_domain = \"example.com\"\n").unwrap();
    let c = config.to_str().unwrap();
    let base = [
        "proxy-snippet",
        "caddy",
        "-c",
        c,
        "--auth",
        "auth.example.com",
    ];
    let cases: [(&[&str], &str); 9] = [
        (&["--app", "app.example.com {\n}"], "is not a host name"),
        (&["--app", "app.example.com;"], "is not a host name"),
        (&["--app", "*.example.com"], "is not a host name"),
        (
            &["--app", "app.example.com", "--upstream", "127.0.0.1:3000;"],
            "HOST:PORT",
        ),
        (
            &["--app", "app.example.com", "--upstream", "http://x:1"],
            "HOST:PORT",
        ),
        (
            &["--app", "app.example.com", "--latch", "127.0.0.1"],
            "HOST:PORT",
        ),
        (
            &["--app", "app.example.com", "--group", "admins&x=1"],
            "group names",
        ),
        (
            &["--app", "app.example.com", "--group", "a\"b"],
            "group names",
        ),
        (&["--app", "auth.example.com"], "host names of their own"),
    ];
    for (extra, message) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (ok, out, err) = latch_in(dir.path(), &args);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // Without public_url or --auth, latch's host is unknown.
    let (ok, _, err) = latch_in(
        dir.path(),
        &[
            "proxy-snippet",
            "nginx",
            "-c",
            c,
            "--app",
            "app.example.com",
        ],
    );
    assert!(!ok);
    assert!(err.contains("set public_url"), "{err}");
    // An app under no cookie domain is printed, with a warning.
    let (ok, out, err) = latch_in(
        dir.path(),
        &[&base[..], &["--app", "app.other.org"]].concat(),
    );
    assert!(ok, "{err}");
    assert!(out.contains("\napp.other.org {\n") || out.starts_with("app.other.org {\n"));
    assert!(
        err.contains("app.other.org is under no cookie_domain"),
        "{err}"
    );
    // An --auth that is not public_url's host: printed, with a warning.
    std::fs::write(
        &config,
        "public_url = \"https://auth.example.com\"\n\
         [forward_auth]\ncookie_domain = \"example.com\"\n",
    )
    .unwrap();
    let args = [
        "proxy-snippet",
        "nginx",
        "-c",
        c,
        "--app",
        "app.example.com",
    ];
    let (ok, out, err) = latch_in(
        dir.path(),
        &[&args[..], &["--auth", "login.example.com"]].concat(),
    );
    assert!(ok, "{err}");
    assert!(out.contains("server_name login.example.com;"), "{out}");
    assert!(
        err.contains("is not the public_url host (auth.example.com)"),
        "{err}"
    );
}

#[test]
fn init_keeps_no_key_that_others_can_read() {
    let dir = TempDir::new("init-planted");
    let key = dir.path().join("secret.key");
    let (status, out, _) = latch_cmd(&["keygen"], &[]);
    assert!(status.success());
    std::fs::write(&key, out).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = latch_in(
        dir.path(),
        &[
            "init",
            "-c",
            "latch.toml",
            "--public-url",
            "https://auth.example.com",
        ],
    );
    assert!(!ok);
    assert!(err.contains("is not a key only you can read"), "{err}");
    assert_eq!(
        snapshot(dir.path()).len(),
        1,
        "init wrote beside a planted key"
    );
    // Plain http is written, with a warning about the secure cookie.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let other = TempDir::new("init-http");
    let (ok, out, err) = latch_in(
        other.path(),
        &[
            "init",
            "-c",
            "latch.toml",
            "--public-url",
            "http://auth.example.com",
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("is plain http"), "{err}");
    assert!(out.contains("latch serve --config"), "{out}");
}

#[test]
fn proxy_snippet_serves_latch_on_the_port_public_url_names() {
    let dir = TempDir::new("snippet-port");
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        "public_url = \"https://auth.example.com:8443\"\n\
         [forward_auth]\ncookie_domain = \"example.com\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let snippet = |proxy: &str, extra: &[&str]| {
        let args = [&["proxy-snippet", proxy, "-c", c][..], extra].concat();
        let (ok, out, err) = latch_in(dir.path(), &args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    let app = ["--app", "app.example.com"];
    let caddy = snippet("caddy", &app);
    assert!(caddy.contains("\nauth.example.com:8443 {\n"), "{caddy}");
    assert!(caddy.starts_with("app.example.com {\n"), "{caddy}");
    let nginx = snippet("nginx", &app);
    assert!(
        nginx.contains("listen 8443 ssl;\n    server_name auth.example.com;"),
        "{nginx}"
    );
    assert!(
        nginx.contains("listen 443 ssl;\n    server_name app.example.com;"),
        "{nginx}"
    );
    // Traefik: an entry point on the port, with or without --app.
    for extra in [&[][..], &app[..]] {
        let traefik = snippet("traefik-static", extra);
        assert!(
            traefik.contains("  websecure-8443:\n    address: \":8443\"\n"),
            "{traefik}"
        );
        assert!(traefik.contains("  websecure:\n    address: \":443\"\n"));
    }
    // Another host than public_url's: its port is not that host's.
    let other = snippet(
        "caddy",
        &[&app[..], &["--auth", "login.example.com"]].concat(),
    );
    assert!(other.contains("\nlogin.example.com {\n"), "{other}");
    // Each domain's port.
    std::fs::write(
        &config,
        "[[forward_auth.domains]]\ncookie_domain = \"example.com\"\n\
         public_url = \"https://auth.example.com:8443\"\n\
         [[forward_auth.domains]]\ncookie_domain = \"example.net\"\n\
         public_url = \"https://auth.example.net\"\n",
    )
    .unwrap();
    for extra in [&[][..], &["--app", "app.example.net"][..]] {
        let traefik = snippet("traefik-static", extra);
        assert_eq!(traefik.matches("address:").count(), 2, "{traefik}");
        assert!(traefik.contains("address: \":8443\""), "{traefik}");
    }
    let caddy = snippet("caddy", &["--app", "app.example.net"]);
    assert!(caddy.contains("\nauth.example.net {\n"), "{caddy}");
    let caddy = snippet("caddy", &["--app", "app.example.com"]);
    assert!(caddy.contains("\nauth.example.com:8443 {\n"), "{caddy}");
    // The scheme's own port is no port; plain http gets no port, and a
    // warning; https on 80, a warning.
    let warns: [(&str, &str, Option<&str>); 3] = [
        (
            "https://auth.example.com:443",
            "\nauth.example.com {\n",
            None,
        ),
        (
            "http://auth.example.com:8080",
            "\nauth.example.com {\n",
            Some("is not https"),
        ),
        (
            "https://auth.example.com:80",
            "\nauth.example.com:80 {\n",
            Some("on port 80"),
        ),
    ];
    for (url, site, warned) in warns {
        std::fs::write(
            &config,
            format!("public_url = \"{url}\"\n[forward_auth]\ncookie_domain = \"example.com\"\n"),
        )
        .unwrap();
        let (ok, out, err) = latch_in(
            dir.path(),
            &[&["proxy-snippet", "caddy", "-c", c][..], &app[..]].concat(),
        );
        assert!(ok, "{err}");
        assert!(out.contains(site), "{url}: {out}");
        match warned {
            Some(warning) => assert!(err.contains(warning), "{url}: {err}"),
            None => assert!(err.is_empty(), "{url}: {err}"),
        }
        let traefik = snippet("traefik-static", &[]);
        let ports = if url.ends_with(":80") { 2 } else { 1 };
        assert_eq!(
            traefik.matches("address:").count(),
            ports,
            "{url}: {traefik}"
        );
    }
}
