//! Random and adversarial input through the parsers that see untrusted
//! bytes: request bodies, SSE streams, auth headers. None may panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::{Rng, SeedableRng};
use tollgate::config::Endpoint;
use tollgate::pipeline::SseSplitter;

fn corpus() -> Vec<Vec<u8>> {
    let seeds: &[&[u8]] = &[
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        br#"{"model":"m","prompt":["a",1,{"x":null}],"stream_options":{"include_usage":true}}"#,
        br#"{"model":"m","input":[[1,2,3]],"encoding_format":"base64"}"#,
        b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n",
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1e99}}\r\n\r\n",
    ];
    seeds.iter().map(|s| s.to_vec()).collect()
}

fn mutate(rng: &mut impl Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..8) {
        match rng.random_range(0..4) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            1 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v.truncate(i);
            }
            2 => {
                let i = rng.random_range(0..=v.len());
                let b = *b"{}[]\":,\n\r\\u0000data: "
                    .get(rng.random_range(0..22))
                    .unwrap_or(&b'x');
                v.insert(i, b);
            }
            _ => {
                let i = rng.random_range(0..=v.len());
                let j = rng.random_range(0..=v.len());
                let (a, b) = (i.min(j), i.max(j));
                let piece = v[a..b].to_vec();
                v.extend_from_slice(&piece);
            }
        }
    }
    v
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x70116a7e);
    let corpus = corpus();
    for round in 0..20_000 {
        let input = mutate(&mut rng, &corpus[round % corpus.len()]);
        for ep in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
            let _ = tollgate::pipeline::parse_request(ep, &input);
        }
        let mut s = SseSplitter::default();
        let mut at = 0;
        while at < input.len() {
            let n = rng.random_range(1..=input.len() - at);
            for ev in s.push(&input[at..at + n]) {
                let _ = ev.data();
            }
            at += n;
        }
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_bytes(&input[..input.len().min(64)]) {
            headers.insert(http::header::AUTHORIZATION, v.clone());
            headers.insert("x-api-key", v);
        }
        let _ = tollgate::auth::presented_key(&headers);
    }
}
