//! Counters read and reset off the request path: a caller's own remaining
//! budget (`GET /v1/me/limits`) and the admin's listing and reset
//! (`GET` / `DELETE /admin/v1/limits`). Local counters are read from this
//! node's cells; Redis counters with `MGET`, found with `SCAN` and removed
//! with `DEL`. Only counters of the window in effect now are listed.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use tollgate_config::{LimitMode, LimitStore};

use super::redis::RedisStore;
use super::{CapKind, Limits, Rule, Window};
use crate::auth::Principal;

/// One counter as a caller or an admin sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CounterView {
    pub rule: Arc<str>,
    /// The config field, e.g. `tokens_per_day`.
    pub cap: &'static str,
    /// The counter's partition (`principal=alice|`; empty for one counter).
    pub partition: String,
    /// `local` or `redis`.
    pub store: &'static str,
    /// `enforce` or `shadow`.
    pub mode: &'static str,
    pub limit: f64,
    pub used: f64,
    pub remaining: f64,
    /// `second` … `month`, or `none` for requests in flight.
    pub window: &'static str,
    /// When the window ends (Unix ms); absent for requests in flight.
    pub resets_at_ms: Option<i64>,
}

/// Which counters an admin lists or resets: every one when all are `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CounterFilter<'a> {
    pub rule: Option<&'a str>,
    pub cap: Option<&'a str>,
    /// Exact partition, as listed (`principal=alice|`).
    pub partition: Option<&'a str>,
}

/// A Redis counter store that did not answer.
#[derive(Debug, thiserror::Error)]
#[error("the limit store (Redis) did not answer: {0}")]
pub struct InspectError(String);

impl Limits {
    /// The counters a caller charges for any of `targets` (model names), as
    /// they stand now, each once.
    pub async fn caller_view(
        &self,
        p: &Principal,
        targets: &[&str],
    ) -> Result<Vec<CounterView>, InspectError> {
        let now = tollgate_core::clock::wall_ms();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut remote: Vec<(usize, String)> = Vec::new();
        for target in targets {
            for t in self.counters(p, target).0.iter() {
                if !seen.insert(t.key.clone()) {
                    continue;
                }
                let cap = t.cap();
                let window = cap.window.id(now);
                let partition = t.key[cap.prefix.len()..].to_string();
                let used = match (&t.counter, &self.redis, t.rule.store) {
                    (_, Some(redis), LimitStore::Redis) => {
                        remote.push((out.len(), redis.key(&t.key, window)));
                        0.0
                    }
                    (Some(c), _, _) => c.used(window),
                    _ => 0.0,
                };
                out.push(view(&t.rule, cap, partition, window, used));
            }
        }
        if let Some(redis) = &self.redis {
            let keys: Vec<&str> = remote.iter().map(|(_, k)| k.as_str()).collect();
            for ((i, _), used) in remote.iter().zip(mget(redis, &keys).await?) {
                set_used(&mut out[*i], used);
            }
        }
        Ok(out)
    }

    /// Every counter of the current windows matching `f`: this node's and
    /// Redis's, in rule and cap order.
    pub async fn list_counters(
        &self,
        f: CounterFilter<'_>,
    ) -> Result<Vec<CounterView>, InspectError> {
        let now = tollgate_core::clock::wall_ms();
        let mut out = Vec::new();
        for (key, window, used) in self.local.entries() {
            if let Some((rule, cap, partition)) = self.find(&key, f) {
                if window == cap.window.id(now) && rule.store == LimitStore::Local {
                    out.push(view(rule, cap, partition.to_string(), window, used));
                }
            }
        }
        if let Some(redis) = &self.redis {
            let mut found = Vec::new();
            for key in redis_keys(redis, self, f).await? {
                let Some(counter) = key
                    .strip_prefix(redis.config.prefix.as_str())
                    .and_then(|k| k.strip_prefix(':'))
                else {
                    continue;
                };
                let Some((counter, window)) = counter.rsplit_once(':') else {
                    continue;
                };
                let Ok(window) = window.parse::<i64>() else {
                    continue;
                };
                if let Some((rule, cap, partition)) = self.find(counter, f) {
                    if window == cap.window.id(now) {
                        found.push((
                            key.clone(),
                            view(rule, cap, partition.to_string(), window, 0.0),
                        ));
                    }
                }
            }
            let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
            let values = mget(redis, &keys).await?;
            for ((_, mut v), used) in found.into_iter().zip(values) {
                set_used(&mut v, used);
                out.push(v);
            }
        }
        out.sort_by(|a, b| (&*a.rule, a.cap, &a.partition).cmp(&(&*b.rule, b.cap, &b.partition)));
        Ok(out)
    }

    /// Sets every counter matching `f` back to zero (this node's cells,
    /// and Redis's keys of every window). Requests in flight are gauges
    /// that their own requests release, so `concurrent` caps are left
    /// alone. Returns how many counters were reset.
    pub async fn reset_counters(&self, f: CounterFilter<'_>) -> Result<usize, InspectError> {
        let mut n = 0;
        for (key, _, _) in self.local.entries() {
            if let Some((_, cap, _)) = self.find(&key, f) {
                if cap.kind != CapKind::Concurrent && self.local.reset(&key) {
                    n += 1;
                }
            }
        }
        if let Some(redis) = &self.redis {
            let keys: Vec<String> = redis_keys(redis, self, f)
                .await?
                .into_iter()
                .filter(|key| {
                    key.strip_prefix(redis.config.prefix.as_str())
                        .and_then(|k| k.strip_prefix(':'))
                        .and_then(|k| k.rsplit_once(':'))
                        .and_then(|(counter, _)| self.find(counter, f))
                        .is_some_and(|(_, cap, _)| cap.kind != CapKind::Concurrent)
                })
                .collect();
            for chunk in keys.chunks(512) {
                let mut conn = redis.connection();
                let deleted: usize =
                    with_timeout(redis, redis::cmd("DEL").arg(chunk).query_async(&mut conn))
                        .await?;
                n += deleted;
            }
        }
        Ok(n)
    }

    /// The rule and cap a counter key (`rule:cap:partition`) belongs to,
    /// when they are configured and match the filter.
    fn find<'k>(
        &self,
        key: &'k str,
        f: CounterFilter<'_>,
    ) -> Option<(&Rule, &super::Cap, &'k str)> {
        self.rules
            .iter()
            .filter(|r| f.rule.is_none_or(|name| *r.name == *name))
            .flat_map(|r| r.caps.iter().map(move |c| (&**r, c)))
            .filter(|(_, c)| f.cap.is_none_or(|label| c.label == label))
            .find_map(|(r, c)| key.strip_prefix(c.prefix.as_str()).map(|p| (r, c, p)))
            .filter(|(_, _, p)| f.partition.is_none_or(|want| *p == want))
    }
}

fn view(rule: &Rule, cap: &super::Cap, partition: String, window: i64, used: f64) -> CounterView {
    let mut v = CounterView {
        rule: rule.name.clone(),
        cap: cap.label,
        partition,
        store: match rule.store {
            LimitStore::Local => "local",
            LimitStore::Redis => "redis",
        },
        mode: match rule.mode {
            LimitMode::Enforce => "enforce",
            LimitMode::Shadow => "shadow",
        },
        limit: cap.max,
        used: 0.0,
        remaining: 0.0,
        window: cap.window.as_str(),
        resets_at_ms: (cap.window != Window::None).then(|| cap.window.end_ms(window)),
    };
    set_used(&mut v, used);
    v
}

fn set_used(v: &mut CounterView, used: f64) {
    v.used = used.max(0.0);
    v.remaining = (v.limit - v.used).max(0.0);
}

async fn with_timeout<T>(
    redis: &RedisStore,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, InspectError> {
    match tokio::time::timeout(redis.config.timeout * 10, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(InspectError(e.to_string())),
        Err(_) => Err(InspectError("timed out".into())),
    }
}

/// The values of `keys` (a missing key reads 0).
async fn mget(redis: &RedisStore, keys: &[&str]) -> Result<Vec<f64>, InspectError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(512) {
        let mut conn = redis.connection();
        let values: Vec<Option<String>> =
            with_timeout(redis, redis::cmd("MGET").arg(chunk).query_async(&mut conn)).await?;
        out.extend(
            values
                .into_iter()
                .map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0.0)),
        );
    }
    Ok(out)
}

/// The Redis keys of every `store: redis` rule matching the filter's rule.
async fn redis_keys(
    redis: &RedisStore,
    limits: &Limits,
    f: CounterFilter<'_>,
) -> Result<Vec<String>, InspectError> {
    let mut out = Vec::new();
    for rule in limits
        .rules
        .iter()
        .filter(|r| r.store == LimitStore::Redis && f.rule.is_none_or(|name| *r.name == *name))
    {
        let pattern = format!(
            "{}:{}:*",
            glob_escape(&redis.config.prefix),
            glob_escape(&rule.name)
        );
        let mut cursor: u64 = 0;
        loop {
            let mut conn = redis.connection();
            let (next, keys): (u64, Vec<String>) = with_timeout(
                redis,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await?;
            out.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(out)
}

/// `text` as a literal in a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Demand;
    use tollgate_config::{LimitsConfig, Price};

    fn principal(subject: &str) -> Principal {
        crate::limits::templates::tests::principal(subject, &[])
    }

    #[tokio::test]
    async fn a_caller_sees_its_counters_and_an_admin_resets_them() {
        let cfg: LimitsConfig = serde_yaml_ng::from_str(
            "rules:\n  - { name: \"r*\", per: [principal], requests_per_hour: 5, tokens_per_day: 100, concurrent: 2 }\n",
        )
        .unwrap();
        let limits = Limits::build(&cfg, None).unwrap();
        let (alice, bob) = (principal("alice"), principal("bob"));
        let demand = Demand {
            prompt: 10,
            completion: 20,
            price: Price::default(),
        };
        let adm = limits.admit(&alice, "m", demand).await.unwrap();
        drop(adm.settle(10, 5, 0.0));
        let _in_flight = limits.admit(&bob, "m", demand).await.unwrap();
        let mine = limits.caller_view(&alice, &["m", "n"]).await.unwrap();
        let got: Vec<_> = mine.iter().map(|v| (v.cap, v.used, v.remaining)).collect();
        assert_eq!(
            got,
            [
                ("concurrent", 0.0, 2.0),
                ("requests_per_hour", 1.0, 4.0),
                ("tokens_per_day", 15.0, 85.0),
            ]
        );
        assert_eq!(mine[1].partition, "principal=alice|");
        assert_eq!(mine[1].window, "hour");
        let now = tollgate_core::clock::wall_ms();
        assert_eq!(
            mine[1].resets_at_ms,
            Some(Window::Hour.end_ms(Window::Hour.id(now)))
        );
        assert_eq!(mine[0].resets_at_ms, None);

        let all = limits
            .list_counters(CounterFilter::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 6, "{all:?}");
        let only_alice = CounterFilter {
            partition: Some("principal=alice|"),
            ..CounterFilter::default()
        };
        // Bob's request is still in flight: his gauge is not reset.
        assert_eq!(limits.reset_counters(only_alice).await.unwrap(), 2);
        let after = limits.caller_view(&alice, &["m"]).await.unwrap();
        assert!(after.iter().all(|v| v.used == 0.0), "{after:?}");
        let bobs = limits
            .list_counters(CounterFilter {
                rule: Some("r*"),
                cap: Some("tokens_per_day"),
                partition: Some("principal=bob|"),
            })
            .await
            .unwrap();
        assert_eq!(bobs.len(), 1);
        assert_eq!(bobs[0].used, 30.0);
        assert!(limits
            .list_counters(CounterFilter {
                rule: Some("other"),
                ..CounterFilter::default()
            })
            .await
            .unwrap()
            .is_empty());
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
