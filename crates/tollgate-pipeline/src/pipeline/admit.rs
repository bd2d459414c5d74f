//! Phase 5: what a request may use (the estimate), reserved before it
//! runs; `reserve` is the reservation calls that are not model calls (tool
//! calls, routes, connections) share.

use serde_json::{Map, Value};

use tollgate_config::{Endpoint, Price};
use tollgate_policy::auth::Principal;
use tollgate_policy::limits::{Counters, Demand, Limits};

use super::attempt::Plan;
use super::{tokens, RequestCtx};
use crate::error::GatewayError;

/// Limits on a call to `target` (a tool, route or connection, with its
/// target-kind prefix): the rules that apply reserve `demand` on each
/// counter, all or nothing. The admission is kept in the context and
/// settled when the request ends (its `Finish`, as for model calls); a
/// refusal's decisions go to the ledger.
pub(super) async fn reserve(
    limits: &Limits,
    ctx: &mut RequestCtx,
    principal: &Principal,
    target: &str,
    demand: Demand,
) -> Result<(), GatewayError> {
    if limits.is_empty() {
        return Ok(());
    }
    match limits.admit(principal, target, demand).await {
        Ok(adm) => {
            ctx.admission = (!adm.is_empty()).then_some(adm);
            Ok(())
        }
        Err(e) => {
            ctx.limit_decisions = e.ledger_decisions();
            Err(e.into())
        }
    }
}

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
