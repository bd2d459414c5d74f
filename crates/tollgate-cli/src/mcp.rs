//! `tollgate mcp`: the MCP gateway as a given caller sees it, over the
//! caller's own HTTP path (so what it prints is what that caller's agent
//! would get): the servers it may reach, a server's tools, one test call.
//! The client is the gateway's own MCP client (`tollgate_mcp::Upstream`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;
use tollgate::config::{McpServerConfig, McpToolSelection, McpTransport, Secret, UpstreamAuth};
use tollgate::mcp_gateway::pins::fingerprint;
use tollgate::mcp_gateway::wire::Tool;
use tollgate::mcp_gateway::Upstream;
use tollgate::net::Egress;
use tollgate::store::{Store, ToolPin};

/// Largest answer read from the gateway (a server list).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Subcommand)]
pub(crate) enum McpCommand {
    /// The MCP servers the caller may reach (GET /mcp).
    Servers {
        #[command(flatten)]
        target: Target,
    },
    /// A server's tools as the caller sees them (initialize, tools/list);
    /// with --changed, the upstream tools held back because they changed
    /// since they were pinned (read from the upstreams and the store of --config).
    Tools {
        #[command(flatten)]
        target: Target,
        /// The server, as in /mcp/{server}.
        #[arg(long, required_unless_present = "changed")]
        server: Option<String>,
        /// Print the whole tools/list result as JSON.
        #[arg(long)]
        json: bool,
        /// List changed tools instead: server<TAB>tool<TAB>pinned<TAB>current fingerprint.
        #[arg(long, requires = "config")]
        changed: bool,
        /// The gateway's config (its MCP servers and store), for --changed.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Approve an upstream server's tools as they are now: their current
    /// fingerprints become the pins (a changed tool is served again).
    Approve {
        #[arg(long, short)]
        config: PathBuf,
        /// The upstream server (`mcp.servers[].name`).
        #[arg(long)]
        server: String,
        /// Only these tools (upstream names); default: all of the server's.
        #[arg(long)]
        tool: Vec<String>,
    },
    /// Call one tool and print its result (exit 1 when it fails or is an error).
    Call {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        server: String,
        #[arg(long)]
        tool: String,
        /// The arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

#[derive(clap::Args)]
pub(crate) struct Target {
    /// The gateway's data-plane base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The caller's API key or token (sent as `Authorization: Bearer`).
    #[arg(long, env = "TOLLGATE_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Longest wait for one answer, e.g. 30s.
    #[arg(long, default_value = "60s")]
    timeout: String,
}

impl Target {
    fn timeout(&self) -> Result<Duration, String> {
        humantime::parse_duration(&self.timeout).map_err(|e| format!("--timeout: {e}"))
    }

    fn key(&self) -> Result<&str, String> {
        self.key
            .as_deref()
            .ok_or_else(|| "pass --key or set TOLLGATE_KEY".to_string())
    }

    /// The gateway's `/mcp/{server}` as an MCP server to talk to.
    fn client(&self, server: &str) -> Result<Upstream, String> {
        let cfg = McpServerConfig {
            name: server.to_string(),
            transport: McpTransport::StreamableHttp,
            url: Some(format!("{}/mcp/{server}", self.url.trim_end_matches('/'))),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            auth: Some(UpstreamAuth::Bearer {
                token: Some(Secret(self.key()?.to_string())),
                token_file: None,
            }),
            headers: BTreeMap::new(),
            timeout: self.timeout()?,
            expose: true,
            tools: McpToolSelection::default(),
            pin_tools: false,
            openapi: None,
        };
        // The gateway itself, at the address the operator gave: no egress policy.
        Upstream::build(&cfg, MAX_ANSWER, &Egress::default()).map_err(|e| e.to_string())
    }
}

pub(crate) async fn run(command: McpCommand) -> Result<ExitCode, String> {
    match command {
        McpCommand::Servers { target } => {
            // The gateway itself, at the address the operator gave.
            #[allow(clippy::disallowed_methods)]
            let resp = reqwest::Client::new()
                .get(format!("{}/mcp", target.url.trim_end_matches('/')))
                .bearer_auth(target.key()?)
                .timeout(target.timeout()?)
                .send()
                .await
                .map_err(|e| format!("cannot reach the gateway: {e}"))?;
            let status = resp.status();
            let mut resp = resp;
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                if bytes.len() + chunk.len() > MAX_ANSWER {
                    return Err("the gateway's answer is too large".into());
                }
                bytes.extend_from_slice(&chunk);
            }
            let body: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("the gateway's answer is not JSON: {e}"))?;
            if !status.is_success() {
                return Err(format!("HTTP {status}: {body}"));
            }
            for s in body["servers"].as_array().into_iter().flatten() {
                super::cli::out(s["name"].as_str().unwrap_or_default())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Tools {
            changed: true,
            config: Some(config),
            ..
        } => changed(&config).await,
        McpCommand::Approve {
            config,
            server,
            tool,
        } => approve(&config, &server, &tool).await,
        McpCommand::Tools {
            target,
            server,
            json,
            ..
        } => {
            let server = server.ok_or("pass --server")?;
            let client = target.client(&server)?;
            let result = with_session(&client, "tools/list", None).await?;
            if json {
                super::cli::out(&serde_json::to_string_pretty(&result).unwrap_or_default())?;
                return Ok(ExitCode::SUCCESS);
            }
            for t in result["tools"].as_array().into_iter().flatten() {
                let name = t["name"].as_str().unwrap_or_default();
                let desc = t["description"].as_str().unwrap_or_default();
                super::cli::out(&format!("{name}\t{desc}"))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Call {
            target,
            server,
            tool,
            args,
        } => {
            let arguments: Value =
                serde_json::from_str(&args).map_err(|e| format!("--args is not JSON: {e}"))?;
            let params = serde_json::json!({"name": tool, "arguments": arguments});
            let client = target.client(&server)?;
            let result = with_session(&client, "tools/call", Some(&params)).await?;
            super::cli::out(&serde_json::to_string_pretty(&result).unwrap_or_default())?;
            Ok(if result["isError"].as_bool() == Some(true) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Every upstream server of the config, its tools now, and the store's pins.
async fn changed(config: &Path) -> Result<ExitCode, String> {
    let (cfg, store) = load(config).await?;
    let egress = config_egress(&cfg)?;
    let pins = pinned(&store).await?;
    for s in cfg.mcp.servers.iter().filter(|s| s.pin_tools) {
        for tool in upstream_tools(s, cfg.mcp.max_message_bytes, &egress).await? {
            let current = fingerprint(&tool);
            if let Some(p) = pins.get(&(s.name.clone(), tool.name.clone())) {
                if *p != current {
                    super::cli::out(&format!("{}\t{}\t{p}\t{current}", s.name, tool.name))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn approve(config: &Path, server: &str, only: &[String]) -> Result<ExitCode, String> {
    let (cfg, store) = load(config).await?;
    let s = cfg
        .mcp
        .servers
        .iter()
        .find(|s| s.name == server)
        .ok_or_else(|| format!("no mcp server named {server} in {}", config.display()))?;
    let who = std::env::var("USER").map_or_else(|_| "cli".to_string(), |u| format!("cli:{u}"));
    let mut approved = 0;
    let egress = config_egress(&cfg)?;
    for tool in upstream_tools(s, cfg.mcp.max_message_bytes, &egress).await? {
        if !only.is_empty() && !only.contains(&tool.name) {
            continue;
        }
        let pin = ToolPin {
            server: s.name.clone(),
            tool: tool.name.clone(),
            fingerprint: fingerprint(&tool),
            approved_ms: tollgate::store::now_ms(),
            approved_by: who.clone(),
        };
        store.approve_tool(&pin).await.map_err(|e| e.to_string())?;
        super::cli::out(&format!(
            "approved {}/{} {}",
            pin.server, pin.tool, pin.fingerprint
        ))?;
        approved += 1;
    }
    if approved == 0 {
        return Err(format!("no tool of {server} matched"));
    }
    Ok(ExitCode::SUCCESS)
}

/// The config's egress policy: the CLI reaches upstreams as the gateway would.
fn config_egress(cfg: &tollgate::config::Config) -> Result<Egress, String> {
    let egress = Egress::default();
    let policy = Egress::prepare(cfg.egress.as_ref()).map_err(|e| e.to_string())?;
    egress.apply(policy).map_err(|e| e.to_string())?;
    Ok(egress)
}

async fn load(config: &Path) -> Result<(tollgate::config::Config, Store), String> {
    let cfg =
        tollgate::config::load_file(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let store = Store::open(&cfg.storage.url)
        .await
        .map_err(|e| e.to_string())?;
    Ok((cfg, store))
}

async fn pinned(store: &Store) -> Result<HashMap<(String, String), String>, String> {
    Ok(store
        .list_tool_pins()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|p| ((p.server, p.tool), p.fingerprint))
        .collect())
}

/// An upstream server's tools, straight from it (all pages).
async fn upstream_tools(
    cfg: &McpServerConfig,
    max: usize,
    egress: &Egress,
) -> Result<Vec<Tool>, String> {
    let client = Upstream::build(cfg, max, egress).map_err(|e| e.to_string())?;
    let none = http::HeaderMap::new();
    let session = client.open(&none).await.map_err(describe)?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.as_ref().map(|c| serde_json::json!({ "cursor": c }));
        let result = client
            .request(
                session.as_deref(),
                "tools/list",
                params.as_ref(),
                &none,
                None,
                None,
            )
            .await
            .map_err(describe)?;
        let page: ToolPage = serde_json::from_value(result).map_err(|e| e.to_string())?;
        tools.extend(page.tools);
        match page.next_cursor {
            Some(c) if !c.is_empty() && tools.len() < 100_000 => cursor = Some(c),
            _ => break,
        }
    }
    if let Some(s) = &session {
        client.close(s, &none).await;
    }
    Ok(tools)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolPage {
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// One request inside a session opened for it (and closed after).
async fn with_session(
    client: &Upstream,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, String> {
    let none = http::HeaderMap::new();
    let session = client.open(&none).await.map_err(describe)?;
    let result = client
        .request(session.as_deref(), method, params, &none, None, None)
        .await
        .map_err(describe);
    if let Some(s) = &session {
        client.close(s, &none).await;
    }
    result
}

fn describe(e: tollgate::mcp_gateway::UpstreamError) -> String {
    match e {
        tollgate::mcp_gateway::UpstreamError::Rpc { error, .. } => {
            format!("error {}: {}", error.code, error.message)
        }
        other => other.to_string(),
    }
}
