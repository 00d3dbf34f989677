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
        &["frobnicate"][..],
        &["serve", "--no-such-flag"],
        &["serve", "--config", "/nonexistent/latch.toml"],
        &["check-config", "--config", "/nonexistent/latch.toml"],
        &[],
    ] {
        let (status, _, stderr) = latch_cmd(args, &[]);
        assert!(!status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("latch: "), "{args:?}: {stderr}");
    }
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
