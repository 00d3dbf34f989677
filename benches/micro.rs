//! Micro-benchmarks of the verify path's pure parts: token sign and
//! verify, credential parsing, an access decision over 100 rules.
//! `cargo bench --bench micro`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use latch::crypto::{self, SigningKey};
use latch::token::{Audience, Claims, Keys};

fn keys() -> Keys {
    Keys::new(SigningKey::new(&[7u8; 32]), vec![])
}

fn claims() -> Claims {
    Claims {
        sub: "12345".into(),
        name: "alice".into(),
        aud: Audience::Api,
        iat: 1_800_000_000,
        exp: 1_800_000_600,
        auth_time: 1_800_000_000,
        amr: vec!["pwd".into()],
        epoch: 0,
        jti: crypto::b64url_encode(&[9u8; 16]),
    }
}

fn tokens(c: &mut Criterion) {
    let keys = keys();
    let claims = claims();
    let token = keys.sign(&claims);
    c.bench_function("token sign", |b| b.iter(|| keys.sign(black_box(&claims))));
    c.bench_function("token verify", |b| {
        b.iter(|| keys.verify(black_box(&token), 1_800_000_100).unwrap())
    });
    let mut forged = token.clone();
    forged.pop();
    forged.push('A');
    c.bench_function("token verify (bad MAC)", |b| {
        b.iter(|| keys.verify(black_box(&forged), 1_800_000_100).is_err())
    });
}

fn credentials(c: &mut Criterion) {
    let token = keys().sign(&claims());
    let bearer = format!("Bearer {token}");
    let basic = format!(
        "Basic {}",
        crypto::b64_encode(b"alice:correct horse battery staple")
    );
    let cookie = format!("theme=dark; latch_session={token}; lang=en");
    c.bench_function("parse Authorization: Bearer", |b| {
        b.iter(|| latch::credentials::parse_authorization(black_box(bearer.as_bytes())).unwrap())
    });
    c.bench_function("parse Authorization: Basic", |b| {
        b.iter(|| latch::credentials::parse_authorization(black_box(basic.as_bytes())).unwrap())
    });
    c.bench_function("parse Cookie", |b| {
        b.iter(|| {
            latch::credentials::cookie(black_box(cookie.as_bytes()), "latch_session").unwrap()
        })
    });
    let scope = latch::redirect::Scope::Domain("example.com".into());
    c.bench_function("safe_redirect", |b| {
        b.iter(|| {
            latch::redirect::safe_redirect(
                black_box("https://app.example.com/path?x=1"),
                &scope,
                false,
            )
        })
    });
}

/// A decision over `bench/rules100.toml` (the README's policy after 95
/// other rules): the last rule decides, after every domain and 19 regexes.
fn access(c: &mut Criterion) {
    let config = latch::Config::from_toml(include_str!("../bench/rules100.toml")).unwrap();
    let rules = &config.access;
    assert_eq!(rules.rules().len(), 100);
    let groups = vec!["users".to_owned()];
    let bob = latch::access::Subject {
        username: "bob",
        groups: &groups,
    };
    let asked = |path| latch::access::Request {
        host: "app.example.test",
        path,
        method: "GET",
        client: Some("203.0.113.7".parse().unwrap()),
    };
    let plain = asked("/dashboard?tab=1");
    assert_eq!(rules.decide(&plain, Some(&bob)).rule, Some(99));
    c.bench_function("access decision, 100 rules, rule 100 decides", |b| {
        b.iter(|| rules.decide(black_box(&plain), Some(&bob)))
    });
    let other = latch::access::Request {
        host: "svc37.example.test",
        ..asked("/api/v37/x")
    };
    c.bench_function("access decision, 100 rules, rule 37 decides", |b| {
        b.iter(|| rules.decide(black_box(&other), Some(&bob)))
    });
    let encoded = asked("/x/..%2F%61dmin/./y");
    assert_eq!(rules.decide(&encoded, Some(&bob)).rule, Some(97));
    c.bench_function("access decision, 100 rules, encoded path", |b| {
        b.iter(|| rules.decide(black_box(&encoded), Some(&bob)))
    });
}

fn totp(c: &mut Criterion) {
    use latch::otp::{self, Checked, Secret};
    let secret = Secret(*b"12345678901234567890");
    let now = 1_800_000_000;
    let code = format!("{:06}", otp::code_at(&secret, otp::step(now)));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(
        otp::check(&secret, &code, now, None),
        Checked::Good(otp::step(now))
    );
    assert_eq!(otp::check(&secret, &wrong, now, None), Checked::Wrong);
    c.bench_function("TOTP code check, right code (3 steps)", |b| {
        b.iter(|| otp::check(&secret, black_box(&code), now, None))
    });
    c.bench_function("TOTP code check, wrong code (3 steps)", |b| {
        b.iter(|| otp::check(&secret, black_box(&wrong), now, None))
    });
    let key = latch::crypto::SealingKey::new(&[7; 32]).unwrap();
    let sealed = key.seal(b"totp:1", &secret.0).unwrap();
    c.bench_function("TOTP secret unseal (AES-256-GCM)", |b| {
        b.iter(|| key.open(b"totp:1", black_box(&sealed)))
    });
    let recovery = otp::recovery_codes().unwrap();
    c.bench_function("recovery code hash", |b| {
        b.iter(|| otp::recovery_hash(black_box(&recovery[0])))
    });
}

criterion_group!(benches, tokens, credentials, access, totp);
criterion_main!(benches);
