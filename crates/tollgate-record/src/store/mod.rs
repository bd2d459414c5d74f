//! The state store: API keys managed with `tollgate keys`, the usage
//! ledger's table, MCP tool pins and encrypted named secrets. SQLite by
//! default (file from `storage.url`, WAL mode) or PostgreSQL
//! (`postgres://…`, for several gateway nodes), behind one sqlx `Any` pool:
//! one set of SQL with `?` placeholders, numbered for PostgreSQL
//! (`schema::placeholders`).
//! Only background tasks and CLI commands call it, never the request path.

mod reach;
mod schema;
mod secrets;
mod spend;
mod sqlite_insert;
mod tool_pins;
mod usage;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row};

pub use reach::REACH_TIMEOUT;
pub use secrets::SealedSecret;
pub use tool_pins::ToolPin;
pub use usage::{
    BadStatusFilter, UnknownGroupBy, UsageFilter, UsageGroupBy, UsageQuery, UsageReport, UsageRow,
};

use crate::usage_record::UsageRecord;
use tollgate_config::PrincipalKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Invalid(String),
    /// The server did not answer in time (`reach.rs`).
    #[error("store unreachable: {0}")]
    Unreachable(String),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The ledger insert of a SQLite file (`sqlite_insert.rs`); `None` for
    /// PostgreSQL and in-memory SQLite, which insert through `pool`.
    sqlite_insert: Option<Arc<sqlite_insert::SqliteInsert>>,
    /// Migrated: set at once by `open`, later (`set_ready`) for a store
    /// opened while its server was down.
    ready: reach::Ready,
}

pub use tollgate_config::Backend;

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
    pub tenant: Option<String>,
    /// Unix ms after which the key is refused.
    pub expires_ms: Option<i64>,
}

/// A key to create (its hash only).
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub id: String,
    pub hash: String,
    pub principal: String,
    pub kind: PrincipalKind,
    pub groups: Vec<String>,
    pub models: Vec<String>,
    pub tenant: Option<String>,
    pub expires_ms: Option<i64>,
}

/// The outcome of a rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotated {
    pub new_id: String,
    /// When the old key stops working (Unix ms).
    pub old_expires_ms: i64,
}

/// Rows per in-memory SQLite INSERT (33 columns: under SQLite's 32,766
/// variables).
const SQLITE_ROWS_PER_INSERT: usize = 128;
/// Rows per PostgreSQL INSERT (33 columns: well under the 65,535 bind limit).
const PG_ROWS_PER_INSERT: usize = 256;

/// The usage columns written, in `bind_usage`'s (and `sqlite_insert::bind`'s) order.
const USAGE_COLUMNS: &str = "ts_ms, request_id, principal, key_id, tenant, auth_method, issuer, \
     endpoint, requested_model, provider, upstream_model, stream, prompt_tokens, \
     completion_tokens, tokens_estimated, cost, status, error, latency_ms, ttft_ms, attempts, \
     guardrails, record_id, groups_json, cache, cost_saved, template, template_version, limits, \
     rows, request_bytes, response_bytes, tags";
const USAGE_COLUMN_COUNT: usize = 33;

/// The multi-row insert of `rows` records.
fn insert_usage_sql(backend: Backend, rows: usize) -> String {
    let row = format!("({})", vec!["?"; USAGE_COLUMN_COUNT].join(", "));
    let values = vec![row; rows].join(", ");
    let sql = format!(
        "INSERT INTO usage ({USAGE_COLUMNS}) VALUES {values} ON CONFLICT (record_id) DO NOTHING"
    );
    schema::placeholders(backend, &sql).into_owned()
}

fn bind_usage<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    r: &'q UsageRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(r.ts_ms)
        .bind(&r.request_id)
        .bind(&r.principal)
        .bind(&r.key_id)
        .bind(&r.tenant)
        .bind(&r.auth_method)
        .bind(&r.issuer)
        .bind(&r.endpoint)
        .bind(&r.requested_model)
        .bind(&r.provider)
        .bind(&r.upstream_model)
        .bind(i64::from(r.stream))
        .bind(r.prompt_tokens)
        .bind(r.completion_tokens)
        .bind(i64::from(r.tokens_estimated))
        .bind(r.cost)
        .bind(i64::from(r.status))
        .bind(&r.error)
        .bind(r.latency_ms)
        .bind(r.ttft_ms)
        .bind(&r.attempts)
        .bind(&r.guardrails)
        .bind(&r.record_id)
        .bind(&r.groups)
        .bind(&r.cache)
        .bind(r.cost_saved)
        .bind(&r.template)
        .bind(r.template_version)
        .bind(&*r.limits)
        .bind(r.rows)
        .bind(r.request_bytes)
        .bind(r.response_bytes)
        .bind(&r.tags)
}

/// Columns added after the first release: (table, column, definition in
/// SQLite terms; PostgreSQL gets BIGINT for INTEGER, DOUBLE PRECISION for
/// REAL). Existing databases get them with `ALTER TABLE … ADD COLUMN` after
/// the versioned migrations (`schema.rs`) ran.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("api_keys", "tenant", "TEXT"),
    ("api_keys", "expires_ms", "INTEGER"),
    ("usage", "tenant", "TEXT NOT NULL DEFAULT ''"),
    ("usage", "auth_method", "TEXT NOT NULL DEFAULT ''"),
    ("usage", "issuer", "TEXT NOT NULL DEFAULT ''"),
    ("usage", "attempts", "TEXT NOT NULL DEFAULT '[]'"),
    ("usage", "guardrails", "TEXT NOT NULL DEFAULT '[]'"),
    ("usage", "cache", "TEXT NOT NULL DEFAULT ''"),
    ("usage", "cost_saved", "REAL NOT NULL DEFAULT 0"),
    ("usage", "template", "TEXT NOT NULL DEFAULT ''"),
    ("usage", "template_version", "INTEGER"),
    ("usage", "limits", "TEXT NOT NULL DEFAULT '[]'"),
    ("usage", "groups_json", "TEXT NOT NULL DEFAULT '[]'"),
    ("usage", "rows", "INTEGER NOT NULL DEFAULT 0"),
    ("usage", "request_bytes", "INTEGER NOT NULL DEFAULT 0"),
    ("usage", "response_bytes", "INTEGER NOT NULL DEFAULT 0"),
    ("usage", "tags", "TEXT NOT NULL DEFAULT ''"),
];

pub use tollgate_core::clock::wall_ms as now_ms;

/// Fail fast when the server is unreachable: the ledger spools meanwhile
/// (and bounds its own wait tighter, `reach.rs`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

fn sqlite_pool_options(memory: bool) -> AnyPoolOptions {
    // An in-memory database exists per connection: keep exactly one, forever.
    AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(if memory { 1 } else { 4 })
        .idle_timeout(None)
        .max_lifetime(None)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000")
                    .await?;
                Ok(())
            })
        })
}

fn postgres_pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(8)
}

impl Store {
    /// Opens (creating when missing) and migrates the store at `url`;
    /// fails when the server cannot be reached (CLI commands, tests).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend =
            Backend::of(url).map_err(|e| StoreError::Invalid(format!("storage.url {e}")))?;
        let mut file = None;
        let opts = match backend {
            Backend::Sqlite => {
                let memory = url.contains(":memory:");
                if !memory {
                    // Create the file and switch it to WAL (persistent) once.
                    let options = SqliteConnectOptions::from_str(url)?
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal);
                    file = Some(options.get_filename().to_path_buf());
                    let conn = options.connect().await?;
                    conn.close().await?;
                }
                sqlite_pool_options(memory)
            }
            Backend::Postgres => postgres_pool_options(),
        };
        let pool = opts.connect(url).await?;
        let mut store = Self {
            pool,
            backend,
            sqlite_insert: None,
            ready: reach::Ready::new(false),
        };
        store.migrate().await?;
        store.ready.set();
        // Opened after the migrations, so the usage table has every column.
        if let Some(path) = file {
            store.sqlite_insert = Some(Arc::new(sqlite_insert::SqliteInsert::open(&path)?));
        }
        Ok(store)
    }

    /// What the server opens: like `open`, but a PostgreSQL server that
    /// cannot be reached gives a store that is not ready yet (the pool
    /// connects when asked) instead of an error; `migrate_when_reachable`
    /// then finishes the job in the background. Other errors (a bad URL,
    /// refused credentials) still fail. A SQLite file is local: `open`.
    pub async fn open_deferred(url: &str) -> Result<Self, StoreError> {
        if !matches!(Backend::of(url), Ok(Backend::Postgres)) {
            return Self::open(url).await;
        }
        sqlx::any::install_default_drivers();
        let store = Self {
            pool: postgres_pool_options().connect_lazy(url)?,
            backend: Backend::Postgres,
            sqlite_insert: None,
            ready: reach::Ready::new(false),
        };
        match store.migrate().await {
            Ok(()) => store.ready.set(),
            Err(e) if e.is_unreachable() => {
                tracing::warn!(error = %e, "store unreachable at start; serving without it \
                    (ledger spooled, store keys and budgets loaded when it answers)");
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        schema::migrate(&mut conn, self.backend).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `sql` with its `?` placeholders in the form this store's backend takes.
    fn sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        schema::placeholders(self.backend, sql)
    }

    /// Writes a batch of new records (from the ledger queue) in one
    /// transaction, with the budget spend they add (`spend.rs`). A SQLite
    /// file: three statements prepared once, 16 rows, one row and the
    /// spend (`sqlite_insert.rs`). PostgreSQL and in-memory SQLite:
    /// multi-row statements of a fixed size (cached; the last chunk of a
    /// batch may be shorter), `PG_ROWS_PER_INSERT` rows per PostgreSQL
    /// round trip. Idempotent: a record already stored (by `record_id`)
    /// is skipped, and adds no spend.
    pub async fn insert_usage(&self, records: &[Arc<UsageRecord>]) -> Result<(), StoreError> {
        if let Some(native) = &self.sqlite_insert {
            return native.insert(records.to_vec()).await;
        }
        self.insert_returning(records).await
    }

    /// Writes records replayed from the spool, some of which a write whose
    /// outcome was unknown may have stored already: only the rows the
    /// insert returns add their spend.
    pub async fn insert_usage_replayed(
        &self,
        records: &[Arc<UsageRecord>],
    ) -> Result<(), StoreError> {
        self.insert_returning(records).await
    }

    async fn insert_returning(&self, records: &[Arc<UsageRecord>]) -> Result<(), StoreError> {
        let mut conn = self.reach().await?;
        let mut tx = conn.begin().await?;
        let rows_per_insert = match self.backend {
            Backend::Sqlite => SQLITE_ROWS_PER_INSERT,
            Backend::Postgres => PG_ROWS_PER_INSERT,
        };
        let mut inserted = std::collections::HashSet::new();
        for chunk in records.chunks(rows_per_insert) {
            let sql = format!(
                "{} RETURNING record_id",
                insert_usage_sql(self.backend, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = bind_usage(q, r);
            }
            for row in q.fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get::<String, _>(0)?);
            }
        }
        spend::Sums::of(records.iter().filter(|r| inserted.contains(&r.record_id)))
            .write(&mut tx, self.backend)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn usage_since(&self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {RECORD_COLUMNS} FROM usage WHERE ts_ms >= ? ORDER BY seq"
            ))
            .into_owned();
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The records of one request id, oldest first (several when callers
    /// reused an `x-request-id`); read through the `usage_request_id` index.
    pub async fn usage_by_request_id(
        &self,
        request_id: &str,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let sql = self
            .sql(&format!(
                "SELECT {RECORD_COLUMNS} FROM usage WHERE request_id = ? ORDER BY seq"
            ))
            .into_owned();
        let rows = sqlx::query(&sql)
            .bind(request_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Deletes usage older than `before_ms` (the retention setting); returns how many.
    pub async fn delete_usage_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.sql("DELETE FROM usage WHERE ts_ms < ?"))
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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
        self.create(&NewKey {
            id: id.into(),
            hash: hash.into(),
            principal: principal.into(),
            kind,
            groups: groups.to_vec(),
            models: models.to_vec(),
            tenant: None,
            expires_ms: None,
        })
        .await
    }

    pub async fn create(&self, key: &NewKey) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_key(&mut conn, self.backend, key).await
    }

    /// Rotation: a new key (hash `new_hash`) for the same principal, grants
    /// and tenant, and the old key set to expire after `overlap` (or keeps
    /// its own earlier expiry), so both work meanwhile. One transaction.
    pub async fn rotate_key(
        &self,
        old_id: &str,
        new_id: Option<&str>,
        new_hash: &str,
        overlap_ms: i64,
        new_expires_ms: Option<i64>,
    ) -> Result<Rotated, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&self.sql(&format!(
            "{KEY_COLUMNS} WHERE id = ? AND revoked_ms IS NULL"
        )))
        .bind(old_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("no active key with id {old_id:?}")))?;
        let old = key_from_row(&row)?;
        let now = now_ms();
        if old.expires_ms.is_some_and(|e| e <= now) {
            return Err(StoreError::Invalid(format!(
                "key {old_id:?} has already expired; create a new key instead"
            )));
        }
        let new_id = match new_id {
            Some(id) => id.to_string(),
            None => next_version_id(old_id),
        };
        let kind = if old.kind == "service" {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        insert_key(
            &mut tx,
            self.backend,
            &NewKey {
                id: new_id.clone(),
                hash: new_hash.to_string(),
                principal: old.principal,
                kind,
                groups: old.groups,
                models: old.models,
                tenant: old.tenant,
                expires_ms: new_expires_ms,
            },
        )
        .await?;
        let old_expires = old
            .expires_ms
            .map_or(now + overlap_ms, |e| e.min(now + overlap_ms));
        sqlx::query(&self.sql("UPDATE api_keys SET expires_ms = ? WHERE id = ?"))
            .bind(old_expires)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotated {
            new_id,
            old_expires_ms: old_expires,
        })
    }

    /// Marks a key revoked; false when no active key has that id.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            &self.sql("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL"),
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(&format!("{KEY_COLUMNS} ORDER BY created_ms, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A stored record's columns, in `record_from_row`'s order.
const RECORD_COLUMNS: &str = "ts_ms, request_id, principal, key_id, endpoint, requested_model, \
     provider, upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated, cost, \
     status, error, latency_ms, ttft_ms, attempts, tenant, auth_method, issuer, guardrails, \
     COALESCE(record_id, ''), groups_json, cache, cost_saved, template, template_version, \
     limits, rows, request_bytes, response_bytes, tags";

fn record_from_row(r: &AnyRow) -> Result<UsageRecord, StoreError> {
    Ok(UsageRecord {
        ts_ms: r.try_get(0)?,
        request_id: r.try_get(1)?,
        principal: r.try_get(2)?,
        key_id: r.try_get(3)?,
        endpoint: r.try_get(4)?,
        requested_model: r.try_get(5)?,
        provider: r.try_get(6)?,
        upstream_model: r.try_get(7)?,
        stream: r.try_get::<i64, _>(8)? != 0,
        prompt_tokens: r.try_get(9)?,
        completion_tokens: r.try_get(10)?,
        tokens_estimated: r.try_get::<i64, _>(11)? != 0,
        cost: r.try_get(12)?,
        status: u16::try_from(r.try_get::<i64, _>(13)?).unwrap_or(0),
        error: r.try_get(14)?,
        latency_ms: r.try_get(15)?,
        ttft_ms: r.try_get(16)?,
        attempts: r.try_get(17)?,
        tenant: r.try_get(18)?,
        auth_method: r.try_get(19)?,
        issuer: r.try_get(20)?,
        guardrails: r.try_get(21)?,
        record_id: r.try_get(22)?,
        groups: r.try_get(23)?,
        cache: r.try_get(24)?,
        cost_saved: r.try_get(25)?,
        template: r.try_get(26)?,
        template_version: r.try_get(27)?,
        limits: crate::limits_column::LimitsColumn::stored(r.try_get::<String, _>(28)?),
        rows: r.try_get(29)?,
        request_bytes: r.try_get(30)?,
        response_bytes: r.try_get(31)?,
        tags: r.try_get(32)?,
    })
}

const KEY_COLUMNS: &str =
    "SELECT id, hash, principal, kind, groups_json, models_json, created_ms, \
     revoked_ms, tenant, expires_ms FROM api_keys";

fn key_from_row(r: &AnyRow) -> Result<StoredKey, StoreError> {
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
        tenant: r.try_get(8)?,
        expires_ms: r.try_get(9)?,
    })
}

async fn insert_key(
    conn: &mut AnyConnection,
    backend: Backend,
    key: &NewKey,
) -> Result<(), StoreError> {
    let json =
        |v: &[String]| serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()));
    sqlx::query(&schema::placeholders(
        backend,
        "INSERT INTO api_keys (id, hash, principal, kind, groups_json, models_json, created_ms, \
         tenant, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ))
    .bind(&key.id)
    .bind(&key.hash)
    .bind(&key.principal)
    .bind(key.kind.as_str())
    .bind(json(&key.groups)?)
    .bind(json(&key.models)?)
    .bind(now_ms())
    .bind(&key.tenant)
    .bind(key.expires_ms)
    .execute(conn)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Invalid(format!("a key with id {:?} already exists", key.id))
        }
        other => StoreError::Sql(other),
    })?;
    Ok(())
}

/// `bot` → `bot-v2`, `bot-v2` → `bot-v3`.
pub fn next_version_id(id: &str) -> String {
    if let Some((base, n)) = id.rsplit_once("-v") {
        if let Ok(n) = n.parse::<u32>() {
            return format!("{base}-v{}", n.saturating_add(1));
        }
    }
    format!("{id}-v2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    #[test]
    fn version_ids() {
        assert_eq!(next_version_id("bot"), "bot-v2");
        assert_eq!(next_version_id("bot-v2"), "bot-v3");
        assert_eq!(next_version_id("my-vault"), "my-vault-v2");
    }

    #[tokio::test]
    async fn migrates_an_old_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            let opts = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            // The foundation's tables, without the identity columns.
            for stmt in [
                "CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, principal TEXT NOT NULL, kind TEXT NOT NULL, groups_json TEXT NOT NULL, models_json TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked_ms INTEGER)",
                "INSERT INTO api_keys VALUES ('k', 'sha256:00', 'p', 'user', '[]', '[]', 1, NULL)",
                "CREATE TABLE usage (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, request_id TEXT NOT NULL, principal TEXT NOT NULL, key_id TEXT NOT NULL, endpoint TEXT NOT NULL, requested_model TEXT NOT NULL, provider TEXT NOT NULL, upstream_model TEXT NOT NULL, stream INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, tokens_estimated INTEGER NOT NULL, cost REAL NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, latency_ms REAL NOT NULL, ttft_ms REAL)",
                "INSERT INTO usage (ts_ms, request_id, principal, key_id, endpoint, requested_model, provider, upstream_model, stream, prompt_tokens, completion_tokens, tokens_estimated, cost, status, error, latency_ms) VALUES (5, 'r', 'p', 'k', 'chat', 'm', 'x', 'm', 0, 1, 1, 0, 0.0, 200, '', 1.0)",
            ] {
                sqlx::query(stmt).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let store = Store::open(&url).await.unwrap();
        let keys = store.list_keys().await.unwrap();
        assert_eq!(
            (keys[0].tenant.as_deref(), keys[0].expires_ms),
            (None, None)
        );
        let usage = store.usage_since(0).await.unwrap();
        assert_eq!(
            (
                usage[0].tenant.as_str(),
                usage[0].auth_method.as_str(),
                usage[0].tags.as_str()
            ),
            ("", "", "")
        );
        store.close().await;
        // Opening again is a no-op.
        Store::open(&url).await.unwrap().close().await;
    }
}
