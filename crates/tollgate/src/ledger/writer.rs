//! The background writer: `try_send` on the hot path, batches of up to
//! `batch_size` written every `flush_interval` (or as soon as a batch is
//! full), retried a few times on store errors, drained on shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::UsageRecord;
use crate::config::LedgerConfig;
use crate::store::Store;

const WRITE_ATTEMPTS: usize = 3;

/// The sending side, cheap to clone, kept in the app state.
#[derive(Clone)]
pub struct LedgerHandle {
    tx: Option<mpsc::Sender<UsageRecord>>,
    closed: Arc<AtomicBool>,
}

impl LedgerHandle {
    /// A handle that records nothing (ledger disabled).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            closed: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Queues a record; never waits. Returns false when it was dropped.
    pub fn record(&self, rec: UsageRecord) -> bool {
        let Some(tx) = &self.tx else { return true };
        if self.closed.load(Ordering::Relaxed) {
            metrics::counter!("tollgate_ledger_dropped_total", "reason" => "closed").increment(1);
            return false;
        }
        match tx.try_send(rec) {
            Ok(()) => {
                metrics::gauge!("tollgate_ledger_queue_depth").increment(1.0);
                true
            }
            Err(mpsc::error::TrySendError::Full(rec)) => {
                metrics::counter!("tollgate_ledger_dropped_total", "reason" => "queue_full")
                    .increment(1);
                tracing::warn!(request_id = %rec.request_id, "ledger queue full; usage record dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("tollgate_ledger_dropped_total", "reason" => "closed")
                    .increment(1);
                false
            }
        }
    }
}

/// The writer task; `close` drains the queue and waits for the last batch.
pub struct Ledger {
    handle: LedgerHandle,
    shutdown: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

impl Ledger {
    pub fn start(store: Store, cfg: &LedgerConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let task = tokio::spawn(run(store, rx, stop_rx, cfg.batch_size, cfg.flush_interval));
        Self {
            handle: LedgerHandle {
                tx: Some(tx),
                closed: Arc::new(AtomicBool::new(false)),
            },
            shutdown: stop_tx,
            task,
        }
    }

    pub fn handle(&self) -> LedgerHandle {
        self.handle.clone()
    }

    /// Stops taking records, writes everything queued, then returns.
    pub async fn close(self) {
        self.handle.closed.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(()).await;
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "ledger writer task failed");
        }
    }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<UsageRecord>,
    mut stop: mpsc::Receiver<()>,
    batch_size: usize,
    flush_interval: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            n = rx.recv_many(&mut batch, batch_size) => {
                if n == 0 {
                    break;
                }
                // Let a batch fill for up to `flush_interval` before writing.
                if batch.len() < batch_size {
                    let deadline = tokio::time::Instant::now() + flush_interval;
                    while batch.len() < batch_size {
                        let room = batch_size - batch.len();
                        match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                write(&store, &mut batch).await;
            }
        }
    }
    // Drain: everything already queued is written before shutdown completes.
    rx.close();
    while rx.recv_many(&mut batch, batch_size).await > 0 {
        write(&store, &mut batch).await;
    }
    write(&store, &mut batch).await;
}

async fn write(store: &Store, batch: &mut Vec<UsageRecord>) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len();
    metrics::gauge!("tollgate_ledger_queue_depth").decrement(n as f64);
    for attempt in 1..=WRITE_ATTEMPTS {
        match store.insert_usage(batch).await {
            Ok(()) => {
                metrics::counter!("tollgate_ledger_written_total").increment(n as u64);
                batch.clear();
                return;
            }
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, records = n, "ledger write failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, records = n, "ledger write failed; records dropped");
                metrics::counter!("tollgate_ledger_dropped_total", "reason" => "store_error")
                    .increment(n as u64);
            }
        }
    }
    batch.clear();
}
