//! The pipeline's ingress parse (phase 2): a caller's body and tag header
//! read into the gateway's parsed form as `pipeline/phase/ingress.rs` does
//! it. The first byte picks the route: bits 0-1 the endpoint (chat,
//! completions, embeddings, invocations), bits 2-3 the caller's shape
//! (OpenAI, Anthropic Messages, Responses: the two translated shapes go
//! through the same steps as `pipeline/shape.rs`'s `chat_body` before the
//! parse), bit 4 whether the rest starts with a tag header value (up to the
//! first newline), bit 5 whether `metadata` gives tags
//! (`ledger.tags.metadata`). The parse itself is `tollgate_core::ingress`;
//! the tags are `tollgate-record`'s `tags.rs`, compiled here on its own
//! (the record crate links SQLite and the store, too large to build
//! instrumented in CI's time; `tags.rs` needs only core and serde_json).
//!
//! Checks, beyond no panic: a refusal is a 400 `invalid_request_error`; an
//! accepted body's model, stream and usage flags are what its fields say,
//! its numeric fields pass the checks again, and the body as forwarded
//! upstream (the map written back to JSON) parses to the same result; tags
//! are a JSON object of at most `MAX_TAGS` string values, read back whole.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/tollgate-record/src/tags.rs"]
mod tags;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tollgate_core::error::ErrorKind;
use tollgate_core::ingress::{self, Endpoint, Parsed};
use tollgate_translate::{anthropic, responses};

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Chat,
    Endpoint::Completions,
    Endpoint::Embeddings,
    Endpoint::Invocations,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = match mode & 0x10 {
        0 => (None, rest),
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (Some(rest), &rest[rest.len()..]),
        },
    };
    let mut endpoint = ENDPOINTS[usize::from(mode & 3)];
    let translated = match (mode >> 2) & 3 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    };
    let owned;
    let body = match translated {
        None => body,
        Some(is_responses) => {
            // Anthropic Messages and Responses callers are always chat.
            endpoint = Endpoint::Chat;
            match chat_body(body, is_responses) {
                Some(b) => {
                    owned = b;
                    &owned[..]
                }
                None => return,
            }
        }
    };
    let parsed = match ingress::parse(endpoint, body) {
        Ok(p) => p,
        Err(e) => {
            assert_eq!(e.status(), 400, "{e}");
            assert_eq!(e.kind(), ErrorKind::InvalidRequest);
            return;
        }
    };
    check(endpoint, &parsed);
    let forwarded = serde_json::to_vec(&parsed.body).unwrap_or_default();
    let again = match ingress::parse(endpoint, &forwarded) {
        Ok(p) => p,
        Err(e) => unreachable!("the forwarded body was refused: {e}"),
    };
    assert_eq!(
        (&again.model, again.stream, again.wants_usage),
        (&parsed.model, parsed.stream, parsed.wants_usage)
    );
    // The same fields; numbers are compared only as present: serde_json's
    // default float parse is not correctly rounded, so a 64-digit integer
    // read as 9.999999999999999e63 is written as that and read back as
    // 1e64 (a known loss, noted for `float_roundtrip`).
    assert_eq!(
        again.body.keys().collect::<Vec<_>>(),
        parsed.body.keys().collect::<Vec<_>>()
    );
    tag(header, mode & 0x20 != 0, &parsed.body);
});

/// `Shaper::chat_body`: the caller's body as an OpenAI chat body, or `None`
/// where the pipeline answers 400 before the parse.
fn chat_body(bytes: &[u8], is_responses: bool) -> Option<Vec<u8>> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    let chat = if is_responses {
        responses::to_chat(&body).ok()?
    } else {
        // Checked before translation, so the 400 names the caller's field.
        ingress::check_numbers(&body).ok()?;
        anthropic::from_anthropic(&body).ok()?
    };
    serde_json::to_vec(&chat).ok()
}

fn check(endpoint: Endpoint, p: &Parsed) {
    assert!(!p.model.is_empty());
    assert_eq!(p.body.get("model"), Some(&Value::String(p.model.clone())));
    assert_eq!(p.stream, p.body.get("stream") == Some(&Value::Bool(true)));
    if matches!(endpoint, Endpoint::Embeddings | Endpoint::Invocations) {
        assert!(!p.stream);
    }
    let usage = p
        .body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"));
    assert_eq!(p.wants_usage, usage == Some(&Value::Bool(true)));
    assert!(ingress::check_numbers(&p.body).is_ok());
}

/// `phase::ingress::tags`: the header must be visible ASCII text.
fn tag(header: Option<&[u8]>, metadata_on: bool, body: &Map<String, Value>) {
    let header = match header.map(http::HeaderValue::from_bytes) {
        Some(Ok(v)) => match v.to_str() {
            Ok(s) => Some(s.to_owned()),
            Err(_) => return,
        },
        Some(Err(_)) => return,
        None => None,
    };
    let metadata = match body.get("metadata") {
        Some(Value::Object(m)) if metadata_on => Some(m),
        _ => None,
    };
    let Ok(stored) = tags::encode("x-tags", header.as_deref(), metadata) else {
        return;
    };
    if stored.is_empty() {
        return;
    }
    let Ok(Value::Object(read)) = serde_json::from_str::<Value>(&stored) else {
        unreachable!("tags are not a JSON object: {stored}")
    };
    assert!(!read.is_empty() && read.len() <= tags::MAX_TAGS, "{stored}");
    for (name, value) in &read {
        let Value::String(v) = value else {
            unreachable!("a tag value is not a string: {stored}")
        };
        assert_eq!(tags::get(&stored, name).as_deref(), Some(v.as_str()));
    }
    assert_eq!(tags::to_value(&stored), Value::Object(read));
}
