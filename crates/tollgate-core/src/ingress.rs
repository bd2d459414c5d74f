//! Ingress parse: a caller's request body read into the gateway's parsed
//! form, checked just enough for the gateway's own needs (model, stream,
//! `stream_options.include_usage`, the numeric fields it reads, the
//! endpoint's required field); everything else passes through untouched.
//! Pure (bytes in, `Parsed` or a 400 out), so the libFuzzer target
//! `fuzz/fuzz_targets/ingress.rs` links it without the pipeline; reading
//! the body off the connection stays in `tollgate_pipeline` (`read_body`).
//! Owns the `Endpoint` a model call arrives on (the config's `endpoints:`
//! lists name it too).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::GatewayError;

/// The OpenAI-shaped API a model call arrives on.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    /// A classic ML model payload (`dataframe_records`, `dataframe_split`,
    /// `instances`, `inputs`) passed through unchanged (databricks only).
    Invocations,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Invocations => "invocations",
        }
    }
}

/// The keys of a classic ML model payload (MLflow scoring protocol).
pub const ML_PAYLOAD_KEYS: &[&str] = &[
    "dataframe_records",
    "dataframe_split",
    "instances",
    "inputs",
];

/// What ingress learnt from the body.
pub struct Parsed {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The caller asked for `stream_options.include_usage`.
    pub wants_usage: bool,
}

pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Parsed, GatewayError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::invalid(
            "request body is empty; expected a JSON object",
            None,
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::invalid(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid(
            "request body must be a JSON object",
            None,
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None => {
            return Err(GatewayError::invalid(
                "you must provide a model parameter",
                Some("model"),
            ))
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "`model` must be a string",
                Some("model"),
            ))
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(GatewayError::invalid(
                "`stream` must be a boolean",
                Some("stream"),
            ))
        }
    };
    let wants_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`stream_options.include_usage` must be a boolean",
                    Some("stream_options.include_usage"),
                ))
            }
        },
        Some(_) => {
            return Err(GatewayError::invalid(
                "`stream_options` must be an object",
                Some("stream_options"),
            ))
        }
    };
    check_numbers(&body)?;
    match endpoint {
        Endpoint::Chat => check_messages(body.get("messages"))?,
        Endpoint::Completions => match body.get("prompt") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            None => {
                return Err(GatewayError::invalid(
                    "`prompt` is required",
                    Some("prompt"),
                ))
            }
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`prompt` must be a string or an array",
                    Some("prompt"),
                ))
            }
        },
        Endpoint::Embeddings => {
            match body.get("input") {
                Some(Value::String(_)) => {}
                Some(Value::Array(a)) if !a.is_empty() => {}
                None => return Err(GatewayError::invalid("`input` is required", Some("input"))),
                Some(_) => {
                    return Err(GatewayError::invalid(
                        "`input` must be a string or a non-empty array",
                        Some("input"),
                    ))
                }
            }
            if stream {
                return Err(GatewayError::invalid(
                    "embeddings cannot be streamed",
                    Some("stream"),
                ));
            }
        }
        Endpoint::Invocations => {
            if !ML_PAYLOAD_KEYS.iter().any(|k| body.contains_key(*k)) {
                return Err(GatewayError::invalid(
                    "expected one of `messages`, `prompt`, `input`, `dataframe_records`, \
                     `dataframe_split`, `instances` or `inputs`",
                    None,
                ));
            }
            if stream {
                return Err(GatewayError::invalid(
                    "model payloads (dataframe_records, instances, …) cannot be streamed",
                    Some("stream"),
                ));
            }
        }
    }
    Ok(Parsed {
        body,
        model,
        stream,
        wants_usage,
    })
}

/// Most tokens a request may ask for: larger is no model's and would
/// overflow the limiter's arithmetic.
pub const MAX_TOKENS_CAP: u64 = 1 << 40;

/// The numeric fields the gateway itself reads (the admission estimate,
/// the cache's temperature rule): each must be absent, `null` or a number
/// of the right type and range, else 400 naming it. A valid body is not
/// changed.
pub fn check_numbers(body: &Map<String, Value>) -> Result<(), GatewayError> {
    for field in ["max_tokens", "max_completion_tokens"] {
        check_int(body, field, 1, MAX_TOKENS_CAP)?;
    }
    check_int(body, "n", 1, 128)?;
    match body.get("temperature") {
        None | Some(Value::Null) => {}
        Some(Value::Number(t)) if t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {}
        Some(_) => {
            return Err(GatewayError::invalid(
                "`temperature` must be a number from 0 to 2",
                Some("temperature"),
            )
            .with_code("invalid_value"))
        }
    }
    Ok(())
}

/// An integer field within `min..=max` (a JSON integer: not a string, a
/// fraction or a number past the range).
fn check_int(
    body: &Map<String, Value>,
    field: &'static str,
    min: u64,
    max: u64,
) -> Result<(), GatewayError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| (min..=max).contains(&v)) => Ok(()),
        Some(_) => Err(GatewayError::invalid(
            format!("`{field}` must be an integer from {min} to {max}"),
            Some(field),
        )
        .with_code("invalid_value")),
    }
}

fn check_messages(messages: Option<&Value>) -> Result<(), GatewayError> {
    let bad = |msg: String| Err(GatewayError::invalid(msg, Some("messages")));
    let list = match messages {
        None => return bad("`messages` is required".into()),
        Some(Value::Array(list)) if list.is_empty() => {
            return bad("`messages` must contain at least one message".into())
        }
        Some(Value::Array(list)) => list,
        Some(_) => return bad("`messages` must be an array".into()),
    };
    for (i, m) in list.iter().enumerate() {
        match m.get("role") {
            Some(Value::String(_)) => {}
            _ if !m.is_object() => return bad(format!("`messages[{i}]` must be an object")),
            _ => {
                return bad(format!(
                    "`messages[{i}].role` is required and must be a string"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(endpoint: Endpoint, body: &str) -> String {
        match parse(endpoint, body.as_bytes()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_the_problem() {
        assert!(err(Endpoint::Chat, "{").contains("not valid JSON"));
        assert!(err(Endpoint::Chat, "[]").contains("JSON object"));
        assert!(err(Endpoint::Chat, "").contains("empty"));
        assert!(err(Endpoint::Chat, r#"{"messages":[]}"#).contains("model"));
        assert!(err(Endpoint::Chat, r#"{"model":1}"#).contains("must be a string"));
        assert!(err(Endpoint::Chat, r#"{"model":"m"}"#).contains("messages"));
        assert!(err(Endpoint::Chat, r#"{"model":"m","messages":[{}]}"#).contains("role"));
        assert!(err(Endpoint::Chat, r#"{"model":"m","messages":[1]}"#).contains("object"));
        assert!(err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#
        )
        .contains("boolean"));
        for bad in ["-1", "\"50\"", "1.5", "18446744073709551616", "0", "true"] {
            for field in ["max_tokens", "max_completion_tokens"] {
                let body =
                    format!(r#"{{"model":"m","messages":[{{"role":"user"}}],"{field}":{bad}}}"#);
                assert!(err(Endpoint::Chat, &body).contains(field), "{field}={bad}");
            }
        }
        assert!(err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user"}],"n":"2"}"#
        )
        .contains("`n`"));
        assert!(err(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user"}],"temperature":"hot"}"#
        )
        .contains("temperature"));
        assert!(err(Endpoint::Embeddings, r#"{"model":"m"}"#).contains("input"));
        assert!(err(Endpoint::Completions, r#"{"model":"m"}"#).contains("prompt"));
    }

    #[test]
    fn keeps_unknown_fields() {
        let p = parse(
            Endpoint::Chat,
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x_custom":{"a":1},"stream":true,"stream_options":{"include_usage":true}}"#,
        );
        let Ok(p) = p else {
            unreachable!("valid request rejected")
        };
        assert!(p.stream && p.wants_usage);
        assert_eq!(p.body.get("x_custom"), Some(&serde_json::json!({"a":1})));
    }
}
