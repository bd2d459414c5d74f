//! Random and mutated input through the Gemini and Bedrock translators and
//! the event-stream decoder, both directions: whatever a caller or an
//! upstream sends, nothing panics.
// `disallowed_methods`: tests read the gateway's own answers whole
// (`reqwest::Response::json` and friends are banned in product code).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use rand::{Rng, SeedableRng};
use serde_json::Value;
use tollgate::translate::bedrock_stream::{
    event_frame, BedrockToOpenAi, FrameDecoder, OpenAiToBedrock,
};
use tollgate::translate::gemini_stream::{GeminiToOpenAi, OpenAiToGemini};
use tollgate::translate::{bedrock, gemini, ChunkWriter};

/// Every JSON object in the golden fixtures, at any depth.
fn seeds() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/translate");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) == Some("json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            collect(&v, &mut out);
        }
    }
    out
}

fn collect(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(o) => {
            out.push(v.clone());
            o.values().for_each(|x| collect(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// Replaces a random node of `v` (up to `depth` levels down) with a random
/// scalar or container.
fn mutate(rng: &mut impl Rng, v: &mut Value, depth: usize) {
    if depth > 0 && rng.random_range(0..4) != 0 {
        let len = match v {
            Value::Object(o) => o.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if len > 0 {
            let i = rng.random_range(0..len);
            let child = match v {
                Value::Object(o) => o.values_mut().nth(i),
                Value::Array(a) => a.get_mut(i),
                _ => None,
            };
            if let Some(c) = child {
                return mutate(rng, c, depth - 1);
            }
        }
    }
    let choices = [
        Value::Null,
        Value::from(-1),
        Value::from(1e300),
        Value::from(""),
        Value::from("data:;base64,"),
        Value::Array(vec![]),
        Value::Object(Default::default()),
        Value::from(true),
    ];
    *v = choices[rng.random_range(0..choices.len())].clone();
}

#[test]
fn translators_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() > 20);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x3c3c);
    let w = ChunkWriter {
        id: "x".into(),
        model: "m".into(),
        created: 0,
    };
    for round in 0..3_000 {
        let mut v = seeds[round % seeds.len()].clone();
        mutate(&mut rng, &mut v, 6);
        if let Some(o) = v.as_object() {
            let _ = gemini::request(o);
            let _ = bedrock::request(o);
            let _ = gemini::embed_request(o, "m");
        }
        let _ = gemini::response(&v, "m", 0);
        let _ = bedrock::response(&v, "id", "m", 0);
        let _ = gemini::to_openai_request(&v, "m", true);
        let _ = bedrock::to_openai_request(&v, "m", true);
        let _ = gemini::from_openai_response(&v);
        let _ = bedrock::from_openai_response(&v);
        let text = v.to_string();
        let mut g = GeminiToOpenAi::new("m", 0, true);
        let _ = g.event(&text);
        let _ = g.finish();
        let mut b = BedrockToOpenAi::new(w.clone(), true);
        for kind in [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "messageStop",
            "metadata",
        ] {
            let _ = b.event(kind, &v);
        }
        let _ = b.finish();
        let _ = OpenAiToGemini::new().event(&text);
        let _ = OpenAiToBedrock::default().event(&text);
    }
}

#[test]
fn frame_decoder_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xf4a3e);
    let good = event_frame(
        "contentBlockDelta",
        &serde_json::json!({"delta": {"text": "x"}}),
    );
    for _ in 0..20_000 {
        let mut bytes = good.to_vec();
        for _ in 0..rng.random_range(1..4) {
            if bytes.is_empty() {
                bytes.push(rng.random());
            }
            match rng.random_range(0..3) {
                0 => {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
                1 => bytes.truncate(rng.random_range(0..bytes.len())),
                _ => bytes.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>())),
            }
        }
        let mut d = FrameDecoder::default();
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.random_range(1..=bytes.len() - at);
            if d.push(&bytes[at..at + n]).is_err() {
                break;
            }
            at += n;
        }
    }
}
