//! What the OpenAI → Anthropic and OpenAI → Responses stream translators
//! read off one OpenAI chunk event, from either of its two forms: the typed
//! chunk (`tollgate_core::wire::chat::ChatChunk`, which the gateway's
//! stream parses once for all its observers, the translator last), or, for
//! an event that is not one (JSON whose fields do not have a chunk's types,
//! or JSON that is not an object), its JSON as sent, read leniently: a
//! field of another type reads as absent, except where a translator copies
//! the value into its own event as sent ([`Sent`]). Both forms of the same
//! event read the same, so a translator answers alike whichever form it
//! was handed.
//!
//! Owns: the reading, the usage counters both translators report. Must
//! not: translate (the translators do), or parse an event the caller has
//! parsed already.

use serde_json::{json, Value};
use tollgate_core::wire::chat::{ChatChunk, ChunkChoice, Delta, ThinkingBlock, ToolCall};
use tollgate_core::wire::{Field, Usage};

static NULL: Value = Value::Null;

/// One event's `data` as a translator is handed it.
pub(crate) enum Data {
    /// `[DONE]`.
    Done,
    Chunk(Box<ChatChunk>),
    /// Anything else: not JSON, or JSON that is not a typed chunk.
    Other,
}

impl Data {
    /// Classifies an event's `data` (the translators' `on_data`, for
    /// callers that have not parsed it).
    pub(crate) fn parse(data: &str) -> Self {
        if data == "[DONE]" {
            return Data::Done;
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(c) => Data::Chunk(Box::new(c)),
            Err(_) => Data::Other,
        }
    }
}

/// A stream translator's entry points (`on_data`, `on_chunk`,
/// `on_untyped`, `on_done`) over its `on_read(&Chunk, out)` and
/// `finish(out)`.
macro_rules! chunk_entry_points {
    () => {
        /// Translates one chat event's `data` (`[DONE]` included), for a
        /// caller that has not parsed it.
        pub fn on_data(&mut self, data: &str, out: &mut Vec<u8>) {
            match $crate::chunk_read::Data::parse(data) {
                $crate::chunk_read::Data::Done => self.on_done(out),
                $crate::chunk_read::Data::Chunk(chunk) => self.on_chunk(&chunk, out),
                $crate::chunk_read::Data::Other => self.on_untyped(data, out),
            }
        }

        /// Translates one typed chunk.
        pub fn on_chunk(
            &mut self,
            chunk: &tollgate_core::wire::chat::ChatChunk,
            out: &mut Vec<u8>,
        ) {
            self.on_read(&$crate::chunk_read::Chunk::typed(chunk), out);
        }

        /// Translates an event that is not a typed chunk: JSON is read
        /// leniently; anything else is skipped.
        pub fn on_untyped(&mut self, data: &str, out: &mut Vec<u8>) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
                self.on_read(&$crate::chunk_read::Chunk::json(&v), out);
            }
        }

        /// `[DONE]`: what is open is closed, and the stream ends.
        pub fn on_done(&mut self, out: &mut Vec<u8>) {
            self.finish(out);
        }
    };
}
pub(crate) use chunk_entry_points;

/// A value a translator copies into its events as the upstream sent it.
#[derive(Clone, Copy)]
pub(crate) enum Sent<'a> {
    Absent,
    Null,
    Text(&'a str),
    /// Of another type than text (untyped events only).
    Other(&'a Value),
}

impl<'a> Sent<'a> {
    fn typed(f: &'a Field<String>) -> Self {
        match f {
            Field::Absent => Sent::Absent,
            Field::Null => Sent::Null,
            Field::Set(s) => Sent::Text(s),
        }
    }

    fn json(v: Option<&'a Value>) -> Self {
        match v {
            None => Sent::Absent,
            Some(Value::Null) => Sent::Null,
            Some(Value::String(s)) => Sent::Text(s),
            Some(v) => Sent::Other(v),
        }
    }

    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self {
            Sent::Text(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_absent(self) -> bool {
        matches!(self, Sent::Absent)
    }

    /// Sent, and not `null`.
    pub(crate) fn is_set(self) -> bool {
        matches!(self, Sent::Text(_) | Sent::Other(_))
    }

    /// The value as sent; absent reads as `null`.
    pub(crate) fn to_value(self) -> Value {
        match self {
            Sent::Absent | Sent::Null => Value::Null,
            Sent::Text(s) => Value::String(s.to_string()),
            Sent::Other(v) => v.clone(),
        }
    }
}

/// One chunk event, read.
pub(crate) struct Chunk<'a> {
    source: Source<'a>,
    /// Its `error` (`null` included: an error event all the same).
    pub(crate) error: Option<&'a Value>,
    pub(crate) id: Sent<'a>,
    pub(crate) model: Sent<'a>,
    /// Its `usage`, unless absent or `null`.
    pub(crate) usage: Option<Tokens>,
    /// Its first choice.
    pub(crate) choice: Option<Choice<'a>>,
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Typed(&'a ChatChunk),
    Json(&'a Value),
}

impl<'a> Chunk<'a> {
    pub(crate) fn typed(c: &'a ChatChunk) -> Self {
        Self {
            source: Source::Typed(c),
            error: match &c.error {
                Field::Absent => None,
                Field::Null => Some(&NULL),
                Field::Set(e) => Some(e),
            },
            id: Sent::typed(&c.id),
            model: Sent::typed(&c.model),
            usage: c.usage.get().map(Tokens::typed),
            choice: c.choices.get().and_then(|c| c.first()).map(Choice::typed),
        }
    }

    pub(crate) fn json(v: &'a Value) -> Self {
        Self {
            source: Source::Json(v),
            error: v.get("error"),
            id: Sent::json(v.get("id")),
            model: Sent::json(v.get("model")),
            usage: v.get("usage").filter(|u| !u.is_null()).map(Tokens::json),
            choice: v.get("choices").and_then(|c| c.get(0)).map(Choice::json),
        }
    }

    /// Nothing at all: how a stream that ends before any chunk starts.
    pub(crate) fn none() -> Self {
        Self::json(&NULL)
    }

    /// Its `type` is `error` (an Anthropic error event relayed as is).
    pub(crate) fn is_error_type(&self) -> bool {
        let kind = match self.source {
            Source::Typed(c) => c.rest.get("type"),
            Source::Json(v) => v.get("type"),
        };
        kind.and_then(Value::as_str) == Some("error")
    }

    /// The whole event as sent.
    pub(crate) fn whole(&self) -> Value {
        match self.source {
            Source::Typed(c) => serde_json::to_value(c).unwrap_or(Value::Null),
            Source::Json(v) => v.clone(),
        }
    }
}

/// A chunk's first choice, read.
pub(crate) struct Choice<'a> {
    delta: Option<DeltaSource<'a>>,
    pub(crate) reasoning: Option<&'a str>,
    pub(crate) content: Option<&'a str>,
    pub(crate) finish: Sent<'a>,
    /// The Anthropic stop reason extension.
    pub(crate) stop_reason: Sent<'a>,
    pub(crate) stop_sequence: Sent<'a>,
}

#[derive(Clone, Copy)]
enum DeltaSource<'a> {
    Typed(&'a Delta),
    Json(&'a Value),
}

impl<'a> Choice<'a> {
    fn typed(c: &'a ChunkChoice) -> Self {
        let delta = c.delta.get();
        Self {
            delta: delta.map(DeltaSource::Typed),
            reasoning: delta
                .and_then(|d| d.reasoning_content.get())
                .map(String::as_str),
            content: delta.and_then(|d| d.content.get()).map(String::as_str),
            finish: Sent::typed(&c.finish_reason),
            stop_reason: Sent::typed(&c.stop_reason),
            stop_sequence: Sent::typed(&c.stop_sequence),
        }
    }

    fn json(c: &'a Value) -> Self {
        let d = c.get("delta");
        Self {
            delta: d.map(DeltaSource::Json),
            reasoning: d
                .and_then(|d| d.get("reasoning_content"))
                .and_then(Value::as_str),
            content: d.and_then(|d| d.get("content")).and_then(Value::as_str),
            finish: Sent::json(c.get("finish_reason")),
            stop_reason: Sent::json(c.get("stop_reason")),
            stop_sequence: Sent::json(c.get("stop_sequence")),
        }
    }

    /// One of the delta's lists, from whichever form it came in.
    fn list<T>(
        &self,
        typed: fn(&'a Delta) -> &'a Field<Vec<T>>,
        key: &str,
    ) -> (&'a [T], &'a [Value]) {
        match self.delta {
            Some(DeltaSource::Typed(d)) => (typed(d).get().map_or(&[], Vec::as_slice), &[]),
            Some(DeltaSource::Json(d)) => (
                &[],
                d.get(key)
                    .and_then(Value::as_array)
                    .map_or(&[], Vec::as_slice),
            ),
            None => (&[], &[]),
        }
    }

    /// The delta's thinking blocks, in order.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = Block<'a>> {
        let (typed, json) = self.list(|d| &d.thinking_blocks, "thinking_blocks");
        typed
            .iter()
            .map(Block::Typed)
            .chain(json.iter().map(Block::Json))
    }

    /// The delta's tool-call pieces, in order.
    pub(crate) fn calls(&self) -> impl Iterator<Item = Call<'a>> {
        let (typed, json) = self.list(|d| &d.tool_calls, "tool_calls");
        typed
            .iter()
            .map(Call::typed)
            .chain(json.iter().map(Call::json))
    }
}

/// One thinking block of a delta.
#[derive(Clone, Copy)]
pub(crate) enum Block<'a> {
    Typed(&'a ThinkingBlock),
    Json(&'a Value),
}

impl Block<'_> {
    pub(crate) fn kind(&self) -> Option<&str> {
        match self {
            Block::Typed(b) => b.kind.get().map(String::as_str),
            Block::Json(b) => b.get("type").and_then(Value::as_str),
        }
    }

    pub(crate) fn signature(&self) -> Option<&str> {
        match self {
            Block::Typed(b) => b.signature.get().map(String::as_str),
            Block::Json(b) => b.get("signature").and_then(Value::as_str),
        }
    }

    /// The block as sent.
    pub(crate) fn whole(&self) -> Value {
        match self {
            Block::Typed(b) => serde_json::to_value(b).unwrap_or(Value::Null),
            Block::Json(b) => (*b).clone(),
        }
    }
}

/// One tool-call piece of a delta.
pub(crate) struct Call<'a> {
    /// Which call it continues (`0` when unsaid).
    pub(crate) index: u64,
    pub(crate) id: Sent<'a>,
    pub(crate) name: Sent<'a>,
    pub(crate) arguments: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn typed(c: &'a ToolCall) -> Self {
        let f = c.function.get();
        Self {
            index: c.index.get().copied().unwrap_or(0),
            id: Sent::typed(&c.id),
            name: f.map_or(Sent::Absent, |f| Sent::typed(&f.name)),
            arguments: f.and_then(|f| f.arguments.get()).map(String::as_str),
        }
    }

    fn json(c: &'a Value) -> Self {
        Self {
            index: c.get("index").and_then(Value::as_u64).unwrap_or(0),
            id: Sent::json(c.get("id")),
            name: Sent::json(c.pointer("/function/name")),
            arguments: c.pointer("/function/arguments").and_then(Value::as_str),
        }
    }
}

/// The usage counters the translators report (`0` when absent, `null` or
/// not a count).
#[derive(Clone, Copy, Default)]
pub(crate) struct Tokens {
    prompt: u64,
    completion: u64,
    /// `prompt_tokens_details.cached_tokens`.
    cached: u64,
    /// `prompt_tokens_details.cache_creation_tokens`.
    cache_creation: u64,
    /// `completion_tokens_details.reasoning_tokens`.
    reasoning: u64,
}

fn count(n: &Field<i64>) -> u64 {
    n.get().and_then(|n| u64::try_from(*n).ok()).unwrap_or(0)
}

impl Tokens {
    fn typed(u: &Usage) -> Self {
        let prompt = u.prompt_tokens_details.get();
        Self {
            prompt: count(&u.prompt_tokens),
            completion: count(&u.completion_tokens),
            cached: prompt.map_or(0, |d| count(&d.cached_tokens)),
            cache_creation: prompt.map_or(0, |d| count(&d.cache_creation_tokens)),
            reasoning: u
                .completion_tokens_details
                .get()
                .map_or(0, |d| count(&d.reasoning_tokens)),
        }
    }

    /// OpenAI `usage` as sent.
    pub(crate) fn json(u: &Value) -> Self {
        let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        Self {
            prompt: n("/prompt_tokens"),
            completion: n("/completion_tokens"),
            cached: n("/prompt_tokens_details/cached_tokens"),
            cache_creation: n("/prompt_tokens_details/cache_creation_tokens"),
            reasoning: n("/completion_tokens_details/reasoning_tokens"),
        }
    }

    /// Anthropic's usage. OpenAI's `prompt_tokens` counts cached input
    /// too, so Anthropic's `input_tokens` is what is left of it.
    pub(crate) fn anthropic(&self) -> Value {
        let (read, created) = (self.cached, self.cache_creation);
        json!({
            "input_tokens": self.prompt.saturating_sub(read + created),
            "output_tokens": self.completion,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        })
    }

    /// The Responses API's usage.
    pub(crate) fn responses(&self) -> Value {
        json!({
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": self.cached},
            "output_tokens": self.completion,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.prompt + self.completion,
        })
    }
}
