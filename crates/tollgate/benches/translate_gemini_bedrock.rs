//! Translation cost for the `gemini` and `bedrock` providers: a ~1 KB
//! OpenAI chat request into each shape and a ~1 KB answer back (target
//! ≤ 20 µs each), one ConverseStream frame decoded (CRCs checked) and turned
//! into an OpenAI chunk, and one Gemini SSE chunk turned into an OpenAI chunk.
//! Baseline in the same run: parsing and re-serialising the same JSON, the
//! least any pass-through gateway does.
//! Run: `cargo bench -p tollgate --bench translate_gemini_bedrock`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use tollgate::translate::bedrock_stream::{event_frame, BedrockToOpenAi, FrameDecoder};
use tollgate::translate::gemini_stream::GeminiToOpenAi;
use tollgate::translate::{bedrock, gemini, ChunkWriter};

/// A ~1 KB chat request: system prompt, three turns, a tool.
fn request_1kb() -> Vec<u8> {
    let v = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a careful assistant for a logistics company. Answer briefly, cite the shipment id, and never guess a delivery date you were not given."},
            {"role": "user", "content": "Where is shipment SH-20391? It left the Rotterdam depot on Monday and the customer is asking whether it will make the Friday slot."},
            {"role": "assistant", "content": "Let me look that up.", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "track", "arguments": "{\"shipment\":\"SH-20391\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\":\"in transit\",\"eta\":\"Thursday 14:00\",\"hub\":\"Antwerp\"}"},
            {"role": "user", "content": "Great, and can you tell them the driver will call an hour ahead?"}
        ],
        "tools": [{"type": "function", "function": {"name": "track", "description": "Track a shipment by id",
            "parameters": {"type": "object", "properties": {"shipment": {"type": "string"}}, "required": ["shipment"]}}}],
        "temperature": 0.3,
        "max_tokens": 400,
        "stream": false
    });
    serde_json::to_vec(&v).unwrap()
}

fn answer_text() -> &'static str {
    "Shipment SH-20391 is in transit through the Antwerp hub and is expected on Thursday at 14:00, \
     ahead of the Friday slot. I will let the customer know that the driver calls an hour before \
     arrival. The tracking record was updated this morning; no customs hold is recorded and the \
     pallet count matches the booking. If the slot changes, the depot will send a new notice to \
     the customer's contact on file, and a copy to the planner. Nothing else is needed right now, \
     and the delivery note will follow by email once the driver has scanned the pallets."
}

fn gemini_response_1kb() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": answer_text()}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 210, "candidatesTokenCount": 96, "totalTokenCount": 306},
        "modelVersion": "gemini-2.0-flash-001", "responseId": "abc123"
    }))
    .unwrap()
}

fn bedrock_response_1kb() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "output": {"message": {"role": "assistant", "content": [{"text": answer_text()}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 210, "outputTokens": 96, "totalTokens": 306, "cacheReadInputTokens": 0},
        "metrics": {"latencyMs": 800}
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let req = request_1kb();
    let g_resp = gemini_response_1kb();
    let b_resp = bedrock_response_1kb();
    eprintln!(
        "sizes: request {} B, gemini response {} B, bedrock response {} B",
        req.len(),
        g_resp.len(),
        b_resp.len()
    );

    c.bench_function("baseline/request 1KB parse+serialize", |b| {
        b.iter(|| {
            let m: Map<String, Value> = serde_json::from_slice(black_box(&req)).unwrap();
            black_box(serde_json::to_vec(&m).unwrap())
        })
    });
    c.bench_function("gemini/request 1KB parse+translate+serialize", |b| {
        b.iter(|| {
            let m: Map<String, Value> = serde_json::from_slice(black_box(&req)).unwrap();
            black_box(serde_json::to_vec(&gemini::request(&m).unwrap()).unwrap())
        })
    });
    c.bench_function("bedrock/request 1KB parse+translate+serialize", |b| {
        b.iter(|| {
            let m: Map<String, Value> = serde_json::from_slice(black_box(&req)).unwrap();
            black_box(serde_json::to_vec(&bedrock::request(&m).unwrap()).unwrap())
        })
    });
    c.bench_function("baseline/response 1KB parse+serialize", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&g_resp)).unwrap();
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    c.bench_function("gemini/response 1KB parse+translate+serialize", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&g_resp)).unwrap();
            black_box(serde_json::to_vec(&gemini::response(&v, "m", 0)).unwrap())
        })
    });
    c.bench_function("bedrock/response 1KB parse+translate+serialize", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&b_resp)).unwrap();
            black_box(serde_json::to_vec(&bedrock::response(&v, "id", "m", 0)).unwrap())
        })
    });

    // Streaming: one text delta per event, as models send them.
    let delta = json!({"contentBlockIndex": 0, "delta": {"text": " the driver calls ahead"}});
    let frame = event_frame("contentBlockDelta", &delta);
    let writer = ChunkWriter {
        id: "chatcmpl-x".into(),
        model: "m".into(),
        created: 0,
    };
    let delta_text = delta.to_string();
    c.bench_function("baseline/chunk JSON parse", |b| {
        b.iter(|| black_box(serde_json::from_str::<Value>(black_box(&delta_text)).unwrap()))
    });
    c.bench_function("bedrock/event-stream frame decode (CRC) + chunk", |b| {
        let mut d = FrameDecoder::default();
        let mut t = BedrockToOpenAi::new(writer.clone(), true);
        b.iter(|| {
            let frames = d.push(black_box(&frame)).unwrap();
            black_box(t.frame(&frames[0]).unwrap())
        })
    });
    c.bench_function("bedrock/event-stream frame decode only", |b| {
        let mut d = FrameDecoder::default();
        b.iter(|| black_box(d.push(black_box(&frame)).unwrap()))
    });
    let g_chunk = json!({"candidates": [{"content": {"role": "model",
        "parts": [{"text": " the driver calls ahead"}]}, "index": 0}],
        "modelVersion": "gemini-2.0-flash-001", "responseId": "abc123"})
    .to_string();
    c.bench_function("gemini/SSE chunk → OpenAI chunk", |b| {
        let mut t = GeminiToOpenAi::new("m", 0, true);
        t.event(&g_chunk).unwrap();
        b.iter(|| black_box(t.event(black_box(&g_chunk)).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
