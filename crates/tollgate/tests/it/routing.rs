//! Virtual models over several real mock upstreams: fallback, retries with
//! Retry-After, timeouts, health windows, weighted and sticky splits, the
//! latency strategy, and streams failing before and after the first byte;
//! the first-chunk timeout, stream cuts against health, half-open probes and
//! the admin routing view.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use common::*;
use serde_json::{json, Value};

fn config(a: &Mock, b: &Mock, db: &str) -> String {
    format!(
        r#"
server:
  listen: 127.0.0.1:0
  admin_listen: 127.0.0.1:0
storage:
  url: {db}
ledger:
  flush_interval: 20ms
providers:
  - name: a
    kind: openai
    base_url: {a}
  - name: b
    kind: openai
    base_url: {b}
  - name: a-short
    kind: openai
    base_url: {a}
    timeouts: {{ connect: 1s, first_byte: 300ms, total: 5s }}
  - name: local
    kind: mock
models:
  - {{ name: a-ok, provider: a, upstream_model: mock-chat }}
  - {{ name: a-503, provider: a, upstream_model: "mock-chat?status=503" }}
  - {{ name: a-429-once, provider: a, upstream_model: "mock-chat?status=429&retry_after=1&fail_first=1" }}
  - {{ name: a-slow, provider: a-short, upstream_model: "mock-chat?latency_ms=2000" }}
  - {{ name: a-cut-early, provider: a, upstream_model: "mock-chat?cut_after=0" }}
  - {{ name: a-cut-late, provider: a, upstream_model: "mock-chat?cut_after=3" }}
  - {{ name: b-ok, provider: b, upstream_model: mock-chat }}
  - {{ name: lat-slow, provider: a, upstream_model: "mock-chat?latency_ms=40" }}
  - {{ name: lat-fast, provider: b, upstream_model: "mock-chat?latency_ms=2" }}
  - {{ name: eq-1, provider: a, upstream_model: "mock-chat?latency_ms=10" }}
  - {{ name: eq-2, provider: b, upstream_model: "mock-chat?latency_ms=10" }}
  - {{ name: local-1, provider: local }}
  - {{ name: local-2, provider: local }}
  - {{ name: a-late, provider: a, upstream_model: "mock-chat?ttft_ms=1500" }}
  - {{ name: a-recovers, provider: a, upstream_model: "mock-chat?status=503&fail_first=2" }}
virtual_models:
  - name: vm-fallback
    targets: [{{ model: a-503, priority: 0 }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
  - name: vm-retry
    targets: [{{ model: a-429-once }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 2, max_retry_after: 5s }}
  - name: vm-timeout
    targets: [{{ model: a-slow }}, {{ model: b-ok, priority: 1 }}]
  - name: vm-health
    targets: [{{ model: a-503 }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
    health: {{ failures: 2, window: 1s }}
  - name: vm-weighted
    strategy: weighted
    targets: [{{ model: local-1, weight: 80 }}, {{ model: local-2, weight: 20 }}]
  - name: vm-sticky
    strategy: weighted
    sticky: {{ header: x-session-id }}
    targets: [{{ model: local-1, weight: 50 }}, {{ model: local-2, weight: 50 }}]
  - name: vm-latency
    strategy: latency
    targets: [{{ model: lat-slow }}, {{ model: lat-fast }}]
  - name: vm-equal
    strategy: latency
    targets: [{{ model: eq-1 }}, {{ model: eq-2 }}]
  - name: vm-stream-early
    targets: [{{ model: a-cut-early }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
  - name: vm-stream-late
    targets: [{{ model: a-cut-late }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
  - name: vm-first-chunk
    targets: [{{ model: a-late }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
    first_chunk_timeout: 300ms
  - name: vm-first-chunk-patient
    targets: [{{ model: a-late, first_chunk_timeout: 5s }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
    first_chunk_timeout: 300ms
  - name: vm-cut-health
    targets: [{{ model: a-cut-late }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
    health: {{ failures: 2, window: 1m }}
  - name: vm-probe
    targets: [{{ model: a-recovers }}, {{ model: b-ok, priority: 1 }}]
    retry: {{ retries: 0 }}
    health: {{ failures: 2, window: 1m, cooldown: 1s }}
keys:
  - {{ id: k, hash: "{hash}", principal: tester, models: ["vm-*"] }}
policy:
  rules:
    - {{ name: ops, principals: [tester], admin: true }}
"#,
        a = a.base(),
        b = b.base(),
        hash = hash(KEY),
    )
}

async fn setup() -> (Mock, Mock, Gateway) {
    let a = start_mock(None).await;
    let b = start_mock(None).await;
    let gw = start_gateway_with(|db| config(&a, &b, db)).await;
    (a, b, gw)
}

async fn ask(gw: &Gateway, model: &str, extra: &[(&str, &str)]) -> (u16, String, Value) {
    let mut req = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body(model, "route me"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let served = resp
        .headers()
        .get("x-tollgate-resolved-model")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, served, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn primary_503_is_served_by_the_fallback_and_recorded() {
    let (_a, _b, mut gw) = setup().await;
    let (status, served, body) = ask(&gw, "vm-fallback", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served, "b/mock-chat");
    // The caller may use the virtual model, not its targets.
    let (status, _, _) = ask(&gw, "b-ok", &[]).await;
    assert_eq!(status, 403);
    let models: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"vm-fallback") && !ids.contains(&"b-ok"),
        "{ids:?}"
    );

    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    let r = recs
        .iter()
        .find(|r| r.requested_model == "vm-fallback")
        .unwrap();
    assert_eq!(
        (r.provider.as_str(), r.upstream_model.as_str(), r.status),
        ("b", "mock-chat", 200)
    );
    let attempts: Value = serde_json::from_str(&r.attempts).unwrap();
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["target"], "a/mock-chat?status=503");
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(attempts.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_on_the_same_target() {
    let (a, _b, gw) = setup().await;
    let start = Instant::now();
    let (status, served, _) = ask(&gw, "vm-retry", &[]).await;
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert_eq!(served, "a/mock-chat?status=429&retry_after=1&fail_first=1");
    assert!(
        took >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(a.received().await.len(), 2);
}

#[tokio::test]
async fn timeout_falls_back() {
    let (_a, _b, gw) = setup().await;
    let start = Instant::now();
    let (status, served, _) = ask(&gw, "vm-timeout", &[]).await;
    assert_eq!((status, served.as_str()), (200, "b/mock-chat"));
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn unhealthy_target_goes_last_then_recovers() {
    let (a, _b, gw) = setup().await;
    for _ in 0..2 {
        assert_eq!(ask(&gw, "vm-health", &[]).await.0, 200);
    }
    assert_eq!(
        a.received().await.len(),
        2,
        "both tries hit the primary first"
    );
    // Two failures inside the 1 s window: the primary is now tried last.
    for _ in 0..3 {
        let (status, served, _) = ask(&gw, "vm-health", &[]).await;
        assert_eq!((status, served.as_str()), (200, "b/mock-chat"));
    }
    assert_eq!(
        a.received().await.len(),
        2,
        "unhealthy primary was not skipped"
    );
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("tollgate_target_healthy{virtual_model=\"vm-health\",target=\"a/mock-chat?status=503\"} 0"),
        "{metrics}"
    );
    // Failures age out of the window: the gauge says so at the next scrape,
    // before any traffic, and the primary is tried first again.
    skip_clock(Duration::from_millis(1100)).await;
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains("tollgate_target_healthy{virtual_model=\"vm-health\",target=\"a/mock-chat?status=503\"} 1"),
        "{metrics}"
    );
    ask(&gw, "vm-health", &[]).await;
    assert_eq!(a.received().await.len(), 3);
}

#[tokio::test]
async fn weighted_split_within_three_percent() {
    let (_a, _b, gw) = setup().await;
    let total = 10_000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let per = total / 20;
    for _ in 0..20 {
        let url = gw.url("/v1/chat/completions");
        tasks.spawn(async move {
            let c = client();
            let mut local: HashMap<String, usize> = HashMap::new();
            for _ in 0..per {
                let resp = c
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&chat_body("vm-weighted", "w"))
                    .send()
                    .await
                    .unwrap();
                let served = resp.headers()["x-tollgate-resolved-model"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                *local.entry(served).or_default() += 1;
            }
            local
        });
    }
    while let Some(local) = tasks.join_next().await {
        for (k, v) in local.unwrap() {
            *counts.entry(k).or_default() += v;
        }
    }
    let first = counts.get("local/local-1").copied().unwrap_or(0) as f64 / total as f64;
    let second = counts.get("local/local-2").copied().unwrap_or(0) as f64 / total as f64;
    assert!((first - 0.80).abs() <= 0.03, "{counts:?}");
    assert!((second - 0.20).abs() <= 0.03, "{counts:?}");
}

#[tokio::test]
async fn sticky_sessions_keep_their_target() {
    let (_a, _b, gw) = setup().await;
    let mut seen_targets = std::collections::HashSet::new();
    for session in 0..20 {
        let id = format!("session-{session}");
        let (_, first, _) = ask(&gw, "vm-sticky", &[("x-session-id", &id)]).await;
        for _ in 0..5 {
            let (_, again, _) = ask(&gw, "vm-sticky", &[("x-session-id", &id)]).await;
            assert_eq!(again, first, "{id} moved");
        }
        seen_targets.insert(first);
    }
    assert_eq!(seen_targets.len(), 2, "sessions spread over both targets");
}

#[tokio::test]
async fn latency_strategy_moves_to_the_faster_target_and_does_not_flap() {
    let (_a, _b, gw) = setup().await;
    let mut served = Vec::new();
    for _ in 0..20 {
        served.push(ask(&gw, "vm-latency", &[]).await.1);
    }
    assert!(
        served[..3].iter().all(|s| s.contains("latency_ms=40")),
        "gathers samples first: {served:?}"
    );
    assert!(
        served[10..].iter().all(|s| s.contains("latency_ms=2")),
        "{served:?}"
    );

    let mut picks = Vec::new();
    for _ in 0..30 {
        picks.push(ask(&gw, "vm-equal", &[]).await.1);
    }
    let switches = picks.windows(2).filter(|w| w[0] != w[1]).count();
    // One switch when the first target has its samples and the second has
    // none; after that, equal targets (within 1.2×) keep the current pick.
    assert!(switches <= 2, "flapping between equal targets: {picks:?}");
}

#[tokio::test]
async fn streams_fall_back_only_before_the_first_byte() {
    let (_a, _b, gw) = setup().await;
    let mut body = chat_body("vm-stream-early", "stream");
    body["stream"] = json!(true);
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-tollgate-resolved-model"], "b/mock-chat");
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    body["model"] = json!("vm-stream-late");
    let resp = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-tollgate-resolved-model"],
        "a/mock-chat?cut_after=3"
    );
    let events = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert_eq!(
        events.len(),
        4,
        "three chunks, then the error event: {events:?}"
    );
}

async fn stream(gw: &Gateway, model: &str) -> (String, Vec<String>) {
    let mut body = chat_body(model, "stream");
    body["stream"] = json!(true);
    let resp = post(gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(resp.status(), 200);
    let served = resp.headers()["x-tollgate-resolved-model"]
        .to_str()
        .unwrap()
        .to_owned();
    (served, sse_data(&resp.text().await.unwrap()))
}

/// The admin routing view's entry for one target of one virtual model.
async fn target_view(gw: &Gateway, vm: &str, target: &str) -> Value {
    let resp = client()
        .get(gw.admin_url("/admin/v1/routing"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.unwrap();
    view["virtual_models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == vm)
        .and_then(|m| m["targets"].as_array())
        .and_then(|ts| ts.iter().find(|t| t["target"] == target))
        .cloned()
        .unwrap_or_else(|| panic!("{vm}/{target} not in {view}"))
}

/// Waits (up to [`SETTLE`]) for a target's breaker to read `state`: a
/// stream's outcome is recorded when the gateway finishes it, just after
/// its last byte.
async fn wait_health(gw: &Gateway, vm: &str, target: &str, state: &str) -> Value {
    let view = poll_until(
        async || target_view(gw, vm, target).await,
        |view| view["health"] == state,
    )
    .await;
    assert_eq!(view["health"], state, "{vm}/{target} never {state}: {view}");
    view
}

#[tokio::test]
async fn a_late_first_chunk_falls_back_before_any_byte() {
    let (a, _b, gw) = setup().await;
    let start = Instant::now();
    let (served, events) = stream(&gw, "vm-first-chunk").await;
    assert_eq!(
        served, "b/mock-chat",
        "headers came, the first chunk did not"
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        start.elapsed() < Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        a.received().await.len(),
        1,
        "the late target was tried first"
    );
    let view = target_view(&gw, "vm-first-chunk", "a/mock-chat?ttft_ms=1500").await;
    assert_eq!(view["last_failure"]["error"], "upstream_timeout", "{view}");
    assert_eq!(view["recent_failures"], 1, "{view}");

    // A target's own timeout replaces the virtual model's.
    let (served, events) = stream(&gw, "vm-first-chunk-patient").await;
    assert_eq!(served, "a/mock-chat?ttft_ms=1500");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    // Not a stream: the timeout does not apply.
    let (status, served, _) = ask(&gw, "vm-first-chunk", &[]).await;
    assert_eq!((status, served.as_str()), (200, "a/mock-chat?ttft_ms=1500"));
}

#[tokio::test]
async fn a_stream_cut_midway_counts_against_the_target() {
    let (_a, _b, gw) = setup().await;
    let target = "a/mock-chat?cut_after=3";
    for cuts in 1..=2 {
        let (served, events) = stream(&gw, "vm-cut-health").await;
        assert_eq!(served, target, "a cut stream does not open it by itself");
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "stream_interrupted");
        // Each cut is recorded as the stream finishes, just after its last byte.
        let view = poll_until(
            async || target_view(&gw, "vm-cut-health", target).await,
            |view| view["failures_total"] == cuts,
        )
        .await;
        assert_eq!(view["failures_total"], cuts, "{view}");
    }
    let view = wait_health(&gw, "vm-cut-health", target, "open").await;
    assert_eq!(view["recent_failures"], 2, "{view}");
    assert_eq!(view["failures_total"], 2, "{view}");
    assert_eq!(
        view["last_failure"]["error"], "upstream_stream_interrupted",
        "{view}"
    );
    assert!(
        view["last_failure"]["at_ms"].as_i64().unwrap() > 0,
        "{view}"
    );
    assert!(view["latency_ms"].as_f64().unwrap() > 0.0, "{view}");
    // Two cuts opened the breaker: the next stream starts on the fallback.
    let (served, events) = stream(&gw, "vm-cut-health").await;
    assert_eq!(served, "b/mock-chat");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let b = target_view(&gw, "vm-cut-health", "b/mock-chat").await;
    assert_eq!(b["health"], "healthy", "{b}");
}

#[tokio::test]
async fn an_open_target_gets_one_probe_after_its_cooldown() {
    let (a, _b, gw) = setup().await;
    let target = "a/mock-chat?status=503&fail_first=2";
    for _ in 0..2 {
        let (status, served, _) = ask(&gw, "vm-probe", &[]).await;
        assert_eq!((status, served.as_str()), (200, "b/mock-chat"));
    }
    let view = target_view(&gw, "vm-probe", target).await;
    assert_eq!(view["health"], "open", "{view}");
    assert_eq!(view["last_failure"]["status"], 503, "{view}");
    assert_eq!(view["last_failure"]["error"], "upstream_status", "{view}");
    // The upstream has recovered, but the breaker stays open for the
    // cooldown: nothing reaches it.
    ask(&gw, "vm-probe", &[]).await;
    assert_eq!(a.received().await.len(), 2);
    skip_clock(Duration::from_millis(1100)).await;
    assert_eq!(
        target_view(&gw, "vm-probe", target).await["health"],
        "half_open"
    );
    // The probe succeeds and closes the breaker.
    let (status, served, _) = ask(&gw, "vm-probe", &[]).await;
    assert_eq!((status, served.as_str()), (200, target));
    let view = target_view(&gw, "vm-probe", target).await;
    assert_eq!(view["health"], "healthy", "{view}");
    assert_eq!(view["recent_failures"], 0, "{view}");
    assert_eq!(view["failures_total"], 2, "{view}");
}

#[tokio::test]
async fn a_failed_probe_reopens_at_once() {
    let (a, _b, gw) = setup().await;
    for _ in 0..2 {
        ask(&gw, "vm-health", &[]).await;
    }
    skip_clock(Duration::from_millis(1100)).await;
    // The probe fails (and falls back); one failure re-opens the breaker,
    // where counting failures in the window would need two.
    let (status, served, _) = ask(&gw, "vm-health", &[]).await;
    assert_eq!((status, served.as_str()), (200, "b/mock-chat"));
    assert_eq!(a.received().await.len(), 3, "the probe reached the primary");
    for _ in 0..3 {
        ask(&gw, "vm-health", &[]).await;
    }
    assert_eq!(a.received().await.len(), 3, "re-opened: no more tries");
    let view = target_view(&gw, "vm-health", "a/mock-chat?status=503").await;
    assert_eq!(view["health"], "open", "{view}");
}

#[tokio::test]
async fn the_routing_view_needs_the_admin_grant() {
    let (_a, _b, gw) = setup().await;
    let url = gw.admin_url("/admin/v1/routing");
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(&url)
        .bearer_auth("tg-not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let view = target_view(&gw, "vm-fallback", "b/mock-chat").await;
    assert_eq!(view["health"], "healthy", "{view}");
    assert_eq!(view["model"], "b-ok", "{view}");
    assert_eq!(view["priority"], 1, "{view}");
    assert!(view["latency_ms"].is_null(), "no traffic yet: {view}");
}
