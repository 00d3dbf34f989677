//! The OpenAPI document is served and the server holds to it: schemathesis
//! fuzzes every operation, checking for server errors and for responses
//! that do not match the documented statuses and schemas.

use std::process::Command;

use crate::support::*;

#[test]
fn the_document_is_served() {
    let dir = TempDir::new("openapi");
    let server = InProcess::new(&dir, "");
    let res = server.ops().get("/openapi.yaml", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/yaml"));
    let text = res.text();
    assert!(text.starts_with("openapi: 3."));
    for path in [
        "/api/users:",
        "/api/users/{id}:",
        "/api/users/me:",
        "/api/users/me/password:",
        "/api/token:",
        "/api/resource:",
        "/api/logout-all:",
        "/api/keys:",
        "/api/keys/{id}:",
        "/api/totp:",
        "/api/totp/confirm:",
        "/api/totp/recovery:",
        "/login/otp:",
        "/login:",
        "/logout:",
        "  /:",
        "/auth:",
        "/auth/nginx:",
        "/healthz:",
    ] {
        assert!(text.contains(path), "{path} is not documented");
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    if !require_program("schemathesis") {
        return;
    }
    let dir = TempDir::new("schemathesis");
    let server = InProcess::new(&dir, "");
    let c = server.client();
    c.register("alice", "alice-password");
    let token = c.token("alice", "alice-password");
    let out = Command::new("schemathesis")
        // It keeps a cache in its working directory: not in the repository.
        .current_dir(dir.path())
        .args([
            "run",
            &format!("http://{}/openapi.yaml", server.ops_addr.unwrap()),
            "--url",
            &format!("http://{}", server.addr),
        ])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
        ])
        .args(["--max-examples", "40", "--seed", "42"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
    c.assert_alive("alice", "alice-password");
}
