//! What an upstream credential costs on the request path once warm: the
//! static bearer, a cached OAuth client-credentials token (fetched from the
//! real mock upstream's `/oidc/v1/token`), and a caller-JWT token exchange
//! answered from the per-subject cache; against a baseline of cloning one
//! header value.
//! Run: `cargo bench -p tollgate --bench credentials -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use tollgate::config::ProviderConfig;
use tollgate::credentials::{CredentialDefaults, Credentials};
use tollgate::mock::server::MockOptions;

/// A provider entry with this `auth:` block, pointed at `mock`.
fn provider(mock: std::net::SocketAddr, auth: &str) -> ProviderConfig {
    let text = format!(
        "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}\n\
         providers:\n  - {{name: p, kind: databricks, base_url: http://{mock}, auth: {auth}}}\n"
    );
    tollgate::config::parse_str(&text)
        .unwrap()
        .providers
        .remove(0)
}

fn build(rt: &tokio::runtime::Runtime, cfg: &ProviderConfig) -> Arc<Credentials> {
    let _guard = rt.enter();
    let defaults = CredentialDefaults {
        token_url: Some(format!(
            "{}/oidc/v1/token",
            cfg.base_url.as_deref().unwrap()
        )),
        scope: Some("all-apis"),
        api_key_header: None,
    };
    Credentials::build(cfg, defaults, &cfg.timeouts, &Default::default()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = MockOptions {
            client_id: Some("bench-sp".into()),
            client_secret: Some("bench-secret".into()),
            ..Default::default()
        };
        tokio::spawn(tollgate::mock::server::serve(
            listener,
            opts,
            std::future::pending(),
        ));
        addr
    });
    let none = HeaderMap::new();
    let mut g = c.benchmark_group("credentials");

    // Every case runs inside `block_on`, the baseline too, so the ratios
    // compare the credential work alone.
    let baseline = HeaderValue::from_static("Bearer dapi-static-token-0123456789");
    g.bench_function("baseline header clone", |b| {
        b.iter(|| rt.block_on(async { black_box(baseline.clone()) }))
    });

    let stat = build(
        &rt,
        &provider(mock, "{type: bearer, token: dapi-0123456789}"),
    );
    g.bench_function("static bearer", |b| {
        b.iter(|| rt.block_on(async { black_box(stat.header(&none).await.unwrap()) }))
    });

    let sp = build(
        &rt,
        &provider(
            mock,
            "{type: client_credentials, client_id: bench-sp, client_secret: bench-secret}",
        ),
    );
    rt.block_on(sp.header(&none)).unwrap();
    g.bench_function("client_credentials cached token", |b| {
        b.iter(|| rt.block_on(async { black_box(sp.header(&none).await.unwrap()) }))
    });

    let fed = build(&rt, &provider(mock, "{type: token_exchange}"));
    let mut caller = HeaderMap::new();
    // A JWT-shaped token (the mock does not check signatures): {"sub":"bench"}.
    caller.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"),
    );
    rt.block_on(fed.header(&caller)).unwrap();
    g.bench_function("token_exchange cached per subject", |b| {
        b.iter(|| rt.block_on(async { black_box(fed.header(&caller).await.unwrap()) }))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
