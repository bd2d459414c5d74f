//! A limit rule at run time: which requests it applies to, how its counters
//! are partitioned, and its caps.

use std::sync::{Arc, OnceLock};

use crate::auth::Principal;
use crate::subject::{Combine, Names, Subject, Target, TargetKind, Targets};
use tollgate_config::{
    Dimension, LimitMatch, LimitMode, LimitRule, LimitStore, Overrun, Price, StoreFailure,
    TokenKind,
};

use super::Window;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    Requests,
    Tokens(TokenKind),
    Concurrent,
    Cost,
}

impl CapKind {
    /// What a request with this estimate adds to the counter.
    pub fn amount(self, prompt: i64, completion: i64, price: &Price) -> f64 {
        match self {
            CapKind::Requests | CapKind::Concurrent => 1.0,
            CapKind::Tokens(k) => tokens_of(k, prompt, completion) as f64,
            CapKind::Cost => {
                (prompt as f64 * price.input_per_mtok + completion as f64 * price.output_per_mtok)
                    / 1_000_000.0
            }
        }
    }
}

pub(super) fn tokens_of(kind: TokenKind, prompt: i64, completion: i64) -> i64 {
    match kind {
        TokenKind::Input => prompt,
        TokenKind::Output => completion,
        TokenKind::Total => prompt + completion,
    }
}

#[derive(Debug)]
pub struct Cap {
    pub kind: CapKind,
    pub window: Window,
    pub max: f64,
    /// The config field, e.g. `requests_per_minute`.
    pub label: &'static str,
    /// `rule:label:`, the start of every counter key of this cap.
    pub prefix: String,
    /// The soft threshold (an amount, not a percent) whose crossing
    /// alerts; none for in-flight and per-second caps.
    pub alert_at: Option<f64>,
    /// Its `x-ratelimit-limit-*` header value, formatted once.
    pub limit_header: http::HeaderValue,
    /// The `allowed` decision counter, registered on first use (after the
    /// metrics recorder is installed) so the hot path skips the label lookup.
    allowed: OnceLock<metrics::Counter>,
}

impl Cap {
    /// Kept in the ledger's per-window table and restored at start: cost
    /// caps and every cap of an hour or longer.
    pub fn restored(&self) -> bool {
        matches!(self.kind, CapKind::Cost) || self.window.restored()
    }

    pub fn allowed(&self, rule: &str) -> &metrics::Counter {
        self.allowed.get_or_init(|| {
            metrics::counter!("tollgate_limit_decisions_total", "rule" => rule.to_string(),
                "cap" => self.label, "decision" => "allowed")
        })
    }
}

pub struct Rule {
    pub name: Arc<str>,
    matches: Subject,
    per: Vec<Dimension>,
    pub caps: Vec<Cap>,
    pub mode: LimitMode,
    pub store: LimitStore,
    pub on_store_error: StoreFailure,
    pub stream_overrun: Overrun,
    /// Where threshold crossings go (set by `Limits::build`).
    pub(super) alerts: Option<Arc<super::alerts::Alerts>>,
}

/// How an MCP tool call names its target to the limits (`mcp:server/tool`):
/// a prefix no model name can carry into a rule by accident.
pub const TOOL_TARGET: &str = "mcp:";
/// How a route call names its target to the limits (`route:name`).
pub const ROUTE_TARGET: &str = "route:";
/// How a connection call names its target to the limits (`conn:name`).
pub const CONNECTION_TARGET: &str = "conn:";

/// The target a limits target string names: a model name, or a prefixed
/// tool, route or connection.
fn target_of(target: &str) -> Target<'_> {
    for (prefix, kind) in [
        (TOOL_TARGET, TargetKind::Tool),
        (ROUTE_TARGET, TargetKind::Route),
        (CONNECTION_TARGET, TargetKind::Connection),
    ] {
        if let Some(name) = target.strip_prefix(prefix) {
            return Target::of(kind, name);
        }
    }
    Target::model(target)
}

/// A limit rule's `match`: every listed dimension (`Combine::All`), exact
/// names with `*` for all (`Names::exact_or_all`).
fn subject(m: &LimitMatch) -> Subject {
    Subject {
        keys: Names::exact_or_all(&m.keys),
        principals: Names::exact_or_all(&m.principals),
        groups: Names::exact_or_all(&m.groups),
        tenants: Names::exact_or_all(&m.tenants),
        kinds: Vec::new(),
        targets: Targets::default()
            .with(TargetKind::Model, Names::exact_or_all(&m.models))
            .with(TargetKind::Tool, Names::exact_or_all(&m.tools))
            .with(TargetKind::Route, Names::exact_or_all(&m.routes))
            .with(TargetKind::Connection, Names::exact_or_all(&m.connections)),
    }
}

impl Rule {
    pub fn build(r: &LimitRule) -> Self {
        let mut caps = Vec::new();
        let mut cap = |kind, window, max: Option<f64>, label| {
            if let Some(max) = max {
                let prefix = format!("{}:{label}:", r.name);
                caps.push(Cap {
                    kind,
                    window,
                    max,
                    label,
                    limit_header: super::headers::limit_value(max),
                    alert_at: None,
                    prefix,
                    allowed: OnceLock::new(),
                });
            }
        };
        let n = |v: Option<u64>| v.map(|v| v as f64);
        cap(
            CapKind::Concurrent,
            Window::None,
            n(r.concurrent),
            "concurrent",
        );
        cap(
            CapKind::Requests,
            Window::Second,
            n(r.requests_per_second),
            "requests_per_second",
        );
        cap(
            CapKind::Requests,
            Window::Minute,
            n(r.requests_per_minute),
            "requests_per_minute",
        );
        cap(
            CapKind::Requests,
            Window::Hour,
            n(r.requests_per_hour),
            "requests_per_hour",
        );
        cap(
            CapKind::Tokens(r.token_kind),
            Window::Minute,
            n(r.tokens_per_minute),
            "tokens_per_minute",
        );
        cap(
            CapKind::Tokens(r.token_kind),
            Window::Hour,
            n(r.tokens_per_hour),
            "tokens_per_hour",
        );
        cap(
            CapKind::Tokens(r.token_kind),
            Window::Day,
            n(r.tokens_per_day),
            "tokens_per_day",
        );
        cap(
            CapKind::Tokens(r.token_kind),
            Window::Month,
            n(r.tokens_per_month),
            "tokens_per_month",
        );
        cap(CapKind::Cost, Window::Day, r.cost_per_day, "cost_per_day");
        cap(
            CapKind::Cost,
            Window::Week,
            r.cost_per_week,
            "cost_per_week",
        );
        cap(
            CapKind::Cost,
            Window::Month,
            r.cost_per_month,
            "cost_per_month",
        );
        Self {
            name: r.name.as_str().into(),
            matches: subject(&r.matches),
            per: r.per.clone(),
            caps,
            mode: r.mode,
            store: r.store,
            on_store_error: r.on_store_error,
            stream_overrun: r.stream_overrun,
            alerts: None,
        }
    }

    /// Whether the rule counts this caller's call of `target`: a model
    /// name, or an MCP tool call as `TOOL_TARGET` + `server/tool`, a route
    /// call as `ROUTE_TARGET` + name, a connection call as
    /// `CONNECTION_TARGET` + name. A rule with `match.tools` (`routes`,
    /// `connections`) counts calls of that kind only; one without, none.
    pub fn applies(&self, p: &Principal, target: &str) -> bool {
        let target = target_of(target);
        let kind_ok = match target.kind {
            TargetKind::Model => ![TargetKind::Tool, TargetKind::Route, TargetKind::Connection]
                .into_iter()
                .any(|k| self.matches.targets.lists(k)),
            k => self.matches.targets.lists(k),
        };
        kind_ok && self.matches.matches(Combine::All, p, target)
    }

    /// The counter suffixes this request charges: one, or one per matching
    /// group when the rule is partitioned by group. Each is handed to `each`
    /// in a buffer reused for the next, so nothing is allocated per
    /// partition (this runs for every rule on every request).
    pub fn partitions(
        &self,
        p: &Principal,
        model: &str,
        buf: &mut String,
        mut each: impl FnMut(&str),
    ) {
        buf.clear();
        for d in &self.per {
            let (k, v) = match d {
                Dimension::Key => ("key=", p.key_id.as_deref().unwrap_or("-")),
                Dimension::Principal => ("principal=", &*p.subject),
                Dimension::Tenant => ("tenant=", p.tenant.as_deref().unwrap_or("-")),
                Dimension::Model => ("model=", model),
                Dimension::Tool => ("tool=", model.strip_prefix(TOOL_TARGET).unwrap_or("-")),
                Dimension::Group => continue,
            };
            buf.push_str(k);
            buf.push_str(v);
            buf.push('|');
        }
        if !self.per.contains(&Dimension::Group) {
            each(buf);
            return;
        }
        let base = buf.len();
        for g in p
            .groups
            .iter()
            .filter(|g| self.matches.groups.is_empty() || self.matches.groups.matches(g))
        {
            buf.truncate(base);
            buf.push_str("group=");
            buf.push_str(g);
            buf.push('|');
            each(buf);
        }
    }
}
