//! The runtime form of the config: everything a request needs, prepared up
//! front and swapped in one atomic step (`arc-swap`). Startup and reload
//! build it the same way; a provider whose config did not change keeps its
//! client (and so its warm connection pool) across a reload.

use std::collections::HashMap;
use std::sync::Arc;
use tollgate_core::error::BuildError;

use tollgate_config::{Config, Endpoint, Price, PrincipalKind, ProviderConfig};
use tollgate_llm::providers::{self, Provider};
use tollgate_policy::auth::jwks::JwksCache;
use tollgate_policy::auth::{
    parse_hash, AuthMethod, Credentials, Issuers, KeyEntry, KeyIndex, ModelGrant, OidcIssuer,
    Policy, Principal,
};
use tollgate_policy::routing;

/// A virtual model over this snapshot's model routes.
pub type VirtualModel = routing::VirtualModel<ModelRoute>;
use tollgate_record::store::StoredKey;

/// A model callers may name, bound to its provider.
pub struct ModelRoute {
    pub name: String,
    pub provider_name: String,
    pub provider: Arc<dyn Provider>,
    pub upstream_model: String,
    pub endpoints: Option<Vec<Endpoint>>,
    pub price: Price,
    /// Owning tenant: only its principals may use the model.
    pub tenant: Option<String>,
    /// The provider's total timeout: the request's deadline.
    pub total_timeout: std::time::Duration,
    /// `provider/upstream_model`, sent as `x-tollgate-resolved-model`.
    pub resolved: http::HeaderValue,
}

impl routing::Route for ModelRoute {
    fn name(&self) -> &str {
        &self.name
    }
}

impl ModelRoute {
    pub fn serves(&self, endpoint: Endpoint) -> bool {
        self.provider.accepts(endpoint)
            && self
                .endpoints
                .as_ref()
                .is_none_or(|e| e.contains(&endpoint))
    }

    pub fn cost(&self, prompt: i64, completion: i64) -> f64 {
        (prompt as f64 * self.price.input_per_mtok + completion as f64 * self.price.output_per_mtok)
            / 1_000_000.0
    }
}

/// What a requested model name resolves to.
#[derive(Clone)]
pub enum Resolved {
    Model(Arc<ModelRoute>),
    Virtual(Arc<VirtualModel>),
}

pub struct Snapshot {
    pub config: Config,
    pub models: HashMap<String, Arc<ModelRoute>>,
    pub virtual_models: HashMap<String, Arc<VirtualModel>>,
    /// Model and virtual model names in config order, for `GET /v1/models`.
    pub model_order: Vec<String>,
    pub keys: KeyIndex,
    /// OIDC issuers whose tokens are accepted; their key caches outlive reloads.
    pub issuers: Issuers,
    pub policy: Policy,
    pub guards: tollgate_policy::guard::Guards,
    /// Response-cache opt-ins by model and virtual model name.
    pub cache_rules: HashMap<String, tollgate_config::CacheRule>,
    /// Prompt templates by name and version.
    pub templates: tollgate_policy::prompts::Templates,
    /// Rate limits, quotas, budgets; counters carried over from `previous`.
    pub limits: Arc<tollgate_policy::limits::Limits>,
    /// MCP servers served at `/mcp/{name}`; upstreams carried over from `previous`.
    pub mcp: Arc<tollgate_mcp::Catalog>,
    /// This gateway's egress policy: created by its first snapshot, shared
    /// by every later one and by every outbound client they built; `build`
    /// swaps the `egress:` section in as its last step.
    pub egress: tollgate_net::Egress,
    /// Routes and outbound connections; unchanged ones carried over from `previous`.
    pub forward: Arc<crate::pipeline::forward::Table>,
    /// Databricks jobs callers may run; unchanged ones carried over from `previous`.
    pub jobs: Arc<crate::pipeline::jobs::Table>,
    providers: HashMap<String, (ProviderConfig, Arc<dyn Provider>)>,
}

impl Snapshot {
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        if let Some(m) = self.models.get(name) {
            return Some(Resolved::Model(m.clone()));
        }
        self.virtual_models
            .get(name)
            .map(|v| Resolved::Virtual(v.clone()))
    }

    /// The owning tenant of a model (virtual models have none).
    pub fn tenant_of(&self, name: &str) -> Option<&str> {
        self.models.get(name).and_then(|m| m.tenant.as_deref())
    }

    /// The provider that owns a listed name (a virtual model's is `virtual`).
    pub fn owner_of(&self, name: &str) -> Option<&str> {
        match self.models.get(name) {
            Some(m) => Some(&m.provider_name),
            None => self.virtual_models.get(name).map(|_| "virtual"),
        }
    }

    /// Builds the runtime form of an already validated config.
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Result<Self, BuildError> {
        let egress = previous.map(|s| s.egress.clone()).unwrap_or_default();
        let egress_policy = tollgate_net::Egress::prepare(config.egress.as_ref())?;
        let mut providers = HashMap::new();
        for p in &config.providers {
            let reused = previous
                .and_then(|s| s.providers.get(&p.name))
                .filter(|(old_cfg, _)| old_cfg == p)
                .map(|(_, prov)| prov.clone());
            let prov = match reused {
                Some(prov) => {
                    prov.reload();
                    prov
                }
                None => providers::build(p, &egress)?,
            };
            providers.insert(p.name.clone(), (p.clone(), prov));
        }
        let mut models = HashMap::new();
        let mut model_order = Vec::new();
        for m in &config.models {
            let (provider_cfg, provider) = providers
                .get(&m.provider)
                .ok_or_else(|| format!("model {}: unknown provider {}", m.name, m.provider))?;
            let upstream_model = m.upstream_model.clone().unwrap_or_else(|| m.name.clone());
            let resolved =
                http::HeaderValue::from_str(&format!("{}/{}", m.provider, upstream_model))
                    .map_err(|_| format!("model {}: name is not a valid header value", m.name))?;
            models.insert(
                m.name.clone(),
                Arc::new(ModelRoute {
                    name: m.name.clone(),
                    provider_name: m.provider.clone(),
                    provider: provider.clone(),
                    upstream_model,
                    endpoints: m.endpoints.clone(),
                    price: m.price.unwrap_or_default(),
                    tenant: m.tenant.clone(),
                    total_timeout: provider_cfg.timeouts.total,
                    resolved,
                }),
            );
            model_order.push(m.name.clone());
        }
        let mut virtual_models = HashMap::new();
        for vm in &config.virtual_models {
            let previous = previous.and_then(|s| s.virtual_models.get(&vm.name));
            let built =
                VirtualModel::build(vm, |name| models.get(name).cloned(), previous.map(|p| &**p))?;
            virtual_models.insert(vm.name.clone(), Arc::new(built));
            model_order.push(vm.name.clone());
        }
        let mut keys = KeyIndex::default();
        for k in &config.keys {
            let hash = parse_hash(&k.hash).ok_or_else(|| format!("key {}: bad hash", k.id))?;
            let models = ModelGrant::new(&k.models).map_err(|e| format!("key {}: {e}", k.id))?;
            keys.insert(
                hash,
                KeyEntry {
                    principal: Arc::new(Principal {
                        subject: k.principal.as_str().into(),
                        kind: k.kind,
                        groups: k.groups.clone().into(),
                        tenant: k.tenant.as_deref().map(Arc::from),
                        key_id: Some(k.id.as_str().into()),
                        issuer: None,
                        method: AuthMethod::ApiKey,
                        claims: None,
                    }),
                    models,
                    expires_ms: k.expires.map(|e| e.unix_ms),
                },
            );
        }
        let mut issuers = Issuers::default();
        for o in &config.auth.oidc {
            let source = OidcIssuer::source(o);
            let reused = previous.and_then(|s| {
                s.issuers
                    .all()
                    .iter()
                    .find(|i| i.jwks.source == source)
                    .map(|i| i.jwks.clone())
            });
            let jwks = match reused {
                Some(c) => c,
                None => Arc::new(JwksCache::new(source, &egress)?),
            };
            issuers
                .insert(OidcIssuer::new(o, jwks).map_err(|e| format!("issuer {}: {e}", o.issuer))?);
        }
        let policy = Policy::build(&config.policy)?;
        let guards = tollgate_policy::guard::Guards::build(&config.guardrails, &egress)?;
        let cache_rules = config
            .models
            .iter()
            .map(|m| (&m.name, &m.cache))
            .chain(config.virtual_models.iter().map(|v| (&v.name, &v.cache)))
            .filter_map(|(name, rule)| rule.clone().map(|r| (name.clone(), r)))
            .collect();
        let templates = tollgate_policy::prompts::Templates::build(&config.prompts)?;
        let limits = Arc::new(tollgate_policy::limits::Limits::build_with_egress(
            &config.limits,
            previous.map(|s| &*s.limits),
            Some(&egress),
        )?);
        let mcp = Arc::new(
            tollgate_mcp::Catalog::build(&config.mcp, previous.map(|s| &*s.mcp), &egress)
                .map_err(|e| e.to_string())?,
        );
        let forward = Arc::new(crate::pipeline::forward::Table::build(
            &config.routes,
            &config.connections,
            previous.map(|s| &*s.forward),
            &egress,
        )?);
        let jobs = Arc::new(crate::pipeline::jobs::Table::build(
            &config.jobs,
            previous.map(|s| &*s.jobs),
            &egress,
        )?);
        // Last, so a config that fails to build leaves the running policy.
        egress.apply(egress_policy)?;
        Ok(Self {
            mcp,
            egress,
            forward,
            jobs,
            config,
            models,
            virtual_models,
            model_order,
            keys,
            issuers,
            policy,
            guards,
            cache_rules,
            templates,
            limits,
            providers,
        })
    }

    /// What authentication reads, with the store's keys alongside.
    pub fn credentials<'a>(&'a self, store_keys: &'a KeyIndex) -> Credentials<'a> {
        Credentials {
            config_keys: &self.keys,
            store_keys,
            issuers: &self.issuers,
        }
    }

    /// Configured models with their owning tenant, in listing order.
    pub fn models_with_owner(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.model_order.iter().filter_map(|name| {
            self.models
                .get(name)
                .map(|m| (m.name.as_str(), m.tenant.as_deref()))
        })
    }
}

/// The index of keys managed in the store (revoked ones left out).
pub fn store_key_index(stored: &[StoredKey]) -> KeyIndex {
    let mut index = KeyIndex::default();
    for k in stored.iter().filter(|k| k.revoked_ms.is_none()) {
        // Expired keys stay in the index so callers learn why they fail.
        let (Some(hash), Ok(models)) = (parse_hash(&k.hash), ModelGrant::new(&k.models)) else {
            tracing::warn!(key_id = %k.id, "stored key is malformed; skipped");
            continue;
        };
        let kind = if k.kind == "service" {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        index.insert(
            hash,
            KeyEntry {
                principal: Arc::new(Principal {
                    subject: k.principal.as_str().into(),
                    kind,
                    groups: k.groups.clone().into(),
                    tenant: k.tenant.as_deref().map(Arc::from),
                    key_id: Some(k.id.as_str().into()),
                    issuer: None,
                    method: AuthMethod::ApiKey,
                    claims: None,
                }),
                models,
                expires_ms: k.expires_ms,
            },
        );
    }
    index
}
