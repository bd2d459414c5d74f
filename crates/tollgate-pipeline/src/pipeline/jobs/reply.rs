//! The refusals and failures of job calls, in the plain JSON shape
//! (`{"error":{message,type,param,code}}`, `ApiShape::OpenAi`) like routes'.

use std::time::Duration;

use tollgate_core::error::{ErrorKind, GatewayError};
use tollgate_policy::auth::{policy, Principal};

pub(super) fn unknown(name: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "unknown_target",
        format!("no job `{name}` is configured"),
    )
    .with_code("unknown_job")
}

pub(super) fn forbidden(name: &str, p: &Principal) -> GatewayError {
    GatewayError::new(
        ErrorKind::Permission,
        403,
        "job_forbidden",
        format!(
            "job `{name}` is not granted to principal `{}` ({}): missing grant `jobs: [\"{name}\"]`",
            p.subject,
            policy::describe(p),
        ),
    )
    .with_code("job_not_allowed")
}

/// A run id the workspace does not know, or a run of another job.
pub(super) fn not_this_jobs(name: &str, run_id: i64) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidRequest,
        404,
        "run_not_found",
        format!("run {run_id} is not a run of job `{name}`"),
    )
    .with_code("run_not_found")
}

/// A waited run that did not end in time: it was cancelled (or cancelling
/// it failed, said here too).
pub(super) fn timed_out(
    name: &str,
    run_id: i64,
    after: Duration,
    state: &str,
    cancel_failed: Option<&GatewayError>,
) -> GatewayError {
    let after = humantime::format_duration(after);
    let what = match cancel_failed {
        None => "the run was cancelled".to_string(),
        Some(e) => format!("cancelling it failed: {}", e.message()),
    };
    GatewayError::new(
        ErrorKind::Server,
        504,
        "job_timeout",
        format!("job `{name}` run {run_id} did not end within {after} (still {state}); {what}"),
    )
    .with_code("job_timeout")
}
