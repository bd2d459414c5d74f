//! What every request reads: the current snapshot and store keys (each
//! behind an `ArcSwap`), the ledger and audit handles, tracing, the cache.
//! Built by the server at start; the pipeline only reads it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use tollgate_policy::auth::KeyIndex;
use tollgate_record::ledger::LedgerHandle;
use tollgate_record::store::Store;

use crate::snapshot::Snapshot;

/// Everything the request path reads; swapped pieces live behind `ArcSwap`.
pub struct AppState {
    pub snapshot: ArcSwap<Snapshot>,
    pub store_keys: ArcSwap<KeyIndex>,
    /// False while the store has been unreachable since start: `store_keys`
    /// is empty, and a key that is not in the config may be one of them.
    pub store_keys_loaded: AtomicBool,
    pub ledger: LedgerHandle,
    pub audit: tollgate_record::audit::AuditHandle,
    /// OpenTelemetry (tracing on).
    pub tracing: Option<tollgate_record::telemetry::Tracing>,
    /// For the admin usage API (background use only, never the request path).
    pub store: Store,
    pub prometheus: Option<PrometheusHandle>,
    pub ready: AtomicBool,
    pub config_path: PathBuf,
    /// MCP tool pins (first-seen and approved fingerprints), refreshed from the store.
    pub mcp_pins: Arc<tollgate_mcp::pins::PinBook>,
    /// MCP tool calls waiting for an operator (this process's).
    pub mcp_approvals: Arc<tollgate_mcp::approval::Approvals>,
    /// The gateway's own MCP list changes (a reload, a pin decision),
    /// relayed to every connected client's stream.
    pub mcp_changes: tollgate_mcp::wire::Notices,
    /// Upstream MCP sessions to close once their client's session expired.
    pub mcp_reaper: Arc<tollgate_mcp::reaper::Reaper>,
    /// Upstream MCP servers' requests (sampling, elicitation) waiting for
    /// the answer of the client they were relayed to (this process's).
    pub mcp_asks: Arc<tollgate_mcp::relay::Asks>,
    /// The response cache (backend settings apply at restart).
    pub cache: Arc<tollgate_policy::cache::Cache>,
    /// Named secrets (connections' credentials): revealed only after the
    /// caller was granted what needs them. `NoSecrets` when none are kept.
    pub secrets: Arc<dyn tollgate_core::secret::SecretSource>,
}
