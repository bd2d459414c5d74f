//! Routing decision cost: `VirtualModel::plan` for each strategy over three
//! targets, and the health bookkeeping it reads (target: ≤ 5 µs a decision).
//! Run: `cargo bench -p tollgate --bench routing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::snapshot::Snapshot;

const CONFIG: &str = r#"
server: { listen: "127.0.0.1:0", admin_listen: "127.0.0.1:0" }
providers: [{ name: p, kind: mock }]
models: [{ name: m1, provider: p }, { name: m2, provider: p }, { name: m3, provider: p }]
virtual_models:
  - name: prio
    targets: [{ model: m1 }, { model: m2, priority: 1 }, { model: m3, priority: 2 }]
  - name: weighted
    strategy: weighted
    targets: [{ model: m1, weight: 60 }, { model: m2, weight: 30 }, { model: m3, weight: 10 }]
  - name: sticky
    strategy: weighted
    sticky: { header: x-session-id }
    targets: [{ model: m1, weight: 60 }, { model: m2, weight: 30 }, { model: m3, weight: 10 }]
  - name: latency
    strategy: latency
    targets: [{ model: m1 }, { model: m2 }, { model: m3 }]
"#;

fn bench(c: &mut Criterion) {
    let cfg = tollgate::config::parse_str(CONFIG).unwrap();
    let snap = Snapshot::build(cfg, None).unwrap();
    // Full sample rings, so every decision scans real data.
    for vm in snap.virtual_models.values() {
        for (i, t) in vm.targets.iter().enumerate() {
            for s in 0..100u64 {
                t.stats.record_latency(s * 10, 1000.0 * (i as f64 + 1.0));
            }
            t.stats.record_failure(500);
        }
    }
    let now = 1_000;
    for name in ["prio", "weighted", "sticky", "latency"] {
        let vm = snap.virtual_models.get(name).unwrap().clone();
        let key = (name == "sticky").then_some("session-42");
        c.bench_function(&format!("plan/{name}/3 targets"), |b| {
            let mut roll = 0u64;
            b.iter(|| {
                roll = roll.wrapping_add(0x9e37_79b9_7f4a_7c15);
                black_box(vm.plan(black_box(now), key, roll))
            })
        });
    }
    let t = &snap.virtual_models.get("prio").unwrap().targets[0];
    c.bench_function("stats/record_failure", |b| {
        b.iter(|| t.stats.record_failure(black_box(now)))
    });
    c.bench_function("stats/healthy", |b| {
        b.iter(|| black_box(t.stats.healthy(black_box(now))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
