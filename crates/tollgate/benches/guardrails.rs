//! Guardrail cost: scanning 10 KB of mixed text with every built-in detector
//! (target ≤ 100 µs on one core), and one streamed chunk through the
//! hold-back scanner with masking. Run: `cargo bench -p tollgate --bench guardrails`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::guardrails::{Builtin, DetectorSet, DetectorSpec, StreamScanner};

fn text_10kb() -> String {
    let para = "The quarterly report covers revenue, churn and the roadmap for the next release. \
                Customer feedback was positive overall; support tickets dropped by a third after \
                the new onboarding flow shipped in version 2.4.1. Contact jane.doe@example.com or \
                call +1-202-555-0143 for details; the card on file ends in 4111 1111 1111 1111. ";
    let mut s = String::new();
    while s.len() < 10 * 1024 {
        s.push_str(para);
    }
    s.truncate(10 * 1024);
    s
}

fn bench(c: &mut Criterion) {
    let set = DetectorSet::new(&DetectorSpec {
        builtins: Builtin::ALL.to_vec(),
        ..DetectorSpec::default()
    })
    .unwrap();
    let text = text_10kb();
    c.bench_function("scan/10KB/all builtins", |b| {
        b.iter(|| black_box(set.scan(black_box(&text))))
    });
    let clean = "plain prose without any sensitive values in it at all. ".repeat(190);
    c.bench_function("scan/10KB/all builtins, nothing found", |b| {
        b.iter(|| black_box(set.scan(black_box(&clean))))
    });
    for b in Builtin::ALL {
        let one = DetectorSet::new(&DetectorSpec {
            builtins: vec![b],
            ..DetectorSpec::default()
        })
        .unwrap();
        c.bench_function(&format!("scan/10KB/{b:?}"), |bench| {
            bench.iter(|| black_box(one.scan(black_box(&text))))
        });
    }
    let set = Arc::new(set);
    let chunk = " and the card 4111 1111";
    c.bench_function("stream/one chunk, 128-char window, masking", |b| {
        let mut s = StreamScanner::new(set.clone(), 128, true);
        b.iter(|| black_box(s.push(black_box(chunk))))
    });
    // The 10 KB text as a model streams it: ~4-byte deltas, masked.
    let deltas: Vec<&str> = {
        let mut v = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + 4).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            v.push(&text[at..end]);
            at = end;
        }
        v
    };
    c.bench_function(
        "stream/10KB in 4-byte deltas, 128-char window, masking",
        |b| {
            b.iter(|| {
                let mut s = StreamScanner::new(set.clone(), 128, true);
                let mut n = 0;
                for d in &deltas {
                    n += s.push(d).emit.len();
                }
                n += s.finish().emit.len();
                black_box(n)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
