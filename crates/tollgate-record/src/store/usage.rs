//! The usage and cost query behind `GET /admin/v1/usage` and `tollgate
//! usage`: totals per principal, group, tenant, model, served target,
//! provider, UTC day, API key, status or custom tag (one dimension or two)
//! over `[from, to)`, filtered by tenant, model, key, principal, status or
//! tag, with error counts and latency percentiles. Rows are streamed and
//! folded here (one narrow row each), so the same code runs on SQLite and
//! PostgreSQL and percentiles are exact.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};
use crate::tags;

/// One dimension of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageGroupBy {
    Principal,
    Group,
    Tenant,
    Model,
    Target,
    Provider,
    Day,
    /// The API key's id (empty for tokens).
    Key,
    /// The HTTP status recorded.
    Status,
    /// A custom tag's value (`tag:NAME`; empty when the request lacks it).
    Tag(String),
}

/// A `group_by` the usage report does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "group_by {0:?}: expected one or two of principal, group, tenant, model, target, provider, \
     day, key, status, tag:NAME, separated by a comma"
)]
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
            "key" => Self::Key,
            "status" => Self::Status,
            other => match other.strip_prefix("tag:") {
                Some(name) if !name.is_empty() => Self::Tag(name.to_owned()),
                _ => return Err(UnknownGroupBy(other.to_owned())),
            },
        })
    }
}

impl fmt::Display for UsageGroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Principal => "principal",
            Self::Group => "group",
            Self::Tenant => "tenant",
            Self::Model => "model",
            Self::Target => "target",
            Self::Provider => "provider",
            Self::Day => "day",
            Self::Key => "key",
            Self::Status => "status",
            Self::Tag(name) => return write!(f, "tag:{name}"),
        })
    }
}

impl Serialize for UsageGroupBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl UsageGroupBy {
    /// One or two dimensions, `principal,model`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, UnknownGroupBy> {
        let dims = s
            .split(',')
            .map(|d| d.trim().parse())
            .collect::<Result<Vec<Self>, _>>()?;
        if dims.is_empty() || dims.len() > 2 {
            return Err(UnknownGroupBy(s.to_owned()));
        }
        Ok(dims)
    }

    fn column(&self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Group => "groups_json",
            Self::Tenant => "tenant",
            Self::Model => "requested_model",
            Self::Target => "provider || '/' || upstream_model",
            Self::Provider => "provider",
            Self::Day => "CAST(ts_ms AS TEXT)",
            Self::Key => "key_id",
            Self::Status => "CAST(status AS TEXT)",
            Self::Tag(_) => "tags",
        }
    }

    /// The group keys of one row's raw column value (a request counts once
    /// under each of its principal's groups).
    fn keys(&self, raw: String) -> Vec<String> {
        match self {
            Self::Day => vec![day_of(raw.parse().unwrap_or(0))],
            Self::Group => {
                let list: Vec<String> = serde_json::from_str(&raw).unwrap_or_default();
                if list.is_empty() {
                    vec![String::new()]
                } else {
                    list
                }
            }
            Self::Tag(name) => vec![tags::get(&raw, name).unwrap_or_default()],
            _ => vec![raw],
        }
    }
}

/// Which records a report counts (all when every field is unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub tenant: Option<String>,
    /// The requested model name.
    pub model: Option<String>,
    /// The API key's id.
    pub key: Option<String>,
    pub principal: Option<String>,
    /// Statuses in `[from, to)`.
    pub status: Option<(i64, i64)>,
    /// A tag's name and value.
    pub tag: Option<(String, String)>,
}

/// A `status` filter that is not a status, a class or `ok`/`error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {0:?}: expected a status (429), a class (4xx), ok (< 400) or error (>= 400)")]
pub struct BadStatusFilter(pub String);

impl UsageFilter {
    /// `429` → `[429, 430)`, `4xx` → `[400, 500)`, `ok`, `error`.
    pub fn parse_status(s: &str) -> Result<(i64, i64), BadStatusFilter> {
        let bad = || BadStatusFilter(s.to_owned());
        match s {
            "ok" => Ok((0, 400)),
            "error" => Ok((400, 1000)),
            _ if s.len() == 3 && s.ends_with("xx") => {
                let class = s[..1].parse::<i64>().map_err(|_| bad())?;
                (1..=5)
                    .contains(&class)
                    .then_some((class * 100, class * 100 + 100))
                    .ok_or_else(bad)
            }
            _ => {
                let n = s.parse::<i64>().map_err(|_| bad())?;
                (100..1000)
                    .contains(&n)
                    .then_some((n, n + 1))
                    .ok_or_else(bad)
            }
        }
    }

    /// ` AND …` conditions with `?` placeholders, and their text values in
    /// order (the status bounds are bound after them).
    fn sql(&self) -> (String, Vec<&str>) {
        let mut sql = String::new();
        let mut binds = Vec::new();
        for (column, value) in [
            ("tenant", &self.tenant),
            ("requested_model", &self.model),
            ("key_id", &self.key),
            ("principal", &self.principal),
        ] {
            if let Some(v) = value {
                sql.push_str(" AND ");
                sql.push_str(column);
                sql.push_str(" = ?");
                binds.push(v.as_str());
            }
        }
        if self.status.is_some() {
            sql.push_str(" AND status >= ? AND status < ?");
        }
        (sql, binds)
    }
}

/// `[from_ms, to_ms)` in Unix milliseconds.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// One or two dimensions.
    pub group_by: Vec<UsageGroupBy>,
    pub filter: UsageFilter,
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageRow {
    /// The first dimension's value.
    pub key: String,
    /// The second dimension's value, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key2: Option<String>,
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
    /// The dimensions, comma-separated (`principal,model`).
    pub group_by: String,
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

    fn finish(mut self, (key, key2): (String, Option<String>)) -> UsageRow {
        self.latencies.sort_by(f64::total_cmp);
        let p = |q: f64| percentile(&self.latencies, q);
        UsageRow {
            key,
            key2,
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
        let (first, second) = match q.group_by.as_slice() {
            [a] => (a, None),
            [a, b] => (a, Some(b)),
            _ => {
                return Err(StoreError::Invalid(
                    "group_by: one or two dimensions".into(),
                ))
            }
        };
        let (conditions, binds) = q.filter.sql();
        let sql = format!(
            "SELECT status, prompt_tokens, completion_tokens, cost, latency_ms, {}, {}, {} \
             FROM usage WHERE ts_ms >= ? AND ts_ms < ?{conditions}",
            first.column(),
            second.map_or("''", UsageGroupBy::column),
            if q.filter.tag.is_some() { "tags" } else { "''" },
        );
        let sql = self.sql(&sql);
        let mut query = sqlx::query(&sql).bind(q.from_ms).bind(q.to_ms);
        for b in binds {
            query = query.bind(b);
        }
        if let Some((lo, hi)) = q.filter.status {
            query = query.bind(lo).bind(hi);
        }
        let mut groups: BTreeMap<(String, Option<String>), Acc> = BTreeMap::new();
        let mut rows = query.fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (status, input, output): (i64, i64, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let (cost, latency): (f64, f64) = (r.try_get(3)?, r.try_get(4)?);
            if let Some((name, value)) = &q.filter.tag {
                let stored: String = r.try_get(7)?;
                if tags::get(&stored, name).as_deref() != Some(value.as_str()) {
                    continue;
                }
            }
            let firsts = first.keys(r.try_get(5)?);
            let seconds = match second {
                Some(d) => d.keys(r.try_get(6)?).into_iter().map(Some).collect(),
                None => vec![None],
            };
            for k in &firsts {
                for k2 in &seconds {
                    groups
                        .entry((k.clone(), k2.clone()))
                        .or_default()
                        .add(status, input, output, cost, latency);
                }
            }
        }
        let group_by = q
            .group_by
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(UsageReport {
            group_by,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            rows: groups.into_iter().map(|(k, a)| a.finish(k)).collect(),
        })
    }
}

impl UsageReport {
    pub fn to_csv(&self) -> String {
        let two = self.group_by.contains(',');
        let mut out = String::from(if two { "key,key2," } else { "key," });
        out.push_str(
            "requests,errors,input_tokens,output_tokens,cost,latency_p50_ms,latency_p95_ms,latency_p99_ms\n",
        );
        for r in &self.rows {
            out.push_str(&csv_field(&r.key));
            out.push(',');
            if two {
                out.push_str(&csv_field(r.key2.as_deref().unwrap_or("")));
                out.push(',');
            }
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
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

    #[test]
    fn status_filters_and_dimensions() {
        let st = UsageFilter::parse_status;
        assert_eq!(st("429"), Ok((429, 430)));
        assert_eq!(st("4xx"), Ok((400, 500)));
        assert_eq!(st("ok"), Ok((0, 400)));
        assert_eq!(st("error"), Ok((400, 1000)));
        for bad in ["6xx", "0xx", "x", "42", "1000", ""] {
            assert!(st(bad).is_err(), "{bad}");
        }
        assert_eq!(
            UsageGroupBy::parse_list("principal, tag:team"),
            Ok(vec![
                UsageGroupBy::Principal,
                UsageGroupBy::Tag("team".into())
            ])
        );
        for bad in ["", "a", "tag:", "key,key,key"] {
            assert!(UsageGroupBy::parse_list(bad).is_err(), "{bad}");
        }
        assert_eq!(UsageGroupBy::Tag("t".into()).to_string(), "tag:t");
    }
}
