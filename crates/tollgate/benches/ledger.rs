//! Ledger throughput, end to end through the writer (queue → batches of
//! 512 → store): 20,000 records per iteration into a SQLite file and into
//! a PostgreSQL server started here (Debian's binaries, as in the tests).
//! `cargo bench -p tollgate --bench ledger -- --warm-up-time 1 --measurement-time 3`
// A bench times real work on the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "../tests/it/common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::config::LedgerConfig;
use tollgate::ledger::{Ledger, UsageRecord};
use tollgate::store::Store;

const N: usize = 20_000;

fn record(i: usize) -> UsageRecord {
    UsageRecord {
        ts_ms: tollgate::store::now_ms(),
        request_id: format!("req-{i}"),
        principal: format!("user-{}", i % 50),
        key_id: "bench".into(),
        tenant: "acme".into(),
        auth_method: "api_key".into(),
        endpoint: "chat".into(),
        requested_model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        upstream_model: "gpt-4o-mini-2024-07-18".into(),
        prompt_tokens: 120,
        completion_tokens: 48,
        cost: 0.000_123,
        status: 200,
        latency_ms: 412.5,
        ttft_ms: Some(120.0),
        attempts: r#"[{"target":"openai/gpt-4o-mini","status":200,"error":""}]"#.into(),
        guardrails: "[]".into(),
        groups: r#"["eng"]"#.into(),
        ..Default::default()
    }
}

fn run(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(Store::open(url)).unwrap();
    let cfg = LedgerConfig {
        queue_capacity: N * 2,
        ..Default::default()
    };
    let records: Vec<UsageRecord> = (0..N).map(record).collect();
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10).throughput(Throughput::Elements(N as u64));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = records.clone();
                total += rt.block_on(async {
                    let ledger = Ledger::start(store.clone(), &cfg, None).await;
                    let h = ledger.handle();
                    let t = Instant::now();
                    for r in batch {
                        assert!(h.record(r));
                    }
                    ledger.close().await; // returns once everything is written
                    t.elapsed()
                });
            }
            total
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    run(c, "sqlite_20k_records", &url);
}

fn postgres(c: &mut Criterion) {
    let server = pg::Pg::start();
    run(c, "postgres_20k_records", &server.url());
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
