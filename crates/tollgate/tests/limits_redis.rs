//! Limits shared through a real `redis-server` (Debian package; started here
//! on a free port in a temp dir): three gateway processes share one cap,
//! concurrent admissions share script calls and stay exact, and Redis
//! dies and returns under fail-open and fail-closed rules; Redis counters
//! read by their owner and an admin, and reset.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::proc::spawn_gateway;
use common::*;
use serde_json::Value;

use common::redis_server::Redis;

/// What these tests read from Redis.
impl Redis {
    async fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    async fn sum(&self, pattern: &str) -> f64 {
        let keys = self.keys(pattern).await;
        let mut conn = self.conn().await;
        let mut total = 0.0;
        for k in keys {
            let v: String = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            total += v.parse::<f64>().unwrap();
        }
        total
    }
}

async fn early_in_minute() {
    let secs = (tollgate::store::now_ms() / 1000) % 60;
    if secs > 45 {
        tokio::time::sleep(Duration::from_secs(61 - secs as u64)).await;
    }
}

/// A Redis server, the mock upstream and a dead address, early in a minute
/// (so per-minute counters do not roll over mid-test).
async fn fresh_minute_setup() -> (Redis, Mock, std::net::SocketAddr) {
    early_in_minute().await;
    let redis = Redis::start().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    (redis, mock, dead_addr().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateway_processes_share_one_cap() {
    let (redis, mock, dead) = fresh_minute_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gws = Vec::new();
    for n in 0..3 {
        let db = format!(
            "sqlite://{}",
            dir.path().join(format!("gw{n}.db")).display()
        );
        let cfg = format!(
            "{}\nlimits:\n  redis: {{ url: \"{}\", timeout: 10s }}\n  rules:\n    - name: fleet-rpm\n      store: redis\n      on_store_error: closed\n      requests_per_minute: 300\n",
            standard_config(&mock, dead, &db),
            redis.url()
        );
        gws.push(spawn_gateway(cfg, dir.path(), n).await);
    }
    let client = client();
    let tasks: Vec<_> = (0..900)
        .map(|i| {
            let url = format!("http://{}/v1/chat/completions", gws[i % 3].addr);
            let req = client
                .post(url)
                .bearer_auth(KEY)
                .json(&chat_body("chat-local", "hi"));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let other: Vec<_> = statuses
        .iter()
        .filter(|s| **s != 200 && **s != 429)
        .collect();
    assert!(other.is_empty(), "unexpected statuses: {other:?}");
    assert!(
        (297..=303).contains(&ok),
        "a shared cap of 300 admitted {ok}"
    );
    assert_eq!(ok, 300, "the shared counter is exact");
    assert_eq!(ok + limited, 900, "{statuses:?}");
    assert_eq!(redis.sum("tollgate:fleet-rpm:*").await, 300.0);
}

/// One value of a Prometheus text exposition (summed over label sets).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.split([' ', '{']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// 200 concurrent requests on one gateway against a shared cap of 50 and
/// a token quota: admissions that queue while a script call is in flight
/// go together in the next one, each checked after the reservations before
/// it, so the cap admits exactly 50, the rejected requests reserve nothing
/// on the token counter, and fewer script calls than requests were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_share_script_calls_and_stay_exact() {
    let (redis, mock, dead) = fresh_minute_setup().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let cfg = format!(
        "{}\nlimits:\n  redis: {{ url: \"{}\", timeout: 10s }}\n  rules:\n    - name: batch-rpm\n      store: redis\n      on_store_error: closed\n      requests_per_minute: 50\n    - name: batch-tpm\n      store: redis\n      on_store_error: closed\n      tokens_per_minute: 100000000\n",
        standard_config(&mock, dead, &db),
        redis.url()
    );
    let gw = spawn_gateway(cfg, dir.path(), 0).await;
    let client = client();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let req = client
                .post(format!("http://{}/v1/chat/completions", gw.addr))
                .bearer_auth(KEY)
                .json(&serde_json::json!({
                    "model": "chat-up",
                    "messages": [{"role": "user", "content": format!("batch me {i}")}],
                    "max_tokens": 100,
                }));
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let remaining = r
                    .headers()
                    .get("x-ratelimit-remaining-requests")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let b: Value = r.json().await.unwrap();
                let tokens = b["usage"]["total_tokens"].as_f64().unwrap_or(0.0);
                (status, tokens, remaining)
            })
        })
        .collect();
    let (mut ok, mut limited, mut used) = (0, 0, 0.0);
    let mut remaining = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (200, tokens, left) => {
                ok += 1;
                used += tokens;
                remaining.push(left.expect("x-ratelimit-remaining-requests on a success"));
            }
            (429, _, _) => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, limited), (50, 150), "a cap of 50 admits exactly 50");
    // Each admitted request saw the counter as the requests before it (in
    // its batch or an earlier one) left it: the gateway's replay of a batch
    // gives every request its own used-before, so the remaining counts are
    // 49, 48, ..., 0, each once.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..50).collect::<Vec<u64>>());
    assert_eq!(redis.sum("tollgate:batch-rpm:*").await, 50.0);
    // The token counter holds the admitted requests' usage once settled:
    // a request rejected by the other cap of its batch reserved nothing.
    let mut tokens = 0.0;
    for _ in 0..100 {
        tokens = redis.sum("tollgate:batch-tpm:*").await;
        if tokens == used {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tokens, used);
    let text = client
        .get(format!("http://{}/metrics", gw.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls = metric(&text, "tollgate_limit_store_admit_batch_count");
    let requests = metric(&text, "tollgate_limit_store_admit_batch_sum");
    assert_eq!(
        requests, 200.0,
        "every admission went through a script call"
    );
    assert!(
        (1.0..200.0).contains(&calls),
        "{calls} script calls for 200 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_closed_per_rule_and_recovers() {
    let mut redis = Redis::start().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let url = redis.url();
    let mut gw = start_gateway_with(|db| {
        format!(
            "{}\nlimits:\n  redis: {{ url: \"{url}\", timeout: 200ms }}\n  rules:\n    - name: alice-open\n      match: {{ principals: [alice] }}\n      store: redis\n      on_store_error: open\n      requests_per_minute: 1000\n    - name: bob-closed\n      match: {{ principals: [bob] }}\n      store: redis\n      on_store_error: closed\n      requests_per_minute: 1000\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
    assert_eq!(chat_status(&gw, KEY_LIMITED, "chat-local").await, 200);
    assert_eq!(redis.sum("tollgate:alice-open:*").await, 1.0);

    redis.kill();
    for _ in 0..3 {
        // Fail-open: served on this node's counters.
        assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
        // Fail-closed: refused while the store is unreachable.
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY_LIMITED),
            &chat_body("chat-local", "x"),
        )
        .await;
        assert_eq!(r.status(), 503);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "limit_store_unavailable");
        assert!(b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bob-closed"));
    }
    let m = metrics_text(&gw).await;
    assert!(
        m.lines()
            .any(|l| l.contains("alice-open") && l.contains("fallback_local")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("tollgate_limit_store_errors_total")),
        "{m}"
    );
    // Every admission's round trip is timed, failed ones included: 2 before
    // the kill and 6 after (3 per rule); the recorder is process-wide, so
    // another in-process test may add its own.
    let admits = m
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_limit_store_admit_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(admits >= 8.0, "{m}");
    assert!(
        m.contains("tollgate_limit_store_admit_seconds_bucket{le=\"0.0003\"}"),
        "{m}"
    );

    // Redis returns (empty: it kept nothing): the gateway reconnects by itself.
    redis.spawn().await;
    let mut recovered = false;
    for _ in 0..100 {
        if chat_status(&gw, KEY_LIMITED, "chat-local").await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "fail-closed rule did not recover after Redis returned"
    );
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
    assert_eq!(
        redis.sum("tollgate:alice-open:*").await,
        1.0,
        "counted in Redis again"
    );
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    assert!(recs.iter().any(|r| r.limits.contains("fallback_local")));
    assert!(recs
        .iter()
        .any(|r| r.error == "limit_unavailable" && r.status == 503));
}

/// Settlement: the token counter in Redis ends at the tokens actually used,
/// not the admission estimates (prompt + `max_tokens`), also when many
/// requests' corrections are merged into one settlement script; and the
/// counter keeps its expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_token_counter_settles_to_actual_usage() {
    let (redis, mock, dead) = fresh_minute_setup().await;
    let url = redis.url();
    let gw = start_gateway_with(|db| {
        format!(
            "{}\nlimits:\n  redis: {{ url: \"{url}\", timeout: 2s }}\n  rules:\n    - name: settle-tpm\n      store: redis\n      tokens_per_minute: 100000000\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let req = client()
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&serde_json::json!({
                    "model": "chat-up",
                    "messages": [{"role": "user", "content": format!("count these words please {i}")}],
                    "max_tokens": 500,
                }));
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 200);
                let b: Value = r.json().await.unwrap();
                b["usage"]["total_tokens"].as_f64().unwrap()
            })
        })
        .collect();
    let mut used = 0.0;
    for t in tasks {
        used += t.await.unwrap();
    }
    assert!(used > 0.0 && used < 40.0 * 500.0, "{used}");
    // Settlement is sent after the responses: wait for it to land.
    let mut total = 0.0;
    for _ in 0..100 {
        total = redis.sum("tollgate:settle-tpm:*").await;
        if total == used {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, used, "Redis holds the estimates, not the usage");
    let keys = redis.keys("tollgate:settle-tpm:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert!(ttl > 0, "the counter keeps an expiry: {ttl}");

    // Scripts flushed (as after a Redis restart without persistence): the
    // next admission and settlement load them again and still count.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({
            "model": "chat-up",
            "messages": [{"role": "user", "content": "after the flush"}],
            "max_tokens": 500,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let more = b["usage"]["total_tokens"].as_f64().unwrap();
    for _ in 0..100 {
        total = redis.sum("tollgate:settle-tpm:*").await;
        if total == used + more {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (The metrics recorder is shared with this binary's other tests, so
    // the sum is the check: a failed script call would leave the estimate.)
    assert_eq!(
        total,
        used + more,
        "admitted and settled after SCRIPT FLUSH"
    );
}

/// Redis counters read by their owner and by an admin, and reset in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counters_are_readable_and_reset_by_an_admin() {
    let (redis, mock, dead) = fresh_minute_setup().await;
    let url = redis.url();
    let gw = start_gateway_with(|db| {
        format!(
            "{}\nlimits:\n  redis: {{ url: \"{url}\", timeout: 2s }}\n  rules:\n    - name: shared-hour\n      store: redis\n      per: [principal]\n      requests_per_hour: 3\n      tokens_per_day: 100000000\npolicy:\n  rules:\n    - {{ name: ops, principals: [alice], admin: true }}\n",
            standard_config(&mock, dead, db)
        )
    })
    .await;
    for _ in 0..3 {
        assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
    }
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 429);
    let get = |url: String, key: &'static str| async move {
        let r = client().get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let find = |list: &Value, cap: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["cap"] == cap && c["partition"] == "principal=alice|")
            .cloned()
            .unwrap_or_else(|| panic!("no {cap} in {list}"))
    };
    let mine = get(gw.url("/v1/me/limits?model=chat-local"), KEY).await;
    let rph = find(&mine["data"], "requests_per_hour");
    assert_eq!(
        (rph["store"].as_str(), rph["used"].as_f64()),
        (Some("redis"), Some(3.0))
    );
    assert_eq!(rph["remaining"].as_f64(), Some(0.0));
    let listed = get(gw.admin_url("/admin/v1/limits"), KEY).await;
    assert_eq!(
        find(&listed["counters"], "requests_per_hour")["used"].as_f64(),
        Some(3.0)
    );
    // Settlement lands after the answers: the day's tokens show once it has.
    let mut tokens = 0.0;
    for _ in 0..100 {
        let listed = get(gw.admin_url("/admin/v1/limits?cap=tokens_per_day"), KEY).await;
        tokens = find(&listed["counters"], "tokens_per_day")["used"]
            .as_f64()
            .unwrap();
        if tokens > 0.0 && tokens == redis.sum("tollgate:shared-hour:tokens_per_day:*").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        tokens,
        redis.sum("tollgate:shared-hour:tokens_per_day:*").await
    );
    let r = client()
        .delete(gw.admin_url("/admin/v1/limits?rule=shared-hour&cap=requests_per_hour"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reset"], 1, "{body}");
    assert!(redis
        .keys("tollgate:shared-hour:requests_per_hour:*")
        .await
        .is_empty());
    assert_eq!(
        redis
            .keys("tollgate:shared-hour:tokens_per_day:*")
            .await
            .len(),
        1
    );
    assert_eq!(
        chat_status(&gw, KEY, "chat-local").await,
        200,
        "reset in Redis"
    );
}
