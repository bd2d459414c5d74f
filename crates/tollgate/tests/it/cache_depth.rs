//! The response cache's operator and caller controls against a real gateway,
//! a real mock upstream and (for the Redis backend) a real `redis-server`:
//! purge by model, tenant, namespace and key prefix through `DELETE
//! /admin/v1/cache`; the caller's namespace partitioning entries; identical
//! concurrent misses coalesced into one upstream call.

use crate::common;

use crate::cache::{tenant_key, upstream_chats, KEY_ACME, KEY_GLOBEX};
use common::redis_server::Redis;
use common::*;
use serde_json::Value;

const NS: &str = "x-tollgate-cache-namespace";

/// `chat-up` and `chat-local` cache; alice (KEY) holds the admin grant;
/// `cache_section` picks the backend.
async fn start(mock: &Mock, cache_section: &str) -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| {
        let cfg = standard_config(mock, dead, db)
            .replace(
                "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n",
                "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n    cache: { ttl: 1m }\n",
            )
            .replace(
                "    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }\n",
                "    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }\n    cache: {}\n",
            )
            .replace(
                "keys:\n",
                &format!(
                    "keys:\n{}{}",
                    tenant_key("acme1", KEY_ACME, "acme"),
                    tenant_key("globex", KEY_GLOBEX, "globex"),
                ),
            );
        format!(
            "{cfg}{cache_section}policy:\n  rules:\n    - name: ops\n      principals: [alice]\n      admin: true\n"
        )
    })
    .await
}

/// One chat: (`x-tollgate-cache`, `x-tollgate-cache-key`).
async fn chat(
    gw: &Gateway,
    key: &str,
    model: &str,
    text: &str,
    ns: Option<&str>,
) -> (String, String) {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, text));
    if let Some(ns) = ns {
        req = req.header(NS, ns);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (h("x-tollgate-cache"), h("x-tollgate-cache-key"))
}

async fn purge(gw: &Gateway, query: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = client().delete(gw.admin_url(&format!("/admin/v1/cache?{query}")));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Redis stores are spawned: wait until `n` entries are there.
async fn redis_entries(redis: Option<&Redis>, n: usize) {
    let Some(redis) = redis else { return };
    let keys = poll_until(
        async || {
            ::redis::cmd("KEYS")
                .arg("tollgate:cache:*")
                .query_async::<Vec<String>>(&mut redis.conn().await)
                .await
                .unwrap()
        },
        |keys| keys.len() == n,
    )
    .await;
    assert_eq!(keys.len(), n, "redis never held {n} entries: {keys:?}");
}

async fn purge_and_namespaces(redis: Option<&Redis>) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let section = match redis {
        Some(r) => format!("cache:\n  backend: redis\n  redis_url: {}\n", r.url()),
        None => String::new(),
    };
    let mut gw = start(&mock, &section).await;
    // Four entries: acme chat-up, acme chat-local, globex chat-up, and
    // acme chat-up again in namespace ns1 (same body, its own entry).
    let (s, key_a) = chat(&gw, KEY_ACME, "chat-up", "alpha", None).await;
    assert_eq!((s.as_str(), key_a.len()), ("miss", 64));
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-local", "beta", None).await.0,
        "miss"
    );
    assert_eq!(
        chat(&gw, KEY_GLOBEX, "chat-up", "gamma", None).await.0,
        "miss"
    );
    let (s, key_ns) = chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns1")).await;
    assert_eq!(s, "miss", "a namespace has its own entries");
    assert_ne!(key_ns, key_a);
    redis_entries(redis, 4).await;
    let (s, key) = chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns1")).await;
    assert_eq!((s.as_str(), key.as_str()), ("hit", key_ns.as_str()));
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns2")).await.0,
        "miss"
    );
    redis_entries(redis, 5).await;
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", None).await,
        ("hit".into(), key_a.clone())
    );
    // A bad namespace is the caller's error.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY_ACME)
        .header(NS, "no spaces")
        .json(&chat_body("chat-up", "alpha"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Who may purge, and what a purge must name.
    assert_eq!(purge(&gw, "model=chat-up", None).await.0, 401);
    assert_eq!(purge(&gw, "model=chat-up", Some(KEY_ACME)).await.0, 403);
    assert_eq!(purge(&gw, "", Some(KEY)).await.0, 400);
    assert_eq!(purge(&gw, "key_prefix=XYZ", Some(KEY)).await.0, 400);
    assert_eq!(purge(&gw, "color=red", Some(KEY)).await.0, 400);

    // By model: only chat-local's entry goes.
    assert_eq!(
        purge(&gw, "model=chat-local", Some(KEY)).await,
        (200, serde_json::json!({"purged": 1}))
    );
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-local", "beta", None).await.0,
        "miss"
    );
    assert_eq!(chat(&gw, KEY_ACME, "chat-up", "alpha", None).await.0, "hit");
    // By tenant: globex's entry.
    assert_eq!(purge(&gw, "tenant=globex", Some(KEY)).await.1["purged"], 1);
    assert_eq!(
        chat(&gw, KEY_GLOBEX, "chat-up", "gamma", None).await.0,
        "miss"
    );
    // By namespace: both of ns1 and ns2 are separate; ns1 only.
    assert_eq!(purge(&gw, "namespace=ns1", Some(KEY)).await.1["purged"], 1);
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns1")).await.0,
        "miss"
    );
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns2")).await.0,
        "hit"
    );
    // By key prefix: the one entry the header named.
    redis_entries(redis, 5).await;
    let q = format!("key_prefix={}", &key_a[..12]);
    assert_eq!(purge(&gw, &q, Some(KEY)).await.1["purged"], 1);
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", None).await.0,
        "miss"
    );
    // Everything.
    redis_entries(redis, 5).await;
    assert_eq!(purge(&gw, "all=true", Some(KEY)).await.1["purged"], 5);
    assert_eq!(
        chat(&gw, KEY_ACME, "chat-up", "alpha", Some("ns2")).await.0,
        "miss"
    );
    gw.stop().await;
}

#[tokio::test]
async fn purge_and_namespaces_memory() {
    purge_and_namespaces(None).await;
}

#[tokio::test]
async fn purge_and_namespaces_redis() {
    let redis = Redis::start().await;
    purge_and_namespaces(Some(&redis)).await;
}

/// Eight identical requests at once while the upstream takes 400 ms: one
/// upstream call, seven answered from it (as hits, with the leader's
/// text); a streamed one alongside is not coalesced.
async fn identical_misses_coalesce(redis: Option<&Redis>) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let section = match redis {
        Some(r) => format!("cache:\n  backend: redis\n  redis_url: {}\n", r.url()),
        None => String::new(),
    };
    let mut gw = start(&mock, &section).await;
    let one = |stream: bool| {
        let mut body = chat_body("chat-up", "coalesce me");
        if stream {
            body["stream"] = serde_json::json!(true);
        }
        let req = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(KEY_ACME)
            .header("x-mock-latency-ms", "400")
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let cache = r.headers()["x-tollgate-cache"].to_str().unwrap().to_owned();
            (cache, r.text().await.unwrap())
        }
    };
    let mut tasks: Vec<_> = (0..8).map(|_| tokio::spawn(one(false))).collect();
    tasks.push(tokio::spawn(one(true)));
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let streamed = outcomes.pop().unwrap();
    assert!(streamed.1.contains("data: [DONE]"), "{}", streamed.1);
    let misses = outcomes.iter().filter(|o| o.0 == "miss").count();
    let hits = outcomes.iter().filter(|o| o.0 == "hit").count();
    assert_eq!((misses, hits), (1, 7), "{outcomes:?}");
    let text = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let leader = text(&outcomes.iter().find(|o| o.0 == "miss").unwrap().1);
    assert!(outcomes.iter().all(|o| text(&o.1) == leader));
    assert_eq!(
        upstream_chats(&mock).await,
        2,
        "one for the eight, one for the stream"
    );
    // The recorder is the test process's: other tests may have added.
    let m = metrics_text(&gw).await;
    let answered = m
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_cache_coalesced_total{result=\"answered\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(answered.is_some_and(|n| n >= 7), "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn identical_misses_coalesce_memory() {
    identical_misses_coalesce(None).await;
}

#[tokio::test]
async fn identical_misses_coalesce_redis() {
    let redis = Redis::start().await;
    identical_misses_coalesce(Some(&redis)).await;
}
