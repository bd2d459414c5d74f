//! The cache key: SHA-256 over a canonical form of the request. Object keys
//! are sorted and every value is written with a type tag and a length, so
//! key order and whitespace in the caller's JSON do not matter and no two
//! different requests share a form. Hand-written (rather than serialising
//! to a canonical JSON string first) because it hashes the parsed body in
//! place without building a copy of it on the hit path.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use tollgate_config::{CacheScope, Endpoint};

pub type Key = [u8; 32];

/// Request fields that never change the answer.
const IGNORED: &[&str] = &[
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
];

/// Who may share an entry: the tenant, the principal, or everyone.
pub fn scope_id(scope: CacheScope, p: &Principal) -> String {
    match scope {
        CacheScope::Global => "g".into(),
        CacheScope::Tenant => format!("t:{}", p.tenant.as_deref().unwrap_or("")),
        CacheScope::Principal => format!(
            "p:{}\0{}\0{}",
            p.method.as_str(),
            p.issuer.as_deref().unwrap_or(""),
            p.subject
        ),
    }
}

pub fn key(endpoint: Endpoint, model: &str, scope: &str, body: &Map<String, Value>) -> Key {
    let mut h = Sha256::new();
    h.update(b"tollgate-cache-v1\0");
    text(&mut h, endpoint.as_str());
    text(&mut h, scope);
    text(&mut h, model);
    let mut fields: Vec<(&String, &Value)> = body
        .iter()
        .filter(|(k, _)| !IGNORED.contains(&k.as_str()) && k.as_str() != "model")
        .collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    object(&mut h, fields);
    h.finalize().into()
}

fn text(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn object(h: &mut Sha256, fields: Vec<(&String, &Value)>) {
    h.update(b"{");
    h.update((fields.len() as u64).to_le_bytes());
    for (k, v) in fields {
        text(h, k);
        value(h, v);
    }
}

fn value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Bool(true) => h.update(b"T"),
        Value::Bool(false) => h.update(b"F"),
        Value::Number(n) => {
            h.update(b"#");
            text(h, &number(n));
        }
        Value::String(s) => {
            h.update(b"s");
            text(h, s);
        }
        Value::Array(items) => {
            h.update(b"[");
            h.update((items.len() as u64).to_le_bytes());
            for i in items {
                value(h, i);
            }
        }
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            object(h, fields);
        }
    }
}

/// `1`, `1.0` and `1e0` are one number.
fn number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(json: &str) -> Key {
        let v: Value = serde_json::from_str(json).unwrap();
        key(Endpoint::Chat, "m", "t:", v.as_object().unwrap())
    }

    #[test]
    fn order_whitespace_and_ignored_fields_do_not_matter() {
        let a = k(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
        let b = k(r#"{ "temperature" : 0.0, "stream": true, "user": "x",
            "messages" : [ { "content":"hi", "role":"user" } ], "model":"m" }"#);
        assert_eq!(a, b);
    }

    #[test]
    fn output_changing_fields_do() {
        let a = k(r#"{"messages":[{"role":"user","content":"hi"}]}"#);
        assert_ne!(a, k(r#"{"messages":[{"role":"user","content":"hi "}]}"#));
        assert_ne!(
            a,
            k(r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#)
        );
        assert_ne!(a, k(r#"{"messages":[{"role":"system","content":"hi"}]}"#));
        // Type tags keep "1" and 1 apart.
        assert_ne!(k(r#"{"seed":1}"#), k(r#"{"seed":"1"}"#));
        let v: Value = serde_json::from_str(r#"{"messages":[]}"#).unwrap();
        let body = v.as_object().unwrap();
        assert_ne!(
            key(Endpoint::Chat, "m", "t:a", body),
            key(Endpoint::Chat, "m", "t:b", body)
        );
        assert_ne!(
            key(Endpoint::Chat, "m", "g", body),
            key(Endpoint::Completions, "m", "g", body)
        );
    }
}
