//! The spool: where usage records go while the store is unreachable. An
//! append-only JSON-lines file, bounded by record count, written and synced
//! batch by batch by the writer task (its only user), and replayed in order
//! when the store answers again. Replays are idempotent (the store skips a
//! `record_id` it already has), so a replay cut short is simply redone.
//! Records past the bound are dropped, counted and logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::UsageRecord;
use crate::store::{Store, StoreError};

pub struct Spool {
    path: PathBuf,
    records: usize,
    max_records: usize,
}

/// The default spool file for a storage URL: next to a SQLite file, else in
/// the working directory.
pub fn default_path(storage_url: &str) -> PathBuf {
    let file = storage_url
        .strip_prefix("sqlite://")
        .or_else(|| storage_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.contains(":memory:"));
    match file {
        Some(p) => PathBuf::from(format!("{p}.spool.jsonl")),
        None => PathBuf::from("tollgate-ledger.spool.jsonl"),
    }
}

impl Spool {
    /// Opens the spool at `path`, counting what an earlier run left in it.
    pub async fn open(path: &Path, max_records: usize) -> std::io::Result<Self> {
        let records = match File::open(path).await {
            Ok(f) => {
                let mut lines = BufReader::new(f).lines();
                let mut n = 0;
                while let Some(line) = lines.next_line().await? {
                    n += usize::from(!line.trim().is_empty());
                }
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let spool = Self {
            path: path.to_path_buf(),
            records,
            max_records,
        };
        spool.gauge();
        if records > 0 {
            tracing::warn!(records, path = %path.display(), "ledger spool holds records from an earlier run; replaying when the store answers");
        }
        Ok(spool)
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    fn gauge(&self) {
        metrics::gauge!("tollgate_ledger_spool_records").set(self.records as f64);
    }

    /// Appends as much of `batch` as the bound allows, synced to disk; the
    /// rest is dropped and counted. Returns how many were spooled.
    pub async fn append<R: std::borrow::Borrow<UsageRecord>>(&mut self, batch: &[R]) -> usize {
        let room = self.max_records.saturating_sub(self.records);
        let take = batch.len().min(room);
        let mut text = String::new();
        for r in &batch[..take] {
            if let Ok(line) = serde_json::to_string(r.borrow()) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let written = match self.write(text.as_bytes()).await {
            Ok(()) => take,
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), records = take,
                    "ledger spool write failed; records dropped");
                metrics::counter!("tollgate_ledger_dropped_total", "reason" => "spool_error")
                    .increment(take as u64);
                0
            }
        };
        let dropped = batch.len() - take;
        if dropped > 0 {
            tracing::error!(dropped, max_records = self.max_records, path = %self.path.display(),
                "ledger spool full; usage records dropped");
            metrics::counter!("tollgate_ledger_dropped_total", "reason" => "spool_full")
                .increment(dropped as u64);
        }
        self.records += written;
        metrics::counter!("tollgate_ledger_spooled_total").increment(written as u64);
        self.gauge();
        written
    }

    async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        f.write_all(bytes).await?;
        f.sync_data().await
    }

    /// Writes the spooled records to the store in order, `batch_size` at a
    /// time, then empties the spool. On a store error the spool is kept
    /// whole (what was already written is skipped on the next replay).
    pub async fn replay(&mut self, store: &Store, batch_size: usize) -> Result<usize, StoreError> {
        let file = match File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.records = 0;
                self.gauge();
                return Ok(0);
            }
            Err(e) => return Err(StoreError::Invalid(format!("spool: {e}"))),
        };
        let mut lines = BufReader::new(file).lines();
        let mut batch = Vec::with_capacity(batch_size);
        let mut replayed = 0;
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(|e| StoreError::Invalid(format!("spool: {e}")))?;
            let done = line.is_none();
            if let Some(line) = line.filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<UsageRecord>(&line) {
                    Ok(r) => batch.push(Arc::new(r)),
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable ledger spool line dropped");
                        metrics::counter!("tollgate_ledger_dropped_total", "reason" => "spool_corrupt")
                            .increment(1);
                    }
                }
            }
            if batch.len() >= batch_size || (done && !batch.is_empty()) {
                super::writer::insert(store, &batch, true).await?;
                replayed += batch.len();
                batch.clear();
            }
            if done {
                break;
            }
        }
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .await
            .map_err(|e| StoreError::Invalid(format!("spool: {e}")))?;
        self.records = 0;
        self.gauge();
        metrics::counter!("tollgate_ledger_replayed_total").increment(replayed as u64);
        tracing::info!(records = replayed, "ledger spool replayed into the store");
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths() {
        assert_eq!(
            default_path("sqlite:///var/lib/t.db"),
            PathBuf::from("/var/lib/t.db.spool.jsonl")
        );
        assert_eq!(
            default_path("sqlite://t.db?mode=rwc"),
            PathBuf::from("t.db.spool.jsonl")
        );
        assert_eq!(
            default_path("postgres://u@h/db"),
            PathBuf::from("tollgate-ledger.spool.jsonl")
        );
        assert_eq!(
            default_path("sqlite::memory:"),
            PathBuf::from("tollgate-ledger.spool.jsonl")
        );
    }

    #[tokio::test]
    async fn bounded_append_and_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut spool = Spool::open(&path, 3).await.unwrap();
        let recs: Vec<UsageRecord> = (0..5)
            .map(|i| UsageRecord {
                request_id: format!("r{i}"),
                record_id: format!("id{i}"),
                ..Default::default()
            })
            .collect();
        assert_eq!(spool.append(&recs[..2]).await, 2);
        assert_eq!(spool.append(&recs[2..]).await, 1, "bounded at 3");
        // A restart sees what is there.
        let mut spool = Spool::open(&path, 3).await.unwrap();
        assert_eq!(spool.len(), 3);
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        // A record already stored is not duplicated by the replay.
        store
            .insert_usage(&[Arc::new(recs[0].clone())])
            .await
            .unwrap();
        assert_eq!(spool.replay(&store, 2).await.unwrap(), 3);
        assert!(spool.is_empty());
        let ids: Vec<String> = store
            .usage_since(0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
    }
}
