//! Prompt templates: named, versioned chat prompts with `{{variables}}`,
//! defined under `prompts.templates` and/or in YAML files in `prompts.dir`.
//! See docs/prompts.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::Config;
use super::ConfigError;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptsConfig {
    /// A folder of `*.yaml` / `*.yml` files, each one template or a list of
    /// them; relative to the config file. Re-read on every reload.
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Called as `POST /v1/prompts/{name}/completions`; granted like a
    /// model named `prompt:{name}`.
    pub name: String,
    /// Versions of one name are numbered; the highest is the default.
    #[serde(default = "default_version")]
    pub version: u32,
    /// A model or virtual model name.
    pub model: String,
    /// Chat messages; `content` may hold `{{variable}}` placeholders.
    pub messages: Vec<TemplateMessage>,
    /// Default request parameters (`temperature`, `max_tokens`, …); the
    /// caller's overrides win.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Owning tenant: only its principals may call the template.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Labels callers can call this version by (`name@production`); a
    /// label names at most one version of a template. Moved by editing the
    /// config (or the prompts folder) and reloading.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Typed variables: each a `type` (string, number, bool) and an
    /// optional `default` used when the caller omits it. Variables the
    /// messages use without a declaration are required strings, numbers or
    /// booleans, as before.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableSpec>,
}

/// One declared variable of a template.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    #[serde(rename = "type", default)]
    pub kind: VariableType,
    /// Used when the caller does not give the variable; of `kind`'s type.
    #[serde(default)]
    pub default: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum VariableType {
    #[default]
    String,
    Number,
    Bool,
}

impl VariableType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Bool => "bool",
        }
    }

    /// `v` is of this type.
    pub fn fits(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (Self::String, Value::String(_))
                | (Self::Number, Value::Number(_))
                | (Self::Bool, Value::Bool(_))
        )
    }
}

/// A label is a name that is not a number (`@2` is a version).
pub(crate) fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && !l.bytes().all(|b| b.is_ascii_digit())
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateMessage {
    pub role: String,
    pub content: String,
}

fn default_version() -> u32 {
    1
}

/// Parameters a template or a caller may not set: the template owns them.
pub const RESERVED_PARAMS: &[&str] = &["model", "messages", "variables"];

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<TemplateConfig>),
    One(Box<TemplateConfig>),
}

/// Adds the templates found in `prompts.dir` (relative to `config_dir`)
/// and checks every template.
pub(crate) fn load_dir(cfg: &mut Config, config_dir: &Path) -> Result<(), ConfigError> {
    if let Some(dir) = cfg.prompts.dir.clone() {
        let dir = config_dir.join(dir);
        let read_err = |source| ConfigError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut problems = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
                path: file.display().to_string(),
                source,
            })?;
            match serde_yaml_ng::from_str::<OneOrMany>(&text) {
                Ok(OneOrMany::Many(list)) => cfg.prompts.templates.extend(list),
                Ok(OneOrMany::One(t)) => cfg.prompts.templates.push(*t),
                Err(e) => problems.push(format!("{}: {e}", file.display())),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
    }
    let mut problems = Vec::new();
    validate(cfg, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

pub(crate) fn validate(cfg: &Config, p: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    let mut labels = std::collections::HashSet::new();
    for (i, t) in cfg.prompts.templates.iter().enumerate() {
        let at = format!("prompts.templates[{i}] ({}@{})", t.name, t.version);
        if t.name.is_empty()
            || !t
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            p.push(format!("{at}.name: use letters, digits, '-', '_' or '.'"));
        }
        if !seen.insert((t.name.as_str(), t.version)) {
            p.push(format!("{at}: duplicate name and version"));
        }
        let known = cfg.models.iter().any(|m| m.name == t.model)
            || cfg.virtual_models.iter().any(|v| v.name == t.model);
        if !known {
            p.push(format!("{at}.model: unknown model {:?}", t.model));
        }
        if t.messages.is_empty() {
            p.push(format!("{at}.messages: at least one message is required"));
        }
        for (j, m) in t.messages.iter().enumerate() {
            if let Err(e) = crate::template::parse(&m.content) {
                p.push(format!("{at}.messages[{j}].content: {e}"));
            }
        }
        for k in RESERVED_PARAMS.iter().chain(&["stream"]) {
            if t.params.contains_key(*k) {
                p.push(format!("{at}.params: `{k}` cannot be a template parameter"));
            }
        }
        for l in &t.labels {
            if !valid_label(l) {
                p.push(format!(
                    "{at}.labels: {l:?}: use letters, digits, '-', '_' or '.', not only digits"
                ));
            } else if !labels.insert((t.name.as_str(), l.as_str())) {
                p.push(format!(
                    "{at}.labels: {l:?} is already on another version of {}",
                    t.name
                ));
            }
        }
        let used: std::collections::BTreeSet<String> = crate::template::variables(
            t.messages
                .iter()
                .filter_map(|m| crate::template::parse(&m.content).ok())
                .collect::<Vec<_>>()
                .iter()
                .map(Vec::as_slice),
        );
        for (name, spec) in &t.variables {
            if !used.contains(name) {
                p.push(format!("{at}.variables.{name}: not used by the messages"));
            }
            if let Some(d) = spec.default.as_ref().filter(|d| !spec.kind.fits(d)) {
                p.push(format!(
                    "{at}.variables.{name}.default: {d} is not a {}",
                    spec.kind.as_str()
                ));
            }
        }
    }
}
