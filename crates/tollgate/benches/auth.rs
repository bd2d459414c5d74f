//! Authentication + authorization cost on the request path: JWT validation
//! against cached keys (RS256, ES256, EdDSA) followed by the policy decision,
//! and the API-key lookup for comparison. Target: ≤ 50 µs per JWT request.
//! Run: `cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate::auth::jwks::{JwksCache, KeySet};
use tollgate::auth::{
    hash_key, AuthMethod, Credentials, Issuers, KeyEntry, KeyIndex, ModelGrant, OidcIssuer, Policy,
    Principal,
};
use tollgate::config::{ClaimsConfig, OidcConfig, PolicyConfig, PolicyRule, PrincipalKind};

const ISS: &str = "https://idp.bench.example";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name),
    )
    .unwrap()
}

fn issuers() -> Issuers {
    let cfg = OidcConfig {
        issuer: ISS.into(),
        audiences: vec!["tollgate".into()],
        discovery: false,
        jwks_url: Some(format!("{ISS}/jwks")),
        algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
            .map(String::from)
            .to_vec(),
        leeway: Duration::from_secs(60),
        refresh: Duration::from_secs(600),
        unknown_kid_refresh: Duration::from_secs(10),
        claims: ClaimsConfig {
            groups: Some("realm_access.roles".into()),
            tenant: Some("tid".into()),
            ..ClaimsConfig::default()
        },
    };
    let cache = Arc::new(JwksCache::new(OidcIssuer::source(&cfg), &Default::default()).unwrap());
    let (set, skipped) = KeySet::parse(&fixture("jwks.json"), 1).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    cache.install(set);
    let mut issuers = Issuers::default();
    issuers.insert(OidcIssuer::new(&cfg, cache).unwrap());
    issuers
}

fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": ISS, "aud": "tollgate", "sub": "alice@example.com",
        "exp": now + 3600, "iat": now, "nbf": now - 10, "tid": "acme",
        "realm_access": {"roles": ["eng", "ml", "reader"]},
        "email": "alice@example.com", "azp": "webapp"
    });
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn policy() -> Policy {
    let rule = |name: &str, groups: &[&str], tenants: &[&str], models: &[&str]| PolicyRule {
        name: name.into(),
        principals: vec![],
        groups: groups.iter().map(|s| s.to_string()).collect(),
        tenants: tenants.iter().map(|s| s.to_string()).collect(),
        kinds: vec![],
        models: models.iter().map(|s| s.to_string()).collect(),
        tools: vec![],
        routes: vec![],
        connections: vec![],
        methods: vec![],
        admin: false,
        claims: vec![],
        jobs: vec![],
    };
    Policy::build(&PolicyConfig {
        rules: vec![
            rule("ops", &["ops"], &[], &["*"]),
            rule("eng", &["eng"], &[], &["chat-*", "embed-*"]),
            rule("acme", &[], &["acme"], &["acme-*"]),
            rule("globex", &[], &["globex"], &["globex-*"]),
        ],
    })
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let issuers = issuers();
    let policy = policy();
    let empty = KeyIndex::default();
    let creds = Credentials {
        config_keys: &empty,
        store_keys: &empty,
        issuers: &issuers,
    };
    let keys = [
        (
            "RS256",
            token(
                Algorithm::RS256,
                "test-rsa",
                &EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap(),
            ),
        ),
        (
            "ES256",
            token(
                Algorithm::ES256,
                "test-ec",
                &EncodingKey::from_ec_pem(&fixture("ec.pem")).unwrap(),
            ),
        ),
        (
            "EdDSA",
            token(
                Algorithm::EdDSA,
                "test-ed",
                &EncodingKey::from_ed_pem(&fixture("ed.pem")).unwrap(),
            ),
        ),
    ];
    let mut g = c.benchmark_group("auth");
    for (name, tok) in &keys {
        let p = creds.issuers.verify_offline(tok).unwrap();
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        // First sight of a token: signature and claims checked in full.
        g.bench_function(format!("jwt_{name}_validate_and_authorize"), |b| {
            b.iter(|| {
                let p = creds.issuers.verify_offline(black_box(tok)).unwrap();
                let access = policy.evaluate(&p, None);
                black_box(access.decide("chat-large", None).is_ok())
            })
        });
        // The same token again (clients reuse tokens until they expire):
        // answered by the verified-token cache.
        g.bench_function(format!("jwt_{name}_repeat_and_authorize"), |b| {
            b.iter(|| {
                let p = creds.issuers.verify_cached_offline(black_box(tok)).unwrap();
                let access = policy.evaluate(&p, None);
                black_box(access.decide("chat-large", None).is_ok())
            })
        });
    }

    let mut index = KeyIndex::default();
    let key = "tg-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    index.insert(
        hash_key(key),
        KeyEntry {
            principal: Arc::new(Principal {
                subject: "svc".into(),
                kind: PrincipalKind::Service,
                groups: vec!["eng".to_string()].into(),
                tenant: Some("acme".into()),
                key_id: Some("svc-key".into()),
                issuer: None,
                method: AuthMethod::ApiKey,
                claims: None,
            }),
            models: ModelGrant::new(&["chat-*".into()]).unwrap(),
            expires_ms: None,
        },
    );
    let creds = Credentials {
        config_keys: &index,
        store_keys: &empty,
        issuers: &issuers,
    };
    g.bench_function("api_key_lookup_and_authorize", |b| {
        b.iter(|| {
            let id = creds.api_key(black_box(key), 0).unwrap();
            let access = policy.evaluate(&id.principal, id.key_grant());
            black_box(access.decide("chat-large", None).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
