//! Governed Databricks job runs: `POST /v1/jobs/{name}/runs` triggers a
//! configured job (`run-now` with an idempotency token, so a retried step
//! never submits a second run), `GET /v1/jobs/{name}/runs/{id}` reads a
//! run (with `wait`: polls with backoff until it ends, cancelling it past
//! the timeout), `DELETE` cancels it. Each call is a typed `Call` taken
//! through the same phases as a model call, in this order:
//!
//! ```text
//! authenticate → resolve (the job) → authorize (policy rules' `jobs:`)
//! → the call (body, run id, idempotency key) → credential (a named
//! secret revealed only now) → Jobs API (a run of another job is refused)
//! → end (Finish: ledger, audit, metrics, with the run id)
//! ```
//!
//! Limits do not count job calls (no `match.jobs` yet). The refusals are
//! typed errors (`reply.rs`) the edge renders as plain JSON, like routes'.

mod api;
mod call;
mod reply;
mod table;
mod wait;

pub use table::{Job, Table};

use std::sync::Arc;

use serde_json::{json, Value};
use tollgate_config::Endpoint;
use tollgate_core::error::GatewayError;

use super::finish::Finish;
use super::phase;
use super::{RequestBody, RequestCtx};
use crate::reply::{Failed, Reply};
use crate::snapshot::Snapshot;
use crate::state::AppState;
use api::Run;
use call::Call;

/// Largest trigger body read (parameters and keys).
const MAX_BODY: usize = 64 * 1024;

/// `POST /v1/jobs/{name}/runs`.
pub async fn trigger(
    app: Arc<AppState>,
    name: String,
    req: http::Request<RequestBody>,
) -> Result<Reply, Failed> {
    serve(app, name, None, req).await
}

/// `GET` and `DELETE /v1/jobs/{name}/runs/{id}`.
pub async fn run(
    app: Arc<AppState>,
    name: String,
    run_id: String,
    req: http::Request<RequestBody>,
) -> Result<Reply, Failed> {
    serve(app, name, Some(run_id), req).await
}

async fn serve(
    app: Arc<AppState>,
    name: String,
    run_id: Option<String>,
    req: http::Request<RequestBody>,
) -> Result<Reply, Failed> {
    let snap = app.snapshot.load_full();
    let (parts, body) = req.into_parts();
    let operation = call::operation(&parts.method, run_id.is_some());
    let job = snap.jobs.get(&name).cloned();
    let mut ctx = RequestCtx::new(Endpoint::Chat, super::request_id(&parts.headers));
    ctx.operation = Some(operation);
    ctx.model_known = job.is_some();
    // An unknown name is not echoed whole into the ledger.
    ctx.requested_model = match job {
        Some(_) => name,
        None => name.chars().take(64).collect(),
    };
    if app.audit.enabled() {
        ctx.audit_headers = tollgate_record::audit::AuditHeaders::copy(&parts.headers);
    }
    if let Some(t) = &app.tracing {
        ctx.trace = Some(t.start_request(&parts.headers, operation));
    }
    let span = tracing::info_span!("job", request_id = %ctx.request_id,
        operation, job = %ctx.requested_model);
    let mut fin = Finish::new(app.clone(), ctx);
    let work = phases(&app, &snap, job, run_id, &parts, body, &mut fin);
    let outcome = tracing::Instrument::instrument(work, span.clone()).await;
    let _entered = span.enter();
    match outcome {
        Ok(answer) => {
            let body = answer.to_string();
            fin.end(|_, ctx| ctx.response_bytes = body.len() as u64);
            Ok(json_reply(http::StatusCode::OK, body))
        }
        Err(err) => {
            fin.fail(&err);
            Err(Failed::from(err))
        }
    }
}

async fn phases(
    app: &Arc<AppState>,
    snap: &Snapshot,
    job: Option<Arc<Job>>,
    run_id: Option<String>,
    parts: &http::request::Parts,
    body: RequestBody,
    fin: &mut Finish,
) -> Result<Value, GatewayError> {
    let ctx = fin.ctx().ok_or_else(GatewayError::internal)?;
    // 1. authenticate (headers only)
    let who = phase::authenticate::authenticate(app, snap, ctx, &parts.headers).await?;
    // 2. resolve
    let job = job.ok_or_else(|| reply::unknown(&ctx.requested_model))?;
    // 3. authorize: deny by default, granted by policy rules only
    let principal = &who.identity.principal;
    let access = snap.policy.evaluate(principal, who.identity.key_grant());
    if access.decide_job(&job.name).is_err() {
        return Err(reply::forbidden(&job.name, principal));
    }
    // 4. the call, typed
    let bytes = match parts.method {
        http::Method::POST => super::read_body(&parts.headers, body, MAX_BODY).await?,
        _ => bytes::Bytes::new(),
    };
    ctx.request_bytes = bytes.len() as u64;
    let call = Call::parse(&job, principal, parts, run_id.as_deref(), &bytes)?;
    if let Some(id) = call.run_id() {
        ctx.served_by = Some((job.name.clone(), format!("run/{id}")));
    }
    // 5. the credential (a named secret is revealed here, after the grant)
    let caller = api::Caller {
        secrets: &*app.secrets,
        headers: &parts.headers,
    };
    let auth = job.auth(&caller).await?;
    // 6. the Jobs API
    match call {
        Call::Trigger(t) => {
            let run_id = job.run_now(&auth, &t.request(&job)).await?;
            ctx.served_by = Some((job.name.clone(), format!("run/{run_id}")));
            let mut answer = match t.wait {
                Some(timeout) => {
                    let run = waited(app, &job, &caller, run_id, timeout, ctx).await?;
                    describe(&job, &run)
                }
                None => json!({"job": job.name, "job_id": job.job_id, "run_id": run_id}),
            };
            if let Some(k) = &t.key {
                answer["idempotency_key"] = json!(k);
            }
            Ok(answer)
        }
        Call::Get { run_id, wait } => {
            let run = own_run(&job, &auth, run_id).await?;
            let run = match wait {
                Some(timeout) if !run.done() => {
                    waited(app, &job, &caller, run_id, timeout, ctx).await?
                }
                _ => run,
            };
            Ok(describe(&job, &run))
        }
        Call::Cancel { run_id } => {
            own_run(&job, &auth, run_id).await?;
            job.cancel(&auth, run_id).await?;
            let run = job.get(&auth, run_id).await?;
            Ok(describe(&job, &run))
        }
    }
}

/// The run, once it is known to be one of this job's: a run id of another
/// job is answered as unknown (404), whoever may see that job.
async fn own_run(job: &Job, auth: &api::Auth, run_id: i64) -> Result<Run, GatewayError> {
    let run = job.get(auth, run_id).await.map_err(|e| match e.status() {
        404 | 400 => reply::not_this_jobs(&job.name, run_id),
        _ => e,
    })?;
    if run.job_id != job.job_id || run.run_id != run_id {
        return Err(reply::not_this_jobs(&job.name, run_id));
    }
    Ok(run)
}

/// Polls until the run ends. Past `timeout` the run is cancelled (the
/// cancel recorded as its own ledger row) and the call fails with 504.
async fn waited(
    app: &Arc<AppState>,
    job: &Job,
    caller: &api::Caller<'_>,
    run_id: i64,
    timeout: std::time::Duration,
    ctx: &RequestCtx,
) -> Result<Run, GatewayError> {
    match wait::until_done(job, caller, run_id, timeout).await? {
        wait::Waited::Done(run) => Ok(run),
        wait::Waited::TimedOut { state, cancel } => {
            record_cancel(app, ctx, job, run_id, cancel.as_ref().err());
            Err(reply::timed_out(
                &job.name,
                run_id,
                timeout,
                &state,
                cancel.err().as_ref(),
            ))
        }
    }
}

/// The gateway's own cancel of a run it waited for too long: one more
/// ledger row and audit line (`job/cancel`), under the caller's identity.
fn record_cancel(
    app: &Arc<AppState>,
    waiting: &RequestCtx,
    job: &Job,
    run_id: i64,
    failed: Option<&GatewayError>,
) {
    let mut ctx = RequestCtx::new(Endpoint::Chat, waiting.request_id.clone());
    ctx.operation = Some(call::CANCEL);
    ctx.model_known = true;
    ctx.identity = waiting.identity.clone();
    ctx.requested_model = job.name.clone();
    ctx.served_by = Some((job.name.clone(), format!("run/{run_id}")));
    if let Some(e) = failed {
        ctx.status = e.status();
        ctx.error = e.label();
    }
    Finish::new(app.clone(), ctx).end(|_, _| {});
}

/// A run as the caller sees it.
fn describe(job: &Job, run: &Run) -> Value {
    json!({
        "job": job.name,
        "job_id": run.job_id,
        "run_id": run.run_id,
        "life_cycle_state": run.state.life_cycle_state,
        "result_state": run.state.result_state,
        "state_message": run.state.state_message,
        "run_page_url": run.run_page_url,
        "done": run.done(),
    })
}

fn json_reply(status: http::StatusCode, body: String) -> Reply {
    let mut headers = http::HeaderMap::with_capacity(1);
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Reply::full(status, headers, body)
}
