//! The mock upstream's Databricks Jobs API (2.1 and 2.2 paths alike):
//! `POST /api/2.x/jobs/run-now` (an `idempotency_token` already seen gives
//! back its run, never a second one), `GET /api/2.x/jobs/runs/get?run_id=`
//! (the life cycle advances with Tokio's clock: `PENDING` for `pending_ms`,
//! `RUNNING` for `run_ms`, then `TERMINATED` with `result_state`), `POST
//! /api/2.x/jobs/runs/cancel` (the run ends `TERMINATED`/`CANCELED`).
//! Every route checks the credential like the others (`oauth::authorized`).
//! `GET /_mock/jobs` lists the runs made and counts the calls; `POST
//! /_mock/jobs {"pending_ms","run_ms","result_state"}` changes how later
//! runs progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::server::MockState;

#[derive(Debug, Default)]
pub(crate) struct JobsState {
    runs: Mutex<Vec<Run>>,
    knobs: Mutex<Knobs>,
    run_now: AtomicU64,
    get: AtomicU64,
    cancel: AtomicU64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Knobs {
    #[serde(default = "default_pending")]
    pending_ms: u64,
    #[serde(default = "default_run")]
    run_ms: u64,
    #[serde(default = "default_result")]
    result_state: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            pending_ms: default_pending(),
            run_ms: default_run(),
            result_state: default_result(),
        }
    }
}

fn default_pending() -> u64 {
    50
}
fn default_run() -> u64 {
    200
}
fn default_result() -> String {
    "SUCCESS".into()
}

#[derive(Debug)]
struct Run {
    run_id: i64,
    job_id: i64,
    token: Option<String>,
    job_parameters: Value,
    notebook_params: Value,
    started: Instant,
    knobs: Knobs,
    cancelled: bool,
}

impl Run {
    /// (life_cycle_state, result_state) now.
    fn state(&self) -> (&'static str, Option<String>) {
        if self.cancelled {
            return ("TERMINATED", Some("CANCELED".into()));
        }
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if ms < self.knobs.pending_ms {
            ("PENDING", None)
        } else if ms < self.knobs.pending_ms.saturating_add(self.knobs.run_ms) {
            ("RUNNING", None)
        } else {
            ("TERMINATED", Some(self.knobs.result_state.clone()))
        }
    }

    fn json(&self) -> Value {
        let (life, result) = self.state();
        let mut state = json!({
            "life_cycle_state": life,
            "state_message": if self.cancelled { "Run cancelled." } else { "" },
            "user_cancelled_or_timedout": self.cancelled,
        });
        if let Some(r) = result {
            state["result_state"] = json!(r);
        }
        json!({
            "job_id": self.job_id,
            "run_id": self.run_id,
            "number_in_job": self.run_id,
            "state": state,
            "run_page_url": format!("https://mock.databricks/jobs/{}/runs/{}", self.job_id, self.run_id),
        })
    }
}

pub(crate) fn routes() -> Router<Arc<MockState>> {
    let mut r = Router::new().route("/_mock/jobs", get(stats).post(set));
    for v in ["2.1", "2.2"] {
        r = r
            .route(&format!("/api/{v}/jobs/run-now"), post(run_now))
            .route(&format!("/api/{v}/jobs/runs/get"), get(runs_get))
            .route(&format!("/api/{v}/jobs/runs/cancel"), post(runs_cancel));
    }
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "mock upstream: wrong or missing key",
    )
}

#[derive(Deserialize)]
struct RunNow {
    job_id: i64,
    #[serde(default)]
    idempotency_token: Option<String>,
    #[serde(default)]
    job_parameters: Option<Value>,
    #[serde(default)]
    notebook_params: Option<Value>,
}

async fn run_now(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let jobs = &state.jobs;
    jobs.run_now.fetch_add(1, Ordering::Relaxed);
    if !super::oauth::authorized(&state, &headers) {
        return unauthorized();
    }
    let Ok(req) = serde_json::from_slice::<RunNow>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "expected {job_id, idempotency_token?, job_parameters?, notebook_params?}",
        );
    };
    if req.idempotency_token.as_ref().is_some_and(|t| t.len() > 64) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "idempotency_token must have at most 64 characters",
        );
    }
    let knobs = jobs.knobs.lock().map(|k| k.clone()).unwrap_or_default();
    let Ok(mut runs) = jobs.runs.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "lock");
    };
    if let Some(t) = &req.idempotency_token {
        if let Some(existing) = runs.iter().find(|r| r.token.as_ref() == Some(t)) {
            return Json(json!({"run_id": existing.run_id, "number_in_job": existing.run_id}))
                .into_response();
        }
    }
    let run_id = 1000 + runs.len() as i64;
    runs.push(Run {
        run_id,
        job_id: req.job_id,
        token: req.idempotency_token,
        job_parameters: req.job_parameters.unwrap_or(Value::Null),
        notebook_params: req.notebook_params.unwrap_or(Value::Null),
        started: Instant::now(),
        knobs,
        cancelled: false,
    });
    Json(json!({"run_id": run_id, "number_in_job": run_id})).into_response()
}

#[derive(Deserialize)]
struct RunId {
    run_id: i64,
}

async fn runs_get(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    Query(q): Query<RunId>,
) -> Response {
    state.jobs.get.fetch_add(1, Ordering::Relaxed);
    if !super::oauth::authorized(&state, &headers) {
        return unauthorized();
    }
    let found = state
        .jobs
        .runs
        .lock()
        .ok()
        .and_then(|runs| runs.iter().find(|r| r.run_id == q.run_id).map(Run::json));
    match found {
        Some(v) => Json(v).into_response(),
        None => not_found(q.run_id),
    }
}

fn not_found(run_id: i64) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        &format!("Run {run_id} does not exist."),
    )
}

async fn runs_cancel(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.jobs.cancel.fetch_add(1, Ordering::Relaxed);
    if !super::oauth::authorized(&state, &headers) {
        return unauthorized();
    }
    let Ok(q) = serde_json::from_slice::<RunId>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "expected {run_id}",
        );
    };
    let Ok(mut runs) = state.jobs.runs.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "lock");
    };
    match runs.iter_mut().find(|r| r.run_id == q.run_id) {
        Some(r) => {
            // Cancelling a run that already ended changes nothing.
            if r.state().0 != "TERMINATED" {
                r.cancelled = true;
            }
            Json(json!({})).into_response()
        }
        None => not_found(q.run_id),
    }
}

/// `GET /_mock/jobs`.
async fn stats(State(state): State<Arc<MockState>>) -> Json<Value> {
    let j = &state.jobs;
    let runs: Vec<Value> = j
        .runs
        .lock()
        .map(|runs| {
            runs.iter()
                .map(|r| {
                    let mut v = r.json();
                    v["idempotency_token"] = json!(r.token);
                    v["job_parameters"] = r.job_parameters.clone();
                    v["notebook_params"] = r.notebook_params.clone();
                    v["cancelled"] = json!(r.cancelled);
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!({
        "runs": runs,
        "run_now": j.run_now.load(Ordering::Relaxed),
        "get": j.get.load(Ordering::Relaxed),
        "cancel": j.cancel.load(Ordering::Relaxed),
    }))
}

/// `POST /_mock/jobs`: how runs triggered from now on progress.
async fn set(State(state): State<Arc<MockState>>, Json(knobs): Json<Value>) -> StatusCode {
    match serde_json::from_value::<Knobs>(knobs) {
        Ok(k) => {
            if let Ok(mut cur) = state.jobs.knobs.lock() {
                *cur = k;
            }
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}
