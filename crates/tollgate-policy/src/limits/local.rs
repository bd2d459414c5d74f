//! This node's counters: a sharded map (`dashmap`) of small per-counter
//! cells. A check touches only the cells of the counters it charges, so
//! requests for different keys never contend and nothing holds a global
//! lock. Each cell is a tiny mutex over (window id, amount used): the
//! check-and-add of one counter is atomic, which makes a cap exact.

use std::sync::{Arc, Mutex};

use dashmap::DashMap;

#[derive(Default)]
struct Cell {
    window: i64,
    used: f64,
}

/// foldhash instead of SipHash: the key is hashed on every check and settle
/// (SipHash was ~2 % of a limited request's instructions); its per-process
/// random seed still keeps caller-chosen keys from flooding one shard.
#[derive(Default)]
pub struct LocalStore {
    counters: DashMap<String, Arc<Mutex<Cell>>, foldhash::fast::RandomState>,
}

/// One counter's cell, kept by the charge that looked it up: admission,
/// settlement and stream top-ups then skip the map (counters are never
/// removed, so the handle stays the map's cell).
#[derive(Clone)]
pub struct Counter(Arc<Mutex<Cell>>);

impl Counter {
    /// Adds `amount` for window `window` when that keeps the counter at or
    /// under `max` (or always when `enforce` is false). Returns whether it
    /// was added and the amount used before.
    pub fn try_add(&self, window: i64, amount: f64, max: f64, enforce: bool) -> (bool, f64) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.window != window {
            if c.window > window {
                // A late reservation for a window already gone: count it now.
                return (true, c.used);
            }
            c.window = window;
            c.used = 0.0;
        }
        let before = c.used;
        if enforce && before + amount > max {
            return (false, before);
        }
        c.used += amount;
        (true, before)
    }

    /// Adds `delta` (a settlement correction, possibly negative) to window
    /// `window`; a correction for a window already gone is dropped.
    pub fn add(&self, window: i64, delta: f64) {
        if delta == 0.0 {
            return;
        }
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.window < window {
            c.window = window;
            c.used = 0.0;
        } else if c.window > window && delta < 0.0 {
            return;
        }
        c.used = (c.used + delta).max(if window == 0 { 0.0 } else { f64::MIN });
    }
}

impl Counter {
    /// The amount used in window `window` (0 when the counter is elsewhere).
    pub fn used(&self, window: i64) -> f64 {
        let c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.window == window {
            c.used
        } else {
            0.0
        }
    }
}

impl LocalStore {
    /// Every counter: (key, window, used), for the admin view.
    pub fn entries(&self) -> Vec<(String, i64, f64)> {
        self.counters
            .iter()
            .map(|e| {
                let c = e.value().lock().unwrap_or_else(|e| e.into_inner());
                (e.key().clone(), c.window, c.used)
            })
            .collect()
    }

    /// Sets the counter `key` back to zero in its window (the cell stays:
    /// charges hold it). Whether there was such a counter.
    pub fn reset(&self, key: &str) -> bool {
        self.counters.get(key).is_some_and(|cell| {
            cell.lock().unwrap_or_else(|e| e.into_inner()).used = 0.0;
            true
        })
    }

    /// The counter `key`, created when missing.
    pub fn counter(&self, key: &str) -> Counter {
        if let Some(c) = self.counters.get(key) {
            return Counter(c.clone());
        }
        Counter(self.counters.entry(key.to_string()).or_default().clone())
    }

    /// `Counter::try_add` on the counter `key`.
    pub fn try_add(
        &self,
        key: &str,
        window: i64,
        amount: f64,
        max: f64,
        enforce: bool,
    ) -> (bool, f64) {
        self.counter(key).try_add(window, amount, max, enforce)
    }

    /// `Counter::add` on the counter `key`.
    pub fn add(&self, key: &str, window: i64, delta: f64) {
        if delta == 0.0 {
            return;
        }
        self.counter(key).add(window, delta);
    }

    /// The amount used in window `window` (0 when the counter is elsewhere).
    pub fn used(&self, key: &str, window: i64) -> f64 {
        self.counters.get(key).map_or(0.0, |cell| {
            let c = cell.lock().unwrap_or_else(|e| e.into_inner());
            if c.window == window {
                c.used
            } else {
                0.0
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_under_threads() {
        let store = Arc::new(LocalStore::default());
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if store.try_add("k", 7, 1.0, 1234.0, true).0 {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 1234);
        assert_eq!(store.used("k", 7), 1234.0);
        // A new window starts from zero; a stale correction is ignored.
        assert!(store.try_add("k", 8, 5.0, 10.0, true).0);
        store.add("k", 7, -100.0);
        assert_eq!(store.used("k", 8), 5.0);
    }
}
