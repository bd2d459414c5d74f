//! Waiting for a run to end: `runs/get` polled with a growing pause (the
//! job's `poll_interval`, half as long again after each poll, at most
//! `poll_max_interval`) on Tokio's clock, until a terminal state or the
//! deadline. A poll that fails with a retryable error (upstream 5xx or
//! 429, unreachable, timed out) is tried again at the next pause; any
//! other failure ends the wait. Past the deadline the run is cancelled.
//! The credential is asked for before each exchange (a cached token is
//! only a lookup), so a wait longer than a token's life still sends a
//! live one.

use std::time::Duration;

use tokio::time::Instant;
use tollgate_core::error::GatewayError;

use super::api::{Caller, Run};
use super::table::Job;

pub(super) enum Waited {
    Done(Run),
    /// The deadline passed: the last life-cycle state seen, and how the
    /// cancel went.
    TimedOut {
        state: String,
        cancel: Result<(), GatewayError>,
    },
}

pub(super) async fn until_done(
    job: &Job,
    caller: &Caller<'_>,
    run_id: i64,
    timeout: Duration,
) -> Result<Waited, GatewayError> {
    let deadline = Instant::now() + timeout;
    let mut pause = job.poll_interval;
    let mut state = String::from("unknown");
    loop {
        let auth = job.auth(caller).await?;
        match job.get(&auth, run_id).await {
            Ok(run) if run.done() => return Ok(Waited::Done(run)),
            Ok(run) => state = run.state.life_cycle_state,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tracing::debug!(job = %job.name, run_id, error = e.label(), "run poll failed; retrying");
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if now >= deadline {
            let cancel = match job.auth(caller).await {
                Ok(auth) => job.cancel(&auth, run_id).await,
                Err(e) => Err(e),
            };
            return Ok(Waited::TimedOut { state, cancel });
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause + pause / 2).min(job.poll_max_interval);
    }
}
