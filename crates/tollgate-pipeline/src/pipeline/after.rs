//! After the response: the usage record, metrics and the access log line.
//! Called only by the request's end guard (`finish.rs`), so it runs exactly
//! once per request (streams: when the stream ends, fails or the caller goes
//! away; other requests: at the answer or error, or 499 when the caller
//! leaves first) and never waits on I/O.

use crate::state::AppState;
use tollgate_record::ledger::UsageRecord;

use super::context::RequestCtx;

pub(super) fn finish(app: &AppState, mut ctx: RequestCtx) {
    let latency = ctx.started.elapsed();
    let (provider, upstream_model, cost) = match (&ctx.route, &ctx.cache.origin) {
        (Some(r), _) => (
            r.provider_name.as_str(),
            r.upstream_model.as_str(),
            r.cost(ctx.usage.prompt, ctx.usage.completion),
        ),
        // A cache hit: who produced the answer; nothing spent now.
        (None, Some((p, m))) => (p.as_str(), m.as_str(), 0.0),
        (None, None) => match &ctx.served_by {
            Some((p, m)) => (p.as_str(), m.as_str(), 0.0),
            None => ("", "", 0.0),
        },
    };
    // Settle the limits' reservations to what was actually used.
    //    A cache hit charges nothing but the request unless
    //    `limits.cache_hits: usage` asked for the answer's usage.
    if let Some(adm) = ctx.admission.take() {
        let (prompt, completion, charged) =
            ctx.cache
                .charged
                .unwrap_or((ctx.usage.prompt, ctx.usage.completion, cost));
        ctx.limit_decisions = match &ctx.forwarded {
            // A forwarded call's limits count its rows as tokens.
            Some(f) => adm.settle(i64::try_from(f.rows).unwrap_or(i64::MAX), 0, 0.0),
            None => adm.settle(prompt, completion, charged),
        };
    }
    // Metric labels stay low-cardinality: unknown model names collapse;
    // a configured name keeps its label even when the call was refused.
    let model_label = if ctx.model_known || ctx.route.is_some() || ctx.cache.origin.is_some() {
        ctx.requested_model.clone()
    } else {
        "unknown".to_string()
    };
    let provider_label = if provider.is_empty() {
        "none"
    } else {
        provider
    }
    .to_string();
    let endpoint = ctx.endpoint_label();
    metrics::counter!("tollgate_requests_total",
        "endpoint" => endpoint, "model" => model_label.clone(), "provider" => provider_label.clone(),
        "status" => status_label(ctx.status))
    .increment(1);
    let target_label = ctx.route.as_ref().map_or_else(
        || "none".to_string(),
        |r| r.resolved.to_str().unwrap_or("none").to_string(),
    );
    metrics::histogram!("tollgate_request_duration_seconds",
        "endpoint" => endpoint, "model" => model_label.clone(), "provider" => provider_label.clone(),
        "target" => target_label.clone(), "status" => status_label(ctx.status))
    .record(latency.as_secs_f64());
    if let Some(t) = ctx.first_token {
        if ctx.stream {
            metrics::histogram!("tollgate_time_to_first_token_seconds",
                "model" => model_label.clone(), "provider" => provider_label.clone(),
                "target" => target_label)
            .record(t.as_secs_f64());
        }
    }
    if cost > 0.0 {
        // Counters are integers: cost in millionths of the price's currency.
        metrics::counter!("tollgate_cost_micros_total", "model" => model_label.clone(),
            "provider" => provider_label.clone())
        .increment((cost * 1e6).round() as u64);
    }
    if ctx.usage.prompt > 0 || ctx.usage.completion > 0 {
        metrics::counter!("tollgate_tokens_total", "model" => model_label.clone(),
            "provider" => provider_label.clone(), "kind" => "prompt")
        .increment(ctx.usage.prompt.max(0) as u64);
        metrics::counter!("tollgate_tokens_total", "model" => model_label,
            "provider" => provider_label, "kind" => "completion")
        .increment(ctx.usage.completion.max(0) as u64);
    }
    if ctx.status == 401 {
        metrics::counter!("tollgate_auth_failures_total", "reason" => ctx.error).increment(1);
    }
    if ctx.status == 403 {
        metrics::counter!("tollgate_access_denied_total", "reason" => ctx.error).increment(1);
    }
    if ctx.error.starts_with("upstream_") {
        metrics::counter!("tollgate_upstream_errors_total", "provider" => provider.to_string(),
            "kind" => ctx.error)
        .increment(1);
    }

    // A stream the upstream broke after its first chunk (cut, stalled past
    // the deadline, unreadable) could not fall back; it still counts
    // against the served target's health.
    if let (Some(stats), true) = (&ctx.stats, ctx.stream && ctx.error.starts_with("upstream_")) {
        let failure = tollgate_policy::routing::LastFailure {
            at_ms: tollgate_core::clock::wall_ms(),
            error: ctx.error,
            status: None,
        };
        stats.record_failure_of(tollgate_core::clock::now_ms(), failure);
    }

    // Feed the latency strategy and SLA: time per output token.
    if let (Some(stats), true) = (&ctx.stats, ctx.status == 200 && ctx.usage.completion > 0) {
        let secs = match (ctx.stream, ctx.first_token) {
            (true, Some(ttft)) => {
                latency.saturating_sub(ttft).as_secs_f64()
                    / (ctx.usage.completion - 1).max(1) as f64
            }
            _ => latency.as_secs_f64() / ctx.usage.completion as f64,
        };
        stats.record_latency(tollgate_core::clock::now_ms(), secs * 1e6);
    }

    let p = ctx.identity.as_ref().map(|i| &*i.principal);
    let text = |v: Option<&str>| v.unwrap_or("").to_string();
    let principal = text(p.map(|p| &*p.subject));
    let key_id = text(p.and_then(|p| p.key_id.as_deref()));
    let tenant = text(p.and_then(|p| p.tenant.as_deref()));
    let issuer = text(p.and_then(|p| p.issuer.as_deref()));
    let auth_method = text(p.map(|p| p.method.as_str()));
    if ctx.status >= 500 {
        tracing::warn!(request_id = %ctx.request_id, status = ctx.status, error = ctx.error,
            principal = %principal, model = %ctx.requested_model, provider, "request failed");
    } else if ctx.status == 401 || ctx.status == 403 {
        // Logged with their reason where they were decided (`log_denial`).
    } else if ctx.status >= 400 {
        tracing::info!(request_id = %ctx.request_id, status = ctx.status, error = ctx.error,
            principal = %principal, model = %ctx.requested_model, "request rejected");
    } else {
        tracing::debug!(request_id = %ctx.request_id, status = ctx.status, principal = %principal,
            model = %ctx.requested_model, provider, latency_ms = latency.as_secs_f64() * 1e3, "request served");
    }

    let record = UsageRecord {
        ts_ms: ctx.received_ms,
        request_id: ctx.request_id,
        principal,
        key_id,
        tenant,
        auth_method,
        issuer,
        endpoint: endpoint.to_string(),
        requested_model: ctx.requested_model,
        provider: provider.to_string(),
        upstream_model: upstream_model.to_string(),
        stream: ctx.stream,
        prompt_tokens: ctx.usage.prompt,
        completion_tokens: ctx.usage.completion,
        tokens_estimated: ctx.usage.estimated,
        cost,
        status: ctx.status,
        error: ctx.error.to_string(),
        latency_ms: latency.as_secs_f64() * 1e3,
        ttft_ms: ctx.first_token.map(|t| t.as_secs_f64() * 1e3),
        attempts: attempts_json(&ctx.attempts),
        guardrails: serde_json::to_string(&ctx.verdicts).unwrap_or_else(|_| "[]".into()),
        cache: ctx
            .cache
            .status
            .map(|s| s.as_str())
            .unwrap_or("")
            .to_string(),
        cost_saved: ctx.cache.cost_saved,
        template_version: ctx.template.as_ref().map(|t| i64::from(t.1)),
        template: ctx.template.map(|t| t.0).unwrap_or_default(),
        limits: ctx.limit_decisions.into(),
        record_id: uuid::Uuid::now_v7().to_string(),
        groups: serde_json::to_string(&*p.map_or(Default::default(), |p| p.groups.clone()))
            .unwrap_or_else(|_| "[]".into()),
        rows: ctx.forwarded.map_or(0, |f| f.rows as i64),
        request_bytes: i64::try_from(ctx.forwarded.map_or(ctx.request_bytes, |f| f.request_bytes))
            .unwrap_or(i64::MAX),
        response_bytes: i64::try_from(
            ctx.forwarded
                .map_or(ctx.response_bytes, |f| f.response_bytes),
        )
        .unwrap_or(i64::MAX),
        tags: ctx.tags,
    };
    let record = std::sync::Arc::new(record);
    let trace_id = ctx
        .trace
        .and_then(|t| end_trace(app, t, &record, app.audit.enabled()));
    // The audit log sees every request, refused ones included.
    if app.audit.enabled() {
        app.audit.record(tollgate_record::audit::AuditEntry {
            usage: std::sync::Arc::clone(&record),
            principal_kind: p.map_or("", |p| p.kind.as_str()),
            headers: ctx.audit_headers,
            trace_id,
            payload: ctx.payload,
        });
    }
    // Requests turned away before authentication are counted, not recorded:
    // an unauthenticated flood must not fill the ledger.
    if ctx.identity.is_none() {
        return;
    }
    app.ledger.record(record);
}

/// Ends the request's server span with the GenAI attributes; returns the
/// trace id when `want_id` (the audit log records it).
fn end_trace(
    app: &AppState,
    t: tollgate_record::telemetry::RequestTrace,
    r: &UsageRecord,
    want_id: bool,
) -> Option<[u8; 16]> {
    // Only a sampled span exports attributes: skip building them otherwise.
    if t.recording() {
        annotate(app, &t, r);
    }
    let id = want_id.then(|| t.trace_id());
    t.end(r.status, &r.error);
    id
}

/// The GenAI attributes and operation name of a sampled request span.
fn annotate(app: &AppState, t: &tollgate_record::telemetry::RequestTrace, r: &UsageRecord) {
    use tollgate_record::telemetry::Attr;
    let snap = app.snapshot.load();
    let system = snap
        .config
        .providers
        .iter()
        .find(|p| p.name == r.provider)
        .and_then(|p| serde_json::to_value(p.kind).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut attrs = vec![
        Attr::new("gen_ai.request.model", r.requested_model.clone()),
        Attr::new("tollgate.request_id", r.request_id.clone()),
    ];
    if !r.provider.is_empty() {
        attrs.extend([
            Attr::new("gen_ai.system", system.clone()),
            Attr::new("gen_ai.provider.name", system),
            Attr::new("gen_ai.response.model", r.upstream_model.clone()),
            Attr::new("gen_ai.usage.input_tokens", r.prompt_tokens),
            Attr::new("gen_ai.usage.output_tokens", r.completion_tokens),
            Attr::new("tollgate.provider", r.provider.clone()),
            Attr::new("tollgate.cost", r.cost),
        ]);
    }
    if !r.principal.is_empty() {
        attrs.push(Attr::new("tollgate.auth_method", r.auth_method.clone()));
    }
    t.set(attrs);
    if r.endpoint == "mcp/tools/call" {
        // GenAI semantic conventions: a tool execution span.
        t.set(vec![
            Attr::new("gen_ai.operation.name", "execute_tool".to_string()),
            Attr::new("gen_ai.tool.name", r.requested_model.clone()),
            Attr::new("tollgate.mcp.upstream", r.provider.clone()),
        ]);
        t.rename(format!("execute_tool {}", r.requested_model));
        return;
    }
    if matches!(r.endpoint.as_str(), "route" | "connection") {
        t.set(vec![Attr::new("tollgate.rows", r.rows)]);
        t.rename(format!("{} {}", r.endpoint, r.requested_model));
        return;
    }
    if !r.requested_model.is_empty() {
        let op = match r.endpoint.as_str() {
            "completions" => "text_completion",
            "embeddings" => "embeddings",
            _ => "chat",
        };
        t.rename(format!("{op} {}", r.requested_model));
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        429 => "429",
        499 => "499",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

/// The tries made, as JSON: `[{"target":"p/m","status":503,"error":"upstream_status"},…]`.
fn attempts_json(attempts: &[super::Attempt]) -> String {
    let list: Vec<serde_json::Value> = attempts
        .iter()
        .map(|a| serde_json::json!({"target": a.target, "status": a.status, "error": a.error}))
        .collect();
    serde_json::Value::Array(list).to_string()
}
