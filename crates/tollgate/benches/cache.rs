//! Response-cache hit path (target: ≤ 50 µs added over the gateway's
//! minimum path).
//! - `pipeline/…`: one whole request through the data-plane router
//!   in process (auth, ingress, resolve, policy, phase 7, response, usage
//!   record): a cache hit next to the same request on a model served by the
//!   in-process mock provider (the gateway's minimum path: no network).
//! - `hit/…`: phase 7's own work — the canonical key (SHA-256 over the
//!   parsed body), the lookup, the answer as JSON or replayed as SSE — next
//!   to the parse of the same body that every request pays anyway.
//!
//! Run: `cargo bench -p tollgate --bench cache`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use tollgate::cache::{Cache, Decision, Entry, Meta};
use tollgate::config::{CacheConfig, CacheRule, Endpoint};

fn request(words: usize) -> Vec<u8> {
    let text: Vec<String> = (0..words).map(|i| format!("word{i}")).collect();
    serde_json::to_vec(&json!({
        "model": "chat",
        "temperature": 0,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": text.join(" ")}
        ]
    }))
    .unwrap()
}

fn answer() -> bytes::Bytes {
    let text: Vec<String> = (0..200).map(|i| format!("token{i}")).collect();
    bytes::Bytes::from(
        serde_json::to_vec(&json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text.join(" ")},
                "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 200, "total_tokens": 230}
        }))
        .unwrap(),
    )
}

const GATEWAY: &str = r#"
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0", watch_config: false }
storage: { url: "sqlite::memory:" }
ledger: { enabled: false }
providers: [{ name: local, kind: mock }]
models:
  - { name: plain, provider: local }
  - { name: cached, provider: local, cache: { ttl: 1h } }
keys:
  - { id: k, hash: "HASH", principal: bench, models: ["*"] }
"#;

/// One chat request through the router, in process.
fn pipeline(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.yaml");
    let hash = tollgate::auth::format_hash(&tollgate::auth::hash_key("bench-key"));
    std::fs::write(&path, GATEWAY.replace("HASH", &hash)).unwrap();
    let running = rt.block_on(tollgate::server::start(&path)).unwrap();
    let router = tollgate::api::router(running.state.clone());
    let body = |model: &str| {
        String::from_utf8(request(20))
            .unwrap()
            .replace("\"chat\"", &format!("\"{model}\""))
    };
    for (model, expect) in [("plain", None), ("cached", Some("hit"))] {
        let text = body(model);
        let call = || {
            let req = http::Request::post("/v1/chat/completions")
                .header("authorization", "Bearer bench-key")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(text.clone()))
                .unwrap();
            let router = router.clone();
            async move {
                let resp = router.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let cache = resp.headers().get("x-tollgate-cache").cloned();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (cache, bytes.len())
            }
        };
        rt.block_on(call()); // the miss that stores the answer
        let (cache, _) = rt.block_on(call());
        assert_eq!(cache.as_ref().map(|v| v.to_str().unwrap()), expect);
        let label = if expect.is_some() {
            "cache hit"
        } else {
            "in-process mock, uncached"
        };
        c.bench_function(&format!("pipeline/{label}"), |b| {
            b.iter(|| black_box(rt.block_on(call())))
        });
    }
    running.shutdown();
    let _ = rt.block_on(running.wait());
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    pipeline(c, &rt);
    let _guard = rt.enter();
    let cache = Cache::new(&CacheConfig::default()).unwrap();
    let rule = CacheRule {
        enabled: true,
        ttl: None,
        scope: None,
        any_temperature: false,
    };
    let principal = support::alice();
    let headers = http::HeaderMap::new();
    let meta = Meta {
        provider: "up".into(),
        upstream_model: "m".into(),
        prompt_tokens: 30,
        completion_tokens: 200,
        cost: 0.001,
    };
    for (label, words) in [("small request", 20), ("4 KB request", 500)] {
        let raw = request(words);
        let body: Map<String, Value> = serde_json::from_slice(&raw).unwrap();
        let lookup = || match cache
            .decide(
                Some(&rule),
                &headers,
                &principal,
                Endpoint::Chat,
                "chat",
                &body,
            )
            .unwrap()
        {
            Decision::Lookup { key, ttl, labels } => (key, ttl, labels),
            _ => panic!("cacheable"),
        };
        let (key, ttl, labels) = lookup();
        cache.put(
            key,
            &labels,
            Entry {
                meta: meta.clone(),
                body: answer(),
            },
            ttl,
        );
        let hit = |stream: bool| {
            let (key, _, labels) = lookup();
            let entry = rt.block_on(cache.get(&key, &labels))?;
            if stream {
                tollgate::cache::to_sse(&entry.body, true, true)
            } else {
                Some(entry.body.clone())
            }
        };
        c.bench_function(&format!("baseline: parse {label} ({} B)", raw.len()), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<Map<String, Value>>(black_box(
                    &raw,
                )))
            })
        });
        c.bench_function(&format!("hit/json/{label}"), |b| {
            b.iter(|| black_box(hit(false)).unwrap())
        });
        c.bench_function(&format!("hit/sse replay/{label}"), |b| {
            b.iter(|| black_box(hit(true)).unwrap())
        });
    }
    let stored = answer();
    c.bench_function(&format!("store/put {} B answer", stored.len()), |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            cache.put(
                key,
                &Default::default(),
                Entry {
                    meta: meta.clone(),
                    body: stored.clone(),
                },
                Duration::from_secs(60),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
