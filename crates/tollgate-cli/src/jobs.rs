//! `tollgate jobs`: run, read and cancel Databricks job runs through a
//! gateway's `/v1/jobs/{name}/runs` (docs/jobs.md), as the caller whose
//! key is given. Prints the gateway's JSON answer; the exit status says
//! whether the run succeeded (waited) or was accepted (not waited).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::cli::out;

/// Largest answer read from the gateway (one run's state).
const MAX_ANSWER: usize = 1024 * 1024;

/// Time given to the HTTP exchange beyond the run's own timeout.
const MARGIN: Duration = Duration::from_secs(60);

#[derive(Subcommand)]
pub(crate) enum JobsCommand {
    /// Trigger a run of job NAME (POST /v1/jobs/NAME/runs); with --wait,
    /// until it ends (exit 1 unless it ended SUCCESS; past --timeout the
    /// gateway cancels it).
    Run {
        name: String,
        #[command(flatten)]
        target: Target,
        /// Wait for the run to end.
        #[arg(long)]
        wait: bool,
        /// Longest wait: seconds, or a duration such as 30m (default: the job's `timeout`).
        #[arg(long)]
        timeout: Option<String>,
        /// The idempotency key: a retry with the same key returns the same run.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Your workflow's run id; the idempotency key is derived from it.
        #[arg(long)]
        caller_run_id: Option<String>,
        /// A job parameter, KEY=VALUE (repeatable); overrides the job's default.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// A notebook parameter, KEY=VALUE (repeatable).
        #[arg(long = "notebook-param", value_name = "KEY=VALUE")]
        notebook_params: Vec<String>,
    },
    /// A run's state (GET /v1/jobs/NAME/runs/RUN_ID); with --wait, once it has ended.
    Status {
        name: String,
        run_id: i64,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        wait: bool,
        /// Longest wait: seconds, or a duration such as 30m.
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Cancel a run (DELETE /v1/jobs/NAME/runs/RUN_ID).
    Cancel {
        name: String,
        run_id: i64,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args)]
pub(crate) struct Target {
    /// The gateway's data-plane base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The caller's API key or token (sent as `Authorization: Bearer`).
    #[arg(long, env = "TOLLGATE_KEY", hide_env_values = true)]
    key: Option<String>,
}

fn pairs(list: &[String], flag: &str) -> Result<Map<String, Value>, String> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .ok_or_else(|| format!("{flag} {p:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// The HTTP exchange's own limit: the wait plus a margin (a wait with no
/// timeout of its own is bounded by the job's, unknown here: a day).
fn exchange_timeout(wait: bool, timeout: Option<&str>) -> Result<Duration, String> {
    if !wait {
        return Ok(MARGIN);
    }
    let wait = match timeout {
        None => Duration::from_secs(24 * 3600),
        Some(t) => match t.parse::<u64>() {
            Ok(s) => Duration::from_secs(s),
            Err(_) => humantime::parse_duration(t).map_err(|e| format!("--timeout: {e}"))?,
        },
    };
    Ok(wait + MARGIN)
}

pub(crate) async fn run(command: JobsCommand) -> Result<ExitCode, String> {
    let (target, method, path, body, waited, limit) = match &command {
        JobsCommand::Run {
            name,
            target,
            wait,
            timeout,
            idempotency_key,
            caller_run_id,
            params,
            notebook_params,
        } => {
            let mut body = json!({
                "wait": wait,
                "job_parameters": pairs(params, "--param")?,
                "notebook_params": pairs(notebook_params, "--notebook-param")?,
            });
            if let Some(t) = timeout {
                body["timeout"] = json!(t);
            }
            if let Some(k) = idempotency_key {
                body["idempotency_key"] = json!(k);
            }
            if let Some(r) = caller_run_id {
                body["caller_run_id"] = json!(r);
            }
            let limit = exchange_timeout(*wait, timeout.as_deref())?;
            (
                target,
                reqwest::Method::POST,
                format!("/v1/jobs/{name}/runs"),
                Some(body),
                *wait,
                limit,
            )
        }
        JobsCommand::Status {
            name,
            run_id,
            target,
            wait,
            timeout,
        } => {
            let mut path = format!("/v1/jobs/{name}/runs/{run_id}?wait={wait}");
            if let Some(t) = timeout {
                path.push_str(&format!("&timeout={t}"));
            }
            let limit = exchange_timeout(*wait, timeout.as_deref())?;
            (target, reqwest::Method::GET, path, None, *wait, limit)
        }
        JobsCommand::Cancel {
            name,
            run_id,
            target,
        } => (
            target,
            reqwest::Method::DELETE,
            format!("/v1/jobs/{name}/runs/{run_id}"),
            None,
            false,
            MARGIN,
        ),
    };
    let key = target
        .key
        .as_deref()
        .ok_or("pass --key or set TOLLGATE_KEY")?;
    // The gateway itself, at the address the operator gave: no egress policy.
    #[allow(clippy::disallowed_methods)]
    let client = reqwest::Client::new();
    let mut req = client
        .request(
            method,
            format!("{}{path}", target.url.trim_end_matches('/')),
        )
        .bearer_auth(key)
        .timeout(limit);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the gateway: {e}"))?;
    let status = resp.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err("the gateway's answer is too large".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("HTTP {status}: the gateway's answer is not JSON: {e}"))?;
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        return Err(format!("HTTP {status}: {message}"));
    }
    out(&answer.to_string())?;
    let ok = !waited || answer["result_state"] == "SUCCESS";
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
