//! The command line: keygen, check-config, help and errors.

use crate::support::*;

#[test]
fn keygen_prints_a_fresh_32_byte_key() {
    let (status, first, _) = latch_cmd(&["keygen"], &[]);
    assert!(status.success());
    let (_, second, _) = latch_cmd(&["keygen"], &[]);
    let key = latch::crypto::b64_decode(first.trim().as_bytes()).unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(first, second);
    // And the server accepts it.
    let dir = TempDir::new("keygen");
    let server = Server::start(&dir, &format!("secret_key = \"{}\"", first.trim()));
    server.client().register("alice", "alice-password");
}

#[test]
fn check_config_masks_secrets() {
    let dir = TempDir::new("checkcfg");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, config_text(dir.path(), "")).unwrap();
    let (status, stdout, stderr) =
        latch_cmd(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(status.success(), "{stderr}");
    assert!(!stdout.contains(TEST_KEY), "{stdout}");
    assert!(stdout.contains("secret_key = \"********\""), "{stdout}");
    assert!(stdout.contains("listen = \"127.0.0.1:0\""), "{stdout}");
    // The printed config is itself a valid config.
    let again = dir.path().join("printed.toml");
    std::fs::write(
        &again,
        stdout.replace("\"********\"", &format!("\"{TEST_KEY}\"")),
    )
    .unwrap();
    let (status, stdout2, stderr) =
        latch_cmd(&["check-config", "--config", again.to_str().unwrap()], &[]);
    assert!(status.success(), "{stderr}");
    // The first line says which file was read; the rest is the same.
    let (first, rest) = stdout.split_once('\n').unwrap();
    assert_eq!(
        first,
        format!("# config {} (from --config)", config.display())
    );
    let (first2, rest2) = stdout2.split_once('\n').unwrap();
    assert_eq!(
        first2,
        format!("# config {} (from --config)", again.display())
    );
    assert_eq!(rest, rest2);
    // LATCH_CONFIG is honoured when --config is absent, and named.
    let (status, stdout3, _) = latch_cmd(
        &["check-config"],
        &[("LATCH_CONFIG", config.to_str().unwrap())],
    );
    assert!(status.success());
    let (first3, rest3) = stdout3.split_once('\n').unwrap();
    assert_eq!(
        first3,
        format!("# config {} (from $LATCH_CONFIG)", config.display())
    );
    assert_eq!(rest, rest3);
}

#[test]
fn check_config_does_not_create_the_key() {
    let dir = TempDir::new("checknokey");
    let config = dir.path().join("latch.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    let (status, stdout, stderr) =
        latch_cmd(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("does not exist yet"), "{stdout}");
    assert!(!data.join("secret.key").exists());
}

#[test]
fn failures_are_one_line_and_non_zero() {
    for args in [
        &["serve", "--config", "/nonexistent/latch.toml"][..],
        &["check-config", "--config", "/nonexistent/latch.toml"],
    ] {
        let (status, _, stderr) = latch_cmd(args, &[]);
        assert!(!status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("latch: "), "{args:?}: {stderr}");
    }
}

/// A usage error is clap's whole message: what is wrong, with the missing
/// argument named, the usage line, and where to find more.
#[test]
fn usage_errors_name_what_is_missing_and_show_the_usage() {
    for (args, wrong, usage) in [
        (&["user", "add"][..], "<NAME>", "Usage: latch user add"),
        (
            &["frobnicate"],
            "unrecognized subcommand 'frobnicate'",
            "Usage: latch <COMMAND>",
        ),
        (
            &["serve", "--no-such-flag"],
            "unexpected argument '--no-such-flag'",
            "Usage: latch serve",
        ),
        (&["user", "groups"], "<NAME>", "Usage: latch user groups"),
        (&[], "a command is required", "Usage: latch <COMMAND>"),
    ] {
        let (status, _, stderr) = latch_cmd(args, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert!(stderr.starts_with("latch: "), "{args:?}: {stderr}");
        assert!(stderr.contains(wrong), "{args:?}: {stderr}");
        assert!(stderr.contains(usage), "{args:?}: {stderr}");
    }
}

/// Every command that reads a configuration finds it the same way and says
/// which, once, on stderr: --config, $LATCH_CONFIG, /etc/latch/latch.toml,
/// ./latch.toml, the defaults.
#[test]
fn every_command_says_which_config_it_read() {
    let dir = TempDir::new("discovery");
    let named = dir.path().join("named.toml");
    std::fs::write(&named, config_text(dir.path(), "")).unwrap();
    let local = dir.path().join("latch.toml");
    std::fs::write(&local, config_text(dir.path(), "[ui]\ntitle = \"local\"\n")).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)], cwd: &std::path::Path| {
        let out = std::process::Command::new(&*LATCH)
            .args(args)
            .env_remove("LATCH_CONFIG")
            .envs(env.iter().copied())
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first_line = |stderr: &str| stderr.lines().next().unwrap_or_default().to_owned();
    let system_exists = std::path::Path::new("/etc/latch/latch.toml").exists();
    let named_str = named.to_str().unwrap();
    for args in [
        &["check-config"][..],
        &["user", "list"],
        &["access", "check", "--url", "https://a.example.test/"],
        &["backup", "-"],
    ] {
        let mut flagged = args.to_vec();
        flagged.extend(["--config", named_str]);
        let stderr = run(&flagged, &[], dir.path());
        assert_eq!(
            first_line(&stderr),
            format!("using config {named_str} (from --config)"),
            "{args:?}: {stderr}"
        );
        let stderr = run(args, &[("LATCH_CONFIG", named_str)], dir.path());
        assert_eq!(
            first_line(&stderr),
            format!("using config {named_str} (from $LATCH_CONFIG)"),
            "{args:?}: {stderr}"
        );
        if !system_exists {
            let stderr = run(args, &[], dir.path());
            assert_eq!(
                first_line(&stderr),
                "using config latch.toml (in the working directory)",
                "{args:?}: {stderr}"
            );
            let elsewhere = TempDir::new("discovery-none");
            let stderr = run(args, &[], elsewhere.path());
            assert_eq!(
                first_line(&stderr),
                "using no config file: built-in defaults",
                "{args:?}: {stderr}"
            );
        }
        for stderr in [run(args, &[], dir.path()), run(&flagged, &[], dir.path())] {
            let count = stderr.lines().filter(|l| l.starts_with("using ")).count();
            assert_eq!(count, 1, "once: {args:?}: {stderr}");
        }
    }
    // keygen reads none, and says nothing.
    assert_eq!(run(&["keygen"], &[], dir.path()), "");
}

/// `latch user` and `latch backup` never make a database by accident: with
/// no server answering and none at data_dir, they stop with one line naming
/// the path (and, for `user`, `--create`).
#[test]
fn no_database_is_made_by_accident() {
    let dir = TempDir::new("nodb");
    let config = dir.path().join("latch.toml");
    std::fs::write(&config, config_text(dir.path(), "")).unwrap();
    let data = dir.path().join("data");
    let (status, _, stderr) = latch_with(&["user", "list"], &config);
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("no database in {}", data.display())),
        "{stderr}"
    );
    assert!(stderr.contains("latch user --create"), "{stderr}");
    let (status, _, stderr) = latch_with(&["backup", "-"], &config);
    assert!(!status.success());
    assert!(stderr.contains("no database in"), "{stderr}");
    assert!(!data.join("latch-schema").exists(), "nothing was made");
    let (status, _, stderr) = latch_with(&["user", "--create", "list"], &config);
    assert!(status.success(), "{stderr}");
    assert!(data.join("latch-schema").exists());
    let (status, _, stderr) = latch_with(&["user", "list"], &config);
    assert!(status.success(), "{stderr}");
}

#[test]
fn help_everywhere() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keygen", "--help"],
        &["check-config", "--help"],
        &["help", "serve"],
    ] {
        let (status, stdout, _) = latch_cmd(args, &[]);
        assert!(status.success(), "{args:?}");
        assert!(stdout.contains("Usage: latch"), "{args:?}: {stdout}");
    }
    let (status, stdout, _) = latch_cmd(&["--version"], &[]);
    assert!(status.success());
    assert!(stdout.starts_with("latch "));
}

#[test]
fn check_config_warns_about_the_traps() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("traps");
    let key_file = dir.path().join("secret.key");
    std::fs::write(&key_file, format!("{TEST_KEY}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("latch.toml");
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let (status, stdout, stderr) = latch_with(&["check-config"], &config);
        assert!(status.success(), "{stderr}");
        assert!(
            stdout.starts_with(&format!("# config {} (from --config)\n", config.display())),
            "{stdout}"
        );
        stderr
    };
    let data = format!(
        "data_dir = {:?}\n",
        dir.path().join("data").display().to_string()
    );
    let stderr = check(&format!(
        "listen = \"0.0.0.0:8080\"\n{data}secret_key_file = {:?}\n\
         public_url = \"https://auth.example.com\"\n[forward_auth]\n\
                        cookie_domain = \"example.org\"\n",
        key_file.display().to_string()
    ));
    for expected in [
        "cookie_domain = \"example.org\" does not cover the public_url host \"auth.example.com\"",
        "is readable by its group or by others (mode 644)",
        "listen = \"0.0.0.0:8080\" is reachable from other hosts while [forward_auth] \
         trusted_proxies trusts loopback only",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    assert!(
        stderr.lines().all(|l| l.starts_with("latch: warning: ")),
        "{stderr}"
    );
    // A missing key file is named too (serve would create it).
    let missing = dir.path().join("missing.key");
    let stderr = check(&format!(
        "{data}secret_key_file = {:?}\n",
        missing.display().to_string()
    ));
    assert!(
        stderr.contains("does not exist") && stderr.contains("missing.key"),
        "{stderr}"
    );
    assert!(!missing.exists());
    // The other traps: Secure cookies on plain http, trusting everyone,
    // metrics for everyone, usernames for everyone.
    let stderr = check(&format!(
        "{data}public_url = \"http://auth.lan\"\n[forward_auth]\ncookie_domain = \"lan\"\n\
         trusted_proxies = [\"0.0.0.0/0\"]\n[api]\npublic_profiles = true\n[ops]\n\
                              listen = \"0.0.0.0:9180\"\n"
    ));
    for expected in [
        "public_url is plain http while [forward_auth] cookie_secure = true",
        "trusted_proxies trusts every address",
        "[ops] listen = \"0.0.0.0:9180\" serves /metrics",
        "[api] public_profiles = true",
        "cookie_domain = \"lan\" is a single label",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    // Fixed, the warnings go away.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stderr = check(&format!(
        "listen = \"0.0.0.0:8080\"\n{data}secret_key_file = {:?}\n\
         public_url = \"https://auth.example.com\"\n[forward_auth]\n\
                        cookie_domain = \"example.com\"\ntrusted_proxies = [\"172.16.0.0/12\"]\n",
        key_file.display().to_string()
    ));
    assert_eq!(stderr, "", "{stderr}");
}
