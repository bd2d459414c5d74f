//! What one request has done on one counter: its window, what it reserved,
//! where (this node or Redis) and the decision to record. Shared by
//! admission (`admission.rs`) and reservation (`reserve.rs`), below both.

use super::local::{Counter, LocalStore};
use super::templates::Template;
use super::LimitError;
use tollgate_config::LimitStore;
use tollgate_core::limit_decision::Decision;

/// What one request has done on one counter (the counter is the template
/// of the same index).
#[derive(Default)]
pub(super) struct Charge {
    pub window: i64,
    /// What this request has added to the counter so far.
    pub reserved: f64,
    /// The counter after the latest reservation (for headers).
    pub used_after: f64,
    /// Redis was unreachable: charged on this node instead.
    pub fallback: bool,
    /// Shadow mode: this request would have been rejected.
    pub shadow_hit: bool,
    /// This node's counter for a Redis rule that fell back, once looked up.
    fallback_counter: Option<Counter>,
}

impl Charge {
    pub(super) fn new(window: i64) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// Reserves `amount` on this node's counter, or says which cap refuses.
    pub(super) fn take_here(
        &mut self,
        t: &Template,
        local: &LocalStore,
        amount: f64,
        now: i64,
    ) -> Result<(), LimitError> {
        let counter = match &t.counter {
            Some(c) => c,
            None => self
                .fallback_counter
                .get_or_insert_with(|| local.counter(&t.key)),
        };
        let (ok, before) = counter.try_add(self.window, amount, t.cap().max, t.enforce());
        if !ok {
            return Err(LimitError::exceeded(t, self.window, before, amount, now));
        }
        self.used_after = before + amount;
        self.shadow_hit |= self.used_after > t.cap().max;
        Ok(())
    }

    /// Adds `delta` to this node's counter.
    pub(super) fn local_add(&self, t: &Template, local: &LocalStore, delta: f64) {
        match t.counter.as_ref().or(self.fallback_counter.as_ref()) {
            Some(c) => c.add(self.window, delta),
            None => local.add(&t.key, self.window, delta),
        }
    }

    pub(super) fn on_redis(&self, t: &Template) -> bool {
        t.rule.store == LimitStore::Redis && !self.fallback
    }

    pub(super) fn decision(&self) -> Decision {
        match (self.shadow_hit, self.fallback) {
            (true, _) => Decision::ShadowRejected,
            (false, true) => Decision::FallbackLocal,
            _ => Decision::Allowed,
        }
    }
}
