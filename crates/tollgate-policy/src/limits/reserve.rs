//! Reserving on a request's counters, all or nothing: this node's counters
//! first, then Redis in one script call (shared with concurrent requests,
//! `admit_batch.rs`); a refusal anywhere gives back what was taken.

use smallvec::SmallVec;

use super::charge::Charge;
use super::redis::{self, RedisStore};
use super::templates::Template;
use super::{admit_histogram, LimitError, LocalStore, Window};
use tollgate_config::StoreFailure;

/// `(charge index, amount)` pairs.
pub(super) type Sel = SmallVec<[(usize, f64); 8]>;

/// Reserves `amount` on `charges[i]` for each `(i, amount)` of `sel`.
pub(super) async fn reserve(
    local: &LocalStore,
    redis: Option<&RedisStore>,
    tpl: &[Template],
    charges: &mut [Charge],
    sel: &[(usize, f64)],
    now: i64,
) -> Result<(), LimitError> {
    // Inline for the usual handful of counters: no allocation per request.
    let mut done: Sel = SmallVec::new();
    let rollback = |charges: &[Charge], done: &[(usize, f64)]| {
        for &(d, amount) in done {
            charges[d].local_add(&tpl[d], local, -amount);
        }
    };
    let mut remote: Sel = SmallVec::new();
    for &(i, amount) in sel {
        let (t, c) = (&tpl[i], &mut charges[i]);
        if c.on_redis(t) {
            remote.push((i, amount));
            continue;
        }
        if let Err(e) = c.take_here(t, local, amount, now) {
            rollback(charges, &done);
            return Err(e);
        }
        done.push((i, amount));
    }
    if remote.is_empty() {
        commit(tpl, charges, sel);
        return Ok(());
    }
    let Some(store) = redis else {
        rollback(charges, &done);
        return Err(LimitError::Unavailable {
            rule: tpl[remote[0].0].rule.name.to_string(),
        });
    };
    let items: Vec<redis::Item> = remote
        .iter()
        .map(|&(i, amount)| {
            let (t, c) = (&tpl[i], &charges[i]);
            redis::Item {
                key: store.key(&t.key, c.window),
                amount,
                max: t.cap().max,
                ttl_ms: match t.cap().window {
                    Window::None => -t.cap().window.ttl_ms(c.window, now),
                    w => w.ttl_ms(c.window, now),
                },
                enforce: t.enforce(),
            }
        })
        .collect();
    let started = tokio::time::Instant::now();
    let answer = store.admit(items).await;
    admit_histogram().record(started.elapsed());
    match answer {
        Ok((0, used)) => {
            for (&(i, amount), before) in remote.iter().zip(used) {
                let c = &mut charges[i];
                c.used_after = before + amount;
                c.shadow_hit |= c.used_after > tpl[i].cap().max;
            }
            commit(tpl, charges, sel);
            Ok(())
        }
        Ok((failed, used)) => {
            let (i, amount) = remote.get(failed - 1).copied().unwrap_or(remote[0]);
            let before = used.get(failed - 1).copied().unwrap_or(0.0);
            let err = LimitError::exceeded(&tpl[i], charges[i].window, before, amount, now);
            rollback(charges, &done);
            Err(err)
        }
        Err(e) => {
            metrics::counter!("tollgate_limit_store_errors_total", "op" => "admit").increment(1);
            for &(i, _) in &remote {
                if tpl[i].rule.on_store_error == StoreFailure::Closed {
                    tracing::error!(rule = %tpl[i].rule.name, error = %e,
                        "LIMIT STORE DOWN: rejecting (on_store_error: closed)");
                    rollback(charges, &done);
                    return Err(LimitError::Unavailable {
                        rule: tpl[i].rule.name.to_string(),
                    });
                }
            }
            tracing::warn!(error = %e, rules = remote.len(),
                "LIMIT STORE DOWN: counting on this node only (on_store_error: open)");
            for &(i, amount) in &remote {
                let (t, c) = (&tpl[i], &mut charges[i]);
                c.fallback = true;
                if let Err(e) = c.take_here(t, local, amount, now) {
                    rollback(charges, &done);
                    return Err(e);
                }
                done.push((i, amount));
            }
            commit(tpl, charges, sel);
            Ok(())
        }
    }
}

fn commit(tpl: &[Template], charges: &mut [Charge], sel: &[(usize, f64)]) {
    for &(i, amount) in sel {
        let c = &mut charges[i];
        c.reserved += amount;
        let (t, cap) = (&tpl[i], tpl[i].cap());
        if let (Some(at), Some(alerts)) = (cap.alert_at, &t.rule.alerts) {
            // The reservation that takes the counter from below the
            // threshold to it or past it: exactly one per window and node.
            if c.used_after - amount < at && c.used_after >= at {
                alerts.fire(
                    &t.key,
                    c.window,
                    super::alerts::Crossing {
                        rule: t.rule.name.clone(),
                        cap: cap.label,
                        partition: t.key[cap.prefix.len()..].to_string(),
                        window: cap.window.as_str(),
                        window_ends_ms: (cap.window != Window::None)
                            .then(|| cap.window.end_ms(c.window)),
                        percent: if cap.max > 0.0 {
                            at / cap.max * 100.0
                        } else {
                            100.0
                        },
                        limit: cap.max,
                        used: c.used_after,
                    },
                );
            }
        }
        if c.shadow_hit && !tpl[i].enforce() {
            tracing::info!(rule = %tpl[i].rule.name, cap = tpl[i].cap().label,
                counter = %tpl[i].key, "shadow limit would have rejected this request");
        }
    }
}

pub(super) fn record_decision(t: &Template, decision: &'static str) {
    if decision == "allowed" {
        t.cap().allowed(&t.rule.name).increment(1);
        return;
    }
    metrics::counter!("tollgate_limit_decisions_total", "rule" => t.rule.name.to_string(),
        "cap" => t.cap().label, "decision" => decision)
    .increment(1);
}
