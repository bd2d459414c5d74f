//! Restoring a request's input placeholders in its answer, for policies
//! with `restore` on: the model saw `[EMAIL_1]`, the caller reads its own
//! address back. This runs after the output guardrails and the cache fill
//! have seen the answer as the model wrote it (so a restored value is
//! never re-masked, and a cached answer holds placeholders only), and
//! before the answer is translated into the caller's shape. Whole answers
//! are restored where their text is (`response_texts`); a stream chunk by
//! chunk, each choice's text and each tool call's arguments on their own,
//! holding back only the start of a placeholder split across chunks.

use std::collections::HashMap;

use serde_json::Value;
use tollgate_core::wire::chat::{ChatChunk, ChunkChoice, Delta, Function, ToolCall};
use tollgate_core::wire::Field;
use tollgate_guardrails::{RestoreStream, Restorer};

use super::texts::response_texts;

/// A whole OpenAI-shaped answer with its placeholders restored; `None`
/// when it holds none (or is not JSON).
pub fn restore_output(restorer: &Restorer, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for text in response_texts(&mut value) {
        if let Some(restored) = restorer.restore(text) {
            *text = restored;
            changed = true;
        }
    }
    if changed {
        serde_json::to_vec(&value).ok()
    } else {
        None
    }
}

/// Which text stream of an answer: a choice's content, or one of its
/// tool calls' arguments.
type Slot = (u64, Option<u64>);

/// A streamed answer's restoring state.
pub struct StreamRestore {
    restorer: Restorer,
    streams: HashMap<Slot, RestoreStream>,
    /// The first chunk's `id`, `model` and other top-level fields, for a
    /// chunk that carries what is still held when the stream ends.
    template: Option<ChatChunk>,
    /// The answer is a completion (`choices[].text`), not a chat delta.
    completion: bool,
}

impl StreamRestore {
    pub fn new(restorer: Restorer) -> Self {
        Self {
            restorer,
            streams: HashMap::new(),
            template: None,
            completion: false,
        }
    }

    /// `text` as the caller sees it; whether it changed. With `finish`,
    /// whatever the slot still holds is released too.
    fn pass(&mut self, slot: Slot, text: &mut String, finish: bool) -> bool {
        if !self.holding(slot) && !text.contains('[') {
            return false;
        }
        let stream = self.streams.entry(slot).or_default();
        let mut out = stream.push(&self.restorer, text);
        if finish {
            out.push_str(&stream.finish());
        }
        if out == *text {
            return false;
        }
        *text = out;
        true
    }

    fn holding(&self, slot: Slot) -> bool {
        self.streams
            .get(&slot)
            .is_some_and(RestoreStream::is_holding)
    }

    /// What a slot still holds, released (a choice finished).
    fn release(&mut self, slot: Slot) -> String {
        self.streams
            .get_mut(&slot)
            .map(RestoreStream::finish)
            .unwrap_or_default()
    }

    /// Restores one parsed chunk in place; whether it changed.
    pub fn on_chunk(&mut self, chunk: &mut ChatChunk) -> bool {
        if self.template.is_none() {
            self.template = Some(ChatChunk {
                id: chunk.id.clone(),
                model: chunk.model.clone(),
                rest: chunk.rest.clone(),
                ..ChatChunk::default()
            });
        }
        let Some(choices) = chunk.choices.get_mut() else {
            return false;
        };
        let mut changed = false;
        for c in choices.iter_mut() {
            let index = c.index.get().copied().unwrap_or(0);
            let finish = c.finish_reason.get().is_some();
            let text_slot = if !c.text.is_absent() {
                self.completion = true;
                c.text.get_mut()
            } else {
                let holding = finish && self.holding((index, None));
                c.delta.get_mut().and_then(|d| {
                    // A finishing chunk without content carries the tail.
                    if holding && d.content.is_absent() {
                        d.content = Field::Set(String::new());
                    }
                    d.content.get_mut()
                })
            };
            if let Some(text) = text_slot {
                changed |= self.pass((index, None), text, finish);
            }
            let mut seen = Vec::new();
            let calls = c.delta.get_mut().and_then(|d| d.tool_calls.get_mut());
            for call in calls.into_iter().flatten() {
                let ti = call.index.get().copied().unwrap_or(0);
                seen.push(ti);
                if let Some(args) = call.function.get_mut().and_then(|f| f.arguments.get_mut()) {
                    changed |= self.pass((index, Some(ti)), args, finish);
                }
            }
            if finish {
                changed |= self.finish_tools(index, &seen, c);
            }
        }
        changed
    }

    /// A finishing choice's tool calls that still hold text and had no
    /// piece in this chunk: their tails added to its delta.
    fn finish_tools(&mut self, index: u64, seen: &[u64], c: &mut ChunkChoice) -> bool {
        let mut held: Vec<u64> = self
            .streams
            .iter()
            .filter(|((i, t), s)| {
                *i == index && s.is_holding() && t.is_some_and(|t| !seen.contains(&t))
            })
            .filter_map(|((_, t), _)| *t)
            .collect();
        if held.is_empty() {
            return false;
        }
        held.sort_unstable();
        let tails: Vec<ToolCall> = held
            .into_iter()
            .map(|ti| tool_tail(ti, self.release((index, Some(ti)))))
            .collect();
        let delta = match &mut c.delta {
            Field::Set(d) => d,
            other => {
                *other = Field::Set(Delta::default());
                match other.get_mut() {
                    Some(d) => d,
                    None => return false,
                }
            }
        };
        match delta.tool_calls.get_mut() {
            Some(calls) => calls.extend(tails),
            None => delta.tool_calls = Field::Set(tails),
        }
        true
    }

    /// When the stream ends (`[DONE]`) while text is still held because
    /// no chunk finished its choice: one more chunk's JSON carrying it.
    pub fn leftover(&mut self) -> Option<String> {
        let mut slots: Vec<Slot> = self
            .streams
            .iter()
            .filter(|(_, s)| s.is_holding())
            .map(|(slot, _)| *slot)
            .collect();
        if slots.is_empty() {
            return None;
        }
        slots.sort_unstable();
        let mut choices: Vec<ChunkChoice> = Vec::new();
        for (index, tool) in slots {
            let held = self.release((index, tool));
            let mut choice = ChunkChoice {
                index: Field::Set(index),
                ..ChunkChoice::default()
            };
            match tool {
                None if self.completion => choice.text = Field::Set(held),
                None => {
                    choice.delta = Field::Set(Delta {
                        content: Field::Set(held),
                        ..Delta::default()
                    })
                }
                Some(ti) => {
                    choice.delta = Field::Set(Delta {
                        tool_calls: Field::Set(vec![tool_tail(ti, held)]),
                        ..Delta::default()
                    })
                }
            }
            choices.push(choice);
        }
        let mut chunk = self.template.take().unwrap_or_default();
        chunk.choices = Field::Set(choices);
        serde_json::to_string(&chunk).ok()
    }
}

fn tool_tail(index: u64, arguments: String) -> ToolCall {
    ToolCall {
        index: Field::Set(index),
        function: Field::Set(Function {
            arguments: Field::Set(arguments),
            ..Function::default()
        }),
        ..ToolCall::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tollgate_guardrails::{Builtin, DetectorSet, DetectorSpec, Masker};

    fn restorer() -> Restorer {
        let d = DetectorSet::new(&DetectorSpec {
            builtins: vec![Builtin::Email],
            entropy_threshold: 3.8,
            ..DetectorSpec::default()
        })
        .unwrap();
        let mut m = Masker::default();
        let text = "a@x.io";
        m.mask_restorable(text, &d.scan(text));
        m.restorer().unwrap()
    }

    fn chunk(v: Value) -> ChatChunk {
        serde_json::from_value(v).unwrap()
    }

    /// The first choice's `delta.content`.
    fn content(c: &ChatChunk) -> &str {
        let delta = c.choices.get().unwrap()[0].delta.get().unwrap();
        delta.content.get().unwrap()
    }

    #[test]
    fn whole_answer_content_and_tool_arguments() {
        let body = json!({"choices": [{"message": {"content": "hi [EMAIL_1]",
            "tool_calls": [{"function": {"arguments": "{\"to\":\"[EMAIL_1]\"}"}}]}}]});
        let out = restore_output(&restorer(), body.to_string().as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi a@x.io");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"to\":\"a@x.io\"}"
        );
        assert!(restore_output(&restorer(), b"{\"choices\":[]}").is_none());
    }

    #[test]
    fn split_placeholder_is_held_then_flushed_at_finish_or_done() {
        let mut s = StreamRestore::new(restorer());
        let mut c1 = chunk(json!({"id": "x", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "to [EMA"}}]}));
        assert!(s.on_chunk(&mut c1));
        assert_eq!(content(&c1), "to ");
        let mut c2 =
            chunk(json!({"choices": [{"index": 0, "delta": {"content": "IL_1] ok [EM"}}]}));
        s.on_chunk(&mut c2);
        assert_eq!(content(&c2), "a@x.io ok ");
        let mut end =
            chunk(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
        assert!(s.on_chunk(&mut end));
        assert_eq!(content(&end), "[EM");
        assert!(s.leftover().is_none());

        // No finishing chunk: the held text leaves in one more chunk.
        let mut s = StreamRestore::new(restorer());
        let mut c = chunk(json!({"id": "x", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"to\":\"[EMAIL_"}}]}}]}));
        s.on_chunk(&mut c);
        let last: Value = serde_json::from_str(&s.leftover().unwrap()).unwrap();
        assert_eq!(last["id"], "x");
        assert_eq!(last["object"], "chat.completion.chunk");
        assert_eq!(
            last["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "[EMAIL_"
        );
    }
}
