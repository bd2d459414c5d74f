//! MCP JSON-RPC messages (`tollgate_mcp::wire`, compiled here on its own:
//! the MCP crate links reqwest and aws-lc, too large to build instrumented
//! in CI's time, and `wire.rs` needs only serde and tokio). The first byte
//! picks the side: even, a client's POST body as the gateway reads it
//! (`Incoming` → `classify`, then the params of `initialize`, `tools/call`
//! and `prompts/get`, and the error reply written back); odd, an upstream's
//! answer as Streamable HTTP sends it, split into SSE events in chunks of
//! `byte / 2` bytes (`tollgate_core::sse`), each event's data read as an
//! `UpstreamReply` whose result is taken as a list page (`Page`) and its
//! `tools` moved out one by one (`Tool::from_json`). Checks that a tool
//! moved out of its JSON is what serde's derive reads and goes back to the
//! same JSON (a `null` description aside).
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/tollgate-mcp/src/wire.rs"]
mod wire;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_core::sse::SseSplitter;
use wire::{
    CallToolParams, CallToolResult, GetPromptParams, Incoming, InitializeParams, Message, Page,
    Reply, RpcError, Tool, UpstreamReply,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        client(rest);
    } else {
        upstream(rest, usize::from(mode / 2).max(1));
    }
});

fn client(body: &[u8]) {
    let Ok(incoming) = serde_json::from_slice::<Incoming>(body) else {
        return;
    };
    match incoming.classify() {
        Ok(Message::Request { id, method, params }) => {
            let params = params.unwrap_or(Value::Null);
            match method.as_str() {
                "initialize" => drop(serde_json::from_value::<InitializeParams>(params)),
                "tools/call" => drop(serde_json::from_value::<CallToolParams>(params)),
                "prompts/get" => drop(serde_json::from_value::<GetPromptParams>(params)),
                _ => {}
            }
            assert!(id.is_string() || id.is_i64() || id.is_u64());
        }
        Ok(_) => {}
        Err((id, error)) => reply(&id, &error),
    }
}

fn reply(id: &Value, error: &RpcError) {
    let text = serde_json::to_string(&Reply {
        jsonrpc: "2.0",
        id,
        result: None,
        error: Some(error),
    })
    .unwrap_or_default();
    assert!(serde_json::from_str::<Value>(&text).is_ok());
}

fn upstream(bytes: &[u8], step: usize) {
    let mut splitter = SseSplitter::default();
    for chunk in bytes.chunks(step) {
        for event in splitter.push(chunk) {
            if let Ok(msg) = serde_json::from_str::<UpstreamReply>(&event.data()) {
                answer(msg);
            }
        }
    }
    // A body that is not an event stream is read whole as one message.
    if let Ok(msg) = serde_json::from_slice::<UpstreamReply>(bytes) {
        answer(msg);
    }
}

fn answer(msg: UpstreamReply) {
    if let Some(e) = &msg.error {
        reply(msg.id.as_ref().unwrap_or(&Value::Null), e);
    }
    let Some(result) = msg.result else {
        return;
    };
    let _ = serde_json::from_value::<CallToolResult>(result.clone());
    let Ok(mut page) = Page::from_json(result) else {
        return;
    };
    let Some(Value::Array(items)) = page.rest.remove("tools") else {
        return;
    };
    for v in items {
        let by_serde = serde_json::from_value::<Tool>(v.clone()).ok();
        let moved = Tool::from_json(v.clone());
        if let Some(t) = &moved {
            assert_eq!(Some(t), by_serde.as_ref());
            // Back to the same JSON, but for a `null` description, which
            // is read as absent.
            let mut v = v;
            if let Some(m) = v.as_object_mut() {
                if m.get("description") == Some(&Value::Null) {
                    m.remove("description");
                }
            }
            assert_eq!(Value::from(t.clone()), v);
        }
    }
}
