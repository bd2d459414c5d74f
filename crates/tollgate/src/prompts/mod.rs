//! Prompt templates at run time: parsed once per config snapshot, rendered
//! into an ordinary chat request that then runs through the same pipeline
//! as `POST /v1/chat/completions` (see docs/prompts.md). Access is granted
//! like a model, to the name `prompt:{name}`, with the template's owning
//! tenant as a hard boundary.

mod render;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::api::error::ApiError;
use crate::config::{PromptsConfig, RESERVED_PARAMS};

pub use render::{parse, Segment};

/// One version of one template.
#[derive(Debug)]
pub struct Template {
    pub name: String,
    pub version: u32,
    pub model: String,
    pub tenant: Option<String>,
    pub description: Option<String>,
    /// Every `{{variable}}` the messages use.
    pub variables: BTreeSet<String>,
    messages: Vec<(String, Vec<Segment>)>,
    params: Map<String, Value>,
}

impl Template {
    /// The name policies grant: `prompt:{name}`.
    pub fn grant_name(&self) -> String {
        format!("prompt:{}", self.name)
    }

    /// Renders a call's body (`{"variables":{…}, "stream":…, overrides…}`)
    /// into a chat request body for the template's model.
    pub fn expand(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let call = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => o,
                Ok(_) => {
                    return Err(ApiError::bad_request(
                        "request body must be a JSON object",
                        None,
                    ))
                }
                Err(e) => {
                    return Err(ApiError::bad_request(
                        format!("request body is not valid JSON: {e}"),
                        None,
                    ))
                }
            }
        };
        let mut out = self.params.clone();
        let mut variables = Map::new();
        for (k, v) in call {
            match k.as_str() {
                "variables" => match v {
                    Value::Object(o) => variables = o,
                    Value::Null => {}
                    _ => {
                        return Err(ApiError::bad_request(
                            "`variables` must be an object",
                            Some("variables"),
                        ))
                    }
                },
                k if RESERVED_PARAMS.contains(&k) => {
                    return Err(ApiError::bad_request(
                        format!("`{k}` is set by the template and cannot be overridden"),
                        None,
                    ))
                }
                _ => {
                    out.insert(k, v);
                }
            }
        }
        render::check(&self.variables, &variables)
            .map_err(|m| ApiError::bad_request(m, Some("variables")))?;
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|(role, segs)| {
                serde_json::json!({"role": role, "content": render::render(segs, &variables)})
            })
            .collect();
        out.insert("model".into(), Value::String(self.model.clone()));
        out.insert("messages".into(), Value::Array(messages));
        serde_json::to_vec(&Value::Object(out)).map_err(|_| ApiError::Internal)
    }
}

/// Which template a call names.
#[derive(Debug, Clone)]
pub struct PromptCall {
    pub name: String,
    /// `None`: the highest version.
    pub version: Option<u32>,
}

/// Every template of a snapshot, by name, versions ascending.
#[derive(Debug, Default)]
pub struct Templates {
    by_name: HashMap<String, Vec<Arc<Template>>>,
    /// Names in config order, for listings.
    order: Vec<String>,
}

impl Templates {
    pub fn build(cfg: &PromptsConfig) -> Result<Self, String> {
        let mut out = Templates::default();
        for t in &cfg.templates {
            let mut messages = Vec::new();
            for m in &t.messages {
                let segs = parse(&m.content).map_err(|e| format!("template {}: {e}", t.name))?;
                messages.push((m.role.clone(), segs));
            }
            let variables = render::variables(messages.iter().map(|(_, s)| s.as_slice()));
            let template = Arc::new(Template {
                name: t.name.clone(),
                version: t.version,
                model: t.model.clone(),
                tenant: t.tenant.clone(),
                description: t.description.clone(),
                variables,
                messages,
                params: t.params.clone(),
            });
            let versions = out.by_name.entry(t.name.clone()).or_insert_with(|| {
                out.order.push(t.name.clone());
                Vec::new()
            });
            versions.push(template);
            versions.sort_by_key(|t| t.version);
        }
        Ok(out)
    }

    pub fn get(&self, call: &PromptCall) -> Option<&Arc<Template>> {
        let versions = self.by_name.get(&call.name)?;
        match call.version {
            None => versions.last(),
            Some(v) => versions.iter().find(|t| t.version == v),
        }
    }

    /// Every template version, names in config order, versions ascending.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<Template>, bool)> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .flat_map(|vs| {
                let latest = vs.last().map(|t| t.version);
                vs.iter().map(move |t| (t, Some(t.version) == latest))
            })
    }
}

/// Phase 2 of a template call: the template (404), its access (403, granted
/// like a model named `prompt:NAME`, the template's tenant a hard
/// boundary), then the rendered chat body and the (name, version) called.
pub fn expand_call(
    snap: &crate::snapshot::Snapshot,
    identity: &crate::auth::Identity,
    call: &PromptCall,
    body: &[u8],
) -> Result<(bytes::Bytes, (String, u32)), ApiError> {
    let template = snap
        .templates
        .get(call)
        .ok_or_else(|| ApiError::PromptNotFound {
            name: call.name.clone(),
            version: call.version,
        })?;
    let access = snap
        .policy
        .evaluate(&identity.principal, identity.key_grant());
    let grant = template.grant_name();
    if let Err(denial) = access.decide(&grant, template.tenant.as_deref()) {
        return Err(ApiError::forbidden(&grant, &identity.principal, denial));
    }
    let rendered = template.expand(body)?;
    Ok((
        bytes::Bytes::from(rendered),
        (template.name.clone(), template.version),
    ))
}
