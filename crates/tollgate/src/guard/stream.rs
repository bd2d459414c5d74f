//! Output guardrails on a stream: each choice's text runs through one
//! `StreamScanner` per policy (a bounded hold-back window, so a value split
//! across chunks is still found), and the chunk is re-encoded with the text
//! the scanners let out (masked where the policy masks). The held-back tail
//! is flushed into the chunk that carries `finish_reason`. A block ends the
//! stream with an error event.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::{record, GuardError, GuardPolicy, Verdict};
use crate::config::{Enforcement, GuardAction};
use crate::guardrails::{Finding, StreamScanner};

/// Characters held back while a match may still be growing.
pub const HOLD_BACK: usize = 128;

pub enum Rewrite {
    Keep,
    Replace(String),
    Block(GuardError),
}

pub struct StreamGuard {
    policies: Vec<Arc<GuardPolicy>>,
    /// Per choice index, one scanner per policy, applied in order.
    scanners: HashMap<u64, Vec<StreamScanner>>,
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
            tally: BTreeMap::new(),
        })
    }

    fn scanners_for(&mut self, index: u64) -> &mut Vec<StreamScanner> {
        let policies = &self.policies;
        self.scanners.entry(index).or_insert_with(|| {
            policies
                .iter()
                .filter_map(|p| {
                    let masks = p.mode != Enforcement::Audit;
                    p.detectors
                        .as_ref()
                        .map(|d| StreamScanner::new(d.clone(), HOLD_BACK, masks))
                })
                .collect()
        })
    }

    /// Runs `text` (or, with `finish`, the held-back tail too) through the
    /// policies; the text to emit, or the policy that blocked.
    fn pass(&mut self, index: u64, text: &str, finish: bool) -> Result<String, GuardError> {
        let mut current = text.to_string();
        let n = self.policies.len();
        for i in 0..n {
            let out = {
                let scanner = &mut self.scanners_for(index)[i];
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

    /// Rewrites one SSE `data` payload.
    pub fn on_event(&mut self, data: &str) -> Rewrite {
        if !data.starts_with('{') {
            return Rewrite::Keep;
        }
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
            let Some(Value::String(text)) = slot else {
                continue;
            };
            if text.is_empty() && !finish {
                continue;
            }
            match self.pass(index, text, finish) {
                Ok(out) => {
                    if out != *text {
                        *text = out;
                        changed = true;
                    }
                }
                Err(e) => return Rewrite::Block(e),
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
