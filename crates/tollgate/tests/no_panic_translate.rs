//! Every translator on hostile input: each node of every golden fixture is
//! replaced, one at a time, by values of every other JSON type, and the
//! result goes through every translator (requests, whole responses, stream
//! events). None may panic; bad input is a named error or is ignored.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::path::Path;

use serde_json::{json, Value};
use tollgate::translate::{anthropic, responses};

fn fixtures() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/translate");
    let mut out = Vec::new();
    for sub in ["request", "response", "stream", "responses"] {
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
            // The Responses outputs are never translator inputs.
            let sides = v
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !k.starts_with("responses_"));
            for (_, side) in sides {
                match side {
                    Value::Array(items) => out.extend(items.iter().map(|i| match i {
                        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                        other => other.get("data").cloned().unwrap_or(other.clone()),
                    })),
                    Value::Object(_) => out.push(side.clone()),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Every JSON pointer in `v`.
fn paths(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| paths(x, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| paths(x, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

fn all_translators(v: &Value) {
    if let Some(o) = v.as_object() {
        let _ = anthropic::to_anthropic(o);
        let _ = anthropic::from_anthropic(o);
        let _ = responses::to_chat(o);
        let _ = responses::from_chat(v, o);
        let mut body = o.clone();
        let _ = anthropic::make_portable(&mut body);
    }
    let _ = anthropic::to_openai(v);
    let _ = anthropic::from_openai(v);
    let data = v.to_string();
    let mut out = Vec::new();
    let _ = anthropic::ToOpenAi::new(true).on_data(&data, &mut out);
    let mut from = anthropic::FromOpenAi::new();
    from.on_data(&data, &mut out);
    from.on_data("[DONE]", &mut out);
    let mut r = responses::ResponsesStream::new(v.as_object().cloned().unwrap_or_default());
    r.on_data(&data, &mut out);
    r.on_data("[DONE]", &mut out);
}

#[test]
fn translators_never_panic_on_replaced_nodes() {
    let replacements = [
        json!(null),
        json!(1),
        json!(-1.5),
        json!("x"),
        json!(""),
        json!([]),
        json!({}),
        json!([1]),
        json!({"type": "text"}),
        json!(true),
        json!("[DONE]"),
    ];
    let mut runs = 0;
    let mut all = fixtures();
    all.sort_by_key(Value::to_string);
    all.dedup();
    for fixture in all {
        let mut ps = Vec::new();
        paths(&fixture, String::new(), &mut ps);
        for p in ps {
            for r in &replacements {
                let mut v = fixture.clone();
                match v.pointer_mut(&p) {
                    Some(slot) => *slot = r.clone(),
                    None => continue,
                }
                all_translators(&v);
                runs += 1;
            }
        }
    }
    assert!(runs > 1000, "only {runs} variants");
}
