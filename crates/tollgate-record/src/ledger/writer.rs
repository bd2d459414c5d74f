//! The background writer: `try_send` on the hot path, batches of up to
//! `batch_size` written every `flush_interval` (or as soon as a batch is
//! full), retried a few times on other store errors, spooled to a local
//! file (`spool.rs`) at once when the store cannot be reached, and replayed
//! in order once the store answers; drained on shutdown. A crash (not a
//! shutdown) loses what was queued and not yet written or spooled: at most
//! one `flush_interval` of records plus one attempt to reach the store
//! (`store::REACH_TIMEOUT`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spool::Spool;
use super::UsageRecord;
use crate::store::{Store, StoreError};
use tollgate_config::LedgerConfig;

const WRITE_ATTEMPTS: usize = 3;
/// A write that has a connection but no answer (a server that stopped
/// answering mid-statement) counts as unreachable after this. A healthy
/// batch takes milliseconds; a write that did land is skipped when the
/// spool is replayed (inserts are idempotent).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a non-empty spool is retried while the store stays down.
const REPLAY_BACKOFF: Duration = Duration::from_secs(1);

/// The sending side, cheap to clone, kept in the app state.
#[derive(Clone)]
pub struct LedgerHandle {
    tx: Option<mpsc::Sender<Arc<UsageRecord>>>,
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
    /// Shared (`Arc`) with the audit entry of the same request: one record
    /// built per request, not one per consumer.
    pub fn record(&self, rec: impl Into<Arc<UsageRecord>>) -> bool {
        let Some(tx) = &self.tx else { return true };
        let mut rec = rec.into();
        if rec.record_id.is_empty() {
            Arc::make_mut(&mut rec).record_id = uuid::Uuid::now_v7().to_string();
        }
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
    /// Starts the writer; `spool_path` is where records wait while the store
    /// is down (None: no spool, such records are dropped and counted).
    pub async fn start(store: Store, cfg: &LedgerConfig, spool_path: Option<&Path>) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let (stop_tx, stop_rx) = mpsc::channel(1);
        let spool = match spool_path {
            Some(p) => match Spool::open(p, cfg.spool_max_records).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, path = %p.display(),
                        "ledger spool unavailable; records are dropped while the store is down");
                    None
                }
            },
            None => None,
        };
        let sink = Sink {
            store,
            spool,
            replay_at: tokio::time::Instant::now(),
            batch_size: cfg.batch_size,
        };
        let task = tokio::spawn(run(sink, rx, stop_rx, cfg.flush_interval));
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

/// Where batches go: the store, or the spool while the store is down.
struct Sink {
    store: Store,
    spool: Option<Spool>,
    /// When the spool is next replayed.
    replay_at: tokio::time::Instant,
    batch_size: usize,
}

impl Sink {
    fn spooled(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Replays the spool if it is due; true when it is empty afterwards.
    async fn replay(&mut self, force: bool) -> bool {
        let Some(spool) = self.spool.as_mut() else {
            return true;
        };
        if spool.is_empty() {
            return true;
        }
        if !force && tokio::time::Instant::now() < self.replay_at {
            return false;
        }
        match spool.replay(&self.store, self.batch_size).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, spooled = spool.len(), "ledger store still unreachable");
                self.replay_at = tokio::time::Instant::now() + REPLAY_BACKOFF;
                false
            }
        }
    }

    /// Writes a batch (after the spool, keeping order) or spools it.
    async fn deliver(&mut self, batch: &mut Vec<Arc<UsageRecord>>, force_replay: bool) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        metrics::gauge!("tollgate_ledger_queue_depth").decrement(n as f64);
        if self.replay(force_replay).await && write(&self.store, batch).await {
            metrics::counter!("tollgate_ledger_written_total").increment(n as u64);
        } else if let Some(spool) = self.spool.as_mut() {
            spool.append(batch).await;
            self.replay_at = self
                .replay_at
                .max(tokio::time::Instant::now() + REPLAY_BACKOFF);
        } else {
            metrics::counter!("tollgate_ledger_dropped_total", "reason" => "store_error")
                .increment(n as u64);
        }
        batch.clear();
    }
}

async fn run(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Arc<UsageRecord>>,
    mut stop: mpsc::Receiver<()>,
    flush_interval: Duration,
) {
    let batch_size = sink.batch_size;
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let replay_at = sink.replay_at;
        let idle_replay = sink.spooled();
        tokio::select! {
            biased;
            _ = stop.recv() => break,
            n = rx.recv_many(&mut batch, batch_size) => {
                if n == 0 {
                    break;
                }
                // Let a batch fill for `flush_interval` before writing. The
                // task sleeps meanwhile instead of waking per record (a wake
                // per request cost measurable throughput at saturation); a
                // queue that holds a full batch is written without waiting.
                let mut stopping = false;
                if batch.len() < batch_size {
                    tokio::select! {
                        biased;
                        _ = stop.recv() => stopping = true,
                        () = tokio::time::sleep(flush_interval) => {}
                    }
                    while batch.len() < batch_size {
                        match rx.try_recv() {
                            Ok(rec) => batch.push(rec),
                            Err(_) => break,
                        }
                    }
                }
                sink.deliver(&mut batch, false).await;
                if stopping {
                    break;
                }
            }
            // No traffic but a spool waiting: replay it when due.
            _ = tokio::time::sleep_until(replay_at), if idle_replay => {
                sink.replay(false).await;
            }
        }
    }
    // Drain: everything already queued is written (or spooled) before
    // shutdown completes; the spool gets one last try.
    rx.close();
    let mut force = true;
    while rx.recv_many(&mut batch, batch_size).await > 0 {
        sink.deliver(&mut batch, force).await;
        force = false;
    }
    if sink.spooled() && !sink.replay(true).await {
        tracing::warn!(
            records = sink.spool.as_ref().map_or(0, Spool::len),
            "ledger store unreachable at shutdown; records stay in the spool for the next start"
        );
    }
}

/// One batch, a few tries; false when the store kept failing or cannot
/// be reached (then the batch is spooled at once: every retry would wait
/// on the connection again while the records sit in memory).
async fn write(store: &Store, batch: &[Arc<UsageRecord>]) -> bool {
    for attempt in 1..=WRITE_ATTEMPTS {
        match insert(store, batch, false).await {
            Ok(()) => return true,
            Err(e) if e.is_unreachable() => {
                tracing::error!(error = %e, records = batch.len(), "ledger store unreachable; spooling");
                return false;
            }
            Err(e) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, records = batch.len(), "ledger write failed; retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "ledger write failed; spooling");
            }
        }
    }
    false
}

/// One insert, bounded by `WRITE_TIMEOUT`; `replayed`: records from the
/// spool, which the store may hold already.
pub(super) async fn insert(
    store: &Store,
    batch: &[Arc<UsageRecord>],
    replayed: bool,
) -> Result<(), StoreError> {
    let write = async {
        match replayed {
            true => store.insert_usage_replayed(batch).await,
            false => store.insert_usage(batch).await,
        }
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unreachable(format!(
            "no answer within {WRITE_TIMEOUT:?}"
        ))),
    }
}
