//! The OpenAI → Anthropic and OpenAI → Responses stream translators over a
//! fixture stream (`testdata/stream/events.json`: text, thinking, redacted
//! thinking, parallel tool calls, the stop extensions, usage with its
//! details, upstream error events, data that is not JSON, JSON that is not
//! a typed chunk): their bytes are the ones the translators wrote when they
//! parsed each event's data themselves (`*.sse`, written by that code), and
//! a chunk handed over typed (`on_chunk`, how the gateway's stream hands
//! it, parsed once) translates exactly as its JSON read as sent.

use std::path::PathBuf;

use serde_json::{Map, Value};
use tollgate_core::wire::chat::ChatChunk;

use crate::anthropic::FromOpenAi;
use crate::responses::ResponsesStream;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/stream")
}

fn streams() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(data_dir().join("events.json")).unwrap();
    let all: Map<String, Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .map(|(name, events)| {
            let events = events
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            (name, events)
        })
        .collect()
}

/// A Responses stream's `created_at` (the wall clock) as `0`.
fn unclocked(out: &[u8]) -> String {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let key = "\"created_at\":";
    let mut done = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(key) {
        let (head, tail) = rest.split_at(at + key.len());
        done.push_str(head);
        done.push('0');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    done.push_str(rest);
    done
}

/// A translator under test: fed data as sent, or each chunk typed.
trait Translate {
    fn on_data(&mut self, data: &str, out: &mut Vec<u8>);
    fn on_chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>);
    fn on_untyped(&mut self, data: &str, out: &mut Vec<u8>);
    fn on_done(&mut self, out: &mut Vec<u8>);
}

macro_rules! translate {
    ($t:ty) => {
        impl Translate for $t {
            fn on_data(&mut self, data: &str, out: &mut Vec<u8>) {
                <$t>::on_data(self, data, out)
            }
            fn on_chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
                <$t>::on_chunk(self, chunk, out)
            }
            fn on_untyped(&mut self, data: &str, out: &mut Vec<u8>) {
                <$t>::on_untyped(self, data, out)
            }
            fn on_done(&mut self, out: &mut Vec<u8>) {
                <$t>::on_done(self, out)
            }
        }
    };
}
translate!(FromOpenAi);
translate!(ResponsesStream);

/// Makes a fresh translator.
type New = fn() -> Box<dyn Translate>;

fn translators() -> Vec<(&'static str, New)> {
    vec![
        ("anthropic", || Box::new(FromOpenAi::new())),
        ("responses", || Box::new(ResponsesStream::new(Map::new()))),
    ]
}

#[test]
fn streams_translate_to_the_bytes_they_did_before() {
    for (stream, events) in streams() {
        for (shape, new) in translators() {
            let mut t = new();
            let mut out = Vec::new();
            for data in &events {
                t.on_data(data, &mut out);
            }
            let path = data_dir().join(format!("{stream}.{shape}.sse"));
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(unclocked(&out), want, "{stream} → {shape}");
        }
    }
}

#[test]
fn a_typed_chunk_translates_as_its_json() {
    for (stream, events) in streams() {
        for (shape, new) in translators() {
            let (mut typed, mut sent) = (new(), new());
            let mut kinds = (0, 0);
            for data in &events {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                match (data.as_str(), serde_json::from_str::<ChatChunk>(data)) {
                    ("[DONE]", _) => {
                        typed.on_done(&mut a);
                        sent.on_done(&mut b);
                    }
                    (_, Ok(chunk)) => {
                        kinds.0 += 1;
                        typed.on_chunk(&chunk, &mut a);
                        sent.on_untyped(data, &mut b);
                    }
                    (_, Err(_)) => {
                        kinds.1 += 1;
                        typed.on_untyped(data, &mut a);
                        sent.on_untyped(data, &mut b);
                    }
                }
                assert_eq!(
                    unclocked(&a),
                    unclocked(&b),
                    "{stream} → {shape}, event {data}"
                );
            }
            assert!(
                kinds.0 > 2 && kinds.1 > 1,
                "{stream}: typed and untyped events"
            );
        }
    }
}
