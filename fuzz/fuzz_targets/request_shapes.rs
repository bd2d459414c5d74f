//! Request and response bodies in every API shape the gateway accepts or
//! speaks upstream, through the translators: Anthropic Messages, Responses,
//! Gemini and Bedrock Converse to OpenAI chat and back. Bytes that are not
//! a JSON object are what ingress refuses before any translator runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_translate::{anthropic, bedrock, gemini, responses};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(o) = v.as_object() {
        // Ingress shapes into OpenAI chat, and OpenAI chat to each upstream.
        if let Ok(mut chat) = anthropic::from_anthropic(o) {
            let _ = anthropic::make_portable(&mut chat);
            let _ = anthropic::to_anthropic(&chat);
        }
        if let Ok(chat) = responses::to_chat(o) {
            let _ = gemini::request(&chat);
            let _ = bedrock::request(&chat);
        }
        let _ = anthropic::to_anthropic(o);
        let _ = gemini::request(o);
        let _ = gemini::embed_request(o, "m");
        let _ = bedrock::request(o);
        let _ = responses::from_chat(&v, o);
    }
    // Upstream answers into OpenAI, and OpenAI answers into each shape.
    let _ = anthropic::to_openai(&v);
    let _ = anthropic::from_openai(&v);
    let _ = gemini::response(&v, "m", 0);
    let _ = gemini::to_openai_request(&v, "m", true);
    let _ = gemini::from_openai_response(&v);
    let _ = gemini::embed_to_openai(&v, "m");
    let _ = bedrock::response(&v, "id", "m", 0);
    let _ = bedrock::to_openai_request(&v, "m", false);
    let _ = bedrock::from_openai_response(&v);
});
