//! The cost of revealing a named secret on the request path: one
//! AES-256-GCM open of a credential-sized value (the vault caches no
//! plaintext), against a lookup of a plaintext kept in memory (what a
//! cache would cost), and the lookup of a name the vault does not hold.
//! Run: `cargo bench --bench vault -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::vault::{Keyring, Vault};
use tollgate_core::secret::SecretSource;

fn bench(c: &mut Criterion) {
    let keyring = Keyring::from_keys(Some("k1".into()), vec![("k1".into(), [5; 32])]).unwrap();
    let value = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz0123"; // 48 bytes
    let sealed: Vec<_> = (0..100)
        .map(|i| keyring.seal(&format!("secret-{i}"), value, 1).unwrap())
        .collect();
    let vault = Vault::new(keyring);
    assert!(vault.install(sealed).is_empty());
    let plain: HashMap<String, Arc<str>> = (0..100)
        .map(|i| (format!("secret-{i}"), Arc::from(value)))
        .collect();
    let mut g = c.benchmark_group("vault");
    g.bench_function("reveal (decrypt)", |b| {
        b.iter(|| black_box(vault.reveal(black_box("secret-42")).unwrap()))
    });
    g.bench_function("plaintext map lookup (baseline)", |b| {
        b.iter(|| black_box(plain.get(black_box("secret-42")).cloned()))
    });
    g.bench_function("reveal (unknown name)", |b| {
        b.iter(|| black_box(vault.reveal(black_box("secret-x")).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
