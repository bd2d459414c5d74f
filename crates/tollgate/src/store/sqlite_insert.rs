//! The ledger's insert into a SQLite file, through rusqlite on a blocking
//! thread rather than through the sqlx `Any` pool.
//!
//! Why not sqlx here: a multi-row `INSERT` is parsed again for every batch
//! size that is not yet in the statement cache (the last chunk of almost
//! every batch), and each bound value is copied twice (into `AnyArguments`,
//! then into the SQLite arguments) before the worker thread binds it. On a
//! core shared with the request path that cost about a third of the
//! observability budget (bench/LEDGER.md, fifth session). Here two
//! statements (`CHUNK_ROWS` rows, one row) are prepared once and kept; a
//! batch is one `BEGIN IMMEDIATE … COMMIT` of them, binding straight from
//! the records. Everything else (reads, keys, retention, migrations) stays on
//! sqlx, and PostgreSQL keeps its multi-row insert.
//!
//! An in-memory database cannot take this path: a second connection would
//! open a different, empty database. `Store::open` keeps the sqlx insert
//! for `sqlite::memory:`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Statement, ToSql, TransactionBehavior};

use super::{insert_usage_sql, Backend, StoreError, USAGE_COLUMN_COUNT};
use crate::ledger::UsageRecord;

/// One connection, used by one batch at a time (the ledger writer is the
/// only caller; the mutex is never contended on the request path).
pub(super) struct SqliteInsert {
    conn: Arc<Mutex<Connection>>,
    /// The two statements' SQL, built once (the statement cache is keyed by it).
    sql: Arc<Sql>,
}

struct Sql {
    chunk: String,
    one: String,
}

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
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            sql: Arc::new(Sql {
                chunk: insert_usage_sql(Backend::Sqlite, CHUNK_ROWS),
                one: insert_usage_sql(Backend::Sqlite, 1),
            }),
        })
    }

    /// Writes the batch in one transaction; a record already stored (same
    /// `record_id`) is skipped.
    pub(super) async fn insert(&self, records: Vec<Arc<UsageRecord>>) -> Result<(), StoreError> {
        let conn = Arc::clone(&self.conn);
        let sql = Arc::clone(&self.sql);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| StoreError::Invalid("sqlite ledger connection poisoned".into()))?;
            insert_all(&mut conn, &sql, &records)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("sqlite ledger insert: {e}")))?
    }
}

/// Rows per multi-row statement: a batch goes in statements of this many
/// rows, the remainder row by row, so exactly two statements are ever
/// prepared. Per-statement work (the `AUTOINCREMENT` sequence update, the
/// conflict check set-up, the statement reset) is paid once per chunk.
const CHUNK_ROWS: usize = 16;

fn insert_all(
    conn: &mut Connection,
    sql: &Sql,
    records: &[Arc<UsageRecord>],
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let chunks = records.chunks_exact(CHUNK_ROWS);
        let rest = chunks.remainder();
        if chunks.len() > 0 {
            let mut stmt = tx.prepare_cached(&sql.chunk)?;
            for chunk in chunks {
                for (i, r) in chunk.iter().enumerate() {
                    bind(&mut stmt, i * USAGE_COLUMN_COUNT, r)?;
                }
                stmt.raw_execute()?;
            }
        }
        if !rest.is_empty() {
            let mut stmt = tx.prepare_cached(&sql.one)?;
            for r in rest {
                bind(&mut stmt, 0, r)?;
                stmt.raw_execute()?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Binds one record's values at parameters `base + 1 …` (SQLite numbers
/// the statement's `?`s in order), in `USAGE_COLUMNS` order.
fn bind(stmt: &mut Statement<'_>, base: usize, r: &UsageRecord) -> rusqlite::Result<()> {
    let values: [&dyn ToSql; USAGE_COLUMN_COUNT] = [
        &r.ts_ms,
        &r.request_id,
        &r.principal,
        &r.key_id,
        &r.tenant,
        &r.auth_method,
        &r.issuer,
        &r.endpoint,
        &r.requested_model,
        &r.provider,
        &r.upstream_model,
        &r.stream,
        &r.prompt_tokens,
        &r.completion_tokens,
        &r.tokens_estimated,
        &r.cost,
        &r.status,
        &r.error,
        &r.latency_ms,
        &r.ttft_ms,
        &r.attempts,
        &r.guardrails,
        &r.record_id,
        &r.groups,
        &r.cache,
        &r.cost_saved,
        &r.template,
        &r.template_version,
        &r.limits,
    ];
    for (i, v) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(base + i + 1, v)?;
    }
    Ok(())
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

        use crate::ledger::UsageRecord;
        use crate::store::Store;

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
