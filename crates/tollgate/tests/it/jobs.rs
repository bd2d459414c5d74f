//! Governed Databricks job runs (docs/jobs.md) against the mock's Jobs API:
//! an idempotent retry returns the same run (one run on the mock), a waited
//! run ends, a run past its timeout is cancelled (on the mock), grants are
//! enforced, a run of another job is refused, the credential modes (OAuth
//! client credentials at the mock's token endpoint, a PAT from a named
//! secret) reach the workspace, and every call is a ledger row with its run.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tollgate::mock::server::MockOptions;
use tollgate_core::error::GatewayError;
use tollgate_core::secret::{SecretSource, SecretValue};

use crate::common::*;

const ALICE: &str = "tg-jobs-alice";
const BOB: &str = "tg-jobs-bob";
const CAROL: &str = "tg-jobs-carol";
const CLIENT_ID: &str = "sp-jobs";
const CLIENT_SECRET: &str = "sp-jobs-secret-7d1e";
const PAT: &str = "dapi-jobs-pat-93c1f0";

async fn mock_jobs(mock: &Mock) -> Value {
    client()
        .get(format!("http://{}/_mock/jobs", mock.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn knobs(mock: &Mock, v: Value) {
    let r = client()
        .post(format!("http://{}/_mock/jobs", mock.addr))
        .json(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

fn keys_and_policy() -> String {
    format!(
        r#"keys:
  - {{ id: alice, hash: {ha}, principal: alice, groups: [ml], tenant: acme }}
  - {{ id: bob, hash: {hb}, principal: bob, models: ["*"] }}
  - {{ id: carol, hash: {hc}, principal: carol, groups: [etl] }}
policy:
  rules:
    - {{ name: ml, groups: [ml], jobs: [train, etl] }}
    - {{ name: etl-only, groups: [etl], jobs: [etl] }}
"#,
        ha = hash(ALICE),
        hb = hash(BOB),
        hc = hash(CAROL),
    )
}

async fn post(gw: &Gateway, key: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(gw.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn call(gw: &Gateway, key: &str, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = client()
        .request(method, gw.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn idempotent_trigger_wait_grants_and_oauth() {
    let mock = start_mock_with(MockOptions {
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(CLIENT_SECRET.into()),
        ..Default::default()
    })
    .await;
    let mut gw = start_gateway_with(|db| {
        format!(
            r#"{head}
jobs:
  - name: train
    workspace: http://{addr}/
    job_id: 42
    credential: {{ type: oauth_client_credentials, client_id: {CLIENT_ID}, value: {CLIENT_SECRET} }}
    job_parameters: {{ env: test, size: small }}
    poll_interval: 20ms
    poll_max_interval: 100ms
    timeout: 20s
  - name: etl
    workspace: http://{addr}
    job_id: 43
    credential: {{ type: oauth_client_credentials, client_id: {CLIENT_ID}, value: {CLIENT_SECRET} }}
{kp}"#,
            head = config_head(db),
            addr = mock.addr,
            kp = keys_and_policy(),
        )
    })
    .await;

    // Not granted: 403, and the workspace never sees the call.
    let (s, b) = post(&gw, BOB, "/v1/jobs/train/runs", json!({})).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "job_not_allowed", "{b}");
    let (s, _) = post(&gw, CAROL, "/v1/jobs/train/runs", json!({})).await;
    assert_eq!(s, 403);
    assert_eq!(mock_jobs(&mock).await["run_now"], 0);
    let (s, b) = post(&gw, ALICE, "/v1/jobs/nope/runs", json!({})).await;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("unknown_job")));

    // The same key twice (header): one run on the mock, the same run id.
    let trigger = || async {
        let r = client()
            .post(gw.url("/v1/jobs/train/runs"))
            .bearer_auth(ALICE)
            .header("Idempotency-Key", "wf-1/step-train")
            .json(&json!({"job_parameters": {"size": "large"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    let first = trigger().await;
    let again = trigger().await;
    let run = first["run_id"].as_i64().unwrap();
    assert_eq!(again["run_id"], run, "{first} {again}");
    assert_eq!(first["idempotency_key"], "wf-1/step-train");
    let m = mock_jobs(&mock).await;
    assert_eq!(m["runs"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["run_now"], 2);
    let sent = &m["runs"][0];
    assert_eq!(sent["job_id"], 42);
    assert_eq!(
        sent["job_parameters"],
        json!({"env": "test", "size": "large"})
    );
    let token = sent["idempotency_token"].as_str().unwrap();
    assert_eq!(token.len(), 64, "{token}");
    assert!(!token.contains("wf-1"), "the key is hashed: {token}");

    // A key derived from the caller's run id: again one run, another one.
    let (_, a) = post(
        &gw,
        ALICE,
        "/v1/jobs/train/runs",
        json!({"caller_run_id": "flyte-7"}),
    )
    .await;
    let (_, b) = post(
        &gw,
        ALICE,
        "/v1/jobs/train/runs",
        json!({"caller_run_id": "flyte-7"}),
    )
    .await;
    assert_eq!(a["run_id"], b["run_id"]);
    assert_ne!(a["run_id"], run);
    assert_eq!(a["idempotency_key"], "run:flyte-7");
    assert_eq!(mock_jobs(&mock).await["runs"].as_array().unwrap().len(), 2);

    // Status, then waited until it ends.
    let (s, st) = call(
        &gw,
        ALICE,
        reqwest::Method::GET,
        &format!("/v1/jobs/train/runs/{run}"),
    )
    .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["job"], "train");
    let (s, done) = call(
        &gw,
        ALICE,
        reqwest::Method::GET,
        &format!("/v1/jobs/train/runs/{run}?wait=true&timeout=10"),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["life_cycle_state"], "TERMINATED", "{done}");
    assert_eq!(done["result_state"], "SUCCESS", "{done}");
    assert_eq!(done["done"], true);

    // A trigger that waits, with the job's failure passed on as a state.
    knobs(
        &mock,
        json!({"pending_ms": 10, "run_ms": 50, "result_state": "FAILED"}),
    )
    .await;
    let (s, failed) = post(&gw, ALICE, "/v1/jobs/train/runs", json!({"wait": true})).await;
    assert_eq!(s, 200, "{failed}");
    assert_eq!(failed["result_state"], "FAILED", "{failed}");

    // A run of another job is refused, even to a caller granted both.
    let (_, etl) = post(&gw, ALICE, "/v1/jobs/etl/runs", json!({})).await;
    let etl_run = etl["run_id"].as_i64().unwrap();
    let (s, b) = call(
        &gw,
        ALICE,
        reqwest::Method::GET,
        &format!("/v1/jobs/train/runs/{etl_run}"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].clone()),
        (404, json!("run_not_found")),
        "{b}"
    );
    let (s, _) = call(
        &gw,
        ALICE,
        reqwest::Method::DELETE,
        &format!("/v1/jobs/train/runs/{etl_run}"),
    )
    .await;
    assert_eq!(s, 404);
    assert!(!mock_jobs(&mock).await["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["cancelled"] == true));
    let (s, _) = call(
        &gw,
        ALICE,
        reqwest::Method::GET,
        "/v1/jobs/train/runs/999999",
    )
    .await;
    assert_eq!(s, 404);
    // Carol may use etl, not train, whatever run id she names.
    let (s, _) = call(
        &gw,
        CAROL,
        reqwest::Method::GET,
        &format!("/v1/jobs/train/runs/{run}"),
    )
    .await;
    assert_eq!(s, 403);

    // The service principal's OAuth token, at the workspace's token endpoint.
    let oauth: Value = client()
        .get(format!("http://{}/_mock/oauth", mock.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        oauth["client_credentials"].as_u64().unwrap() >= 1,
        "{oauth}"
    );
    assert_eq!(oauth["last_scope"], "all-apis");

    // Every trigger, poll and refusal is a ledger row, with its run.
    let store = gw.stop().await;
    let recs = wait_records(&store, 14).await;
    let run_ref = format!("run/{run}");
    let triggers = recs
        .iter()
        .filter(|r| r.endpoint == "job/trigger" && r.upstream_model == run_ref)
        .count();
    assert_eq!(triggers, 2);
    assert!(recs.iter().any(|r| r.endpoint == "job/get"
        && r.upstream_model == run_ref
        && r.status == 200
        && r.provider == "train"
        && r.principal == "alice"
        && r.response_bytes > 0));
    assert!(recs.iter().any(|r| r.endpoint == "job/trigger"
        && r.status == 403
        && r.error == "job_forbidden"
        && r.principal == "bob"));
    assert!(recs
        .iter()
        .any(|r| r.endpoint == "job/get" && r.status == 404 && r.error == "run_not_found"));
    assert!(recs
        .iter()
        .any(|r| r.endpoint == "job/cancel" && r.status == 404));
    assert!(!format!("{recs:?}").contains(CLIENT_SECRET));
}

/// The PAT comes from the secret store, asked for only after the grant.
struct Pat;

impl SecretSource for Pat {
    fn reveal(&self, name: &str) -> Result<Option<SecretValue>, GatewayError> {
        Ok((name == "dbx-pat").then(|| SecretValue::new(PAT)))
    }
}

#[tokio::test]
async fn waited_run_past_its_timeout_is_cancelled() {
    let mock = start_mock(Some(PAT)).await;
    knobs(&mock, json!({"pending_ms": 20, "run_ms": 600000})).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let config = format!(
        r#"{head}
jobs:
  - name: train
    workspace: http://{addr}
    job_id: 42
    credential: {{ type: bearer, secret: dbx-pat }}
    poll_interval: 50ms
    poll_max_interval: 200ms
{kp}"#,
        head = config_head(&db),
        addr = mock.addr,
        kp = keys_and_policy(),
    );
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, config).unwrap();
    let running = tollgate::server::start_with_secrets(&path, Arc::new(Pat))
        .await
        .unwrap();
    let mut gw = Gateway {
        addr: running.addr,
        admin: running.admin_addr,
        running: Some(running),
        config_path: path,
        db_url: db,
        dir,
    };

    // Waited, one second at most: cancelled on the workspace, then 504.
    let started = tokio::time::Instant::now();
    let (s, b) = post(
        &gw,
        ALICE,
        "/v1/jobs/train/runs?wait=true&timeout=1",
        json!({}),
    )
    .await;
    assert_eq!(s, 504, "{b}");
    assert_eq!(b["error"]["code"], "job_timeout", "{b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("did not end within 1s") && msg.contains("was cancelled"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = mock_jobs(&mock).await;
    assert_eq!(m["cancel"], 1, "{m}");
    let run = &m["runs"][0];
    assert_eq!(run["cancelled"], true, "{m}");
    assert_eq!(run["state"]["result_state"], "CANCELED");
    let timed_out = run["run_id"].as_i64().unwrap();

    // Fire and forget, then cancelled by the caller.
    let (s, b) = post(&gw, ALICE, "/v1/jobs/train/runs", json!({})).await;
    assert_eq!(s, 200, "{b}");
    let id = b["run_id"].as_i64().unwrap();
    assert!(b.get("life_cycle_state").is_none(), "not waited: {b}");
    let (s, b) = call(
        &gw,
        ALICE,
        reqwest::Method::DELETE,
        &format!("/v1/jobs/train/runs/{id}"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["result_state"], "CANCELED", "{b}");

    let store = gw.stop().await;
    let recs = wait_records(&store, 4).await;
    let timed = format!("run/{timed_out}");
    assert!(recs.iter().any(|r| r.endpoint == "job/trigger"
        && r.upstream_model == timed
        && r.status == 504
        && r.error == "job_timeout"));
    // The gateway's own cancel is a row of its own.
    assert!(recs.iter().any(|r| r.endpoint == "job/cancel"
        && r.upstream_model == timed
        && r.status == 200
        && r.principal == "alice"));
    assert!(recs
        .iter()
        .any(|r| r.endpoint == "job/cancel" && r.upstream_model == format!("run/{id}")));
    assert!(!format!("{recs:?}").contains(PAT));
}

/// `tollgate jobs run NAME --wait --timeout N` against a gateway: the run's
/// state on stdout and exit 0 when it succeeded; a refusal exits 1 with the
/// gateway's message.
#[tokio::test]
async fn cli_runs_waits_and_reports_refusals() {
    let mock = start_mock(None).await;
    let gw = start_gateway_with(|db| {
        format!(
            "{head}jobs:\n  - {{ name: train, workspace: 'http://{addr}', job_id: 42, poll_interval: 20ms }}\n{kp}",
            head = config_head(db),
            addr = mock.addr,
            kp = keys_and_policy(),
        )
    })
    .await;
    let url = format!("http://{}", gw.addr);
    let cli = move |key: &'static str, args: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::common::proc::gateway_bin())
                .args(args)
                .args(["--url", &url])
                .env("TOLLGATE_KEY", key)
                .output()
                .unwrap()
        })
    };
    let args: &[&str] = &[
        "jobs",
        "run",
        "train",
        "--wait",
        "--timeout",
        "20",
        "--caller-run-id",
        "cli-1",
        "--param",
        "size=xl",
    ];
    let out = cli(ALICE, args).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result_state"], "SUCCESS", "{v}");
    assert_eq!(v["idempotency_key"], "run:cli-1");
    let m = mock_jobs(&mock).await;
    assert_eq!(m["runs"][0]["job_parameters"], json!({"size": "xl"}));

    let out = cli(BOB, &["jobs", "run", "train"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("is not granted"),
        "{stderr}"
    );
}
