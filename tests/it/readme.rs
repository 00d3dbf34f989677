//! The README's curl walkthroughs, run verbatim against a live server.

use std::process::Command;

use crate::support::*;

/// The shell block between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn block(readme: &str, name: &str) -> String {
    let start = readme
        .find(&format!("<!-- {name}:begin -->"))
        .unwrap_or_else(|| panic!("README has no {name} block"));
    let end = readme[start..]
        .find(&format!("<!-- {name}:end -->"))
        .unwrap()
        + start;
    let inner = &readme[start..end];
    let code_start = inner.find("```sh\n").unwrap() + "```sh\n".len();
    let code_end = inner[code_start..].find("```").unwrap() + code_start;
    inner[code_start..code_end].to_owned()
}

/// Runs `script` with the README's address replaced by the server's, and
/// returns the status codes of the responses curl printed, in order.
fn run(script: &str, server: &Server) -> Vec<u16> {
    let script = script.replace("http://127.0.0.1:8080", &format!("http://{}", server.addr));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bodies have no trailing newline, so a status line may follow one
    // on the same line.
    stdout
        .match_indices("HTTP/1.1 ")
        .map(|(i, m)| stdout[i + m.len()..i + m.len() + 3].parse().unwrap())
        .collect()
}

#[test]
fn readme_walkthroughs_run_verbatim() {
    if !require_program("curl") {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The quick start: the example config as shipped (data in ./latch-data
    // of the working directory, full scrypt cost), on a free port.
    let dir = TempDir::new("readme");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/latch.toml");
    let server = Server::try_start_in(
        std::path::Path::new(example),
        Some(dir.path()),
        &[
            ("LATCH_LISTEN", "127.0.0.1:0"),
            ("LATCH_OPS__LISTEN", "127.0.0.1:0"),
        ],
    )
    .unwrap_or_else(|log| panic!("the example config does not start:\n{log}"));
    assert!(dir.path().join("latch-data").join("secret.key").exists());
    assert_eq!(
        run(&block(&readme, "walkthrough"), &server),
        [201, 200, 401, 200, 200, 200, 401]
    );
    assert_eq!(
        run(&block(&readme, "flask"), &server),
        [200, 200, 200, 200, 401]
    );
    assert_eq!(
        run(&block(&readme, "accounts"), &server),
        [200, 200, 200, 200, 204, 401, 200, 401, 204, 401, 204]
    );
    if require_program("oathtool") {
        assert_eq!(run(&block(&readme, "totp"), &server), [201, 401, 200, 200]);
    }
}

/// Every key the server accepts, as its own "unknown field" error lists
/// them (so a new key cannot be forgotten here).
fn accepted_keys(table: Option<&str>) -> Vec<String> {
    let dir = TempDir::new("keys");
    let config = dir.path().join("probe.toml");
    let text = match table {
        Some(t) => format!("[{t}]\nno_such_key = 1\n"),
        None => "no_such_key = 1\n".to_owned(),
    };
    std::fs::write(&config, text).unwrap();
    let (status, _, stderr) =
        latch_cmd(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(!status.success());
    // serde says "expected `a` or `b`" for two keys, "expected one of ..." for more.
    let list = stderr
        .split_once("expected ")
        .unwrap_or_else(|| panic!("{stderr}"))
        .1;
    let list = list.split(" for key").next().unwrap();
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Whether `text` has a line `key = ...`, commented out or not.
fn documents(text: &str, key: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start_matches(['#', ' '])
            .starts_with(&format!("{key} = "))
    })
}

#[test]
fn the_example_config_documents_every_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/latch.toml");
    let (status, _, stderr) = latch_cmd(&["check-config", "--config", example], &[]);
    assert!(status.success(), "{stderr}");
    let text = std::fs::read_to_string(example).unwrap();
    let top = accepted_keys(None);
    assert!(
        top.contains(&"listen".to_owned()) && top.contains(&"scrypt".to_owned()),
        "{top:?}"
    );
    let mut checked = 0;
    for key in &top {
        if [
            "scrypt",
            "limits",
            "forward_auth",
            "regulation",
            "api",
            "ops",
            "access_control",
            "ui",
            "storage",
            "totp",
        ]
        .contains(&key.as_str())
        {
            assert!(
                text.contains(&format!("[{key}]")),
                "config/latch.toml has no [{key}]"
            );
            for sub in accepted_keys(Some(key)) {
                let array = format!("[[{key}.{sub}]]");
                assert!(
                    documents(&text, &sub) || text.contains(&array),
                    "config/latch.toml does not document [{key}] {sub}"
                );
                checked += 1;
            }
        } else {
            assert!(
                documents(&text, key),
                "config/latch.toml does not document {key}"
            );
            checked += 1;
        }
    }
    // And each field of an access rule.
    for field in accepted_keys(Some("[access_control.rules]")) {
        assert!(
            documents(&text, &field),
            "config/latch.toml does not document an access rule's {field}"
        );
        checked += 1;
    }
    assert!(checked >= 24, "{checked}");
}

#[test]
fn without_a_config_file_the_defaults_apply() {
    if std::path::Path::new(latch::config::SYSTEM_CONFIG).exists() {
        eprintln!(
            "skipped: {} exists on this machine",
            latch::config::SYSTEM_CONFIG
        );
        return;
    }
    let dir = TempDir::new("noconfig");
    let out = std::process::Command::new(&*LATCH)
        .arg("check-config")
        .current_dir(dir.path())
        .env_remove("LATCH_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("listen = \"127.0.0.1:8080\""), "{stdout}");
    assert!(stdout.contains("data_dir = \"./latch-data\""), "{stdout}");
    assert!(stdout.contains("registration = \"closed\""), "{stdout}");
}

/// The code block of `lang` between `<!-- marker:begin -->` and
/// `<!-- marker:end -->`.
fn code_block(readme: &str, marker: &str, lang: &str) -> String {
    let inner = block_text(readme, marker);
    let fence = format!("```{lang}\n");
    let code = &inner[inner.find(&fence).expect("a code block") + fence.len()..];
    code[..code.find("```").expect("the block's end")].to_owned()
}

fn block_text<'a>(readme: &'a str, marker: &str) -> &'a str {
    let begin = format!("<!-- {marker}:begin -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin}"));
    let end = readme[start..]
        .find(&format!("<!-- {marker}:end -->"))
        .expect("an end marker");
    &readme[start..start + end]
}

/// The README's proxy blocks are what `latch proxy-snippet` prints for the
/// README's hosts, to the byte (the proxy tests run what it prints).
#[test]
fn proxy_blocks_are_what_proxy_snippet_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let dir = TempDir::new("snippet-readme");
    let config = dir.path().join("latch.toml");
    std::fs::write(
        &config,
        "public_url = \"https://auth.example.com\"\n\
         [forward_auth]\ncookie_domain = \"example.com\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let printed = |proxy: &str| {
        let args = [
            "proxy-snippet",
            proxy,
            "--app",
            "app.example.com",
            "-c",
            config,
        ];
        let (status, out, err) = latch_cmd(&args, &[]);
        assert!(status.success() && err.is_empty(), "{proxy}: {err}");
        out
    };
    assert_eq!(
        printed("caddy"),
        code_block(&readme, "caddyfile", "caddyfile")
    );
    assert_eq!(printed("nginx"), code_block(&readme, "nginx", "nginx"));
    assert_eq!(
        printed("traefik"),
        code_block(&readme, "traefik-dynamic", "yaml")
    );
    let (status, static_config, err) = latch_cmd(&["proxy-snippet", "traefik-static"], &[]);
    assert!(status.success(), "{err}");
    assert_eq!(static_config, code_block(&readme, "traefik-static", "yaml"));
}

/// The example config's commented access rules are the README's policy
/// example, rule for rule (found by a newcomer: the config's copy lacked
/// the deny of `/admin` under `*.media.example.com`, and its catch-all).
#[test]
fn the_example_config_comments_the_readme_s_rules() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let config = std::fs::read_to_string(format!("{root}/config/latch.toml")).unwrap();
    let first_rule = "[[access_control.rules]]";
    let policy_start = readme
        .find("```toml\n[access_control]\n")
        .expect("the README's policy example");
    let policy = &readme[policy_start..];
    let policy = &policy[..policy[8..].find("```").expect("its end") + 8];
    let rules = |text: &str| -> Vec<String> {
        let at = text.find(first_rule).expect("a rule");
        text[at..]
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter(|l| !l.is_empty() && !l.starts_with("```"))
            .map(str::to_owned)
            .collect()
    };
    let commented = &config[config.find("[access_control]").expect("the table")..];
    assert_eq!(rules(commented), rules(policy));
}
