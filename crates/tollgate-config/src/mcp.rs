//! The `mcp:` section: upstream MCP servers the gateway fronts, virtual
//! servers that aggregate them, and the session settings (docs/mcp.md).
//! Schema and checks only; the runtime lives in `tollgate_mcp`.

use crate::redact::redacted_debug;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::credentials::{Secret, UpstreamAuth};
use super::duration;

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Key that signs session ids (HMAC-SHA256). Replicas that share it
    /// serve each other's sessions; unset, each process draws its own, so a
    /// session lives on the process that created it.
    #[serde(default)]
    pub session_secret: Option<Secret>,
    /// How long a session id stays valid after `initialize` (default 24h).
    #[serde(default = "default_session_ttl", with = "duration")]
    pub session_ttl: Duration,
    /// Largest JSON-RPC message accepted from a client or read from an
    /// upstream, in bytes (default 4 MiB).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// The gateway's external base URL (`https://gw.example.com`), used in
    /// the OAuth protected-resource metadata; default: from the `Host` header.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub servers: Vec<McpServerConfig>,
    /// Servers made of other servers' tools, prompts and resources.
    #[serde(default)]
    pub virtual_servers: Vec<McpVirtualConfig>,
    /// Tool calls that wait for an operator's approval.
    #[serde(default)]
    pub approval: McpApproval,
}

redacted_debug!(McpConfig {
    plain session_secret,
    plain session_ttl,
    plain max_message_bytes,
    url public_url,
    plain servers,
    plain virtual_servers,
    plain approval,
});

/// High-risk tools whose calls an operator approves one by one.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpApproval {
    /// `server/tool` globs, as served (`agent-tools/warehouse__drop_*`).
    #[serde(default)]
    pub tools: Vec<String>,
    /// How long a call waits for a decision before it is refused (default 5m).
    #[serde(default = "default_approval_timeout", with = "duration")]
    pub timeout: Duration,
}

impl Default for McpApproval {
    fn default() -> Self {
        Self {
            tools: Vec::new(),
            timeout: default_approval_timeout(),
        }
    }
}

fn default_approval_timeout() -> Duration {
    Duration::from_secs(300)
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            session_secret: None,
            session_ttl: default_session_ttl(),
            max_message_bytes: default_max_message_bytes(),
            public_url: None,
            servers: Vec::new(),
            virtual_servers: Vec::new(),
            approval: McpApproval::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// MCP Streamable HTTP (one endpoint, POST with JSON or SSE answers).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05): an event stream and a
    /// message endpoint; one upstream session shared by all clients.
    Sse,
    /// A local command speaking JSON-RPC lines on stdin/stdout.
    Stdio,
    /// A REST API described by an OpenAPI 3 document: each operation a
    /// tool, each call an HTTP request (`openapi:`).
    Openapi,
}

/// One upstream MCP server.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Also the path it is served at: `/mcp/{name}`.
    pub name: String,
    pub transport: McpTransport,
    /// `streamable_http`: the server's MCP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// `stdio`: the program to run, its arguments, environment and folder.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// How the gateway authenticates to the server (`streamable_http`); the
    /// same modes as a provider's `auth:` (docs/credentials.md).
    #[serde(default)]
    pub auth: Option<UpstreamAuth>,
    /// Extra static headers sent to the server.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest wait for one answer from the server (default 60s).
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Serve it on its own at `/mcp/{name}` (default true); `false` keeps it
    /// reachable only through virtual servers.
    #[serde(default = "default_true")]
    pub expose: bool,
    /// Which tools it offers when served on its own, and how they are shown.
    #[serde(default)]
    pub tools: McpToolSelection,
    /// Pin each tool's fingerprint on first sight and hold back a tool that
    /// changes until it is approved again (default true).
    #[serde(default = "default_true")]
    pub pin_tools: bool,
    /// `transport: openapi`: the document and where its calls go.
    #[serde(default)]
    pub openapi: Option<McpOpenApiConfig>,
}

redacted_debug!(McpServerConfig {
    plain name,
    plain transport,
    url url,
    plain command,
    urls args,
    values env,
    plain cwd,
    plain auth,
    values headers,
    plain timeout,
    plain expose,
    plain tools,
    plain pin_tools,
    plain openapi,
});

/// A REST API published as MCP tools (docs/mcp.md, "REST APIs as MCP tools").
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpOpenApiConfig {
    /// The OpenAPI 3 document, JSON or YAML: a file path, or an http(s)
    /// URL fetched (with the server's `auth` and `headers`) on first use.
    pub spec: String,
    /// Where calls go, e.g. `https://api.example.com/v2`; default: the
    /// document's first `servers[].url` (resolved against a URL `spec`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Operations published, as `operationId`s or globs over tool names;
    /// empty: all.
    #[serde(default)]
    pub operations: Vec<String>,
    /// An outbound connection (`connections:`) the calls go through: its
    /// base URL, credential (a named secret included), header rules and
    /// method and path allow-lists, in place of `base_url` and `auth`.
    #[serde(default)]
    pub connection: Option<String>,
}

redacted_debug!(McpOpenApiConfig {
    url spec,
    url base_url,
    plain operations,
    plain connection,
});

/// A server made of members' tools (namespaced `{prefix}__{tool}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpVirtualConfig {
    pub name: String,
    pub servers: Vec<McpMember>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpMember {
    /// A `servers[].name`.
    pub server: String,
    /// Namespace for its tools and prompts (default: the server's name;
    /// `""`: none). A tool `query` of prefix `warehouse` is `warehouse__query`.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub tools: McpToolSelection,
}

/// A curated subset of a server's tools, renamed or re-described.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpToolSelection {
    /// Upstream tool names or globs offered; empty: all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Per upstream tool name: a new name and/or description.
    #[serde(default)]
    pub overrides: BTreeMap<String, McpToolOverride>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpToolOverride {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}

/// Server names are path segments and tool-name prefixes.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn validate_mcp(cfg: &McpConfig, p: &mut Vec<String>) {
    if cfg.max_message_bytes == 0 {
        p.push("mcp.max_message_bytes: must be greater than 0".into());
    }
    if cfg.session_ttl.is_zero() {
        p.push("mcp.session_ttl: must be greater than 0".into());
    }
    if let Some(u) = &cfg.public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            p.push(format!(
                "mcp.public_url: {:?} must start with http:// or https://",
                crate::shown_url(u)
            ));
        }
    }
    for (i, g) in cfg.approval.tools.iter().enumerate() {
        if globset::Glob::new(g).is_err() {
            p.push(format!(
                "mcp.approval.tools[{i}]: {g:?} is not a valid glob"
            ));
        }
    }
    if cfg.approval.timeout.is_zero() {
        p.push("mcp.approval.timeout: must be greater than 0".into());
    }
    let mut names = HashSet::new();
    for (i, s) in cfg.servers.iter().enumerate() {
        let at = format!("mcp.servers[{i}]");
        check_name(&at, &s.name, &mut names, p);
        match s.transport {
            McpTransport::StreamableHttp | McpTransport::Sse => match &s.url {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {}
                Some(u) => p.push(format!(
                    "{at}.url: {:?} must start with http:// or https://",
                    crate::shown_url(u)
                )),
                None => p.push(format!(
                    "{at}.url: required for transport {}",
                    transport_name(s.transport)
                )),
            },
            McpTransport::Openapi => check_openapi(&at, s, p),
            McpTransport::Stdio => {
                if s.command.as_deref().is_none_or(str::is_empty) {
                    p.push(format!("{at}.command: required for transport stdio"));
                }
                if s.auth.is_some() {
                    p.push(format!(
                        "{at}.auth: a stdio server takes credentials through env"
                    ));
                }
            }
        }
        if s.openapi.is_some() && s.transport != McpTransport::Openapi {
            p.push(format!("{at}.openapi: only for transport openapi"));
        }
        if s.transport == McpTransport::Sse && caller_dependent(s.auth.as_ref()) {
            p.push(format!(
                "{at}.auth: an sse server's one session is shared by every caller: use a credential of the gateway's own (bearer, api_key, client_credentials, token_exchange from a file)"
            ));
        }
        if s.timeout.is_zero() {
            p.push(format!("{at}.timeout: must be greater than 0"));
        }
        check_selection(&format!("{at}.tools"), &s.tools, p);
    }
    for (i, v) in cfg.virtual_servers.iter().enumerate() {
        let at = format!("mcp.virtual_servers[{i}]");
        check_name(&at, &v.name, &mut names, p);
        if v.servers.is_empty() {
            p.push(format!("{at}.servers: list at least one server"));
        }
        let mut prefixes = HashSet::new();
        for (j, m) in v.servers.iter().enumerate() {
            let at = format!("{at}.servers[{j}]");
            if !cfg.servers.iter().any(|s| s.name == m.server) {
                p.push(format!("{at}.server: no mcp server named {:?}", m.server));
            }
            let prefix = m.prefix.as_deref().unwrap_or(&m.server);
            if !prefix.is_empty() && !valid_name(prefix) {
                p.push(format!(
                    "{at}.prefix: {prefix:?} must be letters, digits, - or _"
                ));
            }
            if !prefixes.insert(prefix.to_string()) {
                p.push(format!(
                    "{at}.prefix: {prefix:?} is used twice in this server"
                ));
            }
            check_selection(&format!("{at}.tools"), &m.tools, p);
        }
    }
}

fn transport_name(t: McpTransport) -> &'static str {
    match t {
        McpTransport::StreamableHttp => "streamable_http",
        McpTransport::Sse => "sse",
        McpTransport::Stdio => "stdio",
        McpTransport::Openapi => "openapi",
    }
}

fn is_http_url(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

fn check_openapi(at: &str, s: &McpServerConfig, p: &mut Vec<String>) {
    if s.url.is_some() || s.command.is_some() {
        p.push(format!(
            "{at}: a transport openapi server takes openapi.spec, not url or command"
        ));
    }
    let Some(o) = &s.openapi else {
        p.push(format!("{at}.openapi: required for transport openapi"));
        return;
    };
    if o.spec.trim().is_empty() {
        p.push(format!("{at}.openapi.spec: must not be empty"));
    }
    if let Some(b) = &o.base_url {
        if !is_http_url(b) {
            p.push(format!(
                "{at}.openapi.base_url: {:?} must start with http:// or https://",
                crate::shown_url(b)
            ));
        }
    }
    for (i, g) in o.operations.iter().enumerate() {
        if globset::Glob::new(g).is_err() {
            p.push(format!(
                "{at}.openapi.operations[{i}]: {g:?} is not a valid glob"
            ));
        }
    }
    if o.connection.is_some() && (o.base_url.is_some() || s.auth.is_some()) {
        p.push(format!(
            "{at}.openapi.connection: the connection gives the base URL and the credential; drop base_url and auth"
        ));
    }
}

impl McpServerConfig {
    /// Whether the upstream credential is the caller's own token (or made
    /// from it), so only a request of that caller can use it.
    pub fn uses_caller_token(&self) -> bool {
        caller_dependent(self.auth.as_ref())
    }
}

/// Credential modes that use the caller's own token.
fn caller_dependent(auth: Option<&UpstreamAuth>) -> bool {
    match auth {
        Some(UpstreamAuth::Passthrough) => true,
        Some(UpstreamAuth::TokenExchange { subject, .. }) => {
            *subject == super::credentials::SubjectSource::Caller
        }
        _ => false,
    }
}

fn check_name<'a>(at: &str, name: &'a str, names: &mut HashSet<&'a str>, p: &mut Vec<String>) {
    if !valid_name(name) {
        p.push(format!(
            "{at}.name: {name:?} must be 1-64 letters, digits, - or _"
        ));
    } else if !names.insert(name) {
        p.push(format!("{at}.name: duplicate mcp server {name:?}"));
    }
}

fn check_selection(at: &str, sel: &McpToolSelection, p: &mut Vec<String>) {
    for (i, g) in sel.include.iter().enumerate() {
        if globset::Glob::new(g).is_err() {
            p.push(format!("{at}.include[{i}]: {g:?} is not a valid glob"));
        }
    }
    for (tool, o) in &sel.overrides {
        if let Some(n) = &o.name {
            if n.is_empty() || n.len() > 128 {
                p.push(format!(
                    "{at}.overrides.{tool}.name: must be 1-128 characters"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(server: &str) -> Vec<String> {
        let cfg: McpConfig = serde_yaml_ng::from_str(&format!("servers:\n  - {server}\n")).unwrap();
        let mut p = Vec::new();
        validate_mcp(&cfg, &mut p);
        p
    }

    #[test]
    fn openapi_servers_are_checked() {
        assert!(problems(
            "{name: a, transport: openapi, openapi: {spec: a.yaml, operations: [get*]}}"
        )
        .is_empty());
        assert_eq!(
            problems("{name: a, transport: openapi}"),
            vec!["mcp.servers[0].openapi: required for transport openapi".to_string()]
        );
        assert_eq!(
            problems(
                "{name: a, transport: openapi, url: 'http://x', openapi: {spec: '', base_url: ftp://x, operations: ['[']}}"
            ),
            vec![
                "mcp.servers[0]: a transport openapi server takes openapi.spec, not url or command".to_string(),
                "mcp.servers[0].openapi.spec: must not be empty".into(),
                "mcp.servers[0].openapi.base_url: \"ftp://x\" must start with http:// or https://".into(),
                "mcp.servers[0].openapi.operations[0]: \"[\" is not a valid glob".into(),
            ]
        );
        assert_eq!(
            problems("{name: a, transport: stdio, command: x, openapi: {spec: a.yaml}}"),
            vec!["mcp.servers[0].openapi: only for transport openapi".to_string()]
        );
        assert_eq!(
            problems("{name: a, transport: openapi, auth: {type: bearer, token: t}, openapi: {spec: a.yaml, connection: crm}}"),
            vec!["mcp.servers[0].openapi.connection: the connection gives the base URL and the credential; drop base_url and auth".to_string()]
        );
        assert!(problems(
            "{name: a, transport: openapi, openapi: {spec: a.yaml, connection: crm}}"
        )
        .is_empty());
    }
}
