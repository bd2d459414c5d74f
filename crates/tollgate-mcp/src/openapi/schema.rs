//! `$ref` resolution inside one OpenAPI document: a tool's input schema
//! must stand alone (an MCP client has no `components` to look into), so
//! every local reference is inlined. Recursion is bounded: a reference to
//! a schema already being expanded on the same branch (a cycle), one past
//! `MAX_DEPTH` nested references, or any past `MAX_INLINED` in one schema
//! becomes `{}` (any value) with a description naming the reference.

use serde_json::{json, Map, Value};

/// Nested references expanded on one branch.
const MAX_DEPTH: usize = 16;
/// References expanded in one schema (repeated references multiply).
const MAX_INLINED: usize = 2_000;
/// `$ref` hops followed for a parameter, body or path item.
const MAX_HOPS: usize = 16;

/// The value at a local reference (`#/components/schemas/Pet`).
fn target<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    // JSON pointer escapes are kept as is: serde_json's `pointer` undoes them.
    root.pointer(pointer)
}

fn reference(v: &Value) -> Option<&str> {
    v.as_object()?.get("$ref")?.as_str()
}

/// `v`, or what its `$ref` chain leads to (a parameter, a request body, a
/// path item); an unresolvable reference gives `{}`.
pub(super) fn deref(root: &Value, v: &Value) -> Value {
    let mut cur = v;
    for _ in 0..MAX_HOPS {
        match reference(cur) {
            None => return cur.clone(),
            Some(r) => match target(root, r) {
                Some(t) => cur = t,
                None => return json!({}),
            },
        }
    }
    json!({})
}

/// `schema` with every local `$ref` inlined (bounded, see the module doc).
pub(super) fn inline(root: &Value, schema: &Value) -> Value {
    let mut budget = MAX_INLINED;
    walk(root, schema, &mut Vec::new(), &mut budget)
}

fn walk<'a>(root: &'a Value, v: &'a Value, stack: &mut Vec<&'a str>, budget: &mut usize) -> Value {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                let cut = |why: &str| json!({"description": format!("{why}: {r}")});
                if stack.contains(&r) {
                    return cut("recursive");
                }
                if stack.len() >= MAX_DEPTH || *budget == 0 {
                    return cut("nested too deep");
                }
                let Some(t) = target(root, r) else {
                    return cut("unresolved reference");
                };
                *budget -= 1;
                stack.push(r);
                let mut out = walk(root, t, stack, budget);
                stack.pop();
                // 3.1 allows keywords beside `$ref` (a description): they win.
                if let Value::Object(o) = &mut out {
                    for (k, val) in map.iter().filter(|(k, _)| k.as_str() != "$ref") {
                        o.insert(k.clone(), walk(root, val, stack, budget));
                    }
                }
                return out;
            }
            let out: Map<String, Value> = map
                .iter()
                .map(|(k, val)| (k.clone(), walk(root, val, stack, budget)))
                .collect();
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| walk(root, i, stack, budget)).collect())
        }
        other => other.clone(),
    }
}
