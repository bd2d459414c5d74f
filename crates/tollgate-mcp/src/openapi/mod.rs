//! An OpenAPI 3 document read as MCP tools: each operation one tool (name
//! from `operationId`, else method and path; description from `summary`
//! and `description`; input schema an object of the path, query and header
//! parameters plus a `body` property from the JSON request body), and the
//! plan to turn a call's arguments into the HTTP request and its answer
//! into a tool result (`call.rs`). Pure: no I/O (the transport,
//! `upstream/openapi.rs`, loads and calls).
//!
//! The document is read through a small typed subset (`Document`,
//! `Operation`, `Parameter`) with every schema kept as JSON: a schema
//! must reach the agent as the JSON Schema the document wrote, keywords
//! and all (3.0 `nullable`, 3.1 type arrays, `format`, examples), which
//! a fully typed model (the `openapiv3` crate: 3.0 only) would reshape or
//! drop. `$ref`s are inlined by `schema.rs`.

mod call;
mod schema;

pub use call::{request_parts, tool_result, ArgumentError, RequestParts};

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::wire::Tool;

/// Why a document cannot be published.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenApiError {
    #[error("not an OpenAPI document: {0}")]
    Parse(String),
    #[error("OpenAPI {0} is not supported (3.0 and 3.1 are)")]
    Version(String),
    #[error("no base URL: set openapi.base_url (the document has no absolute servers[].url)")]
    NoBaseUrl,
}

#[derive(Debug, Deserialize)]
struct Document {
    /// A string, or a YAML number when written `openapi: 3.1` unquoted.
    openapi: Value,
    #[serde(default)]
    servers: Vec<ServerEntry>,
    #[serde(default)]
    paths: BTreeMap<String, Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct ServerEntry {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationDoc {
    #[serde(default)]
    operation_id: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Vec<Value>,
    #[serde(default)]
    request_body: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ParameterDoc {
    name: String,
    #[serde(rename = "in")]
    location: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schema: Option<Value>,
}

/// Where a parameter goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

/// One parameter of the request: its name in the API, where it goes, and
/// the argument (input-schema property) it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub location: In,
    pub arg: String,
    pub required: bool,
}

/// One published operation: the tool, and how a call becomes a request.
#[derive(Debug, Clone)]
pub struct Operation {
    pub tool: Tool,
    /// Upper-case HTTP method.
    pub method: http::Method,
    /// The path template, e.g. `/pets/{petId}`.
    pub path: String,
    pub params: Vec<Param>,
    /// `Some(required)` when the operation takes a JSON body (argument `body`).
    pub body: Option<bool>,
}

/// The argument carrying the request body.
pub const BODY_ARG: &str = "body";
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// Headers the OpenAPI specification says are ignored as parameters.
const IGNORED_HEADERS: &[&str] = &["accept", "content-type", "authorization"];

/// The published operations of a document and its base URL.
#[derive(Debug, Clone)]
pub struct Api {
    pub operations: Vec<Operation>,
    /// From `servers[0].url` when absolute; else `None`.
    pub server_url: Option<String>,
    /// Operations left out, with why (logged by the transport).
    pub skipped: Vec<String>,
}

impl Api {
    /// Reads a JSON or YAML document; `keep` says whether an operation
    /// (by `operationId`, else its tool name) is published.
    pub fn parse(text: &str, keep: &dyn Fn(&str) -> bool) -> Result<Self, OpenApiError> {
        let root: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => {
                serde_yaml_ng::from_str(text).map_err(|e| OpenApiError::Parse(e.to_string()))?
            }
        };
        let doc: Document =
            serde_json::from_value(root.clone()).map_err(|e| OpenApiError::Parse(e.to_string()))?;
        let version = match &doc.openapi {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !version.starts_with("3.") {
            return Err(OpenApiError::Version(version));
        }
        let mut operations = Vec::new();
        let mut skipped = Vec::new();
        let mut names = HashSet::new();
        for (path, item) in &doc.paths {
            let item = schema::deref(&root, &Value::Object(item.clone()));
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let op: OperationDoc = match serde_json::from_value(op.clone()) {
                    Ok(o) => o,
                    Err(e) => {
                        skipped.push(format!("{} {path}: {e}", method.to_uppercase()));
                        continue;
                    }
                };
                let id = op
                    .operation_id
                    .clone()
                    .unwrap_or_else(|| format!("{method}_{path}"));
                if !keep(&id) && !keep(&tool_name(&id)) {
                    continue;
                }
                match operation(&root, method, path, &shared, op, &mut names) {
                    Ok(o) => operations.push(o),
                    Err(why) => skipped.push(format!("{} {path}: {why}", method.to_uppercase())),
                }
            }
        }
        let server_url = doc.servers.first().map(|s| s.url.clone());
        Ok(Api {
            operations,
            server_url,
            skipped,
        })
    }

    pub fn find(&self, tool: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.tool.name == tool)
    }

    /// `tools/list`'s result.
    pub fn tools(&self) -> Value {
        json!({ "tools": self.operations.iter().map(|o| &o.tool).collect::<Vec<_>>() })
    }
}

/// An MCP tool name: letters, digits, `_`, `-` and `.` (every other
/// character becomes `_`), at most 128 characters.
pub fn tool_name(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => c,
            _ => '_',
        })
        .collect();
    // `get_/pets/{id}` → `get_pets_id`: no runs or trailing underscores.
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_');
    let s: String = s.chars().take(128).collect();
    if s.is_empty() {
        "operation".into()
    } else {
        s
    }
}

/// Why an operation is left out of the tools (each listed in
/// `Api::skipped` with its method and path).
#[derive(Debug, thiserror::Error)]
enum Unsupported {
    #[error("a parameter: {0}")]
    Parameter(serde_json::Error),
    #[error("required cookie parameter {0:?} is not supported")]
    RequiredCookie(String),
    #[error("parameter {name:?} in {location:?}")]
    Location { name: String, location: String },
    #[error("the request body is not JSON")]
    BodyNotJson,
    #[error("method {0}")]
    Method(String),
}

fn operation(
    root: &Value,
    method: &str,
    path: &str,
    shared: &[Value],
    op: OperationDoc,
    names: &mut HashSet<String>,
) -> Result<Operation, Unsupported> {
    let id = op
        .operation_id
        .clone()
        .unwrap_or_else(|| format!("{method}_{path}"));
    let mut name = tool_name(&id);
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{}_{n}", tool_name(&id));
        n += 1;
    }
    // Operation parameters override path-level ones of the same name and place.
    let mut docs: Vec<ParameterDoc> = Vec::new();
    for raw in op.parameters.iter().chain(shared) {
        let p: ParameterDoc =
            serde_json::from_value(schema::deref(root, raw)).map_err(Unsupported::Parameter)?;
        if !docs
            .iter()
            .any(|d| d.name == p.name && d.location == p.location)
        {
            docs.push(p);
        }
    }
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    for p in docs {
        let location = match p.location.as_str() {
            "path" => In::Path,
            "query" => In::Query,
            "header" if IGNORED_HEADERS.contains(&p.name.to_ascii_lowercase().as_str()) => continue,
            "header" => In::Header,
            "cookie" if p.required => return Err(Unsupported::RequiredCookie(p.name)),
            "cookie" => continue,
            other => {
                return Err(Unsupported::Location {
                    name: p.name,
                    location: other.to_string(),
                })
            }
        };
        let mut arg = p.name.clone();
        if arg == BODY_ARG || properties.contains_key(&arg) {
            arg = format!("{}_{}", p.location, p.name);
        }
        let mut s = p
            .schema
            .as_ref()
            .map(|s| schema::inline(root, s))
            .unwrap_or_else(|| json!({"type": "string"}));
        if let (Some(d), Some(obj)) = (&p.description, s.as_object_mut()) {
            obj.entry("description").or_insert_with(|| json!(d));
        }
        let req = p.required || location == In::Path;
        if req {
            required.push(json!(arg));
        }
        properties.insert(arg.clone(), s);
        params.push(Param {
            name: p.name,
            location,
            arg,
            required: req,
        });
    }
    let mut body = None;
    if let Some(rb) = &op.request_body {
        let rb = schema::deref(root, rb);
        let content = rb.get("content").and_then(Value::as_object);
        let json_schema = content.and_then(|c| {
            c.iter()
                .find(|(t, _)| is_json(t))
                .map(|(_, m)| m.get("schema").cloned().unwrap_or_else(|| json!({})))
        });
        let req = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
        match json_schema {
            Some(s) => {
                let mut s = schema::inline(root, &s);
                if let (Some(d), Some(obj)) = (rb.get("description"), s.as_object_mut()) {
                    obj.entry("description").or_insert_with(|| d.clone());
                }
                properties.insert(BODY_ARG.into(), s);
                if req {
                    required.push(json!(BODY_ARG));
                }
                body = Some(req);
            }
            None if req => return Err(Unsupported::BodyNotJson),
            None => {}
        }
    }
    let description = match (&op.summary, &op.description) {
        (Some(s), Some(d)) if s != d => Some(format!("{s}\n\n{d}")),
        (Some(s), _) => Some(s.clone()),
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    };
    let mut input = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        input["required"] = Value::Array(required);
    }
    let mut rest = Map::new();
    rest.insert("inputSchema".into(), input);
    let method = http::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| Unsupported::Method(method.to_string()))?;
    Ok(Operation {
        tool: Tool {
            name,
            description,
            rest,
        },
        method,
        path: path.to_string(),
        params,
        body,
    })
}

/// `application/json`, `application/problem+json`, `…; charset=utf-8`.
pub fn is_json(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

#[cfg(test)]
mod tests;
