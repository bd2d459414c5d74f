//! Guardrail policies at run time: which apply to a request, and the input
//! and output checks (block, mask, audit; webhooks; enforcement modes). The
//! detectors themselves are `tollgate_guardrails`; this module decides what a
//! finding does. Verdicts carry policy, category, action and count — never
//! the matched value.

mod restore;
mod stream;
mod texts;
mod webhook;

pub use restore::{restore_output, StreamRestore};
pub use stream::{ChunkRewrite, Rewrite, StreamGuard};
pub use texts::{request_texts, response_texts};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tollgate_core::error::BuildError;

use serde::Serialize;

use crate::auth::Principal;
use crate::subject::{Combine, Names, Subject, Target, TargetKind, Targets};
use tollgate_config::{
    Direction, Enforcement, GuardAction, GuardrailPolicyConfig, GuardrailsConfig,
};
use tollgate_guardrails::{DetectorSet, Finding, Masker};
use webhook::{Webhook, WebhookVerdict};

/// One policy's decision about one request direction, for the ledger and metrics.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub policy: Arc<str>,
    pub direction: &'static str,
    pub category: String,
    pub action: &'static str,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error("{direction} blocked by guardrail policy `{policy}` ({category})")]
    Blocked {
        policy: Arc<str>,
        direction: &'static str,
        category: String,
    },
    #[error("guardrail policy `{policy}` failed: {message}")]
    Failed { policy: Arc<str>, message: String },
}

impl From<GuardError> for tollgate_core::error::GatewayError {
    fn from(e: GuardError) -> Self {
        use tollgate_core::error::{ErrorKind, GatewayError};
        match e {
            GuardError::Blocked { .. } => GatewayError::new(
                ErrorKind::InvalidRequest,
                400,
                "guardrail_blocked",
                e.to_string(),
            )
            .with_code("guardrail_blocked"),
            // The reason (webhook address, OS error) is for the log only.
            GuardError::Failed { ref policy, .. } => GatewayError::new(
                ErrorKind::Server,
                503,
                "guardrail_error",
                format!("guardrail policy `{policy}` could not be checked; try again later"),
            )
            .with_code("guardrail_error")
            .with_detail(e.to_string()),
        }
    }
}

pub struct GuardPolicy {
    pub name: Arc<str>,
    /// `applies_to`: every listed dimension (`Combine::All`); models are
    /// globs, principals, groups and tenants exact names.
    applies_to: Subject,
    pub direction: Direction,
    pub mode: Enforcement,
    pub detectors: Option<Arc<DetectorSet>>,
    action: GuardAction,
    actions: HashMap<String, GuardAction>,
    webhook: Option<Webhook>,
    /// Most bytes a stream scanner holds back (`stream_window`).
    pub stream_window: usize,
    /// No finding can rewrite or block: streams are scanned without delay.
    pub audit_only: bool,
    /// Input placeholders are turned back into the caller's values in the
    /// answer (`restore`).
    pub restore: bool,
}

impl GuardPolicy {
    fn build(
        cfg: &GuardrailPolicyConfig,
        client: &tollgate_net::Client,
    ) -> Result<Self, BuildError> {
        let who = &cfg.applies_to;
        let applies_to = Subject {
            principals: Names::exact(&who.principals),
            groups: Names::exact(&who.groups),
            tenants: Names::exact(&who.tenants),
            kinds: Vec::new(),
            targets: Targets::default()
                .with(
                    TargetKind::Model,
                    Names::globs(&who.models).map_err(|e| e.to_string())?,
                )
                .with(
                    TargetKind::Tool,
                    Names::globs(&who.tools).map_err(|e| e.to_string())?,
                )
                .with(
                    TargetKind::Route,
                    Names::globs(&who.routes).map_err(|e| e.to_string())?,
                )
                .with(
                    TargetKind::Connection,
                    Names::globs(&who.connections).map_err(|e| e.to_string())?,
                ),
            keys: Names::default(),
        };
        let detectors = match &cfg.detectors {
            Some(spec) => Some(Arc::new(DetectorSet::new(spec).map_err(|e| e.to_string())?)),
            None => None,
        };
        let webhook = match &cfg.webhook {
            Some(w) => Some(Webhook::new(w, client.clone())?),
            None => None,
        };
        Ok(Self {
            name: cfg.name.as_str().into(),
            applies_to,
            direction: cfg.direction,
            mode: cfg.mode,
            detectors,
            action: cfg.action,
            actions: cfg.actions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            webhook,
            stream_window: cfg.stream_window,
            audit_only: cfg.audit_only(),
            restore: cfg.restore,
        })
    }

    fn applies(&self, model: &str, p: &Principal) -> bool {
        self.applies_to
            .matches(Combine::All, p, Target::model(model))
    }

    /// A policy covers calls of a non-model kind (tools, routes,
    /// connections) only when it lists that kind.
    fn applies_to_kind(&self, kind: TargetKind, name: &str, p: &Principal) -> bool {
        self.applies_to.targets.lists(kind)
            && self
                .applies_to
                .matches(Combine::All, p, Target::of(kind, name))
    }

    /// A policy covers MCP tool calls only when it lists `tools` (one that
    /// lists no target covers every model call, but no tool call).
    fn applies_to_tool(&self, tool: &str, p: &Principal) -> bool {
        self.applies_to.targets.lists(TargetKind::Tool)
            && self.applies_to.matches(Combine::All, p, Target::tool(tool))
    }

    /// What a finding does under this policy (per-detector name, then
    /// per-category override, then the policy's action; `audit` mode wins).
    pub fn action_for(&self, f: &Finding) -> GuardAction {
        if self.mode == Enforcement::Audit {
            return GuardAction::Audit;
        }
        self.actions
            .get(&*f.detector)
            .or_else(|| self.actions.get(f.category.as_str()))
            .copied()
            .unwrap_or(self.action)
    }

    fn failure(&self, message: String) -> Result<(), GuardError> {
        metrics::counter!("tollgate_guardrail_errors_total", "policy" => self.name.to_string())
            .increment(1);
        tracing::warn!(policy = %self.name, error = %message, "guardrail failed");
        match self.mode {
            Enforcement::Enforce => Err(GuardError::Failed {
                policy: self.name.clone(),
                message,
            }),
            _ => Ok(()),
        }
    }
}

/// All policies of a snapshot.
#[derive(Default)]
pub struct Guards {
    policies: Vec<Arc<GuardPolicy>>,
}

impl Guards {
    /// Webhooks are called under `egress`.
    pub fn build(
        cfg: &GuardrailsConfig,
        egress: &tollgate_net::Egress,
    ) -> Result<Self, BuildError> {
        let client = tollgate_net::client_builder(egress)
            .build()
            .map_err(|e| format!("guardrail webhook client: {e}"))?;
        let policies = cfg
            .policies
            .iter()
            .map(|p| {
                GuardPolicy::build(p, &client)
                    .map(Arc::new)
                    .map_err(|e| format!("guardrail policy {}: {e}", p.name))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { policies })
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Policies that apply to this caller and model.
    pub fn applicable(&self, model: &str, p: &Principal) -> Vec<Arc<GuardPolicy>> {
        self.policies
            .iter()
            .filter(|g| g.applies(model, p))
            .cloned()
            .collect()
    }

    /// Policies that apply to this caller's call of a route or connection
    /// (`kind`) named `name`.
    pub fn applicable_to(
        &self,
        kind: TargetKind,
        name: &str,
        p: &Principal,
    ) -> Vec<Arc<GuardPolicy>> {
        self.policies
            .iter()
            .filter(|g| g.applies_to_kind(kind, name, p))
            .cloned()
            .collect()
    }

    /// Policies that apply to this caller's call of MCP tool `server/tool`.
    pub fn applicable_to_tool(&self, tool: &str, p: &Principal) -> Vec<Arc<GuardPolicy>> {
        self.policies
            .iter()
            .filter(|g| g.applies_to_tool(tool, p))
            .cloned()
            .collect()
    }
}

/// Runs the detectors of `policy` over `texts`, masking or blocking as
/// configured; tallies verdicts.
fn detect(
    policy: &GuardPolicy,
    direction: &'static str,
    texts: &mut [&mut String],
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<(), GuardError> {
    let Some(detectors) = &policy.detectors else {
        return Ok(());
    };
    let mut tally: BTreeMap<(String, GuardAction), usize> = BTreeMap::new();
    let mut blocked: Option<String> = None;
    let restorable = policy.restore && direction == "input";
    for text in texts.iter_mut() {
        let findings = detectors.scan(text);
        if findings.is_empty() {
            continue;
        }
        let mut to_mask = Vec::new();
        for f in findings {
            let action = policy.action_for(&f);
            *tally
                .entry((f.category.as_str().to_string(), action))
                .or_default() += 1;
            match action {
                GuardAction::Block => {
                    blocked.get_or_insert_with(|| f.category.as_str().to_string());
                }
                GuardAction::Mask => to_mask.push(f),
                GuardAction::Audit => {}
            }
        }
        if blocked.is_none() && !to_mask.is_empty() {
            **text = if restorable {
                masker.mask_restorable(text, &to_mask)
            } else {
                masker.mask(text, &to_mask)
            };
        }
    }
    for ((category, action), count) in tally {
        record(
            verdicts,
            &policy.name,
            direction,
            category,
            action.as_str(),
            count,
        );
    }
    match blocked {
        Some(category) => Err(GuardError::Blocked {
            policy: policy.name.clone(),
            direction,
            category,
        }),
        None => Ok(()),
    }
}

fn record(
    verdicts: &mut Vec<Verdict>,
    policy: &Arc<str>,
    direction: &'static str,
    category: String,
    action: &'static str,
    count: usize,
) {
    metrics::counter!("tollgate_guardrail_verdicts_total", "policy" => policy.to_string(),
        "direction" => direction, "category" => category.clone(), "action" => action)
    .increment(count as u64);
    verdicts.push(Verdict {
        policy: policy.clone(),
        direction,
        category,
        action,
        count,
    });
}

async fn ask_webhook(
    policy: &GuardPolicy,
    direction: &'static str,
    model: &str,
    principal: &Principal,
    texts: &mut [&mut String],
    verdicts: &mut Vec<Verdict>,
) -> Result<(), GuardError> {
    let Some(hook) = &policy.webhook else {
        return Ok(());
    };
    let sent: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    match hook
        .check(&policy.name, direction, model, principal, &sent)
        .await
    {
        Ok(WebhookVerdict::Allow) => Ok(()),
        Ok(WebhookVerdict::Block(_reason)) => {
            let action = if policy.mode == Enforcement::Audit {
                "audit"
            } else {
                "block"
            };
            record(
                verdicts,
                &policy.name,
                direction,
                "webhook".into(),
                action,
                1,
            );
            if policy.mode == Enforcement::Audit {
                Ok(())
            } else {
                Err(GuardError::Blocked {
                    policy: policy.name.clone(),
                    direction,
                    category: "webhook".into(),
                })
            }
        }
        Ok(WebhookVerdict::Rewrite(new)) => {
            let action = if policy.mode == Enforcement::Audit {
                "audit"
            } else {
                "rewrite"
            };
            record(
                verdicts,
                &policy.name,
                direction,
                "webhook".into(),
                action,
                1,
            );
            if policy.mode != Enforcement::Audit {
                for (t, n) in texts.iter_mut().zip(new) {
                    **t = n;
                }
            }
            Ok(())
        }
        Err(e) => policy.failure(e.to_string()),
    }
}

/// Phase 6: every applicable input policy over the request's text. When
/// one restores, the placeholder-shaped text the caller wrote itself is
/// reserved first, so that each minted placeholder stands for one value.
pub async fn check_input(
    policies: &[Arc<GuardPolicy>],
    model: &str,
    principal: &Principal,
    body: &mut serde_json::Map<String, serde_json::Value>,
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<(), GuardError> {
    if policies
        .iter()
        .any(|p| p.restore && p.direction.covers_input() && p.detectors.is_some())
    {
        for text in request_texts(body) {
            masker.reserve_literals(text);
        }
    }
    for p in policies.iter().filter(|p| p.direction.covers_input()) {
        let mut texts = request_texts(body);
        detect(p, "input", &mut texts, masker, verdicts)?;
        ask_webhook(p, "input", model, principal, &mut texts, verdicts).await?;
    }
    Ok(())
}

/// An MCP tool call's arguments (`direction` `input`) or result
/// (`output`): every applicable policy of that direction over every string
/// in the JSON value (object keys are not scanned), masked in place or
/// blocked, with the same detectors, actions, modes and webhooks as model
/// calls. `tool` is `server/tool`; webhooks receive it as `model`.
pub async fn check_tool(
    policies: &[Arc<GuardPolicy>],
    direction: &'static str,
    tool: &str,
    principal: &Principal,
    value: &mut serde_json::Value,
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<(), GuardError> {
    let input = direction == "input";
    for p in policies.iter().filter(|p| {
        if input {
            p.direction.covers_input()
        } else {
            p.direction.covers_output()
        }
    }) {
        let mut texts = json_texts(value);
        detect(p, direction, &mut texts, masker, verdicts)?;
        ask_webhook(p, direction, tool, principal, &mut texts, verdicts).await?;
    }
    Ok(())
}

/// Every string value in a JSON document, in document order.
fn json_texts(v: &mut serde_json::Value) -> Vec<&mut String> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => stack.extend(a.iter_mut().rev()),
            serde_json::Value::Object(o) => stack.extend(o.values_mut().rev()),
            _ => {}
        }
    }
    out
}

/// Phase 9 (whole responses): every applicable output policy; `Some` holds
/// the rewritten body when anything was masked or rewritten.
pub async fn check_output(
    policies: &[Arc<GuardPolicy>],
    model: &str,
    principal: &Principal,
    body: &[u8],
    masker: &mut Masker,
    verdicts: &mut Vec<Verdict>,
) -> Result<Option<Vec<u8>>, GuardError> {
    let active: Vec<&Arc<GuardPolicy>> = policies
        .iter()
        .filter(|p| p.direction.covers_output())
        .collect();
    if active.is_empty() {
        return Ok(None);
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(None);
    };
    let before = value.clone();
    for p in active {
        let mut texts = response_texts(&mut value);
        detect(p, "output", &mut texts, masker, verdicts)?;
        ask_webhook(p, "output", model, principal, &mut texts, verdicts).await?;
    }
    if value == before {
        return Ok(None);
    }
    Ok(serde_json::to_vec(&value).ok())
}
