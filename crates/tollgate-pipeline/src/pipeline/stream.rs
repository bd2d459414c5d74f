//! Streaming responses: upstream SSE bytes leave as soon as each event is
//! complete (never buffered whole). Each event is parsed once into the
//! typed chunk (`tollgate_core::wire::chat::ChatChunk`) and handed to the
//! observers in order: usage accounting, the output guardrail, the cache
//! fill, then the restoring of input placeholders (so the guardrail and
//! the cache see the answer as the model wrote it), and last, for a
//! caller speaking another shape (Anthropic Messages, Responses), the
//! shape translation (`shape::Translator`), whose events leave instead of
//! the OpenAI ones. The total deadline applies between chunks. A failure
//! after the first byte ends the stream with a typed `StreamError` (the
//! events approved before it, in the caller's shape, and for Responses the
//! number its event takes), which the edge renders as an error event in
//! the caller's shape. The accounting state is a guard: if the caller goes
//! away, its `Drop` still records the request (status 499, tokens seen so
//! far).

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use tollgate_core::wire::chat::{ChatChunk, ChunkFacts, ChunkPeek};

use crate::error::GatewayError;
use crate::reply::StreamError;
use tollgate_llm::providers::ProviderError;
use tollgate_policy::guard::{ChunkRewrite, Rewrite, StreamGuard, StreamRestore};

use super::context::Usage;
use super::finish::Finish;
use super::shape::Translator;
use super::sse::{SseSplitter, MAX_EVENT_BYTES};
use super::tokens;

#[derive(Deserialize, Clone, Copy)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: Option<i64>,
    #[serde(default)]
    pub completion_tokens: Option<i64>,
}

/// One event's `data`, parsed once for every observer.
enum Event<'a> {
    /// `[DONE]`.
    Done,
    /// Not JSON (a comment-like payload): forwarded, observed by no one.
    Opaque,
    Chunk(Box<ChatChunk>),
    /// Read for accounting only: no observer keeps or rewrites the chunk.
    Peek(ChunkPeek<'a>),
    /// JSON whose fields do not have a chunk's types: forwarded; the output
    /// guardrail reads it leniently, and it spoils the cache entry.
    Untyped,
}

impl<'a> Event<'a> {
    /// `whole`: an observer keeps or rewrites the chunk (output guardrail,
    /// cache fill), so it is parsed whole, unknown fields included.
    fn parse(data: &'a str, whole: bool) -> Self {
        if data == "[DONE]" {
            Event::Done
        } else if !data.starts_with('{') {
            Event::Opaque
        } else if whole {
            match serde_json::from_str::<ChatChunk>(data) {
                Ok(c) => Event::Chunk(Box::new(c)),
                Err(_) => Event::Untyped,
            }
        } else {
            match serde_json::from_str::<ChunkPeek<'a>>(data) {
                Ok(c) => Event::Peek(c),
                Err(_) => Event::Untyped,
            }
        }
    }
}

/// One `data:` event.
fn data_event(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Holds the request's accounting until the stream ends one way or another.
struct Accounting {
    /// The request's end (`finish.rs`), run when the stream ends.
    fin: Finish,
    /// The caller's request body, parsed again only if tokens must be estimated.
    request: Bytes,
    completion_text: String,
    /// How much of `completion_text` the limits have been charged for.
    metered: usize,
    usage: Option<WireUsage>,
}

impl Accounting {
    fn settle(&mut self, status: u16, error: &'static str) {
        let Accounting {
            fin,
            request,
            completion_text,
            usage,
            ..
        } = self;
        fin.end(|app, ctx| {
            ctx.status = status;
            if !error.is_empty() {
                ctx.error = error;
            } else if !ctx.error.is_empty() {
                // The upstream sent an error event inside a stream it then closed.
                ctx.status = 502;
            }
            ctx.usage = match *usage {
                Some(u) => Usage {
                    prompt: u.prompt_tokens.unwrap_or(0),
                    completion: u.completion_tokens.unwrap_or(0),
                    estimated: false,
                },
                None => Usage {
                    prompt: tokens::prompt_tokens_of(request),
                    completion: tokens::count(completion_text),
                    estimated: true,
                },
            };
            if ctx.status == 200 && ctx.error.is_empty() {
                // A complete answer is cached; a partial one never is.
                if let (Some(fill), Some(route)) = (ctx.cache.fill.take(), ctx.route.as_ref()) {
                    if let Some(body) = fill.finish(ctx.usage.prompt, ctx.usage.completion) {
                        let meta = super::respond::cache_meta(route, ctx.usage);
                        app.cache.store(&mut ctx.cache, meta, body.into());
                    }
                }
            }
        });
    }
}

impl Accounting {
    /// Charges the limits for the tokens that arrived since the last call;
    /// an error means a cap with `stream_overrun: cut` would be crossed.
    async fn meter(&mut self) -> Result<(), tollgate_policy::limits::LimitError> {
        let Some(ctx) = self.fin.ctx() else {
            return Ok(());
        };
        let (Some(adm), Some(route)) = (ctx.admission.as_mut(), ctx.route.as_ref()) else {
            return Ok(());
        };
        if !adm.meters_stream() || self.metered >= self.completion_text.len() {
            return Ok(());
        }
        let fresh = tokens::count(self.completion_text.get(self.metered..).unwrap_or(""));
        self.metered = self.completion_text.len();
        let price = route.price;
        adm.extend(fresh, &price).await
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        self.settle(499, "client_closed");
    }
}

/// Why a stream ends early: the upstream failed, or an output guardrail
/// blocked (with the bytes already approved in the same read).
enum StreamStop {
    Provider(ProviderError),
    Guard(tollgate_policy::guard::GuardError, Bytes),
}

/// What a stream does besides accounting, each an observer of every event.
pub(super) struct Observers {
    /// The gateway asked for usage the caller did not: drop the usage-only chunk.
    pub(super) strip_usage: bool,
    /// Output guardrails over the streamed text (hold-back window, masking, block).
    pub(super) guard: Option<StreamGuard>,
    /// Input placeholders turned back into the caller's values (`restore`).
    pub(super) restore: Option<StreamRestore>,
    /// The caller's shape, when it is not OpenAI's: the events leave re-framed.
    pub(super) shape: Option<Translator>,
}

/// The events one read forwards.
#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    /// An event was forwarded (a translator may have written nothing for it).
    any: bool,
}

struct State {
    upstream: BoxStream<'static, Result<Bytes, ProviderError>>,
    splitter: SseSplitter,
    acct: Accounting,
    deadline: tokio::time::Instant,
    provider: String,
    /// The gateway asked for usage the caller did not: drop the usage-only chunk.
    strip_usage: bool,
    /// Output guardrails over the streamed text (hold-back window, masking, block).
    guard: Option<StreamGuard>,
    /// Input placeholders turned back into the caller's values (`restore`).
    restore: Option<StreamRestore>,
    /// The caller's shape, when it is not OpenAI's.
    shape: Option<Translator>,
    saw_done: bool,
    ended: bool,
}

pub(super) fn observe(
    mut fin: Finish,
    request: Bytes,
    upstream: BoxStream<'static, Result<Bytes, ProviderError>>,
    deadline: tokio::time::Instant,
    observers: Observers,
) -> BoxStream<'static, Result<Bytes, StreamError>> {
    let Observers {
        strip_usage,
        guard,
        restore,
        shape,
    } = observers;
    let provider = fin
        .ctx()
        .and_then(|c| c.route.as_ref())
        .map(|r| r.provider_name.clone())
        .unwrap_or_default();
    let state = State {
        upstream,
        splitter: SseSplitter::default(),
        acct: Accounting {
            fin,
            request,
            completion_text: String::new(),
            metered: 0,
            usage: None,
        },
        deadline,
        provider,
        strip_usage,
        guard,
        restore,
        shape,
        saw_done: false,
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            let next = tokio::time::timeout_at(st.deadline, st.upstream.next()).await;
            // The number the translator's next event takes before this read:
            // a read whose events are never sent (a limit cut them) must not
            // count.
            let mut sequence = st.shape.as_ref().and_then(Translator::sequence);
            let (err, approved) = match next {
                Ok(Some(Ok(chunk))) => match st.on_chunk(&chunk) {
                    Ok(Some(out)) => match st.acct.meter().await {
                        // A translator may have written nothing for the events.
                        Ok(()) if out.is_empty() => continue,
                        Ok(()) => return Some((Ok(out), st)),
                        Err(e) => (GatewayError::from(e), Bytes::new()),
                    },
                    Ok(None) => continue,
                    Err(StreamStop::Provider(e)) => (GatewayError::from(e), Bytes::new()),
                    Err(StreamStop::Guard(e, approved)) => {
                        // The approved events went through the translator.
                        sequence = st.shape.as_ref().and_then(Translator::sequence);
                        (GatewayError::from(e), approved)
                    }
                },
                Ok(Some(Err(e))) => (GatewayError::from(e), Bytes::new()),
                Ok(None) if st.saw_done => {
                    st.ended = true;
                    if let Some(g) = st.guard.as_mut() {
                        if let Some(ctx) = st.acct.fin.ctx() {
                            ctx.verdicts.append(&mut g.take_verdicts());
                        }
                    }
                    st.acct.settle(200, "");
                    return None;
                }
                Ok(None) => (
                    GatewayError::from(ProviderError::StreamInterrupted {
                        provider: st.provider.clone(),
                        message: "the stream closed without [DONE]".into(),
                    }),
                    Bytes::new(),
                ),
                Err(_) => (
                    GatewayError::from(ProviderError::Timeout {
                        provider: st.provider.clone(),
                        stage: "total",
                    }),
                    Bytes::new(),
                ),
            };
            st.ended = true;
            if let Some(g) = st.guard.as_mut() {
                if let Some(ctx) = st.acct.fin.ctx() {
                    ctx.verdicts.append(&mut g.take_verdicts());
                }
            }
            if let Some(ctx) = st.acct.fin.ctx() {
                crate::error::log_detail(&err, &ctx.request_id);
            }
            st.acct.settle(err.status(), err.label());
            let failed = StreamError {
                before: approved,
                error: err,
                sequence,
            };
            return Some((Err(failed), st));
        }
    })
    .boxed()
}

impl State {
    /// Forwards the complete events in `chunk`; `None` when nothing is ready.
    fn on_chunk(&mut self, chunk: &[u8]) -> Result<Option<Bytes>, StreamStop> {
        let events = self.splitter.push(chunk);
        if self.splitter.pending() > MAX_EVENT_BYTES {
            return Err(StreamStop::Provider(ProviderError::Protocol {
                provider: self.provider.clone(),
                message: format!("stream event larger than {MAX_EVENT_BYTES} bytes"),
            }));
        }
        if events.is_empty() {
            return Ok(None);
        }
        let mut out = Out::default();
        for ev in events {
            let data = ev.data();
            // Each event is parsed once, then handed to the observers in
            // order: usage accounting, the output guardrail (which may
            // rewrite it), the cache fill (which sees it as the guardrail
            // left it), the restore (the caller's values back in), the
            // shape translation (which reads it as the caller is sent it).
            let whole = self.guard.is_some()
                || self.restore.is_some()
                || self.shape.is_some()
                || self.acct.fin.ctx().is_some_and(|c| c.cache.fill.is_some());
            let mut event = Event::parse(&data, whole);
            if !self.account(&event) {
                continue;
            }
            let replaced = match (self.guard.as_mut(), &mut event) {
                (None, _) => None,
                (Some(g), Event::Chunk(chunk)) => match g.on_chunk(chunk) {
                    ChunkRewrite::Kept => None,
                    ChunkRewrite::Changed => serde_json::to_string(&**chunk).ok(),
                    ChunkRewrite::Block(e) => {
                        return Err(StreamStop::Guard(e, Bytes::from(out.bytes)))
                    }
                },
                (Some(g), Event::Untyped) => match g.on_event(&data) {
                    Rewrite::Keep => None,
                    Rewrite::Replace(new) => Some(new),
                    Rewrite::Block(e) => return Err(StreamStop::Guard(e, Bytes::from(out.bytes))),
                },
                (Some(_), _) => None,
            };
            self.fill_cache(&event);
            let replaced = match (self.restore.as_mut(), &mut event) {
                (Some(r), Event::Chunk(chunk)) => {
                    if r.on_chunk(chunk) {
                        serde_json::to_string(&**chunk).ok()
                    } else {
                        replaced
                    }
                }
                (Some(r), Event::Done) => {
                    // Text still held for a choice that never finished.
                    if let Some(tail) = r.leftover() {
                        out.any = true;
                        match self.shape.as_mut() {
                            Some(t) => t.on_data(&tail, &mut out.bytes),
                            None => data_event(&mut out.bytes, &tail),
                        }
                    }
                    replaced
                }
                _ => replaced,
            };
            out.any = true;
            match (self.shape.as_mut(), replaced) {
                (None, None) => out.bytes.extend_from_slice(&ev.raw),
                (None, Some(new)) => data_event(&mut out.bytes, &new),
                (Some(t), replaced) => match &event {
                    // A rewritten chunk was rewritten in place.
                    Event::Chunk(chunk) => t.on_chunk(chunk, &mut out.bytes),
                    Event::Done => t.on_done(&mut out.bytes),
                    Event::Opaque | Event::Untyped | Event::Peek(_) => {
                        t.on_untyped(replaced.as_deref().unwrap_or(&data), &mut out.bytes)
                    }
                },
            }
        }
        Ok(out.any.then(|| Bytes::from(out.bytes)))
    }

    /// Feeds an event as the caller sees it to the cache entry being assembled.
    fn fill_cache(&mut self, event: &Event) {
        if let Some(fill) = self.acct.fin.ctx().and_then(|c| c.cache.fill.as_mut()) {
            match event {
                Event::Chunk(chunk) => fill.push_chunk(chunk),
                Event::Untyped => fill.spoil(),
                Event::Done | Event::Opaque | Event::Peek(_) => {}
            }
        }
    }

    /// Reads usage and text off one event; false when it must not be forwarded.
    fn account(&mut self, event: &Event) -> bool {
        let text = &mut self.acct.completion_text;
        let facts: ChunkFacts = match event {
            Event::Done => {
                self.saw_done = true;
                return true;
            }
            Event::Chunk(chunk) => chunk.facts(text),
            Event::Peek(chunk) => chunk.facts(text),
            Event::Opaque | Event::Untyped => return true,
        };
        if let Some(ctx) = self.acct.fin.ctx() {
            if facts.error {
                ctx.error = "upstream_stream_error";
            }
            if facts.has_choices {
                ctx.mark_first_token();
            }
        }
        if let Some((prompt_tokens, completion_tokens)) = facts.usage {
            self.acct.usage = Some(WireUsage {
                prompt_tokens,
                completion_tokens,
            });
            if self.strip_usage && !facts.has_choices {
                return false;
            }
        }
        true
    }
}
