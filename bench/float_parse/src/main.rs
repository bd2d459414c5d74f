//! A body parsed into `Map<String, Value>` and written again, N times (`emb`:
//! an embeddings body of 1,536 floats; else a 1 KB chat), after checking
//! which floats one parse changes; see `run.sh`.

use serde_json::{Map, Value};
use std::hint::black_box;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    // A 1536-float embedding-sized array with 17-digit values, as ryu writes them.
    let mut floats = Vec::new();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..1536 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        floats.push((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0);
    }
    let emb = serde_json::to_vec(&serde_json::json!({"model": "emb", "input": floats})).unwrap();
    let chat = br#"{"model":"chat-local","temperature":0.7,"top_p":0.95,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely, citing the source where you can."},{"role":"user","content":"Summarise the following text in two sentences: The gateway sits between every client and every model provider; it authenticates callers, applies limits and guardrails, routes to the right upstream and records usage for billing. Operators configure it with one YAML file that can be reloaded without a restart, and every error reaches the caller in the API shape it speaks."}]}"#.to_vec();
    let body = if which == "emb" { emb } else { chat };
    eprintln!("{} bytes", body.len());
    // Check: every float survives parse -> encode -> parse.
    let once: Map<String, Value> = serde_json::from_slice(&body).unwrap();
    if which == "emb" {
        let got: Vec<f64> = once["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let bad = got
            .iter()
            .zip(&floats)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        eprintln!("changed floats after one parse: {bad} of {}", floats.len());
    }
    for s in [
        "0.30000000000000004",
        "2.2250738585072014e-308",
        "5e-324",
        "1.7976931348623157e308",
        "0.1",
        "1e23",
        "8.41e21",
        "9007199254740993",
        "18446744073709551616",
        "1e400",
    ] {
        let p: Result<Value, _> = serde_json::from_str(s);
        match p {
            Ok(v) => {
                let back = serde_json::to_string(&v).unwrap();
                let exact: f64 = s.parse().unwrap();
                eprintln!(
                    "{s:>26} -> {back:<26} same value: {}",
                    v.as_f64()
                        .map(|f| f.to_bits() == exact.to_bits())
                        .unwrap_or(false)
                );
            }
            Err(e) => eprintln!("{s:>26} -> error {e}"),
        }
    }
    let mut total = 0;
    for _ in 0..n {
        let m: Map<String, Value> = serde_json::from_slice(black_box(&body)).unwrap();
        let out = serde_json::to_vec(&m).unwrap();
        total += black_box(out).len();
    }
    println!("{total}");
}
