//! The ledger on both stores with real servers (SQLite file, PostgreSQL
//! started by the test): the usage API's figures against sums computed from
//! the responses, and a PostgreSQL outage in the middle of a load.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::pg::Pg;
use common::*;
use serde_json::Value;
use tollgate::store::Store;

/// The standard config on `db`, with alice (KEY) holding the admin grant.
fn config(mock: &Mock, dead: std::net::SocketAddr, db: &str, extra_ledger: &str) -> String {
    let base = standard_config(mock, dead, db);
    let base = base.replace(
        "ledger:\n  flush_interval: 20ms\n",
        &format!("ledger:\n  flush_interval: 20ms\n{extra_ledger}"),
    );
    format!(
        "{base}policy:\n  rules:\n    - name: ops\n      principals: [alice]\n      admin: true\n"
    )
}

#[derive(Default, Debug, PartialEq)]
struct Expect {
    requests: i64,
    errors: i64,
    input: i64,
    output: i64,
    cost: f64,
}

async fn usage_api_matches(db: Option<String>) {
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let mut gw =
        start_gateway_with(|sqlite| config(&mock, dead, db.as_deref().unwrap_or(sqlite), "")).await;
    // (key, principal, model, price in, price out)
    let plan = [
        (KEY, "alice", "chat-local", 1.0, 2.0),
        (KEY, "alice", "chat-up", 10.0, 20.0),
        (KEY_LIMITED, "bob", "chat-local", 1.0, 2.0),
        (KEY, "alice", "chat-dead", 0.0, 0.0),
        (KEY_LIMITED, "bob", "chat-up", 0.0, 0.0),
    ];
    let mut by_principal: BTreeMap<&str, Expect> = BTreeMap::new();
    let mut by_model: BTreeMap<&str, Expect> = BTreeMap::new();
    for i in 0..30 {
        let (key, who, model, pin, pout) = plan[i % plan.len()];
        let text = "word ".repeat(1 + i % 7);
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(key),
            &chat_body(model, &text),
        )
        .await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let input = body["usage"]["prompt_tokens"].as_i64().unwrap_or(0);
        let output = body["usage"]["completion_tokens"].as_i64().unwrap_or(0);
        for e in [
            by_principal.entry(who).or_default(),
            by_model.entry(model).or_default(),
        ] {
            e.requests += 1;
            e.errors += i64::from(status >= 400);
            e.input += input;
            e.output += output;
            e.cost += (input as f64 * pin + output as f64 * pout) / 1e6;
        }
    }
    assert!(by_principal["alice"].errors > 0 && by_principal["bob"].errors > 0);
    // Everything written before asking.
    let store = Store::open(db.as_deref().unwrap_or(&gw.db_url))
        .await
        .unwrap();
    wait_records(&store, 30).await;

    let get = |q: &str, key: Option<&str>| {
        let mut req = client().get(gw.admin_url(&format!("/admin/v1/usage?{q}")));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    assert_eq!(get("group_by=model", None).await.unwrap().status(), 401);
    assert_eq!(
        get("group_by=model", Some(KEY_LIMITED))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        get("group_by=color", Some(KEY)).await.unwrap().status(),
        400
    );

    for (group_by, expect) in [("principal", &by_principal), ("model", &by_model)] {
        let v: Value = get(&format!("group_by={group_by}&from=0"), Some(KEY))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), expect.len(), "{v}");
        for row in rows {
            let e = &expect[row["key"].as_str().unwrap()];
            let got = Expect {
                requests: row["requests"].as_i64().unwrap(),
                errors: row["errors"].as_i64().unwrap(),
                input: row["input_tokens"].as_i64().unwrap(),
                output: row["output_tokens"].as_i64().unwrap(),
                cost: row["cost"].as_f64().unwrap(),
            };
            assert!((got.cost - e.cost).abs() < 1e-9, "{got:?} vs {e:?}");
            assert_eq!(
                (got.requests, got.errors, got.input, got.output),
                (e.requests, e.errors, e.input, e.output),
                "{group_by} {row}"
            );
            assert!(
                row["latency_p50_ms"].as_f64().unwrap() <= row["latency_p99_ms"].as_f64().unwrap()
            );
        }
    }
    // Groups: alice is in `eng`, bob in none; days: all of it today.
    let v: Value = get("group_by=group&from=0", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["", "eng"]);
    let v: Value = get("group_by=day&from=0", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["rows"][0]["requests"], 30);
    // CSV carries the same figures.
    let csv = get("group_by=principal&from=0&format=csv", Some(KEY))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("key,requests,errors,input_tokens,output_tokens,cost"));
    let alice: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("alice,"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(
        alice[1].parse::<i64>().unwrap(),
        by_principal["alice"].requests
    );
    assert_eq!(
        alice[3].parse::<i64>().unwrap(),
        by_principal["alice"].input
    );
    // A window before any request is empty.
    let v: Value = get("group_by=principal&from=0&to=1", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn usage_api_figures_equal_the_sums_sqlite() {
    usage_api_matches(None).await;
}

#[tokio::test]
async fn usage_api_figures_equal_the_sums_postgres() {
    let pg = Pg::start();
    usage_api_matches(Some(pg.url())).await;
}

#[tokio::test]
async fn keys_work_on_postgres() {
    let pg = Pg::start();
    let store = Store::open(&pg.url()).await.unwrap();
    store
        .create_key(
            "k1",
            &hash("tg-pg-key"),
            "pat",
            tollgate::config::PrincipalKind::User,
            &["eng".into()],
            &["chat-*".into()],
        )
        .await
        .unwrap();
    let rotated = store
        .rotate_key("k1", None, &hash("tg-pg-key-2"), 60_000, None)
        .await
        .unwrap();
    assert_eq!(rotated.new_id, "k1-v2");
    assert!(store.revoke_key("k1").await.unwrap());
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].revoked_ms.is_some() && keys[1].groups == ["eng"]);
    store.close().await;
    // Opening again (migrations already applied) is a no-op.
    Store::open(&pg.url()).await.unwrap().close().await;
}

#[tokio::test]
async fn postgres_stopped_mid_load_loses_nothing_and_duplicates_nothing() {
    let pg = Arc::new(Pg::start());
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let spool = pg.dir().join("ledger.spool.jsonl");
    let extra = format!("  spool_path: {}\n", spool.display());
    let mut gw = start_gateway_with(|_| config(&mock, dead, &pg.url(), &extra)).await;
    let gw_url = gw.url("/v1/chat/completions");
    let served = Arc::new(AtomicUsize::new(0));
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let total = 100_000;
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (served, url, stop) = (served.clone(), gw_url.clone(), stop_load.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) && served.load(Ordering::SeqCst) < total {
                let r = c
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&chat_body("chat-local", "hello"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                served.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    served_at_least(&served, 100).await;
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    let stopped_at = served.load(Ordering::SeqCst);
    // Serve through the outage, then bring the store back.
    served_at_least(&served, stopped_at + 100).await;
    // …and until the writer has noticed and spooled.
    let spooled = metric_appears(&gw, "tollgate_ledger_spooled_total").await;
    assert!(spooled, "records were spooled during the outage");
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.resume())
        .await
        .unwrap();
    // Keep serving a little after the store is back, then stop the load.
    let resumed_at = served.load(Ordering::SeqCst);
    served_at_least(&served, resumed_at + 100).await;
    stop_load.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    gw.stop().await;
    let n = served.load(Ordering::SeqCst);
    let store = Store::open(&pg.url()).await.unwrap();
    let recs = store.usage_since(0).await.unwrap();
    let ids: std::collections::HashSet<&str> = recs.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(recs.len(), n, "one ledger row per request served");
    assert_eq!(ids.len(), n, "no duplicates");
    assert!(std::fs::read_to_string(&spool)
        .unwrap_or_default()
        .is_empty());
}

/// Lines in the spool file (records waiting for the store).
fn spool_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

async fn stop_pg(pg: &Arc<Pg>) {
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
}

async fn resume_pg(pg: &Arc<Pg>) {
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.resume())
        .await
        .unwrap();
}

#[tokio::test]
async fn starts_with_postgres_down_serves_spools_and_catches_up() {
    let pg = Arc::new(Pg::start());
    // A key only the store knows, created while it was up.
    const STORED: &str = "tg-stored-key-carol";
    let store = Store::open(&pg.url()).await.unwrap();
    store
        .create_key(
            "carol",
            &hash(STORED),
            "carol",
            tollgate::config::PrincipalKind::User,
            &[],
            &["chat-*".into()],
        )
        .await
        .unwrap();
    store.close().await;
    stop_pg(&pg).await;

    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let spool = pg.dir().join("ledger.spool.jsonl");
    let extra = format!("  spool_path: {}\n", spool.display());
    let mut gw = start_gateway_with(|_| config(&mock, dead, &pg.url(), &extra)).await;
    let ready = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready while the store is down");
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = post(
            &gw,
            "/v1/chat/completions",
            Some(KEY),
            &chat_body("chat-local", &format!("hello {i}")),
        )
        .await;
        assert_eq!(r.status(), 200);
        ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    // A key the store holds cannot be checked yet: retry, not "invalid".
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(STORED),
        &chat_body("chat-local", "x"),
    )
    .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    // Every record reaches the spool within about a flush interval.
    poll_until(async || spool_lines(&spool), |n| *n >= ids.len()).await;
    assert_eq!(
        spool_lines(&spool),
        ids.len(),
        "spooled while the store is down"
    );

    resume_pg(&pg).await;
    // The store is migrated, its keys loaded and the spool replayed.
    let status = poll_until(
        async || chat_status(&gw, STORED, "chat-local").await,
        |s| *s == 200,
    )
    .await;
    assert_eq!(status, 200, "the store's keys are loaded once it answers");
    assert_eq!(chat_status(&gw, "tg-no-such-key", "chat-local").await, 401);
    let store = Store::open(&pg.url()).await.unwrap();
    let recs = wait_records(&store, ids.len() + 1).await;
    let stored: std::collections::HashSet<&str> =
        recs.iter().map(|r| r.request_id.as_str()).collect();
    for id in &ids {
        assert!(stored.contains(id.as_str()), "record {id} caught up");
    }
    assert_eq!(recs.len(), stored.len(), "no duplicates");
    gw.stop().await;
    assert_eq!(spool_lines(&spool), 0);
}

/// The crash bound from the outage's first second: a gateway process
/// killed (SIGKILL) 3 s after PostgreSQL stopped loses only what it
/// served in about its last `flush_interval` plus one attempt to reach
/// the store; everything older reached the spool and is replayed by the
/// next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_postgres_outage_loses_only_the_last_moments() {
    use std::time::Instant;
    let pg = Arc::new(Pg::start());
    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("ledger.spool.jsonl");
    let cfg = config(
        &mock,
        dead,
        &pg.url(),
        &format!("  spool_path: {}\n", spool.display()),
    )
    // The documented default, so the bound checked is the documented one.
    .replace("flush_interval: 20ms", "flush_interval: 200ms");
    let mut gw = common::proc::spawn_gateway(cfg.clone(), dir.path(), 0).await;
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let served: Arc<std::sync::Mutex<Vec<(String, Instant)>>> = Default::default();
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (served, stop) = (served.clone(), stop_load.clone());
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                let r = c
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&chat_body("chat-local", "hello"))
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() == 200 {
                    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
                    served.lock().unwrap().push((id, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let before = poll_until(async || served.lock().unwrap().len(), |n| *n >= 50).await;
    assert!(before >= 50, "served {before} before the outage");
    stop_pg(&pg).await;
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    gw.kill9();
    let killed = Instant::now();
    stop_load.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let served = std::mem::take(&mut *served.lock().unwrap());
    let in_outage = served.iter().filter(|(_, t)| *t > stopped).count();
    assert!(in_outage > 20, "served {in_outage} during the outage");

    resume_pg(&pg).await;
    let mut gw = common::proc::spawn_gateway(cfg, dir.path(), 1).await;
    let store = Store::open(&pg.url()).await.unwrap();
    poll_until(async || spool_lines(&spool), |n| *n == 0).await;
    assert_eq!(spool_lines(&spool), 0, "the next start replays the spool");
    let stored: std::collections::HashSet<String> = store
        .usage_since(0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    // flush_interval (200 ms) + the store reach (500 ms) + the batch's
    // write to the spool, with room for a loaded test machine (before the
    // fix, everything served since the store stopped was lost).
    let bound = Duration::from_millis(1500);
    let lost: Vec<Duration> = served
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .map(|(_, t)| killed.saturating_duration_since(*t))
        .collect();
    assert!(
        lost.iter().all(|ago| *ago < bound),
        "{} of {} records lost, the oldest served {:?} before the kill ({} in the outage)",
        lost.len(),
        served.len(),
        lost.iter().max(),
        in_outage
    );
    gw.kill9();
}

/// Budgets are restored from the spend the ledger summed per counter and
/// window, not by reading the ledger: with two million usage rows in the
/// current day, the gateway starts quickly and the day's spend is back.
#[tokio::test]
async fn budget_restore_does_not_read_the_ledger() {
    let pg = Pg::start();
    let store = Store::open(&pg.url()).await.unwrap();
    let now = tollgate::store::now_ms();
    let day = now.div_euclid(86_400_000);
    const ROWS: i64 = 2_000_000;
    // The ledger as a day of traffic leaves it: each row charged the
    // budget 1e-6, and the spend the writer summed alongside.
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let generated = std::time::Instant::now();
    // No WAL for the generated rows (the test's server is thrown away).
    sqlx::query("ALTER TABLE usage SET UNLOGGED")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO usage (ts_ms, request_id, principal, key_id, endpoint, requested_model, \
         provider, upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated, \
         cost, status, error, latency_ms, record_id, limits) \
         SELECT $1 - (i % 60000), 'r' || i, 'alice', 'full', 'chat', 'chat-local', 'local', \
         'chat-local', 0, 10, 10, 0, 0.000001, 200, '', 1.0, 'g' || i, \
         '[[\"day-budget\",\"cost_per_day\",\"allowed\",0.000001,\"principal=alice|\",' || $2 || ']]' \
         FROM generate_series(1, $3) AS i",
    )
    .bind(now)
    .bind(day)
    .bind(ROWS)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO budget_spend (win, cap, rule, part, spent) \
         VALUES ($1, 'cost_per_day', 'day-budget', 'principal=alice|', $2)",
    )
    .bind(day)
    .bind(ROWS as f64 * 1e-6)
    .execute(&db)
    .await
    .unwrap();
    println!("{ROWS} rows generated in {:?}", generated.elapsed());
    db.close().await;
    store.close().await;

    let mock = start_mock(Some(UPSTREAM_KEY)).await;
    let dead = dead_addr().await;
    let spool = pg.dir().join("ledger.spool.jsonl");
    let extra = format!("  spool_path: {}\n", spool.display());
    let started = std::time::Instant::now();
    let mut gw = start_gateway_with(|_| {
        // 2.0 spent; what a request reserves (~0.002) does not fit in 2.001.
        format!(
            "{}limits:\n  rules:\n    - {{ name: day-budget, per: [principal], cost_per_day: 2.001 }}\n",
            config(&mock, dead, &pg.url(), &extra)
        )
    })
    .await;
    let took = started.elapsed();
    println!("started in {took:?} over {ROWS} ledger rows");
    assert!(took < Duration::from_secs(2), "start took {took:?}");
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(KEY),
        &chat_body("chat-local", "hello"),
    )
    .await;
    assert_eq!(r.status(), 429, "the day's 2.0 was restored");
    // Another principal's counter starts from zero.
    assert_eq!(chat_status(&gw, KEY_LIMITED, "chat-local").await, 200);
    gw.stop().await;
}

/// Waits until the load workers have been answered `n` times.
async fn served_at_least(served: &AtomicUsize, n: usize) {
    let got = poll_until(async || served.load(Ordering::SeqCst), |got| *got >= n).await;
    assert!(got >= n, "the gateway answered {got} of {n} requests");
}
