//! Response-cache hit path: what phase 7 adds to a request that is answered
//! from the cache — the canonical key (SHA-256 over the parsed body), the
//! in-process lookup, and the answer as JSON or replayed as SSE — next to
//! the parse of the same body that every request pays anyway (target: the
//! hit path ≤ 50 µs). Run: `cargo bench -p tollgate --bench cache`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use tollgate::auth::{AuthMethod, Principal};
use tollgate::cache::{Cache, Decision, Entry, Meta};
use tollgate::config::{CacheConfig, CacheRule, Endpoint, PrincipalKind};

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

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let cache = Cache::new(&CacheConfig::default()).unwrap();
    let rule = CacheRule {
        enabled: true,
        ttl: None,
        scope: None,
        any_temperature: false,
    };
    let principal = Principal {
        subject: "alice".into(),
        kind: PrincipalKind::User,
        groups: Arc::from(vec!["eng".to_string()]),
        tenant: Some("acme".into()),
        key_id: Some("k1".into()),
        issuer: None,
        method: AuthMethod::ApiKey,
    };
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
            Decision::Lookup { key, ttl } => (key, ttl),
            _ => panic!("cacheable"),
        };
        let (key, ttl) = lookup();
        cache.put(
            key,
            Entry {
                meta: meta.clone(),
                body: answer(),
            },
            ttl,
        );
        let hit = |stream: bool| {
            let (key, _) = lookup();
            let entry = rt.block_on(cache.get(&key))?;
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
