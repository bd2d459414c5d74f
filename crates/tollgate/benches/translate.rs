//! Translation cost (target: ≤ 20 µs per 1 KB non-streaming request or
//! response; a streamed chunk re-framed well under 1 ms). Each translation
//! is measured from bytes to bytes (parse, translate, serialise) next to a
//! baseline in the same run: parsing and re-serialising the same bytes
//! without translating, which any body-inspecting gateway pays anyway.
//! Run: `cargo bench -p tollgate --bench translate -- --warm-up-time 1 --measurement-time 3`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use tollgate::pipeline::SseSplitter;
use tollgate::translate::{anthropic, responses};

fn openai_request() -> Value {
    json!({"model": "claude-sonnet", "max_tokens": 512, "temperature": 0.3, "stream": false,
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "description": "Current weather for a city, in the unit asked for",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}],
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a travel desk. Answer in two sentences at most and prefer metric units."},
            {"role": "user", "content": "I am flying to Paris tomorrow morning and then on to Rome on Friday. What should I pack for the weather in both places?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Paris: 14C, light rain in the morning, clearing in the afternoon, wind 20 km/h."},
            {"role": "user", "content": "And Rome? Also, is an umbrella worth the space in a carry-on bag, or can I buy one there cheaply?"}]})
}

fn anthropic_response() -> Value {
    json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Paris will be cool and damp in the morning, so pack a light waterproof jacket and a warm layer; Rome should be milder. A compact umbrella is worth carrying, though street vendors in both cities sell cheap ones the moment it starts raining, usually for a few euros, so you can skip it if space is tight. Let me check Rome for you."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Rome", "unit": "celsius"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 412, "output_tokens": 96, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 256}})
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn obj(b: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(b).unwrap()
}

fn bench(c: &mut Criterion) {
    let oreq = bytes(&openai_request());
    let areq = bytes(&Value::Object(
        anthropic::to_anthropic(&obj(&oreq)).unwrap(),
    ));
    let aresp = bytes(&anthropic_response());
    let oresp = bytes(&anthropic::to_openai(&anthropic_response()).unwrap());
    let rreq = bytes(
        &json!({"model": "m", "instructions": "Be concise.", "input": [
        {"role": "user", "content": String::from_utf8_lossy(&oreq[..700]).replace('"', "'")}]}),
    );
    println!(
        "sizes: openai request {} B, anthropic request {} B, anthropic response {} B, openai response {} B, responses request {} B",
        oreq.len(), areq.len(), aresp.len(), oresp.len(), rreq.len()
    );

    let mut g = c.benchmark_group("whole");
    g.bench_function("baseline: parse + serialise 1KB", |b| {
        b.iter(|| serde_json::to_vec(&obj(black_box(&oreq))).unwrap())
    });
    g.bench_function("request openai->anthropic", |b| {
        b.iter(|| {
            serde_json::to_vec(&anthropic::to_anthropic(&obj(black_box(&oreq))).unwrap()).unwrap()
        })
    });
    g.bench_function("request anthropic->openai", |b| {
        b.iter(|| {
            serde_json::to_vec(&anthropic::from_anthropic(&obj(black_box(&areq))).unwrap()).unwrap()
        })
    });
    g.bench_function("response anthropic->openai", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&aresp)).unwrap();
            serde_json::to_vec(&anthropic::to_openai(&v).unwrap()).unwrap()
        })
    });
    g.bench_function("response openai->anthropic", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&oresp)).unwrap();
            serde_json::to_vec(&anthropic::from_openai(&v).unwrap()).unwrap()
        })
    });
    g.bench_function("request responses->chat", |b| {
        b.iter(|| serde_json::to_vec(&responses::to_chat(&obj(black_box(&rreq))).unwrap()).unwrap())
    });
    g.finish();

    // Streams: one typical text-delta event, split and re-framed.
    let a_event = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" umbrella\"}}\n\n";
    let o_event = b"data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1732400000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" umbrella\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    let mut g = c.benchmark_group("stream chunk");
    g.bench_function("baseline: split + parse one event", |b| {
        let mut s = SseSplitter::default();
        b.iter(|| {
            for ev in s.push(black_box(o_event)) {
                black_box(serde_json::from_str::<Value>(&ev.data()).unwrap());
            }
        })
    });
    g.bench_function("anthropic->openai", |b| {
        let mut s = SseSplitter::default();
        let mut t = anthropic::ToOpenAi::new(true);
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            for ev in s.push(black_box(a_event)) {
                t.on_data(&ev.data(), &mut out).unwrap();
            }
            out
        })
    });
    g.bench_function("openai->anthropic", |b| {
        let mut s = SseSplitter::default();
        let mut t = anthropic::FromOpenAi::new();
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            for ev in s.push(black_box(o_event)) {
                t.on_data(&ev.data(), &mut out);
            }
            out
        })
    });
    g.bench_function("openai->responses", |b| {
        let mut s = SseSplitter::default();
        let mut t = responses::ResponsesStream::new(Map::new());
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            for ev in s.push(black_box(o_event)) {
                t.on_data(&ev.data(), &mut out);
            }
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
