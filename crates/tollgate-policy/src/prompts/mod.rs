//! Prompt templates at run time: parsed once per config snapshot, rendered
//! into an ordinary chat request that then runs through the same pipeline
//! as `POST /v1/chat/completions` (see docs/prompts.md). Access is granted
//! like a model, to the name `prompt:{name}`, with the template's owning
//! tenant as a hard boundary.

use tollgate_config::template as render;
use tollgate_core::error::BuildError;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use tollgate_config::{PromptsConfig, RESERVED_PARAMS};
use tollgate_core::error::InvalidRequest;

pub use tollgate_config::template::{parse, Segment};

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
    /// into a chat request body (a JSON object) for the template's model.
    pub fn expand(&self, body: &[u8]) -> Result<Map<String, Value>, InvalidRequest> {
        let call = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(o)) => o,
                Ok(_) => {
                    return Err(InvalidRequest::new(
                        "request body must be a JSON object",
                        None,
                    ))
                }
                Err(e) => {
                    return Err(InvalidRequest::new(
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
                        return Err(InvalidRequest::new(
                            "`variables` must be an object",
                            Some("variables"),
                        ))
                    }
                },
                k if RESERVED_PARAMS.contains(&k) => {
                    return Err(InvalidRequest::new(
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
            .map_err(|m| InvalidRequest::new(m.to_string(), Some("variables")))?;
        let messages: Vec<Value> = self
            .messages
            .iter()
            .map(|(role, segs)| {
                serde_json::json!({"role": role, "content": render::render(segs, &variables)})
            })
            .collect();
        out.insert("model".into(), Value::String(self.model.clone()));
        out.insert("messages".into(), Value::Array(messages));
        Ok(out)
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
    pub fn build(cfg: &PromptsConfig) -> Result<Self, BuildError> {
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
