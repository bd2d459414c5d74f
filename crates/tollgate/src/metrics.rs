//! Prometheus exposition through the `metrics` facade. The recorder is
//! process-global (the facade allows one), installed on first use; every
//! gateway in the process renders the same registry.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The Redis admission round trip: fine below a millisecond, where the
/// 0.3 ms p99 target sits (bench/history/LIMITS.md).
const STORE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];

/// Requests per Redis admission script call.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes `/metrics`.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until it is folded into its
/// buckets, which `/metrics` does at each scrape. Without a scraper that
/// was a few bytes per request for the life of the process (a 30-minute
/// soak at 1,000 requests/s grew by 2.7 MB a minute); this task folds them
/// every `UPKEEP_EVERY`.
pub async fn upkeep(
    handle: Option<PrometheusHandle>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(h) = handle else { return };
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => h.run_upkeep(),
        }
    }
}

pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tollgate_limit_store_admit_seconds".into()),
                    STORE_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("tollgate_limit_store_admit_batch".into()),
                    BATCH_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics is empty");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "tollgate_requests_total",
        "Requests by endpoint, model, provider and status"
    );
    metrics::describe_histogram!(
        "tollgate_request_duration_seconds",
        "Request latency, arrival to last byte"
    );
    metrics::describe_histogram!(
        "tollgate_time_to_first_token_seconds",
        "Streams: arrival to first token"
    );
    metrics::describe_counter!(
        "tollgate_tokens_total",
        "Tokens by model, provider and kind"
    );
    metrics::describe_counter!(
        "tollgate_upstream_errors_total",
        "Upstream failures by provider and kind"
    );
    metrics::describe_histogram!(
        "tollgate_limit_store_admit_seconds",
        "Redis limits: the admission script's round trip (what a store: redis rule adds to a request)"
    );
    metrics::describe_histogram!(
        "tollgate_limit_store_admit_batch",
        "Redis limits: requests checked by one admission script call (admissions that queue behind a call in flight share the next)"
    );
    metrics::describe_counter!(
        "tollgate_auth_failures_total",
        "Rejected credentials by reason"
    );
    metrics::describe_counter!(
        "tollgate_access_denied_total",
        "Authenticated requests refused by the access policy, by reason"
    );
    metrics::describe_counter!(
        "tollgate_jwks_refreshes_total",
        "JWKS fetches by trigger (start, timer, unknown_kid)"
    );
    metrics::describe_counter!("tollgate_jwks_errors_total", "Failed JWKS fetches");
    metrics::describe_gauge!(
        "tollgate_ledger_queue_depth",
        "Usage records waiting to be written"
    );
    metrics::describe_counter!(
        "tollgate_ledger_dropped_total",
        "Usage records dropped, by reason"
    );
    metrics::describe_counter!("tollgate_ledger_written_total", "Usage records written");
    metrics::describe_gauge!(
        "tollgate_ledger_spool_records",
        "Usage records waiting in the spool file for the store to return"
    );
    metrics::describe_counter!(
        "tollgate_ledger_spooled_total",
        "Usage records written to the spool while the store was unreachable"
    );
    metrics::describe_counter!(
        "tollgate_ledger_replayed_total",
        "Spooled usage records replayed into the store"
    );
    metrics::describe_histogram!(
        "tollgate_upstream_duration_seconds",
        "One upstream try: request sent to response headers (streams: first chunk)"
    );
    metrics::describe_counter!(
        "tollgate_cost_micros_total",
        "Estimated cost in millionths of the price currency, by model and provider"
    );
    metrics::describe_counter!("tollgate_audit_written_total", "Audit log lines written");
    metrics::describe_counter!(
        "tollgate_audit_dropped_total",
        "Audit records dropped (queue full) or batches that failed to write"
    );
    metrics::describe_counter!("tollgate_config_reloads_total", "Config reloads by result");
    crate::cache::describe_metrics();
    metrics::describe_counter!(
        "tollgate_limit_decisions_total",
        "Limit decisions by rule, cap and decision (allowed, rejected, shadow_rejected, fallback_local, unavailable, stream_cut)"
    );
    metrics::describe_counter!(
        "tollgate_limit_store_errors_total",
        "Failed calls to the shared limit store (Redis), by operation"
    );
    metrics::describe_counter!(
        "tollgate_egress_denied_total",
        "Outbound calls the egress allowlist refused, by reason (host, ip_literal, port, scheme, address)"
    );
}
