//! The servers the gateway serves at `/mcp/{name}`, built from the config:
//! each upstream server on its own (unless `expose: false`) and each
//! virtual server, as a list of members (an upstream with a name prefix and
//! a tool selection). Names map both ways: an upstream tool `query` of a
//! member with prefix `warehouse`, renamed `run_sql`, is served as
//! `warehouse__run_sql`, and a call to that name goes to `query`. A call is
//! resolved by this mapping alone (never by a header), so a tool outside
//! the selection cannot be reached by guessing its name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tollgate_config::{McpConfig, McpToolOverride, McpToolSelection};

use crate::session::{Sealer, SessionError};
use crate::upstream::{Upstream, UpstreamError};
use crate::wire::Tool;

/// Joins a member's prefix and a tool or prompt name.
pub const SEPARATOR: &str = "__";

/// One upstream's part in a served server.
pub struct Member {
    pub upstream: Arc<Upstream>,
    pub prefix: String,
    include: Option<GlobSet>,
    overrides: BTreeMap<String, McpToolOverride>,
    /// Served local name → upstream name, for renamed tools.
    renamed: HashMap<String, String>,
    /// The tools last listed, as served (`listing.rs`).
    pub(crate) listed: arc_swap::ArcSwapOption<crate::listing::ListedTools>,
}

impl Member {
    fn new(
        upstream: Arc<Upstream>,
        prefix: String,
        sel: &McpToolSelection,
    ) -> Result<Self, globset::Error> {
        let include = if sel.include.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for g in &sel.include {
                b.add(Glob::new(g)?);
            }
            Some(b.build()?)
        };
        let renamed = sel
            .overrides
            .iter()
            .filter_map(|(orig, o)| o.name.clone().map(|n| (n, orig.clone())))
            .collect();
        Ok(Self {
            upstream,
            prefix,
            include,
            overrides: sel.overrides.clone(),
            renamed,
            listed: Default::default(),
        })
    }

    fn included(&self, upstream_name: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|set| set.is_match(upstream_name))
    }

    /// `name` with this member's prefix.
    pub fn served_name(&self, local: &str) -> String {
        if self.prefix.is_empty() {
            local.to_string()
        } else {
            format!("{}{SEPARATOR}{local}", self.prefix)
        }
    }

    /// The name without this member's prefix, if it carries it.
    pub fn local_name<'a>(&self, served: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(served);
        }
        served
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(SEPARATOR))
    }

    /// An upstream tool as this member serves it, or `None` when the
    /// selection leaves it out.
    pub fn expose(&self, mut tool: Tool) -> Option<Tool> {
        if !self.included(&tool.name) {
            return None;
        }
        let local = match self.overrides.get(&tool.name) {
            Some(o) => {
                if let Some(d) = &o.description {
                    tool.description = Some(d.clone());
                }
                o.name.clone().unwrap_or_else(|| tool.name.clone())
            }
            None => tool.name.clone(),
        };
        tool.name = self.served_name(&local);
        Some(tool)
    }

    /// The upstream name of a served tool name, if this member serves it.
    pub fn resolve(&self, served: &str) -> Option<String> {
        let local = self.local_name(served)?;
        let upstream = match self.renamed.get(local) {
            Some(orig) => orig.clone(),
            // A tool renamed away is not reachable by its old name.
            None if self.overrides.get(local).is_some_and(|o| o.name.is_some()) => return None,
            None => local.to_string(),
        };
        self.included(&upstream).then_some(upstream)
    }
}

/// A server as served at `/mcp/{name}`.
pub struct Served {
    pub name: String,
    pub members: Vec<Member>,
}

impl Served {
    /// The member serving tool `name` and the tool's upstream name.
    pub fn resolve_tool(&self, name: &str) -> Option<(&Member, String)> {
        self.members
            .iter()
            .find_map(|m| m.resolve(name).map(|up| (m, up)))
    }

    /// The member whose prefix `name` (a prompt) carries, and the local name.
    pub fn resolve_prompt<'a>(&self, name: &'a str) -> Option<(&Member, &'a str)> {
        self.members
            .iter()
            .find_map(|m| m.local_name(name).map(|local| (m, local)))
    }
}

/// Everything MCP in one config snapshot.
pub struct Catalog {
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub served: HashMap<String, Arc<Served>>,
    pub sealer: Arc<Sealer>,
    secret: Option<String>,
    pub session_ttl_ms: i64,
    pub max_message_bytes: usize,
    pub public_url: Option<String>,
    /// Served `server/tool` names whose calls wait for an operator.
    approval: GlobSet,
    pub approval_timeout: std::time::Duration,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("served", &self.served.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("mcp server {server}: {detail}")]
    Selection { server: String, detail: String },
}

impl Catalog {
    /// Builds the snapshot's catalog; upstreams whose config did not change
    /// are taken over from `previous` (a stdio process keeps running), and
    /// so is the session key when the secret did not change (sessions
    /// survive a reload). New HTTP upstreams call out under `egress`.
    pub fn build(
        cfg: &McpConfig,
        previous: Option<&Catalog>,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, CatalogError> {
        let mut upstreams = HashMap::new();
        for s in &cfg.servers {
            let reused = previous
                .and_then(|p| p.upstreams.get(&s.name))
                .filter(|u| u.config() == s)
                .cloned();
            let up = match reused {
                Some(u) => {
                    u.reload();
                    u
                }
                None => Arc::new(Upstream::build(s, cfg.max_message_bytes, egress)?),
            };
            upstreams.insert(s.name.clone(), up);
        }
        let mut served = HashMap::new();
        let selection_error = |server: &str, detail: String| CatalogError::Selection {
            server: server.to_string(),
            detail,
        };
        for s in cfg.servers.iter().filter(|s| s.expose) {
            let Some(up) = upstreams.get(&s.name) else {
                continue;
            };
            let member = Member::new(up.clone(), String::new(), &s.tools)
                .map_err(|e| selection_error(&s.name, e.to_string()))?;
            served.insert(
                s.name.clone(),
                Arc::new(Served {
                    name: s.name.clone(),
                    members: vec![member],
                }),
            );
        }
        for v in &cfg.virtual_servers {
            let mut members = Vec::new();
            for m in &v.servers {
                let Some(up) = upstreams.get(&m.server) else {
                    continue;
                };
                let prefix = m.prefix.clone().unwrap_or_else(|| m.server.clone());
                members.push(
                    Member::new(up.clone(), prefix, &m.tools)
                        .map_err(|e| selection_error(&v.name, e.to_string()))?,
                );
            }
            served.insert(
                v.name.clone(),
                Arc::new(Served {
                    name: v.name.clone(),
                    members,
                }),
            );
        }
        let secret = cfg.session_secret.as_ref().map(|s| s.expose().to_string());
        let sealer = match previous {
            Some(p) if p.secret == secret => p.sealer.clone(),
            _ => Arc::new(Sealer::new(secret.as_deref())?),
        };
        let mut approval = GlobSetBuilder::new();
        for g in &cfg.approval.tools {
            approval.add(Glob::new(g).map_err(|e| selection_error("approval", e.to_string()))?);
        }
        Ok(Self {
            approval: approval
                .build()
                .map_err(|e| selection_error("approval", e.to_string()))?,
            approval_timeout: cfg.approval.timeout,
            upstreams,
            served,
            sealer,
            secret,
            session_ttl_ms: i64::try_from(cfg.session_ttl.as_millis()).unwrap_or(i64::MAX),
            max_message_bytes: cfg.max_message_bytes,
            public_url: cfg.public_url.clone(),
        })
    }

    /// Whether a call of `server/tool` (as served) waits for an operator.
    pub fn needs_approval(&self, tool: &str) -> bool {
        self.approval.is_match(tool)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Served>> {
        self.served.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.served.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tollgate_config::{McpServerConfig, McpTransport};

    pub(crate) fn member(prefix: &str, sel: McpToolSelection) -> Member {
        let cfg = McpServerConfig {
            name: "wh".into(),
            transport: McpTransport::StreamableHttp,
            url: Some("http://127.0.0.1:1/mcp".into()),
            command: None,
            args: vec![],
            env: Default::default(),
            cwd: None,
            auth: None,
            headers: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            expose: true,
            tools: Default::default(),
            pin_tools: true,
            openapi: None,
        };
        Member::new(
            Arc::new(Upstream::build(&cfg, 1024, &Default::default()).unwrap()),
            prefix.into(),
            &sel,
        )
        .unwrap()
    }

    fn tool(name: &str) -> Tool {
        serde_json::from_value(serde_json::json!({"name": name, "inputSchema": {}})).unwrap()
    }

    #[test]
    fn prefixes_renames_and_selects_both_ways() {
        let mut sel = McpToolSelection {
            include: vec!["query".into(), "list_*".into()],
            ..Default::default()
        };
        sel.overrides.insert(
            "query".into(),
            McpToolOverride {
                name: Some("run_sql".into()),
                description: Some("Run SQL".into()),
            },
        );
        let m = member("warehouse", sel);
        let t = m.expose(tool("query")).unwrap();
        assert_eq!(t.name, "warehouse__run_sql");
        assert_eq!(t.description.as_deref(), Some("Run SQL"));
        assert_eq!(
            m.expose(tool("list_tables")).unwrap().name,
            "warehouse__list_tables"
        );
        assert!(m.expose(tool("drop_table")).is_none());
        assert_eq!(m.resolve("warehouse__run_sql").as_deref(), Some("query"));
        assert_eq!(
            m.resolve("warehouse__list_tables").as_deref(),
            Some("list_tables")
        );
        assert_eq!(m.resolve("warehouse__query"), None, "renamed away");
        assert_eq!(m.resolve("warehouse__drop_table"), None, "not selected");
        assert_eq!(m.resolve("run_sql"), None, "prefix required");
        assert_eq!(m.resolve("other__run_sql"), None);
    }

    #[tokio::test]
    async fn no_prefix_serves_names_as_they_are() {
        let m = member("", McpToolSelection::default());
        assert_eq!(m.expose(tool("add")).unwrap().name, "add");
        assert_eq!(m.resolve("add").as_deref(), Some("add"));
    }
}
