//! Prompt templates at run time: parsed once per config snapshot, rendered
//! into an ordinary chat request that then runs through the same pipeline
//! as `POST /v1/chat/completions` (see docs/prompts.md). Access is granted
//! like a model, to the name `prompt:{name}`, with the template's owning
//! tenant as a hard boundary.

use tollgate_config::template as render;
use tollgate_core::error::BuildError;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use tollgate_config::{PromptsConfig, VariableSpec, RESERVED_PARAMS};
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
    /// The labels this version carries (`name@production`).
    pub labels: Vec<String>,
    /// Declared variables: type and default.
    pub typed: BTreeMap<String, VariableSpec>,
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
        self.typecheck(&mut variables)?;
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

impl Template {
    /// Declared variables: a missing one takes its default; one of the
    /// wrong type is refused, all of them named in one sentence.
    fn typecheck(&self, variables: &mut Map<String, Value>) -> Result<(), InvalidRequest> {
        let mut wrong = Vec::new();
        for (name, spec) in &self.typed {
            match variables.get(name) {
                None => {
                    if let Some(d) = &spec.default {
                        variables.insert(name.clone(), d.clone());
                    }
                }
                Some(v) if !spec.kind.fits(v) => {
                    wrong.push(format!("{name} (expected {})", spec.kind.as_str()));
                }
                Some(_) => {}
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(InvalidRequest::new(
                format!("variables of the wrong type: {}", wrong.join(", ")),
                Some("variables"),
            ))
        }
    }
}

/// Which template a call names.
#[derive(Debug, Clone)]
pub struct PromptCall {
    pub name: String,
    /// `None`: the highest version (or the labelled one).
    pub version: Option<u32>,
    /// The version carrying this label (`name@production`).
    pub label: Option<String>,
}

impl PromptCall {
    /// `name`, `name@3` or `name@production` (the path's reference form).
    pub fn parse(reference: &str) -> Self {
        match reference.split_once('@') {
            Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Self {
                name: name.to_owned(),
                version: v.parse().ok(),
                label: None,
            },
            Some((name, label)) => Self {
                name: name.to_owned(),
                version: None,
                label: Some(label.to_owned()),
            },
            None => Self {
                name: reference.to_owned(),
                version: None,
                label: None,
            },
        }
    }

    /// How errors name the call: `name` or `name@label`.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(l) => format!("{}@{l}", self.name),
            None => self.name.clone(),
        }
    }
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
                labels: t.labels.clone(),
                typed: t.variables.clone(),
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
        match (&call.label, call.version) {
            (Some(l), _) => versions.iter().find(|t| t.labels.contains(l)),
            (None, None) => versions.last(),
            (None, Some(v)) => versions.iter().find(|t| t.version == v),
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
