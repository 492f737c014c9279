//! Token verification: a JWT verified for the first time (RS256 and ES256 signature checks)
//! against one already verified and served from the cache by its hash, and a static token.
//! `cargo bench --bench authn`.

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mcp_warden::{authn::Authenticator, config::Config};
use serde_json::json;

fn keys(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn token(alg: Algorithm, kid: &str, pem: &str, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({"iss": "https://idp.bench", "aud": "mcp-warden", "sub": sub, "exp": now + 3600});
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&keys(pem)).unwrap(),
        _ => EncodingKey::from_rsa_pem(&keys(pem)).unwrap(),
    };
    encode(&header, &claims, &key).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("mcp-warden-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    let jwk = |n: &str| {
        serde_json::from_slice::<serde_json::Value>(&keys(&format!("{n}.jwk.json"))).unwrap()
    };
    std::fs::write(
        &jwks,
        json!({"keys": [jwk("rsa1"), jwk("ec1")]}).to_string(),
    )
    .unwrap();
    let static_hash = mcp_warden::authn::token_hash_hex("bench-static-token");
    let toml = format!(
        "[auth]\n[[auth.issuers]]\nissuer = \"https://idp.bench\"\naudiences = [\"mcp-warden\"]\njwks_file = {:?}\nprincipal_prefix = \"idp\"\n\
         [[auth.tokens]]\nsha256 = \"{static_hash}\"\nid = \"bot\"\n\
         [authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"x\"\ncommand = \"x\"\n",
        jwks.display().to_string()
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let authn = rt.block_on(Authenticator::new(&config.auth));
    let rs = format!(
        "Bearer {}",
        token(Algorithm::RS256, "rsa-1", "rsa1.pem", "alice")
    );
    let es = format!(
        "Bearer {}",
        token(Algorithm::ES256, "ec-1", "ec1.pem", "bob")
    );
    let mut group = c.benchmark_group("authenticate");
    let mut n = 0u64;
    // A fresh token each time (signed outside the measurement): nothing is cached.
    for (name, alg, kid, pem) in [
        ("RS256, uncached", Algorithm::RS256, "rsa-1", "rsa1.pem"),
        ("ES256, uncached", Algorithm::ES256, "ec-1", "ec1.pem"),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    format!("Bearer {}", token(alg, kid, pem, &format!("u{n}")))
                },
                |fresh| rt.block_on(authn.authenticate(Some(&fresh))).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("RS256, cached", |b| {
        b.iter(|| rt.block_on(authn.authenticate(Some(&rs))).unwrap())
    });
    group.bench_function("ES256, cached", |b| {
        b.iter(|| rt.block_on(authn.authenticate(Some(&es))).unwrap())
    });
    group.bench_function("static token", |b| {
        b.iter(|| {
            rt.block_on(authn.authenticate(Some("Bearer bench-static-token")))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
