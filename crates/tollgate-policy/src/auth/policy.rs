//! Access policy: which principals may use which models, and who is admin.
//! Deny by default. A rule applies to a principal matching ANY of its
//! selectors (subject, group, tenant, kind: `subject::Combine::Any`, exact
//! names), each selector being a grant on its own. A model is usable when its
//! owning tenant (if any) is the principal's tenant — a hard boundary no
//! grant crosses — and the API key's own `models` list allows it, or any
//! applying rule does.
//! Token (JWT) principals have no key grant: only rules grant them models.
//! A rule's `claims` conditions must all hold as well (on the verified
//! token's claims; an API key has none, so such a rule never applies to it).
//! Evaluation is in memory over the snapshot; no I/O.

use std::fmt::Write as _;
use tollgate_core::error::BuildError;

use serde_json::{Map, Value};

use super::{jwt, ModelGrant, Principal};
use crate::subject::{Combine, Names, Subject};
use tollgate_config::{ClaimCondition, PolicyConfig};

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    who: Subject,
    /// Whether any selector is listed (a rule of claims alone has none).
    selectors: bool,
    claims: Vec<ClaimCondition>,
    pub models: ModelGrant,
    /// MCP tools (`server/tool` globs) and the servers they name.
    pub tools: ModelGrant,
    tool_servers: ModelGrant,
    /// Routes and outbound connections granted (name globs).
    pub routes: ModelGrant,
    pub connections: ModelGrant,
    /// The methods its route and connection grants allow (upper case);
    /// empty: all.
    pub methods: Vec<String>,
    pub admin: bool,
    /// Databricks jobs granted (name globs).
    pub jobs: ModelGrant,
}

impl Rule {
    pub fn applies_to(&self, p: &Principal) -> bool {
        (!self.selectors || self.who.matches_principal(Combine::Any, p))
            && (self.claims.is_empty()
                || p.claims
                    .as_deref()
                    .is_some_and(|claims| self.claims.iter().all(|c| holds(c, claims))))
    }

    /// Does the rule's `methods` list allow `method` (upper case, as HTTP
    /// sends it; an empty list allows all)?
    fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// Whether one claim condition holds on a token's claims.
fn holds(c: &ClaimCondition, claims: &Map<String, Value>) -> bool {
    let Some(value) = jwt::claim(claims, &c.claim) else {
        return false;
    };
    if let Some(want) = &c.contains {
        return match value {
            Value::Array(items) => items.iter().any(|v| v.as_str() == Some(want.as_str())),
            Value::String(s) => s.split_whitespace().any(|w| w == want),
            _ => false,
        };
    }
    match (&c.equals, value) {
        (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Some(want), got) => want == got,
        (None, _) => false,
    }
}

#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// How a model came to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The API key's own `models` list.
    Key,
    /// A policy rule, by name.
    Rule(String),
}

/// Why a model is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Nothing grants it.
    NotGranted,
    /// The model belongs to another tenant (or the principal has none).
    TenantMismatch,
}

impl Denial {
    pub fn label(self) -> &'static str {
        match self {
            Denial::NotGranted => "not_granted",
            Denial::TenantMismatch => "tenant_mismatch",
        }
    }
}

impl Policy {
    /// Compiles a validated policy.
    pub fn build(cfg: &PolicyConfig) -> Result<Self, BuildError> {
        let rules = cfg
            .rules
            .iter()
            .map(|r| {
                let who = Subject {
                    principals: Names::exact(&r.principals),
                    groups: Names::exact(&r.groups),
                    tenants: Names::exact(&r.tenants),
                    kinds: r.kinds.clone(),
                    ..Subject::default()
                };
                Ok(Rule {
                    name: r.name.clone(),
                    who,
                    selectors: !(r.principals.is_empty()
                        && r.groups.is_empty()
                        && r.tenants.is_empty()
                        && r.kinds.is_empty()),
                    claims: r.claims.clone(),
                    models: ModelGrant::new(&r.models)
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                    tools: ModelGrant::new(&r.tools)
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                    tool_servers: ModelGrant::new(&tool_server_globs(&r.tools))
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                    routes: ModelGrant::new(&r.routes)
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                    connections: ModelGrant::new(&r.connections)
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                    methods: r.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    admin: r.admin,
                    jobs: ModelGrant::new(&r.jobs)
                        .map_err(|e| format!("policy rule {}: {e}", r.name))?,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Self { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules applying to one principal, evaluated once per request.
    pub fn evaluate<'a>(
        &'a self,
        principal: &'a Principal,
        key_grant: Option<&'a ModelGrant>,
    ) -> Access<'a> {
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(principal))
            .collect();
        Access {
            admin: rules.iter().any(|r| r.admin),
            principal,
            key_grant,
            rules,
        }
    }

    /// Whether the principal holds the admin grant (gates admin endpoints).
    pub fn is_admin(&self, principal: &Principal) -> bool {
        self.rules
            .iter()
            .any(|r| r.admin && r.applies_to(principal))
    }
}

/// One principal's standing under the policy.
pub struct Access<'a> {
    pub principal: &'a Principal,
    pub key_grant: Option<&'a ModelGrant>,
    pub rules: Vec<&'a Rule>,
    pub admin: bool,
}

impl Access<'_> {
    /// May the principal use `model`, owned by `owner` (its tenant, if any)?
    pub fn decide(&self, model: &str, owner: Option<&str>) -> Result<Grant, Denial> {
        if let Some(owner) = owner {
            if self.principal.tenant.as_deref() != Some(owner) {
                return Err(Denial::TenantMismatch);
            }
        }
        if self.key_grant.is_some_and(|g| g.allows(model)) {
            return Ok(Grant::Key);
        }
        self.rules
            .iter()
            .find(|r| r.models.allows(model))
            .map(|r| Grant::Rule(r.name.clone()))
            .ok_or(Denial::NotGranted)
    }

    pub fn allows(&self, model: &str, owner: Option<&str>) -> bool {
        self.decide(model, owner).is_ok()
    }

    /// May the principal call the MCP tool served as `server/tool` (the
    /// caller formats it once)? Tools are granted by policy rules only
    /// (`tools: [server/tool globs]`).
    pub fn decide_tool(&self, served_tool: &str) -> Result<Grant, Denial> {
        self.rules
            .iter()
            .find(|r| r.tools.allows(served_tool))
            .map(|r| Grant::Rule(r.name.clone()))
            .ok_or(Denial::NotGranted)
    }

    /// May the principal reach MCP server `server` at all: does any applying
    /// rule grant one of its tools (or could, by a glob)?
    pub fn reaches_server(&self, server: &str) -> bool {
        self.rules.iter().any(|r| r.tool_servers.allows(server))
    }

    /// May the principal call route `route` with `method`? Routes are
    /// granted by policy rules only (`routes: [name globs]`, within the
    /// rule's `methods` when it lists any), like tools.
    pub fn decide_route(&self, route: &str, method: &str) -> Result<Grant, Denial> {
        self.rules
            .iter()
            .find(|r| r.routes.allows(route) && r.allows_method(method))
            .map(|r| Grant::Rule(r.name.clone()))
            .ok_or(Denial::NotGranted)
    }

    /// May the principal use outbound connection `conn` with `method`?
    /// Granted by policy rules only (`connections: [name globs]`, within
    /// the rule's `methods`).
    pub fn decide_connection(&self, conn: &str, method: &str) -> Result<Grant, Denial> {
        self.rules
            .iter()
            .find(|r| r.connections.allows(conn) && r.allows_method(method))
            .map(|r| Grant::Rule(r.name.clone()))
            .ok_or(Denial::NotGranted)
    }

    /// May the principal trigger, poll and cancel runs of job `job`?
    /// Granted by policy rules only (`jobs: [name globs]`).
    pub fn decide_job(&self, job: &str) -> Result<Grant, Denial> {
        self.rules
            .iter()
            .find(|r| r.jobs.allows(job))
            .map(|r| Grant::Rule(r.name.clone()))
            .ok_or(Denial::NotGranted)
    }

    pub fn rule_names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.name.clone()).collect()
    }
}

/// The server part of each `server/tool` glob (a glob without `/`, such as
/// `*`, may match any server).
fn tool_server_globs(tools: &[String]) -> Vec<String> {
    tools
        .iter()
        .map(|t| t.split_once('/').map_or(t.as_str(), |(s, _)| s).to_string())
        .collect()
}

/// `groups: a, b; tenant: acme; kind: user` — for denial messages and logs.
pub fn describe(p: &Principal) -> String {
    let mut out = String::new();
    let groups = if p.groups.is_empty() {
        "none".to_string()
    } else {
        p.groups.join(", ")
    };
    let _ = write!(
        out,
        "groups: {groups}; tenant: {}; kind: {}",
        p.tenant.as_deref().unwrap_or("none"),
        p.kind.as_str()
    );
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::AuthMethod;
    use tollgate_config::{PolicyRule, PrincipalKind};

    fn principal(sub: &str, groups: &[&str], tenant: Option<&str>) -> Principal {
        Principal {
            subject: sub.into(),
            kind: PrincipalKind::User,
            groups: groups
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            tenant: tenant.map(Arc::from),
            key_id: None,
            issuer: Some("https://idp".into()),
            method: AuthMethod::Jwt,
            claims: None,
        }
    }

    fn rule(name: &str, f: impl FnOnce(&mut PolicyRule)) -> PolicyRule {
        let mut r = PolicyRule {
            name: name.into(),
            principals: vec![],
            groups: vec![],
            tenants: vec![],
            kinds: vec![],
            models: vec![],
            tools: vec![],
            routes: vec![],
            connections: vec![],
            methods: vec![],
            admin: false,
            claims: vec![],
            jobs: vec![],
        };
        f(&mut r);
        r
    }

    fn policy() -> Policy {
        Policy::build(&PolicyConfig {
            rules: vec![
                rule("eng", |r| {
                    r.groups = vec!["eng".into()];
                    r.models = vec!["chat-*".into()];
                }),
                rule("acme", |r| {
                    r.tenants = vec!["acme".into()];
                    r.models = vec!["acme-*".into()];
                }),
                rule("ops-admin", |r| {
                    r.principals = vec!["root".into()];
                    r.groups = vec!["ops".into()];
                    r.admin = true;
                }),
                rule("services", |r| {
                    r.kinds = vec![PrincipalKind::Service];
                    r.models = vec!["embed".into()];
                }),
            ],
        })
        .unwrap()
    }

    #[test]
    fn deny_by_default_and_any_selector() {
        let pol = policy();
        let nobody = principal("x", &[], None);
        let a = pol.evaluate(&nobody, None);
        assert!(a.rules.is_empty() && !a.admin);
        assert_eq!(a.decide("chat-1", None), Err(Denial::NotGranted));

        let eng = principal("alice", &["eng"], None);
        let a = pol.evaluate(&eng, None);
        assert_eq!(a.decide("chat-1", None), Ok(Grant::Rule("eng".into())));
        assert_eq!(a.decide("acme-chat", None), Err(Denial::NotGranted));
        assert!(!a.admin);

        let acme_eng = principal("bob", &["eng"], Some("acme"));
        let a = pol.evaluate(&acme_eng, None);
        assert!(a.allows("acme-chat", Some("acme")));
        assert!(a.allows("chat-1", None));
        assert_eq!(a.rule_names(), ["eng", "acme"]);
    }

    #[test]
    fn tenant_boundary_beats_grants() {
        let pol = policy();
        let everything = ModelGrant::new(&["*".into()]).unwrap();
        let globex = principal("k", &[], Some("globex"));
        let a = pol.evaluate(&globex, Some(&everything));
        assert_eq!(
            a.decide("acme-chat", Some("acme")),
            Err(Denial::TenantMismatch)
        );
        assert_eq!(a.decide("shared", None), Ok(Grant::Key));
        let untenanted = principal("k", &[], None);
        let a = pol.evaluate(&untenanted, Some(&everything));
        assert_eq!(
            a.decide("acme-chat", Some("acme")),
            Err(Denial::TenantMismatch)
        );
    }

    #[test]
    fn admin_grant() {
        let pol = policy();
        assert!(pol.is_admin(&principal("root", &[], None)));
        assert!(pol.is_admin(&principal("x", &["ops"], None)));
        assert!(!pol.is_admin(&principal("x", &["eng"], Some("acme"))));
        let root = principal("root", &[], None);
        assert!(pol.evaluate(&root, None).admin);
        let mut svc = principal("svc", &[], None);
        svc.kind = PrincipalKind::Service;
        assert!(pol.evaluate(&svc, None).allows("embed", None));
        assert!(!pol.is_admin(&svc));
    }

    #[test]
    fn a_rule_grants_its_routes_and_connections_only_with_its_methods() {
        let pol = Policy::build(&PolicyConfig {
            rules: vec![
                rule("read", |r| {
                    r.groups = vec!["eng".into()];
                    r.routes = vec!["fraud".into()];
                    r.connections = vec!["crm".into()];
                    r.methods = vec!["get".into(), "HEAD".into()];
                }),
                rule("write", |r| {
                    r.groups = vec!["ops".into()];
                    r.routes = vec!["fraud".into()];
                }),
            ],
        })
        .unwrap();
        let eng = principal("a", &["eng"], None);
        let a = pol.evaluate(&eng, None);
        assert_eq!(
            a.decide_route("fraud", "GET"),
            Ok(Grant::Rule("read".into()))
        );
        assert!(a.decide_route("fraud", "HEAD").is_ok());
        assert_eq!(a.decide_route("fraud", "POST"), Err(Denial::NotGranted));
        assert!(a.decide_connection("crm", "GET").is_ok());
        assert!(a.decide_connection("crm", "DELETE").is_err());
        let both = principal("b", &["eng", "ops"], None);
        let a = pol.evaluate(&both, None);
        assert_eq!(
            a.decide_route("fraud", "POST"),
            Ok(Grant::Rule("write".into()))
        );
    }

    #[test]
    fn describes_principal() {
        let p = principal("a", &["x", "y"], Some("t"));
        assert_eq!(describe(&p), "groups: x, y; tenant: t; kind: user");
    }
}
