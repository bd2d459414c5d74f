//! Phase 8, attempting the upstream: the plan's targets in order, retries on
//! one target (with jitter, honouring `Retry-After` up to a cap), fallback to
//! the next on the configured statuses and on timeouts, one overall deadline.
//! A stream counts as started only once its first chunk has arrived, so
//! failures before any byte reaches the caller are retried or fall back too
//! (a first chunk later than the target's `first_chunk_timeout` included).
//! Each try's outcome feeds the target's breaker (`routing::TargetStats`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::HeaderMap;
use serde_json::{Map, Value};
use tokio::time::Instant;

use tollgate_config::{Endpoint, RetryConfig};
use tollgate_llm::providers::{ProviderBody, ProviderCall, ProviderError, ProviderResponse};
use tollgate_policy::routing::{clock, LastFailure, TargetStats};

use crate::snapshot::ModelRoute;
use crate::snapshot::VirtualModel;

use super::context::{Attempt, RequestCtx};

/// One target of a plan.
pub(super) struct PlanTarget {
    pub route: Arc<ModelRoute>,
    pub retry: Option<Arc<RetryConfig>>,
    pub stats: Option<Arc<TargetStats>>,
    /// Streams: the most a try may take to the first chunk.
    pub first_chunk_timeout: Option<Duration>,
}

/// `ProviderError::Timeout`'s stage when a stream's first chunk came later
/// than its target's `first_chunk_timeout`.
pub(super) const FIRST_CHUNK: &str = "first_chunk";

/// The ordered targets for one request.
pub(super) struct Plan {
    pub targets: Vec<PlanTarget>,
    pub fallback_on: Arc<[u16]>,
    pub fallback_on_timeout: bool,
    pub deadline: Duration,
    /// The virtual model's name, for metrics.
    pub virtual_name: Option<Arc<str>>,
}

impl Plan {
    pub(super) fn single(route: Arc<ModelRoute>) -> Self {
        Self {
            deadline: route.total_timeout,
            targets: vec![PlanTarget {
                route,
                retry: None,
                stats: None,
                first_chunk_timeout: None,
            }],
            fallback_on: Arc::from([]),
            fallback_on_timeout: false,
            virtual_name: None,
        }
    }

    /// Targets in the order the virtual model's strategy chose, minus those
    /// that do not serve this endpoint.
    pub(super) fn virtual_model(vm: &VirtualModel, order: &[usize], endpoint: Endpoint) -> Self {
        let targets = order
            .iter()
            .filter_map(|&i| vm.targets.get(i))
            .filter(|t| t.route.serves(endpoint))
            .map(|t| PlanTarget {
                route: t.route.clone(),
                retry: Some(t.retry.clone()),
                stats: Some(t.stats.clone()),
                first_chunk_timeout: t.first_chunk_timeout,
            })
            .collect();
        Self {
            targets,
            fallback_on: vm.fallback_on.clone(),
            fallback_on_timeout: vm.fallback_on_timeout,
            deadline: vm.deadline,
            virtual_name: Some(vm.name.clone()),
        }
    }
}

pub(super) struct Served {
    pub route: Arc<ModelRoute>,
    pub response: ProviderResponse,
    pub deadline: Instant,
    pub stats: Option<Arc<TargetStats>>,
}

/// Counts against a target's health: 5xx, 429, 401, 403, timeouts, unreachable.
fn hurts_health(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => *status >= 500 || matches!(status, 429 | 401 | 403),
        ProviderError::Unsupported { .. } => false,
        _ => true,
    }
}

fn upstream_status(e: &ProviderError) -> Option<u16> {
    match e {
        ProviderError::Status { status, .. } => Some(*status),
        _ => None,
    }
}

fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}

pub(super) async fn run(
    ctx: &mut RequestCtx,
    plan: &Plan,
    mut body: Map<String, Value>,
    headers: &HeaderMap,
    stream: bool,
) -> Result<Served, ProviderError> {
    let overall = Instant::now() + plan.deadline;
    let mut last_err = None;
    let n = plan.targets.len();
    'targets: for (ti, t) in plan.targets.iter().enumerate() {
        ctx.route = Some(t.route.clone());
        let tries = 1 + t.retry.as_ref().map_or(0, |r| r.retries);
        for attempt in 0..tries {
            let deadline = overall.min(Instant::now() + t.route.total_timeout);
            body.insert(
                "model".into(),
                Value::String(t.route.upstream_model.clone()),
            );
            if let Some(cap) = ctx.completion_cap {
                // The legacy completions API knows only `max_tokens`.
                let field = match ctx.endpoint {
                    Endpoint::Completions => "max_tokens",
                    _ => t.route.provider.completion_cap_field(),
                };
                body.remove("max_tokens");
                body.remove("max_completion_tokens");
                body.insert(field.into(), Value::from(cap));
            }
            // The last possible try takes the body; earlier ones copy it.
            let last = ti + 1 == n && attempt + 1 == tries;
            let (span, traceparent) = match &ctx.trace {
                Some(trace) => {
                    let target = t.route.resolved.to_str().unwrap_or("");
                    let (s, h) = trace.attempt(target, &t.route.upstream_model);
                    (Some(s), h)
                }
                None => (None, None),
            };
            let call = ProviderCall {
                endpoint: ctx.endpoint,
                body: if last {
                    std::mem::take(&mut body)
                } else {
                    body.clone()
                },
                stream,
                client_headers: headers,
                traceparent,
            };
            let started = tokio::time::Instant::now();
            // A stream's first chunk is due by the first-chunk timeout (from
            // the try's start, headers included) when it is the earliest.
            let first_chunk_by = t
                .first_chunk_timeout
                .filter(|_| stream)
                .map(|d| started + d)
                .filter(|by| *by < deadline);
            let (wait_until, stage) = match first_chunk_by {
                Some(by) => (by, FIRST_CHUNK),
                // The overall deadline is the virtual model's, not the
                // provider's `total` timeout: say which ran out.
                None if plan.virtual_name.is_some() && deadline == overall => {
                    (deadline, tollgate_llm::providers::DEADLINE)
                }
                None => (deadline, "total"),
            };
            let result = match tokio::time::timeout_at(wait_until, t.route.provider.call(call))
                .await
            {
                Ok(Ok(resp)) => first_chunk(resp, wait_until, &t.route.provider_name, stage).await,
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ProviderError::Timeout {
                    provider: t.route.provider_name.clone(),
                    stage,
                }),
            };
            let target_label = t.route.resolved.to_str().unwrap_or("").to_string();
            upstream_duration(&t.route, &target_label, &result, started.elapsed());
            let e = match result {
                Ok(response) => {
                    if let Some(s) = span {
                        s.set(vec![tollgate_record::telemetry::Attr::new(
                            "http.response.status_code",
                            i64::from(response.status),
                        )]);
                    }
                    ctx.attempts.push(Attempt {
                        target: target_label.clone(),
                        status: response.status,
                        error: "",
                    });
                    record_attempt(plan, &target_label, "ok");
                    if let Some(stats) = &t.stats {
                        stats.record_success(started.elapsed().as_secs_f64() * 1e6);
                    }
                    return Ok(Served {
                        route: t.route.clone(),
                        response,
                        deadline,
                        stats: t.stats.clone(),
                    });
                }
                Err(e) => e,
            };
            if let Some(s) = span {
                s.fail(e.label(), upstream_status(&e));
            }
            ctx.attempts.push(Attempt {
                target: target_label.clone(),
                status: upstream_status(&e).unwrap_or(0),
                error: e.label(),
            });
            if let Some(stats) = &t.stats {
                if hurts_health(&e) {
                    let failure = LastFailure {
                        at_ms: clock::wall_ms(),
                        error: e.label(),
                        status: upstream_status(&e),
                    };
                    stats.record_failure_of(clock::now_ms(), failure);
                } else if upstream_status(&e).is_some() {
                    // The upstream answered (a request it refuses): it is up.
                    stats.close();
                }
            }
            record_attempt(plan, &target_label, e.label());
            let status = upstream_status(&e);
            // Retry on the same target?
            if let (Some(retry), Some(code)) = (&t.retry, status) {
                if attempt + 1 < tries && retry.on.contains(&code) {
                    let wait = match &e {
                        ProviderError::Status {
                            retry_after: Some(secs),
                            ..
                        } => {
                            Some(Duration::from_secs(*secs)).filter(|w| *w <= retry.max_retry_after)
                        }
                        _ => Some(jittered(retry.delay)),
                    };
                    if let Some(wait) = wait.filter(|w| Instant::now() + *w < overall) {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
            // Fall back to the next target?
            let fallback = match status {
                Some(code) => plan.fallback_on.contains(&code),
                None => plan.fallback_on_timeout,
            };
            let more = ti + 1 < n && Instant::now() < overall;
            last_err = Some(e);
            if fallback && more {
                continue 'targets;
            }
            break 'targets;
        }
    }
    Err(last_err.unwrap_or_else(|| ProviderError::Protocol {
        provider: plan.virtual_name.as_deref().unwrap_or_default().to_string(),
        message: "no target serves this request".into(),
    }))
}

/// Waits for a stream's first chunk so that a failure before any byte can
/// still be retried; the chunk is put back in front of the stream.
async fn first_chunk(
    resp: ProviderResponse,
    deadline: Instant,
    provider: &str,
    stage: &'static str,
) -> Result<ProviderResponse, ProviderError> {
    let ProviderResponse { status, body } = resp;
    let ProviderBody::Stream(mut s) = body else {
        return Ok(ProviderResponse { status, body });
    };
    let first: Bytes = match tokio::time::timeout_at(deadline, s.next()).await {
        Ok(Some(Ok(b))) => b,
        Ok(Some(Err(e))) => return Err(e),
        Ok(None) => {
            return Err(ProviderError::StreamInterrupted {
                provider: provider.to_string(),
                message: "the stream closed before any data".into(),
            })
        }
        Err(_) => {
            return Err(ProviderError::Timeout {
                provider: provider.to_string(),
                stage,
            })
        }
    };
    Ok(ProviderResponse {
        status,
        body: ProviderBody::Stream(stream::once(async move { Ok(first) }).chain(s).boxed()),
    })
}

/// `tollgate_upstream_duration_seconds`: one try, sent to response headers
/// (streams: to the first chunk), by provider, target and outcome.
fn upstream_duration(
    route: &ModelRoute,
    target: &str,
    result: &Result<ProviderResponse, ProviderError>,
    took: Duration,
) {
    let status = match result {
        Ok(r) => r.status.to_string(),
        Err(e) => upstream_status(e).map_or_else(|| e.label().to_string(), |s| s.to_string()),
    };
    metrics::histogram!("tollgate_upstream_duration_seconds",
        "provider" => route.provider_name.clone(), "target" => target.to_string(), "status" => status)
    .record(took.as_secs_f64());
}

/// `tollgate_target_healthy` is written at each scrape (server/admin.rs),
/// from the routing state itself.
fn record_attempt(plan: &Plan, target: &str, outcome: &'static str) {
    let Some(vm) = &plan.virtual_name else { return };
    metrics::counter!("tollgate_attempts_total", "virtual_model" => vm.to_string(),
        "target" => target.to_string(), "outcome" => outcome)
    .increment(1);
}
