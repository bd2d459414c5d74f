//! Phase 5's estimate: what a request may use, reserved before it runs.

use serde_json::{Map, Value};

use tollgate_config::{Endpoint, Price};
use tollgate_policy::limits::{Counters, Demand, Limits};

use super::attempt::Plan;
use super::tokens;

/// Prompt tokens counted with the tokenizer; completion tokens from
/// `max_tokens` / `max_completion_tokens` (or the configured default); the
/// dearest price among the targets the request may be served by.
pub(super) fn demand(
    limits: &Limits,
    endpoint: Endpoint,
    body: &Map<String, Value>,
    plan: &Plan,
    counters: &Counters,
) -> Demand {
    if !counters.counts_tokens() {
        return Demand::default();
    }
    let asked = asked(body);
    let completion = match endpoint {
        Endpoint::Embeddings => 0,
        _ => asked.unwrap_or(limits.default_max_tokens),
    };
    let mut price = Price::default();
    for t in &plan.targets {
        price.input_per_mtok = price.input_per_mtok.max(t.route.price.input_per_mtok);
        price.output_per_mtok = price.output_per_mtok.max(t.route.price.output_per_mtok);
    }
    Demand {
        prompt: tokens::prompt_tokens(body),
        completion,
        price,
    }
}

/// The completion tokens the caller asked for at most, if it did.
fn asked(body: &Map<String, Value>) -> Option<i64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| body.get(*f).and_then(Value::as_i64))
        .filter(|n| *n >= 0)
}

/// Whether the gateway caps the answer itself: a (non-streamed) chat or
/// completion that set no `max_tokens` / `max_completion_tokens` (its
/// reservation is then `default_max_tokens`, and the upstream is told not
/// to write more).
pub(super) fn completion_cap(endpoint: Endpoint, body: &Map<String, Value>) -> bool {
    matches!(endpoint, Endpoint::Chat | Endpoint::Completions)
        && !body.contains_key("max_completion_tokens")
        && !body.contains_key("max_tokens")
}
