//! Property tests: the parsers and the router never panic and never answer
//! 5xx, whatever the input.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use latch::crypto::{self, SigningKey};
use latch::token::{Audience, Claims, Keys};
use proptest::prelude::*;

use crate::support::*;

fn keys() -> Keys {
    Keys::new(SigningKey::new(&[7u8; 32]), vec![])
}

fn valid_token() -> String {
    keys().sign(&Claims {
        sub: "1".into(),
        name: "alice".into(),
        aud: Audience::Api,
        iat: 1000,
        exp: 5000,
        auth_time: 1000,
        amr: vec!["pwd".into()],
        epoch: 0,
        jti: crypto::b64url_encode(&[1u8; 16]),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_decoder_never_panics_and_never_accepts_garbage(text in ".{0,300}") {
        prop_assert!(keys().verify(&text, 2000).is_err());
    }

    #[test]
    fn any_edit_of_a_valid_token_is_refused(pos in 0usize..400, byte in any::<u8>()) {
        let token = valid_token();
        let mut bytes = token.clone().into_bytes();
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != byte);
        bytes[pos] = byte;
        let edited = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(keys().verify(&edited, 2000).is_err(), "accepted {edited}");
    }

    #[test]
    fn credential_parsers_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        text in ".{0,200}",
    ) {
        let _ = latch::credentials::parse_authorization(&bytes);
        let _ = latch::credentials::parse_token(&bytes);
        let _ = latch::credentials::cookie(&bytes, "latch_session");
        let _ = latch::credentials::parse_form(&bytes);
        let _ = latch::credentials::query_token(&text);
        let mut basic = b"Basic ".to_vec();
        basic.extend_from_slice(crypto::b64_encode(&bytes).as_bytes());
        let _ = latch::credentials::parse_authorization(&basic);
    }

    #[test]
    fn redirects_only_ever_go_to_the_domain(
        rd in "(https?://|//|/|javascript:)?[a-zA-Z0-9.@:/\\\\%?#_-]{0,40}",
        http in any::<bool>(),
    ) {
        let scope = latch::redirect::Scope::Domain("example.com".into());
        if let Some(ok) = latch::redirect::safe_redirect(&rd, &scope, http) {
            let lower = ok.to_ascii_lowercase();
            let plain = || if http { lower.strip_prefix("http://") } else { None };
            let rest = lower.strip_prefix("https://").or_else(plain);
            prop_assert!(rest.is_some(), "{ok}");
            let host = rest.unwrap().split(['/', '?', '#', ':']).next().unwrap();
            prop_assert!(host == "example.com" || host.ends_with(".example.com"), "{ok}");
            prop_assert!(!ok.contains('@') && !ok.contains('\\'), "{ok}");
        }
    }
}

/// Routes `req` through the real router of an in-process app.
fn route(app: &latch::App, rt: &tokio::runtime::Runtime, req: hyper::Request<Full<Bytes>>) -> u16 {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    rt.block_on(latch::http::router::route(app, req, peer))
        .status()
        .as_u16()
}

#[test]
fn json_bodies_and_headers_never_make_a_5xx() {
    let dir = TempDir::new("props");
    let config = latch::Config::from_toml(&config_text(dir.path(), "")).unwrap();
    let app = Arc::new(latch::App::open(config, latch::Clock::system()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let paths = [
        ("POST", "/api/users"),
        ("POST", "/login"),
        ("PUT", "/api/users/me/password"),
        ("POST", "/api/keys"),
        ("GET", "/api/resource"),
        ("GET", "/auth"),
        ("POST", "/logout"),
    ];
    let json_value = proptest::prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
    ];
    let body = proptest::collection::hash_map(
        proptest::prop_oneof![
            Just("username".to_owned()),
            Just("password".to_owned()),
            Just("email".to_owned()),
            Just("old_password".to_owned()),
            Just("new_password".to_owned()),
            Just("name".to_owned()),
            Just("expires_in".to_owned()),
            "[a-z]{1,8}",
        ],
        json_value,
        0..6,
    );
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let header = "[ -~]{0,60}";
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(
            &(0..paths.len(), body, raw, header, any::<bool>()),
            |(which, body, raw, header_value, use_raw)| {
                let (method, path) = paths[which];
                let bytes = if use_raw {
                    raw
                } else {
                    serde_json::to_vec(&body).unwrap()
                };
                let mut builder = hyper::Request::builder()
                    .method(method)
                    .uri(path)
                    .header("content-type", "application/json");
                if let Ok(v) = hyper::header::HeaderValue::from_str(&header_value) {
                    builder = builder
                        .header("authorization", v.clone())
                        .header("cookie", v);
                }
                let req = builder.body(Full::new(Bytes::from(bytes))).unwrap();
                let status = route(&app, &rt, req);
                prop_assert!(status < 500, "{method} {path}: {status}");
                Ok(())
            },
        )
        .unwrap();
}
