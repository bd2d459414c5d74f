//! Command-line surface. Each subcommand is a few lines over `tollgate::*`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tollgate::config::PrincipalKind;
use tollgate::store::{NewKey, Store, UsageGroupBy, UsageQuery};

#[derive(Parser)]
#[command(name = "tollgate", version, about = "Tollgate AI gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: text on stderr, or JSON lines on stdout (default: the
    /// config's `logging.format` for `serve`, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum By {
    Principal,
    Group,
    Tenant,
    Model,
    Target,
    Provider,
    Day,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum UsageFormat {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    User,
    Service,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (data plane on server.listen, admin on server.admin_listen).
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file; prints every problem with its path, exits 1 if any.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage API keys kept in the store.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Inspect credentials: how a token or API key is authenticated and what it may use.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Usage and cost totals from the ledger (the query behind GET /admin/v1/usage).
    Usage {
        #[command(flatten)]
        store: StoreArgs,
        /// How far back, e.g. 15m, 1h, 7d (ignored when --from is given).
        #[arg(long, default_value = "24h")]
        since: String,
        /// Start, RFC 3339 or Unix seconds.
        #[arg(long)]
        from: Option<String>,
        /// End (exclusive), RFC 3339 or Unix seconds; default now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = By::Principal)]
        by: By,
        #[arg(long, value_enum, default_value_t = UsageFormat::Table)]
        format: UsageFormat,
    },
    /// The MCP gateway as a caller sees it: servers, tools, a test call.
    Mcp {
        #[command(subcommand)]
        command: crate::mcp::McpCommand,
    },
    /// Named secrets for connections, encrypted in the store (set, list, delete, rotate).
    Connections {
        #[command(subcommand)]
        command: crate::connections::ConnectionsCommand,
    },
    /// Databricks job runs through a gateway: run (optionally waited for), status, cancel.
    Jobs {
        #[command(subcommand)]
        command: crate::jobs::JobsCommand,
    },
    /// An OpenAI-compatible mock upstream with fault knobs (x-mock-* headers).
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Require KEY on every request: `Authorization: Bearer KEY` (OpenAI),
        /// `x-goog-api-key: KEY` or `?key=KEY` (Gemini), a SigV4 signature by
        /// access key id KEY, or with KEYID:SECRET a signature the mock recomputes (Bedrock).
        #[arg(long, env = "MOCK_REQUIRE_KEY")]
        require_key: Option<String>,
        /// OAuth client accepted by `/oidc/v1/token` (client credentials).
        #[arg(long, env = "MOCK_CLIENT_ID")]
        client_id: Option<String>,
        #[arg(long, env = "MOCK_CLIENT_SECRET")]
        client_secret: Option<String>,
        /// Lifetime in seconds of tokens issued by `/oidc/v1/token`.
        #[arg(long, default_value_t = 3600)]
        token_ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Show which issuer or key matches, the validation result (with the failing
    /// check), the mapped principal and the models it may use. Fetches the
    /// issuers' JWKS itself.
    Inspect {
        #[arg(long, short)]
        config: PathBuf,
        /// The JWT or API key; read from stdin when left out (keeps it out of shell history).
        token: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// Config whose storage.url names the store.
    #[arg(long, short, required_unless_present = "db")]
    config: Option<PathBuf>,
    /// The store URL directly (e.g. sqlite://tollgate.db).
    #[arg(long)]
    db: Option<String>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; prints it once (only its hash is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Key id (shown in logs and the ledger).
        #[arg(long)]
        id: String,
        /// The principal the key authenticates as.
        #[arg(long)]
        principal: String,
        #[arg(long, value_enum, default_value_t = Kind::User)]
        kind: Kind,
        /// Group membership (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Model name or glob the key may use (repeatable); none means no access
        /// unless a policy rule grants its principal, groups or tenant.
        #[arg(long = "model")]
        models: Vec<String>,
        /// The tenant owning the key (keys for external clients).
        #[arg(long)]
        tenant: Option<String>,
        /// The key stops working after this long, e.g. 90d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Rotate a key: create a new key for the same principal, grants and tenant
    /// (printed once) and let the old one expire after the overlap.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        /// The key to replace.
        #[arg(long)]
        id: String,
        /// How long both keys work, e.g. 1h, 7d.
        #[arg(long, default_value = "1h")]
        overlap: String,
        /// The new key's id (default: ID-v2, ID-v3, …).
        #[arg(long)]
        new_id: Option<String>,
        /// The new key expires after this long.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (ids, principals, grants; never the keys).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Revoke a key by id; the gateway stops accepting it within storage.key_refresh.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Print the `sha256:` hash of a key read from stdin, for keys declared in the config.
    Hash,
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` takes its log level and format from the config (env and flag win).
    let logging = match &cli.command {
        Command::Serve { config } => tollgate::config::load_file(config)
            .map(|c| c.logging)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let format = cli.log_format.unwrap_or(match logging.format {
        Some(tollgate::config::LogFormat::Json) => LogFormat::Json,
        _ => LogFormat::Text,
    });
    init_logging(format, logging.level.as_deref());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = rt.block_on(run(cli.command));
    // Idle blocking threads (file watcher, SQLite) must not delay the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(msg) => fail(&msg),
    }
}

fn fail(msg: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {msg}");
    ExitCode::FAILURE
}

/// The config watcher's crates (`notify`, its `inotify` backend and the
/// `mio` poll loop under it) log every file-system event in the watched
/// folder at debug/trace. With the log written to a file next to the config,
/// each line is such an event, so `TOLLGATE_LOG=trace` fed itself (282,000
/// lines in 3 s). They stay at `info` unless the filter names them.
fn quiet_watcher(
    spec: &str,
    filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    ["notify", "inotify", "mio"]
        .into_iter()
        .filter(|c| !spec.contains(c))
        .fold(filter, |f, c| match format!("{c}=info").parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        })
}

/// Level: `TOLLGATE_LOG`, else `RUST_LOG`, else the config's, else `info`.
/// Text goes to stderr; JSON (one object per line, with the request span's
/// `request_id`) to stdout.
fn init_logging(format: LogFormat, config_level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .or_else(|_| EnvFilter::try_new(config_level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let spec = std::env::var("TOLLGATE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| config_level.unwrap_or("info").to_string());
    let filter = quiet_watcher(&spec, filter);
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .init(),
    }
}

pub(crate) fn out(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| e.to_string())
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Serve { config } => serve(&config).await,
        Command::Mcp { command } => crate::mcp::run(command).await,
        Command::Connections { command } => crate::connections::run(command).await,
        Command::Jobs { command } => crate::jobs::run(command).await,
        Command::Validate { config } => match tollgate::config::load_file(&config) {
            Ok(_) => {
                out(&format!("{}: ok", config.display()))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "{}: invalid\n{e}", config.display());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Keys { command } => keys(command).await,
        Command::Token {
            command:
                TokenCommand::Inspect {
                    config,
                    token,
                    format,
                },
        } => token_inspect(&config, token, format).await,
        Command::Usage {
            store,
            since,
            from,
            to,
            by,
            format,
        } => {
            let window = UsageWindow { since, from, to };
            usage(store, &window, by, format).await
        }
        Command::MockUpstream {
            listen,
            require_key,
            client_id,
            client_secret,
            token_ttl_secs,
        } => {
            let opts = tollgate::mock::server::MockOptions {
                require_key,
                client_id,
                client_secret,
                token_ttl: std::time::Duration::from_secs(token_ttl_secs),
            };
            mock_upstream(&listen, opts).await
        }
    }
}

async fn serve(config: &Path) -> Result<ExitCode, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let running = tollgate::server::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                let _ = running.reload();
            }
        }
    }
    running.shutdown();
    running.wait().await.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn open_store(args: &StoreArgs) -> Result<Store, String> {
    let url = match (&args.db, &args.config) {
        (Some(db), _) => db.clone(),
        (None, Some(path)) => {
            tollgate::config::load_file(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .storage
                .url
        }
        (None, None) => return Err("pass --config or --db".into()),
    };
    Store::open(&url).await.map_err(|e| e.to_string())
}

async fn keys(command: KeysCommand) -> Result<ExitCode, String> {
    match command {
        KeysCommand::Create {
            store,
            id,
            principal,
            kind,
            groups,
            models,
            tenant,
            expires_in,
        } => {
            for m in &models {
                tollgate::auth::ModelGrant::new(std::slice::from_ref(m))
                    .map_err(|e| format!("--model {m}: {e}"))?;
            }
            if tenant.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err("--tenant must not be empty".into());
            }
            let expires_ms = expires_in
                .as_deref()
                .map(|d| in_future(d, "--expires-in"))
                .transpose()?;
            let store = open_store(&store).await?;
            let key = tollgate::auth::generate_key();
            let hash = tollgate::auth::format_hash(&tollgate::auth::hash_key(&key));
            let kind = match kind {
                Kind::User => PrincipalKind::User,
                Kind::Service => PrincipalKind::Service,
            };
            store
                .create(&NewKey {
                    id: id.clone(),
                    hash,
                    principal,
                    kind,
                    groups,
                    models,
                    tenant,
                    expires_ms,
                })
                .await
                .map_err(|e| e.to_string())?;
            out(&key)?;
            let until = expires_ms
                .map(|e| format!(", valid until {}", tollgate::auth::rfc3339(e)))
                .unwrap_or_default();
            let _ = writeln!(
                std::io::stderr(),
                "created key {id:?}{until}; it is shown only once"
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            store,
            id,
            overlap,
            new_id,
            expires_in,
        } => {
            let overlap: Duration = humantime::parse_duration(&overlap)
                .map_err(|e| format!("--overlap {overlap:?}: {e}"))?;
            let expires_ms = expires_in
                .as_deref()
                .map(|d| in_future(d, "--expires-in"))
                .transpose()?;
            let store = open_store(&store).await?;
            let key = tollgate::auth::generate_key();
            let hash = tollgate::auth::format_hash(&tollgate::auth::hash_key(&key));
            let rotated = store
                .rotate_key(
                    &id,
                    new_id.as_deref(),
                    &hash,
                    i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX),
                    expires_ms,
                )
                .await
                .map_err(|e| e.to_string())?;
            out(&key)?;
            let _ = writeln!(
                std::io::stderr(),
                "created key {:?} for the same principal and grants; it is shown only once.\n\
                 key {id:?} keeps working until {}",
                rotated.new_id,
                tollgate::auth::rfc3339(rotated.old_expires_ms)
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { store, format } => {
            let keys = open_store(&store)
                .await?
                .list_keys()
                .await
                .map_err(|e| e.to_string())?;
            if format == Format::Json {
                out(&serde_json::to_string_pretty(&keys).map_err(|e| e.to_string())?)?;
            } else {
                out(&format!(
                    "{:<20} {:<20} {:<8} {:<8} {:<12} {:<21} {:<24} GROUPS",
                    "ID", "PRINCIPAL", "KIND", "STATUS", "TENANT", "EXPIRES", "MODELS"
                ))?;
                let now = tollgate::store::now_ms();
                for k in keys {
                    let status = if k.revoked_ms.is_some() {
                        "revoked"
                    } else if k.expires_ms.is_some_and(|e| e <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    out(&format!(
                        "{:<20} {:<20} {:<8} {:<8} {:<12} {:<21} {:<24} {}",
                        k.id,
                        k.principal,
                        k.kind,
                        status,
                        k.tenant.as_deref().unwrap_or("-"),
                        k.expires_ms
                            .map_or_else(|| "-".to_string(), tollgate::auth::rfc3339),
                        k.models.join(","),
                        k.groups.join(",")
                    ))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { store, id } => {
            let done = open_store(&store)
                .await?
                .revoke_key(&id)
                .await
                .map_err(|e| e.to_string())?;
            if done {
                out(&format!("revoked {id}"))?;
                Ok(ExitCode::SUCCESS)
            } else {
                Err(format!("no active key with id {id:?}"))
            }
        }
        KeysCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            let key = line.trim();
            if key.is_empty() {
                return Err("pass the key on stdin".into());
            }
            out(&tollgate::auth::format_hash(&tollgate::auth::hash_key(key)))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Now + a human duration, in Unix ms.
fn in_future(text: &str, flag: &str) -> Result<i64, String> {
    let d: Duration =
        humantime::parse_duration(text).map_err(|e| format!("{flag} {text:?}: {e}"))?;
    Ok(tollgate::store::now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

async fn token_inspect(
    config: &Path,
    token: Option<String>,
    format: Format,
) -> Result<ExitCode, String> {
    let token = match token {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            line
        }
    };
    let token = token.trim();
    if token.is_empty() {
        return Err("pass the token or key as an argument or on stdin".into());
    }
    let cfg =
        tollgate::config::load_file(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let snap = tollgate::snapshot::Snapshot::build(cfg, None).map_err(|e| e.to_string())?;
    // An operator tool may call the identity providers directly.
    let is_jwt = tollgate::auth::jwt::looks_like_jwt(token.trim_start_matches("Bearer ").trim());
    let fetches = snap
        .issuers
        .all()
        .iter()
        .filter(|_| is_jwt)
        .map(|i| async move {
            let r = tokio::time::timeout(Duration::from_secs(10), i.jwks.refresh()).await;
            if !matches!(r, Ok(Ok(_))) {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: cannot fetch the signing keys of {}",
                    i.issuer
                );
            }
        });
    futures_util::future::join_all(fetches).await;
    let stored = match Store::open(&snap.config.storage.url).await {
        Ok(store) => {
            let keys = store.list_keys().await.map_err(|e| e.to_string())?;
            store.close().await;
            keys
        }
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "warning: store not read ({e}); config keys only"
            );
            Vec::new()
        }
    };
    let store_keys = tollgate::snapshot::store_key_index(&stored);
    let mut report = tollgate::auth::inspect::inspect(
        &snap.credentials(&store_keys),
        &snap.policy,
        snap.models_with_owner(),
        token,
    )
    .await;
    report.note_revoked(
        token,
        stored
            .iter()
            .filter_map(|k| k.revoked_ms.map(|at| (k.id.as_str(), k.hash.as_str(), at))),
    );
    if format == Format::Json {
        out(&serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?)?;
    } else {
        out(report.render().trim_end())?;
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct UsageWindow {
    since: String,
    from: Option<String>,
    to: Option<String>,
}

fn time_arg(name: &str, text: &str) -> Result<i64, String> {
    tollgate::config::Expiry::parse(text)
        .map(|e| e.unix_ms)
        .map_err(|e| format!("--{name}: {e}"))
}

async fn usage(
    store: StoreArgs,
    window: &UsageWindow,
    by: By,
    format: UsageFormat,
) -> Result<ExitCode, String> {
    let now = tollgate::store::now_ms();
    let to_ms = match &window.to {
        Some(t) => time_arg("to", t)?,
        None => now + 1,
    };
    let from_ms = match &window.from {
        Some(t) => time_arg("from", t)?,
        None => {
            let since = &window.since;
            let d: Duration =
                humantime::parse_duration(since).map_err(|e| format!("--since {since:?}: {e}"))?;
            now - d.as_millis() as i64
        }
    };
    let group_by = match by {
        By::Principal => UsageGroupBy::Principal,
        By::Group => UsageGroupBy::Group,
        By::Tenant => UsageGroupBy::Tenant,
        By::Model => UsageGroupBy::Model,
        By::Target => UsageGroupBy::Target,
        By::Provider => UsageGroupBy::Provider,
        By::Day => UsageGroupBy::Day,
    };
    let report = open_store(&store)
        .await?
        .usage_report(&UsageQuery {
            group_by: vec![group_by],
            filter: Default::default(),
            from_ms,
            to_ms,
        })
        .await
        .map_err(|e| e.to_string())?;
    match format {
        UsageFormat::Json => {
            out(&serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?)?;
        }
        UsageFormat::Csv => out(report.to_csv().trim_end())?,
        UsageFormat::Table => {
            out(&format!(
                "{:<24} {:>9} {:>7} {:>12} {:>12} {:>12} {:>9} {:>9} {:>9}",
                "KEY",
                "REQUESTS",
                "ERRORS",
                "INPUT_TOK",
                "OUTPUT_TOK",
                "COST",
                "P50_MS",
                "P95_MS",
                "P99_MS"
            ))?;
            for t in &report.rows {
                out(&format!(
                    "{:<24} {:>9} {:>7} {:>12} {:>12} {:>12.6} {:>9.1} {:>9.1} {:>9.1}",
                    t.key,
                    t.requests,
                    t.errors,
                    t.input_tokens,
                    t.output_tokens,
                    t.cost,
                    t.latency_p50_ms,
                    t.latency_p95_ms,
                    t.latency_p99_ms
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn mock_upstream(
    listen: &str,
    opts: tollgate::mock::server::MockOptions,
) -> Result<ExitCode, String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "mock upstream listening");
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut t), Ok(mut i)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
    };
    tollgate::mock::server::serve(listener, opts, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
