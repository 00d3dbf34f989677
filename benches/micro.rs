//! Micro-benchmarks of the verify path's pure parts: token sign and
//! verify, credential parsing. `cargo bench --bench micro`.

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

criterion_group!(benches, tokens, credentials);
criterion_main!(benches);
