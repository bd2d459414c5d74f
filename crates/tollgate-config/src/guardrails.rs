//! Guardrail policies: which detectors run on whose traffic, in which
//! direction, with which action and enforcement mode, plus optional external
//! webhooks. Schema only; the runtime lives in `tollgate_policy::guard`, the detectors
//! in `tollgate_guardrails`.

use crate::redact::redacted_debug;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use tollgate_guardrails::DetectorSpec;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsConfig {
    #[serde(default)]
    pub policies: Vec<GuardrailPolicyConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Input,
    Output,
    #[default]
    Both,
}

impl Direction {
    pub fn covers_input(self) -> bool {
        matches!(self, Direction::Input | Direction::Both)
    }
    pub fn covers_output(self) -> bool {
        matches!(self, Direction::Output | Direction::Both)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Block on a violation, and when the guardrail itself fails.
    #[default]
    Enforce,
    /// Block on a violation; let the request through when the guardrail fails.
    EnforceButIgnoreOnError,
    /// Record only; never block or rewrite.
    Audit,
}

#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum GuardAction {
    /// Refuse the request or response, naming policy and category.
    Block,
    /// Replace each value with a typed placeholder such as `[EMAIL_1]`.
    #[default]
    Mask,
    /// Allow, record the verdict.
    Audit,
}

impl GuardAction {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardAction::Block => "block",
            GuardAction::Mask => "mask",
            GuardAction::Audit => "audit",
        }
    }
}

/// Who a policy applies to. Every listed dimension must match; an empty
/// list matches everyone on that dimension.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GuardSelector {
    /// Requested model or virtual model names (globs).
    #[serde(default)]
    pub models: Vec<String>,
    /// MCP tool calls, as `server/tool` globs (docs/mcp.md). A policy that
    /// lists `tools` but no `models` applies to tool calls only.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Route calls, by route name globs (docs/routes.md); JSON bodies only.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Connection calls, by connection name globs (docs/connections.md).
    #[serde(default)]
    pub connections: Vec<String>,
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub tenants: Vec<String>,
}

#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default = "default_webhook_timeout", with = "duration")]
    pub timeout: Duration,
    /// Static headers (e.g. an auth token via `${ENV}`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Largest answer read from the webhook, in bytes (default 32 MiB);
    /// a longer one is a webhook failure.
    #[serde(default = "default_webhook_max_response_bytes")]
    pub max_response_bytes: usize,
}

redacted_debug!(WebhookConfig {
    url url,
    plain timeout,
    values headers,
    plain max_response_bytes,
});

fn default_webhook_max_response_bytes() -> usize {
    crate::model::DEFAULT_MAX_RESPONSE_BYTES
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardrailPolicyConfig {
    pub name: String,
    #[serde(default)]
    pub applies_to: GuardSelector,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub mode: Enforcement,
    /// Built-in and custom detectors this policy runs.
    #[serde(default)]
    pub detectors: Option<DetectorSpec>,
    /// What a finding does (default `mask`).
    #[serde(default)]
    pub action: GuardAction,
    /// Per-category overrides, e.g. `{credit_card: block}`.
    #[serde(default)]
    pub actions: BTreeMap<String, GuardAction>,
    /// An external guardrail called with the content.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Most bytes of streamed output held back while a match may still be
    /// growing (default 128); an audit-only policy holds none.
    #[serde(default = "default_stream_window")]
    pub stream_window: usize,
    /// Placeholders this policy puts into the request (input masking) are
    /// turned back into the caller's values in the answer (default off).
    #[serde(default)]
    pub restore: bool,
}

/// Largest `stream_window`: a longer hold-back is a buffered answer.
pub const MAX_STREAM_WINDOW: usize = 1 << 20;

fn default_stream_window() -> usize {
    128
}

impl GuardrailPolicyConfig {
    /// Whether no finding of this policy can rewrite or block anything
    /// (`mode: audit`, or every action `audit`).
    pub fn audit_only(&self) -> bool {
        self.mode == Enforcement::Audit
            || (self.action == GuardAction::Audit
                && self.actions.values().all(|a| *a == GuardAction::Audit))
    }
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(1)
}

pub fn validate_guardrails(cfg: &GuardrailsConfig, p: &mut Vec<String>) {
    let mut names = std::collections::HashSet::new();
    for (i, pol) in cfg.policies.iter().enumerate() {
        let at = format!("guardrails.policies[{i}]");
        if !names.insert(pol.name.as_str()) {
            p.push(format!("{at}.name: duplicate policy {:?}", pol.name));
        }
        if pol.detectors.is_none() && pol.webhook.is_none() {
            p.push(format!("{at}: set detectors, a webhook, or both"));
        }
        for (field, list) in [
            ("models", &pol.applies_to.models),
            ("tools", &pol.applies_to.tools),
            ("routes", &pol.applies_to.routes),
            ("connections", &pol.applies_to.connections),
        ] {
            for (j, g) in list.iter().enumerate() {
                if globset::Glob::new(g).is_err() {
                    p.push(format!(
                        "{at}.applies_to.{field}[{j}]: {g:?} is not a valid glob"
                    ));
                }
            }
        }
        if let Some(w) = &pol.webhook {
            if url::Url::parse(&w.url).is_err() || !w.url.starts_with("http") {
                p.push(format!(
                    "{at}.webhook.url: {:?} is not an http(s) URL",
                    w.url
                ));
            }
            if w.timeout.is_zero() {
                p.push(format!("{at}.webhook.timeout: must be greater than 0"));
            }
            if w.max_response_bytes == 0 {
                p.push(format!(
                    "{at}.webhook.max_response_bytes: must be greater than 0"
                ));
            }
        }
        if !(1..=MAX_STREAM_WINDOW).contains(&pol.stream_window) {
            p.push(format!(
                "{at}.stream_window: must be between 1 and {MAX_STREAM_WINDOW}"
            ));
        }
        if pol.restore && !pol.direction.covers_input() {
            p.push(format!(
                "{at}.restore: needs direction input or both (it restores what input masking replaced)"
            ));
        }
        if let Some(d) = &pol.detectors {
            if let Err(e) = tollgate_guardrails::DetectorSet::new(d) {
                p.push(format!("{at}.detectors: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn problems(policy: &str) -> Vec<String> {
        let cfg: GuardrailsConfig =
            serde_yaml_ng::from_str(&format!("policies: [{policy}]")).unwrap();
        let mut p = Vec::new();
        validate_guardrails(&cfg, &mut p);
        p
    }

    #[test]
    fn restore_is_off_by_default_and_needs_input() {
        let cfg: GuardrailsConfig =
            serde_yaml_ng::from_str("policies: [{ name: a, detectors: { builtins: [email] } }]")
                .unwrap();
        assert!(!cfg.policies[0].restore);
        let on = "{ name: a, restore: true, detectors: { builtins: [email] } }";
        assert!(problems(on).is_empty());
        let out = "{ name: a, direction: output, restore: true, detectors: { builtins: [email] } }";
        let p = problems(out);
        assert!(p.iter().any(|m| m.contains("policies[0].restore")), "{p:?}");
    }
}
