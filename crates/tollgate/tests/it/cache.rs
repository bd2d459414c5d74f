//! The response cache against a real gateway and a real mock upstream:
//! hits after misses (identical and re-ordered JSON), tenant isolation,
//! bypass, temperature, streaming fill and replay, never a partial stream,
//! ledger and metrics.

use crate::common;

use common::*;
use serde_json::{json, Value};

pub(crate) const KEY_ACME: &str = "tg-test-key-acme";
const KEY_ACME2: &str = "tg-test-key-acme-two";
pub(crate) const KEY_GLOBEX: &str = "tg-test-key-globex";

/// Output masking of e-mail addresses for one principal only.
const GUARD: &str = "guardrails:\n  policies:\n    - name: acme2-no-emails\n      applies_to: { models: [chat-up], principals: [acme2] }\n      direction: output\n      detectors: { builtins: [email] }\n      action: mask\n";

/// The standard config with `chat-up` caching (tenant scope), `chat-local`
/// caching per principal and sampled answers too, and three tenant keys.
async fn start(mock: &Mock) -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| {
        let cfg = standard_config(mock, dead, db)
            .replace(
                "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n",
                "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n    cache: { ttl: 1m }\n",
            )
            .replace(
                "    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }\n",
                "    price: { input_per_mtok: 1.0, output_per_mtok: 2.0 }\n    cache: { scope: principal, any_temperature: true }\n",
            )
            .replace(
                "    endpoints: [embeddings]\n",
                "    endpoints: [embeddings]\n    cache: {}\n",
            )
            .replace(
                "keys:\n",
                &format!(
                    "keys:\n{}{}{}",
                    tenant_key("acme1", KEY_ACME, "acme"),
                    tenant_key("acme2", KEY_ACME2, "acme"),
                    tenant_key("globex", KEY_GLOBEX, "globex"),
                ),
            );
        assert!(cfg.contains("cache: { ttl: 1m }") && cfg.contains("scope: principal"));
        assert!(cfg.contains("cache: {}"));
        format!(
            "{cfg}cache:\n  max_bytes: 1048576\nvirtual_models:\n  - name: chat-vm\n    targets: [{{ model: chat-dead }}, {{ model: chat-up, priority: 1 }}]\n    cache: {{}}\n{GUARD}"
        )
    })
    .await
}

pub(crate) fn tenant_key(id: &str, key: &str, tenant: &str) -> String {
    format!(
        "  - id: {id}\n    hash: {}\n    principal: {id}\n    tenant: {tenant}\n    models: [\"chat-*\"]\n",
        hash(key)
    )
}

async fn send(gw: &Gateway, key: &str, raw: &str, extra: &[(&str, &str)]) -> (String, Value) {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(raw.to_owned());
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cache = resp
        .headers()
        .get("x-tollgate-cache")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (cache, resp.json().await.unwrap())
}

pub(crate) async fn upstream_chats(mock: &Mock) -> usize {
    mock.received()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("/chat/completions")
        })
        .count()
}

#[tokio::test]
async fn hit_after_miss_with_identical_and_reordered_json() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start(&mock).await;
    let a = r#"{"model":"chat-up","messages":[{"role":"user","content":"cache me please"}],"max_tokens":8}"#;
    let b = "{ \"max_tokens\" : 8,\n  \"messages\" : [ { \"content\" : \"cache me please\", \"role\" : \"user\" } ],\n  \"model\" : \"chat-up\" }";

    let (s1, first) = send(&gw, KEY, a, &[]).await;
    let (s2, second) = send(&gw, KEY, a, &[]).await;
    let (s3, third) = send(&gw, KEY, b, &[]).await;
    assert_eq!(
        (s1.as_str(), s2.as_str(), s3.as_str()),
        ("miss", "hit", "hit")
    );
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(
        upstream_chats(&mock).await,
        1,
        "hits never reach the upstream"
    );

    // A different request is a different entry.
    let (s4, _) = send(&gw, KEY, &a.replace("please", "now"), &[]).await;
    assert_eq!(s4, "miss");

    // Metrics are process-wide (other tests here add to them): at least ours.
    let metrics = metrics_text(&gw).await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    assert!(
        value("tollgate_cache_requests_total{model=\"chat-up\",result=\"hit\",reason=\"\"}") >= 2.0
    );
    assert!(
        value("tollgate_cache_requests_total{model=\"chat-up\",result=\"miss\",reason=\"\"}")
            >= 2.0
    );
    // The ratio gauge is set by whichever gateway in this process looked up last.
    let ratio = value("tollgate_cache_hit_ratio");
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    assert!(value("tollgate_cache_saved_cost_total{model=\"chat-up\"}") > 0.0);

    let store = gw.stop().await;
    let recs = wait_records(&store, 4).await;
    let cache: Vec<&str> = recs.iter().map(|r| r.cache.as_str()).collect();
    assert_eq!(cache, ["miss", "hit", "hit", "miss"]);
    let (miss, hit) = (&recs[0], &recs[1]);
    assert!(miss.prompt_tokens > 0 && miss.cost > 0.0 && miss.cost_saved == 0.0);
    assert_eq!(
        (hit.prompt_tokens, hit.completion_tokens, hit.cost),
        (0, 0, 0.0)
    );
    assert_eq!(hit.cost_saved, miss.cost, "a hit saves what the miss cost");
    assert_eq!((hit.status, hit.provider.as_str()), (200, "up"));
}

#[tokio::test]
async fn tenants_and_principals_never_share_answers() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let body = r#"{"model":"chat-up","messages":[{"role":"user","content":"tenant secret"}]}"#;
    assert_eq!(send(&gw, KEY_ACME, body, &[]).await.0, "miss");
    assert_eq!(
        send(&gw, KEY_GLOBEX, body, &[]).await.0,
        "miss",
        "another tenant"
    );
    assert_eq!(
        send(&gw, KEY_ACME2, body, &[]).await.0,
        "hit",
        "same tenant"
    );
    assert_eq!(send(&gw, KEY, body, &[]).await.0, "miss", "no tenant");
    assert_eq!(upstream_chats(&mock).await, 3);

    // `chat-local` caches per principal: acme's two keys do not share.
    let local = r#"{"model":"chat-local","messages":[{"role":"user","content":"mine"}]}"#;
    assert_eq!(send(&gw, KEY_ACME, local, &[]).await.0, "miss");
    assert_eq!(send(&gw, KEY_ACME2, local, &[]).await.0, "miss");
    assert_eq!(send(&gw, KEY_ACME, local, &[]).await.0, "hit");
}

#[tokio::test]
async fn bypass_temperature_and_ttl_header() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let body = r#"{"model":"chat-up","messages":[{"role":"user","content":"bypass me"}]}"#;
    assert_eq!(send(&gw, KEY, body, &[]).await.0, "miss");
    assert_eq!(
        send(&gw, KEY, body, &[("cache-control", "no-cache")])
            .await
            .0,
        "bypass"
    );
    assert_eq!(
        send(&gw, KEY, body, &[("x-tollgate-cache", "bypass")])
            .await
            .0,
        "bypass"
    );
    assert_eq!(send(&gw, KEY, body, &[]).await.0, "hit");
    assert_eq!(upstream_chats(&mock).await, 3);

    // Sampled answers are not cached unless the model says so.
    let hot = r#"{"model":"chat-up","temperature":0.7,"messages":[{"role":"user","content":"t"}]}"#;
    assert_eq!(send(&gw, KEY, hot, &[]).await.0, "bypass");
    assert_eq!(send(&gw, KEY, hot, &[]).await.0, "bypass");
    let local =
        r#"{"model":"chat-local","temperature":0.7,"messages":[{"role":"user","content":"t"}]}"#;
    assert_eq!(send(&gw, KEY, local, &[]).await.0, "miss");
    assert_eq!(send(&gw, KEY, local, &[]).await.0, "hit");

    // Models without `cache` say nothing.
    let plain = r#"{"model":"chat-h2","messages":[{"role":"user","content":"t"}]}"#;
    assert_eq!(send(&gw, KEY, plain, &[]).await.0, "");

    let ttl = send(
        &gw,
        KEY,
        &body.replace("bypass me", "ttl me"),
        &[("x-tollgate-cache-ttl", "5s")],
    )
    .await;
    assert_eq!(ttl.0, "miss");
    let bad = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-tollgate-cache-ttl", "soon")
        .json(&chat_body("chat-up", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-tollgate-cache-ttl"));
}

async fn stream(
    gw: &Gateway,
    content: &str,
    usage: bool,
    extra: &[(&str, &str)],
) -> (String, String) {
    let mut body = chat_body("chat-up", content);
    body["stream"] = json!(true);
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let cache = resp.headers()["x-tollgate-cache"]
        .to_str()
        .unwrap()
        .to_owned();
    (cache, resp.text().await.unwrap())
}

/// The text and usage carried by an SSE body.
fn stream_text(body: &str) -> (String, Option<Value>) {
    let events = sse_data(body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let mut text = String::new();
    let mut usage = None;
    for e in &events[..events.len() - 1] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    (text, usage)
}

#[tokio::test]
async fn streams_fill_the_cache_once_complete_and_replay_as_sse() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start(&mock).await;
    let (s1, live) = stream(&gw, "stream this", true, &[]).await;
    let (s2, replay) = stream(&gw, "stream this", true, &[]).await;
    assert_eq!((s1.as_str(), s2.as_str()), ("miss", "hit"));
    let (live_text, live_usage) = stream_text(&live);
    let (replay_text, replay_usage) = stream_text(&replay);
    assert!(!live_text.is_empty());
    assert_eq!(live_text, replay_text);
    assert_eq!(live_usage, replay_usage);
    // Without include_usage the replay has no usage chunk.
    let (s3, plain) = stream(&gw, "stream this", false, &[]).await;
    assert_eq!(s3, "hit");
    assert_eq!(stream_text(&plain), (live_text.clone(), None));
    // The same entry answers a non-streaming call.
    let (s4, full) = send(
        &gw,
        KEY,
        &chat_body("chat-up", "stream this").to_string(),
        &[],
    )
    .await;
    assert_eq!(s4, "hit");
    assert_eq!(full["choices"][0]["message"]["content"], live_text);
    assert_eq!(full["object"], "chat.completion");
    assert_eq!(upstream_chats(&mock).await, 1);

    // A stream cut short is never cached.
    let (c1, cut) = stream(&gw, "cut me", false, &[("x-mock-cut-after", "2")]).await;
    assert_eq!(c1, "miss");
    assert!(cut.contains("error"), "{cut}");
    let (c2, _) = stream(&gw, "cut me", false, &[]).await;
    assert_eq!(c2, "miss", "the partial answer was not stored");

    let store = gw.stop().await;
    let recs = wait_records(&store, 7).await;
    let hits: Vec<_> = recs.iter().filter(|r| r.cache == "hit").collect();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|r| r.prompt_tokens == 0 && r.cost_saved > 0.0));
}

#[tokio::test]
async fn embeddings_and_text_completions_are_cached_too() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let embed = json!({"model": "embed-up", "input": ["a b", "c"]});
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = post(&gw, "/v1/embeddings", Some(KEY), &embed).await;
        assert_eq!(r.status(), 200);
        let cache = r.headers()["x-tollgate-cache"].to_str().unwrap().to_owned();
        seen.push((cache, r.json::<Value>().await.unwrap()));
    }
    assert_eq!((seen[0].0.as_str(), seen[1].0.as_str()), ("miss", "hit"));
    assert_eq!(seen[0].1, seen[1].1);

    // Text completions on `chat-local` (in-process mock): a streamed miss,
    // then a hit replayed as `text_completion` chunks.
    let body = json!({"model": "chat-local", "prompt": "once upon", "stream": true});
    let mut texts = Vec::new();
    for expected in ["miss", "hit"] {
        let r = post(&gw, "/v1/completions", Some(KEY), &body).await;
        assert_eq!(r.headers()["x-tollgate-cache"], expected);
        let events = sse_data(&r.text().await.unwrap());
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let text: String = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .inspect(|v| assert_eq!(v["object"], "text_completion"))
            .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
            .collect();
        texts.push(text);
    }
    assert!(!texts[0].is_empty());
    assert_eq!(texts[0], texts[1]);
}

#[tokio::test]
async fn virtual_models_opt_in_and_hits_name_the_original_target() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let body = chat_body("chat-vm", "through the virtual model");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
        assert_eq!(r.status(), 200);
        let h = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
        seen.push((h("x-tollgate-cache"), h("x-tollgate-resolved-model")));
    }
    // The first call fell back from the dead target; the hit names who answered.
    assert_eq!(
        seen,
        [
            ("miss".to_string(), "up/mock-chat".to_string()),
            ("hit".to_string(), "up/mock-chat".to_string())
        ]
    );
    assert_eq!(upstream_chats(&mock).await, 1);
}

#[tokio::test]
async fn output_guardrails_still_apply_to_hits() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start(&mock).await;
    let body = r#"{"model":"chat-up","messages":[{"role":"user","content":"write to carol@example.com today"}]}"#;
    let echo = [("x-mock-echo", "1")];
    let (s1, first) = send(&gw, KEY_ACME, body, &echo).await;
    let text = |v: &Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(s1, "miss");
    assert!(text(&first).contains("carol@example.com"), "{first}");
    // Same tenant, so a hit, but acme2's output policy masks the address.
    let (s2, second) = send(&gw, KEY_ACME2, body, &echo).await;
    assert_eq!(s2, "hit");
    assert!(!text(&second).contains("carol@example.com"), "{second}");
    // The stored answer itself is unchanged for acme1.
    let (s3, third) = send(&gw, KEY_ACME, body, &echo).await;
    assert_eq!((s3.as_str(), text(&third)), ("hit", text(&first)));
}

#[tokio::test]
async fn an_unreachable_redis_means_misses_not_errors() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let redis = dead_addr().await;
    let gw = start_gateway_with(|db| {
        let cfg = standard_config(&mock, dead, db).replace(
            "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n",
            "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n    cache: {}\n",
        );
        format!("{cfg}cache:\n  backend: redis\n  redis_url: redis://{redis}/0\n")
    })
    .await;
    let body = r#"{"model":"chat-up","messages":[{"role":"user","content":"no redis"}]}"#;
    for _ in 0..2 {
        assert_eq!(send(&gw, KEY, body, &[]).await.0, "miss");
    }
    assert_eq!(upstream_chats(&mock).await, 2);
}

/// `chat-up` caching, with a requests cap of 3 per minute and a token cap on
/// the key; `cache_hits` set as given.
async fn start_limited(mock: &Mock, cache_hits: &str) -> Gateway {
    let dead = dead_addr().await;
    start_gateway_with(|db| {
        let cfg = standard_config(mock, dead, db).replace(
            "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n",
            "    upstream_model: mock-chat\n    price: { input_per_mtok: 10.0, output_per_mtok: 20.0 }\n    cache: { ttl: 1m }\n",
        );
        assert!(cfg.contains("cache: { ttl: 1m }") && !cfg.contains("\nlimits:"));
        format!(
            "{cfg}limits:\n  cache_hits: {cache_hits}\n  rules:\n    - {{ name: rpm, per: [key], requests_per_minute: 3, tokens_per_minute: 1000000, cost_per_day: 1000 }}\n"
        )
    })
    .await
}

/// The `charged` amount of each cap in a ledger record's limit decisions.
fn charged(rec: &tollgate::ledger::UsageRecord) -> (f64, f64, f64) {
    let list: Vec<Value> = serde_json::from_str(&rec.limits).unwrap();
    let of = |cap: &str| {
        list.iter()
            .find(|d| d[1] == cap)
            .and_then(|d| d[3].as_f64())
            .unwrap_or_else(|| panic!("no {cap} decision in {}", rec.limits))
    };
    (
        of("requests_per_minute"),
        of("tokens_per_minute"),
        of("cost_per_day"),
    )
}

#[tokio::test]
async fn limits_count_a_hit_as_a_request_and_tokens_only_when_asked() {
    let body = r#"{"model":"chat-up","messages":[{"role":"user","content":"cached and limited"}]}"#;
    for mode in ["requests", "usage"] {
        let mock = start_mock(Some(UPSTREAM_KEY)).await;
        let mut gw = start_limited(&mock, mode).await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(send(&gw, KEY, body, &[]).await.0);
        }
        assert_eq!(seen, ["miss", "hit", "hit"], "{mode}");
        // The fourth would be a hit too, but three requests fill the cap.
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &serde_json::from_str(body).unwrap(),
        )
        .await;
        assert_eq!(r.status(), 429, "{mode}: a hit still counts as a request");
        assert_eq!(upstream_chats(&mock).await, 1);

        let store = gw.stop().await;
        let recs = wait_records(&store, 4).await;
        let (miss, hit) = (&recs[0], &recs[1]);
        assert_eq!((miss.cache.as_str(), hit.cache.as_str()), ("miss", "hit"));
        let used = (miss.prompt_tokens + miss.completion_tokens) as f64;
        assert!(used > 0.0 && miss.cost > 0.0);
        assert_eq!(charged(miss), (1.0, used, miss.cost), "{mode}");
        let expected = match mode {
            "requests" => (1.0, 0.0, 0.0),
            _ => (1.0, used, miss.cost),
        };
        assert_eq!(charged(hit), expected, "{mode}: what a hit charges");
        // The hit's own record still shows nothing spent upstream.
        assert_eq!((hit.prompt_tokens, hit.cost), (0, 0.0));
    }
}
