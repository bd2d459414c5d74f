//! Single flight: concurrent identical misses (same cache key) share one
//! upstream call. The first miss leads (its request goes upstream as
//! usual); the others follow, waiting until the leader's answer is stored
//! (`Cache::put` hands it to them) or the leader ends without one (then
//! each follower calls upstream itself, uncoalesced). Only non-streamed
//! requests lead or follow: a streamed follower would get its first byte
//! only when the whole answer is in (docs/cache.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::entry::Entry;
use super::key::Key;

type Slot = watch::Sender<Option<Arc<Entry>>>;

/// The misses in flight, by key.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<Key, Slot>>,
}

/// What a miss does: lead (and hold the flight until it ends) or follow.
pub enum Join {
    Leader(Flight),
    Follower(Waiter),
}

/// The leader's hold on its key: dropped (the request ended or its answer
/// was stored), it wakes the followers.
pub struct Flight {
    flights: Arc<Flights>,
    key: Key,
    tx: Slot,
}

/// A follower's wait for the leader's answer.
pub struct Waiter(watch::Receiver<Option<Arc<Entry>>>);

impl Flights {
    pub(super) fn join(self: &Arc<Self>, key: Key) -> Join {
        let Ok(mut map) = self.map.lock() else {
            // A poisoned lock: no coalescing (each miss goes upstream).
            let (tx, _) = watch::channel(None);
            return Join::Leader(Flight {
                flights: Arc::new(Flights::default()),
                key,
                tx,
            });
        };
        if let Some(tx) = map.get(&key) {
            return Join::Follower(Waiter(tx.subscribe()));
        }
        let (tx, _) = watch::channel(None);
        map.insert(key, tx.clone());
        Join::Leader(Flight {
            flights: Arc::clone(self),
            key,
            tx,
        })
    }

    /// Hands a stored answer to the followers of `key`, if any.
    pub(super) fn deliver(&self, key: &Key, entry: &Arc<Entry>) {
        if let Ok(map) = self.map.lock() {
            if let Some(tx) = map.get(key) {
                tx.send_replace(Some(Arc::clone(entry)));
            }
        }
    }

    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut map) = self.flights.map.lock() {
            if map
                .get(&self.key)
                .is_some_and(|tx| tx.same_channel(&self.tx))
            {
                map.remove(&self.key);
            }
        }
    }
}

impl Waiter {
    /// The leader's answer, or `None` when it ended without one.
    pub async fn answer(mut self) -> Option<Arc<Entry>> {
        // `wait_for` looks at the current value before it waits, so an
        // answer handed over before the leader ended is seen; an error means
        // the leader ended without one.
        let answer = match self.0.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Meta;

    fn entry() -> Arc<Entry> {
        Arc::new(Entry {
            meta: Meta {
                provider: "p".into(),
                upstream_model: "m".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                cost: 0.0,
            },
            body: bytes::Bytes::from_static(b"{}"),
        })
    }

    #[tokio::test]
    async fn followers_get_the_leaders_answer_or_nothing() {
        let f = Arc::new(Flights::default());
        let Join::Leader(lead) = f.join([1; 32]) else {
            panic!("first leads")
        };
        let Join::Follower(w1) = f.join([1; 32]) else {
            panic!("second follows")
        };
        let Join::Leader(other) = f.join([2; 32]) else {
            panic!("other key leads")
        };
        let waiting = tokio::spawn(w1.answer());
        f.deliver(&[1; 32], &entry());
        drop(lead);
        assert!(waiting.await.unwrap().is_some());
        // Ended without an answer: the follower is told so.
        let Join::Follower(w2) = f.join([2; 32]) else {
            panic!("follows")
        };
        drop(other);
        assert!(w2.answer().await.is_none());
        assert_eq!(f.in_flight(), 0);
    }
}
