//! Golden tests for every translation direction, streaming included, from
//! the shared fixtures in `tests/data/translate/` (see its README). Set
//! `UPDATE_GOLDEN=1` to fill in expected sides that are `null`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tollgate::translate::{anthropic, responses};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/translate")
        .join(kind)
}

fn cases(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no {kind} fixtures");
    out
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// `created` / `created_at` anywhere → 0 (they are clock readings).
fn normalize(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "created" || k == "created_at" {
                    *x = json!(0);
                } else {
                    normalize(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Compares `got` with `case[key]`, or writes it there in update mode.
fn check(path: &Path, case: &mut Value, key: &str, mut got: Value, pending: &mut bool) {
    normalize(&mut got);
    if case[key].is_null() && std::env::var_os("UPDATE_GOLDEN").is_some() {
        case[key] = got;
        *pending = true;
        return;
    }
    assert_eq!(
        got,
        case[key],
        "{} `{key}` differs; got:\n{}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap()
    );
}

fn save(path: &Path, case: &Value, pending: bool) {
    if pending {
        std::fs::write(path, serde_json::to_string_pretty(case).unwrap() + "\n").unwrap();
    }
}

fn has(case: &Value, direction: &str) -> bool {
    case["directions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == direction)
}

/// Ensures the given side is filled before it is used as an input.
fn input(case: &Value, key: &str, path: &Path) -> Value {
    assert!(
        !case[key].is_null(),
        "{}: `{key}` not generated yet",
        path.display()
    );
    case[key].clone()
}

#[test]
fn requests() {
    for (path, mut case) in cases("request") {
        let mut pending = false;
        if has(&case, "openai->anthropic") && !case["openai"].is_null() {
            let got = anthropic::to_anthropic(&obj(&case["openai"])).unwrap();
            check(
                &path,
                &mut case,
                "anthropic",
                Value::Object(got),
                &mut pending,
            );
        }
        if has(&case, "anthropic->openai") {
            let got = anthropic::from_anthropic(&obj(&input(&case, "anthropic", &path))).unwrap();
            check(&path, &mut case, "openai", Value::Object(got), &mut pending);
        }
        if has(&case, "openai->anthropic") {
            let got = anthropic::to_anthropic(&obj(&input(&case, "openai", &path))).unwrap();
            check(
                &path,
                &mut case,
                "anthropic",
                Value::Object(got),
                &mut pending,
            );
        }
        save(&path, &case, pending);
    }
}

#[test]
fn responses_whole() {
    for (path, mut case) in cases("response") {
        let mut pending = false;
        if has(&case, "anthropic->openai") {
            let got = anthropic::to_openai(&input(&case, "anthropic", &path)).unwrap();
            check(&path, &mut case, "openai", got, &mut pending);
        }
        if has(&case, "openai->anthropic") {
            let got = anthropic::from_openai(&input(&case, "openai", &path)).unwrap();
            check(&path, &mut case, "anthropic", got, &mut pending);
        }
        save(&path, &case, pending);
    }
}

/// `(event name, data)` of each event in an SSE byte string.
fn parse_sse(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|ev| {
            let name = ev
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned);
            let data = ev.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name, data.to_string())
        })
        .collect()
}

fn named(events: Vec<(Option<String>, String)>) -> Value {
    Value::Array(
        events
            .into_iter()
            .map(|(n, d)| json!({"event": n.unwrap(), "data": serde_json::from_str::<Value>(&d).unwrap()}))
            .collect(),
    )
}

#[test]
fn streams() {
    for (path, mut case) in cases("stream") {
        let mut pending = false;
        if has(&case, "anthropic->openai") {
            let mut t = anthropic::ToOpenAi::new(true);
            let mut out = Vec::new();
            for ev in input(&case, "anthropic", &path).as_array().unwrap() {
                t.on_data(&ev["data"].to_string(), &mut out).unwrap();
            }
            assert!(t.done());
            let got: Vec<Value> = parse_sse(&out)
                .into_iter()
                .map(|(n, d)| {
                    assert!(n.is_none(), "OpenAI chunks are unnamed");
                    if d == "[DONE]" {
                        json!(d)
                    } else {
                        let mut v: Value = serde_json::from_str(&d).unwrap();
                        normalize(&mut v);
                        json!(v.to_string())
                    }
                })
                .collect();
            check(&path, &mut case, "openai", Value::Array(got), &mut pending);
        }
        if has(&case, "openai->anthropic") {
            let mut t = anthropic::FromOpenAi::new();
            let mut out = Vec::new();
            for d in input(&case, "openai", &path).as_array().unwrap() {
                t.on_data(d.as_str().unwrap(), &mut out);
            }
            check(
                &path,
                &mut case,
                "anthropic",
                named(parse_sse(&out)),
                &mut pending,
            );
        }
        save(&path, &case, pending);
    }
}

#[test]
fn responses_api() {
    for (path, mut case) in cases("responses") {
        let mut pending = false;
        let request = obj(&case["responses_request"]);
        let chat = responses::to_chat(&request).unwrap();
        check(
            &path,
            &mut case,
            "chat_request",
            Value::Object(chat),
            &mut pending,
        );
        if !case["chat_response"].is_null() {
            let got = responses::from_chat(&case["chat_response"], &request).unwrap();
            check(&path, &mut case, "responses_response", got, &mut pending);
        }
        if !case["chat_stream"].is_null() {
            let mut t = responses::ResponsesStream::new(request.clone());
            let mut out = Vec::new();
            for d in case["chat_stream"].as_array().unwrap() {
                t.on_data(d.as_str().unwrap(), &mut out);
            }
            let mut got = named(parse_sse(&out));
            normalize(&mut got);
            check(&path, &mut case, "responses_stream", got, &mut pending);
        }
        save(&path, &case, pending);
    }
}

#[test]
fn refusals_name_the_field() {
    let path = dir("").join("errors.json");
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for case in cases {
        let input = obj(&case["input"]);
        let err = match case["direction"].as_str().unwrap() {
            "openai->anthropic" => anthropic::to_anthropic(&input).err(),
            "anthropic->openai" => anthropic::from_anthropic(&input).err(),
            _ => responses::to_chat(&input).err(),
        };
        let err = err.unwrap_or_else(|| panic!("accepted: {case}"));
        assert_eq!(err.field, case["field"].as_str().unwrap(), "{case}: {err}");
        assert!(err.to_string().contains(&format!("`{}`", err.field)));
    }
}

/// Anthropic → OpenAI → Anthropic on a live-shaped stream loses nothing
/// the Anthropic SDK reads: text, tool input JSON, thinking and its
/// signature, stop reason and usage.
#[test]
fn anthropic_stream_round_trip() {
    let (path, case) = cases("stream")
        .into_iter()
        .find(|(p, _)| p.ends_with("anthropic_thinking_text_tools.json"))
        .unwrap();
    let mut there = anthropic::ToOpenAi::new(true);
    let mut chunks = Vec::new();
    for ev in input(&case, "anthropic", &path).as_array().unwrap() {
        there.on_data(&ev["data"].to_string(), &mut chunks).unwrap();
    }
    let mut back = anthropic::FromOpenAi::new();
    let mut out = Vec::new();
    for (_, d) in parse_sse(&chunks) {
        back.on_data(&d, &mut out);
    }
    let events = named(parse_sse(&out));
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let original: Vec<&str> = case["anthropic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|e| *e != "ping")
        .collect();
    let kinds_no_ping: Vec<&str> = kinds.iter().copied().filter(|e| *e != "ping").collect();
    // Empty deltas are not repeated; everything else comes back in order.
    let original_no_empty: Vec<&str> = case["anthropic"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["delta"]["partial_json"] != "")
        .map(|e| e["event"].as_str().unwrap())
        .filter(|e| *e != "ping")
        .collect();
    assert_eq!(kinds_no_ping, original_no_empty, "{original:?}");
    let last_delta = &events.as_array().unwrap()[kinds.len() - 2]["data"];
    assert_eq!(last_delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        last_delta["usage"],
        json!({"input_tokens": 25, "output_tokens": 89, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 10})
    );
}

#[test]
fn anthropic_error_event_ends_the_stream() {
    let mut t = anthropic::ToOpenAi::new(true);
    let mut out = Vec::new();
    let err = t
        .on_data(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "overloaded_error: Overloaded");
    assert!(!t.done());
}
