//! JSON-RPC 2.0 and the MCP messages the gateway looks into, as typed
//! models. Each keeps every field it does not name in a flattened `rest`
//! map, so a message relayed through the gateway loses nothing (a field a
//! newer spec revision adds passes through untouched). The official Rust
//! SDK's model types (rmcp) are not used for this reason: they drop fields
//! they do not know, and a proxy must not.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Protocol revisions the gateway speaks to clients (the `initialize`
/// handshake era), newest first. A client asking for another gets the
/// newest.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The revision the gateway asks upstream servers for.
pub const UPSTREAM_PROTOCOL_VERSION: &str = "2025-11-25";

/// JSON-RPC error codes (the spec's, then the gateway's own, in the
/// implementation-defined server range).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The upstream server failed or could not be reached.
    pub const UPSTREAM: i64 = -32000;
    pub const UNAUTHENTICATED: i64 = -32001;
    /// Authenticated, but no grant allows it (the message names the grant).
    pub const FORBIDDEN: i64 = -32003;
    /// The session id is unknown, expired or not this caller's.
    pub const SESSION: i64 = -32004;
    /// A guardrail refused the call.
    pub const BLOCKED: i64 = -32005;
    pub const RATE_LIMITED: i64 = -32029;
}

/// One message from a client, before it is known to be a request, a
/// notification or a response. `id` keeps an explicit `null` apart from an
/// absent id.
#[derive(Debug, Deserialize)]
pub struct Incoming {
    #[serde(default)]
    pub jsonrpc: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What an incoming message is.
#[derive(Debug)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A client's answer to a server request the gateway relayed to it
    /// (`relay.rs`): its id, and its `result` or `error`.
    Response {
        id: Value,
        answer: Result<Value, RpcError>,
    },
}

impl Incoming {
    /// Classifies the message; `Err` is the JSON-RPC error to answer with
    /// (and the id to answer it under, when one could be read).
    pub fn classify(self) -> Result<Message, (Value, RpcError)> {
        let id = self.id.clone().unwrap_or(Value::Null);
        if self.jsonrpc.as_deref() != Some("2.0") {
            return Err((
                id,
                RpcError::new(code::INVALID_REQUEST, "jsonrpc must be \"2.0\""),
            ));
        }
        match (self.id, self.method) {
            (Some(Value::Null), _) => Err((
                Value::Null,
                RpcError::new(code::INVALID_REQUEST, "id must be a string or a number"),
            )),
            (Some(id), Some(method)) if id.is_string() || id.is_i64() || id.is_u64() => {
                Ok(Message::Request {
                    id,
                    method,
                    params: self.params,
                })
            }
            (Some(id), Some(_)) => Err((
                id,
                RpcError::new(code::INVALID_REQUEST, "id must be a string or an integer"),
            )),
            (None, Some(method)) => Ok(Message::Notification {
                method,
                params: self.params,
            }),
            (Some(id), None) if self.result.is_some() || self.error.is_some() => {
                let answer = match (self.result, self.error) {
                    (Some(r), None) => Ok(r),
                    (_, e) => Err(e
                        .and_then(|e| serde_json::from_value(e).ok())
                        .unwrap_or_else(|| {
                            RpcError::new(
                                code::INTERNAL_ERROR,
                                "the client answered with an invalid error",
                            )
                        })),
                };
                Ok(Message::Response { id, answer })
            }
            _ => Err((
                id,
                RpcError::new(code::INVALID_REQUEST, "not a JSON-RPC request"),
            )),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// An answer to one request: exactly one of `result` and `error`.
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    pub jsonrpc: &'static str,
    pub id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a RpcError>,
}

/// A request or notification the gateway sends upstream.
#[derive(Debug, Serialize)]
pub struct Outgoing<'a> {
    pub jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<&'a Value>,
}

/// An upstream's answer to one of the gateway's requests.
#[derive(Debug, Deserialize)]
pub struct UpstreamReply {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

/// `initialize` params (client → gateway).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    #[serde(default)]
    pub protocol_version: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A tool as `tools/list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `inputSchema`, `outputSchema`, `annotations`, `title`, `_meta`, …
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Tool {
    /// A listed tool taken out of its JSON by moving its fields: serde's
    /// `flatten` would buffer every schema and build it again, which was
    /// most of a 200-tool list's cost. `None` unless it is an object with a
    /// string `name` (and a string `description`, if any).
    pub fn from_json(v: Value) -> Option<Tool> {
        let Value::Object(mut rest) = v else {
            return None;
        };
        let Some(Value::String(name)) = rest.remove("name") else {
            return None;
        };
        let description = match rest.remove("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d),
            Some(_) => return None,
        };
        Some(Tool {
            name,
            description,
            rest,
        })
    }
}

impl From<Tool> for Value {
    /// The tool as JSON, its fields moved (a list of large schemas is not
    /// copied on the way out).
    fn from(t: Tool) -> Value {
        let mut m = t.rest;
        m.insert("name".into(), Value::String(t.name));
        if let Some(d) = t.description {
            m.insert("description".into(), Value::String(d));
        }
        Value::Object(m)
    }
}

/// A list an upstream (or the gateway's own catalog) says has changed:
/// relayed to connected clients as `notifications/{kind}/list_changed` on
/// their server-to-client stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChanged {
    Tools,
    Prompts,
    Resources,
}

impl ListChanged {
    pub const ALL: [ListChanged; 3] = [Self::Tools, Self::Prompts, Self::Resources];

    /// The notification's kind, from its method name.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "notifications/tools/list_changed" => Some(Self::Tools),
            "notifications/prompts/list_changed" => Some(Self::Prompts),
            "notifications/resources/list_changed" => Some(Self::Resources),
            _ => None,
        }
    }

    pub fn method(self) -> &'static str {
        match self {
            Self::Tools => "notifications/tools/list_changed",
            Self::Prompts => "notifications/prompts/list_changed",
            Self::Resources => "notifications/resources/list_changed",
        }
    }
}

/// Where list changes are announced (a broadcast: every connected client's
/// stream subscribes; nobody listening is fine).
pub type Notices = tokio::sync::broadcast::Sender<ListChanged>;

/// A new announcement channel (a slow client misses at most older
/// announcements of a kind it will see again).
pub fn notices() -> Notices {
    tokio::sync::broadcast::channel(16).0
}

/// Announces the change a notification's method names, if it is one.
pub fn announce(notices: &Notices, method: &str) {
    if let Some(change) = ListChanged::from_method(method) {
        let _ = notices.send(change);
    }
}

/// A prompt as `prompts/list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub name: String,
    /// `description`, `arguments`, `title`, `_meta`, …
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Prompt {
    /// A listed prompt taken out of its JSON by moving its fields (as
    /// `Tool::from_json`: no buffering through serde's `flatten`). `None`
    /// unless it is an object with a string `name`.
    pub fn from_json(v: Value) -> Option<Prompt> {
        let Value::Object(mut rest) = v else {
            return None;
        };
        let Some(Value::String(name)) = rest.remove("name") else {
            return None;
        };
        Some(Prompt { name, rest })
    }
}

impl From<Prompt> for Value {
    /// The prompt as JSON, its fields moved.
    fn from(p: Prompt) -> Value {
        let mut m = p.rest;
        m.insert("name".into(), Value::String(p.name));
        Value::Object(m)
    }
}

/// One page of a list method's result: the items under `key` (`tools`,
/// `prompts`, `resources`, `resourceTemplates`) and the next cursor.
#[derive(Debug)]
pub struct Page {
    pub next_cursor: Option<String>,
    pub rest: Map<String, Value>,
}

impl Page {
    /// The page, its fields moved out of the result (no copy of the items).
    pub fn from_json(v: Value) -> Result<Page, &'static str> {
        let Value::Object(mut rest) = v else {
            return Err("a list result must be an object");
        };
        let next_cursor = match rest.remove("nextCursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c),
            Some(_) => return Err("nextCursor must be a string"),
        };
        Ok(Page { next_cursor, rest })
    }
}

/// `tools/call` params: the tool is always read from here, never from a header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallToolParams {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// `_meta` (progress tokens), `task`, …
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `prompts/get` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetPromptParams {
    pub name: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `tools/call` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn tools_and_pages_are_moved_out_of_json_as_serde_would_read_them() {
        let v = json!({"name": "q", "description": "d", "inputSchema": {"type": "object"}, "x": [1, null]});
        let t = Tool::from_json(v.clone()).unwrap();
        assert_eq!(t, serde_json::from_value::<Tool>(v.clone()).unwrap());
        assert_eq!(Value::from(t), v);
        assert!(Tool::from_json(json!({"description": "no name"})).is_none());
        assert!(Tool::from_json(json!({"name": 3})).is_none());
        assert!(Tool::from_json(json!({"name": "q", "description": 3})).is_none());
        assert_eq!(
            Tool::from_json(json!({"name": "q", "description": null}))
                .unwrap()
                .description,
            None
        );
        let p = Page::from_json(json!({"tools": [], "nextCursor": "c2"})).unwrap();
        assert_eq!(p.next_cursor.as_deref(), Some("c2"));
        assert!(p.rest.contains_key("tools"));
        assert!(Page::from_json(json!({"nextCursor": 1})).is_err());
        let v =
            json!({"name": "greet", "description": "d", "arguments": [{"name": "who"}], "x": null});
        let pr = Prompt::from_json(v.clone()).unwrap();
        assert_eq!(pr, serde_json::from_value::<Prompt>(v.clone()).unwrap());
        assert_eq!(Value::from(pr), v);
        assert!(Prompt::from_json(json!({"description": "no name"})).is_none());
        assert!(Prompt::from_json(json!({"name": 1})).is_none());
        assert!(Page::from_json(json!([])).is_err());
    }

    use super::*;
    use serde_json::json;

    fn classify(text: &str) -> Result<Message, (Value, RpcError)> {
        serde_json::from_str::<Incoming>(text).unwrap().classify()
    }

    #[test]
    fn tells_requests_notifications_and_responses_apart() {
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Message::Request { .. })
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Message::Notification { .. })
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Message::Response { .. })
        ));
    }

    #[test]
    fn refuses_null_ids_wrong_versions_and_fractional_ids() {
        let (_, e) = classify(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        let (id, e) = classify(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).unwrap_err();
        assert_eq!((id, e.code), (Value::from(7), code::INVALID_REQUEST));
        let (_, e) = classify(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
    }

    #[test]
    fn tools_keep_fields_the_gateway_does_not_name() {
        let text = r#"{"name":"q","description":"d","inputSchema":{"type":"object"},"annotations":{"readOnlyHint":true},"x-new":1}"#;
        let tool: Tool = serde_json::from_str(text).unwrap();
        let back: Value = serde_json::to_value(&tool).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }
}
