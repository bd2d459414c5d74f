//! The typed wire models (`tollgate_core::wire`) write back every golden
//! fixture's bodies exactly (as JSON values): requests, responses and
//! stream chunks of each shape, unknown fields included.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tollgate_core::wire::{anthropic, chat, responses};

fn fixtures(kind: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/translate")
        .join(kind);
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            out.push(serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap());
        }
    }
    assert!(!out.is_empty(), "no {kind} fixtures");
    out
}

fn same<T: DeserializeOwned + Serialize>(v: &Value) {
    let parsed: T = serde_json::from_str(&v.to_string()).unwrap();
    assert_eq!(&serde_json::to_value(&parsed).unwrap(), v);
}

#[test]
fn every_fixture_round_trips() {
    let mut n = 0;
    for case in fixtures("request") {
        same::<chat::ChatRequest>(&case["openai"]);
        same::<anthropic::MessagesRequest>(&case["anthropic"]);
        n += 2;
    }
    for case in fixtures("response") {
        same::<chat::ChatResponse>(&case["openai"]);
        same::<anthropic::MessageResponse>(&case["anthropic"]);
        n += 2;
    }
    for case in fixtures("stream") {
        for d in case["openai"].as_array().unwrap() {
            // A chunk is written as an object or as its `data` text.
            let chunk = match d.as_str() {
                Some("[DONE]") => continue,
                Some(text) => serde_json::from_str(text).unwrap(),
                None => d.clone(),
            };
            same::<chat::ChatChunk>(&chunk);
            n += 1;
        }
    }
    for case in fixtures("responses") {
        same::<responses::ResponsesRequest>(&case["responses_request"]);
        same::<chat::ChatRequest>(&case["chat_request"]);
        n += 2;
        if !case["chat_response"].is_null() {
            same::<chat::ChatResponse>(&case["chat_response"]);
            same::<responses::ResponsesResponse>(&case["responses_response"]);
            n += 2;
        }
    }
    assert!(n > 30, "only {n} bodies checked");
}
