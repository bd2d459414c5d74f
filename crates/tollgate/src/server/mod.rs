//! Process lifecycle: build the first snapshot, open the store, start the
//! ledger, bind the data-plane and admin listeners, fetch the OIDC issuers'
//! signing keys, run background tasks (key refresh, JWKS refresh, config
//! watch), and shut down gracefully: stop accepting,
//! let in-flight requests and streams finish within the grace period, flush
//! the ledger, return.

mod admin;
mod cache_admin;
mod conn;
mod head_error;
mod limits_api;
mod mcp_admin;
mod reload;
mod routing_api;
mod usage_api;
mod vault;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{self, ConfigError};
use crate::ledger::{Ledger, LedgerHandle};
use crate::snapshot::{store_key_index, Snapshot};
use crate::store::{Store, StoreError};
use crate::vault::{Keyring, Vault, VaultError};
use tollgate_core::error::BuildError;

pub use reload::{reload, ReloadError};

pub use tollgate_pipeline::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("secrets: {0}")]
    Secrets(#[from] VaultError),
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub state: Arc<AppState>,
    /// The named secrets (`state.secrets`), with their decryption count.
    pub vault: Arc<Vault>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Starts the graceful shutdown; `wait` returns when it is done.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Task(e)),
        }
    }

    /// Reloads the config file now (what SIGHUP does).
    pub fn reload(&self) -> Result<(), ReloadError> {
        reload(&self.state)
    }
}

/// Starts the gateway; named secrets come from the store's vault.
pub async fn start(config_path: &Path) -> Result<Running, ServeError> {
    start_inner(config_path, None).await
}

/// `start`, with another source of the named secrets that outbound
/// connections' credentials (`secret: NAME`) are revealed from (tests
/// count reveals through one).
pub async fn start_with_secrets(
    config_path: &Path,
    secrets: Arc<dyn tollgate_core::secret::SecretSource>,
) -> Result<Running, ServeError> {
    start_inner(config_path, Some(secrets)).await
}

async fn start_inner(
    config_path: &Path,
    secrets: Option<Arc<dyn tollgate_core::secret::SecretSource>>,
) -> Result<Running, ServeError> {
    let cfg = config::load_file(config_path)?;
    raise_open_file_limit();
    let snapshot = Snapshot::build(cfg.clone(), None)?;
    // Every configured key must be readable, and every stored secret must
    // open with one of them: a wrong or missing key stops the start.
    let vault = Arc::new(Vault::new(Keyring::load(&cfg.secrets)?));
    // A store that cannot be reached does not stop the start: the ledger
    // spools, and the store's keys and the budgets are loaded once it
    // answers (`store_arrived`).
    let store = Store::open_deferred(&cfg.storage.url).await?;
    let store_keys = match store.is_ready() {
        true => Some(store_key_index(&store.list_keys().await?)),
        false => None,
    };
    if store.is_ready() {
        restore_budgets(&snapshot.limits, &store).await?;
        vault::load_at_start(&vault, &store).await?;
    }
    let ledger = match cfg.ledger.enabled {
        true => {
            let spool = cfg.ledger.spool_path.as_ref().map_or_else(
                || crate::ledger::spool::default_path(&cfg.storage.url),
                PathBuf::from,
            );
            Some(Ledger::start(store.clone(), &cfg.ledger, Some(&spool)).await)
        }
        false => None,
    };
    let audit = match cfg.audit.enabled {
        true => Some(crate::audit::Audit::start(&cfg.audit).await.map_err(|e| {
            BuildError::of(e).context(format_args!("audit.sink {:?}", cfg.audit.sink))
        })?),
        false => None,
    };
    let telemetry = match cfg.tracing.enabled {
        true => Some(crate::telemetry::Telemetry::start(
            &cfg.tracing,
            &snapshot.egress,
        )?),
        false => None,
    };
    let listener = bind(&cfg.server.listen).await?;
    let admin_listener = bind(&cfg.server.admin_listen).await?;
    let addr = listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let cache = crate::cache::Cache::new(&cfg.cache)?;

    let state = Arc::new(AppState {
        snapshot: ArcSwap::from_pointee(snapshot),
        store_keys_loaded: AtomicBool::new(store_keys.is_some()),
        store_keys: ArcSwap::from_pointee(store_keys.unwrap_or_default()),
        ledger: ledger
            .as_ref()
            .map_or_else(LedgerHandle::disabled, Ledger::handle),
        audit: audit
            .as_ref()
            .map_or_else(Default::default, crate::audit::Audit::handle),
        tracing: telemetry.as_ref().map(crate::telemetry::Telemetry::handle),
        store: store.clone(),
        prometheus: crate::metrics::handle(),
        ready: AtomicBool::new(true),
        config_path: config_path.to_path_buf(),
        mcp_pins: Arc::default(),
        mcp_approvals: Arc::default(),
        mcp_changes: tollgate_mcp::wire::notices(),
        mcp_reaper: Arc::default(),
        mcp_asks: Arc::default(),
        cache: Arc::new(cache),
        secrets: secrets.unwrap_or_else(|| vault.clone()),
    });
    // Signing keys of the OIDC issuers: a first fetch, waited on briefly;
    // an identity provider that is down does not stop the start.
    reload::initial_jwks(&state).await;
    let (stop, stop_rx) = watch::channel(false);
    let mut background = vec![
        tokio::spawn(store_arrived(state.clone(), store.clone(), vault.clone())),
        tokio::spawn(reload::refresh_jwks(state.clone(), stop_rx.clone())),
        tokio::spawn(reload::refresh_store_keys(
            state.clone(),
            store.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(reload::watch_config(state.clone(), stop_rx.clone())),
        tokio::spawn(reload::refresh_tool_pins(
            state.clone(),
            store.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(vault::refresh_secrets(
            state.clone(),
            vault.clone(),
            store.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(reload::reap_mcp_sessions(state.clone(), stop_rx.clone())),
        tokio::spawn(crate::metrics::upkeep(
            state.prometheus.clone(),
            stop_rx.clone(),
        )),
    ];
    if let Some(retention) = cfg.ledger.retention {
        background.push(tokio::spawn(crate::ledger::run_retention(
            store.clone(),
            retention,
            stop_rx.clone(),
        )));
    }
    tracing::info!(%addr, %admin_addr, models = state.snapshot.load().models.len(),
        "tollgate listening");
    let admin_app =
        admin::router(state.clone()).merge(vault::admin_router(state.clone(), vault.clone()));
    let task = tokio::spawn(run(
        state.clone(),
        listener,
        (admin_listener, admin_app),
        stop_rx,
        Recorders {
            ledger,
            audit,
            telemetry,
        },
        store,
        background,
    ));
    Ok(Running {
        addr,
        admin_addr,
        state,
        vault,
        stop,
        task,
    })
}

/// Budgets survive a restart: this node's cost counters are rebuilt from
/// the spend the ledger summed for their current windows. Runs before the
/// ledger writes anything in this process (at start, or before a store
/// that was unreachable is set ready), so nothing is counted twice.
async fn restore_budgets(limits: &crate::limits::Limits, store: &Store) -> Result<(), StoreError> {
    let windows = limits.budget_windows();
    if !windows.is_empty() {
        let spend = store.budget_spend(&windows).await?;
        let restored = crate::limits::restore(&limits.local, limits, &spend);
        tracing::info!(restored, "budget counters rebuilt from the usage ledger");
    }
    Ok(())
}

/// For a store unreachable at start: migrates it once it answers,
/// restores the budgets (added to what was counted meanwhile), lets the
/// ledger write, then loads its keys. Returns at once for a store that
/// was ready.
async fn store_arrived(state: Arc<AppState>, store: Store, vault: Arc<Vault>) {
    if store.is_ready() {
        return;
    }
    store.migrate_when_reachable().await;
    let snap = state.snapshot.load_full();
    if let Err(e) = restore_budgets(&snap.limits, &store).await {
        tracing::error!(error = %e, "budget counters not rebuilt from the usage ledger");
    }
    store.set_ready();
    reload::load_store_keys(&state, &store).await;
    vault.refresh(&store).await;
}

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard one and
/// logs it: every caller's and upstream connection holds a descriptor, and
/// the usual soft default (1024) runs out long before memory or CPU does.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let before = rlimit::getrlimit(rlimit::Resource::NOFILE).ok();
        // An unlimited hard limit cannot be the soft one on Linux (nr_open).
        let raised = rlimit::increase_nofile_limit(u64::MAX)
            .or_else(|_| rlimit::increase_nofile_limit(1 << 20));
        match (raised, before) {
            (Ok(now), Some((was, hard))) => {
                tracing::info!(soft = now, was, hard, "open-file limit (RLIMIT_NOFILE)")
            }
            (Ok(now), None) => tracing::info!(soft = now, "open-file limit (RLIMIT_NOFILE)"),
            (Err(e), _) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
}

async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The background writers flushed at shutdown, in this order.
struct Recorders {
    ledger: Option<Ledger>,
    audit: Option<crate::audit::Audit>,
    telemetry: Option<crate::telemetry::Telemetry>,
}

async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    (admin_listener, admin_app): (TcpListener, axum::Router),
    stop_rx: watch::Receiver<bool>,
    recorders: Recorders,
    store: Store,
    background: Vec<JoinHandle<()>>,
) -> Result<(), ServeError> {
    // Both listeners run the same accept loop (conn.rs): TCP_NODELAY, the
    // server-side timeouts, graceful drain; only the data plane is shed.
    let server = state.snapshot.load().config.server.clone();
    let data_task = tokio::spawn(conn::serve(
        listener,
        crate::api::router(state.clone()),
        conn::Limits {
            timeouts: server.timeouts,
            max_in_flight: Some(server.max_concurrent_requests),
        },
        "data",
        stop_rx.clone(),
    ));
    // The admin listener outlives the data plane's drain, so load balancers
    // see /readyz turn 503 while in-flight requests finish.
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(conn::serve(
        admin_listener,
        admin_app,
        conn::Limits {
            timeouts: server.timeouts,
            max_in_flight: None,
        },
        "admin",
        admin_stop_rx,
    ));
    let abort = data_task.abort_handle();
    stopped(stop_rx).await;
    state.ready.store(false, Ordering::Relaxed);
    let grace = state.snapshot.load().config.server.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    match tokio::time::timeout(grace, data_task).await {
        Ok(Ok(())) => tracing::info!("in-flight requests finished"),
        Ok(Err(e)) => tracing::error!(error = %e, "data plane task failed"),
        Err(_) => {
            tracing::warn!("grace period over; closing remaining connections");
            abort.abort();
        }
    }
    for t in background {
        t.abort();
    }
    let _ = admin_stop.send(true);
    if let Err(e) = admin_task.await {
        tracing::error!(error = %e, "admin server task failed");
    }
    let Recorders {
        ledger,
        audit,
        telemetry,
    } = recorders;
    if let Some(ledger) = ledger {
        // Let aborted streams run their accounting before the last flush.
        tokio::task::yield_now().await;
        ledger.close().await;
        tracing::info!("usage ledger flushed");
    }
    if let Some(audit) = audit {
        audit.close().await;
    }
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    store.close().await;
    Ok(())
}
