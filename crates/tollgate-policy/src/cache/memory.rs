//! In-process backend: moka, bounded by the total size of the answers
//! (weigher), each entry with its own time to live. Expiry is also checked
//! on Tokio's clock at lookup, so tests can move time with a paused clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::entry::Entry;
use super::key::Key;
use super::purge::{Labels, PurgeFilter};

#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    labels: Arc<Labels>,
    ttl: Duration,
    expires: tokio::time::Instant,
}

struct PerEntry;

impl Expiry<Key, Slot> for PerEntry {
    fn expire_after_create(&self, _: &Key, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }
}

pub(super) struct Memory {
    cache: Cache<Key, Slot>,
}

impl Memory {
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, s: &Slot| s.entry.weight())
                .expire_after(PerEntry)
                .build(),
        }
    }

    pub(super) fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let slot = self.cache.get(key)?;
        if slot.expires <= tokio::time::Instant::now() {
            self.cache.invalidate(key);
            return None;
        }
        Some(slot.entry)
    }

    pub(super) fn put(&self, key: Key, labels: &Labels, entry: Arc<Entry>, ttl: Duration) {
        let expires = tokio::time::Instant::now() + ttl;
        self.cache.insert(
            key,
            Slot {
                entry,
                labels: Arc::new(labels.clone()),
                ttl,
                expires,
            },
        );
    }

    /// Removes the entries `filter` matches (one pass over the cache).
    pub(super) fn purge(&self, filter: &PurgeFilter) -> u64 {
        let mut n = 0;
        for (key, slot) in &self.cache {
            if filter.matches(&key, &slot.labels) {
                self.cache.invalidate(&*key);
                n += 1;
            }
        }
        n
    }

    /// Bytes held (after pending maintenance).
    #[cfg(test)]
    pub(super) fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Meta;

    fn entry(n: usize) -> Arc<Entry> {
        Arc::new(Entry {
            meta: Meta {
                provider: "p".into(),
                upstream_model: "m".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                cost: 0.0,
            },
            body: bytes::Bytes::from(vec![b'x'; n]),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_the_paused_clock() {
        let m = Memory::new(1 << 20);
        m.put(
            [1; 32],
            &Labels::default(),
            entry(10),
            Duration::from_secs(60),
        );
        m.put(
            [2; 32],
            &Labels::default(),
            entry(10),
            Duration::from_secs(600),
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(m.get(&[1; 32]).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(m.get(&[1; 32]).is_none(), "expired after its TTL");
        assert!(m.get(&[2; 32]).is_some(), "a longer TTL still holds");
    }

    #[test]
    fn bounded_by_bytes() {
        let m = Memory::new(10_000);
        for i in 0..50u8 {
            m.put(
                [i; 32],
                &Labels::default(),
                entry(1_000),
                Duration::from_secs(60),
            );
        }
        assert!(m.weighted_size() <= 10_000, "{}", m.weighted_size());
    }

    #[test]
    fn purge_removes_only_matching_entries() {
        let m = Memory::new(1 << 20);
        let l = |model: &str, tenant: &str| Labels {
            model: model.into(),
            tenant: tenant.into(),
            namespace: String::new(),
        };
        m.put([1; 32], &l("a", "t1"), entry(1), Duration::from_secs(60));
        m.put([2; 32], &l("a", "t2"), entry(1), Duration::from_secs(60));
        m.put([3; 32], &l("b", "t1"), entry(1), Duration::from_secs(60));
        let by_model = PurgeFilter {
            model: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(m.purge(&by_model), 2);
        assert!(m.get(&[1; 32]).is_none() && m.get(&[2; 32]).is_none());
        assert!(m.get(&[3; 32]).is_some());
    }
}
