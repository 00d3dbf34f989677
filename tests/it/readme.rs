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
    let dir = TempDir::new("readme");
    let server = Server::start(&dir, "");
    assert_eq!(
        run(&block(&readme, "walkthrough"), &server),
        [201, 200, 401, 200, 200, 200, 401]
    );
    assert_eq!(
        run(&block(&readme, "flask"), &server),
        [200, 200, 200, 200, 401]
    );
}

#[test]
fn the_example_config_documents_every_key() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/latch.toml");
    let (status, stdout, stderr) = latch_cmd(&["check-config", "--config", example], &[]);
    assert!(status.success(), "{stderr}");
    let text = std::fs::read_to_string(example).unwrap();
    for line in stdout.lines().filter(|l| l.contains(" = ")) {
        let key = line.split(" = ").next().unwrap();
        assert!(
            text.contains(&format!("{key} = ")),
            "config/latch.toml does not document {key}"
        );
    }
}
