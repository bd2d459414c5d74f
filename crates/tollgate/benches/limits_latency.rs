//! Latency a Redis-counted limit adds to a request (target: ≤ 0.3 ms p99 on
//! loopback): `Limits::admit` for five caps in the Redis store — the one
//! round trip a request waits for (settlement goes later, off the request
//! path) — timed call by call, against a bare `PING` over the same kind of
//! connection (redis-rs, multiplexed) in the same run, interleaved so that
//! both see the same machine. A plain harness (criterion reports means, not
//! tails): `bench/limits_latency.sh` starts `redis-server` on its own core
//! and runs this with `TOLLGATE_BENCH_REDIS=redis://…`; without it the bench
//! says so and exits.
//!
//! Env: `REQUESTS` (default 20000 of each), `CONCURRENCY` (callers in
//! flight at once, default 1; >1 measures under load on one connection),
//! `WORKERS` (runtime worker threads; default one per core the process may
//! use, as in the gateway).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods // a bench times real work on the real clock
)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::config::LimitsConfig;
use tollgate::limits::Limits;

fn rules(url: &str) -> String {
    format!(
        r#"
redis: {{ url: "{url}", timeout: 1s, prefix: "tgbench{}" }}
rules:
  - {{ name: key-rps, per: [key], requests_per_second: 1000000000, store: redis }}
  - {{ name: user-rpm, per: [principal], requests_per_minute: 1000000000, store: redis }}
  - {{ name: team-tpm, per: [group], tokens_per_minute: 1000000000000, store: redis }}
  - {{ name: tenant-inflight, per: [tenant], concurrent: 1000000, store: redis }}
  - {{ name: model-budget, per: [model], cost_per_day: 1000000000, store: redis }}
"#,
        std::process::id()
    )
}

/// p-th percentile of sorted samples (nearest rank).
fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e6
}

fn summary(name: &str, mut s: Vec<Duration>) -> [f64; 4] {
    s.sort_unstable();
    let v = [pct(&s, 50.0), pct(&s, 90.0), pct(&s, 99.0), pct(&s, 99.9)];
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        s.len(),
        v[0],
        v[1],
        v[2],
        v[3],
        s.last().unwrap().as_secs_f64() * 1e6
    );
    v
}

fn main() {
    let Ok(url) = std::env::var("TOLLGATE_BENCH_REDIS") else {
        println!("limits_latency: set TOLLGATE_BENCH_REDIS=redis://host:port/ (bench/limits_latency.sh does)");
        return;
    };
    let n: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let conc: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    // Like the gateway (`tollgate serve`): a multi-thread runtime with one
    // worker per core the process may use (tokio's default,
    // `available_parallelism`, which follows `taskset`: one worker on
    // BENCH_CORE). Two workers on one core made every hand-over between
    // tasks a context switch, a tail the gateway does not have.
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()) {
        rt.worker_threads(w);
    }
    let rt = rt.enable_all().build().unwrap();
    rt.block_on(run(url, n, conc));
}

async fn run(url: String, n: usize, conc: usize) {
    let cfg: LimitsConfig = serde_yaml_ng::from_str(&rules(&url)).unwrap();
    let limits = Arc::new(Limits::build(&cfg, None).unwrap());
    let client = redis::Client::open(url.as_str()).unwrap();
    let ping = client.get_multiplexed_async_connection().await.unwrap();
    let principal = Arc::new(support::alice());
    let demand = support::demand();
    // One caller: alternately one admission and one PING, each timed.
    let caller = |count: usize| {
        let (limits, principal, mut ping) = (limits.clone(), principal.clone(), ping.clone());
        async move {
            let (mut adm, mut pong) = (Vec::with_capacity(count), Vec::with_capacity(count));
            for _ in 0..count {
                let t = Instant::now();
                let a = limits.admit(&principal, "gpt-4o", demand).await.unwrap();
                adm.push(t.elapsed());
                std::hint::black_box(a.settle(100, 200, 0.0023));
                let t = Instant::now();
                let _: String = redis::cmd("PING").query_async(&mut ping).await.unwrap();
                pong.push(t.elapsed());
            }
            (adm, pong)
        }
    };
    // Warm-up: connections open, scripts loaded, counters created.
    caller(2_000).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc).map(|_| tokio::spawn(caller(n / conc))).collect();
    let (mut adm, mut pong) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, p) = t.await.unwrap();
        adm.extend(a);
        pong.extend(p);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("| call | samples | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let a = summary("`Limits::admit`, five Redis caps (one script call)", adm);
    let p = summary("bare `PING`, same kind of connection", pong);
    println!();
    println!(
        "Concurrency {conc}, {:.0} admissions/s alongside as many PINGs. Admission p99 **{:.0} µs** (target ≤ 300 µs); above the bare round trip: p50 +{:.0} µs, p99 +{:.0} µs.",
        n as f64 / secs,
        a[2],
        a[0] - p[0],
        a[2] - p[2]
    );
}
