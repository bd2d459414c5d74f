//! The usage and cost query behind `GET /admin/v1/usage` and `tollgate
//! usage`: totals per principal, group, tenant, model, served target,
//! provider or UTC day over `[from, to)`, with error counts and latency
//! percentiles. Rows are streamed and folded here (one narrow row each), so
//! the same code runs on SQLite and PostgreSQL and percentiles are exact.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroupBy {
    Principal,
    Group,
    Tenant,
    Model,
    Target,
    Provider,
    Day,
}

/// A `group_by` the usage report does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group_by {0:?}: expected principal, group, tenant, model, target, provider or day")]
pub struct UnknownGroupBy(pub String);

impl FromStr for UsageGroupBy {
    type Err = UnknownGroupBy;
    fn from_str(s: &str) -> Result<Self, UnknownGroupBy> {
        Ok(match s {
            "principal" => Self::Principal,
            "group" | "team" => Self::Group,
            "tenant" => Self::Tenant,
            "model" => Self::Model,
            "target" => Self::Target,
            "provider" => Self::Provider,
            "day" => Self::Day,
            other => return Err(UnknownGroupBy(other.to_owned())),
        })
    }
}

impl UsageGroupBy {
    fn column(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Group => "groups_json",
            Self::Tenant => "tenant",
            Self::Model => "requested_model",
            Self::Target => "provider || '/' || upstream_model",
            Self::Provider => "provider",
            Self::Day => "CAST(ts_ms AS TEXT)",
        }
    }
}

/// `[from_ms, to_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct UsageQuery {
    pub group_by: UsageGroupBy,
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageRow {
    pub key: String,
    pub requests: i64,
    /// Requests whose status was 400 or more (499: the caller went away).
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub group_by: UsageGroupBy,
    pub from_ms: i64,
    pub to_ms: i64,
    pub rows: Vec<UsageRow>,
}

#[derive(Default)]
struct Acc {
    requests: i64,
    errors: i64,
    input: i64,
    output: i64,
    cost: f64,
    latencies: Vec<f64>,
}

impl Acc {
    fn add(&mut self, status: i64, input: i64, output: i64, cost: f64, latency: f64) {
        self.requests += 1;
        self.errors += i64::from(status >= 400);
        self.input += input;
        self.output += output;
        self.cost += cost;
        self.latencies.push(latency);
    }

    fn finish(mut self, key: String) -> UsageRow {
        self.latencies.sort_by(f64::total_cmp);
        let p = |q: f64| percentile(&self.latencies, q);
        UsageRow {
            key,
            requests: self.requests,
            errors: self.errors,
            input_tokens: self.input,
            output_tokens: self.output,
            cost: self.cost,
            latency_p50_ms: p(0.50),
            latency_p95_ms: p(0.95),
            latency_p99_ms: p(0.99),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
pub(super) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `YYYY-MM-DD` (UTC) of a Unix-ms time.
fn day_of(ts_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ts_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

impl Store {
    pub async fn usage_report(&self, q: &UsageQuery) -> Result<UsageReport, StoreError> {
        let sql = format!(
            "SELECT {}, status, prompt_tokens, completion_tokens, cost, latency_ms FROM usage \
             WHERE ts_ms >= ? AND ts_ms < ?",
            q.group_by.column()
        );
        let sql = self.sql(&sql);
        let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
        let mut rows = sqlx::query(&sql)
            .bind(q.from_ms)
            .bind(q.to_ms)
            .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let raw: String = r.try_get(0)?;
            let (status, input, output): (i64, i64, i64) =
                (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let (cost, latency): (f64, f64) = (r.try_get(4)?, r.try_get(5)?);
            let keys = match q.group_by {
                UsageGroupBy::Day => vec![day_of(raw.parse().unwrap_or(0))],
                UsageGroupBy::Group => {
                    let list: Vec<String> = serde_json::from_str(&raw).unwrap_or_default();
                    if list.is_empty() {
                        vec![String::new()]
                    } else {
                        list
                    }
                }
                _ => vec![raw],
            };
            for k in keys {
                groups
                    .entry(k)
                    .or_default()
                    .add(status, input, output, cost, latency);
            }
        }
        Ok(UsageReport {
            group_by: q.group_by,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            rows: groups.into_iter().map(|(k, a)| a.finish(k)).collect(),
        })
    }
}

impl UsageReport {
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "key,requests,errors,input_tokens,output_tokens,cost,latency_p50_ms,latency_p95_ms,latency_p99_ms\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                csv_field(&r.key),
                r.requests,
                r.errors,
                r.input_tokens,
                r.output_tokens,
                r.cost,
                r.latency_p50_ms,
                r.latency_p95_ms,
                r.latency_p99_ms
            );
        }
        out
    }
}

/// RFC 4180 quoting for the one free-text column (five lines; no crate needed).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_days() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_400_000 * 365), "1971-01-01");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
