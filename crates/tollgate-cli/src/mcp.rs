//! `tollgate mcp`: the MCP gateway as a given caller sees it, over the
//! caller's own HTTP path (so what it prints is what that caller's agent
//! would get): the servers it may reach, a server's tools, one test call.
//! The client is the gateway's own MCP client (`tollgate_mcp::Upstream`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;
use tollgate::config::{McpServerConfig, McpToolSelection, McpTransport, Secret, UpstreamAuth};
use tollgate::mcp_gateway::Upstream;

/// Largest answer read from the gateway (a server list).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

#[derive(Subcommand)]
pub(crate) enum McpCommand {
    /// The MCP servers the caller may reach (GET /mcp).
    Servers {
        #[command(flatten)]
        target: Target,
    },
    /// A server's tools as the caller sees them (initialize, tools/list).
    Tools {
        #[command(flatten)]
        target: Target,
        /// The server, as in /mcp/{server}.
        #[arg(long)]
        server: String,
        /// Print the whole tools/list result as JSON.
        #[arg(long)]
        json: bool,
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
    key: String,
    /// Longest wait for one answer, e.g. 30s.
    #[arg(long, default_value = "60s")]
    timeout: String,
}

impl Target {
    fn timeout(&self) -> Result<Duration, String> {
        humantime::parse_duration(&self.timeout).map_err(|e| format!("--timeout: {e}"))
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
                token: Some(Secret(self.key.clone())),
                token_file: None,
            }),
            headers: BTreeMap::new(),
            timeout: self.timeout()?,
            expose: true,
            tools: McpToolSelection::default(),
        };
        Upstream::build(&cfg, MAX_ANSWER).map_err(|e| e.to_string())
    }
}

pub(crate) async fn run(command: McpCommand) -> Result<ExitCode, String> {
    match command {
        McpCommand::Servers { target } => {
            let resp = reqwest::Client::new()
                .get(format!("{}/mcp", target.url.trim_end_matches('/')))
                .bearer_auth(&target.key)
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
            target,
            server,
            json,
        } => {
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

/// One request inside a session opened for it (and closed after).
async fn with_session(
    client: &Upstream,
    method: &str,
    params: Option<&Value>,
) -> Result<Value, String> {
    let none = http::HeaderMap::new();
    let session = client.open(&none).await.map_err(describe)?;
    let result = client
        .request(session.as_deref(), method, params, &none)
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
