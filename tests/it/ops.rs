//! Operations: health, metrics.

use crate::support::*;

#[test]
fn healthz_answers_while_the_store_does() {
    let dir = TempDir::new("healthz");
    let server = Server::start(&dir, "");
    let res = server.client().get("/healthz", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), json!({"status": "ok"}));
    assert_eq!(
        server
            .client()
            .request("POST", "/healthz", &[], None)
            .status,
        405
    );
}

/// The value of one exposition line, e.g. `latch_users 2`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_what_happens() {
    let dir = TempDir::new("metrics");
    let server = Server::start(&dir, "[regulation]\nmax_retries = 2\n[scrypt]\nlog_n = 4\n");
    let c = server.client();
    c.register("alice", "alice-password");
    c.register("bob", "bob-password");
    let token = c.token("alice", "alice-password");
    c.resource(&bearer(&token));
    c.resource(&bearer("eyJ.nope.nope"));
    c.request(
        "POST",
        "/logout",
        &[("Authorization", &bearer(&token))],
        None,
    );
    c.resource(&basic("bob", "wrong-password"));
    c.resource(&basic("bob", "wrong-password"));
    let res = c.get("/metrics", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = res.text();
    assert_eq!(value(&text, "latch_users"), 2.0);
    assert_eq!(value(&text, "latch_logins_total{result=\"success\"}"), 1.0);
    assert_eq!(value(&text, "latch_logins_total{result=\"failure\"}"), 2.0);
    assert_eq!(value(&text, "latch_bans_total"), 1.0);
    assert_eq!(value(&text, "latch_tokens_issued_total"), 1.0);
    assert_eq!(value(&text, "latch_revocations_total"), 1.0);
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"token\",result=\"ok\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"token\",result=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "latch_verifications_total{kind=\"password\",result=\"refused\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_requests_total{route=\"/api/users\",status=\"2xx\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_requests_total{route=\"/api/resource\",status=\"4xx\"}"
        ),
        3.0
    );
    assert_eq!(value(&text, "latch_hash_queue_depth"), 0.0);
    // 8 requests before this one, all in the histogram.
    assert_eq!(
        value(&text, "latch_http_request_duration_seconds_count"),
        8.0
    );
    assert_eq!(
        value(
            &text,
            "latch_http_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        8.0
    );
    // Every sample line is well formed: name{labels} number.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, number) = line.rsplit_once(' ').unwrap();
        assert!(number.parse::<f64>().is_ok(), "{line}");
        assert!(line.starts_with("latch_"), "{line}");
    }
}
