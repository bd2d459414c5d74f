//! Budget spend per counter and window (`budget_spend`): one row per
//! (window, cap, rule, partition), summed by the ledger's inserts in the
//! same transaction as the usage rows, so restoring budgets at start reads
//! a few rows per budget counter instead of the ledger (start time and
//! memory do not grow with traffic).
//!
//! Counted once per record: a batch from the queue is new (its records
//! got their ids when queued) and commits whole or not at all, so all its
//! spend is added; a batch replayed from the spool may hold records a
//! write whose outcome was unknown already stored, so only the rows the
//! insert returns (`RETURNING record_id`) add theirs. Rows of builds
//! before this table are summed once, when the migration creates it
//! (`backfill`).

use std::sync::Arc;

use sqlx::{AnyConnection, Row};
use tollgate_core::limit_decision::CounterSpend;

use super::{schema, Backend, StoreError};
use crate::limits_column::{LimitsColumn, SpendRef};
use crate::usage_record::UsageRecord;

/// Adds one counter's spend (statement parameters: win, cap, rule, part, spent).
pub(super) const UPSERT: &str = "INSERT INTO budget_spend (win, cap, rule, part, spent) \
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (win, cap, rule, part) \
     DO UPDATE SET spent = budget_spend.spent + excluded.spent";

/// The longest budget window (a month) and a day to spare: older rows
/// cannot be in a window still in effect.
const BACKFILL_MS: i64 = 32 * 86_400_000;

/// The spend of a batch, summed per counter and window (a batch charges
/// few distinct counters: a linear search beats hashing their names).
#[derive(Default)]
pub(super) struct Sums(pub(super) Vec<CounterSpend>);

impl Sums {
    pub(super) fn add_record(&mut self, limits: &LimitsColumn) {
        limits.budget_spend(|s| self.add(s));
    }

    fn add(&mut self, s: SpendRef<'_>) {
        match self.0.iter_mut().find(|o| {
            o.window == s.window && o.cap == s.cap && o.rule == s.rule && o.partition == s.partition
        }) {
            Some(o) => o.spent += s.spent,
            None => self.0.push(s.to_owned()),
        }
    }

    pub(super) fn of<'a>(records: impl IntoIterator<Item = &'a Arc<UsageRecord>>) -> Self {
        let mut sums = Self::default();
        for r in records {
            sums.add_record(&r.limits);
        }
        sums
    }

    /// Adds the sums to the table on `conn` (inside the caller's transaction).
    pub(super) async fn write(
        &self,
        conn: &mut AnyConnection,
        backend: Backend,
    ) -> Result<(), StoreError> {
        let sql = schema::placeholders(backend, UPSERT);
        for s in &self.0 {
            sqlx::query(&sql)
                .bind(s.window)
                .bind(&s.cap)
                .bind(&s.rule)
                .bind(&s.partition)
                .bind(s.spent)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// Sums the budget spend of the usage rows of the last month (written
/// before the table existed) into it; run once, by the migration that
/// creates the table.
pub(super) async fn backfill(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    use futures_util::TryStreamExt;
    let since = super::now_ms() - BACKFILL_MS;
    let sql = schema::placeholders(
        backend,
        "SELECT limits FROM usage WHERE ts_ms >= ? AND limits LIKE '%cost\\_per\\_%' ESCAPE '\\'",
    );
    let mut sums = Sums::default();
    let mut rows = 0u64;
    {
        let mut stream = sqlx::query(&sql).bind(since).fetch(&mut *conn);
        while let Some(row) = stream.try_next().await? {
            let text: String = row.try_get(0)?;
            sums.add_record(&LimitsColumn::stored(text));
            rows += 1;
        }
    }
    sums.write(conn, backend).await?;
    if rows > 0 {
        tracing::info!(
            rows,
            counters = sums.0.len(),
            "budget spend summed from the usage ledger"
        );
    }
    Ok(())
}

impl super::Store {
    /// What each budget counter spent in the given (cap, window) pairs:
    /// the current window of each budget cap (budgets are rebuilt from it
    /// at start).
    pub async fn budget_spend(
        &self,
        windows: &[(&str, i64)],
    ) -> Result<Vec<CounterSpend>, StoreError> {
        let sql = self.sql("SELECT rule, part, spent FROM budget_spend WHERE win = ? AND cap = ?");
        let mut out = Vec::new();
        for (cap, win) in windows {
            let rows = sqlx::query(&sql)
                .bind(*win)
                .bind(*cap)
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.push(CounterSpend {
                    rule: r.try_get(0)?,
                    cap: cap.to_string(),
                    partition: r.try_get(1)?,
                    window: *win,
                    spent: r.try_get(2)?,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tollgate_core::limit_decision::{CounterId, Decision, LimitDecision};

    use crate::store::Store;
    use crate::usage_record::UsageRecord;

    fn record(i: usize, budget: &Arc<CounterId>, charged: f64) -> Arc<UsageRecord> {
        Arc::new(UsageRecord {
            request_id: format!("r{i}"),
            record_id: format!("id{i}"),
            limits: vec![LimitDecision {
                counter: budget.clone(),
                decision: Decision::Allowed,
                charged,
                window: 9,
            }]
            .into(),
            ..Default::default()
        })
    }

    async fn spent(store: &Store) -> f64 {
        let s = store.budget_spend(&[("cost_per_day", 9)]).await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((&*s[0].rule, &*s[0].partition), ("b", "key=a|"));
        s[0].spent
    }

    /// New batches add their spend; a replay adds only what it stored.
    #[tokio::test]
    async fn spend_is_counted_once_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(CounterId::new("b", "cost_per_day", "key=a|", true));
        let recs: Vec<_> = (0..4).map(|i| record(i, &budget, 0.25)).collect();
        for url in [
            format!("sqlite://{}", dir.path().join("t.db").display()),
            "sqlite::memory:".to_string(),
        ] {
            let store = Store::open(&url).await.unwrap();
            store.insert_usage(&recs[..3]).await.unwrap();
            assert_eq!(spent(&store).await, 0.75);
            // A replay of stored records and one new one.
            store.insert_usage_replayed(&recs).await.unwrap();
            assert_eq!(spent(&store).await, 1.0, "{url}");
            store.insert_usage_replayed(&recs).await.unwrap();
            assert_eq!(spent(&store).await, 1.0, "{url}");
            store.close().await;
        }
    }

    /// A ledger from before the table: the migration sums its rows, in
    /// every form the `limits` column has had, once.
    #[tokio::test]
    async fn the_migration_sums_the_ledger_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let store = Store::open(&url).await.unwrap();
        let now = crate::store::now_ms();
        let budget = Arc::new(CounterId::new("b", "cost_per_day", "key=a|", true));
        let mut recs: Vec<_> = (0..3).map(|i| record(i, &budget, 0.25)).collect();
        let old_forms = [
            r#"[{"rule":"b","cap":"cost_per_day","partition":"key=a|","window":9,"decision":"allowed","charged":0.5}]"#,
            r#"[{"rule":"b","cap":"cost_per_day","counter":"b:cost_per_day:key=a|","window":9,"store":"local","decision":"allowed","charged":0.125}]"#,
        ];
        for (i, text) in old_forms.iter().enumerate() {
            let mut r = (*record(10 + i, &budget, 0.0)).clone();
            r.limits = (*text).into();
            recs.push(Arc::new(r));
        }
        let recs: Vec<_> = recs
            .into_iter()
            .map(|r| {
                let mut r = (*r).clone();
                r.ts_ms = now;
                Arc::new(r)
            })
            .collect();
        store.insert_usage(&recs).await.unwrap();
        // Back to a database of an earlier build.
        for sql in [
            "DROP TABLE budget_spend",
            "DELETE FROM schema_version WHERE version = 3",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(spent(&store).await, 0.75 + 0.5 + 0.125);
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(spent(&store).await, 1.375, "summed once");
    }
}
