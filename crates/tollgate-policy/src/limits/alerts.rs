//! Soft thresholds: a counter whose reservations cross a configured share
//! of its cap (default 80 %) is reported once per window: counted in
//! `tollgate_limit_threshold_reached_total{rule,cap}`, logged, and, when
//! `limits.alerts.webhook` is set, posted as JSON by a background task (the
//! request only pushes into a bounded queue, never waits).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::json;
use tokio::sync::mpsc;
use tollgate_core::error::BuildError;

use tollgate_config::LimitAlerts;

/// Alerts waiting for the webhook task; past it they are dropped (and
/// counted as `tollgate_limit_alerts_dropped_total`).
const QUEUE: usize = 1024;

/// One threshold crossing.
#[derive(Debug, Clone)]
pub(super) struct Crossing {
    pub rule: Arc<str>,
    pub cap: &'static str,
    pub partition: String,
    pub window: &'static str,
    pub window_ends_ms: Option<i64>,
    pub percent: f64,
    pub limit: f64,
    pub used: f64,
}

/// This gateway's alert state: which counters already alerted in which
/// window (kept across reloads), and the webhook, when configured.
pub(super) struct Alerts {
    sent: Arc<DashMap<Box<str>, i64, foldhash::fast::RandomState>>,
    webhook: Option<Webhook>,
}

struct Webhook {
    url: reqwest::Url,
    client: tollgate_net::Client,
    timeout: Duration,
    queue: OnceLock<mpsc::Sender<Crossing>>,
}

impl Alerts {
    /// `previous` hands over which counters already alerted.
    pub(super) fn build(
        cfg: &LimitAlerts,
        egress: Option<&tollgate_net::Egress>,
        previous: Option<&Alerts>,
    ) -> Result<Self, BuildError> {
        let webhook = match (&cfg.webhook, egress) {
            (Some(url), Some(egress)) => Some(Webhook {
                url: reqwest::Url::parse(url).map_err(|e| format!("limits.alerts.webhook: {e}"))?,
                client: tollgate_net::client_builder(egress)
                    .build()
                    .map_err(|e| format!("limits.alerts.webhook client: {e}"))?,
                timeout: cfg.timeout,
                queue: OnceLock::new(),
            }),
            _ => None,
        };
        Ok(Self {
            sent: previous.map(|p| p.sent.clone()).unwrap_or_default(),
            webhook,
        })
    }

    /// Reports `c` unless the counter `key` already alerted in `window`.
    pub(super) fn fire(&self, key: &str, window: i64, c: Crossing) {
        if self.sent.insert(key.into(), window) == Some(window) {
            return;
        }
        metrics::counter!("tollgate_limit_threshold_reached_total",
            "rule" => c.rule.to_string(), "cap" => c.cap)
        .increment(1);
        tracing::warn!(rule = %c.rule, cap = c.cap, partition = %c.partition,
            percent = c.percent, used = c.used, limit = c.limit, "limit threshold reached");
        let Some(w) = &self.webhook else { return };
        let Some(tx) = w.queue() else { return };
        if tx.try_send(c).is_err() {
            metrics::counter!("tollgate_limit_alerts_dropped_total").increment(1);
        }
    }
}

impl Webhook {
    /// The webhook task's queue, the task spawned on first use on the
    /// caller's runtime (none outside one).
    fn queue(&self) -> Option<&mpsc::Sender<Crossing>> {
        if let Some(tx) = self.queue.get() {
            return Some(tx);
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        if self.queue.set(tx).is_ok() {
            handle.spawn(post_loop(
                self.client.clone(),
                self.url.clone(),
                self.timeout,
                rx,
            ));
        }
        self.queue.get()
    }
}

async fn post_loop(
    client: tollgate_net::Client,
    url: reqwest::Url,
    timeout: Duration,
    mut rx: mpsc::Receiver<Crossing>,
) {
    while let Some(c) = rx.recv().await {
        let body = json!({
            "type": "limit_threshold_reached",
            "rule": &*c.rule,
            "cap": c.cap,
            "partition": c.partition,
            "window": c.window,
            "window_ends_ms": c.window_ends_ms,
            "percent": c.percent,
            "limit": c.limit,
            "used": c.used,
        });
        let request = match client.post(url.clone()) {
            Ok(r) => r,
            Err(denied) => {
                metrics::counter!("tollgate_limit_alerts_dropped_total").increment(1);
                tracing::warn!(error = %denied, "limit alert webhook refused by the egress allowlist");
                continue;
            }
        };
        match request.timeout(timeout).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                metrics::counter!("tollgate_limit_alerts_dropped_total").increment(1);
                tracing::warn!(
                    status = resp.status().as_u16(),
                    "limit alert webhook refused"
                );
            }
            Err(e) => {
                metrics::counter!("tollgate_limit_alerts_dropped_total").increment(1);
                // The error names the webhook's address: logged, never
                // returned to a caller.
                tracing::warn!(error = %e, "limit alert webhook failed");
            }
        }
    }
}
