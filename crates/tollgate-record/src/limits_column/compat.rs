//! Every form the `limits` column has had, read back: the arrays written
//! now (`limits.rs`); before 2026-12-05, objects
//! `{"rule","cap","partition","window","decision","charged"}`; before
//! 2026-12-04, objects with `counter` (the full key `rule:cap:partition`)
//! and `store` in place of `partition`. Only what budgets need is read:
//! the spend of each budget counter charged on this node. Used for rows
//! and spooled records written by earlier builds; records of this build
//! hand over their typed decisions instead.

use serde_json::Value;
use tollgate_core::limit_decision::CounterSpend;

/// Calls `f` for each budget decision in `text` that charged this node's
/// counter (not a refusal, not one counted in Redis).
pub(super) fn budget_spend(text: &str, mut f: impl FnMut(CounterSpend)) {
    // Most rows charge no budget: skip the parse.
    if !text.contains("cost_per_") {
        return;
    }
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    for d in &list {
        if let Some(s) = read(d).filter(|s| s.cap.starts_with("cost_per_")) {
            f(s);
        }
    }
}

fn read(d: &Value) -> Option<CounterSpend> {
    if let Value::Array(a) = d {
        // Without partition and window (an allowed request or token
        // count) there is nothing to restore.
        let [rule, cap, decision, charged, part, window] = a.as_slice() else {
            return None;
        };
        if matches!(decision.as_str(), Some("rejected" | "unavailable")) {
            return None;
        }
        return Some(CounterSpend {
            rule: rule.as_str()?.to_string(),
            cap: cap.as_str()?.to_string(),
            partition: part.as_str()?.to_string(),
            window: window.as_i64()?,
            spent: charged.as_f64()?,
        });
    }
    let (rule, cap) = (d["rule"].as_str()?, d["cap"].as_str()?);
    let here = match d["store"].as_str() {
        Some(store) => store == "local",
        None => d["decision"].as_str() != Some("rejected"),
    };
    if !here {
        return None;
    }
    let partition = match (d["partition"].as_str(), d["counter"].as_str()) {
        (Some(part), _) => part,
        (None, Some(key)) => key
            .strip_prefix(rule)?
            .strip_prefix(':')?
            .strip_prefix(cap)?
            .strip_prefix(':')?,
        (None, None) => return None,
    };
    Some(CounterSpend {
        rule: rule.to_string(),
        cap: cap.to_string(),
        partition: partition.to_string(),
        window: d["window"].as_i64()?,
        spent: d["charged"].as_f64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spend(v: Value) -> Vec<CounterSpend> {
        let mut out = Vec::new();
        budget_spend(&v.to_string(), |s| out.push(s));
        out
    }

    #[test]
    fn every_form_reads_the_same_spend() {
        let want = CounterSpend {
            rule: "b\"x".into(),
            cap: "cost_per_day".into(),
            partition: "principal=a|".into(),
            window: 20427,
            spent: 0.7,
        };
        // Now: arrays.
        let now = json!([
            ["b\"x", "requests_per_minute", "allowed", 1],
            [
                "b\"x",
                "cost_per_day",
                "allowed",
                0.7,
                "principal=a|",
                20427
            ],
            ["b\"x", "cost_per_day", "rejected", 0, "principal=a|", 20427],
        ]);
        assert_eq!(spend(now), std::slice::from_ref(&want));
        // Before 2026-12-05: objects with `partition`.
        let objects = json!([
            {"rule": "b\"x", "cap": "cost_per_day", "partition": "principal=a|",
             "window": 20427, "decision": "allowed", "charged": 0.7},
            {"rule": "b\"x", "cap": "cost_per_day", "partition": "principal=a|",
             "window": 20427, "decision": "rejected", "charged": 0},
        ]);
        assert_eq!(spend(objects), std::slice::from_ref(&want));
        // Before 2026-12-04: the full counter key and the store; one
        // counted in Redis is not this node's.
        let oldest = json!([
            {"rule": "b\"x", "cap": "cost_per_day", "counter": "b\"x:cost_per_day:principal=a|",
             "window": 20427, "store": "local", "decision": "allowed", "charged": 0.7},
            {"rule": "b\"x", "cap": "cost_per_day", "counter": "b\"x:cost_per_day:principal=a|",
             "window": 20427, "store": "redis", "decision": "allowed", "charged": 0.5},
        ]);
        assert_eq!(spend(oldest), [want]);
        assert!(spend(json!([["r", "cost_per_day", "allowed", 1, "p"]])).is_empty());
        assert!(spend(json!("not a list")).is_empty());
    }
}
