//! Rate limits, token quotas and budgets on one node: exact under 200
//! concurrent clients, headers, shadow mode, in-flight caps, and a budget
//! that cuts a stream and survives a restart; hourly and daily caps, soft
//! threshold alerts, a caller's own counters and the admin's reset.

use crate::common;

use std::time::Duration;

use common::echo::start_echo;
use common::*;
use serde_json::{json, Value};

/// Fixed minute windows: start a minute-window test early in a minute, so
/// the burst cannot straddle two windows. The gateways run in this process,
/// so the wall clock moves forward to the next minute (core's test clock)
/// instead of the test sleeping up to 16 s.
async fn early_in_minute() {
    let secs = (tollgate::store::now_ms() / 1000) % 60;
    if secs > 45 {
        tollgate_core::clock::advance_wall(Duration::from_secs(61 - secs as u64));
    }
}

async fn start_with_limits(mock: &Mock, limits: &str) -> Gateway {
    let dead = dead_addr().await;
    let limits = limits.to_string();
    start_gateway_with(move |db| format!("{}\nlimits:\n{limits}", standard_config(mock, dead, db)))
        .await
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn burst(gw: &Gateway, n: usize, body: Value) -> Vec<(u16, Value)> {
    let client = client();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let req = client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&body);
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_limit_is_exact_under_200_concurrent_clients() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_with_limits(
        &mock,
        "  rules:\n    - name: per-key-rpm\n      per: [key]\n      requests_per_minute: 50\n",
    )
    .await;
    let results = burst(&gw, 200, chat_body("chat-local", "hello there")).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(ok, 50, "a cap of 50 admits exactly 50");
    assert_eq!(limited.len(), 150);
    let err = &limited[0].1["error"];
    assert_eq!(err["code"], "rate_limit_exceeded");
    assert_eq!(err["type"], "rate_limit_error");
    assert!(
        err["message"].as_str().unwrap().contains("per-key-rpm"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_limit_spend_stays_within_the_bound_under_200_concurrent_clients() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_with_limits(
        &mock,
        "  rules:\n    - name: team-tpm\n      match: { groups: [eng] }\n      per: [group]\n      tokens_per_minute: 2000\n",
    )
    .await;
    let mut body = chat_body("chat-local", "hello there");
    body["max_tokens"] = json!(16);
    let results = burst(&gw, 200, body).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let spent: i64 = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["usage"]["total_tokens"].as_i64().unwrap())
        .sum();
    // Every request reserves its estimate (tokenizer prompt + max_tokens)
    // and uses at most that, so the spend never passes the cap…
    assert!(spent <= 2000, "spent {spent} tokens of 2000");
    // …and the reservations (about 24 tokens each) admit at least 2000/24.
    assert!(ok >= 2000 / 24, "only {ok} admitted");
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 429));
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    let ledger_spend: i64 = recs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.prompt_tokens + r.completion_tokens)
        .sum();
    assert_eq!(ledger_spend, spent);
    let rejected = recs.iter().filter(|r| r.error == "rate_limited").count();
    assert_eq!(rejected, 200 - ok);
    // Each record shows its decision: an admitted one the tokens it finally
    // charged, a rejected one the counter that refused it.
    for r in &recs {
        let d: serde_json::Value = serde_json::from_str(&r.limits).unwrap();
        if r.status == 200 {
            let charged = r.prompt_tokens + r.completion_tokens;
            assert_eq!(
                d,
                json!([["team-tpm", "tokens_per_minute", "allowed", charged]]),
                "{}",
                r.limits
            );
        } else {
            assert_eq!(d[0][0], "team-tpm", "{}", r.limits);
            assert_eq!(d[0][2], "rejected", "{}", r.limits);
            assert_eq!(d[0][4], "group=eng|", "{}", r.limits);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_max_tokens_the_reservation_caps_the_answer_so_the_bound_is_exact() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_with_limits(
        &mock,
        "  default_max_tokens: 5\n  rules:\n    - name: team-tpm\n      match: { groups: [eng] }\n      per: [group]\n      tokens_per_minute: 300\n",
    )
    .await;
    // No max_tokens: the mock would write 16 tokens; the gateway reserves
    // default_max_tokens and tells the upstream so (`max_tokens` to the
    // in-process mock, `max_completion_tokens` to the OpenAI-kind one).
    let mut results = burst(&gw, 20, chat_body("chat-local", "hello there")).await;
    results.extend(burst(&gw, 20, chat_body("chat-up", "hello there")).await);
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert!(!ok.is_empty());
    for b in &ok {
        assert_eq!(b["usage"]["completion_tokens"], 5, "{b}");
        assert_eq!(b["choices"][0]["finish_reason"], "length", "{b}");
    }
    let spent: i64 = ok
        .iter()
        .map(|b| b["usage"]["total_tokens"].as_i64().unwrap())
        .sum();
    assert!(spent <= 300, "spent {spent} of 300");
    gw.stop().await;
}

#[tokio::test]
async fn headers_on_success_and_rejection() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_with_limits(
        &mock,
        "  rules:\n    - name: alice\n      match: { principals: [alice] }\n      requests_per_minute: 3\n      tokens_per_minute: 100000\n",
    )
    .await;
    let mut body = chat_body("chat-local", "hello");
    body["max_tokens"] = json!(10);
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "3");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "2");
    assert!(header(&r, "x-ratelimit-reset-requests").ends_with('s'));
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "100000");
    let remaining: f64 = header(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(
        remaining < 100000.0 - 10.0 && remaining > 99000.0,
        "{remaining}"
    );
    assert!(header(&r, "x-ratelimit-reset-tokens").ends_with('s'));
    post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "3");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["message"].as_str().unwrap().contains("`alice`"));
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requests_per_minute"));
    // Another principal is not limited by this rule and sees no headers.
    let r = post(&gw, "/v1/chat/completions", Some(KEY_LIMITED), &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "");
}

#[tokio::test]
async fn shadow_mode_rejects_nothing_but_counts() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_with_limits(
        &mock,
        "  rules:\n    - name: trial-shadow\n      mode: shadow\n      per: [principal]\n      requests_per_minute: 2\n",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
    }
    let m = metrics_text(&gw).await;
    let line = m
        .lines()
        .find(|l| {
            l.starts_with("tollgate_limit_decisions_total")
                && l.contains("trial-shadow")
                && l.contains("shadow_rejected")
        })
        .unwrap_or_else(|| panic!("no shadow metric in\n{m}"));
    assert!(line.ends_with(" 3"), "{line}");
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    let shadow = recs
        .iter()
        .filter(|r| r.limits.contains("shadow_rejected"))
        .count();
    assert_eq!(shadow, 3);
}

#[tokio::test]
async fn concurrent_requests_in_flight_are_capped() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let gw = start_with_limits(
        &mock,
        "  rules:\n    - name: two-at-once\n      per: [key]\n      concurrent: 2\n",
    )
    .await;
    let client = client();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let req = client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .header("x-mock-latency-ms", "600")
                .json(&chat_body("chat-up", "hi"));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4);
    // Released when they finished.
    assert_eq!(chat_status(&gw, KEY, "chat-up").await, 200);
}

#[tokio::test]
async fn budget_cuts_a_stream_and_survives_a_restart() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let limits = "  default_max_tokens: 10\n  rules:\n    - name: alice-budget\n      match: { principals: [alice] }\n      per: [principal]\n      cost_per_day: 0.001\n";
    let mut gw = start_with_limits(&mock, limits).await;
    // chat-up costs 10/Mtok in and 20/Mtok out: the reservation (~8 prompt
    // + 10 completion tokens) fits, the 200-token answer does not.
    let r = paced_stream(&gw, "spend it all", 400, 200).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "rate_limit_exceeded", "{text}");
    assert!(last["error"]["message"]
        .as_str()
        .unwrap()
        .contains("alice-budget"));
    let content_events = events.len() - 1;
    assert!(
        content_events > 1 && content_events < 100,
        "{content_events} events before the cut"
    );
    assert!(!text.contains("[DONE]"));
    // The budget is spent: the next request is refused…
    assert_eq!(chat_status(&gw, KEY, "chat-up").await, 429);
    let store = gw.stop().await;
    let recs = wait_records(&store, 2).await;
    let cut = recs.iter().find(|r| r.stream).unwrap();
    assert_eq!((cut.status, cut.error.as_str()), (429, "rate_limited"));
    assert!(
        cut.cost > 0.0005 && cut.cost <= 0.001 + 32.0 * 20.0 / 1e6,
        "{}",
        cut.cost
    );
    store.close().await;
    // …and still after a restart: the counter is rebuilt from the ledger.
    let running = tollgate::server::start(&gw.config_path).await.unwrap();
    gw.addr = running.addr;
    gw.running = Some(running);
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-up", "x"),
    )
    .await;
    assert_eq!(r.status(), 429);
    let b: Value = r.json().await.unwrap();
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cost_per_day"));
    // Other principals are untouched.
    assert_eq!(chat_status(&gw, KEY_LIMITED, "chat-local").await, 200);
    gw.stop().await;
}

/// A stream near its budget is cut when its tokens cross the cap, not a
/// whole 32-token reservation step before (issue 25: a 0.50 budget stopped
/// at 0.33).
#[tokio::test]
async fn a_stream_spends_its_budget_up_to_the_cap() {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let limits = "  default_max_tokens: 10\n  rules:\n    - name: alice-budget\n      match: { principals: [alice] }\n      per: [principal]\n      cost_per_day: 0.002\n";
    let mut gw = start_with_limits(&mock, limits).await;
    // chat-up: 10/Mtok in, 20/Mtok out. The reservation (~8 prompt + 10
    // completion tokens) is ~0.0003; 32-token steps of 0.00064 reach
    // 0.00156, and a third would pass 0.002.
    let r = paced_stream(&gw, "spend it all", 400, 300).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last: Value = serde_json::from_str(sse_data(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "rate_limit_exceeded", "{text}");
    let store = gw.stop().await;
    let recs = wait_records(&store, 1).await;
    let cut = recs.iter().find(|r| r.stream).unwrap();
    assert_eq!((cut.status, cut.error.as_str()), (429, "rate_limited"));
    // Cut within a few tokens of the cap (a read carries a token or a few).
    assert!(
        cut.cost > 0.002 - 8.0 * 20.0 / 1e6 && cut.cost <= 0.002 + 32.0 * 20.0 / 1e6,
        "{}",
        cut.cost
    );
    store.close().await;
}

/// A reload rebuilds each caller's cached counter list from the new rules
/// (a changed cap applies at once, a new rule starts counting) and keeps
/// every count.
#[tokio::test]
async fn a_reload_applies_new_caps_and_keeps_the_counts() {
    early_in_minute().await;
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let mut gw = start_with_limits(
        &mock,
        "  rules:\n    - name: alice\n      match: { principals: [alice] }\n      requests_per_minute: 3\n",
    )
    .await;
    let body = chat_body("chat-local", "hello");
    for _ in 0..2 {
        let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
        assert_eq!(r.status(), 200);
    }
    let path = gw.dir.path().join("tollgate.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("requests_per_minute: 3\n", "requests_per_minute: 4\n")
        + "    - name: alice-day\n      match: { principals: [alice] }\n      cost_per_day: 1000\n";
    std::fs::write(&path, text).unwrap();
    gw.running().reload().unwrap();
    // The cap is 4 now and the two requests before the reload still count.
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "4");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "1");
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(r.status(), 200);
    let r = post(&gw, "/v1/chat/completions", Some(KEY), &body).await;
    assert_eq!(r.status(), 429);
    // The new rule charged the requests after the reload: its budget
    // decision is in their ledger records.
    let store = gw.stop().await;
    let recs = store.usage_since(0).await.unwrap();
    let with_budget = recs
        .iter()
        .filter(|r| {
            r.limits
                .contains("\"alice-day\",\"cost_per_day\",\"allowed\"")
        })
        .count();
    assert_eq!(
        with_budget,
        2,
        "{:?}",
        recs.iter().map(|r| &r.limits).collect::<Vec<_>>()
    );
}

/// Fixed hour windows: a test of hourly counters starts clear of an hour's
/// end (the wall clock moves to the next hour instead of waiting).
fn early_in_hour() {
    let secs = (tollgate::store::now_ms() / 1000) % 3600;
    if secs > 3500 {
        tollgate_core::clock::advance_wall(Duration::from_secs(3601 - secs as u64));
    }
}

async fn get_json(url: String, key: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn counter<'a>(list: &'a Value, rule: &str, cap: &str, partition: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == rule && c["cap"] == cap && c["partition"] == partition)
        .unwrap_or_else(|| panic!("no {rule}/{cap}/{partition} in {list}"))
}

#[tokio::test]
async fn hourly_and_daily_caps_are_exact_restored_readable_by_their_owner_and_reset_by_an_admin() {
    early_in_hour();
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let hook = start_echo().await;
    let limits = format!(
        "  alerts: {{ at_percent: 50, webhook: \"{}/hook\" }}\n  rules:\n    - name: hourly\n      per: [principal]\n      requests_per_hour: 4\n      tokens_per_day: 1000000\n      tokens_per_month: 50000000\n    - name: bob-month\n      match: {{ principals: [bob] }}\n      tokens_per_month: 1000000\n      alert_at_percent: 100\npolicy:\n  rules:\n    - {{ name: ops, principals: [alice], admin: true }}\n",
        hook.base()
    );
    let mut gw = start_with_limits(&mock, &limits).await;
    for _ in 0..4 {
        assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200);
    }
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 429, "4 per hour");
    // 50 % of 4 was crossed by the second request: one alert this hour.
    let posted = poll_until(async || hook.received(), |posted| !posted.is_empty()).await;
    let alerts: Vec<Value> = posted
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let hourly: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["cap"] == "requests_per_hour")
        .collect();
    assert_eq!(hourly.len(), 1, "{alerts:?}");
    assert_eq!(hourly[0]["type"], "limit_threshold_reached");
    assert_eq!(hourly[0]["rule"], "hourly");
    assert_eq!(hourly[0]["partition"], "principal=alice|");
    assert_eq!(
        (hourly[0]["limit"].as_f64(), hourly[0]["used"].as_f64()),
        (Some(4.0), Some(2.0))
    );
    assert_eq!(posted[0].method, "POST");
    let metrics = metrics_text(&gw).await;
    assert!(
        metrics.contains(
            "tollgate_limit_threshold_reached_total{rule=\"hourly\",cap=\"requests_per_hour\"} 1"
        ),
        "{metrics}"
    );

    // The hour's count survives a restart (restored from the ledger).
    let store = gw.stop().await;
    wait_records(&store, 5).await;
    store.close().await;
    let running = tollgate::server::start(&gw.config_path).await.unwrap();
    gw.addr = running.addr;
    gw.admin = running.admin_addr;
    gw.running = Some(running);
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 429, "restored");

    // Each caller reads its own counters with its own key.
    let (status, mine) = get_json(gw.url("/v1/me/limits"), Some(KEY)).await;
    assert_eq!(status, 200, "{mine}");
    let rph = counter(
        &mine["data"],
        "hourly",
        "requests_per_hour",
        "principal=alice|",
    );
    assert_eq!(
        (rph["used"].as_f64(), rph["remaining"].as_f64()),
        (Some(4.0), Some(0.0))
    );
    assert_eq!(
        (rph["limit"].as_f64(), rph["window"].as_str()),
        (Some(4.0), Some("hour"))
    );
    assert!(rph["resets_at_ms"].as_i64().unwrap() > tollgate::store::now_ms());
    let tpd = counter(
        &mine["data"],
        "hourly",
        "tokens_per_day",
        "principal=alice|",
    );
    assert!(tpd["used"].as_f64().unwrap() > 0.0, "{tpd}");
    assert!(
        mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["partition"] != "principal=bob|" && c["rule"] != "bob-month"),
        "only alice's own counters: {mine}"
    );
    let (_, bobs) = get_json(gw.url("/v1/me/limits?model=chat-local"), Some(KEY_LIMITED)).await;
    let bob_rph = counter(
        &bobs["data"],
        "hourly",
        "requests_per_hour",
        "principal=bob|",
    );
    assert_eq!(bob_rph["remaining"].as_f64(), Some(4.0));
    counter(&bobs["data"], "bob-month", "tokens_per_month", "");
    assert_eq!(get_json(gw.url("/v1/me/limits"), None).await.0, 401);

    // The admin view: grant required; lists and resets.
    let admin = |q: &str| gw.admin_url(&format!("/admin/v1/limits{q}"));
    assert_eq!(get_json(admin(""), None).await.0, 401);
    assert_eq!(get_json(admin(""), Some(KEY_LIMITED)).await.0, 403);
    let (status, all) = get_json(admin("?rule=hourly"), Some(KEY)).await;
    assert_eq!(status, 200, "{all}");
    let listed = counter(
        &all["counters"],
        "hourly",
        "requests_per_hour",
        "principal=alice|",
    );
    assert_eq!(listed["used"].as_f64(), Some(4.0));
    assert_eq!(listed["store"], "local");
    assert!(all["counters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["rule"] == "hourly"));
    let reset = client()
        .delete(admin(
            "?rule=hourly&cap=requests_per_hour&partition=principal%3Dalice%7C",
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    let body: Value = reset.json().await.unwrap();
    assert_eq!(body["reset"], 1, "{body}");
    assert_eq!(chat_status(&gw, KEY, "chat-local").await, 200, "reset");
    let (_, mine) = get_json(gw.url("/v1/me/limits?model=chat-local"), Some(KEY)).await;
    let rph = counter(
        &mine["data"],
        "hourly",
        "requests_per_hour",
        "principal=alice|",
    );
    assert_eq!(rph["used"].as_f64(), Some(1.0));
    let tpd = counter(
        &mine["data"],
        "hourly",
        "tokens_per_day",
        "principal=alice|",
    );
    assert!(
        tpd["used"].as_f64().unwrap() > 0.0,
        "other caps keep their counts: {tpd}"
    );
    gw.stop().await;
}
