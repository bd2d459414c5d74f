//! Output guardrails on a stream: each choice's text runs through one
//! `StreamScanner` per policy (holding back only text a match could still
//! grow into, at most the policy's `stream_window`, so a value split across
//! chunks is still found; an audit-only policy's scanner holds nothing
//! back and only counts), and the chunk is re-encoded with the text
//! the scanners let out (masked where the policy masks). The held-back tail
//! is flushed into the chunk that carries `finish_reason`. A block ends the
//! stream with an error event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;
use tollgate_core::wire::chat::{ChatChunk, Function, ToolCall};
use tollgate_core::wire::Field;

use super::{record, GuardError, GuardPolicy, Verdict};
use tollgate_config::GuardAction;
use tollgate_guardrails::{Finding, StreamScanner};

/// Which text stream of a response: a choice's content, or one of its
/// tool calls' arguments.
type Slot = (u64, Option<u64>);

pub enum Rewrite {
    Keep,
    Replace(String),
    Block(GuardError),
}

/// What the guard did to a parsed chunk (`on_chunk`).
pub enum ChunkRewrite {
    Kept,
    /// The chunk was rewritten in place: forward it re-encoded.
    Changed,
    Block(GuardError),
}

pub struct StreamGuard {
    policies: Vec<Arc<GuardPolicy>>,
    /// Per (choice index, tool-call index or none for the text), one scanner
    /// per policy, applied in order.
    scanners: HashMap<Slot, Vec<StreamScanner>>,
    /// Tool calls seen per choice, flushed when the choice finishes.
    tools: HashMap<u64, BTreeSet<u64>>,
    tally: BTreeMap<(usize, String, GuardAction), usize>,
}

impl StreamGuard {
    /// `None` when no applicable policy scans output with detectors.
    pub fn new(policies: &[Arc<GuardPolicy>]) -> Option<Self> {
        let policies: Vec<Arc<GuardPolicy>> = policies
            .iter()
            .filter(|p| p.direction.covers_output() && p.detectors.is_some())
            .cloned()
            .collect();
        (!policies.is_empty()).then(|| Self {
            policies,
            scanners: HashMap::new(),
            tools: HashMap::new(),
            tally: BTreeMap::new(),
        })
    }

    fn scanners_for(&mut self, slot: Slot) -> &mut Vec<StreamScanner> {
        let policies = &self.policies;
        self.scanners.entry(slot).or_insert_with(|| {
            policies
                .iter()
                .filter_map(|p| {
                    let d = p.detectors.as_ref()?.clone();
                    Some(if p.audit_only {
                        StreamScanner::passthrough(d, p.stream_window)
                    } else {
                        StreamScanner::new(d, p.stream_window, true)
                    })
                })
                .collect()
        })
    }

    /// Runs `text` (or, with `finish`, the held-back tail too) through the
    /// policies; the text to emit, or the policy that blocked.
    fn pass(&mut self, slot: Slot, text: &str, finish: bool) -> Result<String, GuardError> {
        let mut current = text.to_string();
        let n = self.policies.len();
        for i in 0..n {
            let out = {
                let scanner = &mut self.scanners_for(slot)[i];
                let mut out = scanner.push(&current);
                if finish {
                    let tail = scanner.finish();
                    out.emit.push_str(&tail.emit);
                    out.findings.extend(tail.findings);
                }
                out
            };
            self.judge(i, &out.findings)?;
            current = out.emit;
        }
        Ok(current)
    }

    fn judge(&mut self, policy: usize, findings: &[Finding]) -> Result<(), GuardError> {
        let p = self.policies[policy].clone();
        for f in findings {
            let action = p.action_for(f);
            *self
                .tally
                .entry((policy, f.category.as_str().to_string(), action))
                .or_default() += 1;
            if action == GuardAction::Block {
                return Err(GuardError::Blocked {
                    policy: p.name.clone(),
                    direction: "output",
                    category: f.category.as_str().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Rewrites one SSE `data` payload (parsed here: the stream parses
    /// each event once and calls `on_chunk`).
    pub fn on_event(&mut self, data: &str) -> Rewrite {
        if !data.starts_with('{') {
            return Rewrite::Keep;
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(mut chunk) => match self.on_chunk(&mut chunk) {
                ChunkRewrite::Kept => Rewrite::Keep,
                ChunkRewrite::Changed => match serde_json::to_string(&chunk) {
                    Ok(text) => Rewrite::Replace(text),
                    Err(_) => Rewrite::Keep,
                },
                ChunkRewrite::Block(e) => Rewrite::Block(e),
            },
            Err(_) => self.on_untyped(data),
        }
    }

    /// Rewrites one parsed chunk in place.
    pub fn on_chunk(&mut self, chunk: &mut ChatChunk) -> ChunkRewrite {
        let Some(choices) = chunk.choices.get_mut() else {
            return ChunkRewrite::Kept;
        };
        let mut changed = false;
        for c in choices.iter_mut() {
            let index = c.index.get().copied().unwrap_or(0);
            let finish = c.finish_reason.get().is_some();
            // Chat chunks carry `delta.content`; completions carry `text`.
            let slot = if !c.text.is_absent() {
                c.text.get_mut()
            } else {
                c.delta.get_mut().and_then(|d| {
                    if finish && d.content.is_absent() {
                        d.content = Field::Set(String::new());
                    }
                    d.content.get_mut()
                })
            };
            if let Some(text) = slot {
                if !text.is_empty() || finish {
                    match self.pass((index, None), text, finish) {
                        Ok(out) if out != *text => {
                            *text = out;
                            changed = true;
                        }
                        Ok(_) => {}
                        Err(e) => return ChunkRewrite::Block(e),
                    }
                }
            }
            // Tool-call arguments stream as fragments too.
            let calls = c.delta.get_mut().and_then(|d| d.tool_calls.get_mut());
            for call in calls.into_iter().flatten() {
                let ti = call.index.get().copied().unwrap_or(0);
                self.tools.entry(index).or_default().insert(ti);
                let args = call.function.get_mut().and_then(|f| f.arguments.get_mut());
                if let Some(args) = args {
                    match self.pass((index, Some(ti)), args, false) {
                        Ok(out) if out != *args => {
                            *args = out;
                            changed = true;
                        }
                        Ok(_) => {}
                        Err(e) => return ChunkRewrite::Block(e),
                    }
                }
            }
            if finish {
                let mut tails = Vec::new();
                for ti in self.tools.remove(&index).unwrap_or_default() {
                    match self.pass((index, Some(ti)), "", true) {
                        Ok(rest) if !rest.is_empty() => tails.push(ToolCall {
                            index: Field::Set(ti),
                            function: Field::Set(Function {
                                arguments: Field::Set(rest),
                                ..Function::default()
                            }),
                            ..ToolCall::default()
                        }),
                        Ok(_) => {}
                        Err(e) => return ChunkRewrite::Block(e),
                    }
                }
                if !tails.is_empty() {
                    if let Some(d) = c.delta.get_mut() {
                        d.tool_calls = Field::Set(tails);
                        changed = true;
                    }
                }
            }
        }
        if changed {
            ChunkRewrite::Changed
        } else {
            ChunkRewrite::Kept
        }
    }

    /// A JSON event whose fields do not have a chunk's types (an
    /// upstream's odd `index` or `content`): read leniently, as a value.
    fn on_untyped(&mut self, data: &str) -> Rewrite {
        let Ok(mut v) = serde_json::from_str::<Value>(data) else {
            return Rewrite::Keep;
        };
        let Some(Value::Array(choices)) = v.get_mut("choices") else {
            return Rewrite::Keep;
        };
        let mut changed = false;
        for c in choices.iter_mut() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finish = c.get("finish_reason").is_some_and(|f| !f.is_null());
            // Chat chunks carry `delta.content`; completions carry `text`.
            let slot = if c.get("text").is_some() {
                c.get_mut("text")
            } else {
                c.get_mut("delta").and_then(|d| {
                    if finish && d.get("content").is_none() {
                        if let Value::Object(o) = d {
                            o.insert("content".into(), Value::String(String::new()));
                        }
                    }
                    d.get_mut("content")
                })
            };
            if let Some(Value::String(text)) = slot {
                if !text.is_empty() || finish {
                    match self.pass((index, None), text, finish) {
                        Ok(out) if out != *text => {
                            *text = out;
                            changed = true;
                        }
                        Ok(_) => {}
                        Err(e) => return Rewrite::Block(e),
                    }
                }
            }
            // Tool-call arguments stream as fragments too.
            if let Some(Value::Array(calls)) = c.pointer_mut("/delta/tool_calls") {
                for call in calls.iter_mut() {
                    let ti = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                    self.tools.entry(index).or_default().insert(ti);
                    if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                        match self.pass((index, Some(ti)), args, false) {
                            Ok(out) if out != *args => {
                                *args = out;
                                changed = true;
                            }
                            Ok(_) => {}
                            Err(e) => return Rewrite::Block(e),
                        }
                    }
                }
            }
            if finish {
                let mut tails = Vec::new();
                for ti in self.tools.remove(&index).unwrap_or_default() {
                    match self.pass((index, Some(ti)), "", true) {
                        Ok(rest) if !rest.is_empty() => tails.push(serde_json::json!({
                            "index": ti, "function": {"arguments": rest}
                        })),
                        Ok(_) => {}
                        Err(e) => return Rewrite::Block(e),
                    }
                }
                if !tails.is_empty() {
                    if let Some(Value::Object(d)) = c.get_mut("delta") {
                        d.insert("tool_calls".into(), Value::Array(tails));
                        changed = true;
                    }
                }
            }
        }
        if changed {
            Rewrite::Replace(v.to_string())
        } else {
            Rewrite::Keep
        }
    }

    /// Verdicts so far, for the usage record (drains the tally).
    pub fn take_verdicts(&mut self) -> Vec<Verdict> {
        let mut out = Vec::new();
        for ((policy, category, action), count) in std::mem::take(&mut self.tally) {
            record(
                &mut out,
                &self.policies[policy].name,
                "output",
                category,
                action.as_str(),
                count,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthMethod, Principal};
    use tollgate_config::GuardrailsConfig;

    fn guard(action: &str) -> StreamGuard {
        guard_with(&format!("action: {action}"))
    }

    fn guard_with(fields: &str) -> StreamGuard {
        let cfg: GuardrailsConfig = serde_yaml_ng::from_str(&format!(
            "policies: [{{ name: p, direction: output, {fields}, detectors: {{ builtins: [email] }} }}]"
        ))
        .unwrap();
        let guards = super::super::Guards::build(&cfg, &Default::default()).unwrap();
        let who = Principal {
            subject: "s".into(),
            kind: tollgate_config::PrincipalKind::User,
            groups: Vec::new().into(),
            tenant: None,
            key_id: None,
            issuer: None,
            method: AuthMethod::ApiKey,
            claims: None,
        };
        StreamGuard::new(&guards.applicable("m", &who)).unwrap()
    }

    fn run(
        g: &mut StreamGuard,
        events: &[serde_json::Value],
    ) -> Result<Vec<serde_json::Value>, GuardError> {
        let mut out = Vec::new();
        for e in events {
            let data = e.to_string();
            match g.on_event(&data) {
                Rewrite::Keep => out.push(e.clone()),
                Rewrite::Replace(d) => out.push(serde_json::from_str(&d).unwrap()),
                Rewrite::Block(err) => return Err(err),
            }
        }
        Ok(out)
    }

    fn tool_delta(args: &str) -> serde_json::Value {
        serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args}}]}, "finish_reason": null}]})
    }

    #[test]
    fn tool_call_arguments_split_across_chunks_are_masked() {
        let mut g = guard("mask");
        let finish = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        let out = run(
            &mut g,
            &[
                tool_delta("{\"to\": \"bob.jo"),
                tool_delta("nes@example.com\", \"x\": 1}"),
                finish,
            ],
        )
        .unwrap();
        let args: String = out
            .iter()
            .flat_map(|e| {
                e["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|t| t["function"]["arguments"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(args, "{\"to\": \"[EMAIL_1]\", \"x\": 1}");
        let v = g.take_verdicts();
        assert_eq!((v[0].category.as_str(), v[0].count), ("email", 1));
    }

    #[test]
    fn block_on_tool_call_arguments() {
        let mut g = guard("block");
        let finish = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]});
        assert!(run(&mut g, &[tool_delta("{\"to\": \"a@b.io\"}"), finish]).is_err());
    }

    fn content(text: &str, finish: bool) -> serde_json::Value {
        let reason = if finish {
            serde_json::json!("stop")
        } else {
            serde_json::Value::Null
        };
        serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": reason}]})
    }

    fn texts(out: &[serde_json::Value]) -> Vec<String> {
        out.iter()
            .map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    /// Prose that no detector can extend leaves at once, not 128 bytes late.
    #[test]
    fn masking_policy_releases_prose_at_once() {
        let mut g = guard("mask");
        let out = run(
            &mut g,
            &[
                content("Sure! ", false),
                content("Mail bob@exa", false),
                content("mple.com now.", true),
            ],
        )
        .unwrap();
        assert_eq!(texts(&out), ["Sure! ", "Mail ", "[EMAIL_1] now."]);
    }

    /// An audit-only policy (mode `audit`, or every action `audit`) never
    /// delays a chunk, and still counts a value split across chunks once.
    #[test]
    fn audit_only_policies_hold_nothing_back() {
        for fields in [
            "mode: audit",
            "action: audit",
            "action: audit, actions: { email: audit }",
        ] {
            let mut g = guard_with(fields);
            let chunks = ["Mail bob@exa", "mple.com now", ""];
            let events: Vec<_> = chunks
                .iter()
                .enumerate()
                .map(|(i, c)| content(c, i == 2))
                .collect();
            let out = run(&mut g, &events).unwrap();
            assert_eq!(texts(&out), chunks, "{fields}");
            let v = g.take_verdicts();
            assert_eq!((v[0].action, v[0].count), ("audit", 1), "{fields}");
        }
    }

    /// `stream_window` bounds the hold-back: a long run of letters is held
    /// no further back than the window.
    #[test]
    fn stream_window_bounds_the_hold_back() {
        let mut g = guard_with("action: mask, stream_window: 8");
        let out = run(&mut g, &[content("abcdefghijklmnop", false)]).unwrap();
        assert_eq!(texts(&out), ["abcdefgh"]);
    }
}
