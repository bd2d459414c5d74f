//! OpenAI chat chunks → Responses streaming events: `response.created`,
//! `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`/`.done`,
//! `response.function_call_arguments.delta`/`.done`,
//! `response.output_item.done`, `response.completed` (or `.incomplete`),
//! and `error`. Each chunk comes typed (`on_chunk`: the gateway's stream
//! parsed it once for all its observers), as `[DONE]` (`on_done`), or as
//! an event that is not a typed chunk (`on_untyped`); `on_data` sorts an
//! unparsed event's data into one of those.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{envelope, response_id, set_status};
use crate::chunk_read::Chunk;
use crate::named_event;

struct Call {
    output_index: usize,
    item: Value,
}

pub struct ResponsesStream {
    request: Map<String, Value>,
    seq: u64,
    response: Option<Value>,
    /// Finished output items, by output index.
    items: BTreeMap<usize, Value>,
    next_output: usize,
    /// The open text message: (output index, item id, text so far).
    text: Option<(usize, String, String)>,
    /// Open function calls by chat tool-call index.
    calls: BTreeMap<u64, Call>,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

/// The `error` event numbered `sequence`: how a failure after a Responses
/// stream began reaches the caller (the gateway's edge writes it).
pub fn error_event(
    out: &mut Vec<u8>,
    sequence: u64,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) {
    let mut data = json!({"code": code, "message": message, "param": param});
    data["type"] = json!("error");
    data["sequence_number"] = json!(sequence);
    named_event(out, "error", &data);
}

impl ResponsesStream {
    /// The number the next event takes (an error event ending the stream).
    pub fn next_sequence(&self) -> u64 {
        self.seq
    }

    /// `request` is the caller's Responses request (echoed in the response object).
    pub fn new(request: Map<String, Value>) -> Self {
        Self {
            request,
            seq: 0,
            response: None,
            items: BTreeMap::new(),
            next_output: 0,
            text: None,
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        named_event(out, kind, &data);
    }

    fn start(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if self.response.is_some() {
            return;
        }
        let id = response_id(chunk.id.as_str());
        let resp = envelope(&id, &self.request, &chunk.model.to_value(), "in_progress");
        self.response = Some(resp.clone());
        self.emit(out, "response.created", json!({"response": resp.clone()}));
        self.emit(out, "response.in_progress", json!({"response": resp}));
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        let Some((index, id, text)) = self.text.take() else {
            return;
        };
        let part = json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
        self.emit(
            out,
            "response.output_text.done",
            json!({"item_id": id,
            "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id,
            "output_index": index, "content_index": 0, "part": part}),
        );
        let item = json!({"type": "message", "id": id, "status": "completed",
            "role": "assistant", "content": [part]});
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.items.insert(index, item);
    }

    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for (_, mut call) in std::mem::take(&mut self.calls) {
            call.item["status"] = json!("completed");
            let (index, item) = (call.output_index, call.item);
            self.emit(
                out,
                "response.function_call_arguments.done",
                json!({
                "item_id": item["id"], "output_index": index, "arguments": item["arguments"]}),
            );
            self.emit(
                out,
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            );
            self.items.insert(index, item);
        }
    }

    crate::chunk_read::chunk_entry_points!();

    fn on_read(&mut self, chunk: &Chunk, out: &mut Vec<u8>) {
        if let Some(e) = chunk.error {
            self.emit(
                out,
                "error",
                json!({"code": e.get("code"), "message": e.get("message"),
                "param": e.get("param")}),
            );
            return;
        }
        self.start(chunk, out);
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.responses());
        }
        let Some(choice) = &chunk.choice else {
            return;
        };
        if let Some(t) = choice.content.filter(|t| !t.is_empty()) {
            if self.text.is_none() {
                let index = self.next_output;
                self.next_output += 1;
                let resp_id = self
                    .response
                    .as_ref()
                    .map_or("", |r| r["id"].as_str().unwrap_or(""));
                let id = format!("msg_{resp_id}");
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": index,
                    "item": {"type": "message", "id": id, "status": "in_progress",
                        "role": "assistant", "content": []}}),
                );
                self.emit(out, "response.content_part.added", json!({"item_id": id,
                    "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}));
                self.text = Some((index, id, String::new()));
            }
            if let Some((index, id, text)) = self.text.as_mut() {
                text.push_str(t);
                let ev = json!({"item_id": id, "output_index": index, "content_index": 0,
                    "delta": t, "logprobs": []});
                self.emit(out, "response.output_text.delta", ev);
            }
        }
        for c in choice.calls() {
            let k = c.index;
            if !self.calls.contains_key(&k) {
                self.close_text(out);
                let call_id = c.id.as_str().unwrap_or("").to_string();
                let item = json!({"type": "function_call", "id": format!("fc_{call_id}"),
                    "call_id": call_id, "name": c.name.to_value(),
                    "arguments": "", "status": "in_progress"});
                let index = self.next_output;
                self.next_output += 1;
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": index, "item": item.clone()}),
                );
                self.calls.insert(
                    k,
                    Call {
                        output_index: index,
                        item,
                    },
                );
            }
            let args = c.arguments.unwrap_or("");
            if args.is_empty() {
                continue;
            }
            let Some(call) = self.calls.get_mut(&k) else {
                continue;
            };
            let joined = format!("{}{args}", call.item["arguments"].as_str().unwrap_or(""));
            call.item["arguments"] = json!(joined);
            let ev = json!({"item_id": call.item["id"], "output_index": call.output_index,
                "delta": args});
            self.emit(out, "response.function_call_arguments.delta", ev);
        }
        if let Some(f) = choice.finish.as_str() {
            self.finish = Some(f.to_string());
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        self.start(&Chunk::none(), out);
        self.close_text(out);
        self.close_calls(out);
        let mut resp = self.response.take().unwrap_or(Value::Null);
        resp["output"] = Value::Array(std::mem::take(&mut self.items).into_values().collect());
        resp["usage"] = self.usage.take().unwrap_or(Value::Null);
        set_status(&mut resp, self.finish.as_deref());
        let kind = if resp["status"] == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, kind, json!({"response": resp}));
    }
}
