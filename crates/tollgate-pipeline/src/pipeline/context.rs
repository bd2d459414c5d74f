//! The one context every phase reads and writes: identity, route, timings,
//! token counts, outcome. `finish` turns it into the usage record.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::snapshot::ModelRoute;
use tollgate_config::Endpoint;
use tollgate_policy::auth::Identity;
use tollgate_policy::routing::TargetStats;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: i64,
    pub completion: i64,
    /// Counted by the gateway because the upstream reported none.
    pub estimated: bool,
}

/// One try of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `provider/upstream_model`.
    pub target: String,
    /// Upstream HTTP status (0 when none: timeout, unreachable).
    pub status: u16,
    /// Error label, empty on success.
    pub error: &'static str,
}

/// What a forwarded call (a route or connection) moved: the rows its
/// payload held (the unit its limits count) and the bytes each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub rows: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

pub struct RequestCtx {
    pub request_id: String,
    pub endpoint: Endpoint,
    /// A call that is not a model call names itself here (`mcp/tools/call`);
    /// metrics, the log line, the ledger and the trace use it in place of
    /// `endpoint`.
    pub operation: Option<&'static str>,
    pub started: Instant,
    pub received_ms: i64,
    /// Who is calling, once authenticated.
    pub identity: Option<Identity>,
    pub requested_model: String,
    /// The requested name is a configured model or virtual model (phase 3),
    /// so metrics may carry it even when a later phase refuses the call.
    pub model_known: bool,
    pub route: Option<Arc<ModelRoute>>,
    /// A non-model call's upstream and the name it was called by there
    /// (an MCP tool call: the upstream server and the upstream tool name).
    pub served_by: Option<(String, String)>,
    /// Every try made, in order (virtual models may try several targets).
    pub attempts: Vec<Attempt>,
    /// The served target's stats, fed with its latency when the request ends.
    pub stats: Option<Arc<TargetStats>>,
    /// Guardrail verdicts, input and output.
    pub verdicts: Vec<tollgate_policy::guard::Verdict>,
    pub stream: bool,
    pub usage: Usage,
    pub first_token: Option<Duration>,
    pub status: u16,
    /// Low-cardinality error label; empty on success.
    pub error: &'static str,
    /// Response cache outcome (phase 7) and what to store on a miss.
    pub cache: tollgate_policy::cache::CacheNote,
    /// The prompt template called (name, version), if any.
    pub template: Option<(String, u32)>,
    /// Phase 5's reservations, settled in `after::finish`.
    pub admission: Option<tollgate_policy::limits::Admission>,
    /// Limit decisions for the ledger (set by settlement, or when admission rejects).
    pub limit_decisions: Vec<tollgate_core::limit_decision::LimitDecision>,
    /// Request headers for the audit log (credentials redacted by its writer); empty when it is off.
    pub audit_headers: tollgate_record::audit::AuditHeaders,
    /// Bodies for the audit log, when payload logging is on for the model.
    pub payload: Option<tollgate_record::audit::Payload>,
    /// Sizes of the request body received and the answer body sent (the
    /// ledger's `request_bytes` / `response_bytes`).
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The completion tokens reserved for a non-streamed request that set
    /// no `max_tokens` while a token or cost limit applies: sent upstream
    /// as its cap, so the upstream cannot write past the reservation.
    pub completion_cap: Option<i64>,
    /// The request's trace (tracing on).
    pub trace: Option<tollgate_record::telemetry::RequestTrace>,
    /// A forwarded call's rows and bytes (routes and connections).
    pub forwarded: Option<Forwarded>,
    /// Custom tags for the ledger (`ledger.tags`, `tollgate_record::tags`);
    /// empty when none.
    pub tags: String,
}

impl RequestCtx {
    pub fn new(endpoint: Endpoint, request_id: String) -> Self {
        Self {
            request_id,
            endpoint,
            operation: None,
            started: Instant::now(),
            received_ms: tollgate_core::clock::wall_ms(),
            identity: None,
            requested_model: String::new(),
            model_known: false,
            route: None,
            served_by: None,
            attempts: Vec::new(),
            stats: None,
            verdicts: Vec::new(),
            stream: false,
            usage: Usage::default(),
            first_token: None,
            status: 200,
            error: "",
            cache: tollgate_policy::cache::CacheNote::default(),
            template: None,
            admission: None,
            limit_decisions: Vec::new(),
            audit_headers: tollgate_record::audit::AuditHeaders::default(),
            payload: None,
            request_bytes: 0,
            response_bytes: 0,
            completion_cap: None,
            trace: None,
            forwarded: None,
            tags: String::new(),
        }
    }

    /// The endpoint label: the operation of a non-model call, else the endpoint.
    pub fn endpoint_label(&self) -> &'static str {
        self.operation.unwrap_or(self.endpoint.as_str())
    }

    pub fn mark_first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }
}
