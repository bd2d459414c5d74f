//! The state store: API keys managed with `tollgate keys` and the usage
//! ledger's table. SQLite by default (file from `storage.url`, WAL mode).
//! Only background tasks and CLI commands call it, never the request path.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::config::PrincipalKind;
use crate::ledger::UsageRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store: {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A key as stored: the hash only, never the key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredKey {
    pub id: String,
    pub hash: String,
    pub principal: String,
    pub kind: String,
    pub groups: Vec<String>,
    pub models: Vec<String>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Principal,
    Model,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageTotal {
    pub key: String,
    pub requests: i64,
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        principal TEXT NOT NULL,
        kind TEXT NOT NULL,
        groups_json TEXT NOT NULL,
        models_json TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS usage (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_ms INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        key_id TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        provider TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        stream INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        tokens_estimated INTEGER NOT NULL,
        cost REAL NOT NULL,
        status INTEGER NOT NULL,
        error TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL
    )",
    "CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts_ms)",
];

/// Columns added after the first release: (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("usage", "attempts", "TEXT NOT NULL DEFAULT '[]'")];

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (creating when missing) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        // An in-memory database exists per connection: keep exactly one.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        for (table, column, def) in ADDED_COLUMNS {
            let present: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?"
            ))
            .bind(column)
            .fetch_optional(&pool)
            .await?;
            if present.is_none() {
                sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {def}"))
                    .execute(&pool)
                    .await?;
            }
        }
        Ok(Self { pool })
    }

    /// Writes a batch in one transaction with one cached single-row
    /// statement. (A multi-row INSERT is re-prepared for every batch size
    /// and holds the SQLite thread for one long step; single rows keep each
    /// step short, which matters when the writer shares a core with the
    /// request path.)
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO usage (ts_ms, request_id, principal, key_id, endpoint, requested_model, \
                 provider, upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated, \
                 cost, status, error, latency_ms, ttft_ms, attempts) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(r.ts_ms)
            .bind(&r.request_id)
            .bind(&r.principal)
            .bind(&r.key_id)
            .bind(&r.endpoint)
            .bind(&r.requested_model)
            .bind(&r.provider)
            .bind(&r.upstream_model)
            .bind(r.stream)
            .bind(r.prompt_tokens)
            .bind(r.completion_tokens)
            .bind(r.tokens_estimated)
            .bind(r.cost)
            .bind(i64::from(r.status))
            .bind(&r.error)
            .bind(r.latency_ms)
            .bind(r.ttft_ms)
            .bind(&r.attempts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn usage_since(&self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT ts_ms, request_id, principal, key_id, endpoint, requested_model, provider, \
             upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated, cost, status, \
             error, latency_ms, ttft_ms, attempts FROM usage WHERE ts_ms >= ? ORDER BY seq",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRecord {
                    ts_ms: r.try_get(0)?,
                    request_id: r.try_get(1)?,
                    principal: r.try_get(2)?,
                    key_id: r.try_get(3)?,
                    endpoint: r.try_get(4)?,
                    requested_model: r.try_get(5)?,
                    provider: r.try_get(6)?,
                    upstream_model: r.try_get(7)?,
                    stream: r.try_get(8)?,
                    prompt_tokens: r.try_get(9)?,
                    completion_tokens: r.try_get(10)?,
                    tokens_estimated: r.try_get(11)?,
                    cost: r.try_get(12)?,
                    status: u16::try_from(r.try_get::<i64, _>(13)?).unwrap_or(0),
                    error: r.try_get(14)?,
                    latency_ms: r.try_get(15)?,
                    ttft_ms: r.try_get(16)?,
                    attempts: r.try_get(17)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn usage_totals(
        &self,
        since_ms: i64,
        by: GroupBy,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let column = match by {
            GroupBy::Principal => "principal",
            GroupBy::Model => "requested_model",
        };
        let sql = format!(
            "SELECT {column}, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), \
             SUM(prompt_tokens), SUM(completion_tokens), SUM(cost) FROM usage WHERE ts_ms >= ? \
             GROUP BY {column} ORDER BY {column}"
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageTotal {
                    key: r.try_get(0)?,
                    requests: r.try_get(1)?,
                    errors: r.try_get(2)?,
                    prompt_tokens: r.try_get(3)?,
                    completion_tokens: r.try_get(4)?,
                    cost: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn create_key(
        &self,
        id: &str,
        hash: &str,
        principal: &str,
        kind: PrincipalKind,
        groups: &[String],
        models: &[String],
    ) -> Result<(), StoreError> {
        let json =
            |v: &[String]| serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()));
        sqlx::query(
            "INSERT INTO api_keys (id, hash, principal, kind, groups_json, models_json, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(hash)
        .bind(principal)
        .bind(kind.as_str())
        .bind(json(groups)?)
        .bind(json(models)?)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Invalid(format!("a key with id {id:?} already exists"))
            }
            other => StoreError::Sql(other),
        })?;
        Ok(())
    }

    /// Marks a key revoked; false when no active key has that id.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, hash, principal, kind, groups_json, models_json, created_ms, revoked_ms \
             FROM api_keys ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let groups: String = r.try_get(4)?;
                let models: String = r.try_get(5)?;
                Ok(StoredKey {
                    id: r.try_get(0)?,
                    hash: r.try_get(1)?,
                    principal: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    groups: serde_json::from_str(&groups).unwrap_or_default(),
                    models: serde_json::from_str(&models).unwrap_or_default(),
                    created_ms: r.try_get(6)?,
                    revoked_ms: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
