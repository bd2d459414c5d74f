//! Cost of a local limit check (target: ≤ 2 µs): `Limits::admit` alone
//! (`check_5_caps`) and with `Admission::settle` for a request charged by five caps on five
//! dimensions (key, group, principal, tenant, model), against a config
//! with no applicable rule. Run: `cargo bench -p tollgate --bench limits`.
// A bench times real work on the real clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "support/mod.rs"]
mod support;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::limits::Limits;

const RULES: &str = r#"
rules:
  - { name: key-rpm, per: [key], requests_per_minute: 1000000000 }
  - { name: team-tpm, per: [group], tokens_per_minute: 1000000000000 }
  - { name: user-inflight, per: [principal], concurrent: 1000000 }
  - { name: tenant-budget, per: [tenant], cost_per_day: 1000000000 }
  - { name: model-rps, per: [model], requests_per_second: 1000000000 }
"#;

/// Local checks never wait: one poll finishes them.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a local check waited"),
    }
}

fn bench(c: &mut Criterion) {
    let five: tollgate::config::LimitsConfig = serde_yaml_ng::from_str(RULES).unwrap();
    let limits = Limits::build(&five, None).unwrap();
    let none = Limits::build(&Default::default(), None).unwrap();
    let alice = support::alice();
    let demand = support::demand();
    let mut g = c.benchmark_group("limits");
    g.bench_function("admit_settle_5_caps", |b| {
        b.iter(|| {
            let adm = now(limits.admit(black_box(&alice), "gpt-4o", demand)).unwrap();
            black_box(adm.settle(100, 200, 0.0023))
        })
    });
    // The check alone: admission timed, its settlement done off the clock.
    g.bench_function("check_5_caps", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                let adm = now(limits.admit(black_box(&alice), "gpt-4o", demand)).unwrap();
                total += t.elapsed();
                black_box(adm.settle(100, 200, 0.0023));
            }
            total
        })
    });
    g.bench_function("admit_settle_no_rules", |b| {
        b.iter(|| {
            let adm = now(none.admit(black_box(&alice), "gpt-4o", demand)).unwrap();
            black_box(adm.settle(100, 200, 0.0023))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
