//! Golden tests for OpenAI ⇄ Gemini and OpenAI ⇄ Bedrock Converse, every
//! direction, streaming included. Inputs are the fixtures in
//! `tests/data/translate/{gemini,bedrock}_*.json`; each one's outputs are
//! pinned in `tests/data/translate/snapshots/<same name>`. After an intended
//! change, regenerate with `UPDATE_GOLDEN=1 cargo test --test translate_golden`
//! and review the diff.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tollgate::translate::bedrock_stream::{
    event_frame, exception_frame, BedrockToOpenAi, FrameDecoder, OpenAiToBedrock,
};
use tollgate::translate::gemini_stream::{GeminiToOpenAi, OpenAiToGemini};
use tollgate::translate::{bedrock, gemini, ChunkWriter, Fault};

const CREATED: u64 = 1_700_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/translate")
}

fn fixtures(prefix: &str) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            (name.starts_with(prefix) && name.ends_with(".json")).then_some(name)
        })
        .map(|name| {
            let text = std::fs::read_to_string(dir().join(&name)).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no {prefix} fixtures");
    out
}

fn check_snapshot(name: &str, actual: &Value) {
    let path = dir().join("snapshots").join(name);
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if &expected != actual {
        panic!(
            "{name} differs from its snapshot (UPDATE_GOLDEN=1 to accept):\n--- actual\n{pretty}"
        );
    }
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// OpenAI SSE bytes → one JSON value per event (`"[DONE]"` kept as a string).
fn sse_values(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| json!(data))
        })
        .collect()
}

fn fault_json(f: &Fault) -> Value {
    match f {
        Fault::Upstream {
            status,
            message,
            retry_after,
        } => {
            json!({"fault": "upstream", "status": status, "message": message, "retry_after": retry_after})
        }
        Fault::Protocol(m) => json!({"fault": "protocol", "message": m}),
        Fault::Interrupted(m) => json!({"fault": "interrupted", "message": m}),
    }
}

fn unsupported(
    fixture: &Value,
    translate: impl Fn(&Map<String, Value>) -> Result<Value, tollgate::translate::Unsupported>,
) -> Value {
    let mut out = Vec::new();
    for case in fixture["unsupported"].as_array().into_iter().flatten() {
        let err = translate(&obj(&case["request"])).expect_err("must be refused");
        assert_eq!(
            err.field,
            case["field"].as_str().unwrap(),
            "{}",
            err.message
        );
        out.push(json!({"field": err.field, "message": err.message}));
    }
    Value::Array(out)
}

#[test]
fn gemini_golden() {
    for (name, f) in fixtures("gemini_") {
        let mut snap = json!({});
        if f.get("request").is_some() {
            let req = gemini::request(&obj(&f["request"])).unwrap();
            snap["request"] = req.clone();
            // The mock upstream's direction: back to OpenAI.
            snap["request_back"] = gemini::to_openai_request(&req, "gemini-2.0-flash", false);
        }
        let resp = gemini::response(&f["response"], "gemini-2.0-flash", CREATED);
        snap["response"] = resp.clone();
        snap["response_back"] = gemini::from_openai_response(&resp);
        let include_usage = f["request"]["stream_options"]["include_usage"] == json!(true);
        let mut t = GeminiToOpenAi::new("gemini-2.0-flash", CREATED, include_usage);
        let mut out = Vec::new();
        let mut stream = Vec::new();
        let mut fault = None;
        for ev in f["stream"].as_array().unwrap() {
            match t.event(&ev.to_string()) {
                Ok(b) => out.extend(b),
                Err(e) => {
                    fault = Some(e);
                    break;
                }
            }
        }
        match fault {
            None => out.extend(t.finish().unwrap()),
            Some(e) => stream.push(fault_json(&e)),
        }
        let mut chunks = sse_values(&out);
        chunks.append(&mut stream);
        // And back through the mock's translator, as the upstream would send it.
        let mut back = OpenAiToGemini::new();
        let events: Vec<Value> = chunks
            .iter()
            .filter(|c| c.get("fault").is_none())
            .flat_map(|c| back.event(&c.as_str().map_or_else(|| c.to_string(), str::to_owned)))
            .flat_map(|b| {
                let text = String::from_utf8(b.to_vec()).unwrap();
                let data = text.trim().strip_prefix("data: ").unwrap().to_string();
                serde_json::from_str::<Value>(&data).ok()
            })
            .collect();
        snap["stream"] = Value::Array(chunks);
        snap["stream_back"] = Value::Array(events);
        if f.get("unsupported").is_some() {
            snap["unsupported"] = unsupported(&f, gemini::request);
        }
        check_snapshot(&name, &snap);
    }
}

/// Fixture stream entries → the binary event stream Bedrock would send.
fn bedrock_bytes(stream: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for e in stream.as_array().unwrap() {
        let frame = match e.get("exception").and_then(Value::as_str) {
            Some(kind) => exception_frame(kind, e["message"].as_str().unwrap()),
            None => event_frame(e["event"].as_str().unwrap(), &e["payload"]),
        };
        out.extend_from_slice(&frame);
    }
    out
}

/// Binary frames → readable `{event, payload}` entries.
fn decode_frames(bytes: &[u8]) -> Vec<Value> {
    let mut d = FrameDecoder::default();
    d.push(bytes)
        .unwrap()
        .iter()
        .map(|m| {
            let kind = tollgate::translate::bedrock_stream::header(m, ":event-type").unwrap();
            let payload: Value = serde_json::from_slice(m.payload()).unwrap();
            json!({"event": kind, "payload": payload})
        })
        .collect()
}

#[test]
fn bedrock_golden() {
    for (name, f) in fixtures("bedrock_") {
        let mut snap = json!({});
        if f.get("request").is_some() {
            let req = bedrock::request(&obj(&f["request"])).unwrap();
            snap["request"] = req.clone();
            snap["request_back"] = bedrock::to_openai_request(&req, "anthropic.claude", false);
        }
        let resp = bedrock::response(
            &f["response"],
            "chatcmpl-req-1",
            "anthropic.claude",
            CREATED,
        );
        snap["response"] = resp.clone();
        snap["response_back"] = bedrock::from_openai_response(&resp);
        let include_usage = f["request"]["stream_options"]["include_usage"] == json!(true);
        let writer = ChunkWriter {
            id: "chatcmpl-req-2".into(),
            model: "anthropic.claude".into(),
            created: CREATED,
        };
        let mut t = BedrockToOpenAi::new(writer, include_usage);
        // Fed 7 bytes at a time: frames split across reads anywhere.
        let bytes = bedrock_bytes(&f["stream"]);
        let mut d = FrameDecoder::default();
        let (mut out, mut fault) = (Vec::new(), None);
        'feed: for piece in bytes.chunks(7) {
            for m in d.push(piece).unwrap() {
                match t.frame(&m) {
                    Ok(b) => out.extend(b),
                    Err(e) => {
                        fault = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        let mut chunks = match &fault {
            None => {
                out.extend(t.finish().unwrap());
                sse_values(&out)
            }
            Some(_) => sse_values(&out),
        };
        if let Some(e) = &fault {
            chunks.push(fault_json(e));
        }
        let mut back = OpenAiToBedrock::default();
        let frames: Vec<u8> = chunks
            .iter()
            .filter(|c| c.get("fault").is_none())
            .flat_map(|c| back.event(&c.as_str().map_or_else(|| c.to_string(), str::to_owned)))
            .flat_map(|b| b.to_vec())
            .collect();
        snap["stream"] = Value::Array(chunks);
        snap["stream_back"] = Value::Array(decode_frames(&frames));
        if f.get("unsupported").is_some() {
            snap["unsupported"] = unsupported(&f, bedrock::request);
        }
        check_snapshot(&name, &snap);
    }
}

#[test]
fn corrupted_frames_are_refused() {
    let mut bytes = event_frame("messageStart", &json!({"role": "assistant"})).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let mut d = FrameDecoder::default();
    assert!(matches!(d.push(&bytes), Err(Fault::Protocol(_))));
}

#[test]
fn streams_that_stop_early_are_interrupted() {
    let w = ChunkWriter {
        id: "x".into(),
        model: "m".into(),
        created: 0,
    };
    let mut b = BedrockToOpenAi::new(w, true);
    b.event("messageStart", &json!({"role": "assistant"}))
        .unwrap();
    assert!(matches!(b.finish(), Err(Fault::Interrupted(_))));
    let mut g = GeminiToOpenAi::new("m", 0, true);
    g.event(r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#)
        .unwrap();
    assert!(matches!(g.finish(), Err(Fault::Interrupted(_))));
    assert!(matches!(g.event("not json"), Err(Fault::Protocol(_))));
}
