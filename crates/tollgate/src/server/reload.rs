//! Reloading: the config file (SIGHUP, or a change on disk), the store's
//! keys (polled) and the OIDC issuers' signing keys (JWKS, on a timer). A reload builds a complete new snapshot and swaps it in one
//! step; a bad file keeps the running snapshot and logs why.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::AppState;
use crate::config;
use crate::snapshot::{store_key_index, Snapshot};
use crate::store::Store;
use tollgate_core::error::BuildError;

/// Why a reload kept the running config: the file did not load or validate,
/// or its runtime form could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Build(#[from] BuildError),
}

pub fn reload(state: &AppState) -> Result<(), ReloadError> {
    let result = config::load_file(&state.config_path)
        .map_err(ReloadError::from)
        .and_then(|cfg| {
            let current = state.snapshot.load();
            let (new, old) = (&cfg, &current.config);
            let restart_only = [
                ("server.listen", new.server.listen != old.server.listen),
                (
                    "server.admin_listen",
                    new.server.admin_listen != old.server.admin_listen,
                ),
                (
                    "server.watch_config",
                    new.server.watch_config != old.server.watch_config,
                ),
                (
                    "server.timeouts",
                    new.server.timeouts != old.server.timeouts,
                ),
                (
                    "server.max_concurrent_requests",
                    new.server.max_concurrent_requests != old.server.max_concurrent_requests,
                ),
                ("storage.url", new.storage.url != old.storage.url),
                ("ledger", new.ledger != old.ledger),
                ("cache", new.cache != old.cache),
                ("secrets", new.secrets != old.secrets),
            ];
            for (field, changed) in restart_only {
                if changed {
                    tracing::warn!(
                        field,
                        "changed in the file; takes effect at the next restart"
                    );
                }
            }
            Ok(Snapshot::build(cfg, Some(&current))?)
        });
    match result {
        Ok(snap) => {
            let models = snap.models.len();
            let mcp_changed = snap.config.mcp != state.snapshot.load().config.mcp;
            state.snapshot.store(Arc::new(snap));
            if mcp_changed {
                for kind in tollgate_mcp::wire::ListChanged::ALL {
                    let _ = state.mcp_changes.send(kind);
                }
            }
            metrics::counter!("tollgate_config_reloads_total", "result" => "ok").increment(1);
            tracing::info!(models, "config reloaded");
            Ok(())
        }
        Err(e) => {
            metrics::counter!("tollgate_config_reloads_total", "result" => "error").increment(1);
            tracing::error!(error = %e, "config reload failed; keeping the running config");
            Err(e)
        }
    }
}

/// Re-reads the store's keys so `tollgate keys create|revoke` take effect.
pub(super) async fn refresh_store_keys(
    state: Arc<AppState>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    while key_refresh_tick(&state, &mut stop).await {
        load_store_keys(&state, &store).await;
    }
}

/// Waits one `storage.key_refresh` (read each round, so a reload applies
/// at the next one); false when the gateway is stopping.
pub(super) async fn key_refresh_tick(state: &AppState, stop: &mut watch::Receiver<bool>) -> bool {
    let every = state.snapshot.load().config.storage.key_refresh;
    tokio::select! {
        _ = stop.changed() => false,
        _ = tokio::time::sleep(every) => true,
    }
}

/// MCP tool pins: first-seen pins go to the store and the store's pins
/// (operators' approvals, other replicas' first sights) come back, every
/// `storage.key_refresh`. Never on the request path.
pub(super) async fn refresh_tool_pins(
    state: Arc<AppState>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let new = state.mcp_pins.drain();
        for (i, pin) in new.iter().enumerate() {
            let row = crate::store::ToolPin {
                server: pin.server.clone(),
                tool: pin.tool.clone(),
                fingerprint: pin.fingerprint.clone(),
                approved_ms: crate::store::now_ms(),
                approved_by: "first-seen".into(),
            };
            if let Err(e) = store.pin_tool_if_absent(&row).await {
                tracing::warn!(error = %e, "could not store mcp tool pins; retrying");
                state.mcp_pins.requeue(new[i..].to_vec());
                break;
            }
        }
        match store.list_tool_pins().await {
            Ok(pins) => {
                let hidden = state.mcp_pins.changed();
                state.mcp_pins.load(
                    pins.into_iter()
                        .map(|p| ((p.server, p.tool), p.fingerprint)),
                    &new,
                );
                // A tool approved again (or newly hidden) changes lists.
                if state.mcp_pins.changed() != hidden {
                    let _ = state
                        .mcp_changes
                        .send(tollgate_mcp::wire::ListChanged::Tools);
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not read mcp tool pins"),
        }
        let every = state.snapshot.load().config.storage.key_refresh;
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Closes upstream MCP sessions whose client session expired without a
/// `DELETE` (`tollgate_mcp::reaper`): every quarter of `mcp.session_ttl`,
/// between 1 s and 60 s.
pub(super) async fn reap_mcp_sessions(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    use std::time::Duration;
    let none = http::HeaderMap::new();
    loop {
        let ttl = state.snapshot.load().config.mcp.session_ttl;
        let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for (upstream, session) in state.mcp_reaper.due(tollgate_core::clock::wall_ms()) {
            upstream.close(&session, &none).await;
            metrics::counter!("tollgate_mcp_sessions_reaped_total",
                "server" => upstream.name.clone())
            .increment(1);
        }
    }
}

/// Reads the store's keys into the state; on an error keeps the current set.
pub(super) async fn load_store_keys(state: &AppState, store: &Store) {
    match store.list_keys().await {
        Ok(keys) => {
            state.store_keys.store(Arc::new(store_key_index(&keys)));
            state
                .store_keys_loaded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not refresh API keys; keeping the current set")
        }
    }
}

/// How long `start` waits for the first JWKS fetches.
const FIRST_JWKS_WAIT: Duration = Duration::from_secs(3);

/// Fetches every issuer's keys once, concurrently, waiting at most
/// `FIRST_JWKS_WAIT`; failures are logged and retried in the background.
pub(super) async fn initial_jwks(state: &Arc<AppState>) {
    let snap = state.snapshot.load_full();
    let now = tokio::time::Instant::now();
    let tasks: Vec<_> = snap
        .issuers
        .all()
        .iter()
        .filter(|i| i.jwks.take_due(now))
        .map(|i| tokio::spawn(fetch_jwks(i.clone(), "start")))
        .collect();
    if tasks.is_empty() {
        return;
    }
    let all = futures_util::future::join_all(tasks);
    if tokio::time::timeout(FIRST_JWKS_WAIT, all).await.is_err() {
        tracing::warn!(
            "identity provider(s) slow to answer; JWKS fetch continues in the background"
        );
    }
}

async fn fetch_jwks(issuer: Arc<crate::auth::OidcIssuer>, trigger: &'static str) {
    metrics::counter!("tollgate_jwks_refreshes_total", "trigger" => trigger).increment(1);
    let r = issuer.jwks.refresh().await;
    match &r {
        Ok(n) => tracing::debug!(issuer = %issuer.issuer, keys = n, "JWKS fetched"),
        Err(e) => {
            metrics::counter!("tollgate_jwks_errors_total").increment(1);
            tracing::warn!(issuer = %issuer.issuer, error = %e,
                "cannot fetch signing keys; keeping the cached keys and retrying");
        }
    }
    issuer.jwks.schedule_next(r.is_ok(), issuer.config.refresh);
}

/// Re-fetches each issuer's JWKS every `refresh` (sooner, with backoff,
/// after a failure). Issuers added by a reload are picked up on the next tick.
pub(super) async fn refresh_jwks(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let snap = state.snapshot.load_full();
        let now = tokio::time::Instant::now();
        for issuer in snap.issuers.all() {
            if issuer.jwks.take_due(now) {
                tokio::spawn(fetch_jwks(issuer.clone(), "timer"));
            }
        }
    }
}

/// Reloads when the config file changes on disk (watching its directory, so
/// editors that replace the file by rename are seen too).
pub(super) async fn watch_config(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    if !state.snapshot.load().config.server.watch_config {
        return;
    }
    let path = state.config_path.clone();
    let Some(file_name) = path.file_name().map(|f| f.to_os_string()) else {
        return;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let ours = event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file_name.as_os_str()));
            if ours && (event.kind.is_modify() || event.kind.is_create()) {
                let _ = tx.try_send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, "cannot watch the config directory; reload with SIGHUP");
        return;
    }
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = rx.recv() => {
                if got.is_none() {
                    return;
                }
                // Editors write in several steps: wait for the burst to settle.
                tokio::time::sleep(Duration::from_millis(150)).await;
                while rx.try_recv().is_ok() {}
                let _ = reload(&state);
            }
        }
    }
}
