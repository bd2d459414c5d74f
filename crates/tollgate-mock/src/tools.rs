//! Forced tool calls: when a chat request's `tool_choice` names a function
//! (or is `"required"`), the mock answers with a call to that tool whose
//! arguments fit the tool's JSON schema, so tool flows — and their
//! translation between API shapes — can be tested offline and exactly.
//!
//! Arguments are deterministic: every property the schema lists is filled
//! (`enum`/`const` first value, strings from the mock's word list, numbers
//! within `minimum`/`maximum`, arrays with `minItems` or one item), nested
//! objects recursively, depth-limited.

use serde_json::{json, Map, Value};

/// The tool call a request forces, if any: (function name, arguments JSON).
pub(crate) struct ForcedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

const MAX_DEPTH: usize = 8;

/// The function `tool_choice` forces, looked up in `tools`.
pub(crate) fn forced_call(body: &Map<String, Value>, seed: u64) -> Option<ForcedCall> {
    let tools = body.get("tools")?.as_array()?;
    let functions = || {
        tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
            .filter_map(|t| t.get("function"))
    };
    let function = match body.get("tool_choice")? {
        Value::String(s) if s == "required" => functions().next()?,
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)?;
            functions().find(|f| f.get("name").and_then(Value::as_str) == Some(name))?
        }
        _ => return None,
    };
    let name = function.get("name")?.as_str()?.to_owned();
    let schema = function
        .get("parameters")
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let arguments = fill(&schema, seed, 0).to_string();
    Some(ForcedCall {
        id: format!("call_mock_{:012x}", seed & 0xffff_ffff_ffff),
        name,
        arguments,
    })
}

/// A value that fits `schema` (the JSON Schema subset tools use).
fn fill(schema: &Value, seed: u64, depth: usize) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if depth >= MAX_DEPTH {
        return Value::Null;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return fill(first, seed, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (i, (k, v)) in props.iter().enumerate() {
                    out.insert(k.clone(), fill(v, mix(seed, i as u64), depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .min(8);
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..n)
                    .map(|i| fill(&items, mix(seed, i), depth + 1))
                    .collect(),
            )
        }
        "integer" => json!(number(schema, seed).round() as i64),
        "number" => json!(number(schema, seed)),
        "boolean" => json!(seed.is_multiple_of(2)),
        "null" => Value::Null,
        _ => json!(super::generate::word(seed)),
    }
}

/// A number within the schema's bounds (inclusive minimum/maximum).
fn number(schema: &Value, seed: u64) -> f64 {
    let min = schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
    let max = schema
        .get("maximum")
        .and_then(Value::as_f64)
        .unwrap_or(min + 100.0)
        .max(min);
    min + (seed % 1000) as f64 / 999.0 * (max - min)
}

fn mix(seed: u64, i: u64) -> u64 {
    (seed ^ (i.wrapping_add(1)).wrapping_mul(0x9e37_79b9_7f4a_7c15)).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "hourly": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}}}
            },
            "required": ["city"]
        }}}])
    }

    #[test]
    fn named_choice_fills_the_schema() {
        let b = body(json!({"tools": weather_tools(),
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}));
        let call = forced_call(&b, 42).unwrap();
        assert_eq!(call.name, "get_weather");
        let args: Value = serde_json::from_str(&call.arguments).unwrap();
        assert!(args["city"].is_string());
        assert_eq!(args["unit"], "celsius");
        let days = args["days"].as_i64().unwrap();
        assert!((1..=7).contains(&days), "{days}");
        assert!(args["hourly"].is_boolean());
        assert_eq!(args["tags"].as_array().map(Vec::len), Some(2));
        assert!(args["where"]["lat"].is_number());
        // Deterministic.
        assert_eq!(forced_call(&b, 42).unwrap().arguments, call.arguments);
    }

    #[test]
    fn required_picks_the_first_tool_and_auto_none() {
        let b = body(json!({"tools": weather_tools(), "tool_choice": "required"}));
        assert_eq!(
            forced_call(&b, 1).map(|c| c.name).as_deref(),
            Some("get_weather")
        );
        let b = body(json!({"tools": weather_tools(), "tool_choice": "auto"}));
        assert!(forced_call(&b, 1).is_none());
        let b = body(json!({"tools": weather_tools(),
            "tool_choice": {"type": "function", "function": {"name": "missing"}}}));
        assert!(forced_call(&b, 1).is_none());
    }

    #[test]
    fn hostile_schemas_do_not_recurse_forever() {
        let mut schema = json!({"type": "string"});
        for _ in 0..100 {
            schema = json!({"type": "object", "properties": {"x": schema}});
        }
        let b = body(
            json!({"tools": [{"type": "function", "function": {"name": "deep",
            "parameters": schema}}], "tool_choice": "required"}),
        );
        assert!(forced_call(&b, 7).is_some());
    }
}
