//! Versioned migrations for both backends, then the `ADDED_COLUMNS` list.
//!
//! `schema_version` holds one row per applied migration. Each migration has
//! its SQLite and its PostgreSQL text; a new one is appended with the next
//! number. Plain column additions need no migration: append to
//! `super::ADDED_COLUMNS` (SQLite type names; PostgreSQL gets BIGINT for
//! INTEGER and DOUBLE PRECISION for REAL).

use sqlx::{AnyConnection, Executor, Row};

use super::{Backend, StoreError, ADDED_COLUMNS};

/// (version, SQLite statements, PostgreSQL statements).
type Migration = (i64, &'static [&'static str], &'static [&'static str]);

const MIGRATIONS: &[Migration] = &[
    (
        1,
        &[
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
        ],
        &[
            "CREATE TABLE IF NOT EXISTS api_keys (
                id TEXT PRIMARY KEY,
                hash TEXT NOT NULL UNIQUE,
                principal TEXT NOT NULL,
                kind TEXT NOT NULL,
                groups_json TEXT NOT NULL,
                models_json TEXT NOT NULL,
                created_ms BIGINT NOT NULL,
                revoked_ms BIGINT
            )",
            "CREATE TABLE IF NOT EXISTS usage (
                seq BIGSERIAL PRIMARY KEY,
                ts_ms BIGINT NOT NULL,
                request_id TEXT NOT NULL,
                principal TEXT NOT NULL,
                key_id TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                requested_model TEXT NOT NULL,
                provider TEXT NOT NULL,
                upstream_model TEXT NOT NULL,
                stream BIGINT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                tokens_estimated BIGINT NOT NULL,
                cost DOUBLE PRECISION NOT NULL,
                status BIGINT NOT NULL,
                error TEXT NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL,
                ttft_ms DOUBLE PRECISION
            )",
            "CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts_ms)",
        ],
    ),
    (
        // Idempotent inserts: a batch replayed from the spool after a write
        // whose outcome was unknown lands once.
        2,
        &[
            "ALTER TABLE usage ADD COLUMN record_id TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS usage_record_id ON usage (record_id)",
        ],
        &[
            "ALTER TABLE usage ADD COLUMN IF NOT EXISTS record_id TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS usage_record_id ON usage (record_id)",
        ],
    ),
    (
        // Budget spend per counter and window, kept by the ledger's
        // inserts (`spend.rs`): restoring budgets reads it, not the ledger.
        // The rows already in the ledger are summed into it once (`apply`).
        3,
        &["CREATE TABLE IF NOT EXISTS budget_spend (
                win INTEGER NOT NULL,
                cap TEXT NOT NULL,
                rule TEXT NOT NULL,
                part TEXT NOT NULL,
                spent REAL NOT NULL,
                PRIMARY KEY (win, cap, rule, part)
            )"],
        &["CREATE TABLE IF NOT EXISTS budget_spend (
                win BIGINT NOT NULL,
                cap TEXT NOT NULL,
                rule TEXT NOT NULL,
                part TEXT NOT NULL,
                spent DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (win, cap, rule, part)
            )"],
    ),
    (
        // MCP tool pins (`tool_pins.rs`): the approved fingerprint of each
        // upstream tool, so a tool that changes after approval is held back.
        4,
        &["CREATE TABLE IF NOT EXISTS mcp_tool_pins (
                server TEXT NOT NULL,
                tool TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                approved_ms INTEGER NOT NULL,
                approved_by TEXT NOT NULL,
                PRIMARY KEY (server, tool)
            )"],
        &["CREATE TABLE IF NOT EXISTS mcp_tool_pins (
                server TEXT NOT NULL,
                tool TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                approved_ms BIGINT NOT NULL,
                approved_by TEXT NOT NULL,
                PRIMARY KEY (server, tool)
            )"],
    ),
    (
        // Named secrets, encrypted (`secrets.rs`, `crate::vault`): the
        // ciphertext and nonce only, never a plaintext.
        5,
        &["CREATE TABLE IF NOT EXISTS secrets (
                name TEXT PRIMARY KEY,
                key_id TEXT NOT NULL,
                key_check TEXT NOT NULL,
                nonce BLOB NOT NULL,
                ciphertext BLOB NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL
            )"],
        &["CREATE TABLE IF NOT EXISTS secrets (
                name TEXT PRIMARY KEY,
                key_id TEXT NOT NULL,
                key_check TEXT NOT NULL,
                nonce BYTEA NOT NULL,
                ciphertext BYTEA NOT NULL,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL
            )"],
    ),
    (
        // One request's record by its id (`GET /admin/v1/usage/requests/{id}`)
        // without a scan of the whole ledger.
        6,
        &["CREATE INDEX IF NOT EXISTS usage_request_id ON usage (request_id)"],
        &["CREATE INDEX IF NOT EXISTS usage_request_id ON usage (request_id)"],
    ),
];

/// The migration that creates `budget_spend`: applying it also sums the
/// ledger's existing rows into it (after `ADDED_COLUMNS`, so an old
/// ledger has its `limits` column).
const BUDGET_SPEND: i64 = 3;

/// Any PostgreSQL advisory-lock key, fixed: nodes starting together migrate one at a time.
const PG_MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465;

pub(super) async fn migrate(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(conn, backend).await;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .await?;
    // Every migration not recorded yet is applied, in order: a database
    // that has a later one but lacks an earlier one (branches that landed
    // in another order) still gets it.
    let applied: std::collections::HashSet<i64> = sqlx::query("SELECT version FROM schema_version")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    for (version, sqlite, postgres) in MIGRATIONS.iter().filter(|m| !applied.contains(&m.0)) {
        let stmts = match backend {
            Backend::Sqlite => *sqlite,
            Backend::Postgres => *postgres,
        };
        // A database from before versioned migrations already has the
        // columns of version 2 when it was touched by a later build; tolerate it.
        for stmt in stmts {
            if let Err(e) = conn.execute(*stmt).await {
                if !is_duplicate_column(&e) {
                    return Err(e.into());
                }
            }
        }
        sqlx::query("INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)")
            .bind(*version)
            .bind(super::now_ms())
            .execute(&mut *conn)
            .await?;
        tracing::info!(version, "store migrated");
    }
    let backfill = !applied.contains(&BUDGET_SPEND);
    for (table, column, def) in ADDED_COLUMNS {
        match backend {
            Backend::Sqlite => {
                let rows = sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut *conn)
                    .await?;
                let present = rows
                    .iter()
                    .any(|r| r.try_get::<String, _>(0).is_ok_and(|n| n == *column));
                if !present {
                    conn.execute(&*format!("ALTER TABLE {table} ADD COLUMN {column} {def}"))
                        .await?;
                }
            }
            Backend::Postgres => {
                conn.execute(&*format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {}",
                    postgres_type(def)
                ))
                .await?;
            }
        }
    }
    if backfill {
        super::spend::backfill(conn, backend).await?;
    }
    Ok(())
}

fn is_duplicate_column(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("duplicate column"))
}

/// SQLite column definition → PostgreSQL (INTEGER → BIGINT, REAL → DOUBLE PRECISION).
pub(super) fn postgres_type(def: &str) -> String {
    let mut words: Vec<&str> = def.split(' ').collect();
    if let Some(first) = words.first_mut() {
        match first.to_ascii_uppercase().as_str() {
            "INTEGER" => *first = "BIGINT",
            "REAL" => *first = "DOUBLE PRECISION",
            _ => {}
        }
    }
    words.join(" ")
}

/// SQL written with `?` placeholders, in the form `backend` takes: as is
/// for SQLite (sqlx resolves every *named* SQLite parameter with a linear
/// scan, so `$N` names cost time quadratic in the parameter count: 18% of
/// the gateway's CPU on the ledger's multi-row inserts, bench/history/LEDGER.md),
/// numbered `$1, $2, …` for PostgreSQL.
pub(super) fn placeholders(backend: Backend, sql: &str) -> std::borrow::Cow<'_, str> {
    match backend {
        Backend::Sqlite => sql.into(),
        Backend::Postgres => numbered(sql).into(),
    }
}

/// `?` placeholders → `$1, $2, …` (SQL in this crate never has `?` inside a
/// literal).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations() {
        assert_eq!(postgres_type("INTEGER"), "BIGINT");
        assert_eq!(
            postgres_type("REAL NOT NULL DEFAULT 0"),
            "DOUBLE PRECISION NOT NULL DEFAULT 0"
        );
        assert_eq!(
            postgres_type("TEXT NOT NULL DEFAULT ''"),
            "TEXT NOT NULL DEFAULT ''"
        );
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(placeholders(Backend::Sqlite, "a = ?"), "a = ?");
        assert_eq!(placeholders(Backend::Postgres, "a = ?"), "a = $1");
    }
}
