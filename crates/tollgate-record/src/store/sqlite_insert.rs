//! The ledger's insert into a SQLite file, through rusqlite's connection
//! and two raw prepared statements on its own thread, rather than
//! through the sqlx `Any` pool.
//!
//! Why not sqlx here: a multi-row `INSERT` is parsed again for every batch
//! size that is not yet in the statement cache (the last chunk of almost
//! every batch), and each bound value is copied twice (into `AnyArguments`,
//! then into the SQLite arguments) before the worker thread binds it. On a
//! core shared with the request path that cost about a third of the
//! observability budget (bench/history/LEDGER.md). Here three
//! statements (`CHUNK_ROWS` rows, one row, the budget spend's upsert) are
//! prepared once and kept; a batch is one `BEGIN IMMEDIATE … COMMIT` of them, binding straight from
//! the records. Everything else (reads, keys, retention, migrations) stays on
//! sqlx, and PostgreSQL keeps its multi-row insert.
//!
//! Why prepared statements bound from borrowed text (`tollgate-sqlite`,
//! the workspace's one crate with `unsafe`): rusqlite binds every text as
//! `SQLITE_TRANSIENT`, so SQLite mallocs and copies each of a row's 18
//! texts before the insert copies them again into the record: 9.7 k of the
//! 21 k instructions a row cost (bench/history/LEDGER.md).
//!
//! An in-memory database cannot take this path: a second connection would
//! open a different, empty database. `Store::open` keeps the sqlx insert
//! for `sqlite::memory:`.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use tollgate_sqlite::{Prepared, Value};

use super::spend::{Sums, UPSERT};
use super::{insert_usage_sql, Backend, StoreError, USAGE_COLUMN_COUNT};
use crate::usage_record::UsageRecord;

/// One connection, owned by its own thread (`tollgate-ledger-sqlite`),
/// which runs below the request path's priority (`crate::background`);
/// batches reach it one at a time from the ledger writer, its only caller.
pub(super) struct SqliteInsert {
    jobs: std_mpsc::Sender<Job>,
}

/// A batch to insert and where its result (and the records, to be freed on
/// the runtime thread that allocated them) goes back.
type Job = (
    Vec<Arc<UsageRecord>>,
    oneshot::Sender<(Result<(), StoreError>, Vec<Arc<UsageRecord>>)>,
);

/// The connection and its statements, in this order: the two inserts and
/// the budget spend's upsert.
type Writer = Prepared;
const CHUNK: usize = 0;
const ONE: usize = 1;
const SPEND: usize = 2;

impl SqliteInsert {
    /// Opens the (already created and migrated) database file.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The sqlx connections may hold the write lock (keys, retention):
        // wait for it as they do; WAL is already on (persistent in the file).
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Statement journals in memory: a multi-row INSERT that may meet a
        // conflict keeps the pages it changes in a sub-journal, which SQLite
        // otherwise spills to a temporary file, several `pwrite`s per
        // 16-row chunk (strace: more `pwrite`s than the WAL itself). One
        // statement's sub-journal is a few pages; nothing else on this
        // connection makes temporary tables.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let writer = Prepared::new(
            conn,
            &[
                &insert_usage_sql(Backend::Sqlite, CHUNK_ROWS),
                &insert_usage_sql(Backend::Sqlite, 1),
                UPSERT,
            ],
        )?;
        let (jobs, rx) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tollgate-ledger-sqlite".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                let mut writer = writer;
                // Ends when the store (the sender) is dropped.
                while let Ok((records, reply)) = rx.recv() {
                    let result = insert_all(&mut writer, &records);
                    let _ = reply.send((result, records));
                }
            })
            .map_err(|e| StoreError::Invalid(format!("sqlite ledger writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Writes a batch of new records and the budget spend they add in one
    /// transaction. Only for batches from the ledger queue: their records
    /// are not stored yet, so all their spend is added (a replay goes
    /// through `Store::insert_usage_replayed`).
    pub(super) async fn insert(&self, records: Vec<Arc<UsageRecord>>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((records, reply))
            .map_err(|_| StoreError::Invalid("sqlite ledger writer thread stopped".into()))?;
        // The records come back, to be released here on the runtime's
        // thread that allocated them: freed on the writer thread, each of a
        // record's strings went through the allocator's cross-thread free
        // list (`_mi_page_free_collect` in perf).
        let (result, records) = answer
            .await
            .map_err(|_| StoreError::Invalid("sqlite ledger writer thread stopped".into()))?;
        drop(records);
        result
    }
}

/// Rows per multi-row statement: a batch goes in statements of this many
/// rows, the remainder row by row, so exactly two insert statements are ever
/// prepared. Per-statement work (the `AUTOINCREMENT` sequence update, the
/// conflict check set-up, the statement reset) is paid once per chunk.
const CHUNK_ROWS: usize = 16;

fn insert_all(w: &mut Writer, records: &[Arc<UsageRecord>]) -> Result<(), StoreError> {
    let chunks = records.chunks_exact(CHUNK_ROWS);
    let rest = chunks.remainder();
    let sums = Sums::of(records);
    w.transaction(|batch| {
        for c in chunks {
            batch.run(CHUNK, c.iter().flat_map(|r| values(r)))?;
        }
        for r in rest {
            batch.run(ONE, values(r))?;
        }
        for s in &sums.0 {
            batch.run(
                SPEND,
                [
                    Value::Int(s.window),
                    Value::Text(&s.cap),
                    Value::Text(&s.rule),
                    Value::Text(&s.partition),
                    Value::Real(s.spent),
                ],
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// One record's values, in `USAGE_COLUMNS` order.
fn values(r: &UsageRecord) -> [Value<'_>; USAGE_COLUMN_COUNT] {
    use Value::{Int, Real, Text};
    let opt_real = |v: Option<f64>| v.map_or(Value::Null, Real);
    [
        Int(r.ts_ms),
        Text(&r.request_id),
        Text(&r.principal),
        Text(&r.key_id),
        Text(&r.tenant),
        Text(&r.auth_method),
        Text(&r.issuer),
        Text(&r.endpoint),
        Text(&r.requested_model),
        Text(&r.provider),
        Text(&r.upstream_model),
        Int(i64::from(r.stream)),
        Int(r.prompt_tokens),
        Int(r.completion_tokens),
        Int(i64::from(r.tokens_estimated)),
        Real(r.cost),
        Int(i64::from(r.status)),
        Text(&r.error),
        Real(r.latency_ms),
        opt_real(r.ttft_ms),
        Text(&r.attempts),
        Text(&r.guardrails),
        Text(&r.record_id),
        Text(&r.groups),
        Text(&r.cache),
        Real(r.cost_saved),
        Text(&r.template),
        r.template_version.map_or(Value::Null, Int),
        Text(&r.limits),
        Int(r.rows),
        Int(r.request_bytes),
        Int(r.response_bytes),
        Text(&r.tags),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_placeholder_per_column() {
        use super::{insert_usage_sql, Backend, CHUNK_ROWS, USAGE_COLUMN_COUNT};
        for rows in [1, CHUNK_ROWS] {
            let sql = insert_usage_sql(Backend::Sqlite, rows);
            assert_eq!(sql.matches('?').count(), rows * USAGE_COLUMN_COUNT, "{sql}");
            assert!(!sql.contains('$'), "SQLite keeps `?`: {sql}");
        }
        assert_eq!(
            crate::store::USAGE_COLUMNS.split(',').count(),
            USAGE_COLUMN_COUNT
        );
    }

    /// Every column round-trips, in chunks and in the row-by-row rest, and
    /// a batch written twice is stored once.
    #[tokio::test]
    async fn batches_round_trip_and_stay_idempotent() {
        use std::sync::Arc;

        use crate::store::Store;
        use crate::usage_record::UsageRecord;

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let n = 2 * super::CHUNK_ROWS + 5;
        let recs: Vec<Arc<UsageRecord>> = (0..n)
            .map(|i| {
                Arc::new(UsageRecord {
                    ts_ms: 1_700_000_000_000 + i as i64,
                    request_id: format!("req-{i}"),
                    principal: format!("p{i}"),
                    key_id: "k".into(),
                    tenant: "acme".into(),
                    auth_method: "api_key".into(),
                    issuer: String::new(),
                    endpoint: "chat".into(),
                    requested_model: "m".into(),
                    provider: "up".into(),
                    upstream_model: "mock".into(),
                    stream: i % 2 == 0,
                    prompt_tokens: i as i64,
                    completion_tokens: 2 * i as i64,
                    tokens_estimated: i % 3 == 0,
                    cost: i as f64 * 0.5,
                    status: 200 + (i % 2) as u16,
                    error: if i % 2 == 0 {
                        String::new()
                    } else {
                        "x\"y".into()
                    },
                    latency_ms: 1.25,
                    ttft_ms: (i % 2 == 0).then_some(0.5),
                    attempts: "[]".into(),
                    guardrails: "[]".into(),
                    cache: "miss".into(),
                    cost_saved: 0.0,
                    template: if i == 3 { "t".into() } else { String::new() },
                    template_version: (i == 3).then_some(7),
                    limits: "[]".into(),
                    record_id: format!("id-{i}"),
                    groups: r#"["eng"]"#.into(),
                    rows: i as i64,
                    request_bytes: 3 * i as i64,
                    response_bytes: 4 * i as i64,
                    tags: if i == 5 {
                        r#"{"team":"ml"}"#.into()
                    } else {
                        String::new()
                    },
                })
            })
            .collect();
        store.insert_usage(&recs).await.unwrap();
        store.insert_usage(&recs[..n - 1]).await.unwrap();
        let stored = store.usage_since(0).await.unwrap();
        assert_eq!(stored.len(), n);
        for (got, want) in stored.iter().zip(&recs) {
            assert_eq!(got, &**want);
        }
    }
}
